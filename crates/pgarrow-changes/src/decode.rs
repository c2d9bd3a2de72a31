//! One relation's changes into Arrow: the table's columns decoded by the export's own per-column
//! decoders, plus the change's metadata columns.
//!
//! pgoutput sends a tuple as a list of values, each in its type's binary send format (with
//! `binary 'true'`) or as text; a binary COPY row is the same list with a length before each
//! value. So a change is laid out as one COPY row in a reusable buffer and handed to a
//! [`CopyDecoder`] planned from the relation's columns: every type the export decodes, decoded
//! by the same code, with the same policies and errors. The old image of an update (its key, or
//! the whole row under `REPLICA IDENTITY FULL`) goes through a second decoder of the same plan
//! and becomes the struct column `_old`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use pgarrow_decode::{ColumnMapping, CopyDecoder, DecodeOptions, SIGNATURE};
use pgarrow_protocol::replication::{Lsn, OldRow, PgTime, Tuple, Value};

use pgarrow::names::TableName;
use pgarrow::policy::Policies;
use pgarrow::{Error, Result};

/// The change's kind: `insert`, `update`, `delete` or `truncate`.
pub const OP_COLUMN: &str = "_op";
/// The WAL position of the change (`UInt64`; PostgreSQL writes it `X/X` in hex).
pub const LSN_COLUMN: &str = "_lsn";
/// The WAL position of its transaction's commit record.
pub const COMMIT_LSN_COLUMN: &str = "_commit_lsn";
/// When its transaction committed (UTC, microseconds).
pub const COMMIT_TIME_COLUMN: &str = "_commit_time";
/// Its transaction's id.
pub const XID_COLUMN: &str = "_xid";
/// The columns whose value the change does not carry because it was TOASTed and did not change
/// (an update's new row): those columns are NULL in the row and named here, so that a NULL
/// there is never taken for a value. `_old.` prefixes a column of the old image.
pub const UNCHANGED_COLUMN: &str = "_unchanged";
/// An update's old image, when the server sent one: the old key (the key changed) or the whole
/// old row (`REPLICA IDENTITY FULL`); NULL otherwise.
pub const OLD_COLUMN: &str = "_old";

/// Field metadata on the LSN columns: the value is a WAL position.
pub const META_LSN: &str = "pgarrow.lsn";
/// Schema metadata: the table the batch's rows belong to (quoted, schema-qualified).
pub const META_TABLE: &str = "pgarrow.table";
/// Schema metadata: the relation's OID on the source server.
pub const META_RELATION_OID: &str = "pgarrow.relation_oid";
/// Schema metadata: the relation's `REPLICA IDENTITY` (`default`, `nothing`, `full`, `index`).
pub const META_REPLICA_IDENTITY: &str = "pgarrow.replica_identity";
/// Schema metadata: the columns of the relation's replica identity (the key its updates and
/// deletes name rows by), a JSON array of names.
pub const META_KEY: &str = "pgarrow.key";
/// Schema metadata: the columns that have a default or are an identity (or a value the rows
/// before the column was added take, which the server writes no change for), a JSON array of
/// names, as the
/// catalog said when the relation's columns arrived.
pub const META_DEFAULTS: &str = "pgarrow.defaults";
/// Schema metadata: whether values arrived in their binary send format (`binary`) or as text.
pub const META_VALUES: &str = "pgarrow.values";

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A row inserted.
    Insert,
    /// A row updated.
    Update,
    /// A row deleted (the row's columns hold the old key, or the old row under FULL).
    Delete,
    /// The table truncated (every column NULL).
    Truncate,
}

impl Op {
    /// The word in `_op`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }
}

/// Where a change is: its own WAL position and its transaction's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeAt {
    /// The change's position (its XLogData's).
    pub lsn: Lsn,
    /// The transaction's commit record.
    pub commit_lsn: Lsn,
    /// When it committed: microseconds since 2000-01-01 UTC.
    pub commit_time: PgTime,
    /// The transaction's id.
    pub xid: u32,
}

/// A relation's changes, decoded row by row and cut into batches: the sans-IO half of
/// [`ChangeStream`](super::ChangeStream), for a stream read some other way (a file of
/// pgoutput messages, a benchmark).
pub struct RelationDecoder {
    /// The table.
    pub table: TableName,
    /// Its quoted name, for messages.
    quoted: String,
    schema: SchemaRef,
    columns: Vec<String>,
    text_values: bool,
    new: CopyDecoder,
    old: CopyDecoder,
    old_valid: Vec<bool>,
    op: StringBuilder,
    lsn: UInt64Builder,
    commit_lsn: UInt64Builder,
    commit_time: TimestampMicrosecondBuilder,
    xid: UInt32Builder,
    unchanged: ListBuilder<StringBuilder>,
    /// The change laid out as one binary COPY row.
    row: Vec<u8>,
    rows: usize,
    /// Rows decoded before the current batch (for messages).
    rows_before: u64,
}

