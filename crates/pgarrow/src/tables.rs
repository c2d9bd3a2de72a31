//! Several tables in one snapshot: the relations that `pg_dump`-style patterns match, one file
//! per table in a directory (or, laid out by the target's [`Layout`](pgarrow_io::Layout), one
//! directory of files per table), all read in one `REPEATABLE READ, READ ONLY` transaction on
//! one connection, then `_manifest.json` naming the snapshot, the WAL position and each file's
//! table, rows and partition values.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;

use serde::Serialize;

use crate::names::TableName;
use crate::names::{TablePattern, resolve};
use crate::pipeline::{Laid, file_options};
use crate::protocol::TextRow;
use crate::{Client, Error, ExportOptions, ExportStats, FileTarget, Hooks, IntoConfig, Result};
use pgarrow_io::{DirTarget, LayoutWriter, Manifest, ManifestFile};

/// What an export of several tables did: its manifest, where it is, and each table's
/// statistics.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TablesStats {
    /// The manifest, as written.
    #[serde(flatten)]
    pub manifest: Manifest,
    /// The directory or prefix: its path or URL.
    pub output_dir: String,
    /// The manifest's path or URL.
    #[serde(rename = "manifest")]
    pub manifest_path: String,
    /// Bytes of COPY data received, over every table.
    pub copy_bytes: u64,
    /// Wall time, from connecting to the manifest.
    #[serde(rename = "total_s", serialize_with = "crate::stats::seconds")]
    pub total: Duration,
    /// Each table's statistics, in the manifest's order.
    #[serde(skip)]
    pub tables: Vec<ExportStats>,
}

/// An export of several tables, begun: the tables are resolved and the snapshot taken; each
/// [`export_next`](TablesExport::export_next) writes one table's file, and
/// [`finish`](TablesExport::finish) writes the manifest. Dropped before it finished, it
/// removes the files it wrote (no manifest was written).
///
/// ```no_run
/// # async fn run() -> Result<(), pgarrow::Error> {
/// use pgarrow::Hooks;
/// use pgarrow::io::DirTarget;
/// use pgarrow::names::TablePattern;
/// use pgarrow::io::Format;
///
/// let patterns = [TablePattern::schema("sales")?];
/// let target = DirTarget::new("out", Format::Parquet);
/// let mut export = pgarrow::TablesExport::begin("postgresql://localhost/db", &patterns, target).await?;
/// while let Some((table, stats)) = export.export_next(&Default::default(), Hooks::new()).await? {
///     println!("{table}: {} rows", stats.rows);
/// }
/// let stats = export.finish().await?;
/// println!("manifest {}", stats.manifest_path);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TablesExport {
    client: Option<Client>,
    target: DirTarget,
    tables: Vec<TableName>,
    snapshot: Option<String>,
    wal_lsn: Option<String>,
    server_version: u32,
    /// Each table's files written so far (one, or those of its layout), with its statistics.
    written: Vec<(Vec<ManifestFile>, ExportStats)>,
    started: Instant,
    /// Whether the directory was prepared (made, and its old manifest removed).
    prepared: bool,
}

impl TablesExport {
    /// Connects, opens the transaction whose snapshot every table is read in, and resolves
    /// `patterns` (see [`resolve`]) into tables, in schema and name order.
    ///
    /// # Errors
    /// Connecting; a pattern that matches nothing; two tables whose files would have one name
    /// (`"a.b".c` and `a."b.c"`, or names that differ only in case); bad file options.
    pub async fn begin(
        config: impl IntoConfig,
        patterns: &[TablePattern],
        target: DirTarget,
    ) -> Result<TablesExport> {
        let started = Instant::now();
        let mut target = target;
        target.check()?;
        target.options = file_options(&target.options, target.format)?;
        let mut client = Client::connect(config).await?;
        let conn = client.connection();
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
        conn.simple_query(begin).await?;
        // The snapshot's name is for the manifest only (one connection reads every table): a
        // server that cannot export one (a standby before PostgreSQL 10) still exports, in a
        // transaction begun again.
        let snapshot = match conn
            .simple_query("SELECT pg_catalog.pg_export_snapshot()")
            .await
        {
            Ok(rows) => first_value(&rows),
            Err(_) => {
                conn.simple_query("ROLLBACK").await?;
                conn.simple_query(begin).await?;
                None
            }
        };
        let lsn = conn
            .simple_query(
                "SELECT (CASE WHEN pg_catalog.pg_is_in_recovery() THEN \
                 pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() \
                 END)::text",
            )
            .await?;
        let server_version = conn.server_version_num();
        let tables = resolve(conn, patterns).await?;
        check_file_names(&tables, &target)?;
        Ok(TablesExport {
            client: Some(client),
            target,
            tables,
            snapshot,
            wal_lsn: first_value(&lsn),
            server_version,
            written: Vec::new(),
            started,
            prepared: false,
        })
    }

    /// The tables, in the order they are exported.
    pub fn tables(&self) -> &[TableName] {
        &self.tables
    }

