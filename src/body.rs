//! Reading a request body within `max_body` and `body_timeout`.
//!
//! The declared `Content-Length` is checked first so an honest oversized
//! upload is refused before a byte of it is read; the stream is then capped
//! anyway, because `Content-Length` may be absent (chunked) or a lie.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Timeout,
    /// The client stopped sending or the body was malformed.
    Incomplete,
}

/// The declared length, if any and parseable.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Refuses a declared length over `max` before reading anything.
pub fn check_declared(headers: &HeaderMap, max: u64) -> Result<(), BodyError> {
    match declared_length(headers) {
        Some(n) if n > max => Err(BodyError::TooLarge),
        _ => Ok(()),
    }
}

/// Reads the whole body, at most `max` bytes, within `timeout`.
pub async fn read<B>(body: B, max: u64, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| BodyError::Timeout)?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Incomplete),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn body_within_limit_is_read_whole() {
        let b = read(
            Full::new(Bytes::from_static(b"hello")),
            5,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(&b[..], b"hello");
    }

    #[tokio::test]
    async fn body_over_limit_is_too_large() {
        let e = read(
            Full::new(Bytes::from_static(b"hello!")),
            5,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(e, BodyError::TooLarge);
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_body_times_out() {
        let e = read(Stalled, 5, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(e, BodyError::Timeout);
    }

    /// A body whose client never sends another byte.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Pending
        }
    }
}
