//! One `[[routes]]` table -> `RouteConfig`: path pattern, secrets, and the
//! verification scheme resolved from the catalog or the generic `hmac` keys.

use std::path::Path;

use http::Method;

use super::model::{PathPattern, RouteConfig};
use super::raw::{RawRoute, RawSecret};
use super::secret::{resolve_secret, validity};
use super::{ConfigError, Env, Secret, Warning};
use crate::verify::{generic, providers, KeyEncoding, Scheme, Validity};

/// The provider name that selects the generic scheme.
const GENERIC: &str = "hmac";

pub(super) fn route(
    raw: RawRoute,
    i: usize,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<RouteConfig, ConfigError> {
    let field = |name: &str| format!("routes[{i}].{name}");
    let err = |name: &str, msg: String| ConfigError::new(path, field(name), msg);

    let pattern = pattern(&raw.path).map_err(|m| err("path", m))?;
    let name = raw.name.unwrap_or_else(|| raw.path.clone());
    if name.is_empty() || name == "unmatched" {
        return Err(err("name", format!("{name:?} is reserved or empty")));
    }
    let scheme = scheme(&raw.provider, &raw.scheme).map_err(|(f, m)| err(&f, m))?;

    if raw.secrets.is_empty() {
        return Err(err(
            "secrets",
            "no secrets: a route must name at least one (a route without a secret would verify nothing)"
                .into(),
        ));
    }
    let mut secrets = Vec::with_capacity(raw.secrets.len());
    for (j, secret) in raw.secrets.into_iter().enumerate() {
        let f = field(&format!("secrets[{j}]"));
        let (spec, label, window) = match secret {
            RawSecret::Plain(spec) => (spec, j.to_string(), Validity::ALWAYS),
            RawSecret::Table(t) => {
                let window = validity(
                    t.not_before.as_ref().map(|i| i.0.as_str()),
                    t.not_after.as_ref().map(|i| i.0.as_str()),
                    path,
                    &f,
                )?;
                (t.source, t.name.unwrap_or_else(|| j.to_string()), window)
            }
        };
        // The label names the secret's metric series (matches, expiry): one series each.
        if let Some(k) = secrets.iter().position(|s: &Secret| s.label == label) {
            return Err(ConfigError::new(
                path,
                format!("{f}.name"),
                format!("{label:?} already names secrets[{k}] (a secret without a name is named by its position)"),
            ));
        }
        let secret = resolve_secret(&spec, label, path, env, &f, warnings)?.with_validity(window);
        if secret.expose().starts_with(b"whsec_") && !takes_whsec(&raw.provider, &scheme) {
            warnings.push(Warning {
                field: f,
                message: format!(
                    "a whsec_ secret (Svix / Standard Webhooks format) on a {:?} route: \
                     if the sender is Svix, use provider = \"svix\" (its key is base64-decoded)",
                    raw.provider
                ),
            });
        }
        secrets.push(secret);
    }

    let methods = match raw.methods {
        None => vec![Method::POST],
        Some(list) if list.is_empty() => {
            return Err(err("methods", "must name at least one method".into()))
        }
        Some(list) => list.into_iter().map(Method::from).collect(),
    };
    if let Some(url) = &raw.public_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('?') {
            return Err(err(
                "public_url",
                "must be an absolute http(s) URL without a query".into(),
            ));
        }
    }

    Ok(RouteConfig {
        name,
        path: pattern,
        provider: raw.provider,
        scheme,
        secrets,
        tolerance: raw.tolerance.map(|d| d.0),
        methods,
        mode: raw.mode,
        delivery: raw.delivery,
        public_url: raw.public_url,
        index: i,
    })
}

/// `"/exact"` or `"/prefix/*"`, ASCII, no query.
fn pattern(path: &str) -> Result<PathPattern, String> {
    if !path.is_ascii()
        || !path.starts_with('/')
        || path.contains('?')
        || path.strip_suffix('*').unwrap_or(path).contains('*')
    {
        return Err(format!(
            "{path:?} is not a path: it must be ASCII (percent-encode the rest), start with '/', hold no query, and use '*' only as a final \"/*\""
        ));
    }
    let Some(prefix) = path.strip_suffix('*') else {
        return Ok(PathPattern::Exact(path.to_string()));
    };
    if !prefix.ends_with('/') {
        return Err("a prefix route must end in \"/*\" (for example \"/webhooks/*\")".into());
    }
    Ok(PathPattern::Prefix(prefix.to_string()))
}

/// The scheme `provider` names: a built-in, or the generic one its keys
/// describe. Only the generic scheme takes keys of its own: anywhere else
/// such a key is a mistake that must not silently change nothing.
/// Errors name the route key at fault.
fn scheme(provider: &str, keys: &generic::Raw) -> Result<Scheme, (String, String)> {
    if provider == GENERIC {
        return keys.scheme().map_err(|e| (e.field, e.message));
    }
    if let Some(key) = keys.first_key() {
        return Err((
            key.name().to_string(),
            format!(
                "unknown field for provider {provider:?}: {:?} and the other generic scheme keys need provider = \"hmac\"",
                key.name()
            ),
        ));
    }
    if provider.trim().is_empty() {
        return Err(("provider".into(), "must not be empty".into()));
    }
    providers::builtin(provider).ok_or_else(|| {
        (
            "provider".into(),
            format!(
                "unknown provider {provider:?} (known: {}, or \"hmac\" for the generic scheme)",
                providers::NAMES.join(", ")
            ),
        )
    })
}

/// Whether secrets of this route legitimately start with `whsec_`: a key
/// decoded as Svix / Standard Webhooks does, and Stripe's whole `whsec_…`
/// string is its key.
fn takes_whsec(provider: &str, scheme: &Scheme) -> bool {
    scheme.key_encoding == KeyEncoding::Whsec || provider == "stripe"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prefix_and_exact_paths() {
        assert_eq!(
            pattern("/webhooks/*").unwrap(),
            PathPattern::Prefix("/webhooks/".into())
        );
        assert_eq!(
            pattern("/webhooks/levers").unwrap(),
            PathPattern::Exact("/webhooks/levers".into())
        );
        for bad in ["/webhooks*", "webhooks", "/a?b", "/a/*/b", "/é"] {
            assert!(pattern(bad).is_err(), "{bad}");
        }
    }
}
