//! The command line (`run`, `check`, `sign`, `demo`), logging setup and exit codes.
//!
//! Exit codes: 0 success, 2 bad configuration or usage (clap's own usage
//! errors exit 2 too), 1 anything else.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config;
use crate::metrics::Metrics;
use crate::server;

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
    let default_level = if matches!(cli.command, Command::Demo { .. } | Command::Sign(_)) {
        "warn"
    } else {
        "info"
    };
    init_logging(cli.log_format, default_level);
    let code = match cli.command {
        Command::Check { config, json } => check(&config, json),
        Command::Run { config } => run(&config),
        Command::Sign(args) => crate::sign::run(args),
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
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
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
    let runtime = match server::runtime(&config, &metrics) {
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
    println!(
        "listen {}  upstream {:?}",
        config.listen.addr, config.upstream.target
    );
    println!("{:<24} {:<28} {:<18} secrets", "route", "path", "provider");
    // Routes are kept in configuration order, so they pair with their config.
    for (r, rc) in runtime.routes.routes().iter().zip(&config.routes) {
        let secrets: Vec<String> = rc
            .secrets
            .iter()
            .map(|s| format!("{}={}", s.label, s.source))
            .collect();
        println!(
            "{:<24} {:<28} {:<18} {}",
            r.name,
            r.pattern.as_config_str(),
            r.provider,
            secrets.join(", ")
        );
    }
    ExitCode::SUCCESS
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_runtime(async move {
        let running = match server::start(&config, std::time::SystemTime::now).await {
            Ok(r) => r,
            Err(server::StartError::Config(e)) => {
                eprintln!("hookgate: invalid configuration: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err(e @ (server::StartError::Tls(_) | server::StartError::Upstream(_))) => {
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
async fn wait_for_signal(running: &server::Running) {
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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // HOOKGATE_WORKERS caps the worker threads (default: one per core), e.g. to leave
    // cores to the application on a shared host. Unparseable or 0 keeps the default.
    if let Some(n) = std::env::var("HOOKGATE_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("hookgate: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
