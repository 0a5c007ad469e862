//! Whole-file tests: defaults, error messages (field, line and column,
//! expected keys, allowed values), secrets and redaction.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use http::Method;

use super::*;

fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = Env::Map(
        env.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    );
    parse(text, Path::new("/etc/hookgate/hookgate.toml"), &env)
}

const BASE: &str = r#"
[listen]
addr = "127.0.0.1:8443"
[upstream]
url = "http://127.0.0.1:3000"
[[routes]]
path = "/webhooks/levers"
provider = "svix"
secrets = ["env:LEVERS"]
"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = parse_with(BASE, &[("LEVERS", "whsec_abc")]).unwrap();
    assert_eq!(c.limits.max_body, 25 << 20);
    assert_eq!(c.limits.max_buffered, 256 << 20);
    assert_eq!(c.upstream.timeout, Duration::from_secs(25));
    assert_eq!(c.replay.capacity, 100_000);
    assert_eq!(c.routes[0].name, "/webhooks/levers");
    assert_eq!(c.routes[0].methods, vec![Method::POST]);
    assert!(c.upstream.forwarded_headers);
}

#[test]
fn unknown_key_names_the_key_and_file() {
    let text = format!("{BASE}tolerence = \"5m\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("tolerence"), "{e}");
    assert!(e.contains("/etc/hookgate/hookgate.toml"), "{e}");
}

#[test]
fn unset_env_secret_is_an_error_naming_the_field() {
    let e = parse_with(BASE, &[]).unwrap_err();
    assert_eq!(e.field, "routes[0].secrets[0]");
    assert!(e.message.contains("LEVERS"));
}

#[test]
fn empty_secret_is_an_error() {
    let e = parse_with(BASE, &[("LEVERS", "  ")]).unwrap_err();
    assert_eq!(e.field, "routes[0].secrets[0]");
}

#[test]
fn secret_debug_and_display_are_redacted() {
    let c = parse_with(BASE, &[("LEVERS", "supersecretvalue")]).unwrap();
    let s = &c.routes[0].secrets[0];
    assert!(!format!("{s:?}").contains("supersecretvalue"));
    assert!(!format!("{s}").contains("supersecretvalue"));
    assert!(!format!("{c:?}").contains("supersecretvalue"));
}

#[test]
fn redis_store_settings_parse_and_a_bad_url_names_the_field() {
    let text = format!(
        "{BASE}[replay]\nstore = \"redis\"\nredis_url = \"rediss://:pw@cache.internal:6380/2\"\nredis_timeout = \"250ms\"\non_store_error = \"allow\"\n"
    );
    let c = parse_with(&text, &[("LEVERS", "x")]).unwrap();
    assert_eq!(c.replay.store, StoreKind::Redis);
    assert_eq!(c.replay.redis_prefix, "hookgate");
    assert_eq!(c.replay.redis_timeout, Duration::from_millis(250));
    assert_eq!(c.replay.on_store_error, OnStoreError::Allow);
    assert!(
        !format!("{c:?}").contains(":pw@"),
        "the URL's password is redacted"
    );
    assert!(c.warnings.iter().any(|w| w.field == "replay.redis_url"));

    let text = format!("{BASE}[replay]\nstore = \"redis\"\nredis_url = \"env:REDIS_URL\"\n");
    let c = parse_with(
        &text,
        &[("LEVERS", "x"), ("REDIS_URL", "redis://:pw@h:1/0")],
    )
    .unwrap();
    assert_eq!(c.replay.redis_url.unwrap().expose(), b"redis://:pw@h:1/0");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let text = format!("{BASE}[replay]\nstore = \"redis\"\nredis_url = \"redis://h\"\nredis_ca_file = \"ca.pem\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "replay.redis_ca_file");

    let text = format!("{BASE}[replay]\nstore = \"redis\"\nredis_url = \"redis://:s3cret@\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "replay.redis_url");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn a_changed_redis_url_is_a_changed_store_though_debug_redacts_it() {
    let with = |url: &str, on_error: &str| {
        let text = format!(
            "{BASE}[replay]\nstore = \"redis\"\nredis_url = \"{url}\"\non_store_error = \"{on_error}\"\n"
        );
        parse_with(&text, &[("LEVERS", "x")]).unwrap().replay
    };
    let a = with("redis://a:6379/0", "reject");
    assert!(a.same_store(&with("redis://a:6379/0", "allow")));
    assert!(!a.same_store(&with("redis://b:6379/0", "reject")));
    assert_eq!(
        format!("{:?}", a.redis_url),
        format!("{:?}", with("redis://b:6379/0", "reject").redis_url)
    );
}

#[test]
fn bad_duration_names_the_field() {
    let text = BASE.replace("[upstream]", "[upstream]\ntimeout = \"soon\"");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "upstream.timeout");
}

#[test]
fn duplicate_paths_are_refused() {
    let text = format!("{BASE}[[routes]]\nname = \"again\"\npath = \"/webhooks/levers\"\nprovider = \"svix\"\nsecrets = [\"env:LEVERS\"]\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[1].path");
}

#[test]
fn prefix_routes() {
    let text = BASE.replace("/webhooks/levers", "/webhooks/*");
    let c = parse_with(&text, &[("LEVERS", "x")]).unwrap();
    assert_eq!(c.routes[0].path, PathPattern::Prefix("/webhooks/".into()));
    let bad = BASE.replace("/webhooks/levers", "/webhooks*");
    assert!(parse_with(&bad, &[("LEVERS", "x")]).is_err());
}

#[test]
fn literal_secret_warns() {
    let text = BASE.replace("env:LEVERS", "whsec_literal");
    let c = parse_with(&text, &[]).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].field, "routes[0].secrets[0]");
}

