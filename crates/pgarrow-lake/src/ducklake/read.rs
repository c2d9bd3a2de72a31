//! A DuckLake table's current snapshot as an [`Input`], for `pgarrow import` to load into
//! PostgreSQL, whoever wrote it: its live data files, conformed to the table's current columns
//! (files written before a column was added or widened read with nulls or widened values),
//! without the rows deleted by delete files or by deletes DuckDB kept in the catalog, and with
//! the rows DuckDB inlined into the catalog instead of a file.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use pgarrow::io::{Input, InputOptions, Location, StorageOptions, TableFile};
use pgarrow::protocol::Config;
use pgarrow::{Client, Error, ErrorKind, ExportOptions, Result};

use super::catalog::{Catalog, quote_ident};
use super::columns::{LakeColumn, lake_columns_as_numbered};
use super::find_table;
use crate::sql::Rows;

/// The Parquet field ID key of Arrow field metadata.
const FIELD_ID: &str = "PARQUET:field_id";

/// The DuckLake table `schema.table` of the catalog in database `catalog` (its current
/// snapshot) as the input of a load.
///
/// # Errors
/// No catalog or no such table; an encrypted or non-Parquet data file (named); inlined rows
/// of a nested column (lists, structs, maps: flush them to files with DuckDB first); a file
/// whose column cannot be read as the table's; the catalog's and the files' errors.
pub async fn open_ducklake(
    catalog: &Config,
    schema: &str,
    table: &str,
    storage: &StorageOptions,
    options: &InputOptions,
) -> Result<Input> {
    let name = format!("{schema}.{table}");
    let mut db = Catalog::connect(catalog).await?;
    let read = read_catalog(&mut db, schema, table, storage).await;
    db.close().await;
    let read = read.map_err(|e| e.context(format!("DuckLake table {name}")))?;
    let rows = inlined_rows(catalog, &read)
        .await
        .map_err(|e| e.context(format!("DuckLake table {name}: its inlined rows")))?;
    let options = options.clone();
    let shown = format!("DuckLake table {name} (snapshot {})", read.snapshot);
    tokio::task::spawn_blocking(move || -> Result<Input> {
        let schema = table_schema(&read.columns, &read.files)?;
        Ok(Input::open_table_as(
            shown, schema, read.files, rows, &options,
        )?)
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("opening the files: {e}"))))?
    .map_err(|e| e.context(format!("DuckLake table {name}")))
}

/// What the catalog says of a table at its current snapshot.
struct Read {
    snapshot: i64,
    /// Its live columns (nested ones with their parents).
    columns: Vec<LakeColumn>,
    /// Its live data files, newest last, with the positions deleted from each.
    files: Vec<TableFile>,
    /// Its inlined-row tables with live rows.
    inlined: Vec<Inlined>,
}

/// A catalog table of rows DuckDB inlined: its name, and the top-level columns (ID, name,
/// type) of the schema version it holds.
struct Inlined {
    table: String,
    columns: Vec<(i64, String, String)>,
}

async fn read_catalog(
    db: &mut Catalog,
    schema: &str,
    table: &str,
    storage: &StorageOptions,
) -> Result<Read> {
    let exists = db
        .query("SELECT to_regclass('ducklake_metadata')::text", &[])
        .await?;
    if exists.first().and_then(|r| r[0].as_ref()).is_none() {
        return Err(ErrorKind::Usage(
            "the catalog database has no DuckLake catalog (no ducklake_metadata table): is \
             --ducklake the database DuckDB attached as its catalog?"
                .into(),
        )
        .into());
    }
    db.open(None).await?;
    db.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let read = read_at_snapshot(db, schema, table, storage).await;
    let _ = db.batch("COMMIT").await;
    read
}

fn number(v: &Option<String>) -> i64 {
    v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(-1)
}

/// A row of a catalog table live at snapshot `$2` (the statements' own).
const LIVE: &str =
    "begin_snapshot <= $2::bigint AND (end_snapshot IS NULL OR end_snapshot > $2::bigint)";

