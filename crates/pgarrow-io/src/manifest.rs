//! Directories of results: where an export writes one file per part or per table
//! ([`DirTarget`]), and `_manifest.json` ([`Manifest`]), written last, which lists them.

use arrow_schema::Schema;
use pgarrow_types::{PartRange, TableName};
use serde::{Deserialize, Serialize};

use crate::{Error, Format, Layout, Location, PartitionValue, Result, SinkOptions};

/// The manifest's file name in an output directory.
pub const MANIFEST_NAME: &str = "_manifest.json";

/// The version of the manifest's format that this pgarrow writes
/// ([`Manifest::pgarrow_manifest`]). Version 1 manifests of partitioned exports read as
/// version 2 (the fields they had kept their names and meaning).
pub const MANIFEST_VERSION: u32 = 2;

/// Where an export writes one file per part or per table: a local directory or an object
/// store's prefix; [`DirTarget::new`], then `with_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirTarget {
    /// The directory (created if missing), or the prefix.
    pub dir: Location,
    /// The files' format (not [`Format::Null`]).
    pub format: Format,
    /// The files' options.
    pub options: SinkOptions,
    /// How the files are laid out: value partitions, rolled files ([`Layout::default`]: one
    /// file per part or per table).
    pub layout: Layout,
    /// What each file's name begins with (before `part-00000`), so that exports into one
    /// directory name their files apart (a lake table's appends): none by default.
    pub file_prefix: Option<String>,
    /// Whether the export's commit is its `_manifest.json` ([`DirTarget::prepare`] removes an
    /// old one first); else the caller commits the files it is given (a lake table's commit).
    pub manifest: bool,
}

impl DirTarget {
    /// Files of `format` with default options in `dir` (a path, or a [`Location`] parsed
    /// from a URL).
    pub fn new(dir: impl Into<Location>, format: Format) -> DirTarget {
        DirTarget {
            dir: dir.into(),
            format,
            options: SinkOptions::default(),
            layout: Layout::default(),
            file_prefix: None,
            manifest: true,
        }
    }

    /// Each file's name begins with `prefix` and a dash.
    pub fn with_file_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.file_prefix = Some(prefix.into());
        self
    }

    /// No `_manifest.json`: the caller commits the files.
    pub fn without_manifest(mut self) -> Self {
        self.manifest = false;
        self
    }

    /// The files' options.
    pub fn with_options(mut self, options: SinkOptions) -> Self {
        self.options = options;
        self
    }

    /// How the files are laid out.
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The prefix of part `part`'s files in a laid-out export: `part-00000` (its files are
    /// `part-00000-00000.parquet`, ...).
    pub fn part_prefix(&self, part: usize) -> String {
        match &self.file_prefix {
            Some(prefix) => format!("{prefix}-part-{part:05}"),
            None => format!("part-{part:05}"),
        }
    }

    /// The file name of part `part`: `part-00000.parquet`.
    pub fn part_file(&self, part: usize) -> String {
        format!("{}.{}", self.part_prefix(part), self.format.extension())
    }

    /// The file name of a table: `schema.table.parquet`, with no path separator in it.
    pub fn table_file(&self, table: &TableName) -> String {
        let name = match &table.schema {
            Some(s) => format!("{s}.{}.{}", table.name, self.format.extension()),
            None => format!("{}.{}", table.name, self.format.extension()),
        };
        name.replace(['/', '\0'], "_")
    }

    /// The directory a table's laid-out files go in (see [`Layout`]): its file name without
    /// the extension (`sales.orders`).
    pub fn table_dir(&self, table: &TableName) -> String {
        let name = match &table.schema {
            Some(s) => format!("{s}.{}", table.name),
            None => table.name.clone(),
        };
        name.replace(['/', '\0'], "_")
    }

    /// Refuses what cannot be written as files ([`Format::Null`]); the engine checks the
    /// options with every export's.
    ///
    /// # Errors
    /// [`Error::Invalid`] for [`Format::Null`].
    pub fn check(&self) -> Result<()> {
        if self.format == Format::Null {
            return Err(Error::usage(
                "an export into a directory writes files: choose parquet, arrow or arrow-stream",
            ));
        }
        Ok(())
    }

    /// Makes the directory (for an object store: checks that the bucket is there and may be
    /// written, before any query), and removes a manifest left there by an earlier export,
    /// so that a manifest is only ever this run's, complete.
    ///
    /// # Errors
    /// The directory cannot be made or the old manifest removed ([`Error::Io`],
    /// [`Error::Storage`]).
    pub fn prepare(&self) -> Result<()> {
        self.dir.prepare_dir()?;
        if !self.manifest {
            return Ok(());
        }
        self.dir
            .join(MANIFEST_NAME)
            .remove()
            .map_err(|e| e.context("removing the old manifest"))
    }
}

