//! A Delta table's log: its actions (as the protocol spells them in JSON), a state and how a
//! commit changes it, and the commit itself: the next version's file created only if no other
//! writer created it first. Finding the latest state is [`super::replay`]'s.

use std::collections::BTreeMap;

use pgarrow::io::Location;
use pgarrow::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// The `protocol` action: the versions and features a reader and a writer need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Protocol {
    pub(crate) min_reader_version: i32,
    pub(crate) min_writer_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reader_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) writer_features: Option<Vec<String>>,
}

/// The `format` of a `metaData` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Format {
    pub(crate) provider: String,
    #[serde(default)]
    pub(crate) options: BTreeMap<String, String>,
}

/// The `metaData` action: the table's ID, schema, partition columns and properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metadata {
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) format: Format,
    pub(crate) schema_string: String,
    pub(crate) partition_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created_time: Option<i64>,
    #[serde(default)]
    pub(crate) configuration: BTreeMap<String, String>,
}

/// A deletion vector's descriptor, carried as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletionVector {
    pub(crate) storage_type: String,
    pub(crate) path_or_inline_dv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) offset: Option<i32>,
    pub(crate) size_in_bytes: i32,
    pub(crate) cardinality: i64,
}

/// The `add` action: a data file of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Add {
    /// Relative to the table's root, URI-encoded ([`uri_path`]), or absolute.
    pub(crate) path: String,
    pub(crate) partition_values: BTreeMap<String, Option<String>>,
    pub(crate) size: i64,
    pub(crate) modification_time: i64,
    pub(crate) data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tags: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion_vector: Option<DeletionVector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_row_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_row_commit_version: Option<i64>,
}

/// The `remove` action: a data file no longer in the table (a tombstone until it expires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Remove {
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion_timestamp: Option<i64>,
    pub(crate) data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) partition_values: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deletion_vector: Option<DeletionVector>,
}

/// The `txn` action: an application's progress, committed with its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Txn {
    pub(crate) app_id: String,
    pub(crate) version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_updated: Option<i64>,
}

/// One action of a commit (the kinds pgarrow reads; others are read past).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Action {
    CommitInfo(serde_json::Value),
    Protocol(Protocol),
    MetaData(Metadata),
    Add(Add),
    Remove(Remove),
    Txn(Txn),
}

/// A file's key in the table's state: its path and its deletion vector's ID.
fn file_key(path: &str, dv: Option<&DeletionVector>) -> (String, String) {
    let dv = dv.map_or_else(String::new, |d| {
        format!("{}{}@{:?}", d.storage_type, d.path_or_inline_dv, d.offset)
    });
    (path.to_owned(), dv)
}

/// A table's state at one version.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) version: i64,
    pub(crate) protocol: Protocol,
    pub(crate) metadata: Metadata,
    /// The live files, by path and deletion vector.
    pub(crate) files: BTreeMap<(String, String), Add>,
    /// Files removed (tombstones, kept in checkpoints until they expire).
    pub(crate) removed: BTreeMap<(String, String), Remove>,
    pub(crate) txns: BTreeMap<String, Txn>,
}

