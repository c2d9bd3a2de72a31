//! `GetStatistics` and `GetStatisticNames`: the planner's estimates from PostgreSQL's catalog.
//!
//! PostgreSQL keeps only estimates, the ones `ANALYZE` (and autovacuum) leave behind, so every
//! statistic is approximate and a request for exact ones is `NOT_IMPLEMENTED`, as with the
//! official PostgreSQL driver. What is reported, per table, materialized view or
//! partitioned table:
//!
//! * the table's row count from `pg_class.reltuples` (`column_name` NULL), left out while the
//!   table was never vacuumed or analyzed (`-1` from PostgreSQL 14 on; PostgreSQL 13 stores 0
//!   for that and its 0 is reported);
//! * per column, from `pg_stats`: the null count (`null_frac * reltuples`), the average byte
//!   width (`avg_width`) and the distinct count (`n_distinct`, or `-n_distinct * reltuples`
//!   where it is negative, a fraction of the rows). `n_distinct` 0 means unknown (a type
//!   without an equality operator, a column of NULLs only) and gives no distinct count.
//!
//! Every value is a `float64` in the value union: ADBC defines the counts as `float64` when
//! approximate (`int64` only when exact) and the byte width as `float64`; one member per key
//! also spares readers a type that depends on the value. A count derived from a fraction is
//! rounded to a whole number of rows: `null_frac` and `reltuples` are `float4`, and their
//! product carries their rounding (`0.33333334 * 3`).
//!
//! `pg_stats` keeps a table's own statistics (`inherited = false`) apart from those of the
//! table with its inheritance children; a partitioned table has only the latter. Each table
//! reports the set that goes with its `reltuples`: its own, or for a partitioned table, its
//! partitions'.
//!
//! The filters are GetObjects': `catalog`, `db_schema` and `table_name` are LIKE patterns
//! (the catalog is the connected database, the only one a session sees), and the same
//! schemas are left out (TOAST and temporary ones). The system schemas `pg_catalog` and
//! `information_schema` take part only when the schema pattern names them, without `%`.

use std::sync::Arc;

use adbc_core::constants::{
    ADBC_STATISTIC_AVERAGE_BYTE_WIDTH_KEY, ADBC_STATISTIC_DISTINCT_COUNT_KEY,
    ADBC_STATISTIC_NULL_COUNT_KEY, ADBC_STATISTIC_ROW_COUNT_KEY,
};
use adbc_core::error::Status;
use adbc_core::options::ObjectDepth;
use adbc_core::schemas::{
    GET_STATISTIC_NAMES_SCHEMA, GET_STATISTICS_SCHEMA, STATISTIC_VALUE_SCHEMA,
    STATISTICS_DB_SCHEMA_SCHEMA, STATISTICS_SCHEMA,
};
use arrow_array::{ArrayRef, Float64Array, Int16Array, RecordBatch, UnionArray, new_empty_array};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{ArrowError, DataType};
use pgarrow::protocol::quote_literal;

use crate::error::{Result, error};
use crate::objects::{
    self, ObjectFilter, TextRow, booleans, list_array, strings, struct_array, table_conditions,
    where_clause,
};
use crate::session::Session;

/// The table types that have statistics: those `ANALYZE` samples.
const ANALYZED_TABLE_TYPES: [&str; 3] = ["table", "materialized_view", "partitioned_table"];

/// The schemas left out unless the schema pattern names them.
const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

/// The union member (type id) every value is in: `float64`.
const FLOAT64_TYPE_ID: i8 = 2;

/// The GetStatisticNames batch: no rows, since the driver reports only ADBC's standard
/// statistics, whose keys need no names.
pub(crate) fn names_batch() -> RecordBatch {
    RecordBatch::new_empty(GET_STATISTIC_NAMES_SCHEMA.clone())
}

