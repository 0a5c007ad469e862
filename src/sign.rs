//! `hookgate sign`: the headers a provider would send for a body on stdin, or a ready curl command.
//!
//! It signs with the same engine that verifies (`Verifier::try_sign`), so a
//! user can test a running gateway end to end before the real provider is
//! wired up. The secret comes from `--secret` (`env:`, `file:` or literal) or
//! from a route of a config file.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;

use crate::config::{self, Env};
use crate::metrics::Metrics;
use crate::verify::{providers, Message, Signed, Verifier};

/// What `hookgate sign` was asked to do (parsed by `cli.rs`).
#[derive(clap::Args)]
pub struct Args {
    /// A built-in provider (see the README's provider table).
    #[arg(long, conflicts_with_all = ["config", "route"])]
    pub provider: Option<String>,
    /// The signing secret: env:NAME, file:PATH or the value.
    #[arg(long)]
    pub secret: Option<String>,
    #[arg(long, requires = "route")]
    pub config: Option<PathBuf>,
    /// A route's name (or path) in --config.
    #[arg(long, requires = "config")]
    pub route: Option<String>,
    /// Which of the route's secrets to sign with (0 = the first).
    #[arg(long, default_value_t = 0)]
    pub secret_index: usize,
    /// Message id, for providers that send one (default: generated).
    #[arg(long)]
    pub id: Option<String>,
    /// Unix seconds (default: now).
    #[arg(long)]
    pub timestamp: Option<u64>,
    /// Where the request goes (for --curl; Square and Twilio also sign it).
    #[arg(long)]
    pub url: Option<String>,
    /// The URL the provider signs when it differs from --url (a load balancer in front).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Print a ready curl command instead of the headers.
    #[arg(long)]
    pub curl: bool,
    #[arg(long, default_value = "POST")]
    pub method: String,
}

const EXIT_USAGE: u8 = 2;

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("hookgate sign: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(args: Args) -> ExitCode {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("hookgate sign: cannot read the body from stdin: {e}");
        return ExitCode::FAILURE;
    }
    match sign(&args, &body) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Signs `body` as `args` says and returns what to print.
pub fn sign(args: &Args, body: &[u8]) -> Result<String, ExitCode> {
    let Ok(method) = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes()) else {
        return Err(usage(format!("{:?} is not an HTTP method", args.method)));
    };
    let (verifier, key_index, route_public_url) = verifier(args)?;

    let url = args.url.clone();
    let path_and_query = match &url {
        Some(u) => match path_and_query(u) {
            Some(pq) => pq,
            None => return Err(usage(format!("--url {u:?} is not an absolute http(s) URL"))),
        },
        None => "/".to_string(),
    };
    // The URL the provider signs: the route's `public_url`, else `--public-url`,
    // else the URL the request is sent to (without its query, which is appended).
    let public_url = route_public_url
        .or_else(|| args.public_url.clone())
        .or_else(|| {
            url.as_deref()
                .map(|u| u.split('?').next().unwrap_or(u).to_string())
        });
    if verifier.scheme().signs_url() && public_url.is_none() {
        return Err(usage(
            "this provider signs the URL it calls: give --url (or --public-url, or a --config route with public_url)",
        ));
    }
    let timestamp = match args.timestamp {
        Some(t) => UNIX_EPOCH + Duration::from_secs(t),
        None => SystemTime::now(),
    };
    let id = args.id.clone().unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("msg_{nanos:x}")
    });
    let msg = Message {
        body,
        id: &id,
        timestamp,
        method: &method,
        path_and_query: &path_and_query,
        public_url: public_url.as_deref(),
    };
    let signed = verifier.sign_message(key_index, &msg).map_err(|e| {
        eprintln!("hookgate sign: {e}");
        ExitCode::FAILURE
    })?;
    if !args.curl {
        // Mailgun carries its signature in the body: print the body to send.
        if verifier.scheme().carried_in_body() {
            return Ok(format!("{}\n", String::from_utf8_lossy(&signed.body)));
        }
        let mut out = String::new();
        for (k, v) in &signed.headers {
            let _ = writeln!(out, "{}: {v}", canonical(k.as_str()));
        }
        return Ok(out);
    }
    let Some(url) = url else {
        return Err(usage("--curl needs --url (where to send the request)"));
    };
    Ok(curl(&method, &url, &signed))
}

/// A shell command that sends exactly `signed` to `url`.
fn curl(method: &Method, url: &str, signed: &Signed) -> String {
    let body = signed.body.as_slice();
    let mut out = format!("{} | curl -sS -i -X {method} {}", printf(body), quote(url));
    for (k, v) in &signed.headers {
        let _ = write!(
            out,
            " \\\n  -H {}",
            quote(&format!("{}: {v}", canonical(k.as_str())))
        );
    }
    if let Some(ct) = content_type(body) {
        let _ = write!(out, " \\\n  -H {}", quote(&format!("Content-Type: {ct}")));
    }
    out.push_str(" \\\n  --data-binary @-\n");
    out
}

