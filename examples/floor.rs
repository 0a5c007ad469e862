//! The floor under hookgate's data path, for the load harness (`run.sh --floor`):
//! the same process shape (a current_thread runtime per worker, hyper's HTTP/1.1
//! server, the body read whole, one pooled hyper-util client per worker, the
//! response streamed back) with nothing else: no verification, no replay
//! store, no limits, no metrics, no log line. What hookgate costs above this
//! is hookgate's own work; what this costs above nginx is hyper and tokio.
//!
//! Usage: floor LISTEN_ADDR UPSTREAM_ADDR WORKERS   (e.g. 127.0.0.1:8080 127.0.0.1:3000 2)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};

type Upstream = Client<HttpConnector, Full<Bytes>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, workers] = args.as_slice() else {
        return Err("usage: floor LISTEN_ADDR UPSTREAM_ADDR WORKERS".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: &'static str = Box::leak(upstream.clone().into_boxed_str());
    let workers: usize = workers.parse()?;
    // One listener, bound once; each worker accepts from its own clone of it
    // (the kernel hands each connection to one waiting accept).
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let threads = (0..workers)
        .map(|_| {
            let listener = listener.try_clone()?;
            Ok(std::thread::spawn(move || worker(listener, upstream)))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, upstream: &'static str) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(http);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| forward(client.clone(), upstream, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

async fn forward(
    client: Upstream,
    upstream: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Either<Incoming, Full<Bytes>>>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() {
        parts.uri = uri;
    }
    parts.headers.remove(http::header::CONNECTION);
    let req = Request::from_parts(parts, Full::new(body));
    match client.request(req).await {
        Ok(resp) => Ok(resp.map(Either::Left)),
        Err(_) => {
            let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
            *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
            Ok(resp)
        }
    }
}
