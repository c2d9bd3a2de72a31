//! Relation names: one type that holds a `schema.name` exactly and quotes it for SQL (so that
//! no statement is built by pasting a user's name), and the patterns of `pg_dump` (`--table`,
//! `--schema`) that select several relations, resolved through the catalog.

pub use pgarrow_types::{InvalidName, TableName};

use crate::protocol::{Connection, quote_ident, quote_literal};
use crate::{Error, Result, Source};

/// The table a load writes into, named exactly: `table` as given when it names its schema
/// (`pg_temp.t` is the session's temporary table), else the first schema of the explicit
/// search path (`current_schemas(false)`) less the temporary schemas that has a relation of
/// that name, else (to create it) the first schema of that path.
///
/// The search path alone would not do: the session's temporary schema is searched first, so a
/// temporary table of the same name would take the rows (and a replace would empty it), and
/// with `pg_temp` first on the path (a `SET`, a role's setting, a URL's `options`) a bare
/// `CREATE TABLE` makes a temporary table, gone with the session. PostgreSQL's implicit
/// schemas (`pg_catalog` unless named) are not searched either: a user's table is meant.
///
/// # Errors
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage) when the search path names no schema but
/// `pg_temp` (or none that exists); the server's error.
pub async fn write_target(conn: &mut Connection, table: &TableName) -> Result<TableName> {
    if table.schema.is_some() {
        return Ok(table.clone());
    }
    let sql = format!(
        "WITH path AS (SELECT n.oid, n.nspname, p.i \
           FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS p(s, i) \
           JOIN pg_catalog.pg_namespace n ON n.nspname = p.s \
           WHERE n.oid <> pg_catalog.pg_my_temp_schema() \
             AND NOT pg_catalog.pg_is_other_temp_schema(n.oid)) \
         SELECT coalesce((SELECT nspname FROM path WHERE EXISTS (SELECT FROM \
           pg_catalog.pg_class c WHERE c.relnamespace = path.oid AND c.relname = {}) \
           ORDER BY i LIMIT 1), (SELECT nspname FROM path ORDER BY i LIMIT 1))",
        quote_literal(&table.name)
    );
    let rows = conn.simple_query(&sql).await?;
    match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(Some(schema)) => Ok(TableName::new(Some(schema), table.name.clone())),
        Some(None) => Err(Error::usage(format!(
            "no schema to find or create {table} in: the search_path names none but pg_temp \
             (or none that exists); name the table with its schema (schema.{table}), or \
             pg_temp.{table} for a temporary table"
        ))),
        None => Err(Error::unexpected(
            "no row in the answer to the query for the table's schema",
        )),
    }
}

/// What the calls that take a table accept: a [`TableName`], or text read by
/// [`TableName::parse`] (exact names: `sales."Orders"`).
pub trait IntoTableName {
    /// The name.
    ///
    /// # Errors
    /// Text that is not a valid name.
    fn into_table_name(self) -> Result<TableName>;
}

impl IntoTableName for TableName {
    fn into_table_name(self) -> Result<TableName> {
        Ok(self)
    }
}

impl IntoTableName for &TableName {
    fn into_table_name(self) -> Result<TableName> {
        Ok(self.clone())
    }
}

impl IntoTableName for &str {
    fn into_table_name(self) -> Result<TableName> {
        Ok(TableName::parse(self)?)
    }
}

impl IntoTableName for &String {
    fn into_table_name(self) -> Result<TableName> {
        Ok(TableName::parse(self)?)
    }
}

/// One part of a name (a schema or a relation) as typed: unquoted text folds to lower case
/// and may hold the wildcards `*` and `?`; `"quoted"` text is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamePart {
    /// The name, when the part has no wildcard.
    literal: Option<String>,
    /// An anchored POSIX regular expression for the part.
    regex: String,
}

/// A `--table` pattern: `name`, `schema.name`, either part a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    /// As typed, for messages.
    pub text: String,
    schema: Option<NamePart>,
    name: NamePart,
}

