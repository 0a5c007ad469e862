//! `hookgate queue list|show|redrive|drop`: the stored requests, read and
//! changed on the store directly (a stopped gateway's disk store, or a Redis
//! queue whether gateways run or not), else through the running gateway's
//! admin listener (`remote`), which runs the same [`act`]. Prints ids, routes,
//! methods, paths, sizes, attempts and errors; header values and bodies only
//! with `show` (`--body` for the body), and never a credential header's value.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args as ClapArgs, ValueEnum};

use super::record::instant;
use super::{Store, StoreError, Stored, Table};
use crate::config::QueueBackend;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Action {
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

impl Args {
    fn query(&self) -> Query {
        Query {
            action: self.action,
            route: self.route.clone(),
            id: self.id,
            dead: self.dead,
            body: self.body,
        }
    }
}

/// What a `hookgate queue` command asks, wherever it runs: on the store
/// directly, or in a running gateway through its admin listener.
#[derive(Clone)]
pub(crate) struct Query {
    pub(super) action: Action,
    pub(super) route: Option<String>,
    pub(super) id: Option<u64>,
    pub(super) dead: bool,
    pub(super) body: bool,
}

/// How a command ended: its output, or why it could not run.
pub(crate) enum Answer {
    /// Done; the text for stdout.
    Done(String),
    /// The arguments do not make a command (exit 2).
    Usage(String),
    /// The request named does not exist (exit 1).
    Missing(String),
}

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
    let query = args.query();
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
    let answer = runtime.block_on(async {
        match Store::open(&q) {
            Ok(store) => act(&store, &query).await.map_err(|e| e.to_string()),
            // A gateway holds the disk store: ask it, on its admin listener.
            Err(e @ StoreError::Locked(_)) => match (&config.admin, &q.store) {
                (Some(admin), QueueBackend::Disk { path }) => {
                    super::remote::ask(super::remote::admin_of(path, admin.addr), &query).await
                }
                (None, _) | (_, QueueBackend::Redis(_)) => Err(format!(
                    "{e}, and the configuration has no [admin] listener to ask it through: stop it first"
                )),
            },
            Err(e) => Err(e.to_string()),
        }
    });
    match answer {
        Ok(Answer::Done(out)) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Ok(Answer::Usage(why)) => {
            eprintln!("hookgate: {why}");
            ExitCode::from(2)
        }
        Ok(Answer::Missing(why)) | Err(why) => {
            eprintln!("hookgate: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `query` on `store`.
pub(crate) async fn act(store: &Store, query: &Query) -> Result<Answer, StoreError> {
    let table = if query.dead {
        Table::Dead
    } else {
        Table::Pending
    };
    let selected = |table: Table| async move {
        match query.id {
            Some(id) => Ok::<_, StoreError>(store.find(id).await?.into_iter().collect::<Vec<_>>()),
            None => store.list(table, query.route.as_deref()).await,
        }
    };
    let mut out = String::new();
    match query.action {
        Action::List => {
            out.push_str(&format!(
                "{:<8} {:<8} {:<16} {:<7} {:>9} {:>8}  {:<24} {:<24} path\n",
                "id", "state", "route", "method", "bytes", "attempts", "accepted", "last_error"
            ));
            for s in store.list(table, query.route.as_deref()).await? {
                out.push_str(&line(&s));
                out.push('\n');
            }
        }
        Action::Show => {
            let Some(id) = query.id else {
                return Ok(Answer::Usage("show needs --id".into()));
            };
            let Some(s) = store.find(id).await? else {
                return Ok(Answer::Missing(format!("no stored request {id}")));
            };
            show(&mut out, &s, query.body);
        }
        Action::Redrive => {
            let mut n = 0;
            let now = super::record::millis(SystemTime::now());
            for s in selected(Table::Dead).await? {
                n += usize::from(store.redrive(&s, now).await?);
            }
            out.push_str(&format!("redriven: {n}\n"));
        }
        Action::Drop => {
            if query.id.is_none() && !query.dead {
                return Ok(Answer::Usage(
                    "drop needs --id, or --dead for every dead letter (of --route)".into(),
                ));
            }
            let mut n = 0;
            for s in selected(table).await? {
                n += usize::from(store.remove(&s).await?);
            }
            out.push_str(&format!("dropped: {n}\n"));
        }
    }
    Ok(Answer::Done(out))
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

fn show(out: &mut String, s: &Stored, with_body: bool) {
    use std::fmt::Write;
    let r = &s.record;
    let _ = writeln!(out, "id           {}", s.id);
    let _ = writeln!(out, "state        {}", state(s.table));
    let _ = writeln!(out, "route        {}", r.route);
    let _ = writeln!(out, "request      {} {}", r.method, r.uri);
    let _ = writeln!(
        out,
        "accepted     {}",
        humantime::format_rfc3339_seconds(instant(r.accepted_at))
    );
    let _ = writeln!(out, "attempts     {}", r.attempts);
    let _ = writeln!(
        out,
        "next_attempt {}",
        humantime::format_rfc3339_seconds(instant(r.next_attempt))
    );
    let _ = writeln!(out, "last_error   {}", r.last_error);
    let _ = writeln!(out, "replay_id    {}", hex::encode(r.replay_id));
    let _ = writeln!(out, "body         {} bytes", r.body.len());
    for (name, value) in &r.headers {
        let name = String::from_utf8_lossy(name);
        let shown = if REDACTED.contains(&name.to_ascii_lowercase().as_str()) {
            "(redacted)".into()
        } else {
            String::from_utf8_lossy(value)
        };
        let _ = writeln!(out, "header       {name}: {shown}");
    }
    if with_body {
        out.push('\n');
        let _ = writeln!(out, "{}", String::from_utf8_lossy(&r.body));
    }
}
