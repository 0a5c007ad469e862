//! The child processes the timeline controls: redis-server and `hookgate run`, each killed and reaped on drop (panics included).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A free loopback port below the ephemeral range (32768-60999 on Linux),
/// so that while a process on it is down no outgoing connection takes it as
/// its local port and the restart finds it taken.
pub fn free_port() -> u16 {
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rand::Rng::random_range(&mut rng, 20_000..32_000);
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32000");
}

fn signal_child(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    // The process may have died on its own meanwhile: that is for the caller to see.
    let _ = kill(pid, sig);
}

/// Waits up to `limit` for `child` to exit; its exit code (`None`: killed by a signal).
async fn wait_exit(child: &mut Child, limit: Duration) -> Result<Option<i32>, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            return Err(format!("still running after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real redis-server on 127.0.0.1 without persistence: a restart forgets every key.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // DEBUG SLEEP is one of the pauses the timeline injects.
            .args(["--enable-debug-command", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server not found: install it (.ci/run does: apt-get install redis-server)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.pong().await {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// PING over a raw socket, so the suite does not trust the client under test.
    async fn pong(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if s.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await,
            Ok(Ok(_)) if &buf == b"+PONG\r\n"
        )
    }

    /// SIGKILL: the data is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A fresh, empty server on the same port; returns once it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// SIGSTOP / SIGCONT: the server keeps its sockets and data but answers nothing meanwhile.
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            signal_child(c, sig);
        }
    }

    /// `DEBUG SLEEP secs` on a connection of its own: the server blocks for
    /// `secs`, then answers `+OK` (awaited, bounded).
    pub async fn debug_sleep(port: u16, secs: f64) -> Result<(), String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(format!("DEBUG SLEEP {secs}\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        let limit = Duration::from_secs_f64(secs + 10.0);
        match tokio::time::timeout(limit, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == b"+OK\r\n" => Ok(()),
            Ok(Ok(_)) => Err(format!(
                "DEBUG SLEEP answered {:?}",
                String::from_utf8_lossy(&buf)
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("DEBUG SLEEP: no answer".into()),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped (SIGSTOP) process.
        self.kill();
    }
}

/// `hookgate run --config FILE` as a child process on a fixed address, its
/// JSON log kept across restarts.
pub struct Hookgate {
    pub name: &'static str,
    pub config: PathBuf,
    pub addr: SocketAddr,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Hookgate {
    pub async fn start(name: &'static str, config: PathBuf, addr: SocketAddr) -> Hookgate {
        let mut h = Hookgate {
            name,
            config,
            addr,
            child: None,
            log: Arc::default(),
        };
        h.spawn().await;
        h
    }

    /// Starts the binary; returns once it logged that it listens (30 s bound).
    async fn spawn(&mut self) {
        // FAULTS_HOOKGATE_BIN runs the suite against another build (an older commit, a release binary).
        let bin = std::env::var_os("FAULTS_HOOKGATE_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_hookgate").into());
        let mut child = Command::new(bin)
            .args(["--log-format", "json", "run", "--config"])
            .arg(&self.config)
            .env("HOOKGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("hookgate listening") {
                    let _ = tx.send(());
                }
                log.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let started = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
        if !matches!(started, Ok(Some(()))) {
            let tail: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(20)
                .cloned()
                .collect();
            panic!("hookgate {} did not start: {tail:?}", self.name);
        }
    }

    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            signal_child(c, sig);
        }
    }

    /// kill -9, reaped.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits (bounded by `limit`) for the drain to end; the exit code.
    pub async fn terminate(&mut self, limit: Duration) -> Result<Option<i32>, String> {
        let Some(mut c) = self.child.take() else {
            return Err("not running".into());
        };
        signal_child(&c, Signal::SIGTERM);
        let code = wait_exit(&mut c, limit).await;
        if code.is_err() {
            let _ = c.kill();
            let _ = c.wait();
        }
        code
    }

    /// Starts it again on the same address and configuration file.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// Log lines containing `needle`, over every start.
    pub fn count_logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Hookgate {
    fn drop(&mut self) {
        self.kill9();
    }
}

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