/// What an export into a directory wrote: one file per part of one source (all read in one
/// snapshot), or one file per table (all read in one snapshot). It is written (atomically)
/// only after every file was, so its presence means the export is complete; the files it
/// lists are the export (others in the directory are not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The version of this format ([`MANIFEST_VERSION`]).
    pub pgarrow_manifest: u32,
    /// The pgarrow that wrote it.
    pub pgarrow_version: String,
    /// The snapshot every file was read in (`None` under per-connection snapshots, or where
    /// the server could not export one).
    pub snapshot: Option<String>,
    /// The server's WAL position when the snapshot was taken; for an export in a replication
    /// slot's snapshot, the slot's consistent point: where its changes start.
    pub wal_lsn: Option<String>,
    /// The logical replication slot whose snapshot every file was read in: streaming from it
    /// gives exactly the changes after this export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_slot: Option<String>,
    /// `server_version_num`.
    #[serde(default)]
    pub server_version: Option<u32>,
    /// `parquet`, `arrow` or `arrow-stream`.
    pub format: String,
    /// Rows in all files.
    pub rows: u64,
    /// The source of a partitioned export, as one SELECT (`None` for several tables).
    #[serde(default)]
    pub source: Option<String>,
    /// The Arrow schema of every file's batches in a partitioned export (before
    /// format-specific changes such as Parquet's interval structs); `None` for several tables,
    /// whose files each have their own.
    #[serde(default)]
    pub schema: Option<Schema>,
    /// How the files are laid out (value partitions, rolled files), when they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// The lossy conversions the export made (`col: 3 infinity written as NULL`; for several
    /// tables, each prefixed by its table), when any: every file's footer says it too, but
    /// laid-out files are finished before the export ends, so this is where theirs are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossy_conversions: Option<String>,
    /// The files, in part order or in table order.
    pub files: Vec<ManifestFile>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ManifestFile {
    /// The file name, relative to the manifest's directory.
    pub path: String,
    /// Its rows.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// The table it holds (an export of several tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableName>,
    /// The part of the plan it holds (a partitioned export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<usize>,
    /// The relation the part read, for block ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// The range the part holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PartRange>,
    /// Its value partitions' values, outermost first (a laid-out export).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<PartitionValue>,
}

impl ManifestFile {
    /// A file of `rows` rows and `bytes` bytes at `path`, relative to the manifest.
    pub fn new(path: impl Into<String>, rows: u64, bytes: u64) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            rows,
            bytes,
            table: None,
            part: None,
            relation: None,
            range: None,
            values: Vec::new(),
        }
    }
}

impl Manifest {
    /// A manifest of `files` in `format`, read in `snapshot` at `wal_lsn`.
    pub fn new(
        format: Format,
        snapshot: Option<String>,
        wal_lsn: Option<String>,
        server_version: Option<u32>,
        files: Vec<ManifestFile>,
    ) -> Manifest {
        Manifest {
            pgarrow_manifest: MANIFEST_VERSION,
            pgarrow_version: env!("CARGO_PKG_VERSION").to_owned(),
            snapshot,
            wal_lsn,
            replication_slot: None,
            server_version,
            format: format.to_string(),
            rows: files.iter().map(|f| f.rows).sum(),
            source: None,
            schema: None,
            layout: None,
            lossy_conversions: None,
            files,
        }
    }

