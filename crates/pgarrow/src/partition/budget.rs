//! The memory of a partitioned export: how its limit is shared between the connections and
//! what is in flight ([`Shares`]), and the bytes of batches and encoded row groups on their
//! way from the connections to the output, bounded ([`Budget`]).

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use pgarrow_io::SinkOptions;

use super::PartitionOptions;
use super::plan::PartitionPlan;
use crate::ExportOptions;

/// Bytes in flight, bounded: a connection that would go over the limit waits (and the server
/// then waits on its socket) until the output has taken enough.
///
/// Two exceptions keep it from deadlocking: something always fits when nothing is held, and
/// the part the output writes next (its *head*, for order-preserving output) never waits,
/// since everything else waits for it.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    held: usize,
    peak: usize,
    head: Option<usize>,
    stopped: bool,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `bytes` for `part`, waiting while they do not fit. `false` when the export was
    /// stopped meanwhile.
    pub(crate) fn acquire(&self, part: usize, bytes: usize) -> bool {
        let mut s = self.state();
        while !s.stopped && s.held > 0 && s.held + bytes > self.limit && s.head != Some(part) {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.stopped {
            return false;
        }
        s.held += bytes;
        s.peak = s.peak.max(s.held);
        true
    }

    /// Gives back `bytes` taken by [`acquire`](Budget::acquire).
    pub(crate) fn release(&self, bytes: usize) {
        let mut s = self.state();
        s.held = s.held.saturating_sub(bytes);
        drop(s);
        self.changed.notify_all();
    }

    /// The part the output writes next: it never waits.
    pub(crate) fn set_head(&self, part: usize) {
        self.state().head = Some(part);
        self.changed.notify_all();
    }

    /// Wakes every waiter and makes further acquisitions fail.
    pub(crate) fn stop(&self) {
        self.state().stopped = true;
        self.changed.notify_all();
    }

    /// The most bytes held at once.
    pub(crate) fn peak(&self) -> usize {
        self.state().peak
    }
}

/// What a Parquet encoder holds per leaf column whatever the row group's size, about: its
/// zstd context, its dictionary (up to the 1 MiB dictionary page limit) and the dictionary
/// page kept until the row group ends. Measured with massif on the `wide` table: 40-45 MiB
/// for 24 leaves.
const PARQUET_LEAF_STATE: usize = 2 << 20;

/// The least a connection gets for its batches (one being built, one being written) and its
/// row group.
const MIN_CONNECTION: usize = 8 << 20;

/// How the memory limit is shared: a quarter for what is in flight between threads, the rest
/// between the connections, each holding the batch it builds, the batch it writes and, for
/// Parquet, its row group and its encoder's fixed state. Fewer connections read than asked
/// when that many would not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shares {
    pub(crate) connections: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) row_group_bytes: usize,
    pub(crate) in_flight: usize,
    /// What each connection's laid-out files may hold (value partitions' pending rows and
    /// open files): half its own share and its part of what would be in flight.
    pub(crate) layout_bytes: usize,
    /// Connections asked for (at most one per part).
    pub(crate) wanted: usize,
}

impl Shares {
    /// The shares for `plan` read under `partitions`; `parquet`: the Parquet options, when
    /// each connection encodes Parquet.
    pub(crate) fn new(
        partitions: &PartitionOptions,
        plan: &PartitionPlan,
        options: &ExportOptions,
        parquet: Option<&SinkOptions>,
    ) -> Shares {
        let limit = partitions.memory_limit.max(1);
        let in_flight = (limit / 4).max(1);
        let for_connections = limit - in_flight;
        let fixed = match parquet {
            Some(_) => {
                let schema = pgarrow_io::parquet_compatible_schema(&Arc::new(plan.schema.clone()));
                let leaves: usize = schema.fields().iter().map(|f| leaves(f.data_type())).sum();
                leaves.max(1) * PARQUET_LEAF_STATE
            }
            None => 0,
        };
        let wanted = partitions.connections.min(plan.parts.len()).max(1);
        let fit = (for_connections / (fixed + MIN_CONNECTION)).max(1);
        let connections = wanted.min(fit);
        let own = (for_connections / connections)
            .saturating_sub(fixed)
            .max(MIN_CONNECTION);
        let row_group = parquet.map_or(0, |o| o.row_group_bytes);
        Shares {
            connections,
            batch_bytes: options.decode.batch_bytes.min(own / 4).max(64 << 10),
            row_group_bytes: row_group.min(own / 2).max(64 << 10),
            in_flight,
            layout_bytes: own / 2 + in_flight / connections,
            wanted,
        }
    }
}

impl Shares {
    /// The shares when each connection writes its files on a thread of its own: a third
    /// batch waits between the reader and the writer, so each batch gets two thirds of its
    /// share.
    pub(crate) fn with_writer_threads(mut self) -> Shares {
        self.batch_bytes = (self.batch_bytes * 2 / 3).max(64 << 10);
        self
    }
}

/// The primitive leaves of a type, as Parquet stores them (one column chunk each).
fn leaves(t: &arrow_schema::DataType) -> usize {
    use arrow_schema::DataType as T;
    match t {
        T::Struct(fields) => fields.iter().map(|f| leaves(f.data_type())).sum(),
        T::List(f) | T::LargeList(f) | T::FixedSizeList(f, _) | T::ListView(f) | T::Map(f, _) => {
            leaves(f.data_type())
        }
        T::Dictionary(_, v) => leaves(v),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waits_until_released_and_lets_the_head_through() {
        let b = Arc::new(Budget::new(100));
        assert!(b.acquire(1, 80));
        // Nothing else fits until the 80 are released; the head part goes through anyway.
        b.set_head(0);
        assert!(b.acquire(0, 50));
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.acquire(2, 30))
        };
        b.release(80);
        b.release(50);
        assert!(waiter.join().unwrap());
        assert_eq!(b.peak(), 130);
        // Something always fits when nothing is held.
        b.release(30);
        assert!(b.acquire(3, 1000));
    }

    #[test]
    fn stopping_wakes_waiters() {
        let b = Arc::new(Budget::new(10));
        assert!(b.acquire(0, 10));
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.acquire(1, 5))
        };
        b.stop();
        assert!(!waiter.join().unwrap());
        assert!(!b.acquire(0, 1));
    }
}
