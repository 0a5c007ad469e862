//! The command line (`run`, `check`, `sign`, `queue`, `demo`), logging setup and exit codes.
//!
//! Exit codes: 0 success, 2 bad configuration or usage (clap's own usage
//! errors exit 2 too), 1 anything else.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app;
use crate::config;
use crate::metrics::Metrics;
use crate::server::Balance;

#[derive(Parser)]
#[command(
    name = "hookgate",
    version,
    about = "A webhook-verifying reverse proxy"
)]
struct Cli {
    /// Log format (default: text on a terminal, json otherwise). Level from HOOKGATE_LOG.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        /// Data-path worker threads, each serving its own connections (default: one per core).
        #[arg(long, env = "HOOKGATE_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
        workers: Option<u16>,
        /// How a new connection reaches a worker: `exact`, an acceptor hands it to the worker
        /// serving the fewest (an even split); `kernel`, every worker accepts from the shared
        /// listener and the first awake takes it (nginx's way; no hand-off, an uneven split).
        #[arg(long, env = "HOOKGATE_BALANCE", value_enum, default_value_t = Balance::Exact)]
        balance: Balance,
    },
    /// Validate the configuration, resolve secrets and print the route table.
    Check {
        #[arg(long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        /// Print the resolved configuration as JSON instead (secret sources, never values).
        #[arg(long)]
        json: bool,
    },
    /// Print the headers a provider would send for the body on stdin (or a curl command).
    ///
    /// Either --provider P --secret S, or --config F --route NAME (the route's
    /// scheme, secret and public_url). Secrets as in the config: env:NAME,
    /// file:PATH or the value itself.
    Sign(crate::sign::Args),
    /// Stored requests of a stopped gateway's queue: list, show, redrive, drop.
    Queue(crate::queue::Args),
    /// Run the real gateway against a built-in echo app and send genuine and forged webhooks.
    Demo {
        /// Exit after printing the table.
        #[arg(long)]
        once: bool,
    },
}

const EXIT_CONFIG: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints a table: keep the gateway's per-request log lines out of it unless asked.
    let default_level = if matches!(
        cli.command,
        Command::Demo { .. } | Command::Sign(_) | Command::Queue(_)
    ) {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_format, default_level);
    let code = match cli.command {
        Command::Check { config, json } => check(&config, json),
        Command::Run {
            config,
            workers,
            balance,
        } => run(&config, workers, balance),
        Command::Sign(args) => crate::sign::run(args),
        Command::Queue(args) => crate::queue::command_run(&args),
        Command::Demo { once } => with_runtime(crate::demo::run(once)),
    };
    crate::logsink::flush();
    code
}

