//! A lake table as the doors name it (`--ducklake URL`, `--delta LOCATION` or `--iceberg URL`,
//! with `--lake-table [SCHEMA.]NAME` and Iceberg's `--catalog-name`; Python's keywords of the
//! same names): the one place that turns those arguments into a [`LakeTarget`] to write, or
//! into an [`Input`] to read ([`open_lake`]), so that the command line and Python neither build
//! targets nor match formats themselves.
//!
//! ```no_run
//! # async fn run() -> pgarrow::Result<()> {
//! use pgarrow_lake::{LakeName, open_lake};
//! let name = LakeName::iceberg("postgresql://localhost/lake").with_lake_table("sales.orders");
//! let input = open_lake(&name, &Default::default(), &Default::default()).await?;
//! println!("{}", input.name());
//! # Ok(())
//! # }
//! ```

use pgarrow::io::{Input, InputOptions, StorageOptions};
use pgarrow::names::TableName;
use pgarrow::protocol::Config;
use pgarrow::{Error, Result};

use crate::delta::DeltaTarget;
use crate::ducklake::DuckLakeTarget;
use crate::iceberg::{DEFAULT_CATALOG_NAME, IcebergCatalog, IcebergTarget};
use crate::target::LakeTarget;

/// A lake table as the doors name it: one format's argument, and for a catalog's table its
/// name and (Iceberg) the catalog's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LakeName {
    /// A DuckLake catalog's database URL.
    pub ducklake: Option<String>,
    /// A Delta table's location (a directory or an object URL).
    pub delta: Option<String>,
    /// An Iceberg catalog: an SQL catalog's database URL, or a REST catalog's `http(s)://`
    /// address.
    pub iceberg: Option<String>,
    /// A REST catalog's properties (pyiceberg's: `credential`, `token`, `s3.endpoint`, ...),
    /// over those its configuration file and environment give (see
    /// [`pyiceberg_properties`](crate::iceberg::rest::pyiceberg_properties)).
    pub iceberg_properties: Vec<(String, String)>,
    /// A catalog's table, `[schema.]name` (schema `main` in DuckLake, namespace `default` in
    /// Iceberg when left out).
    pub lake_table: Option<String>,
    /// The Iceberg catalog's name ([`DEFAULT_CATALOG_NAME`] when left out).
    pub catalog_name: Option<String>,
    /// Where a new DuckLake catalog keeps its files.
    pub data_path: Option<String>,
    /// Where a new Iceberg table's files go (an SQL catalog's); a REST catalog's warehouse
    /// (its `warehouse` property).
    pub warehouse: Option<String>,
    /// Versions between a Delta table's checkpoints.
    pub checkpoint_interval: Option<u64>,
}

impl LakeName {
    /// A table of the DuckLake catalog in database `url`.
    pub fn ducklake(url: impl Into<String>) -> Self {
        LakeName {
            ducklake: Some(url.into()),
            ..LakeName::default()
        }
    }

    /// The Delta table at `location`.
    pub fn delta(location: impl Into<String>) -> Self {
        LakeName {
            delta: Some(location.into()),
            ..LakeName::default()
        }
    }

    /// A table of the Iceberg catalog at `url`: a REST catalog's `http(s)://` address, else
    /// the database of an SQL catalog.
    pub fn iceberg(url: impl Into<String>) -> Self {
        LakeName {
            iceberg: Some(url.into()),
            ..LakeName::default()
        }
    }

    /// A REST catalog's property.
    pub fn with_iceberg_property(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.iceberg_properties.push((key.into(), value.into()));
        self
    }

    /// The catalog's table, `[schema.]name`.
    pub fn with_lake_table(mut self, table: impl Into<String>) -> Self {
        self.lake_table = Some(table.into());
        self
    }

    /// The Iceberg catalog's name.
    pub fn with_catalog_name(mut self, name: impl Into<String>) -> Self {
        self.catalog_name = Some(name.into());
        self
    }

    /// Where a new DuckLake catalog keeps its files.
    pub fn with_data_path(mut self, path: impl Into<String>) -> Self {
        self.data_path = Some(path.into());
        self
    }

    /// Where a new Iceberg table's files go.
    pub fn with_warehouse(mut self, warehouse: impl Into<String>) -> Self {
        self.warehouse = Some(warehouse.into());
        self
    }

    /// Versions between a Delta table's checkpoints.
    pub fn with_checkpoint_interval(mut self, versions: u64) -> Self {
        self.checkpoint_interval = Some(versions);
        self
    }