/// Splits `text` at the dots and commas outside double quotes into parts, each read as SQL
/// reads an identifier (unquoted: lower case; quoted: as is, `""` for a quote), with the
/// wildcards `*` and `?` allowed outside quotes when `wildcards` is set.
fn split(text: &str, sep: char, wildcards: bool) -> Result<Vec<NamePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut regex = String::new();
    let mut wild = false;
    let mut quoted = false;
    let mut empty = true;
    let mut chars = text.chars().peekable();
    let mut finish = |literal: &mut String, regex: &mut String, wild: &mut bool, empty: bool| {
        if empty {
            return Err(format!("empty name in \"{text}\""));
        }
        parts.push(NamePart {
            literal: (!*wild).then(|| std::mem::take(literal)),
            regex: format!("^({})$", std::mem::take(regex)),
        });
        literal.clear();
        *wild = false;
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                literal.push('"');
                regex.push('"');
            }
            '"' => {
                quoted = !quoted;
                empty = false;
            }
            c if !quoted && c == sep => {
                finish(&mut literal, &mut regex, &mut wild, empty)?;
                empty = true;
            }
            c if !quoted && c.is_whitespace() && sep == ',' => {
                // Around a name, not inside one: `first name` needs quotes.
                let next = chars.peek().copied();
                if !empty
                    && !literal.is_empty()
                    && next.is_some_and(|n| n != sep && !n.is_whitespace())
                {
                    return Err(format!(
                        "a space inside the unquoted name in \"{text}\": quote it (\"first name\")"
                    ));
                }
            }
            '*' | '?' if !quoted && wildcards => {
                wild = true;
                empty = false;
                regex.push_str(if c == '*' { ".*" } else { "." });
            }
            c => {
                let c = if quoted { c } else { c.to_ascii_lowercase() };
                empty = false;
                literal.push(c);
                if c.is_alphanumeric() || c == '_' {
                    regex.push(c);
                } else {
                    regex.push('\\');
                    regex.push(c);
                }
            }
        }
    }
    if quoted {
        return Err(format!("unterminated quoted name in \"{text}\""));
    }
    finish(&mut literal, &mut regex, &mut wild, empty)?;
    Ok(parts)
}

impl TablePattern {
    /// Reads a `--table` argument.
    pub fn parse(text: &str) -> Result<TablePattern> {
        let mut parts = split(text, '.', true)
            .map_err(|e| Error::usage(format!("--table {text}: {e}")))?
            .into_iter();
        let (schema, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, None) => (None, name),
            (Some(schema), Some(name), None) => (Some(schema), name),
            _ => {
                return Err(Error::usage(format!(
                    "--table {text}: expected name or schema.name (quote a part that holds a dot)"
                )));
            }
        };
        Ok(TablePattern {
            text: text.to_owned(),
            schema,
            name,
        })
    }

    /// A `--schema` argument: every relation of the matching schemas.
    pub fn schema(text: &str) -> Result<TablePattern> {
        let parts =
            split(text, '.', true).map_err(|e| Error::usage(format!("--schema {text}: {e}")))?;
        let [schema] = <[NamePart; 1]>::try_from(parts)
            .map_err(|_| Error::usage(format!("--schema {text}: expected one name")))?;
        Ok(TablePattern {
            text: text.to_owned(),
            schema: Some(schema),
            name: NamePart {
                literal: None,
                regex: "^(.*)$".to_owned(),
            },
        })
    }

    /// The table, when the pattern names exactly one (no wildcard).
    pub fn exact(&self) -> Option<TableName> {
        let name = self.name.literal.clone()?;
        let schema = match &self.schema {
            Some(s) => Some(s.literal.clone()?),
            None => None,
        };
        Some(TableName { schema, name })
    }

    /// The condition on `c` (pg_class) and `n` (pg_namespace) for this pattern. A pattern
    /// without a schema follows the search_path; a schema wildcard leaves out the system
    /// schemas.
    fn condition(&self) -> String {
        let schema = match &self.schema {
            None if self.name.literal.is_some() => {
                "pg_catalog.pg_table_is_visible(c.oid)".to_owned()
            }
            // pg_catalog is always on the search path: a wildcard leaves it out.
            None => "pg_catalog.pg_table_is_visible(c.oid) AND n.nspname !~ '^pg_' \
                     AND n.nspname <> 'information_schema'"
                .to_owned(),
            Some(s) if s.literal.is_some() => format!("n.nspname ~ {}", quote_literal(&s.regex)),
            Some(s) => format!(
                "n.nspname ~ {} AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'",
                quote_literal(&s.regex)
            ),
        };
        format!(
            "(c.relname ~ {} AND {schema})",
            quote_literal(&self.name.regex)
        )
    }
}

