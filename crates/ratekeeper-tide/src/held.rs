//! A response body that holds the request's in-flight slots until it is sent: they go back
//! before its last bytes are handed on, so that a client that has read the whole response
//! finds its slot free. A body dropped unsent (the client gone) gives them back as it drops.

use core::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};
use std::sync::Mutex;

use futures::io::{AsyncBufRead, AsyncRead};
use ratekeeper_decision::adapter::Slots;

type Release = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The handler's body, and the slots it keeps.
pub(crate) struct Held {
    inner: tide::Body,
    /// Bytes not yet consumed, when the length is known.
    left: Option<u64>,
    slots: Option<Slots>,
    /// The release under way (behind a lock only to be `Sync`, as a body must be).
    releasing: Mutex<Option<Release>>,
    /// The body's last bytes, held back while the release runs, and how many are consumed.
    tail: Vec<u8>,
    served: usize,
}

impl Held {
    /// `res`'s body, keeping `slots` until it is sent.
    pub(crate) fn around(res: &mut tide::Response, slots: Slots) {
        let inner = res.take_body();
        let (len, mime) = (inner.len(), inner.mime().clone());
        let held = Self {
            inner,
            left: len.map(|l| l as u64),
            slots: Some(slots),
            releasing: Mutex::new(None),
            tail: Vec::new(),
            served: 0,
        };
        let mut body = tide::Body::from_reader(held, len);
        body.set_mime(mime);
        res.set_body(body);
    }

    /// Drives the release under way, if any, to its end.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let releasing = self
            .releasing
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(release) = releasing {
            ready!(release.as_mut().poll(cx));
            *releasing = None;
        }
        Poll::Ready(())
    }
}

impl AsyncBufRead for Held {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx));
        if this.served < this.tail.len() {
            return Poll::Ready(Ok(&this.tail[this.served..]));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?.len();
        let last = n == 0 || this.left.is_some_and(|left| n as u64 >= left);
        if let (true, Some(slots)) = (last, this.slots.take()) {
            // The last bytes wait for the slots to go back.
            if let Poll::Ready(Ok(buf)) = Pin::new(&mut this.inner).poll_fill_buf(cx) {
                this.tail = buf.to_vec();
            }
            Pin::new(&mut this.inner).consume(n);
            this.left = Some(0);
            *this
                .releasing
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Box::pin(slots.release_logged()));
            ready!(this.poll_release(cx));
            return Poll::Ready(Ok(&this.tail[this.served..]));
        }
        Pin::new(&mut this.inner).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        if this.served < this.tail.len() {
            this.served = (this.served + amt).min(this.tail.len());
            return;
        }
        if let Some(left) = &mut this.left {
            *left = left.saturating_sub(amt as u64);
        }
        Pin::new(&mut this.inner).consume(amt);
    }
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}
