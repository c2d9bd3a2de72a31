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
    remove_files(&files, &mut stats, dry);
    stats.snapshots = dropped.len() as u64;
    Ok(stats)
}
