//! The production server around the pipeline: TLS (HTTP/1.1 and HTTP/2), https
//! and unix upstreams, limits under abuse, SIGTERM drain and live reload.
//! Real sockets, real TLS (certificates made here with rcgen), the real binary
//! for the signal tests.

use std::convert::Infallible;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::child::{Hookgate, Launch};
use crate::support::*;
use bytes::Bytes;
use hookgate::server::Balance;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const BODY: &[u8] = br#"{"type":"invoice.paid","data":{"id":"in_1","amount":1250}}"#;

// ---- certificates ----------------------------------------------------------

/// A test certificate authority.
struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `localhost` and 127.0.0.1: (cert PEM, PKCS#8 key PEM, cert DER).
    fn leaf(&self, cn: &str) -> (String, String, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_tls(cert_pem: &str, key_pem: &str) -> TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// A TLS connection to the gateway that trusts only `ca`, offering `alpn`.
async fn tls_connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn peer_cert(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

// ---- HTTP over an established stream ---------------------------------------

fn signed_request(
    uri: &str,
    host: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(Bytes::copy_from_slice(body)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.parse().unwrap();
    if let Some(h) = host {
        req.headers_mut()
            .insert(http::header::HOST, h.parse().unwrap());
    }
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req
}

async fn collect(resp: http::Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// An HTTP/2 client (prior knowledge, or ALPN already agreed) on `io`.
async fn h2_sender<I>(io: I) -> hyper::client::conn::http2::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// The levers route's absolute URI on `addr`'s port under the name `localhost` (HTTP/2 `:authority`).
fn levers_at(scheme: &str, addr: SocketAddr) -> String {
    format!("{scheme}://localhost:{}/webhooks/levers", addr.port())
}

/// Sends one request over HTTP/1.1 on `io` (which stays usable for more).
async fn h1_sender<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn svix(id: &str, body: &[u8]) -> Vec<(String, String)> {
    svix_headers(SVIX_SECRET, id, now_secs(), body, "svix-")
}

fn assert_same(got: &Received, sent: &[(String, String)], body: &[u8]) {
    assert_eq!(got.method, Method::POST);
    assert_eq!(&got.body[..], body, "body bytes differ");
    for (name, value) in sent {
        assert_eq!(
            got.headers.get(name.as_str()).map(|v| v.as_bytes()),
            Some(value.as_bytes()),
            "header {name} not forwarded byte for byte"
        );
    }
}

// ---- gateway configs -------------------------------------------------------

/// A one-route (svix) gateway config.
fn gateway_toml(listen_extra: &str, upstream: &str, extra: &str, secret: &str) -> String {
    format!(
        r#"
[listen]
addr = "127.0.0.1:0"
{listen_extra}
[admin]
addr = "127.0.0.1:0"
[upstream]
url = "{upstream}"
timeout = "10s"
{extra}
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{secret}"]
"#
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A gateway started from a real file, so that reloads re-read it.
async fn start_from_file(dir: &Path, toml: &str) -> (hookgate::app::Running, PathBuf) {
    let path = write(dir, "hookgate.toml", toml);
    let config = hookgate::config::load(&path).unwrap();
    let running = hookgate::app::start(&config, std::time::SystemTime::now)
        .await
        .unwrap();
    (running, path)
}

async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let r = send(&format!("http://{admin}/metrics"), Method::GET, &[], b"").await;
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("metric {name} not exposed"))
}

/// A one-route (svix) gateway in front of `upstream` (a URL), `extra` after `[upstream]`.
async fn svix_gateway(upstream: &str, extra: &str) -> Gateway {
    Gateway::start(&gateway_toml("", upstream, extra, SVIX_SECRET)).await
}

/// The `[listen]` lines for a certificate and key.
fn tls_listen(cert: &Path, key: &Path) -> String {
    format!("tls_cert = {cert:?}\ntls_key = {key:?}")
}

/// A svix gateway serving TLS with a leaf of `ca` (files written to `dir`).
async fn tls_gateway(dir: &Path, ca: &Ca, upstream: &Upstream) -> Gateway {
    let (cert, key, _) = ca.leaf("gateway");
    let cert = write(dir, "tls.crt", &cert);
    let key = write(dir, "tls.key", &key);
    Gateway::start(&gateway_toml(
        &tls_listen(&cert, &key),
        &upstream.url(),
        "",
        SVIX_SECRET,
    ))
    .await
}

/// One request over an established connection (HTTP/1.1 or HTTP/2), its reply collected.
async fn send_over<S: Sender>(sender: &mut S, req: Request<Full<Bytes>>) -> Reply {
    collect(sender.send(req).await.unwrap()).await
}

/// hyper's HTTP/1.1 and HTTP/2 client halves, as `send_over` uses them.
trait Sender {
    fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<http::Response<Incoming>>>;
}

impl Sender for hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<http::Response<Incoming>>> {
        self.send_request(req)
    }
}

impl Sender for hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl std::future::Future<Output = hyper::Result<http::Response<Incoming>>> {
        self.send_request(req)
    }
}

/// A fresh svix delivery with `id` POSTed to `url`.
async fn deliver(url: &str, id: &str) -> Reply {
    post(url, &svix(id, BODY), BODY).await
}

// ---- TLS -------------------------------------------------------------------

#[tokio::test]
async fn tls_clients_over_http1_and_http2_get_a_genuine_webhook_forwarded_identically() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hookgate test CA");
    let upstream = Upstream::start().await;
    let gw = tls_gateway(dir.path(), &ca, &upstream).await;

    // HTTP/1.1, negotiated by ALPN.
    let tls = tls_connect(gw.addr, &ca.der, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = h1_sender(tls).await;
    let sent = svix("msg_tls_h1", BODY);
    let reply = send_over(
        &mut h1,
        signed_request(
            "/webhooks/levers?x=1",
            Some("hooks.example.com"),
            &sent,
            BODY,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.headers["x-app"], "echo", "the application's answer");
    let got = &upstream.received()[0];
    assert_same(got, &sent, BODY);
    assert_eq!(got.uri, "/webhooks/levers?x=1");
    assert_eq!(got.headers["host"], "hooks.example.com");
    assert_eq!(got.headers["x-forwarded-proto"], "https");

    // HTTP/2, negotiated by ALPN.
    let tls = tls_connect(gw.addr, &ca.der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = h2_sender(tls).await;
    let sent = svix("msg_tls_h2", BODY);
    let reply = send_over(
        &mut h2,
        signed_request(&levers_at("https", gw.addr), None, &sent, BODY),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.count(), 2);
    let got = &upstream.received()[1];
    assert_same(got, &sent, BODY);
    assert_eq!(got.uri, "/webhooks/levers");
    assert_eq!(
        got.headers["host"].to_str().unwrap(),
        format!("localhost:{}", gw.addr.port()),
        "HTTP/2's :authority reaches the application as Host"
    );

    // A forged one over TLS is still refused and not forwarded.
    let mut forged = svix("msg_tls_forged", BODY);
    forged[2].1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let reply = send_over(
        &mut h2,
        signed_request(&levers_at("https", gw.addr), None, &forged, BODY),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn garbage_and_plaintext_on_the_tls_port_are_counted_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hookgate test CA");
    let upstream = Upstream::start().await;
    let gw = tls_gateway(dir.path(), &ca, &upstream).await;
    let admin = gw.admin.unwrap();

    // Random bytes, a plaintext HTTP request, and a client that connects and vanishes.
    let mut s = connect_and_write(
        gw.addr,
        &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8],
    )
    .await;
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    let mut s = connect_and_write(
        gw.addr,
        b"POST /webhooks/levers HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
    drop(TcpStream::connect(gw.addr).await.unwrap());

    let mut errors = 0.0;
    for _ in 0..100 {
        errors = metric(admin, "hookgate_tls_handshake_errors_total").await;
        if errors >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(errors >= 3.0, "handshake errors counted: {errors}");

    // A real client is still served.
    let tls = tls_connect(gw.addr, &ca.der, &[b"http/1.1"]).await;
    let mut h1 = h1_sender(tls).await;
    let sent = svix("msg_after_garbage", BODY);
    let reply = send_over(
        &mut h1,
        signed_request("/webhooks/levers", Some("x"), &sent, BODY),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Runs `openssl` (installed by `.ci/run`) and returns its stdout.
fn openssl(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("openssl is needed for this test (.ci/run installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn rsa_and_ecdsa_keys_in_pkcs8_pkcs1_and_sec1_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hookgate test CA");
    let rsa_pkcs8 = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        "",
    );
    let rsa_pkcs1 = openssl(&["rsa", "-traditional"], &rsa_pkcs8);
    let ec_pkcs8 = KeyPair::generate().unwrap().serialize_pem();
    let ec_sec1 = openssl(&["ec"], &ec_pkcs8);
    assert!(rsa_pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(rsa_pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(ec_sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let upstream = Upstream::start().await;
    for (name, key_pem, signing_pem) in [
        ("rsa-pkcs8", &rsa_pkcs8, &rsa_pkcs8),
        ("rsa-pkcs1", &rsa_pkcs1, &rsa_pkcs8),
        ("ec-pkcs8", &ec_pkcs8, &ec_pkcs8),
        ("ec-sec1", &ec_sec1, &ec_pkcs8),
    ] {
        let leaf_key = KeyPair::from_pem(signing_pem).unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&leaf_key, &ca.issuer).unwrap();
        let cert_path = write(
            dir.path(),
            &format!("{name}.crt"),
            &format!("{}{}", cert.pem(), ca.pem),
        );
        let key_path = write(dir.path(), &format!("{name}.key"), key_pem);
        let gw = Gateway::start(&gateway_toml(
            &tls_listen(&cert_path, &key_path),
            &upstream.url(),
            "",
            SVIX_SECRET,
        ))
        .await;
        let tls = tls_connect(gw.addr, &ca.der, &[b"http/1.1"]).await;
        assert_eq!(peer_cert(&tls), *cert.der(), "{name}");
        assert_eq!(
            tls.get_ref().1.peer_certificates().unwrap().len(),
            2,
            "{name}: the whole chain is sent"
        );
        let mut h1 = h1_sender(tls).await;
        let sent = svix(&format!("msg_{name}"), BODY);
        let reply = send_over(
            &mut h1,
            signed_request("/webhooks/levers", Some("x"), &sent, BODY),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
    }
}

#[tokio::test]
async fn plain_http2_with_prior_knowledge_is_served() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(&upstream.url(), "").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let mut h2 = h2_sender(tcp).await;
    let sent = svix("msg_h2c", BODY);
    let reply = send_over(
        &mut h2,
        signed_request(&levers_at("http", gw.addr), None, &sent, BODY),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_same(&upstream.received()[0], &sent, BODY);
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hookgate test CA");
    let (cert, _, _) = ca.leaf("gateway");
    let (_, other_key, _) = ca.leaf("other");
    let cert = write(dir.path(), "tls.crt", &cert);
    let key = write(dir.path(), "tls.key", &other_key);
    let config = hookgate::config::parse(
        &gateway_toml(
            &tls_listen(&cert, &key),
            "http://127.0.0.1:9",
            "",
            SVIX_SECRET,
        ),
        Path::new("test.toml"),
        &hookgate::config::Env::Process,
    )
    .unwrap();
    let err = hookgate::app::start(&config, std::time::SystemTime::now)
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("tls.key"), "names the files: {msg}");
    assert!(matches!(err, hookgate::app::StartError::Tls(_)));
}

// ---- upstreams -------------------------------------------------------------

type Log = Arc<Mutex<Vec<Received>>>;

/// Serves one connection of a recording application (HTTP/1.1 or HTTP/2).
async fn serve_recording<I>(io: I, log: Log)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            log.lock().unwrap().push(Received {
                method: parts.method,
                uri: parts.uri.to_string(),
                headers: parts.headers,
                body,
                answered: StatusCode::ACCEPTED,
                arrived: std::time::Instant::now(),
            });
            let mut resp = http::Response::new(Full::new(Bytes::from_static(b"{\"app\":1}")));
            *resp.status_mut() = StatusCode::ACCEPTED;
            Ok::<_, Infallible>(resp)
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_receives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("app private CA");
    let (cert, key, _) = ca.leaf("app");
    let acceptor = server_tls(&cert, &key);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let alpn: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::default();
    {
        let (log, alpn) = (log.clone(), alpn.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, log, alpn) = (acceptor.clone(), log.clone(), alpn.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    alpn.lock()
                        .unwrap()
                        .push(tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                    serve_recording(tls, log).await;
                });
            }
        });
    }
    let ca_file = write(dir.path(), "ca.pem", &ca.pem);
    let gw = svix_gateway(
        &format!("https://localhost:{port}"),
        &format!("ca_file = {ca_file:?}"),
    )
    .await;
    let sent = svix("msg_https_up", BODY);
    let reply = post(&gw.url("/webhooks/levers?q=1"), &sent, BODY).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    assert_eq!(reply.text(), "{\"app\":1}");
    let got = log.lock().unwrap()[0].clone();
    assert_same(&got, &sent, BODY);
    assert!(got.uri.ends_with("/webhooks/levers?q=1"), "{}", got.uri);
    assert_eq!(got.headers["x-forwarded-proto"], "http");
    assert!(alpn.lock().unwrap()[0].is_some(), "ALPN offered upstream");

    // Without the private CA the application's certificate is not trusted: 502, nothing sent.
    let gw2 = svix_gateway(&format!("https://localhost:{port}"), "").await;
    let reply = deliver(&gw2.url("/webhooks/levers"), "msg_untrusted").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.text(), r#"{"error":"upstream_unavailable"}"#);
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unix_socket_upstream_receives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let log: Log = Arc::default();
    {
        let log = log.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_recording(s, log.clone()));
            }
        });
    }
    let gw = Gateway::start(&gateway_toml(
        "",
        &format!("unix:{}", sock.display()),
        "",
        SVIX_SECRET,
    ))
    .await;
    for i in 0..3 {
        let sent = svix(&format!("msg_unix_{i}"), BODY);
        let reply = send(
            &gw.url("/webhooks/levers"),
            Method::POST,
            &[sent.clone(), vec![("host".into(), "app.internal".into())]].concat(),
            BODY,
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        let got = log.lock().unwrap()[i].clone();
        assert_same(&got, &sent, BODY);
        assert_eq!(got.uri, "/webhooks/levers");
        assert_eq!(
            got.headers["host"], "app.internal",
            "the client's Host is kept"
        );
    }
}

// ---- limits ----------------------------------------------------------------

/// A raw connection to `addr` that has already sent `bytes`.
async fn connect_and_write(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    s
}

/// Reads until the peer closes or answers; `Some(bytes)` once it did either.
async fn closed_or_answered(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Err(_) => None,
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        Ok(Err(_)) => Some(Vec::new()),
    }
}

#[tokio::test]
async fn slowloris_is_cut_off_by_header_timeout_while_others_are_served() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(&upstream.url(), "[limits]\nheader_timeout = \"2s\"").await;
    let addr = gw.addr;

    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let request = b"POST /webhooks/levers HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";
        for (i, byte) in request.iter().enumerate() {
            if s.write_all(&[*byte]).await.is_err() {
                return (i, started.elapsed(), Vec::new());
            }
            // One byte a second.
            if let Some(answer) = closed_or_answered(&mut s, Duration::from_secs(1)).await {
                return (i, started.elapsed(), answer);
            }
        }
        (request.len(), started.elapsed(), Vec::new())
    });
    // Meanwhile others are served.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..2 {
        let reply = deliver(
            &gw.url("/webhooks/levers"),
            &format!("msg_during_slowloris_{i}"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let (sent, elapsed, answer) = slow.await.unwrap();
    assert!(
        sent < 15,
        "cut off after {sent} bytes ({elapsed:?}), not allowed to finish its headers"
    );
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "closed, or told 408: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_header_timeout() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(&upstream.url(), "[limits]\nheader_timeout = \"1s\"").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let got = closed_or_answered(&mut s, Duration::from_secs(15)).await;
    assert_eq!(got, Some(Vec::new()), "closed without a word");
}

