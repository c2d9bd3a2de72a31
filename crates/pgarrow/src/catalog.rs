//! The one catalog query of an export (and of a load's target): each result column's type
//! name and declared array dimensions, and every type reachable from the columns' types, read
//! into the catalog model ([`Catalog`]) that the decoder's mappings and the encoder resolve types
//! from.

use pgarrow_decode::mapping::{Attribute, Catalog, CatalogKind, CatalogType};

use pgarrow_decode::policy::Policies;
use pgarrow_decode::{ColumnMapping, Constraints, PgColumn};

use crate::names::TableName;
use crate::protocol::{Connection, FieldDescription, TextRow, quote_literal};
use crate::{Error, Result};

/// PostgreSQL's limit on array dimensions (`MAXDIM`).
const MAX_DIMS: usize = 6;

/// What the catalog query found.
pub(crate) struct ColumnCatalog {
    /// `format_type(oid, typmod)` per result column.
    pub(crate) names: Vec<String>,
    /// Array dimensions to map per result column (`pg_attribute.attndims`, at least 1).
    pub(crate) dims: Vec<usize>,
    /// Per result column, what the table the export reads declares about it (a table's
    /// export only, and only a plain or partitioned table's: a view's columns can hold NULLs
    /// its base tables forbid). A primary key is kept only when all its columns are read.
    pub(crate) constraints: Vec<Constraints>,
    /// Every type reachable from the result columns' types.
    pub(crate) types: Catalog,
}

/// The export's mapping of each of `fields` (the columns of a described statement, or of a
/// relation named by OID and attnum), with the constraints `table` declares, and the catalog
/// the mappings were resolved from.
///
/// # Errors
/// As [`lookup`].
pub(crate) async fn plan_columns(
    conn: &mut Connection,
    fields: &[FieldDescription],
    table: Option<&TableName>,
    policies: &Policies,
) -> Result<(Vec<ColumnMapping>, Catalog)> {
    let catalog = lookup(conn, fields, table).await?;
    let plans = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let column = PgColumn {
                name: f.name.clone(),
                oid: f.type_oid,
                typmod: f.type_modifier,
                type_name: catalog.names[i].clone(),
            };
            let mut plan =
                ColumnMapping::resolve(column, &catalog.types, policies, catalog.dims[i]);
            plan.constraints = catalog.constraints[i];
            plan
        })
        .collect();
    Ok((plans, catalog.types))
}

/// The export's mapping of each of `fields` (the columns of a described statement, or of a
/// relation named by OID and attnum, as a replication stream's `Relation` message gives
/// them): how each column's binary values decode into Arrow under `policies`, the catalog read
/// in one query. `table`, when the columns are a table's, adds what it declares (NOT NULL).
///
/// # Errors
/// The catalog query fails; a column's type cannot be mapped under `policies`.
pub async fn column_mappings(
    conn: &mut Connection,
    fields: &[FieldDescription],
    table: Option<&TableName>,
    policies: &Policies,
) -> Result<Vec<ColumnMapping>> {
    Ok(plan_columns(conn, fields, table, policies).await?.0)
}

/// Everything the mapping needs from the catalog, in one query: each column's type name and
/// declared array dimensions, and every type reachable from the columns' types (array
/// elements, domain bases, composite attributes, range subtypes, multirange ranges) with
/// enum labels and composite attributes. Only numbers we format go into the statement.
///
/// # Errors
/// The server's error, or an answer that is not what the query returns.
pub(crate) async fn lookup(
    conn: &mut Connection,
    fields: &[FieldDescription],
    table: Option<&TableName>,
) -> Result<ColumnCatalog> {
    if fields.is_empty() {
        return ColumnCatalog::from_rows(fields, &[]);
    }
    let list = |f: &dyn Fn(&FieldDescription) -> String| {
        fields.iter().map(f).collect::<Vec<_>>().join(",")
    };
    let oids = list(&|f| f.type_oid.to_string());
    let mods = list(&|f| f.type_modifier.to_string());
    let rels = list(&|f| f.table_oid.to_string());
    let atts = list(&|f| f.column_id.to_string());
    let multirange = conn.server_version_num() >= 140_000;
    let table = table.map(|t| quote_literal(&t.quoted()));
    let sql = catalog_query(&oids, &mods, &rels, &atts, multirange, table.as_deref());
    let rows = conn.simple_query(&sql).await?;
    ColumnCatalog::from_rows(fields, &rows)
}

