//! A table without a key, under `REPLICA IDENTITY FULL`: its rows are told apart by all their
//! values, and identical rows are counted. The index holds each row under a digest of its
//! values, one entry a row:
//! - in memory, under the digest and the row's ordinal among that digest's rows held there
//!   (0, 1, ...: kept dense, the one taken out replaced by the last), so that each is a key of
//!   its own and the table of them stays the size a keyed table's is;
//! - persisted, under the digest alone (a run holds a key as many times as it has rows).
//!
//! A commit that deletes `k` rows of some values takes `k` of that digest's live entries,
//! those in memory first (see [`plan`]). A persisted entry goes as a keyed one does: it
//! counts only while its position is live.
//!
//! Digests are keyed by a secret the index keeps with its runs (see [`Secret`]): rows are
//! whoever writes to the source's, and under a known key rows could be made to share a
//! digest, one then standing for the other.
//!
//! Under `REPLICA IDENTITY FULL` the server logs an update's and a delete's old row whole,
//! TOASTed values included: an update's unsent values come from its own old row, never from
//! the table's files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{FieldRef, Schema};
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::KeyEncoder;
use pgarrow_changes::{OLD_COLUMN, OP_COLUMN, UNCHANGED_COLUMN};
use siphasher::sip128::{Hasher128, SipHasher24};

use super::index::Index;
use super::{At, Key, Live, Plan, Positions};

/// A row's values, digested: 128 bits.
pub(crate) type Digest = [u8; 16];

/// The key of a table's digests: 128 random bits drawn when its index is made, kept with
/// the index (its runs hold digests under it), never shown.
pub(crate) type Secret = [u8; 16];

/// A new secret, from the operating system's generator.
pub(crate) fn new_secret() -> Secret {
    *uuid::Uuid::new_v4().as_bytes()
}

/// The bytes of a digest the index writes: the digest alone.
pub(crate) const WRITTEN: usize = 16;

/// The in-memory key of the `ordinal`th row of `digest` held in memory.
pub(crate) fn key(digest: &Digest, ordinal: u32) -> Key {
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(digest);
    // Big-endian: a digest's keys sort by ordinal.
    bytes[16..].copy_from_slice(&ordinal.to_be_bytes());
    Key::new(&bytes)
}

/// The digest an index key holds.
pub(crate) fn digest_of(key: &[u8]) -> Option<Digest> {
    key.get(..16)?.try_into().ok()
}

/// The ordinal an in-memory key holds.
fn ordinal_of(key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(key.get(16..20)?.try_into().ok()?))
}

/// Each row's digest of `columns` (a table's, in its order) under `secret`: SipHash-2-4 of
/// 128 bits over its values as the key encoder writes them (integers as 64 bits, so a
/// widened column digests the same), a nested value as its text, NULL apart from every
/// value; each value's length before it.
///
/// # Errors
/// A value that cannot be shown as text.
pub(crate) fn digests(
    secret: &Secret,
    columns: &[&dyn Array],
) -> std::result::Result<Vec<Digest>, String> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut hashers = vec![SipHasher24::new_with_key(secret); rows];
    for column in columns {
        let mut feed = |row: usize, bytes: &[u8]| {
            hashers[row].write(&(bytes.len() as u64).to_le_bytes());
            hashers[row].write(bytes);
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
                let mut bytes = Vec::new();
                for row in 0..column.len() {
                    if column.is_null(row) {
                        feed(row, &[0]);
                        continue;
                    }
                    use std::io::Write;
                    bytes.clear();
                    bytes.push(1);
                    write!(bytes, "{}", shown.value(row)).map_err(|e| e.to_string())?;
                    feed(row, &bytes);
                }
            }
        }
    }
    Ok(hashers.iter().map(|h| h.finish128().as_bytes()).collect())
}

/// The rows of `digest` held in memory (live or not).
pub(crate) fn count(index: &Index, digest: &Digest) -> u32 {
    match index.dups.get(digest) {
        Some(&n) => n,
        None => u32::from(index.contains_key(key(digest, 0).as_slice())),
    }
}

/// Indexes a row of `digest` at `at`, in memory.
pub(crate) fn insert(index: &mut Index, digest: Digest, at: At) {
    let n = count(index, &digest);
    index.insert(key(&digest, n), at);
    if n >= 1 {
        index.dups.insert(digest, n + 1);
    }
}

