//! The client: connecting, describing a source, planning its columns (one catalog query) and
//! starting its COPY.

use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;

use pgarrow_decode::plan::{Attribute, Catalog, CatalogKind, CatalogType};
use pgarrow_decode::types::oid;

use crate::export::{ConnSlot, Export};
use crate::policy::Policies;
use crate::protocol::{Config, Connection};
use crate::{ColumnPlan, DecodeOptions, Error, PgColumn, Result, Source};

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
    /// The Arrow schema of the batches, as planned: an array column whose depth comes from the
    /// data ([`TypePlan::list_depth_from_data`](crate::plan::TypePlan::list_depth_from_data)) has one
    /// level here and gets as many as its first values have once the COPY runs
    /// ([`Export::schema`](crate::Export::schema) is the batches' own).
    pub schema: SchemaRef,
    /// The COPY statement that will be sent.
    pub copy_sql: String,
    /// The types the columns' plans were resolved from (arrays, composites, domains, enums,
    /// ranges, extension types): what loading into these columns needs too.
    pub catalog: Catalog,
    /// How long describing took, the catalog query included.
    pub(crate) describe_time: Duration,
    /// How long the catalog query took.
    pub(crate) catalog_time: Duration,
}

/// A connection to PostgreSQL that exports queries as Arrow.
#[derive(Debug)]
pub struct Client {
    conn: Connection,
    /// How long connecting took, until the first export reports it.
    connect_time: Option<Duration>,
}

/// What [`Client::connect`] accepts: a [`Config`], or a `postgresql://` URL or libpq
/// `key=value` string (the `PG*` environment fills in what it leaves out).
pub trait IntoConfig {
    /// The configuration.
    ///
    /// # Errors
    /// A string that is neither a valid URL nor a valid `key=value` string.
    fn into_config(self) -> Result<Config>;
}

impl IntoConfig for Config {
    fn into_config(self) -> Result<Config> {
        Ok(self)
    }
}

impl IntoConfig for &Config {
    fn into_config(self) -> Result<Config> {
        Ok(self.clone())
    }
}

impl IntoConfig for &str {
    fn into_config(self) -> Result<Config> {
        Ok(Config::parse(self)?)
    }
}

impl IntoConfig for String {
    fn into_config(self) -> Result<Config> {
        self.as_str().into_config()
    }
}

impl IntoConfig for &String {
    fn into_config(self) -> Result<Config> {
        self.as_str().into_config()
    }
}

