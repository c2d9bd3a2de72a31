//! `GetObjects`: the catalog queries it runs and the nested batch it builds from their rows.
//!
//! PostgreSQL sees only the objects of the database it is connected to, so the one catalog is
//! `current_database()`. Each level below it (schemas, tables, columns, constraints) is one
//! flat query keyed by schema and table name; [`build`] nests the rows into the
//! [`GET_OBJECTS_SCHEMA`] batch. The queries return text through the simple query protocol,
//! and lists of names come back as JSON arrays so that names holding commas, quotes or
//! braces survive intact.

use std::collections::HashMap;
use std::sync::Arc;

use adbc_core::options::ObjectDepth;
use adbc_core::schemas::{
    COLUMN_SCHEMA, CONSTRAINT_SCHEMA, GET_OBJECTS_SCHEMA, OBJECTS_DB_SCHEMA_SCHEMA, TABLE_SCHEMA,
    USAGE_SCHEMA,
};
use arrow_array::{
    ArrayRef, BooleanArray, Int16Array, Int32Array, ListArray, RecordBatch, StringArray,
    StructArray, new_null_array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field};

/// One row of a simple-query result, as text (`None` is SQL NULL).
pub(crate) type TextRow = Vec<Option<String>>;

/// GetObjects' filters as ADBC gives them: `catalog`, `db_schema`, `table_name` and
/// `column_name` are LIKE patterns (`%`, `_`), `table_type` a list of exact table types;
/// `None` means no filter.
#[derive(Debug, Default, Clone)]
pub(crate) struct ObjectFilter {
    pub(crate) catalog: Option<String>,
    pub(crate) db_schema: Option<String>,
    pub(crate) table_name: Option<String>,
    pub(crate) table_type: Option<Vec<String>>,
    pub(crate) column_name: Option<String>,
}

/// The `pg_class` relation kinds that hold rows, with the table type GetObjects reports.
pub(crate) const TABLE_KINDS: [(char, &str); 5] = [
    ('r', "table"),
    ('v', "view"),
    ('m', "materialized_view"),
    ('f', "foreign_table"),
    ('p', "partitioned_table"),
];

/// The `pg_constraint` kinds GetObjects reports, with their ADBC constraint type.
const CONSTRAINT_KINDS: [(&str, &str); 4] = [
    ("p", "PRIMARY KEY"),
    ("u", "UNIQUE"),
    ("f", "FOREIGN KEY"),
    ("c", "CHECK"),
];

/// The SQL statements GetObjects runs for `depth` (each one statement, run with PostgreSQL's
/// simple query protocol, returning text rows), in order: catalogs, then schemas, tables,
/// columns and constraints as far as `depth` reaches.
pub(crate) fn queries(depth: ObjectDepth, filter: &ObjectFilter) -> Vec<String> {
    let all = [
        catalog_query(filter),
        schema_query(filter),
        table_query(filter),
        column_query(filter),
        constraint_query(filter),
    ];
    all.into_iter().take(query_count(depth)).collect()
}

/// The GetObjects batch from the rows of each of `queries(depth, filter)`'s statements, in
/// the same order.
pub(crate) fn build(
    depth: ObjectDepth,
    results: Vec<Vec<TextRow>>,
) -> Result<RecordBatch, ArrowError> {
    let expected = query_count(depth);
    if results.len() != expected {
        return Err(ArrowError::InvalidArgumentError(format!(
            "GetObjects: {} query results for depth {depth:?}, expected {expected}",
            results.len()
        )));
    }
    let level = level(depth);
    let mut results = results.into_iter();
    let mut next = move || results.next().unwrap_or_default();

    let catalogs = parse_catalogs(&next())?;
    let schemas = if level >= Level::Schemas {
        let mut schemas = parse_schemas(&next(), level)?;
        if level >= Level::Tables {
            add_tables(&mut schemas, &next(), level)?;
        }
        if level >= Level::Columns {
            add_columns(&mut schemas, &next())?;
            add_constraints(&mut schemas, &next())?;
        }
        Some(schemas)
    } else {
        None
    };
    // Every schema belongs to the one catalog (there is never more than one).
    let per_catalog: Vec<Option<&[DbSchema]>> =
        catalogs.iter().map(|_| schemas.as_deref()).collect();

    let catalog_names = strings(catalogs.iter().map(|name| Some(name.as_str())));
    let schema_lists = list_array(
        GET_OBJECTS_SCHEMA
            .field_with_name("catalog_db_schemas")?
            .data_type(),
        &per_catalog,
        db_schema_array,
    )?;
    RecordBatch::try_new(
        GET_OBJECTS_SCHEMA.clone(),
        vec![catalog_names, schema_lists],
    )
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// How far down the object tree a depth reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Catalogs,
    Schemas,
    Tables,
    Columns,
}

/// The level `depth` reaches (`All` is the same as `Columns`).
fn level(depth: ObjectDepth) -> Level {
    match depth {
        ObjectDepth::Catalogs => Level::Catalogs,
        ObjectDepth::Schemas => Level::Schemas,
        ObjectDepth::Tables => Level::Tables,
        ObjectDepth::Columns | ObjectDepth::All => Level::Columns,
    }
}

/// How many statements `queries` gives for `depth`: columns and constraints are two.
fn query_count(depth: ObjectDepth) -> usize {
    match level(depth) {
        Level::Catalogs => 1,
        Level::Schemas => 2,
        Level::Tables => 3,
        Level::Columns => 5,
    }
}

