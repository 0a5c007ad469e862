//! The application's response body, due whole within `upstream.timeout` of
//! its headers, with the timer armed only if the body is not already there.
//!
//! Why not `tower_http::timeout::DeadlineBody`, which this replaces: it
//! registers its timer on the first poll even when the body (a small answer,
//! read along with the headers) is ready at once, and a timer's register and
//! cancel were ~1.1k instructions of each forwarded request
//! (`benches/load/icount.sh`, BENCHMARKS.md). The deadline is the same: fixed
//! when the body is made (counted from the caller's reading of when the
//! headers arrived), never reset by progress; once armed, it is checked
//! before every poll, as `DeadlineBody` does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::ResponseBody;

/// The application's response body, bounded by its deadline.
pub type UpstreamBody = Deadline<ResponseBody>;

/// Why an application's response body was cut short by hookgate.
#[derive(Debug, thiserror::Error)]
#[error("the application's response body was not complete within upstream.timeout")]
pub struct BodyTimeout;

/// A body due whole `timeout` after `made`, fixed when it is made.
pub struct Deadline<B> {
    body: B,
    /// When the headers arrived, as the caller read the clock.
    made: Instant,
    timeout: Duration,
    /// Made the first time the body is not ready; boxed because that is rare.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    /// Due whole `timeout` after `from` (the caller's clock reading: one per request is enough).
    pub(super) fn new(timeout: Duration, body: B, from: Instant) -> Self {
        Deadline {
            body,
            made: from,
            timeout,
            timer: None,
        }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(timer) = &mut this.timer {
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
            }
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if this.timer.is_some() {
                    // Polled above, and its waker is registered.
                    return Poll::Pending;
                }
                // `sleep` takes a timeout too large for an `Instant` as never.
                let left = this.timeout.saturating_sub(this.made.elapsed());
                let mut timer = Box::pin(tokio::time::sleep(left));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
                }
                this.timer = Some(timer);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_is_there_is_read_without_a_timer() {
        let mut body = Deadline::new(
            Duration::from_secs(5),
            Full::new(Bytes::from_static(b"ok")),
            Instant::now(),
        );
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ok");
        assert!(body.frame().await.is_none());
        assert!(body.timer.is_none(), "no timer was armed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_ends_in_an_error_at_its_deadline_not_later() {
        let stalling = Scripted::stalling(Bytes::from_static(b"part"));
        let mut body = Deadline::new(Duration::from_secs(5), stalling, Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "part"
        );
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimeout>(), "{err}");
        // The deadline counts from the reading it was given: 5 s, 2 of them gone.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn once_armed_the_deadline_holds_even_for_a_body_that_is_ready() {
        let mut body = Deadline::new(Duration::from_secs(5), Scripted::hesitant(), Instant::now());
        // Not ready the first time: the timer is armed.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "more"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        // Ready now, but past the deadline.
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimeout>(), "{err}");
    }

    /// Answers its polls from a script, `None` for "not ready" and `Some` for a
    /// frame; once the script is played, `then` on every poll (a frame for
    /// ever, or never ready again).
    struct Scripted {
        script: std::collections::VecDeque<Option<Bytes>>,
        then: Option<Bytes>,
    }

    impl Scripted {
        /// Not ready the first time it is polled, then a frame every time.
        fn hesitant() -> Self {
            Scripted {
                script: [None].into(),
                then: Some(Bytes::from_static(b"more")),
            }
        }

        /// One frame, then nothing for ever.
        fn stalling(first: Bytes) -> Self {
            Scripted {
                script: [Some(first)].into(),
                then: None,
            }
        }
    }

    impl Body for Scripted {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let step = match self.script.pop_front() {
                Some(step) => step,
                None => self.then.clone(),
            };
            match step {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Pending,
            }
        }
    }
}
