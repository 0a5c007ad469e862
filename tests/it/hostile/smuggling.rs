//! The smuggling and ambiguity suite: framing conflicts, header-syntax oddities,
//! pipelining, absolute-form targets and HTTP/2 frame abuse. Where hyper decides
//! the status only "refused (4xx, 501 or closed)" is asserted; after every case
//! the recording upstream is checked: nothing unverified reached the app, and
//! what did is byte-identical to what was signed.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::frames::{self, Conn, Outcome};
use super::raw::*;
use crate::support::Gateway;

/// One gateway, one recording app, and every delivery signed so far (each may
/// reach the app only exactly as signed).
struct Suite {
    up: RawUpstream,
    gw: Gateway,
    signed: Vec<Signed>,
}

impl Suite {
    async fn new() -> Suite {
        let up = RawUpstream::start().await;
        let gw = gateway(&up, "").await;
        Suite {
            up,
            gw,
            signed: Vec::new(),
        }
    }

    fn check(&self, case: &str) {
        self.up
            .assert_only(&self.signed.iter().collect::<Vec<_>>(), case);
    }

    /// Sends `bytes` on a fresh connection: either refused and nothing
    /// forwarded, or answered 2xx and `s` forwarded exactly once, as signed.
    async fn case(&mut self, case: &str, s: Signed, bytes: &[u8]) -> Exchange {
        let before = self.up.count();
        let ex = exchange(self.gw.addr, bytes, 1).await;
        settle().await;
        match ex.status() {
            Some(200..=299) => self.up.assert_forwarded_once(&s, case),
            _ => {
                assert!(
                    ex.refused(),
                    "[{case}] expected 4xx, 501 or a closed connection: {}",
                    ex.describe()
                );
                assert_eq!(self.up.count(), before, "[{case}] refused, yet forwarded");
            }
        }
        self.signed.push(s);
        self.check(case);
        ex
    }

    /// As `case`, and it must be refused.
    async fn refused(&mut self, case: &str, s: Signed, bytes: &[u8]) {
        let ex = self.case(case, s, bytes).await;
        assert!(ex.refused(), "[{case}] must be refused: {}", ex.describe());
    }

    async fn done(&self, case: &str) {
        still_serving(&self.gw, &self.up, case).await;
    }
}

/// Host and signed header lines.
fn head(s: &Signed) -> Vec<String> {
    let mut lines = vec!["host: hookgate.test".to_string()];
    lines.extend(s.lines());
    lines
}

fn cl(n: usize) -> String {
    format!("content-length: {n}")
}

const FORGED_TAIL: &[u8] =
    b"POST /webhooks/levanta HTTP/1.1\r\nhost: x\r\nx-levanta-hmac-sha256: 00\r\ncontent-length: 2\r\n\r\n{}";

// ---- framing: Content-Length and Transfer-Encoding ------------------------------------

#[tokio::test]
async fn content_length_with_transfer_encoding_forwards_only_what_was_signed() {
    let mut t = Suite::new().await;

    // Signed over the decoded body, CL counting the chunked bytes.
    let b = body("cl+te decoded");
    let s = Signed::levanta(&b);
    let wire = chunked(&b, 7);
    let mut lines = head(&s);
    lines.push(cl(wire.len()));
    lines.push("transfer-encoding: chunked".into());
    t.case(
        "CL+TE, signed decoded",
        s,
        &h1("/webhooks/levanta", &lines, &wire),
    )
    .await;

    // Signed over the chunked bytes as a CL-only parser would read them.
    let b = body("cl+te wire");
    let wire = chunked(&b, 7);
    let s = Signed::levanta(&wire);
    let mut lines = head(&s);
    lines.push("transfer-encoding: chunked".into());
    lines.push(cl(wire.len()));
    t.case(
        "TE+CL, signed wire",
        s,
        &h1("/webhooks/levanta", &lines, &wire),
    )
    .await;

    // CL says 4: the rest would be a second (forged) request to a CL parser.
    let b = body("cl+te smuggle");
    let s = Signed::levanta(&b);
    let mut wire = chunked(&b, 64);
    wire.extend_from_slice(FORGED_TAIL);
    let mut lines = head(&s);
    lines.push(cl(4));
    lines.push("transfer-encoding: chunked".into());
    t.case(
        "CL 4 + TE smuggling a forged tail",
        s,
        &h1("/webhooks/levanta", &lines, &wire),
    )
    .await;

    t.done("CL+TE").await;
}

