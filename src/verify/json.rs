//! A timestamp inside the JSON body (Linear's `webhookTimestamp`), read only when the body is trusted.

use super::Rejection;

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
