//! A run of one table's changes reduced to its net effect on each key: the row it leaves (an
//! insert, an update) or its absence (a delete, the old key of an update that changed the key).
//! A TOASTed value an update did not send is taken from the change before it on the same key,
//! or, when there is none in the run, marked to come from the target's row: what `apply` stages
//! into another PostgreSQL and a lake table's mirror writes as files and deletes.
//!
//! Keys are bytes, equal for equal keys: [`KeyEncoder`] makes them from Arrow columns.

use std::collections::HashMap;

use arrow_array::Array;
use arrow_schema::DataType;

use crate::decode::Op;

/// How many columns a change batch has after the table's own: `_op`, `_lsn`, `_commit_lsn`,
/// `_commit_time`, `_xid`, `_unchanged`, `_old`.
pub const CHANGE_COLUMNS: usize = 7;

/// Where a change's key is: the row's columns, or the old image's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAt {
    /// The row's own columns, of change `.0`.
    New(u32),
    /// The old image (`_old`) of change `.0`.
    Old(u32),
}

/// One change, as the reduction needs it.
#[derive(Debug)]
pub struct Change<'a> {
    /// What it did (never a truncate: a run of changes is cut there).
    pub op: Op,
    /// The row's key (an insert's or update's new key, a delete's key), encoded so that equal
    /// keys are equal bytes.
    pub key: &'a [u8],
    /// An update's old key, when it sent its old image.
    pub old_key: Option<&'a [u8]>,
    /// The columns (by position) whose values the change did not send.
    pub unchanged: Vec<usize>,
}

/// A row a batch leaves: its values come from `row`, but those of `fill` that are `None`,
/// which come from the target's row at `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The change whose row it is.
    pub row: u32,
    /// Per column, the change row its value comes from (`None`: the target's); `None` when
    /// every value comes from `row`.
    pub fill: Option<Vec<Option<u32>>>,
    /// The key of the target's row that unsent values come from (the row before the change).
    pub source: KeyAt,
}

impl Kept {
    /// The change row `column`'s value comes from; `None`: the target's row at
    /// [`source`](Kept::source).
    pub fn value_row(&self, column: usize) -> Option<u32> {
        match &self.fill {
            None => Some(self.row),
            Some(fill) => fill[column],
        }
    }
}

/// What a run leaves of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A row the run leaves (inserted or updated).
    Keep(Kept),
    /// A key the run removes (deleted, or the old key of an update that changed it).
    Gone(KeyAt),
}

/// The last effect on each key of `changes` (no truncates among them), in the order the keys
/// were last touched.
///
/// # Errors
/// An update that left values unsent of a row an earlier change deleted (the changes are not
/// a source's), said in words.
pub fn reduce(changes: &[Change<'_>], columns: usize) -> std::result::Result<Vec<Effect>, String> {
    let mut effects: Vec<Option<Effect>> = Vec::with_capacity(changes.len());
    let mut latest: HashMap<&[u8], usize, KeyHashing> =
        HashMap::with_capacity_and_hasher(changes.len(), KeyHashing::default());
    fn put<'k>(
        effects: &mut Vec<Option<Effect>>,
        latest: &mut HashMap<&'k [u8], usize, KeyHashing>,
        key: &'k [u8],
        effect: Effect,
    ) {
        if let Some(before) = latest.insert(key, effects.len()) {
            effects[before] = None;
        }
        effects.push(Some(effect));
    }
    for (i, change) in changes.iter().enumerate() {
        let row = u32::try_from(i).map_err(|_| "over 4 billion changes in one batch")?;
        match change.op {
            Op::Insert => put(
                &mut effects,
                &mut latest,
                change.key,
                Effect::Keep(Kept {
                    row,
                    fill: None,
                    source: KeyAt::New(row),
                }),
            ),
            Op::Delete => put(
                &mut effects,
                &mut latest,
                change.key,
                Effect::Gone(KeyAt::New(row)),
            ),
            Op::Update => {
                let (old, old_at) = match change.old_key {
                    Some(k) => (k, KeyAt::Old(row)),
                    None => (change.key, KeyAt::New(row)),
                };
                let mut kept = Kept {
                    row,
                    fill: None,
                    source: old_at,
                };
                if !change.unchanged.is_empty() {
                    let mut fill = vec![Some(row); columns];
                    match latest.get(old).and_then(|&e| effects[e].as_ref()) {
                        Some(Effect::Keep(before)) => {
                            for &c in &change.unchanged {
                                fill[c] = before.value_row(c);
                            }
                            kept.source = before.source;
                        }
                        Some(Effect::Gone(_)) => {
                            return Err(format!(
                                "change {} updates a row deleted by an earlier change, without \
                                 sending all of its values",
                                i + 1
                            ));
                        }
                        None => {
                            for &c in &change.unchanged {
                                fill[c] = None;
                            }
                        }
                    }
                    kept.fill = Some(fill);
                }
                if old != change.key {
                    put(&mut effects, &mut latest, old, Effect::Gone(old_at));
                }
                put(&mut effects, &mut latest, change.key, Effect::Keep(kept));
            }
            Op::Truncate => return Err("a truncate inside a reduced run".into()),
        }
    }
    Ok(effects.into_iter().flatten().collect())
}

