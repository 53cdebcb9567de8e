//! Which connection takes the next message: the one with the most free window space, the
//! lowest id among equals. An ordered index of the connections that can take messages, so
//! picking and updating cost O(log N) however large the pool is, and the total free room is
//! a counter.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use super::ConnId;

#[derive(Debug, Default)]
pub(super) struct Placement {
    /// `(free room, Reverse(id))` of every connection that can take a message now.
    open: BTreeSet<(usize, Reverse<ConnId>)>,
    /// Sum of the free room in `open`.
    room: usize,
}

impl Placement {
    /// Moves `conn` from `was` (its entry, if it had one) to `now` (`None` or `Some(0)`: it
    /// takes nothing). Returns what the connection is registered with afterwards.
    pub fn update(
        &mut self,
        conn: ConnId,
        was: Option<usize>,
        now: Option<usize>,
    ) -> Option<usize> {
        let now = now.filter(|room| *room > 0);
        if was == now {
            return now;
        }
        if let Some(room) = was {
            self.open.remove(&(room, Reverse(conn)));
            self.room -= room;
        }
        if let Some(room) = now {
            self.open.insert((room, Reverse(conn)));
            self.room += room;
        }
        now
    }

    /// The connection to send on, if any can take a message.
    pub fn best(&self) -> Option<ConnId> {
        self.open.last().map(|(_, Reverse(id))| *id)
    }

    /// Free window space over every connection that takes messages.
    pub fn room(&self) -> usize {
        self.room
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn picks_the_most_room_then_the_lowest_id() {
        let mut p = Placement::default();
        let a = p.update(1, None, Some(40));
        let b = p.update(2, None, Some(90));
        p.update(3, None, Some(90));
        assert_eq!((p.best(), p.room()), (Some(2), 220));
        p.update(2, b, Some(10));
        assert_eq!(p.best(), Some(3));
        assert_eq!(p.update(1, a, Some(0)), None);
        assert_eq!(p.room(), 100);
    }

    proptest! {
        /// Whatever the updates, `best` and `room` agree with a scan of every connection.
        #[test]
        fn agrees_with_a_full_scan(ops in proptest::collection::vec((0u64..20, proptest::option::of(0usize..101)), 0..300)) {
            let mut p = Placement::default();
            let mut registered: HashMap<ConnId, usize> = HashMap::new();
            for (conn, room) in ops {
                let was = registered.get(&conn).copied();
                match p.update(conn, was, room) {
                    Some(r) => { registered.insert(conn, r); }
                    None => { registered.remove(&conn); }
                }
                let best = registered.iter().max_by_key(|(id, r)| (**r, Reverse(**id))).map(|(id, _)| *id);
                prop_assert_eq!(p.best(), best);
                prop_assert_eq!(p.room(), registered.values().sum::<usize>());
            }
        }
    }
}
