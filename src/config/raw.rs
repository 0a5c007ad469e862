//! The configuration file's shape as serde reads it: every table closed to
//! unknown keys, every enum-like value a serde enum, sizes and durations typed.
//!
//! serde's error for an unknown key names it and the keys expected; for a bad
//! enum value, the values allowed.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::model::{Delivery, Mode, OnStoreError, QueueStore, StoreKind};
use super::units::{Dur, Size};
use crate::verify::generic;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: RawListen,
    pub(super) admin: Option<RawAdmin>,
    pub(super) upstream: RawUpstream,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) replay: RawReplay,
    pub(super) queue: Option<RawQueue>,
    #[serde(default)]
    pub(super) routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub(super) addr: String,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) addr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: String,
    pub(super) timeout: Option<Dur>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) forwarded_headers: Option<bool>,
    pub(super) attestation_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_body: Option<Size>,
    pub(super) max_buffered: Option<Size>,
    pub(super) header_timeout: Option<Dur>,
    pub(super) body_timeout: Option<Dur>,
    pub(super) max_inflight: Option<NonZeroUsize>,
    pub(super) max_connections: Option<NonZeroUsize>,
    pub(super) max_headers: Option<NonZeroUsize>,
    pub(super) max_header_bytes: Option<Size>,
    pub(super) shutdown_grace: Option<Dur>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReplay {
    #[serde(default)]
    pub(super) store: StoreKind,
    pub(super) capacity: Option<NonZeroUsize>,
    pub(super) ttl: Option<Dur>,
    pub(super) redis_url: Option<String>,
    pub(super) redis_ca_file: Option<PathBuf>,
    pub(super) redis_prefix: Option<String>,
    pub(super) redis_timeout: Option<Dur>,
    #[serde(default)]
    pub(super) on_store_error: OnStoreError,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    #[serde(default)]
    pub(super) store: QueueStore,
    pub(super) path: Option<PathBuf>,
    pub(super) redis_url: Option<String>,
    pub(super) redis_ca_file: Option<PathBuf>,
    pub(super) redis_prefix: Option<String>,
    pub(super) redis_timeout: Option<Dur>,
    pub(super) redis_lease: Option<Dur>,
    pub(super) max_bytes: Option<Size>,
    pub(super) max_attempts: Option<std::num::NonZeroU32>,
    pub(super) max_age: Option<Dur>,
    pub(super) retry_initial: Option<Dur>,
    pub(super) retry_max: Option<Dur>,
    pub(super) concurrency: Option<NonZeroUsize>,
}

/// A secret: a spec string (`env:NAME`, `file:PATH` or a literal), or a table
/// `{ source = "…", name = "…", not_before = …, not_after = … }` where only
/// `source` is required. `value` is accepted for `source` (the form before
/// validity windows existed); giving both is an error.
pub(super) enum RawSecret {
    Plain(String),
    Table(TableSecret),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TableSecret {
    #[serde(alias = "value")]
    pub(super) source: String,
    pub(super) name: Option<String>,
    /// RFC 3339 text, or a TOML offset date-time; checked in `config::route`.
    pub(super) not_before: Option<RawInstant>,
    pub(super) not_after: Option<RawInstant>,
}

/// An instant as written: a string or a TOML date-time, kept as its text.
pub(super) struct RawInstant(pub(super) String);

impl<'de> Deserialize<'de> for RawSecret {
    // By hand, not `#[serde(untagged)]`: an untagged enum replaces the
    // table's own error (an unknown key, a missing `source`) with "did not
    // match any variant".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret spec string or a table { source = \"…\", name, not_before, not_after }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSecret, E> {
                Ok(RawSecret::Plain(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSecret, A::Error> {
                TableSecret::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSecret::Table)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawInstant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(RawInstant(s)),
            toml::Value::Datetime(dt) => Ok(RawInstant(dt.to_string())),
            other @ (toml::Value::Integer(_)
            | toml::Value::Float(_)
            | toml::Value::Boolean(_)
            | toml::Value::Array(_)
            | toml::Value::Table(_)) => Err(de::Error::custom(format!(
                "expected an RFC 3339 date-time such as \"2026-12-01T00:00:00Z\", found a {}",
                other.type_str()
            ))),
        }
    }
}

/// An HTTP method a route may accept, in upper or lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(super) enum MethodName {
    #[serde(alias = "get")]
    Get,
    #[serde(alias = "head")]
    Head,
    #[serde(alias = "post")]
    Post,
    #[serde(alias = "put")]
    Put,
    #[serde(alias = "patch")]
    Patch,
    #[serde(alias = "delete")]
    Delete,
    #[serde(alias = "options")]
    Options,
}

