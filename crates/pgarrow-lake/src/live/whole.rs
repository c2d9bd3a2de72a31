//! A table without a key, under `REPLICA IDENTITY FULL`: its rows are told apart by all their
//! values, and identical rows are counted. The index holds each row under a digest of its
//! values and its ordinal among the rows of that digest (0, 1, ...: kept dense, the last one
//! goes first), so that it stays the size a keyed table's index is.
//!
//! Under `REPLICA IDENTITY FULL` the server logs an update's and a delete's old row whole,
//! TOASTed values included: an update's unsent values come from its own old row, never from
//! the table's files.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{FieldRef, Schema};
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::KeyEncoder;
use pgarrow_changes::{OLD_COLUMN, OP_COLUMN, UNCHANGED_COLUMN};

use super::{At, Key, Live, Plan, Positions};

/// A row's values, digested: 128 bits.
pub(crate) type Digest = [u8; 16];

/// The index's key of the `ordinal`th row of `digest`.
pub(crate) fn key(digest: &Digest, ordinal: u32) -> Key {
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(digest);
    bytes[16..].copy_from_slice(&ordinal.to_le_bytes());
    Key::new(&bytes)
}

/// The digest an index key holds.
pub(crate) fn digest_of(key: &Key) -> Option<Digest> {
    key.as_slice().get(..16)?.try_into().ok()
}

/// The keys of a digest's two halves: std's SipHash under keys drawn once per process from the
/// operating system. Rows are whoever writes to the source's; under known keys (SipHash's
/// default ones) rows could be made to share a digest, and one would stand for the other.
/// A digest lives only in the index of one process, never written.
fn digest_keys() -> &'static [std::hash::RandomState; 2] {
    static KEYS: std::sync::OnceLock<[std::hash::RandomState; 2]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| [std::hash::RandomState::new(), std::hash::RandomState::new()])
}

/// Each row's digest of `columns` (a table's, in its order): its values as the key encoder
/// writes them (integers as 64 bits, so a widened column digests the same), a nested value as
/// its text, NULL apart from every value.
///
/// # Errors
/// A value that cannot be shown as text.
pub(crate) fn digests(columns: &[&dyn Array]) -> std::result::Result<Vec<Digest>, String> {
    let rows = columns.first().map_or(0, |c| c.len());
    let [one, two] = digest_keys();
    let mut first: Vec<_> = (0..rows).map(|_| one.build_hasher()).collect();
    let mut second: Vec<_> = (0..rows).map(|_| two.build_hasher()).collect();
    for column in columns {
        let mut feed = |row: usize, bytes: &[u8]| {
            bytes.hash(&mut first[row]);
            bytes.hash(&mut second[row]);
        };
        match KeyEncoder::encode_all(&[*column]) {
            Ok((body, ends)) => {
                let mut start = 0;
                for (row, end) in ends.into_iter().enumerate() {
                    feed(row, &body[start..end]);
                    start = end;
                }
            }
            // Lists, structs, maps: their text (NULL marked apart from any text).
            Err(_) => {
                let options = arrow_cast::display::FormatOptions::default().with_null("");
                let shown = arrow_cast::display::ArrayFormatter::try_new(*column, &options)
                    .map_err(|e| e.to_string())?;
                let mut text = String::new();
                for row in 0..column.len() {
                    text.clear();
                    if column.is_null(row) {
                        feed(row, &[0]);
                        continue;
                    }
                    use std::fmt::Write;
                    write!(text, "{}", shown.value(row)).map_err(|e| e.to_string())?;
                    let mut bytes = vec![1];
                    bytes.extend_from_slice(text.as_bytes());
                    feed(row, &bytes);
                }
            }
        }
    }
    Ok(first
        .into_iter()
        .zip(second)
        .map(|(a, b)| {
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&a.finish().to_le_bytes());
            d[8..].copy_from_slice(&b.finish().to_le_bytes());
            d
        })
        .collect())
}

