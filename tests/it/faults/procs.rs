//! The fault run's processes and their configuration: hookgate instances (`support::child`) on fixed
//! addresses, restarted, signalled and killed -9, and redis-server (`support::redis`); what the
//! SIGHUP storm writes to an instance's configuration file.

use std::time::Duration;

pub use crate::support::child::{Hookgate, Launch};
pub use crate::support::redis::{free_port, Redis};

/// What the SIGHUP storm writes to an instance's configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The configuration the instance started with.
    Baseline,
    /// Valid, with reloadable settings changed (tolerance, max_body).
    Tweaked,
    /// Not TOML at all.
    NotToml,
    /// A misspelt key (unknown keys are errors).
    UnknownKey,
    /// A secret from an environment variable that is not set.
    MissingSecret,
    /// A route naming a provider that does not exist.
    UnknownProvider,
}

/// One instance's configuration: its own ports, the shared app and Redis.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub port: u16,
    pub admin: u16,
    pub app: u16,
    pub redis: u16,
    pub upstream_timeout: Duration,
}

impl GateConfig {
    pub fn render(&self, variant: Variant) -> String {
        use crate::support::{LEAFLINK_SECRET, LEVANTA_SECRET, SVIX_SECRET, SVIX_SECRET_OLD};
        if variant == Variant::NotToml {
            return "[listen\naddr = \"127.0.0.1:\n[[routes]]\n".into();
        }
        let (tolerance, max_body) = match variant {
            Variant::Tweaked => ("4m", "8MiB"),
            _ => ("5m", "25MiB"),
        };
        let upstream_key = if variant == Variant::UnknownKey {
            "timeuot"
        } else {
            "timeout"
        };
        let levanta_secret = if variant == Variant::MissingSecret {
            "env:HOOKGATE_FAULTS_NEVER_SET".to_string()
        } else {
            LEVANTA_SECRET.to_string()
        };
        let leaflink_provider = if variant == Variant::UnknownProvider {
            "leaflinkk"
        } else {
            "leaflink"
        };
        format!(
            r#"
[listen]
addr = "127.0.0.1:{port}"
[admin]
addr = "127.0.0.1:{admin}"
[upstream]
url = "http://127.0.0.1:{app}"
{upstream_key} = "{timeout}ms"
[limits]
max_body = "{max_body}"
shutdown_grace = "10s"
[replay]
store = "redis"
redis_url = "redis://127.0.0.1:{redis}/0"
redis_prefix = "faults"
redis_timeout = "500ms"
on_store_error = "reject"

[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{SVIX_SECRET}", "{SVIX_SECRET_OLD}"]
tolerance = "{tolerance}"

[[routes]]
name = "levanta"
path = "/webhooks/levanta"
provider = "levanta"
secrets = ["{levanta_secret}"]

[[routes]]
name = "leaflink"
path = "/webhooks/leaflink"
provider = "{leaflink_provider}"
secrets = ["{LEAFLINK_SECRET}"]
"#,
            port = self.port,
            admin = self.admin,
            app = self.app,
            redis = self.redis,
            timeout = self.upstream_timeout.as_millis(),
        )
    }

    /// Replaces the file at once (write aside, rename), so hookgate never reads half of it.
    pub fn write(&self, path: &std::path::Path, variant: Variant) {
        let aside = path.with_extension("toml.new");
        std::fs::write(&aside, self.render(variant)).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
}
