//! The bodies the layer puts around a service's: a request body that counts what the handler
//! reads (for a cost settled on the body's size), and a response body that is the service's or
//! the layer's own refusal. Pinned projections (`pin-project-lite`) let both wrap bodies that
//! are not `Unpin`.

use core::{
    convert::Infallible,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use pin_project_lite::pin_project;

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
        /// The service's own body.
        Served {
            #[pin]
            body: B,
        },
        /// The layer's answer, whole.
        Refused {
            body: Full<Bytes>,
        },
    }
}

impl<B> LimitedBody<B> {
    pub(crate) fn served(body: B) -> Self {
        Self::Served { body }
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
            Projected::Served { body } => body.poll_frame(cx),
            Projected::Refused { body } => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never: Infallible| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Served { body } => body.is_end_stream(),
            Self::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Served { body } => body.size_hint(),
            Self::Refused { body } => body.size_hint(),
        }
    }
}
