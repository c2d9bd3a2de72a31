//! Expiry of a Delta table: the log's versions older than the retention and before its newest
//! checkpoint (which holds the state they led to), and the files that `remove` actions older
//! than the retention tombstoned and no live `add` names (Delta's VACUUM). Nothing is
//! committed: the live files and the log from the checkpoint on stay as they are, so a writer
//! beside it is never disturbed.

use std::collections::HashSet;

use pgarrow::io::Location;
use pgarrow::{Error, Result};

use super::log::{Action, commit_name, read_commit};
use super::{DeltaTarget, blocking, dv, read, replay};
use crate::retention::{ExpireOptions, ExpireStats, remove_files};

/// Expires the table at `target`.
///
/// # Errors
/// No table there; a log or deletion vector pgarrow cannot read; storage errors.
pub(crate) async fn expire(target: &DeltaTarget, options: &ExpireOptions) -> Result<ExpireStats> {
    let (target, options) = (target.clone(), options.clone());
    blocking(move || expire_blocking(&target, &options)).await
}

fn expire_blocking(target: &DeltaTarget, options: &ExpireOptions) -> Result<ExpireStats> {
    let root = Location::parse(&target.location, &target.storage)?;
    let log = root.join("_delta_log");
    let Some(state) = replay::load(&log)? else {
        return Err(Error::usage(format!(
            "there is no Delta table at {}",
            target.location
        )));
    };
    let cutoff = options.cutoff_ms();
    let dry = options.dry_run;
    let mut stats = ExpireStats::default();
    let path_of = |path: &str| -> Result<Location> {
        let path = read::uri_decode(path);
        Ok(match path.contains("://") {
            true => Location::parse(&path, &target.storage)?,
            false => root.join_path(&path),
        })
    };
    // What the table holds now: never removed.
    let mut live: HashSet<String> = HashSet::new();
    for add in state.files.values() {
        live.insert(path_of(&add.path)?.to_string());
        if let Some(v) = &add.deletion_vector
            && let Some(f) = dv::file_of(v, &root, &target.storage)?
        {
            live.insert(f.to_string());
        }
    }
    let mut gone: Vec<(Location, u64)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for remove in state.removed.values() {
        if remove.deletion_timestamp.unwrap_or(0) >= cutoff {
            continue;
        }
        let mut files = vec![(
            path_of(&remove.path)?,
            u64::try_from(remove.size.unwrap_or(0)).unwrap_or(0),
        )];
        if let Some(v) = &remove.deletion_vector
            && let Some(f) = dv::file_of(v, &root, &target.storage)?
        {
            files.push((f, 0));
        }
        for (f, bytes) in files {
            let shown = f.to_string();
            if !live.contains(&shown) && seen.insert(shown) {
                gone.push((f, bytes));
            }
        }
    }
    remove_files(&gone, &mut stats, dry);
    // The log before its newest checkpoint, oldest first, while older than the retention:
    // every reader starts from that checkpoint (written now for the current version when the
    // newest is older: the same state whoever writes it; a dry run counts as if it were).
    let listing = replay::list(&log)?;
    let newest = listing
        .checkpoints
        .iter()
        .rev()
        .map(|(v, _)| *v)
        .find(|v| *v <= state.version);
    let checkpoint = match newest {
        Some(v) if v == state.version => v,
        _ if dry => state.version,
        _ => {
            super::commit::write_checkpoint(&log, &state)?;
            state.version
        }
    };
    let mut dropped = Vec::new();
    for &version in listing.commits.iter().filter(|v| **v < checkpoint) {
        let time = read_commit(&log, version)?.iter().find_map(|a| match a {
            Action::CommitInfo(info) => info["timestamp"].as_i64(),
            _ => None,
        });
        match time {
            Some(t) if t < cutoff => dropped.push(version),
            _ => break,
        }
    }
    let Some(&last) = dropped.last() else {
        return Ok(stats);
    };
    let mut files: Vec<(Location, u64)> = dropped
        .iter()
        .map(|v| (log.join(&commit_name(*v)), 0))
        .collect();
    for (version, names) in &listing.checkpoints {
        if *version <= last {
            files.extend(names.iter().map(|n| (log.join(n), 0)));
        }
    }
    files.extend(sidecars_gone(&log, &listing.checkpoints, last)?);
    remove_files(&files, &mut stats, dry);
    stats.snapshots = dropped.len() as u64;
    Ok(stats)
}

