//! `hookgate run` as a child process (the real binary, for signals, exit codes, file descriptor
//! limits and memory), started from a config file and killed and reaped on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::alone;

/// The real binary, started with a JSON log whose lines are kept.
pub struct Hookgate {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin listener, when the config has one.
    pub admin: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
    _shared: alone::Shared,
}

impl Hookgate {
    /// Starts `hookgate run --config CONFIG`; returns once it logged that it listens (30 s bound).
    pub fn start(config: &Path) -> Hookgate {
        Self::start_with(config, None)
    }

    /// As `start`, optionally under `prlimit --nofile=N`.
    pub fn start_with(config: &Path, max_fds: Option<u32>) -> Hookgate {
        let shared = alone::shared();
        let mut command = match max_fds {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}"))
                    .arg(env!("CARGO_BIN_EXE_hookgate"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_hookgate")),
        };
        let mut child = command
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("HOOKGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("hookgate listening") {
                    let _ = tx.send(line.clone());
                }
                seen.lock().unwrap().push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("hookgate did not start: {:?}", log.lock().unwrap()));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let addr = v["addr"].as_str().unwrap().parse().unwrap();
        // Logged as `Some(ip:port)` or `None`.
        let admin = v["admin"]
            .as_str()
            .and_then(|a| a.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok());
        Hookgate {
            child,
            addr,
            admin,
            log,
            _shared: shared,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// Whether any log line so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits up to 30 s for the process to exit; its exit code (`None`: killed by a signal).
    pub async fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("hookgate did not exit");
    }

    /// A `/proc/PID/status` field (`VmRSS`, `VmHWM`), in bytes.
    pub fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} not in /proc status"));
        kb * 1024
    }

    /// Resets VmHWM to the current RSS (`clear_refs` 5), so a peak measured after is not startup's.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

impl Drop for Hookgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