impl ColumnCatalog {
    /// The catalog the query's rows describe, for the result columns `fields` (a column the
    /// rows do not name keeps `oid N` as its type name and one array dimension).
    ///
    /// # Errors
    /// A row that is not what the query returns: an unknown tag, a missing or unparsable
    /// value, a column number out of range, a `money` scale outside 0 to 10.
    fn from_rows(fields: &[FieldDescription], rows: &[TextRow]) -> Result<ColumnCatalog> {
        let mut out = ColumnCatalog {
            names: fields
                .iter()
                .map(|f| format!("oid {}", f.type_oid))
                .collect(),
            dims: vec![1; fields.len()],
            constraints: vec![Constraints::default(); fields.len()],
            types: Catalog::new(),
        };
        // Primary key columns: (result column, place in the key, the key's length).
        let mut key: Vec<(usize, u16, usize)> = Vec::new();
        let mut attributes: Vec<(u32, i32, Attribute)> = Vec::new();
        let mut labels: Vec<(u32, f64, String)> = Vec::new();
        let mut types: Vec<TypeRow> = Vec::new();
        let columns = fields.len();
        for row in rows {
            let row = CatalogRow(row);
            match row.text(0)?.as_str() {
                "n" => out.names[row.column(1, columns)?] = row.text(2)?,
                "d" => out.dims[row.column(1, columns)?] = row.num::<usize>(2)?.clamp(1, MAX_DIMS),
                "z" => {
                    let column = row.column(1, columns)?;
                    out.constraints[column].not_null = row.text(2)? == "true";
                    if let Some(place) = row.opt_num::<u16>(3)? {
                        key.push((column, place, row.num(4)?));
                    }
                }
                "a" => attributes.push((
                    row.num(1)?,
                    row.num(2)?,
                    Attribute {
                        name: row.text(3)?,
                        oid: row.num(4)?,
                        typmod: row.num(5)?,
                        display: row.text(6)?,
                        dims: row.num::<usize>(7)?.min(MAX_DIMS),
                    },
                )),
                "e" => labels.push((row.num(1)?, row.num(2)?, row.text(3)?)),
                // `money`'s fraction digits under the session's lc_monetary (0 to 10).
                "f" => match row.num::<i8>(1)? {
                    scale @ 0..=10 => out.types.set_money_scale(scale),
                    _ => return Err(row.unexpected(1, row.value(1))),
                },
                "t" => types.push(TypeRow {
                    oid: row.num(1)?,
                    schema: row.text(2)?,
                    name: row.text(3)?,
                    typtype: row.text(4)?,
                    elem: row.num(5)?,
                    base: row.num(6)?,
                    typmod: row.num(7)?,
                    display: row.text(8)?,
                    typlen: row.num(9)?,
                    range_subtype: row.opt_num(10)?,
                    multirange_of: row.opt_num(11)?,
                    dims: row.num::<usize>(12)?.min(MAX_DIMS),
                }),
                other => return Err(row.unexpected(0, Some(other))),
            }
        }
        // The key is kept when every one of its columns is read (once each).
        let places: std::collections::BTreeSet<u16> = key.iter().map(|k| k.1).collect();
        if key
            .first()
            .is_some_and(|&(_, _, n)| places.len() == n && key.len() == n)
        {
            for (column, place, _) in key {
                out.constraints[column].key_position = Some(place);
            }
        }
        attributes.sort_by_key(|(owner, attnum, _)| (*owner, *attnum));
        labels.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        for t in types {
            let kind = match t.typtype.as_str() {
                "d" => CatalogKind::Domain {
                    base: t.base,
                    typmod: t.typmod,
                    dims: t.dims,
                },
                "c" => CatalogKind::Composite {
                    fields: attributes
                        .iter()
                        .filter(|(owner, _, _)| *owner == t.oid)
                        .map(|(_, _, a)| a.clone())
                        .collect(),
                },
                "e" => CatalogKind::Enum {
                    labels: labels
                        .iter()
                        .filter(|(owner, _, _)| *owner == t.oid)
                        .map(|(_, _, l)| l.clone())
                        .collect(),
                },
                "r" => match t.range_subtype {
                    Some(subtype) => CatalogKind::Range { subtype },
                    None => CatalogKind::Other,
                },
                "m" => match t.multirange_of {
                    Some(range) => CatalogKind::Multirange { range },
                    None => CatalogKind::Other,
                },
                "b" if t.elem != 0 && t.typlen == -1 => CatalogKind::Array { element: t.elem },
                "b" => CatalogKind::Base,
                _ => CatalogKind::Other,
            };
            out.types.insert(CatalogType {
                oid: t.oid,
                schema: t.schema,
                name: t.name,
                display: t.display,
                kind,
            });
        }
        Ok(out)
    }
}