/// The rows of `digest` the table holds.
pub(crate) fn count(live: &Live, digest: &Digest) -> u32 {
    match live.dups.get(digest) {
        Some(&n) => n,
        None => u32::from(live.index.contains_key(key(digest, 0).as_slice())),
    }
}

/// Indexes a row of `digest` at `at`.
pub(crate) fn insert(live: &mut Live, digest: Digest, at: At) {
    let n = count(live, &digest);
    live.index.insert(key(&digest, n), at);
    if n >= 1 {
        live.dups.insert(digest, n + 1);
    }
}

/// Takes out of the index a row a commit deleted (the last of its digest).
pub(crate) fn remove(live: &mut Live, gone: &Key) {
    if live.index.remove(gone.as_slice()).is_none() {
        return;
    }
    if let Some(d) = digest_of(gone)
        && let Some(n) = live.dups.get_mut(&d)
    {
        *n -= 1;
        if *n <= 1 {
            live.dups.remove(&d);
        }
    }
}

/// Folds `batch` (one table's changes in commit order) onto a table told apart by whole rows:
/// per row of values, the rows inserted less those deleted; the rows gained are written, the
/// rows lost deleted from the table's.
///
/// # Errors
/// Changes of other columns than the table's; an update without its old row (the source's
/// replica identity is no longer FULL); a delete of a row the table does not hold (it is not
/// in step with the source).
pub(crate) fn plan(live: &Live, batch: &RecordBatch, columns: usize, table: &str) -> Result<Plan> {
    let schema = batch.schema();
    let theirs = table_columns(live, &schema, columns, table)?;
    let ops = batch
        .column_by_name(OP_COLUMN)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| internal("a change batch without its operations"))?;
    let unchanged = batch
        .column_by_name(UNCHANGED_COLUMN)
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| internal("a change batch without its unsent columns"))?;
    let old = batch
        .column_by_name(OLD_COLUMN)
        .and_then(|c| c.as_struct_opt())
        .ok_or_else(|| internal("a change batch without its old rows"))?;
    let new_columns = new_values(batch, &theirs, ops, unchanged, old)?;
    let new_digests = digests(&as_refs(&new_columns)).map_err(|e| usage(table, e))?;
    let old_columns: Vec<ArrayRef> = (0..columns).map(|c| old.column(c).clone()).collect();
    let old_digests = digests(&as_refs(&old_columns)).map_err(|e| usage(table, e))?;
    let mut plan = Plan {
        changes: batch.num_rows() as u64,
        ..Plan::default()
    };
    let net = Net::of(ops, old, &new_digests, &old_digests, table)?;
    plan.truncate = net.truncate;
    let Outcome { left, mut gone } = net.outcome(live, table)?;
    gone.sort_unstable_by_key(|(at, _)| *at);
    let mut deletes: BTreeMap<i64, Positions> = BTreeMap::new();
    for ((file, pos), k) in gone {
        deletes.entry(file).or_default().insert(pos);
        plan.gone.push(k);
    }
    plan.deletes = deletes;
    if !left.is_empty() {
        let fields: Vec<_> = schema.fields()[..columns].to_vec();
        plan.rows = Some(gather(&new_columns, left, fields)?);
    }
    Ok(plan)
}

/// A usage error of table `table`: `what`.
fn usage(table: &str, what: String) -> Error {
    ErrorKind::Usage(format!("{table}: {what}")).into()
}

/// The error of table `table` not being in step with the source: `what`.
fn out_of_step(table: &str, what: String) -> Error {
    ErrorKind::OutOfStep(format!("{table}: {what}")).into()
}

/// A broken invariant: `what`.
fn internal(what: &str) -> Error {
    ErrorKind::Internal(what.to_owned()).into()
}

/// The arrays as the digests take them.
fn as_refs(arrays: &[ArrayRef]) -> Vec<&dyn Array> {
    arrays.iter().map(|a| a.as_ref()).collect()
}

