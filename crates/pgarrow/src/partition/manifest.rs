//! `_manifest.json`: what a partitioned export into a directory wrote, written last.

use std::path::{Path, PathBuf};

use arrow_schema::Schema;
use serde::{Deserialize, Serialize};

use super::PartRange;
use crate::{Error, ErrorKind, Result};

/// The manifest's file name in the output directory.
pub const MANIFEST_NAME: &str = "_manifest.json";

/// The version of the manifest's format ([`Manifest::pgarrow_manifest`]).
const MANIFEST_VERSION: u32 = 1;

/// What a partitioned export into a directory wrote: one file per part, all read in one
/// snapshot. It is written (atomically) only after every file was, so its presence means the
/// export is complete; the files it lists are the export (others in the directory are not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The version of this format (1).
    pub pgarrow_manifest: u32,
    /// The pgarrow that wrote it.
    pub pgarrow_version: String,
    /// The source, as one SELECT.
    pub source: String,
    /// The snapshot every part was read in (`None` under per-connection snapshots).
    pub snapshot: Option<String>,
    /// The server's WAL position when the snapshot was taken.
    pub wal_lsn: Option<String>,
    /// `server_version_num`.
    pub server_version: u32,
    /// `parquet`, `arrow` or `arrow-stream`.
    pub format: String,
    /// Rows in all files.
    pub rows: u64,
    /// The Arrow schema of every file's batches (before format-specific changes such as
    /// Parquet's interval structs).
    pub schema: Schema,
    /// The files, in part order.
    pub files: Vec<ManifestFile>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ManifestFile {
    /// The file name, relative to the manifest's directory.
    pub path: String,
    /// The part of the plan it holds.
    pub part: usize,
    /// The relation the part read, for block ranges.
    pub relation: Option<String>,
    /// The range it holds.
    pub range: PartRange,
    /// Its rows.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Manifest {
    pub(crate) fn new(
        plan: &super::PartitionPlan,
        format: &str,
        files: Vec<ManifestFile>,
    ) -> Manifest {
        Manifest {
            pgarrow_manifest: MANIFEST_VERSION,
            pgarrow_version: env!("CARGO_PKG_VERSION").to_owned(),
            source: plan.source.clone(),
            snapshot: plan.snapshot.clone(),
            wal_lsn: plan.wal_lsn.clone(),
            server_version: plan.server_version,
            format: format.to_owned(),
            rows: files.iter().map(|f| f.rows).sum(),
            schema: plan.schema.clone(),
            files,
        }
    }

    /// The manifest as JSON, indented.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }

    /// Reads `DIR/_manifest.json`.
    ///
    /// # Errors
    /// It cannot be read, or is not a manifest pgarrow wrote.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| io_error("read", &path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::usage(format!("{} is not a pgarrow manifest: {e}", path.display()))
        })?;
        if manifest.pgarrow_manifest != MANIFEST_VERSION {
            return Err(Error::usage(format!(
                "{}: manifest format {} is not supported (this pgarrow reads format \
                 {MANIFEST_VERSION})",
                path.display(),
                manifest.pgarrow_manifest
            )));
        }
        Ok(manifest)
    }

    /// Writes `DIR/_manifest.json` atomically (a temporary file renamed over it).
    pub(crate) fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(MANIFEST_NAME);
        let tmp = dir.join(format!(".{MANIFEST_NAME}.pgarrow-tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.to_json().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("write", &path, e)
        })?;
        Ok(path)
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    ErrorKind::Sink(pgarrow_sink::Error::Io {
        what: if what == "read" {
            "cannot read"
        } else {
            "cannot write"
        },
        path: path.to_owned(),
        source: e,
    })
    .into()
}