#[tokio::test]
async fn a_connection_that_stalls_inside_the_http2_preface_is_closed_after_header_timeout() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(&upstream.url(), "[limits]\nheader_timeout = \"1s\"").await;
    // Not yet HTTP/1 nor HTTP/2: the protocol is still unknown when it stops.
    for part in [&b"P"[..], b"PRI * HTTP/2.0\r\n"] {
        let started = Instant::now();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(part).await.unwrap();
        let got = closed_or_answered(&mut s, Duration::from_secs(15)).await;
        assert_eq!(got, Some(Vec::new()), "closed without a word");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(
        &upstream.url(),
        "[limits]\nmax_headers = 20\nmax_header_bytes = \"8KiB\"",
    )
    .await;
    let many: String = (0..40).map(|i| format!("x-h{i}: v\r\n")).collect();
    let large = format!("x-big: {}\r\n", "a".repeat(16 << 10));
    for extra in [many, large] {
        let mut s = connect_and_write(
            gw.addr,
            format!(
                "POST /webhooks/levers HTTP/1.1\r\nhost: x\r\n{extra}content-length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let answer = closed_or_answered(&mut s, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_flood_beyond_max_inflight_gets_503_then_normal_service_resumes() {
    let upstream = Upstream::start().await;
    upstream.answer_with(Answer {
        delay: Duration::from_secs(3),
        ..Answer::default()
    });
    let gw = svix_gateway(&upstream.url(), "[limits]\nmax_inflight = 2").await;
    let url = gw.url("/webhooks/levers");
    let flood: Vec<_> = (0..10)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(
                async move { post(&url, &svix(&format!("msg_flood_{i}"), BODY), BODY).await },
            )
        })
        .collect();
    let mut ok = 0;
    let mut overloaded = 0;
    for r in flood {
        let reply = r.await.unwrap();
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(reply.text(), r#"{"error":"overloaded"}"#);
                assert_eq!(reply.headers["retry-after"], "1");
                overloaded += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (1..=2).contains(&ok),
        "at most max_inflight forwarded: {ok}"
    );
    assert_eq!(ok + overloaded, 10);
    assert_eq!(upstream.count(), ok, "refused ones never reached the app");

    upstream.answer_with(Answer::default());
    let reply = post(&url, &svix("msg_after_flood", BODY), BODY).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn clients_that_only_declare_large_bodies_do_not_take_the_budget() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(
        &upstream.url(),
        "[limits]\nmax_body = \"64KiB\"\nmax_buffered = \"100KiB\"\nbody_timeout = \"30s\"",
    )
    .await;
    // Ten idle clients declare 50KiB each (five times the budget) and send nothing;
    // were declarations reserved, the first two would hold all of it.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let s = connect_and_write(
            gw.addr,
            b"POST /webhooks/levers HTTP/1.1\r\nhost: x\r\ncontent-length: 51200\r\n\r\n",
        )
        .await;
        idle.push(s);
    }
    let reply = deliver(&gw.url("/webhooks/levers"), "msg_past_idle").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.count(), 1);
    drop(idle);
}