/// Catalogs: one row `(catalog_name)`, or none when the catalog pattern does not match.
fn catalog_query(filter: &ObjectFilter) -> String {
    let conditions = catalog_conditions(filter);
    format!(
        "SELECT pg_catalog.current_database(){}",
        where_clause(&conditions)
    )
}

/// Schemas: rows `(schema_name)`.
fn schema_query(filter: &ObjectFilter) -> String {
    format!(
        "SELECT n.nspname \
         FROM pg_catalog.pg_namespace n{} \
         ORDER BY n.nspname",
        where_clause(&schema_conditions(filter))
    )
}

/// Tables: rows `(schema_name, table_name, table_type)`.
fn table_query(filter: &ObjectFilter) -> String {
    format!(
        "SELECT n.nspname, c.relname, {} \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace{} \
         ORDER BY n.nspname, c.relname",
        table_type_expression(),
        where_clause(&table_conditions(filter))
    )
}

/// Columns: rows `(schema_name, table_name, column_name, attnum, remarks, type_name,
/// not_null, default, is_autoincrement, is_generated)`, the flags as `t`/`f`. A generated
/// column's expression is not a default (as in `information_schema.columns`), so its
/// `default` is NULL.
fn column_query(filter: &ObjectFilter) -> String {
    let mut conditions = table_conditions(filter);
    conditions.push("a.attnum > 0".to_owned());
    conditions.push("NOT a.attisdropped".to_owned());
    conditions.extend(like("a.attname", filter.column_name.as_deref()));
    format!(
        "SELECT n.nspname, c.relname, a.attname, a.attnum, \
         pg_catalog.col_description(c.oid, a.attnum), \
         pg_catalog.format_type(a.atttypid, a.atttypmod), \
         a.attnotnull, \
         CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END, \
         a.attidentity <> '' \
         OR COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false), \
         a.attgenerated <> '' \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum{} \
         ORDER BY n.nspname, c.relname, a.attnum",
        where_clause(&conditions)
    )
}

/// Constraints: rows `(schema_name, table_name, constraint_name, contype, column_names,
/// fk_catalog, fk_schema, fk_table, fk_column_names)`, the column name lists as JSON arrays
/// (in `conkey` and `confkey` order) and the `fk_` fields NULL unless a foreign key.
fn constraint_query(filter: &ObjectFilter) -> String {
    let mut conditions = table_conditions(filter);
    let kinds: Vec<String> = CONSTRAINT_KINDS
        .iter()
        .map(|(kind, _)| format!("'{kind}'"))
        .collect();
    conditions.push(format!("con.contype IN ({})", kinds.join(", ")));
    format!(
        "SELECT n.nspname, c.relname, con.conname, con.contype, {}, \
         CASE WHEN con.contype = 'f' THEN pg_catalog.current_database() END, \
         fn.nspname, fc.relname, \
         CASE WHEN con.contype = 'f' THEN {} END \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid \
         LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace{} \
         ORDER BY n.nspname, c.relname, con.conname",
        attribute_names_json("con.conrelid", "con.conkey"),
        attribute_names_json("con.confrelid", "con.confkey"),
        where_clause(&conditions)
    )
}

/// The names of `relation`'s attributes numbered in the array `attnums`, as a JSON array in
/// the array's order (`[]` when it is NULL).
fn attribute_names_json(relation: &str, attnums: &str) -> String {
    format!(
        "pg_catalog.array_to_json(ARRAY(\
         SELECT a.attname \
         FROM pg_catalog.unnest({attnums}) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = {relation} AND a.attnum = k.attnum \
         ORDER BY k.ord))::text"
    )
}

/// The SQL expression giving `c.relkind`'s table type.
fn table_type_expression() -> String {
    let arms: String = TABLE_KINDS
        .iter()
        .map(|(kind, name)| format!(" WHEN '{kind}' THEN '{name}'"))
        .collect();
    format!("CASE c.relkind{arms} END")
}

/// Conditions on `current_database()` alone; later queries repeat them so that a catalog
/// pattern that does not match makes every query return nothing.
fn catalog_conditions(filter: &ObjectFilter) -> Vec<String> {
    like("pg_catalog.current_database()", filter.catalog.as_deref())
        .into_iter()
        .collect()
}

/// Conditions on the namespace `n`: not a TOAST or temporary schema, and the schema pattern.
fn schema_conditions(filter: &ObjectFilter) -> Vec<String> {
    let mut conditions = catalog_conditions(filter);
    // pg_toast, pg_toast_temp_N and pg_temp_N; a regular expression needs no escaped `_`.
    conditions.push("n.nspname !~ '^pg_(toast|temp_)'".to_owned());
    conditions.extend(like("n.nspname", filter.db_schema.as_deref()));
    conditions
}

/// Conditions on the relation `c` in namespace `n`: a kind that holds rows (of the wanted
/// table types, where an empty list, like none, wants all), and the table name pattern.
pub(crate) fn table_conditions(filter: &ObjectFilter) -> Vec<String> {
    let mut conditions = schema_conditions(filter);
    let wanted = filter
        .table_type
        .as_deref()
        .filter(|types| !types.is_empty());
    let kinds: Vec<char> = TABLE_KINDS
        .iter()
        .filter(|(_, name)| wanted.is_none_or(|types| types.iter().any(|t| t == name)))
        .map(|(kind, _)| *kind)
        .collect();
    conditions.push(relkind_in(&kinds));
    conditions.extend(like("c.relname", filter.table_name.as_deref()));
    conditions
}