    /// The manifest as JSON, indented.
    pub fn to_json(&self) -> String {
        // Plain data (strings, numbers, an Arrow schema): serializing it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads `DIR/_manifest.json` (a local directory, or an object store's prefix).
    ///
    /// # Errors
    /// It cannot be read ([`Error::Io`],
    /// [`Error::Storage`]), or is not a manifest this pgarrow
    /// reads ([`Error::Invalid`]).
    pub fn read(dir: impl Into<Location>) -> Result<Manifest> {
        let path = dir.into().join(MANIFEST_NAME);
        let bytes = path.read()?;
        let text = String::from_utf8_lossy(&bytes);
        Manifest::from_json(&text).map_err(|e| e.context(path.to_string()))
    }

    /// Reads a manifest from its JSON text.
    ///
    /// # Errors
    /// [`Error::Invalid`]: not a manifest, or of a version this pgarrow does not read.
    pub fn from_json(text: &str) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct Version {
            pgarrow_manifest: u32,
        }
        let version: Version = serde_json::from_str(text)
            .map_err(|e| Error::usage(format!("not a pgarrow manifest: {e}")))?;
        if !(1..=MANIFEST_VERSION).contains(&version.pgarrow_manifest) {
            return Err(Error::usage(format!(
                "manifest format {} is not supported (this pgarrow reads formats 1 to \
                 {MANIFEST_VERSION})",
                version.pgarrow_manifest
            )));
        }
        serde_json::from_str(text).map_err(|e| {
            Error::usage(format!(
                "not a pgarrow manifest of format {}: {e}{}",
                version.pgarrow_manifest,
                match version.pgarrow_manifest {
                    1 => " (format 1 manifests of several tables are not read: export again)",
                    _ => "",
                }
            ))
        })
    }

    /// Writes `DIR/_manifest.json` atomically (a temporary file renamed over it; one PUT to
    /// an object store), and gives its location.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Storage`].
    pub fn write(&self, dir: &Location) -> Result<Location> {
        let path = dir.join(MANIFEST_NAME);
        path.write_atomically((self.to_json() + "\n").as_bytes())?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_old_part_manifests_still_read() {
        let mut file = ManifestFile::new("public.t.parquet", 3, 100);
        file.table = Some(TableName::new(Some("public"), "t"));
        let m = Manifest::new(
            Format::Parquet,
            Some("snap".into()),
            None,
            Some(170000),
            vec![file],
        );
        let back = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.rows, 3);
        let v1 = r#"{"pgarrow_manifest":1,"pgarrow_version":"0.1.0","source":"SELECT 1",
            "snapshot":null,"wal_lsn":"0/1","server_version":150000,"format":"parquet",
            "rows":2,"schema":{"fields":[],"metadata":{}},
            "files":[{"path":"part-00000.parquet","part":0,"relation":null,
                      "range":{"kind":"all"},"rows":2,"bytes":10}]}"#;
        let old = Manifest::from_json(v1).unwrap();
        assert_eq!(old.files[0].part, Some(0));
        assert_eq!(old.server_version, Some(150000));
        let tables_v1 = r#"{"pgarrow_manifest":1,"pgarrow_version":"0.1.0","snapshot":null,
            "wal_lsn":null,"format":"parquet","rows":1,
            "tables":[{"table":"public.t","schema":"public","name":"t","file":"f","rows":1,"bytes":1}]}"#;
        let e = Manifest::from_json(tables_v1).unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("export again"),
            "{e}"
        );
        let future = Manifest::from_json(r#"{"pgarrow_manifest":9}"#).unwrap_err();
        assert!(future.to_string().contains("format 9"), "{future}");
    }

    #[test]
    fn file_names_hold_no_separator() {
        let t = DirTarget::new("/d", Format::ArrowStream);
        assert_eq!(
            t.table_file(&TableName::new(Some("s"), "a/b")),
            "s.a_b.arrows"
        );
        assert_eq!(t.part_file(7), "part-00007.arrows");
    }
}