#[tokio::test]
async fn duplicate_content_length_never_reaches_the_app_ambiguous() {
    let mut t = Suite::new().await;
    let b = body("cl equal");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push(cl(b.len()));
    lines.push(cl(b.len()));
    t.case(
        "two equal CL lines",
        s,
        &h1("/webhooks/levanta", &lines, &b),
    )
    .await;

    let b = body("cl list");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push(format!("content-length: {0}, {0}", b.len()));
    t.case("CL list n, n", s, &h1("/webhooks/levanta", &lines, &b))
        .await;

    let b = body("cl different");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push(cl(b.len()));
    lines.push(cl(b.len() + 2));
    let mut wire = b.clone();
    wire.extend_from_slice(b"{}");
    t.refused(
        "two different CL lines",
        s,
        &h1("/webhooks/levanta", &lines, &wire),
    )
    .await;

    let b = body("cl plus");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push(format!("content-length: +{}", b.len()));
    t.refused("CL +n", s, &h1("/webhooks/levanta", &lines, &b))
        .await;

    let b = body("cl hex");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push(format!("content-length: 0x{:x}", b.len()));
    t.refused("CL 0x..", s, &h1("/webhooks/levanta", &lines, &b))
        .await;

    t.done("duplicate CL").await;
}

#[tokio::test]
async fn transfer_encoding_variants_forward_only_what_was_signed() {
    let mut t = Suite::new().await;
    for te in [
        "chunked, chunked",
        " chunked",
        "\tchunked",
        "Chunked",
        "CHUNKED",
        "xchunked",
        "chunked, identity",
        "identity",
        "chunked;q=1",
    ] {
        let b = body("te variant");
        let s = Signed::levanta(&b);
        let mut lines = head(&s);
        lines.push(format!("transfer-encoding:{te}"));
        let case = format!("Transfer-Encoding:{te:?}");
        t.case(&case, s, &h1("/webhooks/levanta", &lines, &chunked(&b, 9)))
            .await;
    }

    // Two lines that together say "gzip, chunked".
    let b = body("te two lines");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push("transfer-encoding: gzip".into());
    lines.push("transfer-encoding: chunked".into());
    t.refused(
        "TE gzip + TE chunked lines",
        s,
        &h1("/webhooks/levanta", &lines, &chunked(&b, 9)),
    )
    .await;

    // A space before the colon.
    let b = body("te space colon");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push("transfer-encoding : chunked".into());
    lines.push(cl(b.len()));
    t.refused(
        "'Transfer-Encoding : chunked'",
        s,
        &h1("/webhooks/levanta", &lines, &b),
    )
    .await;

    // Chunked on HTTP/1.0, where Transfer-Encoding does not exist.
    let b = body("te http/1.0");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push("transfer-encoding: chunked".into());
    t.case(
        "TE chunked on HTTP/1.0",
        s,
        &h1_version("/webhooks/levanta", "HTTP/1.0", &lines, &chunked(&b, 9)),
    )
    .await;

    // Chunk extensions and a trailer carrying a signature header.
    let b = body("te trailer");
    let s = Signed::levanta(&b);
    let mut lines = head(&s);
    lines.push("transfer-encoding: chunked".into());
    let mut wire = format!("{:x};ext=1\r\n", b.len()).into_bytes();
    wire.extend_from_slice(&b);
    wire.extend_from_slice(b"\r\n0\r\nx-levanta-hmac-sha256: 00\r\n\r\n");
    t.case(
        "chunk extension + signature in trailer",
        s,
        &h1("/webhooks/levanta", &lines, &wire),
    )
    .await;

    t.done("TE variants").await;
}

// ---- header syntax ------------------------------------------------------------------

