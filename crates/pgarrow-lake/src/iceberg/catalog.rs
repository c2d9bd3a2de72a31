//! Iceberg's SQL catalog in a PostgreSQL database: the `iceberg_tables` and
//! `iceberg_namespace_properties` tables that pyiceberg's `SqlCatalog` and Iceberg's
//! `JdbcCatalog` share, made when the database has none. A table's commit swaps its metadata
//! location in one statement that holds only if no other writer swapped it first.
//!
//! Every commit goes through [`Catalog`]: a change to a table is its updates under its
//! requirements (the REST catalog specification's terms, [`super::spec`]), which the SQL
//! catalog applies to the metadata it read, writes as the next metadata file and swaps in; a
//! REST catalog sends them instead.

use pgarrow::io::StorageOptions;
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Result};

use super::spec::{TableMetadata, TableRequirement, TableUpdate};
use crate::sql::Db;

/// A table as a catalog holds it: its metadata, and where that is.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) metadata: TableMetadata,
    pub(crate) location: String,
}

/// What a commit answered: the table after it, or that another writer committed first (the
/// caller reads the table again, [`crate::retry::Retries`]).
#[derive(Debug)]
pub(crate) enum Committed<T = Box<Loaded>> {
    Done(T),
    Conflict(String),
    /// No answer came, and the table could not be read to see whether the commit landed (a
    /// REST catalog gone mid-commit): the commit's files must stay, for it may have.
    Unknown(String),
}

/// An Iceberg catalog: where a table's current metadata is, and the one way it changes.
#[allow(async_fn_in_trait)] // used by this crate only, on its own runtime
pub(crate) trait Catalog {
    /// The table, `None` when the catalog has no such table.
    async fn load(&mut self, namespace: &str, table: &str) -> Result<Option<Loaded>>;

    /// Makes the table of `metadata` (its first snapshot in it).
    async fn create(
        &mut self,
        namespace: &str,
        table: &str,
        metadata: TableMetadata,
    ) -> Result<Committed>;

    /// Applies `updates` to the table read as `base`, if `requirements` still hold of it.
    async fn commit(
        &mut self,
        namespace: &str,
        table: &str,
        base: &Loaded,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<Committed>;

    /// Applies every change at once, or none (a conflict on any table is the conflict of all):
    /// the tables after it, in order. `Err(why)` inside: this catalog cannot commit these
    /// tables in one operation (the caller commits each on its own and says so).
    async fn commit_all(&mut self, changes: &[TableChange<'_>]) -> Result<Together>;
}

/// What [`Catalog::commit_all`] answered: the commit of every table, or why they cannot be
/// committed together.
pub(crate) type Together = std::result::Result<Committed<Vec<Loaded>>, String>;

/// One table's part of a commit of several tables.
#[derive(Debug)]
pub(crate) struct TableChange<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) table: &'a str,
    pub(crate) change: Change<'a>,
}

/// A new table, or updates to a table as read.
#[derive(Debug)]
pub(crate) enum Change<'a> {
    /// Makes the table of this metadata (its first snapshot in it).
    Create(Box<TableMetadata>),
    /// `updates` to the table read as `base`, if `requirements` still hold of it.
    Update {
        base: &'a Loaded,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    },
}

impl TableChange<'_> {
    /// `namespace.table`.
    pub(crate) fn name(&self) -> String {
        format!("{}.{}", self.namespace, self.table)
    }
}

/// The catalog tables, as pyiceberg makes them (the JDBC catalog's schema version 1).
const DDL: &str = "
CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name)
);
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255) NOT NULL,
    property_value VARCHAR(1000) NOT NULL,
    PRIMARY KEY (catalog_name, namespace, property_key)
);";

/// The advisory lock writers making the catalog tables take turns on ("iceberg" in ASCII).
const CREATE_LOCK: i64 = 0x0069_6365_6265_7267;

/// A connection to the catalog database, for one catalog name.
pub(crate) struct SqlCatalog {
    db: Db,
    name: String,
    /// Where the tables' metadata files are read and written.
    pub(super) storage: StorageOptions,
    /// Whether `iceberg_tables` has the `iceberg_type` column (schema version 1).
    typed: bool,
}

