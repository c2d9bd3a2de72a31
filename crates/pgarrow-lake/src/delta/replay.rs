//! A Delta table's latest state: the log listed, its last complete checkpoint read (classic or
//! multi-part, any writer's), then the commits after it replayed.

use std::collections::BTreeMap;

use pgarrow::io::Location;
use pgarrow::{ErrorKind, Result};

use super::checkpoint;
use super::log::{Snapshot, read_commit};

/// What the log directory holds: the commits' versions, and the complete checkpoints (a
/// version and its parts' names).
pub(crate) struct Listing {
    pub(crate) commits: Vec<i64>,
    pub(crate) checkpoints: Vec<(i64, Vec<String>)>,
}

pub(crate) fn list(log: &Location) -> Result<Listing> {
    let mut commits = Vec::new();
    // version -> (parts expected, names)
    let mut parts: BTreeMap<(i64, u32), Vec<String>> = BTreeMap::new();
    for (name, _) in log.list_names()? {
        let Some((version, rest)) = name.split_once('.') else {
            continue;
        };
        if version.len() != 20 || !version.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(version) = version.parse::<i64>() else {
            continue;
        };
        match rest.split('.').collect::<Vec<_>>()[..] {
            ["json"] => commits.push(version),
            ["checkpoint", "parquet"] => parts.entry((version, 1)).or_default().push(name),
            ["checkpoint", part, total, "parquet"] => {
                if let (Ok(_), Ok(total)) = (part.parse::<u32>(), total.parse::<u32>()) {
                    parts.entry((version, total)).or_default().push(name);
                }
            }
            // UUID-named (V2) checkpoints and anything else: read past; the commits still
            // hold the state unless they were cleaned up, which `load` then says.
            _ => {}
        }
    }
    commits.sort_unstable();
    let mut checkpoints: Vec<(i64, Vec<String>)> = parts
        .into_iter()
        .filter(|((_, total), names)| names.len() == *total as usize)
        .map(|((v, _), mut names)| {
            names.sort();
            (v, names)
        })
        .collect();
    checkpoints.sort_by_key(|(v, _)| *v);
    Ok(Listing {
        commits,
        checkpoints,
    })
}

/// The table's latest state: its last complete checkpoint and the commits after it; `None`
/// when the log has no commit (no table).
///
/// # Errors
/// A log with a gap (a commit missing after the checkpoint), a commit or checkpoint pgarrow
/// cannot read, storage errors.
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
            let mut actions = Vec::new();
            for name in names {
                actions.extend(checkpoint::read(&log.join(name), log)?);
            }
            (Some(Snapshot::apply(None, *v, actions, log)?), v + 1)
        }
        None => (None, 0),
    };
    for version in first..=latest {
        if listing.commits.binary_search(&version).is_err() {
            return Err(ErrorKind::InvalidInput(format!(
                "Delta table log {log}: commit {version} is missing (the log was cleaned up past \
                 its last checkpoint pgarrow reads: classic and multi-part checkpoints)"
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
}
