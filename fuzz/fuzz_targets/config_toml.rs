//! Fuzz target: the config loader (TOML text -> `Config` -> route table) never panics; what it accepts is coherent.
//!
//! Input: configuration text (UTF-8). `env:` secrets resolve from a fixed map.
//! Inputs naming a `file:` secret are skipped: the loader would read whatever
//! file the fuzzer names (`/dev/zero`, `/dev/stdin`).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use hookgate::config::{parse, Env};
use hookgate::metrics::Metrics;
use hookgate::route::RouteTable;
use libfuzzer_sys::fuzz_target;

/// The names the examples use, plus a few: whsec/whpk keys where the provider needs them.
fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const SHARED: &str = "a-shared-secret";
        Env::Map(
            [
                ("SVIX_SECRET", WHSEC),
                ("STDWH_SECRET", WHSEC),
                ("LEVERS_WEBHOOK_SECRET", WHSEC),
                (
                    "SVIX_PUBLIC_KEY",
                    "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=",
                ),
                ("STRIPE_SECRET", "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"),
                ("HOOKGATE_REDIS_URL", "redis://:pw@127.0.0.1:6379/0"),
                ("HEX_SECRET", "00112233445566778899aabbccddeeff"),
                ("B64_SECRET", "c2VjcmV0LWtleS1mb3ItZnV6emluZw=="),
                ("BLANK", " "),
                ("ACME_SECRET", SHARED),
                ("GITHUB_SECRET", SHARED),
                ("GITLAB_TOKEN", SHARED),
                ("INTERCOM_CLIENT_SECRET", SHARED),
                ("LEAFLINK_SECRET", SHARED),
                ("LEAFLINK_WEBHOOK_KEY", SHARED),
                ("LEVANTA_SECRET", SHARED),
                ("LEVANTA_WEBHOOK_SECRET", SHARED),
                ("LINEAR_SECRET", SHARED),
                ("ORBIT_SECRET", SHARED),
                ("PADDLE_SECRET", SHARED),
                ("SHOPIFY_SECRET", SHARED),
                ("SLACK_SECRET", SHARED),
                ("SQUARE_SECRET", SHARED),
                ("TWILIO_AUTH_TOKEN", SHARED),
                ("ZOOM_SECRET", SHARED),
                ("SECRET", SHARED),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("file:") {
        return;
    }
    let config = match parse(text, Path::new("fuzz.toml"), env()) {
        Ok(c) => c,
        Err(e) => {
            assert_eq!(e.file, "fuzz.toml");
            assert!(!e.message.is_empty(), "an error without a message: {e:?}");
            return;
        }
    };
    let Ok(table) = RouteTable::build(&config, &Metrics::new()) else {
        return;
    };
    for route in table.routes() {
        let scheme = route.verifier.scheme();
        assert!(
            scheme.validate().is_ok(),
            "route {:?}: incoherent scheme",
            route.name
        );
        assert!(
            !scheme.signs_url() || route.public_url.is_some(),
            "route {:?} signs the URL without public_url",
            route.name
        );
        assert_eq!(
            route.secret_labels.len(),
            config.routes[0..]
                .iter()
                .find(|r| r.name == route.name)
                .map_or(0, |r| r.secrets.len())
        );
    }
});
