//! `CREATE TABLE` from an Arrow schema, for a load with `create`: each column gets the
//! PostgreSQL type its field metadata names where that type exists in the target database
//! (so that a round trip recreates `numeric(12,2)`, `varchar(10)`, enums and domains), else
//! the type its Arrow type maps to.
//!
//! No text from the input is pasted into SQL: built-in types are named by their OID (stable
//! across databases) and typmod, others by a string literal given to `to_regtype`; the server
//! spells the type (`format_type`), and that is what the statement uses.

use arrow_schema::{DataType, Field, Schema};

use crate::names::TableName;
use crate::protocol::quote_literal;
use crate::protocol::{Connection, quote_ident};
use crate::typedefs::FIRST_NORMAL_OID;
use crate::types::{
    META_EXTENSION_NAME, META_NOT_NULL, META_PG_OID, META_PG_TYPE, META_PG_TYPMOD, META_PRIMARY_KEY,
};
use crate::{CreateNested, Error, Result};

/// Creates `table` from `schema` unless it exists.
pub(crate) async fn create_table(
    conn: &mut Connection,
    table: &TableName,
    schema: &Schema,
    nested: CreateNested,
) -> Result<()> {
    let exists = conn
        .simple_query(&format!(
            "SELECT to_regclass({}) IS NOT NULL",
            quote_literal(&table.quoted())
        ))
        .await?;
    if first_value(&exists, 0).as_deref() == Some("t") {
        return Ok(());
    }
    if schema.fields().is_empty() {
        return Err(Error::usage(format!(
            "cannot create {table} from an input without columns"
        )));
    }
    // The types the metadata names, as the target database spells them (NULL where unknown).
    let named: Vec<String> = schema.fields().iter().map(|f| named_type(f)).collect();
    let rows = conn
        .simple_query(&format!("SELECT {}", named.join(", ")))
        .await
        .map_err(|e| {
            Error::from(e).context("looking up the types named by the input's field metadata")
        })?;
    let mut columns = Vec::with_capacity(schema.fields().len());
    let mut own = OwnTypes::default();
    for (i, f) in schema.fields().iter().enumerate() {
        let pg_type = match first_value(&rows, i) {
            Some(t) => t,
            // The metadata names a type this database lacks (an enum, a composite, a range or
            // an extension's type): refused by its name, never another type silently.
            None if f.metadata().contains_key(META_PG_TYPE) => {
                return Err(Error::usage(format!(
                    "cannot create column \"{}\" of {table}: its type {} (named by the input's \
                     field metadata) does not exist in the target database; create the type \
                     (or the table) first",
                    f.name(),
                    f.metadata()
                        .get(META_PG_TYPE)
                        .map(String::as_str)
                        .unwrap_or_default()
                )));
            }
            None if geoarrow_type(f).is_some() => geoarrow_type(f).unwrap_or_default(),
            None if nested == CreateNested::Typed => own
                .column_type(table, &[f.name()], f.data_type(), f)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "cannot create column \"{}\" of {table}: no PostgreSQL type for Arrow {}; \
                         create the table first",
                        f.name(),
                        f.data_type()
                    ))
                })?,
            None => arrow_type(f.data_type(), f).ok_or_else(|| {
                Error::usage(format!(
                    "cannot create column \"{}\" of {table}: no PostgreSQL type for Arrow {} (and \
                     its metadata names none that exists here); create the table first",
                    f.name(),
                    f.data_type()
                ))
            })?,
        };
        // What the source table declared (pgarrow's export of a table writes it).
        let not_null = match f.metadata().get(META_NOT_NULL).map(String::as_str) {
            Some("true") => " NOT NULL",
            _ => "",
        };
        columns.push(format!("{} {pg_type}{not_null}", quote_ident(f.name())));
    }
    if let Some(key) = primary_key(schema) {
        columns.push(format!("PRIMARY KEY ({key})"));
    }
    own.create(conn, table).await?;
    let columns = columns.join(", ");
    conn.simple_query(&format!("CREATE TABLE {} ({columns})", table.quoted()))
        .await
        .map_err(|e| Error::from(e).context(format!("creating {table} ({columns})")))?;
    Ok(())
}