/// A row of the catalog query, read strictly: a missing or unparsable value is an error that
/// names it, never a default.
struct CatalogRow<'r>(&'r TextRow);

impl CatalogRow<'_> {
    fn value(&self, i: usize) -> Option<&str> {
        self.0.get(i).and_then(|v| v.as_deref())
    }

    fn text(&self, i: usize) -> Result<String> {
        self.value(i)
            .map(str::to_owned)
            .ok_or_else(|| self.unexpected(i, None))
    }

    fn num<T: std::str::FromStr>(&self, i: usize) -> Result<T> {
        self.opt_num(i)?.ok_or_else(|| self.unexpected(i, None))
    }

    fn opt_num<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>> {
        self.value(i)
            .map(|v| v.parse().map_err(|_| self.unexpected(i, Some(v))))
            .transpose()
    }

    /// A 1-based result column number, as an index below `columns`.
    fn column(&self, i: usize, columns: usize) -> Result<usize> {
        match self.num::<usize>(i)? {
            n @ 1.. if n <= columns => Ok(n - 1),
            _ => Err(self.unexpected(i, self.value(i))),
        }
    }

    fn unexpected(&self, i: usize, value: Option<&str>) -> Error {
        let tag = self.value(0).unwrap_or("?");
        Error::unexpected(format!(
            "unexpected answer to pgarrow's catalog query: field {i} of a '{tag}' row is {}",
            match value {
                Some(v) => format!("{v:?}"),
                None => "missing".to_owned(),
            }
        ))
    }
}

/// One `t` row of the catalog query.
struct TypeRow {
    oid: u32,
    schema: String,
    name: String,
    typtype: String,
    elem: u32,
    base: u32,
    typmod: i32,
    display: String,
    typlen: i64,
    range_subtype: Option<u32>,
    multirange_of: Option<u32>,
    dims: usize,
}

/// The types type `t` (an alias in the query) holds, one per row: an array's element, a
/// domain's base, a composite's attributes, a range's subtype, a multirange's range (servers
/// from 14). One step of [`type_closure`]'s walk; the type definitions `copy` reads also list
/// them, as what each type needs made first.
pub(crate) fn type_children(t: &str, multirange: bool) -> String {
    format!(
        "SELECT {t}.typelem WHERE {t}.typelem <> 0 AND {t}.typlen = -1
        UNION ALL SELECT {t}.typbasetype WHERE {t}.typtype = 'd'
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
            WHERE {t}.typtype = 'c' AND a.attrelid = {t}.typrelid AND a.attnum > 0
              AND NOT a.attisdropped
        UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = {t}.oid
        {}",
        match multirange {
            true => format!(
                "UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r \
                 WHERE r.rngmultitypid = {t}.oid"
            ),
            false => String::new(),
        }
    )
}

