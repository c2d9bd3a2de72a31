//! An object written as a local file is: its parts upload while the file is being encoded,
//! and it appears only when [`commit`](RemoteWrite::commit) completes the upload; dropped
//! before that, the upload is aborted (its parts are deleted by the store).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;
use std::time::Duration;

use object_store::{MultipartUpload, ObjectStoreExt as _, PutPayload};
use tokio::task::JoinHandle;

use super::{ObjectLocation, gcs, runtime};
use crate::sink::RemoteWrite;

/// How long dropping an unfinished upload waits for its abort to be taken.
const ABORT_WAIT: Duration = Duration::from_secs(60);
/// How long an abort lets the parts in flight finish before it stops them.
const PART_WAIT: Duration = Duration::from_secs(15);

/// How the parts go: an `object_store` multipart upload (S3, Azure), or a resumable upload
/// of GCS's JSON API (see `gcs`), whose chunks go in order.
enum Upload {
    Multipart(Box<dyn MultipartUpload>),
    Resumable { session: gcs::Session, sent: u64 },
}

pub(crate) struct ObjectWriter {
    location: ObjectLocation,
    /// `None` once completed or aborted.
    upload: Option<Upload>,
    buffer: Vec<u8>,
    part_size: usize,
    max_in_flight: usize,
    in_flight: VecDeque<(JoinHandle<()>, mpsc::Receiver<object_store::Result<()>>)>,
    parts: usize,
    /// Azure only: no blob was there at the start, so an aborted upload's uncommitted blocks
    /// can be discarded by writing and removing an empty blob (Azure keeps them otherwise,
    /// invisible, for a week).
    discard_blocks: bool,
}

impl ObjectWriter {
    /// Starts the upload now (a request on S3 and GCS: a missing bucket or a refused write
    /// fails here, before any work).
    pub(crate) fn start(location: &ObjectLocation) -> Result<ObjectWriter, super::StorageError> {
        let store = location.store();
        let mut discard_blocks = false;
        if store.cloud == super::Cloud::Azure {
            // Starting an Azure upload asks nothing of the service: ask it here.
            location
                .parent_check()
                .map_err(|e| location.error("cannot write to", e))?;
            let (s, path) = (store.store.clone(), location.path().clone());
            discard_blocks = match runtime::run(async move { s.head(&path).await }) {
                Ok(_) => false,
                Err(object_store::Error::NotFound { .. }) => true,
                Err(e) => return Err(location.error("cannot look up", e)),
            };
        }
        let (s, path) = (store.store.clone(), location.path().clone());
        let upload = match store.gcs.clone() {
            Some(gcs) => runtime::run(async move { gcs.start(path.as_ref()).await })
                .map(|session| Upload::Resumable { session, sent: 0 }),
            None => {
                runtime::run(async move { s.put_multipart(&path).await }).map(Upload::Multipart)
            }
        }
        .map_err(|e| location.error("cannot write to", e))?;
        Ok(ObjectWriter {
            location: location.clone(),
            upload: Some(upload),
            buffer: Vec::with_capacity(store.part_size),
            part_size: store.part_size,
            max_in_flight: store.max_in_flight,
            in_flight: VecDeque::new(),
            parts: 0,
            discard_blocks,
        })
    }

    fn failed(&self, e: object_store::Error) -> io::Error {
        io::Error::other(self.location.error("cannot upload", e))
    }

