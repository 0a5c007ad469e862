//! `hookgate run` as a child process: the real binary, for signals, exit codes, restarts, file
//! descriptor limits, memory and logs. Started from a config file with a JSON log whose lines are
//! kept (across restarts too); killed and reaped on drop (panics included).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::alone;

/// How to start it.
#[derive(Default, Clone)]
pub struct Launch {
    /// Named in failures (the fault run's `a` and `b`).
    pub name: &'static str,
    /// Extra environment (`HOOKGATE_LOG` defaults to `info`).
    pub env: Vec<(String, String)>,
    /// Run under `prlimit --nofile=N`.
    pub max_fds: Option<u32>,
    /// Do not take a `Shared` guard: for the fault run, which already runs alone.
    pub alone: bool,
}

pub struct Hookgate {
    pub config: PathBuf,
    pub addr: SocketAddr,
    /// The admin listener, when the config has one.
    pub admin: Option<SocketAddr>,
    launch: Launch,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// Reads the current process's stderr; ends at its exit.
    reader: Option<std::thread::JoinHandle<()>>,
    _shared: Option<alone::Shared>,
}

impl Hookgate {
    /// `hookgate run --config CONFIG`; returns once it logged that it listens (30 s bound).
    pub async fn start(config: &Path) -> Hookgate {
        Self::launch(config, Launch::default()).await
    }

    pub async fn launch(config: &Path, launch: Launch) -> Hookgate {
        let shared = (!launch.alone).then(alone::shared);
        let mut h = Hookgate {
            config: config.to_path_buf(),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: None,
            launch,
            child: None,
            log: Arc::default(),
            reader: None,
            _shared: shared,
        };
        h.spawn().await;
        h
    }

    async fn spawn(&mut self) {
        // FAULTS_HOOKGATE_BIN runs the suites against another build (an older commit, a release binary).
        let bin: PathBuf = std::env::var_os("FAULTS_HOOKGATE_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_hookgate").into())
            .into();
        let mut command = match self.launch.max_fds {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}")).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let mut child = command
            .args(["--log-format", "json", "run", "--config"])
            .arg(&self.config)
            .env("HOOKGATE_LOG", "info")
            .envs(self.launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        let first = log.lock().unwrap().len();
        self.reader = Some(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line);
            }
        }));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let listening = loop {
            let found = self.log.lock().unwrap()[first..]
                .iter()
                .find(|l| l.contains("hookgate listening"))
                .cloned();
            if let Some(line) = found {
                break line;
            }
            if Instant::now() > deadline || self.exited() {
                let tail: Vec<String> = self.log.lock().unwrap()[first..].to_vec();
                panic!("hookgate {} did not start: {tail:?}", self.launch.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let v: serde_json::Value = serde_json::from_str(&listening).unwrap();
        self.addr = v["addr"].as_str().unwrap().parse().unwrap();
        // Logged as `Some(ip:port)` or `None`.
        self.admin = v["admin"]
            .as_str()
            .and_then(|a| a.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok());
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().unwrap().is_some())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends `sig`; the process may have died on its own meanwhile: that is for the caller to see.
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(i32::try_from(c.id()).unwrap()), sig);
        }
    }

    /// Whether any log line so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.count_logged(needle) > 0
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

    /// The whole log so far, one line each.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits (10 s at most) until a log line contains `needle`.
    pub async fn wait_logged(&self, needle: &str) {
        super::eventually(|| self.logged(needle)).await;
    }

    /// Waits (30 s at most) until the admin listener's `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.admin.expect("an admin listener"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while super::send(&url, http::Method::GET, &[], b"").await.status != http::StatusCode::OK {
            assert!(Instant::now() < deadline, "hookgate never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 30 s for the process to exit; its exit code (`None`: killed by a signal).
    pub async fn exit_code(&mut self) -> Option<i32> {
        self.wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("hookgate did not exit: {e}"))
    }

    /// SIGTERM, then waits (bounded by `limit`) for the drain to end, and for the log lines it
    /// wrote last (batched ones too); its exit code. Killed if it outlasts `limit`.
    pub async fn terminate(&mut self, limit: Duration) -> Result<Option<i32>, String> {
        if self.child.is_none() {
            return Err("not running".into());
        }
        self.signal(Signal::SIGTERM);
        let code = self.wait_exit(limit).await;
        self.kill9();
        code
    }

    async fn wait_exit(&mut self, limit: Duration) -> Result<Option<i32>, String> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().ok_or("not running")?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                return Err(format!("still running after {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// kill -9, reaped.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same configuration file (and so the same address).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// A `/proc/PID/status` field (`VmRSS`, `VmHWM`), in bytes.
    pub fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} not in /proc status"));
        kb * 1024
    }

    /// Resets VmHWM to the current RSS (`clear_refs` 5), so a peak measured after is not startup's.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for Hookgate {
    fn drop(&mut self) {
        self.kill9();
    }
}