/// Reads the table at the catalog's last snapshot, in the transaction [`read_catalog`] opened.
async fn read_at_snapshot(
    db: &mut Catalog,
    schema: &str,
    table: &str,
    storage: &StorageOptions,
) -> Result<Read> {
    let snapshot = number(
        &db.query("SELECT max(snapshot_id)::text FROM ducklake_snapshot", &[])
            .await?
            .first()
            .and_then(|r| r[0].clone()),
    );
    let Some(t) = find_table(db, schema, table).await? else {
        return Err(ErrorKind::Usage("the catalog has no such table".into()).into());
    };
    let id = t.id.to_string();
    let s = snapshot.to_string();
    let rows = db
        .query(
            &format!(
                "SELECT data_file_id::text, path, path_is_relative::text, file_format, \
                 record_count::text, (encryption_key IS NOT NULL)::text \
                 FROM ducklake_data_file f WHERE table_id = $1::bigint AND {LIVE} \
                 ORDER BY f.file_order NULLS LAST, f.data_file_id"
            ),
            &[Some(&id), Some(&s)],
        )
        .await?;
    let deleted = inlined_deletes(db, t.id, &s).await?;
    let delete_files = db
        .query(
            &format!(
                "SELECT data_file_id::text, path, path_is_relative::text, format \
                 FROM ducklake_delete_file WHERE table_id = $1::bigint AND {LIVE}"
            ),
            &[Some(&id), Some(&s)],
        )
        .await?;
    let files = table_files(&t.dir, &rows, &delete_files, deleted, storage).await?;
    let inlined = inlined_tables(db, &id, &s).await?;
    Ok(Read {
        snapshot,
        columns: t.columns,
        files,
        inlined,
    })
}

/// A file's path from its catalog row's `path` and `path_is_relative`: a relative one is
/// under the table's directory `dir`.
fn path_in(dir: &str, path: &Option<String>, relative: &Option<String>) -> String {
    let path = path.clone().unwrap_or_default();
    match relative.as_deref() {
        Some("true") => format!("{dir}{path}"),
        _ => path,
    }
}

/// The deletes of table `table_id` kept in the catalog at snapshot `s` (DuckDB's small
/// deletes): positions, by the ID of their file.
///
/// # Errors
/// A negative position; the catalog's errors.
async fn inlined_deletes(
    db: &mut Catalog,
    table_id: i64,
    s: &str,
) -> Result<HashMap<i64, Vec<u64>>> {
    let mut deleted: HashMap<i64, Vec<u64>> = HashMap::new();
    let inlined_deletes = format!("ducklake_inlined_delete_{table_id}");
    if db
        .query("SELECT to_regclass($1)::text", &[Some(&inlined_deletes)])
        .await?
        .first()
        .and_then(|r| r[0].as_ref())
        .is_none()
    {
        return Ok(deleted);
    }
    for r in db
        .query(
            &format!(
                "SELECT file_id::text, row_id::text FROM {} \
                 WHERE begin_snapshot <= $1::bigint",
                quote_ident(&inlined_deletes)
            ),
            &[Some(s)],
        )
        .await?
    {
        let at = u64::try_from(number(&r[1])).map_err(|_| {
            Error::from(ErrorKind::Unexpected(format!(
                "{inlined_deletes} deletes a negative row of file {}",
                number(&r[0])
            )))
        })?;
        deleted.entry(number(&r[0])).or_default().push(at);
    }
    Ok(deleted)
}

/// The live data files of the table in directory `dir` (their catalog `rows`, in order),
/// each with the positions deleted from it: those `deleted` in the catalog and those its
/// `delete_files` list.
///
/// # Errors
/// A data file that is not Parquet or is encrypted (named); the delete files' errors.
async fn table_files(
    dir: &str,
    rows: &Rows,
    delete_files: &Rows,
    mut deleted: HashMap<i64, Vec<u64>>,
    storage: &StorageOptions,
) -> Result<Vec<TableFile>> {
    let mut files = Vec::with_capacity(rows.len());
    for r in rows {
        let path = path_in(dir, &r[1], &r[2]);
        let format = r[3].as_deref().unwrap_or("parquet");
        if !format.eq_ignore_ascii_case("parquet") {
            return Err(ErrorKind::InvalidInput(format!(
                "its data file {path} is {format}, and pgarrow reads Parquet"
            ))
            .into());
        }
        if r[5].as_deref() == Some("true") {
            return Err(ErrorKind::InvalidInput(format!(
                "its data file {path} is encrypted, which pgarrow does not read"
            ))
            .into());
        }
        let rows = u64::try_from(number(&r[4])).ok();
        let file_id = number(&r[0]);
        let mut gone = deleted.remove(&file_id).unwrap_or_default();
        for d in delete_files.iter().filter(|d| number(&d[0]) == file_id) {
            let at = path_in(dir, &d[1], &d[2]);
            gone.extend(delete_positions(&at, storage).await?);
        }
        files.push(
            TableFile::new(Location::parse(&path, storage)?, rows, Vec::new()).with_deleted(gone),
        );
    }
    Ok(files)
}