/// The relations `patterns` match (tables, partitioned tables, views, materialized views and
/// foreign tables) in schema and name order, each once. A partition is left out when one of
/// its partitioned ancestors is in: that table's export holds its rows. Fails naming a
/// pattern that matches nothing.
///
/// # Errors
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage) for a pattern that matches nothing; the
/// server's error.
pub async fn resolve(conn: &mut Connection, patterns: &[TablePattern]) -> Result<Vec<TableName>> {
    let mut tables: Vec<(TableName, String, String)> = Vec::new();
    for p in patterns {
        let sql = format!(
            "SELECT n.nspname, c.relname, c.oid::int8::text, \
               pg_catalog.array_to_string(ARRAY(SELECT a.relid::int8 \
                 FROM pg_catalog.pg_partition_ancestors(c.oid) a WHERE a.relid <> c.oid), ',') \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {} \
             ORDER BY 1, 2",
            p.condition()
        );
        let rows = conn.simple_query(&sql).await?;
        if rows.is_empty() {
            return Err(Error::usage(format!(
                "no table, view or materialized view matches \"{}\" (unquoted names fold to \
                 lower case: quote a name with capitals, as in '\"Orders\"')",
                p.text
            )));
        }
        for row in rows {
            let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let table = TableName::new(Some(get(0)), get(1));
            if !tables.iter().any(|(t, _, _)| *t == table) {
                tables.push((table, get(2), get(3)));
            }
        }
    }
    let oids: Vec<String> = tables.iter().map(|(_, oid, _)| oid.clone()).collect();
    tables.retain(|(_, _, ancestors)| {
        !ancestors
            .split(',')
            .any(|a| !a.is_empty() && oids.iter().any(|o| o == a))
    });
    tables.sort_by(|a, b| (&a.0.schema, &a.0.name).cmp(&(&b.0.schema, &b.0.name)));
    Ok(tables.into_iter().map(|(t, _, _)| t).collect())
}