impl SqlCatalog {
    /// Connects to the catalog `name` in the database `config` names, making the catalog
    /// tables when it has none.
    pub(crate) async fn connect(
        config: &Config,
        name: &str,
        storage: &StorageOptions,
    ) -> Result<SqlCatalog> {
        let mut db = Db::connect(config, "the Iceberg catalog").await?;
        let exists = db
            .query("SELECT to_regclass('iceberg_tables')::text", &[])
            .await?;
        if exists.first().and_then(|r| r[0].as_ref()).is_none() {
            db.batch("BEGIN").await?;
            let made = async {
                db.batch(&format!("SELECT pg_advisory_xact_lock({CREATE_LOCK})"))
                    .await?;
                db.batch(DDL).await
            }
            .await;
            match made {
                Ok(()) => db.batch("COMMIT").await?,
                Err(e) => {
                    let _ = db.batch("ROLLBACK").await;
                    return Err(e);
                }
            }
        }
        let typed = !db
            .query(
                "SELECT attname::text FROM pg_catalog.pg_attribute \
                 WHERE attrelid = to_regclass('iceberg_tables') AND attname = 'iceberg_type' \
                 AND NOT attisdropped",
                &[],
            )
            .await?
            .is_empty();
        Ok(SqlCatalog {
            db,
            name: name.to_owned(),
            storage: storage.clone(),
            typed,
        })
    }

    /// The table's current metadata location, `None` when the catalog has no such table.
    pub(crate) async fn current(&mut self, namespace: &str, table: &str) -> Result<Option<String>> {
        let filter = match self.typed {
            true => " AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
            false => "",
        };
        let rows = self
            .db
            .query(
                &format!(
                    "SELECT metadata_location::text FROM iceberg_tables \
                     WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3{filter}"
                ),
                &[Some(&self.name), Some(namespace), Some(table)],
            )
            .await?;
        Ok(rows.into_iter().next().and_then(|mut r| r.swap_remove(0)))
    }

    /// Makes the namespace when the catalog has none of that name (as pyiceberg does: an
    /// `exists` property).
    pub(crate) async fn ensure_namespace(&mut self, namespace: &str) -> Result<()> {
        self.db
            .exec(
                "INSERT INTO iceberg_namespace_properties \
                 (catalog_name, namespace, property_key, property_value) \
                 SELECT $1::varchar, $2::varchar, 'exists', 'true' WHERE NOT EXISTS ( \
                   SELECT 1 FROM iceberg_namespace_properties \
                   WHERE catalog_name = $1::varchar AND namespace = $2::varchar) \
                 AND NOT EXISTS (SELECT 1 FROM iceberg_tables \
                   WHERE catalog_name = $1::varchar AND table_namespace = $2::varchar) \
                 ON CONFLICT DO NOTHING",
                &[Some(&self.name), Some(namespace)],
            )
            .await?;
        Ok(())
    }