/// GetStatistics on `session`: the estimates of the tables that `catalog`, `db_schema` and
/// `table_name` (LIKE patterns, `None` for any) match.
///
/// # Errors
/// `NOT_IMPLEMENTED` when `approximate` is false (PostgreSQL has no exact statistics); the
/// catalog queries' errors.
pub(crate) fn get(
    session: &Session,
    catalog: Option<&str>,
    db_schema: Option<&str>,
    table_name: Option<&str>,
    approximate: bool,
) -> Result<RecordBatch> {
    if !approximate {
        return Err(error(
            Status::NotImplemented,
            "pgarrow: PostgreSQL keeps only approximate statistics (ANALYZE's estimates); \
             ask for them with approximate=true",
        ));
    }
    let filter = ObjectFilter {
        catalog: catalog.map(str::to_owned),
        db_schema: db_schema.map(str::to_owned),
        table_name: table_name.map(str::to_owned),
        table_type: Some(ANALYZED_TABLE_TYPES.map(str::to_owned).to_vec()),
        column_name: None,
    };
    let queries = queries(&filter);
    let results = session.simple_queries(queries)?;
    Ok(build(results)?)
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// The two statements GetStatistics runs (simple query protocol, text rows): GetObjects'
/// catalog query (one row when the catalog pattern matches), then [`statistics_query`].
fn queries(filter: &ObjectFilter) -> Vec<String> {
    let mut queries = objects::queries(ObjectDepth::Catalogs, filter);
    queries.push(statistics_query(filter));
    queries
}

/// Rows `(schema_name, table_name, reltuples, column_name, null_frac, avg_width,
/// n_distinct)`: one per column with statistics, or one with NULL column fields for a table
/// without any; ordered by schema, table and column position.
fn statistics_query(filter: &ObjectFilter) -> String {
    let mut conditions = table_conditions(filter);
    if !names_system_schemas(filter.db_schema.as_deref()) {
        let names: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| quote_literal(s)).collect();
        conditions.push(format!("n.nspname NOT IN ({})", names.join(", ")));
    }
    format!(
        "SELECT n.nspname, c.relname, c.reltuples, \
         s.attname, s.null_frac, s.avg_width, s.n_distinct \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = n.nspname \
         AND s.tablename = c.relname AND s.inherited = (c.relkind = 'p') \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname{} \
         ORDER BY n.nspname, c.relname, a.attnum",
        where_clause(&conditions)
    )
}

/// Whether the schema pattern asks for the system schemas by name: given, and without `%`
/// (it still has to match them).
fn names_system_schemas(pattern: Option<&str>) -> bool {
    pattern.is_some_and(|p| !p.contains('%'))
}

// ---------------------------------------------------------------------------------------------
// Rows to statistics
// ---------------------------------------------------------------------------------------------

/// One schema's statistics, in the order reported.
#[derive(Debug, PartialEq)]
struct SchemaStatistics {
    name: String,
    statistics: Vec<Statistic>,
}

/// One statistic: of a table (`column` `None`) or of one of its columns.
#[derive(Debug, PartialEq)]
struct Statistic {
    table: String,
    column: Option<String>,
    key: i16,
    value: f64,
}

/// One row of the statistics query, parsed.
#[derive(Debug)]
struct StatisticsRow {
    schema: String,
    table: String,
    /// `None` while the table was never vacuumed or analyzed.
    reltuples: Option<f64>,
    column: Option<ColumnStats>,
}

/// A column's `pg_stats` fields.
#[derive(Debug)]
struct ColumnStats {
    name: String,
    null_frac: f64,
    avg_width: f64,
    n_distinct: f64,
}

