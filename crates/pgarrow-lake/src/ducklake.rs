//! DuckLake tables: an export's Parquet files committed into a DuckLake table whose catalog is
//! a PostgreSQL database (the layout DuckDB 1.5's `ducklake` extension reads and writes,
//! DuckLake 1.0).
//!
//! The files go under the table's directory in the lake's data path (local or an object
//! store), written by pgarrow's partitioned export with Parquet field IDs (the catalog's
//! column IDs). Then one transaction in the catalog database adds them: a new snapshot, the
//! table (and its schema) when new, each file with its column statistics, the table's
//! statistics. Readers see the table before the export or after it, never between. An export
//! that fails, or whose commit fails, removes its files; a process killed before the commit
//! leaves files no snapshot names (DuckDB's `ducklake_delete_orphaned_files` removes them).
//!
//! Two writers committing at once both land: each commit takes the next snapshot ID, and the
//! loser of that race (the catalog's primary key refuses its snapshot) begins its transaction
//! again on the new state, up to [`DuckLakeTarget::retries`] times. An append retries onto
//! whatever the other writer did; a replace or a new table retries only if the other writer
//! left this table alone.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::{DuckLakeTarget, IfExists, export_to_ducklake};
//! let catalog = pgarrow::protocol::Config::parse("postgresql://localhost/lake")?;
//! let target = DuckLakeTarget::new(catalog, "sales", "orders")
//!     .with_data_path("s3://bucket/lake/")
//!     .with_if_exists(IfExists::Append);
//! let stats = export_to_ducklake(
//!     "postgresql://localhost/shop",
//!     "orders",
//!     &Default::default(),
//!     &pgarrow::partition::PartitionOptions::new(4),
//!     &target,
//!     Default::default(),
//! )
//! .await?;
//! println!("snapshot {}: {} rows", stats.snapshot, stats.rows);
//! # Ok(())
//! # }
//! ```

mod catalog;
mod columns;
mod commit;
pub(crate) mod expire;
mod export;
pub(crate) mod mirror;
mod partitions;
mod read;
mod stats;

pub(crate) use export::export_tables_to_ducklake;
pub use export::export_to_ducklake;
pub use read::open_ducklake;

use std::collections::HashMap;

use pgarrow::incremental::{IncrementalOptions, IncrementalState};
use pgarrow::io::{Layout, Location, Manifest, SinkOptions, StorageOptions};
use pgarrow::partition::PartitionedStats;
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Result};

use crate::common::IfExists;
use catalog::{Catalog, with_slash};
use columns::LakeColumn;
use partitions::Key;
use stats::{ColumnStats, file_stats};

/// Where and how an export goes into a DuckLake table: [`DuckLakeTarget::new`], then `with_*`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DuckLakeTarget {
    /// The catalog database.
    pub catalog: Config,
    /// The data path of a new catalog (made when the database has none); an existing
    /// catalog keeps its own, which this must then equal if given.
    pub data_path: Option<String>,
    /// The table's schema (made when missing).
    pub schema: String,
    /// The table.
    pub table: String,
    /// When the table exists.
    pub if_exists: IfExists,
    /// Credentials and settings for an object store data path.
    pub storage: StorageOptions,
    /// The data files' Parquet options (field IDs are always written).
    pub options: SinkOptions,
    /// Where files roll over (`max_file_rows`, `max_file_bytes`), and the table's
    /// partitions (`partitions`: a column, or `year`, `month`, `day`, `hour` of a date or
    /// timestamp, as DuckLake's keys; by default an existing table's own).
    pub layout: Layout,
    /// Times a commit that lost a race with another writer begins again.
    pub retries: usize,
    /// An incremental run of a table instead of the export's source: what changed since the
    /// run whose state the table's last such snapshot carries (in its
    /// `ducklake_snapshot_changes.commit_extra_info`), appended with this run's state in the
    /// same snapshot.
    pub incremental: Option<IncrementalOptions>,
}

