//! The upstream client: exact bytes, hop-by-hop policy, keep-alive pool and
//! timeout, over `http://`, `https://` (rustls) or a `unix:` socket.
//!
//! Plain `http://` goes through hookgate's own pool ([`pool`]); `https://`
//! and `unix:` through hyper-util's client.

mod deadline;
mod pool;
mod wire;

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{request, Request, Response, Uri};
use hyper::body::{Frame, SizeHint};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tokio::time::Instant;

use crate::config::{Upstream, UpstreamTarget};
use crate::verify::Pass;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardError {
    /// Could not connect, or the connection failed before a response.
    Unavailable,
    /// No response headers within `upstream.timeout`.
    Timeout,
}

pub use deadline::{BodyTimeout, UpstreamBody};
pub use pool::{BodyError, ResponseBody};

/// Where a request came from, for the `X-Forwarded-*` headers.
#[derive(Debug, Clone)]
pub struct Origin {
    pub peer: IpAddr,
    pub tls: bool,
    /// `peer` as `X-Forwarded-For` carries it, written once per connection
    /// rather than once per request (BENCHMARKS.md: instructions per request).
    forwarded_for: HeaderValue,
}

impl Origin {
    pub fn new(peer: IpAddr, tls: bool) -> Origin {
        // An address's text is always a valid header value; RFC 7239's
        // "unknown" stands in should that ever not hold.
        let forwarded_for = HeaderValue::try_from(peer.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Origin {
            peer,
            tls,
            forwarded_for,
        }
    }
}

/// Why the upstream cannot be set up: a configuration problem, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// The pooled client for each kind of upstream: one closed set, one match.
enum Pool {
    /// `http://`: hookgate's own pool, requests in origin-form.
    Http(pool::HttpPool),
    /// `https://`.
    Tcp(Client<HttpsConnector<HttpConnector>, Outgoing>),
    Unix(Client<UnixConnector, Outgoing>),
}

pub struct Forwarder {
    pool: Pool,
    scheme: Scheme,
    authority: Authority,
    /// `Host` for a request that carries none (HTTP/1.0 may not), as
    /// hyper-util's client sets it from the URI.
    host: HeaderValue,
    timeout: Duration,
    forwarded_headers: bool,
}

/// The upstream URL's authority (`host[:port]`), as typed config left it.
fn parse_authority(authority: &str) -> Result<Authority, SetupError> {
    authority
        .parse::<Authority>()
        .map_err(|e| SetupError(format!("upstream.url: {e}")))
}

impl Forwarder {
    pub fn new(upstream: &Upstream) -> Result<Self, SetupError> {
        let builder = {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(1024);
            b
        };
        let (pool, scheme, authority) = match &upstream.target {
            UpstreamTarget::Http {
                https: false,
                authority,
            } => {
                let authority = parse_authority(authority)?;
                let addr = format!(
                    "{}:{}",
                    authority.host(),
                    authority.port_u16().unwrap_or(80)
                );
                let pool = pool::HttpPool::new(addr, upstream.timeout);
                (Pool::Http(pool), Scheme::HTTP, authority)
            }
            UpstreamTarget::Http {
                https: true,
                authority,
            } => {
                let authority = parse_authority(authority)?;
                let mut http = HttpConnector::new();
                http.set_nodelay(true);
                http.set_keepalive(Some(Duration::from_secs(60)));
                http.set_connect_timeout(Some(upstream.timeout));
                // The TLS layer decides by the URI's scheme (always https here).
                http.enforce_http(false);
                let tls = crate::tls::client_config(upstream.ca_file.as_deref())
                    .map_err(|e| SetupError(format!("upstream.ca_file: {e}")))?;
                let connector = HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http);
                (
                    Pool::Tcp(builder.build(connector)),
                    Scheme::HTTPS,
                    authority,
                )
            }
            UpstreamTarget::Unix(path) => {
                let connector = UnixConnector {
                    path: Arc::new(path.clone()),
                };
                // The socket path is the address; the authority only names the
                // pool's one host (the request's own Host header is kept).
                (
                    Pool::Unix(builder.build(connector)),
                    Scheme::HTTP,
                    Authority::from_static("localhost"),
                )
            }
        };
        let host = host_header(&scheme, &authority)?;
        Ok(Forwarder {
            pool,
            scheme,
            authority,
            host,
            timeout: upstream.timeout,
            forwarded_headers: upstream.forwarded_headers,
        })
    }

