//! One deadline for every backend's calls.

use core::{
    future::{Future, poll_fn},
    pin::pin,
    task::Poll,
    time::Duration,
};

use crate::StorageError;

/// Runs `call` for at most `after`: its result, or [`StorageError::timeout`] naming `backend`
/// once the time is up (and `call` is dropped). The timer is `async-io`'s, which runs under
/// any executor.
///
/// ```
/// use core::time::Duration;
/// use ratekeeper_storage::{StorageError, within};
///
/// # smol::block_on(async {
/// let answered = within("test", Duration::from_secs(1), async { Ok::<_, StorageError>(7) });
/// assert_eq!(answered.await.unwrap(), 7);
/// let hung = within("test", Duration::from_millis(10), core::future::pending::<Result<(), _>>());
/// assert!(hung.await.unwrap_err().to_string().contains("within 10 ms"));
/// # });
/// ```
pub async fn within<T>(
    backend: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    let mut call = pin!(call);
    let mut timer = async_io::Timer::after(after);
    poll_fn(|cx| {
        if let Poll::Ready(result) = call.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        match core::pin::Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(StorageError::timeout(backend, after))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
