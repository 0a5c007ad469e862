//! Where log lines go: stderr, in batches when it is not a terminal.
//!
//! Under load, one `write(2)` per request log line cost about a tenth of a
//! request (BENCHMARKS.md). Lines are appended to one shared buffer and written
//! when it holds `BATCH` bytes, every `FLUSH_EVERY` by a flusher thread, at once
//! for warnings and errors, and on exit: nginx's `access_log buffer= flush=`.
//! The buffer is bounded (`BATCH` plus one line); order is preserved because a
//! batch is written while the buffer's lock is held. On a terminal, or if the
//! flusher thread cannot start, every line is written as it comes.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Written once this much is buffered.
const BATCH: usize = 32 * 1024;
/// The longest a line waits in a quiet process.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static FLUSHER: Once = Once::new();
static FLUSHER_RUNNING: AtomicBool = AtomicBool::new(false);

/// The `MakeWriter` given to the tracing subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Sink {
    buffered: bool,
}

impl Sink {
    /// `buffered: false` writes every line at once (for a terminal).
    pub fn new(buffered: bool) -> Sink {
        if buffered {
            FLUSHER.call_once(|| {
                let started = std::thread::Builder::new()
                    .name("hookgate-log".into())
                    .spawn(|| loop {
                        std::thread::sleep(FLUSH_EVERY);
                        flush();
                    });
                FLUSHER_RUNNING.store(started.is_ok(), Ordering::Release);
            });
        }
        Sink {
            buffered: buffered && FLUSHER_RUNNING.load(Ordering::Acquire),
        }
    }
}

/// Writes out whatever is buffered; call before the process exits.
pub fn flush() {
    write_out(&mut lock());
}

fn lock() -> MutexGuard<'static, Vec<u8>> {
    // The buffer is plain bytes: a panic while it was held leaves nothing inconsistent.
    BUFFER.lock().unwrap_or_else(PoisonError::into_inner)
}

fn write_out(buf: &mut Vec<u8>) {
    write_to(buf, &mut io::stderr().lock());
}

fn write_to(buf: &mut Vec<u8>, out: &mut impl Write) {
    if buf.is_empty() {
        return;
    }
    // Logging never fails a request: if stderr is gone, the batch is dropped.
    let _ = out.write_all(buf);
    buf.clear();
}

/// Appends one line; says whether the batch is due (`immediate`, or full).
fn append(buf: &mut Vec<u8>, bytes: &[u8], immediate: bool) -> bool {
    buf.extend_from_slice(bytes);
    immediate || buf.len() >= BATCH
}

/// Appends one line; writes the batch out when it is due (the tests' writer).
#[cfg(test)]
fn push(buf: &mut Vec<u8>, bytes: &[u8], immediate: bool, out: &mut impl Write) {
    if append(buf, bytes, immediate) {
        write_to(buf, out);
    }
}

/// One event's writer: appends the formatted line to the shared buffer.
pub struct LineWriter {
    immediate: bool,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buf = lock();
        // stderr's own lock is taken only for a batch that is due.
        if append(&mut buf, bytes, self.immediate) {
            write_out(&mut buf);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        flush();
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            immediate: !self.buffered,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        // Warnings and errors are written at once: someone may be watching for them.
        LineWriter {
            immediate: !self.buffered || *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_held_until_a_batch_fills_then_written_whole_and_in_order() {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        let lines: Vec<String> = (0..5000).map(|i| format!("line {i}\n")).collect();
        let mut first_write_at = None;
        for (i, line) in lines.iter().enumerate() {
            push(&mut buf, line.as_bytes(), false, &mut out);
            if first_write_at.is_none() && !out.is_empty() {
                first_write_at = Some(i);
            }
            assert!(buf.len() < BATCH + line.len(), "the buffer stays bounded");
        }
        let first = first_write_at.expect("5000 lines fill a batch");
        assert!(first > 100, "lines were batched, not written one by one");
        write_to(&mut buf, &mut out);
        assert_eq!(out, lines.concat().into_bytes());
    }

    #[test]
    fn an_immediate_line_writes_everything_buffered_before_it() {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        push(&mut buf, b"info\n", false, &mut out);
        assert!(out.is_empty());
        push(&mut buf, b"warn\n", true, &mut out);
        assert_eq!(out, b"info\nwarn\n");
        assert!(buf.is_empty());
    }
}