impl Client {
    /// Connects with a [`Config`], a `postgresql://` URL or a libpq `key=value` string.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), pgarrow::Error> {
    /// let client = pgarrow::Client::connect("postgresql://postgres@localhost/postgres").await?;
    /// let client = pgarrow::Client::connect("host=/var/run/postgresql dbname=app").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An invalid string ([`ErrorKind::Usage`](crate::ErrorKind::Usage)); any failure while
    /// connecting is [`ErrorKind::Connect`](crate::ErrorKind::Connect) (see
    /// [`Connection::connect`]).
    pub async fn connect(config: impl IntoConfig) -> Result<Client> {
        let config = config.into_config()?;
        let started = Instant::now();
        let connecting = |e| Error::from(crate::ErrorKind::Connect(e));
        let mut conn = Connection::connect(&config).await.map_err(connecting)?;
        // A SQL_ASCII database stores bytes in no particular encoding: asked for UTF8, the
        // server refuses the first non-ASCII byte (22021). Take the bytes as they are and let
        // the invalid-UTF-8 policy decide (error naming the row, replace, or binary).
        if conn.parameter("server_encoding") == Some("SQL_ASCII") {
            conn.simple_query("SET client_encoding TO 'SQL_ASCII'")
                .await
                .map_err(connecting)?;
        }
        Ok(Client {
            conn,
            connect_time: Some(started.elapsed()),
        })
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// How long connecting took, the first time it is asked.
    pub(crate) fn take_connect_time(&mut self) -> Option<Duration> {
        self.connect_time.take()
    }

    pub(crate) fn into_connection(self) -> Connection {
        self.conn
    }

    /// The server process serving this connection (`pg_backend_pid()`).
    pub fn backend_pid(&self) -> i32 {
        self.conn.backend_pid()
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
        let started = Instant::now();
        let sql = source.sql();
        let described = self
            .conn
            .describe(&sql)
            .await
            .map_err(|e| Error::from(e).in_query())?;
        if !described.params.is_empty() {
            return Err(Error::usage(format!(
                "the query uses {} parameter(s) ($1...); pgarrow exports queries without \
                 parameters",
                described.params.len()
            )));
        }
        let Some(fields) = described.columns else {
            return Err(Error::usage(
                "the statement returns no rows; export a SELECT, TABLE, VALUES or a table name",
            ));
        };
        let catalog_started = Instant::now();
        let catalog = self.catalog(&fields).await?;
        let catalog_time = catalog_started.elapsed();
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
            catalog: catalog.types,
            describe_time: started.elapsed(),
            catalog_time,
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
        let columns = fields.len();
        for row in &rows {
            let row = CatalogRow(row);
            match row.text(0)?.as_str() {
                "n" => out.names[row.column(1, columns)?] = row.text(2)?,
                "d" => out.dims[row.column(1, columns)?] = row.num::<usize>(2)?.clamp(1, MAX_DIMS),
                "a" => attributes.push((
                    row.num(1)?,
                    row.num(2)?,
                    Attribute {
                        name: row.text(3)?,
                        oid: row.num(4)?,
                        typmod: row.num(5)?,
                        display: row.text(6)?,
                        dims: row.num::<usize>(7)?.min(MAX_DIMS),
                    },
                )),
                "e" => labels.push((row.num(1)?, row.num(2)?, row.text(3)?)),
                // `money`'s fraction digits under the session's lc_monetary (0 to 10).
                "f" => match row.num::<i8>(1)? {
                    scale @ 0..=10 => out.types.set_money_scale(scale),
                    _ => return Err(row.unexpected(1, row.value(1))),
                },
                "t" => types.push(TypeRow {
                    oid: row.num(1)?,
                    schema: row.text(2)?,
                    name: row.text(3)?,
                    typtype: row.text(4)?,
                    elem: row.num(5)?,
                    base: row.num(6)?,
                    typmod: row.num(7)?,
                    display: row.text(8)?,
                    typlen: row.num(9)?,
                    range_subtype: row.opt_num(10)?,
                    multirange_of: row.opt_num(11)?,
                    dims: row.num::<usize>(12)?.min(MAX_DIMS),
                }),
                other => return Err(row.unexpected(0, Some(other))),
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

    /// Starts exporting `source` (SQL text, or a [`Source`]): plans it, then runs its COPY.
    /// The export borrows the client until it is dropped.
    ///
    /// # Errors
    /// See [`Client::plan`]; the server's error if the COPY fails to start.
    pub async fn export(
        &mut self,
        source: impl Into<Source>,
        options: &ExportOptions,
    ) -> Result<Export<'_>> {
        let plan = self.plan_with(&source.into(), &options.policies).await?;
        self.export_plan(plan, options).await
    }

    /// As [`Client::export`], for an export that owns its connection: it can be moved to
    /// another task or kept in a struct (`Export<'static>`). The connection is closed when the
    /// export is dropped.
    ///
    /// # Errors
    /// As [`Client::export`].
    pub async fn into_export(
        mut self,
        source: impl Into<Source>,
        options: &ExportOptions,
    ) -> Result<Export<'static>> {
        let plan = self.plan_with(&source.into(), &options.policies).await?;
        let connect = self.connect_time.take();
        Export::start(ConnSlot::Owned(Box::new(self.conn)), plan, options, connect).await
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
        let connect = self.connect_time.take();
        Export::start(ConnSlot::Borrowed(&mut self.conn), plan, options, connect).await
    }

    /// Closes the connection politely (Terminate).
    ///
    /// # Errors
    /// Socket errors while closing.
    pub async fn close(self) -> Result<()> {
        Ok(self.conn.close().await?)
    }
}

/// PostgreSQL's limit on array dimensions (`MAXDIM`).
const MAX_DIMS: usize = 6;

/// A row of the catalog query, read strictly: a missing or unparsable value is an error that
/// names it, never a default.
struct CatalogRow<'r>(&'r pgarrow_protocol::TextRow);

impl CatalogRow<'_> {
    fn value(&self, i: usize) -> Option<&str> {
        self.0.get(i).and_then(|v| v.as_deref())
    }

