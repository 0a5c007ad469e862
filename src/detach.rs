//! Finishing what was started: a future that, dropped before it completes,
//! is handed to a task of its own and runs to the end there.
//!
//! A forward runs inside the request's own task (no spawn, no cross-task
//! wake-up per request). If the provider hangs up, hyper drops that task's
//! future midway; the forward must still finish, so that the application's
//! answer settles the replay claim (delivered or released) instead of leaving
//! the id claimed until its lease runs out. Only then, on that rare path, does
//! the rest of the work get its own task.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A boxed future that cannot be cancelled by dropping it.
pub struct Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    inner: Option<Pin<Box<F>>>,
}

impl<F> Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub fn new(future: F) -> Self {
        Detach {
            inner: Some(Box::pin(future)),
        }
    }
}

impl<F> Future for Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(inner) = self.inner.as_mut() else {
            // Polled after completion: never done by `.await`; stay pending
            // rather than panic on the request path.
            return Poll::Pending;
        };
        let out = std::task::ready!(inner.as_mut().poll(cx));
        self.inner = None;
        Poll::Ready(out)
    }
}

impl<F> Drop for Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some(rest) = self.inner.take() else {
            return;
        };
        // Without a runtime (the process is ending), dropping the rest is all
        // that is left: an unsettled replay ticket releases its claim on drop.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                rest.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn completes_in_place_when_awaited() {
        assert_eq!(Detach::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn dropped_unfinished_it_still_runs_to_the_end() {
        let done = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let flag = Arc::clone(&done);
        let work = Detach::new(async move {
            let _ = started_tx.send(());
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });
        // The caller gives up after the work has started, as a provider hanging
        // up does: the select drops `work` midway.
        tokio::select! {
            _ = work => unreachable!("the work sleeps longer than the caller waits"),
            _ = async { started_rx.await.unwrap(); tokio::time::sleep(Duration::from_millis(5)).await } => {}
        }
        assert!(!done.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            done.load(Ordering::SeqCst),
            "the detached rest did not finish"
        );
    }
}