#[tokio::test]
async fn obs_fold_bare_cr_and_nul_in_headers_are_refused_and_not_forwarded() {
    let mut t = Suite::new().await;

    // The signature split across an obs-fold.
    let b = body("fold signature");
    let s = Signed::levanta(&b);
    let sig = s.value("x-levanta-hmac-sha256").to_string();
    let lines = vec![
        "host: hookgate.test".to_string(),
        format!("x-levanta-hmac-sha256: {}", &sig[..32]),
        format!(" {}", &sig[32..]),
        cl(b.len()),
    ];
    t.refused(
        "obs-fold in the signature",
        s,
        &h1("/webhooks/levanta", &lines, &b),
    )
    .await;

    let odd: [(&str, &str); 7] = [
        ("obs-fold in another header", "x-note: a\r\n b"),
        ("obs-fold with a tab", "x-note: a\r\n\tb"),
        ("bare CR in a value", "x-note: a\rb"),
        ("bare CR ending a line", "x-note: a\rx-other: b"),
        ("NUL in a value", "x-note: a\0b"),
        ("NUL in a name", "x-no\0te: a"),
        ("space in a name", "x note: a"),
    ];
    for (case, line) in odd {
        let b = body(case);
        let s = Signed::levanta(&b);
        let mut lines = head(&s);
        lines.push(line.to_string());
        lines.push(cl(b.len()));
        t.refused(case, s, &h1("/webhooks/levanta", &lines, &b))
            .await;
    }

    for (case, line) in [("no colon", "x-note"), ("empty name", ": a")] {
        let b = body(case);
        let s = Signed::levanta(&b);
        let mut lines = head(&s);
        lines.push(line.to_string());
        lines.push(cl(b.len()));
        t.refused(case, s, &h1("/webhooks/levanta", &lines, &b))
            .await;
    }

    // Bare LF line endings: hyper may accept them; then it is forwarded as signed.
    let b = body("bare lf");
    let s = Signed::levanta(&b);
    let mut wire = b"POST /webhooks/levanta HTTP/1.1\nhost: hookgate.test\n".to_vec();
    for line in s.lines() {
        wire.extend_from_slice(line.as_bytes());
        wire.push(b'\n');
    }
    wire.extend_from_slice(format!("content-length: {}\n\n", b.len()).as_bytes());
    wire.extend_from_slice(&b);
    t.case("bare LF line endings", s, &wire).await;

    t.done("header syntax").await;
}

// ---- pipelining -----------------------------------------------------------------------

#[tokio::test]
async fn pipelined_forged_then_signed_forwards_only_the_signed() {
    let mut t = Suite::new().await;
    let forged = Signed {
        headers: vec![("x-levanta-hmac-sha256".into(), "00".repeat(32))],
        ..Signed::levanta(&body("forged first"))
    };
    let genuine = Signed::levanta(&body("genuine second"));
    let mut wire = forged.request();
    wire.extend(genuine.request());
    let ex = exchange(t.gw.addr, &wire, 2).await;
    let statuses: Vec<u16> = ex.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 200], "{}", ex.describe());
    t.up.assert_forwarded_once(&genuine, "forged then signed");
    t.signed.push(genuine);
    t.check("forged then signed");
    t.done("forged then signed").await;
}

#[tokio::test]
async fn pipelined_signed_then_forged_forwards_only_the_signed() {
    let mut t = Suite::new().await;
    let genuine = Signed::svix("msg_pipelined_first", &body("genuine first"));
    // The same id and timestamp, another body: the signature does not match.
    let forged = Signed {
        body: body("forged second"),
        ..genuine.clone()
    };
    let mut wire = genuine.request();
    wire.extend(forged.request());
    let ex = exchange(t.gw.addr, &wire, 2).await;
    let statuses: Vec<u16> = ex.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401], "{}", ex.describe());
    t.up.assert_forwarded_once(&genuine, "signed then forged");
    t.signed.push(genuine);
    t.check("signed then forged");
    t.done("signed then forged").await;
}

#[tokio::test]
async fn pipelined_request_hidden_in_a_body_is_not_parsed_as_a_request() {
    let mut t = Suite::new().await;
    // A genuine body that contains a whole (forged) request: it is a body.
    let mut b = body("request in body");
    b.extend_from_slice(b"\r\n\r\n");
    b.extend_from_slice(FORGED_TAIL);
    let s = Signed::levanta(&b);
    let ex = exchange(t.gw.addr, &s.request(), 2).await;
    let statuses: Vec<u16> = ex.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200], "{}", ex.describe());
    t.up.assert_forwarded_once(&s, "request in body");
    t.signed.push(s);
    t.check("request in body");
}