    /// Refuses an option of another format than the one named.
    fn options_fit(&self) -> Result<()> {
        let refuse = |given: bool, what: &str| match given {
            true => Err(Error::usage(what)),
            false => Ok(()),
        };
        let (ducklake, delta, iceberg) = (
            self.ducklake.is_some(),
            self.delta.is_some(),
            self.iceberg.is_some(),
        );
        refuse(
            self.catalog_name.is_some() && !iceberg,
            "--catalog-name (catalog_name=) is an Iceberg catalog's",
        )?;
        refuse(
            self.data_path.is_some() && !ducklake,
            match iceberg {
                true => {
                    "--data-path (data_path=) is DuckLake's: a new Iceberg table goes under \
                     --warehouse (warehouse=)"
                }
                false => {
                    "--data-path (data_path=) is a DuckLake catalog's: a Delta table is named by \
                     its location (--delta, delta=)"
                }
            },
        )?;
        refuse(
            !self.iceberg_properties.is_empty() && !iceberg,
            "--iceberg-property (iceberg_properties=) is an Iceberg REST catalog's",
        )?;
        refuse(
            self.warehouse.is_some() && !iceberg,
            "--warehouse (warehouse=) is Iceberg's: a new DuckLake catalog keeps its files under \
             --data-path (data_path=), a Delta table at its location",
        )?;
        refuse(
            self.checkpoint_interval.is_some() && !delta,
            "--checkpoint-interval (checkpoint_interval=) is Delta's",
        )
    }

    /// The target it names. A catalog's table is `lake_table`, else `table` (the source's
    /// name), in the format's default schema; with neither, a target of no table yet, for
    /// [`LakeTarget::for_table`] to name per table of several.
    ///
    /// # Errors
    /// No format or two; a catalog URL that does not parse; a name that does not; a Delta
    /// table given a catalog's table name, or a catalog name given to another format than
    /// Iceberg.
    pub fn target(&self, table: Option<&str>) -> Result<LakeTarget> {
        let given = [&self.ducklake, &self.delta, &self.iceberg]
            .iter()
            .filter(|g| g.is_some())
            .count();
        if given != 1 {
            return Err(Error::usage(
                "a lake table: --ducklake URL or --iceberg URL with --lake-table, or --delta \
                 LOCATION (in Python ducklake=, iceberg= with lake_table=, or delta=): one of \
                 them",
            ));
        }
        self.options_fit()?;
        let name = |default: &str| -> Result<(String, String)> {
            let Some(given) = self.lake_table.as_deref().or(table) else {
                return Ok((default.to_owned(), String::new()));
            };
            let name = TableName::parse(given)?;
            Ok((name.schema.unwrap_or_else(|| default.to_owned()), name.name))
        };
        Ok(if let Some(location) = &self.delta {
            if self.lake_table.is_some() {
                return Err(Error::usage(
                    "--lake-table (lake_table=) is a catalog's: a Delta table is named by its \
                     location (--delta, delta=)",
                ));
            }
            let mut t = DeltaTarget::new(location.clone());
            if let Some(versions) = self.checkpoint_interval {
                t = t.with_checkpoint_interval(versions);
            }
            t.into()
        } else if let Some(url) = &self.iceberg {
            let (namespace, table) = name("default")?;
            let catalog_name = self
                .catalog_name
                .clone()
                .unwrap_or_else(|| DEFAULT_CATALOG_NAME.to_owned());
            let mut catalog = IcebergCatalog::parse(url)?;
            let mut warehouse = self.warehouse.clone();
            if catalog.is_rest() {
                // pyiceberg's own configuration of the catalog of that name, under what the
                // call gives (its address is the one given).
                for (k, v) in crate::iceberg::rest::pyiceberg_properties(&catalog_name)? {
                    if k != "uri" {
                        catalog = catalog.with_property(&k, &v)?;
                    }
                }
                // A REST catalog's warehouse is the one the server is asked for; the server
                // says where a new table goes.
                if let Some(w) = warehouse.take() {
                    catalog = catalog.with_property("warehouse", &w)?;
                }
            }
            for (k, v) in &self.iceberg_properties {
                catalog = catalog.with_property(k, v)?;
            }
            let mut t =
                IcebergTarget::new(catalog, namespace, table).with_catalog_name(catalog_name);
            if let Some(w) = warehouse {
                t = t.with_warehouse(w);
            }
            t.into()
        } else {
            let url = self.ducklake.as_deref().unwrap_or_default();
            let (schema, table) = name("main")?;
            let mut t = DuckLakeTarget::new(Config::parse(url)?, schema, table);
            if let Some(path) = &self.data_path {
                t = t.with_data_path(path.clone());
            }
            t.into()
        })
    }
}

