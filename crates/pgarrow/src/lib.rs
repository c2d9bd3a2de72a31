//! Move data out of PostgreSQL into Apache Arrow, exactly and fast.
//!
//! [`Client::export`] describes a query (Parse/Describe, no execution), looks up the names of
//! its column types in one catalog query, casts columns whose types have no binary decoder to
//! `text`, and runs `COPY (...) TO STDOUT (FORMAT binary)`. The COPY data is decoded in place
//! from the connection's read buffer into Arrow arrays: [`Export::next_batch`] hands out
//! RecordBatches until the end, then checks the server's row count against the rows decoded.
//!
//! ```no_run
//! # async fn run() -> Result<(), pgarrow::Error> {
//! use pgarrow::{Client, ExportOptions, Source};
//!
//! let mut client = Client::connect_str("postgresql://postgres@localhost/postgres").await?;
//! let mut export = client
//!     .export(&Source::query("SELECT * FROM pg_class"), &ExportOptions::default())
//!     .await?;
//! while let Some(batch) = export.next_batch().await? {
//!     println!("{} rows", batch.num_rows());
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

use std::fmt;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

pub use pgarrow_decode::{
    ColumnKind, ColumnPlan, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DecodeOptions, PgColumn,
};
pub use pgarrow_protocol::{Config, Connection, DbError, quote_ident, redact};

use pgarrow_decode::CopyDecoder;
use pgarrow_protocol::CopyOut;

/// An export failure, with the number of rows delivered before it.
#[derive(Debug)]
pub struct Error {
    kind: Box<ErrorKind>,
    rows: Option<u64>,
}

/// What failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Connecting, a server error, or the protocol.
    Protocol(pgarrow_protocol::Error),
    /// The COPY data could not be decoded into Arrow.
    Decode(pgarrow_decode::Error),
    /// The query cannot be exported (it returns no rows, it takes parameters, ...).
    Query(String),
    /// The server's row count does not match the rows decoded.
    RowCount {
        /// Rows the server says it sent.
        server: u64,
        /// Rows decoded.
        decoded: u64,
    },
}

impl Error {
    /// What failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Rows delivered to the caller before the failure, when the export had started.
    pub fn rows_delivered(&self) -> Option<u64> {
        self.rows
    }

    /// The server's error, if the server sent one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match &*self.kind {
            ErrorKind::Protocol(e) => e.as_db_error(),
            _ => None,
        }
    }

    /// The server's SQLSTATE, if the server sent an error.
    pub fn code(&self) -> Option<&str> {
        self.as_db_error().map(|e| e.code.as_str())
    }

    fn with_rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    fn query(msg: impl Into<String>) -> Self {
        ErrorKind::Query(msg.into()).into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error {
            kind: Box::new(kind),
            rows: None,
        }
    }
}

impl From<pgarrow_protocol::Error> for Error {
    fn from(e: pgarrow_protocol::Error) -> Self {
        ErrorKind::Protocol(e).into()
    }
}

