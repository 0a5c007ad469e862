//! Secret validity windows and the `Hookgate-Attestation` header, through a running gateway:
//! an ended secret is refused while the current one verifies, inbound `Hookgate-*` headers never
//! reach the app, and the attestation a verified forward carries checks out independently and
//! with the README's Node and Python snippets.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use http::StatusCode;
use sha2::{Digest, Sha256};

const BODY: &[u8] = br#"{"type":"order.created","data":{"id":"ord_1","total":"12.50"}}"#;
const ATTESTATION_KEY: &str = "attestation-key-for-tests-0123456789abcdef";

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn gateway_config(upstream: &Upstream, upstream_extra: &str, routes: &str) -> String {
    format!(
        r#"
[listen]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
[upstream]
url = "{}"
timeout = "2s"
{upstream_extra}
{routes}
"#,
        upstream.url()
    )
}

async fn metrics(gw: &Gateway) -> String {
    let admin = gw.admin.unwrap();
    send(
        &format!("http://{admin}/metrics"),
        http::Method::GET,
        &[],
        b"",
    )
    .await
    .text()
}

fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|lab| l.contains(lab)))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn an_ended_secret_is_refused_while_the_current_one_verifies() {
    let upstream = Upstream::start().await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let routes = format!(
        r#"
[[routes]]
name = "levanta"
path = "/webhooks/levanta"
provider = "levanta"
secrets = [{{ source = "current-secret", not_before = "{started}" }},
           {{ value = "ended-secret", name = "old", not_after = "{ended}" }},
           {{ source = "future-secret", name = "next", not_before = "{future}", not_after = "{later}" }}]
"#,
        started = rfc3339(now - hour),
        ended = rfc3339(now - Duration::from_secs(60)),
        future = rfc3339(now + hour),
        later = rfc3339(now + hour * 24 * 30),
    );
    let gw = Gateway::start(&gateway_config(&upstream, "", &routes)).await;
    let url = gw.url("/webhooks/levanta");

    for secret in ["ended-secret", "future-secret"] {
        let reply = post(&url, &levanta_headers(secret, BODY), BODY).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{secret}");
        assert!(
            reply.text().contains("invalid_signature"),
            "{secret}: {}",
            reply.text()
        );
    }
    assert_eq!(
        upstream.count(),
        0,
        "a secret outside its window was let through"
    );

    let reply = post(&url, &levanta_headers("current-secret", BODY), BODY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.count(), 1);
    assert_eq!(&upstream.received()[0].body[..], BODY);

    let text = metrics(&gw).await;
    let m = |secret: &str| {
        sample(
            &text,
            "hookgate_secret_matches_total",
            &[r#"route="levanta""#, &format!("secret=\"{secret}\"")],
        )
    };
    assert_eq!(
        (m("0"), m("old"), m("next")),
        (Some(1.0), Some(0.0), Some(0.0))
    );
    let expiry = |secret: &str| {
        sample(
            &text,
            "hookgate_secret_expiry_seconds",
            &[r#"route="levanta""#, &format!("secret=\"{secret}\"")],
        )
    };
    // Computed at the scrape: the ended one is about -60 s, the future one about 30 days.
    let old = expiry("old").unwrap();
    assert!((-120.0..=-59.0).contains(&old), "{old}");
    let next = expiry("next").unwrap();
    let month = 30.0 * 24.0 * 3600.0;
    assert!((month - 120.0..=month).contains(&next), "{next}");
    assert_eq!(
        expiry("0"),
        None,
        "a secret without not_after has no expiry series"
    );
}

/// The replay id of a Svix message: its signed id (`sha256("id\0" + id)`), as hex.
fn svix_replay_id(msg_id: &str) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(b"id\0")
            .chain_update(msg_id.as_bytes())
            .finalize(),
    )
}

/// Parses `t=…,route=…,id=…,v1=…` and checks it from first principles.
fn check_attestation(value: &str, route: &str, id: &str, body: &[u8], from: u64, to: u64) {
    let fields: Vec<(&str, &str)> = value
        .split(',')
        .map(|p| p.split_once('=').unwrap())
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["t", "route", "id", "v1"], "{value}");
    let (t, v1) = (fields[0].1, fields[3].1);
    let secs: u64 = t.parse().unwrap();
    assert!(
        (from..=to).contains(&secs),
        "t={secs} not in [{from}, {to}]"
    );
    assert_eq!(fields[1].1, route);
    assert_eq!(fields[2].1, id);
    let signed = format!("{t}.{route}.{id}.{}", hex::encode(Sha256::digest(body)));
    let expected = hex::encode(hmac_sha256(ATTESTATION_KEY.as_bytes(), signed.as_bytes()));
    assert_eq!(v1, expected, "v1 is not HMAC-SHA256(key, {signed:?})");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const SVIX_ROUTE: &str = r#"
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;