/// The tables of rows DuckDB inlined into the catalog for table `id` with live rows at
/// snapshot `s`, each with the columns of the schema version it was written under.
async fn inlined_tables(db: &mut Catalog, id: &str, s: &str) -> Result<Vec<Inlined>> {
    let mut inlined = Vec::new();
    let tables = db
        .query(
            "SELECT i.table_name, i.schema_version::text, \
             coalesce(v.begin_snapshot, (SELECT min(snapshot_id) FROM ducklake_snapshot s \
             WHERE s.schema_version = i.schema_version))::text \
             FROM ducklake_inlined_data_tables i LEFT JOIN ducklake_schema_versions v \
             ON v.table_id = i.table_id AND v.schema_version = i.schema_version \
             WHERE i.table_id = $1::bigint ORDER BY i.schema_version",
            &[Some(id)],
        )
        .await?;
    for r in tables {
        let table_name = r[0].clone().unwrap_or_default();
        let live_rows = db
            .query(
                &format!(
                    "SELECT count(*)::text FROM {} WHERE begin_snapshot <= $1::bigint \
                     AND (end_snapshot IS NULL OR end_snapshot > $1::bigint)",
                    quote_ident(&table_name)
                ),
                &[Some(s)],
            )
            .await?;
        if number(&live_rows.first().and_then(|r| r[0].clone())) <= 0 {
            continue;
        }
        let columns = db
            .query(
                "SELECT column_id::text, column_name, column_type FROM ducklake_column \
                 WHERE table_id = $1::bigint AND parent_column IS NULL \
                 AND begin_snapshot <= $2::bigint \
                 AND (end_snapshot IS NULL OR end_snapshot > $2::bigint) ORDER BY column_order",
                &[Some(id), Some(r[2].as_deref().unwrap_or("0"))],
            )
            .await?
            .iter()
            .map(|c| {
                (
                    number(&c[0]),
                    c[1].clone().unwrap_or_default(),
                    c[2].clone().unwrap_or_default(),
                )
            })
            .collect();
        inlined.push(Inlined {
            table: table_name,
            columns,
        });
    }
    Ok(inlined)
}

/// The positions a DuckLake delete file lists (its `pos` column).
pub(super) async fn delete_positions(path: &str, storage: &StorageOptions) -> Result<Vec<u64>> {
    let location = Location::parse(path, storage)?;
    let shown = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<Vec<u64>> {
        let input = Input::open(&[location], &InputOptions::default())?;
        let mut out = Vec::new();
        for batch in input {
            let batch = batch.map_err(|e| Error::from(pgarrow::io::Error::Input(e)))?;
            let pos = batch
                .column_by_name("pos")
                .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>())
                .ok_or_else(|| {
                    Error::from(ErrorKind::InvalidInput(format!(
                        "the delete file {shown} has no int64 column \"pos\""
                    )))
                })?;
            for p in pos.iter() {
                let p = p.and_then(|p| u64::try_from(p).ok()).ok_or_else(|| {
                    Error::from(ErrorKind::InvalidInput(format!(
                        "the delete file {shown} lists a null or negative position"
                    )))
                })?;
                out.push(p);
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("reading a delete file: {e}"))))?
}

/// The rows of `read`'s inlined tables, each as the columns of its schema version, named as
/// the table names them now (a column dropped since left out).
async fn inlined_rows(catalog: &Config, read: &Read) -> Result<Vec<RecordBatch>> {
    if read.inlined.is_empty() {
        return Ok(Vec::new());
    }
    let current: HashMap<i64, &str> = read
        .columns
        .iter()
        .filter(|c| c.parent.is_none())
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    let mut client = Client::connect(catalog.clone()).await?;
    let mut out = Vec::new();
    for Inlined { table, columns } in &read.inlined {
        let mut select = Vec::new();
        for (id, name, ty) in columns {
            let Some(now) = current.get(id) else {
                continue;
            };
            let c = quote_ident(name);
            let expression = match ty.as_str() {
                "varchar" => format!("convert_from({c}, 'UTF8')"),
                "json" => format!("convert_from({c}, 'UTF8')::json"),
                "timestamptz" => format!("{c}::timestamptz"),
                "timestamp" | "timestamp_s" | "timestamp_ms" => format!("{c}::timestamp"),
                "date" => format!("{c}::date"),
                "list" | "struct" | "map" => {
                    return Err(ErrorKind::InvalidInput(format!(
                        "column \"{now}\" ({ty}) has rows DuckDB inlined into the catalog as \
                         text, which pgarrow does not parse: write them to files first \
                         (in DuckDB: CALL ducklake_flush_inlined_data('<lake>'))"
                    ))
                    .into());
                }
                _ => c,
            };
            select.push(format!("{expression} AS {}", quote_ident(now)));
        }
        if select.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE begin_snapshot <= {s} \
             AND (end_snapshot IS NULL OR end_snapshot > {s}) ORDER BY row_id",
            select.join(", "),
            quote_ident(table),
            s = read.snapshot
        );
        let mut export = client
            .export(sql.as_str(), &ExportOptions::default())
            .await?;
        while let Some(batch) = export.next_batch().await? {
            out.push(batch);
        }
    }
    client.close().await.ok();
    Ok(out)
}

