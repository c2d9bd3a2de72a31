//! The one guard over what a commit writes before it lands: data files, deletion vectors,
//! delete files, manifests, metadata. Every file a commit writes is tracked here; unless the
//! commit lands and [`Cleanup::keep`] is called, dropping the guard removes them all, so an
//! error, a lost race or a future dropped before its commit leaves no file of the attempt
//! behind. The export's own data files have their guard in the export
//! ([`pgarrow::partition::ExportedFiles`]), kept on the same commit.
//!
//! A future dropped while its commit's own write is in flight (the version file, the catalog
//! transaction, the metadata swap, each on a task of its own) is the one case the guard cannot
//! tell from a failure: the commit may land after the guard removed its files. The doors never
//! drop a commit's future (Ctrl-C asks the run to stop, and it stops between steps); a library
//! caller that cancels a lake write should let it finish instead.

use pgarrow::io::Location;
use pgarrow::{Error, ErrorKind, Result};

/// Runs `f` (blocking storage calls) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::from(ErrorKind::Internal(format!("a storage task: {e}"))))?
}

/// Files a commit wrote, removed unless it lands.
#[derive(Debug, Default)]
#[must_use = "the files are removed when it is dropped, unless kept"]
pub(crate) struct Cleanup {
    files: Vec<Location>,
    kept: bool,
}

impl Cleanup {
    /// A guard over nothing yet.
    pub(crate) fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Writes `bytes` at `at` atomically (a local directory made first), removed unless kept.
    ///
    /// # Errors
    /// Storage errors; the directory cannot be made.
    pub(crate) async fn write(&mut self, at: Location, bytes: Vec<u8>) -> Result<()> {
        self.files.push(at.clone());
        blocking(move || {
            if let Some(dir) = at.as_local().and_then(|p| p.parent()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::from(ErrorKind::Usage(format!("{}: {e}", dir.display())))
                })?;
            }
            Ok(at.write_atomically(&bytes)?)
        })
        .await
    }

    /// Removes `at` too unless kept: a file written otherwise (by a writer of data files).
    pub(crate) fn track(&mut self, at: Location) {
        self.files.push(at);
    }

    /// Removes `at` now, a file of this attempt no longer wanted (the attempt goes on).
    pub(crate) async fn remove(&mut self, at: &Location) {
        let name = at.to_string();
        self.files.retain(|f| f.to_string() != name);
        let at = at.clone();
        let _ = blocking(move || Ok(at.remove()?)).await;
    }

    /// The commit landed: its files stay.
    pub(crate) fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for f in &self.files {
            let _ = f.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &tempfile::TempDir, name: &str) -> Location {
        Location::Local(dir.path().join(name))
    }

    #[tokio::test]
    async fn what_is_not_kept_goes_and_what_is_kept_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (local(&dir, "a/x"), local(&dir, "b"), local(&dir, "c"));
        std::fs::write(dir.path().join("b"), b"by another writer of ours").unwrap();
        {
            let mut cleanup = Cleanup::new();
            cleanup.write(a.clone(), b"x".to_vec()).await.unwrap();
            cleanup.track(b.clone());
            cleanup.write(c.clone(), b"c".to_vec()).await.unwrap();
            cleanup.remove(&c).await;
            assert!(dir.path().join("a/x").exists() && !dir.path().join("c").exists());
        }
        assert!(
            !dir.path().join("a/x").exists(),
            "a lost attempt's file stayed"
        );
        assert!(!dir.path().join("b").exists(), "a tracked file stayed");
        let mut cleanup = Cleanup::new();
        cleanup.write(c.clone(), b"c".to_vec()).await.unwrap();
        cleanup.keep();
        drop(cleanup);
        assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"c");
    }

    /// A commit's future dropped midway (a cancelled task) removes what it wrote.
    #[tokio::test]
    async fn a_cancelled_attempt_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let at = local(&dir, "m.avro");
        let (wrote, written) = std::sync::mpsc::channel();
        let mut attempt = Box::pin(async {
            let mut cleanup = Cleanup::new();
            cleanup.write(at.clone(), b"m".to_vec()).await.unwrap();
            wrote.send(()).unwrap();
            std::future::pending::<()>().await;
            cleanup.keep();
        });
        // Driven until the file is written, then dropped as a cancelled task is.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        while written.try_recv().is_err() {
            assert!(attempt.as_mut().poll(&mut cx).is_pending());
            tokio::task::yield_now().await;
        }
        assert!(dir.path().join("m.avro").exists());
        drop(attempt);
        assert!(!dir.path().join("m.avro").exists());
    }
}
