//! A DuckLake catalog in a PostgreSQL database: statements with their values bound (never
//! pasted into the SQL), and the catalog's tables made when the database has none.

use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Result};

use crate::common::new_uuid;
pub(crate) use crate::sql::{Db, quote_ident};

/// The catalog tables' DDL (DuckLake 1.0).
const DDL: &str = include_str!("catalog.sql");

/// The advisory lock writers making a catalog take turns on ("ducklake" in ASCII).
const CREATE_LOCK: i64 = 0x6475_636b_6c61_6b65;

/// The DuckLake format version pgarrow writes.
pub(crate) const VERSION: &str = "1.0";

/// A connection to the catalog database.
pub(crate) struct Catalog {
    db: Db,
}

impl std::ops::Deref for Catalog {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

impl std::ops::DerefMut for Catalog {
    fn deref_mut(&mut self) -> &mut Db {
        &mut self.db
    }
}

impl Catalog {
    /// Connects, in UTC with ISO dates (the catalog's bounds are compared as PostgreSQL
    /// renders them).
    pub(crate) async fn connect(config: &Config) -> Result<Catalog> {
        Ok(Catalog {
            db: Db::connect(config, "the DuckLake catalog").await?,
        })
    }

    /// Ends the connection.
    pub(crate) async fn close(self) {
        self.db.close().await;
    }

    /// The catalog's data path, making the catalog first when the database has none (its
    /// data path then `data_path`, which must be given).
    ///
    /// # Errors
    /// No catalog and no data path; a catalog of another DuckLake version.
    pub(crate) async fn open(&mut self, data_path: Option<&str>) -> Result<String> {
        let exists = self
            .query("SELECT to_regclass('ducklake_metadata')::text", &[])
            .await?;
        if exists.first().and_then(|r| r[0].as_ref()).is_none() {
            let Some(path) = data_path else {
                return Err(ErrorKind::Usage(
                    "the catalog database has no DuckLake catalog: give --data-path (where the \
                     new lake's files go) to make one"
                        .into(),
                )
                .into());
            };
            self.create(&with_slash(path)).await?;
        }
        let meta = self
            .query(
                "SELECT key::text, value::text FROM ducklake_metadata WHERE scope IS NULL",
                &[],
            )
            .await?;
        let value = |k: &str| {
            meta.iter()
                .find(|r| r[0].as_deref() == Some(k))
                .and_then(|r| r[1].clone())
        };
        let version = value("version").unwrap_or_default();
        if version != VERSION {
            return Err(ErrorKind::InvalidInput(format!(
                "the catalog is DuckLake {version:?}, and pgarrow writes DuckLake {VERSION} \
                 (DuckDB 1.5's): migrate it with DuckDB first"
            ))
            .into());
        }
        if value("encrypted").as_deref() == Some("true") {
            return Err(ErrorKind::Usage(
                "the DuckLake catalog is encrypted, which pgarrow does not write".into(),
            )
            .into());
        }
        let path = value("data_path").ok_or_else(|| {
            Error::from(ErrorKind::Unexpected(
                "the DuckLake catalog has no data_path".into(),
            ))
        })?;
        if let Some(given) = data_path
            && with_slash(given) != path
        {
            return Err(ErrorKind::Usage(format!(
                "--data-path {given} differs from the catalog's data path {path}: leave it out \
                 for an existing catalog"
            ))
            .into());
        }
        Ok(path)
    }

    /// Makes the catalog tables and the first snapshot (schema `main`), in one transaction,
    /// unless another writer made them first: writers making one catalog at once take turns
    /// on a transaction-level advisory lock, and the later one finds the catalog made.
    async fn create(&mut self, data_path: &str) -> Result<()> {
        self.batch("BEGIN").await?;
        let made = async {
            self.batch(&format!("SELECT pg_advisory_xact_lock({CREATE_LOCK})"))
                .await?;
            // Read from pg_class under this statement's snapshot, which sees the other
            // writer's commit (the relation cache may not have heard of it yet).
            let exists = self
                .query(
                    "SELECT count(*)::text FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relname = 'ducklake_metadata' AND n.nspname = current_schema()",
                    &[],
                )
                .await?;
            if exists.first().and_then(|r| r[0].as_deref()) != Some("0") {
                return Ok(());
            }
            self.batch(DDL).await?;
            let created_by = format!("pgarrow {}", env!("CARGO_PKG_VERSION"));
            self.exec_each(
                "INSERT INTO ducklake_metadata (key, value) VALUES ($1, $2)",
                &[
                    vec![Some("version".into()), Some(VERSION.into())],
                    vec![Some("created_by".into()), Some(created_by)],
                    vec![Some("data_path".into()), Some(data_path.into())],
                    vec![Some("encrypted".into()), Some("false".into())],
                ],
            )
            .await?;
            self.exec(
                "INSERT INTO ducklake_snapshot VALUES (0, now(), 0, 1, 0)",
                &[],
            )
            .await?;
            self.exec(
                "INSERT INTO ducklake_snapshot_changes (snapshot_id, changes_made, author) \
                 VALUES (0, 'created_schema:\"main\"', 'pgarrow')",
                &[],
            )
            .await?;
            self.exec(
                "INSERT INTO ducklake_schema VALUES (0, $1::uuid, 0, NULL, 'main', 'main/', true)",
                &[Some(&new_uuid())],
            )
            .await?;
            Ok::<(), Error>(())
        }
        .await;
        match made {
            Ok(()) => self.batch("COMMIT").await,
            Err(e) => {
                let _ = self.batch("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

/// `path` ending in one slash.
pub(crate) fn with_slash(path: &str) -> String {
    format!("{}/", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(new_uuid(), u);
        assert_eq!(with_slash("/a/b//"), "/a/b/");
    }
}
