//! The `hookgate queue` commands against a running gateway: both ends of
//! that one protocol on the admin listener. A running gateway holds its disk
//! store's file lock, so the command asks the gateway to run the same
//! [`act`](super::command::act) on its open store and prints what it answers.
//!
//! `GET /queue/list|show` and `POST /queue/redrive|drop`, with the command's
//! options as the query (`route`, `id`, `dead=1`, `body=1`); the answer is the
//! command's text: 200 done, 400 usage, 404 no such request, 500 store error.
//! The gateway names its admin address as bound in `admin.addr` beside the
//! store (the configured port may be 0). Only loopback peers are answered (403 otherwise): the admin port is often
//! bound to every interface for probes and scrapes, and these requests show
//! headers and bodies and change what gets delivered. In a pod, run the
//! command in the hookgate container (`kubectl exec`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::command::{Action, Answer, Query};
use super::Queue;

/// How long the command waits for the gateway's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(60);

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Show => "show",
            Action::Redrive => "redrive",
            Action::Drop => "drop",
        }
    }

    fn from_name(name: &str) -> Option<Action> {
        [Action::List, Action::Show, Action::Redrive, Action::Drop]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// Reads stay `GET`; what changes the store is a `POST`.
    fn method(self) -> Method {
        match self {
            Action::List | Action::Show => Method::GET,
            Action::Redrive | Action::Drop => Method::POST,
        }
    }
}

impl Query {
    fn to_uri(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(route) = &self.route {
            q.append_pair("route", route);
        }
        if let Some(id) = self.id {
            q.append_pair("id", &id.to_string());
        }
        if self.dead {
            q.append_pair("dead", "1");
        }
        if self.body {
            q.append_pair("body", "1");
        }
        format!("/queue/{}?{}", self.action.name(), q.finish())
    }

    fn from_uri(uri: &Uri) -> Result<Query, String> {
        let name = uri.path().strip_prefix("/queue/").unwrap_or_default();
        let action = Action::from_name(name).ok_or_else(|| format!("no queue command {name:?}"))?;
        let mut query = Query {
            action,
            route: None,
            id: None,
            dead: false,
            body: false,
        };
        for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "route" => query.route = Some(v.into_owned()),
                "id" => {
                    query.id = Some(v.parse().map_err(|_| format!("id {v:?} is not a number"))?)
                }
                "dead" => query.dead = v == "1",
                "body" => query.body = v == "1",
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(query)
    }
}

/// What the admin listener answers to a `/queue/…` request.
pub struct Reply {
    pub status: StatusCode,
    /// For a 405: the one method the command takes.
    pub allow: Option<Method>,
    pub text: String,
}

impl Reply {
    fn new(status: StatusCode, text: impl Into<String>) -> Reply {
        Reply {
            status,
            allow: None,
            text: text.into(),
        }
    }
}