/// The query for `--columns`, `--where` and `--limit` on one table: names quoted, the
/// condition in parentheses of its own.
///
/// # Errors
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage): an empty or unquoted spaced column name.
pub fn table_query(
    table: &TableName,
    columns: Option<&str>,
    condition: Option<&str>,
    limit: Option<u64>,
) -> Result<Source> {
    let from = table.quoted();
    let select = match columns {
        Some(list) => {
            let parts =
                split(list, ',', false).map_err(|e| Error::usage(format!("--columns: {e}")))?;
            parts
                .iter()
                .map(|p| quote_ident(p.literal.as_deref().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        }
        None => "*".to_owned(),
    };
    let mut sql = format!("SELECT {select} FROM {from}");
    if let Some(c) = condition {
        // On lines of their own: a trailing comment in the condition ends there.
        sql.push_str(&format!(" WHERE (\n{c}\n)"));
    }
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    Ok(Source::query(sql))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_table_patterns_read_them() {
        // One meaning per name: parse folds as --table's patterns do.
        for text in ["probes.Foo", "PROBES.\"Foo\"", "\"probes\".foo", "Élan.Ünï"] {
            assert_eq!(
                TableName::parse(text).ok(),
                TablePattern::parse(text).unwrap().exact(),
                "{text}"
            );
        }
        let e = Error::from(TableName::parse("a.b.c").unwrap_err());
        assert!(e.is_usage(), "{e}");
    }

    fn exact(text: &str) -> Option<TableName> {
        TablePattern::parse(text).unwrap().exact()
    }

    #[test]
    fn unquoted_names_fold_and_quoted_ones_keep_their_case() {
        let table = |schema: Option<&str>, name: &str| Some(TableName::new(schema, name));
        assert_eq!(exact("BARS_Basic"), table(None, "bars_basic"));
        assert_eq!(exact("Sales.\"Orders\""), table(Some("sales"), "Orders"));
        assert_eq!(exact("\"a.b\".\"c\"\"d\""), table(Some("a.b"), "c\"d"));
        assert_eq!(exact("\"x*\""), table(None, "x*"));
        for bad in ["", "a.", ".a", "a.b.c", "\"a", "a..b"] {
            assert!(TablePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_become_anchored_regular_expressions() {
        let p = TablePattern::parse("Sales_*.t?").unwrap();
        assert_eq!(p.exact(), None);
        let c = p.condition();
        assert!(c.contains("c.relname ~ '^(t.)$'"), "{c}");
        assert!(c.contains("n.nspname ~ '^(sales_.*)$'"), "{c}");
        assert!(c.contains("!~ '^pg_'"), "{c}");
        let visible = TablePattern::parse("t*").unwrap().condition();
        assert!(visible.contains("pg_table_is_visible") && visible.contains("!~ '^pg_'"));
        let dots = TablePattern::parse("\"a+b\"").unwrap().condition();
        assert!(dots.contains("E'^(a\\\\+b)$'"), "{dots}");
        assert!(dots.contains("pg_table_is_visible"), "{dots}");
        let s = TablePattern::schema("public").unwrap().condition();
        assert!(
            s.contains("n.nspname ~ '^(public)$'") && !s.contains("!~"),
            "{s}"
        );
    }

    #[test]
    fn table_queries_quote_names_and_keep_the_condition_apart() {
        let t = exact("s.T").unwrap();
        let q = table_query(&t, Some("b, \"Mixed Case\",A"), Some("a > 1 -- c"), Some(5))
            .unwrap()
            .sql();
        assert_eq!(
            q,
            "SELECT \"b\", \"Mixed Case\", \"a\" FROM \"s\".\"t\" WHERE (\na > 1 -- c\n) LIMIT 5"
        );
        assert!(table_query(&t, Some("a,,b"), None, None).is_err());
        assert!(table_query(&t, Some("first name"), None, None).is_err());
        assert!(table_query(&t, Some(" a , b "), None, None).is_ok());
    }
}

/// Which unique index names a table's rows: [`key_columns`]'s choice when a table has both a
/// primary key and another index as its replica identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// The primary key first (a target's rows, as its constraints know them).
    PrimaryKey,
    /// The replica identity index first (the key the WAL's updates and deletes carry).
    ReplicaIdentity,
}

/// The columns of `table`'s key, in the index's order: its primary key or its replica identity
/// index (`choice` says which first when both exist); empty when it has neither.
///
/// # Errors
/// The catalog query's.
pub async fn key_columns(
    conn: &mut Connection,
    table: &TableName,
    choice: KeyChoice,
) -> Result<Vec<String>> {
    let regclass = quote_literal(&table.quoted());
    let first = match choice {
        KeyChoice::PrimaryKey => "x.indisprimary DESC",
        KeyChoice::ReplicaIdentity => "x.indisreplident DESC, x.indisprimary DESC",
    };
    let rows = conn
        .simple_query(&format!(
            "SELECT a.attname::text FROM pg_catalog.pg_index i, \
             unnest(i.indkey) WITH ORDINALITY AS k(attnum, n), pg_catalog.pg_attribute a \
             WHERE i.indrelid = to_regclass({regclass}) AND a.attrelid = i.indrelid \
             AND a.attnum = k.attnum AND i.indexrelid = (SELECT x.indexrelid FROM \
             pg_catalog.pg_index x WHERE x.indrelid = to_regclass({regclass}) AND \
             (x.indisprimary OR x.indisreplident) ORDER BY {first} LIMIT 1) \
             ORDER BY k.n"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}
