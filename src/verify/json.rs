//! What a JSON body carries: a timestamp (Linear's `webhookTimestamp`, read only once the body
//! is trusted), or Mailgun's whole signature object (read to find the signature at all).

use serde::Deserialize as _;

use super::Rejection;

/// Mailgun's `signature` object: the fields, as received.
pub(super) struct Carried {
    pub(super) signature: String,
    pub(super) token: String,
    pub(super) timestamp: String,
}

/// The string fields `signature`, `token` and `timestamp` of the body's
/// member `object`. A body that is not a JSON object, or lacks any of them
/// (or holds one as something other than a non-empty string), carries no
/// signature. Nothing else of the body is looked at.
pub(super) fn carried(body: &[u8], object: &str) -> Result<Carried, Rejection> {
    #[derive(serde::Deserialize)]
    struct Fields {
        signature: String,
        token: String,
        timestamp: String,
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Rejection::MissingSignature)?;
    let inner = value.get(object).ok_or(Rejection::MissingSignature)?;
    let f = Fields::deserialize(inner).map_err(|_| Rejection::MissingSignature)?;
    if f.signature.is_empty() || f.token.is_empty() || f.timestamp.is_empty() {
        return Err(Rejection::MissingSignature);
    }
    Ok(Carried {
        signature: f.signature,
        token: f.token,
        timestamp: f.timestamp,
    })
}

/// The body a provider carrying its signature in `object` sends: that object,
/// then the event (which must be JSON) under `event_field`, as Mailgun does.
pub(super) fn wrap(
    object: &str,
    carried: &Carried,
    event_field: &str,
    event: &[u8],
) -> Result<Vec<u8>, String> {
    // Parsed as `carried` will parse the whole body: `IgnoredAny` would let a
    // string with invalid UTF-8 through, making a body the verifier cannot read.
    serde_json::from_slice::<serde_json::Value>(event)
        .map_err(|_| "this provider sends a JSON event: the body must be JSON".to_string())?;
    let text = |s: &str| serde_json::Value::from(s).to_string();
    let mut out = format!(
        "{{{}:{{\"timestamp\":{},\"token\":{},\"signature\":{}}},{}:",
        text(object),
        text(&carried.timestamp),
        text(&carried.token),
        text(&carried.signature),
        text(event_field)
    )
    .into_bytes();
    out.extend_from_slice(event);
    out.push(b'}');
    Ok(out)
}

/// A top-level integer field of a JSON body, as decimal text. Absent (or a
/// body that is not a JSON object) is a missing timestamp; anything but a
/// non-negative integer is a malformed one.
pub(super) fn json_timestamp(body: &[u8], field: &str) -> Result<String, Rejection> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Rejection::MissingSignature)?;
    let v = value.get(field).ok_or(Rejection::MissingSignature)?;
    v.as_u64()
        .map(|n| n.to_string())
        .ok_or(Rejection::StaleTimestamp)
}
