//! The in-flight window of one connection: at most `capacity` downstream messages awaiting an
//! ack or nack, keyed by message id. Pure bookkeeping — no I/O, no clocks of its own.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use tokio::time::Instant;

/// Why an entry could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// The window already holds `capacity` entries.
    Full,
    /// An entry with this id is already in flight; reusing it would make acks ambiguous.
    Duplicate,
}

/// One in-flight entry: the caller's item plus when it went on the wire.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    pub item: T,
    pub sent_at: Instant,
    /// Insertion order, for messages sent at the same instant.
    seq: u64,
}

/// A bounded map `message_id → item` of messages on the wire.
#[derive(Debug)]
pub(crate) struct InFlight<T> {
    capacity: usize,
    entries: FxHashMap<Arc<str>, Slot<T>>,
    inserted: u64,
}

impl<T> InFlight<T> {
    /// An empty window holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        InFlight {
            capacity,
            entries: FxHashMap::with_capacity_and_hasher(capacity, Default::default()),
            inserted: 0,
        }
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.entries.len())
    }

    /// Records `item` as sent at `now`. On error the item is handed back untouched.
    pub fn insert(&mut self, id: Arc<str>, item: T, now: Instant) -> Result<(), (InsertError, T)> {
        if self.entries.len() >= self.capacity {
            return Err((InsertError::Full, item));
        }
        if self.entries.contains_key(&id) {
            return Err((InsertError::Duplicate, item));
        }
        self.inserted += 1;
        let seq = self.inserted;
        self.entries.insert(
            id,
            Slot {
                item,
                sent_at: now,
                seq,
            },
        );
        Ok(())
    }

    /// Removes and returns the entry for `id` (ack, nack or stanza error arrived).
    pub fn remove(&mut self, id: &str) -> Option<Slot<T>> {
        self.entries.remove(id)
    }

    /// When the longest-waiting entry was sent (a scan: the window holds at most 100).
    pub fn oldest_sent(&self) -> Option<Instant> {
        self.entries.values().map(|s| s.sent_at).min()
    }

    /// Empties the window (the connection died), oldest first; messages sent at the same
    /// instant in the order they were inserted.
    pub fn drain(&mut self) -> Vec<Slot<T>> {
        let mut all: Vec<Slot<T>> = self.entries.drain().map(|(_, s)| s).collect();
        all.sort_by_key(|s| (s.sent_at, s.seq));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn caps_at_capacity_and_refuses_duplicates() {
        let now = Instant::now();
        let mut w = InFlight::new(2);
        assert!(w.insert(id("a"), 1, now).is_ok());
        assert_eq!(w.insert(id("a"), 9, now), Err((InsertError::Duplicate, 9)));
        assert!(w.insert(id("b"), 2, now).is_ok());
        assert_eq!(w.insert(id("c"), 3, now), Err((InsertError::Full, 3)));
        assert_eq!(w.room(), 0);
        assert_eq!(w.remove("a").map(|s| s.item), Some(1));
        assert_eq!(w.remove("a").map(|s| s.item), None);
        assert_eq!(w.room(), 1);
    }

    #[test]
    fn out_of_order_removal_completes_the_right_entry() {
        let now = Instant::now();
        let mut w = InFlight::new(10);
        for (i, k) in ["x", "y", "z"].iter().enumerate() {
            w.insert(id(k), i, now).unwrap();
        }
        assert_eq!(w.remove("z").unwrap().item, 2);
        assert_eq!(w.remove("x").unwrap().item, 0);
        assert_eq!(w.room(), 9);
        assert_eq!(w.remove("y").unwrap().item, 1);
    }

    #[test]
    fn oldest_is_tracked_and_drain_is_oldest_first() {
        let t0 = Instant::now();
        let mut w = InFlight::new(10);
        w.insert(id("late"), "late", t0 + Duration::from_secs(5))
            .unwrap();
        w.insert(id("early"), "early", t0).unwrap();
        w.insert(id("mid"), "mid", t0 + Duration::from_secs(2))
            .unwrap();
        assert_eq!(w.oldest_sent(), Some(t0));
        assert_eq!(w.remove("early").map(|s| s.item), Some("early"));
        assert_eq!(w.oldest_sent(), Some(t0 + Duration::from_secs(2)));
        let drained: Vec<_> = w.drain().into_iter().map(|s| s.item).collect();
        assert_eq!(drained, vec!["mid", "late"]);
        assert_eq!(w.oldest_sent(), None);
    }

    #[test]
    fn messages_sent_at_one_instant_drain_in_insertion_order() {
        let t0 = Instant::now();
        let mut w = InFlight::new(100);
        let names: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        for name in &names {
            w.insert(id(name), name.clone(), t0).unwrap();
        }
        let drained: Vec<_> = w.drain().into_iter().map(|s| s.item).collect();
        assert_eq!(drained, names);
    }

    proptest! {
        // Any sequence of inserts and removals keeps len ≤ capacity and accounts for every item.
        #[test]
        fn never_exceeds_capacity(ops in proptest::collection::vec((any::<bool>(), 0u8..20), 0..200), cap in 1usize..8) {
            let now = Instant::now();
            let mut w = InFlight::new(cap);
            let mut model = std::collections::HashSet::new();
            for (insert, k) in ops {
                let key = k.to_string();
                if insert {
                    let r = w.insert(id(&key), k, now);
                    prop_assert_eq!(r.is_ok(), model.len() < cap && !model.contains(&key));
                    if r.is_ok() { model.insert(key); }
                } else {
                    prop_assert_eq!(w.remove(&key).is_some(), model.remove(&key));
                }
                prop_assert_eq!(w.room(), cap - model.len());
            }
        }
    }
}
