//! Expiry of an Iceberg table: its snapshots older than the retention go from its metadata
//! (never the current one, nor one a branch or tag names), in one swap of the catalog's
//! metadata location that retries when another writer moved it first; then the manifest
//! lists, manifests, data and delete files that only the dropped snapshots reached are
//! removed.

use std::collections::{HashMap, HashSet};

use pgarrow::io::{Location, StorageOptions};
use pgarrow::{Error, Result};

use super::catalog::{Catalog, Committed};
use super::connected::Connected;
use super::spec::{TableMetadata, TableRequirement, TableUpdate};
use super::{IcebergTarget, blocking};
use crate::retention::{ExpireOptions, ExpireStats, remove_files};
use crate::retry::Retries;

/// Expires the table `target` names.
///
/// # Errors
/// No such table; its files' and the catalog's errors; a table other writers kept moving
/// through every retry.
pub(crate) async fn expire(target: &IcebergTarget, options: &ExpireOptions) -> Result<ExpireStats> {
    let name = format!("{}.{}", target.namespace, target.table);
    let cutoff = options.cutoff_ms();
    let mut tries = Retries::new(options.retries, format!("expiring Iceberg table {name}"));
    loop {
        let mut catalog =
            Connected::connect(&target.catalog, &target.catalog_name, &target.storage).await?;
        let loaded = catalog.load(&target.namespace, &target.table).await;
        let Some(base) = loaded? else {
            catalog.close().await;
            return Err(Error::usage(format!("there is no Iceberg table {name}")));
        };
        let meta = &base.metadata;
        let (kept, dropped) = split(meta, cutoff);
        let mut stats = ExpireStats {
            snapshots: dropped.len() as u64,
            ..ExpireStats::default()
        };
        if dropped.is_empty() {
            catalog.close().await;
            return Ok(stats);
        }
        let lists = |ids: &HashSet<i64>| -> Vec<String> {
            meta.snapshots
                .iter()
                .filter(|s| ids.contains(&s.snapshot_id))
                .filter_map(|s| s.manifest_list.clone())
                .collect()
        };
        let (kept_lists, dropped_lists) = (lists(&kept), lists(&dropped));
        let storage = catalog.storage().clone();
        let gone = blocking(move || unreachable(&kept_lists, &dropped_lists, &storage)).await;
        let gone = match gone {
            Ok(gone) => gone,
            Err(e) => {
                catalog.close().await;
                return Err(e);
            }
        };
        if options.dry_run {
            catalog.close().await;
            remove_files(&gone, &mut stats, true);
            return Ok(stats);
        }
        // The metadata without the dropped snapshots, only if no other writer moved it.
        let mut ids: Vec<i64> = dropped.into_iter().collect();
        ids.sort_unstable();
        let updates = [TableUpdate::RemoveSnapshots { snapshot_ids: ids }];
        let required = [TableRequirement::AssertRefSnapshotId {
            name: "main".into(),
            snapshot_id: meta.current_snapshot_id(),
        }];
        let committed = catalog
            .commit(&target.namespace, &target.table, &base, &required, &updates)
            .await;
        catalog.close().await;
        match committed {
            Ok(Committed::Done(_)) => {
                let gone = blocking(move || {
                    let mut stats = ExpireStats::default();
                    remove_files(&gone, &mut stats, false);
                    Ok(stats)
                })
                .await?;
                stats.files = gone.files;
                stats.bytes = gone.bytes;
                return Ok(stats);
            }
            // Another writer (a mirror) committed first: read the table again.
            Ok(Committed::Conflict(why)) => tries.lost(why).await?,
            // Nothing is removed: the snapshots may still be there.
            Ok(Committed::Unknown(why)) => {
                return Err(
                    super::catalog::unknown(&why).context(format!("expiring Iceberg table {name}"))
                );
            }
            Err(e) => return Err(e.context(format!("expiring Iceberg table {name}"))),
        }
    }
}

/// The snapshots kept (newer than `cutoff`, the current one, any a reference names) and those
/// dropped, by ID.
fn split(meta: &TableMetadata, cutoff: i64) -> (HashSet<i64>, HashSet<i64>) {
    let named: HashSet<i64> = meta.referenced_snapshots().collect();
    let (mut kept, mut dropped) = (HashSet::new(), HashSet::new());
    for s in &meta.snapshots {
        let old = s.timestamp_ms < cutoff;
        match old && !named.contains(&s.snapshot_id) {
            true => dropped.insert(s.snapshot_id),
            false => kept.insert(s.snapshot_id),
        };
    }
    (kept, dropped)
}

/// The files the manifest lists `dropped` reach and `kept` do not: the lists, their manifests,
/// and the data and delete files of the manifests' entries (a file the kept snapshots hold
/// live stays). Blocking.
fn unreachable(
    kept: &[String],
    dropped: &[String],
    storage: &StorageOptions,
) -> Result<Vec<(Location, u64)>> {
    let mut manifests: HashMap<String, Vec<(String, u64, bool)>> = HashMap::new();
    let mut reach = |lists: &[String], live_only: bool| -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for list in lists {
            out.insert(list.clone());
            let at = crate::iceberg::located(list, storage)?;
            let entries = match at.read() {
                Ok(bytes) => crate::avro::read_file(&bytes)?.records,
                // A list already gone (an expiry that stopped after its swap).
                Err(_) if !live_only => continue,
                Err(e) => return Err(e.into()),
            };
            for m in entries {
                let path = m
                    .get("manifest_path")
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                out.insert(path.clone());
                if !manifests.contains_key(&path) {
                    let files = match crate::iceberg::located(&path, storage)?.read() {
                        Ok(bytes) => crate::avro::read_file(&bytes)?
                            .records
                            .iter()
                            .map(|e| {
                                let f = e.get("data_file");
                                (
                                    f.get("file_path").as_str().unwrap_or_default().to_owned(),
                                    u64::try_from(
                                        f.get("file_size_in_bytes").as_i64().unwrap_or(0),
                                    )
                                    .unwrap_or(0),
                                    e.get("status").as_i64() != Some(2),
                                )
                            })
                            .collect(),
                        Err(_) if !live_only => Vec::new(),
                        Err(e) => return Err(e.into()),
                    };
                    manifests.insert(path.clone(), files);
                }
                for (file, _, live) in &manifests[&path] {
                    if *live || !live_only {
                        out.insert(file.clone());
                    }
                }
            }
        }
        Ok(out)
    };
    let keep = reach(kept, true)?;
    let gone = reach(dropped, false)?;
    let sizes: HashMap<&str, u64> = manifests
        .values()
        .flatten()
        .map(|(p, b, _)| (p.as_str(), *b))
        .collect();
    let mut out = Vec::new();
    for path in gone.difference(&keep) {
        let bytes = sizes.get(path.as_str()).copied().unwrap_or(0);
        out.push((crate::iceberg::located(path, storage)?, bytes));
    }
    Ok(out)
}
