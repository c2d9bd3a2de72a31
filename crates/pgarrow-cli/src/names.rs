//! Names as SQL and pg_dump read them: `--table` and `--schema` patterns, `--columns` lists,
//! and the catalog query that turns patterns into tables.

use anyhow::{Result, bail};
use pgarrow::Source;
use pgarrow::protocol::{Connection, quote_ident, quote_literal};

/// One part of a name (a schema or a relation) as typed: unquoted text folds to lower case
/// and may hold the wildcards `*` and `?`; `"quoted"` text is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamePart {
    /// The name, when the part has no wildcard.
    literal: Option<String>,
    /// An anchored POSIX regular expression for the part.
    regex: String,
}

/// A `--table` pattern: `name`, `schema.name`, either part a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TablePattern {
    /// As typed, for messages.
    pub(crate) text: String,
    schema: Option<NamePart>,
    name: NamePart,
}

/// A table the patterns matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    pub(crate) schema: String,
    pub(crate) name: String,
}

impl TableName {
    /// `schema.name`, each part quoted only where SQL needs it, for messages and the
    /// manifest.
    pub(crate) fn display(&self) -> String {
        format!("{}.{}", plain_ident(&self.schema), plain_ident(&self.name))
    }

    /// The export source.
    pub(crate) fn source(&self) -> Source {
        Source::Table {
            schema: Some(self.schema.clone()),
            name: self.name.clone(),
        }
    }
}

/// `s` unquoted when SQL would read it back as the same name, else quoted.
fn plain_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_owned() } else { quote_ident(s) }
}

/// Splits `text` at the dots and commas outside double quotes into parts, each read as SQL
/// reads an identifier (unquoted: lower case; quoted: as is, `""` for a quote), with the
/// wildcards `*` and `?` allowed outside quotes when `wildcards` is set.
fn split(text: &str, sep: char, wildcards: bool) -> Result<Vec<NamePart>> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut regex = String::new();
    let mut wild = false;
    let mut quoted = false;
    let mut empty = true;
    let mut chars = text.chars().peekable();
    let mut finish = |literal: &mut String, regex: &mut String, wild: &mut bool, empty: bool| {
        if empty {
            bail!("empty name in \"{text}\"");
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
                    bail!(
                        "a space inside the unquoted name in \"{text}\": quote it (\"first name\")"
                    );
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
        bail!("unterminated quoted name in \"{text}\"");
    }
    finish(&mut literal, &mut regex, &mut wild, empty)?;
    Ok(parts)
}

impl TablePattern {
    /// Reads a `--table` argument.
    pub(crate) fn parse(text: &str) -> Result<TablePattern> {
        let mut parts = split(text, '.', true)
            .map_err(|e| anyhow::anyhow!("--table {text}: {e}"))?
            .into_iter();
        let (schema, name) = match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, None) => (None, name),
            (Some(schema), Some(name), None) => (Some(schema), name),
            _ => bail!(
                "--table {text}: expected name or schema.name (quote a part that holds a dot)"
            ),
        };
        Ok(TablePattern {
            text: text.to_owned(),
            schema,
            name,
        })
    }

    /// A `--schema` argument: every relation of the matching schemas.
    pub(crate) fn schema(text: &str) -> Result<TablePattern> {
        let parts = split(text, '.', true).map_err(|e| anyhow::anyhow!("--schema {text}: {e}"))?;
        let [schema] = <[NamePart; 1]>::try_from(parts)
            .map_err(|_| anyhow::anyhow!("--schema {text}: expected one name"))?;
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
    pub(crate) fn exact(&self) -> Option<Source> {
        let name = self.name.literal.clone()?;
        let schema = match &self.schema {
            Some(s) => Some(s.literal.clone()?),
            None => None,
        };
        Some(Source::Table { schema, name })
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
pub(crate) async fn resolve(
    conn: &mut Connection,
    patterns: &[TablePattern],
) -> Result<Vec<TableName>> {
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
            bail!(NoMatch(p.text.clone()));
        }
        for row in rows {
            let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let table = TableName {
                schema: get(0),
                name: get(1),
            };
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

/// A pattern that matched no relation.
#[derive(Debug)]
pub(crate) struct NoMatch(pub(crate) String);

impl std::fmt::Display for NoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no table, view or materialized view matches \"{}\" (unquoted names fold to lower \
             case: quote a name with capitals, as in '\"Orders\"')",
            self.0
        )
    }
}

impl std::error::Error for NoMatch {}

/// The query for `--columns`, `--where` and `--limit` on one table: names quoted, the
/// condition in parentheses of its own.
pub(crate) fn table_query(
    table: &Source,
    columns: Option<&str>,
    condition: Option<&str>,
    limit: Option<u64>,
) -> Result<Source> {
    let Source::Table { schema, name } = table else {
        bail!("--columns, --where and --limit apply to one --table");
    };
    let from = match schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(name)),
        None => quote_ident(name),
    };
    let select = match columns {
        Some(list) => {
            let parts = split(list, ',', false).map_err(|e| anyhow::anyhow!("--columns: {e}"))?;
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

    fn exact(text: &str) -> Option<Source> {
        TablePattern::parse(text).unwrap().exact()
    }

    #[test]
    fn unquoted_names_fold_and_quoted_ones_keep_their_case() {
        let table = |schema: Option<&str>, name: &str| {
            Some(Source::Table {
                schema: schema.map(str::to_owned),
                name: name.to_owned(),
            })
        };
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
        assert!(table_query(&Source::query("select 1"), None, None, Some(1)).is_err());
    }

    #[test]
    fn display_names_quote_only_where_needed() {
        let t = TableName {
            schema: "public".into(),
            name: "Orders".into(),
        };
        assert_eq!(t.display(), "public.\"Orders\"");
    }
}