/// `c.relkind IN (...)`, or `false` for no kinds (table types that none matches).
fn relkind_in(kinds: &[char]) -> String {
    if kinds.is_empty() {
        return "false".to_owned();
    }
    let kinds: Vec<String> = kinds.iter().map(|kind| format!("'{kind}'")).collect();
    format!("c.relkind IN ({})", kinds.join(", "))
}

/// `expr LIKE pattern`, or nothing without a pattern.
fn like(expr: &str, pattern: Option<&str>) -> Option<String> {
    let pattern = pattern?;
    // PostgreSQL names cannot hold NUL, and the simple query protocol would cut the
    // statement at it, so such a pattern matches nothing.
    if pattern.contains('\0') {
        return Some("false".to_owned());
    }
    Some(format!("{expr} LIKE {}", literal(pattern)))
}

/// `text` as an SQL string literal. Quotes are doubled; with a backslash it is an `E''`
/// literal with backslashes doubled, so its meaning does not depend on
/// `standard_conforming_strings`.
fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// ` WHERE a AND b ...`, or nothing without conditions.
pub(crate) fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

// ---------------------------------------------------------------------------------------------
// Rows to objects
// ---------------------------------------------------------------------------------------------

/// A schema and, at depths that reach them, its tables.
#[derive(Debug)]
struct DbSchema {
    name: String,
    tables: Option<Vec<Table>>,
}

/// A table and, at depths that reach them, its columns and constraints.
#[derive(Debug)]
struct Table {
    name: String,
    table_type: String,
    columns: Option<Vec<Column>>,
    constraints: Option<Vec<Constraint>>,
}

/// A column, with the fields GetObjects fills.
#[derive(Debug)]
struct Column {
    name: String,
    ordinal: i32,
    remarks: Option<String>,
    type_name: Option<String>,
    not_null: bool,
    default: Option<String>,
    autoincrement: bool,
    generated: bool,
}

/// A constraint; `usage` (the referenced columns) only for foreign keys.
#[derive(Debug)]
struct Constraint {
    name: String,
    constraint_type: &'static str,
    column_names: Vec<String>,
    usage: Option<Vec<Usage>>,
}

/// One column a foreign key references.
#[derive(Debug)]
struct Usage {
    catalog: Option<String>,
    db_schema: Option<String>,
    table: String,
    column: String,
}

/// One row of one query, checked to have the query's width, with typed field accessors that
/// name the query, row and column in their errors.
struct Row<'a> {
    query: &'static str,
    index: usize,
    fields: &'a [Option<String>],
}

impl<'a> Row<'a> {
    /// Row `index` of `query`'s result, which must have `width` fields.
    fn new(
        query: &'static str,
        index: usize,
        fields: &'a [Option<String>],
        width: usize,
    ) -> Result<Self, ArrowError> {
        let row = Self {
            query,
            index,
            fields,
        };
        if fields.len() != width {
            return Err(row.error(format!("has {} fields, expected {width}", fields.len())));
        }
        Ok(row)
    }

    /// An error about this row.
    fn error(&self, message: impl std::fmt::Display) -> ArrowError {
        ArrowError::ParseError(format!(
            "GetObjects: row {} of the {} query {message}",
            self.index, self.query
        ))
    }

    /// Field `i`, `None` when NULL.
    fn optional(&self, i: usize) -> Option<&'a str> {
        self.fields.get(i).and_then(Option::as_deref)
    }

    /// Field `i` (`column`), which must not be NULL.
    fn text(&self, i: usize, column: &str) -> Result<&'a str, ArrowError> {
        self.optional(i)
            .ok_or_else(|| self.error(format_args!("has a NULL {column}")))
    }

    /// Field `i` (`column`) as a boolean in PostgreSQL's text form.
    fn boolean(&self, i: usize, column: &str) -> Result<bool, ArrowError> {
        match self.text(i, column)? {
            "t" | "true" => Ok(true),
            "f" | "false" => Ok(false),
            other => Err(self.error(format_args!("has {column} {other:?}, not a boolean"))),
        }
    }

    /// Field `i` (`column`) as a 32-bit integer.
    fn int(&self, i: usize, column: &str) -> Result<i32, ArrowError> {
        let text = self.text(i, column)?;
        text.parse()
            .map_err(|_| self.error(format_args!("has {column} {text:?}, not an integer")))
    }

    /// Field `i` (`column`) as a JSON array of names.
    fn names(&self, i: usize, column: &str) -> Result<Vec<String>, ArrowError> {
        let text = self.text(i, column)?;
        serde_json::from_str(text)
            .map_err(|e| self.error(format_args!("has {column} {text:?}, not a name array: {e}")))
    }
}

/// Each row of `rows` checked to have `width` fields.
fn rows<'a>(
    query: &'static str,
    rows: &'a [TextRow],
    width: usize,
) -> impl Iterator<Item = Result<Row<'a>, ArrowError>> {
    rows.iter()
        .enumerate()
        .map(move |(index, fields)| Row::new(query, index, fields, width))
}

/// The catalog names.
fn parse_catalogs(result: &[TextRow]) -> Result<Vec<String>, ArrowError> {
    rows("catalog", result, 1)
        .map(|row| Ok(row?.text(0, "catalog_name")?.to_owned()))
        .collect()
}

/// The schemas, each with an empty table list if `level` reaches tables.
fn parse_schemas(result: &[TextRow], level: Level) -> Result<Vec<DbSchema>, ArrowError> {
    rows("schema", result, 1)
        .map(|row| {
            Ok(DbSchema {
                name: row?.text(0, "schema_name")?.to_owned(),
                tables: (level >= Level::Tables).then(Vec::new),
            })
        })
        .collect()
}

