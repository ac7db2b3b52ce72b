//! The in-flight slots a served request holds, and how they go back: when the response is
//! finished, when they are dropped, or, for a holder that never returns them, when their lease
//! ends.

use core::{
    fmt,
    future::{Future, poll_fn},
    panic::AssertUnwindSafe,
    pin::pin,
    task::Poll,
};
use std::{
    panic::catch_unwind,
    sync::{Arc, Mutex, OnceLock, PoisonError, mpsc},
};

use ratekeeper_core::Duration;
use ratekeeper_storage::{Charge, Op, Storage, StorageError};

use crate::metrics;

/// The in-flight slots one served request holds
/// ([`RoutePolicy::concurrent`](crate::RoutePolicy::concurrent)): taken by its decision, with
/// its rate limits, and given back by [`Slots::release`] or when dropped.
///
/// An adapter keeps them until the response is finished (its body sent or the client gone):
/// [`Decision::take_slots`](crate::Decision::take_slots), then drop them at the end of the
/// body. Dropped without [`Slots::release`], they go back at once to a store in this process
/// and on a thread of their own to a networked one. A long request keeps its slots with
/// [`Slots::keep_alive`], run beside the handler; a holder that dies loses them when the lease
/// ends.
pub struct Slots {
    storage: Arc<dyn Storage>,
    /// The charges that took the slots, each naming the instant of its last take or renewal.
    held: Mutex<Vec<Charge>>,
    lease: Duration,
    gauge: metrics::InFlightGauge,
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("held", &self.len())
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Slots {
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        held: Vec<Charge>,
        gauge: metrics::InFlightGauge,
    ) -> Self {
        let lease = held
            .iter()
            .map(|c| c.limit.window())
            .min()
            .unwrap_or(Duration::ZERO);
        gauge.taken();
        Self {
            storage,
            held: Mutex::new(held),
            lease,
            gauge,
        }
    }

    /// How many slots are held (one per in-flight limit the request counts against).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no slot is held (they were released, or a renewal lost them).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lease: how long a slot is kept without a renewal.
    pub fn lease(&self) -> core::time::Duration {
        self.lease.into()
    }

    /// Gives the slots back now, in one call to the store.
    pub async fn release(self) -> Result<(), StorageError> {
        let held = self.take();
        if held.is_empty() {
            return Ok(());
        }
        self.gauge.released();
        self.storage.refund(&held).await.map(drop)
    }

    /// [`Slots::release`], logging a failure (the slots then hold until their lease ends):
    /// what an adapter awaits at the end of a response.
    pub async fn release_logged(self) {
        if let Err(e) = self.release().await {
            tracing::error!(target: "ratekeeper", error = %e, "could not release in-flight slots: they hold until their lease ends");
        }
    }

    /// Renews the lease of every slot, in one call: each slot is kept until a lease from now.
    /// `Ok(false)` when they were lost (a lease that had already ended, its slot taken since):
    /// nothing is held any more.
    pub async fn renew(&self) -> Result<bool, StorageError> {
        let charges = self.lock().clone();
        if charges.is_empty() {
            return Ok(false);
        }
        let verdict = self.storage.apply(Op::Hit, &charges).await?;
        let mut held = self.lock();
        if verdict.allowed {
            for c in held.iter_mut() {
                c.charged_at = Some(verdict.at);
            }
        } else {
            held.clear();
            self.gauge.released();
        }
        Ok(verdict.allowed)
    }

    /// Renews the lease every half lease, for as long as it runs: run it beside a handler
    /// (whichever ends first) so that a request longer than the lease keeps its slots. It
    /// ends when the slots are lost or released.
    pub async fn keep_alive(&self) {
        let every = core::time::Duration::from(self.lease) / 2;
        loop {
            async_io::Timer::after(every).await;
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(target: "ratekeeper", "in-flight slots lost: their lease had ended");
                    return;
                }
                Err(e) => {
                    tracing::warn!(target: "ratekeeper", error = %e, "could not renew in-flight slots");
                }
            }
        }
    }

    /// Runs `work` (a handler) with [`Slots::keep_alive`] beside it, and answers its output:
    /// the slots are kept for as long as the work runs, however long that is.
    pub async fn while_running<F: Future>(&self, work: F) -> F::Output {
        let (mut work, mut renewal) = (pin!(work), pin!(self.keep_alive()));
        let mut renewing = true;
        poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            // Once the slots are lost, the work runs on without them.
            if renewing && renewal.as_mut().poll(cx).is_ready() {
                renewing = false;
            }
            Poll::Pending
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Charge>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Vec<Charge> {
        core::mem::take(&mut *self.lock())
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let held = self.take();
        if held.is_empty() {
            return;
        }
        self.gauge.released();
        match self.storage.apply_now(Op::Refund, &held) {
            Some(Err(e)) => {
                tracing::error!(target: "ratekeeper", error = %e, "could not release in-flight slots: they hold until their lease ends");
            }
            Some(Ok(_)) => {}
            None => release_detached(Arc::clone(&self.storage), held),
        }
    }
}

/// A release for the thread that returns dropped slots to a networked store.
type Job = (Arc<dyn Storage>, Vec<Charge>);

/// Hands `held` to the releasing thread (started on first use): a dropped value cannot wait
/// for the store, and no runtime is known to spawn on.
fn release_detached(storage: Arc<dyn Storage>, held: Vec<Charge>) {
    static QUEUE: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("ratekeeper-release".into())
            .spawn(move || {
                for (storage, held) in rx {
                    release_blocking(&*storage, &held);
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let sent = queue.as_ref().is_some_and(|tx| {
        tx.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send((storage, held))
            .is_ok()
    });
    if !sent {
        tracing::error!(target: "ratekeeper", "cannot release in-flight slots (no release thread): they hold until their lease ends");
    }
}

/// One release, on the releasing thread: a failure (or a store that panics) is logged, and
/// the slots then hold until their lease ends.
fn release_blocking(storage: &dyn Storage, held: &[Charge]) {
    let released = catch_unwind(AssertUnwindSafe(|| {
        async_io::block_on(storage.refund(held))
    }));
    match released {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(target: "ratekeeper", error = %e, "could not release in-flight slots: they hold until their lease ends");
        }
        Err(_) => {
            tracing::error!(target: "ratekeeper", "the store panicked releasing in-flight slots: they hold until their lease ends");
        }
    }
}
