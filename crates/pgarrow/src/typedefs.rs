//! The user-defined types a copy's columns need, read from the source's catalog and created
//! in the target where missing (`copy --create` into a database that lacks them): enums,
//! composite types, ranges (their multiranges with them) and domains, in dependency order.
//!
//! The statements are written by the source server itself (`quote_ident`, `quote_literal`,
//! `format_type`, `pg_get_constraintdef`, `pg_get_expr`) under `search_path = pg_catalog`,
//! so that every name in them is qualified, as `pg_dump` writes its own. Nothing is taken from
//! a file: a load from files refuses a missing type by name instead (their metadata is not a
//! definition anyone vouches for).
//!
//! A type this module cannot make (an extension's, a table's row type, a base type written
//! in C) must exist in the target; a missing one is refused by name, with the extension to
//! create where it comes from one.

use std::collections::{HashMap, HashSet};

use crate::protocol::{Connection, TextRow, quote_ident, quote_literal};
use crate::{Error, Result};

/// OIDs below this are built in, the same in every database (`FirstNormalObjectId`).
pub(crate) const FIRST_NORMAL_OID: u32 = 16_384;

/// One user-defined type of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeDefinition {
    oid: u32,
    /// The type's schema.
    schema: String,
    /// Its qualified name as the source spells it (`public.mood`, `"My"."Mood"`).
    name: String,
    /// How the target gets it.
    make: Make,
    /// The user-defined types it needs first.
    needs: Vec<u32>,
    /// For a domain: the functions and sequences its DEFAULT and CHECK constraints name, which
    /// the target needs before the domain.
    objects: Vec<ObjectDefinition>,
}

/// A function or sequence a domain's DEFAULT or CHECK names (`nextval('codes')`,
/// `CHECK (valid_code(VALUE))`), created in the target before the domain when it lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectDefinition {
    /// What it is: `function` or `sequence`.
    kind: String,
    /// Its qualified identity as the source spells it: `public.valid_code(text)` (a
    /// `regprocedure`) or `public.codes` (a `regclass`).
    identity: String,
    /// Its schema.
    schema: String,
    /// The statements that make it (a sequence's continue from the source's last value);
    /// `None` for a function pgarrow cannot make: one in C or another untrusted language.
    sql: Option<String>,
    /// A function's language.
    language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Make {
    /// By this statement (a range's carries its multirange's name apart: a server before 14
    /// takes none).
    Statement {
        sql: String,
        multirange: Option<String>,
    },
    /// With the type it belongs to (an array with its element, a multirange with its range).
    Implied,
    /// By `CREATE EXTENSION`.
    Extension(String),
    /// Not by pgarrow: a table's row type, a base type written in C.
    Elsewhere(&'static str),
}

/// The definitions of every user-defined type reachable from the types `names` (as the
/// source's `format_type` spells them) and `oids`, each after the types it needs.
///
/// # Errors
/// The server's error, or an answer that is not what the queries return.
pub(crate) async fn read(
    conn: &mut Connection,
    names: &[String],
    oids: &[u32],
) -> Result<Vec<TypeDefinition>> {
    // The names resolve under the session's own search path, as the export's did.
    let mut roots: Vec<u32> = oids
        .iter()
        .copied()
        .filter(|&o| o >= FIRST_NORMAL_OID)
        .collect();
    if !names.is_empty() {
        let list: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    "pg_catalog.to_regtype({})::pg_catalog.oid",
                    quote_literal(n)
                )
            })
            .collect();
        let rows = conn
            .simple_query(&format!("SELECT {}", list.join(", ")))
            .await?;
        for value in rows.first().into_iter().flatten().flatten() {
            roots.push(parse(value, "a type's oid")?);
        }
    }
    roots.retain(|&o| o >= FIRST_NORMAL_OID);
    roots.sort_unstable();
    roots.dedup();
    if roots.is_empty() {
        return Ok(Vec::new());
    }
    let multirange = conn.server_version_num() >= 140_000;
    let list: Vec<String> = roots.iter().map(u32::to_string).collect();
    // Every name the statements hold is qualified: nothing else is on the search path.
    conn.simple_query("BEGIN READ ONLY; SET LOCAL search_path = pg_catalog")
        .await?;
    let read = async {
        let rows = conn
            .simple_query(&definitions_query(&list.join(","), multirange))
            .await?;
        // The domains' OIDs (typtype 'd'), as numbers: formatted into the next query.
        let domains: Vec<String> = rows
            .iter()
            .filter(|r| r.get(3).cloned().flatten().as_deref() == Some("d"))
            .filter_map(|r| r.first().cloned().flatten()?.parse::<u32>().ok())
            .map(|oid| oid.to_string())
            .collect();
        let objects = match domains.is_empty() {
            true => Vec::new(),
            false => {
                conn.simple_query(&objects_query(&domains.join(",")))
                    .await?
            }
        };
        Ok::<_, Error>((rows, objects))
    }
    .await;
    let end = conn.simple_query("ROLLBACK").await;
    let (rows, objects) = read?;
    end?;
    let mut defs = HashMap::with_capacity(rows.len());
    for row in &rows {
        let def = TypeDefinition::from_row(row)?;
        defs.insert(def.oid, def);
    }
    for row in &objects {
        let (domain, object) = ObjectDefinition::from_row(row)?;
        if let Some(def) = defs.get_mut(&domain) {
            def.objects.push(object);
        }
    }
    Ok(in_dependency_order(&roots, defs))
}