/// The recursive `closure(oid)` of a `WITH RECURSIVE`: the types `oids` (comma-separated
/// numbers formatted by us) and every type they hold, through [`type_children`]; `from` keeps
/// only the held types from that OID on (the given ones are kept whatever they are). What the
/// catalog query of an export and the type definitions `copy` reads walk.
pub(crate) fn type_closure(oids: &str, multirange: bool, from: Option<u32>) -> String {
    let children = type_children("t", multirange);
    let filter = match from {
        Some(from) => format!("\n    WHERE c.child >= {from}"),
        None => String::new(),
    };
    format!(
        "closure(oid) AS (
    SELECT DISTINCT unnest('{{{oids}}}'::pg_catalog.oid[])
  UNION
    SELECT c.child FROM closure
    JOIN pg_catalog.pg_type t ON t.oid = closure.oid
    CROSS JOIN LATERAL ({children}) AS c(child){filter}
)"
    )
}

/// The one catalog query of an export. Rows are tagged: `n` (column number, type name),
/// `d` (column number, declared array dimensions, of the column or of its domain), `t` (a type), `a` (a composite's attribute),
/// `e` (an enum label). All arguments are comma-separated numbers formatted by us.
fn catalog_query(
    oids: &str,
    mods: &str,
    rels: &str,
    atts: &str,
    multirange: bool,
    table: Option<&str>,
) -> String {
    // `z`: NOT NULL and the place in the primary key of the columns of the table read, when
    // it is a plain or partitioned table.
    let constraints = match table {
        Some(table) => format!(
            "UNION ALL
SELECT 'z', cols.n::text, a.attnotnull::text, k.place::text, k.keys::text, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL
FROM cols JOIN pg_catalog.pg_attribute a ON a.attrelid = cols.rel AND a.attnum = cols.att
JOIN pg_catalog.pg_class c ON c.oid = cols.rel AND c.relkind IN ('r', 'p')
LEFT JOIN LATERAL (
    SELECT u.o AS place, i.indnkeyatts AS keys
    FROM pg_catalog.pg_index i,
         unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS u(att, o)
    WHERE i.indrelid = cols.rel AND i.indisprimary AND u.att = cols.att AND u.o <= i.indnkeyatts
) AS k ON true
WHERE cols.rel = pg_catalog.to_regclass({table})
"
        ),
        None => String::new(),
    };
    let multi_col = match multirange {
        true => {
            "(SELECT r.rngtypid::text FROM pg_catalog.pg_range r WHERE r.rngmultitypid = t.oid)"
        }
        false => "NULL::text",
    };
    let closure = type_closure(oids, multirange, None);
    format!(
        "WITH RECURSIVE {closure}, cols AS (
    SELECT * FROM unnest('{{{oids}}}'::pg_catalog.oid[], '{{{mods}}}'::pg_catalog.int4[],
                         '{{{rels}}}'::pg_catalog.oid[], '{{{atts}}}'::pg_catalog.int2[])
        WITH ORDINALITY AS c(o, m, rel, att, n)
)
SELECT 'n', n::text, coalesce(
           (SELECT pg_catalog.format_type(a.atttypid, NULLIF(a.atttypmod, -1))
            FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
            WHERE cols.rel <> 0 AND a.attrelid = cols.rel AND a.attnum = cols.att
              AND at.typtype = 'd'),
           pg_catalog.format_type(o, NULLIF(m, -1))),
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM cols
UNION ALL
SELECT 'd', cols.n::text, dims.n::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL
FROM cols JOIN pg_catalog.pg_attribute a ON a.attrelid = cols.rel AND a.attnum = cols.att
JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
CROSS JOIN LATERAL (SELECT GREATEST(a.attndims, at.typndims) AS n) AS dims
WHERE cols.rel <> 0 AND dims.n > 1
{constraints}UNION ALL
SELECT 't', t.oid::text, n.nspname::text, t.typname::text, t.typtype::text, t.typelem::text,
       t.typbasetype::text, t.typtypmod::text, pg_catalog.format_type(t.oid, NULL),
       t.typlen::text,
       (SELECT r.rngsubtype::text FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
       {multi_col}, t.typndims::text
FROM closure JOIN pg_catalog.pg_type t ON t.oid = closure.oid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
UNION ALL
SELECT 'a', t.oid::text, a.attnum::text, a.attname::text, a.atttypid::text, a.atttypmod::text,
       pg_catalog.format_type(a.atttypid, NULLIF(a.atttypmod, -1)), a.attndims::text, NULL,
       NULL, NULL, NULL, NULL
FROM closure JOIN pg_catalog.pg_type t ON t.oid = closure.oid AND t.typtype = 'c'
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'e', e.enumtypid::text, e.enumsortorder::text, e.enumlabel::text, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL
FROM closure JOIN pg_catalog.pg_enum e ON e.enumtypid = closure.oid
UNION ALL
SELECT 'f', pg_catalog.scale('0'::pg_catalog.money::pg_catalog.numeric)::text, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
WHERE EXISTS (SELECT FROM closure WHERE closure.oid = 'pg_catalog.money'::pg_catalog.regtype)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rows_are_read_strictly() {
        let row: TextRow = vec![
            Some("t".into()),
            Some("23".into()),
            None,
            Some("x".into()),
            Some("3".into()),
        ];
        let row = CatalogRow(&row);
        assert_eq!(row.num::<u32>(1).unwrap(), 23);
        assert_eq!(row.opt_num::<u32>(2).unwrap(), None);
        assert_eq!(row.column(4, 3).unwrap(), 2);
        let msg = |e: Error| e.to_string();
        assert!(msg(row.num::<u32>(2).unwrap_err()).contains("field 2 of a 't' row is missing"));
        assert!(msg(row.num::<u32>(3).unwrap_err()).contains("field 3 of a 't' row is \"x\""));
        assert!(msg(row.column(4, 2).unwrap_err()).contains("is \"3\""));
        assert!(row.column(1, 100).is_ok() && row.text(9).is_err());
    }

    fn field(type_oid: u32) -> FieldDescription {
        FieldDescription {
            name: "c".into(),
            table_oid: 0,
            column_id: 0,
            type_oid,
            type_modifier: -1,
            type_size: -1,
        }
    }

    /// A row from its fields separated by `|`, an empty one NULL.
    fn row(fields: &str) -> TextRow {
        fields
            .split('|')
            .map(|v| (!v.is_empty()).then(|| v.to_owned()))
            .collect()
    }

    #[test]
    fn rows_become_the_catalog_model() {
        let rows = [
            row("n|2|pair[]||||||||||"),
            row("d|2|9||||||||||"),
            // A composite, its attributes given out of order.
            row("t|90001|public|pair|c|0|0|-1|pair|-1|||0"),
            row("a|90001|2|m|90000|-1|mood|0|||||"),
            row("a|90001|1|a|23|-1|integer|2|||||"),
            // An enum, its labels sorted by enumsortorder (a float).
            row("t|90000|public|mood|e|0|0|-1|mood|4|||0"),
            row("e|90000|1.5|ok||||||||||"),
            row("e|90000|1|sad||||||||||"),
            row("t|90002|public|_pair|b|90001|0|-1|pair[]|-1|||0"),
            row("f|2|||||||||||"),
        ];
        let c = ColumnCatalog::from_rows(&[field(23), field(90002)], &rows).unwrap();
        assert_eq!(c.names, ["oid 23", "pair[]"]);
        // Declared dimensions are capped at PostgreSQL's MAXDIM.
        assert_eq!(c.dims, [1, MAX_DIMS]);
        assert_eq!(c.types.money_scale(), Some(2));
        let kind = |oid| c.types.get(oid).map(|t| t.kind.clone());
        assert_eq!(kind(90002), Some(CatalogKind::Array { element: 90001 }));
        assert_eq!(
            kind(90000),
            Some(CatalogKind::Enum {
                labels: vec!["sad".into(), "ok".into()]
            })
        );
        let Some(CatalogKind::Composite { fields }) = kind(90001) else {
            panic!("pair is a composite");
        };
        let names: Vec<_> = fields
            .iter()
            .map(|a| (a.name.as_str(), a.oid, a.dims))
            .collect();
        assert_eq!(names, [("a", 23, 2), ("m", 90000, 0)]);

        let bad = [row("x|")];
        let e = ColumnCatalog::from_rows(&[field(23)], &bad).err().unwrap();
        assert!(
            e.to_string().contains("field 0 of a 'x' row is \"x\""),
            "{e}"
        );
        let money = [row("f|11")];
        assert!(ColumnCatalog::from_rows(&[field(23)], &money).is_err());
    }
}
