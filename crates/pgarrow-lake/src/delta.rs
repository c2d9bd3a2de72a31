//! Delta Lake tables: an export's Parquet files committed into a Delta table, its log
//! (`_delta_log`) beside the data, local or in any object store pgarrow writes to.
//!
//! The files go under the table's root (in `column=value/` directories when the table is
//! partitioned), written by pgarrow's partitioned export. Then one commit adds them: the
//! next version's JSON file in the log, created only if no other writer created it first
//! (a hard link locally; a conditional put in S3, GCS and Azure). It holds the export's
//! provenance (`commitInfo`), the table's protocol and metadata when new or replaced, a
//! `remove` for each file a replace drops, and an `add` for each new file with its
//! statistics. Readers see the table before the export or after it, never between. An
//! export that fails, or whose commit fails, removes its files; a process killed before the
//! commit leaves files no version names (Delta's `VACUUM` removes them).
//!
//! Two writers committing at once both land: the loser of a version reads what the winner
//! committed and tries the next one, up to [`DeltaTarget::retries`] times. An append retries
//! onto any other commit that left the columns as they were; a replace retries only past
//! commits that left the table's files and columns alone, and otherwise fails, naming the
//! version, with nothing committed.
//!
//! Every [`DeltaTarget::checkpoint_interval`] versions (or the table's own
//! `delta.checkpointInterval`) the writer of that version also writes a checkpoint: the
//! table's state in one Parquet file, so that readers need not replay the whole log.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::{DeltaTarget, IfExists, export_to_delta};
//! let target = DeltaTarget::new("s3://bucket/lake/orders").with_if_exists(IfExists::Append);
//! let stats = export_to_delta(
//!     "postgresql://localhost/shop",
//!     "orders",
//!     &Default::default(),
//!     &pgarrow::partition::PartitionOptions::new(4),
//!     &target,
//!     Default::default(),
//! )
//! .await?;
//! println!("version {}: {} rows", stats.version, stats.rows);
//! # Ok(())
//! # }
//! ```

mod checkpoint;
mod commit;
pub(crate) mod dv;
pub(crate) mod expire;
mod export;
mod log;
pub(crate) mod mirror;
pub(crate) mod read;
mod replay;
mod schema;
mod stats;

use std::time::{SystemTime, UNIX_EPOCH};

use pgarrow::incremental::IncrementalOptions;
use pgarrow::io::{Layout, SinkOptions, StorageOptions};
use pgarrow::partition::PartitionedStats;
use pgarrow::{Error, ErrorKind, Result};

use crate::cleanup::blocking;
use crate::common::IfExists;
pub use export::export_to_delta;
use log::{Protocol, Snapshot};
pub use read::open_delta;

/// The writer features pgarrow keeps when it commits to a table that has them: those that ask
/// nothing of a writer adding files (or that pgarrow checks for in the table before it writes).
const WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "columnMapping",
    "deletionVectors",
    "timestampNtz",
    "domainMetadata",
    "vacuumProtocolCheck",
    "typeWidening",
    "typeWidening-preview",
    "generatedColumns",
    "identityColumns",
    "allowColumnDefaults",
];

/// Checkpoints every this many versions, unless the table says otherwise.
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;

/// Where and how an export goes into a Delta table: [`DeltaTarget::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeltaTarget {
    /// The table's root: a local directory or an object store URL.
    pub location: String,
    /// When the table exists.
    pub if_exists: IfExists,
    /// Credentials and settings for an object store.
    pub storage: StorageOptions,
    /// The data files' Parquet options.
    pub options: SinkOptions,
    /// Where files roll over (`max_file_rows`, `max_file_bytes`), and the table's partition
    /// columns (`partitions`: identity fields only, as Delta partitions by column values; by
    /// default an existing table's own).
    pub layout: Layout,
    /// Times a commit that lost its version to another writer tries the next one.
    pub retries: usize,
    /// A checkpoint every this many versions, unless the table's `delta.checkpointInterval`
    /// says otherwise (0: none).
    pub checkpoint_interval: u64,
    /// An incremental run of a table instead of the export's source: what changed since the
    /// run whose state the table's last such commit carries (in its `commitInfo`), appended
    /// with this run's state in the same version.
    pub incremental: Option<IncrementalOptions>,
}

impl DeltaTarget {
    /// The table at `location` (a directory or an object store URL).
    pub fn new(location: impl Into<String>) -> Self {
        DeltaTarget {
            location: location.into(),
            if_exists: IfExists::Fail,
            storage: StorageOptions::default(),
            options: SinkOptions::default(),
            layout: Layout::default(),
            retries: 100,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            incremental: None,
        }
    }

    /// An incremental run of `options.table` (the export's source is then ignored).
    pub fn with_incremental(mut self, options: IncrementalOptions) -> Self {
        self.incremental = Some(options);
        self
    }

    crate::common::target_setters!();