/// The verifier to sign with, the key to use, and the route's `public_url`.
fn verifier(args: &Args) -> Result<(Verifier, usize, Option<String>), ExitCode> {
    let secret =
        |spec: &str| config::secret_from_spec(spec, "--secret", &Env::Process).map_err(usage);
    match (&args.config, &args.route, &args.provider) {
        (Some(path), Some(name), None) => {
            let config = config::load(path).map_err(usage)?;
            let metrics = Metrics::new();
            let runtime = crate::proxy::Runtime::build(&config, &metrics).map_err(usage)?;
            let Some(route) = runtime
                .routes
                .routes()
                .iter()
                .find(|r| r.name == *name || r.pattern.as_config_str() == *name)
            else {
                let names: Vec<&str> = runtime
                    .routes
                    .routes()
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                return Err(usage(format!(
                    "no route {name:?} in {} (routes: {})",
                    path.display(),
                    names.join(", ")
                )));
            };
            let public_url = route.public_url.clone();
            match &args.secret {
                // A secret given on the command line replaces the route's.
                Some(spec) => {
                    let s = secret(spec)?;
                    let v = Verifier::new(route.verifier.scheme().clone(), &[s.expose()], None)
                        .map_err(|(_, e)| usage(format!("--secret {}", e.0)))?;
                    Ok((v, 0, public_url))
                }
                None => {
                    if args.secret_index >= route.secret_labels.len() {
                        return Err(usage(format!(
                            "--secret-index {} but route {name:?} has {} secrets",
                            args.secret_index,
                            route.secret_labels.len()
                        )));
                    }
                    Ok((route.verifier.clone(), args.secret_index, public_url))
                }
            }
        }
        (None, None, Some(provider)) => {
            let Some(scheme) = providers::builtin(provider) else {
                return Err(usage(format!(
                    "unknown provider {provider:?} (known: {}; for provider \"hmac\" use --config F --route NAME)",
                    providers::NAMES.join(", ")
                )));
            };
            let Some(spec) = &args.secret else {
                return Err(usage(
                    "--provider needs --secret (env:NAME, file:PATH or the value)",
                ));
            };
            let s = secret(spec)?;
            let v = Verifier::new(scheme, &[s.expose()], None)
                .map_err(|(_, e)| usage(format!("--secret {}", e.0)))?;
            Ok((v, 0, None))
        }
        _ => Err(usage(
            "give either --provider P --secret S, or --config F --route NAME",
        )),
    }
}

/// `/path?query` of an absolute http(s) URL.
fn path_and_query(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    Some(match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => format!("/{}", &rest[i..]),
        Some(i) => rest[i..].to_string(),
        None => "/".to_string(),
    })
}

/// Header names as providers write them (`X-Hub-Signature-256`), for readability;
/// HTTP header names are case-insensitive.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn content_type(body: &[u8]) -> Option<&'static str> {
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        Some("application/json")
    } else if !body.is_empty() && body.iter().all(|b| b.is_ascii_graphic()) && body.contains(&b'=')
    {
        Some("application/x-www-form-urlencoded")
    } else {
        None
    }
}

/// A POSIX shell single-quoted word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `printf` that writes exactly `body`: printable text as `printf '%s' '…'`,
/// anything else (NUL, control bytes, invalid UTF-8, a trailing newline…) as
/// octal escapes, which every POSIX shell's printf turns back into bytes.
fn printf(body: &[u8]) -> String {
    let plain = std::str::from_utf8(body)
        .is_ok_and(|s| s.chars().all(|c| !c.is_control() || c == '\n') && !s.ends_with('\n'));
    if plain {
        // from_utf8 succeeded just above.
        return format!("printf '%s' {}", quote(&String::from_utf8_lossy(body)));
    }
    let mut out = String::from("printf '");
    for b in body {
        let _ = write!(out, "\\{b:03o}");
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn printf_round_trips_every_byte_through_a_real_shell() {
        for body in [
            b"{\"a\": \"it's\"}".to_vec(),
            b"line\n".to_vec(),
            vec![0, 1, 2, 0xff, b'%', b'\\', b'\'', b'\n'],
            (0..=255u8).collect(),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(printf(&body))
                .output()
                .unwrap();
            assert_eq!(out.stdout, body);
        }
    }

    #[test]
    fn path_and_query_of_urls() {
        assert_eq!(
            path_and_query("https://h.example/a/b?x=1").unwrap(),
            "/a/b?x=1"
        );
        assert_eq!(path_and_query("http://h:8080").unwrap(), "/");
        assert_eq!(path_and_query("http://h?x").unwrap(), "/?x");
        assert!(path_and_query("ftp://h/").is_none());
    }

    #[test]
    fn canonical_header_names() {
        assert_eq!(canonical("x-hub-signature-256"), "X-Hub-Signature-256");
        assert_eq!(canonical("svix-id"), "Svix-Id");
    }
}