impl DuckLakeTarget {
    /// Table `schema.table` of the catalog in database `catalog`.
    pub fn new(catalog: Config, schema: impl Into<String>, table: impl Into<String>) -> Self {
        DuckLakeTarget {
            catalog,
            data_path: None,
            schema: schema.into(),
            table: table.into(),
            if_exists: IfExists::Fail,
            storage: StorageOptions::default(),
            options: SinkOptions::default(),
            layout: Layout::default(),
            retries: 10,
            incremental: None,
        }
    }

    /// An incremental run of `options.table` (the export's source is then ignored).
    pub fn with_incremental(mut self, options: IncrementalOptions) -> Self {
        self.incremental = Some(options);
        self
    }

    /// The data path of a new catalog.
    pub fn with_data_path(mut self, path: impl Into<String>) -> Self {
        self.data_path = Some(path.into());
        self
    }

    crate::common::target_setters!();
}

/// What an export into a DuckLake table did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DuckLakeStats {
    /// The export's own statistics.
    pub export: PartitionedStats,
    /// The snapshot that made the rows visible.
    pub snapshot: i64,
    /// The table's ID in the catalog.
    pub table_id: i64,
    /// Whether the commit made the table.
    pub created: bool,
    /// Rows added.
    pub rows: u64,
    /// Data files added.
    pub files: usize,
    /// Commits begun again after losing a race with another writer.
    pub retried: usize,
    /// An incremental run's state and kind.
    pub run: Option<crate::common::LakeRun>,
}

/// A live table of the catalog, as the commit finds it.
pub(super) struct Table {
    pub(super) id: i64,
    /// Its directory under the data path.
    pub(super) dir: String,
    pub(super) columns: Vec<LakeColumn>,
    /// Its live partitioning: the partition ID and the keys (column ID, transform).
    pub(super) partition: Option<(i64, Vec<(i64, String)>)>,
}

/// The state of the last incremental run committed to table `table_id`: the newest of its
/// snapshots whose changes carry one.
pub(super) async fn last_state(
    catalog: &mut Catalog,
    table_id: i64,
) -> Result<Option<IncrementalState>> {
    let rows = catalog
        .query(
            "SELECT c.snapshot_id::text, c.commit_extra_info::text FROM ducklake_snapshot_changes c \
             WHERE c.author = 'pgarrow' AND c.commit_extra_info LIKE '%\"incremental%' \
             AND $1 = ANY(string_to_array(c.changes_made, ',')) ORDER BY c.snapshot_id DESC LIMIT 1",
            &[Some(&format!("inserted_into_table:{table_id}"))],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let at = format!("snapshot {}", row[0].as_deref().unwrap_or("?"));
    let info: serde_json::Value = row[1]
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    // A snapshot of one table holds its state; one of several, each table's by its ID.
    let state = info.get("incremental").or_else(|| {
        info.get(commit::INCREMENTAL_BY_TABLE)
            .and_then(|by| by.get(table_id.to_string()))
    });
    match state {
        Some(state) => crate::run::parse_state(&state.to_string(), &at).map(Some),
        None => Ok(None),
    }
}

/// The highest column ID table `table_id` ever gave (a dropped column's included).
async fn last_column_id(catalog: &mut Catalog, table_id: i64) -> Result<i64> {
    let rows = catalog
        .query(
            "SELECT coalesce(max(column_id), 0)::text FROM ducklake_column \
             WHERE table_id = $1::bigint",
            &[Some(&table_id.to_string())],
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Whether `e` is the catalog refusing a snapshot ID another writer took first.
pub(super) fn is_race(e: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(p) = err.downcast_ref::<pgarrow::protocol::Error>() {
            return matches!(p.code(), Some("23505" | "40001"));
        }
        source = err.source();
    }
    false
}

/// A data file ready for the catalog.
pub(super) struct DataFile {
    /// Its path under the table's directory.
    pub(super) path: String,
    pub(super) rows: u64,
    pub(super) bytes: u64,
    pub(super) footer: u64,
    pub(super) stats: HashMap<i64, ColumnStats>,
    /// Its value of each partition key.
    pub(super) partition_values: Vec<Option<String>>,
}

/// Reads each file's footer for its statistics (on a blocking thread: object stores are read
/// through blocking ranged reads).
async fn describe_files(
    dir: &Location,
    manifest: &Manifest,
    columns: &[LakeColumn],
    keys: &[Key],
) -> Result<Vec<DataFile>> {
    let dir = dir.clone();
    let files = manifest
        .files
        .iter()
        .map(|f| {
            let values = partitions::values(keys, &f.values)?;
            Ok((f.path.clone(), f.rows, f.bytes, values))
        })
        .collect::<Result<Vec<_>>>()?;
    let columns = columns.to_vec();
    tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|(path, rows, bytes, partition_values)| {
                let (metadata, footer) = dir.join_path(&path).parquet_metadata()?;
                Ok(DataFile {
                    stats: file_stats(&metadata, &columns),
                    path,
                    rows,
                    bytes,
                    footer,
                    partition_values,
                })
            })
            .collect::<Result<Vec<_>>>()
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("reading footers: {e}"))))?
}

