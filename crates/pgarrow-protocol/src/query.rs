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
        Ok(self.simple(sql).await?.0)
    }

    /// Runs SQL (one statement or several) with the simple query protocol and returns the
    /// row count of its last command: the rows an `INSERT`, `UPDATE`, `DELETE`, `MERGE`,
    /// `COPY` or `SELECT` touched, `None` for a command that counts none (`CREATE TABLE`).
    ///
    /// # Errors
    /// As [`Connection::simple_query`].
    pub async fn execute(&mut self, sql: &str) -> Result<Option<u64>> {
        Ok(self.simple(sql).await?.1)
    }

    /// The simple query protocol: the rows of the last result, and the count of its last
    /// command.
    async fn simple(&mut self, sql: &str) -> Result<(Vec<TextRow>, Option<u64>)> {
        self.check_idle()?;
        self.encode(|buf| frontend::query(sql, buf))?;
        self.state = State::Busy;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut count = None;
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
                Message::CommandComplete(body) => {
                    count = command_count(body.tag().map_err(malformed)?);
                }
                Message::EmptyQueryResponse => {}
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
            None => Ok((rows, count)),
        }
    }

    /// Runs one statement with the extended query protocol, once for each row of `params`
    /// (or once without parameters when `params` is empty), all in one round trip: Parse
    /// once, a Bind and an Execute per row, one Sync. Parameter `i` travels in the format
    /// `param_formats[i]` (0 text, 1 binary: as its type's send function writes it; `None`
    /// is NULL); results travel in the binary format, so a result row's values are laid out
    /// as a binary COPY tuple's: `on_row` gets each DataRow's fields (after its field
    /// count), as they arrive. `param_types` may leave
    /// types to the server (0). Returns the sum of the commands' row counts, `None` when
    /// none counts rows. The statement runs in the session's transaction state: outside a
    /// transaction block, each Execute is its own transaction up to the Sync (the server's
    /// implicit transaction), so one failing row rolls back every row.
    ///
    /// # Errors
    /// The server's error (the first; the server skips the rest of the rows), or a broken
    /// connection.
    pub async fn execute_bound(
        &mut self,
        sql: &str,
        param_types: &[u32],
        param_formats: &[i16],
        params: &[Vec<Option<Vec<u8>>>],
        mut on_row: impl FnMut(&[u8]),
    ) -> Result<Option<u64>> {
        self.check_idle()?;
        let once = [Vec::new()];
        let rows = if params.is_empty() { &once[..] } else { params };
        self.encode(|buf| {
            frontend::parse("", sql, param_types.iter().copied(), buf)?;
            for row in rows {
                frontend::bind(
                    "",
                    "",
                    param_formats.iter().copied(),
                    row,
                    |v, buf| match v {
                        Some(v) => {
                            buf.extend_from_slice(v);
                            Ok(postgres_protocol::IsNull::No)
                        }
                        None => Ok(postgres_protocol::IsNull::Yes),
                    },
                    [1i16],
                    buf,
                )
                .map_err(|e| match e {
                    frontend::BindError::Conversion(e) => std::io::Error::other(e),
                    frontend::BindError::Serialization(e) => e,
                })?;
                frontend::execute("", 0, buf)?;
            }
            frontend::sync(buf);
            Ok(())
        })?;
        self.state = State::Busy;
        self.flush().await?;
        let mut count: Option<u64> = None;
        let mut error = None;
        loop {
            match self.next_message(&mut error).await? {
                Message::ParseComplete | Message::BindComplete | Message::NoData => {}
                Message::EmptyQueryResponse | Message::PortalSuspended => {}
                Message::DataRow(row) => on_row(row.buffer()),
                Message::CommandComplete(body) => {
                    if let Some(n) = command_count(body.tag().map_err(malformed)?) {
                        count = Some(count.unwrap_or(0) + n);
                    }
                }
                Message::ReadyForQuery(_) => break,
                Message::CopyInResponse(_) | Message::CopyOutResponse(_) => {
                    self.state = State::Broken("a bound statement started a COPY".into());
                    return Err(Error::protocol(
                        "COPY cannot run as a statement with bound parameters",
                    ));
                }
                other => return Err(self.unexpected(&other, "bound statement")),
            }
        }
        self.state = State::Idle;
        match error {
            Some(e) => Err(Error::db(e)),
            None => Ok(count),
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

/// The row count at the end of a command tag (`INSERT 0 5`, `UPDATE 3`, `SELECT 2`), or `None`
/// for a command that counts no rows (`CREATE TABLE`).
fn command_count(tag: &str) -> Option<u64> {
    let (command, last) = tag.rsplit_once(' ')?;
    match command.split(' ').next()? {
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "SELECT" | "COPY" | "FETCH" | "MOVE" => {
            last.parse().ok()
        }
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::command_count;

    #[test]
    fn command_counts_come_from_the_tag() {
        assert_eq!(command_count("INSERT 0 5"), Some(5));
        assert_eq!(command_count("UPDATE 3"), Some(3));
        assert_eq!(command_count("DELETE 0"), Some(0));
        assert_eq!(command_count("SELECT 12"), Some(12));
        assert_eq!(command_count("MERGE 2"), Some(2));
        assert_eq!(command_count("COPY 7"), Some(7));
        assert_eq!(command_count("CREATE TABLE"), None);
        assert_eq!(command_count("CREATE TABLE AS 4"), None);
        assert_eq!(command_count("BEGIN"), None);
        assert_eq!(command_count("SET"), None);
    }
}