/// The GetStatistics batch from the rows of `queries`' two statements, in order.
fn build(results: Vec<Vec<TextRow>>) -> std::result::Result<RecordBatch, ArrowError> {
    let [catalog_rows, statistics_rows]: [Vec<TextRow>; 2] =
        results.try_into().map_err(|results: Vec<_>| {
            ArrowError::InvalidArgumentError(format!(
                "GetStatistics: {} query results, expected 2",
                results.len()
            ))
        })?;
    let catalogs = catalog_rows
        .iter()
        .enumerate()
        .map(|(i, row)| match row.as_slice() {
            [Some(name)] => Ok(name.clone()),
            _ => Err(row_error("catalog", i, "is not one catalog name")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = statistics_rows
        .iter()
        .enumerate()
        .map(|(i, row)| parse_row(i, row))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let schemas = group(rows);

    let per_catalog: Vec<Option<&[SchemaStatistics]>> =
        catalogs.iter().map(|_| Some(schemas.as_slice())).collect();
    let catalog_names = strings(catalogs.iter().map(|name| Some(name.as_str())));
    let schema_lists = list_array(
        GET_STATISTICS_SCHEMA
            .field_with_name("catalog_db_schemas")?
            .data_type(),
        &per_catalog,
        db_schema_array,
    )?;
    RecordBatch::try_new(
        GET_STATISTICS_SCHEMA.clone(),
        vec![catalog_names, schema_lists],
    )
}

/// An error about row `index` of the `query` query.
fn row_error(query: &str, index: usize, message: impl std::fmt::Display) -> ArrowError {
    ArrowError::ParseError(format!(
        "GetStatistics: row {index} of the {query} query {message}"
    ))
}

/// Row `index` of the statistics query.
fn parse_row(
    index: usize,
    row: &[Option<String>],
) -> std::result::Result<StatisticsRow, ArrowError> {
    let [
        schema,
        table,
        reltuples,
        column,
        null_frac,
        avg_width,
        n_distinct,
    ] = row
    else {
        return Err(row_error(
            "statistics",
            index,
            format_args!("has {} fields, expected 7", row.len()),
        ));
    };
    let text = |field: &Option<String>, name: &str| {
        field
            .clone()
            .ok_or_else(|| row_error("statistics", index, format_args!("has a NULL {name}")))
    };
    let number = |field: &Option<String>, name: &str| {
        let value = text(field, name)?;
        value.parse::<f64>().map_err(|_| {
            row_error(
                "statistics",
                index,
                format_args!("has {name} {value:?}, not a number"),
            )
        })
    };
    let reltuples = number(reltuples, "reltuples")?;
    let column = match column {
        None => None,
        Some(name) => Some(ColumnStats {
            name: name.clone(),
            null_frac: number(null_frac, "null_frac")?,
            avg_width: number(avg_width, "avg_width")?,
            n_distinct: number(n_distinct, "n_distinct")?,
        }),
    };
    Ok(StatisticsRow {
        schema: text(schema, "schema_name")?,
        table: text(table, "table_name")?,
        reltuples: (reltuples >= 0.0).then_some(reltuples),
        column,
    })
}

/// The statistics of `rows` (ordered by schema and table) by schema; a schema whose tables
/// have none is left out.
fn group(rows: Vec<StatisticsRow>) -> Vec<SchemaStatistics> {
    let mut schemas: Vec<SchemaStatistics> = Vec::new();
    let mut previous: Option<(String, String)> = None;
    for row in rows {
        let first_of_table = previous
            .as_ref()
            .is_none_or(|(schema, table)| *schema != row.schema || *table != row.table);
        let statistic = |column: Option<&str>, key: i16, value: f64| Statistic {
            table: row.table.clone(),
            column: column.map(str::to_owned),
            key,
            value,
        };
        let mut statistics = Vec::new();
        if first_of_table && let Some(rows) = row.reltuples {
            statistics.push(statistic(None, ADBC_STATISTIC_ROW_COUNT_KEY, rows));
        }
        if let Some(column) = &row.column {
            for (key, value) in column_statistics(column, row.reltuples) {
                statistics.push(statistic(Some(&column.name), key, value));
            }
        }
        if !statistics.is_empty() {
            match schemas.last_mut() {
                Some(schema) if schema.name == row.schema => schema.statistics.extend(statistics),
                _ => schemas.push(SchemaStatistics {
                    name: row.schema.clone(),
                    statistics,
                }),
            }
        }
        previous = Some((row.schema, row.table));
    }
    schemas
}

/// A column's statistics, in key order: average byte width, distinct count (when known),
/// null count (when the row count is known).
fn column_statistics(column: &ColumnStats, reltuples: Option<f64>) -> Vec<(i16, f64)> {
    let mut statistics = vec![(ADBC_STATISTIC_AVERAGE_BYTE_WIDTH_KEY, column.avg_width)];
    let distinct = if column.n_distinct > 0.0 {
        Some(column.n_distinct)
    } else if column.n_distinct < 0.0 {
        reltuples.map(|rows| (-column.n_distinct * rows).round())
    } else {
        // 0: unknown.
        None
    };
    statistics.extend(distinct.map(|d| (ADBC_STATISTIC_DISTINCT_COUNT_KEY, d)));
    statistics.extend(reltuples.map(|rows| {
        (
            ADBC_STATISTIC_NULL_COUNT_KEY,
            (column.null_frac * rows).round(),
        )
    }));
    statistics
}

// ---------------------------------------------------------------------------------------------
// Statistics to arrays
// ---------------------------------------------------------------------------------------------

/// The `STATISTICS_DB_SCHEMA_SCHEMA` array of `schemas`.
fn db_schema_array(schemas: &[&SchemaStatistics]) -> std::result::Result<ArrayRef, ArrowError> {
    struct_array(&STATISTICS_DB_SCHEMA_SCHEMA, schemas.len(), |field| {
        Ok(match field.name().as_str() {
            "db_schema_name" => Some(strings(schemas.iter().map(|s| Some(s.name.as_str())))),
            "db_schema_statistics" => {
                let lists: Vec<_> = schemas
                    .iter()
                    .map(|s| Some(s.statistics.as_slice()))
                    .collect();
                Some(list_array(field.data_type(), &lists, statistic_array)?)
            }
            _ => None,
        })
    })
}

/// The `STATISTICS_SCHEMA` array of `statistics`, every one approximate.
fn statistic_array(statistics: &[&Statistic]) -> std::result::Result<ArrayRef, ArrowError> {
    struct_array(&STATISTICS_SCHEMA, statistics.len(), |field| {
        let array: ArrayRef = match field.name().as_str() {
            "table_name" => strings(statistics.iter().map(|s| Some(s.table.as_str()))),
            "column_name" => strings(statistics.iter().map(|s| s.column.as_deref())),
            "statistic_key" => Arc::new(Int16Array::from_iter_values(
                statistics.iter().map(|s| s.key),
            )),
            "statistic_value" => float64_values(statistics.iter().map(|s| s.value).collect())?,
            "statistic_is_approximate" => booleans(statistics.iter().map(|_| true)),
            _ => return Ok(None),
        };
        Ok(Some(array))
    })
}

/// The dense `STATISTIC_VALUE_SCHEMA` union of `values`, all in its `float64` member.
fn float64_values(values: Vec<f64>) -> std::result::Result<ArrayRef, ArrowError> {
    let DataType::Union(fields, _) = &*STATISTIC_VALUE_SCHEMA else {
        return Err(ArrowError::SchemaError(format!(
            "GetStatistics: expected a union type, got {}",
            *STATISTIC_VALUE_SCHEMA
        )));
    };
    let len = i32::try_from(values.len()).map_err(|_| {
        ArrowError::ComputeError("GetStatistics: too many statistics for one array".into())
    })?;
    let type_ids = ScalarBuffer::from(vec![FLOAT64_TYPE_ID; values.len()]);
    let offsets = ScalarBuffer::from((0..len).collect::<Vec<i32>>());
    let floats: ArrayRef = Arc::new(Float64Array::from(values));
    let children = fields
        .iter()
        .map(|(id, field)| {
            if id == FLOAT64_TYPE_ID {
                Arc::clone(&floats)
            } else {
                new_empty_array(field.data_type())
            }
        })
        .collect();
    Ok(Arc::new(UnionArray::try_new(
        fields.clone(),
        type_ids,
        Some(offsets),
        children,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    use crate::objects::tests::row;

    /// A statistics-query row of a column.
    fn column_row(
        schema: &str,
        table: &str,
        reltuples: &str,
        column: &str,
        [null_frac, avg_width, n_distinct]: [&str; 3],
    ) -> TextRow {
        row(&[
            Some(schema),
            Some(table),
            Some(reltuples),
            Some(column),
            Some(null_frac),
            Some(avg_width),
            Some(n_distinct),
        ])
    }

    /// A statistics-query row of a table without column statistics.
    fn table_row(schema: &str, table: &str, reltuples: &str) -> TextRow {
        row(&[
            Some(schema),
            Some(table),
            Some(reltuples),
            None,
            None,
            None,
            None,
        ])
    }

    fn stat(table: &str, column: Option<&str>, key: i16, value: f64) -> Statistic {
        Statistic {
            table: table.to_owned(),
            column: column.map(str::to_owned),
            key,
            value,
        }
    }

    fn grouped(rows: Vec<TextRow>) -> Vec<SchemaStatistics> {
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, r)| parse_row(i, r).unwrap())
            .collect();
        group(rows)
    }

    const ROWS: i16 = ADBC_STATISTIC_ROW_COUNT_KEY;
    const NULLS: i16 = ADBC_STATISTIC_NULL_COUNT_KEY;
    const WIDTH: i16 = ADBC_STATISTIC_AVERAGE_BYTE_WIDTH_KEY;
    const DISTINCT: i16 = ADBC_STATISTIC_DISTINCT_COUNT_KEY;

    #[test]
    fn statistics_of_rows() {
        let schemas = grouped(vec![
            column_row("app", "t", "3", "a", ["0.33333334", "4", "-1"]),
            column_row("app", "t", "3", "b", ["0", "5", "2"]),
            column_row("app", "t", "3", "j", ["0", "20", "0"]),
            table_row("app", "unanalyzed", "-1"),
            table_row("app", "vacuumed", "1e+06"),
            column_row("other", "half", "4", "x", ["0.5", "8", "-0.5"]),
        ]);
        let app = vec![
            stat("t", None, ROWS, 3.0),
            stat("t", Some("a"), WIDTH, 4.0),
            stat("t", Some("a"), DISTINCT, 3.0),
            stat("t", Some("a"), NULLS, 1.0),
            stat("t", Some("b"), WIDTH, 5.0),
            stat("t", Some("b"), DISTINCT, 2.0),
            stat("t", Some("b"), NULLS, 0.0),
            // n_distinct 0 is unknown.
            stat("t", Some("j"), WIDTH, 20.0),
            stat("t", Some("j"), NULLS, 0.0),
            stat("vacuumed", None, ROWS, 1e6),
        ];
        let other = vec![
            stat("half", None, ROWS, 4.0),
            stat("half", Some("x"), WIDTH, 8.0),
            stat("half", Some("x"), DISTINCT, 2.0),
            stat("half", Some("x"), NULLS, 2.0),
        ];
        assert_eq!(
            schemas,
            vec![
                SchemaStatistics {
                    name: "app".into(),
                    statistics: app
                },
                SchemaStatistics {
                    name: "other".into(),
                    statistics: other
                },
            ]
        );
    }

    #[test]
    fn without_a_row_count_fractions_give_nothing() {
        // Without a row count (-1) yet with column statistics: the width and a fixed distinct
        // count stand on their own.
        let schemas = grouped(vec![
            column_row("app", "p", "-1", "a", ["0.5", "4", "-1"]),
            column_row("app", "p", "-1", "b", ["0.5", "4", "7"]),
        ]);
        assert_eq!(
            schemas[0].statistics,
            vec![
                stat("p", Some("a"), WIDTH, 4.0),
                stat("p", Some("b"), WIDTH, 4.0),
                stat("p", Some("b"), DISTINCT, 7.0),
            ]
        );
        // A schema whose tables have nothing is left out.
        assert!(grouped(vec![table_row("app", "t", "-1")]).is_empty());
    }

    #[test]
    fn batch_has_adbc_schema() {
        let rows = vec![
            column_row("app", "t", "3", "a", ["0.33333334", "4", "-1"]),
            table_row("app", "u", "5"),
        ];
        let batch = build(vec![vec![row(&[Some("db")])], rows]).unwrap();
        assert_eq!(batch.schema(), *GET_STATISTICS_SCHEMA);
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "db");
        let schemas = batch.column(1).as_list::<i32>().value(0);
        let schemas = schemas.as_struct();
        assert_eq!(schemas.len(), 1);
        let stats = schemas.column(1).as_list::<i32>().value(0);
        let stats = stats.as_struct();
        assert_eq!(stats.len(), 5);
        let tables = stats.column(0).as_string::<i32>();
        assert_eq!(tables.value(4), "u");
        assert!(stats.column(1).is_null(0));
        let values = stats.column(3).as_union();
        assert!((0..5).all(|i| values.type_id(i) == FLOAT64_TYPE_ID));
        let floats = values
            .child(FLOAT64_TYPE_ID)
            .as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!(floats.values().to_vec(), vec![3.0, 4.0, 3.0, 1.0, 5.0]);
        assert_eq!(stats.column(4).as_boolean().true_count(), 5);
    }

    #[test]
    fn unmatched_catalog_gives_no_rows() {
        let batch = build(vec![Vec::new(), Vec::new()]).unwrap();
        assert_eq!(batch.schema(), *GET_STATISTICS_SCHEMA);
        assert_eq!(batch.num_rows(), 0);
        // A matched catalog without statistics: one catalog, no schemas.
        let batch = build(vec![vec![row(&[Some("db")])], Vec::new()]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(1).as_list::<i32>().value(0).len(), 0);
    }

    #[test]
    fn malformed_rows_are_errors() {
        let error = |rows: Vec<TextRow>| {
            build(vec![vec![row(&[Some("db")])], rows])
                .unwrap_err()
                .to_string()
        };
        let mut short = table_row("app", "t", "1");
        short.pop();
        assert!(error(vec![short]).contains("row 0 of the statistics query has 6 fields"));
        assert!(error(vec![table_row("app", "t", "many")]).contains("reltuples \"many\""));
        let mut no_frac = column_row("app", "t", "1", "a", ["0", "4", "1"]);
        no_frac[4] = None;
        assert!(error(vec![no_frac]).contains("NULL null_frac"));
        assert!(
            build(vec![Vec::new()])
                .unwrap_err()
                .to_string()
                .contains("1 query results")
        );
    }

    #[test]
    fn names_are_empty() {
        let batch = names_batch();
        assert_eq!(batch.schema(), *GET_STATISTIC_NAMES_SCHEMA);
        assert_eq!(batch.num_rows(), 0);
    }

    #[test]
    fn filters_are_getobjects_patterns() {
        let filter = |db_schema: Option<&str>| ObjectFilter {
            catalog: Some("d%".into()),
            db_schema: db_schema.map(str::to_owned),
            table_name: Some("it's".into()),
            table_type: Some(ANALYZED_TABLE_TYPES.map(str::to_owned).to_vec()),
            column_name: None,
        };
        let all = queries(&filter(None));
        assert_eq!(all.len(), 2);
        assert!(all[0].starts_with("SELECT pg_catalog.current_database() WHERE"));
        let sql = &all[1];
        assert!(
            sql.contains("pg_catalog.current_database() LIKE 'd%'"),
            "{sql}"
        );
        assert!(sql.contains("c.relkind IN ('r', 'm', 'p')"), "{sql}");
        assert!(sql.contains("c.relname LIKE 'it''s'"), "{sql}");
        assert!(sql.contains("s.inherited = (c.relkind = 'p')"), "{sql}");
        let excluded = "n.nspname NOT IN ('pg_catalog', 'information_schema')";
        assert!(sql.contains(excluded));
        assert!(queries(&filter(Some("%")))[1].contains(excluded));
        assert!(queries(&filter(Some("pg%")))[1].contains(excluded));
        let named = queries(&filter(Some("pg_catalog")));
        assert!(!named[1].contains(excluded));
        assert!(named[1].contains("n.nspname LIKE 'pg_catalog'"));
    }
}