/// Creates in the target, in order, each of `defs` that it lacks (their schemas too), and
/// returns their names. Run inside the load's transaction: a failed load leaves none behind.
///
/// # Errors
/// A missing type pgarrow cannot make (named, with the extension to create); the server's
/// error creating one, in the context of the type's name.
pub(crate) async fn create_missing(
    conn: &mut Connection,
    defs: &[TypeDefinition],
) -> Result<Vec<String>> {
    if defs.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = defs
        .iter()
        .map(|d| format!("pg_catalog.to_regtype({}) IS NULL", quote_literal(&d.name)))
        .collect();
    let rows = conn
        .simple_query(&format!("SELECT {}", list.join(", ")))
        .await?;
    let missing: Vec<bool> = match rows.first() {
        Some(row) if row.len() == defs.len() => {
            row.iter().map(|v| v.as_deref() == Some("t")).collect()
        }
        _ => {
            return Err(Error::unexpected(
                "unexpected answer to the query for the target's types",
            ));
        }
    };
    let multirange = conn.server_version_num() >= 140_000;
    let mut schemas = HashSet::new();
    let mut created = Vec::new();
    for (def, missing) in defs.iter().zip(missing) {
        if !missing {
            continue;
        }
        let sql = match &def.make {
            Make::Implied => continue,
            Make::Extension(ext) => {
                return Err(Error::usage(format!(
                    "the type {} (of the extension {ext}) does not exist in the target \
                     database; run CREATE EXTENSION {} there first",
                    def.name,
                    quote_ident(ext)
                )));
            }
            Make::Elsewhere(what) => {
                return Err(Error::usage(format!(
                    "the type {} ({what}) does not exist in the target database, and pgarrow \
                     cannot create it; create it there first",
                    def.name
                )));
            }
            Make::Statement { sql, multirange: m } => match (m, multirange) {
                // `... )` with the multirange's name before the closing parenthesis.
                (Some(m), true) if sql.ends_with(')') => {
                    format!("{}, MULTIRANGE_TYPE_NAME = {m})", &sql[..sql.len() - 1])
                }
                _ => sql.clone(),
            },
        };
        ensure_schema(
            conn,
            &def.schema,
            &format!("the type {}", def.name),
            &mut schemas,
        )
        .await?;
        for object in &def.objects {
            if let Some(made) = create_object(conn, object, &def.name, &mut schemas).await? {
                created.push(made);
            }
        }
        conn.simple_query(&sql).await.map_err(|e| {
            Error::from(e).context(format!("creating the type {} in the target", def.name))
        })?;
        created.push(def.name.clone());
    }
    Ok(created)
}

