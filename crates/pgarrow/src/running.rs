//! An export on one connection or several, started under a [`Stop`]: what a blocking reader
//! and a copy read.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::export::request_cancel;
use crate::partition::{PartitionOptions, PartitionedExport};
use crate::protocol::Config;
use crate::stats::ExportStats;
use crate::{Client, Export, ExportOptions, Result, Source, Stop};

/// A single-threaded runtime with timers and I/O (what [`crate::blocking::runtime`] hands out).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::internal(format!("cannot start a tokio runtime: {e}")))
}

/// One connection's export, or a partitioned one.
#[derive(Debug)]
pub(crate) enum Running {
    One(Box<Export<'static>>),
    Parts(Box<PartitionedExport>),
}

impl Running {
    /// Connects and starts the export of `source` (over `partitions`' connections, when
    /// given), unless `stop` comes first: then the connections are closed, a query already
    /// sent is also sent a cancel request (a server that computes before its first row would
    /// not notice the close), and the result is [`ErrorKind::Cancelled`](crate::ErrorKind).
    pub(crate) async fn start(
        config: Config,
        source: Source,
        options: &ExportOptions,
        partitions: Option<&PartitionOptions>,
        stop: &Stop,
    ) -> Result<Running> {
        if let Some(partitions) = partitions {
            // Stopped while planning: the coordinating connection is closed with the future.
            let start = PartitionedExport::start(config, source, options, partitions);
            return Ok(Running::Parts(Box::new(stop.run(start).await??)));
        }
        let mut client = stop.run(Client::connect(config)).await??;
        let token = client.connection().cancel_token();
        match stop.run(client.into_export(source, options)).await {
            Ok(export) => Ok(Running::One(Box::new(export?))),
            Err(e) => {
                request_cancel(&token).await;
                Err(e)
            }
        }
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        match self {
            Running::One(e) => e.schema(),
            Running::Parts(p) => p.schema(),
        }
    }

    pub(crate) async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            Running::One(e) => e.next_batch().await,
            Running::Parts(p) => Ok(p.next_batch().await?.map(|(_, batch)| batch)),
        }
    }

    pub(crate) fn stats(&self) -> ExportStats {
        match self {
            Running::One(e) => e.stats(),
            Running::Parts(p) => p.stats().export,
        }
    }

    /// Stops it: cancels the server queries (and drains the connection of one export).
    pub(crate) async fn cancel(self) -> Result<()> {
        match self {
            Running::One(e) => e.cancel().await,
            // Dropping stops the workers and cancels their queries.
            Running::Parts(p) => {
                drop(p);
                Ok(())
            }
        }
    }
}