    /// Waits for the oldest part in flight.
    fn wait_one(&mut self) -> io::Result<()> {
        let Some((_, rx)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(e)),
            Err(_) => Err(io::Error::other("an upload task ended without an answer")),
        }
    }

    /// Takes the answers of the parts that finished, oldest first, without waiting: a part
    /// that failed fails the file at its next write, not only at the end.
    fn reap(&mut self) -> io::Result<()> {
        while let Some((_, rx)) = self.in_flight.front() {
            match rx.try_recv() {
                Ok(Ok(())) => {
                    self.in_flight.pop_front();
                }
                Ok(Err(e)) => {
                    self.in_flight.pop_front();
                    return Err(self.failed(e));
                }
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(io::Error::other("an upload task ended without an answer"));
                }
            }
        }
        Ok(())
    }

    /// Sends what the buffer holds as the next part.
    fn send(&mut self) -> io::Result<()> {
        while self.in_flight.len() >= self.max_in_flight {
            self.wait_one()?;
        }
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
        let request = match self.upload.as_mut() {
            Some(Upload::Multipart(upload)) => upload.put_part(PutPayload::from(part)),
            Some(Upload::Resumable { session, sent }) => {
                let (session, offset) = (session.clone(), *sent);
                *sent += part.len() as u64;
                Box::pin(async move { session.send(part, offset, None).await })
            }
            None => return Err(io::Error::other("the upload already ended")),
        };
        self.in_flight.push_back(runtime::spawn(request));
        self.parts += 1;
        Ok(())
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reap()?;
        let mut rest = buf;
        while !rest.is_empty() {
            let n = rest.len().min(self.part_size - self.buffer.len());
            self.buffer.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buffer.len() == self.part_size {
                self.send()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl RemoteWrite for ObjectWriter {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        if let Some(Upload::Resumable { .. }) = &self.upload {
            // The last chunk, with the total, makes the object.
            while !self.in_flight.is_empty() {
                self.wait_one()?;
            }
            let Some(Upload::Resumable { session, sent }) = self.upload.take() else {
                return Err(io::Error::other("the upload already ended"));
            };
            let last = std::mem::take(&mut self.buffer);
            let total = sent + last.len() as u64;
            let done = session.clone();
            return match runtime::run(async move { done.send(last, sent, Some(total)).await }) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = runtime::run(async move { session.cancel().await });
                    Err(self.failed(e))
                }
            };
        }
        if !self.buffer.is_empty() || self.parts == 0 {
            self.send()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_one()?;
        }
        let Some(Upload::Multipart(mut upload)) = self.upload.take() else {
            return Err(io::Error::other("the upload already ended"));
        };
        match runtime::run(async move {
            match upload.complete().await {
                Ok(_) => Ok(Ok(())),
                // Not completed: its parts must not stay behind.
                Err(e) => Ok(Err((e, upload.abort().await))),
            }
        }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err((e, _))) | Err(e) => Err(self.failed(e)),
        }
    }
}

impl Drop for ObjectWriter {
    /// Unfinished (an error, a stop): the parts in flight are stopped (and waited for, so
    /// that none lands after the abort) and the upload aborted, waiting (up to a minute) for
    /// the store to take it, so that no part stays behind. An abort the store refused or did
    /// not answer is told on stderr: its parts then stay until the store expires them.
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        let tasks: Vec<_> = self.in_flight.drain(..).map(|(task, _)| task).collect();
        // A part's request already sent is still taken by the store when its task is
        // aborted, and may land after the abort (Azure then keeps its block, S3 documents
        // the same of its parts): the parts in flight are let finish, for a while.
        let stop_parts = async move {
            let deadline = tokio::time::Instant::now() + PART_WAIT;
            for mut task in tasks {
                if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                    task.abort();
                    let _ = task.await;
                }
            }
        };
        let discard = self.discard_blocks.then(|| {
            (
                self.location.store().store.clone(),
                self.location.path().clone(),
            )
        });
        let (_task, rx) = runtime::spawn(async move {
            stop_parts.await;
            match upload {
                Upload::Resumable { session, .. } => session.cancel().await,
                Upload::Multipart(mut upload) => {
                    upload.abort().await?;
                    // Azure has no abort: a new blob's uncommitted blocks are dropped by
                    // writing it empty and removing it, unless somebody made it meanwhile.
                    // (A conditional create cannot do it: the service counts a blob of
                    // uncommitted blocks as existing.)
                    if let Some((store, path)) = discard {
                        match store.head(&path).await {
                            Err(object_store::Error::NotFound { .. }) => {
                                store.put(&path, PutPayload::default()).await?;
                                store.delete(&path).await?;
                            }
                            Ok(_) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                }
            }
        });
        let told = match rx.recv_timeout(ABORT_WAIT) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(
                self.location
                    .error("cannot abort the upload of", e)
                    .to_string(),
            ),
            Err(_) => Some(format!(
                "the upload of {} was not aborted within {} s",
                self.location,
                ABORT_WAIT.as_secs()
            )),
        };
        if let Some(text) = told {
            log::warn!(
                "{text}; its parts stay with the store until it expires them \
                 (S3: a lifecycle rule with AbortIncompleteMultipartUpload)"
            );
        }
    }
}

impl ObjectLocation {
    /// Azure's check before an upload: the container is there and this client may write to
    /// it (a marker blob written and removed beside the object).
    fn parent_check(&self) -> object_store::Result<()> {
        let name = format!(
            "{}.pgarrow-write-check{}",
            self.path().filename().unwrap_or("object"),
            super::object::marker_suffix()
        );
        let parts: Vec<_> = self.path().parts().collect();
        let marker = match parts.split_last() {
            Some((_, dir)) => object_store::path::Path::from_iter(dir.iter().cloned()).join(name),
            None => object_store::path::Path::from(name),
        };
        let (store, path) = (self.store().store.clone(), marker);
        runtime::run(async move {
            store.put(&path, PutPayload::default()).await?;
            super::object::forget_missing(store.delete(&path).await)
        })
    }
}
