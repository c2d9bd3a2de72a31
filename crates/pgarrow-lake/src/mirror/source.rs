//! The source side of a mirror: the tables' names and keys as the server has them, the
//! publication that carries their changes, and the replication slot's state, in PostgreSQL's
//! catalogs.

use pgarrow::names::TableName;
use pgarrow::protocol::{Config, Connection, quote_ident, quote_literal};
use pgarrow::{Error, ErrorKind, IntoConfig, Result, Source};

use super::{MirrorOptions, RowKey};

/// The tables `patterns` select on the source (`pg_dump`'s patterns: `--table`, `--schema`),
/// in schema and name order: what a mirror of patterns follows. Views, materialized views and
/// foreign tables a wildcard or schema pattern matches publish no changes: they are left out,
/// each named in a warning; one a pattern names exactly is kept, for the mirror to refuse by
/// name.
///
/// # Errors
/// Connecting; a pattern that matches nothing, or only relations that are not tables.
pub async fn resolve_tables(
    config: impl IntoConfig,
    patterns: &[pgarrow::names::TablePattern],
) -> Result<Vec<TableName>> {
    let config = config.into_config()?;
    let mut conn = Connection::connect(&config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let found = async {
        let tables = pgarrow::names::resolve(&mut conn, patterns).await?;
        let kinds = relkinds(&mut conn, &tables).await?;
        let exact: Vec<TableName> = patterns.iter().filter_map(|p| p.exact()).collect();
        let mut kept = Vec::with_capacity(tables.len());
        let mut skipped = Vec::new();
        for (t, kind) in tables.into_iter().zip(kinds) {
            let kind = match kind.as_str() {
                "v" => Some("a view"),
                "m" => Some("a materialized view"),
                "f" => Some("a foreign table"),
                _ => None,
            };
            let named = exact.iter().any(|e| {
                e.name == t.name
                    && e.schema
                        .as_ref()
                        .is_none_or(|s| Some(s) == t.schema.as_ref())
            });
            match kind {
                Some(kind) if !named => skipped.push(format!("{} ({kind})", t.quoted())),
                _ => kept.push(t),
            }
        }
        if kept.is_empty() {
            return Err(Error::usage(format!(
                "no table to mirror: the patterns match only {}, which publish no changes",
                skipped.join(", ")
            )));
        }
        for s in &skipped {
            log::warn!("{s} publishes no changes: not mirrored");
        }
        Ok(kept)
    }
    .await;
    let _ = conn.close().await;
    found
}

/// The kind of relation each of `tables` is (`pg_class.relkind`), in order, in one query.
async fn relkinds(conn: &mut Connection, tables: &[TableName]) -> Result<Vec<String>> {
    let names: Vec<String> = tables.iter().map(|t| quote_literal(&t.quoted())).collect();
    let rows = conn
        .simple_query(&format!(
            "SELECT c.relkind::text FROM unnest(ARRAY[{}]::text[]) WITH ORDINALITY AS t(name, i) \
             LEFT JOIN pg_catalog.pg_class c ON c.oid = to_regclass(t.name) ORDER BY t.i",
            names.join(", ")
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_iter().next().flatten().unwrap_or_default())
        .collect())
}

/// The table's name as the server has it and its key: the primary key, else the replica
/// identity index, else (under `REPLICA IDENTITY FULL`) its whole rows.
pub(super) async fn describe(
    conn: &mut Connection,
    table: &TableName,
) -> Result<(TableName, RowKey)> {
    let regclass = quote_literal(&table.quoted());
    let rows = conn
        .simple_query(&format!(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text, c.relkind::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass({regclass})"
        ))
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Err(Error::usage(format!(
            "table {} does not exist",
            table.quoted()
        )));
    };
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    let named = TableName::new(Some(text(0)), text(1));
    let name = named.quoted();
    if !matches!(text(3).as_str(), "r" | "p") {
        return Err(Error::usage(format!(
            "{name} is not a table: a mirror follows a table's changes"
        )));
    }
    let identity = text(2);
    // The key the WAL's updates and deletes carry: the replica identity index, else the
    // primary key.
    let key = pgarrow::names::key_columns(conn, &named, pgarrow::names::KeyChoice::ReplicaIdentity)
        .await?;
    match identity.as_str() {
        "n" => Err(Error::usage(format!(
            "{name} has REPLICA IDENTITY NOTHING: its updates and deletes are not published, \
             so no mirror can follow it (ALTER TABLE {name} REPLICA IDENTITY DEFAULT)"
        ))),
        _ if !key.is_empty() => Ok((named, RowKey::Columns(key))),
        // Its updates and deletes carry the whole old row.
        "f" => Ok((named, RowKey::WholeRow)),
        _ => Err(Error::usage(format!(
            "{name} has no primary key (nor replica identity index): its updates and deletes \
             name no row. Give it a primary key (or ALTER TABLE {name} REPLICA IDENTITY USING \
             INDEX a unique index)"
        ))),
    }
}

