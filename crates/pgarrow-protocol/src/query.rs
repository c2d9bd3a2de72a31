//! Statements: the simple query protocol (rows as text) and describing a statement without
//! running it (Parse, Describe, Sync).

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{Message, RowDescriptionBody};
use postgres_protocol::message::frontend;

use crate::conn::{Connection, State, malformed};
use crate::error::{Error, Result};

/// A column of a described statement, from its RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// OID of the table the column comes from, or 0.
    pub table_oid: u32,
    /// Attribute number in that table, or 0.
    pub column_id: i16,
    /// Type OID (a domain's base type: the server resolves domains here).
    pub type_oid: u32,
    /// Type modifier.
    pub type_modifier: i32,
    /// Type size (negative for variable width).
    pub type_size: i16,
}

/// What the server said about a statement it parsed but did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// Types of the `$n` parameters the statement uses.
    pub params: Vec<u32>,
    /// Result columns; `None` when the statement returns no rows (`NoData`).
    pub columns: Option<Vec<FieldDescription>>,
}

/// Rows of a simple query, as text.
pub type TextRow = Vec<Option<String>>;

impl Connection {
    /// Runs SQL with the simple query protocol and returns the rows of its last result, as
    /// text.
    ///
    /// # Errors
    /// The server's error (after which the connection is ready again), or a broken connection.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>> {
        self.check_idle()?;
        self.encode(|buf| frontend::query(sql, buf))?;
        self.state = State::Busy;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.next_message(&mut error).await? {
                Message::RowDescription(_) => rows.clear(),
                Message::DataRow(row) => {
                    let buf = row.buffer();
                    let mut ranges = row.ranges();
                    let mut values = Vec::new();
                    while let Some(r) = ranges.next().map_err(malformed)? {
                        let v = r
                            .map(|r| {
                                buf.get(r)
                                    .map(|b| String::from_utf8_lossy(b).into_owned())
                                    .ok_or_else(|| Error::protocol("DataRow value out of bounds"))
                            })
                            .transpose()?;
                        values.push(v);
                    }
                    rows.push(values);
                }
                Message::CommandComplete(_) | Message::EmptyQueryResponse => {}
                Message::ReadyForQuery(_) => break,
                Message::CopyInResponse(_) => {
                    // Not ours to feed: refuse it, the server then reports an error.
                    self.encode(|buf| {
                        frontend::copy_fail("pgarrow's simple_query does not run COPY", buf)
                    })?;
                    self.flush().await?;
                }
                Message::CopyOutResponse(_) => {
                    self.state = State::Broken("simple_query was given a COPY TO".into());
                    return Err(Error::protocol(
                        "simple_query does not run COPY TO; use copy_out",
                    ));
                }
                other => return Err(self.unexpected(&other, "simple query")),
            }
        }
        self.state = State::Idle;
        match error {
            Some(e) => Err(Error::db(e)),
            None => Ok(rows),
        }
    }

    /// Parses `sql` as an unnamed statement and describes it, without running it
    /// (Parse + Describe + Sync).
    ///
    /// # Errors
    /// The server's error for a statement that does not parse or plan (missing table, syntax).
    pub async fn describe(&mut self, sql: &str) -> Result<Described> {
        self.check_idle()?;
        self.encode(|buf| {
            frontend::parse("", sql, std::iter::empty(), buf)?;
            frontend::describe(b'S', "", buf)?;
            frontend::sync(buf);
            Ok(())
        })?;
        self.state = State::Busy;
        self.flush().await?;
        let mut params = Vec::new();
        let mut columns = None;
        let mut error = None;
        loop {
            match self.next_message(&mut error).await? {
                Message::ParseComplete => {}
                Message::ParameterDescription(p) => {
                    let mut it = p.parameters();
                    while let Some(oid) = it.next().map_err(malformed)? {
                        params.push(oid);
                    }
                }
                Message::RowDescription(body) => columns = Some(row_description(&body)?),
                Message::NoData => columns = None,
                Message::ReadyForQuery(_) => break,
                other => return Err(self.unexpected(&other, "describe")),
            }
        }
        self.state = State::Idle;
        match error {
            Some(e) => Err(Error::db(e)),
            None => Ok(Described { params, columns }),
        }
    }
}

fn row_description(body: &RowDescriptionBody) -> Result<Vec<FieldDescription>> {
    let mut fields = body.fields();
    let mut out = Vec::new();
    while let Some(f) = fields.next().map_err(malformed)? {
        out.push(FieldDescription {
            name: f.name().to_owned(),
            table_oid: f.table_oid(),
            column_id: f.column_id(),
            type_oid: f.type_oid(),
            type_modifier: f.type_modifier(),
            type_size: f.type_size(),
        });
    }
    Ok(out)
}
