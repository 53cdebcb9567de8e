//! `gcm-ccs relay` and `gcm-ccs enqueue` as processes: many relays on one queue with one
//! killed, SIGTERM with messages in flight, Redis credentials, bad lines, metrics.
#![cfg(feature = "relay")]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bin::{bin, output, text};
use common::redis_server::{OUTBOX as STREAM, Redis, pending, results, xlen};
use common::*;
use gcm_ccs::emulator::{Emulator, EmulatorConfig, Reply, Script};
use gcm_ccs::webpush::VapidKey;
use redis::Commands;

impl Scratch {
    /// `gcm-ccs relay` for `redis` and `emu`, consumer `name`.
    fn relay(&self, redis: &Redis, emu: &Emulator, name: &str, extra: &[&str]) -> Command {
        self.relay_at(&redis.url(), emu, name, extra)
    }

    /// `gcm-ccs relay` for the Redis at `url`.
    fn relay_at(&self, url: &str, emu: &Emulator, name: &str, extra: &[&str]) -> Command {
        self.relay_to(url, &emu.addr().to_string(), name, extra)
    }

    /// `gcm-ccs relay` for the Redis at `url`, with CCS at `endpoint`.
    fn relay_to(&self, url: &str, endpoint: &str, name: &str, extra: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.args(["relay", "--redis", url, "--consumer", name])
            .args(["--sender-id", SENDER, "--endpoint", endpoint])
            .arg("--ca-file")
            .arg(self.path("ca.pem"))
            .args(extra)
            .env("GCM_API_KEY", KEY)
            .env_remove("REDIS_PASSWORD");
        cmd
    }
}