    /// Sends the request as received (method, path and query, end-to-end
    /// headers, exact body bytes) and returns the application's response:
    /// [`Forwarder::request`], then [`Forwarder::send`].
    pub async fn forward(
        &self,
        pass: Pass,
        parts: request::Parts,
        body: Vec<Bytes>,
        origin: Origin,
    ) -> Result<Response<ResponseBody>, ForwardError> {
        let req = self.request(pass, parts, body, &origin)?;
        let (resp, _) = self.send(req, Instant::now()).await?;
        Ok(resp)
    }

    /// The request as the application gets it. Made before anything is
    /// awaited, so that the future that sends it holds only the request, not
    /// also the parts it was made from (BENCHMARKS.md: moves per request).
    pub fn request(
        &self,
        _pass: Pass,
        parts: request::Parts,
        body: Vec<Bytes>,
        origin: &Origin,
    ) -> Result<Request<Outgoing>, ForwardError> {
        // The path and query are the received ones, shared, not re-parsed.
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let uri = match &self.pool {
            // The plain-HTTP pool writes the URI as it is: origin-form.
            Pool::Http(_) => Uri::from(path_and_query),
            // hyper-util's client wants the absolute URI (it writes origin-form).
            Pool::Tcp(_) | Pool::Unix(_) => {
                let mut target = http::uri::Parts::default();
                target.scheme = Some(self.scheme.clone());
                target.authority = Some(self.authority.clone());
                target.path_and_query = Some(path_and_query);
                // Scheme and authority were validated at startup, and the path
                // and query come from a URI hyper already parsed.
                Uri::from_parts(target).map_err(|_| ForwardError::Unavailable)?
            }
        };

        // `end_to_end` already ran on these headers (the request path, once,
        // before the attestation; a queued record was stored after it).
        let mut headers = parts.headers;
        if !headers.contains_key(header::HOST) {
            // Only an HTTP/1.0 request can come without one (`strict`, and
            // `end_to_end` fills it in from HTTP/2's `:authority`).
            headers.insert(header::HOST, self.host.clone());
        }
        // The body is forwarded whole: its one length is the length sent.
        // Duplicate (equal) Content-Length lines, which HTTP/2 lets through,
        // collapse into one true value (RFC 9110 §8.6).
        let body = Outgoing::new(body);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.remaining));
        if self.forwarded_headers {
            append(
                &mut headers,
                HeaderName::from_static("x-forwarded-for"),
                &origin.forwarded_for,
            );
            // Set, never appended: a client's own value would let it claim
            // to the application that it came over TLS.
            headers.insert(
                HeaderName::from_static("x-forwarded-proto"),
                HeaderValue::from_static(if origin.tls { "https" } else { "http" }),
            );
        }

        let mut req = Request::new(body);
        *req.method_mut() = parts.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Ok(req)
    }

    /// Sends a request made by [`Forwarder::request`]: its response's
    /// headers are due within `upstream.timeout` of `started`, the caller's
    /// reading of the clock as it sends. The response comes with the reading
    /// taken when its headers arrived. One reading serves every use at its
    /// moment: a clock read is 60-80 ns on a VM that traps `rdtsc`
    /// (BENCHMARKS.md).
    pub async fn send(
        &self,
        req: Request<Outgoing>,
        started: Instant,
    ) -> Result<(Response<ResponseBody>, Instant), ForwardError> {
        let sent = async {
            let unpooled = |r: Result<Response<hyper::body::Incoming>, _>| {
                r.map(|r| (r.map(ResponseBody::unpooled), Instant::now()))
            };
            match &self.pool {
                Pool::Http(p) => p.send(req, started).await.map_err(|e| e.to_string()),
                Pool::Tcp(c) => unpooled(c.request(req).await).map_err(|e| e.to_string()),
                Pool::Unix(c) => unpooled(c.request(req).await).map_err(|e| e.to_string()),
            }
        };
        let (mut resp, arrived) = match tokio::time::timeout_at(started + self.timeout, sent).await
        {
            Err(_) => return Err(ForwardError::Timeout),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream request failed");
                return Err(ForwardError::Unavailable);
            }
            Ok(Ok(answer)) => answer,
        };
        strip_hop_by_hop(resp.headers_mut());
        Ok((resp, arrived))
    }

    /// The application's response body, bounded: an application that stalls
    /// its body after the headers must not hold the provider's connection for
    /// ever, so the whole body is due within another `upstream.timeout`.
    /// `from`: when the response's head arrived.
    pub fn bounded(&self, body: ResponseBody, from: Instant) -> UpstreamBody {
        UpstreamBody::new(self.timeout, body, from)
    }
}

