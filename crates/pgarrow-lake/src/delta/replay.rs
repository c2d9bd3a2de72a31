//! A Delta table's latest state: the log listed, its last complete checkpoint read (classic,
//! multi-part or UUID-named V2, with its sidecars; any writer's), then the commits after it
//! replayed. Log compaction files (`x.y.compacted.json`) are known by name and not read: the
//! commits they sum up are read instead, which the protocol leaves to the reader.

use std::collections::BTreeMap;

use pgarrow::io::Location;
use pgarrow::{ErrorKind, Result};

use super::checkpoint;
use super::log::{Snapshot, read_commit};

/// A file of the log directory, as its name says (the protocol's "Delta Table
/// Specification"): anything else there (version checksums `n.crc`, `_last_checkpoint`,
/// another writer's temporary files) is none of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogFile {
    /// `n.json`: commit `n`.
    Commit(i64),
    /// `n.checkpoint.parquet`: a classic checkpoint (V1 spec, or V2 with sidecars).
    Classic(i64),
    /// `n.checkpoint.o.p.parquet`: part `o` of a multi-part checkpoint of `p` parts.
    Part { version: i64, part: u32, total: u32 },
    /// `n.checkpoint.u.json` or `n.checkpoint.u.parquet`, `u` a UUID: a V2 checkpoint.
    Uuid { version: i64, json: bool },
    /// `x.y.compacted.json`: the commits `x` to `y` reconciled into one file.
    Compaction { from: i64, to: i64 },
}