impl From<pgarrow_decode::Error> for Error {
    fn from(e: pgarrow_decode::Error) -> Self {
        ErrorKind::Decode(e).into()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.kind {
            ErrorKind::Protocol(e) => e.fmt(f)?,
            ErrorKind::Decode(e) => e.fmt(f)?,
            ErrorKind::Query(m) => f.write_str(m)?,
            ErrorKind::RowCount { server, decoded } => write!(
                f,
                "the server reported {server} rows but {decoded} were decoded"
            )?,
        }
        if let Some(rows) = self.rows {
            write!(f, " [after {rows} rows]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            ErrorKind::Protocol(e) => Some(e),
            ErrorKind::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// A specialized `Result` for exports.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// Options of one export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// How batches are cut.
    pub decode: DecodeOptions,
}

/// A described source: its columns, decoders, Arrow schema and the COPY statement to run.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    /// One plan per result column.
    pub columns: Vec<ColumnPlan>,
    /// The Arrow schema of the batches.
    pub schema: SchemaRef,
    /// The COPY statement that will be sent.
    pub copy_sql: String,
}

/// A connection to PostgreSQL that exports queries as Arrow.
#[derive(Debug)]
pub struct Client {
    conn: Connection,
}

impl Client {
    /// Connects with a configuration.
    ///
    /// # Errors
    /// See [`Connection::connect`].
    pub async fn connect(config: &Config) -> Result<Client> {
        Ok(Client {
            conn: Connection::connect(config).await?,
        })
    }

    /// Connects with a URL or `key=value` string (the `PG*` environment fills in the rest).
    ///
    /// # Errors
    /// An invalid string, or see [`Connection::connect`].
    pub async fn connect_str(s: &str) -> Result<Client> {
        Self::connect(&Config::parse(s)?).await
    }

    /// The underlying connection, for other statements.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Describes `source` without running it and plans the export.
    ///
    /// # Errors
    /// The server's error for a query that does not parse (a missing table, a syntax error),
    /// a statement that returns no rows, or a query with `$n` parameters.
    pub async fn plan(&mut self, source: &Source) -> Result<ExportPlan> {
        let sql = source.sql();
        let described = self.conn.describe(&sql).await?;
        if !described.params.is_empty() {
            return Err(Error::query(format!(
                "the query uses {} parameter(s) ($1...); pgarrow exports queries without \
                 parameters",
                described.params.len()
            )));
        }
        let Some(fields) = described.columns else {
            return Err(Error::query(
                "the statement returns no rows; export a SELECT, TABLE, VALUES or a table name",
            ));
        };
        let type_names = self.type_names(&fields).await?;
        let columns: Vec<ColumnPlan> = fields
            .iter()
            .zip(type_names)
            .map(|(f, type_name)| {
                ColumnPlan::for_column(PgColumn {
                    name: f.name.clone(),
                    oid: f.type_oid,
                    typmod: f.type_modifier,
                    type_name,
                })
            })
            .collect();
        let copy_sql = copy_statement(&sql, &columns);
        let schema = std::sync::Arc::new(arrow_schema::Schema::new(
            columns.iter().map(ColumnPlan::field).collect::<Vec<_>>(),
        ));
        Ok(ExportPlan {
            columns,
            schema,
            copy_sql,
        })
    }

    /// `format_type(oid, typmod)` of every column, in one query.
    async fn type_names(
        &mut self,
        fields: &[pgarrow_protocol::FieldDescription],
    ) -> Result<Vec<String>> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        // Only numbers we formatted go into this statement.
        let oids: Vec<String> = fields.iter().map(|f| f.type_oid.to_string()).collect();
        let mods: Vec<String> = fields.iter().map(|f| f.type_modifier.to_string()).collect();
        let sql = format!(
            "SELECT pg_catalog.format_type(t.o, NULLIF(t.m, -1)) FROM \
             unnest('{{{}}}'::pg_catalog.oid[], '{{{}}}'::pg_catalog.int4[]) WITH ORDINALITY \
             AS t(o, m, n) ORDER BY t.n",
            oids.join(","),
            mods.join(",")
        );
        let rows = self.conn.simple_query(&sql).await?;
        if rows.len() != fields.len() {
            return Err(Error::query(
                "the type-name lookup returned the wrong number of rows",
            ));
        }
        Ok(rows
            .into_iter()
            .zip(fields)
            .map(|(r, f)| {
                r.into_iter()
                    .next()
                    .flatten()
                    .unwrap_or_else(|| format!("oid {}", f.type_oid))
            })
            .collect())
    }

    /// Starts exporting `source`: plans it, then runs its COPY.
    ///
    /// # Errors
    /// See [`Client::plan`]; the server's error if the COPY fails to start.
    pub async fn export(&mut self, source: &Source, options: &ExportOptions) -> Result<Export<'_>> {
        let plan = self.plan(source).await?;
        self.export_plan(plan, options).await
    }

