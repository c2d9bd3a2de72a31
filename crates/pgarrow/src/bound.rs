//! Statements with `$n` parameters, bound from Arrow rows: what a prepared statement of a
//! driver (ADBC's `bind` and `execute`) runs.
//!
//! `COPY` takes no parameters, so a bound statement runs with the extended query protocol:
//! Parse once, then a Bind and an Execute per parameter row, one Sync, in one round trip.
//! Parameters are encoded by the load's encoder (each value as its type's binary receive
//! function reads it; types without a binary encoder go as text), and results come in the
//! binary format, whose rows are laid out as binary COPY tuples: the export's decoder reads
//! them, so a bound statement's result has the export's types, values and policies. Its rows
//! are held in memory until the statement ends (they arrive as one result per parameter
//! row); for large results, export a query without parameters.

use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Field, SchemaRef};
use pgarrow_decode::{ArrayDepths, CopyDecoder};
use pgarrow_encode::{EncodePolicies, HEADER, RowEncoder, TRAILER};

use crate::catalog;
use crate::mapping::Catalog;
use crate::policy::Policies;
use crate::protocol::FieldDescription;
use crate::{
    Client, ColumnMapping, DescribedSource, Error, ErrorKind, ExportOptions, PgColumn, Result,
};

/// A described statement with parameters: their types, and its result's plan.
#[derive(Debug, Clone)]
pub struct BoundStatement {
    sql: String,
    /// `$1`, `$2`, ...: the types the server gave the parameters.
    params: Vec<PgColumn>,
    /// The parameters' types that need the catalog (arrays, enums, composites, ...).
    catalog: Catalog,
    /// Plans of the parameters' types, for their Arrow types.
    param_plans: Vec<ColumnMapping>,
    /// `None` when the statement returns no rows.
    result: Option<DescribedSource>,
    /// What the parameters' encoder does with values their types cannot hold exactly.
    encode: EncodePolicies,
}

/// What a bound statement returned.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BoundResult {
    /// The result's schema (empty for a statement that returns no rows).
    pub schema: SchemaRef,
    /// Its rows, the results of every parameter row in order.
    pub batches: Vec<RecordBatch>,
    /// The sum of the commands' row counts (`None` when the command counts none).
    pub rows_affected: Option<u64>,
}

impl BoundStatement {
    /// The SQL.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parameters as Arrow fields (`$1`, `$2`, ...), typed as an export of their types
    /// would be: what to bind.
    pub fn param_fields(&self) -> Vec<Field> {
        self.param_plans.iter().map(ColumnMapping::field).collect()
    }

    /// The result's planned schema, `None` when the statement returns no rows.
    pub fn result_schema(&self) -> Option<SchemaRef> {
        self.result.as_ref().map(|r| r.schema.clone())
    }

    /// Encodes parameters with `policies` (by default, a value its type cannot hold exactly
    /// is refused, as a load refuses it).
    pub fn with_encode_policies(mut self, policies: EncodePolicies) -> Self {
        self.encode = policies;
        self
    }
}

impl Client {
    /// Describes `sql`, a statement that may use `$n` parameters, without running it.
    ///
    /// # Errors
    /// The server's error for a statement that does not parse or plan.
    pub async fn describe_bound(
        &mut self,
        sql: &str,
        policies: &Policies,
    ) -> Result<BoundStatement> {
        let started = Instant::now();
        let described = self
            .connection()
            .describe(sql)
            .await
            .map_err(|e| Error::from(e).in_query())?;
        let fields: Vec<FieldDescription> = described
            .params
            .iter()
            .enumerate()
            .map(|(i, &oid)| FieldDescription {
                name: format!("${}", i + 1),
                table_oid: 0,
                column_id: 0,
                type_oid: oid,
                type_modifier: -1,
                type_size: -1,
            })
            .collect();
        let types = catalog::lookup(self.connection(), &fields, None).await?;
        let params: Vec<PgColumn> = fields
            .iter()
            .zip(&types.names)
            .map(|(f, name)| PgColumn {
                name: f.name.clone(),
                oid: f.type_oid,
                typmod: -1,
                type_name: name.clone(),
            })
            .collect();
        let param_plans = params
            .iter()
            .zip(&types.dims)
            .map(|(c, &dims)| ColumnMapping::resolve(c.clone(), &types.types, policies, dims))
            .collect();
        let result = match described.columns {
            Some(columns) => Some(
                self.plan_fields(
                    sql,
                    &columns,
                    policies,
                    started,
                    None,
                    !described.params.is_empty(),
                )
                .await?,
            ),
            None => None,
        };
        Ok(BoundStatement {
            sql: sql.to_owned(),
            params,
            catalog: types.types,
            param_plans,
            result,
            encode: EncodePolicies::default(),
        })
    }