/// The hashing of keys (the reduction's, a mirror's index): foldhash (std's SipHash costs a
/// third of a mirror's fold), seeded. Keys are a source's rows, which whoever writes to the
/// source chooses: with a fixed seed, keys chosen to collide would turn the index's inserts
/// and look-ups linear. The seed shared by every map is drawn once per process from the
/// operating system's randomness (through std's `RandomState`), each map's own seed anew.
#[derive(Debug, Clone)]
pub struct KeyHashing(foldhash::fast::SeedableRandomState);

impl Default for KeyHashing {
    fn default() -> KeyHashing {
        static SHARED: std::sync::OnceLock<foldhash::SharedSeed> = std::sync::OnceLock::new();
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(random_u64()));
        KeyHashing(foldhash::fast::SeedableRandomState::with_seed(
            random_u64(),
            shared,
        ))
    }
}

/// 64 random bits: std's `RandomState` keys come from the operating system.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::hash::RandomState::new().hash_one(0u8)
}

impl std::hash::BuildHasher for KeyHashing {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// Encodes the values of key columns as bytes, equal exactly when the keys are equal: each
/// value its null flag and its bytes (a fixed-width value as stored, a variable one with its
/// length first). For the key types PostgreSQL tables have (integers, text, `uuid`, dates and
/// times, `numeric` as decimals or text, `bytea`, `bool`).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyEncoder;

/// One key column, read once: where each row's value is.
enum KeyColumn<'a> {
    Signed(Box<dyn Fn(usize) -> i64 + 'a>),
    Unsigned(Box<dyn Fn(usize) -> u64 + 'a>),
    Bool(&'a arrow_array::BooleanArray),
    /// Variable width: the offsets (as i64) and the values.
    Var(Vec<i64>, &'a [u8]),
    /// Fixed width: the values buffer, the array's offset in it, the width.
    Fixed(arrow_buffer::Buffer, usize, usize),
}

impl<'a> KeyColumn<'a> {
    fn of(column: &'a dyn Array) -> std::result::Result<KeyColumn<'a>, String> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::*;
        macro_rules! signed {
            ($t:ty) => {{
                let a = column.as_primitive::<$t>();
                KeyColumn::Signed(Box::new(move |r| a.value(r) as i64))
            }};
        }
        macro_rules! unsigned {
            ($t:ty) => {{
                let a = column.as_primitive::<$t>();
                KeyColumn::Unsigned(Box::new(move |r| a.value(r) as u64))
            }};
        }
        Ok(match column.data_type() {
            // Integers as 64 bits: a key widened at the source (int to bigint) is the same key.
            DataType::Int8 => signed!(Int8Type),
            DataType::Int16 => signed!(Int16Type),
            DataType::Int32 => signed!(Int32Type),
            DataType::Int64 => signed!(Int64Type),
            DataType::UInt8 => unsigned!(UInt8Type),
            DataType::UInt16 => unsigned!(UInt16Type),
            DataType::UInt32 => unsigned!(UInt32Type),
            DataType::UInt64 => unsigned!(UInt64Type),
            DataType::Boolean => KeyColumn::Bool(column.as_boolean()),
            DataType::Utf8 => {
                let a = column.as_string::<i32>();
                let offsets = a.value_offsets().iter().map(|&o| i64::from(o)).collect();
                KeyColumn::Var(offsets, a.values().as_slice())
            }
            DataType::Binary => {
                let a = column.as_binary::<i32>();
                let offsets = a.value_offsets().iter().map(|&o| i64::from(o)).collect();
                KeyColumn::Var(offsets, a.values().as_slice())
            }
            DataType::LargeUtf8 => {
                let a = column.as_string::<i64>();
                KeyColumn::Var(a.value_offsets().to_vec(), a.values().as_slice())
            }
            DataType::LargeBinary => {
                let a = column.as_binary::<i64>();
                KeyColumn::Var(a.value_offsets().to_vec(), a.values().as_slice())
            }
            t => {
                let width = match t {
                    DataType::FixedSizeBinary(w) => usize::try_from(*w).ok(),
                    t => t.primitive_width(),
                };
                let data = column.to_data();
                match (width, data.buffers().first()) {
                    (Some(width), Some(values)) => {
                        KeyColumn::Fixed(values.clone(), data.offset(), width)
                    }
                    _ => return Err(format!("a key column of type {t}")),
                }
            }
        })
    }

    fn push(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            KeyColumn::Signed(v) => out.extend_from_slice(&v(row).to_le_bytes()),
            KeyColumn::Unsigned(v) => out.extend_from_slice(&v(row).to_le_bytes()),
            KeyColumn::Bool(a) => out.push(u8::from(a.value(row))),
            KeyColumn::Var(offsets, values) => {
                let (lo, hi) = (offsets[row] as usize, offsets[row + 1] as usize);
                out.extend_from_slice(&((hi - lo) as u64).to_le_bytes());
                out.extend_from_slice(&values[lo..hi]);
            }
            KeyColumn::Fixed(values, offset, width) => {
                let at = (offset + row) * width;
                out.extend_from_slice(&values[at..at + width]);
            }
        }
    }
}

impl KeyEncoder {
    /// Appends row `row`'s key (the values of `columns` there) to `out`.
    ///
    /// # Errors
    /// A key column of a type that is not a plain value (a list, a struct, a map), named by
    /// its type.
    pub fn encode(
        columns: &[&dyn Array],
        row: usize,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        let prepared = columns
            .iter()
            .map(|c| KeyColumn::of(*c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for (column, key) in columns.iter().zip(&prepared) {
            if column.is_null(row) {
                out.push(0);
            } else {
                out.push(1);
                key.push(row, out);
            }
        }
        Ok(())
    }

    /// Every row's key of `columns`, one after another, and where each ends.
    ///
    /// # Errors
    /// As [`KeyEncoder::encode`].
    pub fn encode_all(
        columns: &[&dyn Array],
    ) -> std::result::Result<(Vec<u8>, Vec<usize>), String> {
        let rows = columns.first().map_or(0, |c| c.len());
        let prepared = columns
            .iter()
            .map(|c| KeyColumn::of(*c))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut body = Vec::with_capacity(rows * 10 * columns.len());
        let mut ends = Vec::with_capacity(rows);
        for row in 0..rows {
            for (column, key) in columns.iter().zip(&prepared) {
                if column.is_null(row) {
                    body.push(0);
                } else {
                    body.push(1);
                    key.push(row, &mut body);
                }
            }
            ends.push(body.len());
        }
        Ok((body, ends))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, FixedSizeBinaryArray, Int64Array, StringArray};

    use super::*;

    fn change<'a>(op: Op, key: &'a [u8], old: Option<&'a [u8]>, unchanged: &[usize]) -> Change<'a> {
        Change {
            op,
            key,
            old_key: old,
            unchanged: unchanged.to_vec(),
        }
    }

    fn keep(row: u32, source: KeyAt) -> Effect {
        Effect::Keep(Kept {
            row,
            fill: None,
            source,
        })
    }

    #[test]
    fn the_last_change_of_each_key_wins() {
        let changes = [
            change(Op::Insert, b"a", None, &[]),
            change(Op::Insert, b"b", None, &[]),
            change(Op::Update, b"a", None, &[]),
            change(Op::Delete, b"b", None, &[]),
            change(Op::Insert, b"c", None, &[]),
        ];
        assert_eq!(
            reduce(&changes, 2).unwrap(),
            [
                keep(2, KeyAt::New(2)),
                Effect::Gone(KeyAt::New(3)),
                keep(4, KeyAt::New(4)),
            ]
        );
    }

    #[test]
    fn a_key_change_removes_the_old_key() {
        let changes = [
            change(Op::Update, b"b", Some(b"a"), &[]),
            // The old key comes back.
            change(Op::Insert, b"z", None, &[]),
            change(Op::Update, b"c", Some(b"b"), &[]),
        ];
        assert_eq!(
            reduce(&changes, 1).unwrap(),
            [
                Effect::Gone(KeyAt::Old(0)),
                keep(1, KeyAt::New(1)),
                Effect::Gone(KeyAt::Old(2)),
                Effect::Keep(Kept {
                    row: 2,
                    fill: None,
                    source: KeyAt::Old(2)
                }),
            ]
        );
        // Under FULL, the old image comes with every update: the same key is no key change.
        let same = [change(Op::Update, b"a", Some(b"a"), &[])];
        assert_eq!(
            reduce(&same, 1).unwrap(),
            [Effect::Keep(Kept {
                row: 0,
                fill: None,
                source: KeyAt::Old(0)
            })]
        );
    }

    #[test]
    fn unsent_values_come_from_the_change_before_or_the_target() {
        // Columns: 0 = key, 1 = big (TOASTed), 2 = small.
        let changes = [
            // Only small changed: big stays the target's.
            change(Op::Update, b"a", None, &[1]),
            // big sent, then a change of small only: big from row 1.
            change(Op::Update, b"b", None, &[]),
            change(Op::Update, b"b", None, &[1]),
            // Twice unsent: still the target's, from the first old key.
            change(Op::Update, b"d", Some(b"c"), &[1]),
            change(Op::Update, b"e", Some(b"d"), &[1]),
        ];
        let effects = reduce(&changes, 3).unwrap();
        assert_eq!(
            effects,
            [
                Effect::Keep(Kept {
                    row: 0,
                    fill: Some(vec![Some(0), None, Some(0)]),
                    source: KeyAt::New(0)
                }),
                Effect::Keep(Kept {
                    row: 2,
                    fill: Some(vec![Some(2), Some(1), Some(2)]),
                    source: KeyAt::New(1)
                }),
                Effect::Gone(KeyAt::Old(3)),
                Effect::Gone(KeyAt::Old(4)),
                Effect::Keep(Kept {
                    row: 4,
                    fill: Some(vec![Some(4), None, Some(4)]),
                    source: KeyAt::Old(3)
                }),
            ]
        );
        // An update of a row deleted before it, with values unsent, is refused.
        let broken = [
            change(Op::Delete, b"a", None, &[]),
            change(Op::Update, b"a", None, &[1]),
        ];
        let e = reduce(&broken, 3).unwrap_err();
        assert!(e.contains("deleted by an earlier change"), "{e}");
    }

    #[test]
    fn the_change_columns_are_counted() {
        let fields = arrow_schema::Fields::from(vec![arrow_schema::Field::new(
            "id",
            DataType::Int64,
            false,
        )]);
        assert_eq!(crate::decode::meta_fields(&fields).len(), CHANGE_COLUMNS);
    }

    #[test]
    fn equal_keys_are_equal_bytes() {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(1), None, Some(2)]));
        let names: ArrayRef = Arc::new(StringArray::from(vec!["a", "a", "a", "ab"]));
        let uuids: ArrayRef = Arc::new(
            FixedSizeBinaryArray::try_from_iter([[1u8; 16], [1; 16], [1; 16], [2; 16]].iter())
                .unwrap(),
        );
        let columns = [ids.as_ref(), names.as_ref(), uuids.as_ref()];
        let (body, ends) = KeyEncoder::encode_all(&columns).unwrap();
        let key = |i: usize| &body[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        assert_eq!(key(0), key(1));
        assert_ne!(key(0), key(2));
        assert_ne!(key(0), key(3));
        // A slice encodes as its own rows.
        let sliced = ids.slice(1, 3);
        let names2 = names.slice(1, 3);
        let uuids2 = uuids.slice(1, 3);
        let (b2, e2) =
            KeyEncoder::encode_all(&[sliced.as_ref(), names2.as_ref(), uuids2.as_ref()]).unwrap();
        assert_eq!(&b2[..e2[0]], key(1));
        // An int key is the same key as a bigint one.
        let narrow: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![7]));
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        assert_eq!(
            KeyEncoder::encode_all(&[narrow.as_ref()]).unwrap(),
            KeyEncoder::encode_all(&[wide.as_ref()]).unwrap()
        );
        // Text "a" + "b" is not text "ab" + "".
        let x: ArrayRef = Arc::new(StringArray::from(vec!["a", "ab"]));
        let y: ArrayRef = Arc::new(StringArray::from(vec!["b", ""]));
        let (b3, e3) = KeyEncoder::encode_all(&[x.as_ref(), y.as_ref()]).unwrap();
        assert_ne!(&b3[..e3[0]], &b3[e3[0]..]);
        let list: ArrayRef = Arc::new(arrow_array::ListArray::from_iter_primitive::<
            arrow_array::types::Int32Type,
            _,
            _,
        >([Some([Some(1)])]));
        assert!(KeyEncoder::encode_all(&[list.as_ref()]).is_err());
    }
}