/// A version as log names spell it: 20 digits.
fn version_of(text: &str) -> Option<i64> {
    (text.len() == 20 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Whether `text` is a UUID in its canonical text form (8-4-4-4-12 hex digits).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What the log file `name` is, if it is one of [`LogFile`]'s.
pub(crate) fn log_file(name: &str) -> Option<LogFile> {
    let parts: Vec<&str> = name.split('.').collect();
    let version = version_of(parts.first()?)?;
    Some(match parts[1..] {
        ["json"] => LogFile::Commit(version),
        ["checkpoint", "parquet"] => LogFile::Classic(version),
        ["checkpoint", part, total, "parquet"]
            if part
                .bytes()
                .chain(total.bytes())
                .all(|b| b.is_ascii_digit()) =>
        {
            let (part, total) = (part.parse().ok()?, total.parse().ok()?);
            if part == 0 || part > total {
                return None;
            }
            LogFile::Part {
                version,
                part,
                total,
            }
        }
        ["checkpoint", uuid, kind @ ("json" | "parquet")] if is_uuid(uuid) => LogFile::Uuid {
            version,
            json: kind == "json",
        },
        [to, "compacted", "json"] => {
            let to = version_of(to)?;
            if to <= version {
                return None;
            }
            LogFile::Compaction { from: version, to }
        }
        _ => return None,
    })
}

/// What the log directory holds: the commits' versions, and the complete checkpoints (a
/// version and its files' names: one, or a multi-part checkpoint's parts in order), every one
/// of every version, oldest version first and, within a version, the one to read last. Log
/// compaction files are not listed (not read).
pub(crate) struct Listing {
    pub(crate) commits: Vec<i64>,
    pub(crate) checkpoints: Vec<(i64, Vec<String>)>,
}

/// The name of the checkpoint `_last_checkpoint` points at by name: a V2 checkpoint's, which
/// it may carry as `v2Checkpoint.path` (delta-spark writes it so), if any.
fn pointed_at(log: &Location, names: &[String]) -> Result<Option<String>> {
    if !names.iter().any(|n| n == "_last_checkpoint") {
        return Ok(None);
    }
    let bytes = log.join("_last_checkpoint").read()?;
    // Only a hint (the listing finds every checkpoint, and any complete one of a version
    // holds the same state): one that is not JSON changes nothing read.
    let pointer: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    Ok(pointer
        .as_ref()
        .and_then(|p| p.get("v2Checkpoint")?.get("path")?.as_str())
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned()))
}

/// The log at `log`, listed.
///
/// # Errors
/// Storage errors.
pub(crate) fn list(log: &Location) -> Result<Listing> {
    let names: Vec<String> = log.list_names()?.into_iter().map(|(n, _)| n).collect();
    let pointed = pointed_at(log, &names)?;
    let mut commits = Vec::new();
    // ((version, rank), names): a higher rank is read first among a version's.
    let mut found: Vec<((i64, u8), Vec<String>)> = Vec::new();
    // (version, parts) -> the parts' names by number
    let mut parts: BTreeMap<(i64, u32), BTreeMap<u32, String>> = BTreeMap::new();
    for name in names {
        match log_file(&name) {
            Some(LogFile::Commit(v)) => commits.push(v),
            Some(LogFile::Classic(v)) => found.push(((v, 1), vec![name])),
            Some(LogFile::Uuid { version, .. }) => {
                // Any complete checkpoint of a version may be read; the one
                // `_last_checkpoint` names first, then a V2 one (written whole, as a
                // classic one is; a multi-part one is not and comes last).
                let rank = if pointed.as_deref() == Some(&name) {
                    3
                } else {
                    2
                };
                found.push(((version, rank), vec![name]));
            }
            Some(LogFile::Part {
                version,
                part,
                total,
            }) => {
                parts
                    .entry((version, total))
                    .or_default()
                    .insert(part, name);
            }
            // Compactions sum up commits that are read one by one instead.
            Some(LogFile::Compaction { .. }) | None => {}
        }
    }
    // A multi-part checkpoint with a part missing is not one (a writer may still be at it).
    for ((version, total), names) in parts {
        if names.len() == total as usize {
            found.push(((version, 0), names.into_values().collect()));
        }
    }
    commits.sort_unstable();
    found.sort();
    Ok(Listing {
        commits,
        checkpoints: found
            .into_iter()
            .map(|((v, _), names)| (v, names))
            .collect(),
    })
}

/// The table's latest state: its last complete checkpoint and the commits after it; `None`
/// when the log has no commit (no table).
///
/// # Errors
/// A log with a gap (a commit missing after the checkpoint), a commit or checkpoint pgarrow
/// cannot read (a V2 checkpoint without its `checkpointMetadata`, a sidecar missing),
/// storage errors.
pub(crate) fn load(log: &Location) -> Result<Option<Snapshot>> {
    let listing = list(log)?;
    let Some(&latest) = listing
        .commits
        .last()
        .or(listing.checkpoints.last().map(|(v, _)| v))
    else {
        return Ok(None);
    };
    let checkpoint = listing.checkpoints.iter().rev().find(|(v, _)| *v <= latest);
    let (mut state, first) = match checkpoint {
        Some((v, names)) => {
            let actions = checkpoint::read_checkpoint(*v, names, log)?;
            (Some(Snapshot::apply(None, *v, actions, log)?), v + 1)
        }
        None => (None, 0),
    };
    for version in first..=latest {
        if listing.commits.binary_search(&version).is_err() {
            return Err(ErrorKind::InvalidInput(format!(
                "Delta table log {log}: commit {version} is missing (the log was cleaned up past \
                 its last checkpoint pgarrow reads: classic, multi-part and UUID-named V2 \
                 checkpoints)"
            ))
            .into());
        }
        let actions = read_commit(log, version)?;
        state = Some(Snapshot::apply(state, version, actions, log)?);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::log::{Action, Add, Format, Metadata, Protocol, Remove, commit, commit_name};

    #[test]
    fn commits_replay_into_a_state() {
        let dir = tempfile::tempdir().unwrap();
        let log = Location::from(dir.path()).join("_delta_log");
        assert!(load(&log).unwrap().is_none());
        let add = |p: &str| {
            Action::Add(Add {
                path: p.into(),
                partition_values: BTreeMap::new(),
                size: 1,
                modification_time: 0,
                data_change: true,
                stats: None,
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            })
        };
        let first = vec![
            Action::Protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                reader_features: None,
                writer_features: None,
            }),
            Action::MetaData(Metadata {
                id: "t".into(),
                name: None,
                description: None,
                format: Format {
                    provider: "parquet".into(),
                    options: BTreeMap::new(),
                },
                schema_string: "{}".into(),
                partition_columns: vec![],
                created_time: None,
                configuration: BTreeMap::new(),
            }),
            add("a.parquet"),
        ];
        assert!(commit(&log, 0, &first).unwrap());
        assert!(!commit(&log, 0, &first).unwrap(), "version 0 is taken");
        let second = vec![
            Action::Remove(Remove {
                path: "a.parquet".into(),
                deletion_timestamp: Some(5),
                data_change: true,
                extended_file_metadata: None,
                partition_values: None,
                size: None,
                deletion_vector: None,
            }),
            add("b.parquet"),
        ];
        assert!(commit(&log, 1, &second).unwrap());
        // Unknown actions and fields are read past.
        log.join(&commit_name(2))
            .create_new(b"{\"domainMetadata\":{\"domain\":\"x\"}}\n{\"add\":{\"path\":\"c.parquet\",\"partitionValues\":{},\"size\":2,\"modificationTime\":0,\"dataChange\":true,\"future\":1}}\n")
            .unwrap();
        let state = load(&log).unwrap().unwrap();
        assert_eq!(state.version, 2);
        let live: Vec<&str> = state.files.values().map(|a| a.path.as_str()).collect();
        assert_eq!(live, ["b.parquet", "c.parquet"]);
        assert_eq!(state.removed.len(), 1);
        // A gap is refused.
        std::fs::remove_file(dir.path().join("_delta_log").join(commit_name(1))).unwrap();
        let e = load(&log).unwrap_err().to_string();
        assert!(e.contains("commit 1 is missing"), "{e}");
    }

    #[test]
    fn log_files_are_known_by_name() {
        let uuid = "80a083e8-7026-4e79-81be-64bd76c43a11";
        let v = "00000000000000000010";
        for (name, want) in [
            (format!("{v}.json"), Some(LogFile::Commit(10))),
            (
                format!("{v}.checkpoint.parquet"),
                Some(LogFile::Classic(10)),
            ),
            (
                format!("{v}.checkpoint.0000000002.0000000003.parquet"),
                Some(LogFile::Part {
                    version: 10,
                    part: 2,
                    total: 3,
                }),
            ),
            (
                format!("{v}.checkpoint.{uuid}.json"),
                Some(LogFile::Uuid {
                    version: 10,
                    json: true,
                }),
            ),
            (
                format!("{v}.checkpoint.{uuid}.parquet"),
                Some(LogFile::Uuid {
                    version: 10,
                    json: false,
                }),
            ),
            (
                format!("00000000000000000004.{v}.compacted.json"),
                Some(LogFile::Compaction { from: 4, to: 10 }),
            ),
            // Not log files pgarrow reads: a checksum, the pointer, a staged or temporary
            // file, a part past its count, a compaction that ends before it starts, a short
            // version, a name with no UUID where one goes.
            (format!("{v}.crc"), None),
            ("_last_checkpoint".to_owned(), None),
            (format!("{v}.{uuid}.json"), None),
            (format!(".{v}.json.tmp"), None),
            (format!("{v}.json.tmp"), None),
            (
                format!("{v}.checkpoint.0000000004.0000000003.parquet"),
                None,
            ),
            (format!("{v}.00000000000000000004.compacted.json"), None),
            ("10.json".to_owned(), None),
            (format!("{v}.checkpoint.not-a-uuid.json"), None),
            (format!("{v}.checkpoint.{uuid}.avro"), None),
        ] {
            assert_eq!(log_file(&name), want, "{name}");
        }
    }

    #[test]
    fn a_listing_holds_every_complete_checkpoint_the_one_to_read_last() {
        let dir = tempfile::tempdir().unwrap();
        let log = Location::from(dir.path());
        let uuid = |k: u8| format!("80a083e8-7026-4e79-81be-64bd76c43a1{k}");
        let v = |n: i64| format!("{n:020}");
        let names = [
            format!("{}.json", v(0)),
            format!("{}.json", v(1)),
            format!("{}.json", v(2)),
            format!("{}.json", v(3)),
            format!("{}.crc", v(3)),
            format!("{}.{}.compacted.json", v(0), v(2)),
            format!("{}.checkpoint.0000000001.0000000002.parquet", v(1)),
            format!("{}.checkpoint.0000000002.0000000002.parquet", v(1)),
            format!("{}.checkpoint.parquet", v(2)),
            format!("{}.checkpoint.{}.json", v(2), uuid(1)),
            format!("{}.checkpoint.{}.parquet", v(2), uuid(2)),
            // A multi-part checkpoint a part short is none.
            format!("{}.checkpoint.0000000001.0000000002.parquet", v(3)),
        ];
        for name in &names {
            assert!(log.join(name).create_new(b"").unwrap());
        }
        let listing = list(&log).unwrap();
        assert_eq!(listing.commits, [0, 1, 2, 3]);
        let parts = vec![names[6].clone(), names[7].clone()];
        // Of version 2: a UUID-named one is read before the classic one.
        assert_eq!(
            listing.checkpoints,
            [
                (1, parts),
                (2, vec![names[8].clone()]),
                (2, vec![names[9].clone()]),
                (2, vec![names[10].clone()]),
            ]
        );
        // The one `_last_checkpoint` names (V2 info, by its file name) is read first.
        let pointer = serde_json::json!({"version": 2, "size": 3, "v2Checkpoint": {
            "path": names[9], "sizeInBytes": 0, "modificationTime": 0}});
        assert!(
            log.join("_last_checkpoint")
                .create_new(pointer.to_string().as_bytes())
                .unwrap()
        );
        let listing = list(&log).unwrap();
        assert_eq!(listing.checkpoints.last().unwrap().1, [names[9].clone()]);
        assert_eq!(listing.checkpoints.len(), 4);
    }
}