// ---- request targets ---------------------------------------------------------------------

#[tokio::test]
async fn absolute_form_and_odd_targets_forward_only_as_signed() {
    let mut t = Suite::new().await;
    let cases: Vec<(&str, Signed, &str)> = vec![
        (
            "absolute-form, foreign authority (levanta)",
            Signed::levanta(&body("abs levanta")),
            "http://evil.example/webhooks/levanta",
        ),
        (
            "absolute-form, foreign authority (levers)",
            Signed::svix("msg_abs_levers", &body("abs levers")),
            "http://evil.example/webhooks/levers",
        ),
        (
            "absolute-form, own authority",
            Signed::levanta(&body("abs own")),
            "http://hookgate.test/webhooks/levanta",
        ),
        (
            "absolute-form with userinfo",
            Signed::levanta(&body("abs userinfo")),
            "http://user@evil.example/webhooks/levanta",
        ),
    ];
    for (case, s, target) in cases {
        let mut lines = head(&s);
        lines.push(cl(s.body.len()));
        let bytes = h1(target, &lines, &s.body);
        t.case(case, s, &bytes).await;
    }
    for (case, target) in [
        ("asterisk-form", "*"),
        ("authority-form", "evil.example:443"),
        ("no leading slash", "webhooks/levanta"),
        ("fragment", "/webhooks/levanta#x"),
        ("space in target", "/webhooks/levanta /x"),
    ] {
        let s = Signed::levanta(&body(case));
        let mut lines = head(&s);
        lines.push(cl(s.body.len()));
        let bytes = h1(target, &lines, &s.body);
        t.case(case, s, &bytes).await;
    }
    t.done("targets").await;
}

// ---- HTTP/2 frames ------------------------------------------------------------------------

/// Opens a raw HTTP/2 connection and sends stream 1: `fields` in one HEADERS
/// frame, then `body` in one DATA frame ending the stream.
async fn h2_raw(gw: &Gateway, fields: &[(&str, &str)], body: &[u8]) -> Outcome {
    let mut conn = Conn::open(gw.addr).await;
    let mut bytes = frames::frame(
        frames::HEADERS,
        frames::END_HEADERS,
        1,
        &frames::block(fields),
    );
    bytes.extend(frames::frame(frames::DATA, frames::END_STREAM, 1, body));
    // A peer that already refused may have closed: what it said is read below.
    let _ = conn.send(&bytes).await;
    conn.outcome(1, Duration::from_secs(5)).await
}

impl Suite {
    /// An HTTP/2 case: refused and nothing forwarded, or 2xx and `s` forwarded as signed.
    async fn h2_case(&mut self, case: &str, s: Signed, fields: &[(&str, &str)]) -> Outcome {
        let before = self.up.count();
        let outcome = h2_raw(&self.gw, fields, &s.body).await;
        settle().await;
        if outcome.refused() {
            assert_eq!(
                self.up.count(),
                before,
                "[{case}] refused ({outcome:?}), yet forwarded"
            );
        } else {
            assert!(
                matches!(outcome, Outcome::Answered(Some(200..=299))),
                "[{case}] neither answered nor refused: {outcome:?}"
            );
            self.up.assert_forwarded_once(&s, case);
        }
        self.signed.push(s);
        self.check(case);
        outcome
    }

    async fn h2_refused(&mut self, case: &str, s: Signed, fields: &[(&str, &str)]) {
        let outcome = self.h2_case(case, s, fields).await;
        assert!(outcome.refused(), "[{case}] must be refused: {outcome:?}");
    }
}

