//! The JSON shape of a log line, written straight into tracing-subscriber's
//! line buffer: `{"timestamp":…,"level":…,"message":…,<fields>…,"target":…}`,
//! the same keys, order and value types as tracing-subscriber's own JSON
//! format with `flatten_event(true)` (hookgate opens no spans).
//!
//! Why hand-written: every request writes one line at `info`, and the generic
//! JSON formatter goes through serde's map serializer for each event. This one
//! writes each field as it is visited, with no intermediate value
//! (BENCHMARKS.md: CPU per request, measured against the generic formatter).

use std::fmt::{self, Write};

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
        let meta = event.metadata();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        write!(
            writer,
            r#"{{"timestamp":"{now}","level":"{}""#,
            meta.level()
        )?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(r#","target":"#)?;
        string(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each visited field as `,"name":value`.
struct Fields<'w, 'b> {
    out: &'w mut Writer<'b>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_str(",\"")?;
            Escaped(self.out).write_str(field.name())?;
            self.out.write_str("\":")?;
            value(self.out)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, |w| {
            if value.is_finite() {
                write!(w, "{value}")
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| write!(w, "{value}"));
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

fn display(w: &mut Writer<'_>, value: &dyn fmt::Display) -> fmt::Result {
    w.write_char('"')?;
    write!(Escaped(w), "{value}")?;
    w.write_char('"')
}

/// A JSON string literal.
fn string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string (RFC 8259 §7).
struct Escaped<'w, 'b>(&'w mut Writer<'b>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Every character to escape is ASCII, and in UTF-8 an ASCII byte is
        // always a whole character (the bytes of longer ones are all >= 0x80):
        // a scan of bytes finds each one without decoding the others, and
        // every slice below falls on character boundaries.
        let bytes = s.as_bytes();
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
    fn escapes_next_to_multibyte_characters_keep_them_whole() {
        // Escapes right before and after 2-, 3- and 4-byte characters, a
        // control character that has no short form, and DEL (not escaped).
        let nasty = "é\"ü\u{1}€\\\n😀\u{1f}\u{7f}ß";
        let got = lines(|| tracing::info!(field = nasty, "m"));
        assert_eq!(got[0]["field"], nasty);
    }
}