#[tokio::test]
async fn a_verified_forward_carries_a_correct_attestation_and_a_forged_one_is_replaced() {
    let upstream = Upstream::start().await;
    let key = format!(r#"attestation_key = "{ATTESTATION_KEY}""#);
    let gw = Gateway::start(&gateway_config(&upstream, &key, SVIX_ROUTE)).await;

    let from = unix_now();
    let mut headers = svix_headers(SVIX_SECRET, "msg_attest_1", now_secs(), BODY, "svix-");
    headers.push((
        "Hookgate-Attestation".into(),
        "t=1,route=levers,id=00,v1=forged".into(),
    ));
    headers.push(("hookgate-verified".into(), "yes".into()));
    let reply = post(&gw.url("/webhooks/levers"), &headers, BODY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let to = unix_now();

    let got = &upstream.received()[0];
    assert_eq!(&got.body[..], BODY);
    let values: Vec<&str> = got
        .headers
        .get_all("hookgate-attestation")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    assert!(got.headers.get("hookgate-verified").is_none());
    check_attestation(
        values[0],
        "levers",
        &svix_replay_id("msg_attest_1"),
        BODY,
        from,
        to,
    );
    // The README's snippets accept it, and refuse it for another body or key.
    readme_snippets_agree(values[0], BODY);
}

#[tokio::test]
async fn inbound_hookgate_headers_are_removed_without_an_attestation_key() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&gateway_config(&upstream, "", SVIX_ROUTE)).await;
    let mut headers = svix_headers(SVIX_SECRET, "msg_attest_2", now_secs(), BODY, "svix-");
    headers.push(("Hookgate-Attestation".into(), "t=1,v1=forged".into()));
    headers.push(("HOOKGATE-Route".into(), "levers".into()));
    headers.push(("x-not-hookgate".into(), "kept".into()));
    let reply = post(&gw.url("/webhooks/levers"), &headers, BODY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let got = &upstream.received()[0];
    let reserved: Vec<_> = got
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("hookgate-"))
        .collect();
    assert!(reserved.is_empty(), "{reserved:?}");
    assert_eq!(got.headers["x-not-hookgate"], "kept");
}

#[tokio::test]
async fn a_shadow_route_attests_only_what_it_verified() {
    let upstream = Upstream::start().await;
    let key = format!(r#"attestation_key = "{ATTESTATION_KEY}""#);
    let route = format!("{SVIX_ROUTE}mode = \"shadow\"\n");
    let gw = Gateway::start(&gateway_config(&upstream, &key, &route)).await;
    let url = gw.url("/webhooks/levers");

    // Unverified (forged signature): forwarded by shadow mode, with no attestation at all.
    let mut forged = svix_headers(SVIX_SECRET_OLD, "msg_shadow_1", now_secs(), BODY, "svix-");
    forged.push(("hookgate-attestation".into(), "t=1,v1=forged".into()));
    let reply = post(&url, &forged, BODY).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let got = &upstream.received()[0];
    assert!(
        got.headers.get("hookgate-attestation").is_none(),
        "an unverified shadow forward was attested: {:?}",
        got.headers.get("hookgate-attestation")
    );

    // Verified on the same route: attested.
    let from = unix_now();
    let genuine = svix_headers(SVIX_SECRET, "msg_shadow_2", now_secs(), BODY, "svix-");
    post(&url, &genuine, BODY).await;
    let got = &upstream.received()[1];
    let value = got.headers["hookgate-attestation"].to_str().unwrap();
    check_attestation(
        value,
        "levers",
        &svix_replay_id("msg_shadow_2"),
        BODY,
        from,
        unix_now(),
    );
}

/// The fenced block that follows `marker` in README.md.
fn readme_block(marker: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = &readme[readme
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in README"))..];
    let start = after.find("```").unwrap();
    let code = &after[start..];
    let code = &code[code.find('\n').unwrap() + 1..];
    code[..code.find("```").unwrap()].to_string()
}

fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the README's Node and Python checks (where installed) on `header` for
/// the body, another body and another key; each must accept only the first.
fn readme_snippets_agree(header: &str, body: &[u8]) {
    let dir = std::env::temp_dir().join(format!("hookgate-attest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body_file = dir.join("body");
    std::fs::write(&body_file, body).unwrap();
    let other_file = dir.join("other");
    let mut other = body.to_vec();
    other[0] ^= 1;
    std::fs::write(&other_file, &other).unwrap();

    let node = format!(
        "{}\nconst [h, key, file] = process.argv.slice(2);\n\
         console.log(JSON.stringify(checkAttestation(h, require('fs').readFileSync(file), key)));\n",
        readme_block("<!-- attestation:node -->")
    );
    let python = format!(
        "{}\nimport json, sys\nh, key, file = sys.argv[1:4]\n\
         print(json.dumps(check_attestation(h, open(file, 'rb').read(), key.encode()), separators=(',', ':')))\n",
        readme_block("<!-- attestation:python -->")
    );
    let runners = [("node", "check.js", node), ("python3", "check.py", python)];
    let mut ran = 0;
    for (program, file, source) in runners {
        if !available(program) {
            eprintln!("{program} not installed: its README snippet is not run");
            continue;
        }
        ran += 1;
        let script = dir.join(file);
        std::fs::write(&script, source).unwrap();
        let run = |key: &str, body: &Path| {
            let out = Command::new(program)
                .arg(&script)
                .args([header, key])
                .arg(body)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{program}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let ok = run(ATTESTATION_KEY, &body_file);
        assert!(
            ok.starts_with(r#"{"route":"levers","id":""#),
            "{program} refused a genuine attestation: {ok}"
        );
        assert_eq!(
            run(ATTESTATION_KEY, &other_file),
            "null",
            "{program}: other body"
        );
        assert_eq!(
            run("another-key", &body_file),
            "null",
            "{program}: other key"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // node and python3 are installed on hookgate's CI and dev machines; say
    // so loudly rather than pass silently where neither is.
    assert!(
        ran > 0 || std::env::var_os("HOOKGATE_SKIP_SNIPPETS").is_some(),
        "neither node nor python3 found (set HOOKGATE_SKIP_SNIPPETS=1 to skip)"
    );
}