/// The admin listener's answer to a `/queue/…` request from `peer`.
pub async fn serve(queue: Option<&Arc<Queue>>, peer: IpAddr, method: &Method, uri: &Uri) -> Reply {
    if !peer.to_canonical().is_loopback() {
        return Reply::new(
            StatusCode::FORBIDDEN,
            "queue commands are answered on loopback only: run hookgate queue on the gateway's host\n",
        );
    }
    let Some(queue) = queue else {
        return Reply::new(StatusCode::NOT_FOUND, "this gateway has no [queue]\n");
    };
    let query = match Query::from_uri(uri) {
        Ok(q) => q,
        Err(why) => return Reply::new(StatusCode::BAD_REQUEST, format!("{why}\n")),
    };
    let wants = query.action.method();
    if *method != wants {
        return Reply {
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some(wants),
            text: "method not allowed\n".into(),
        };
    }
    let reply = match super::command::act(queue.store(), &query).await {
        Ok(Answer::Done(out)) => Reply::new(StatusCode::OK, out),
        Ok(Answer::Usage(why)) => Reply::new(StatusCode::BAD_REQUEST, format!("{why}\n")),
        Ok(Answer::Missing(why)) => Reply::new(StatusCode::NOT_FOUND, format!("{why}\n")),
        Err(e) => {
            tracing::error!(error = %e, "queue command failed on the store");
            Reply::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    };
    // A redriven record is due now: wake the delivery loop.
    if reply.status == StatusCode::OK && wants == Method::POST {
        queue.wake(None);
    }
    reply
}

/// The file in the store's directory naming the running gateway's admin
/// address as bound (the configured port may be 0).
const ANNOUNCED: &str = "admin.addr";

/// Called by a gateway that opened the store at `dir` and bound its admin
/// listener at `addr`, so the commands can find it.
pub fn announce(dir: &Path, addr: SocketAddr) -> std::io::Result<()> {
    std::fs::write(dir.join(ANNOUNCED), format!("{addr}\n"))
}

/// The admin address the gateway holding the store at `dir` announced, else
/// the configured one.
pub(super) fn admin_of(dir: &Path, configured: SocketAddr) -> SocketAddr {
    std::fs::read_to_string(dir.join(ANNOUNCED))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(configured)
}

/// Asks the gateway whose admin listener is `admin` to run `query`.
pub(super) async fn ask(admin: SocketAddr, query: &Query) -> Result<Answer, String> {
    // An admin listener on every interface is reached on loopback.
    let ip = match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip @ (IpAddr::V4(_) | IpAddr::V6(_)) => ip,
    };
    let addr = SocketAddr::new(ip, admin.port());
    let (status, body) = tokio::time::timeout(ASK_TIMEOUT, exchange(addr, query))
        .await
        .map_err(|_| format!("the gateway at {addr} did not answer within {ASK_TIMEOUT:?}"))??;
    match status {
        StatusCode::OK => Ok(Answer::Done(body)),
        StatusCode::BAD_REQUEST => Ok(Answer::Usage(body.trim_end().to_string())),
        StatusCode::NOT_FOUND => Ok(Answer::Missing(body.trim_end().to_string())),
        other => Err(format!(
            "the gateway at {addr} answered {other}: {}",
            body.trim_end()
        )),
    }
}

async fn exchange(addr: SocketAddr, query: &Query) -> Result<(StatusCode, String), String> {
    let held = || format!("the queue store is in use, and its gateway's admin listener {addr}");
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{} is unreachable: {e}", held()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{}: {e}", held()))?;
    tokio::spawn(conn);
    let request = Request::builder()
        .method(query.action.method())
        .uri(query.to_uri())
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| format!("{}: {e}", held()))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{}: {e}", held()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_query_survives_the_trip_through_its_uri() {
        let q = Query {
            action: Action::Drop,
            route: Some("a b&c".into()),
            id: Some(42),
            dead: true,
            body: false,
        };
        let uri: Uri = q.to_uri().parse().unwrap();
        let back = Query::from_uri(&uri).unwrap();
        assert_eq!(back.action.name(), "drop");
        assert_eq!(back.route.as_deref(), Some("a b&c"));
        assert_eq!((back.id, back.dead, back.body), (Some(42), true, false));
        for bad in ["/queue/nuke", "/queue/list?id=x", "/queue/list?secret=1"] {
            assert!(Query::from_uri(&bad.parse().unwrap()).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn only_loopback_peers_are_answered() {
        let uri: Uri = "/queue/list".parse().unwrap();
        for (peer, status) in [
            ("10.1.2.3", StatusCode::FORBIDDEN),
            ("fd00::1", StatusCode::FORBIDDEN),
            ("127.0.0.1", StatusCode::NOT_FOUND),
            ("::1", StatusCode::NOT_FOUND),
            ("::ffff:127.0.0.1", StatusCode::NOT_FOUND),
        ] {
            let reply = serve(None, peer.parse().unwrap(), &Method::GET, &uri).await;
            assert_eq!(reply.status, status, "{peer}");
        }
    }
}