/// A child process, killed when dropped (a failing test leaves no relay behind), its
/// stderr drained by a thread (a full pipe would block it).
struct Proc {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

fn spawn(mut cmd: Command) -> Proc {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    Proc { child, stderr }
}

fn signal(proc: &Proc, sig: i32) {
    // SAFETY: kill(2) on a child we own and have not reaped.
    assert_eq!(unsafe { libc::kill(proc.child.id() as i32, sig) }, 0);
}

/// Waits (bounded) for the process to exit; its code and stderr.
async fn finish(mut proc: Proc, secs: u64) -> (Option<i32>, String) {
    bounded(secs, async {
        loop {
            if let Some(status) = proc.child.try_wait().unwrap() {
                // The drain thread sees the end of the pipe right after the exit.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return (status.code(), proc.stderr());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Entries of `n` plain messages, pipelined.
fn produce(conn: &mut redis::Connection, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("XADD")
                .arg(STREAM)
                .arg("*")
                .arg("message")
                .arg(format!(r#"{{"to":"{prefix}{i}"}}"#));
        }
        let got: Vec<String> = pipe.query(conn).unwrap();
        ids.extend(got);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relays_one_killed_one_restarted_give_every_entry_exactly_one_record() {
    const N: usize = 100_000;
    let redis = Redis::start();
    let mut conn = redis.conn();
    let emu = emulator(script(vec![rule("", Reply::Delay { ms: 2 })])).await;
    let scratch = Scratch::new(&emu);
    let ids: HashSet<String> = produce(&mut conn, N, "t").into_iter().collect();
    let fast = ["--claim-after", "3", "--connections", "2"];
    let mut relays: Vec<Proc> = ["a", "b", "c"]
        .iter()
        .map(|name| spawn(scratch.relay(&redis, &emu, name, &fast)))
        .collect();

    within(120, "a quarter recorded", || {
        xlen(&mut conn, "gcm:results") >= N / 4
    })
    .await;
    // "a" dies with messages in flight; its entries stay pending until claimed.
    signal(&relays[0], libc::SIGKILL);
    let (code, _) = finish(relays.remove(0), 10).await;
    assert_eq!(code, None, "killed by the signal");
    let in_flight_at_kill = {
        let reply: redis::streams::StreamPendingCountReply = conn
            .xpending_consumer_count(STREAM, "gcm-ccs", "-", "+", N, "a")
            .unwrap();
        reply.ids.len()
    };
    within(120, "half recorded", || {
        xlen(&mut conn, "gcm:results") >= N / 2
    })
    .await;
    // "b" stops cleanly and comes back under the same name.
    signal(&relays[0], libc::SIGTERM);
    let (code, err) = finish(relays.remove(0), 30).await;
    assert_eq!(code, Some(0), "{err}");
    relays.push(spawn(scratch.relay(&redis, &emu, "b", &fast)));

    within(240, "every entry recorded and acked", || {
        xlen(&mut conn, "gcm:results") >= N && pending(&mut conn) == 0
    })
    .await;
    for relay in &relays {
        signal(relay, libc::SIGTERM);
    }
    for relay in relays {
        let (code, err) = finish(relay, 30).await;
        assert_eq!(code, Some(0), "{err}");
    }

    let got = results(&mut conn);
    assert_eq!(got.len(), N, "exactly one record per entry");
    assert_eq!(got.keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(got.values().all(|r| r["outcome"] == "acked"));
    assert_eq!(pending(&mut conn), 0, "every entry acked");
    let by: HashMap<&str, usize> = got.values().fold(HashMap::new(), |mut m, r| {
        *m.entry(r["consumer"].as_str().unwrap()).or_default() += 1;
        m
    });
    let duplicates = emu.stats().duplicates as usize;
    println!(
        "relays: {N} entries, {} records, 0 pending; by consumer {by:?}; {in_flight_at_kill} pending on the killed relay, {duplicates} wire duplicates",
        got.len()
    );
    assert!(
        duplicates <= in_flight_at_kill,
        "{duplicates} duplicates > {in_flight_at_kill} in flight on the killed relay"
    );
    assert_eq!(emu.stats().unique_messages as usize, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_is_in_flight_and_leaves_the_rest_pending() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    // Slow acks: finished within the shutdown timeout.
    let emu = emulator(script(vec![
        rule("slow-", Reply::Delay { ms: 1500 }),
        rule("mute-", Reply::Silent),
    ]))
    .await;
    let scratch = Scratch::new(&emu);
    produce(&mut conn, 50, "slow-");
    let relay = spawn(scratch.relay(&redis, &emu, "r", &["--shutdown-timeout", "20"]));
    within(30, "50 messages sent", || emu.stats().downstream >= 50).await;
    signal(&relay, libc::SIGTERM);
    let (code, err) = finish(relay, 30).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        xlen(&mut conn, "gcm:results"),
        50,
        "in flight at the signal: recorded"
    );
    assert_eq!(pending(&mut conn), 0);

    // Messages that will not finish in time are left pending, never acked without a record.
    produce(&mut conn, 20, "mute-");
    let relay = spawn(scratch.relay(&redis, &emu, "r", &["--shutdown-timeout", "1"]));
    within(30, "70 messages sent", || emu.stats().downstream >= 70).await;
    let stopped = Instant::now();
    signal(&relay, libc::SIGTERM);
    let (code, err) = finish(relay, 30).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(stopped.elapsed() < Duration::from_secs(15));
    assert_eq!(
        xlen(&mut conn, "gcm:results"),
        50,
        "no record for unfinished entries"
    );
    assert_eq!(pending(&mut conn), 20, "left pending for another consumer");
    assert!(err.contains("20 left pending"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_web_push_entries_and_what_a_relay_cannot_send_is_dead_lettered() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.webpush_listen = Some(([127, 0, 0, 1], 0).into());
    let emu = Emulator::start(cfg).await.unwrap();
    let scratch = Scratch::new(&emu);
    let key = VapidKey::generate();
    std::fs::write(scratch.path("vapid.pem"), key.to_pkcs8_pem()).unwrap();
    let vapid_key = scratch.path("vapid.pem");
    let vapid = [
        "--vapid-key",
        vapid_key.to_str().unwrap(),
        "--subject",
        "mailto:ops@example.com",
    ];
    let push_entry = |conn: &mut redis::Connection, text: &str| -> String {
        let sub = emu.webpush_subscribe("", Some(key.public_key())).unwrap();
        let sub: serde_json::Value = serde_json::from_str(&sub.to_json()).unwrap();
        let line = serde_json::json!({"subscription": sub, "payload": text, "ttl": 60});
        conn.xadd(STREAM, "*", &[("message", line.to_string())])
            .unwrap()
    };

    // CCS messages over the HTTP API and pushes over Web Push, from one stream.
    let http_url = emu.http_url().unwrap();
    let mut args = vec!["--via", "http", "--http-url", &http_url];
    args.extend(vapid);
    let relay = spawn(scratch.relay(&redis, &emu, "both", &args));
    let ccs: HashSet<String> = produce(&mut conn, 10, "tok-").into_iter().collect();
    let pushes: HashSet<String> = (0..10)
        .map(|i| push_entry(&mut conn, &format!("p{i}")))
        .collect();
    within(30, "20 recorded", || xlen(&mut conn, "gcm:results") >= 20).await;
    signal(&relay, libc::SIGTERM);
    let (code, err) = finish(relay, 30).await;
    assert_eq!(code, Some(0), "{err}");
    let got = results(&mut conn);
    for id in ccs.iter().chain(&pushes) {
        assert_eq!(got[id]["outcome"], "acked", "{}", got[id]);
    }
    for id in &ccs {
        assert!(got[id]["attempts"].is_null(), "over HTTP: {}", got[id]);
    }
    for id in &pushes {
        assert!(
            got[id]["to"]
                .as_str()
                .unwrap()
                .starts_with("https://127.0.0.1:")
        );
    }
    assert_eq!(emu.webpush_received().len(), 10);
    assert_eq!(emu.stats().connections_accepted, 0, "no XMPP connection");

    // A relay without Web Push dead-letters a push; one with Web Push alone (no CCS
    // options, no key) dead-letters a CCS message: acked with a record, never lost.
    let gone_push = push_entry(&mut conn, "nowhere");
    let relay = spawn(scratch.relay(&redis, &emu, "ccs-only", &[]));
    within(30, "recorded", || xlen(&mut conn, "gcm:results") >= 21).await;
    signal(&relay, libc::SIGTERM);
    assert_eq!(finish(relay, 30).await.0, Some(0));
    let webpush_only = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.args([
            "relay",
            "--redis",
            &redis.url(),
            "--consumer",
            "webpush-only",
        ])
        .args(vapid)
        .args(extra)
        .env_remove("GCM_API_KEY");
        cmd
    };
    // CCS options that name a sender and do not work (here: no key) are an error, not a
    // Web Push-only relay.
    let out = output(webpush_only(&["--sender-id", SENDER])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no server key"),
        "{}",
        text(&out.stderr)
    );
    let relay = spawn(webpush_only(&[]));
    let gone_ccs = produce(&mut conn, 1, "nowhere-").remove(0);
    within(30, "recorded", || xlen(&mut conn, "gcm:results") >= 22).await;
    signal(&relay, libc::SIGTERM);
    let (code, err) = finish(relay, 30).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("CCS entries are dead-lettered"), "{err}");
    let got = results(&mut conn);
    for (id, consumer) in [(&gone_push, "ccs-only"), (&gone_ccs, "webpush-only")] {
        let record = &got[id];
        assert_eq!(
            (&record["outcome"], &record["code"], &record["consumer"]),
            (&"failed".into(), &"NO_TRANSPORT".into(), &consumer.into()),
            "{record}"
        );
    }
    assert_eq!(xlen(&mut conn, "gcm:dead"), 2);
    assert_eq!(pending(&mut conn), 0);
    assert_eq!(emu.webpush_received().len(), 10, "nothing more pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_refused_mid_run_exits_3_and_leaves_the_rest_pending() {
    const N: usize = 2000;
    let redis = Redis::start();
    let mut conn = redis.conn();
    let slow = || script(vec![rule("", Reply::Delay { ms: 30 })]);
    let emu = emulator(slow()).await;
    let scratch = Scratch::new(&emu);
    let ids = produce(&mut conn, N, "t");
    let relay = spawn(scratch.relay(&redis, &emu, "r", &["--window", "10"]));
    within(30, "100 recorded", || xlen(&mut conn, "gcm:results") >= 100).await;
    let mut refusing = slow();
    refusing.faults.reject_auth = u32::MAX;
    emu.set_script(refusing);
    emu.drop_all();
    let (code, err) = finish(relay, 60).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("refused the server key") && !err.contains(KEY),
        "{err}"
    );
    let got = results(&mut conn);
    assert!(got.len() < N, "stopped before the end");
    assert!(
        got.values().all(|r| r["outcome"] == "acked"),
        "a refusal is not an outcome of the message"
    );
    assert!(
        pending(&mut conn) > 0,
        "what was read and not finished stays pending"
    );

    // With the key accepted again, a relay finishes the rest: one record per entry (an
    // entry acked without a record would never get one).
    emu.set_script(Script::default());
    let relay = spawn(scratch.relay(&redis, &emu, "r", &[]));
    within(60, "all recorded", || xlen(&mut conn, "gcm:results") >= N).await;
    signal(&relay, libc::SIGTERM);
    assert_eq!(finish(relay, 30).await.0, Some(0));
    let got = results(&mut conn);
    assert_eq!(got.len(), N);
    assert!(ids.iter().all(|id| got.contains_key(id)));
    assert_eq!(pending(&mut conn), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_its_own_ca_and_verification_on() {
    let ca = pki::TestCa::new("redis test CA");
    let leaf = ca.leaf(&["localhost"], pki::ALWAYS_VALID);
    let redis = Redis::start_tls(&leaf.chain_pem, &leaf.key_pem);
    let mut conn = redis.conn();
    let emu = emulator(Script::default()).await;
    let scratch = Scratch::new(&emu);
    std::fs::write(scratch.path("redis-ca.pem"), ca.pem()).unwrap();
    std::fs::write(
        scratch.path("in.ndjson"),
        "{\"to\":\"a\"}\n{\"to\":\"b\"}\n",
    )
    .unwrap();
    let ca_file = scratch.path("redis-ca.pem");
    let ca_file = ca_file.to_str().unwrap();
    let mut enqueue = bin();
    enqueue
        .args([
            "enqueue",
            "--redis",
            &redis.tls_url(),
            "--redis-ca-file",
            ca_file,
        ])
        .arg("--input")
        .arg(scratch.path("in.ndjson"));
    let out = output(enqueue).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(xlen(&mut conn, STREAM), 2);

    let tls_url = redis.tls_url();
    let relay = spawn(scratch.relay_at(&tls_url, &emu, "tls", &["--redis-ca-file", ca_file]));
    within(30, "2 recorded", || xlen(&mut conn, "gcm:results") >= 2).await;
    signal(&relay, libc::SIGTERM);
    let (code, err) = finish(relay, 30).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(results(&mut conn).values().all(|r| r["outcome"] == "acked"));

    // Without the CA the server's certificate is not trusted: nothing is read.
    let relay = scratch.relay_at(&tls_url, &emu, "untrusted", &["--redis-start-budget", "1"]);
    let (code, err) = finish(spawn(relay), 30).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // A CA file with a URL that is not TLS is a usage error.
    let mut relay = scratch.relay(&redis, &emu, "plain", &["--redis-ca-file"]);
    relay.arg(scratch.path("redis-ca.pem"));
    let (code, err) = finish(spawn(relay), 30).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("rediss:// URLs only"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_credentials_and_reachability_fail_clearly_with_exit_2() {
    let emu = emulator(Script::default()).await;
    let scratch = Scratch::new(&emu);
    let redis = Redis::start_with(Some("right-pass"));

    let mut wrong = scratch.relay(&redis, &emu, "r", &[]);
    wrong.env("REDIS_PASSWORD", "wrong-s3cret");
    let started = Instant::now();
    let out = output(wrong).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !err.contains("wrong-s3cret"),
        "the password is never shown: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried for the budget"
    );

    // In the URL too.
    let url = format!("redis://:wrong-s3cret@{}", "127.0.0.1:1");
    let mut unreachable = bin();
    unreachable
        .args(["relay", "--redis", &url, "--redis-start-budget", "1"])
        .args(["--sender-id", SENDER, "--endpoint", &emu.addr().to_string()])
        .arg("--ca-file")
        .arg(scratch.path("ca.pem"))
        .env("GCM_API_KEY", KEY);
    let out = output(unreachable).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unavailable"), "{err}");
    assert!(!err.contains("wrong-s3cret"), "{err}");
    assert!(err.contains("***"), "{err}");

    // A server key CCS refuses: exit 3 before any entry is read.
    let mut conn = redis.conn();
    produce(&mut conn, 2, "t");
    let mut bad_key = scratch.relay(&redis, &emu, "r", &[]);
    bad_key
        .env("REDIS_PASSWORD", "right-pass")
        .env("GCM_API_KEY", "AIzaNotTheKey_s3cret");
    let out = output(bad_key).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("AIzaNotTheKey_s3cret"), "{err}");
    assert_eq!(xlen(&mut conn, "gcm:results"), 0);
    let groups: redis::streams::StreamInfoGroupsReply = conn.xinfo_groups(STREAM).unwrap();
    assert!(
        groups.groups.is_empty(),
        "nothing read: not even the group exists yet"
    );

    // The right password from the environment works.
    let mut right = scratch.relay(&redis, &emu, "r", &[]);
    right.env("REDIS_PASSWORD", "right-pass");
    let relay = spawn(right);
    produce(&mut conn, 3, "t");
    within(30, "5 recorded", || xlen(&mut conn, "gcm:results") >= 5).await;
    signal(&relay, libc::SIGTERM);
    assert_eq!(finish(relay, 30).await.0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_reports_bad_lines_by_number_and_enqueues_the_rest() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    let mut file = std::fs::File::create(&input).unwrap();
    for n in 1..=3000 {
        match n {
            7 => writeln!(file, "{{\"to\":").unwrap(),
            8 => writeln!(file).unwrap(),
            9 => writeln!(file, r#"{{"data":{{"k":"v"}}}}"#).unwrap(),
            _ => writeln!(file, r#"{{"to":"t{n}"}}"#).unwrap(),
        }
    }
    drop(file);
    let mut cmd = bin();
    cmd.args(["enqueue", "--redis", &redis.url(), "--input"])
        .arg(&input);
    let out = output(cmd).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 7: INVALID_JSON"), "{err}");
    assert!(err.contains("line 8: BLANK_LINE"), "{err}");
    assert!(err.contains("line 9: MISSING_TARGET"), "{err}");
    assert!(err.contains("enqueued 2997 message(s)"), "{err}");
    let mut conn = redis.conn();
    assert_eq!(xlen(&mut conn, STREAM), 2997);
    let first: redis::streams::StreamRangeReply = conn.xrange_count(STREAM, "-", "+", 1).unwrap();
    assert_eq!(
        first.ids[0].get::<String>("message").unwrap(),
        r#"{"to":"t1"}"#
    );

    let mut down = bin();
    down.args([
        "enqueue",
        "--redis",
        "unix:///nonexistent/redis.sock",
        "--input",
    ])
    .arg(&input);
    let out = output(down).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// `GET path` over plain HTTP/1.1; the status and body.
/// Where `relay` serves its metrics, from its stderr.
async fn metrics_addr(relay: &Proc) -> String {
    within(30, "the metrics address on stderr", || {
        relay.stderr().contains("metrics on")
    })
    .await;
    let err = relay.stderr();
    let line = err.lines().find(|l| l.contains("metrics on")).unwrap();
    line.trim()
        .trim_start_matches("metrics on http://")
        .trim_end_matches("/metrics")
        .to_owned()
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// The samples of a Prometheus text exposition: `name{labels}` → value. Panics on a line
/// that is neither a comment nor a sample.
fn samples(body: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        out.insert(name.to_owned(), value);
    }
    assert!(body.ends_with("# EOF\n"), "complete exposition");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_match_the_results() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let emu = emulator(script(vec![rule("gone-", nack("DEVICE_UNREGISTERED"))])).await;
    let scratch = Scratch::new(&emu);
    produce(&mut conn, 40, "t");
    produce(&mut conn, 10, "gone-");
    let relay = spawn(scratch.relay(&redis, &emu, "m", &["--metrics-listen", "127.0.0.1:0"]));
    let addr = metrics_addr(&relay).await;
    within(30, "50 recorded", || xlen(&mut conn, "gcm:results") >= 50).await;
    // Gauges refresh every 2 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    let s = samples(&body);
    assert_eq!(
        s[r#"gcm_ccs_relay_messages_total{outcome="acked",code=""}"#], 40.0,
        "{body}"
    );
    assert_eq!(
        s[r#"gcm_ccs_relay_messages_total{outcome="nacked",code="DEVICE_UNREGISTERED"}"#],
        10.0
    );
    assert_eq!(s["gcm_ccs_relay_send_latency_seconds_count"], 50.0);
    assert_eq!(s["gcm_ccs_relay_stream_pending"], 0.0);
    assert_eq!(s["gcm_ccs_relay_stream_lag"], 0.0);
    assert_eq!(s["gcm_ccs_relay_in_flight"], 0.0);
    assert_eq!(s[r#"gcm_ccs_relay_connections{state="up"}"#], 1.0);
    assert_eq!(get(&addr, "/healthz").0, 200);

    // No connection up: unhealthy.
    emu.shutdown();
    within(30, "/healthz answering 503", || {
        get(&addr, "/healthz").0 == 503
    })
    .await;
    signal(&relay, libc::SIGTERM);
    assert_eq!(finish(relay, 30).await.0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_http_as_the_fallback_a_relay_without_a_stream_is_healthy_and_sends() {
    let redis = Redis::start();
    let mut conn = redis.conn();
    let mut cfg = EmulatorConfig::new(SENDER, KEY);
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    let emu = Emulator::start(cfg).await.unwrap();
    let scratch = Scratch::new(&emu);
    // CCS where nothing listens: the stream never comes up.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = dead.local_addr().unwrap().to_string();
    drop(dead);
    let http_url = emu.http_url().unwrap();
    let args = [
        "--via",
        "auto",
        "--http-url",
        &http_url,
        "--metrics-listen",
        "127.0.0.1:0",
        "--unavailable-after",
        "1",
    ];
    let relay = spawn(scratch.relay_to(&redis.url(), &endpoint, "auto", &args));
    let addr = metrics_addr(&relay).await;
    produce(&mut conn, 20, "tok-");
    within(30, "20 recorded", || xlen(&mut conn, "gcm:results") >= 20).await;
    assert_eq!(
        emu.http_requests().len(),
        20,
        "every message went over HTTP"
    );
    // Gauges refresh every 2 s: no connection up, and still healthy.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = samples(&get(&addr, "/metrics").1);
    assert_eq!(s[r#"gcm_ccs_relay_connections{state="up"}"#], 0.0);
    assert_eq!(
        s[r#"gcm_ccs_relay_messages_total{outcome="acked",code=""}"#],
        20.0
    );
    assert_eq!(get(&addr, "/healthz").0, 200);
    signal(&relay, libc::SIGTERM);
    assert_eq!(finish(relay, 30).await.0, Some(0));
}
