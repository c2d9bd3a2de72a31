//! The one hand-off between a caller and long work: a [`Stop`] the work watches, and a
//! callback that hears the work's typed progress events.

use std::future::Future;

use crate::{ExportStats, Stop};

/// What a caller sees of long work while it runs, and how it stops it: the same value for
/// every long call. `P` is the call's progress event:
///
/// | call | `P` | heard |
/// |---|---|---|
/// | exports (one connection, partitioned, a part, several tables, incremental runs) | [`ExportStats`] | after each batch, the statistics so far |
/// | [`Client::load_with`](crate::Client::load_with), [`copy`](crate::copy), their blocking forms | [`LoadProgress`](crate::LoadProgress) | after each chunk sent |
/// | `pgarrow_changes::changes_to` | `ChangesProgress` | a schema change, a roll written |
/// | `pgarrow_changes::apply_changes` | `ApplyStats` | after each roll applied |
/// | `pgarrow_changes::ChangeStream::start_with` | the `Lsn` | each position confirmed to the server |
///
/// The stop ends the work as its call documents (a query cancelled, a load rolled back, a
/// temporary file removed), and the call fails with
/// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled), or, for a change stream, ends at
/// the next transaction boundary.
///
/// ```
/// let stop = pgarrow::Stop::new();
/// let hooks = pgarrow::Hooks::new()
///     .on_progress(|stats: &pgarrow::ExportStats| eprintln!("{} rows", stats.rows))
///     .with_stop(stop.clone());
/// // `stop.stop()`, from any thread, cancels the export that runs with `hooks`.
/// # drop((hooks, stop));
/// ```
pub struct Hooks<'a, P: ?Sized = ExportStats> {
    pub(crate) progress: Option<Progress<'a, P>>,
    pub(crate) stop: Stop,
}

pub(crate) type Progress<'a, P> = Box<dyn FnMut(&P) + Send + 'a>;

impl<P: ?Sized> Default for Hooks<'_, P> {
    fn default() -> Self {
        Hooks {
            progress: None,
            stop: Stop::new(),
        }
    }
}

impl<P: ?Sized> std::fmt::Debug for Hooks<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("progress", &self.progress.is_some())
            .field("stop", &self.stop)
            .finish()
    }
}

impl<'a, P: ?Sized> Hooks<'a, P> {
    /// No progress callback, and a stop nobody else holds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls `f` with each progress event of the work (see the table above).
    pub fn on_progress(mut self, f: impl FnMut(&P) + Send + 'a) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Stops the work when `stop` (or any clone of it) is stopped.
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// The stop.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// Hands `event` to the progress callback, if there is one: what the work calls (a crate
    /// above the engine, such as `pgarrow-changes`, included).
    pub fn report(&mut self, event: &P) {
        if let Some(progress) = self.progress.as_mut() {
            progress(event);
        }
    }

    /// Runs `fut` unless the stop comes first (then `None`).
    pub(crate) async fn or_cancelled<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        self.stop.run(fut).await.ok()
    }
}