/// Creates `schema` in the target unless it is there (or was seen before, in `seen`).
async fn ensure_schema(
    conn: &mut Connection,
    schema: &str,
    of: &str,
    seen: &mut HashSet<String>,
) -> Result<()> {
    if !seen.insert(schema.to_owned()) {
        return Ok(());
    }
    let schema = quote_ident(schema);
    let absent = conn
        .simple_query(&format!(
            "SELECT pg_catalog.to_regnamespace({}) IS NULL",
            quote_literal(&schema)
        ))
        .await?;
    if first(&absent).as_deref() == Some("t") {
        conn.simple_query(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(|e| Error::from(e).context(format!("creating the schema of {of}")))?;
    }
    Ok(())
}

fn first(rows: &[TextRow]) -> Option<String> {
    rows.first().and_then(|r| r.first()).cloned().flatten()
}

/// Creates `object`, which the domain `domain` needs, unless the target has it; returns what
/// it created (`function public.valid_code(text)`).
async fn create_object(
    conn: &mut Connection,
    object: &ObjectDefinition,
    domain: &str,
    schemas: &mut HashSet<String>,
) -> Result<Option<String>> {
    let lookup = match object.kind.as_str() {
        "function" => "to_regprocedure",
        _ => "to_regclass",
    };
    let absent = conn
        .simple_query(&format!(
            "SELECT pg_catalog.{lookup}({}) IS NULL",
            quote_literal(&object.identity)
        ))
        .await?;
    if first(&absent).as_deref() != Some("t") {
        return Ok(None);
    }
    let what = format!("{} {}", object.kind, object.identity);
    let Some(sql) = &object.sql else {
        return Err(Error::usage(format!(
            "the domain {domain} calls the {what} (language {}) in its DEFAULT or CHECK, which \
             the target database lacks and pgarrow cannot create; create it there first (or \
             its extension), or copy with domains as their base types (--domains base)",
            object.language.as_deref().unwrap_or("unknown")
        )));
    };
    ensure_schema(conn, &object.schema, &what, schemas).await?;
    conn.simple_query(sql).await.map_err(|e| {
        Error::from(e).context(format!(
            "creating the {what}, which the domain {domain} names in its DEFAULT or CHECK \
             (--domains base makes the column its base type instead)"
        ))
    })?;
    Ok(Some(what))
}

impl ObjectDefinition {
    /// A row of [`objects_query`]: the domain's oid, kind, identity, schema, statement,
    /// language.
    fn from_row(row: &TextRow) -> Result<(u32, ObjectDefinition)> {
        let get = |i: usize| row.get(i).cloned().flatten();
        let text = |i: usize| {
            get(i).ok_or_else(|| {
                Error::unexpected(format!("a domain's object's field {i} is missing"))
            })
        };
        let domain = parse(&text(0)?, "a domain's oid")?;
        Ok((
            domain,
            ObjectDefinition {
                kind: text(1)?,
                identity: text(2)?,
                schema: text(3)?,
                sql: get(4),
                language: get(5),
            },
        ))
    }
}

impl TypeDefinition {
    /// A row of [`definitions_query`]: oid, schema, name, typtype, needs (`{1,2}`), extension,
    /// statement, multirange name, what it is when pgarrow cannot make it.
    fn from_row(row: &TextRow) -> Result<TypeDefinition> {
        let get = |i: usize| row.get(i).and_then(|v| v.as_deref());
        let text = |i: usize| {
            get(i).map(str::to_owned).ok_or_else(|| {
                Error::unexpected(format!("a type definition's field {i} is missing"))
            })
        };
        let needs = text(4)?;
        let needs = needs
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| parse(s, "a needed type's oid"))
            .collect::<Result<Vec<u32>>>()?;
        let make = match (get(5), get(6), get(8)) {
            (Some(ext), _, _) => Make::Extension(ext.to_owned()),
            (None, Some(sql), _) => Make::Statement {
                sql: sql.to_owned(),
                multirange: get(7).map(str::to_owned),
            },
            (None, None, Some("implied")) => Make::Implied,
            (None, None, Some("row")) => Make::Elsewhere("a table's row type"),
            (None, None, _) => Make::Elsewhere("a base type"),
        };
        Ok(TypeDefinition {
            oid: parse(&text(0)?, "a type's oid")?,
            schema: text(1)?,
            name: text(2)?,
            make,
            needs,
            objects: Vec::new(),
        })
    }
}