/// Takes out of memory the row of in-memory key `gone` (a commit deleted it): the digest's
/// last row takes its ordinal. A key of no row held there (a persisted one, or one taken
/// out already) is left.
pub(crate) fn remove(index: &mut Index, gone: &[u8]) {
    let (Some(d), Some(ordinal)) = (digest_of(gone), ordinal_of(gone)) else {
        return;
    };
    let n = count(index, &d);
    if index.remove(gone).is_none() {
        return;
    }
    let last = n.saturating_sub(1);
    if ordinal < last
        && let Some(at) = index.remove(key(&d, last).as_slice())
    {
        index.insert(key(&d, ordinal), at);
    }
    match last {
        0 | 1 => index.dups.remove(&d),
        _ => index.dups.insert(d, last),
    };
}

/// The live rows of each digest of `wanted`, those in memory first (the last ordinal first),
/// each with its in-memory key (`None`: a persisted entry).
///
/// # Errors
/// The index's storage.
async fn held(
    live: &Live,
    wanted: &[(Digest, usize)],
) -> Result<HashMap<Digest, Vec<(At, Option<Key>)>>> {
    let mut out: HashMap<Digest, Vec<(At, Option<Key>)>> = HashMap::new();
    for (d, lost) in wanted {
        let mine = out.entry(*d).or_default();
        for ordinal in (0..count(&live.index, d)).rev() {
            if mine.len() >= *lost {
                break;
            }
            let k = key(d, ordinal);
            if let Some(&at) = live.index.get(k.as_slice())
                && live.is_live(at)
            {
                mine.push((at, Some(k)));
            }
        }
    }
    let persisted = live
        .index
        .locate_all(
            wanted
                .iter()
                .filter(|(d, lost)| out.get(d).map_or(0, Vec::len) < *lost)
                .map(|(d, lost)| (d.as_slice(), *lost)),
            &live.files,
        )
        .await?;
    for (k, places) in persisted {
        let Some(d) = digest_of(k.as_slice()) else {
            continue;
        };
        let mine = out.entry(d).or_default();
        let known: HashSet<At> = mine.iter().map(|(at, _)| *at).collect();
        mine.extend(
            places
                .into_iter()
                .filter(|at| !known.contains(at))
                .map(|at| (at, None)),
        );
    }
    Ok(out)
}

/// Folds `batch` (one table's changes in commit order) onto a table told apart by whole rows:
/// per row of values, the rows inserted less those deleted; the rows gained are written, the
/// rows lost deleted from the table's.
///
/// # Errors
/// Changes of other columns than the table's; an update without its old row (the source's
/// replica identity is no longer FULL); a delete of a row the table does not hold (it is not
/// in step with the source).
pub(crate) async fn plan(
    live: &Live,
    batch: &RecordBatch,
    columns: usize,
    table: &str,
) -> Result<Plan> {
    let schema = batch.schema();
    let theirs = table_columns(live, &schema, columns, table)?;
    let (ops, unchanged, old) = change_columns(batch)?;
    let new_columns = new_values(batch, &theirs, ops, unchanged, old)?;
    let secret = live.index.secret();
    let new_digests = digests(&secret, &as_refs(&new_columns)).map_err(|e| usage(table, e))?;
    let old_columns: Vec<ArrayRef> = (0..columns).map(|c| old.column(c).clone()).collect();
    let old_digests = digests(&secret, &as_refs(&old_columns)).map_err(|e| usage(table, e))?;
    let mut plan = Plan {
        changes: batch.num_rows() as u64,
        ..Plan::default()
    };
    let net = Net::of(ops, old, &new_digests, &old_digests, table)?;
    plan.truncate = net.truncate;
    let (looking, read_before) = (std::time::Instant::now(), live.index.stats().read_bytes);
    let lost: Vec<(Digest, usize)> = match net.truncate {
        // The table's rows all went before.
        true => Vec::new(),
        false => net.lost().collect(),
    };
    let held = held(live, &lost).await?;
    plan.lookup_s = looking.elapsed().as_secs_f64();
    plan.index_read = live.index.stats().read_bytes - read_before;
    let Outcome { left, mut gone } = net.outcome(held, table)?;
    gone.sort_unstable_by_key(|(at, _)| *at);
    let mut deletes: BTreeMap<i64, Positions> = BTreeMap::new();
    for ((file, pos), k) in gone {
        deletes.entry(file).or_default().insert(pos);
        plan.gone.extend(k);
    }
    plan.deletes = deletes;
    if !left.is_empty() {
        let fields: Vec<_> = schema.fields()[..columns].to_vec();
        plan.rows = Some(gather(&new_columns, left, fields)?);
    }
    Ok(plan)
}

