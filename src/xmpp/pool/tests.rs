//! The pool machine driven directly: each scenario is inputs with a time and the actions
//! they produce.

use std::time::Duration;

use super::harness::{Harness, config};
use crate::error::{ConnectError, SendError};
use crate::inbound::NackCode;
use crate::xmpp::events::Event;

const S: Duration = Duration::from_secs(1);

fn refused() -> ConnectError {
    ConnectError::Io {
        endpoint: "e:1".into(),
        source: std::sync::Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    }
}

fn auth() -> ConnectError {
    ConnectError::Auth {
        sender_id: "123".into(),
        condition: "not-authorized".into(),
    }
}

#[test]
fn jobs_go_to_the_connection_with_the_most_room_and_complete_once() {
    let mut h = Harness::connected(config());
    assert_eq!(h.live.len(), 2);
    let jobs: Vec<u64> = (0..6).map(|_| h.submit()).collect();
    // Window 3 each: 1, 2, 1, 2, 1, 2.
    assert_eq!(h.pending_on(0), vec![1]);
    assert_eq!(h.pending_on(1), vec![2]);
    assert_eq!(h.pending[&1].len(), 3);
    assert_eq!(h.pending[&2].len(), 3);
    // Full: the seventh waits, and the pool wants no more.
    let seventh = h.submit();
    assert!(h.pending_on(seventh).is_empty());
    assert!(!h.pool.wants_jobs(h.now));
    h.ack(2, "m1");
    assert_eq!(h.pending_on(seventh), vec![2]);
    h.ack_all();
    for job in jobs.into_iter().chain([seventh]) {
        assert!(h.outcome(job).is_ok());
    }
}

/// The liveness checks of a silent connection run on time although the other connection
/// keeps answering: its messages move to the live one after 2 × ping_interval, and nothing is
/// written to the silent one again.
#[test]
fn a_silent_connection_is_replaced_while_its_sibling_is_busy() {
    let mut h = Harness::connected(config());
    let on_silent = h.submit();
    assert_eq!(h.pending_on(on_silent), vec![1]);
    let t0 = h.now;
    // Connection 2 answers everything at once, 40 times a second; connection 1 says nothing.
    let mut steps = 0;
    while h.live.contains(&1) {
        h.now += Duration::from_millis(25);
        let job = h.submit();
        if let Some(&conn) = h.pending_on(job).first()
            && conn == 2
        {
            h.ack(2, &format!("m{job}"));
        }
        let now = h.now;
        h.tick_with(|conn| (conn == 2).then_some(now));
        steps += 1;
        assert!(steps < 10_000, "the silent connection was never given up");
    }
    let gave_up = h.now - t0;
    assert_eq!(gave_up, 2 * config().ping_interval, "{gave_up:?}");
    assert_eq!(h.closed_by_pool, vec![1]);
    // One ping went to the silent connection at 20 s; its messages are now on connection 2.
    assert!(h.written[&1].iter().any(|w| w.starts_with("<iq")));
    assert_eq!(h.pending_on(on_silent), vec![2]);
    // A replacement is opened within the reconnect jitter.
    h.advance(config().reconnect.reconnect_jitter);
    assert_eq!(h.connects.len(), 1, "{:?}", h.events);
    h.ack_all();
    assert!(h.outcome(on_silent).is_ok());
    assert_eq!(h.done[&on_silent][0].attempts, 2);
}

/// An ack timeout means the connection is suspect: it is closed and its whole window goes
/// elsewhere, rather than a second copy going out on it.
#[test]
fn an_ack_timeout_closes_the_connection_and_resends_its_window_elsewhere() {
    let mut h = Harness::connected(config());
    let a = h.submit(); // on 1
    let b = h.submit(); // on 2
    let c = h.submit(); // on 1
    assert_eq!((h.pending_on(a), h.pending_on(c)), (vec![1], vec![1]));
    // Both connections keep sending bytes (keepalives), but 1 never answers a nor c.
    for second in 1..=60 {
        h.now += S;
        let now = h.now;
        h.tick_with(|_| Some(now));
        if second == 30 {
            h.ack(2, "m1");
        }
    }
    assert!(h.outcome(b).is_ok());
    assert_eq!(h.closed_by_pool, vec![1], "{:?}", h.events);
    assert_eq!(h.pending_on(a), vec![2]);
    assert_eq!(h.pending_on(c), vec![2]);
    let lost = h.events.iter().any(|e| {
        matches!(
            e,
            Event::Lost {
                conn: 1,
                in_flight: 2,
                ..
            }
        )
    });
    assert!(lost, "{:?}", h.events);
    h.ack_all();
    assert!(h.outcome(a).is_ok() && h.outcome(c).is_ok());
}

