//! An Iceberg table's current snapshot as an [`Input`]: its live data files (of any writer),
//! for `pgarrow import` to load into PostgreSQL. A table whose snapshot has delete files is
//! refused, naming them, rather than read with deleted rows in it.

use pgarrow::io::{Input, InputOptions, Location, StorageOptions, TableFile};
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Result};

use super::catalog::SqlCatalog;
use super::{blocking, read_metadata, snapshot};
use crate::avro::{self, Value};

/// The Iceberg table `namespace.table` of the SQL catalog `catalog_name` in database
/// `catalog` (its current snapshot) as the input of a load.
///
/// # Errors
/// No such table; a table without a snapshot; delete files in its snapshot (named); data
/// files that are not Parquet; the catalog's and the files' errors.
pub async fn open_iceberg(
    catalog: &Config,
    catalog_name: &str,
    namespace: &str,
    table: &str,
    storage: &StorageOptions,
    options: &InputOptions,
) -> Result<Input> {
    let name = format!("{namespace}.{table}");
    let refuse = |what: String| -> Error {
        ErrorKind::Usage(format!("Iceberg table {name}: {what}")).into()
    };
    let mut db = SqlCatalog::connect(catalog, catalog_name).await?;
    let current = db.current(namespace, table).await;
    db.close().await;
    let Some(at) = current? else {
        return Err(refuse(format!(
            "the catalog {catalog_name:?} has no such table"
        )));
    };
    let meta = read_metadata(&at, storage).await?;
    let Some(id) = meta["current-snapshot-id"].as_i64().filter(|id| *id >= 0) else {
        return Err(refuse("it has no snapshot (no rows)".into()));
    };
    let snap = snapshot(&meta, id)
        .ok_or_else(|| refuse(format!("its current snapshot {id} is not in its metadata")))?;
    let list = snap["manifest-list"]
        .as_str()
        .ok_or_else(|| refuse(format!("snapshot {id} has no manifest list")))?
        .to_owned();
    let storage2 = storage.clone();
    let files = blocking(move || {
        let entries = avro::read_file(&Location::parse(&list, &storage2)?.read()?)?.records;
        let mut files = Vec::new();
        for m in &entries {
            let path = m.get("manifest_path").as_str().unwrap_or_default();
            if m.get("content").as_i64().unwrap_or(0) != 0 {
                let n = m.get("added_files_count").as_i64().unwrap_or(0)
                    + m.get("existing_files_count").as_i64().unwrap_or(0);
                return Err(ErrorKind::Usage(format!(
                    "its snapshot has delete files ({n} in manifest {path}: rows deleted by \
                     position or by value), which pgarrow does not apply yet: rewrite the \
                     table's data files (Spark's rewrite_data_files) first"
                ))
                .into());
            }
            let manifest = avro::read_file(&Location::parse(path, &storage2)?.read()?)?;
            if manifest.meta("content") == Some("deletes") {
                return Err(ErrorKind::Usage(format!(
                    "its snapshot has delete files (manifest {path}), which pgarrow does not \
                     apply yet: rewrite the table's data files (Spark's rewrite_data_files) first"
                ))
                .into());
            }
            for entry in &manifest.records {
                // 2: deleted by this manifest's snapshot.
                if entry.get("status").as_i64() == Some(2) {
                    continue;
                }
                let data = entry.get("data_file");
                let file_path = data.get("file_path").as_str().unwrap_or_default();
                if data.get("content").as_i64().unwrap_or(0) != 0 {
                    return Err(ErrorKind::Usage(format!(
                        "its snapshot has the delete file {file_path}, which pgarrow does not \
                         apply yet"
                    ))
                    .into());
                }
                let format = data.get("file_format").as_str().unwrap_or_default();
                if !format.eq_ignore_ascii_case("parquet") {
                    return Err(ErrorKind::Usage(format!(
                        "its data file {file_path} is {format}, and pgarrow reads Parquet"
                    ))
                    .into());
                }
                let rows = match data.get("record_count") {
                    Value::Long(n) => u64::try_from(*n).ok(),
                    _ => None,
                };
                files.push(TableFile::new(
                    Location::parse(file_path, &storage2)?,
                    rows,
                    Vec::new(),
                ));
            }
        }
        Ok(files)
    })
    .await
    .map_err(|e| e.context(format!("Iceberg table {name}")))?;
    Ok(Input::open_table(
        format!("Iceberg table {name} (snapshot {id})"),
        files,
        options,
    )?)
}