#[test]
fn whsec_secret_on_a_non_svix_route_warns() {
    let env = [("LEVERS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
    for (provider, warns) in [("svix", false), ("stripe", false), ("github", true)] {
        let text = BASE.replace("\"svix\"", &format!("{provider:?}"));
        let c = parse_with(&text, &env).unwrap();
        assert_eq!(c.warnings.len(), usize::from(warns), "{provider}");
        if warns {
            assert_eq!(c.warnings[0].field, "routes[0].secrets[0]");
            assert!(c.warnings[0].message.contains("whsec_"));
        }
    }
}

#[test]
fn unknown_key_lists_the_expected_keys_with_line_and_column() {
    let text = BASE.replace("[upstream]", "[upstream]\ntimeuot = \"5s\"");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "upstream.timeuot");
    assert!(e.message.contains("unknown field `timeuot`"), "{e}");
    for expected in ["`url`", "`timeout`", "`ca_file`", "`forwarded_headers`"] {
        assert!(e.message.contains(expected), "{expected}: {e}");
    }
    // toml's own position: the key is on line 5 of BASE (which opens with a newline).
    assert!(e.message.contains("line 5, column 1"), "{e}");
}

#[test]
fn unknown_route_key_lists_common_and_generic_keys() {
    let text = format!("{BASE}tolerence = \"5m\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].tolerence");
    for expected in ["`tolerance`", "`public_url`", "`header`", "`key_encoding`"] {
        assert!(e.message.contains(expected), "{expected}: {e}");
    }
    assert!(e.message.contains("line 10, column 1"), "{e}");
}

#[test]
fn bad_enum_value_lists_the_allowed_values() {
    let cases = [
        (
            "[replay]\non_store_error = \"alow\"\n",
            "replay.on_store_error",
            &["`reject`", "`allow`"][..],
        ),
        (
            "[replay]\nstore = \"memcached\"\n",
            "replay.store",
            &["`memory`", "`redis`"],
        ),
    ];
    for (extra, field, allowed) in cases {
        let e = parse_with(&format!("{BASE}{extra}"), &[("LEVERS", "x")]).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.contains("line 11"), "{e}");
        for value in allowed {
            assert!(e.message.contains(value), "{value}: {e}");
        }
    }
    let text = format!("{BASE}mode = \"shdow\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].mode");
    assert!(
        e.message.contains("`enforce`") && e.message.contains("`shadow`"),
        "{e}"
    );
    let text = format!("{BASE}methods = [\"POST\", \"FETCH\"]\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].methods[1]");
    assert!(e.message.contains("`PUT`"), "{e}");
}

