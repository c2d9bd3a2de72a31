//! Delta's one commit sequence, which every writer of pgarrow's goes through (an export, an
//! incremental run, a mirror's commit, `apply`, compaction): the version after the table read
//! is written with its actions only if no other writer wrote it first (a hard link locally, a
//! conditional put in object stores), the state after it is known before it is written (so
//! nothing can fail once it has landed), and every `delta.checkpointInterval` versions the
//! writer of the version also writes its checkpoint. A version another writer took is
//! [`None`]: the caller reads the table again and decides whether its change still fits.

use pgarrow::Result;
use pgarrow::io::Location;

use super::log::{self, Action, Snapshot};
use super::{checkpoint, now_ms};
use crate::cleanup::blocking;

/// A Delta table's log, as a writer commits to it.
pub(crate) struct DeltaLog<'a> {
    /// The table's `_delta_log`.
    pub(crate) log: &'a Location,
    /// The table, as errors and warnings name it.
    pub(crate) name: &'a str,
    /// Versions between checkpoints, unless the table sets `delta.checkpointInterval`.
    pub(crate) checkpoint_interval: u64,
}

/// A version that landed.
pub(crate) struct Landed {
    /// Its number.
    pub(crate) version: i64,
    /// The table after it.
    pub(crate) state: Snapshot,
    /// Whether its checkpoint was written.
    pub(crate) checkpointed: bool,
}

impl DeltaLog<'_> {
    /// Commits `actions` as the version after `base` (version 0 of a new table); `None` when
    /// another writer took that version, with nothing written. A checkpoint that cannot be
    /// written leaves the table correct (readers replay the commits): it is logged, and
    /// [`Landed::checkpointed`] says so.
    ///
    /// # Errors
    /// The log cannot be written; a new table's actions without a protocol or metadata.
    pub(crate) async fn commit(
        &self,
        base: Option<&Snapshot>,
        actions: Vec<Action>,
    ) -> Result<Option<Landed>> {
        let version = base.map_or(0, |s| s.version + 1);
        let state = Snapshot::apply(base.cloned(), version, actions.clone(), self.log)?;
        let committed = {
            let log = self.log.clone();
            blocking(move || log::commit(&log, version, &actions)).await
        };
        match committed {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(e.context(format!("committing to Delta table {}", self.name))),
        }
        let checkpointed = self.checkpoint(&state).await;
        Ok(Some(Landed {
            version,
            state,
            checkpointed,
        }))
    }

    /// Writes the checkpoint of `state` when its version falls on the table's interval;
    /// whether it did.
    async fn checkpoint(&self, state: &Snapshot) -> bool {
        let interval = state
            .metadata
            .configuration
            .get("delta.checkpointInterval")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(self.checkpoint_interval);
        let version = state.version;
        if interval == 0 || version <= 0 || !(version as u64).is_multiple_of(interval) {
            return false;
        }
        let (log, state) = (self.log.clone(), state.clone());
        match blocking(move || write_checkpoint(&log, &state)).await {
            Ok(()) => true,
            Err(e) => {
                ::log::warn!(
                    "Delta table {}: no checkpoint at version {version} (the commit stands; \
                     readers replay the log): {e}",
                    self.name
                );
                false
            }
        }
    }
}

/// Writes the checkpoint of `state` and points `_last_checkpoint` at it.
pub(crate) fn write_checkpoint(log: &Location, state: &Snapshot) -> Result<()> {
    let retention = state
        .metadata
        .configuration
        .get("delta.deletedFileRetentionDuration")
        .and_then(|v| interval_ms(v))
        .unwrap_or(7 * 86_400_000);
    let actions = state.checkpoint_actions(now_ms() - retention);
    let adds = actions
        .iter()
        .filter(|a| matches!(a, Action::Add(_)))
        .count();
    let bytes = checkpoint::write(&actions)?;
    let name = format!("{:020}.checkpoint.parquet", state.version);
    // Another writer's checkpoint of the same version holds the same state.
    log.join(&name).create_new(&bytes)?;
    let last = log.join("_last_checkpoint");
    let newer = last
        .read()
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("version")?.as_i64())
        .is_some_and(|v| v > state.version);
    if !newer {
        let pointer = serde_json::json!({
            "version": state.version,
            "size": actions.len(),
            "sizeInBytes": bytes.len(),
            "numOfAddFiles": adds,
        });
        last.write_atomically(pointer.to_string().as_bytes())?;
    }
    Ok(())
}

/// `interval 7 days` (and hours, minutes, weeks) in milliseconds.
fn interval_ms(text: &str) -> Option<i64> {
    let mut words = text.split_whitespace();
    if words.next()? != "interval" {
        return None;
    }
    let n: i64 = words.next()?.parse().ok()?;
    let unit = match words.next()?.trim_end_matches('s') {
        "week" => 7 * 86_400_000,
        "day" => 86_400_000,
        "hour" => 3_600_000,
        "minute" => 60_000,
        "second" => 1000,
        _ => return None,
    };
    n.checked_mul(unit)
}