/// The names of the first `columns` columns of the changes' `schema`, the table's.
///
/// # Errors
/// Columns other than the lake table's (every one of its columns is its key).
fn table_columns<'s>(
    live: &Live,
    schema: &'s Schema,
    columns: usize,
    table: &str,
) -> Result<Vec<&'s String>> {
    let theirs: Vec<&String> = schema.fields()[..columns]
        .iter()
        .map(|f| f.name())
        .collect();
    if theirs.len() != live.key.len() || theirs.iter().zip(&live.key).any(|(a, b)| *a != b) {
        return Err(usage(
            table,
            format!(
                "the changes' columns ({}) are not the lake table's ({})",
                theirs
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                live.key.join(", ")
            ),
        ));
    }
    Ok(theirs)
}

/// Each row's new values of the table's columns (named `theirs`): an update's unsent ones
/// from its old row.
fn new_values(
    batch: &RecordBatch,
    theirs: &[&String],
    ops: &StringArray,
    unchanged: &ListArray,
    old: &StructArray,
) -> Result<Vec<ArrayRef>> {
    let rows = batch.num_rows();
    let mut from_old = vec![Vec::new(); theirs.len()];
    for i in 0..rows {
        if ops.value(i) == "update" && unchanged.is_valid(i) {
            for name in unchanged.value(i).as_string::<i32>().iter().flatten() {
                if let Some(c) = theirs.iter().position(|t| t.as_str() == name) {
                    from_old[c].push(i);
                }
            }
        }
    }
    let mut new_columns: Vec<ArrayRef> = Vec::with_capacity(theirs.len());
    for (c, olds) in from_old.iter().enumerate() {
        let mine = batch.column(c);
        if olds.is_empty() {
            new_columns.push(mine.clone());
            continue;
        }
        let mut from: Vec<(usize, usize)> = (0..rows).map(|i| (0, i)).collect();
        for &i in olds {
            from[i] = (1, i);
        }
        let filled =
            arrow_select::interleave::interleave(&[mine.as_ref(), old.column(c).as_ref()], &from)
                .map_err(|e| internal(&format!("an update's unsent values: {e}")))?;
        new_columns.push(filled);
    }
    Ok(new_columns)
}

/// What the changes do per row of values, in the order first touched: the rows gained (or
/// lost), and a change row holding its values.
#[derive(Default)]
struct Net {
    by_digest: HashMap<Digest, (i64, Option<u32>)>,
    order: Vec<Digest>,
    /// A truncate among the changes: every row before it went, the table's and the changes'.
    truncate: bool,
}

impl Net {
    /// The net of the changes (`ops`, their `old` rows), by the digests of their new and
    /// old values.
    ///
    /// # Errors
    /// An update without its old row.
    fn of(
        ops: &StringArray,
        old: &StructArray,
        new_digests: &[Digest],
        old_digests: &[Digest],
        table: &str,
    ) -> Result<Net> {
        let mut net = Net::default();
        for i in 0..ops.len() {
            let row = u32::try_from(i).map_err(|_| internal("a change batch of 2^32 rows"))?;
            match ops.value(i) {
                "insert" => net.add(new_digests[i], 1, Some(row)),
                "delete" => net.add(new_digests[i], -1, None),
                "update" => {
                    if !old.is_valid(i) {
                        return Err(out_of_step(
                            table,
                            "an update without its old row: the source table's replica \
                             identity is no longer FULL, and without a key its rows cannot be \
                             told apart"
                                .into(),
                        ));
                    }
                    net.add(old_digests[i], -1, None);
                    net.add(new_digests[i], 1, Some(row));
                }
                // Every row before goes, the table's and the changes'.
                "truncate" => {
                    net.truncate = true;
                    net.by_digest.clear();
                    net.order.clear();
                }
                other => return Err(internal(&format!("{OP_COLUMN} {other:?}"))),
            }
        }
        Ok(net)
    }

    /// Counts `by` rows of digest `d` gained, their values those of change `row` when given.
    fn add(&mut self, d: Digest, by: i64, row: Option<u32>) {
        let entry = self.by_digest.entry(d).or_insert_with(|| {
            self.order.push(d);
            (0, None)
        });
        entry.0 += by;
        if row.is_some() {
            entry.1 = row;
        }
    }