/// The verified body on its way to the application: the blocks it was read
/// into, in order, one frame each (hyper writes them with vectored I/O, no
/// copy), with its exact length.
pub struct Outgoing {
    blocks: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl Outgoing {
    fn new(blocks: Vec<Bytes>) -> Self {
        let remaining = blocks
            .iter()
            .map(|b| u64::try_from(b.len()).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add);
        Outgoing {
            blocks: blocks.into_iter(),
            remaining,
        }
    }
}

impl Outgoing {
    /// The blocks not yet sent, in order (all of them, for the plain-HTTP pool,
    /// which writes them itself).
    pub(crate) fn blocks(&self) -> &[Bytes] {
        self.blocks.as_slice()
    }
}

impl hyper::body::Body for Outgoing {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.blocks.next();
        if let Some(block) = &next {
            let n = u64::try_from(block.len()).unwrap_or(u64::MAX);
            self.remaining = self.remaining.saturating_sub(n);
        }
        Poll::Ready(next.map(|block| Ok(Frame::data(block))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// `Host` as hyper-util's client writes it from the URI: the port only when
/// it is not the scheme's default.
fn host_header(scheme: &Scheme, authority: &Authority) -> Result<HeaderValue, SetupError> {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let value = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        Some(_) | None => authority.host().to_string(),
    };
    HeaderValue::from_str(&value).map_err(|e| SetupError(format!("upstream.url: {e}")))
}

/// Connects every request to one unix socket (the sidecar setup).
#[derive(Clone)]
struct UnixConnector {
    path: Arc<PathBuf>,
}

impl tower_service::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let path = Arc::clone(&self.path);
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(&*path).await?)) })
    }
}

/// Appends `value` to a comma-separated list header, creating it if absent.
fn append(headers: &mut HeaderMap, name: HeaderName, value: &HeaderValue) {
    let entry = match headers.entry(name) {
        header::Entry::Vacant(vacant) => {
            // Most requests: the first hop, nothing to join.
            vacant.insert(value.clone());
            return;
        }
        header::Entry::Occupied(entry) => entry,
    };
    // Every line of the list counts: a client may send the header more than once.
    let mut parts: Vec<&[u8]> = entry
        .iter()
        .map(HeaderValue::as_bytes)
        .filter(|v| !v.trim_ascii().is_empty())
        .collect();
    parts.push(value.as_bytes());
    let joined = parts.join(&b", "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        let mut entry = entry;
        entry.insert(v);
    }
}

/// The headers a request is forwarded with, decided once per request: no
/// hop-by-hop headers, and `Host` from HTTP/2's `:authority` when the request
/// carried none. Run before anything hookgate adds itself (the attestation),
/// so a client naming such a header in `Connection` cannot strip it.
pub fn end_to_end(parts: &mut request::Parts) {
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        // HTTP/2 carries the host in :authority; keep it for the application.
        if let Some(value) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, value);
        }
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `Connection`, every header it
/// names, and the fixed list that is never forwarded.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds whether any is there at all: most
    // requests carry none, most responses only `Connection`.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // `Connection` goes first, and with it the names it lists: looked up as
    // text, never made into `HeaderName`s, and not there is the usual answer
    // (`keep-alive`, `close`).
    if let header::Entry::Occupied(connection) = headers.entry(header::CONNECTION) {
        let listed: Vec<HeaderValue> = connection.remove_entry_mult().1.collect();
        for token in listed
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        {
            if let Ok(name) = std::str::from_utf8(token.trim_ascii()) {
                headers.remove(name);
            }
        }
    }
    // The rest of the fixed list, if any of it is left: a second pass over
    // the names, not a lookup of each name on the list.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name))
        .cloned()
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
}