    /// Runs `statement` once for each row of `params` (whose columns bind `$1`, `$2`, ... in
    /// order), in one round trip, in the session's transaction state (outside a transaction
    /// block the rows run in one implicit transaction: one failing row undoes them all). The
    /// result rows are decoded as an export's under `options`.
    ///
    /// # Errors
    /// The input's error; a column that cannot bind its parameter (naming both types), a
    /// value it cannot hold (column, row); the server's error; a result value the options
    /// refuse.
    pub async fn run_bound<I>(
        &mut self,
        statement: &BoundStatement,
        params: I,
        options: &ExportOptions,
    ) -> Result<BoundResult>
    where
        I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    {
        let (rows, formats) = encode_params(statement, params)?;
        let Some(result) = &statement.result else {
            let count = match rows.is_empty() {
                true => Some(0),
                false => self.run_rows(statement, &formats, &rows, 0).await?.1,
            };
            return Ok(BoundResult {
                schema: std::sync::Arc::new(arrow_schema::Schema::empty()),
                batches: Vec::new(),
                rows_affected: count,
            });
        };
        let width = result.columns.len();
        let (stream, count) = match rows.is_empty() {
            true => ([HEADER, TRAILER].concat(), Some(0)),
            false => self.run_rows(statement, &formats, &rows, width).await?,
        };
        let mut columns = result.columns.clone();
        let deep: Vec<usize> = (0..width)
            .filter(|&i| columns[i].kind.list_depth_from_data())
            .collect();
        if !deep.is_empty() {
            let mut depths = ArrayDepths::new(deep.clone());
            depths.scan(&stream);
            for i in deep {
                if let Some(dims) = depths.depth(i) {
                    columns[i].kind = columns[i].kind.with_list_depth(dims);
                }
            }
        }
        let mut decoder = CopyDecoder::with_policies(columns, options.decode, options.policies)?;
        let mut batches = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let used = decoder.decode(&stream[at..])?;
            at += used;
            if let Some(batch) = decoder.flush()? {
                batches.push(batch);
            } else if used == 0 {
                break;
            }
        }
        batches.extend(decoder.finish()?);
        Ok(BoundResult {
            schema: decoder.schema(),
            batches,
            rows_affected: count,
        })
    }

    /// Runs the statement for `rows`; the results as one binary COPY stream of `width`
    /// columns (header, tuples, trailer), and the row count.
    async fn run_rows(
        &mut self,
        statement: &BoundStatement,
        formats: &[i16],
        rows: &[Vec<Option<Vec<u8>>>],
        width: usize,
    ) -> Result<(Vec<u8>, Option<u64>)> {
        let width = i16::try_from(width)
            .map_err(|_| Error::usage("a result of more than 32767 columns"))?;
        let types: Vec<u32> = statement.params.iter().map(|p| p.oid).collect();
        let mut stream = HEADER.to_vec();
        let count = self
            .connection()
            .execute_bound(&statement.sql, &types, formats, rows, |fields| {
                stream.extend_from_slice(&width.to_be_bytes());
                stream.extend_from_slice(fields);
            })
            .await
            .map_err(|e| Error::from(e).in_query())?;
        stream.extend_from_slice(TRAILER);
        Ok((stream, count))
    }
}

/// Parameter rows: each parameter's value (`None` is NULL), encoded.
type ParamRows = Vec<Vec<Option<Vec<u8>>>>;

/// Every parameter row of `params` as values for a Bind, and each parameter's format (text
/// for the types the encoder sends as text).
fn encode_params<I>(statement: &BoundStatement, params: I) -> Result<(ParamRows, Vec<i16>)>
where
    I: IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
{
    let mut encoder: Option<RowEncoder> = None;
    let mut rows = Vec::new();
    let mut buf = Vec::new();
    for batch in params {
        let batch = batch.map_err(|e| Error::from(ErrorKind::Input(e)))?;
        let encoder = match &mut encoder {
            Some(e) => e,
            None => encoder.insert(
                RowEncoder::with_policies(
                    &statement.params,
                    &statement.catalog,
                    &batch.schema(),
                    statement.encode,
                )
                .map_err(|e| Error::from(ErrorKind::Encode(e)))?,
            ),
        };
        buf.clear();
        encoder
            .encode(&batch, rows.len() as u64, &mut buf)
            .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
        split_tuples(&buf, statement.params.len(), &mut rows)?;
    }
    let text = encoder.map(|e| e.text_columns()).unwrap_or_default();
    let formats = (0..statement.params.len())
        .map(|i| if text.contains(&i) { 0 } else { 1 })
        .collect();
    Ok((rows, formats))
}

/// Splits binary COPY tuples of `width` fields into their values.
fn split_tuples(buf: &[u8], width: usize, out: &mut ParamRows) -> Result<()> {
    let broken = || Error::internal("the parameter encoder wrote a malformed tuple");
    let mut at = 0;
    let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
        let bytes = buf.get(*at..*at + n).ok_or_else(broken)?;
        *at += n;
        Ok(bytes)
    };
    while at < buf.len() {
        let count = i16::from_be_bytes(take(&mut at, 2)?.try_into().map_err(|_| broken())?);
        if usize::try_from(count).ok() != Some(width) {
            return Err(broken());
        }
        let mut row = Vec::with_capacity(width);
        for _ in 0..width {
            let len = i32::from_be_bytes(take(&mut at, 4)?.try_into().map_err(|_| broken())?);
            row.push(match usize::try_from(len) {
                Ok(n) => Some(take(&mut at, n)?.to_vec()),
                Err(_) => None,
            });
        }
        out.push(row);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_split_into_values() {
        let mut buf = Vec::new();
        for row in [
            [Some(&b"ab"[..]), None],
            [Some(&b""[..]), Some(&b"xyz"[..])],
        ] {
            buf.extend_from_slice(&2i16.to_be_bytes());
            for v in row {
                match v {
                    Some(v) => {
                        buf.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        buf.extend_from_slice(v);
                    }
                    None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        let mut rows = Vec::new();
        split_tuples(&buf, 2, &mut rows).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some(b"ab".to_vec()), None],
                vec![Some(Vec::new()), Some(b"xyz".to_vec())]
            ]
        );
        assert!(split_tuples(&buf[..buf.len() - 1], 2, &mut Vec::new()).is_err());
        assert!(split_tuples(&buf, 3, &mut Vec::new()).is_err());
    }
}