    fn text(&self, i: usize) -> Result<String> {
        self.value(i)
            .map(str::to_owned)
            .ok_or_else(|| self.unexpected(i, None))
    }

    fn num<T: std::str::FromStr>(&self, i: usize) -> Result<T> {
        self.opt_num(i)?.ok_or_else(|| self.unexpected(i, None))
    }

    fn opt_num<T: std::str::FromStr>(&self, i: usize) -> Result<Option<T>> {
        self.value(i)
            .map(|v| v.parse().map_err(|_| self.unexpected(i, Some(v))))
            .transpose()
    }

    /// A 1-based result column number, as an index below `columns`.
    fn column(&self, i: usize, columns: usize) -> Result<usize> {
        match self.num::<usize>(i)? {
            n @ 1.. if n <= columns => Ok(n - 1),
            _ => Err(self.unexpected(i, self.value(i))),
        }
    }

    fn unexpected(&self, i: usize, value: Option<&str>) -> Error {
        let tag = self.value(0).unwrap_or("?");
        Error::unexpected(format!(
            "unexpected answer to pgarrow's catalog query: field {i} of a '{tag}' row is {}",
            match value {
                Some(v) => format!("{v:?}"),
                None => "missing".to_owned(),
            }
        ))
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
FROM closure JOIN pg_catalog.pg_enum e ON e.enumtypid = closure.oid
UNION ALL
SELECT 'f', pg_catalog.scale('0'::pg_catalog.money::pg_catalog.numeric)::text, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
WHERE EXISTS (SELECT FROM closure WHERE closure.oid = 'pg_catalog.money'::pg_catalog.regtype)"
    )
}

/// The COPY statement for a described query: the query itself when every column has a binary
/// decoder, else a projection over it that casts the others to text. The projection renames the
/// columns positionally (`AS _pgarrow(c1, c2, ...)`), so duplicate or odd names do not matter.
pub(crate) fn copy_statement(sql: &str, columns: &[ColumnPlan]) -> String {
    if columns.iter().all(|c| c.cast.is_none()) {
        return format!("COPY ({sql}\n) TO STDOUT (FORMAT binary)");
    }
    let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = columns
        .iter()
        .zip(&aliases)
        .map(|(c, a)| match c.cast {
            // `inet`'s cast to text always shows the netmask (`1.2.3.4/32`), unlike its output
            // function (`1.2.3.4`), which psql, COPY's text format and the text of an `inet[]`
            // or of a composite use: `abbrev(inet)` is that output function. A domain over
            // inet is described as inet. Every other type without a decoder casts to text
            // through its output function (pg_cast), `cidr` included.
            Some(_) if c.column.oid == oid::INET => format!("pg_catalog.abbrev({a})"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_rows_are_read_strictly() {
        let row: pgarrow_protocol::TextRow = vec![
            Some("t".into()),
            Some("23".into()),
            None,
            Some("x".into()),
            Some("3".into()),
        ];
        let row = CatalogRow(&row);
        assert_eq!(row.num::<u32>(1).unwrap(), 23);
        assert_eq!(row.opt_num::<u32>(2).unwrap(), None);
        assert_eq!(row.column(4, 3).unwrap(), 2);
        let msg = |e: Error| e.to_string();
        assert!(msg(row.num::<u32>(2).unwrap_err()).contains("field 2 of a 't' row is missing"));
        assert!(msg(row.num::<u32>(3).unwrap_err()).contains("field 3 of a 't' row is \"x\""));
        assert!(msg(row.column(4, 2).unwrap_err()).contains("is \"3\""));
        assert!(row.column(1, 100).is_ok() && row.text(9).is_err());
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
            ColumnPlan::for_column(PgColumn::new("a", 650, -1)),
            ColumnPlan::for_column(PgColumn::new("a", oid::INET, -1)),
        ];
        assert_eq!(
            copy_statement("SELECT 1, '10/8'::cidr, '1.2.3.4'::inet", &mixed),
            "COPY (SELECT c1, c2::text, pg_catalog.abbrev(c3) FROM \
             (SELECT 1, '10/8'::cidr, '1.2.3.4'::inet\n) AS _pgarrow(c1, c2, c3)) \
             TO STDOUT (FORMAT binary)"
        );
    }
}