    /// What the changes leave of the table: the rows of a digest that go are its last ones.
    ///
    /// # Errors
    /// The changes delete more rows of some values than the table holds.
    fn outcome(&self, live: &Live, table: &str) -> Result<Outcome> {
        let mut left: Vec<u32> = Vec::new();
        let mut gone: Vec<(At, Key)> = Vec::new();
        for d in &self.order {
            let (by, row) = self.by_digest[d];
            if by > 0 {
                let row = row.ok_or_else(|| internal("rows gained without their values"))?;
                left.extend(std::iter::repeat_n(row, usize::try_from(by).unwrap_or(0)));
            } else if by < 0 {
                let lost = u32::try_from(-by).unwrap_or(u32::MAX);
                let held = if self.truncate { 0 } else { count(live, d) };
                if held < lost {
                    return Err(out_of_step(
                        table,
                        format!(
                            "the changes delete {lost} row(s) of some values the lake table \
                             holds {held} of: it is not in step with the source (--start-over \
                             exports it again)"
                        ),
                    ));
                }
                for ordinal in held - lost..held {
                    let k = key(d, ordinal);
                    let at = *live
                        .index
                        .get(k.as_slice())
                        .ok_or_else(|| internal("an ordinal missing from the index"))?;
                    gone.push((at, k));
                }
            }
        }
        Ok(Outcome { left, gone })
    }
}

/// What the changes leave: the change rows written (one per row gained), and the table's
/// rows that go, with their keys.
struct Outcome {
    left: Vec<u32>,
    gone: Vec<(At, Key)>,
}

/// The rows `left` (change rows) of `new_columns`, as a batch of `fields`.
fn gather(new_columns: &[ArrayRef], left: Vec<u32>, fields: Vec<FieldRef>) -> Result<RecordBatch> {
    let indices = arrow_array::UInt32Array::from(left);
    let arrays = new_columns
        .iter()
        .map(|a| arrow_select::take::take(a.as_ref(), &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| internal(&format!("gathering rows: {e}")))?;
    RecordBatch::try_new(
        std::sync::Arc::new(arrow_schema::Schema::new(fields)),
        arrays,
    )
    .map_err(|e| internal(&format!("the rows gained: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, StringArray};

    #[test]
    fn equal_rows_digest_equal_and_widened_integers_the_same() {
        let a = Int32Array::from(vec![Some(1), Some(1), None, Some(2)]);
        let b = StringArray::from(vec![Some("x"), Some("x"), Some("x"), Some("")]);
        let d = digests(&[&a, &b]).unwrap();
        assert_eq!(d[0], d[1]);
        assert_ne!(d[0], d[2]);
        assert_ne!(d[2], d[3]);
        let wide = arrow_array::Int64Array::from(vec![Some(1), Some(1), None, Some(2)]);
        assert_eq!(digests(&[&wide, &b]).unwrap(), d);
        // NULL is not the empty string, nor a value moved to the next column.
        let n = StringArray::from(vec![None::<&str>]);
        let e = StringArray::from(vec![Some("")]);
        assert_ne!(digests(&[&n, &e]).unwrap(), digests(&[&e, &n]).unwrap());
    }

    #[test]
    fn identical_rows_are_counted_and_the_last_goes_first() {
        let mut live = Live {
            whole: true,
            ..Live::default()
        };
        let d = [7u8; 16];
        insert(&mut live, d, (1, 0));
        insert(&mut live, d, (1, 5));
        insert(&mut live, d, (2, 3));
        assert_eq!(count(&live, &d), 3);
        remove(&mut live, &key(&d, 2));
        assert_eq!(count(&live, &d), 2);
        remove(&mut live, &key(&d, 1));
        assert_eq!(count(&live, &d), 1);
        assert_eq!(live.index.get(key(&d, 0).as_slice()), Some(&(1, 0)));
        remove(&mut live, &key(&d, 0));
        assert_eq!(count(&live, &d), 0);
        assert!(live.index.is_empty() && live.dups.is_empty());
    }
}