impl Snapshot {
    /// The state after `actions` (one commit, `version`), from `prior` (none: a new table).
    pub(crate) fn apply(
        prior: Option<Snapshot>,
        version: i64,
        actions: Vec<Action>,
        log: &Location,
    ) -> Result<Snapshot> {
        let mut protocol = prior.as_ref().map(|s| s.protocol.clone());
        let mut metadata = prior.as_ref().map(|s| s.metadata.clone());
        let (mut files, mut removed, mut txns) = match prior {
            Some(s) => (s.files, s.removed, s.txns),
            None => Default::default(),
        };
        for action in actions {
            match action {
                Action::Protocol(p) => protocol = Some(p),
                Action::MetaData(m) => metadata = Some(m),
                Action::Add(a) => {
                    let key = file_key(&a.path, a.deletion_vector.as_ref());
                    removed.remove(&key);
                    files.insert(key, a);
                }
                Action::Remove(r) => {
                    let key = file_key(&r.path, r.deletion_vector.as_ref());
                    files.remove(&key);
                    removed.insert(key, r);
                }
                Action::Txn(t) => {
                    txns.insert(t.app_id.clone(), t);
                }
                Action::CommitInfo(_) => {}
            }
        }
        let broken = |what: &str| -> Error {
            ErrorKind::InvalidInput(format!(
                "Delta table log {log}: version {version} has no {what} before it: not a Delta \
                 table pgarrow can read"
            ))
            .into()
        };
        Ok(Snapshot {
            version,
            protocol: protocol.ok_or_else(|| broken("protocol"))?,
            metadata: metadata.ok_or_else(|| broken("metaData"))?,
            files,
            removed,
            txns,
        })
    }

    /// The actions a checkpoint of this state holds: the protocol, the metadata, the
    /// transactions, the live files, and the tombstones newer than `expired_before` (ms).
    pub(crate) fn checkpoint_actions(&self, expired_before: i64) -> Vec<Action> {
        let mut out = vec![
            Action::Protocol(self.protocol.clone()),
            Action::MetaData(self.metadata.clone()),
        ];
        out.extend(self.txns.values().cloned().map(Action::Txn));
        out.extend(self.files.values().cloned().map(Action::Add));
        out.extend(
            self.removed
                .values()
                .filter(|r| r.deletion_timestamp.unwrap_or(i64::MAX) >= expired_before)
                .cloned()
                .map(Action::Remove),
        );
        out
    }
}

/// The name of version `v`'s commit.
pub(crate) fn commit_name(v: i64) -> String {
    format!("{v:020}.json")
}

/// Reads commit `version`'s actions.
pub(crate) fn read_commit(log: &Location, version: i64) -> Result<Vec<Action>> {
    let at = log.join(&commit_name(version));
    let bytes = at.read()?;
    parse_commit(&bytes).map_err(|e| {
        ErrorKind::InvalidInput(format!(
            "Delta table log {at}: {e}: not a commit pgarrow can read"
        ))
        .into()
    })
}

/// The actions of a commit file: one JSON object per line; kinds pgarrow does not know are
/// read past.
pub(crate) fn parse_commit(bytes: &[u8]) -> std::result::Result<Vec<Action>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", k + 1))?;
        let known = value.as_object().is_some_and(|o| {
            o.keys().any(|k| {
                matches!(
                    k.as_str(),
                    "commitInfo" | "protocol" | "metaData" | "add" | "remove" | "txn"
                )
            })
        });
        if !known {
            continue;
        }
        let action: Action =
            serde_json::from_value(value).map_err(|e| format!("line {}: {e}", k + 1))?;
        out.push(action);
    }
    Ok(out)
}

/// Creates version `version`'s commit holding `actions`, unless another writer made it first
/// (`false`).
pub(crate) fn commit(log: &Location, version: i64, actions: &[Action]) -> Result<bool> {
    let mut bytes = Vec::new();
    for action in actions {
        serde_json::to_writer(&mut bytes, action)
            .map_err(|e| Error::from(ErrorKind::Internal(format!("a Delta action: {e}"))))?;
        bytes.push(b'\n');
    }
    Ok(log.join(&commit_name(version)).create_new(&bytes)?)
}

/// A relative path as a Delta log spells it: a URI path, each byte outside the unreserved
/// characters (and `/`, `=`) percent-encoded, so that `k=a%2Fb/part.parquet` on disk is
/// `k=a%252Fb/part.parquet` in the log.
pub(crate) fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'=' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_once_more() {
        assert_eq!(
            uri_path("k=a%2Fb/part-0.parquet"),
            "k=a%252Fb/part-0.parquet"
        );
        assert_eq!(
            uri_path("d=2026-01-01/x y.parquet"),
            "d=2026-01-01/x%20y.parquet"
        );
    }
}
