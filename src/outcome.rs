//! How each way a request can end is answered: the status and `outcome`
//! label of every `Reason` (DESIGN §4), and the `Reason` of every error the
//! request path's steps return; hookgate's own small JSON answers. Exhaustive matches only: a new reason or
//! error without its row does not compile.

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};

use crate::body::BodyError;
use crate::forward::{ForwardError, UpstreamBody};
use crate::metrics::{Outcome, Reason};
use crate::route::Route;
use crate::strict::Malformed;
use crate::verify::Rejection;

/// Status and outcome label of each of hookgate's own answers (DESIGN §4).
pub fn reason_status(reason: Reason) -> (Outcome, StatusCode) {
    match reason {
        Reason::NoRoute => (Outcome::Rejected, StatusCode::NOT_FOUND),
        Reason::MethodNotAllowed => (Outcome::Rejected, StatusCode::METHOD_NOT_ALLOWED),
        Reason::BodyTooLarge => (Outcome::Rejected, StatusCode::PAYLOAD_TOO_LARGE),
        Reason::Timeout => (Outcome::Rejected, StatusCode::REQUEST_TIMEOUT),
        Reason::BadRequest => (Outcome::Rejected, StatusCode::BAD_REQUEST),
        Reason::MissingSignature | Reason::InvalidSignature | Reason::StaleTimestamp => {
            (Outcome::Rejected, StatusCode::UNAUTHORIZED)
        }
        Reason::InFlight => (Outcome::Rejected, StatusCode::CONFLICT),
        Reason::UpstreamUnavailable => (Outcome::UpstreamError, StatusCode::BAD_GATEWAY),
        Reason::UpstreamTimeout => (Outcome::UpstreamError, StatusCode::GATEWAY_TIMEOUT),
        Reason::ReplayStoreUnavailable
        | Reason::Overloaded
        | Reason::QueueFull
        | Reason::QueueUnavailable => (Outcome::Rejected, StatusCode::SERVICE_UNAVAILABLE),
        Reason::NotImplemented => (Outcome::Rejected, StatusCode::NOT_IMPLEMENTED),
    }
}

/// hookgate's own answer for `reason`: its JSON body, status, and the
/// headers it calls for (`Retry-After` on a 503, `Allow` on a 405).
pub fn rejected(reason: Reason, route: Option<&Route>) -> (Outcome, Response<ProxyBody>) {
    let (outcome, status) = reason_status(reason);
    let mut resp = json(status, &format!(r#"{{"error":"{}"}}"#, reason.as_str()));
    match reason {
        Reason::Overloaded
        | Reason::ReplayStoreUnavailable
        | Reason::QueueFull
        | Reason::QueueUnavailable => {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Reason::MethodNotAllowed => {
            if let Some(allow) = route.and_then(allow_header) {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
        }
        Reason::NoRoute
        | Reason::BodyTooLarge
        | Reason::Timeout
        | Reason::BadRequest
        | Reason::MissingSignature
        | Reason::InvalidSignature
        | Reason::StaleTimestamp
        | Reason::InFlight
        | Reason::UpstreamUnavailable
        | Reason::UpstreamTimeout
        | Reason::NotImplemented => {}
    }
    (outcome, resp)
}

pub fn malformed_reason(m: Malformed) -> Reason {
    match m {
        Malformed::Ambiguous => Reason::BadRequest,
        Malformed::UnsupportedCoding => Reason::NotImplemented,
    }
}

pub fn rejection_reason(r: Rejection) -> Reason {
    match r {
        Rejection::MissingSignature => Reason::MissingSignature,
        Rejection::InvalidSignature => Reason::InvalidSignature,
        Rejection::StaleTimestamp => Reason::StaleTimestamp,
    }
}

pub fn forward_reason(e: ForwardError) -> Reason {
    match e {
        ForwardError::Unavailable => Reason::UpstreamUnavailable,
        ForwardError::Timeout => Reason::UpstreamTimeout,
    }
}

pub fn body_reason(e: BodyError) -> Reason {
    match e {
        BodyError::TooLarge => Reason::BodyTooLarge,
        BodyError::Timeout => Reason::Timeout,
        BodyError::Incomplete => Reason::BadRequest,
        BodyError::BudgetSpent => Reason::Overloaded,
    }
}

/// Responses are either hookgate's own JSON or the application's streamed body.
pub type ProxyBody = Either<Full<Bytes>, UpstreamBody>;

pub fn allow_header(route: &Route) -> Option<HeaderValue> {
    let list: Vec<&str> = route.methods.iter().map(http::Method::as_str).collect();
    HeaderValue::from_str(&list.join(", ")).ok()
}

/// hookgate's own answers: small JSON bodies.
pub fn json(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::copy_from_slice(
        body.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