/// The changes of `batch` (the table's `columns` columns, then the change columns) with each
/// update cut in two: a delete of its old row, then an insert of its new one (values it did
/// not send from its old row). The net of each row of values is the same, and each half
/// can then go where its values' digest does (see [`large`](super::large)).
///
/// # Errors
/// Change columns missing; an update without its old row.
pub(crate) fn halves(batch: &RecordBatch, columns: usize, table: &str) -> Result<RecordBatch> {
    let schema = batch.schema();
    let theirs: Vec<&String> = schema.fields()[..columns]
        .iter()
        .map(|f| f.name())
        .collect();
    let (ops, unchanged, old) = change_columns(batch)?;
    if !ops.iter().any(|o| o == Some("update")) {
        return Ok(batch.clone());
    }
    let new_columns = new_values(batch, &theirs, ops, unchanged, old)?;
    // Per row out: the row in, and whether it is an update's old half.
    let mut rows: Vec<(usize, bool)> = Vec::with_capacity(batch.num_rows() * 2);
    for i in 0..batch.num_rows() {
        if ops.value(i) == "update" {
            if !old.is_valid(i) {
                return Err(out_of_step(
                    table,
                    "an update without its old row: the source table's replica identity is no \
                     longer FULL, and without a key its rows cannot be told apart"
                        .into(),
                ));
            }
            rows.push((i, true));
        }
        rows.push((i, false));
    }
    let failed = |e: arrow_schema::ArrowError| internal(&format!("an update cut in two: {e}"));
    let take: arrow_array::UInt32Array = rows.iter().map(|&(i, _)| i as u32).collect();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, new) in new_columns.iter().enumerate() {
        let from: Vec<(usize, usize)> = rows.iter().map(|&(i, o)| (usize::from(o), i)).collect();
        arrays.push(
            arrow_select::interleave::interleave(&[new.as_ref(), old.column(c).as_ref()], &from)
                .map_err(failed)?,
        );
    }
    for (c, field) in schema.fields().iter().enumerate().skip(columns) {
        if field.name() == OP_COLUMN {
            let op: StringArray = rows
                .iter()
                .map(|&(i, o)| {
                    Some(match (ops.value(i), o) {
                        ("update", true) => "delete",
                        ("update", false) => "insert",
                        (other, _) => other,
                    })
                })
                .collect();
            arrays.push(std::sync::Arc::new(op));
            continue;
        }
        arrays
            .push(arrow_select::take::take(batch.column(c).as_ref(), &take, None).map_err(failed)?);
    }
    RecordBatch::try_new(schema, arrays).map_err(failed)
}

/// The change columns of `batch`: each row's operation, the columns an update did not send,
/// and its old row.
///
/// # Errors
/// One of them missing, or of another type.
fn change_columns(batch: &RecordBatch) -> Result<(&StringArray, &ListArray, &StructArray)> {
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
    Ok((ops, unchanged, old))
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

    /// The digests the changes take rows of, and how many rows of each.
    fn lost(&self) -> impl Iterator<Item = (Digest, usize)> + '_ {
        self.order.iter().filter_map(|d| {
            let by = self.by_digest[d].0;
            (by < 0).then(|| (*d, usize::try_from(-by).unwrap_or(usize::MAX)))
        })
    }

    /// What the changes leave of the table whose live rows of the digests they take rows of
    /// are `held` (in the order they go).
    ///
    /// # Errors
    /// The changes delete more rows of some values than the table holds.
    fn outcome(
        &self,
        mut held: HashMap<Digest, Vec<(At, Option<Key>)>>,
        table: &str,
    ) -> Result<Outcome> {
        let mut left: Vec<u32> = Vec::new();
        let mut gone: Vec<(At, Option<Key>)> = Vec::new();
        for d in &self.order {
            let (by, row) = self.by_digest[d];
            if by > 0 {
                let row = row.ok_or_else(|| internal("rows gained without their values"))?;
                left.extend(std::iter::repeat_n(row, usize::try_from(by).unwrap_or(0)));
            } else if by < 0 {
                let lost = usize::try_from(-by).unwrap_or(usize::MAX);
                let rows = held.remove(d).unwrap_or_default();
                if rows.len() < lost {
                    return Err(out_of_step(
                        table,
                        format!(
                            "the changes delete {lost} row(s) of some values the lake table \
                             holds {} of: it is not in step with the source (--start-over \
                             exports it again)",
                            rows.len()
                        ),
                    ));
                }
                gone.extend(rows.into_iter().take(lost));
            }
        }
        Ok(Outcome { left, gone })
    }
}