/// What a mirror's exports of `table` read: the table, or, when its changes through
/// `publication` carry fewer columns (stored generated columns, which PostgreSQL publishes
/// only when asked from 18 on; a publication's column list), a query of those columns, so
/// that the lake table has the columns the changes do.
pub(super) async fn published(
    conn: &mut Connection,
    publication: &str,
    table: &TableName,
) -> Result<Source> {
    let regclass = quote_literal(&table.quoted());
    let names = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
        rows.into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()
    };
    let all = names(
        conn.simple_query(&format!(
            "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = \
             to_regclass({regclass}) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        ))
        .await?,
    );
    // Before PostgreSQL 18 generated columns are never published (and pg_publication_tables
    // lists them all the same); from 15 on a publication may list its columns.
    let version = conn.server_version_num();
    let generated = names(
        conn.simple_query(&format!(
            "SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = \
             to_regclass({regclass}) AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''"
        ))
        .await?,
    );
    let listed = match version >= 150_000 {
        true => names(
            conn.simple_query(&format!(
                "SELECT a::text FROM pg_catalog.pg_publication_tables p, unnest(p.attnames) a \
                 WHERE p.pubname = {} AND p.schemaname = {} AND p.tablename = {}",
                quote_literal(publication),
                quote_literal(table.schema.as_deref().unwrap_or("public")),
                quote_literal(&table.name)
            ))
            .await?,
        ),
        false => all.clone(),
    };
    let published: Vec<String> = listed
        .into_iter()
        .filter(|c| version >= 180_000 || !generated.contains(c))
        .collect();
    if published.is_empty() || published.len() == all.len() {
        return Ok(Source::Table(table.clone()));
    }
    let columns: Vec<String> = all
        .iter()
        .filter(|c| published.contains(c))
        .map(|c| quote_ident(c))
        .collect();
    Ok(Source::Query(format!(
        "SELECT {} FROM {}",
        columns.join(", "),
        table.quoted()
    )))
}

/// Makes publication `name` for `tables` when it does not exist; else checks it covers them.
/// The mirror's own publication (`own`) that lacks some (taken out of it since a run followed
/// them) gets them back, and their places are returned: changes made while they were out
/// are not in the slot, so they are exported again.
pub(super) async fn ensure_publication(
    conn: &mut Connection,
    name: &str,
    own: bool,
    tables: &[TableName],
) -> Result<Vec<usize>> {
    let exists = conn
        .simple_query(&format!(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = {}",
            quote_literal(name)
        ))
        .await?;
    if exists.is_empty() {
        let list = tables
            .iter()
            .map(TableName::quoted)
            .collect::<Vec<_>>()
            .join(", ");
        conn.simple_query(&format!(
            "CREATE PUBLICATION {} FOR TABLE {list}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| {
            Error::from(e).context(format!(
                "making publication {name:?} for the mirrored tables (or make it yourself and \
                 name it with --publication)"
            ))
        })?;
        return Ok(Vec::new());
    }
    let mut added = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        if own && !publishes(conn, name, t).await? {
            publish(conn, name, t).await?;
            added.push(i);
            continue;
        }
        if !publishes(conn, name, t).await? {
            return Err(Error::usage(format!(
                "publication {name:?} does not publish {} (ALTER PUBLICATION {} ADD TABLE {})",
                t.quoted(),
                quote_ident(name),
                t.quoted()
            )));
        }
    }
    Ok(added)
}

