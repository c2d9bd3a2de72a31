//! Result sets as ADBC streams: a running export read batch by batch, on its session's
//! connection (which the session lends it until its end) or on a connection of its own (a
//! partition).

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use pgarrow::Export;

use crate::error::Result;
use crate::session::{Fetched, Session};

/// Where a reader's export lives.
#[derive(Debug)]
enum Home {
    /// On its session's connection, which holds it; `id` is this reader's number there.
    /// `None` once the result set ended.
    Session(Option<(Arc<Session>, u64)>),
    /// On a connection of its own, with a runtime of its own. `None` once it ended.
    Own(Option<Box<Export<'static>>>, tokio::runtime::Runtime),
}

/// A running export as a `RecordBatchReader`.
#[derive(Debug)]
pub(crate) struct ExportReader {
    schema: SchemaRef,
    home: Home,
    /// A batch read ahead ([`ExportReader::prefetched`]).
    first: Option<RecordBatch>,
}

impl ExportReader {
    /// The reader of `export`, which runs on `session`'s connection: the session holds it
    /// until its end, or, released early, until its next statement drains it.
    pub(crate) fn on_session(export: Export<'static>, session: Arc<Session>) -> ExportReader {
        let schema = export.schema();
        let id = session.open_result(export);
        ExportReader {
            schema,
            home: Home::Session(Some((session, id))),
            first: None,
        }
    }

    /// The reader of `export`, which owns its connection, on `runtime` (where that
    /// connection lives).
    pub(crate) fn owned(export: Export<'static>, runtime: tokio::runtime::Runtime) -> ExportReader {
        ExportReader {
            schema: export.schema(),
            home: Home::Own(Some(Box::new(export)), runtime),
            first: None,
        }
    }

    /// The reader with its first batch read: an error before the first rows is the
    /// caller's now, with its status and SQLSTATE.
    pub(crate) fn prefetched(mut self) -> Result<ExportReader> {
        self.first = self.next_batch()?;
        Ok(self)
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match &mut self.home {
            Home::Session(home) => {
                let Some((session, id)) = home.as_ref() else {
                    return Ok(None);
                };
                // Asked even for a batch read ahead: a cancel or a later statement takes it.
                match session.fetch(*id, self.first.is_some()) {
                    Ok(Fetched::Held) => Ok(self.first.take()),
                    Ok(Fetched::Batch(batch)) => Ok(Some(batch)),
                    Ok(Fetched::End) => {
                        *home = None;
                        Ok(None)
                    }
                    Err(e) => {
                        *home = None;
                        self.first = None;
                        Err(e)
                    }
                }
            }
            Home::Own(export, runtime) => {
                if let Some(first) = self.first.take() {
                    return Ok(Some(first));
                }
                let Some(running) = export.as_mut() else {
                    return Ok(None);
                };
                match runtime.block_on(running.next_batch()) {
                    Ok(Some(batch)) => Ok(Some(batch)),
                    Ok(None) => {
                        *export = None;
                        Ok(None)
                    }
                    Err(e) => {
                        *export = None;
                        Err(crate::error::from_pgarrow(&e))
                    }
                }
            }
        }
    }
}

impl Iterator for ExportReader {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
            .map_err(|e| {
                // For the driver manager's AdbcErrorFromArrayStream: status and SQLSTATE.
                crate::ffi::note_stream_error(&e);
                ArrowError::ExternalError(Box::new(e))
            })
            .transpose()
    }
}

impl RecordBatchReader for ExportReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for ExportReader {
    fn drop(&mut self) {
        match &mut self.home {
            Home::Session(home) => {
                if let Some((session, id)) = home.take() {
                    session.release_result(id);
                }
            }
            // Dropped, it closes its own connection; outside its runtime it cannot send the
            // cancel request that stops a backend still computing, so that goes here.
            Home::Own(export, runtime) => {
                if let Some(export) = export.take() {
                    let token = export.cancel_token();
                    drop(export);
                    let wait = std::time::Duration::from_secs(1);
                    // The timer is made inside the runtime, which it needs.
                    let _ = runtime
                        .block_on(async { tokio::time::timeout(wait, token.cancel()).await });
                }
            }
        }
    }
}
