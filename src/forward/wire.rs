//! HTTP/1.1 on the application's side of the plain-HTTP pool: the request
//! head as it is written, the response head as it is read (`httparse`, the
//! parser hyper itself uses), how the response body is delimited (RFC 9112
//! §6.3), and the decoder that takes that body off the connection's buffer.
//!
//! Hand-written on the hot path because hyper's client connection costs
//! about a sixth of a proxied request here beyond this (BENCHMARKS.md,
//! "what hyper costs", run P: 0.88× the CPU a request at 1 KiB, −6.8%
//! instructions). Only the application's side: what providers send is still
//! read by hyper's server and checked by `strict`.
//!
//! Strict where a mistake would lose a webhook: a response whose length
//! cannot be told (conflicting `Content-Length`, a malformed chunk) is an
//! error, never guessed at, and a connection is reused only after a response
//! that ended exactly where its framing said.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, StatusCode, Version};

/// Header fields in a response head, at most (hyper's default).
const MAX_HEADERS: usize = 100;
/// A chunk-size line, extensions included, at most.
const MAX_CHUNK_LINE: usize = 4096;
/// A chunked body's trailer section, at most (read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;

/// Why a response could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("response head: {0}")]
    Head(httparse::Error),
    #[error("response head: {0}")]
    Field(&'static str),
    #[error("the application switched protocols")]
    Upgrade,
    #[error("response body: {0}")]
    Chunk(&'static str),
    #[error("the connection closed before the response ended")]
    Incomplete,
}

/// Writes the request line and header section as hyper's client did:
/// origin-form target, HTTP/1.1, every header as it is in the map, and a
/// `Content-Length` of `body_len` if there is none and the body is not empty
/// (or the method is one that carries a body).
pub(crate) fn encode_head(parts: &request::Parts, body_len: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let carries_body = body_len > 0
        || matches!(
            parts.method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        );
    if carries_body && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a response to HEAD, a 204 or a 304.
    Empty,
    Length(u64),
    Chunked,
    /// Up to the end of the connection.
    Close,
}

/// A final response's head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Bytes of the head in the buffer.
    pub(crate) len: usize,
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// The connection may carry another request once the body has ended.
    pub(crate) reusable: bool,
}

/// What the start of the buffer holds.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// An interim (1xx) response of this many bytes, to be skipped.
    Interim(usize),
    Final(ResponseHead),
}

/// Parses the response head at the start of `buf`; `None` while it is
/// incomplete. `head_request`: the request was HEAD, so no body follows.
pub(crate) fn parse_response(buf: &[u8], head_request: bool) -> Result<Option<Parsed>, WireError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Head(e)),
    };
    let code = parsed.code.ok_or(WireError::Field("status"))?;
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Field("status"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(WireError::Upgrade);
    }
    if status.is_informational() {
        return Ok(Some(Parsed::Interim(len)));
    }
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        Some(_) | None => return Err(WireError::Field("version")),
    };
    let (headers, said) = fields(parsed.headers)?;
    // HTTP/1.0 connections are not kept: hyper's client did not ask for it.
    let mut reusable = version == Version::HTTP_11 && !said.close;
    let bodiless =
        head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let framing = match (bodiless, said.coded, said.length) {
        (true, _, _) => Framing::Empty,
        // Transfer-Encoding overrides Content-Length; a message with both is
        // not followed on the same connection (RFC 9112 §6.3).
        (false, true, length) => {
            reusable &= length.is_none();
            if said.chunked_last {
                Framing::Chunked
            } else {
                reusable = false;
                Framing::Close
            }
        }
        (false, false, Some(n)) => Framing::Length(n),
        (false, false, None) => {
            reusable = false;
            Framing::Close
        }
    };
    Ok(Some(Parsed::Final(ResponseHead {
        len,
        status,
        version,
        headers,
        framing,
        reusable,
    })))
}

/// What a response's fields say about its framing and its connection.
#[derive(Default)]
struct Said {
    /// The one `Content-Length`, every value of it the same.
    length: Option<u64>,
    /// A `Transfer-Encoding` with a coding in it.
    coded: bool,
    /// The last coding is `chunked`.
    chunked_last: bool,
    /// `Connection: close`.
    close: bool,
}

