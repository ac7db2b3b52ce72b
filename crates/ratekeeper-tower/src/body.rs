//! The bodies the layer puts around a service's: a request body that counts what the handler
//! reads (for a cost settled on the body's size), and a response body that is the service's or
//! the layer's own refusal. Pinned projections (`pin-project-lite`) let both wrap bodies that
//! are not `Unpin`.

use core::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll, ready},
};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;
use ratekeeper_decision::adapter::Slots;

pin_project! {
    /// A request body that counts the bytes read from it.
    #[derive(Debug)]
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        read: Arc<AtomicU64>,
    }
}

impl<B> CountedBody<B> {
    pub(crate) fn new(inner: B, read: Arc<AtomicU64>) -> Self {
        Self { inner, read }
    }
}

impl<B: Body> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.read
                .fetch_add(data.remaining() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body: the service's, or the layer's refusal (a 429, 401, 403 or 503).
    // `pin_project!` takes no docs on an enum's fields; each variant's says what it holds.
    #[allow(missing_docs)]
    #[project = Projected]
    #[derive(Debug)]
    pub enum LimitedBody<B> {
        /// The service's own body, and the in-flight slots it keeps until it is sent.
        Served {
            #[pin]
            body: B,
            held: Option<Box<Holding>>,
        },
        /// The layer's answer, whole.
        Refused {
            body: Full<Bytes>,
        },
    }
}

impl<B> LimitedBody<B> {
    pub(crate) fn served(body: B, slots: Option<Slots>) -> Self {
        let held = slots.map(|slots| {
            Box::new(Holding {
                slots: Some(slots),
                releasing: None,
                stash: None,
            })
        });
        Self::Served { body, held }
    }

    pub(crate) fn refused(body: Bytes) -> Self {
        Self::Refused {
            body: Full::new(body),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for LimitedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            Projected::Served { body, held: None } => body.poll_frame(cx),
            Projected::Served {
                body,
                held: Some(held),
            } => held.poll_frame(body, cx),
            Projected::Refused { body } => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never: Infallible| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            // Not ended while slots are held: the end is where they go back.
            Self::Served {
                held: Some(held), ..
            } if held.slots.is_some() || held.releasing.is_some() => false,
            Self::Served { body, .. } => body.is_end_stream(),
            Self::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Served { body, .. } => body.size_hint(),
            Self::Refused { body } => body.size_hint(),
        }
    }
}

type Release = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The in-flight slots a served body keeps: given back before its last frame is handed on
/// (so that a client that has read the whole response finds its slot free), or when the body
/// is dropped unsent (the client gone).
pub struct Holding {
    slots: Option<Slots>,
    releasing: Option<Release>,
    /// The last frame, held back while the release runs (`None`: the body's end).
    stash: Option<Frame<Bytes>>,
}

impl fmt::Debug for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Holding")
            .field("slots", &self.slots)
            .field("releasing", &self.releasing.is_some())
            .finish_non_exhaustive()
    }
}

impl Holding {
    fn poll_frame<B: Body<Data = Bytes>>(
        &mut self,
        mut body: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(release) = &mut self.releasing {
            ready!(release.as_mut().poll(cx));
            self.releasing = None;
            return Poll::Ready(self.stash.take().map(Ok));
        }
        if self.slots.is_none() {
            return body.poll_frame(cx);
        }
        let polled = if body.is_end_stream() {
            None
        } else {
            ready!(body.as_mut().poll_frame(cx))
        };
        let last = match &polled {
            None => true,
            Some(Ok(_)) => body.is_end_stream(),
            Some(Err(_)) => {
                // The body failed: its slots go back as they drop.
                self.slots = None;
                false
            }
        };
        let (true, Some(slots)) = (last, self.slots.take()) else {
            return Poll::Ready(polled);
        };
        self.stash = polled.and_then(Result::ok);
        self.releasing = Some(Box::pin(slots.release_logged()));
        self.poll_frame(body, cx)
    }
}
