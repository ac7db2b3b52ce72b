//! The bodies the layer puts around a service's: a request body that counts what the handler
//! reads (for a cost settled on the body's size), and a response body that is the service's or
//! the layer's own refusal.

use core::{
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
};
use std::sync::Arc;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A request body that counts the bytes read from it.
#[derive(Debug)]
pub struct CountedBody<B> {
    inner: B,
    read: Arc<AtomicU64>,
}

impl<B> CountedBody<B> {
    pub(crate) fn new(inner: B, read: Arc<AtomicU64>) -> Self {
        Self { inner, read }
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            use bytes::Buf;
            self.read
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

/// A response body: the service's, or the layer's refusal (a 429, 401, 403 or 503).
#[derive(Debug)]
pub enum LimitedBody<B> {
    /// The service's own.
    Served(B),
    /// The layer's answer, whole.
    Refused(Option<Bytes>),
}

impl<B: Body<Data = Bytes> + Unpin> Body for LimitedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::Served(b) => Pin::new(b).poll_frame(cx),
            Self::Refused(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Served(b) => b.is_end_stream(),
            Self::Refused(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Served(b) => b.size_hint(),
            Self::Refused(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
