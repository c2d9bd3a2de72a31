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

pub use pgarrow_decode::policy;
pub use pgarrow_decode::{
    ColumnKind, ColumnPlan, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DecodeOptions, LossKind,
    LossReport, PgColumn, Policies, TypePlan,
};
/// The wire-protocol crate, for its error kinds ([`protocol::ErrorKind`]) and settings.
pub use pgarrow_protocol as protocol;
pub use pgarrow_protocol::{CancelToken, Config, Connection, DbError, quote_ident, redact};

use pgarrow_decode::{Attribute, Catalog, CatalogKind, CatalogType, CopyDecoder};
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
    /// What to do where a value has no exact Arrow form.
    pub policies: Policies,
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
        let mut conn = Connection::connect(config).await?;
        // A SQL_ASCII database stores bytes in no particular encoding: asked for UTF8, the
        // server refuses the first non-ASCII byte (22021). Take the bytes as they are and let
        // the invalid-UTF-8 policy decide (error naming the row, replace, or binary).
        if conn.parameter("server_encoding") == Some("SQL_ASCII") {
            conn.simple_query("SET client_encoding TO 'SQL_ASCII'")
                .await?;
        }
        Ok(Client { conn })
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
        self.plan_with(source, &Policies::default()).await
    }

    /// Describes `source` and plans the export under `policies`.
    ///
    /// # Errors
    /// As [`Client::plan`].
    pub async fn plan_with(&mut self, source: &Source, policies: &Policies) -> Result<ExportPlan> {
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
        let catalog = self.catalog(&fields).await?;
        let columns: Vec<ColumnPlan> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let column = PgColumn {
                    name: f.name.clone(),
                    oid: f.type_oid,
                    typmod: f.type_modifier,
                    type_name: catalog.names[i].clone(),
                };
                ColumnPlan::plan(column, &catalog.types, policies, catalog.dims[i])
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

    /// Everything the plan needs from the catalog, in one query: each column's type name and
    /// declared array dimensions, and every type reachable from the columns' types (array
    /// elements, domain bases, composite attributes, range subtypes, multirange ranges) with
    /// enum labels and composite attributes. Only numbers we format go into the statement.
    async fn catalog(
        &mut self,
        fields: &[pgarrow_protocol::FieldDescription],
    ) -> Result<ColumnCatalog> {
        let mut out = ColumnCatalog {
            names: fields
                .iter()
                .map(|f| format!("oid {}", f.type_oid))
                .collect(),
            dims: vec![1; fields.len()],
            types: Catalog::new(),
        };
        if fields.is_empty() {
            return Ok(out);
        }
        let list = |f: &dyn Fn(&pgarrow_protocol::FieldDescription) -> String| {
            fields.iter().map(f).collect::<Vec<_>>().join(",")
        };
        let oids = list(&|f| f.type_oid.to_string());
        let mods = list(&|f| f.type_modifier.to_string());
        let rels = list(&|f| f.table_oid.to_string());
        let atts = list(&|f| f.column_id.to_string());
        let multirange = self.conn.server_version_num() >= 140_000;
        let sql = catalog_query(&oids, &mods, &rels, &atts, multirange);
        let rows = self.conn.simple_query(&sql).await?;
        let mut attributes: Vec<(u32, i32, Attribute)> = Vec::new();
        let mut labels: Vec<(u32, f64, String)> = Vec::new();
        let mut types: Vec<TypeRow> = Vec::new();
        for row in &rows {
            let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let num = |i: usize| get(i).parse::<i64>().unwrap_or(0);
            let opt = |i: usize| {
                row.get(i)
                    .cloned()
                    .flatten()
                    .and_then(|v| v.parse::<u32>().ok())
            };
            match get(0).as_str() {
                "n" => {
                    if let Some(name) = out.names.get_mut((num(1) as usize).wrapping_sub(1)) {
                        *name = get(2);
                    }
                }
                "d" => {
                    if let Some(d) = out.dims.get_mut((num(1) as usize).wrapping_sub(1)) {
                        *d = num(2).clamp(1, 6) as usize;
                    }
                }
                "a" => attributes.push((
                    num(1) as u32,
                    num(2) as i32,
                    Attribute {
                        name: get(3),
                        oid: num(4) as u32,
                        typmod: num(5) as i32,
                        display: get(6),
                        dims: num(7).clamp(0, 6) as usize,
                    },
                )),
                "e" => labels.push((num(1) as u32, get(2).parse().unwrap_or(0.0), get(3))),
                "t" => types.push(TypeRow {
                    oid: num(1) as u32,
                    schema: get(2),
                    name: get(3),
                    typtype: get(4),
                    elem: num(5) as u32,
                    base: num(6) as u32,
                    typmod: num(7) as i32,
                    display: get(8),
                    typlen: num(9),
                    range_subtype: opt(10),
                    multirange_of: opt(11),
                    dims: num(12).clamp(0, 6) as usize,
                }),
                _ => return Err(Error::query("unexpected row from the catalog query")),
            }
        }
        attributes.sort_by_key(|(owner, attnum, _)| (*owner, *attnum));
        labels.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        for t in types {
            let kind = match t.typtype.as_str() {
                "d" => CatalogKind::Domain {
                    base: t.base,
                    typmod: t.typmod,
                    dims: t.dims,
                },
                "c" => CatalogKind::Composite {
                    fields: attributes
                        .iter()
                        .filter(|(owner, _, _)| *owner == t.oid)
                        .map(|(_, _, a)| a.clone())
                        .collect(),
                },
                "e" => CatalogKind::Enum {
                    labels: labels
                        .iter()
                        .filter(|(owner, _, _)| *owner == t.oid)
                        .map(|(_, _, l)| l.clone())
                        .collect(),
                },
                "r" => match t.range_subtype {
                    Some(subtype) => CatalogKind::Range { subtype },
                    None => CatalogKind::Other,
                },
                "m" => match t.multirange_of {
                    Some(range) => CatalogKind::Multirange { range },
                    None => CatalogKind::Other,
                },
                "b" if t.elem != 0 && t.typlen == -1 => CatalogKind::Array { element: t.elem },
                "b" => CatalogKind::Base,
                _ => CatalogKind::Other,
            };
            out.types.insert(CatalogType {
                oid: t.oid,
                schema: t.schema,
                name: t.name,
                display: t.display,
                kind,
            });
        }
        Ok(out)
    }

    /// Starts exporting `source`: plans it, then runs its COPY.
    ///
    /// # Errors
    /// See [`Client::plan`]; the server's error if the COPY fails to start.
    pub async fn export(&mut self, source: &Source, options: &ExportOptions) -> Result<Export<'_>> {
        let plan = self.plan_with(source, &options.policies).await?;
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
        let decoder = CopyDecoder::with_policies(plan.columns, options.decode, options.policies)?;
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

/// One `t` row of the catalog query.
struct TypeRow {
    oid: u32,
    schema: String,
    name: String,
    typtype: String,
    elem: u32,
    base: u32,
    typmod: i32,
    display: String,
    typlen: i64,
    range_subtype: Option<u32>,
    multirange_of: Option<u32>,
    dims: usize,
}

/// What the catalog query found.
struct ColumnCatalog {
    /// `format_type(oid, typmod)` per result column.
    names: Vec<String>,
    /// Array dimensions to plan per result column (`pg_attribute.attndims`, at least 1).
    dims: Vec<usize>,
    /// Every type reachable from the result columns' types.
    types: Catalog,
}

/// The one catalog query of an export. Rows are tagged: `n` (column number, type name),
/// `d` (column number, declared array dimensions, of the column or of its domain), `t` (a type), `a` (a composite's attribute),
/// `e` (an enum label). All arguments are comma-separated numbers formatted by us.
fn catalog_query(oids: &str, mods: &str, rels: &str, atts: &str, multirange: bool) -> String {
    let (multi_child, multi_col) = if multirange {
        (
            "UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = t.oid",
            "(SELECT r.rngtypid::text FROM pg_catalog.pg_range r WHERE r.rngmultitypid = t.oid)",
        )
    } else {
        ("", "NULL::text")
    };
    format!(
        "WITH RECURSIVE closure(oid) AS (
    SELECT DISTINCT unnest('{{{oids}}}'::pg_catalog.oid[])
  UNION
    SELECT c.child FROM closure
    JOIN pg_catalog.pg_type t ON t.oid = closure.oid
    CROSS JOIN LATERAL (
        SELECT t.typelem WHERE t.typelem <> 0 AND t.typlen = -1
        UNION ALL SELECT t.typbasetype WHERE t.typtype = 'd'
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
            WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0
              AND NOT a.attisdropped
        UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid
        {multi_child}
    ) AS c(child)
), cols AS (
    SELECT * FROM unnest('{{{oids}}}'::pg_catalog.oid[], '{{{mods}}}'::pg_catalog.int4[],
                         '{{{rels}}}'::pg_catalog.oid[], '{{{atts}}}'::pg_catalog.int2[])
        WITH ORDINALITY AS c(o, m, rel, att, n)
)
SELECT 'n', n::text, pg_catalog.format_type(o, NULLIF(m, -1)), NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL
FROM cols
UNION ALL
SELECT 'd', cols.n::text, dims.n::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL
FROM cols JOIN pg_catalog.pg_attribute a ON a.attrelid = cols.rel AND a.attnum = cols.att
JOIN pg_catalog.pg_type at ON at.oid = a.atttypid
CROSS JOIN LATERAL (SELECT GREATEST(a.attndims, at.typndims) AS n) AS dims
WHERE cols.rel <> 0 AND dims.n > 1
UNION ALL
SELECT 't', t.oid::text, n.nspname::text, t.typname::text, t.typtype::text, t.typelem::text,
       t.typbasetype::text, t.typtypmod::text, pg_catalog.format_type(t.oid, NULL),
       t.typlen::text,
       (SELECT r.rngsubtype::text FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
       {multi_col}, t.typndims::text
FROM closure JOIN pg_catalog.pg_type t ON t.oid = closure.oid
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
UNION ALL
SELECT 'a', t.oid::text, a.attnum::text, a.attname::text, a.atttypid::text, a.atttypmod::text,
       pg_catalog.format_type(a.atttypid, NULLIF(a.atttypmod, -1)), a.attndims::text, NULL,
       NULL, NULL, NULL, NULL
FROM closure JOIN pg_catalog.pg_type t ON t.oid = closure.oid AND t.typtype = 'c'
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'e', e.enumtypid::text, e.enumsortorder::text, e.enumlabel::text, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL
FROM closure JOIN pg_catalog.pg_enum e ON e.enumtypid = closure.oid"
    )
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
/// confirmed the end of the COPY and its row count matched. [`cancel`](Export::cancel) stops
/// an unfinished export and keeps the connection usable. Dropping an unfinished export instead
/// closes the connection (never reused mid-COPY) and, inside a tokio runtime, sends the server
/// a CancelRequest from a spawned task (see [`pgarrow_protocol::CopyOut`]).
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

    /// What is needed to cancel this export's query from elsewhere (a signal handler).
    pub fn cancel_token(&self) -> CancelToken {
        self.copy.cancel_token()
    }

    /// Stops the export: cancels the query on the server and drains the connection back to
    /// ReadyForQuery, so that the client can run further queries.
    ///
    /// # Errors
    /// See [`pgarrow_protocol::CopyOut::cancel`].
    pub async fn cancel(self) -> Result<()> {
        Ok(self.copy.cancel().await?)
    }

    /// Lossy conversions the policies made so far (empty under the default policies).
    pub fn losses(&self) -> LossReport {
        self.decoder.losses()
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
            // Everything already read, before awaiting the socket again: whole rows straight
            // from the read buffer, the decoder walking the CopyData messages (one per row), and
            // payload by payload what it declines (the first message, which carries the header;
            // the trailer; a message cut off at the end of the read).
            loop {
                if let Some(buf) = self.copy.messages() {
                    let taken = self.decoder.decode_messages(buf)?;
                    self.copy
                        .consume_messages(taken.bytes, taken.data, taken.left);
                    if self.decoder.has_batch() {
                        break;
                    }
                }
                let Some(chunk) = self.copy.buffered() else {
                    break;
                };
                let used = self.decoder.decode(chunk)?;
                self.copy.consume(used);
                if self.decoder.has_batch() {
                    break;
                }
            }
            if self.decoder.has_batch() {
                continue;
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