impl std::fmt::Debug for RelationDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationDecoder")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl RelationDecoder {
    /// A decoder for `table`'s columns planned as `plans` (in the Relation message's order);
    /// `text_values` when the server sends every value as text (then each plan must be text);
    /// `metadata` goes into the schema.
    ///
    /// # Errors
    /// A plan the decoder cannot take.
    pub fn new(
        table: TableName,
        plans: Vec<ColumnMapping>,
        text_values: bool,
        metadata: Vec<(String, String)>,
        options: DecodeOptions,
        policies: Policies,
    ) -> Result<RelationDecoder> {
        let columns = plans.iter().map(|p| p.column.name.clone()).collect();
        let mut new = CopyDecoder::with_policies(plans.clone(), options, policies)?;
        let mut old = CopyDecoder::with_policies(plans, options, policies)?;
        let mut header = SIGNATURE.to_vec();
        header.extend_from_slice(&[0; 8]);
        new.decode(&header)?;
        old.decode(&header)?;
        let table_fields = new.schema().fields().clone();
        let mut fields: Vec<Arc<Field>> = table_fields.iter().cloned().collect();
        fields.extend(meta_fields(&table_fields).into_iter().map(Arc::new));
        let metadata: HashMap<String, String> = metadata.into_iter().collect();
        let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
        Ok(RelationDecoder {
            quoted: table.quoted(),
            table,
            schema,
            columns,
            text_values,
            new,
            old,
            old_valid: Vec::new(),
            op: StringBuilder::new(),
            lsn: UInt64Builder::new(),
            commit_lsn: UInt64Builder::new(),
            commit_time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            xid: UInt32Builder::new(),
            unchanged: ListBuilder::new(StringBuilder::new()),
            row: Vec::new(),
            rows: 0,
            rows_before: 0,
        })
    }

    /// The batches' schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows buffered, not yet in a batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the buffered rows fill a batch.
    pub fn is_full(&self) -> bool {
        self.new.has_batch() || self.old.has_batch()
    }

    /// Adds one change: `row` is the new row (insert, update), the old key or row (delete),
    /// nothing (truncate); `old` an update's old image.
    ///
    /// # Errors
    /// A value that cannot be decoded, a value of the wrong format (text where binary was
    /// asked for), a tuple of the wrong length: naming the table, the column and the LSN.
    pub fn push(
        &mut self,
        op: Op,
        at: &ChangeAt,
        row: Option<&Tuple<'_>>,
        old: Option<(OldRow, &Tuple<'_>)>,
    ) -> Result<()> {
        let mut unchanged: Vec<String> = Vec::new();
        let context = |e: Error, table: &str, what: &str| {
            e.context(format!(
                "decoding {what} of {} {table} at LSN {} (transaction {})",
                op.as_str(),
                at.lsn,
                at.xid
            ))
        };
        self.lay_out(row, "", &mut unchanged)
            .map_err(|e| context(e, &self.quoted, "the row"))?;
        decode_row(&mut self.new, &self.row).map_err(|e| context(e, &self.quoted, "the row"))?;
        self.lay_out(old.map(|(_, t)| t), "_old.", &mut unchanged)
            .map_err(|e| context(e, &self.quoted, "the old row"))?;
        decode_row(&mut self.old, &self.row)
            .map_err(|e| context(e, &self.quoted, "the old row"))?;
        self.old_valid.push(old.is_some());
        self.op.append_value(op.as_str());
        self.lsn.append_value(at.lsn.0);
        self.commit_lsn.append_value(at.commit_lsn.0);
        self.commit_time.append_value(
            at.commit_time
                .saturating_add(pgarrow_decode::wire::PG_EPOCH_US),
        );
        self.xid.append_value(at.xid);
        if unchanged.is_empty() {
            self.unchanged.append_null();
        } else {
            for name in &unchanged {
                self.unchanged.values().append_value(name);
            }
            self.unchanged.append(true);
        }
        self.rows += 1;
        Ok(())
    }

    /// Lays `tuple` out in `self.row` as a binary COPY row (all NULL when `None`), naming its
    /// unchanged TOASTed columns (with `prefix`) in `unchanged`.
    fn lay_out(
        &mut self,
        tuple: Option<&Tuple<'_>>,
        prefix: &str,
        unchanged: &mut Vec<String>,
    ) -> Result<()> {
        let ncols = self.columns.len();
        self.row.clear();
        self.row
            .extend_from_slice(&i16::try_from(ncols).unwrap_or(i16::MAX).to_be_bytes());
        let Some(tuple) = tuple else {
            for _ in 0..ncols {
                self.row.extend_from_slice(&(-1i32).to_be_bytes());
            }
            return Ok(());
        };
        if tuple.len() != ncols {
            return Err(Error::unexpected(format!(
                "a tuple of {} values for the {ncols} columns of its relation",
                tuple.len()
            )));
        }
        for (i, value) in tuple.values().enumerate() {
            let body = match value {
                Value::Null => None,
                Value::UnchangedToast => {
                    unchanged.push(format!("{prefix}{}", self.columns[i]));
                    None
                }
                Value::Binary(b) if !self.text_values => Some(b),
                Value::Text(b) if self.text_values => Some(b),
                Value::Binary(_) | Value::Text(_) => {
                    let (sent, planned) = match self.text_values {
                        true => ("binary", "text"),
                        false => ("text", "binary"),
                    };
                    return Err(Error::unexpected(format!(
                        "column {:?}: the server sent a {sent} value where {planned} values \
                         were asked for",
                        self.columns[i]
                    )));
                }
            };
            match body {
                None => self.row.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    let len = i32::try_from(b.len()).map_err(|_| {
                        Error::unexpected(format!(
                            "column {:?}: a value over 2 GiB",
                            self.columns[i]
                        ))
                    })?;
                    self.row.extend_from_slice(&len.to_be_bytes());
                    self.row.extend_from_slice(b);
                }
            }
        }
        Ok(())
    }

    /// The buffered rows as a batch, if there are any.
    ///
    /// # Errors
    /// A value found invalid only at the end (text that is not UTF-8), naming its row.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let rows_before = self.rows_before;
        let in_table = |e: pgarrow_decode::Error| {
            Error::from(e).context(format!(
                "decoding changes of {} (rows {} to {} of this run)",
                self.table.quoted(),
                rows_before + 1,
                rows_before + self.rows as u64
            ))
        };
        let (Some(new), Some(old)) = (
            self.new.flush().map_err(in_table)?,
            self.old.flush().map_err(in_table)?,
        ) else {
            return Err(Error::internal("a change decoder held no rows to flush"));
        };
        let old_fields = match self.schema.fields().last().map(|f| f.data_type()) {
            Some(DataType::Struct(fields)) => fields.clone(),
            _ => return Err(Error::internal("_old is not a struct")),
        };
        let valid = NullBuffer::from(std::mem::take(&mut self.old_valid));
        let old = StructArray::try_new(old_fields, old.columns().to_vec(), Some(valid))
            .map_err(arrow_error)?;
        let mut columns: Vec<ArrayRef> = new.columns().to_vec();
        columns.push(Arc::new(self.op.finish()));
        columns.push(Arc::new(self.lsn.finish()));
        columns.push(Arc::new(self.commit_lsn.finish()));
        columns.push(Arc::new(self.commit_time.finish()));
        columns.push(Arc::new(self.xid.finish()));
        columns.push(Arc::new(self.unchanged.finish()));
        columns.push(Arc::new(old));
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(arrow_error)?;
        self.rows_before += self.rows as u64;
        self.rows = 0;
        Ok(Some(batch))
    }
}

