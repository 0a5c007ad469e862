//! The JSON shape of a log line, made in a per-thread `String` and handed to
//! tracing-subscriber's line buffer in one write:
//! `{"timestamp":…,"level":…,"message":…,<fields>…,"target":…}`,
//! the same keys, order and value types as tracing-subscriber's own JSON
//! format with `flatten_event(true)` (hookgate opens no spans).
//!
//! Why hand-written: every request writes one line at `info`, and the generic
//! JSON formatter goes through serde's map serializer for each event. This one
//! writes each field as it is visited, with no intermediate value
//! (BENCHMARKS.md: CPU per request, measured against the generic formatter).
//! Numbers go through `itoa` and `ryu`, and the timestamp's text up to the
//! second is made once a second per thread: `core::fmt` for those, and a
//! `dyn Write` call per piece, were over half of the line's cost
//! (BENCHMARKS.md: instructions per request).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The `FormatEvent` given to the subscriber for `--log-format json`.
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        thread_local! {
            /// The line being made, its allocation kept from line to line.
            static LINE: Cell<String> = const { Cell::new(String::new()) };
        }
        // Taken, not borrowed: a value's Debug that logs in turn (a line
        // inside a line) finds an empty one instead of a panic.
        let mut line = LINE.take();
        line.clear();
        let made = json_line(&mut line, event);
        // One write through the subscriber's `Writer` (a `dyn Write`), not
        // one per piece.
        let written = made.and_then(|()| writer.write_str(&line));
        LINE.set(line);
        written
    }
}

