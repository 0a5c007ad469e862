//! The hybrid (`rawup`): hyper's server in front, as hookgate has it, and the
//! purpose-built path's upstream exchange (`raw.rs`) behind, in place of a
//! hyper client. It tells the two halves' costs apart: what replacing only the
//! application side, the trusted peer, would save.
//!
//! The request hyper parsed is written out as an HTTP/1.1 head (every field
//! but `Connection`) and its body in one buffer; the whole response is read on
//! an application connection taken from the worker's idle list, its head
//! parsed a second time into the `Response` hyper's server encodes again.

use std::io;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{request, HeaderName, HeaderValue, Response, StatusCode};
use tokio::net::TcpStream;

use crate::raw::{self, Answered};

/// One worker's idle application connections.
pub(crate) struct AppPool {
    upstream: &'static str,
    idle: Mutex<Vec<TcpStream>>,
}

impl AppPool {
    pub(crate) fn new(upstream: &'static str) -> Self {
        AppPool {
            upstream,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<TcpStream>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request to the application and its whole response.
    pub(crate) async fn send(
        &self,
        parts: &request::Parts,
        body: &[u8],
    ) -> io::Result<Response<Bytes>> {
        let mut out = Vec::with_capacity(512 + body.len());
        out.extend_from_slice(parts.method.as_str().as_bytes());
        out.push(b' ');
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &parts.headers {
            if name == http::header::CONNECTION {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);

        let pooled = self.idle().pop();
        let reused = pooled.is_some();
        let mut resp = Vec::with_capacity(4096);
        let (app, answered) = match pooled {
            Some(mut app) => match raw::exchange_on(&mut app, &out, &mut resp).await {
                Ok(answered) => (app, answered),
                Err(_) if reused && resp.is_empty() => self.fresh(&out, &mut resp).await?,
                Err(e) => return Err(e),
            },
            None => self.fresh(&out, &mut resp).await?,
        };
        let response = into_response(resp, &answered)?;
        if answered.keep {
            self.idle().push(app);
        }
        Ok(response)
    }

    async fn fresh(&self, out: &[u8], resp: &mut Vec<u8>) -> io::Result<(TcpStream, Answered)> {
        resp.clear();
        let mut app = TcpStream::connect(self.upstream).await?;
        app.set_nodelay(true)?;
        let answered = raw::exchange_on(&mut app, out, resp).await?;
        Ok((app, answered))
    }
}

/// The application's response as hyper's server takes it.
fn into_response(resp: Vec<u8>, answered: &Answered) -> io::Result<Response<Bytes>> {
    let invalid = |what| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut fields = [httparse::EMPTY_HEADER; raw::MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    parsed.parse(&resp).map_err(|_| invalid("response head"))?;
    let mut response = Response::new(Bytes::new());
    *response.status_mut() =
        StatusCode::from_u16(answered.status).map_err(|_| invalid("response status"))?;
    let headers = response.headers_mut();
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| invalid("response field name"))?;
        if name == http::header::CONNECTION {
            continue;
        }
        let value =
            HeaderValue::from_bytes(field.value).map_err(|_| invalid("response field value"))?;
        headers.append(name, value);
    }
    *response.body_mut() = Bytes::from(resp).slice(answered.head..);
    Ok(response)
}