/// The live schema named `name`: its ID and directory.
pub(super) async fn find_schema(
    catalog: &mut Catalog,
    name: &str,
) -> Result<Option<(i64, String)>> {
    let rows = catalog
        .query(
            "SELECT s.schema_id::text, CASE WHEN s.path_is_relative THEN m.value || s.path \
             ELSE s.path END \
             FROM ducklake_schema s, ducklake_metadata m \
             WHERE m.key = 'data_path' AND m.scope IS NULL \
             AND s.schema_name = $1 AND s.end_snapshot IS NULL",
            &[Some(name)],
        )
        .await?;
    Ok(rows.into_iter().next().map(|r| {
        (
            r[0].as_deref().and_then(|v| v.parse().ok()).unwrap_or(-1),
            with_slash(r[1].as_deref().unwrap_or_default()),
        )
    }))
}

/// The live table `schema.name`, with its directory and columns.
pub(super) async fn find_table(
    catalog: &mut Catalog,
    schema: &str,
    name: &str,
) -> Result<Option<Table>> {
    let Some((schema_id, schema_dir)) = find_schema(catalog, schema).await? else {
        return Ok(None);
    };
    let rows = catalog
        .query(
            "SELECT table_id::text, path, path_is_relative::text FROM ducklake_table \
             WHERE schema_id = $1::bigint AND table_name = $2 AND end_snapshot IS NULL",
            &[Some(&schema_id.to_string()), Some(name)],
        )
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let id: i64 = row[0].as_deref().and_then(|v| v.parse().ok()).unwrap_or(-1);
    let path = row[1].clone().unwrap_or_default();
    let dir = match row[2].as_deref() {
        Some("true") => with_slash(&format!("{schema_dir}{path}")),
        _ => with_slash(&path),
    };
    let rows = catalog
        .query(
            "SELECT column_id::text, column_name, column_type, parent_column::text, \
             column_order::text FROM ducklake_column c \
             WHERE table_id = $1::bigint AND end_snapshot IS NULL ORDER BY c.column_id",
            &[Some(&id.to_string())],
        )
        .await?;
    let number = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<i64>().ok());
    let columns = rows
        .iter()
        .map(|r| LakeColumn {
            id: number(&r[0]).unwrap_or(-1),
            name: r[1].clone().unwrap_or_default(),
            ty: r[2].clone().unwrap_or_default(),
            parent: number(&r[3]),
            order: number(&r[4]).unwrap_or(0),
            compare_as: None,
        })
        .collect();
    let spec = catalog
        .query(
            "SELECT i.partition_id::text, c.column_id::text, c.transform \
             FROM ducklake_partition_info i JOIN ducklake_partition_column c \
             USING (partition_id, table_id) \
             WHERE i.table_id = $1::bigint AND i.end_snapshot IS NULL \
             ORDER BY c.partition_key_index",
            &[Some(&id.to_string())],
        )
        .await?;
    let partition = spec.first().map(|first| {
        (
            number(&first[0]).unwrap_or(-1),
            spec.iter()
                .map(|r| {
                    (
                        number(&r[1]).unwrap_or(-1),
                        r[2].clone().unwrap_or_default(),
                    )
                })
                .collect(),
        )
    });
    Ok(Some(Table {
        id,
        dir,
        columns,
        partition,
    }))
}

