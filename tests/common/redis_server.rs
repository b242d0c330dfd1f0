//! A private `redis-server` for a test: on a free loopback port, in a temporary directory,
//! without RDB snapshots (and without AOF unless asked), stopped (SIGKILL) when dropped, also
//! when the test fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The redis-server binary (`REDIS_SERVER` overrides).
pub fn redis_server_bin() -> PathBuf {
    std::env::var_os("REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"))
}

/// A command running redis-server, without libfaketime: the suite also runs under
/// `faketime` (a year ahead, in CI), and libfaketime deadlocks redis-server's jemalloc at
/// start. Redis keeps the real time; the store's reads apply the store's clock.
pub fn redis_server_command() -> Command {
    let mut cmd = Command::new(redis_server_bin());
    cmd.env_remove("LD_PRELOAD");
    cmd
}

/// Whether redis-server can be run here.
pub fn redis_server_exists() -> bool {
    redis_server_command()
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the test may use Redis (see [`super::need`]).
pub fn need_redis() -> bool {
    super::need(
        redis_server_exists(),
        "redis-server is not installed (apt-get install redis-server)",
    )
}

/// A running redis-server of this test.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    aof: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, without persistence.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Starts one with `appendonly yes`, `appendfsync always` when `aof`.
    pub fn start_with(aof: bool) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            aof,
            child: None,
        };
        server.restart();
        server
    }

    /// The URL of the server (with `?prefix=` when `prefix` is not empty).
    pub fn url(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("redis://127.0.0.1:{}/", self.port)
        } else {
            format!("redis://127.0.0.1:{}/?prefix={prefix}", self.port)
        }
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (its AOF, if any, is
    /// replayed), and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = redis_server_command();
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--daemonize", "no", "--protected-mode", "yes"]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 20 s",
                self.port
            );
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections and accepts new ones, but
    /// answers nothing, as a hung or overloaded Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill(); // SIGKILL ends a paused (SIGSTOPped) server too
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
