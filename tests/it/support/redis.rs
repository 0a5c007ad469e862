//! A real `redis-server` on 127.0.0.1 for the replay-store tests and the fault run: no persistence (a
//! restart forgets every key), optionally TLS-only or with a password, killed and reaped on drop
//! (panics included). Readiness is checked over a raw socket, so no test trusts the client under test.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
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

pub struct Redis {
    pub port: u16,
    /// Its working directory; for a TLS server also `ca.pem`, `server.pem`, `server.key`.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Serve TLS only (`rediss://`), with the CA in `dir/ca.pem`.
    tls: bool,
    /// `requirepass`, and in the URL; set it before a `restart` to start a server that asks for it.
    pub password: Option<&'static str>,
}

impl Redis {
    pub async fn start() -> Redis {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Redis {
        let mut r = Redis {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls: false,
            password: None,
        };
        r.spawn().await;
        r
    }

    /// A TLS-only server whose certificate (for 127.0.0.1) a fresh private CA signed.
    pub async fn start_tls() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        let mut r = Redis {
            port: free_port(),
            dir,
            child: None,
            tls: true,
            password: None,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        if self.tls {
            let file = |name: &str| self.dir.path().join(name);
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(file("server.pem"))
                .arg("--tls-key-file")
                .arg(file("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(file("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        if let Some(pw) = self.password {
            cmd.args(["--requirepass", pw]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // DEBUG SLEEP is one of the pauses the fault run injects.
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

    /// PING over a raw socket (over TLS: the port accepting connections is enough).
    async fn pong(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if self.tls {
            return true;
        }
        let (ask, want) = match self.password {
            Some(pw) => (format!("AUTH {pw}\r\nPING\r\n"), "+OK\r\n+PONG\r\n"),
            None => ("PING\r\n".to_string(), "+PONG\r\n"),
        };
        if s.write_all(ask.as_bytes()).await.is_err() {
            return false;
        }
        let mut buf = vec![0u8; want.len()];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await,
            Ok(Ok(_)) if buf == want.as_bytes()
        )
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let auth = self
            .password
            .map(|pw| format!(":{pw}@"))
            .unwrap_or_default();
        format!("{scheme}://{auth}127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL, reaped: the data is gone (no persistence).
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

    /// SIGSTOP / SIGCONT: the server keeps its connections and data but answers nothing meanwhile,
    /// and runs what was queued once thawed.
    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            let pid = Pid::from_raw(i32::try_from(c.id()).unwrap());
            // It may have died on its own meanwhile: that is for the caller to see.
            let _ = kill(pid, sig);
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