/// `{"timestamp":…,"level":…,<fields>…,"target":…}` and a newline.
fn json_line(line: &mut String, event: &Event<'_>) -> fmt::Result {
    let meta = event.metadata();
    line.push_str(r#"{"timestamp":""#);
    timestamp(line, SystemTime::now())?;
    line.push_str(r#"","level":""#);
    line.push_str(meta.level().as_str());
    line.push('"');
    let mut fields = Fields {
        out: line,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    line.push_str(r#","target":"#);
    string(line, meta.target())?;
    line.push_str("}\n");
    Ok(())
}

/// Writes each visited field as `,"name":value`.
struct Fields<'w> {
    out: &'w mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.out.push_str(",\"");
        self.result = Escaped(self.out).write_str(field.name()).and_then(|()| {
            self.out.push_str("\":");
            value(self.out)
        });
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |w| {
            if value.is_finite() {
                w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |w| string(w, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |w| display(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

fn display(w: &mut String, value: &dyn fmt::Display) -> fmt::Result {
    w.write_char('"')?;
    write!(Escaped(w), "{value}")?;
    w.write_char('"')
}

/// `now` in RFC 3339 with microseconds, `2026-12-02T06:45:12.123456Z`, as
/// `humantime::format_rfc3339_micros` writes it; the text up to the second is
/// humantime's, made once a second on each thread.
fn timestamp(w: &mut impl Write, now: SystemTime) -> fmt::Result {
    thread_local! {
        /// The second last written on this thread, and its text without the `Z`.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    // A clock set before 1970 is written as 1970 (humantime panics on it).
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let now = UNIX_EPOCH + since;
    let mut digits = itoa::Buffer::new();
    let micros = digits.format(since.subsec_micros());
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != since.as_secs() {
            text.clear();
            write!(text, "{}", humantime::format_rfc3339_seconds(now))?;
            text.pop();
            *second = since.as_secs();
        }
        w.write_str(text)?;
        w.write_char('.')?;
        // Six digits, zero-padded.
        w.write_str(&"000000"[micros.len().min(6)..])?;
        w.write_str(micros)?;
        w.write_char('Z')
    })
}

/// A JSON string literal.
fn string(w: &mut String, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string (RFC 8259 §7).
struct Escaped<'w>(&'w mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Every character to escape is ASCII, and in UTF-8 an ASCII byte is
        // always a whole character (the bytes of longer ones are all >= 0x80):
        // a scan of bytes finds each one without decoding the others, and
        // every slice below falls on character boundaries.
        let bytes = s.as_bytes();
        // Nearly every string has nothing to escape: a check with no early
        // exit, which the compiler vectorises, lets it through in one write.
        let plain = bytes.iter().fold(true, |plain, &b| {
            plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
        });
        if plain {
            return self.0.write_str(s);
        }
        let mut start = 0;
        while let Some(offset) = bytes[start..]
            .iter()
            .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        {
            let at = start + offset;
            self.0.write_str(&s[start..at])?;
            match bytes[at] {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                control => write!(self.0, "\\u{control:04x}")?,
            }
            start = at + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLine)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_request_line_has_the_generic_formatters_keys_and_types() {
        let got = lines(|| {
            tracing::info!(
                route = "svix",
                outcome = "rejected",
                reason = Some("invalid_signature"),
                status = 401u16,
                duration_ms = 0.5,
                message_id = None::<&str>,
                "request"
            );
        });
        let line = &got[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["route"], "svix");
        assert_eq!(line["reason"], "invalid_signature");
        assert_eq!(line["status"], 401);
        assert_eq!(line["duration_ms"], 0.5);
        assert!(line.get("message_id").is_none(), "a None field is left out");
        assert_eq!(line["target"], module_path!());
        let ts = line["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
    }

    #[test]
    fn strings_and_debug_values_are_escaped_into_valid_json() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        let got = lines(|| {
            tracing::warn!(field = nasty, dbg = ?nasty, shown = %nasty, "m\"sg");
        });
        let line = &got[0];
        assert_eq!(line["field"], nasty);
        assert_eq!(line["shown"], nasty);
        assert_eq!(line["dbg"], format!("{nasty:?}"));
        assert_eq!(line["message"], "m\"sg");
        assert_eq!(line["level"], "WARN");
    }

    #[test]
    fn the_timestamp_is_humantimes_to_the_microsecond_across_seconds() {
        let base = UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        // Leading zeros in the micros, the last microsecond of a second then
        // the next second (the cached text must move on), and back again.
        let offsets_us = [
            0,
            7,
            4_200,
            999_999,
            1_000_000,
            1_000_001,
            999_998,
            86_400_000_123,
        ];
        for at in offsets_us
            .iter()
            .map(|us| base + std::time::Duration::from_micros(*us))
        {
            let mut ours = String::new();
            timestamp(&mut ours, at).unwrap();
            assert_eq!(ours, humantime::format_rfc3339_micros(at).to_string());
        }
        // A clock before 1970 (humantime panics on it) writes 1970.
        let mut ours = String::new();
        timestamp(&mut ours, UNIX_EPOCH - std::time::Duration::from_secs(2)).unwrap();
        assert_eq!(ours, "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn numbers_are_written_as_json_numbers() {
        let got = lines(|| {
            tracing::info!(
                small = 0.000_123_f64,
                whole = 2.0_f64,
                nan = f64::NAN,
                neg = -42i64,
                big = u64::MAX,
                yes = true,
                "m"
            );
        });
        let line = &got[0];
        assert_eq!(line["small"], 0.000_123);
        assert_eq!(line["whole"], 2.0);
        assert!(line["nan"].is_null());
        assert_eq!(line["neg"], -42);
        assert_eq!(line["big"], u64::MAX);
        assert_eq!(line["yes"], true);
    }

    #[test]
    fn a_value_that_logs_while_it_is_written_leaves_both_lines_whole() {
        struct Loud;
        impl fmt::Debug for Loud {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                tracing::info!(inner = 1, "nested");
                f.write_str("loud")
            }
        }
        let got = lines(|| tracing::info!(v = ?Loud, after = "x", "outer"));
        let outer = got.iter().find(|l| l["message"] == "outer").unwrap();
        assert_eq!(outer["v"], "loud");
        assert_eq!(outer["after"], "x");
        if let Some(nested) = got.iter().find(|l| l["message"] == "nested") {
            assert_eq!(nested["inner"], 1);
        }
    }

    #[test]
    fn escapes_next_to_multibyte_characters_keep_them_whole() {
        // Escapes right before and after 2-, 3- and 4-byte characters, a
        // control character that has no short form, and DEL (not escaped).
        let nasty = "é\"ü\u{1}€\\\n😀\u{1f}\u{7f}ß";
        let got = lines(|| tracing::info!(field = nasty, "m"));
        assert_eq!(got[0]["field"], nasty);
    }
}