/// What the changes leave: the change rows written (one per row gained), and the table's
/// rows that go, with their in-memory keys.
struct Outcome {
    left: Vec<u32>,
    gone: Vec<(At, Option<Key>)>,
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
        let secret = new_secret();
        let a = Int32Array::from(vec![Some(1), Some(1), None, Some(2)]);
        let b = StringArray::from(vec![Some("x"), Some("x"), Some("x"), Some("")]);
        let d = digests(&secret, &[&a, &b]).unwrap();
        assert_eq!(d[0], d[1]);
        assert_ne!(d[0], d[2]);
        assert_ne!(d[2], d[3]);
        let wide = arrow_array::Int64Array::from(vec![Some(1), Some(1), None, Some(2)]);
        assert_eq!(digests(&secret, &[&wide, &b]).unwrap(), d);
        // NULL is not the empty string, nor a value moved to the next column.
        let n = StringArray::from(vec![None::<&str>]);
        let e = StringArray::from(vec![Some("")]);
        assert_ne!(
            digests(&secret, &[&n, &e]).unwrap(),
            digests(&secret, &[&e, &n]).unwrap()
        );
        let ab = StringArray::from(vec![Some("ab")]);
        let (a_, b_) = (
            StringArray::from(vec![Some("a")]),
            StringArray::from(vec![Some("b")]),
        );
        assert_ne!(
            digests(&secret, &[&ab, &e]).unwrap(),
            digests(&secret, &[&a_, &b_]).unwrap()
        );
        // The same under the same secret (a persisted index reads its digests again), and
        // another under another.
        assert_eq!(digests(&secret, &[&a, &b]).unwrap(), d);
        assert_ne!(digests(&new_secret(), &[&a, &b]).unwrap(), d);
    }

    #[test]
    fn identical_rows_are_counted_and_one_taken_out_is_replaced_by_the_last() {
        let mut index = Index::in_memory();
        let (d, e) = ([7u8; 16], [8u8; 16]);
        insert(&mut index, d, (1, 0));
        insert(&mut index, d, (1, 5));
        insert(&mut index, d, (2, 3));
        insert(&mut index, e, (2, 4));
        assert_eq!((count(&index, &d), count(&index, &e)), (3, 1));
        remove(&mut index, key(&d, 0).as_slice());
        assert_eq!(count(&index, &d), 2);
        assert_eq!(index.get(key(&d, 0).as_slice()), Some(&(2, 3)));
        assert_eq!(index.get(key(&d, 1).as_slice()), Some(&(1, 5)));
        remove(&mut index, key(&d, 1).as_slice());
        // A key taken out already, and a persisted one (the digest alone), are left.
        remove(&mut index, key(&d, 1).as_slice());
        remove(&mut index, &d);
        assert_eq!(count(&index, &d), 1);
        assert_eq!(index.get(key(&d, 0).as_slice()), Some(&(2, 3)));
        insert(&mut index, d, (3, 0));
        assert_eq!(index.get(key(&d, 1).as_slice()), Some(&(3, 0)));
        remove(&mut index, key(&d, 1).as_slice());
        remove(&mut index, key(&d, 0).as_slice());
        remove(&mut index, key(&e, 0).as_slice());
        assert_eq!(count(&index, &d), 0);
        assert!(index.is_empty() && index.dups.is_empty());
    }
}