#[test]
fn a_draining_connection_takes_nothing_new_and_its_leftovers_move_on_close() {
    let mut h = Harness::connected(config());
    let a = h.submit(); // on 1
    h.drain(1);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Draining { conn: 1 }))
    );
    assert_eq!(h.connects.len(), 1, "a replacement opens at once");
    let replacement = h.connects[0];
    let b = h.submit();
    let d = h.submit();
    assert_eq!((h.pending_on(b), h.pending_on(d)), (vec![2], vec![2]));
    h.connect(replacement);
    // Acks still count on the draining connection.
    h.server_closes(1);
    assert_eq!(h.pending_on(a), vec![replacement]);
    h.ack_all();
    for job in [a, b, d] {
        assert!(h.outcome(job).is_ok());
    }
    assert_eq!(h.pool.stats.snapshot().reconnects, 1);
}

#[test]
fn a_draining_connection_the_server_never_closes_is_closed_after_the_grace() {
    let mut h = Harness::connected(config());
    let a = h.submit();
    h.drain(1);
    for _ in 0..60 {
        h.now += S;
        let now = h.now;
        h.tick_with(|_| Some(now));
    }
    assert_eq!(h.closed_by_pool, vec![1]);
    assert_eq!(h.pending_on(a), vec![2]);
}

#[test]
fn retryable_nacks_back_off_and_rate_limits_cool_the_target_down() {
    let mut cfg = config();
    cfg.connections = 1;
    let mut h = Harness::connected(cfg);
    let job = h.submit();
    h.nack(1, "m0", NackCode::ServiceUnavailable);
    assert!(h.pending_on(job).is_empty(), "waiting out its backoff");
    // initial 1 s with jitter 0.5..1.5.
    h.advance(Duration::from_millis(1_500));
    assert_eq!(h.pending_on(job), vec![1]);
    h.nack(1, "m0", NackCode::DeviceMessageRateExceeded);
    let other = h.submit_to("tok"); // the same target cools down too
    assert!(h.pending_on(other).is_empty());
    let elsewhere = h.submit_to("another");
    assert_eq!(h.pending_on(elsewhere), vec![1]);
    assert_eq!(h.pool.cooldown.len(), 1);
    // Rate-limit backoff: 10 s × 2^(attempts-1) = 20 s with jitter, at most 30 s.
    h.advance(30 * S);
    assert_eq!(h.pending_on(job), vec![1]);
    assert_eq!(h.pending_on(other), vec![1]);
    assert!(h.pool.cooldown.is_empty(), "cool-down entries expire");
    h.ack_all();
    assert_eq!(h.done[&job][0].attempts, 3);
}

#[test]
fn final_nacks_and_exhausted_retries_complete_with_the_server_code() {
    let mut cfg = config();
    cfg.connections = 1;
    cfg.retry.max_attempts = 2;
    let mut h = Harness::connected(cfg);
    let gone = h.submit();
    h.nack(1, "m0", NackCode::DeviceUnregistered);
    assert_eq!(
        h.outcome(gone).as_ref().unwrap_err().nack_code(),
        Some(&NackCode::DeviceUnregistered)
    );
    let flaky = h.submit();
    h.nack(1, "m1", NackCode::InternalServerError);
    h.advance(2 * S);
    h.nack(1, "m1", NackCode::InternalServerError);
    assert!(matches!(h.outcome(flaky), Err(SendError::Nacked(_))));
    assert_eq!(h.done[&flaky][0].attempts, 2);
}