fn parse(value: &str, what: &str) -> Result<u32> {
    value
        .parse()
        .map_err(|_| Error::unexpected(format!("unexpected {what} from the catalog: {value:?}")))
}

/// `defs` ordered so that each comes after what it needs (depth first from `roots`, in
/// order; a cycle, which the catalog does not allow, ends the walk).
fn in_dependency_order(
    roots: &[u32],
    mut defs: HashMap<u32, TypeDefinition>,
) -> Vec<TypeDefinition> {
    fn visit(
        oid: u32,
        defs: &mut HashMap<u32, TypeDefinition>,
        seen: &mut HashSet<u32>,
        out: &mut Vec<TypeDefinition>,
    ) {
        if !seen.insert(oid) {
            return;
        }
        let Some(def) = defs.remove(&oid) else {
            return;
        };
        for &need in &def.needs {
            visit(need, defs, seen, out);
        }
        out.push(def);
    }
    let mut out = Vec::with_capacity(defs.len());
    let mut seen = HashSet::new();
    for &root in roots {
        visit(root, &mut defs, &mut seen, &mut out);
    }
    // Anything the roots did not reach (none, as the query walks from them), by oid.
    let mut rest: Vec<u32> = defs.keys().copied().collect();
    rest.sort_unstable();
    for oid in rest {
        visit(oid, &mut defs, &mut seen, &mut out);
    }
    out
}

