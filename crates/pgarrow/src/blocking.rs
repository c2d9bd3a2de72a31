//! Exports for synchronous programs: an arrow [`RecordBatchReader`].
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use arrow_array::RecordBatchReader;
//!
//! let reader = pgarrow::blocking::export(
//!     "postgresql://postgres@localhost/postgres",
//!     "SELECT * FROM pg_class",
//!     &Default::default(),
//! )?;
//! println!("{}", reader.schema());
//! for batch in reader {
//!     println!("{} rows", batch?.num_rows());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The reader runs its own single-threaded tokio runtime: do not use it from inside an async
//! runtime (use [`Export`] there).

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};

use crate::export::request_cancel;
use crate::stats::ExportStats;
use crate::{Client, Error, ErrorKind, Export, ExportOptions, IntoConfig, Result, Source};

/// Connects, describes `source` and starts its COPY; the returned reader yields its batches.
///
/// # Errors
/// As [`Client::connect`] and [`Client::export`].
pub fn export(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
) -> Result<Reader> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ErrorKind::Internal(format!("cannot start a tokio runtime: {e}")))?;
    let config = config.into_config()?;
    let source = source.into();
    let export = runtime.block_on(async {
        Client::connect(config)
            .await?
            .into_export(source, options)
            .await
    })?;
    Ok(Reader {
        schema: export.schema(),
        export: Some(export),
        last: ExportStats::default(),
        runtime,
    })
}

/// A running export as an arrow [`RecordBatchReader`]: an iterator of
/// `Result<RecordBatch, ArrowError>` whose errors wrap a [`crate::Error`]
/// ([`ArrowError::ExternalError`]; downcast it for the SQLSTATE).
///
/// Dropping it before the end cancels the server query and closes the connection.
pub struct Reader {
    schema: SchemaRef,
    /// `None` once it ended or failed.
    export: Option<Export<'static>>,
    /// The statistics at the end.
    last: ExportStats,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("schema", &self.schema)
            .field("export", &self.export)
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// The next batch, or `None` at the end, with pgarrow's own error.
    ///
    /// # Errors
    /// As [`Export::next_batch`].
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let Some(export) = self.export.as_mut() else {
            return Ok(None);
        };
        let result = self.runtime.block_on(export.next_batch());
        if !matches!(result, Ok(Some(_))) {
            // Ended or failed: the connection is closed now rather than when dropped.
            self.last = export.stats();
            self.export = None;
        }
        result
    }

    /// What the export did so far, or in all once it ended.
    pub fn stats(&self) -> ExportStats {
        match &self.export {
            Some(export) => export.stats(),
            None => self.last.clone(),
        }
    }

    /// Stops the export, cancelling the server query.
    ///
    /// # Errors
    /// As [`Export::cancel`].
    pub fn cancel(mut self) -> Result<()> {
        match self.export.take() {
            Some(export) => self.runtime.block_on(export.cancel()),
            None => Ok(()),
        }
    }
}

impl Iterator for Reader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().map_err(Error::into).transpose()
    }
}

impl RecordBatchReader for Reader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(export) = self.export.take() {
            // Outside the runtime, the connection's own drop cannot send the cancel request:
            // send it here, then close.
            let token = export.cancel_token();
            drop(export);
            self.runtime.block_on(request_cancel(&token));
        }
    }
}
