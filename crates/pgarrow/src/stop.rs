//! One way to stop running work: a value that can be awaited (inside async code) and polled
//! (by a blocking caller between waits), given to every entry point.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::{ErrorKind, Result};

/// Stops whatever work was given it: an export (the server query is cancelled, no file is
/// left), a partitioned export (every connection), several tables, a load (CopyFail and a
/// rollback: the table is as it was) or a copy. Clones share one state, so one clone can be
/// kept by whoever decides (a signal handler, a timeout, a UI) and another handed to the
/// work, which then fails with [`ErrorKind::Cancelled`].
///
/// Work that waits checks the stop as it waits: async code through [`stopped`](Stop::stopped);
/// a blocking front door ([`blocking::block_on`](crate::blocking::block_on)) also calls
/// [`poll`](Stop::poll) every [`CHECK_EVERY`](crate::blocking::CHECK_EVERY) on its own thread,
/// which runs the check given to [`Stop::polled`] there (an interpreter's signal handlers,
/// say, which must run on its main thread).
///
/// ```
/// let stop = pgarrow::Stop::new();
/// let hooks: pgarrow::Hooks = pgarrow::Hooks::new().with_stop(stop.clone());
/// // `stop.stop()`, from any thread, cancels the export that runs with `hooks`.
/// stop.stop();
/// assert!(stop.is_stopped());
/// # drop(hooks);
/// ```
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    notify: Notify,
    /// Asked by [`Stop::poll`] whether to stop.
    check: Mutex<Option<Check>>,
}

type Check = Box<dyn FnMut() -> bool + Send>;

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Stop {
    /// A stop that only [`stop`](Stop::stop) sets.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A stop that also stops when `check` returns `true`; `check` runs on the thread of a
    /// blocking front door each time it [`poll`](Stop::poll)s (never inside async code).
    pub fn polled(check: impl FnMut() -> bool + Send + 'static) -> Stop {
        let stop = Stop::new();
        *stop.inner.check.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(check));
        stop
    }

    /// Stops the work (every clone sees it). Idempotent.
    pub fn stop(&self) {
        if !self.inner.stopped.swap(true, Ordering::SeqCst) {
            self.inner.notify.notify_waiters();
        }
    }

    /// Whether it was stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Runs the check of [`Stop::polled`] (stopping if it says so), and says whether it is
    /// stopped.
    pub fn poll(&self) -> bool {
        if !self.is_stopped() {
            let said = {
                let mut check = self.inner.check.lock().unwrap_or_else(|e| e.into_inner());
                check.as_mut().is_some_and(|c| c())
            };
            if said {
                self.stop();
            }
        }
        self.is_stopped()
    }

    /// Resolves once it is stopped (at once if it already was).
    pub async fn stopped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read: a stop in between still wakes it.
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    /// Runs `fut` unless it is stopped first: then `fut` is dropped unfinished and the
    /// result is [`ErrorKind::Cancelled`].
    ///
    /// # Errors
    /// [`ErrorKind::Cancelled`].
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output> {
        tokio::select! {
            biased;
            () = self.stopped() => Err(ErrorKind::Cancelled.into()),
            out = fut => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_wakes_its_waiters_and_a_check_can_stop_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stop = Stop::new();
        let other = stop.clone();
        let waited = rt.block_on(async {
            let waiter = stop.run(std::future::pending::<()>());
            let stopper = async {
                tokio::task::yield_now().await;
                other.stop();
            };
            tokio::join!(waiter, stopper).0
        });
        assert!(waited.unwrap_err().is_cancelled());
        // Already stopped: at once.
        rt.block_on(stop.stopped());
        assert!(rt.block_on(Stop::new().run(async { 7 })).is_ok());

        let mut asked = 0;
        let polled = Stop::polled(move || {
            asked += 1;
            asked == 2
        });
        assert!(!polled.poll());
        assert!(polled.poll());
        assert!(polled.is_stopped());
    }
}