/// Adds each table row to its schema, with empty column and constraint lists if `level`
/// reaches columns.
fn add_tables(
    schemas: &mut [DbSchema],
    result: &[TextRow],
    level: Level,
) -> Result<(), ArrowError> {
    let index: HashMap<String, usize> = schemas
        .iter()
        .enumerate()
        .map(|(i, schema)| (schema.name.clone(), i))
        .collect();
    for row in rows("table", result, 3) {
        let row = row?;
        let table = Table {
            name: row.text(1, "table_name")?.to_owned(),
            table_type: row.text(2, "table_type")?.to_owned(),
            columns: (level >= Level::Columns).then(Vec::new),
            constraints: (level >= Level::Columns).then(Vec::new),
        };
        // The statements may not share a snapshot: a schema created between them has no
        // parent here, and is left out.
        let tables = index
            .get(row.text(0, "schema_name")?)
            .and_then(|&i| schemas[i].tables.as_mut());
        if let Some(tables) = tables {
            tables.push(table);
        }
    }
    Ok(())
}

/// Where each table is in `schemas`, by (schema name, table name).
fn table_index(schemas: &[DbSchema]) -> HashMap<(String, String), (usize, usize)> {
    let mut index = HashMap::new();
    for (s, schema) in schemas.iter().enumerate() {
        for (t, table) in schema.tables.iter().flatten().enumerate() {
            index.insert((schema.name.clone(), table.name.clone()), (s, t));
        }
    }
    index
}

/// The table of `row` (schema name in field 0, table name in field 1), if it is in
/// `schemas` (one created between the statements is not).
fn table_of<'s>(
    schemas: &'s mut [DbSchema],
    index: &HashMap<(String, String), (usize, usize)>,
    row: &Row<'_>,
) -> Result<Option<&'s mut Table>, ArrowError> {
    let key = (
        row.text(0, "schema_name")?.to_owned(),
        row.text(1, "table_name")?.to_owned(),
    );
    Ok(index.get(&key).and_then(|&(s, t)| {
        schemas[s]
            .tables
            .as_mut()
            .and_then(|tables| tables.get_mut(t))
    }))
}

/// Adds each column row to its table.
fn add_columns(schemas: &mut [DbSchema], result: &[TextRow]) -> Result<(), ArrowError> {
    let index = table_index(schemas);
    for row in rows("column", result, 10) {
        let row = row?;
        let column = Column {
            name: row.text(2, "column_name")?.to_owned(),
            ordinal: row.int(3, "attnum")?,
            remarks: row.optional(4).map(str::to_owned),
            type_name: row.optional(5).map(str::to_owned),
            not_null: row.boolean(6, "attnotnull")?,
            default: row.optional(7).map(str::to_owned),
            autoincrement: row.boolean(8, "is_autoincrement")?,
            generated: row.boolean(9, "is_generated")?,
        };
        let columns = table_of(schemas, &index, &row)?.and_then(|t| t.columns.as_mut());
        if let Some(columns) = columns {
            columns.push(column);
        }
    }
    Ok(())
}

/// Adds each constraint row to its table.
fn add_constraints(schemas: &mut [DbSchema], result: &[TextRow]) -> Result<(), ArrowError> {
    let index = table_index(schemas);
    for row in rows("constraint", result, 9) {
        let row = row?;
        let constraint = parse_constraint(&row)?;
        let constraints = table_of(schemas, &index, &row)?.and_then(|t| t.constraints.as_mut());
        if let Some(constraints) = constraints {
            constraints.push(constraint);
        }
    }
    Ok(())
}

/// The constraint of one constraint row.
fn parse_constraint(row: &Row<'_>) -> Result<Constraint, ArrowError> {
    let contype = row.text(3, "contype")?;
    let constraint_type = CONSTRAINT_KINDS
        .iter()
        .find(|(kind, _)| *kind == contype)
        .map(|(_, name)| *name)
        .ok_or_else(|| row.error(format_args!("has an unknown contype {contype:?}")))?;
    let usage = if contype == "f" {
        Some(parse_usage(row)?)
    } else {
        None
    };
    Ok(Constraint {
        name: row.text(2, "constraint_name")?.to_owned(),
        constraint_type,
        column_names: row.names(4, "column_names")?,
        usage,
    })
}