/// The hop-by-hop headers that are never forwarded, whatever `Connection`
/// says. Told apart by length first: most names compare no text at all.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    let name = name.as_str();
    match name.len() {
        2 => name == "te",
        7 => name == "trailer" || name == "upgrade",
        10 => name == "connection" || name == "keep-alive",
        16 => name == "proxy-connection",
        17 => name == "transfer-encoding",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An `http://` upstream that answers each request with the target it
    /// was sent (as written on the wire) and its `Host`.
    async fn echo_upstream() -> std::net::SocketAddr {
        use hyper::body::Incoming;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let host = req
                        .headers()
                        .get(header::HOST)
                        .map(|h| h.to_str().unwrap().to_string());
                    let seen = format!("{} {:?}", req.uri(), host);
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(seen))))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        addr
    }

    #[tokio::test]
    async fn plain_http_goes_in_origin_form_with_a_host_even_for_http_1_0() {
        use http_body_util::BodyExt;
        let addr = echo_upstream().await;
        let forwarder = Forwarder::new(&Upstream {
            target: UpstreamTarget::Http {
                https: false,
                authority: addr.to_string(),
            },
            timeout: Duration::from_secs(5),
            ca_file: None,
            forwarded_headers: false,
        })
        .unwrap();
        assert!(matches!(forwarder.pool, Pool::Http(_)));
        let origin = Origin::new(IpAddr::from([127, 0, 0, 1]), false);
        let cases = [
            // HTTP/1.0 without Host: hookgate names the upstream, as
            // hyper-util's client did.
            (http::Version::HTTP_10, None, format!("{addr}")),
            (
                http::Version::HTTP_11,
                Some("hooks.example"),
                "hooks.example".into(),
            ),
        ];
        for (version, host, expected_host) in cases {
            let mut req = Request::builder()
                .method("POST")
                .uri("/hook?x=1")
                .version(version);
            if let Some(h) = host {
                req = req.header(header::HOST, h);
            }
            let (parts, ()) = req.body(()).unwrap().into_parts();
            let resp = forwarder
                .forward(
                    Pass::stored(),
                    parts,
                    vec![Bytes::from_static(b"{}")],
                    origin.clone(),
                )
                .await
                .unwrap();
            let body = forwarder.bounded(resp.into_body(), Instant::now());
            let seen = body.collect().await.unwrap().to_bytes();
            assert_eq!(seen, format!("/hook?x=1 Some({expected_host:?})"));
        }
    }

    #[test]
    fn the_default_port_is_left_out_of_host() {
        let host = |s: &str| host_header(&Scheme::HTTP, &s.parse().unwrap()).unwrap();
        assert_eq!(host("app:80"), "app");
        assert_eq!(host("app"), "app");
        assert_eq!(host("[::1]:8080"), "[::1]:8080");
    }

    #[test]
    fn hop_by_hop_headers_and_connection_named_ones_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert("svix-signature", "v1,abc".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("svix-signature"));
    }

    #[test]
    fn connection_names_count_on_every_line_in_any_case_and_junk_names_nothing() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, "X-Private ,, close".parse().unwrap());
        h.append(header::CONNECTION, " x-other".parse().unwrap());
        h.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-\xff, bad name").unwrap(),
        );
        h.append("x-private", "1".parse().unwrap());
        h.append("x-private", "2".parse().unwrap());
        h.insert("x-other", "3".parse().unwrap());
        h.insert("x-kept", "4".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn the_fixed_list_is_exactly_rfc_9110s_and_names_of_the_same_length_are_not_on_it() {
        let on = [
            header::CONNECTION,
            header::TE,
            header::TRAILER,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
            HeaderName::from_static("keep-alive"),
            HeaderName::from_static("proxy-connection"),
        ];
        for name in &on {
            assert!(is_hop_by_hop(name), "{name}");
        }
        let off = [
            "tk",
            "svix-id",
            "warning",
            "user-agent",
            "set-cookie",
            "x-forwarded-host",
            "content-location",
            "x-hookgate-route",
            "if-modified-since",
            "www-authenticate",
        ];
        for name in off {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[test]
    fn the_fixed_list_goes_without_a_connection_header_and_other_headers_stay() {
        let mut h = HeaderMap::new();
        h.append(header::TE, "trailers".parse().unwrap());
        h.append(header::UPGRADE, "h2c".parse().unwrap());
        h.append("proxy-connection", "keep-alive".parse().unwrap());
        h.append("x-private", "1".parse().unwrap());
        h.append("x-private", "2".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert_eq!(h.get_all("x-private").iter().count(), 2);

        let mut clean = HeaderMap::new();
        clean.insert("svix-id", "msg_1".parse().unwrap());
        strip_hop_by_hop(&mut clean);
        assert_eq!(clean.len(), 1);
    }

    #[test]
    fn forwarded_for_joins_every_line_then_appends() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "203.0.113.7".parse().unwrap());
        h.append("x-forwarded-for", "198.51.100.2".parse().unwrap());
        append(
            &mut h,
            HeaderName::from_static("x-forwarded-for"),
            &HeaderValue::from_static("10.0.0.1"),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 198.51.100.2, 10.0.0.1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
        append(
            &mut h,
            HeaderName::from_static("x-forwarded-for"),
            &HeaderValue::from_static("10.0.0.1"),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 10.0.0.1");
    }

    #[test]
    fn forwarded_for_is_the_peer_alone_on_the_first_hop_and_blank_lines_drop() {
        let origin = Origin::new("2001:db8::7".parse().unwrap(), true);
        let name = HeaderName::from_static("x-forwarded-for");
        let mut h = HeaderMap::new();
        append(&mut h, name.clone(), &origin.forwarded_for);
        assert_eq!(h["x-forwarded-for"], "2001:db8::7");

        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", " ".parse().unwrap());
        append(&mut h, name, &origin.forwarded_for);
        assert_eq!(h["x-forwarded-for"], "2001:db8::7");
    }
}