/// The response's fields as a header map, and what they say.
fn fields(parsed: &[httparse::Header<'_>]) -> Result<(HeaderMap, Said), WireError> {
    let mut said = Said::default();
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for field in parsed {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| WireError::Field("field name"))?;
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| WireError::Field("field value"))?;
        if name == header::CONTENT_LENGTH {
            for part in value.as_bytes().split(|&b| b == b',') {
                let n =
                    parse_length(part.trim_ascii()).ok_or(WireError::Field("content-length"))?;
                if said.length.is_some_and(|seen| seen != n) {
                    return Err(WireError::Field("content-length"));
                }
                said.length = Some(n);
            }
        } else if name == header::TRANSFER_ENCODING {
            for coding in value.as_bytes().split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if !coding.is_empty() {
                    said.coded = true;
                    said.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name == header::CONNECTION {
            said.close |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        headers.append(name, value);
    }
    Ok((headers, said))
}

/// A `Content-Length` value: digits only.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What the decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Data(Bytes),
    /// More bytes are needed from the connection.
    More,
    /// The body has ended.
    Done,
}

/// Takes a response body off the connection's buffer as its framing says,
/// leaving whatever follows it in the buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    /// Trailer bytes read so far.
    Trailers(usize),
    Close,
    Done,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Decoder { state }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The body's exact remaining length, when the framing gives it.
    pub(crate) fn exact(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            State::ChunkSize
            | State::ChunkData(_)
            | State::ChunkEnd
            | State::Trailers(_)
            | State::Close => None,
        }
    }

    /// The next piece of the body in `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, WireError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::Done),
                State::Length(left) | State::ChunkData(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
                    let left = left - n as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), left) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        (_, left) => State::ChunkData(left),
                    };
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                State::ChunkSize => {
                    let Some(end) = line_end(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(WireError::Chunk("chunk-size line too long"));
                        }
                        return Ok(Step::More);
                    };
                    if end > MAX_CHUNK_LINE {
                        return Err(WireError::Chunk("chunk-size line too long"));
                    }
                    let size = chunk_size(&buf[..end])?;
                    buf.advance(end + 2);
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(WireError::Chunk("no CRLF after chunk data"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers(seen) => {
                    let Some(end) = line_end(buf) else {
                        if seen + buf.len() > MAX_TRAILERS {
                            return Err(WireError::Chunk("trailer section too long"));
                        }
                        return Ok(Step::More);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = State::Done;
                        return Ok(Step::Done);
                    }
                    if seen + end + 2 > MAX_TRAILERS {
                        return Err(WireError::Chunk("trailer section too long"));
                    }
                    self.state = State::Trailers(seen + end + 2);
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
            }
        }
    }

    /// The connection ended: the end of a close-delimited body, an error for
    /// any other that has not ended.
    pub(crate) fn end_of_input(&mut self) -> Result<(), WireError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(_)
            | State::ChunkSize
            | State::ChunkData(_)
            | State::ChunkEnd
            | State::Trailers(_) => Err(WireError::Incomplete),
        }
    }
}