/// The composite types a table created with [`CreateNested::Typed`] makes for its Structs
/// (each after the ones it holds), and whether a column is `hstore`.
#[derive(Debug, Default)]
struct OwnTypes {
    /// Qualified name and `CREATE TYPE` statement.
    composites: Vec<(String, String)>,
    hstore: bool,
}

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1` bytes): a longer name would be cut by the
/// server, and two cut names could meet.
const MAX_IDENT: usize = 63;

impl OwnTypes {
    /// The column type of a field of Arrow type `t` at `path` (the column, then the Struct
    /// fields down to it), planning the composite types it needs.
    fn column_type(
        &mut self,
        table: &TableName,
        path: &[&str],
        t: &DataType,
        f: &Field,
    ) -> Option<String> {
        match t {
            DataType::Dictionary(_, v) => self.column_type(table, path, v, f),
            // A Variant is JSON whatever it holds.
            DataType::Struct(fields) if pgarrow_encode::is_variant(fields) => {
                Some("jsonb".to_owned())
            }
            DataType::Struct(fields) if !is_interval(t) => {
                let mut attributes = Vec::with_capacity(fields.len());
                for child in fields {
                    let mut inner = path.to_vec();
                    inner.push(child.name());
                    let ty = self.column_type(table, &inner, child.data_type(), child)?;
                    attributes.push(format!("{} {ty}", quote_ident(child.name())));
                }
                let name = type_name(table, path);
                if !self.composites.iter().any(|(n, _)| *n == name) {
                    let sql = format!("CREATE TYPE {name} AS ({})", attributes.join(", "));
                    self.composites.push((name.clone(), sql));
                }
                Some(name)
            }
            DataType::Map(entries, _) => {
                let text = |t: &DataType| {
                    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
                };
                match entries.data_type() {
                    DataType::Struct(kv)
                        if kv.len() == 2 && text(kv[0].data_type()) && text(kv[1].data_type()) =>
                    {
                        self.hstore = true;
                        Some("hstore".to_owned())
                    }
                    _ => Some("jsonb".to_owned()),
                }
            }
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
                let mut item = item.as_ref();
                while let DataType::List(i)
                | DataType::LargeList(i)
                | DataType::FixedSizeList(i, _) = item.data_type()
                {
                    item = i.as_ref();
                }
                let element = self.column_type(table, path, item.data_type(), item)?;
                Some(format!("{element}[]"))
            }
            _ => arrow_type(t, f),
        }
    }

    /// Creates the planned composite types the target lacks (one of that name already there
    /// is used: the load then checks its attributes against the fields), after checking that
    /// `hstore` is installed if a column needs it.
    async fn create(&self, conn: &mut Connection, table: &TableName) -> Result<()> {
        if self.composites.is_empty() && !self.hstore {
            return Ok(());
        }
        let mut checks: Vec<String> = self
            .composites
            .iter()
            .map(|(name, _)| format!("to_regtype({}) IS NULL", quote_literal(name)))
            .collect();
        checks.push("to_regtype('hstore') IS NULL".to_owned());
        let rows = conn
            .simple_query(&format!("SELECT {}", checks.join(", ")))
            .await?;
        let missing: Vec<bool> = (0..checks.len())
            .map(|i| first_value(&rows, i).as_deref() == Some("t"))
            .collect();
        if self.hstore && missing[checks.len() - 1] {
            return Err(Error::usage(format!(
                "cannot create {table}: a Map of text to text becomes hstore, which the target \
                 database lacks; run CREATE EXTENSION hstore there, or create the Map as jsonb \
                 (create_nested json)"
            )));
        }
        for ((name, sql), missing) in self.composites.iter().zip(missing) {
            if missing {
                conn.simple_query(sql).await.map_err(|e| {
                    Error::from(e).context(format!("creating the type {name} for {table}"))
                })?;
            }
        }
        Ok(())
    }
}

/// `<table>_<column>[_<field>...]`, in the table's schema, quoted; a name longer than
/// PostgreSQL's limit keeps its start and ends in a hash of the whole.
fn type_name(table: &TableName, path: &[&str]) -> String {
    let mut name = table.name.clone();
    for part in path {
        name.push('_');
        name.push_str(part);
    }
    if name.len() > MAX_IDENT {
        // FNV-1a: the same name gets the same hash in every run.
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut cut = MAX_IDENT - 17;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name = format!("{}_{hash:016x}", &name[..cut]);
    }
    match &table.schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&name)),
        None => quote_ident(&name),
    }
}

/// A Struct of months, days and microseconds: how interval is given.
fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Struct(fields) if fields
        .iter()
        .map(|f| f.name().as_str())
        .eq(["months", "days", "microseconds"]))
}

/// The primary key the fields' metadata declares (`pgarrow.primary_key`: each key column's
/// place, from 1), as a column list; `None` unless the places are exactly 1 to n.
fn primary_key(schema: &Schema) -> Option<String> {
    let mut key: Vec<(usize, &str)> = schema
        .fields()
        .iter()
        .filter_map(|f| {
            let place = f.metadata().get(META_PRIMARY_KEY)?.parse().ok()?;
            Some((place, f.name().as_str()))
        })
        .collect();
    key.sort_unstable();
    let complete = !key.is_empty() && key.iter().enumerate().all(|(i, (p, _))| *p == i + 1);
    complete.then(|| {
        key.iter()
            .map(|(_, name)| quote_ident(name))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn first_value(rows: &[crate::protocol::TextRow], i: usize) -> Option<String> {
    rows.first().and_then(|r| r.get(i)).cloned().flatten()
}

/// The SQL that gives the type a field's metadata names (`format_type(...)`), or `NULL`.
/// PostGIS's type for GeoArrow's WKB (GeoParquet's columns, as the reader marks them), each
/// value's SRID set from the field's CRS by the encoder: `geography` for spherical edges.
fn geoarrow_type(f: &Field) -> Option<String> {
    if f.metadata().get(META_EXTENSION_NAME).map(String::as_str) != Some("geoarrow.wkb") {
        return None;
    }
    let spherical = f
        .metadata()
        .get("ARROW:extension:metadata")
        .is_some_and(|m| m.contains("\"edges\":\"spherical\""));
    Some(if spherical { "geography" } else { "geometry" }.to_owned())
}

fn named_type(f: &Field) -> String {
    let meta = f.metadata();
    let typmod: i32 = meta
        .get(META_PG_TYPMOD)
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1);
    let oid: Option<u32> = meta.get(META_PG_OID).and_then(|o| o.parse().ok());
    match (oid, meta.get(META_PG_TYPE)) {
        // A built-in type's own name, or a domain over it (a table's column: the server
        // describes it as its base type, the metadata names the domain), which must exist.
        (Some(oid), Some(name)) if oid > 0 && oid < FIRST_NORMAL_OID => {
            let name = quote_literal(strip_typmod(name));
            format!(
                "coalesce({}, CASE WHEN format_type({oid}, NULL) = {name} THEN \
                 format_type({oid}, {typmod}) END)",
                format_named(&name, typmod)
            )
        }
        (Some(oid), None) if oid > 0 && oid < FIRST_NORMAL_OID => {
            format!("format_type({oid}, {typmod})")
        }
        (_, Some(name)) => format_named(&quote_literal(strip_typmod(name)), typmod),
        _ => "NULL".to_owned(),
    }
}

/// `format_type` of the type named by the SQL literal `name` with `typmod`, except that a
/// domain takes none: a column of a domain over `varchar(5)` or `numeric(8,2)` is described
/// with its base type's typmod, which belongs to the domain's definition, not to its name
/// (`mydomain(5)` is refused: "type modifier is not allowed for type").
fn format_named(name: &str, typmod: i32) -> String {
    format!(
        "format_type(to_regtype({name}), CASE WHEN (SELECT typtype FROM pg_catalog.pg_type \
         WHERE oid = to_regtype({name})) = 'd' THEN NULL ELSE {typmod} END)"
    )
}

/// `numeric(12,2)` -> `numeric`, `mood[]` stays: `to_regtype` takes the name, the typmod is
/// given apart.
fn strip_typmod(name: &str) -> &str {
    match (name.find('('), name.ends_with(')')) {
        (Some(open), true) => &name[..open],
        _ => name,
    }
}

/// The PostgreSQL type of an Arrow type, for a field without usable metadata.
fn arrow_type(t: &DataType, f: &Field) -> Option<String> {
    let extension = f.metadata().get(META_EXTENSION_NAME).map(String::as_str);
    Some(match t {
        DataType::Null | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            match extension {
                Some("arrow.json") => "jsonb".to_owned(),
                _ => "text".to_owned(),
            }
        }
        DataType::Dictionary(_, v) => return arrow_type(v, f),
        DataType::Boolean => "boolean".to_owned(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".to_owned(),
        DataType::Int32 | DataType::UInt16 => "integer".to_owned(),
        DataType::Int64 | DataType::UInt32 => "bigint".to_owned(),
        DataType::UInt64 => "numeric(20,0)".to_owned(),
        DataType::Float16 | DataType::Float32 => "real".to_owned(),
        DataType::Float64 => "double precision".to_owned(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) if *s >= 0 && *s as u8 <= *p => {
            format!("numeric({p},{s})")
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric".to_owned(),
        DataType::FixedSizeBinary(16) if extension == Some("arrow.uuid") => "uuid".to_owned(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".to_owned(),
        DataType::Date32 | DataType::Date64 => "date".to_owned(),
        DataType::Time32(_) | DataType::Time64(_) => "time".to_owned(),
        DataType::Timestamp(_, None) => "timestamp".to_owned(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".to_owned(),
        DataType::Duration(_) | DataType::Interval(_) => "interval".to_owned(),
        t if is_interval(t) => "interval".to_owned(),
        // A Struct or Map from any writer (pgarrow's own name their type in the metadata):
        // jsonb, an object per value.
        DataType::Struct(_) | DataType::Map(..) => "jsonb".to_owned(),
        // Every level of nested lists is one more dimension of one array type; lists of
        // structs or maps are one jsonb array each.
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            let mut item = item.as_ref();
            while let DataType::List(i) | DataType::LargeList(i) | DataType::FixedSizeList(i, _) =
                item.data_type()
            {
                item = i.as_ref();
            }
            match item.data_type() {
                DataType::Struct(_) | DataType::Map(..) => "jsonb".to_owned(),
                t => format!("{}[]", arrow_type(t, item)?),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn names_types_without_pasting_text() {
        let meta = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let f = Field::new("a", DataType::Utf8, true).with_metadata(meta(&[
            (META_PG_TYPE, "numeric(12,2)"),
            (META_PG_OID, "1700"),
            (META_PG_TYPMOD, "786438"),
        ]));
        // A domain's name takes no typmod: the typmod is given only to a type that is not one.
        let domain_or = |name: &str, typmod: &str| {
            format!(
                "format_type(to_regtype({name}), CASE WHEN (SELECT typtype FROM \
                 pg_catalog.pg_type WHERE oid = to_regtype({name})) = 'd' THEN NULL ELSE \
                 {typmod} END)"
            )
        };
        assert_eq!(
            named_type(&f),
            format!(
                "coalesce({}, CASE WHEN format_type(1700, NULL) = 'numeric' THEN \
                 format_type(1700, 786438) END)",
                domain_or("'numeric'", "786438")
            )
        );
        let f = Field::new("a", DataType::Int32, true).with_metadata(meta(&[(META_PG_OID, "23")]));
        assert_eq!(named_type(&f), "format_type(23, -1)");
        let f = Field::new("a", DataType::Utf8, true).with_metadata(meta(&[
            (META_PG_TYPE, "mood'); DROP TABLE t; --"),
            (META_PG_OID, "16500"),
        ]));
        assert_eq!(
            named_type(&f),
            domain_or("'mood''); DROP TABLE t; --'", "-1")
        );
        assert_eq!(named_type(&Field::new("a", DataType::Utf8, true)), "NULL");
        assert_eq!(strip_typmod("character varying(10)"), "character varying");
        assert_eq!(strip_typmod("mood[]"), "mood[]");
    }

    #[test]
    fn typed_nested_fields_get_composite_types_each_after_what_it_holds() {
        let table = TableName::new(Some("s"), "t");
        let point = DataType::Struct(
            vec![
                Field::new("x", DataType::Float64, true),
                Field::new(
                    "tags",
                    DataType::Map(
                        Arc::new(Field::new(
                            "entries",
                            DataType::Struct(
                                vec![
                                    Field::new("key", DataType::Utf8, false),
                                    Field::new("value", DataType::Utf8, true),
                                ]
                                .into(),
                            ),
                            false,
                        )),
                        false,
                    ),
                    true,
                ),
            ]
            .into(),
        );
        let outer = DataType::Struct(
            vec![
                Field::new("p", point.clone(), true),
                Field::new(
                    "ps",
                    DataType::List(Arc::new(Field::new("item", point, true))),
                    true,
                ),
            ]
            .into(),
        );
        let mut own = OwnTypes::default();
        let f = Field::new("Geo", outer.clone(), true);
        assert_eq!(
            own.column_type(&table, &["Geo"], &outer, &f).unwrap(),
            "\"s\".\"t_Geo\""
        );
        let made: Vec<&str> = own.composites.iter().map(|(_, sql)| sql.as_str()).collect();
        assert_eq!(
            made,
            [
                "CREATE TYPE \"s\".\"t_Geo_p\" AS (\"x\" double precision, \"tags\" hstore)",
                "CREATE TYPE \"s\".\"t_Geo_ps\" AS (\"x\" double precision, \"tags\" hstore)",
                "CREATE TYPE \"s\".\"t_Geo\" AS (\"p\" \"s\".\"t_Geo_p\", \"ps\" \"s\".\"t_Geo_ps\"[])",
            ]
        );
        assert!(own.hstore);
        // A Map of anything else is jsonb; the interval Struct stays interval.
        let ints = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("key", DataType::Int32, false),
                        Field::new("value", DataType::Utf8, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        let mut own = OwnTypes::default();
        let f = Field::new("m", ints.clone(), true);
        assert_eq!(own.column_type(&table, &["m"], &ints, &f).unwrap(), "jsonb");
        assert!(!own.hstore && own.composites.is_empty());
        // A name past PostgreSQL's 63 bytes is cut on a character and ends in its hash.
        let long = type_name(&TableName::new(None::<String>, "é".repeat(40)), &["c"]);
        let inner = long.trim_matches('"');
        assert!(inner.len() <= MAX_IDENT, "{long}");
        assert_ne!(
            long,
            type_name(&TableName::new(None::<String>, "é".repeat(40)), &["d"])
        );
    }

    #[test]
    fn arrow_types() {
        let t = |d: DataType| arrow_type(&d, &Field::new("x", d.clone(), true));
        assert_eq!(t(DataType::Decimal128(12, 2)).unwrap(), "numeric(12,2)");
        assert_eq!(t(DataType::Decimal128(5, -2)).unwrap(), "numeric");
        let list = |d: DataType| DataType::List(Arc::new(Field::new("item", d, true)));
        assert_eq!(t(list(list(DataType::Int32))).unwrap(), "integer[]");
        assert_eq!(
            t(DataType::Timestamp(
                arrow_schema::TimeUnit::Nanosecond,
                Some("UTC".into())
            ))
            .unwrap(),
            "timestamptz"
        );
        // A struct or map without metadata (Spark's, any writer's): jsonb, lists of them too.
        let strukt = DataType::Struct(vec![Field::new("a", DataType::Int32, true)].into());
        assert_eq!(t(strukt.clone()).unwrap(), "jsonb");
        assert_eq!(t(list(strukt)).unwrap(), "jsonb");
        assert_eq!(t(DataType::Null).unwrap(), "text");
        assert!(t(DataType::UInt64).is_some() && t(DataType::Float16).is_some());
    }
}