/// The sidecar files (V2 checkpoints', another writer's) that the checkpoints up to `last`
/// name and no later checkpoint does: they go with those checkpoints. A sidecar no checkpoint
/// names yet (a writer's checkpoint being written beside the expiry) stays.
///
/// # Errors
/// A checkpoint that cannot be read; storage errors.
fn sidecars_gone(
    log: &Location,
    checkpoints: &[(i64, Vec<String>)],
    last: i64,
) -> Result<Vec<(Location, u64)>> {
    let dir = log.join("_sidecars");
    if dir.list_names()?.is_empty() {
        return Ok(Vec::new());
    }
    let (mut theirs, mut kept) = (HashSet::new(), HashSet::new());
    for (version, names) in checkpoints {
        let named = super::checkpoint::sidecars_named(*version, names, log)?;
        match *version <= last {
            true => theirs.extend(named),
            false => kept.extend(named),
        }
    }
    let mut gone: Vec<String> = theirs.difference(&kept).cloned().collect();
    gone.sort();
    Ok(gone.into_iter().map(|n| (dir.join(&n), 0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::log::{Add, parse_commit};

    fn add(path: &str) -> Action {
        parse_commit(
            format!(
                "{{\"add\":{{\"path\":\"{path}\",\"partitionValues\":{{}},\"size\":1,\
                 \"modificationTime\":1,\"dataChange\":true}}}}"
            )
            .as_bytes(),
        )
        .unwrap()
        .remove(0)
    }

    /// Another writer's V2 checkpoints keep their files' actions in sidecars: expiry removes
    /// the sidecars only the checkpoints it removes name, never one a kept checkpoint names or
    /// one no checkpoint names yet (a checkpoint being written beside it), and the table reads
    /// the same after it.
    #[test]
    fn the_sidecars_of_expired_checkpoints_go_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_owned();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir_all(log.join("_sidecars")).unwrap();
        let head = "{\"commitInfo\":{\"timestamp\":1}}\n\
            {\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,\
            \"readerFeatures\":[\"v2Checkpoint\"],\"writerFeatures\":[\"v2Checkpoint\"]}}\n\
            {\"metaData\":{\"id\":\"t\",\"format\":{\"provider\":\"parquet\",\"options\":{}},\
            \"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[]}\",\
            \"partitionColumns\":[],\"configuration\":{}}}\n";
        let commit = |v: i64, path: &str| {
            let line = format!(
                "{{\"add\":{{\"path\":\"{path}\",\"partitionValues\":{{}},\"size\":1,\
                 \"modificationTime\":1,\"dataChange\":true}}}}\n"
            );
            let text = match v {
                0 => format!("{head}{line}"),
                _ => format!("{{\"commitInfo\":{{\"timestamp\":{}}}}}\n{line}", v + 1),
            };
            std::fs::write(log.join(commit_name(v)), text).unwrap();
        };
        for (v, f) in [(0, "a.parquet"), (1, "b.parquet"), (2, "c.parquet")] {
            commit(v, f);
        }
        let sidecar = |name: &str, paths: &[&str]| {
            let actions: Vec<Action> = paths.iter().map(|p| add(p)).collect();
            let bytes = crate::delta::checkpoint::write(&actions).unwrap();
            std::fs::write(log.join("_sidecars").join(name), bytes).unwrap();
        };
        sidecar("old.parquet", &["a.parquet"]);
        sidecar("shared.parquet", &["b.parquet"]);
        sidecar("new.parquet", &["a.parquet", "c.parquet"]);
        sidecar("stray.parquet", &["x.parquet"]);
        let protocol_and_metadata: String =
            head.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let checkpoint = |v: i64, sidecars: &[&str]| {
            let mut text = format!("{{\"checkpointMetadata\":{{\"version\":{v}}}}}\n");
            text.push_str(&protocol_and_metadata);
            for s in sidecars {
                text.push_str(&format!(
                    "{{\"sidecar\":{{\"path\":\"{s}\",\"sizeInBytes\":1,\"modificationTime\":1}}}}\n"
                ));
            }
            let name = format!("{v:020}.checkpoint.{}.json", crate::common::new_uuid());
            std::fs::write(log.join(name), text).unwrap();
        };
        checkpoint(1, &["old.parquet", "shared.parquet"]);
        checkpoint(2, &["shared.parquet", "new.parquet"]);

        let location = Location::parse(&root, &Default::default()).unwrap();
        let files = |l: &Location| -> Vec<String> {
            let state = replay::load(&l.join("_delta_log")).unwrap().unwrap();
            let mut f: Vec<String> = state.files.values().map(|a: &Add| a.path.clone()).collect();
            f.sort();
            f
        };
        assert_eq!(files(&location), ["a.parquet", "b.parquet", "c.parquet"]);
        let target = DeltaTarget::new(root.clone());
        let options = ExpireOptions::new(std::time::Duration::ZERO);
        let stats = expire_blocking(&target, &options).unwrap();
        assert_eq!(stats.snapshots, 2, "{stats:?}");
        let mut left: Vec<String> = std::fs::read_dir(log.join("_sidecars"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["new.parquet", "shared.parquet", "stray.parquet"]);
        assert_eq!(files(&location), ["a.parquet", "b.parquet", "c.parquet"]);
    }
}
