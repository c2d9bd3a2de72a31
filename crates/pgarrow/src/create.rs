//! `CREATE TABLE` from an Arrow schema, for a load with `create`: each column gets the
//! PostgreSQL type its field metadata names where that type exists in the target database
//! (so that a round trip recreates `numeric(12,2)`, `varchar(10)`, enums and domains), else
//! the type its Arrow type maps to.
//!
//! No text from the input is pasted into SQL: built-in types are named by their OID (stable
//! across databases) and typmod, others by a string literal given to `to_regtype`; the server
//! spells the type (`format_type`), and that is what the statement uses.

use arrow_schema::{DataType, Field, Schema};

use crate::protocol::quote_literal;
use crate::protocol::{Connection, quote_ident};
use crate::types::{
    META_EXTENSION_NAME, META_NOT_NULL, META_PG_OID, META_PG_TYPE, META_PG_TYPMOD, META_PRIMARY_KEY,
};
use crate::{Error, Result, TableName};

/// OIDs below this are built in, the same in every database (`FirstNormalObjectId`).
const FIRST_NORMAL_OID: u32 = 16_384;

/// Creates `table` from `schema` unless it exists.
pub(crate) async fn create_table(
    conn: &mut Connection,
    table: &TableName,
    schema: &Schema,
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
    conn.simple_query(&format!(
        "CREATE TABLE {} ({})",
        table.quoted(),
        columns.join(", ")
    ))
    .await?;
    Ok(())
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
                "coalesce(format_type(to_regtype({name}), {typmod}), CASE WHEN \
                 format_type({oid}, NULL) = {name} THEN format_type({oid}, {typmod}) END)"
            )
        }
        (Some(oid), None) if oid > 0 && oid < FIRST_NORMAL_OID => {
            format!("format_type({oid}, {typmod})")
        }
        (_, Some(name)) => format!(
            "format_type(to_regtype({}), {typmod})",
            quote_literal(strip_typmod(name))
        ),
        _ => "NULL".to_owned(),
    }
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
        DataType::Struct(fields)
            if fields
                .iter()
                .map(|f| f.name().as_str())
                .eq(["months", "days", "microseconds"]) =>
        {
            "interval".to_owned()
        }
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
        assert_eq!(
            named_type(&f),
            "coalesce(format_type(to_regtype('numeric'), 786438), CASE WHEN \
             format_type(1700, NULL) = 'numeric' THEN format_type(1700, 786438) END)"
        );
        let f = Field::new("a", DataType::Int32, true).with_metadata(meta(&[(META_PG_OID, "23")]));
        assert_eq!(named_type(&f), "format_type(23, -1)");
        let f = Field::new("a", DataType::Utf8, true).with_metadata(meta(&[
            (META_PG_TYPE, "mood'); DROP TABLE t; --"),
            (META_PG_OID, "16500"),
        ]));
        assert_eq!(
            named_type(&f),
            "format_type(to_regtype('mood''); DROP TABLE t; --'), -1)"
        );
        assert_eq!(named_type(&Field::new("a", DataType::Utf8, true)), "NULL");
        assert_eq!(strip_typmod("character varying(10)"), "character varying");
        assert_eq!(strip_typmod("mood[]"), "mood[]");
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
