//! Secret validity windows through a running gateway: an ended secret is refused while the
//! current one verifies.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, SystemTime};

use http::StatusCode;
use support::*;

const BODY: &[u8] = br#"{"type":"order.created","data":{"id":"ord_1","total":"12.50"}}"#;

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
