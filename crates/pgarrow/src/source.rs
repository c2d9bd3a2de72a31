//! What to export: a query or a table.

use crate::protocol::quote_ident;
use crate::{Error, Result};

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Any query returning rows (`SELECT`, `TABLE`, `VALUES`, `WITH ...`).
    Query(String),
    /// A table, view or materialized view, by exact (case-sensitive) name.
    Table {
        /// Schema; `None` follows the `search_path`.
        schema: Option<String>,
        /// Table name.
        name: String,
    },
}

impl Source {
    /// A query. A trailing semicolon is allowed.
    pub fn query(sql: impl Into<String>) -> Source {
        Source::Query(sql.into())
    }

    /// A table from `name` or `schema.name`; either part may be double-quoted (`"a.b"."c"`)
    /// to contain dots. Names are exact: `Orders` and `orders` are different tables.
    ///
    /// # Errors
    /// An empty part, a stray quote, or more than two parts.
    pub fn table(spec: &str) -> Result<Source> {
        let parts = split_qualified(spec)
            .ok_or_else(|| Error::query(format!("invalid table name \"{spec}\"")))?;
        match parts.as_slice() {
            [name] => Ok(Source::Table {
                schema: None,
                name: name.clone(),
            }),
            [schema, name] => Ok(Source::Table {
                schema: Some(schema.clone()),
                name: name.clone(),
            }),
            _ => Err(Error::query(format!(
                "invalid table name \"{spec}\": expected name or schema.name"
            ))),
        }
    }

    /// The SELECT this source stands for, identifiers quoted.
    pub fn sql(&self) -> String {
        match self {
            Source::Query(q) => q
                .trim()
                .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
                .to_owned(),
            Source::Table { schema, name } => match schema {
                Some(s) => format!("SELECT * FROM {}.{}", quote_ident(s), quote_ident(name)),
                None => format!("SELECT * FROM {}", quote_ident(name)),
            },
        }
    }
}

/// Splits `a.b` / `"a.b".c` into parts, unquoting quoted ones.
fn split_qualified(spec: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = spec.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return None;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

impl From<&str> for Source {
    /// A query.
    fn from(sql: &str) -> Source {
        Source::query(sql)
    }
}

impl From<String> for Source {
    /// A query.
    fn from(sql: String) -> Source {
        Source::Query(sql)
    }
}

impl From<&String> for Source {
    /// A query.
    fn from(sql: &String) -> Source {
        Source::query(sql.clone())
    }
}

impl From<&Source> for Source {
    fn from(source: &Source) -> Source {
        source.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(Source::table("t").unwrap().sql(), "SELECT * FROM \"t\"");
        assert_eq!(
            Source::table("s.T").unwrap().sql(),
            "SELECT * FROM \"s\".\"T\""
        );
        assert_eq!(
            Source::table("\"a.b\".\"c\"\"d\"").unwrap().sql(),
            "SELECT * FROM \"a.b\".\"c\"\"d\""
        );
        assert_eq!(
            Source::table("x; DROP TABLE y").unwrap().sql(),
            "SELECT * FROM \"x; DROP TABLE y\""
        );
        for bad in ["", "a.", ".a", "a.b.c", "\"a", "a\"b"] {
            assert!(Source::table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_trailing_semicolons() {
        assert_eq!(Source::query(" SELECT 1 ;\n").sql(), "SELECT 1");
    }

    #[test]
    fn strings_are_queries() {
        assert_eq!(Source::from("SELECT 1"), Source::query("SELECT 1"));
        assert_eq!(Source::from(String::from("TABLE t")).sql(), "TABLE t");
    }
}
