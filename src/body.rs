//! Reading a request body within `max_body`, `body_timeout` and the global
//! `max_buffered` budget.
//!
//! The declared `Content-Length` is checked first so an honest oversized
//! upload is refused before a byte of it is read; the stream is then capped
//! anyway, because `Content-Length` may be absent (chunked) or a lie.
//!
//! Every byte of buffer memory is first reserved from one process-wide budget
//! (a semaphore counting bytes), as the buffer grows with what has arrived.
//! When the budget is spent the request is refused at once, so many
//! concurrent maximum-size uploads cannot exhaust memory, and clients that
//! only *declare* large bodies neither get large buffers nor take the budget
//! from everyone else (DESIGN §4: memory is bounded by configuration).

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Body;
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Timeout,
    /// The client stopped sending or the body was malformed.
    Incomplete,
    /// The global `max_buffered` budget is spent.
    BudgetSpent,
}

/// The process-wide budget of buffered body bytes.
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: u64,
    /// Mirrors the bytes reserved, for `/metrics`.
    gauge: IntGauge,
}

/// Bytes reserved from the budget; given back when dropped.
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    gauge: IntGauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.gauge
            .sub(i64::try_from(self.bytes()).unwrap_or(i64::MAX));
    }
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Budget {
    /// `gauge` follows the bytes reserved (`hookgate_buffered_bytes`).
    pub fn new(total: u64, gauge: IntGauge) -> Self {
        // A semaphore holds at most `Semaphore::MAX_PERMITS` (2^61) permits:
        // far beyond any real memory size, so the clamp never bites.
        let permits = usize::try_from(total)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Budget {
            bytes: Arc::new(Semaphore::new(permits)),
            total,
            gauge,
        }
    }

    /// Bytes currently reserved by bodies being buffered or forwarded.
    pub fn in_use(&self) -> u64 {
        self.total
            .saturating_sub(u64::try_from(self.bytes.available_permits()).unwrap_or(u64::MAX))
    }

    fn reserve(&self, into: &mut Reservation, n: usize) -> Result<(), BodyError> {
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| BodyError::BudgetSpent)?;
        let permit = Arc::clone(&self.bytes)
            .try_acquire_many_owned(n)
            .map_err(|_| BodyError::BudgetSpent)?;
        match &mut into.permit {
            Some(p) => p.merge(permit),
            None => into.permit = Some(permit),
        }
        self.gauge.add(i64::from(n));
        Ok(())
    }
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

/// A body that arrives in several frames is copied into blocks of at most
/// this size (hyper reads about this much at once), each allocated once at its
/// final size, never reallocated and never joined: the first is the declared
/// length when smaller (most webhooks: one exact allocation), the rest are all
/// this size, one size class that the allocator reuses at once. Growing one
/// buffer by doubling instead left a freed buffer of every size behind, which
/// the allocator kept resident: peak RSS rose 3x past the budget
/// (BENCHMARKS.md).
const BLOCK: usize = 64 << 10;

