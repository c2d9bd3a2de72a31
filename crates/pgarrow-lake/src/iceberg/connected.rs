//! The catalog an Iceberg target names, connected: the SQL catalog in a PostgreSQL database
//! ([`SqlCatalog`]) or a REST catalog ([`RestCatalog`]), one type over both for the export,
//! the import, the mirror and expiry. It stands above the two, which know nothing of each
//! other.

use pgarrow::io::StorageOptions;
use pgarrow::{ErrorKind, Result};

use super::IcebergCatalog;
use super::catalog::{Catalog, Committed, Loaded, SqlCatalog, TableChange, Together};
use super::rest::RestCatalog;
use super::spec::{TableMetadata, TableRequirement, TableUpdate};

/// The catalog a target names, connected: the SQL catalog in a PostgreSQL database, or a REST
/// catalog.
pub(crate) enum Connected {
    Sql(Box<SqlCatalog>),
    Rest(Box<RestCatalog>),
}

impl Connected {
    /// Connects to `catalog` (`name`: an SQL catalog's name in its database); `storage`: the
    /// user's object store options.
    pub(crate) async fn connect(
        catalog: &IcebergCatalog,
        name: &str,
        storage: &StorageOptions,
    ) -> Result<Connected> {
        Ok(match catalog {
            IcebergCatalog::Sql(config) => {
                Connected::Sql(Box::new(SqlCatalog::connect(config, name, storage).await?))
            }
            IcebergCatalog::Rest(options) => {
                Connected::Rest(Box::new(RestCatalog::connect(options, storage).await?))
            }
        })
    }

    /// Where the table's files are read and written: the user's options, with (a REST
    /// catalog) the server's storage configuration and the loaded table's own.
    pub(crate) fn storage(&self) -> &StorageOptions {
        match self {
            Connected::Sql(c) => &c.storage,
            Connected::Rest(c) => c.storage(),
        }
    }

    /// Where a new table `namespace.table` goes: under `warehouse` when given, else (a REST
    /// catalog) where the server puts it.
    pub(crate) async fn new_location(
        &mut self,
        namespace: &str,
        table: &str,
        warehouse: Option<&str>,
    ) -> Result<String> {
        match (self, warehouse) {
            (_, Some(w)) => Ok(format!(
                "{}/{namespace}.db/{table}",
                w.trim_end_matches('/')
            )),
            (Connected::Rest(c), None) => c.new_location(namespace, table).await,
            (Connected::Sql(_), None) => Err(ErrorKind::Usage(
                "the table is new: give the warehouse its files go under (--warehouse PATH)".into(),
            )
            .into()),
        }
    }

    /// Ends the session.
    pub(crate) async fn close(self) {
        if let Connected::Sql(c) = self {
            c.close().await;
        }
    }
}

impl Catalog for Connected {
    async fn load(&mut self, namespace: &str, table: &str) -> Result<Option<Loaded>> {
        match self {
            Connected::Sql(c) => c.load(namespace, table).await,
            Connected::Rest(c) => c.load(namespace, table).await,
        }
    }

    async fn create(
        &mut self,
        namespace: &str,
        table: &str,
        metadata: TableMetadata,
    ) -> Result<Committed> {
        match self {
            Connected::Sql(c) => c.create(namespace, table, metadata).await,
            Connected::Rest(c) => c.create(namespace, table, metadata).await,
        }
    }

    async fn commit(
        &mut self,
        namespace: &str,
        table: &str,
        base: &Loaded,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<Committed> {
        match self {
            Connected::Sql(c) => {
                c.commit(namespace, table, base, requirements, updates)
                    .await
            }
            Connected::Rest(c) => {
                c.commit(namespace, table, base, requirements, updates)
                    .await
            }
        }
    }

    async fn commit_all(&mut self, changes: &[TableChange<'_>]) -> Result<Together> {
        match self {
            Connected::Sql(c) => c.commit_all(changes).await,
            Connected::Rest(c) => c.commit_all(changes).await,
        }
    }
}
