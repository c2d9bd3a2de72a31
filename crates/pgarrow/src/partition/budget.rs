//! The memory budget of a partitioned export: bytes of batches and encoded row groups on their
//! way from the connections to the output.

use std::sync::{Condvar, Mutex, PoisonError};

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