/// Every user-defined type reachable from `oids` (comma-separated numbers we format), with
/// the statement that makes it. Run under `search_path = pg_catalog`: `format_type`,
/// `pg_get_expr` and `pg_get_constraintdef` then qualify every name that is not built in.
fn definitions_query(oids: &str, multirange: bool) -> String {
    let collation = |c: &str| {
        format!(
            "(SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
              FROM pg_catalog.pg_collation co
              JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = {c})"
        )
    };
    let multirange_name = match multirange {
        true => {
            "CASE WHEN t.typtype = 'r' THEN (SELECT pg_catalog.format_type(r.rngmultitypid, NULL)
                 FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid) END"
        }
        false => "NULL::text",
    };
    let attribute_collation = collation("a.attcollation");
    let range_collation = collation("r.rngcollation");
    let domain_collation = collation("t.typcollation");
    let closure = crate::catalog::type_closure(oids, multirange, Some(FIRST_NORMAL_OID));
    let children = crate::catalog::type_children("t", multirange);
    format!(
        "WITH RECURSIVE {closure}
SELECT t.oid::text, n.nspname::text, pg_catalog.format_type(t.oid, NULL),
  t.typtype::text,
  ARRAY(SELECT DISTINCT c.child FROM ({children}) AS c(child)
        WHERE c.child >= {FIRST_NORMAL_OID})::text,
  (SELECT e.extname::text FROM pg_catalog.pg_depend d
   JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
   WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid
     AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
   LIMIT 1),
  CASE
    WHEN t.typtype = 'e' THEN
      'CREATE TYPE ' || pg_catalog.format_type(t.oid, NULL) || ' AS ENUM (' ||
      coalesce((SELECT string_agg(pg_catalog.quote_literal(e.enumlabel), ', '
                                  ORDER BY e.enumsortorder)
                FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
    WHEN t.typtype = 'c' AND rel.relkind = 'c' THEN
      'CREATE TYPE ' || pg_catalog.format_type(t.oid, NULL) || ' AS (' ||
      coalesce((SELECT string_agg(pg_catalog.quote_ident(a.attname) || ' ' ||
                    pg_catalog.format_type(a.atttypid, a.atttypmod) ||
                    CASE WHEN a.attcollation <> at.typcollation
                         THEN ' COLLATE ' || {attribute_collation} ELSE '' END,
                    ', ' ORDER BY a.attnum)
                FROM pg_catalog.pg_attribute a
                JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
                WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '')
      || ')'
    WHEN t.typtype = 'r' THEN
      (SELECT 'CREATE TYPE ' || pg_catalog.format_type(t.oid, NULL) || ' AS RANGE (SUBTYPE = ' ||
         pg_catalog.format_type(r.rngsubtype, NULL) ||
         ', SUBTYPE_OPCLASS = ' || pg_catalog.quote_ident(opn.nspname) || '.' ||
         pg_catalog.quote_ident(opc.opcname) ||
         CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation
              THEN ', COLLATION = ' || {range_collation} ELSE '' END ||
         CASE WHEN r.rngcanonical::pg_catalog.oid <> 0
              THEN ', CANONICAL = ' || r.rngcanonical::pg_catalog.regproc::text ELSE '' END ||
         CASE WHEN r.rngsubdiff::pg_catalog.oid <> 0
              THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::pg_catalog.regproc::text ELSE '' END ||
         ')'
       FROM pg_catalog.pg_range r
       JOIN pg_catalog.pg_type st ON st.oid = r.rngsubtype
       JOIN pg_catalog.pg_opclass opc ON opc.oid = r.rngsubopc
       JOIN pg_catalog.pg_namespace opn ON opn.oid = opc.opcnamespace
       WHERE r.rngtypid = t.oid)
    WHEN t.typtype = 'd' THEN
      'CREATE DOMAIN ' || pg_catalog.format_type(t.oid, NULL) || ' AS ' ||
      pg_catalog.format_type(t.typbasetype, t.typtypmod) ||
      CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation
           THEN ' COLLATE ' || {domain_collation} ELSE '' END ||
      CASE WHEN t.typdefaultbin IS NOT NULL
           THEN ' DEFAULT ' || pg_catalog.pg_get_expr(t.typdefaultbin,
                                   'pg_catalog.pg_type'::pg_catalog.regclass)
           ELSE '' END ||
      CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END ||
      coalesce((SELECT string_agg(' CONSTRAINT ' || pg_catalog.quote_ident(c.conname) || ' ' ||
                                  pg_catalog.pg_get_constraintdef(c.oid), '' ORDER BY c.conname)
                FROM pg_catalog.pg_constraint c
                WHERE c.contypid = t.oid AND c.contype = 'c'), '')
  END,
  {multirange_name},
  CASE
    WHEN (t.typelem <> 0 AND t.typlen = -1) OR t.typtype = 'm' THEN 'implied'
    WHEN t.typtype = 'c' THEN 'row'
  END
FROM closure
JOIN pg_catalog.pg_type t ON t.oid = closure.oid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_class rel ON rel.oid = t.typrelid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
WHERE t.oid >= {FIRST_NORMAL_OID}"
    )
}

/// The functions and sequences (not built in) that the DEFAULT and CHECK constraints of the
/// domains `oids` name, each with the statements that make it. Run under
/// `search_path = pg_catalog`, so that every name is qualified. Functions in SQL and PL/pgSQL
/// are made by their own definition (`pg_get_functiondef`); a sequence by its parameters,
/// then set to the source's last value, so that a DEFAULT `nextval` never hands out a number
/// the copied rows hold.
fn objects_query(oids: &str) -> String {
    format!(
        "WITH refs AS (
  SELECT DISTINCT t.oid AS domain, d.refclassid, d.refobjid
  FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_depend d ON
       (d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid)
    OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid IN
         (SELECT c.oid FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid))
  WHERE t.oid = ANY('{{{oids}}}'::pg_catalog.oid[]) AND t.typtype = 'd'
    AND d.refobjid >= {FIRST_NORMAL_OID}
)
SELECT r.domain::text, 'function', p.oid::pg_catalog.regprocedure::text, n.nspname::text,
  CASE WHEN l.lanname IN ('sql', 'plpgsql') AND p.prokind = 'f'
       THEN pg_catalog.pg_get_functiondef(p.oid) END,
  l.lanname::text
FROM refs r
JOIN pg_catalog.pg_proc p ON p.oid = r.refobjid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE r.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
UNION ALL
SELECT r.domain::text, 'sequence', c.oid::pg_catalog.regclass::text, n.nspname::text,
  'CREATE SEQUENCE ' || c.oid::pg_catalog.regclass::text ||
  ' AS ' || pg_catalog.format_type(s.seqtypid, NULL) ||
  ' INCREMENT BY ' || s.seqincrement || ' MINVALUE ' || s.seqmin ||
  ' MAXVALUE ' || s.seqmax || ' START WITH ' || s.seqstart || ' CACHE ' || s.seqcache ||
  CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END ||
  coalesce('; SELECT pg_catalog.setval(' ||
           pg_catalog.quote_literal(c.oid::pg_catalog.regclass::text) || ', ' ||
           pg_catalog.pg_sequence_last_value(c.oid) || ')', ''),
  NULL
FROM refs r
JOIN pg_catalog.pg_class c ON c.oid = r.refobjid AND c.relkind = 'S'
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
WHERE r.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
ORDER BY 1, 2 DESC, 3"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(oid: u32, needs: &[u32]) -> TypeDefinition {
        TypeDefinition {
            oid,
            schema: "public".into(),
            name: format!("t{oid}"),
            make: Make::Implied,
            needs: needs.to_vec(),
            objects: Vec::new(),
        }
    }

    #[test]
    fn each_type_comes_after_what_it_needs() {
        let defs: HashMap<u32, TypeDefinition> = [
            def(1, &[3, 2]),
            def(2, &[3]),
            def(3, &[]),
            def(4, &[1]),
            def(5, &[]),
        ]
        .into_iter()
        .map(|d| (d.oid, d))
        .collect();
        let order: Vec<u32> = in_dependency_order(&[4, 2], defs)
            .iter()
            .map(|d| d.oid)
            .collect();
        assert_eq!(order, [3, 2, 1, 4, 5]);
    }

    #[test]
    fn rows_are_read_strictly() {
        let row = |fields: &[Option<&str>]| -> TextRow {
            fields.iter().map(|f| f.map(str::to_owned)).collect()
        };
        let d = TypeDefinition::from_row(&row(&[
            Some("16400"),
            Some("public"),
            Some("public.span"),
            Some("r"),
            Some("{16390}"),
            None,
            Some("CREATE TYPE public.span AS RANGE (SUBTYPE = integer)"),
            Some("public.spanmulti"),
            None,
        ]))
        .unwrap();
        assert_eq!(d.needs, [16390]);
        assert!(matches!(
            d.make,
            Make::Statement {
                multirange: Some(_),
                ..
            }
        ));
        let e = TypeDefinition::from_row(&row(&[
            Some("16401"),
            Some("public"),
            Some("public.hstore"),
            Some("b"),
            Some("{}"),
            Some("hstore"),
            None,
            None,
            None,
        ]))
        .unwrap();
        assert_eq!(e.make, Make::Extension("hstore".into()));
        assert!(e.needs.is_empty());
        assert!(
            TypeDefinition::from_row(&row(&[
                Some("x"),
                Some("p"),
                Some("n"),
                Some("b"),
                Some("{}")
            ]))
            .is_err()
        );
    }
}