/// How an export's columns change a table's (DuckLake's schema evolution).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Evolution {
    /// Columns whose live rows end: widened, or on a replace changed or dropped.
    pub(super) ended: Vec<i64>,
    /// Column rows to begin: new columns, and the new types of those ended and kept.
    pub(super) begun: Vec<LakeColumn>,
    /// Of `begun`, the columns new to the table.
    pub(super) new: Vec<i64>,
}

impl Evolution {
    /// Whether the table's columns stay as they are.
    pub(super) fn is_none(&self) -> bool {
        self.ended.is_empty() && self.begun.is_empty()
    }
}

/// What the export's columns (numbered with the table's IDs by path) do to the table's: on
/// an append, a new column is added (nested ones too), a column of a type DuckLake widens to
/// the export's is widened, a narrower one is taken as it is (its files read widened), and a
/// table column the export lacks is NULL in its rows; on a replace the table takes the
/// export's columns.
///
/// # Errors
/// On an append, a column of another type (named, with both types); a column ID the table
/// and the export give different names (another writer changed the table meanwhile).
pub(super) fn evolve(
    table: &[LakeColumn],
    export: &[LakeColumn],
    replace: bool,
    name: &str,
) -> Result<Evolution> {
    let refuse = |what: String| -> Error {
        ErrorKind::Usage(format!("DuckLake table {name}: {what}")).into()
    };
    let mut out = Evolution::default();
    let top = |c: &&LakeColumn| c.parent.is_none();
    let in_table = |e: &LakeColumn| table.iter().any(|t| t.id == e.id);
    // On a replace the table takes the export's order too: when keeping its columns' places
    // and adding the new ones after them would not give it, every column is placed anew.
    let renumber = replace && {
        let mut kept: Vec<&LakeColumn> = table
            .iter()
            .filter(top)
            .filter(|t| export.iter().any(|e| e.id == t.id))
            .collect();
        kept.sort_by_key(|t| t.order);
        let kept_then_new: Vec<i64> = kept
            .iter()
            .map(|t| t.id)
            .chain(
                export
                    .iter()
                    .filter(top)
                    .filter(|e| !in_table(e))
                    .map(|e| e.id),
            )
            .collect();
        let theirs: Vec<i64> = export.iter().filter(top).map(|e| e.id).collect();
        kept_then_new != theirs
    };
    let mut order = table.iter().map(|c| c.order).max().unwrap_or(0);
    for e in export {
        let placed = (e.parent.is_none() && (renumber || !in_table(e))).then(|| {
            order += 1;
            order
        });
        let Some(t) = table.iter().find(|t| t.id == e.id) else {
            let mut added = e.clone();
            if let Some(o) = placed {
                added.order = o;
            }
            out.new.push(e.id);
            out.begun.push(added);
            continue;
        };
        if t.parent.is_none() && t.name != e.name {
            return Err(refuse(format!(
                "its column ID {} is \"{}\", and the export's is \"{}\": the table changed \
                 during the export",
                t.id, t.name, e.name
            )));
        }
        if t.ty == e.ty && placed.is_none() {
            continue;
        }
        if replace || columns::widens(&t.ty, &e.ty) {
            out.ended.push(t.id);
            out.begun.push(LakeColumn {
                name: t.name.clone(),
                order: placed.unwrap_or(t.order),
                ..e.clone()
            });
        } else if !columns::widens(&e.ty, &t.ty) {
            return Err(refuse(format!(
                "column \"{}\" is {} in the table and {} in the export, which DuckLake \
                 does not widen to (it widens integers to wider integers and float32 to \
                 float64): cast the column in the query",
                t.name, t.ty, e.ty
            )));
        }
    }
    if replace {
        for t in table {
            if !export.iter().any(|e| e.id == t.id) {
                out.ended.push(t.id);
            }
        }
    }
    Ok(out)
}

