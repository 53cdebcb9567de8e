//! A real `redis-server` for a test: a temporary directory, no persistence, a Unix socket,
//! killed on drop. A missing `redis-server` fails the test with the line that installs it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The relay's default outbox stream and group.
pub const OUTBOX: &str = "gcm:outbox";
pub const GROUP: &str = "gcm-ccs";

pub const INSTALL: &str = "apt-get update -q && apt-get install -y -q redis-server";

/// A running Redis server.
pub struct Redis {
    child: Option<Child>,
    dir: tempfile::TempDir,
    password: Option<String>,
    persistent: bool,
    /// The TLS port, when the server also listens for `rediss://`.
    tls_port: Option<u16>,
}

impl Redis {
    /// Its fields, before [`Redis::spawn`].
    fn unstarted(password: Option<String>, persistent: bool) -> Redis {
        Redis {
            child: None,
            dir: tempfile::tempdir().expect("temporary directory"),
            password,
            persistent,
            tls_port: None,
        }
    }

    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// A server that requires `password`.
    pub fn start_with(password: Option<&str>) -> Redis {
        let mut redis = Redis::unstarted(password.map(str::to_owned), false);
        redis.spawn();
        redis
    }

    /// A server that keeps its data across [`Redis::restart`] (append-only file, fsync
    /// on every write).
    pub fn start_persistent() -> Redis {
        let mut redis = Redis::unstarted(None, true);
        redis.spawn();
        redis
    }

    /// A server that also listens for TLS on a free loopback port, with the certificate
    /// chain and key given (PEM); the test's own connections still use the Unix socket.
    pub fn start_tls(chain_pem: &str, key_pem: &str) -> Redis {
        let mut redis = Redis::unstarted(None, false);
        std::fs::write(redis.dir.path().join("tls.pem"), chain_pem).unwrap();
        std::fs::write(redis.dir.path().join("tls.key"), key_pem).unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        redis.tls_port = Some(free.local_addr().unwrap().port());
        drop(free);
        redis.spawn();
        redis
    }

    /// The `rediss://` URL of a [`Redis::start_tls`] server, for the name `localhost`.
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://localhost:{}",
            self.tls_port.expect("a TLS server")
        )
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The URL of the server, without the password.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn spawn(&mut self) {
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new("redis-server");
        let aof = if self.persistent { "yes" } else { "no" };
        cmd.args(["--port", "0", "--save", "", "--daemonize", "no"])
            .args(["--enable-debug-command", "yes"])
            .args(["--appendonly", aof, "--appendfsync", "always"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        if let Some(port) = self.tls_port {
            let dir = self.dir.path();
            cmd.args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(dir.join("tls.pem"))
                .arg("--tls-key-file")
                .arg(dir.join("tls.key"));
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): the relay tests need it on PATH; install it with `{INSTALL}`")
        });
        self.child = Some(child);
        let started = Instant::now();
        // Up once it answers a data command (PING is answered while still LOADING).
        while !self.ready() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ready(&self) -> bool {
        self.socket().exists()
            && self
                .try_conn()
                .is_ok_and(|mut c| redis::cmd("DBSIZE").query::<u64>(&mut c).is_ok())
    }

    /// Kills the server (SIGKILL; without persistence its data is gone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts it again on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A synchronous connection for the test's own commands.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn()
            .expect("connected to the test's redis-server")
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let mut info =
            redis::IntoConnectionInfo::into_connection_info(self.url().as_str()).unwrap();
        if let Some(p) = &self.password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        redis::Client::open(info)?.get_connection()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Entries in stream `key` (0 when it does not exist).
pub fn xlen(conn: &mut redis::Connection, key: &str) -> usize {
    redis::Commands::xlen(conn, key).unwrap()
}

/// Entries of the outbox read and not yet acked.
pub fn pending(conn: &mut redis::Connection) -> usize {
    let reply: redis::streams::StreamPendingReply =
        redis::Commands::xpending(conn, OUTBOX, GROUP).unwrap();
    reply.count()
}

/// Every record of `gcm:results`, by entry id; panics on an entry recorded twice.
pub fn results(conn: &mut redis::Connection) -> HashMap<String, serde_json::Value> {
    let reply: redis::streams::StreamRangeReply =
        redis::Commands::xrange_all(conn, "gcm:results").unwrap();
    let mut by_entry = HashMap::new();
    for id in reply.ids {
        let json: String = id.get("result").unwrap();
        let record: serde_json::Value = serde_json::from_str(&json).unwrap();
        let entry = record["entry_id"].as_str().unwrap().to_owned();
        assert!(
            by_entry.insert(entry.clone(), record).is_none(),
            "{entry} recorded twice"
        );
    }
    by_entry
}