    /// Registers a new table at `metadata`; `false` when another writer registered it first.
    pub(crate) async fn create_at(
        &mut self,
        namespace: &str,
        table: &str,
        metadata: &str,
    ) -> Result<bool> {
        let sql = match self.typed {
            true => {
                "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, \
                 metadata_location, previous_metadata_location, iceberg_type) \
                 VALUES ($1, $2, $3, $4, NULL, 'TABLE') ON CONFLICT DO NOTHING"
            }
            false => {
                "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, \
                 metadata_location, previous_metadata_location) \
                 VALUES ($1, $2, $3, $4, NULL) ON CONFLICT DO NOTHING"
            }
        };
        let n = self
            .db
            .exec(
                sql,
                &[
                    Some(&self.name),
                    Some(namespace),
                    Some(table),
                    Some(metadata),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Points the table at `new` if it still points at `old` (compare-and-swap); `false` when
    /// another writer moved it first.
    pub(crate) async fn swap(
        &mut self,
        namespace: &str,
        table: &str,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let n = self
            .db
            .exec(
                "UPDATE iceberg_tables SET metadata_location = $5, previous_metadata_location = $4 \
                 WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 \
                 AND metadata_location = $4",
                &[
                    Some(&self.name),
                    Some(namespace),
                    Some(table),
                    Some(old),
                    Some(new),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Ends the connection.
    pub(crate) async fn close(self) {
        self.db.close().await;
    }

    /// Writes `metadata` as the file at `path`, removed again when `register` (the catalog's
    /// pointer moved to it) does not land.
    async fn written(
        &mut self,
        path: &str,
        metadata: &TableMetadata,
        register: impl AsyncFnOnce(&mut SqlCatalog) -> Result<bool>,
    ) -> Result<Committed> {
        let mut cleanup = crate::cleanup::Cleanup::new();
        let at = super::located(path, &self.storage)?;
        cleanup.write(at, metadata.to_json_bytes()).await?;
        if !register(self).await? {
            // Dropped unkept: the file names nothing.
            return Ok(Committed::Conflict(
                "another writer committed to the table first".into(),
            ));
        }
        cleanup.keep();
        Ok(Committed::Done(Box::new(Loaded {
            metadata: metadata.clone(),
            location: path.to_owned(),
        })))
    }
}

impl Catalog for SqlCatalog {
    async fn load(&mut self, namespace: &str, table: &str) -> Result<Option<Loaded>> {
        let Some(location) = self.current(namespace, table).await? else {
            return Ok(None);
        };
        let metadata = super::read_metadata(&location, &self.storage).await?;
        Ok(Some(Loaded { metadata, location }))
    }

    async fn create(
        &mut self,
        namespace: &str,
        table: &str,
        metadata: TableMetadata,
    ) -> Result<Committed> {
        let path = format!(
            "{}/metadata/00000-{}.metadata.json",
            metadata.location.trim_end_matches('/'),
            crate::common::new_uuid()
        );
        let (ns, t) = (namespace.to_owned(), table.to_owned());
        self.ensure_namespace(namespace).await?;
        let at = path.clone();
        self.written(&path, &metadata, async move |c: &mut SqlCatalog| {
            c.create_at(&ns, &t, &at).await
        })
        .await
    }

    async fn commit(
        &mut self,
        namespace: &str,
        table: &str,
        base: &Loaded,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<Committed> {
        // The swap below holds only from `base`'s file, which the requirements are checked on.
        if let Some(why) = TableMetadata::unmet(Some(&base.metadata), requirements) {
            return Ok(Committed::Conflict(why));
        }
        let next = base
            .metadata
            .updated(&base.location, updates, super::now_ms());
        let version = base.metadata.version_at(&base.location) + 1;
        let path = format!(
            "{}/metadata/{version:05}-{}.metadata.json",
            base.metadata.location.trim_end_matches('/'),
            crate::common::new_uuid()
        );
        let (ns, t, old, new) = (
            namespace.to_owned(),
            table.to_owned(),
            base.location.clone(),
            path.clone(),
        );
        self.written(&path, &next, async move |c: &mut SqlCatalog| {
            c.swap(&ns, &t, &old, &new).await
        })
        .await
    }

    async fn commit_all(&mut self, changes: &[TableChange<'_>]) -> Result<Together> {
        self.swap_all(changes).await.map(Ok)
    }
}

impl SqlCatalog {
    /// [`Catalog::commit_all`]: each table's next metadata file written, then every pointer
    /// moved in one transaction of the catalog database, which holds only if each still points
    /// where it was read (a new table: none yet).
    async fn swap_all(&mut self, changes: &[TableChange<'_>]) -> Result<Committed<Vec<Loaded>>> {
        let mut cleanup = crate::cleanup::Cleanup::new();
        // (namespace, table, the file it was read at (none: new), the new file, its metadata)
        let mut moves = Vec::with_capacity(changes.len());
        for c in changes {
            let (old, metadata, version) = match &c.change {
                Change::Create(metadata) => {
                    self.ensure_namespace(c.namespace).await?;
                    (None, (**metadata).clone(), 0)
                }
                Change::Update {
                    base,
                    requirements,
                    updates,
                } => {
                    if let Some(why) = TableMetadata::unmet(Some(&base.metadata), requirements) {
                        return Ok(Committed::Conflict(format!("{}: {why}", c.name())));
                    }
                    let next = base
                        .metadata
                        .updated(&base.location, updates, super::now_ms());
                    let version = base.metadata.version_at(&base.location) + 1;
                    (Some(base.location.clone()), next, version)
                }
            };
            let path = format!(
                "{}/metadata/{version:05}-{}.metadata.json",
                metadata.location.trim_end_matches('/'),
                crate::common::new_uuid()
            );
            let at = super::located(&path, &self.storage)?;
            cleanup.write(at, metadata.to_json_bytes()).await?;
            moves.push((c.namespace, c.table, old, path, metadata));
        }
        self.db.batch("BEGIN").await?;
        let moved = async {
            for (ns, table, old, new, _) in &moves {
                let done = match old {
                    None => self.create_at(ns, table, new).await?,
                    Some(old) => self.swap(ns, table, old, new).await?,
                };
                if !done {
                    return Ok(Some(format!(
                        "{ns}.{table}: another writer committed to it first"
                    )));
                }
            }
            Ok::<_, Error>(None)
        }
        .await;
        match moved {
            Ok(None) => {}
            // Rolled back: the files written name nothing, and the guard removes them.
            Ok(Some(why)) => {
                self.db.batch("ROLLBACK").await?;
                return Ok(Committed::Conflict(why));
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK").await;
                return Err(e);
            }
        }
        if let Err(e) = self.db.batch("COMMIT").await {
            // The database may have committed before the answer was lost.
            cleanup.keep();
            return Ok(Committed::Unknown(format!(
                "the catalog database's COMMIT: {e}"
            )));
        }
        cleanup.keep();
        Ok(Committed::Done(
            moves
                .into_iter()
                .map(|(_, _, _, location, metadata)| Loaded { metadata, location })
                .collect(),
        ))
    }
}

/// The error of a commit whose outcome is unknown: its files are kept.
pub(crate) fn unknown(why: &str) -> Error {
    ErrorKind::Unexpected(format!(
        "the catalog did not say whether the commit landed ({why}); its files are kept, as it may \
         have: the table, read again, shows it (its snapshot) or not (the files are then orphans \
         that expiry or remove_orphan_files clears)"
    ))
    .into()
}

impl Committed {
    /// The table after the commit; [`ErrorKind::Conflict`] naming `what` when another writer
    /// committed first.
    pub(crate) fn or_conflict(self, what: &str) -> Result<Box<Loaded>> {
        match self {
            Committed::Done(l) => Ok(l),
            Committed::Conflict(why) => Err(Error::from(ErrorKind::Conflict(format!(
                "{}: {what}: {why}",
                crate::live::MOVED
            )))),
            Committed::Unknown(why) => Err(unknown(&why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::{Snapshot, TableMetadata, TableRequirement, TableUpdate};
    use super::*;

    /// A new table's metadata at `location`, of no snapshot.
    fn new_table(location: &str) -> TableMetadata {
        serde_json::from_value(serde_json::json!({
            "format-version": 2,
            "table-uuid": "0b5a6c8e-6d4f-4f49-9e5b-1c1e2d3f4a5b",
            "location": location,
            "last-column-id": 1,
            "current-schema-id": 0,
            "schemas": [{"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": false, "type": "long"}]}],
            "default-spec-id": 0,
            "partition-specs": [{"spec-id": 0, "fields": []}],
            "x-theirs": {"kept": 1}
        }))
        .unwrap()
    }

    fn snapshot_of(id: i64) -> Vec<TableUpdate> {
        let snapshot: Snapshot = serde_json::from_value(serde_json::json!({
            "snapshot-id": id, "sequence-number": 1, "timestamp-ms": 1,
            "manifest-list": "never-read.avro", "summary": {"operation": "append"}
        }))
        .unwrap();
        vec![
            TableUpdate::AddSnapshot { snapshot },
            TableUpdate::SetSnapshotRef {
                ref_name: "main".into(),
                snapshot_id: id,
                kind: "branch".into(),
            },
        ]
    }

    fn metadata_files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("metadata")).unwrap().count()
    }

    /// The SQL catalog's commit against a real catalog database: it applies the updates and
    /// swaps only from the metadata read; a stale base or an unmet requirement is a conflict
    /// that leaves no metadata file behind.
    #[tokio::test]
    async fn commits_swap_from_the_metadata_read_and_a_lost_race_leaves_nothing() {
        let Some(pg) = pgarrow_testkit::Cluster::shared() else {
            return;
        };
        let db = pg.create_database("iceberg_catalog").unwrap();
        let config = Config::parse(&pg.url(&db)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap().to_owned();
        let storage = StorageOptions::default();
        let mut catalog = SqlCatalog::connect(&config, "default", &storage)
            .await
            .unwrap();
        let Committed::Done(made) = catalog
            .create("ns", "t", new_table(&location))
            .await
            .unwrap()
        else {
            panic!("a new table is made")
        };
        // Made again: the catalog holds it already.
        assert!(matches!(
            catalog
                .create("ns", "t", new_table(&location))
                .await
                .unwrap(),
            Committed::Conflict(_)
        ));
        assert_eq!(metadata_files(dir.path()), 1, "the loser's file is removed");
        let base = catalog.load("ns", "t").await.unwrap().unwrap();
        assert_eq!(base.location, made.location);
        let main = |id: Option<i64>| TableRequirement::AssertRefSnapshotId {
            name: "main".into(),
            snapshot_id: id,
        };
        let Committed::Done(next) = catalog
            .commit("ns", "t", &base, &[main(None)], &snapshot_of(7))
            .await
            .unwrap()
        else {
            panic!("the commit lands")
        };
        assert_eq!(next.metadata.current_snapshot_id(), Some(7));
        assert_eq!(
            next.metadata.other["x-theirs"],
            serde_json::json!({"kept": 1})
        );
        assert_eq!(next.metadata.metadata_log[0].metadata_file, base.location);
        let now = catalog.load("ns", "t").await.unwrap().unwrap();
        assert_eq!(now.location, next.location);
        assert_eq!(now.metadata, next.metadata);
        // From the stale base: the swap finds the table moved.
        let stale = catalog
            .commit("ns", "t", &base, &[main(None)], &snapshot_of(8))
            .await
            .unwrap();
        assert!(matches!(stale, Committed::Conflict(_)), "{stale:?}");
        // A requirement the table read does not meet: refused before anything is written.
        let unmet = catalog
            .commit("ns", "t", &now, &[main(Some(99))], &snapshot_of(9))
            .await
            .unwrap();
        assert!(matches!(unmet, Committed::Conflict(_)), "{unmet:?}");
        let e = unmet.or_conflict("committing").unwrap_err();
        assert!(e.is_conflict(), "{e}");
        assert_eq!(
            metadata_files(dir.path()),
            2,
            "only the two that landed stay"
        );
        catalog.close().await;
    }

    /// Several tables committed at once in the SQL catalog: a new table and an update land
    /// together; a conflict on one table (a stale base) leaves every table as it was and no
    /// metadata file of the attempt behind.
    #[tokio::test]
    async fn several_tables_commit_all_or_none() {
        let Some(pg) = pgarrow_testkit::Cluster::shared() else {
            return;
        };
        let db = pg.create_database("iceberg_catalog_all").unwrap();
        let config = Config::parse(&pg.url(&db)).unwrap();
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let at = |d: &tempfile::TempDir| d.path().to_str().unwrap().to_owned();
        let storage = StorageOptions::default();
        let mut catalog = SqlCatalog::connect(&config, "default", &storage)
            .await
            .unwrap();
        catalog
            .create("ns", "t", new_table(&at(&one)))
            .await
            .unwrap();
        let t = catalog.load("ns", "t").await.unwrap().unwrap();
        let update = |base, id| TableChange {
            namespace: "ns",
            table: "t",
            change: Change::Update {
                base,
                requirements: vec![],
                updates: snapshot_of(id),
            },
        };
        let both = [
            update(&t, 10),
            TableChange {
                namespace: "other",
                table: "u",
                change: Change::Create(Box::new(new_table(&at(&two)))),
            },
        ];
        let Ok(Committed::Done(done)) = catalog.commit_all(&both).await.unwrap() else {
            panic!("both land")
        };
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].metadata.current_snapshot_id(), Some(10));
        let u = catalog.load("other", "u").await.unwrap().unwrap();
        assert_eq!(u.location, done[1].location);
        let files = (metadata_files(one.path()), metadata_files(two.path()));
        // `t` read before the commit above: stale. `u` would land alone, but not with it.
        let stale = [
            TableChange {
                namespace: "other",
                table: "u",
                change: Change::Update {
                    base: &u,
                    requirements: vec![],
                    updates: snapshot_of(11),
                },
            },
            update(&t, 12),
        ];
        let answer = catalog.commit_all(&stale).await.unwrap();
        assert!(matches!(answer, Ok(Committed::Conflict(_))), "{answer:?}");
        let now = catalog.load("other", "u").await.unwrap().unwrap();
        assert_eq!(now.location, u.location, "u is as it was");
        assert_eq!(now.metadata.current_snapshot_id(), None);
        assert_eq!(
            (metadata_files(one.path()), metadata_files(two.path())),
            files,
            "the attempt's files are removed"
        );
        catalog.close().await;
    }
}
