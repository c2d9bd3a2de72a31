//! Iceberg's SQL catalog in a PostgreSQL database: the `iceberg_tables` and
//! `iceberg_namespace_properties` tables that pyiceberg's `SqlCatalog` and Iceberg's
//! `JdbcCatalog` share, made when the database has none. A table's commit swaps its metadata
//! location in one statement that holds only if no other writer swapped it first.

use pgarrow::Result;
use pgarrow::protocol::Config;

use crate::sql::Db;

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
    /// Whether `iceberg_tables` has the `iceberg_type` column (schema version 1).
    typed: bool,
}

impl SqlCatalog {
    /// Connects to the catalog `name` in the database `config` names, making the catalog
    /// tables when it has none.
    pub(crate) async fn connect(config: &Config, name: &str) -> Result<SqlCatalog> {
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
    pub(crate) async fn create(
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
}
