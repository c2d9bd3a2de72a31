//! Result sets as ADBC streams: a running export read batch by batch, which gives its
//! connection back to the session when it ends (or is released early).

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use pgarrow::Export;

use crate::session::Session;

/// Where a reader's export lives: on its session's connection, which it gives back, or on a
/// connection of its own (a partition), with a runtime of its own.
#[derive(Debug)]
enum Home {
    Session(Arc<Session>),
    Own(tokio::runtime::Runtime),
}

/// A running export as a `RecordBatchReader`.
#[derive(Debug)]
pub(crate) struct ExportReader {
    schema: SchemaRef,
    /// `None` once it ended.
    export: Option<Export<'static>>,
    home: Home,
    /// A batch read ahead ([`ExportReader::prefetched`]).
    first: Option<RecordBatch>,
}

impl ExportReader {
    /// The reader of `export`, which runs on `session`'s connection and gives it back at
    /// its end.
    pub(crate) fn on_session(export: Export<'static>, session: Arc<Session>) -> ExportReader {
        ExportReader {
            schema: export.schema(),
            export: Some(export),
            home: Home::Session(session),
            first: None,
        }
    }

    /// The reader of `export`, which owns its connection, on `runtime` (where that
    /// connection lives).
    pub(crate) fn owned(export: Export<'static>, runtime: tokio::runtime::Runtime) -> ExportReader {
        ExportReader {
            schema: export.schema(),
            export: Some(export),
            home: Home::Own(runtime),
            first: None,
        }
    }

    /// Ends the export (cancelling it when it has not `finished`) and gives the session its
    /// client back.
    fn end(&mut self, finished: bool, why: &str) {
        let Some(export) = self.export.take() else {
            return;
        };
        match &self.home {
            Home::Session(session) => {
                let client = session.runtime().block_on(export.into_client());
                session.give_back(client.ok().flatten(), why);
            }
            // Dropped, it closes its own connection; outside its runtime it cannot send the
            // cancel request that stops a backend still computing, so that goes here.
            Home::Own(runtime) => {
                let token = export.cancel_token();
                drop(export);
                if !finished {
                    let wait = std::time::Duration::from_secs(1);
                    // The timer is made inside the runtime, which it needs.
                    let _ = runtime
                        .block_on(async { tokio::time::timeout(wait, token.cancel()).await });
                }
            }
        }
    }
}

impl ExportReader {
    /// The reader with its first batch read: an error before the first rows is the
    /// caller's now.
    pub(crate) fn prefetched(mut self) -> crate::error::Result<ExportReader> {
        self.first = self.next_batch()?;
        Ok(self)
    }

    fn next_batch(&mut self) -> crate::error::Result<Option<RecordBatch>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        let Some(export) = self.export.as_mut() else {
            return Ok(None);
        };
        let runtime = match &self.home {
            Home::Session(s) => s.runtime(),
            Home::Own(r) => r,
        };
        match runtime.block_on(export.next_batch()) {
            Ok(Some(batch)) => Ok(Some(batch)),
            Ok(None) => {
                self.end(true, "the connection broke at the end of a result set");
                Ok(None)
            }
            Err(e) => {
                self.end(true, &e.to_string());
                Err(crate::error::from_pgarrow(&e))
            }
        }
    }
}

impl Iterator for ExportReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
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
        self.end(
            false,
            "the connection broke while a result set was released early",
        );
    }
}