impl From<MethodName> for http::Method {
    fn from(m: MethodName) -> Self {
        match m {
            MethodName::Get => http::Method::GET,
            MethodName::Head => http::Method::HEAD,
            MethodName::Post => http::Method::POST,
            MethodName::Put => http::Method::PUT,
            MethodName::Patch => http::Method::PATCH,
            MethodName::Delete => http::Method::DELETE,
            MethodName::Options => http::Method::OPTIONS,
        }
    }
}

/// One `[[routes]]` table: the common keys, and the generic scheme's keys
/// (which only `provider = "hmac"` may hold; `route.rs` checks that, since
/// `provider` may come after them).
pub(super) struct RawRoute {
    pub(super) name: Option<String>,
    pub(super) path: String,
    pub(super) provider: String,
    pub(super) secrets: Vec<RawSecret>,
    pub(super) tolerance: Option<Dur>,
    pub(super) methods: Option<Vec<MethodName>>,
    pub(super) mode: Mode,
    pub(super) delivery: Delivery,
    pub(super) public_url: Option<String>,
    pub(super) scheme: generic::Raw,
}

/// The keys every route may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum CommonKey {
    Name,
    Path,
    Provider,
    Secrets,
    Tolerance,
    Methods,
    Mode,
    Delivery,
    PublicUrl,
}

const COMMON_KEYS: [&str; 9] = [
    "name",
    "path",
    "provider",
    "secrets",
    "tolerance",
    "methods",
    "mode",
    "delivery",
    "public_url",
];

/// Every key a route may hold, for the "expected one of" of an unknown one.
const ROUTE_KEYS: [&str; COMMON_KEYS.len() + generic::KEYS.len()] = {
    let mut all = [""; COMMON_KEYS.len() + generic::KEYS.len()];
    let mut i = 0;
    while i < COMMON_KEYS.len() {
        all[i] = COMMON_KEYS[i];
        i += 1;
    }
    let mut j = 0;
    while j < generic::KEYS.len() {
        all[i + j] = generic::KEYS[j];
        j += 1;
    }
    all
};

enum RouteKey {
    Common(CommonKey),
    Scheme(generic::Key),
}

impl<'de> Deserialize<'de> for RouteKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RouteKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a route key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<RouteKey, E> {
                let common: de::value::StrDeserializer<'_, de::value::Error> =
                    key.into_deserializer();
                if let Ok(common) = CommonKey::deserialize(common) {
                    return Ok(RouteKey::Common(common));
                }
                generic::Key::from_name(key)
                    .map(RouteKey::Scheme)
                    .ok_or_else(|| E::unknown_field(key, &ROUTE_KEYS))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RouteVisitor)
    }
}

struct RouteVisitor;

impl<'de> Visitor<'de> for RouteVisitor {
    type Value = RawRoute;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a [[routes]] table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRoute, A::Error> {
        let (mut name, mut path, mut provider, mut secrets) = (None, None, None, None);
        let (mut tolerance, mut methods, mut mode, mut public_url) = (None, None, None, None);
        let mut delivery = None;
        let mut scheme = generic::Raw::default();
        while let Some(key) = map.next_key::<RouteKey>()? {
            match key {
                RouteKey::Common(CommonKey::Name) => name = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Path) => path = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Provider) => provider = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Secrets) => secrets = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Tolerance) => tolerance = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Methods) => methods = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Mode) => mode = Some(map.next_value()?),
                RouteKey::Common(CommonKey::Delivery) => delivery = Some(map.next_value()?),
                RouteKey::Common(CommonKey::PublicUrl) => public_url = Some(map.next_value()?),
                RouteKey::Scheme(key) => scheme.read(key, &mut map)?,
            }
        }
        Ok(RawRoute {
            name,
            path: path.ok_or_else(|| de::Error::missing_field("path"))?,
            provider: provider.ok_or_else(|| de::Error::missing_field("provider"))?,
            secrets: secrets.unwrap_or_default(),
            tolerance,
            methods,
            mode: mode.unwrap_or_default(),
            delivery: delivery.unwrap_or_default(),
            public_url,
            scheme,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_key_is_accepted() {
        for key in ROUTE_KEYS {
            let key: de::value::StrDeserializer<'_, de::value::Error> = key.into_deserializer();
            assert!(RouteKey::deserialize(key).is_ok());
        }
    }
}