#[test]
fn generic_scheme_errors_name_the_route_key() {
    let hmac = BASE.replace("\"svix\"", "\"hmac\"");
    let e = parse_with(
        &format!("{hmac}header = \"x\"\nalgorithm = \"md5\"\n"),
        &[("LEVERS", "x")],
    )
    .unwrap_err();
    assert_eq!(e.field, "routes[0].algorithm");
    assert!(e.message.contains("`sha512`"), "{e}");
    let e = parse_with(
        &format!("{hmac}header = \"x\"\nheadr = \"y\"\n"),
        &[("LEVERS", "x")],
    )
    .unwrap_err();
    assert_eq!(e.field, "routes[0].headr");
    let e = parse_with(&format!("{BASE}header = \"x\"\n"), &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].header");
    assert!(e.message.contains("provider = \"hmac\""), "{e}");
    let e = parse_with(&BASE.replace("\"svix\"", "\"svx\""), &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].provider");
}

#[test]
fn the_route_scheme_is_resolved_at_load() {
    let c = parse_with(BASE, &[("LEVERS", "whsec_abc")]).unwrap();
    assert_eq!(
        c.routes[0].scheme,
        crate::verify::providers::builtin("svix").unwrap()
    );
    let hmac = BASE.replace("\"svix\"", "\"hmac\"");
    let c = parse_with(
        &format!("{hmac}header = \"x-sig\"\nmethods = [\"post\", \"PUT\"]\nmode = \"shadow\"\n"),
        &[("LEVERS", "k")],
    )
    .unwrap();
    let route = &c.routes[0];
    assert_eq!(route.provider, "hmac");
    assert_eq!(route.scheme.signature_header, "x-sig");
    assert_eq!(route.methods, vec![Method::POST, Method::PUT]);
    assert_eq!(route.mode, Mode::Shadow);
}

#[test]
fn syntax_errors_keep_line_and_column() {
    let e = parse_with("[listen\naddr = 1", &[]).unwrap_err();
    assert_eq!(e.field, "(syntax)");
    assert!(e.message.contains("line 1, column"), "{e}");
}