    /// Runs the COPY of an already made plan.
    ///
    /// # Errors
    /// The server's error if the COPY fails to start.
    pub async fn export_plan(
        &mut self,
        plan: ExportPlan,
        options: &ExportOptions,
    ) -> Result<Export<'_>> {
        let decoder = CopyDecoder::with_plans(plan.columns, options.decode)?;
        let copy = self.conn.copy_out(&plan.copy_sql).await?;
        if !copy.is_binary() {
            return Err(Error::query(
                "the server started a text COPY instead of binary",
            ));
        }
        Ok(Export {
            copy,
            decoder,
            finished: false,
            rows_delivered: 0,
        })
    }

    /// Closes the connection politely (Terminate).
    ///
    /// # Errors
    /// Socket errors while closing.
    pub async fn close(self) -> Result<()> {
        Ok(self.conn.close().await?)
    }
}

/// The COPY statement for a described query: the query itself when every column has a binary
/// decoder, else a projection over it that casts the others to text. The projection renames the
/// columns positionally (`AS _pgarrow(c1, c2, ...)`), so duplicate or odd names do not matter.
fn copy_statement(sql: &str, columns: &[ColumnPlan]) -> String {
    if columns.iter().all(|c| c.cast.is_none()) {
        return format!("COPY ({sql}\n) TO STDOUT (FORMAT binary)");
    }
    let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = columns
        .iter()
        .zip(&aliases)
        .map(|(c, a)| match c.cast {
            Some(cast) => format!("{a}::{cast}"),
            None => a.clone(),
        })
        .collect();
    format!(
        "COPY (SELECT {} FROM ({sql}\n) AS _pgarrow({})) TO STDOUT (FORMAT binary)",
        select.join(", "),
        aliases.join(", ")
    )
}

/// A running export: RecordBatches decoded straight from the COPY stream.
///
/// # Termination
/// [`next_batch`](Export::next_batch) returns `Ok(None)` after the last batch, once the server
/// confirmed the end of the COPY and its row count matched. Dropping an unfinished export
/// leaves the connection unusable for further queries.
#[derive(Debug)]
pub struct Export<'c> {
    copy: CopyOut<'c>,
    decoder: CopyDecoder,
    finished: bool,
    rows_delivered: u64,
}

impl Export<'_> {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.decoder.schema()
    }

    /// Rows handed out so far.
    pub fn rows(&self) -> u64 {
        self.rows_delivered
    }

    /// Bytes of COPY data received so far.
    pub fn bytes(&self) -> u64 {
        self.copy.bytes()
    }

    /// The next batch, or `None` at the end.
    ///
    /// # Errors
    /// The server's error (SQLSTATE and message), a value that cannot be decoded (row,
    /// column, type), a broken connection, or a row-count mismatch; each carries the rows
    /// delivered before it.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        match self.next_inner().await {
            Ok(Some(b)) => {
                self.rows_delivered += b.num_rows() as u64;
                Ok(Some(b))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.with_rows(self.rows_delivered)),
        }
    }

    async fn next_inner(&mut self) -> Result<Option<RecordBatch>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            if self.decoder.has_batch()
                && let Some(batch) = self.decoder.flush()?
            {
                return Ok(Some(batch));
            }
            let chunk = self.copy.fill().await?;
            if chunk.is_empty() {
                self.finished = true;
                let last = self.decoder.finish()?;
                let decoded = self.decoder.rows_decoded();
                if let Some(server) = self.copy.rows()
                    && server != decoded
                {
                    return Err(ErrorKind::RowCount { server, decoded }.into());
                }
                return Ok(last);
            }
            let used = self.decoder.decode(chunk)?;
            self.copy.consume(used);
        }
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
    fn copy_statement_casts_only_when_needed() {
        let plain = vec![ColumnPlan::for_column(PgColumn::new("a", 23, -1))];
        assert_eq!(
            copy_statement("SELECT 1", &plain),
            "COPY (SELECT 1\n) TO STDOUT (FORMAT binary)"
        );
        let mixed = vec![
            ColumnPlan::for_column(PgColumn::new("a", 23, -1)),
            ColumnPlan::for_column(PgColumn::new("a", 869, -1)),
        ];
        assert_eq!(
            copy_statement("SELECT 1, '1.2.3.4'::inet", &mixed),
            "COPY (SELECT c1, c2::text FROM (SELECT 1, '1.2.3.4'::inet\n) AS _pgarrow(c1, c2)) \
             TO STDOUT (FORMAT binary)"
        );
    }
}
