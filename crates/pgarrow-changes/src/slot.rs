//! The hand-off to logical replication: a slot created on a replication connection exports its
//! snapshot, and an export read in that snapshot ends exactly where the slot's changes begin.
//!
//! [`ReplicationSlot::create`] opens a replication connection (`replication=database`), runs
//! `CREATE_REPLICATION_SLOT name LOGICAL plugin EXPORT_SNAPSHOT`, and keeps the connection open
//! and idle: the exported snapshot lives as long as it does. An export that imports it
//! ([`PartitionOptions::with_import_snapshot_at`](pgarrow::partition::PartitionOptions::with_import_snapshot_at),
//! one connection or several) sees every transaction committed before the slot's consistent
//! point and none after; a consumer streaming from the slot then gets every change after the
//! export, none of those before, none twice. [`ReplicationSlot::release`] closes the
//! connection (the snapshot ends; the slot stays, holding WAL until a consumer reads it).

use serde::Serialize;

use pgarrow::protocol::{Config, Connection, quote_ident};
use pgarrow::{Error, ErrorKind, Result};

/// A logical replication slot just created, with its snapshot held open.
#[derive(Debug)]
pub struct ReplicationSlot {
    conn: Connection,
    info: SlotInfo,
}

/// What `CREATE_REPLICATION_SLOT` answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SlotInfo {
    /// The slot's name.
    pub slot_name: String,
    /// The WAL position its changes start after (the snapshot's place in the WAL).
    pub consistent_point: String,
    /// The exported snapshot (`SET TRANSACTION SNAPSHOT`), valid while the slot's connection
    /// stays open and idle.
    pub snapshot_name: String,
    /// The output plugin (`pgoutput`, `test_decoding`, `wal2json`, ...).
    pub output_plugin: String,
}

impl ReplicationSlot {
    /// Creates logical slot `name` with output plugin `plugin` on a replication connection
    /// made from `config` (as the same role: it needs the REPLICATION attribute), and holds
    /// its snapshot.
    ///
    /// # Errors
    /// A slot name PostgreSQL would refuse; a role without REPLICATION; a server whose
    /// `wal_level` is not `logical`; a slot of that name that exists: each said so.
    pub async fn create(config: &Config, name: &str, plugin: &str) -> Result<ReplicationSlot> {
        Self::create_with(config, name, plugin, false).await
    }

    /// As [`create`](Self::create); with `failover`, a failover slot (PostgreSQL 17): the
    /// server synchronizes it to standbys that `sync_replication_slots`, so that the slot, and
    /// a mirror following it, go on after a failover to one of them.
    ///
    /// # Errors
    /// As [`create`](Self::create); `failover` on a server before PostgreSQL 17.
    pub async fn create_with(
        config: &Config,
        name: &str,
        plugin: &str,
        failover: bool,
    ) -> Result<ReplicationSlot> {
        Self::make(config, name, plugin, failover, false).await
    }

