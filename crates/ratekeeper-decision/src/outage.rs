//! What the limiter does while its store is down: one setting,
//! [`LimiterBuilder::on_outage`](crate::LimiterBuilder::on_outage).

use core::{fmt, time::Duration};
use std::sync::Arc;

use ratekeeper_fallback::{Backoff, Transition};

/// A change of the storage's health, as [`Outage::on_transition`] reports it.
pub use ratekeeper_fallback::Transition as StorageTransition;

/// Whom the limits of [`Outage::in_memory_fallback`] count against during an outage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackScope {
    /// Each client on each route apart, as Flask-Limiter counts its `in_memory_fallback`
    /// limits (per endpoint): one busy route does not lock a client out of the others. The
    /// default.
    #[default]
    Route,
    /// Each client across every route: one count per client for the whole application.
    Client,
}

pub(crate) type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

/// What the limiter does while its storage is unavailable (or refuses calls: Redis out of
/// memory), and how it waits for it: the one outage setting of a limiter
/// ([`LimiterBuilder::on_outage`](crate::LimiterBuilder::on_outage)). Choose the mode with a
/// constructor; the other settings exist only on a mode, so none can be set and then ignored.
///
/// | constructor | Flask-Limiter |
/// |---|---|
/// | [`Outage::in_memory_fallback`] | `in_memory_fallback=[...]` |
/// | [`Outage::fallback_to_memory`] | `in_memory_fallback_enabled=True` |
/// | [`Outage::fail_open`] | `swallow_errors=True` |
/// | [`Outage::fail_closed`] | neither, but without waiting on a dead store |
///
/// Without `on_outage`, a storage error reaches the application
/// ([`DecisionError::Storage`](crate::DecisionError::Storage)) after whatever the store's own
/// timeouts allow.
///
/// ```
/// use core::time::Duration;
/// use ratekeeper_decision::{outage::FallbackScope, Limiter, Outage};
///
/// let limiter = Limiter::builder()
///     .default_limits("200 per day; 50 per hour")
///     .on_outage(
///         Outage::in_memory_fallback("100 per day; 25 per hour")
///             .scope(FallbackScope::Route)
///             .timeout(Duration::from_millis(200))
///             .probe_backoff(Duration::from_millis(250), Duration::from_secs(30)),
///     )
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Outage {
    pub(crate) mode: Mode,
    pub(crate) scope: FallbackScope,
    pub(crate) timeout: Option<Duration>,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) on_transition: Option<TransitionHook>,
}

#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// Count in memory: the request's own limits, and these on top.
    Memory(Option<String>),
    FailOpen,
    FailClosed,
}

impl fmt::Debug for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outage")
            .field("mode", &self.mode)
            .field("scope", &self.scope)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Outage {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            scope: FallbackScope::default(),
            timeout: None,
            backoff: None,
            on_transition: None,
        }
    }

    /// Count in memory: every request's own limits, and `limits` on top (e.g.
    /// `"100 per day; 25 per hour"`), per client and route as Flask-Limiter counts them
    /// ([`scope`](Self::scope) counts them per client across all routes instead); go back to
    /// the storage once a background probe finds it serving. No request fails and none waits
    /// on a dead or hung storage longer than the [`timeout`](Self::timeout). `build()` parses
    /// `limits`.
    ///
    /// Unlike Flask-Limiter, where these limits replace the route's, a fallback is never looser
    /// than normal operation: a login limited to 5 per minute stays at 5 under a fallback of
    /// 100, and application and meta limits still count. (Counts start afresh in memory when
    /// the outage begins.)
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ratekeeper_decision::{Limiter, Outage, RequestView, RoutePolicy};
    /// # use ratekeeper_storage::{Charge, Key, Op, Storage, StorageError, StorageFuture, Verdict};
    /// # #[derive(Debug)]
    /// # struct Down;
    /// # fn down<T: Send + 'static>() -> StorageFuture<'static, T> {
    /// #     Box::pin(async { Err(StorageError::unreachable("test", "down")) })
    /// # }
    /// # impl Storage for Down {
    /// #     fn apply<'a>(&'a self, _: Op, _: &'a [Charge]) -> StorageFuture<'a, Verdict> { down() }
    /// #     fn clear<'a>(&'a self, _: &'a Key) -> StorageFuture<'a, ()> { down() }
    /// #     fn reset(&self) -> StorageFuture<'_, ()> { down() }
    /// #     fn health(&self) -> StorageFuture<'_, ()> { down() }
    /// # }
    ///
    /// # smol::block_on(async {
    /// let limiter = Limiter::builder()
    ///     .storage(Arc::new(Down)) // a store that is down
    ///     .default_limits("5 per minute")
    ///     .route("/t2", RoutePolicy::new().limit("3 per minute"))
    ///     .on_outage(Outage::in_memory_fallback("1 per minute"))
    ///     .build()?;
    /// let peer = "10.0.0.1".parse()?;
    /// let t1 = RequestView::new("GET", "/t1").with_peer(peer);
    /// let t2 = RequestView::new("GET", "/t2").with_peer(peer);
    /// assert!(limiter.check(&t1).await?.is_allowed());
    /// assert!(!limiter.check(&t1).await?.is_allowed());
    /// assert!(limiter.check(&t2).await?.is_allowed(), "another route, another count");
    /// assert!(!limiter.check(&t2).await?.is_allowed());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn in_memory_fallback(limits: &str) -> Self {
        Self::new(Mode::Memory(Some(limits.to_owned())))
    }

    /// Count in memory with each request's own limits (Flask-Limiter's
    /// `in_memory_fallback_enabled`).
    pub fn fallback_to_memory() -> Self {
        Self::new(Mode::Memory(None))
    }

    /// Allow every request, logging each (Flask-Limiter's `swallow_errors`).
    pub fn fail_open() -> Self {
        Self::new(Mode::FailOpen)
    }

    /// Answer every request with [`DecisionError::Storage`](crate::DecisionError::Storage)
    /// (503 from the adapters) without waiting on the storage while it is down.
    pub fn fail_closed() -> Self {
        Self::new(Mode::FailClosed)
    }

    /// Whom the [`in_memory_fallback`](Self::in_memory_fallback) limits count against (default
    /// [`FallbackScope::Route`]); other modes have no limits of their own to count.
    pub fn scope(mut self, scope: FallbackScope) -> Self {
        self.scope = scope;
        self
    }

    /// The longest a request waits for the storage (default
    /// [`ratekeeper_fallback::DEFAULT_TIMEOUT`]); past it, the storage counts as down.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How often a storage that went down is probed: after `initial`, then doubling, at most
    /// `max` apart (default 0.25 s doubling to 30 s).
    pub fn probe_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Some(Backoff::new(initial, max));
        self
    }

    /// Called when the storage goes down or comes back.
    pub fn on_transition(mut self, hook: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.on_transition = Some(Arc::new(hook));
        self
    }
}
