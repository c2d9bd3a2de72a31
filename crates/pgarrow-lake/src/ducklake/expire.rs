//! Expiry of a DuckLake catalog's snapshots (they are the whole lake's, not one table's): the
//! snapshots older than the retention go, except the newest and, for each table, its newest
//! commit by pgarrow that carries a mirror's position or an incremental run's state (where
//! the next run finds it). The data and delete files that no snapshot left can see go from the
//! catalog in the same transaction, scheduled for deletion, and are removed once it commits.
//! A commit beside it (a mirror's) only ends live files, which expiry never touches.

use std::collections::HashMap;

use pgarrow::io::Location;
use pgarrow::{Error, Result};

use super::DuckLakeTarget;
use super::catalog::{Catalog, with_slash};
use crate::retention::{ExpireOptions, ExpireStats, remove_files};

/// The snapshots kept: newer than the cutoff (`$1`, milliseconds since the epoch), the
/// newest, and each table's newest pgarrow commit with a position or a run's state.
const KEPT: &str = "SELECT snapshot_id FROM ducklake_snapshot \
     WHERE snapshot_time >= to_timestamp($1::bigint / 1000.0) \
     UNION SELECT max(snapshot_id) FROM ducklake_snapshot \
     UNION SELECT max(c.snapshot_id) FROM ducklake_snapshot_changes c, \
     unnest(string_to_array(c.changes_made, ',')) AS change \
     WHERE c.author = 'pgarrow' AND (c.commit_extra_info LIKE '%\"replication_slot\"%' \
     OR c.commit_extra_info LIKE '%\"incremental%') \
     AND change ~ '^(inserted_into|deleted_from)_table:[0-9]+$' \
     GROUP BY split_part(change, ':', 2)";

/// Expires the snapshots of the catalog `target` names.
///
/// # Errors
/// No DuckLake catalog there; the catalog's and the storage's errors.
pub(crate) async fn expire(
    target: &DuckLakeTarget,
    options: &ExpireOptions,
) -> Result<ExpireStats> {
    let mut catalog = Catalog::connect(&target.catalog).await?;
    let done = run(&mut catalog, target, options).await;
    if done.is_err() {
        let _ = catalog.batch("ROLLBACK").await;
    }
    catalog.close().await;
    done
}

