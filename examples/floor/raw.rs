//! The purpose-built HTTP/1.1 path (`raw`, `raw+verify`): what forwarding
//! costs here without hyper, in nginx's shape.
//!
//! One task per client connection does everything on its own thread: it reads
//! into one buffer, parses the request head in place with `httparse` while
//! writing the head that goes to the application (the same bytes, less
//! `Connection`), reads the `Content-Length` body after it, and exchanges the
//! request for the whole response on an application connection of its own
//! (kept for the client connection's life, as nginx's upstream keepalive ends
//! up doing with one request in flight per connection). The response goes
//! back as the application sent it. No header map, no body channel, no second
//! task, no timer.
//!
//! A measuring instrument, not a proxy: no chunked bodies either way, no
//! close-delimited responses, no timeouts; fixed caps on head and body sizes.

use std::io;
use std::ops::Range;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gate::{self, Claim, Gate};

/// A request or response head, at most.
const MAX_HEAD: usize = 16 * 1024;
/// A body, at most.
const MAX_BODY: usize = 1024 * 1024;
/// Header fields parsed, at most.
pub(crate) const MAX_HEADERS: usize = 64;
/// Free space a read is given.
const READ_SPACE: usize = 16 * 1024;

/// One worker: every client connection served by a task of its own.
pub(crate) fn worker(
    listener: std::net::TcpListener,
    upstream: &'static str,
    gate: Option<&'static Gate>,
) {
    crate::accept_loop(listener, move |client| {
        let conn = Conn {
            client,
            app: None,
            upstream,
            buf: Vec::with_capacity(READ_SPACE),
            out: Vec::with_capacity(READ_SPACE),
            resp: Vec::with_capacity(READ_SPACE),
        };
        conn.run(gate)
    });
}

/// The proxy's own answers.
struct Answer {
    status: u16,
    bytes: &'static [u8],
}

const BAD_REQUEST: Answer = Answer {
    status: 400,
    bytes: b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
};
const UNAUTHORIZED: Answer = Answer {
    status: 401,
    bytes: b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n",
};
const CONFLICT: Answer = Answer {
    status: 409,
    bytes: b"HTTP/1.1 409 Conflict\r\ncontent-length: 0\r\n\r\n",
};
const DUPLICATE: Answer = Answer {
    status: 200,
    bytes: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 22\r\n\r\n{\"status\":\"duplicate\"}",
};
const TOO_LARGE: Answer = Answer {
    status: 413,
    bytes: b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
};
const NOT_IMPLEMENTED: Answer = Answer {
    status: 501,
    bytes: b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
};
const BAD_GATEWAY: Answer = Answer {
    status: 502,
    bytes: b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
};

/// What a request head says, with the Svix fields as ranges of the read buffer.
struct Head {
    /// Bytes of the head.
    len: usize,
    /// `Content-Length`.
    body: usize,
    /// `Connection: close`, or HTTP/1.0.
    close: bool,
    id: Option<Range<usize>>,
    ts: Option<Range<usize>>,
    sig: Option<Range<usize>>,
}

enum Parsed {
    Complete(Head),
    Partial,
    Bad(Answer),
}

/// One client connection and the application connection it uses.
struct Conn {
    client: TcpStream,
    app: Option<TcpStream>,
    upstream: &'static str,
    /// Bytes read from the client and not yet handled.
    buf: Vec<u8>,
    /// The request as it goes to the application.
    out: Vec<u8>,
    /// The application's whole response.
    resp: Vec<u8>,
}

impl Conn {
    async fn run(mut self, gate: Option<&'static Gate>) {
        while let Ok(Some(close)) = self.one(gate).await {
            if close {
                return;
            }
        }
    }

    /// One request and its answer. `Ok(None)`: the client closed between requests.
    async fn one(&mut self, gate: Option<&Gate>) -> io::Result<Option<bool>> {
        let head = loop {
            if !self.buf.is_empty() {
                match parse_request(&self.buf, &mut self.out) {
                    Parsed::Complete(head) => break head,
                    Parsed::Bad(answer) => return self.refuse(answer).await,
                    Parsed::Partial if self.buf.len() >= MAX_HEAD => {
                        return self.refuse(TOO_LARGE).await
                    }
                    Parsed::Partial => {}
                }
            }
            if read_more(&mut self.client, &mut self.buf).await? == 0 {
                return Ok(None);
            }
        };
        let start = Instant::now();
        let total = head.len + head.body;
        while self.buf.len() < total {
            if read_more(&mut self.client, &mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
        match gate {
            None => {
                self.out.extend_from_slice(&self.buf[head.len..total]);
                self.forward().await?;
            }
            Some(gate) => self.verified(gate, &head, total, start).await?,
        }
        self.buf.drain(..total);
        Ok(Some(head.close))
    }

    /// floor+verify's work around the forward.
    async fn verified(
        &mut self,
        gate: &Gate,
        head: &Head,
        total: usize,
        start: Instant,
    ) -> io::Result<()> {
        let buf = &self.buf;
        let claim = match (
            field(buf, &head.id),
            field(buf, &head.ts),
            field(buf, &head.sig),
        ) {
            (Some(id), Some(ts), Some(sig)) => {
                if gate.genuine(id, ts, sig, &buf[head.len..total]) {
                    Ok(gate.claim(id))
                } else {
                    Err(UNAUTHORIZED)
                }
            }
            _ => Err(BAD_REQUEST),
        };
        let (outcome, status) = match claim {
            Ok(Claim::Claimed(key)) => {
                self.out.extend_from_slice(&self.buf[head.len..total]);
                let status = self.forward().await?;
                gate.settle(key, (200..300).contains(&status));
                let outcome = if status == BAD_GATEWAY.status {
                    "upstream_error"
                } else {
                    "forwarded"
                };
                (outcome, status)
            }
            Ok(Claim::Duplicate) => ("duplicate", self.answer(DUPLICATE).await?),
            Ok(Claim::InFlight) => ("rejected", self.answer(CONFLICT).await?),
            Err(answer) => ("rejected", self.answer(answer).await?),
        };
        gate::log(outcome, status, start, field(&self.buf, &head.id));
        Ok(())
    }

    /// Sends `out` to the application and its response to the client: the status.
    async fn forward(&mut self) -> io::Result<u16> {
        match self.exchange().await {
            Ok(status) => {
                self.client.write_all(&self.resp).await?;
                Ok(status)
            }
            Err(_) => self.answer(BAD_GATEWAY).await,
        }
    }

    /// `out` for the application's whole response, in `resp`. A reused
    /// connection that fails before any of the response is retried once on a
    /// new one (the application may have closed it while idle).
    async fn exchange(&mut self) -> io::Result<u16> {
        let reused = self.app.is_some();
        match self.exchange_once().await {
            Err(_) if reused && self.resp.is_empty() => self.exchange_once().await,
            done => done,
        }
    }

    async fn exchange_once(&mut self) -> io::Result<u16> {
        self.resp.clear();
        let app = match &mut self.app {
            Some(app) => app,
            None => {
                let app = TcpStream::connect(self.upstream).await?;
                app.set_nodelay(true)?;
                self.app.insert(app)
            }
        };
        let done = exchange_on(app, &self.out, &mut self.resp).await;
        match done {
            Ok(Answered { status, keep, .. }) => {
                if !keep {
                    self.app = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.app = None;
                Err(e)
            }
        }
    }

    async fn answer(&mut self, answer: Answer) -> io::Result<u16> {
        self.client.write_all(answer.bytes).await?;
        Ok(answer.status)
    }

    /// Answers a request that cannot be read, and ends the connection.
    async fn refuse(&mut self, answer: Answer) -> io::Result<Option<bool>> {
        self.client.write_all(answer.bytes).await?;
        Ok(Some(true))
    }
}

/// Reads what the peer has sent, with room for at least a full read.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_SPACE / 4 {
        buf.reserve(READ_SPACE);
    }
    stream.read_buf(buf).await
}

/// Parses the request head at the start of `buf` and, as it goes, writes the
/// head the application gets into `out` (every field but `Connection`).
fn parse_request(buf: &[u8], out: &mut Vec<u8>) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Bad(BAD_REQUEST),
    };
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Bad(BAD_REQUEST);
    };
    let mut head = Head {
        len,
        body: 0,
        close: req.version != Some(1),
        id: None,
        ts: None,
        sig: None,
    };
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut length: Option<usize> = None;
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            head.close |= field
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok());
            match (n, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(seen)) if n == seen => {}
                _ => return Parsed::Bad(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad(NOT_IMPLEMENTED);
        } else if name.eq_ignore_ascii_case("svix-id") {
            head.id = Some(range_of(buf, field.value));
        } else if name.eq_ignore_ascii_case("svix-timestamp") {
            head.ts = Some(range_of(buf, field.value));
        } else if name.eq_ignore_ascii_case("svix-signature") {
            head.sig = Some(range_of(buf, field.value));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(field.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    head.body = length.unwrap_or(0);
    if head.body > MAX_BODY {
        return Parsed::Bad(TOO_LARGE);
    }
    Parsed::Complete(head)
}

/// A field's value, by its range in the read buffer.
fn field<'a>(buf: &'a [u8], range: &Option<Range<usize>>) -> Option<&'a [u8]> {
    range.clone().map(|r| &buf[r])
}