/// Refuses files partitioned otherwise than the table, naming both.
pub(super) fn same_partitions(table: &Table, keys: &[Key], name: &str) -> Result<()> {
    let ours: Vec<(i64, String)> = keys
        .iter()
        .map(|k| (k.column_id, k.transform.clone()))
        .collect();
    let theirs = table.partition.as_ref().map_or(&[][..], |(_, spec)| spec);
    if theirs == ours {
        return Ok(());
    }
    let shown = |spec: &[(i64, String)]| match spec.is_empty() {
        true => "nothing".to_owned(),
        false => spec
            .iter()
            .map(|(c, t)| {
                let column = table
                    .columns
                    .iter()
                    .find(|x| x.id == *c)
                    .map_or_else(|| c.to_string(), |x| x.name.clone());
                format!("{t}({column})")
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    Err(ErrorKind::Usage(format!(
        "DuckLake table {name} is partitioned by {}, and the export by {}: leave out \
         --files-by to write its own partitions",
        shown(theirs),
        shown(&ours)
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(id: i64, name: &str, ty: &str, order: i64) -> LakeColumn {
        LakeColumn {
            id,
            name: name.into(),
            ty: ty.into(),
            parent: None,
            order,
            compare_as: None,
        }
    }

    /// The live columns after `evolution`, in their order.
    fn after(table: &[LakeColumn], evolution: &Evolution) -> Vec<(i64, String)> {
        let mut live: Vec<&LakeColumn> = table
            .iter()
            .filter(|c| !evolution.ended.contains(&c.id))
            .chain(&evolution.begun)
            .collect();
        live.sort_by_key(|c| c.order);
        live.iter().map(|c| (c.id, c.name.clone())).collect()
    }

    #[test]
    fn a_replace_takes_the_exports_order_and_an_append_keeps_the_tables() {
        let table = [
            column(1, "id", "int32", 1),
            column(2, "a", "varchar", 2),
            column(3, "big", "varchar", 3),
        ];
        // "a" renamed "title" in its place: a new column (a new ID) where "a" was.
        let export = [
            column(1, "id", "int32", 1),
            column(4, "title", "varchar", 2),
            column(3, "big", "varchar", 3),
            column(5, "five", "int32", 4),
        ];
        let replaced = evolve(&table, &export, true, "t").unwrap();
        assert_eq!(
            after(&table, &replaced),
            [(1, "id"), (4, "title"), (3, "big"), (5, "five")].map(|(i, n)| (i, n.to_owned()))
        );
        assert!(replaced.ended.contains(&2), "{replaced:?}");
        // In the same order, a replace leaves the kept columns' rows as they are.
        let same = [
            column(1, "id", "int32", 1),
            column(2, "a", "varchar", 2),
            column(3, "big", "varchar", 3),
            column(5, "five", "int32", 4),
        ];
        let added = evolve(&table, &same, true, "t").unwrap();
        assert!(added.ended.is_empty(), "{added:?}");
        assert_eq!(added.new, [5]);
        assert_eq!(
            after(&table, &added),
            [(1, "id"), (2, "a"), (3, "big"), (5, "five")].map(|(i, n)| (i, n.to_owned()))
        );
        // An append adds after the table's columns, whatever the export's order.
        let appended = evolve(&table, &export[..2], false, "t").unwrap();
        assert_eq!(
            after(&table, &appended),
            [(1, "id"), (2, "a"), (3, "big"), (4, "title")].map(|(i, n)| (i, n.to_owned()))
        );
    }
}
