//! Property tests: random interleavings of jobs, acks, nacks, stanza errors, drains, drops,
//! silences, pauses, connect failures and clock jumps. Whatever happens, every accepted job
//! completes exactly once; no connection ever has more than the window unanswered as the
//! server counts it; no message is pending on two connections at once nor written twice on
//! one; every timer due at `now` fires in `on_tick(now)`; nothing is lost when the client
//! closes. (The harness asserts the per-action rules as it records the actions.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::ConnId;
use super::harness::{Harness, config};
use crate::error::ConnectError;
use crate::inbound::{Inbound, NackCode, StanzaError};

#[derive(Debug, Clone)]
enum Op {
    Submit(u8),
    Connect(usize),
    FailConnect(usize, bool),
    Ack(usize),
    Nack(usize, u8),
    StanzaError(usize),
    Drain(usize),
    Drop(usize),
    Pause(usize),
    Resume(usize),
    /// The connection stops (or starts again) sending bytes.
    Silence(usize),
    Advance(u32),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u8>().prop_map(|t| Op::Submit(t % 4)),
        3 => any::<usize>().prop_map(Op::Connect),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, a)| Op::FailConnect(k, a)),
        8 => any::<usize>().prop_map(Op::Ack),
        2 => (any::<usize>(), 0u8..5).prop_map(|(k, c)| Op::Nack(k, c)),
        1 => any::<usize>().prop_map(Op::StanzaError),
        1 => any::<usize>().prop_map(Op::Drain),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Pause),
        1 => any::<usize>().prop_map(Op::Resume),
        1 => any::<usize>().prop_map(Op::Silence),
        4 => (0u32..90_000).prop_map(Op::Advance),
        1 => Just(Op::Close),
    ]
}

fn pick<T: Clone>(items: &[T], k: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[k % items.len()].clone())
}

struct World {
    h: Harness,
    silent: BTreeSet<ConnId>,
    paused: BTreeSet<ConnId>,
    accepted: u64,
    closing: bool,
}

impl World {
    fn pending(&self) -> Vec<(ConnId, String)> {
        self.h
            .pending
            .iter()
            .flat_map(|(c, ids)| ids.iter().map(move |id| (*c, id.clone())))
            .collect()
    }

    fn live(&self) -> Vec<ConnId> {
        self.h.live.iter().copied().collect()
    }

    fn tick(&mut self) {
        let now = self.h.now;
        let silent = self.silent.clone();
        self.h.tick_with(|c| (!silent.contains(&c)).then_some(now));
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Submit(t) => {
                self.h.submit_to(&format!("tok{t}"));
                self.accepted += 1;
            }
            Op::Connect(k) => {
                if let Some(c) = pick(&self.h.connects, k) {
                    self.h.connect(c);
                }
            }
            Op::FailConnect(k, auth) => {
                if let Some(c) = pick(&self.h.connects, k) {
                    let error = if auth {
                        ConnectError::Auth {
                            sender_id: "123".into(),
                            condition: "not-authorized".into(),
                        }
                    } else {
                        ConnectError::Protocol("no header".into())
                    };
                    self.h.fail_connect(c, error);
                }
            }
            Op::Ack(k) => {
                if let Some((c, id)) = pick(&self.pending(), k) {
                    self.h.ack(c, &id);
                }
            }
            Op::Nack(k, code) => {
                if let Some((c, id)) = pick(&self.pending(), k) {
                    let code = match code {
                        0 => NackCode::ServiceUnavailable,
                        1 => NackCode::DeviceMessageRateExceeded,
                        2 => NackCode::DeviceUnregistered,
                        3 => NackCode::ConnectionDraining,
                        _ => NackCode::Other("NEW".into()),
                    };
                    self.h.nack(c, &id, code);
                }
            }
            Op::StanzaError(k) => {
                if let Some((c, id)) = pick(&self.pending(), k) {
                    let e = Inbound::StanzaError(StanzaError {
                        id: Some(id.clone()),
                        condition: "bad-request".into(),
                        text: None,
                    });
                    self.h.answer(c, &id, e);
                }
            }
            Op::Drain(k) => {
                if let Some(c) = pick(&self.live(), k) {
                    self.h.drain(c);
                }
            }
            Op::Drop(k) => {
                if let Some(c) = pick(&self.live(), k) {
                    self.h.server_closes(c);
                }
            }
            Op::Pause(k) => {
                if let Some(c) = pick(&self.live(), k) {
                    self.paused.insert(c);
                    let now = self.h.now;
                    self.h.pool.on_paused(now, c);
                    self.h.drain_actions();
                }
            }
            Op::Resume(k) => {
                let paused: Vec<ConnId> = self.paused.iter().copied().collect();
                if let Some(c) = pick(&paused, k) {
                    self.paused.remove(&c);
                    let now = self.h.now;
                    self.h.pool.on_resumed(now, c);
                    self.h.drain_actions();
                }
            }
            Op::Silence(k) => {
                if let Some(c) = pick(&self.live(), k)
                    && !self.silent.remove(&c)
                {
                    self.silent.insert(c);
                }
            }
            Op::Advance(ms) => {
                self.h.now += Duration::from_millis(u64::from(ms));
                self.tick();
            }
            Op::Close => {
                if !self.closing {
                    self.closing = true;
                    let now = self.h.now;
                    self.h.pool.close(now);
                    self.h.pool.on_intake_closed();
                    self.h.drain_actions();
                }
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let window = config().window;
        let mut seen: BTreeMap<&str, ConnId> = BTreeMap::new();
        for (conn, ids) in &self.h.pending {
            prop_assert!(
                self.h.live.contains(conn),
                "pending on a dead connection {conn}"
            );
            prop_assert!(ids.len() <= window, "{} pending on {conn}", ids.len());
            for id in ids {
                if let Some(other) = seen.insert(id, *conn) {
                    prop_assert!(false, "{id} pending on {other} and {conn}");
                }
            }
        }
        for (job, done) in &self.h.done {
            prop_assert!(done.len() == 1, "job {job} completed {} times", done.len());
        }
        Ok(())
    }

    /// Closes (if not yet) and lets the server answer everything until the pool is done.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.apply(Op::Close);
        for _ in 0..100 {
            if self.h.pool.is_finished() {
                break;
            }
            while let Some(c) = self.h.connects.first().copied() {
                self.h.connect(c);
            }
            for c in self.paused.clone() {
                self.apply(Op::Resume(0));
                let _ = c;
            }
            self.silent.clear();
            self.h.ack_all();
            self.check()?;
            self.apply(Op::Advance(1_000));
            self.check()?;
        }
        prop_assert!(self.h.pool.is_finished(), "the close never finished");
        prop_assert_eq!(
            self.h.done.len() as u64,
            self.accepted,
            "a job without an outcome"
        );
        self.h.pool.shutdown();
        self.h.drain_actions();
        prop_assert!(self.h.live.is_empty());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_interleaving_keeps_the_invariants(ops in proptest::collection::vec(op(), 1..200)) {
        let mut w = World {
            h: Harness::new(config()),
            silent: BTreeSet::new(),
            paused: BTreeSet::new(),
            accepted: 0,
            closing: false,
        };
        for op in ops {
            w.apply(op);
            w.check()?;
        }
        w.finish()?;
    }
}