#[test]
fn sizes_and_counts_name_the_field() {
    for (extra, field) in [
        ("[limits]\nmax_body = \"12 parsecs\"\n", "limits.max_body"),
        ("[limits]\nmax_body = 0\n", "limits.max_body"),
        ("[limits]\nmax_inflight = 0\n", "limits.max_inflight"),
        ("[limits]\nbody_timeout = \"0s\"\n", "limits.body_timeout"),
        ("[replay]\nttl = \"500000000000years\"\n", "replay.ttl"),
    ] {
        let e = parse_with(&format!("{BASE}{extra}"), &[("LEVERS", "x")]).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
    let c = parse_with(
        &format!("{BASE}[limits]\nmax_body = \"100kB\"\nmax_header_bytes = 16384\n"),
        &[("LEVERS", "x")],
    )
    .unwrap();
    assert_eq!(c.limits.max_body, 100_000);
    assert_eq!(c.limits.max_header_bytes, 16384);
}

#[test]
fn a_parse_error_does_not_quote_the_line_it_is_on() {
    let text = format!("{BASE}[replay]\nredis_ulr = \"redis://:s3cret@cache:6379/0\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "replay.redis_ulr");
    assert!(e.message.contains("line 11, column 1"), "{e}");
    assert!(e.message.contains("`redis_url`"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

fn with_secrets(secrets: &str) -> String {
    BASE.replace(
        r#"secrets = ["env:LEVERS"]"#,
        &format!("secrets = {secrets}"),
    )
}

const KEYS: &[(&str, &str)] = &[
    ("LEVERS", "whsec_abc"),
    ("NEW", "whsec_new"),
    ("OLD", "whsec_old"),
];

#[test]
fn secret_tables_take_source_or_value_and_optional_windows() {
    let text = with_secrets(
        r#"[{ source = "env:NEW", not_before = "2026-12-01T00:00:00Z" },
           { value = "env:OLD", name = "2024-q1", not_after = 2026-12-08T00:00:00Z },
           { source = "env:LEVERS", not_before = "2026-12-01T00:00:00.5Z", not_after = "2027-01-01T00:00:00+00:00" },
           "env:LEVERS"]"#,
    );
    let c = parse_with(&text, KEYS).unwrap();
    let s = &c.routes[0].secrets;
    let at = |t: &str| humantime::parse_rfc3339(t).unwrap();
    assert_eq!(s[0].label, "0");
    assert_eq!(s[0].validity.not_before, Some(at("2026-12-01T00:00:00Z")));
    assert_eq!(s[0].validity.not_after, None);
    assert_eq!(s[0].expose(), b"whsec_new");
    assert_eq!(s[1].label, "2024-q1");
    assert_eq!(s[1].validity.not_after, Some(at("2026-12-08T00:00:00Z")));
    assert_eq!(
        s[2].validity.not_before,
        Some(at("2026-12-01T00:00:00Z") + Duration::from_millis(500))
    );
    assert_eq!(s[2].validity.not_after, Some(at("2027-01-01T00:00:00Z")));
    assert!(s[3].validity.is_always());
}

#[test]
fn a_bad_window_is_an_error_naming_the_field() {
    let cases = [
        (
            r#"[{ source = "env:NEW", not_before = "2026-12-01" }]"#,
            "routes[0].secrets[0].not_before",
        ),
        (
            r#"["env:OLD", { source = "env:NEW", not_after = "2026-12-01T00:00:00+02:00" }]"#,
            "routes[0].secrets[1].not_after",
        ),
        (
            r#"[{ source = "env:NEW", not_before = "2026-12-08T00:00:00Z", not_after = "2026-12-01T00:00:00Z" }]"#,
            "routes[0].secrets[0].not_after",
        ),
        (
            r#"[{ source = "env:NEW", not_before = "2026-12-01T00:00:00Z", not_after = "2026-12-01T00:00:00Z" }]"#,
            "routes[0].secrets[0].not_after",
        ),
    ];
    for (secrets, field) in cases {
        let e = parse_with(&with_secrets(secrets), KEYS).unwrap_err();
        assert_eq!(e.field, field, "{secrets}: {e}");
    }
    let e = parse_with(
        &with_secrets(r#"[{ source = "env:NEW", not_before = 5 }]"#),
        KEYS,
    )
    .unwrap_err();
    assert!(e.field.contains("not_before"), "{e}");
    assert!(e.message.contains("RFC 3339"), "{e}");
}

#[test]
fn a_secret_table_keeps_serde_errors_for_unknown_or_missing_keys() {
    let e = parse_with(
        &with_secrets(r#"[{ source = "env:NEW", not_afer = "x" }]"#),
        KEYS,
    )
    .unwrap_err();
    assert!(e.message.contains("not_afer"), "{e}");
    let e = parse_with(&with_secrets(r#"[{ name = "a" }]"#), KEYS).unwrap_err();
    assert!(e.message.contains("source"), "{e}");
    let e = parse_with(
        &with_secrets(r#"[{ source = "env:NEW", value = "env:OLD" }]"#),
        KEYS,
    )
    .unwrap_err();
    assert!(e.message.contains("duplicate"), "{e}");
}

#[test]
fn two_secrets_of_a_route_cannot_share_a_label() {
    let e = parse_with(
        &with_secrets(r#"["env:OLD", { source = "env:NEW", name = "0" }]"#),
        KEYS,
    )
    .unwrap_err();
    assert_eq!(e.field, "routes[0].secrets[1].name", "{e}");
}

fn with_attestation(key: &str) -> String {
    BASE.replace(
        "url = \"http://127.0.0.1:3000\"\n",
        &format!("url = \"http://127.0.0.1:3000\"\nattestation_key = \"{key}\"\n"),
    )
}

#[test]
fn attestation_key_is_a_secret_resolved_at_load() {
    let key = "k".repeat(32);
    let c = parse_with(
        &with_attestation("env:AK"),
        &[("LEVERS", "whsec_abc"), ("AK", &key)],
    )
    .unwrap();
    assert_eq!(c.attestation_key.as_ref().unwrap().expose(), key.as_bytes());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(!format!("{c:?}").contains(&key));

    let e = parse_with(&with_attestation("env:AK"), &[("LEVERS", "whsec_abc")]).unwrap_err();
    assert_eq!(e.field, "upstream.attestation_key");

    let c = parse_with(&with_attestation("short"), &[("LEVERS", "whsec_abc")]).unwrap();
    let fields: Vec<&str> = c.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        ["upstream.attestation_key", "upstream.attestation_key"]
    );
    assert!(parse_with(BASE, &[("LEVERS", "whsec_abc")])
        .unwrap()
        .attestation_key
        .is_none());
}

#[test]
fn with_an_attestation_key_route_names_must_fit_the_header() {
    let text = with_attestation("env:AK").replace(
        "path = \"/webhooks/levers\"",
        "name = \"levers, eu\"\npath = \"/webhooks/levers\"",
    );
    let env = [
        ("LEVERS", "whsec_abc"),
        ("AK", "0123456789abcdef0123456789abcdef"),
    ];
    let e = parse_with(&text, &env).unwrap_err();
    assert_eq!(e.field, "routes[0].name", "{e}");
    // Without a key the name is only a label.
    let text = BASE.replace(
        "path = \"/webhooks/levers\"",
        "name = \"levers, eu\"\npath = \"/webhooks/levers\"",
    );
    assert!(parse_with(&text, &env).is_ok());
}

const QUEUED: &str = r#"
[listen]
addr = "127.0.0.1:8443"
[upstream]
url = "http://127.0.0.1:3000"
[[routes]]
path = "/webhooks/levers"
provider = "svix"
secrets = ["env:LEVERS"]
delivery = "queue"
"#;

#[test]
fn queue_section_gets_design_defaults_and_a_queue_route_needs_it() {
    let e = parse_with(QUEUED, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].delivery");
    assert!(e.message.contains("[queue]"), "{e}");
    let text = format!("{QUEUED}[queue]\npath = \"q\"\n");
    let c = parse_with(&text, &[("LEVERS", "x")]).unwrap();
    let q = c.queue.unwrap();
    assert_eq!(
        q.store,
        QueueBackend::Disk {
            path: "/etc/hookgate/q".into()
        }
    );
    assert_eq!(q.max_bytes, 1 << 30);
    assert_eq!(q.max_attempts, 20);
    assert_eq!(q.max_age, Duration::from_secs(72 * 3600));
    assert_eq!(q.retry_initial, Duration::from_secs(1));
    assert_eq!(q.retry_max, Duration::from_secs(600));
    assert_eq!(q.concurrency, 16);
    assert_eq!(c.routes[0].delivery, Delivery::Queue);
    assert_eq!(
        parse_with(BASE, &[("LEVERS", "x")]).unwrap().routes[0].delivery,
        Delivery::Forward
    );
}

#[test]
fn queue_store_values_and_retry_bounds_are_checked() {
    let text = format!("{QUEUED}[queue]\nstore = \"s3\"\n");
    assert!(parse_with(&text, &[("LEVERS", "x")]).is_err());
    let text = format!("{QUEUED}[queue]\nretry_initial = \"5s\"\nretry_max = \"1s\"\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "queue.retry_max");
    let text = BASE.replace("secrets", "delivery = \"later\"\nsecrets");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert!(e.message.contains("forward"), "{e}");
}

#[test]
fn queue_store_redis_takes_its_own_url_or_shares_the_replay_redis() {
    let env = [("LEVERS", "x"), ("QURL", "redis://:pw@q.example:6379/2")];
    // Neither its own URL nor a Redis replay store: which key is missing, said plainly.
    let text = format!("{QUEUED}[queue]\nstore = \"redis\"\n");
    let e = parse_with(&text, &env).unwrap_err();
    assert_eq!(e.field, "queue.redis_url");
    assert!(e.message.contains("required"), "{e}");
    // Its own URL, from the environment; defaults for the rest.
    let text = format!("{QUEUED}[queue]\nstore = \"redis\"\nredis_url = \"env:QURL\"\n");
    let c = parse_with(&text, &env).unwrap();
    let QueueBackend::Redis(r) = c.queue.unwrap().store else {
        panic!("not a redis queue")
    };
    assert_eq!(r.url.expose(), b"redis://:pw@q.example:6379/2");
    assert!(!r.shared_with_replay);
    assert_eq!(r.prefix, "hookgate");
    assert_eq!(r.timeout, Duration::from_secs(1));
    assert_eq!(r.lease, Duration::from_secs(10));
    assert!(!format!("{r:?}").contains("pw@"), "the URL is redacted");
    // Without one, the replay store's Redis and prefix.
    let text = format!(
        "{QUEUED}[replay]\nstore = \"redis\"\nredis_url = \"env:QURL\"\nredis_prefix = \"hg\"\n\
         [queue]\nstore = \"redis\"\nredis_lease = \"3s\"\n"
    );
    let c = parse_with(&text, &env).unwrap();
    let QueueBackend::Redis(r) = c.queue.unwrap().store else {
        panic!("not a redis queue")
    };
    assert!(r.shared_with_replay);
    assert_eq!((r.prefix.as_str(), r.lease), ("hg", Duration::from_secs(3)));
    // Keys that the chosen store would ignore are refused, not ignored.
    for (extra, field) in [
        (
            "store = \"redis\"\nredis_url = \"env:QURL\"\npath = \"q\"",
            "queue.path",
        ),
        ("redis_url = \"env:QURL\"", "queue.redis_url"),
        ("redis_lease = \"5s\"", "queue.redis_lease"),
        (
            "store = \"redis\"\nredis_url = \"http://q\"",
            "queue.redis_url",
        ),
        (
            "store = \"redis\"\nredis_url = \"env:QURL\"\nredis_lease = \"200ms\"",
            "queue.redis_lease",
        ),
        (
            "store = \"redis\"\nredis_url = \"env:QURL\"\nredis_ca_file = \"ca.pem\"",
            "queue.redis_ca_file",
        ),
        (
            "store = \"redis\"\nredis_url = \"env:QURL\"\nredis_prefix = \"\"",
            "queue.redis_prefix",
        ),
    ] {
        let text = format!("{QUEUED}[queue]\n{extra}\n");
        let e = parse_with(&text, &env).unwrap_err();
        assert_eq!(e.field, field, "{extra}: {e}");
    }
}

#[test]
fn shadow_route_cannot_queue() {
    let text = format!("{QUEUED}mode = \"shadow\"\n[queue]\n");
    let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
    assert_eq!(e.field, "routes[0].delivery");
    assert!(e.message.contains("shadow"), "{e}");
}
