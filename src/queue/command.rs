//! `hookgate queue list|show|redrive|drop`: the stored requests of a stopped
//! gateway (disk), or of a Redis queue whether gateways run or not, read and
//! changed on the store directly. Prints ids, routes,
//! methods, paths, sizes, attempts and errors; header values and bodies only
//! with `show` (`--body` for the body), and never a credential header's value.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args as ClapArgs, ValueEnum};

use super::record::instant;
use super::{Store, StoreError, Stored, Table};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Action {
    /// One line per stored request (pending; dead letters with --dead).
    List,
    /// One request's details (--id); headers, and its body with --body.
    Show,
    /// Puts dead letters back for delivery (--id, or every one, of --route).
    Redrive,
    /// Deletes stored requests (--id, or with --dead every dead letter, of --route).
    Drop,
}

#[derive(ClapArgs)]
pub struct Args {
    action: Action,
    #[arg(long, env = "HOOKGATE_CONFIG")]
    config: PathBuf,
    #[arg(long)]
    route: Option<String>,
    #[arg(long)]
    id: Option<u64>,
    /// The dead letters instead of the pending requests.
    #[arg(long)]
    dead: bool,
    /// `show`: print the body too.
    #[arg(long)]
    body: bool,
}

/// Headers whose values are credentials: never printed.
const REDACTED: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

pub fn run(args: &Args) -> ExitCode {
    let config = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookgate: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(q) = config.queue else {
        eprintln!("hookgate: {} has no [queue] section", args.config.display());
        return ExitCode::from(2);
    };
    // One thread is enough for a command; the disk store's calls run on its blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _entered = runtime.enter();
    let store = match Store::open(&q) {
        Ok(s) => s,
        Err(e @ StoreError::Locked(_)) => {
            eprintln!(
                "hookgate: {e}: stop it first (these commands work on a stopped gateway's store)"
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("hookgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(act(&store, args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookgate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn act(store: &Store, args: &Args) -> Result<ExitCode, StoreError> {
    let table = if args.dead {
        Table::Dead
    } else {
        Table::Pending
    };
    let selected = |table: Table| async move {
        match args.id {
            Some(id) => Ok::<_, StoreError>(store.find(id).await?.into_iter().collect::<Vec<_>>()),
            None => store.list(table, args.route.as_deref()).await,
        }
    };
    match args.action {
        Action::List => {
            println!(
                "{:<8} {:<8} {:<16} {:<7} {:>9} {:>8}  {:<24} {:<24} path",
                "id", "state", "route", "method", "bytes", "attempts", "accepted", "last_error"
            );
            for s in store.list(table, args.route.as_deref()).await? {
                println!("{}", line(&s));
            }
        }
        Action::Show => {
            let Some(id) = args.id else {
                eprintln!("hookgate: show needs --id");
                return Ok(ExitCode::from(2));
            };
            let Some(s) = store.find(id).await? else {
                eprintln!("hookgate: no stored request {id}");
                return Ok(ExitCode::FAILURE);
            };
            show(&s, args.body);
        }
        Action::Redrive => {
            let mut n = 0;
            let now = super::record::millis(SystemTime::now());
            for s in selected(Table::Dead).await? {
                n += usize::from(store.redrive(&s, now).await?);
            }
            println!("redriven: {n}");
        }
        Action::Drop => {
            if args.id.is_none() && !args.dead {
                eprintln!(
                    "hookgate: drop needs --id, or --dead for every dead letter (of --route)"
                );
                return Ok(ExitCode::from(2));
            }
            let mut n = 0;
            for s in selected(table).await? {
                n += usize::from(store.remove(&s).await?);
            }
            println!("dropped: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn state(t: Table) -> &'static str {
    match t {
        Table::Pending => "pending",
        Table::Dead => "dead",
    }
}

fn line(s: &Stored) -> String {
    let r = &s.record;
    let path = r.uri.split('?').next().unwrap_or_default();
    format!(
        "{:<8} {:<8} {:<16} {:<7} {:>9} {:>8}  {:<24} {:<24} {path}",
        s.id,
        state(s.table),
        r.route,
        r.method,
        s.undecodable.unwrap_or(r.body.len() as u64),
        r.attempts,
        humantime::format_rfc3339_seconds(instant(r.accepted_at)).to_string(),
        r.last_error,
    )
}

fn show(s: &Stored, with_body: bool) {
    let r = &s.record;
    println!("id           {}", s.id);
    println!("state        {}", state(s.table));
    println!("route        {}", r.route);
    println!("request      {} {}", r.method, r.uri);
    println!(
        "accepted     {}",
        humantime::format_rfc3339_seconds(instant(r.accepted_at))
    );
    println!("attempts     {}", r.attempts);
    println!(
        "next_attempt {}",
        humantime::format_rfc3339_seconds(instant(r.next_attempt))
    );
    println!("last_error   {}", r.last_error);
    println!("replay_id    {}", hex::encode(r.replay_id));
    println!("body         {} bytes", r.body.len());
    for (name, value) in &r.headers {
        let name = String::from_utf8_lossy(name);
        let shown = if REDACTED.contains(&name.to_ascii_lowercase().as_str()) {
            "(redacted)".into()
        } else {
            String::from_utf8_lossy(value)
        };
        println!("header       {name}: {shown}");
    }
    if with_body {
        println!();
        println!("{}", String::from_utf8_lossy(&r.body));
    }
}