#[tokio::test]
async fn max_buffered_budget_refuses_with_503_and_holds_memory_then_recovers() {
    let upstream = Upstream::start().await;
    let gw = svix_gateway(
        &upstream.url(),
        "[limits]\nmax_body = \"64KiB\"\nmax_buffered = \"100KiB\"\nbody_timeout = \"30s\"",
    )
    .await;
    let admin = gw.admin.unwrap();
    let budget = 100.0 * 1024.0;

    // Six uploaders each declare 40KiB and send only half: memory is reserved
    // as the bytes arrive (the capacity of the block they need, counted before
    // it is allocated), so the 100KiB budget holds two and refuses the rest.
    let declared = 40 << 10;
    let mut holders = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        let before = metric(admin, "hookgate_buffered_bytes").await;
        let mut s = connect_and_write(
            gw.addr,
            format!(
                "POST /webhooks/levers HTTP/1.1\r\nhost: x\r\ncontent-length: {declared}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        s.write_all(&vec![b'a'; declared / 2]).await.unwrap();
        // Either hookgate answers (refused), or this body's reservation shows
        // in the gauge (held while it waits for the rest).
        let held_if_accepted = before + (declared / 2) as f64;
        let mut outcome = None;
        for _ in 0..200 {
            if let Some(answer) = closed_or_answered(&mut s, Duration::from_millis(50)).await {
                outcome = Some(Some(answer));
                break;
            }
            if metric(admin, "hookgate_buffered_bytes").await >= held_if_accepted {
                outcome = Some(None);
                break;
            }
        }
        match outcome.expect("neither answered nor held within 10 s") {
            None => holders.push(s),
            Some(answer) => {
                let text = String::from_utf8_lossy(&answer);
                assert!(text.starts_with("HTTP/1.1 503"), "{text}");
                assert!(text.contains("retry-after: 1"), "{text}");
                assert!(text.contains(r#"{"error":"overloaded"}"#), "{text}");
                refused += 1;
            }
        }
        let held = metric(admin, "hookgate_buffered_bytes").await;
        assert!(held <= budget, "buffered {held} within max_buffered");
    }
    assert_eq!(
        holders.len(),
        2,
        "each half is held in one 40KiB buffer (the declared length), counted whole"
    );
    assert!(refused >= 1, "six 20KiB halves do not all fit in 100KiB");

    // A chunked body (no Content-Length) is reserved as it arrives: refused too.
    let reply = {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let chunk = vec![b'b'; 30 << 10];
        s.write_all(
            format!(
                "POST /webhooks/levers HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
                chunk.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n0\r\n\r\n").await.unwrap();
        closed_or_answered(&mut s, Duration::from_secs(10))
            .await
            .unwrap()
    };
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 503"));

    // The holders go away: their reservations come back and service resumes.
    drop(holders);
    let mut held = budget;
    for _ in 0..100 {
        held = metric(admin, "hookgate_buffered_bytes").await;
        if held == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held, 0.0);
    let reply = deliver(&gw.url("/webhooks/levers"), "msg_after_budget").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn max_connections_caps_open_connections_and_frees_slots() {
    max_connections_cap(Balance::Exact).await;
}

#[tokio::test]
async fn max_connections_caps_open_connections_when_each_worker_accepts() {
    max_connections_cap(Balance::Kernel).await;
}

async fn max_connections_cap(balance: Balance) {
    let upstream = Upstream::start().await;
    let gw = Gateway::start_balanced(
        &gateway_toml(
            "",
            &upstream.url(),
            "[limits]\nmax_connections = 2\nheader_timeout = \"30s\"",
            SVIX_SECRET,
        ),
        balance,
    )
    .await;
    let admin = gw.admin.unwrap();
    // Two idle connections take both slots (the kernel still completes more
    // handshakes into its backlog, but hookgate does not accept them).
    let a = TcpStream::connect(gw.addr).await.unwrap();
    let b = TcpStream::connect(gw.addr).await.unwrap();
    eventually_async(|| async { metric(admin, "hookgate_open_connections").await == 2.0 }).await;
    let url = gw.url("/webhooks/levers");
    let waiting = tokio::spawn(async move { post(&url, &svix("msg_third", BODY), BODY).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection waits for a slot"
    );
    assert_eq!(metric(admin, "hookgate_open_connections").await, 2.0);
    drop(a);
    let reply = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    drop(b);
}

async fn eventually_async<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

// ---- certificate rotation (file watch, Kubernetes-style symlink swap) -----

/// Lays out `dir` as kubelet does: `..<version>/files`, `..data -> ..<version>`,
/// `tls.crt -> ..data/tls.crt`; a rotation swaps `..data` atomically.
fn kube_publish(dir: &Path, version: &str, files: &[(&str, &str)]) {
    let v = dir.join(format!("..{version}"));
    std::fs::create_dir(&v).unwrap();
    for (name, text) in files {
        std::fs::write(v.join(name), text).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_handshakes_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hookgate test CA");
    let (cert1, key1, der1) = ca.leaf("first");
    kube_publish(dir.path(), "v1", &[("tls.crt", &cert1), ("tls.key", &key1)]);
    let upstream = Upstream::start().await;
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (gw, _) = start_from_file(
        dir.path(),
        &gateway_toml(&tls_listen(&cert, &key), &upstream.url(), "", SVIX_SECRET),
    )
    .await;
    let addr = gw.addr;
    let first = tls_connect(addr, &ca.der, &[b"http/1.1"]).await;
    assert_eq!(peer_cert(&first), der1);
    let mut open = h1_sender(first).await;

    let (cert2, key2, der2) = ca.leaf("second");
    kube_publish(dir.path(), "v2", &[("tls.crt", &cert2), ("tls.key", &key2)]);
    let mut served = der1.clone();
    for _ in 0..100 {
        served = peer_cert(&tls_connect(addr, &ca.der, &[b"http/1.1"]).await);
        if served == der2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, der2, "new handshakes get the rotated certificate");
    let metrics = gw.proxy.metrics();
    assert!(metrics
        .encode()
        .contains("hookgate_config_reloads_total{result=\"success\"} 1"));

    // The connection opened before the rotation still works.
    let sent = svix("msg_across_rotation", BODY);
    let reply = send_over(
        &mut open,
        signed_request("/webhooks/levers", Some("x"), &sent, BODY),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // A broken certificate (key from another pair) is refused; the old one stays.
    let (_, key3, _) = ca.leaf("third");
    kube_publish(dir.path(), "v3", &[("tls.crt", &cert2), ("tls.key", &key3)]);
    eventually(|| {
        metrics
            .encode()
            .contains("hookgate_config_reloads_total{result=\"failure\"} 1")
    })
    .await;
    assert_eq!(
        peer_cert(&tls_connect(addr, &ca.der, &[b"http/1.1"]).await),
        der2
    );
}

// ---- the real binary: SIGTERM drain, SIGHUP reload -------------------------

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    sigterm_drain("exact").await;
}

#[tokio::test]
async fn sigterm_drains_when_each_worker_accepts() {
    sigterm_drain("kernel").await;
}

async fn sigterm_drain(balance: &str) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    upstream.answer_with(Answer {
        status: StatusCode::CREATED,
        headers: vec![("x-app".into(), "slow".into())],
        body: Bytes::from_static(b"{\"app\":\"finished\"}"),
        delay: Duration::from_secs(6),
    });
    let config = write(
        dir.path(),
        "hookgate.toml",
        &gateway_toml(
            "",
            &upstream.url(),
            "[limits]\nshutdown_grace = \"30s\"",
            SVIX_SECRET,
        ),
    );
    let mut proc = Hookgate::launch(&config, balanced(balance)).await;
    let url = proc.url("/webhooks/levers");
    let in_flight = tokio::spawn(async move { post(&url, &svix("msg_drain", BODY), BODY).await });
    eventually(|| upstream.count() == 1).await;

    proc.signal(nix::sys::signal::Signal::SIGTERM);
    // Admin stays up while draining, and says so.
    let admin = proc.admin.unwrap();
    eventually_async(|| async move {
        let r = send(&format!("http://{admin}/readyz"), Method::GET, &[], b"").await;
        r.status == StatusCode::SERVICE_UNAVAILABLE && r.text() == "draining\n"
    })
    .await;
    // New connections are refused.
    let addr = proc.addr;
    eventually_async(|| async move { TcpStream::connect(addr).await.is_err() }).await;

    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.headers["x-app"], "slow");
    assert_eq!(reply.text(), "{\"app\":\"finished\"}");
    assert_eq!(proc.exit_code().await, Some(0));
    assert!(proc.logged("draining"));
    assert!(proc.logged("\"outcome\":\"forwarded\""));
    assert!(proc.logged(&format!("\"balance\":\"{balance}\"")));
}

#[tokio::test]
async fn sighup_reloads_a_new_secret_and_a_broken_config_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let secret_file = write(dir.path(), "levers.secret", &format!("{SVIX_SECRET}\n"));
    let toml = |secret: &str| gateway_toml("", &upstream.url(), "", secret);
    let config = write(
        dir.path(),
        "hookgate.toml",
        &toml(&format!("file:{}", secret_file.display())),
    );
    let proc = Hookgate::start(&config).await;
    let url = proc.url("/webhooks/levers");
    let new_secret = SVIX_SECRET_OLD;
    let with = |secret: &str, id: &str| svix_headers(secret, id, now_secs(), BODY, "svix-");

    assert_eq!(
        post(&url, &with(SVIX_SECRET, "m1"), BODY).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(&url, &with(new_secret, "m2"), BODY).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A new secret in the config (a literal now), then SIGHUP.
    std::fs::write(&config, toml(new_secret)).unwrap();
    proc.signal(nix::sys::signal::Signal::SIGHUP);
    let url2 = url.clone();
    let mut n = 0;
    eventually_async(|| {
        n += 1;
        let (url, h) = (url2.clone(), with(new_secret, &format!("m3_{n}")));
        async move { post(&url, &h, BODY).await.status == StatusCode::OK }
    })
    .await;
    proc.wait_logged("SIGHUP: reloading").await;
    assert_eq!(
        post(&url, &with(SVIX_SECRET, "m4"), BODY).await.status,
        StatusCode::UNAUTHORIZED,
        "the old secret is gone"
    );

    // A broken config: rejected, reported, and the previous one keeps serving.
    std::fs::write(&config, "[listen]\naddr = \"127.0.0.1:0\"\n[upstreem]\n").unwrap();
    proc.signal(nix::sys::signal::Signal::SIGHUP);
    let admin = proc.admin.unwrap();
    eventually_async(|| async move {
        metric(admin, "hookgate_config_reloads_total{result=\"failure\"}").await >= 1.0
    })
    .await;
    proc.wait_logged("reload failed").await;
    assert_eq!(
        post(&url, &with(new_secret, "m5"), BODY).await.status,
        StatusCode::OK
    );
    let admin = proc.admin.unwrap();
    let ready = send(&format!("http://{admin}/readyz"), Method::GET, &[], b"").await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
async fn a_changed_secret_file_is_picked_up_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    kube_publish(dir.path(), "v1", &[("levers", SVIX_SECRET)]);
    let secret = dir.path().join("levers");
    let (gw, _) = start_from_file(
        dir.path(),
        &gateway_toml(
            "",
            &upstream.url(),
            "",
            &format!("file:{}", secret.display()),
        ),
    )
    .await;
    let url = format!("http://{}/webhooks/levers", gw.addr);
    let with = |secret: &str, id: &str| svix_headers(secret, id, now_secs(), BODY, "svix-");
    assert_eq!(
        post(&url, &with(SVIX_SECRET, "f1"), BODY).await.status,
        StatusCode::OK
    );

    kube_publish(dir.path(), "v2", &[("levers", SVIX_SECRET_OLD)]);
    let mut n = 0;
    eventually_async(|| {
        n += 1;
        let (url, h) = (url.clone(), with(SVIX_SECRET_OLD, &format!("f2_{n}")));
        async move { post(&url, &h, BODY).await.status == StatusCode::OK }
    })
    .await;
}

#[tokio::test]
async fn out_of_file_descriptors_is_counted_and_serving_resumes() {
    out_of_file_descriptors("exact").await;
}

#[tokio::test]
async fn out_of_file_descriptors_when_each_worker_accepts() {
    out_of_file_descriptors("kernel").await;
}

/// `hookgate run` with `HOOKGATE_BALANCE` set.
fn balanced(balance: &str) -> Launch {
    Launch {
        env: vec![("HOOKGATE_BALANCE".into(), balance.into())],
        ..Launch::default()
    }
}

async fn out_of_file_descriptors(balance: &str) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let config = write(
        dir.path(),
        "hookgate.toml",
        &gateway_toml("", &upstream.url(), "", SVIX_SECRET),
    );
    // The gateway gets 64 file descriptors; the flood below needs more.
    let mut proc = Hookgate::launch(
        &config,
        Launch {
            max_fds: Some(64),
            ..balanced(balance)
        },
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..120 {
        // The kernel completes these handshakes into the listen backlog
        // whether or not hookgate can accept them.
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(proc.addr)).await
        {
            flood.push(s);
        }
    }
    proc.wait_logged("accept failed").await;
    drop(flood);

    // Once the flood's connections are gone the gateway serves again, and says what happened.
    let url = proc.url("/webhooks/levers");
    let reply = post(&url, &svix("msg_after_emfile", BODY), BODY).await;
    assert_eq!(reply.status, StatusCode::OK);
    let errors = metric(proc.admin.unwrap(), "hookgate_accept_errors_total").await;
    eprintln!("accept errors counted: {errors}");
    assert!(errors >= 1.0);
    assert!(proc.logged("Too many open files"));
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(proc.exit_code().await, Some(0));
}

#[test]
fn unusable_tls_files_stop_startup_with_exit_code_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hookgate test CA");
    let (cert, _, _) = ca.leaf("gateway");
    let (_, other_key, _) = ca.leaf("other");
    let cert = write(dir.path(), "tls.crt", &cert);
    let key = write(dir.path(), "tls.key", &other_key);
    let not_pem = write(dir.path(), "ca.pem", "this is not a certificate\n");
    let cases = [
        (
            gateway_toml(
                &tls_listen(&cert, &key),
                "http://127.0.0.1:9",
                "",
                SVIX_SECRET,
            ),
            "listen.tls_cert / listen.tls_key",
        ),
        (
            gateway_toml(
                "",
                "https://127.0.0.1:9",
                &format!("ca_file = {not_pem:?}"),
                SVIX_SECRET,
            ),
            "upstream.ca_file",
        ),
    ];
    for (toml, field) in cases {
        let config = write(dir.path(), "hookgate.toml", &toml);
        let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(field), "names {field}: {stderr}");
    }
}