/// Reads the whole body, at most `max` bytes, by `due`, reserving
/// from `budget` every byte of memory it holds, and returns it as the blocks
/// it was read into, in order: never joined, since joining would hold a
/// large body twice. The reservation must be held for as long as the returned
/// bytes live (until the forward is done).
///
/// What is counted is the blocks' *capacity*, not only the bytes received,
/// and a block is added only when the bytes that arrived need it (never past
/// the declared length or `max`), never on the strength of a declared
/// `Content-Length` alone: a client that declares 25 MiB and sends two bytes
/// holds one block of 64 KiB, counted, of which it touched one page.
pub async fn read<B>(
    body: B,
    declared: Option<u64>,
    max: u64,
    due: tokio::time::Instant,
    budget: &Budget,
) -> Result<(Vec<Bytes>, Reservation), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
{
    // An honest oversized upload is refused before a byte of it is read.
    if declared.is_some_and(|d| d > max) {
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    // Growth stops at the declared length: an honest client's buffer ends
    // exactly full. A lying one is cut off by hyper when the bytes disagree.
    let ceiling = declared
        .and_then(|d| usize::try_from(d).ok())
        .map_or(limit, |d| d.min(limit));
    let mut reserved = Reservation {
        permit: None,
        gauge: budget.gauge.clone(),
    };
    let read = async {
        let mut body = body;
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut len = 0usize;
        let mut capacity = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Incomplete)?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not part of the signed bytes
            };
            if data.is_empty() {
                continue;
            }
            let needed = len.saturating_add(data.len());
            if needed > limit {
                return Err(BodyError::TooLarge);
            }
            if blocks.is_empty() && body.is_end_stream() {
                // The whole body in one frame (most webhooks): kept as is, no
                // copy. It is a slice of hyper's read buffer, already complete,
                // so it pins nothing while waiting for more bytes.
                budget.reserve(&mut reserved, data.len())?;
                return Ok(vec![data]);
            }
            let mut rest: &[u8] = &data;
            while !rest.is_empty() {
                let block = match blocks.last_mut() {
                    Some(b) if b.len() < b.capacity() => b,
                    Some(_) | None => {
                        // Past the declared length only for a lying client,
                        // which hyper cuts off; chunked bodies stop at `max`.
                        let size = BLOCK.min(ceiling.max(needed) - capacity);
                        budget.reserve(&mut reserved, size)?;
                        capacity += size;
                        blocks.push(Vec::with_capacity(size));
                        continue;
                    }
                };
                let n = (block.capacity() - block.len()).min(rest.len());
                block.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            len = needed;
        }
        // `Bytes::from(Vec)` keeps each allocation: no copy, and the capacity
        // stays reserved with it.
        Ok(blocks.into_iter().map(Bytes::from).collect())
    };
    let bytes = tokio::time::timeout_at(due, read)
        .await
        .map_err(|_| BodyError::Timeout)??;
    Ok((bytes, reserved))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::Full;
    use std::time::Duration;

    /// A deadline this far from now.
    fn in_(d: Duration) -> tokio::time::Instant {
        tokio::time::Instant::now() + d
    }

    fn budget() -> Budget {
        Budget::new(1 << 20, IntGauge::new("b", "b").unwrap())
    }

    #[tokio::test]
    async fn body_within_limit_is_read_whole() {
        let (b, r) = read(
            Full::new(Bytes::from_static(b"hello")),
            None,
            5,
            in_(Duration::from_secs(1)),
            &budget(),
        )
        .await
        .unwrap();
        assert_eq!(b.concat(), b"hello");
        assert_eq!(r.bytes(), 5);
    }

    #[tokio::test]
    async fn body_over_limit_is_too_large() {
        let e = read(
            Full::new(Bytes::from_static(b"hello!")),
            None,
            5,
            in_(Duration::from_secs(1)),
            &budget(),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e, BodyError::TooLarge);
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_body_times_out() {
        let e = read(Stalled, None, 5, in_(Duration::from_secs(10)), &budget())
            .await
            .err()
            .unwrap();
        assert_eq!(e, BodyError::Timeout);
    }

    #[tokio::test]
    async fn bytes_are_reserved_as_they_arrive_not_as_declared_and_released_on_drop() {
        let gauge = IntGauge::new("b", "b").unwrap();
        let budget = Budget::new(10, gauge.clone());
        let (_, held) = read(
            Full::new(Bytes::from_static(b"12345678")),
            Some(8),
            10,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(budget.in_use(), 8);
        assert_eq!(gauge.get(), 8);
        // A client that declares 8 bytes and sends nothing holds nothing: it
        // times out rather than taking the budget from everyone else.
        let e = read(
            Stalled,
            Some(8),
            10,
            in_(Duration::from_millis(50)),
            &budget,
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e, BodyError::Timeout);
        assert_eq!(budget.in_use(), 8);
        // Bytes that do arrive beyond the budget are refused.
        let e = read(
            Full::new(Bytes::from_static(b"abcd")),
            Some(4),
            10,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e, BodyError::BudgetSpent);
        drop(held);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test]
    async fn undeclared_body_is_reserved_chunk_by_chunk() {
        let gauge = IntGauge::new("b", "b").unwrap();
        let budget = Budget::new(6, gauge.clone());
        let _held = read(
            Full::new(Bytes::from_static(b"1234")),
            None,
            10,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .unwrap();
        let e = read(
            Full::new(Bytes::from_static(b"1234")),
            None,
            10,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e, BodyError::BudgetSpent);
        assert_eq!(
            budget.in_use(),
            4,
            "a refused body gives its partial reservation back"
        );
        assert_eq!(gauge.get(), 4);
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

    /// A body that arrives in several frames.
    struct Chunks(Vec<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            let next = (!self.0.is_empty()).then(|| Ok(hyper::body::Frame::data(self.0.remove(0))));
            std::task::Poll::Ready(next)
        }
    }

    #[tokio::test]
    async fn a_declared_length_sizes_nothing_until_bytes_arrive() {
        // The attack from issue 11: declare 25 MiB, send two bytes. The buffer
        // (and what the budget counts) follows the bytes, not the declaration.
        let gauge = IntGauge::new("b", "b").unwrap();
        let budget = Budget::new(64 << 20, gauge.clone());
        let parts = vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let (b, held) = read(
            Chunks(parts),
            Some(25 << 20),
            25 << 20,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(b.concat(), b"ab");
        assert_eq!(held.bytes(), BLOCK);
        assert_eq!(gauge.get(), i64::try_from(BLOCK).unwrap());
    }

    #[tokio::test]
    async fn a_large_body_fills_whole_blocks_in_order_never_joined() {
        let gauge = IntGauge::new("b", "b").unwrap();
        let budget = Budget::new(1 << 20, gauge);
        let total = 2 * BLOCK + 10;
        let parts: Vec<Bytes> = (0..total)
            .step_by(1000)
            .map(|start| {
                let end = (start + 1000).min(total);
                Bytes::from((start..end).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
            })
            .collect();
        let declared = u64::try_from(total).unwrap();
        let (b, held) = read(
            Chunks(parts),
            Some(declared),
            1 << 20,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .unwrap();
        // Three blocks: two whole, the last exactly what the declaration left.
        assert_eq!(
            b.iter().map(Bytes::len).collect::<Vec<_>>(),
            [BLOCK, BLOCK, 10]
        );
        let joined = b.concat();
        assert!(joined
            .iter()
            .enumerate()
            .all(|(i, v)| *v == (i % 251) as u8));
        assert_eq!(held.bytes(), total);
    }

    #[tokio::test]
    async fn a_block_the_budget_cannot_cover_refuses_the_body() {
        let gauge = IntGauge::new("b", "b").unwrap();
        let budget = Budget::new(BLOCK as u64 + 10, gauge);
        let parts = vec![Bytes::from(vec![1u8; BLOCK]), Bytes::from(vec![2u8; 10])];
        let e = read(
            Chunks(parts),
            None,
            1 << 20,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e, BodyError::BudgetSpent);
        assert_eq!(budget.in_use(), 0, "the partial reservation is given back");
    }

    #[tokio::test]
    async fn chunks_are_joined_in_order_and_each_is_reserved() {
        let gauge = IntGauge::new("b", "b").unwrap();
        let budget = Budget::new(100, gauge.clone());
        let parts: Vec<Bytes> = ["ab", "", "cde", "f"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        let (b, held) = read(
            Chunks(parts),
            Some(6),
            10,
            in_(Duration::from_secs(1)),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(b, [Bytes::from_static(b"abcdef")]);
        assert_eq!(held.bytes(), 6);
        assert_eq!(gauge.get(), 6);
    }
}