/// The protocol is told from the first bytes the gateway sees: a client
/// whose first segment is only a part of the HTTP/2 preface (or of an
/// HTTP/1 request line that starts like it) is still served as what it is.
#[tokio::test]
async fn a_first_segment_too_short_to_name_the_protocol_is_still_served() {
    let mut t = Suite::new().await;
    for at in [1, 2, 3, 16, 23] {
        let case = format!("HTTP/2 preface split after {at} bytes");
        let s = Signed::levanta(&body(&case));
        let len = s.body.len().to_string();
        let fields = frames::request_fields("/webhooks/levanta", &s.headers, &len);
        let mut conn = Conn::open_split(t.gw.addr, at).await;
        let mut bytes = frames::frame(
            frames::HEADERS,
            frames::END_HEADERS,
            1,
            &frames::block(&fields),
        );
        bytes.extend(frames::frame(frames::DATA, frames::END_STREAM, 1, &s.body));
        conn.send(&bytes).await.unwrap();
        let outcome = conn.outcome(1, Duration::from_secs(5)).await;
        assert_eq!(outcome, Outcome::Answered(Some(200)), "[{case}]");
        t.up.assert_forwarded_once(&s, &case);
        t.signed.push(s);
        t.check(&case);
    }
    let s = Signed::levanta(&body("HTTP/1 split after P"));
    let mut lines = head(&s);
    lines.push(cl(s.body.len()));
    let request = h1(&s.path, &lines, &s.body);
    let mut stream = TcpStream::connect(t.gw.addr).await.unwrap();
    stream.write_all(&request[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&request[1..]).await.unwrap();
    let ex = read_responses(&mut stream, 1, Duration::from_secs(5)).await;
    assert_eq!(ex.status(), Some(200), "{}", ex.describe());
    t.up.assert_forwarded_once(&s, "HTTP/1 split after P");
    t.signed.push(s);
    t.done("split first segments").await;
}

#[tokio::test]
async fn raw_http2_frames_carry_a_genuine_delivery() {
    let mut t = Suite::new().await;
    let s = Signed::levanta(&body("raw h2 genuine"));
    let len = s.body.len().to_string();
    let fields = frames::request_fields("/webhooks/levanta", &s.headers, &len);
    let outcome = t.h2_case("raw h2 genuine", s.clone(), &fields).await;
    assert_eq!(outcome, Outcome::Answered(Some(200)));
    t.up.assert_forwarded_once(&s, "raw h2 genuine");
}

#[tokio::test]
async fn http2_pseudo_header_abuse_is_refused_and_not_forwarded() {
    let mut t = Suite::new().await;
    type Mangle = fn(&mut Vec<(&str, &str)>);
    let cases: [(&str, Mangle); 9] = [
        ("missing :path", |f| f.retain(|(n, _)| *n != ":path")),
        ("missing :method", |f| f.retain(|(n, _)| *n != ":method")),
        ("missing :scheme", |f| f.retain(|(n, _)| *n != ":scheme")),
        (":path without a leading slash", |f| {
            f[3].1 = "webhooks/levanta";
        }),
        ("empty :path", |f| f[3].1 = ""),
        ("two :path fields", |f| {
            f.insert(4, (":path", "/webhooks/levanta"))
        }),
        ("pseudo-header after a regular one", |f| {
            let path = f.remove(3);
            f.push(path);
        }),
        ("unknown pseudo-header", |f| f.insert(1, (":foo", "bar"))),
        (":status in a request", |f| f.insert(1, (":status", "200"))),
    ];
    for (case, mangle) in cases {
        let s = Signed::levanta(&body(case));
        let len = s.body.len().to_string();
        let mut fields = frames::request_fields("/webhooks/levanta", &s.headers, &len);
        mangle(&mut fields);
        t.h2_refused(case, s.clone(), &fields).await;
    }
    // Uppercase names (HTTP/2 requires lower case), in the signature header
    // and in another one.
    let s = Signed::levanta(&body("uppercase signature name"));
    let len = s.body.len().to_string();
    let upper = vec![(
        "X-Levanta-Hmac-Sha256".to_string(),
        s.value("x-levanta-hmac-sha256").to_string(),
    )];
    let fields = frames::request_fields("/webhooks/levanta", &upper, &len);
    t.h2_refused("uppercase signature header name", s.clone(), &fields)
        .await;
    let s = Signed::levanta(&body("uppercase other name"));
    let len = s.body.len().to_string();
    let mut fields = frames::request_fields("/webhooks/levanta", &s.headers, &len);
    fields.push(("X-Note", "a"));
    t.h2_refused("uppercase header name", s.clone(), &fields)
        .await;

    t.done("pseudo-header abuse").await;
}

#[tokio::test]
async fn http2_connection_specific_headers_are_refused_and_not_forwarded() {
    let mut t = Suite::new().await;
    for (name, value) in [
        ("connection", "keep-alive"),
        ("connection", "x-levanta-hmac-sha256"),
        ("transfer-encoding", "chunked"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "h2c"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
    ] {
        let case = format!("HTTP/2 {name}: {value}");
        let s = Signed::levanta(&body(&case));
        let len = s.body.len().to_string();
        let mut fields = frames::request_fields("/webhooks/levanta", &s.headers, &len);
        fields.push((name, value));
        t.h2_refused(&case, s.clone(), &fields).await;
    }
    // A content-length that disagrees with the DATA sent.
    for (case, declared) in [
        ("HTTP/2 body shorter than content-length", 5),
        ("HTTP/2 body longer than content-length", -5),
    ] {
        let s = Signed::levanta(&body(case));
        let len = (i64::try_from(s.body.len()).unwrap() + declared).to_string();
        let fields = frames::request_fields("/webhooks/levanta", &s.headers, &len);
        t.h2_refused(case, s.clone(), &fields).await;
    }
    t.done("connection-specific headers").await;
}

#[tokio::test]
async fn http2_rapid_reset_leaves_the_gateway_serving() {
    let t = Suite::new().await;
    let s = Signed::levanta(&body("rapid reset"));
    let len = s.body.len().to_string();
    let block = frames::block(&frames::request_fields(
        "/webhooks/levanta",
        &s.headers,
        &len,
    ));
    let started = Instant::now();
    let mut conn = Conn::open(t.gw.addr).await;
    // 2000 streams, each opened and cancelled at once, in batches of 100.
    let mut sent = 0u32;
    'batches: for batch in 0..20u32 {
        let mut bytes = Vec::new();
        for i in 0..100u32 {
            let id = 2 * (batch * 100 + i) + 1;
            bytes.extend(frames::frame(
                frames::HEADERS,
                frames::END_HEADERS,
                id,
                &block,
            ));
            bytes.extend(frames::frame(
                frames::RST_STREAM,
                0,
                id,
                &0x8u32.to_be_bytes(),
            ));
        }
        if conn.send(&bytes).await.is_err() {
            break 'batches;
        }
        sent += 100;
    }
    // The gateway may answer with GOAWAY (ENHANCE_YOUR_CALM) and close; either way it stays up.
    conn.drain_until_closed(Duration::from_secs(2)).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(sent > 0);
    settle().await;
    t.check("rapid reset");
    assert_eq!(t.up.count(), 0, "no reset stream reached the app");
    t.done("rapid reset").await;
}

#[tokio::test]
async fn http2_continuation_flood_is_cut_off_and_the_gateway_keeps_serving() {
    let t = Suite::new().await;
    let started = Instant::now();
    let mut conn = Conn::open(t.gw.addr).await;
    let opening = frames::block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "hookgate.test"),
        (":path", "/webhooks/levanta"),
    ]);
    // Then up to 4000 CONTINUATION frames of 4 KiB of fields each (16 MiB),
    // never END_HEADERS; a write that fails means the gateway hung up.
    let filler = "a".repeat(4000);
    let mut frames_sent = 0;
    if conn
        .send(&frames::frame(frames::HEADERS, 0, 1, &opening))
        .await
        .is_ok()
    {
        for i in 0..4000 {
            let name = format!("x-pad-{i}");
            let payload = frames::literal(name.as_bytes(), filler.as_bytes());
            if conn
                .send(&frames::frame(frames::CONTINUATION, 0, 1, &payload))
                .await
                .is_err()
            {
                break;
            }
            frames_sent += 1;
        }
    }
    let closed = conn.drain_until_closed(Duration::from_secs(5)).await;
    assert!(
        closed || conn.goaway.is_some(),
        "the gateway must close the connection (GOAWAY or EOF) after a CONTINUATION flood; \
         it took {frames_sent} frames and is still open"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    settle().await;
    t.check("CONTINUATION flood");
    assert_eq!(t.up.count(), 0);
    t.done("CONTINUATION flood").await;
}