/// The table's Arrow schema: each current column as the first file (oldest first) that holds
/// it under its current type gives it (keeping what the file says of it: pgarrow's PostgreSQL type, an
/// extension), else from its DuckLake type; every field nullable, with its column ID as
/// its field ID.
fn table_schema(columns: &[LakeColumn], files: &[TableFile]) -> Result<Arc<Schema>> {
    let mut top: Vec<&LakeColumn> = columns.iter().filter(|c| c.parent.is_none()).collect();
    top.sort_by_key(|c| c.order);
    let mut found: Vec<Option<Field>> = vec![None; top.len()];
    crate::common::fields_from_files(files, &top, &mut found, |column, f| {
        let id = f.metadata().get(FIELD_ID)?.parse::<i64>().ok()?;
        // The file's field is the column's when DuckLake would give it the column's types,
        // nested ones included.
        let theirs = lake_columns_as_numbered(&Schema::new(vec![f.clone()])).ok()?;
        (id == column.id && same_tree(&theirs, columns, column.id))
            .then(|| f.clone().with_name(column.name.clone()).with_nullable(true))
    })?;
    let fields = top
        .iter()
        .zip(found)
        .map(|(c, field)| match field {
            Some(field) => Ok(field),
            None => field_of(c, columns),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Whether `theirs` (a file's column and its nested fields) has the types of the table's
/// column `id` and its nested columns, by ID.
fn same_tree(theirs: &[LakeColumn], columns: &[LakeColumn], id: i64) -> bool {
    let mut ours = Vec::new();
    let mut queue = vec![id];
    while let Some(at) = queue.pop() {
        for c in columns {
            if c.id == at {
                ours.push((c.id, c.ty.clone()));
            }
            if c.parent == Some(at) {
                queue.push(c.id);
            }
        }
    }
    let mut theirs: Vec<(i64, String)> = theirs.iter().map(|c| (c.id, c.ty.clone())).collect();
    ours.sort();
    theirs.sort();
    ours == theirs
}

/// The Arrow field of a column from its DuckLake type (and its nested columns').
fn field_of(column: &LakeColumn, columns: &[LakeColumn]) -> Result<Field> {
    let mut children: Vec<&LakeColumn> = columns
        .iter()
        .filter(|c| c.parent == Some(column.id))
        .collect();
    children.sort_by_key(|c| c.order);
    let unknown = || -> Error {
        ErrorKind::InvalidInput(format!(
            "column \"{}\" is of DuckLake type {}, which pgarrow does not read",
            column.name, column.ty
        ))
        .into()
    };
    let mut metadata = HashMap::from([(FIELD_ID.to_owned(), column.id.to_string())]);
    let ty = match column.ty.as_str() {
        "boolean" => DataType::Boolean,
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "int128" | "uint128" => DataType::Decimal128(38, 0),
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "varchar" => DataType::Utf8,
        "json" => {
            metadata.insert("ARROW:extension:name".into(), "arrow.json".into());
            DataType::Utf8
        }
        "blob" => DataType::Binary,
        "uuid" => {
            metadata.insert("ARROW:extension:name".into(), "arrow.uuid".into());
            DataType::FixedSizeBinary(16)
        }
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp_s" => DataType::Timestamp(TimeUnit::Second, None),
        "timestamp_ms" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "timestamp_ns" => DataType::Timestamp(TimeUnit::Nanosecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "interval" => DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
        "list" => match children.as_slice() {
            [element] => DataType::List(Arc::new(field_of(element, columns)?)),
            _ => return Err(unknown()),
        },
        "struct" => DataType::Struct(
            children
                .iter()
                .map(|c| field_of(c, columns))
                .collect::<Result<Fields>>()?,
        ),
        "map" => match children.as_slice() {
            [key, value] => {
                let key = field_of(key, columns)?.with_nullable(false);
                let entries =
                    Field::new_struct("key_value", vec![key, field_of(value, columns)?], false);
                DataType::Map(Arc::new(entries), false)
            }
            _ => return Err(unknown()),
        },
        decimal if decimal.starts_with("decimal(") => {
            let inner = decimal.trim_start_matches("decimal(").trim_end_matches(')');
            let (p, s) = inner.split_once(',').ok_or_else(unknown)?;
            let p: u8 = p.trim().parse().map_err(|_| unknown())?;
            let s: i8 = s.trim().parse().map_err(|_| unknown())?;
            DataType::Decimal128(p, s)
        }
        _ => return Err(unknown()),
    };
    Ok(Field::new(column.name.clone(), ty, true).with_metadata(metadata))
}