/// Where the first CRLF in `buf` starts.
fn line_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line: hex digits, then optional extensions (RFC 9112 §7.1.1),
/// read and dropped.
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(WireError::Chunk("no chunk size"));
    }
    // 15 hex digits are 60 bits: no overflow, and no real chunk is larger.
    if digits > 15 {
        return Err(WireError::Chunk("chunk size too large"));
    }
    let rest = &line[digits..];
    // Blanks are allowed only before an extension (BWS ";").
    let blanks = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let ext = &rest[blanks..];
    if !(ext.is_empty() || ext.first() == Some(&b';')) {
        return Err(WireError::Chunk("malformed chunk-size line"));
    }
    if ext.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
        return Err(WireError::Chunk("control character in a chunk extension"));
    }
    let hex =
        std::str::from_utf8(&line[..digits]).map_err(|_| WireError::Chunk("no chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| WireError::Chunk("no chunk size"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use proptest::prelude::*;

    fn head(raw: &str, head_request: bool) -> ResponseHead {
        match parse_response(raw.as_bytes(), head_request)
            .unwrap()
            .unwrap()
        {
            Parsed::Final(head) => head,
            Parsed::Interim(_) => panic!("interim"),
        }
    }

    #[test]
    fn the_request_head_is_the_method_the_origin_form_target_and_every_header() {
        let (mut parts, ()) = http::Request::post("/hook?x=1")
            .header("host", "app:8080")
            .header("content-length", "2")
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .unwrap()
            .into_parts();
        parts.uri = "/hook?x=1".parse().unwrap();
        let mut out = Vec::new();
        encode_head(&parts, 2, &mut out);
        assert_eq!(
            out,
            b"POST /hook?x=1 HTTP/1.1\r\nhost: app:8080\r\ncontent-length: 2\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        // Without one, the body's length is written; an empty GET has none.
        parts.headers.remove("content-length");
        out.clear();
        encode_head(&parts, 7, &mut out);
        assert!(out.ends_with(b"x-a: 2\r\ncontent-length: 7\r\n\r\n"));
        parts.method = http::Method::GET;
        out.clear();
        encode_head(&parts, 0, &mut out);
        assert!(out.ends_with(b"x-a: 2\r\n\r\n"));
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let cases: &[(&str, bool, Framing, bool)] = &[
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            // Both: chunked wins, and the connection is not reused.
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                false,
            ),
            // chunked not last: up to the close.
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
                false,
                Framing::Close,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
        ];
        for &(raw, head_request, framing, reusable) in cases {
            let parsed = head(raw, head_request);
            assert_eq!(
                (parsed.framing, parsed.reusable),
                (framing, reusable),
                "{raw}"
            );
            assert_eq!(parsed.len, raw.len());
        }
    }

    #[test]
    fn a_length_that_cannot_be_told_is_an_error() {
        for raw in [
            "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        ] {
            assert!(parse_response(raw.as_bytes(), false).is_err(), "{raw}");
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_101_is_refused() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert!(matches!(
            parse_response(raw, false).unwrap(),
            Some(Parsed::Interim(25))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false),
            Err(WireError::Upgrade)
        ));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-le", false)
            .unwrap()
            .is_none());
    }

    /// Feeds `wire` to a decoder in pieces of `step` bytes; the body and what is left.
    fn decode_all(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), WireError> {
        let mut decoder = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Step::Data(data) => body.extend_from_slice(&data),
                Step::Done => return Ok((body, buf.to_vec())),
                Step::More if fed == wire.len() => {
                    decoder.end_of_input()?;
                    return Ok((body, buf.to_vec()));
                }
                Step::More => {
                    let next = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_decodes_byte_by_byte() {
        let wire =
            b"4;name=\"va;l\"\r\nWiki\r\n5 ; x\r\npedia\r\n0\r\nx-trailer: 1\r\n\r\nHTTP/1.1";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, left) = decode_all(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"Wikipedia");
            assert!(b"HTTP/1.1".starts_with(&left), "step {step}: {left:?}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for wire in [
            &b"x\r\n"[..],
            b"4\r\nWikiXX",
            b"4 x\r\nWiki\r\n0\r\n\r\n",
            b"1234567890abcdef0\r\n",
            b"4;a\x01b\r\nWiki\r\n0\r\n\r\n",
        ] {
            assert!(decode_all(Framing::Chunked, wire, 1).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn a_body_cut_short_is_an_error_and_a_close_delimited_one_ends_with_the_input() {
        assert!(matches!(
            decode_all(Framing::Length(5), b"abc", 1),
            Err(WireError::Incomplete)
        ));
        assert!(matches!(
            decode_all(Framing::Chunked, b"5\r\nabc", 2),
            Err(WireError::Incomplete)
        ));
        let (body, left) = decode_all(Framing::Close, b"all of it", 4).unwrap();
        assert_eq!(
            (body.as_slice(), left.as_slice()),
            (&b"all of it"[..], &b""[..])
        );
        let (body, left) = decode_all(Framing::Length(3), b"abcdef", 2).unwrap();
        assert_eq!((body.as_slice(), left.as_slice()), (&b"abc"[..], &b"d"[..]));
    }

    proptest! {
        /// Whatever the application sends, the head parser and every decoder
        /// answer without panicking, and never take more bytes than they got.
        #[test]
        fn arbitrary_bytes_are_answered_not_panicked_on(
            tail in proptest::collection::vec(any::<u8>(), 0..600),
            head_request in any::<bool>(),
            step in 1usize..64,
        ) {
            let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
            wire.extend_from_slice(&tail);
            match parse_response(&wire, head_request) {
                Ok(Some(Parsed::Final(head))) => prop_assert!(head.len <= wire.len()),
                Ok(Some(Parsed::Interim(n))) => prop_assert!(n <= wire.len()),
                Ok(None) | Err(_) => {}
            }
            for framing in [Framing::Chunked, Framing::Length(300), Framing::Close] {
                if let Ok((body, left)) = decode_all(framing, &tail, step) {
                    prop_assert!(body.len() + left.len() <= tail.len());
                }
            }
        }

        /// Any body, cut into any chunks and fed in any pieces, comes out
        /// whole, and the bytes after it stay in the buffer.
        #[test]
        fn chunked_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(1usize..300, 1..20),
            step in 1usize..64,
        ) {
            let mut wire = Vec::new();
            let mut rest = &body[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let n = (*cut.next().unwrap()).min(rest.len());
                wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0\r\n\r\nNEXT");
            let (decoded, left) = decode_all(Framing::Chunked, &wire, step).unwrap();
            prop_assert_eq!(decoded, body);
            prop_assert!(b"NEXT".starts_with(&left));
        }
    }
}
