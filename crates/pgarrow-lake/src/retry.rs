//! The one retry of an optimistic commit that lost its race, for every format and every path
//! (exports, incremental runs, mirrors, `apply`, compaction, expiry).
//!
//! A commit is a compare-and-swap: a Delta version created only if absent, an Iceberg metadata
//! pointer swapped only from the one read, a DuckLake snapshot row inserted only after the one
//! read. When another writer got there first, the caller reads the table again and tries anew;
//! [`Retries`] decides whether another try is allowed, and waits before it: an exponential
//! backoff with full jitter (a random wait up to the bound, so that writers that collided do not
//! collide again in step), under a bounded number of tries and a total time limit. When those
//! are spent the race is lost for good: an [`ErrorKind::Conflict`] saying how many tries it took,
//! with nothing committed.

use std::fmt::Display;
use std::time::{Duration, Instant};

use pgarrow::{Error, ErrorKind, Result};

/// The first wait's bound; each try after doubles it, up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(10);

/// The longest any one wait may be.
const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// How long a commit keeps trying in all: past it, the next lost race is the last.
pub const RETRY_WITHIN: Duration = Duration::from_secs(300);

/// The tries of one commit: how many were lost, and whether another may follow.
#[derive(Debug)]
pub(crate) struct Retries {
    /// Lost races allowed before giving up.
    most: usize,
    /// Lost races so far.
    lost: usize,
    started: Instant,
    within: Duration,
    /// What commits, for the final error ("Delta table s.t").
    what: String,
}

impl Retries {
    /// The tries of committing `what`: up to `most` lost races are retried.
    pub(crate) fn new(most: usize, what: impl Into<String>) -> Retries {
        Retries {
            most,
            lost: 0,
            started: Instant::now(),
            within: RETRY_WITHIN,
            what: what.into(),
        }
    }

    /// The same, under a total time limit other than [`RETRY_WITHIN`] (tests).
    #[cfg(test)]
    fn within(mut self, within: Duration) -> Retries {
        self.within = within;
        self
    }

    /// Lost races retried so far.
    pub(crate) fn retried(&self) -> usize {
        self.lost
    }

    /// The race was lost (`why`: what the other writer did): waits the jittered backoff and
    /// returns, when another try is allowed; the caller then reads the table again.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] when the tries or the time are spent: nothing was committed.
    pub(crate) async fn lost(&mut self, why: impl Display) -> Result<()> {
        let wait = self.next_wait(fastrand::f64(), &why)?;
        self.lost += 1;
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The wait before the next try, `fraction` (in `[0, 1)`) of its bound; the error when no
    /// try is left. Pure, for the tests.
    fn next_wait(&self, fraction: f64, why: &dyn Display) -> Result<Duration> {
        let tries = self.lost + 1;
        if self.lost >= self.most {
            return Err(self.spent(why, format_args!("{tries} times in a row")));
        }
        let bound = backoff_bound(self.lost);
        if self.started.elapsed() + bound > self.within {
            return Err(self.spent(
                why,
                format_args!(
                    "{tries} times in {:.1} s",
                    self.started.elapsed().as_secs_f64()
                ),
            ));
        }
        Ok(bound.mul_f64(fraction.clamp(0.0, 1.0)))
    }

    fn spent(&self, why: &dyn Display, how: impl Display) -> Error {
        ErrorKind::Conflict(format!(
            "{}: {why} ({how}); nothing was committed",
            self.what
        ))
        .into()
    }
}

/// The bound of the wait after `lost` lost races: [`FIRST_WAIT`] doubled for each, at most
/// [`LONGEST_WAIT`].
fn backoff_bound(lost: usize) -> Duration {
    let doubled = FIRST_WAIT.saturating_mul(1u32 << lost.min(16));
    doubled.min(LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_doubles_up_to_the_longest_wait() {
        assert_eq!(backoff_bound(0), FIRST_WAIT);
        assert_eq!(backoff_bound(1), FIRST_WAIT * 2);
        assert_eq!(backoff_bound(3), FIRST_WAIT * 8);
        assert_eq!(backoff_bound(8), LONGEST_WAIT);
        assert_eq!(backoff_bound(usize::MAX), LONGEST_WAIT);
    }

    #[test]
    fn the_wait_is_jittered_within_its_bound() {
        let mut r = Retries::new(10, "t");
        r.lost = 4;
        assert_eq!(r.next_wait(0.0, &"x").unwrap(), Duration::ZERO);
        assert_eq!(r.next_wait(0.5, &"x").unwrap(), backoff_bound(4) / 2);
        assert!(r.next_wait(0.999, &"x").unwrap() < backoff_bound(4));
    }

    #[tokio::test]
    async fn the_tries_are_bounded_and_the_last_loss_is_a_conflict() {
        let mut r = Retries::new(3, "Delta table s.t");
        for _ in 0..3 {
            r.lost("another writer took version 5").await.unwrap();
        }
        assert_eq!(r.retried(), 3);
        let e = r.lost("another writer took version 5").await.unwrap_err();
        assert!(e.is_conflict(), "{e}");
        assert_eq!(
            e.to_string(),
            "Delta table s.t: another writer took version 5 (4 times in a row); nothing was \
             committed"
        );
        assert_eq!(r.retried(), 3, "a refused try is not counted as retried");
    }

    #[tokio::test]
    async fn no_retry_is_allowed_when_none_is_asked() {
        let mut r = Retries::new(0, "t");
        assert!(r.lost("x").await.unwrap_err().is_conflict());
    }

    #[test]
    fn the_time_limit_ends_the_tries() {
        let mut r = Retries::new(100, "Iceberg table n.t").within(Duration::from_millis(15));
        // The first wait's bound (10 ms) fits; the second's (20 ms) does not.
        assert!(r.next_wait(0.0, &"x").is_ok());
        r.lost = 1;
        let e = r.next_wait(0.0, &"moved").unwrap_err();
        assert!(e.is_conflict());
        assert!(e.to_string().contains("2 times in"), "{e}");
    }
}