/// A slot as the server has it.
pub(super) struct SlotState {
    /// Its WAL was removed (`wal_status = 'lost'`, or an invalidation reason).
    pub(super) lost: bool,
}

pub(super) async fn slot_state(conn: &mut Connection, slot: &str) -> Result<Option<SlotState>> {
    let version = conn.server_version_num();
    let status = if version >= 130000 {
        "coalesce(wal_status, '')"
    } else {
        "''"
    };
    let rows = conn
        .simple_query(&format!(
            "SELECT plugin::text, {status}::text FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = {}",
            quote_literal(slot)
        ))
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let plugin = row.first().cloned().flatten().unwrap_or_default();
    if plugin != "pgoutput" {
        return Err(Error::usage(format!(
            "replication slot {slot:?} is a slot of {plugin:?}, not pgoutput: name another \
             slot"
        )));
    }
    Ok(Some(SlotState {
        lost: row.get(1).cloned().flatten().as_deref() == Some("lost"),
    }))
}

pub(super) async fn drop_slot(config: &Config, slot: &str) -> Result<()> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let dropped = conn
        .simple_query(&format!(
            "SELECT pg_catalog.pg_drop_replication_slot({})",
            quote_literal(slot)
        ))
        .await;
    let _ = conn.close().await;
    dropped
        .map(|_| ())
        .map_err(|e| Error::from(e).context(format!("dropping replication slot {slot:?}")))
}

/// The source side of a mirror, as its start finds it.
pub(super) struct Prepared {
    /// The publication that carries the tables' changes.
    pub(super) publication: String,
    /// The tables as the server names them, each with its key and what its exports read.
    pub(super) tables: Vec<TableName>,
    pub(super) keys: Vec<RowKey>,
    pub(super) sources: Vec<Source>,
    /// The slot, if it exists.
    pub(super) slot: Option<SlotState>,
    /// The tables the mirror's own publication had lost and got back (by place): exported
    /// again, their changes while out of it not being in the slot.
    pub(super) republished: Vec<usize>,
}

/// Describes `tables` on the source (names, keys, what their changes carry), makes sure the
/// publication carries them, and reads the slot's state.
///
/// # Errors
/// Connecting; failover slots before PostgreSQL 17; a table without a key; the
/// publication's.
pub(super) async fn prepare(
    config: &Config,
    tables: &[TableName],
    options: &MirrorOptions,
) -> Result<Prepared> {
    let publication = options
        .publication
        .clone()
        .unwrap_or_else(|| options.slot.clone());
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let version = conn.server_version_num();
    if options.failover && version < 170_000 {
        let _ = conn.close().await;
        return Err(Error::usage(format!(
            "failover slots need PostgreSQL 17 or later; the server is {}.{}: leave out \
             --failover",
            version / 10_000,
            version % 10_000
        )));
    }
    let mut keys = Vec::with_capacity(tables.len());
    let mut named = Vec::with_capacity(tables.len());
    for t in tables {
        let (table, key) = describe(&mut conn, t).await?;
        keys.push(key);
        named.push(table);
    }
    let own = options.publication.is_none();
    let republished = ensure_publication(&mut conn, &publication, own, &named).await?;
    let mut sources = Vec::with_capacity(named.len());
    for t in &named {
        sources.push(published(&mut conn, &publication, t).await?);
    }
    let slot = slot_state(&mut conn, &options.slot).await?;
    let _ = conn.close().await;
    Ok(Prepared {
        publication,
        tables: named,
        keys,
        sources,
        slot,
        republished,
    })
}

/// What the source has now against what a mirror follows: tables to join it, and tables to
/// leave it (by their place in the followed list, with why).
#[derive(Debug, Default)]
pub(super) struct Discovered {
    pub(super) joining: Vec<TableName>,
    pub(super) leaving: Vec<(usize, String)>,
}

