//! What to export: a query or a table.

use crate::Result;
use crate::names::TableName;

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Any query returning rows (`SELECT`, `TABLE`, `VALUES`, `WITH ...`).
    Query(String),
    /// A table, view or materialized view, by exact (case-sensitive) name.
    Table(TableName),
}

impl Source {
    /// A query. Trailing semicolons and comments are allowed (and left out of the statement
    /// run); the rest is sent as written, so the server's error positions point into it.
    pub fn query(sql: impl Into<String>) -> Source {
        Source::Query(sql.into())
    }

    /// A table from `name` or `schema.name`, read as SQL reads it (see [`TableName::parse`]):
    /// unquoted parts fold to lower case; a double-quoted part (`"a.b"."Orders"`) keeps its
    /// case and may contain dots.
    ///
    /// # Errors
    /// An empty part, a stray quote, or more than two parts.
    pub fn table(spec: &str) -> Result<Source> {
        Ok(TableName::parse(spec).map(Source::Table)?)
    }

    /// The SELECT this source stands for, identifiers quoted.
    pub fn sql(&self) -> String {
        match self {
            Source::Query(q) => statement_body(q).to_owned(),
            Source::Table(t) => format!("SELECT * FROM {}", t.quoted()),
        }
    }

    /// The table, for a table source.
    pub fn as_table(&self) -> Option<&TableName> {
        match self {
            Source::Table(t) => Some(t),
            Source::Query(_) => None,
        }
    }
}

impl From<TableName> for Source {
    fn from(table: TableName) -> Source {
        Source::Table(table)
    }
}

/// `sql` up to the end of its last token that is not a semicolon: without the trailing
/// semicolons, comments and white space that cannot go inside `COPY (...)`. Strings, quoted
/// identifiers, dollar quotes and comments are skipped whole, so a `;` or `--` inside them
/// stays.
fn statement_body(sql: &str) -> &str {
    let b = sql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let mut end = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        // An unterminated block comment is kept, for the server to refuse.
        let mut open_comment = false;
        i = match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                // A line comment: not a token.
                match b[i..].iter().position(|&c| c == b'\n') {
                    Some(n) => i + n + 1,
                    None => b.len(),
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // A block comment (they nest): not a token.
                let mut depth = 0usize;
                let mut j = i;
                while j < b.len() {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                open_comment = depth > 0;
                j
            }
            c if c.is_ascii_whitespace() => i + 1,
            b'\'' => {
                // E'...' takes backslash escapes.
                let escapes =
                    i > 0 && matches!(b[i - 1], b'e' | b'E') && (i < 2 || !ident(b[i - 2]));
                let mut j = i + 1;
                while j < b.len() {
                    match b[j] {
                        b'\\' if escapes => j += 2,
                        b'\'' if b.get(j + 1) == Some(&b'\'') => j += 2,
                        b'\'' => break,
                        _ => j += 1,
                    }
                }
                j + 1
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() {
                    match b[j] {
                        b'"' if b.get(j + 1) == Some(&b'"') => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                j + 1
            }
            b'$' if i == 0 || !ident(b[i - 1]) => match dollar_tag(&b[i..]) {
                Some(tag) => match find(&b[i + tag.len()..], tag) {
                    Some(n) => i + tag.len() + n + tag.len(),
                    None => b.len(),
                },
                None => i + 1,
            },
            _ => i + 1,
        };
        let token = !(c.is_ascii_whitespace()
            || c == b';'
            || (c == b'-' && b.get(start + 1) == Some(&b'-'))
            || (c == b'/' && b.get(start + 1) == Some(&b'*') && !open_comment));
        if token {
            end = i.min(b.len());
        }
    }
    // `end` is after an ASCII byte or at the end of a quoted token: a char boundary.
    sql.get(..end).unwrap_or(sql)
}

/// The opening `$tag$` of a dollar quote at the start of `b`, if there is one.
fn dollar_tag(b: &[u8]) -> Option<&[u8]> {
    let close = b[1..].iter().position(|&c| c == b'$')? + 1;
    let tag = &b[1..close];
    let valid = tag.first().is_none_or(|c| !c.is_ascii_digit())
        && tag
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80);
    valid.then_some(&b[..=close])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
            Source::table("s.\"T\"").unwrap().sql(),
            "SELECT * FROM \"s\".\"T\""
        );
        assert_eq!(
            Source::table("S.T").unwrap().sql(),
            "SELECT * FROM \"s\".\"t\""
        );
        assert_eq!(
            Source::table("\"a.b\".\"c\"\"d\"").unwrap().sql(),
            "SELECT * FROM \"a.b\".\"c\"\"d\""
        );
        assert_eq!(
            Source::table("x; DROP TABLE y").unwrap().sql(),
            "SELECT * FROM \"x; drop table y\""
        );
        for bad in ["", "a.", ".a", "a.b.c", "\"a", "a\"b"] {
            assert!(Source::table(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_trailing_semicolons_and_comments() {
        let cases = [
            (" SELECT 1 ;\n", " SELECT 1"),
            ("select 1; -- the end", "select 1"),
            ("select 1 /* c /* nested */ */ ;\n-- x\n", "select 1"),
            ("select ';' -- a\n;;", "select ';'"),
            ("select 'a--b'", "select 'a--b'"),
            ("select E'it\\'s;' ;", "select E'it\\'s;'"),
            ("select \"a;\"\"b\" from t;", "select \"a;\"\"b\" from t"),
            ("select $$;--$$ ;", "select $$;--$$"),
            ("select $q$ $$; $q$;", "select $q$ $$; $q$"),
            ("select a$b from t;", "select a$b from t"),
            ("select 1; select 2;", "select 1; select 2"),
            ("select 'é' ;", "select 'é'"),
            ("-- only a comment", ""),
            ("select 1 /* open", "select 1 /* open"),
        ];
        for (sql, body) in cases {
            assert_eq!(Source::query(sql).sql(), body, "{sql:?}");
        }
    }

    #[test]
    fn strings_are_queries() {
        assert_eq!(Source::from("SELECT 1"), Source::query("SELECT 1"));
        assert_eq!(Source::from(String::from("TABLE t")).sql(), "TABLE t");
    }
}