/// The lake table `name` names (its current snapshot, of any format) as the input of a load:
/// its live files without the rows its deletes delete, each read as the table's current
/// columns.
///
/// # Errors
/// What [`LakeName::target`] refuses; a catalog's table without `lake_table`; no such table;
/// the format's reader's errors (a file or table another writer spoiled is
/// [`InvalidInput`](pgarrow::ErrorKind::InvalidInput)).
pub async fn open_lake(
    name: &LakeName,
    storage: &StorageOptions,
    options: &InputOptions,
) -> Result<Input> {
    if name.delta.is_none() && name.lake_table.is_none() {
        return Err(Error::usage(
            "a catalog's table to read needs its name (--lake-table [SCHEMA.]NAME, lake_table=)",
        ));
    }
    match name.target(None)? {
        LakeTarget::Delta(t) => {
            let (location, storage, options) = (t.location, storage.clone(), options.clone());
            tokio::task::spawn_blocking(move || {
                crate::delta::open_delta(&location, &storage, &options)
            })
            .await
            .map_err(|e| Error::internal(format!("reading the Delta log: {e}")))?
        }
        LakeTarget::Iceberg(t) => {
            crate::iceberg::open_iceberg(
                &t.catalog,
                &t.catalog_name,
                &t.namespace,
                &t.table,
                storage,
                options,
            )
            .await
        }
        LakeTarget::DuckLake(t) => {
            crate::ducklake::open_ducklake(&t.catalog, &t.schema, &t.table, storage, options).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_targets_of_their_format_and_schema() {
        let t = LakeName::iceberg("postgresql://h/lake")
            .with_lake_table("sales.orders")
            .with_catalog_name("prod")
            .target(None)
            .unwrap();
        let LakeTarget::Iceberg(t) = t else {
            panic!("{t:?}")
        };
        assert_eq!(
            (
                t.namespace.as_str(),
                t.table.as_str(),
                t.catalog_name.as_str()
            ),
            ("sales", "orders", "prod")
        );
        // The source's name in the format's default schema, when no lake table is given.
        let t = LakeName::ducklake("postgresql://h/lake")
            .target(Some("orders"))
            .unwrap();
        assert_eq!(t.name(), "main.orders");
        let t = LakeName::iceberg("postgresql://h/lake")
            .target(Some("orders"))
            .unwrap();
        assert_eq!(t.name(), "default.orders");
        assert_eq!(
            LakeName::delta("/lake/t").target(None).unwrap().name(),
            "/lake/t"
        );
        // Each format's own options reach its target.
        let t = LakeName::delta("/lake/t").with_checkpoint_interval(3);
        let LakeTarget::Delta(t) = t.target(None).unwrap() else {
            panic!()
        };
        assert_eq!(t.checkpoint_interval, 3);
        let t = LakeName::iceberg("postgresql://h/l").with_warehouse("/w");
        let LakeTarget::Iceberg(t) = t.target(Some("o")).unwrap() else {
            panic!()
        };
        assert_eq!(t.warehouse.as_deref(), Some("/w"));
        let t = LakeName::ducklake("postgresql://h/l").with_data_path("/d/");
        let LakeTarget::DuckLake(t) = t.target(Some("o")).unwrap() else {
            panic!()
        };
        assert_eq!(t.data_path.as_deref(), Some("/d/"));
    }

    #[test]
    fn what_does_not_name_one_table_of_one_format_is_refused_by_name() {
        let refused = |n: LakeName| n.target(None).unwrap_err();
        let two = LakeName {
            delta: Some("/t".into()),
            iceberg: Some("postgresql://h/l".into()),
            ..LakeName::default()
        };
        assert!(refused(two).is_usage());
        assert!(refused(LakeName::default()).to_string().contains("--delta"));
        let e = refused(LakeName::delta("/t").with_lake_table("s.t"));
        assert!(e.to_string().contains("is a catalog's"), "{e}");
        let e = refused(LakeName::ducklake("postgresql://h/l").with_catalog_name("x"));
        assert!(e.to_string().contains("--catalog-name"), "{e}");
        let e = refused(LakeName::iceberg("postgresql://h/l").with_data_path("/d"));
        assert!(e.to_string().contains("--warehouse"), "{e}");
        let e = refused(LakeName::delta("/t").with_warehouse("/w"));
        assert!(e.to_string().contains("is Iceberg's"), "{e}");
        let e = refused(LakeName::ducklake("postgresql://h/l").with_checkpoint_interval(5));
        assert!(e.to_string().contains("is Delta's"), "{e}");
    }

    #[tokio::test]
    async fn a_catalogs_table_to_read_needs_its_name() {
        let e = open_lake(
            &LakeName::ducklake("postgresql://h/l"),
            &StorageOptions::default(),
            &InputOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("--lake-table"),
            "{e}"
        );
    }
}