impl Discovered {
    pub(super) fn is_empty(&self) -> bool {
        self.joining.is_empty() && self.leaving.is_empty()
    }
}

/// Compares the source with the `followed` tables: a followed table that no longer exists or
/// is no longer in `publication` leaves; a table that came to match `patterns` since they were
/// last read (`known`: the tables they matched) joins, and so does, when the publication is
/// the mirror's own (`own`), one added to it.
pub(super) async fn discover(
    config: &Config,
    publication: &str,
    own: bool,
    patterns: &[pgarrow::names::TablePattern],
    known: &mut Vec<TableName>,
    followed: &[TableName],
) -> Result<Discovered> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let found = async {
        let published = published_tables(&mut conn, publication).await?;
        let mut out = Discovered::default();
        for (i, t) in followed.iter().enumerate() {
            if !published.contains(t) {
                out.leaving.push((
                    i,
                    format!("no longer in publication {publication:?} (or dropped)"),
                ));
            }
        }
        for p in patterns {
            // A pattern that matches nothing now (its tables dropped) finds nothing new.
            let Ok(now) = pgarrow::names::resolve(&mut conn, std::slice::from_ref(p)).await else {
                continue;
            };
            for t in now {
                if !known.contains(&t) {
                    known.push(t.clone());
                    if !followed.contains(&t) && !out.joining.contains(&t) {
                        out.joining.push(t);
                    }
                }
            }
        }
        if own {
            for t in published {
                if !followed.contains(&t) && !out.joining.contains(&t) {
                    out.joining.push(t);
                }
            }
        }
        Ok(out)
    }
    .await;
    let _ = conn.close().await;
    found
}

/// Adds `table` to the mirror's own publication `name` when it does not publish it yet.
pub(super) async fn publish(conn: &mut Connection, name: &str, table: &TableName) -> Result<()> {
    if !publishes(conn, name, table).await? {
        conn.simple_query(&format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            quote_ident(name),
            table.quoted()
        ))
        .await
        .map_err(|e| {
            Error::from(e).context(format!("adding {} to publication {name:?}", table.quoted()))
        })?;
    }
    Ok(())
}

/// Whether publication `name` publishes `table`.
pub(super) async fn publishes(
    conn: &mut Connection,
    name: &str,
    table: &TableName,
) -> Result<bool> {
    let covered = conn
        .simple_query(&format!(
            "SELECT 1 FROM pg_catalog.pg_publication_tables WHERE pubname = {} \
             AND schemaname = {} AND tablename = {}",
            quote_literal(name),
            quote_literal(table.schema.as_deref().unwrap_or("public")),
            quote_literal(&table.name)
        ))
        .await?;
    Ok(!covered.is_empty())
}

/// The tables publication `name` publishes (a partition counted as its root table), in schema
/// and name order; none when there is no such publication.
pub(super) async fn published_tables(conn: &mut Connection, name: &str) -> Result<Vec<TableName>> {
    let rows = conn
        .simple_query(&format!(
            "SELECT DISTINCT n.nspname::text, c.relname::text \
             FROM pg_catalog.pg_publication_tables p, \
             LATERAL (SELECT to_regclass(format('%I.%I', p.schemaname, p.tablename)) AS r) t \
             JOIN pg_catalog.pg_class c ON c.oid = coalesce(pg_catalog.pg_partition_root(t.r), t.r) \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE p.pubname = {} ORDER BY 1, 2",
            quote_literal(name)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            TableName::new(Some(get(0)), get(1))
        })
        .collect())
}

/// `tables` and every other table `publication` publishes (a mirror's own publication: the
/// tables added to it join the mirror).
pub(super) async fn with_published(
    config: &Config,
    tables: &[TableName],
    publication: &str,
) -> Result<Vec<TableName>> {
    let mut conn = Connection::connect(config)
        .await
        .map_err(|e| Error::from(ErrorKind::Connect(e)))?;
    let published = published_tables(&mut conn, publication).await;
    let _ = conn.close().await;
    let mut out = tables.to_vec();
    for t in published? {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}
