//! Hand-built HTTP/2 over a raw TCP socket: frames, uncompressed HPACK literals,
//! and a reader that reports what the gateway did with each stream (cases the
//! `h2` crate's client refuses to send: missing pseudo-headers, uppercase names,
//! connection-specific fields, CONTINUATION floods, rapid reset).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const GOAWAY: u8 = 7;
pub const CONTINUATION: u8 = 9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 24);
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix, `flags` in the bits above it (RFC 7541 §5.1).
fn int(n: u32, flags: u8, mut v: usize) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if v < max {
        return vec![flags | u8::try_from(v).unwrap()];
    }
    let mut out = vec![flags | u8::try_from(max).unwrap()];
    v -= max;
    while v >= 128 {
        out.push(u8::try_from(v % 128).unwrap() | 0x80);
        v /= 128;
    }
    out.push(u8::try_from(v).unwrap());
    out
}

/// A literal field without indexing, new name, no Huffman: what any name or
/// value (uppercase, pseudo, connection-specific) is sent as.
pub fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend(int(7, 0, name.len()));
    out.extend_from_slice(name);
    out.extend(int(7, 0, value.len()));
    out.extend_from_slice(value);
    out
}

pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|(n, v)| literal(n.as_bytes(), v.as_bytes()))
        .collect()
}

/// The request fields a well-formed POST carries, then `headers`.
pub fn request_fields<'a>(
    path: &'a str,
    headers: &'a [(String, String)],
    content_length: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "hookgate.test"),
        (":path", path),
    ];
    fields.extend(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    fields.push(("content-length", content_length));
    fields
}

/// What the gateway did, as far as one stream is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Response headers; the status when it could be decoded.
    Answered(Option<u16>),
    Reset(u32),
    GoAway(u32),
    Closed,
    /// Nothing within the wait.
    Silent,
}

impl Outcome {
    /// Not a 2xx answer: refused one way or another.
    pub fn refused(&self) -> bool {
        match self {
            Outcome::Answered(Some(s)) => !(200..300).contains(s),
            Outcome::Answered(None) => true,
            Outcome::Reset(_) | Outcome::GoAway(_) | Outcome::Closed => true,
            Outcome::Silent => false,
        }
    }
}

/// A client connection speaking raw HTTP/2 (prior knowledge, no TLS).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pub goaway: Option<u32>,
    pub closed: bool,
}

impl Conn {
    /// Connects, sends the preface and empty SETTINGS, waits for the server's
    /// SETTINGS and acknowledges them.
    pub async fn open(addr: SocketAddr) -> Conn {
        Self::open_split(addr, PREFACE.len()).await
    }

    /// As `open`, but the preface's first `at` bytes go alone and the rest
    /// 200 ms later (a client whose first segment is a part of the preface).
    pub async fn open_split(addr: SocketAddr, at: usize) -> Conn {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        if at < PREFACE.len() {
            stream.write_all(&hello[..at]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            hello.drain(..at);
        }
        stream.write_all(&hello).await.unwrap();
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            goaway: None,
            closed: false,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (kind, flags, _, _) = conn
                .next_frame(deadline)
                .await
                .expect("the server's SETTINGS");
            if kind == SETTINGS && flags & ACK == 0 {
                break;
            }
        }
        conn.send(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
        conn
    }

    /// Writes within 5 s (a peer that stopped reading is an error too).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match tokio::time::timeout(Duration::from_secs(5), self.stream.write_all(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// The next frame: (type, flags, stream, payload), or `None` once the peer
    /// closed or the deadline passed.
    pub async fn next_frame(&mut self, deadline: Instant) -> Option<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.buf.len() >= 9 {
                let len = usize::from(self.buf[0]) << 16
                    | usize::from(self.buf[1]) << 8
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let kind = self.buf[3];
                    let flags = self.buf[4];
                    let stream =
                        u32::from_be_bytes(self.buf[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    let payload = self.buf[9..9 + len].to_vec();
                    self.buf.drain(..9 + len);
                    if kind == GOAWAY && payload.len() >= 8 {
                        self.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
                    }
                    return Some((kind, flags, stream, payload));
                }
            }
            if self.closed {
                return None;
            }
            let mut chunk = vec![0u8; 64 << 10];
            match tokio::time::timeout_at(deadline.into(), self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => self.closed = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until something decides `stream`'s fate, up to `wait`.
    pub async fn outcome(&mut self, stream: u32, wait: Duration) -> Outcome {
        let deadline = Instant::now() + wait;
        loop {
            let Some((kind, _, id, payload)) = self.next_frame(deadline).await else {
                if let Some(code) = self.goaway {
                    return Outcome::GoAway(code);
                }
                return if self.closed {
                    Outcome::Closed
                } else {
                    Outcome::Silent
                };
            };
            match kind {
                HEADERS if id == stream => return Outcome::Answered(status_of(&payload)),
                RST_STREAM if id == stream && payload.len() >= 4 => {
                    return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()))
                }
                GOAWAY => {
                    return Outcome::GoAway(self.goaway.unwrap_or_default());
                }
                _ => {}
            }
        }
    }

    /// Reads (and drops) frames until the peer closes or `wait` passes:
    /// whether it closed.
    pub async fn drain_until_closed(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while self.next_frame(deadline).await.is_some() {}
        self.closed
    }
}

/// The `:status` of a response header block, when the encoder put it first
/// as a static-table index or a literal (plain or Huffman-coded digits).
fn status_of(block: &[u8]) -> Option<u16> {
    let mut block = block;
    // A dynamic table size update may open the block.
    while block.first().is_some_and(|b| b & 0xe0 == 0x20) {
        block = &block[1..];
    }
    let b = *block.first()?;
    if b & 0x80 != 0 {
        return match b & 0x7f {
            8 => Some(200),
            9 => Some(204),
            10 => Some(206),
            11 => Some(304),
            12 => Some(400),
            13 => Some(404),
            14 => Some(500),
            _ => None,
        };
    }
    let name = if b & 0xc0 == 0x40 { b & 0x3f } else { b & 0x0f };
    if !(8..=14).contains(&name) {
        return None;
    }
    let len_byte = *block.get(1)?;
    let len = usize::from(len_byte & 0x7f);
    let value = block.get(2..2 + len)?;
    let text = if len_byte & 0x80 == 0 {
        String::from_utf8_lossy(value).into_owned()
    } else {
        huffman_digits(value)
    };
    text.parse().ok()
}

/// Decodes Huffman-coded ASCII digits (RFC 7541 Appendix B: '0'-'2' are
/// 5 bits 00000-00010, '3'-'9' are 6 bits 011001-011111).
fn huffman_digits(bytes: &[u8]) -> String {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let take = |at: usize, n: usize| -> Option<u8> {
        let slice = bits.get(at..at + n)?;
        Some(slice.iter().fold(0, |acc, b| acc << 1 | b))
    };
    let mut out = String::new();
    let mut at = 0;
    while out.len() < 3 {
        match (take(at, 5), take(at, 6)) {
            (Some(v), _) if v <= 2 => {
                out.push(char::from(b'0' + v));
                at += 5;
            }
            (_, Some(v)) if (0x19..=0x1f).contains(&v) => {
                out.push(char::from(b'3' + v - 0x19));
                at += 6;
            }
            _ => break,
        }
    }
    out
}
