//! The runtime every object-store request runs on: two threads of pgarrow's own, so that the
//! requests go on while the caller's thread decodes or encodes, whatever runtime (or none)
//! the caller has.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use tokio::runtime::{Builder, Handle};
use tokio::task::JoinHandle;

/// The runtime's handle, made by this process: a child forked after it was made (Python's
/// `multiprocessing`) has none of its threads, so it makes its own (the parent's is left
/// alone: dropping it there would wait for threads that do not exist).
fn runtime() -> Handle {
    static IO: Mutex<Option<(u32, Handle)>> = Mutex::new(None);
    let mut io = IO.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if let Some((owner, handle)) = io.as_ref()
        && *owner == pid
    {
        return handle.clone();
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pgarrow-io")
        .enable_all()
        .build()
        // Without threads or a timer the process cannot do anything else either.
        .unwrap_or_else(|e| panic!("pgarrow cannot start its I/O threads: {e}"));
    let handle = runtime.handle().clone();
    // It lives as long as the process.
    std::mem::forget(runtime);
    *io = Some((pid, handle.clone()));
    handle
}

/// Starts `fut` on the I/O runtime; its result comes through the returned receiver.
pub(crate) fn spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> (JoinHandle<()>, mpsc::Receiver<T>) {
    let (tx, rx) = mpsc::sync_channel(1);
    let handle = runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    (handle, rx)
}

/// Runs `fut` on the I/O runtime and waits for it here (from any thread, in a runtime or not:
/// this thread only waits on a channel).
pub(crate) fn run<T: Send + 'static>(
    fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
) -> object_store::Result<T> {
    let (_handle, rx) = spawn(fut);
    rx.recv().unwrap_or_else(|_| {
        Err(object_store::Error::Generic {
            store: "pgarrow",
            source: "the I/O task ended without an answer".into(),
        })
    })
}