    /// The snapshot the tables are read in, when the server exported one.
    pub fn snapshot(&self) -> Option<&str> {
        self.snapshot.as_deref()
    }

    /// Where the files go.
    pub fn target(&self) -> &DirTarget {
        &self.target
    }

    /// The connection, inside the snapshot's transaction: to describe a table
    /// ([`Client::describe_with`]) or estimate its rows ([`Client::estimate_rows`]).
    ///
    /// # Errors
    /// [`ErrorKind::Internal`](crate::ErrorKind::Internal) once it finished.
    pub fn client(&mut self) -> Result<&mut Client> {
        self.client
            .as_mut()
            .ok_or_else(|| Error::internal("the export of several tables already ended"))
    }

    /// The next table not yet exported.
    pub fn next_table(&self) -> Option<&TableName> {
        self.tables.get(self.written.len())
    }

    /// Exports the next table into its file (written atomically), with `hooks`' progress and
    /// stop; `None` when every table was.
    ///
    /// # Errors
    /// The table's export failed (then the files of this run are removed, and the error says
    /// which table), or the hooks stopped it.
    pub async fn export_next(
        &mut self,
        options: &ExportOptions,
        hooks: Hooks<'_>,
    ) -> Result<Option<(TableName, ExportStats)>> {
        let Some(table) = self.next_table().cloned() else {
            return Ok(None);
        };
        if !self.prepared {
            self.target.prepare()?;
            self.prepared = true;
        }
        let exported = match self.target.layout.is_plain() {
            true => self.export_file(&table, options, hooks).await,
            false => self.export_laid(&table, options, hooks).await,
        };
        match exported {
            Ok((mut files, stats)) => {
                for file in &mut files {
                    file.table = Some(table.clone());
                }
                self.written.push((files, stats.clone()));
                Ok(Some((table, stats)))
            }
            Err(e) => {
                self.remove_files();
                Err(match e.is_cancelled() {
                    true => e,
                    false => e.context(format!(
                        "exporting {table} (the files of this run were removed)"
                    )),
                })
            }
        }
    }

    /// One table into its file.
    async fn export_file(
        &mut self,
        table: &TableName,
        options: &ExportOptions,
        hooks: Hooks<'_>,
    ) -> Result<(Vec<ManifestFile>, ExportStats)> {
        let file = self.target.table_file(table);
        let target = FileTarget {
            format: self.target.format,
            output: self.target.dir.join(&file).output(),
            options: self.target.options.clone(),
        };
        let client = self.client()?;
        let stats = client
            .export_to_file(table.clone(), options, &target, hooks)
            .await?;
        let entry = ManifestFile::new(file, stats.rows, stats.written.unwrap_or(0));
        Ok((vec![entry], stats))
    }

    /// One table into files laid out by the target's [`Layout`](pgarrow_io::Layout) in its
    /// own directory ([`DirTarget::table_dir`]), holding about half the memory limit in its
    /// open files and pending rows.
    async fn export_laid(
        &mut self,
        table: &TableName,
        options: &ExportOptions,
        hooks: Hooks<'_>,
    ) -> Result<(Vec<ManifestFile>, ExportStats)> {
        let dir_name = self.target.table_dir(table);
        let dir = self.target.dir.join(&dir_name);
        let (format, layout) = (self.target.format, self.target.layout.clone());
        let mut sink_options = self.target.options.clone();
        sink_options.row_group_bytes =
            options.limited_row_group_bytes(sink_options.row_group_bytes);
        let memory = options
            .memory_limit
            .unwrap_or(crate::partition::DEFAULT_MEMORY_LIMIT)
            / 2;
        let files = Arc::new(Mutex::new(Vec::new()));
        let create = |schema: &SchemaRef| {
            let writer = LayoutWriter::new(
                dir.clone(),
                format,
                &sink_options,
                schema,
                &layout,
                "part-00000",
                memory,
            )
            .map_err(|e| Error::from(e).context(format!("laying out {table}")))?;
            // Made once the layout applies to the table, so that a refusal leaves nothing.
            dir.prepare_dir()?;
            Ok(Laid {
                writer,
                files: files.clone(),
            })
        };
        let client = self.client()?;
        let exported = client
            .export_into(table.clone().into(), options, create, hooks)
            .await;
        let stats = match exported {
            Ok(stats) => stats,
            Err(e) => {
                // The writer removed its files and partitions' directories; the table's
                // own goes too when it is left empty.
                if let Some(path) = dir.as_local() {
                    let _ = std::fs::remove_dir(path);
                }
                return Err(e);
            }
        };
        let written = std::mem::take(&mut *files.lock().unwrap_or_else(|e| e.into_inner()));
        let entries = written
            .into_iter()
            .map(|f| {
                let mut entry =
                    ManifestFile::new(format!("{dir_name}/{}", f.path), f.rows, f.bytes);
                entry.values = f.values;
                entry
            })
            .collect();
        Ok((entries, stats))
    }

