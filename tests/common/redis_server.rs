//! A private `redis-server` for a test: on a free loopback port, in a temporary directory,
//! without RDB snapshots (and without AOF unless asked), stopped (SIGKILL) when dropped, also
//! when the test fails.
//!
//! Persistence: without AOF the server writes nothing by itself (`--save ""`), so a restart
//! starts empty, unless the test wrote `dump.rdb` with [`RedisServer::save`]: a restart then
//! loads that snapshot (as Redis's default RDB persistence after a crash). Extra settings
//! (`maxmemory`, `maxmemory-policy`, `rename-command`, ...) are given at start and kept for
//! every restart.

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
    /// Further `--setting value` arguments, given at every (re)start.
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, without persistence.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Starts one with `appendonly yes`, `appendfsync always` when `aof`.
    pub fn start_with(aof: bool) -> RedisServer {
        Self::start_config(aof, &[])
    }

    /// Starts one as [`Self::start_with`], with further command-line settings such as
    /// `["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]`, kept for restarts.
    pub fn start_config(aof: bool, extra: &[&str]) -> RedisServer {
        Self::start_config_on(free_port(), aof, extra)
    }

    /// Starts one as [`Self::start_config`], on `port` (where a store may already be open).
    pub fn start_config_on(port: u16, aof: bool, extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            aof,
            extra: extra.iter().map(|s| s.to_string()).collect(),
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
        cmd.args(&self.extra);
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

    /// Writes an RDB snapshot (`SAVE`) to `dump.rdb` in the server's directory; a later
    /// [`Self::restart`] (after [`Self::kill`]) loads it when the server runs without AOF.
    pub fn save(&self) {
        let reply = self.command(&["SAVE"]);
        assert!(reply.starts_with("+OK"), "SAVE answered {reply:?}");
    }

    /// Copies the server's directory (its RDB or AOF files) to `to`, as a backup would.
    pub fn copy_data(&self, to: &std::path::Path) {
        copy_dir(self.dir.path(), to);
    }

    /// Replaces the server's directory with the files in `from` (the server must be
    /// stopped), so that the next [`Self::restart`] loads that older data.
    pub fn replace_data(&self, from: &std::path::Path) {
        assert!(
            self.child.is_none(),
            "stop the server before replacing its data"
        );
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        copy_dir(from, self.dir.path());
    }

    /// Sends one command (arguments without spaces or CR/LF) and returns the first line
    /// of the answer, as sent by the server (`+OK`, `-ERR ...`, `:1`, ...).
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(request.as_bytes()).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while s.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).trim_end().to_string()
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

/// Copies the files (and directories) in `from` into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
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

/// Waits until `store`'s circuit breaker has closed again (its background probe found Redis
/// back: at most about 2 s after Redis answers), and returns how long that took; panics
/// after 20 s.
pub fn wait_available(store: &cookiestore::CookieStore) -> Duration {
    let started = Instant::now();
    while !store.health().available {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the store did not become available again within 20 s: {:?}",
            store.health()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}