    /// A checkpoint every `versions` versions (0: none).
    pub fn with_checkpoint_interval(mut self, versions: u64) -> Self {
        self.checkpoint_interval = versions;
        self
    }
}

/// What an export into a Delta table did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeltaStats {
    /// The export's own statistics.
    pub export: PartitionedStats,
    /// The version that made the rows visible.
    pub version: i64,
    /// Whether the commit made the table.
    pub created: bool,
    /// Rows added.
    pub rows: u64,
    /// Data files added.
    pub files: usize,
    /// Data files a replace removed from the table.
    pub removed: usize,
    /// Commits tried again at a later version after another writer took theirs.
    pub retried: usize,
    /// Whether this export wrote the version's checkpoint.
    pub checkpointed: bool,
    /// An incremental run's state and kind.
    pub run: Option<crate::common::LakeRun>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Refuses a table whose protocol asks of a writer what pgarrow does not do, naming it.
fn writable(table: &Snapshot, if_exists: IfExists, name: &str) -> Result<()> {
    let refuse = |what: String| -> Error {
        ErrorKind::InvalidInput(format!("Delta table {name}: {what}; nothing was written")).into()
    };
    let p = &table.protocol;
    if p.min_writer_version > 7 || p.min_reader_version > 3 {
        return Err(refuse(format!(
            "it needs Delta reader version {} and writer version {}, past what pgarrow writes",
            p.min_reader_version, p.min_writer_version
        )));
    }
    if let Some(unknown) = p
        .writer_features
        .iter()
        .flatten()
        .find(|f| !WRITER_FEATURES.contains(&f.as_str()))
    {
        return Err(refuse(format!(
            "it has the writer feature {unknown:?}, which pgarrow does not write"
        )));
    }
    let config = &table.metadata.configuration;
    if let Some(key) = config.keys().find(|k| k.starts_with("delta.constraints.")) {
        return Err(refuse(format!(
            "it has the CHECK constraint {key:?}, which pgarrow does not evaluate"
        )));
    }
    if config
        .get("delta.columnMapping.mode")
        .is_some_and(|m| m != "none")
    {
        return Err(refuse(
            "it maps columns by ID or name (delta.columnMapping.mode), which pgarrow does not \
             write"
                .into(),
        ));
    }
    if if_exists == IfExists::Replace && config.get("delta.appendOnly").is_some_and(|v| v == "true")
    {
        return Err(refuse(
            "it is append-only (delta.appendOnly): it cannot be replaced".into(),
        ));
    }
    let schema: serde_json::Value = serde_json::from_str(&table.metadata.schema_string)
        .map_err(|e| refuse(format!("its schema is not JSON: {e}")))?;
    let text = schema.to_string();
    for (key, what) in [
        ("delta.invariants", "a column invariant"),
        ("delta.generationExpression", "a generated column"),
        ("delta.identity.", "an identity column"),
        ("CURRENT_DEFAULT", "a column default"),
    ] {
        if text.contains(&format!("\"{key}")) {
            return Err(refuse(format!(
                "it has {what}, which pgarrow does not write"
            )));
        }
    }
    Ok(())
}

/// `base` with `feature` (a reader and writer feature) among its table features: reader
/// version 3 and writer version 7, listing every feature the table's older versions implied.
pub(crate) fn with_feature(base: &Protocol, feature: &str) -> Protocol {
    let has = |list: &Option<Vec<String>>| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|f| f == feature))
    };
    if has(&base.reader_features) && has(&base.writer_features) {
        return base.clone();
    }
    let mut writer: Vec<String> = base.writer_features.clone().unwrap_or_else(|| {
        let implied: &[&str] = match base.min_writer_version {
            0 | 1 => &[],
            2 => &["appendOnly", "invariants"],
            3 => &["appendOnly", "invariants", "checkConstraints"],
            4 => &[
                "appendOnly",
                "invariants",
                "checkConstraints",
                "changeDataFeed",
                "generatedColumns",
            ],
            5 => &[
                "appendOnly",
                "invariants",
                "checkConstraints",
                "changeDataFeed",
                "generatedColumns",
                "columnMapping",
            ],
            _ => &[
                "appendOnly",
                "invariants",
                "checkConstraints",
                "changeDataFeed",
                "generatedColumns",
                "columnMapping",
                "identityColumns",
            ],
        };
        implied.iter().map(|s| (*s).to_owned()).collect()
    });
    let mut reader: Vec<String> =
        base.reader_features
            .clone()
            .unwrap_or_else(|| match base.min_reader_version {
                2 => vec!["columnMapping".to_owned()],
                _ => Vec::new(),
            });
    for list in [&mut writer, &mut reader] {
        if !list.iter().any(|f| f == feature) {
            list.push(feature.to_owned());
        }
    }
    Protocol {
        min_reader_version: 3,
        min_writer_version: 7,
        reader_features: Some(reader),
        writer_features: Some(writer),
    }
}