    /// Exports every table not yet exported (see [`export_next`](TablesExport::export_next)).
    ///
    /// # Errors
    /// As [`export_next`](TablesExport::export_next).
    pub async fn export_rest(&mut self, options: &ExportOptions, hooks: Hooks<'_>) -> Result<()> {
        let mut hooks = hooks;
        let mut progress = hooks.progress.take();
        while self.next_table().is_some() {
            let mut each = Hooks::new().with_stop(hooks.stop.clone());
            if let Some(p) = progress.as_mut() {
                each = each.on_progress(|s: &ExportStats| p(s));
            }
            self.export_next(options, each).await?;
        }
        Ok(())
    }

    /// Ends the transaction, writes the manifest (last, atomically) and returns what was
    /// written.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage) when tables remain to export; the
    /// manifest cannot be written (then the files of this run are removed).
    pub async fn finish(mut self) -> Result<TablesStats> {
        if let Some(table) = self.next_table() {
            return Err(Error::usage(format!(
                "{table} and the tables after it were not exported yet"
            )));
        }
        if !self.prepared {
            // No table at all: still a complete (empty) export.
            self.target.prepare()?;
            self.prepared = true;
        }
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
        let files: Vec<ManifestFile> = self
            .written
            .iter()
            .flat_map(|(f, _)| f.iter().cloned())
            .collect();
        let mut manifest = Manifest::new(
            self.target.format,
            self.snapshot.clone(),
            self.wal_lsn.clone(),
            Some(self.server_version),
            files,
        );
        manifest.layout = (!self.target.layout.is_plain()).then(|| self.target.layout.clone());
        let losses: Vec<String> = self
            .written
            .iter()
            .filter(|(_, stats)| !stats.losses.is_empty())
            .map(|(files, stats)| {
                let table = files.first().and_then(|f| f.table.as_ref());
                let table = table.map(ToString::to_string).unwrap_or_default();
                format!("{table}: {}", stats.losses)
            })
            .collect();
        manifest.lossy_conversions = (!losses.is_empty()).then(|| losses.join("; "));
        let manifest_path = match manifest.write(&self.target.dir) {
            Ok(path) => path,
            Err(e) => {
                self.remove_files();
                return Err(e.into());
            }
        };
        let tables: Vec<ExportStats> = std::mem::take(&mut self.written)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        Ok(TablesStats {
            manifest,
            output_dir: self.target.dir.to_string(),
            manifest_path: manifest_path.to_string(),
            copy_bytes: tables.iter().map(|s| s.bytes).sum(),
            total: self.started.elapsed(),
            tables,
        })
    }

    /// Removes the files written so far, and the directories of laid-out tables they leave
    /// empty.
    fn remove_files(&mut self) {
        for (files, _) in self.written.drain(..) {
            for file in files {
                let _ = self.target.dir.join_path(&file.path).remove();
                let Some(root) = self.target.dir.as_local() else {
                    continue;
                };
                let mut dir = std::path::Path::new(&file.path).parent();
                while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                    if std::fs::remove_dir(root.join(d)).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
            }
        }
    }
}

impl Drop for TablesExport {
    /// Unfinished: the files written so far go (no manifest vouches for them).
    fn drop(&mut self) {
        self.remove_files();
    }
}

/// Exports every table `patterns` match into `target` (one file per table, in one snapshot),
/// then writes the manifest: [`TablesExport`] in one call.
///
/// # Errors
/// As [`TablesExport::begin`], [`TablesExport::export_next`] and [`TablesExport::finish`].
pub async fn export_tables(
    config: impl IntoConfig,
    patterns: &[TablePattern],
    options: &ExportOptions,
    target: DirTarget,
    hooks: Hooks<'_>,
) -> Result<TablesStats> {
    let stop = hooks.stop.clone();
    let mut export = stop
        .run(TablesExport::begin(config, patterns, target))
        .await??;
    export.export_rest(options, hooks).await?;
    export.finish().await
}

/// The first column of the first row.
fn first_value(rows: &[TextRow]) -> Option<String> {
    rows.first().and_then(|r| r.first().cloned().flatten())
}

/// Refuses tables whose files would have one name (`"a.b".c` and `a."b.c"`; `"T"` and `t`
/// on a file system that ignores case), before anything is written.
fn check_file_names(tables: &[TableName], target: &DirTarget) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &TableName> = Default::default();
    for table in tables {
        let name = target.table_file(table);
        if let Some(other) = seen.insert(name.to_lowercase(), table) {
            return Err(Error::usage(format!(
                "{other} and {table} would be written to files of the same name ({name}): \
                 export them separately"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgarrow_io::Format;

    #[test]
    fn clashing_file_names_are_refused() {
        let target = DirTarget::new("d", Format::Parquet);
        let t = |schema: &str, name: &str| TableName::new(Some(schema), name);
        let clash = [t("a.b", "c"), t("a", "b.c")];
        assert!(check_file_names(&clash, &target).unwrap_err().is_usage());
        let case = [t("s", "T"), t("s", "t")];
        assert!(check_file_names(&case, &target).is_err());
        let fine = [t("s", "a"), t("s", "b")];
        assert!(check_file_names(&fine, &target).is_ok());
    }
}