/// Where `part`, a slice of `buf`, sits in it.
fn range_of(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    start..start + part.len()
}

/// What the application answered: its status, the length of its head and
/// of the whole response, and whether the connection may carry another request.
pub(crate) struct Answered {
    pub(crate) status: u16,
    pub(crate) head: usize,
    pub(crate) keep: bool,
}

/// Writes `out` and reads one whole response into `resp`.
pub(crate) async fn exchange_on(
    app: &mut TcpStream,
    out: &[u8],
    resp: &mut Vec<u8>,
) -> io::Result<Answered> {
    app.write_all(out).await?;
    let (status, head, total, keep) = loop {
        if read_more(app, resp).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match parse_response(resp)? {
            Some(parsed) => break parsed,
            None if resp.len() >= MAX_HEAD => return Err(invalid("response head too large")),
            None => {}
        }
    };
    while resp.len() < total {
        if read_more(app, resp).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    // Anything past the response is not ours to forward; the connection is not reused.
    let keep = keep && resp.len() == total;
    resp.truncate(total);
    Ok(Answered { status, head, keep })
}

/// A complete response head's status, its length, the response's whole
/// length and whether the connection stays open; `None` while the head is
/// incomplete.
fn parse_response(resp: &[u8]) -> io::Result<Option<(u16, usize, usize, bool)>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(resp) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid("response head")),
    };
    let status = parsed.code.ok_or_else(|| invalid("response status"))?;
    let mut keep = parsed.version == Some(1);
    let mut length = None;
    for field in parsed.headers.iter() {
        if field.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(field.value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| invalid("response content-length"))?;
            length = Some(n);
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked responses are not handled here"));
        } else if field.name.eq_ignore_ascii_case("connection") {
            keep &= !field
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let body = match (length, status) {
        (Some(n), _) if n <= MAX_BODY => n,
        (None, 204 | 304) => 0,
        _ => return Err(invalid("response length")),
    };
    Ok(Some((status, len, len + body, keep)))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}