/// Expires the snapshots in one catalog transaction that forgets the files no kept snapshot
/// sees and schedules them for deletion, then removes them.
async fn run(
    catalog: &mut Catalog,
    target: &DuckLakeTarget,
    options: &ExpireOptions,
) -> Result<ExpireStats> {
    require_catalog(catalog, target).await?;
    catalog
        .batch("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await?;
    let cutoff = options.cutoff_ms().to_string();
    let dropped = dropped_snapshots(catalog, &cutoff).await?;
    let mut stats = ExpireStats {
        snapshots: dropped.split(',').filter(|s| !s.is_empty()).count() as u64,
        ..ExpireStats::default()
    };
    let unseen = Unseen::find(catalog, target, &cutoff).await?;
    if options.dry_run {
        catalog.batch("ROLLBACK").await?;
        remove_files(&unseen.files, &mut stats, true);
        return Ok(stats);
    }
    delete_expired(catalog, &dropped, &unseen).await?;
    // Scheduled in the same transaction (a data file's ID, or a delete file's, as DuckDB
    // schedules them): a run stopped before removing them leaves them named.
    catalog
        .exec(
            "INSERT INTO ducklake_files_scheduled_for_deletion \
             SELECT i::bigint, p, false, now() FROM unnest($1::text[], $2::text[]) AS f(i, p)",
            &[
                Some(&text_array(&unseen.file_ids)),
                Some(&text_array(&unseen.paths)),
            ],
        )
        .await?;
    catalog.batch("COMMIT").await?;
    remove_unseen(catalog, &unseen, &mut stats).await?;
    Ok(stats)
}

/// Refuses a database without a DuckLake catalog.
async fn require_catalog(catalog: &mut Catalog, target: &DuckLakeTarget) -> Result<()> {
    let exists = catalog
        .query("SELECT to_regclass('ducklake_metadata')::text", &[])
        .await?;
    if exists.first().and_then(|r| r[0].as_ref()).is_none() {
        return Err(Error::usage(format!(
            "there is no DuckLake catalog in {}",
            target.catalog.dbname
        )));
    }
    Ok(())
}

/// The IDs of the snapshots that go (those not [`KEPT`] at `cutoff`), comma-separated.
async fn dropped_snapshots(catalog: &mut Catalog, cutoff: &str) -> Result<String> {
    let dropped = catalog
        .query(
            &format!(
                "SELECT string_agg(snapshot_id::text, ',') FROM ducklake_snapshot \
                 WHERE snapshot_id NOT IN ({KEPT})"
            ),
            &[Some(cutoff)],
        )
        .await?;
    Ok(dropped
        .first()
        .and_then(|r| r[0].clone())
        .unwrap_or_default())
}

/// Each table's directory (a relative file's path is under it), by table ID.
async fn table_dirs(catalog: &mut Catalog) -> Result<HashMap<String, String>> {
    let dirs = catalog
        .query(
            "SELECT DISTINCT ON (t.table_id) t.table_id::text, \
             CASE WHEN s.path_is_relative THEN m.value || s.path ELSE s.path END, \
             t.path, t.path_is_relative::text \
             FROM ducklake_table t JOIN ducklake_schema s USING (schema_id), ducklake_metadata m \
             WHERE m.key = 'data_path' AND m.scope IS NULL \
             ORDER BY t.table_id, t.begin_snapshot DESC, s.begin_snapshot DESC",
            &[],
        )
        .await?;
    Ok(dirs
        .into_iter()
        .map(|r| {
            let schema_dir = with_slash(r[1].as_deref().unwrap_or_default());
            let path = r[2].clone().unwrap_or_default();
            let dir = match r[3].as_deref() {
                Some("true") => with_slash(&format!("{schema_dir}{path}")),
                _ => with_slash(&path),
            };
            (r[0].clone().unwrap_or_default(), dir)
        })
        .collect())
}

/// The data and delete files no kept snapshot sees.
struct Unseen {
    /// Where each is, with its size.
    files: Vec<(Location, u64)>,
    /// Each one's path, in the order of `files`.
    paths: Vec<String>,
    /// Each one's ID (a data file's or a delete file's), in the order of `files`.
    file_ids: Vec<String>,
    /// The data files' IDs, comma-separated.
    data_ids: String,
    /// The delete files' IDs, comma-separated.
    delete_ids: String,
}

impl Unseen {
    /// The files no snapshot kept at `cutoff` sees: ended before the oldest kept one that
    /// follows their start.
    ///
    /// # Errors
    /// A path the storage cannot take; the catalog's errors.
    async fn find(catalog: &mut Catalog, target: &DuckLakeTarget, cutoff: &str) -> Result<Self> {
        let dirs = table_dirs(catalog).await?;
        let unseen = |table: &str, id: &str| {
            format!(
                "SELECT {id}::text, table_id::text, path, path_is_relative::text, \
                 coalesce(file_size_bytes, 0)::text FROM {table} f \
                 WHERE end_snapshot IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ({KEPT}) k \
                 WHERE k.snapshot_id >= f.begin_snapshot AND k.snapshot_id < f.end_snapshot)"
            )
        };
        let data = catalog
            .query(
                &unseen("ducklake_data_file", "data_file_id"),
                &[Some(cutoff)],
            )
            .await?;
        let deletes = catalog
            .query(
                &unseen("ducklake_delete_file", "delete_file_id"),
                &[Some(cutoff)],
            )
            .await?;
        let mut found = Unseen {
            files: Vec::new(),
            paths: Vec::new(),
            file_ids: Vec::new(),
            data_ids: ids(&data),
            delete_ids: ids(&deletes),
        };
        for r in data.iter().chain(&deletes) {
            let path = r[2].clone().unwrap_or_default();
            let path = match r[3].as_deref() {
                Some("true") => format!(
                    "{}{path}",
                    dirs.get(r[1].as_deref().unwrap_or_default())
                        .map_or("", String::as_str)
                ),
                _ => path,
            };
            let bytes = r[4].as_deref().and_then(|b| b.parse().ok()).unwrap_or(0);
            found
                .files
                .push((Location::parse(&path, &target.storage)?, bytes));
            found.paths.push(path);
            found.file_ids.push(r[0].clone().unwrap_or_default());
        }
        Ok(found)
    }
}

/// The first column of `rows` (IDs), comma-separated.
fn ids(rows: &[Vec<Option<String>>]) -> String {
    rows.iter()
        .filter_map(|r| r[0].clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// Deletes from the catalog the snapshots `dropped` (comma-separated IDs) and the `unseen`
/// files, with what the catalog holds of each.
async fn delete_expired(catalog: &mut Catalog, dropped: &str, unseen: &Unseen) -> Result<()> {
    let ids = "ANY(string_to_array($1, ',')::bigint[])";
    for (sql, arg) in [
        (
            format!("DELETE FROM ducklake_snapshot WHERE snapshot_id = {ids}"),
            dropped,
        ),
        (
            format!("DELETE FROM ducklake_snapshot_changes WHERE snapshot_id = {ids}"),
            dropped,
        ),
        (
            format!("DELETE FROM ducklake_data_file WHERE data_file_id = {ids}"),
            unseen.data_ids.as_str(),
        ),
        (
            format!("DELETE FROM ducklake_file_column_stats WHERE data_file_id = {ids}"),
            unseen.data_ids.as_str(),
        ),
        (
            format!("DELETE FROM ducklake_file_partition_value WHERE data_file_id = {ids}"),
            unseen.data_ids.as_str(),
        ),
        (
            format!("DELETE FROM ducklake_file_variant_stats WHERE data_file_id = {ids}"),
            unseen.data_ids.as_str(),
        ),
        (
            format!("DELETE FROM ducklake_delete_file WHERE delete_file_id = {ids}"),
            unseen.delete_ids.as_str(),
        ),
    ] {
        if !arg.is_empty() {
            catalog.exec(&sql, &[Some(arg)]).await?;
        }
    }
    Ok(())
}

/// Removes the `unseen` files from the storage (counted in `stats`), then from the catalog's
/// files scheduled for deletion.
async fn remove_unseen(
    catalog: &mut Catalog,
    unseen: &Unseen,
    stats: &mut ExpireStats,
) -> Result<()> {
    let removed = {
        let files = unseen.files.clone();
        tokio::task::spawn_blocking(move || {
            let mut stats = ExpireStats::default();
            remove_files(&files, &mut stats, false);
            stats
        })
        .await
        .unwrap_or_default()
    };
    stats.files = removed.files;
    stats.bytes = removed.bytes;
    catalog
        .exec(
            "DELETE FROM ducklake_files_scheduled_for_deletion WHERE path = ANY($1::text[])",
            &[Some(&text_array(&unseen.paths))],
        )
        .await?;
    Ok(())
}

/// `items` as a PostgreSQL text array literal.
fn text_array(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}
