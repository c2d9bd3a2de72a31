//! A catalog database in PostgreSQL (DuckLake's catalog, Iceberg's SQL catalog): statements
//! with their values bound (never pasted into the SQL), their rows as text.

use pgarrow::protocol::{Config, Connection};
use pgarrow::{Error, ErrorKind, Result};

/// A connection to a catalog database.
pub(crate) struct Db {
    conn: Connection,
    /// What the database is, for errors ("the DuckLake catalog").
    what: &'static str,
}

/// Rows of a query whose columns are all text.
pub(crate) type Rows = Vec<Vec<Option<String>>>;

impl Db {
    /// Connects, in UTC with ISO dates (values are compared as PostgreSQL renders them).
    pub(crate) async fn connect(config: &Config, what: &'static str) -> Result<Db> {
        let conn = Connection::connect(config)
            .await
            .map_err(|e| Error::from(ErrorKind::Connect(e)).context(what))?;
        let mut db = Db { conn, what };
        db.batch("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3")
            .await?;
        Ok(db)
    }

    fn error(&self, e: pgarrow::protocol::Error) -> Error {
        Error::from(e).context(self.what)
    }

    /// Runs SQL without values (several statements at once).
    pub(crate) async fn batch(&mut self, sql: &str) -> Result<()> {
        match self.conn.execute(sql).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs one statement with `params` bound (as text; the server infers their types) and
    /// returns its rows: every column of the statement must be text (`::text`).
    pub(crate) async fn query(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Rows> {
        let params: Vec<Option<Vec<u8>>> = params
            .iter()
            .map(|p| p.map(|v| v.as_bytes().to_vec()))
            .collect();
        let mut rows = Vec::new();
        let mut bad = None;
        let done = self
            .conn
            .execute_bound(sql, &[], &[], &[params], |fields| {
                match text_fields(fields) {
                    Some(row) => rows.push(row),
                    None => bad = Some(()),
                }
            })
            .await;
        if let Err(e) = done {
            return Err(self.error(e));
        }
        if bad.is_some() {
            return Err(ErrorKind::Unexpected(format!(
                "{} answered {sql:?} with a malformed row",
                self.what
            ))
            .into());
        }
        Ok(rows)
    }

    /// Runs one statement with `params` bound; its row count.
    pub(crate) async fn exec(&mut self, sql: &str, params: &[Option<&str>]) -> Result<u64> {
        let params: Vec<Option<Vec<u8>>> = params
            .iter()
            .map(|p| p.map(|v| v.as_bytes().to_vec()))
            .collect();
        match self
            .conn
            .execute_bound(sql, &[], &[], &[params], |_| {})
            .await
        {
            Ok(count) => Ok(count.unwrap_or(0)),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs one statement once for each row of `rows`, in one round trip.
    pub(crate) async fn exec_each(
        &mut self,
        sql: &str,
        rows: &[Vec<Option<String>>],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let params: Vec<Vec<Option<Vec<u8>>>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.as_ref().map(|v| v.as_bytes().to_vec()))
                    .collect()
            })
            .collect();
        match self
            .conn
            .execute_bound(sql, &[], &[], &params, |_| {})
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Ends the connection.
    pub(crate) async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// A DataRow's fields (after its field count) as text.
fn text_fields(mut b: &[u8]) -> Option<Vec<Option<String>>> {
    let mut row = Vec::new();
    while !b.is_empty() {
        let len = i32::from_be_bytes(b.get(..4)?.try_into().ok()?);
        b = &b[4..];
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        row.push(Some(String::from_utf8_lossy(b.get(..len)?).into_owned()));
        b = &b[len..];
    }
    Some(row)
}

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_identifiers() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let mut row = Vec::new();
        row.extend(3i32.to_be_bytes());
        row.extend(b"abc");
        row.extend((-1i32).to_be_bytes());
        assert_eq!(text_fields(&row), Some(vec![Some("abc".to_owned()), None]));
        assert_eq!(text_fields(&[0, 0, 0, 9, 1]), None);
    }
}