    /// As [`create`](Self::create), a temporary slot: the server drops it when its connection
    /// closes ([`release`](Self::release), or the process ending), so it holds no WAL past
    /// the snapshot's use. For reading a table again in a snapshot with a known place in the
    /// WAL, beside a slot that goes on.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn create_temporary(
        config: &Config,
        name: &str,
        plugin: &str,
    ) -> Result<ReplicationSlot> {
        Self::make(config, name, plugin, false, true).await
    }

    async fn make(
        config: &Config,
        name: &str,
        plugin: &str,
        failover: bool,
        temporary: bool,
    ) -> Result<ReplicationSlot> {
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::usage(format!(
                "replication slot name {name:?}: PostgreSQL takes 1 to 63 lower-case letters, \
                 digits and underscores"
            )));
        }
        let mut config = config.clone();
        config.replication = true;
        // A walsender runs no transaction of its own to make read-only.
        config.read_only = false;
        let mut conn = Connection::connect(&config).await.map_err(|e| {
            let hint = match e.as_db_error().map(|d| d.code.as_str()) {
                Some("42501" | "28000") => {
                    " (a replication connection needs a role with the REPLICATION attribute: \
                     ALTER ROLE ... REPLICATION, and a pg_hba.conf line that admits it)"
                }
                _ => "",
            };
            Error::from(ErrorKind::Connect(e))
                .context(format!("cannot open a replication connection{hint}"))
        })?;
        let sql = match failover {
            false => format!(
                "CREATE_REPLICATION_SLOT {}{} LOGICAL {} EXPORT_SNAPSHOT",
                quote_ident(name),
                if temporary { " TEMPORARY" } else { "" },
                quote_ident(plugin)
            ),
            true => {
                let version = conn.server_version_num();
                if version < 170_000 {
                    let _ = conn.close().await;
                    return Err(Error::usage(format!(
                        "failover slots need PostgreSQL 17 or later; the server is {}.{}: leave \
                         out --failover",
                        version / 10_000,
                        version % 10_000
                    )));
                }
                format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL {} (SNAPSHOT 'export', FAILOVER true)",
                    quote_ident(name),
                    quote_ident(plugin)
                )
            }
        };
        let rows = match conn.simple_query(&sql).await {
            Ok(rows) => rows,
            Err(e) => {
                let what = match e.as_db_error().map(|d| d.code.as_str()) {
                    Some("42710") => format!(
                        "replication slot {name:?} exists: pick another name, or drop it \
                         (SELECT pg_drop_replication_slot('{name}')) if nothing reads it"
                    ),
                    Some("55000") => format!(
                        "cannot create logical slot {name:?}: the server's wal_level must be \
                         logical (postgresql.conf, then a restart)"
                    ),
                    Some("58P01") => format!(
                        "cannot create slot {name:?}: the server has no output plugin {plugin:?}"
                    ),
                    _ => format!("cannot create replication slot {name:?}"),
                };
                return Err(Error::from(e).context(what));
            }
        };
        let row = rows.first().map(|r| r.as_slice());
        let Some(
            [
                Some(slot_name),
                Some(consistent_point),
                Some(snapshot_name),
                plugin_out,
            ],
        ) = row
        else {
            return Err(Error::unexpected(format!(
                "CREATE_REPLICATION_SLOT answered {rows:?}: no exported snapshot"
            )));
        };
        let info = SlotInfo {
            slot_name: slot_name.clone(),
            consistent_point: consistent_point.clone(),
            snapshot_name: snapshot_name.clone(),
            output_plugin: plugin_out.clone().unwrap_or_else(|| plugin.to_owned()),
        };
        Ok(ReplicationSlot { conn, info })
    }

    /// The slot, its consistent point and snapshot.
    pub fn info(&self) -> &SlotInfo {
        &self.info
    }

    /// Closes the replication connection: the snapshot ends, the slot stays (a temporary one
    /// goes).
    ///
    /// # Errors
    /// The connection broke meanwhile (the snapshot then ended early: an export still reading
    /// in it has failed).
    pub async fn release(self) -> Result<()> {
        self.conn.close().await.map_err(Error::from)
    }
}

/// Creates logical slot `name` (output plugin `plugin`) and exports `source` into `target` in
/// its snapshot, over `partitions.connections` connections, then closes the slot's connection
/// (the slot stays). The statistics' manifest (for a directory) records the slot and its
/// consistent point.
///
/// # Errors
/// As [`ReplicationSlot::create`], and the export's; a failed export leaves the slot (it is
/// created first): drop it, or export again in a new one.
#[allow(clippy::too_many_arguments)]
pub async fn export_in_new_slot(
    config: impl pgarrow::IntoConfig,
    name: &str,
    plugin: &str,
    source: impl Into<pgarrow::Source>,
    options: &pgarrow::ExportOptions,
    partitions: &pgarrow::partition::PartitionOptions,
    target: &pgarrow::incremental::RunTarget,
    hooks: pgarrow::Hooks<'_>,
) -> Result<(pgarrow::partition::PartitionedStats, SlotInfo)> {
    use pgarrow::incremental::RunTarget;
    use pgarrow::partition::{export_to_dir, export_to_file};
    let config = config.into_config()?;
    let slot = ReplicationSlot::create(&config, name, plugin).await?;
    let info = slot.info().clone();
    let partitions = partitions.clone().with_import_snapshot_at(
        &info.snapshot_name,
        &info.slot_name,
        &info.consistent_point,
    );
    // The slot's connection stays open and idle while the parts read in its snapshot.
    let exported = match target {
        RunTarget::File(file) => {
            export_to_file(&config, source, options, &partitions, file, hooks).await
        }
        RunTarget::Dir(dir) => {
            export_to_dir(&config, source, options, &partitions, dir, hooks).await
        }
    };
    let released = slot.release().await;
    let stats = exported.map_err(|e| {
        e.context(format!(
            "exporting in the snapshot of replication slot {name:?} (the slot stays: drop it \
             with SELECT pg_drop_replication_slot('{name}') before exporting again)"
        ))
    })?;
    released?;
    Ok((stats, info))
}
