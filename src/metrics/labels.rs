//! The fixed label values of hookgate's metrics: every `outcome`, `reason`
//! and `op`, each with its one spelling. `Enum` lets metric handles be held
//! in an `EnumMap` indexed by the value itself, with no hand-kept list.

use enum_map::Enum;

/// The `outcome` label of `hookgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Outcome {
    Forwarded,
    Rejected,
    Duplicate,
    UpstreamError,
    /// Stored by a `delivery = "queue"` route and answered 202 (DESIGN §8).
    Queued,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Queued => "queued",
        }
    }
}

/// Every answer hookgate gives itself: the `reason` label and the JSON `error` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Reason {
    NoRoute,
    MethodNotAllowed,
    BodyTooLarge,
    Timeout,
    BadRequest,
    MissingSignature,
    InvalidSignature,
    StaleTimestamp,
    InFlight,
    UpstreamUnavailable,
    UpstreamTimeout,
    ReplayStoreUnavailable,
    Overloaded,
    NotImplemented,
    /// The queue holds `queue.max_bytes`: 503, the provider retries.
    QueueFull,
    /// The queue could not store the request (a disk error): 503.
    QueueUnavailable,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoRoute => "no_route",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BodyTooLarge => "body_too_large",
            Reason::Timeout => "timeout",
            Reason::BadRequest => "bad_request",
            Reason::MissingSignature => "missing_signature",
            Reason::InvalidSignature => "invalid_signature",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::InFlight => "in_flight",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::ReplayStoreUnavailable => "replay_store_unavailable",
            Reason::Overloaded => "overloaded",
            Reason::NotImplemented => "not_implemented",
            Reason::QueueFull => "queue_full",
            Reason::QueueUnavailable => "queue_unavailable",
        }
    }
}

/// The `op` label of the replay store's latency and error metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum StoreOp {
    Claim,
    Delivered,
    Release,
    Ping,
}

impl StoreOp {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Claim => "claim",
            StoreOp::Delivered => "delivered",
            StoreOp::Release => "release",
            StoreOp::Ping => "ping",
        }
    }
}

/// The `result` label of `hookgate_queue_attempts_total`: how one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Attempt {
    /// The application answered 2xx: the record is deleted.
    Delivered,
    /// Failed; another attempt is scheduled.
    Failed,
    /// Failed for the last time (a final 4xx, `max_attempts` or `max_age`): kept as a dead letter.
    DeadLettered,
}

impl Attempt {
    pub fn as_str(self) -> &'static str {
        match self {
            Attempt::Delivered => "delivered",
            Attempt::Failed => "failed",
            Attempt::DeadLettered => "dead_lettered",
        }
    }
}
