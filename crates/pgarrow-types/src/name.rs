//! Names in SQL: a relation's `schema.name` held exactly ([`TableName`]), read from text as
//! SQL reads it, and quoted for SQL ([`quote_ident`], [`quote_literal`]) so that no statement
//! is built by pasting a user's text.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Text that is not a name: what was wrong with it, quoting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName(pub String);

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidName {}

/// A table, view or other relation: `name` (found through the `search_path`; a table pgarrow
/// loads into is never a temporary table unless named `pg_temp.name`) or `schema.name`. Its fields hold the names as the
/// catalog does (exact: case and every character kept); [`parse`](TableName::parse) reads
/// them from text as SQL does, and [`quoted`](TableName::quoted) is the form for SQL,
/// [`Display`](fmt::Display) the form for people (quoted only where SQL needs it).
///
/// ```
/// use pgarrow_types::TableName;
///
/// // Unquoted parts fold to lower case, as in SQL; quoted ones keep their case.
/// let t = TableName::parse("Sales.\"Orders\"")?;
/// assert_eq!(t, TableName::new(Some("sales"), "Orders"));
/// assert_eq!(t.quoted(), "\"sales\".\"Orders\"");
/// assert_eq!(t.to_string(), "sales.\"Orders\"");
/// # Ok::<(), pgarrow_types::InvalidName>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    /// The schema; `None` follows the `search_path`.
    pub schema: Option<String>,
    /// The relation's name.
    pub name: String,
}

impl TableName {
    /// A name in `schema` (or on the `search_path` when `None`).
    pub fn new(schema: Option<impl Into<String>>, name: impl Into<String>) -> TableName {
        TableName {
            schema: schema.map(Into::into),
            name: name.into(),
        }
    }

    /// Reads `name` or `schema.name` as SQL reads it: an unquoted part folds to lower case
    /// (`Orders` is `orders`), a double-quoted one keeps its case and may hold dots
    /// (`"a.b"."Orders"`, `""` for a quote). Every door that takes a table name as text reads
    /// it this way, as `export --table` does: one name means one table everywhere.
    ///
    /// # Errors
    /// [`InvalidName`]: an empty part, a stray quote, or more than two parts.
    pub fn parse(spec: &str) -> Result<TableName, InvalidName> {
        let parts = split_qualified(spec)
            .ok_or_else(|| InvalidName(format!("invalid table name \"{spec}\"")))?;
        match <[String; 2]>::try_from(parts) {
            Ok([schema, name]) => Ok(TableName::new(Some(schema), name)),
            Err(parts) => match <[String; 1]>::try_from(parts) {
                Ok([name]) => Ok(TableName::new(None::<String>, name)),
                Err(_) => Err(InvalidName(format!(
                    "invalid table name \"{spec}\": expected name or schema.name"
                ))),
            },
        }
    }

    /// The name for SQL, each part quoted: `"schema"."name"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl fmt::Display for TableName {
    /// `schema.name`, each part quoted only where SQL would not read it back unchanged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.schema {
            write!(f, "{}.", plain_ident(s))?;
        }
        f.write_str(&plain_ident(&self.name))
    }
}

impl std::str::FromStr for TableName {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<TableName, InvalidName> {
        TableName::parse(s)
    }
}

/// `s` unquoted when SQL would read it back as the same name, else quoted.
pub fn plain_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { s.to_owned() } else { quote_ident(s) }
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
                // PostgreSQL's downcase_identifier: ASCII letters only (multibyte UTF-8
                // characters keep their case).
                part.push(c.to_ascii_lowercase());
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

/// Quotes an SQL identifier: wraps it in double quotes, doubling any inside.
pub fn quote_ident(ident: &str) -> String {
    let mut s = String::with_capacity(ident.len() + 2);
    s.push('"');
    for c in ident.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Quotes an SQL string literal (`E'...'` when it holds backslashes, so that it means the
/// same whatever `standard_conforming_strings` says).
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_sql_reads_them_and_quote_for_sql() {
        let t = TableName::parse("S.\"T\"").unwrap();
        assert_eq!(t, TableName::new(Some("s"), "T"));
        assert_eq!(t.quoted(), "\"s\".\"T\"");
        assert_eq!(t.to_string(), "s.\"T\"");
        assert_eq!(
            TableName::parse("Élan").unwrap().name,
            "Élan",
            "non-ASCII letters keep their case, as PostgreSQL's downcase_identifier does"
        );
        let odd = TableName::parse("\"a.b\".\"c\"\"d\"").unwrap();
        assert_eq!(odd, TableName::new(Some("a.b"), "c\"d"));
        assert_eq!(odd.quoted(), "\"a.b\".\"c\"\"d\"");
        let injected = TableName::parse("x; DROP TABLE y").unwrap();
        assert_eq!(injected.quoted(), "\"x; drop table y\"");
        assert_eq!(TableName::parse("t").unwrap().to_string(), "t");
        for bad in ["", "a.", ".a", "a.b.c", "\"a", "a\"b"] {
            let e = TableName::parse(bad).unwrap_err();
            assert!(e.0.contains("invalid table name"), "{bad}: {e}");
        }
    }

    #[test]
    fn display_names_quote_only_where_needed() {
        let t = TableName::new(Some("public"), "Orders");
        assert_eq!(t.to_string(), "public.\"Orders\"");
    }
}