fn arrow_error(e: arrow_schema::ArrowError) -> Error {
    Error::internal(format!("assembling a change batch: {e}"))
}

/// Hands one laid-out row to `decoder`, which takes it whole (it is flushed before it fills).
fn decode_row(decoder: &mut CopyDecoder, row: &[u8]) -> Result<()> {
    let used = decoder.decode(row)?;
    if used != row.len() {
        return Err(Error::internal("a change decoder took part of a row"));
    }
    Ok(())
}

/// The metadata columns after the table's own (`table` is the table's fields, for `_old`).
pub(crate) fn meta_fields(table: &Fields) -> Vec<Field> {
    let lsn = |name: &str| {
        Field::new(name, DataType::UInt64, false).with_metadata(
            [(META_LSN.to_owned(), "true".to_owned())]
                .into_iter()
                .collect::<HashMap<_, _>>(),
        )
    };
    vec![
        Field::new(OP_COLUMN, DataType::Utf8, false),
        lsn(LSN_COLUMN),
        lsn(COMMIT_LSN_COLUMN),
        Field::new(
            COMMIT_TIME_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(XID_COLUMN, DataType::UInt32, false),
        Field::new(
            UNCHANGED_COLUMN,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new(OLD_COLUMN, DataType::Struct(table.clone()), true),
    ]
}