/// The referenced columns of one foreign key row.
fn parse_usage(row: &Row<'_>) -> Result<Vec<Usage>, ArrowError> {
    let catalog = row.optional(5);
    let db_schema = row.optional(6);
    let table = row.text(7, "fk_table")?;
    Ok(row
        .names(8, "fk_column_names")?
        .into_iter()
        .map(|column| Usage {
            catalog: catalog.map(str::to_owned),
            db_schema: db_schema.map(str::to_owned),
            table: table.to_owned(),
            column,
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Objects to arrays
// ---------------------------------------------------------------------------------------------

/// The `OBJECTS_DB_SCHEMA_SCHEMA` array of `schemas`.
fn db_schema_array(schemas: &[&DbSchema]) -> Result<ArrayRef, ArrowError> {
    struct_array(&OBJECTS_DB_SCHEMA_SCHEMA, schemas.len(), |field| {
        Ok(match field.name().as_str() {
            "db_schema_name" => Some(strings(schemas.iter().map(|s| Some(s.name.as_str())))),
            "db_schema_tables" => {
                let lists: Vec<_> = schemas.iter().map(|s| s.tables.as_deref()).collect();
                Some(list_array(field.data_type(), &lists, table_array)?)
            }
            _ => None,
        })
    })
}

/// The `TABLE_SCHEMA` array of `tables`.
fn table_array(tables: &[&Table]) -> Result<ArrayRef, ArrowError> {
    struct_array(&TABLE_SCHEMA, tables.len(), |field| {
        Ok(match field.name().as_str() {
            "table_name" => Some(strings(tables.iter().map(|t| Some(t.name.as_str())))),
            "table_type" => Some(strings(tables.iter().map(|t| Some(t.table_type.as_str())))),
            "table_columns" => {
                let lists: Vec<_> = tables.iter().map(|t| t.columns.as_deref()).collect();
                Some(list_array(field.data_type(), &lists, column_array)?)
            }
            "table_constraints" => {
                let lists: Vec<_> = tables.iter().map(|t| t.constraints.as_deref()).collect();
                Some(list_array(field.data_type(), &lists, constraint_array)?)
            }
            _ => None,
        })
    })
}

/// The `COLUMN_SCHEMA` array of `columns`; the xdbc fields PostgreSQL has no direct
/// counterpart for are NULL.
fn column_array(columns: &[&Column]) -> Result<ArrayRef, ArrowError> {
    struct_array(&COLUMN_SCHEMA, columns.len(), |field| {
        let array: ArrayRef = match field.name().as_str() {
            "column_name" => strings(columns.iter().map(|c| Some(c.name.as_str()))),
            "ordinal_position" => Arc::new(Int32Array::from_iter_values(
                columns.iter().map(|c| c.ordinal),
            )),
            "remarks" => strings(columns.iter().map(|c| c.remarks.as_deref())),
            "xdbc_type_name" => strings(columns.iter().map(|c| c.type_name.as_deref())),
            "xdbc_nullable" => Arc::new(Int16Array::from_iter_values(
                columns.iter().map(|c| i16::from(!c.not_null)),
            )),
            "xdbc_column_def" => strings(columns.iter().map(|c| c.default.as_deref())),
            "xdbc_is_nullable" => strings(
                columns
                    .iter()
                    .map(|c| Some(if c.not_null { "NO" } else { "YES" })),
            ),
            "xdbc_is_autoincrement" => booleans(columns.iter().map(|c| c.autoincrement)),
            "xdbc_is_generatedcolumn" => booleans(columns.iter().map(|c| c.generated)),
            _ => return Ok(None),
        };
        Ok(Some(array))
    })
}

/// The `CONSTRAINT_SCHEMA` array of `constraints`.
fn constraint_array(constraints: &[&Constraint]) -> Result<ArrayRef, ArrowError> {
    struct_array(&CONSTRAINT_SCHEMA, constraints.len(), |field| {
        Ok(match field.name().as_str() {
            "constraint_name" => Some(strings(constraints.iter().map(|c| Some(c.name.as_str())))),
            "constraint_type" => Some(strings(constraints.iter().map(|c| Some(c.constraint_type)))),
            "constraint_column_names" => {
                let lists: Vec<_> = constraints
                    .iter()
                    .map(|c| Some(c.column_names.as_slice()))
                    .collect();
                Some(list_array(field.data_type(), &lists, |names| {
                    Ok(strings(names.iter().map(|name| Some(name.as_str()))))
                })?)
            }
            "constraint_column_usage" => {
                let lists: Vec<_> = constraints.iter().map(|c| c.usage.as_deref()).collect();
                Some(list_array(field.data_type(), &lists, usage_array)?)
            }
            _ => None,
        })
    })
}

/// The `USAGE_SCHEMA` array of `usages`.
fn usage_array(usages: &[&Usage]) -> Result<ArrayRef, ArrowError> {
    struct_array(&USAGE_SCHEMA, usages.len(), |field| {
        Ok(match field.name().as_str() {
            "fk_catalog" => Some(strings(usages.iter().map(|u| u.catalog.as_deref()))),
            "fk_db_schema" => Some(strings(usages.iter().map(|u| u.db_schema.as_deref()))),
            "fk_table" => Some(strings(usages.iter().map(|u| Some(u.table.as_str())))),
            "fk_column_name" => Some(strings(usages.iter().map(|u| Some(u.column.as_str())))),
            _ => None,
        })
    })
}

/// A string array.
pub(crate) fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

/// A boolean array without nulls.
pub(crate) fn booleans(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<BooleanArray>())
}

/// A struct array of type `struct_type` and length `len`: each field's array from `column`,
/// or all NULL where it gives none. Going by field name keeps the arrays in the type's order.
pub(crate) fn struct_array(
    struct_type: &DataType,
    len: usize,
    mut column: impl FnMut(&Field) -> Result<Option<ArrayRef>, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Struct(fields) = struct_type else {
        return Err(ArrowError::SchemaError(format!(
            "GetObjects: expected a struct type, got {struct_type}"
        )));
    };
    let arrays = fields
        .iter()
        .map(|field| Ok(column(field)?.unwrap_or_else(|| new_null_array(field.data_type(), len))))
        .collect::<Result<Vec<_>, ArrowError>>()?;
    Ok(Arc::new(StructArray::try_new(
        fields.clone(),
        arrays,
        None,
    )?))
}

/// A list array of type `list_type` with one list per entry of `lists` (NULL for `None`),
/// its values built by `items` from all the lists' items in order.
pub(crate) fn list_array<'a, T>(
    list_type: &DataType,
    lists: &[Option<&'a [T]>],
    items: impl FnOnce(&[&'a T]) -> Result<ArrayRef, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    let DataType::List(item_field) = list_type else {
        return Err(ArrowError::SchemaError(format!(
            "GetObjects: expected a list type, got {list_type}"
        )));
    };
    let mut offsets = Vec::with_capacity(lists.len() + 1);
    offsets.push(0i32);
    let mut flat = Vec::new();
    // A NULL list takes no items: its end offset repeats the previous one.
    for list in lists {
        flat.extend(list.iter().flat_map(|items| items.iter()));
        let end = i32::try_from(flat.len()).map_err(|_| {
            ArrowError::ComputeError("GetObjects: too many objects for one list array".into())
        })?;
        offsets.push(end);
    }
    let nulls = lists
        .iter()
        .any(Option::is_none)
        .then(|| lists.iter().map(Option::is_some).collect::<NullBuffer>());
    let values = items(&flat)?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    Ok(Arc::new(ListArray::try_new(
        item_field.clone(),
        offsets,
        values,
        nulls,
    )?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    /// A text row from literal fields (the catalog tests of `statistics` use it too).
    pub(crate) fn row(fields: &[Option<&str>]) -> TextRow {
        fields.iter().map(|f| f.map(str::to_owned)).collect()
    }

    /// A text row without NULLs.
    fn text_row(fields: &[&str]) -> TextRow {
        fields.iter().map(|f| Some((*f).to_owned())).collect()
    }

    /// Field `name` of the struct array `array`.
    fn field<'a>(array: &'a dyn Array, name: &str) -> &'a ArrayRef {
        array
            .as_struct()
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no field {name}"))
    }

    /// List `i` of the list array `array`.
    fn item(array: &dyn Array, i: usize) -> ArrayRef {
        array.as_list::<i32>().value(i)
    }

    /// String `i` of `array`, `None` when NULL.
    fn text(array: &dyn Array, i: usize) -> Option<&str> {
        let strings = array.as_string::<i32>();
        strings.is_valid(i).then(|| strings.value(i))
    }

    fn catalog_rows() -> Vec<TextRow> {
        vec![text_row(&["db"])]
    }

    fn schema_rows() -> Vec<TextRow> {
        vec![text_row(&["app"]), text_row(&["empty"])]
    }

    fn table_rows() -> Vec<TextRow> {
        vec![
            text_row(&["app", "child", "table"]),
            text_row(&["app", "parent", "table"]),
            text_row(&["app", "v", "view"]),
        ]
    }

    /// A column row: `flags` are not_null, is_autoincrement and is_generated.
    fn column_row(
        table: &str,
        name: &str,
        attnum: &str,
        remarks: Option<&str>,
        default: Option<&str>,
        flags: [&str; 3],
    ) -> TextRow {
        let [not_null, autoincrement, generated] = flags.map(Some);
        row(&[
            Some("app"),
            Some(table),
            Some(name),
            Some(attnum),
            remarks,
            Some("integer"),
            not_null,
            default,
            autoincrement,
            generated,
        ])
    }

    fn column_rows() -> Vec<TextRow> {
        vec![
            column_row("child", "id", "1", None, None, ["t", "t", "f"]),
            column_row("child", "pa", "2", None, Some("0"), ["f", "f", "f"]),
            column_row("child", "doubled", "3", None, None, ["f", "f", "t"]),
            column_row("parent", "a", "1", Some("the a"), None, ["t", "f", "f"]),
            column_row("parent", "b", "2", None, None, ["t", "f", "f"]),
        ]
    }

    fn constraint_rows() -> Vec<TextRow> {
        vec![
            row(&[
                Some("app"),
                Some("child"),
                Some("child_parent_fk"),
                Some("f"),
                Some(r#"["pb","pa"]"#),
                Some("db"),
                Some("app"),
                Some("parent"),
                Some(r#"["b","a"]"#),
            ]),
            row(&[
                Some("app"),
                Some("child"),
                Some("child_pkey"),
                Some("p"),
                Some(r#"["id"]"#),
                None,
                None,
                None,
                None,
            ]),
            row(&[
                Some("app"),
                Some("parent"),
                Some("parent_a_b_key"),
                Some("u"),
                Some(r#"["a","b, \"c\" {d}"]"#),
                None,
                None,
                None,
                None,
            ]),
        ]
    }

    fn all_results() -> Vec<Vec<TextRow>> {
        vec![
            catalog_rows(),
            schema_rows(),
            table_rows(),
            column_rows(),
            constraint_rows(),
        ]
    }

    /// The single catalog's schema list.
    fn schemas_of(batch: &RecordBatch) -> ArrayRef {
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(text(batch.column(0), 0), Some("db"));
        item(batch.column(1), 0)
    }

    #[test]
    fn catalogs_depth_has_null_schema_lists() {
        let batch = build(ObjectDepth::Catalogs, vec![catalog_rows()]).unwrap();
        assert_eq!(batch.schema(), *GET_OBJECTS_SCHEMA);
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(text(batch.column(0), 0), Some("db"));
        assert!(batch.column(1).is_null(0));
    }

    #[test]
    fn unmatched_catalog_gives_no_rows() {
        let batch = build(ObjectDepth::All, vec![Vec::new(); 5]).unwrap();
        assert_eq!(batch.schema(), *GET_OBJECTS_SCHEMA);
        assert_eq!(batch.num_rows(), 0);
    }

    #[test]
    fn schemas_depth_has_null_table_lists() {
        let batch = build(ObjectDepth::Schemas, vec![catalog_rows(), schema_rows()]).unwrap();
        assert_eq!(batch.schema(), *GET_OBJECTS_SCHEMA);
        let schemas = schemas_of(&batch);
        assert_eq!(schemas.len(), 2);
        let names = field(&schemas, "db_schema_name");
        assert_eq!(text(names, 0), Some("app"));
        assert_eq!(text(names, 1), Some("empty"));
        let tables = field(&schemas, "db_schema_tables");
        assert_eq!(tables.null_count(), 2);
    }

    #[test]
    fn tables_depth_lists_tables_and_empty_schemas() {
        let results = vec![catalog_rows(), schema_rows(), table_rows()];
        let batch = build(ObjectDepth::Tables, results).unwrap();
        assert_eq!(batch.schema(), *GET_OBJECTS_SCHEMA);
        let schemas = schemas_of(&batch);
        let table_lists = field(&schemas, "db_schema_tables");
        assert_eq!(table_lists.null_count(), 0);
        let app = item(table_lists, 0);
        assert_eq!(app.len(), 3);
        assert_eq!(text(field(&app, "table_name"), 2), Some("v"));
        assert_eq!(text(field(&app, "table_type"), 2), Some("view"));
        assert_eq!(field(&app, "table_columns").null_count(), 3);
        assert_eq!(field(&app, "table_constraints").null_count(), 3);
        // A schema without tables has an empty list, not NULL.
        assert_eq!(item(table_lists, 1).len(), 0);
    }

    #[test]
    fn columns_depth_fills_columns() {
        for depth in [ObjectDepth::Columns, ObjectDepth::All] {
            let batch = build(depth, all_results()).unwrap();
            assert_eq!(batch.schema(), *GET_OBJECTS_SCHEMA);
            let app = item(field(&schemas_of(&batch), "db_schema_tables"), 0);
            let column_lists = field(&app, "table_columns");
            assert_eq!(column_lists.null_count(), 0);
            let child = item(column_lists, 0);
            assert_eq!(child.len(), 3);
            assert_eq!(text(field(&child, "column_name"), 1), Some("pa"));
            let ordinals =
                field(&child, "ordinal_position").as_primitive::<arrow_array::types::Int32Type>();
            assert_eq!(ordinals.values().to_vec(), vec![1, 2, 3]);
            let nullable =
                field(&child, "xdbc_nullable").as_primitive::<arrow_array::types::Int16Type>();
            assert_eq!(nullable.values().to_vec(), vec![0, 1, 1]);
            assert_eq!(text(field(&child, "xdbc_is_nullable"), 0), Some("NO"));
            assert_eq!(text(field(&child, "xdbc_is_nullable"), 1), Some("YES"));
            assert_eq!(text(field(&child, "xdbc_type_name"), 2), Some("integer"));
            assert_eq!(text(field(&child, "xdbc_column_def"), 1), Some("0"));
            assert_eq!(text(field(&child, "xdbc_column_def"), 0), None);
            let autoincrement = field(&child, "xdbc_is_autoincrement").as_boolean();
            assert_eq!(
                autoincrement.iter().collect::<Vec<_>>(),
                [Some(true), Some(false), Some(false)]
            );
            let generated = field(&child, "xdbc_is_generatedcolumn").as_boolean();
            assert_eq!(
                generated.iter().collect::<Vec<_>>(),
                [Some(false), Some(false), Some(true)]
            );
            assert_eq!(field(&child, "xdbc_data_type").null_count(), 3);
            let parent = item(column_lists, 1);
            assert_eq!(text(field(&parent, "remarks"), 0), Some("the a"));
            // A table without (matching) columns has an empty list, not NULL.
            assert_eq!(item(column_lists, 2).len(), 0);
        }
    }

    #[test]
    fn columns_depth_fills_constraints() {
        let batch = build(ObjectDepth::All, all_results()).unwrap();
        let app = item(field(&schemas_of(&batch), "db_schema_tables"), 0);
        let constraint_lists = field(&app, "table_constraints");
        assert_eq!(constraint_lists.null_count(), 0);

        let child = item(constraint_lists, 0);
        assert_eq!(child.len(), 2);
        assert_eq!(
            text(field(&child, "constraint_name"), 0),
            Some("child_parent_fk")
        );
        assert_eq!(
            text(field(&child, "constraint_type"), 0),
            Some("FOREIGN KEY")
        );
        let fk_columns = item(field(&child, "constraint_column_names"), 0);
        assert_eq!(
            (text(&fk_columns, 0), text(&fk_columns, 1)),
            (Some("pb"), Some("pa"))
        );
        let usage_lists = field(&child, "constraint_column_usage");
        let usage = item(usage_lists, 0);
        assert_eq!(usage.len(), 2);
        for (i, column) in ["b", "a"].into_iter().enumerate() {
            assert_eq!(text(field(&usage, "fk_catalog"), i), Some("db"));
            assert_eq!(text(field(&usage, "fk_db_schema"), i), Some("app"));
            assert_eq!(text(field(&usage, "fk_table"), i), Some("parent"));
            assert_eq!(text(field(&usage, "fk_column_name"), i), Some(column));
        }
        assert_eq!(
            text(field(&child, "constraint_type"), 1),
            Some("PRIMARY KEY")
        );
        assert_eq!(item(field(&child, "constraint_column_names"), 1).len(), 1);
        assert!(usage_lists.is_null(1));

        let parent = item(constraint_lists, 1);
        assert_eq!(parent.len(), 1);
        assert_eq!(text(field(&parent, "constraint_type"), 0), Some("UNIQUE"));
        let unique_columns = item(field(&parent, "constraint_column_names"), 0);
        assert_eq!(text(&unique_columns, 1), Some("b, \"c\" {d}"));

        // A table without constraints has an empty list, not NULL.
        assert_eq!(item(constraint_lists, 2).len(), 0);
    }

    #[test]
    fn rows_of_tables_not_listed_are_left_out() {
        let mut results = all_results();
        // Objects created between the statements: a table in a schema not listed, and a
        // column and a constraint of a table not listed.
        results[2].push(text_row(&["gone", "t", "table"]));
        results[3].push(column_row("gone", "x", "1", None, None, ["f", "f", "f"]));
        let mut constraint = constraint_rows().remove(1);
        constraint[1] = Some("gone".to_owned());
        results[4].push(constraint);
        let batch = build(ObjectDepth::All, results).unwrap();
        let schemas = schemas_of(&batch);
        assert_eq!(schemas.len(), 2);
        let app = item(field(&schemas, "db_schema_tables"), 0);
        assert_eq!(app.len(), 3);
        let column_counts: Vec<usize> = (0..3)
            .map(|i| item(field(&app, "table_columns"), i).len())
            .collect();
        assert_eq!(column_counts, [3, 2, 0]);
        let constraint_counts: Vec<usize> = (0..3)
            .map(|i| item(field(&app, "table_constraints"), i).len())
            .collect();
        assert_eq!(constraint_counts, [2, 1, 0]);
    }

    #[test]
    fn malformed_rows_are_errors() {
        let error =
            |results: Vec<Vec<TextRow>>| build(ObjectDepth::All, results).unwrap_err().to_string();
        assert!(error(vec![catalog_rows()]).contains("1 query results"));

        let mut results = all_results();
        results[2][0].pop();
        assert!(error(results).contains("row 0 of the table query has 2 fields, expected 3"));

        let mut results = all_results();
        results[3][1][6] = Some("maybe".to_owned());
        assert!(error(results).contains("attnotnull \"maybe\""));

        let mut results = all_results();
        results[3][1][3] = Some("x".to_owned());
        assert!(error(results).contains("attnum \"x\""));

        let mut results = all_results();
        results[4][0][8] = Some("{b,a}".to_owned());
        assert!(error(results).contains("fk_column_names"));

        let mut results = all_results();
        results[4][1][3] = Some("x".to_owned());
        assert!(error(results).contains("unknown contype"));

        let mut results = all_results();
        results[1][0][0] = None;
        assert!(error(results).contains("NULL schema_name"));
    }

    #[test]
    fn one_query_per_level() {
        let filter = ObjectFilter::default();
        let counts = [
            (ObjectDepth::Catalogs, 1),
            (ObjectDepth::Schemas, 2),
            (ObjectDepth::Tables, 3),
            (ObjectDepth::Columns, 5),
            (ObjectDepth::All, 5),
        ];
        for (depth, count) in counts {
            assert_eq!(queries(depth, &filter).len(), count, "{depth:?}");
        }
        let all = queries(ObjectDepth::All, &filter);
        assert_eq!(all[0], "SELECT pg_catalog.current_database()");
        assert!(all[1].contains("FROM pg_catalog.pg_namespace n"));
        assert!(all[3].contains("FROM pg_catalog.pg_attribute a"));
        assert!(all[4].contains("FROM pg_catalog.pg_constraint con"));
        assert!(
            all.iter()
                .all(|q| !q.contains(" LIKE E'") && !q.contains(";"))
        );
    }

    #[test]
    fn patterns_are_quoted() {
        let filter = ObjectFilter {
            catalog: Some("d%".to_owned()),
            db_schema: Some("it's".to_owned()),
            table_name: Some(r"a\_b'; DROP TABLE x; --".to_owned()),
            column_name: Some("c\0'".to_owned()),
            ..ObjectFilter::default()
        };
        let all = queries(ObjectDepth::All, &filter);
        assert_eq!(
            all[0],
            "SELECT pg_catalog.current_database() WHERE pg_catalog.current_database() LIKE 'd%'"
        );
        assert!(
            all.iter()
                .all(|q| q.contains("pg_catalog.current_database() LIKE 'd%'"))
        );
        assert!(all[1].contains("n.nspname LIKE 'it''s'"));
        let table_condition = r"c.relname LIKE E'a\\_b''; DROP TABLE x; --'";
        assert!(all[2].contains(table_condition), "{}", all[2]);
        assert!(all[4].contains(table_condition));
        // NUL cannot be sent; no name holds it, so the pattern matches nothing.
        assert!(all[3].contains("NOT a.attisdropped AND false"));
        assert!(!all[3].contains('\0'));
    }

    #[test]
    fn table_types_select_relation_kinds() {
        let filter = |types: &[&str]| ObjectFilter {
            table_type: Some(types.iter().map(|t| (*t).to_owned()).collect()),
            ..ObjectFilter::default()
        };
        let tables = |types: &[&str]| queries(ObjectDepth::Tables, &filter(types)).remove(2);
        assert!(
            tables(&["view", "partitioned_table"]).contains("AND c.relkind IN ('v', 'p') ORDER BY")
        );
        assert!(tables(&["TABLE", "x'"]).contains("AND false ORDER BY"));
        assert_eq!(
            tables(&[]),
            queries(ObjectDepth::Tables, &ObjectFilter::default())[2]
        );
    }

    #[test]
    fn literals() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("o'k"), "'o''k'");
        assert_eq!(literal(r"a\'b"), r"E'a\\''b'");
    }
}