#[test]
fn connects_back_off_and_queued_messages_fail_after_unavailable_after() {
    let mut cfg = config();
    cfg.connections = 1;
    let mut h = Harness::new(cfg);
    let job = h.submit();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let conn = h.connects[0];
        h.fail_connect(conn, refused());
        let Some(Event::ConnectFailed { retry_in, .. }) = h.events.last() else {
            panic!("{:?}", h.events);
        };
        delays.push(*retry_in);
        assert!(h.connects.is_empty(), "the next attempt waits");
        h.advance(*retry_in);
        assert_eq!(h.connects.len(), 1, "then it is made");
        if h.elapsed() < Duration::from_secs(30) {
            assert!(h.done.is_empty());
        }
    }
    // 1 s, 2 s, 4 s, 8 s, each ×0.5..1.5.
    for (i, d) in delays.iter().enumerate() {
        let base = S * (1 << i);
        assert!(*d >= base / 2 && *d <= base * 3 / 2, "{delays:?}");
    }
    h.advance(Duration::from_secs(30));
    assert!(matches!(h.outcome(job), Err(SendError::Unavailable(_))));
    // While it lasts, new messages fail at once.
    let late = h.submit();
    assert!(matches!(h.outcome(late), Err(SendError::Unavailable(_))));
}

#[test]
fn an_auth_failure_fails_queued_messages_at_once_and_retries_slowly() {
    let mut cfg = config();
    cfg.connections = 1;
    let mut h = Harness::new(cfg);
    let job = h.submit();
    let conn = h.connects[0];
    h.fail_connect(conn, auth());
    assert!(matches!(h.outcome(job), Err(SendError::Unavailable(e)) if e.is_auth()));
    assert!(
        matches!(h.events.last(), Some(Event::AuthFailed { retry_in, .. }) if *retry_in == Duration::from_secs(60))
    );
    h.advance(Duration::from_secs(60));
    assert_eq!(h.connects.len(), 1);
}

#[test]
fn closing_waits_for_answers_then_fails_what_remains() {
    let mut h = Harness::connected(config());
    let acked = h.submit();
    let stuck = h.submit();
    h.pool.close(h.now);
    h.pool.on_intake_closed();
    h.ack(1, "m0");
    assert!(h.outcome(acked).is_ok());
    assert!(!h.pool.is_finished());
    h.advance(Duration::from_secs(10));
    assert!(matches!(h.outcome(stuck), Err(SendError::Closed)));
    assert!(h.pool.is_finished());
    h.pool.shutdown();
    h.drain_actions();
    assert!(h.live.is_empty(), "every connection is closed");
    // A job arriving after the deadline fails at once.
    let late = h.submit();
    assert!(matches!(h.outcome(late), Err(SendError::Closed)));
}

/// While the application does not take upstream messages the reader of that connection
/// waits: the connection takes no new messages, and neither its silence nor its unread acks
/// count against it.
#[test]
fn a_paused_connection_takes_nothing_and_is_not_judged_until_it_resumes() {
    let mut cfg = config();
    cfg.connections = 1;
    let mut h = Harness::connected(cfg);
    let job = h.submit();
    let now = h.now;
    h.pool.on_paused(now, 1);
    let waiting = h.submit();
    assert!(h.pending_on(waiting).is_empty());
    h.advance(Duration::from_secs(300));
    assert!(h.closed_by_pool.is_empty(), "{:?}", h.events);
    let now = h.now;
    h.pool.on_resumed(now, 1);
    h.drain_actions();
    assert_eq!(h.pending_on(waiting), vec![1]);
    // Clocks restart at the resume: 40 s of silence from here end it.
    h.advance(Duration::from_secs(39));
    assert!(h.closed_by_pool.is_empty());
    h.advance(S);
    assert_eq!(h.closed_by_pool, vec![1]);
    assert!(!h.done.contains_key(&job), "requeued, not failed");
}

/// With 1000 connections each message still costs O(log N): the pool keeps an index of free
/// room instead of scanning (asserted by the outcome here, by the placement property tests
/// for every interleaving).
#[test]
fn a_large_pool_fills_evenly() {
    let mut cfg = config();
    cfg.connections = 1000;
    cfg.window = 2;
    let mut h = Harness::connected(cfg);
    assert_eq!(h.live.len(), 1000);
    for _ in 0..2000 {
        h.submit();
    }
    assert!(h.pending.values().all(|p| p.len() == 2));
    assert!(!h.pool.wants_jobs(h.now));
}