fn init_logging(format: Option<LogFormat>, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if terminal {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    // Batched writes off a terminal: a write(2) per request line is costly under load.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::logsink::Sink::new(!terminal));
    match format {
        LogFormat::Json => builder.event_format(crate::logline::JsonLine).init(),
        LogFormat::Text => builder.init(),
    }
}

fn load(path: &std::path::Path) -> Result<config::Config, ExitCode> {
    match config::load(path) {
        Ok(c) => {
            for w in &c.warnings {
                tracing::warn!(file = %path.display(), field = %w.field, "{}", w.message);
            }
            Ok(c)
        }
        Err(e) => {
            eprintln!("hookgate: invalid configuration: {e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn check(path: &std::path::Path, json: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let metrics = Metrics::new();
    let runtime = match crate::proxy::Runtime::build(&config, &metrics) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookgate: invalid configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if json {
        println!(
            "{}",
            crate::report::config_json(&config, runtime.routes.routes())
        );
        return ExitCode::SUCCESS;
    }
    println!("{}: OK", path.display());
    print!("{}", summary(&config));
    println!(
        "{:<24} {:<28} {:<18} {:<8} {:<8} secrets",
        "route", "path", "provider", "mode", "delivery"
    );
    // Routes are kept in configuration order, so they pair with their config.
    let now = std::time::SystemTime::now();
    for (r, rc) in runtime.routes.routes().iter().zip(&config.routes) {
        let secrets: Vec<String> = rc.secrets.iter().map(|s| secret_column(s, now)).collect();
        println!(
            "{:<24} {:<28} {:<18} {:<8} {:<8} {}",
            r.name,
            r.pattern.as_config_str(),
            r.provider,
            r.mode,
            rc.delivery,
            secrets.join(", ")
        );
    }
    ExitCode::SUCCESS
}

/// One secret for `check`: its label, where it comes from, and its validity
/// window when it has one, marked when `now` is outside it.
fn secret_column(s: &config::Secret, now: std::time::SystemTime) -> String {
    let w = &s.validity;
    if w.is_always() {
        return format!("{}={}", s.label, s.source);
    }
    let state = if w.not_after.is_some_and(|na| now > na) {
        ", ended: verifies nothing"
    } else if w.not_before.is_some_and(|nb| now < nb) {
        ", not yet in force"
    } else {
        ""
    };
    format!("{}={} ({w}{state})", s.label, s.source)
}

/// The resolved listeners, upstream and replay store, one line each, for a human.
// Writing to a `String` cannot fail, hence the ignored `fmt::Result`s.
fn summary(config: &config::Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let listen = match &config.listen.tls {
        Some(tls) => format!(
            "https://{} (cert {}, key {})",
            config.listen.addr,
            tls.cert.display(),
            tls.key.display()
        ),
        None => format!("http://{}", config.listen.addr),
    };
    let _ = writeln!(out, "listen    {listen}");
    if let Some(admin) = &config.admin {
        let _ = writeln!(out, "admin     http://{}", admin.addr);
    }
    let u = &config.upstream;
    let ca = u
        .ca_file
        .as_ref()
        .map(|ca| format!(", ca {}", ca.display()))
        .unwrap_or_default();
    // Where the key comes from, never the key.
    let attest = config
        .attestation_key
        .as_ref()
        .map(|k| format!(", attestation key {}", k.source))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "upstream  {} (timeout {}{ca}{attest})",
        u.target,
        humantime::format_duration(u.timeout)
    );
    let r = &config.replay;
    let store = match r.store {
        config::StoreKind::Memory => format!("memory (capacity {})", r.capacity),
        // The URL itself may hold a password: show where it came from.
        config::StoreKind::Redis => format!(
            "redis (url {}, prefix {:?})",
            r.redis_url
                .as_ref()
                .map_or_else(|| "unset".to_string(), |u| u.source.to_string()),
            r.redis_prefix
        ),
    };
    let _ = writeln!(
        out,
        "replay    {store}, ttl {}, on_store_error {}",
        humantime::format_duration(r.ttl),
        r.on_store_error
    );
    if let Some(q) = &config.queue {
        let _ = writeln!(
            out,
            "queue     {} (max {} bytes), {} attempts within {}, backoff {} to {}, concurrency {}",
            queue_store(&q.store),
            q.max_bytes,
            q.max_attempts,
            humantime::format_duration(q.max_age),
            humantime::format_duration(q.retry_initial),
            humantime::format_duration(q.retry_max),
            q.concurrency
        );
    }
    out
}

/// `[queue]`'s store for the summary: a directory, or a Redis without its URL
/// (it may carry a password): where the URL comes from, and the key prefix.
fn queue_store(store: &crate::config::QueueBackend) -> String {
    match store {
        crate::config::QueueBackend::Disk { path } => format!("disk {}", path.display()),
        crate::config::QueueBackend::Redis(r) => format!(
            "redis {} ({}), keys {}:q*, lease {}",
            if r.shared_with_replay {
                "shared with [replay]".to_string()
            } else {
                format!("url from {}", r.url.source)
            },
            if r.ca_file.is_some() {
                "private CA"
            } else {
                "system roots"
            },
            r.prefix,
            humantime::format_duration(r.lease)
        ),
    }
}

fn run(path: &std::path::Path, workers: Option<u16>, balance: Balance) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let workers = workers.map_or_else(app::default_workers, usize::from);
    // The control plane (accept, admin, reload, signals, the Redis driver) runs
    // on this one thread; requests run on the workers `app` starts.
    let control = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    control.block_on(async move {
        let running =
            match app::start_with(&config, std::time::SystemTime::now, workers, balance).await {
                Ok(r) => r,
                Err(app::StartError::Config(e)) => {
                    eprintln!("hookgate: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
                Err(e @ (app::StartError::Tls(_) | app::StartError::Upstream(_))) => {
                    eprintln!("hookgate: invalid configuration: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
                Err(e) => {
                    eprintln!("hookgate: {e}");
                    return ExitCode::FAILURE;
                }
            };
        wait_for_signal(&running).await;
        tracing::info!("shutdown signal received");
        running.shutdown();
        running.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Waits for SIGTERM or SIGINT; reloads on every SIGHUP meanwhile.
async fn wait_for_signal(running: &app::Running) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                // Logged and counted inside; the old configuration keeps serving on error.
                let _ = running.reload();
            }
        }
    }
}

fn with_runtime<F: std::future::Future<Output = ExitCode>>(f: F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("hookgate: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    #[test]
    fn check_prints_each_secret_window_and_whether_now_is_inside() {
        let text =
            "[listen]\naddr = \"127.0.0.1:8443\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
                    attestation_key = \"env:AK\"\n[[routes]]\npath = \"/w\"\nprovider = \"github\"\nsecrets = [\"env:S\", \
                    { source = \"env:NEW\", not_before = \"2026-12-01T00:00:00Z\" }, \
                    { value = \"env:OLD\", name = \"old\", not_after = 2026-12-08T00:00:00Z }]\n";
        let env = config::Env::Map(vec![
            ("S".into(), "s".into()),
            ("NEW".into(), "n".into()),
            ("OLD".into(), "o".into()),
            ("AK".into(), "attestation-key-value".into()),
        ]);
        let c = config::parse(text, Path::new("h.toml"), &env).unwrap();
        let out = summary(&c);
        assert!(
            out.contains("(timeout 25s, attestation key env:AK)"),
            "{out}"
        );
        assert!(!out.contains("attestation-key-value"), "{out}");
        let s = &c.routes[0].secrets;
        let at = |t: &str| humantime::parse_rfc3339(t).unwrap();
        let before = at("2026-11-30T00:00:00Z");
        assert_eq!(secret_column(&s[0], before), "0=env:S");
        assert_eq!(
            secret_column(&s[1], before),
            "1=env:NEW (from 2026-12-01T00:00:00Z, not yet in force)"
        );
        assert_eq!(
            secret_column(&s[2], before),
            "old=env:OLD (until 2026-12-08T00:00:00Z)"
        );
        let after = at("2026-12-09T00:00:00Z");
        assert_eq!(
            secret_column(&s[1], after),
            "1=env:NEW (from 2026-12-01T00:00:00Z)"
        );
        assert_eq!(
            secret_column(&s[2], after),
            "old=env:OLD (until 2026-12-08T00:00:00Z, ended: verifies nothing)"
        );
    }

    #[test]
    fn check_prints_the_queue_when_there_is_one() {
        let text = "[listen]\naddr = \"127.0.0.1:8443\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
                    [queue]\npath = \"/var/lib/hookgate/queue\"\nmax_bytes = \"1MiB\"\nconcurrency = 4\n\
                    [[routes]]\npath = \"/w\"\nprovider = \"github\"\ndelivery = \"queue\"\nsecrets = [\"env:S\"]\n";
        let env = config::Env::Map(vec![("S".into(), "s".into())]);
        let c = config::parse(text, Path::new("h.toml"), &env).unwrap();
        let out = summary(&c);
        assert!(
            out.contains("queue     disk /var/lib/hookgate/queue (max 1048576 bytes), "),
            "{out}"
        );
        assert!(out.contains("concurrency 4\n"), "{out}");
        assert_eq!(c.routes[0].delivery.to_string(), "queue");
        let plain = text
            .replace("[queue]", "[replay]")
            .replace("delivery = \"queue\"\n", "");
        let plain = plain.replace(
            "path = \"/var/lib/hookgate/queue\"\nmax_bytes = \"1MiB\"\nconcurrency = 4\n",
            "",
        );
        let c = config::parse(&plain, Path::new("h.toml"), &env).unwrap();
        assert!(!summary(&c).contains("queue"), "no [queue]: no queue line");
    }

    #[test]
    fn check_prints_a_redis_queue_without_its_url() {
        let text = "[listen]\naddr = \"127.0.0.1:8443\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
                    [queue]\nstore = \"redis\"\nredis_url = \"env:Q\"\nredis_prefix = \"hg\"\n\
                    [[routes]]\npath = \"/w\"\nprovider = \"github\"\ndelivery = \"queue\"\nsecrets = [\"env:S\"]\n";
        let env = config::Env::Map(vec![
            ("S".into(), "s".into()),
            ("Q".into(), "redis://:hunter2@10.0.0.9:6379/1".into()),
        ]);
        let c = config::parse(text, Path::new("h.toml"), &env).unwrap();
        let out = summary(&c);
        assert!(
            out.contains(
                "queue     redis url from env:Q (system roots), keys hg:q*, lease 10s (max "
            ),
            "{out}"
        );
        assert!(
            !out.contains("hunter2") && !out.contains("10.0.0.9"),
            "{out}"
        );
    }

    #[test]
    fn check_prints_resolved_values_not_debug_dumps() {
        let text = "[listen]\naddr = \"127.0.0.1:8443\"\n[admin]\naddr = \"127.0.0.1:9090\"\n\
                    [upstream]\nurl = \"http://127.0.0.1:3000\"\ntimeout = \"5s\"\n\
                    [replay]\nstore = \"redis\"\nredis_url = \"env:REDIS_URL\"\non_store_error = \"allow\"\n\
                    [[routes]]\npath = \"/w\"\nprovider = \"svix\"\nsecrets = [\"env:S\"]\n";
        let env = config::Env::Map(vec![
            ("S".into(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            ("REDIS_URL".into(), "redis://:pw@cache:6379/0".into()),
        ]);
        let c = config::parse(text, Path::new("h.toml"), &env).unwrap();
        let out = summary(&c);
        assert!(out.contains("listen    http://127.0.0.1:8443\n"), "{out}");
        assert!(out.contains("admin     http://127.0.0.1:9090\n"), "{out}");
        assert!(
            out.contains("upstream  http://127.0.0.1:3000 (timeout 5s)\n"),
            "{out}"
        );
        assert!(out.contains("redis (url env:REDIS_URL"), "{out}");
        assert!(out.contains("on_store_error allow"), "{out}");
        assert!(!out.contains('{') && !out.contains(":pw@"), "{out}");
    }
}
