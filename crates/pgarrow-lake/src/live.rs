//! Where a mirrored table is ([`MirrorPoint`]), and a lake table as a mirror holds it between commits, whatever its format: its live data files
//! (each with the positions its deletes remove) and where each key's row is; and the fold of
//! one commit's changes onto it ([`Live::plan`]): the rows to add, the positions to delete,
//! whether the table is emptied first.

use std::collections::{BTreeMap, HashMap};

use pgarrow_protocol::replication::Lsn;
use serde::Serialize;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow_schema::SchemaRef;
use pgarrow::io::{Input, InputOptions, Location};
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::{Change, Effect, Kept, KeyAt, KeyEncoder, KeyHashing, reduce};
use pgarrow_changes::{OLD_COLUMN, OP_COLUMN, Op, UNCHANGED_COLUMN};
pub(crate) use positions::Positions;

mod index;
mod keys;
mod large;
mod positions;
mod whole;

use crate::spill::Spilled;
pub(crate) use large::{Changes, Surveying};

pub use index::IndexStats;
pub(crate) use index::{HOME as INDEX_HOME, Index, Place};

/// Where a mirrored table is: the slot it follows and the WAL position its last commit
/// reached (every transaction committed before it is in the table, none after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorPoint {
    /// The logical replication slot.
    pub slot: String,
    /// The position.
    #[serde(serialize_with = "as_text")]
    pub lsn: Lsn,
    /// When the transaction at `lsn` committed on the source, in microseconds since
    /// 1970-01-01 UTC (`None`: an export's point, or a commit of an older pgarrow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}

/// The provenance key of a point's source commit time.
const SOURCE_COMMIT_US: &str = "source_commit_us";

fn as_text<S: serde::Serializer>(lsn: &Lsn, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&lsn.to_string())
}

impl MirrorPoint {
    /// The point a commit's provenance (the JSON pgarrow writes with each commit) names: its
    /// replication slot and WAL position, when it has both.
    pub(crate) fn from_provenance(text: &str) -> Option<MirrorPoint> {
        Self::from_value(&serde_json::from_str(text).ok()?)
    }

    /// The point provenance `v` (parsed) names.
    pub(crate) fn from_value(v: &serde_json::Value) -> Option<MirrorPoint> {
        Some(MirrorPoint {
            slot: v.get("replication_slot")?.as_str()?.to_owned(),
            lsn: v.get("wal_lsn")?.as_str()?.parse().ok()?,
            time: v.get(SOURCE_COMMIT_US).and_then(serde_json::Value::as_i64),
        })
    }

    /// Writes the point into a commit's provenance `p` (where
    /// [`from_provenance`](Self::from_provenance) reads it back).
    pub(crate) fn record(&self, p: &mut serde_json::Value) {
        p["replication_slot"] = self.slot.clone().into();
        p["wal_lsn"] = self.lsn.to_string().into();
        if let Some(t) = self.time {
            p[SOURCE_COMMIT_US] = t.into();
        }
    }
}

/// The rows of `batch` (changes) whose transactions committed at or after `lsn` (those before
/// are in the table already).
///
/// # Errors
/// A batch without the commit position column.
pub(crate) fn after(batch: &RecordBatch, lsn: Lsn) -> Result<RecordBatch> {
    let commits = batch
        .column_by_name(pgarrow_changes::COMMIT_LSN_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<arrow_array::UInt64Array>())
        .ok_or_else(|| {
            Error::from(ErrorKind::Internal(format!(
                "no {}",
                pgarrow_changes::COMMIT_LSN_COLUMN
            )))
        })?;
    if commits.values().iter().all(|&c| c >= lsn.0) {
        return Ok(batch.clone());
    }
    let keep: arrow_array::BooleanArray =
        commits.values().iter().map(|&c| Some(c >= lsn.0)).collect();
    arrow_select::filter::filter_record_batch(batch, &keep)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("filtering changes: {e}"))))
}

/// What a commit's error says when the lake table's files changed since the mirror read them
/// (the mirror reads the table again and folds its changes anew).
pub(crate) const MOVED: &str = "the lake table's files changed since the mirror read them";

/// What a mirror's commit did: the lake table's new snapshot (DuckLake's snapshot ID, Delta's
/// version, Iceberg's snapshot ID) and the data files it wrote.
pub(crate) struct LakeCommit {
    pub(crate) snapshot: i64,
    pub(crate) files: usize,
    /// Seconds writing its data and delete files.
    pub(crate) write_s: f64,
    /// Seconds bringing the key index up to date (and persisting it) after it landed.
    pub(crate) index_s: f64,
}

impl LakeCommit {
    /// Seconds of a commit that took `took` in all not spent writing files or updating the
    /// index: making it the table's (its log, catalog or metadata).
    pub(crate) fn publish_s(&self, took: f64) -> f64 {
        (took - self.write_s - self.index_s).max(0.0)
    }
}

/// Writes `rows` as Parquet data files under `dir`, laid out by `layout`, each named after
/// `prefix`: what each file holds. Off the async threads, each file's columns encoded on every
/// core (nothing else of the commit runs meanwhile).
///
/// # Errors
/// The files' and the storage's.
pub(crate) async fn write_rows(
    dir: Location,
    options: pgarrow::io::SinkOptions,
    layout: pgarrow::io::Layout,
    rows: NewRows,
    prefix: String,
) -> Result<Vec<pgarrow::io::WrittenFile>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let options = options.with_encode_threads(cores.min(4));
    tokio::task::spawn_blocking(move || -> Result<Vec<pgarrow::io::WrittenFile>> {
        dir.prepare_dir()?;
        let schema = rows.schema();
        let mut writer = pgarrow::io::LayoutWriter::new(
            dir,
            pgarrow::io::Format::Parquet,
            &options,
            &schema,
            &layout,
            &prefix,
            256 << 20,
        )?;
        // A file's rows at a time.
        for file in rows.files.iter().flat_map(|f| &f.files) {
            live_rows(file, |part| Ok(writer.write(&as_schema(&part, &schema)?)?))?;
        }
        if let Some(spilled) = &rows.spilled {
            spilled.each(|part| Ok(writer.write(&as_schema(&part, &schema)?)?))?;
        }
        if let Some(b) = &rows.batch {
            writer.write(b)?;
        }
        Ok(writer.finish()?)
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("writing data files: {e}"))))?
}

/// Where a commit's time goes, for [`debug`]: each step's time since the commit began.
pub(crate) struct Laps {
    name: String,
    started: std::time::Instant,
}

impl Laps {
    /// A commit to table `name` beginning now.
    pub(crate) fn new(name: &str) -> Laps {
        Laps {
            name: name.to_owned(),
            started: std::time::Instant::now(),
        }
    }

    /// Step `what` is done: the seconds since the commit began.
    pub(crate) fn lap(&self, what: &str) -> f64 {
        let at = self.started.elapsed().as_secs_f64();
        debug(format_args!("{}: {what} at {at:.3} s", self.name));
        at
    }
}

/// A debug line of the mirror (shown by the doors under `PGARROW_DEBUG`, see
/// [`pgarrow::logging`]): where a mirror's time goes.
pub(crate) fn debug(what: std::fmt::Arguments<'_>) {
    log::debug!(target: "pgarrow_lake::mirror", "{what}");
}

/// A live data file of the table.
#[derive(Debug, Clone)]
pub(crate) struct LiveFile {
    /// Its ID in the table (DuckLake's `data_file_id`).
    pub(crate) id: i64,
    pub(crate) location: Location,
    /// Its rows, deleted ones included.
    pub(crate) rows: u64,
    /// Its size.
    pub(crate) bytes: u64,
    /// The positions its deletes remove, sorted.
    pub(crate) deleted: Positions,
    /// Columns its rows hold one value of that the file leaves out (a Delta table's
    /// partition columns): each column's name, type and value as text (`None`: NULL).
    pub(crate) constants: Vec<Constant>,
}

/// A column whose value a file's rows share, kept outside the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Constant {
    pub(crate) name: String,
    pub(crate) data_type: arrow_schema::DataType,
    pub(crate) value: Option<String>,
}

impl LiveFile {
    /// `batch` (rows of the file) with its constant columns after its own.
    fn with_constants(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.constants.is_empty() {
            return Ok(batch);
        }
        let rows = batch.num_rows();
        let mut fields: Vec<arrow_schema::FieldRef> = batch.schema().fields().to_vec();
        let mut columns = batch.columns().to_vec();
        for c in &self.constants {
            let array = match &c.value {
                None => arrow_array::new_null_array(&c.data_type, rows),
                Some(v) => {
                    let text = arrow_array::StringArray::from(vec![v.as_str(); rows]);
                    // A timestamp partition's value into the zone named UTC too.
                    pgarrow::io::cast_exact(&text, &c.data_type, &Default::default()).map_err(
                        |e| {
                            Error::from(ErrorKind::InvalidInput(format!(
                                "{}: its value {v:?} of column {:?} is not a {}: {e}",
                                self.location, c.name, c.data_type
                            )))
                        },
                    )?
                }
            };
            fields.push(Arc::new(arrow_schema::Field::new(
                &c.name,
                c.data_type.clone(),
                true,
            )));
            columns.push(array);
        }
        RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns).map_err(|e| {
            Error::from(ErrorKind::Internal(format!(
                "{} with its partition values: {e}",
                self.location
            )))
        })
    }
}

/// Where a row is: a file's ID and the row's position in it.
pub(crate) type At = (i64, u64);

/// A key as [`KeyEncoder`] writes it, held without an allocation of its own when short (the
/// index holds one per row of the table).
#[derive(Clone)]
pub(crate) enum Key {
    Inline { len: u8, bytes: [u8; 30] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(b: &[u8]) -> Key {
        match u8::try_from(b.len()) {
            Ok(len) if b.len() <= 30 => {
                let mut bytes = [0; 30];
                bytes[..b.len()].copy_from_slice(b);
                Key::Inline { len, bytes }
            }
            _ => Key::Heap(b.into()),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }

    /// The bytes it holds on the heap, about (its allocation, with the allocator's own):
    /// none when inline.
    fn heap_bytes(&self) -> usize {
        match self {
            Key::Inline { .. } => 0,
            Key::Heap(b) => b.len().next_multiple_of(16) + 16,
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?})", self.as_slice())
    }
}

/// The table between commits.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// The key's columns, by name; with [`whole`](Self::whole), all the table's.
    pub(crate) key: Vec<String>,
    /// Rows are told apart by all their values (a source under `REPLICA IDENTITY FULL`
    /// without a key), identical ones counted: see [`whole`].
    pub(crate) whole: bool,
    pub(crate) files: BTreeMap<i64, LiveFile>,
    /// Each live row's place, by its key (as [`KeyEncoder`] writes it), persisted with the
    /// table (see [`index`]); with `whole`, by its values' digest (see [`whole`]).
    pub(crate) index: Index,
}

/// What one commit does to the table.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Every row of the table goes first (a truncate among the changes).
    pub(crate) truncate: bool,
    /// The rows added (the table's columns).
    pub(crate) rows: Option<RecordBatch>,
    /// Positions deleted, by file: only new ones.
    pub(crate) deletes: BTreeMap<i64, Positions>,
    /// The keys whose rows the deletes remove, for an index held in memory whole (a
    /// persisted one judges its entries by the deletes themselves).
    pub(crate) gone: Vec<Key>,
    /// Changes folded.
    pub(crate) changes: u64,
    /// Rows added that are read from files as they are written (compaction's: every live
    /// row of the files it rewrites), instead of `rows`.
    pub(crate) file_rows: Option<FileRows>,
    /// Files whose every row goes (the files compaction rewrote), by ID: their positions are
    /// not listed.
    pub(crate) ended: Vec<i64>,
    /// The commit rewrites files (compaction): `file_rows` are the live rows of the files
    /// whose every live position `deletes` names, and the table's rows stay the same.
    pub(crate) rewrite: bool,
    /// Rows deleted by writing their files again without them (copy-on-write: the files are
    /// in `ended`, their rows left in `file_rows`).
    pub(crate) copied: u64,
    /// Seconds finding where the changed keys' rows are, and bytes of the key index read.
    pub(crate) lookup_s: f64,
    pub(crate) index_read: u64,
    /// Seconds folding the changes (the lookup included).
    pub(crate) fold_s: f64,
    /// Rows added, set aside in a spill file (changes too large for memory, folded in
    /// buckets), instead of `rows`.
    pub(crate) spilled: Option<Arc<Spilled>>,
}

/// Rows a commit adds, read from files a file at a time as the new files are written: the
/// memory holds one file's rows, not the commit's.
#[derive(Debug, Clone)]
pub(crate) struct FileRows {
    /// The columns they are written with (a file's that lacks one is NULL there; a narrower
    /// type is cast).
    pub(crate) schema: SchemaRef,
    /// The files whose live rows (those their deletes leave) are taken.
    pub(crate) files: Vec<LiveFile>,
}

impl FileRows {
    /// The rows.
    pub(crate) fn rows(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.rows.saturating_sub(f.deleted.len()))
            .sum()
    }
}

/// The rows a commit writes: in memory, read from files as they are written, or both (the
/// files' first).
#[derive(Debug, Clone)]
pub(crate) struct NewRows {
    batch: Option<RecordBatch>,
    files: Option<FileRows>,
    spilled: Option<Arc<Spilled>>,
}

impl NewRows {
    /// Their columns (the batch's when there is one: the files' rows are taken as them).
    pub(crate) fn schema(&self) -> SchemaRef {
        match (&self.batch, &self.spilled, &self.files) {
            (Some(b), ..) => b.schema(),
            (None, Some(s), _) => s.schema.clone(),
            (None, None, Some(f)) => f.schema.clone(),
            (None, None, None) => Arc::new(arrow_schema::Schema::empty()),
        }
    }
}

impl Plan {
    /// Rows deleted from the table's files (a truncate's not counted).
    pub(crate) fn deleted(&self) -> u64 {
        self.deletes.values().map(Positions::len).sum::<u64>() + self.copied
    }

    /// Rows the changes add (not those written again).
    pub(crate) fn inserted(&self) -> u64 {
        self.rows.as_ref().map_or(0, |r| r.num_rows() as u64)
            + self.spilled.as_ref().map_or(0, |s| s.rows)
    }

    /// Rows written again from the files the commit ends.
    pub(crate) fn rewritten(&self) -> u64 {
        self.file_rows.as_ref().map_or(0, FileRows::rows)
    }

    /// The rows, when they alone go into the new files, one after another (so that where
    /// each landed is known without reading the files back).
    pub(crate) fn rows_alone(&self) -> Option<&RecordBatch> {
        self.rows
            .as_ref()
            .filter(|_| self.file_rows.is_none() && self.spilled.is_none())
    }

    /// This plan with its deletes made by writing files again (copy-on-write): each file
    /// that loses rows ends, and the rows it keeps are written beside the new rows, as the
    /// table's columns (the first `columns` of `changes`, in the lake's forms).
    ///
    /// # Errors
    /// A file the plan deletes from that the table does not hold (it moved).
    pub(crate) fn copy_on_write(
        mut self,
        live: &Live,
        changes: &RecordBatch,
        columns: usize,
    ) -> Result<Plan> {
        if self.truncate || self.deletes.is_empty() {
            return Ok(self);
        }
        let mut files = Vec::new();
        for (id, positions) in std::mem::take(&mut self.deletes) {
            let mut file = live.files.get(&id).cloned().ok_or_else(|| {
                Error::from(ErrorKind::Conflict(format!(
                    "{MOVED}: file {id} is not the table's"
                )))
            })?;
            self.copied += positions.len();
            file.deleted.union_with(&positions);
            self.ended.push(id);
            if file.deleted.len() < file.rows {
                files.push(file);
            }
        }
        if !files.is_empty() {
            let schema = changes.schema();
            let fields: Vec<_> = schema.fields().iter().take(columns).cloned().collect();
            self.file_rows = Some(FileRows {
                schema: Arc::new(arrow_schema::Schema::new(fields)),
                files,
            });
        }
        Ok(self)
    }

    /// Whether it changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        !self.truncate && !self.adds_rows() && self.deletes.is_empty() && self.ended.is_empty()
    }

    /// Whether it writes rows.
    pub(crate) fn adds_rows(&self) -> bool {
        self.rows.is_some() || self.file_rows.is_some() || self.spilled.is_some()
    }

    /// The rows it writes.
    pub(crate) fn new_rows(&self) -> Option<NewRows> {
        self.adds_rows().then(|| NewRows {
            batch: self.rows.clone(),
            files: self.file_rows.clone(),
            spilled: self.spilled.clone(),
        })
    }
}

/// Where a value of a row left comes from: a change, or the table's row before the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Change(u32),
    Table(At),
}

/// A row the commit adds.
#[derive(Debug)]
struct Left {
    row: u32,
    /// Per column, when not every value is the change's own.
    fill: Option<Vec<From>>,
}

/// Keys encoded one after another (as [`KeyEncoder`] writes them): the bytes, and where each
/// key ends.
struct Encoded {
    body: Vec<u8>,
    ends: Vec<usize>,
}

impl Encoded {
    /// The `i`th key.
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.body[start..self.ends[i]]
    }
}

/// A keyed table's change batch as [`Live::plan`] reads it: its change columns, and each
/// row's key and old key encoded.
struct ChangeBatch<'a> {
    live: &'a Live,
    schema: SchemaRef,
    /// The table's columns: the batch's first.
    columns: usize,
    table: &'a str,
    /// The key's columns, by index.
    key: Vec<usize>,
    batch: &'a RecordBatch,
    ops: &'a StringArray,
    unchanged: &'a ListArray,
    old: &'a StructArray,
    new_keys: Encoded,
    old_keys: Encoded,
    /// Where the table's rows of the batch's keys are.
    found: HashMap<Key, At, KeyHashing>,
}

impl<'a> ChangeBatch<'a> {
    /// The changes `batch` holds of the table `live` (its first `columns` columns the
    /// table's), with their keys encoded.
    ///
    /// # Errors
    /// A batch without a key column of the table's, or without the change columns; a key
    /// the encoder does not take.
    fn read(
        live: &'a Live,
        batch: &'a RecordBatch,
        columns: usize,
        table: &'a str,
    ) -> Result<Self> {
        let schema = batch.schema();
        let key: Vec<usize> = live
            .key
            .iter()
            .map(|k| {
                schema
                    .index_of(k)
                    .ok()
                    .filter(|&i| i < columns)
                    .ok_or_else(|| {
                        Error::from(ErrorKind::Usage(format!(
                            "{table}'s changes have no key column {k:?}"
                        )))
                    })
            })
            .collect::<Result<_>>()?;
        let column = |name: &str| -> Result<&'a ArrayRef> {
            batch.column_by_name(name).ok_or_else(|| {
                Error::from(ErrorKind::Internal(format!(
                    "a change batch without {name}"
                )))
            })
        };
        let ops = column(OP_COLUMN)?
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::from(ErrorKind::Internal(format!("{OP_COLUMN} is not text"))))?;
        let unchanged = column(UNCHANGED_COLUMN)?
            .as_list_opt::<i32>()
            .ok_or_else(|| {
                Error::from(ErrorKind::Internal(format!(
                    "{UNCHANGED_COLUMN} is not a list"
                )))
            })?;
        let old = column(OLD_COLUMN)?.as_struct_opt().ok_or_else(|| {
            Error::from(ErrorKind::Internal(format!("{OLD_COLUMN} is not a struct")))
        })?;
        let encode = |arrays: Vec<&dyn Array>| {
            KeyEncoder::encode_all(&arrays)
                .map(|(body, ends)| Encoded { body, ends })
                .map_err(|e| Error::from(ErrorKind::Usage(format!("{table}'s key: {e}"))))
        };
        let new_keys = encode(key.iter().map(|&k| batch.column(k).as_ref()).collect())?;
        let old_keys = encode(key.iter().map(|&k| old.column(k).as_ref()).collect())?;
        Ok(Self {
            live,
            schema,
            columns,
            table,
            key,
            batch,
            ops,
            unchanged,
            old,
            new_keys,
            old_keys,
            found: HashMap::default(),
        })
    }

    /// Finds where the table's rows of the batch's keys (new and old) are.
    ///
    /// # Errors
    /// The index's.
    async fn locate(&mut self) -> Result<()> {
        let rows = self.batch.num_rows();
        let old = (0..rows)
            .filter(|&i| self.old.is_valid(i))
            .map(|i| self.old_keys.get(i));
        let keys = (0..rows).map(|i| self.new_keys.get(i)).chain(old);
        self.found = self.live.index.locate(keys, &self.live.files).await?;
        Ok(())
    }

    /// Row `i`'s operation.
    fn op(&self, i: usize) -> Result<Op> {
        match self.ops.value(i) {
            "insert" => Ok(Op::Insert),
            "update" => Ok(Op::Update),
            "delete" => Ok(Op::Delete),
            "truncate" => Ok(Op::Truncate),
            other => Err(ErrorKind::Internal(format!("{OP_COLUMN} {other:?}")).into()),
        }
    }

    /// The changes of `rows` (a run without a truncate), for [`reduce`].
    ///
    /// # Errors
    /// A change without a key value.
    fn run(&self, rows: std::ops::Range<usize>) -> Result<Vec<Change<'_>>> {
        let mut changes = Vec::with_capacity(rows.len());
        for i in rows {
            let op = self.op(i)?;
            if self.key.iter().any(|&k| self.batch.column(k).is_null(i)) {
                return Err(ErrorKind::OutOfStep(format!(
                    "{}: a change ({}) without a value for its key ({}): the source's \
                     replica identity must cover the key",
                    self.table,
                    op.as_str(),
                    self.live.key.join(", ")
                ))
                .into());
            }
            let mut unsent = Vec::new();
            if self.unchanged.is_valid(i) {
                for name in self.unchanged.value(i).as_string::<i32>().iter().flatten() {
                    if let Ok(c) = self.schema.index_of(name)
                        && c < self.columns
                    {
                        unsent.push(c);
                    }
                }
            }
            let has_old = op == Op::Update && self.old.is_valid(i);
            changes.push(Change {
                op,
                key: self.new_keys.get(i),
                old_key: has_old.then(|| self.old_keys.get(i)),
                unchanged: unsent,
            });
        }
        Ok(changes)
    }

    /// The key `at` names in the run that starts at row `start`.
    fn key_at(&self, start: usize, at: KeyAt) -> &[u8] {
        match at {
            KeyAt::New(r) => self.new_keys.get(start + r as usize),
            KeyAt::Old(r) => self.old_keys.get(start + r as usize),
        }
    }

    /// Where each value of the row `kept` comes from, when not every one is its change's
    /// own (in the run that starts at row `start`): a change, or the table's row (none
    /// after a `truncate`).
    ///
    /// # Errors
    /// A value the table has no row to take from (it is not in step with the source).
    fn fill(&self, start: usize, kept: &Kept, truncate: bool) -> Result<Option<Vec<From>>> {
        if kept.fill.is_none() {
            return Ok(None);
        }
        let source = self.key_at(start, kept.source);
        let mut from = Vec::with_capacity(self.columns);
        for c in 0..self.columns {
            from.push(match kept.value_row(c) {
                Some(r) => From::Change(start as u32 + r),
                None => match (truncate, self.found.get(source)) {
                    (false, Some(&place)) => From::Table(place),
                    _ => {
                        return Err(ErrorKind::OutOfStep(format!(
                            "{}: an update did not send column {:?} (an unchanged TOASTed \
                             value), and the lake table has no row for its key: the table is \
                             not in step with the source",
                            self.table,
                            self.schema.field(c).name()
                        ))
                        .into());
                    }
                },
            });
        }
        Ok(Some(from))
    }
}

/// The rows a commit leaves and the table's rows it deletes, as [`Live::plan`] folds in
/// the runs of changes (the keys those of a [`ChangeBatch`]).
struct Fold<'k> {
    /// A truncate among the changes: every row of the table goes first.
    truncate: bool,
    /// The rows left so far, in the order their keys were last touched (`None`: gone
    /// since).
    left: Vec<Option<Left>>,
    /// Each key's place in `left`.
    left_at: HashMap<&'k [u8], usize, KeyHashing>,
    /// The table's rows that go, with their keys.
    gone: Vec<(At, &'k [u8])>,
}

impl<'k> Fold<'k> {
    /// A fold of `rows` changes.
    fn with_capacity(rows: usize) -> Self {
        Fold {
            truncate: false,
            left: Vec::with_capacity(rows),
            left_at: HashMap::with_capacity_and_hasher(rows, KeyHashing::default()),
            gone: Vec::new(),
        }
    }

    /// A truncate: every row before it goes, the table's and the changes'.
    fn truncate(&mut self) {
        self.truncate = true;
        self.left.clear();
        self.left_at.clear();
        self.gone.clear();
    }

    /// Folds in the `effects` of the run of `changes` that starts at row `start`.
    ///
    /// # Errors
    /// As [`ChangeBatch::fill`].
    fn effects(
        &mut self,
        changes: &'k ChangeBatch<'_>,
        start: usize,
        effects: Vec<Effect>,
    ) -> Result<()> {
        for effect in effects {
            match effect {
                Effect::Gone(at) => {
                    let k = changes.key_at(start, at);
                    if let Some(i) = self.left_at.remove(k) {
                        self.left[i] = None;
                    } else {
                        self.table_row_goes(&changes.found, k);
                    }
                }
                Effect::Keep(kept) => self.keep(changes, start, &kept)?,
            }
        }
        Ok(())
    }

    /// The row `kept` is left, in place of its key's row before.
    fn keep(&mut self, changes: &'k ChangeBatch<'_>, start: usize, kept: &Kept) -> Result<()> {
        let row = u32::try_from(start).unwrap_or(u32::MAX) + kept.row;
        let k = changes.key_at(start, KeyAt::New(kept.row));
        let before = self.left_at.remove(k).and_then(|i| self.left[i].take());
        if before.is_none() {
            self.table_row_goes(&changes.found, k);
        }
        let fill = changes.fill(start, kept, self.truncate)?;
        self.left_at.insert(k, self.left.len());
        self.left.push(Some(Left { row, fill }));
        Ok(())
    }

    /// The table's row of key `k`, when it has one (and no truncate went before), goes.
    fn table_row_goes(&mut self, found: &HashMap<Key, At, KeyHashing>, k: &'k [u8]) {
        if !self.truncate
            && let Some(&place) = found.get(k)
        {
            self.gone.push((place, k));
        }
    }

    /// The fold into `plan`: its truncate, the table's rows that go (as deletes by file, and
    /// with `keys`, their keys); returns the rows left, in order.
    fn finish(self, plan: &mut Plan, keys: bool) -> Vec<Left> {
        plan.truncate = self.truncate;
        let mut gone = self.gone;
        gone.sort_unstable_by_key(|(at, _)| *at);
        gone.dedup_by_key(|(at, _)| *at);
        if keys {
            plan.gone.reserve(gone.len());
        }
        for ((file, pos), k) in gone {
            plan.deletes.entry(file).or_default().insert(pos);
            if keys {
                plan.gone.push(Key::new(k));
            }
        }
        self.left.into_iter().flatten().collect()
    }
}

impl Live {
    /// The table of `files`, its index by `key` at `place`: the persisted one, and the
    /// files it does not cover read for their keys (a table without a key and not told
    /// apart by whole rows has no index).
    ///
    /// # Errors
    /// A file that cannot be read, lacks a key column or holds a key twice (naming both
    /// places); the index's storage.
    pub(crate) async fn load(
        key: Vec<String>,
        whole: bool,
        files: Vec<LiveFile>,
        place: &Place,
    ) -> Result<Live> {
        let place = match key.is_empty() {
            true => Place::memory(),
            false => place.clone(),
        };
        let all: BTreeMap<i64, LiveFile> = files.into_iter().map(|f| (f.id, f)).collect();
        let (index, uncovered) = Index::open(&place, &key, whole, &all).await?;
        let mut live = Live {
            key,
            whole,
            files: BTreeMap::new(),
            index,
        };
        let uncovered: std::collections::HashSet<i64> = uncovered.into_iter().collect();
        let mut reading = Vec::with_capacity(uncovered.len());
        for (id, file) in all {
            match uncovered.contains(&id) {
                true => reading.push(file),
                false => {
                    live.files.insert(id, file);
                }
            }
        }
        let rows: u64 = reading.iter().map(|f| f.rows - f.deleted.len()).sum();
        live.index.reserve(usize::try_from(rows).unwrap_or(0));
        let read = !reading.is_empty();
        for file in reading {
            live.add_file(file).await?;
        }
        if read && live.index.persisted() {
            live.settle().await;
        }
        Ok(live)
    }

    /// Adds a file the table now holds, its rows' keys into the index.
    pub(crate) async fn add_file(&mut self, file: LiveFile) -> Result<()> {
        if self.key.is_empty() {
            // Without a key, the files alone (what compaction reads).
            self.files.insert(file.id, file);
            return Ok(());
        }
        // One row group's keys at a time: a file of any size takes one row group's memory.
        let reader = keys::KeyReader::open(&file, &self.key).await?;
        self.index.file_read(reader.key_bytes());
        // The file is the table's as its keys go in (an entry written out is of a live file).
        let (id, location, rows) = (file.id, file.location.to_string(), file.rows);
        let deleted_positions = file.deleted.clone();
        self.files.insert(file.id, file);
        let mut deleted = deleted_positions.iter().peekable();
        let mut at = 0u64;
        for group in 0..reader.row_groups() {
            for batch in &reader.read(group).await? {
                // Past the budget, written out (else held a while longer: the index is a cache).
                if let Err(e) = self.index.spill_if_full(&self.files).await {
                    log::warn!("the mirror's key index was not written out: {e}");
                }
                let columns: Vec<&dyn Array> = batch.columns().iter().map(|c| c.as_ref()).collect();
                if self.whole {
                    let digests = whole::digests(&self.index.secret(), &columns).map_err(|e| {
                        Error::from(ErrorKind::InvalidInput(format!(
                            "the rows of {location}: {e}"
                        )))
                    })?;
                    for d in digests {
                        while deleted.next_if(|&d| d < at).is_some() {}
                        if deleted.next_if_eq(&at).is_none() {
                            whole::insert(&mut self.index, d, (id, at));
                        }
                        at += 1;
                    }
                    continue;
                }
                let (body, ends) = KeyEncoder::encode_all(&columns).map_err(|e| {
                    Error::from(ErrorKind::InvalidInput(format!(
                        "the key of {location}: {e}"
                    )))
                })?;
                let mut start = 0;
                for end in ends {
                    while deleted.next_if(|&d| d < at).is_some() {}
                    if deleted.next_if_eq(&at).is_none() {
                        let key = Key::new(&body[start..end]);
                        if let Some((other, pos)) = self.index.insert(key, (id, at)) {
                            return Err(ErrorKind::InvalidInput(format!(
                                "the lake table holds one key twice (file {id} row {at}, and file \
                             {other} row {pos}): it is not a mirror of a table with that key"
                            ))
                            .into());
                        }
                    }
                    start = end;
                    at += 1;
                }
            }
        }
        if at != rows {
            return Err(ErrorKind::Unexpected(format!(
                "{location} holds {at} rows; the table's metadata says {rows}"
            ))
            .into());
        }
        Ok(())
    }

    /// Adds a file the table now holds whose rows are `rows` (the table's columns), in order.
    ///
    /// # Errors
    /// A file of another row count; a key twice.
    pub(crate) fn add_rows(&mut self, file: LiveFile, rows: &RecordBatch) -> Result<()> {
        if rows.num_rows() as u64 != file.rows {
            return Err(ErrorKind::Internal(format!(
                "{} holds {} rows, and {} were written into it",
                file.location,
                file.rows,
                rows.num_rows()
            ))
            .into());
        }
        if self.key.is_empty() {
            self.files.insert(file.id, file);
            return Ok(());
        }
        let columns = self
            .key
            .iter()
            .map(|k| {
                rows.column_by_name(k)
                    .map(|c| c.as_ref())
                    .ok_or_else(|| Error::from(ErrorKind::Internal(format!("no key column {k:?}"))))
            })
            .collect::<Result<Vec<&dyn Array>>>()?;
        if self.whole {
            let digests = whole::digests(&self.index.secret(), &columns)
                .map_err(|e| Error::from(ErrorKind::Usage(format!("the rows: {e}"))))?;
            for (at, d) in digests.into_iter().enumerate() {
                whole::insert(&mut self.index, d, (file.id, at as u64));
            }
            self.files.insert(file.id, file);
            return Ok(());
        }
        let (body, ends) = KeyEncoder::encode_all(&columns)
            .map_err(|e| Error::from(ErrorKind::Usage(format!("the key: {e}"))))?;
        let mut start = 0;
        for (at, end) in ends.into_iter().enumerate() {
            let key = Key::new(&body[start..end]);
            if let Some((other, pos)) = self.index.insert(key, (file.id, at as u64)) {
                return Err(ErrorKind::Unexpected(format!(
                    "one key twice: file {} row {at}, and file {other} row {pos}",
                    file.id
                ))
                .into());
            }
            start = end;
        }
        self.files.insert(file.id, file);
        Ok(())
    }

    /// The files a commit wrote `rows` into, in the index: when `in_order` (the rows went into
    /// the files one after another: no partitions, no sort), their places are known without
    /// reading the files back; else each file's keys are read.
    ///
    /// # Errors
    /// As [`add_rows`](Self::add_rows) and [`add_file`](Self::add_file).
    pub(crate) async fn add_written(
        &mut self,
        files: Vec<LiveFile>,
        rows: Option<&RecordBatch>,
        in_order: bool,
    ) -> Result<()> {
        self.index.begin_fresh();
        let added = self.add_each_written(files, rows, in_order).await;
        let twice = self.index.end_fresh();
        if added.is_err() || twice.is_some() {
            self.index.unfresh();
        }
        added?;
        if let Some(((a, p), (b, q))) = twice {
            return Err(ErrorKind::Unexpected(format!(
                "one key twice: file {a} row {p}, and file {b} row {q}"
            ))
            .into());
        }
        self.settle().await;
        Ok(())
    }

    /// [`add_written`](Self::add_written)'s files, one by one.
    async fn add_each_written(
        &mut self,
        files: Vec<LiveFile>,
        rows: Option<&RecordBatch>,
        in_order: bool,
    ) -> Result<()> {
        let mut first = 0usize;
        for file in files {
            match (rows, in_order) {
                (Some(rows), true) => {
                    let n = usize::try_from(file.rows).unwrap_or(usize::MAX);
                    let n = n.min(rows.num_rows() - first);
                    self.add_rows(file, &rows.slice(first, n))?;
                    first += n;
                }
                _ => self.add_file(file).await?,
            }
            // Past the budget, written out; else held a while longer (the commit landed).
            if let Err(e) = self.index.spill_if_full(&self.files).await {
                log::warn!("the mirror's key index was not written out: {e}");
            }
        }
        Ok(())
    }

    /// Persists the index after a commit: a failure is told and left (the commit landed; the
    /// next run reads the files the index missed).
    pub(crate) async fn settle(&mut self) {
        if let Err(e) = self.index.persist(&self.files).await {
            log::warn!("the mirror's key index was not persisted: {e}");
        }
    }

    /// After a commit of `plan`: its deletes and truncate in the files and the index; the
    /// files whose every row is gone are no longer the table's (the commit ended them).
    pub(crate) fn committed(&mut self, plan: &Plan) {
        if plan.truncate {
            self.files.clear();
            self.index.clear();
        }
        match self.whole {
            // The highest ordinals first: each taken out is the last of its digest then.
            true => {
                let mut gone: Vec<&[u8]> = plan.gone.iter().map(Key::as_slice).collect();
                gone.sort_unstable_by(|a, b| b.cmp(a));
                for key in gone {
                    whole::remove(&mut self.index, key);
                }
            }
            false => {
                for key in &plan.gone {
                    self.index.remove(key.as_slice());
                }
            }
        }
        for id in &plan.ended {
            self.files.remove(id);
        }
        if !plan.truncate && !plan.ended.is_empty() {
            self.forget(&plan.ended);
        }
        for (id, positions) in &plan.deletes {
            if let Some(file) = self.files.get_mut(id) {
                file.deleted.union_with(positions);
                if file.deleted.len() >= file.rows {
                    self.files.remove(id);
                }
            }
        }
    }

    /// Whether the row at `at` is one of the table's: its file is, and its position not
    /// deleted.
    pub(crate) fn is_live(&self, (id, pos): At) -> bool {
        self.files
            .get(&id)
            .is_some_and(|f| pos < f.rows && !f.deleted.contains(pos))
    }

    /// Takes out of the index the rows of the files `ended` (their rows left are indexed
    /// again where they were written): a pass over the index.
    fn forget(&mut self, ended: &[i64]) {
        if self.index.is_empty() {
            return;
        }
        let ended: std::collections::HashSet<i64> = ended.iter().copied().collect();
        if !self.whole {
            self.index.retain(|_, at| !ended.contains(&at.0));
            return;
        }
        // Identical rows in memory are numbered 0..n by digest: those of a digest with a row
        // in an ended file are numbered again without it.
        let digests: std::collections::HashSet<whole::Digest> = self
            .index
            .iter()
            .filter(|(_, at)| ended.contains(&at.0))
            .filter_map(|(k, _)| whole::digest_of(k.as_slice()))
            .collect();
        for digest in digests {
            let n = whole::count(&self.index, &digest);
            let kept: Vec<At> = (0..n)
                .filter_map(|i| self.index.remove(whole::key(&digest, i).as_slice()))
                .filter(|at| !ended.contains(&at.0))
                .collect();
            self.index.dups.remove(&digest);
            for at in kept {
                whole::insert(&mut self.index, digest, at);
            }
        }
    }

    /// Folds `batch` (one table's changes in commit order: the table's `columns` columns, then
    /// the change columns) onto the table: the rows it leaves, the rows it deletes. Values an
    /// update did not send (unchanged TOASTed values) come from the change before it or from
    /// the table's row, read through `fetch` (the table's columns of those rows, in order).
    ///
    /// # Errors
    /// A change without a key value; an update whose unsent values the table does not have
    /// (the table is not in step with the source).
    pub(crate) async fn plan<F, Fut>(
        &self,
        batch: &RecordBatch,
        columns: usize,
        table: &str,
        fetch: F,
    ) -> Result<Plan>
    where
        F: FnOnce(Vec<(LiveFile, Vec<u64>)>) -> Fut,
        Fut: std::future::Future<Output = Result<RecordBatch>>,
    {
        if self.whole {
            return whole::plan(self, batch, columns, table).await;
        }
        let mut changes = ChangeBatch::read(self, batch, columns, table)?;
        let (looking, read_before) = (std::time::Instant::now(), self.index.stats().read_bytes);
        changes.locate().await?;
        let lookup_s = looking.elapsed().as_secs_f64();
        let index_read = self.index.stats().read_bytes - read_before;
        let rows = batch.num_rows();
        let mut fold = Fold::with_capacity(rows);
        let mut start = 0;
        while start < rows {
            if changes.op(start)? == Op::Truncate {
                fold.truncate();
                start += 1;
                continue;
            }
            let mut end = start;
            while end < rows && changes.op(end)? != Op::Truncate {
                end += 1;
            }
            let effects = reduce(&changes.run(start..end)?, columns)
                .map_err(|e| Error::from(ErrorKind::Usage(format!("{table}: {e}"))))?;
            fold.effects(&changes, start, effects)?;
            start = end;
        }
        let mut plan = Plan {
            changes: rows as u64,
            lookup_s,
            index_read,
            ..Plan::default()
        };
        // A persisted index needs no keys of the rows that go: its entries, in memory too,
        // count only while their position is live (and the next write-out drops them). An
        // index held in memory whole takes them out, or it would grow with every delete.
        let left = fold.finish(&mut plan, !self.index.persisted());
        if !left.is_empty() {
            plan.rows = Some(self.materialize(batch, columns, &left, fetch).await?);
        }
        Ok(plan)
    }

    /// The rows left, each value from its change or from the table's row.
    async fn materialize<F, Fut>(
        &self,
        batch: &RecordBatch,
        columns: usize,
        left: &[Left],
        fetch: F,
    ) -> Result<RecordBatch>
    where
        F: FnOnce(Vec<(LiveFile, Vec<u64>)>) -> Fut,
        Fut: std::future::Future<Output = Result<RecordBatch>>,
    {
        let mut wanted: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        for l in left {
            for f in l.fill.iter().flatten() {
                if let From::Table((file, pos)) = f {
                    wanted.entry(*file).or_default().push(*pos);
                }
            }
        }
        let mut place: HashMap<At, usize> = HashMap::new();
        let mut asked = Vec::new();
        for (file, mut positions) in wanted {
            positions.sort_unstable();
            positions.dedup();
            for &p in &positions {
                place.insert((file, p), place.len());
            }
            let live = self.files.get(&file).cloned().ok_or_else(|| {
                Error::from(ErrorKind::Internal(format!(
                    "file {file} is not the table's"
                )))
            })?;
            asked.push((live, positions));
        }
        let schema = batch.schema();
        let fields: Vec<_> = schema.fields().iter().take(columns).cloned().collect();
        let table_schema: SchemaRef = Arc::new(arrow_schema::Schema::new(fields));
        let rows_before = match asked.is_empty() {
            true => None,
            false => Some(fetch(asked).await?),
        };
        let mut arrays = Vec::with_capacity(columns);
        for c in 0..columns {
            let field = table_schema.field(c);
            let mine = batch.column(c);
            let needed = left.iter().any(|l| {
                l.fill
                    .as_ref()
                    .is_some_and(|f| matches!(f[c], From::Table(_)))
            });
            let theirs = match (&rows_before, needed) {
                (Some(rows), true) => match rows.column_by_name(field.name()) {
                    // A column added since the row was written: NULL there.
                    None => Some(arrow_array::new_null_array(
                        mine.data_type(),
                        rows.num_rows(),
                    )),
                    Some(theirs) if theirs.data_type() != mine.data_type() => {
                        return Err(ErrorKind::InvalidInput(format!(
                            "column {:?} is {} in the lake table's files and {} in the changes",
                            field.name(),
                            theirs.data_type(),
                            mine.data_type()
                        ))
                        .into());
                    }
                    Some(theirs) => Some(theirs.clone()),
                },
                _ => None,
            };
            let gathered = match &theirs {
                // Every value from the changes: one take.
                None => {
                    let indices: arrow_array::UInt32Array = left
                        .iter()
                        .map(|l| match l.fill.as_ref().map(|f| f[c]) {
                            Some(From::Change(r)) => r,
                            _ => l.row,
                        })
                        .collect();
                    arrow_select::take::take(mine.as_ref(), &indices, None)
                }
                Some(t) => {
                    let indices: Vec<(usize, usize)> = left
                        .iter()
                        .map(|l| match l.fill.as_ref().map(|f| f[c]) {
                            None => (0, l.row as usize),
                            Some(From::Change(r)) => (0, r as usize),
                            Some(From::Table(at)) => (1, place[&at]),
                        })
                        .collect();
                    arrow_select::interleave::interleave(&[mine.as_ref(), t.as_ref()], &indices)
                }
            };
            arrays.push(
                gathered.map_err(|e| {
                    Error::from(ErrorKind::Internal(format!("gathering rows: {e}")))
                })?,
            );
        }
        RecordBatch::try_new(table_schema, arrays)
            .map_err(|e| Error::from(ErrorKind::Internal(format!("the rows left: {e}"))))
    }
}

/// The rows of `file` its deletes leave, in order, handed to `each` a batch at a time as the
/// file has them (its columns): the memory holds one batch. Blocking.
///
/// # Errors
/// The file's and `each`'s; a file of another row count than the table says.
fn live_rows(file: &LiveFile, mut each: impl FnMut(RecordBatch) -> Result<()>) -> Result<()> {
    let input = Input::open(
        std::slice::from_ref(&file.location),
        &InputOptions::default(),
    )?;
    let mut at = 0u64;
    let mut deleted = file.deleted.iter().peekable();
    for batch in input {
        let batch = batch.map_err(|e| Error::from(pgarrow::io::Error::Input(e)))?;
        let n = batch.num_rows() as u64;
        let keep: arrow_array::BooleanArray = (at..at + n)
            .map(|p| Some(deleted.next_if_eq(&p).is_none()))
            .collect();
        at += n;
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep)
            .map_err(|e| Error::from(ErrorKind::Internal(format!("taking rows: {e}"))))?;
        if kept.num_rows() > 0 {
            each(file.with_constants(kept)?)?;
        }
    }
    if at != file.rows {
        return Err(ErrorKind::Unexpected(format!(
            "{} holds {at} rows; the table's metadata says {}",
            file.location, file.rows
        ))
        .into());
    }
    Ok(())
}

/// The rows at `positions` (sorted) of `file`, in that order, as the file has them (its
/// columns). Blocking.
///
/// # Errors
/// The file's; a position past its rows.
fn take_rows(file: &LiveFile, positions: &[u64]) -> Result<Vec<RecordBatch>> {
    let input = Input::open(
        std::slice::from_ref(&file.location),
        &InputOptions::default(),
    )?;
    let mut parts = Vec::new();
    let mut at = 0u64;
    let mut wanted = positions.iter().peekable();
    for batch in input {
        let batch = batch.map_err(|e| Error::from(pgarrow::io::Error::Input(e)))?;
        let n = batch.num_rows() as u64;
        let mut take = Vec::new();
        while let Some(&&p) = wanted.peek() {
            if p >= at + n {
                break;
            }
            take.push((p - at) as u32);
            wanted.next();
        }
        if !take.is_empty() {
            let indices = arrow_array::UInt32Array::from(take);
            let columns = batch
                .columns()
                .iter()
                .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::from(ErrorKind::Internal(format!("taking rows: {e}"))))?;
            let part = RecordBatch::try_new(batch.schema(), columns)
                .map_err(|e| Error::from(ErrorKind::Internal(format!("taking rows: {e}"))))?;
            parts.push(file.with_constants(part)?);
        }
        at += n;
    }
    if let Some(p) = wanted.peek() {
        return Err(ErrorKind::Unexpected(format!(
            "{} has no row {p} the table's index places there",
            file.location
        ))
        .into());
    }
    Ok(parts)
}

/// The rows at `positions` (sorted) of each file, in that order, as the table's columns.
pub(crate) async fn read_rows(asked: Vec<(LiveFile, Vec<u64>)>) -> Result<RecordBatch> {
    tokio::task::spawn_blocking(move || -> Result<RecordBatch> {
        let mut parts = Vec::new();
        let mut schema: Option<SchemaRef> = None;
        let mut newest = i64::MIN;
        for (file, positions) in asked {
            let taken = take_rows(&file, &positions)?;
            if let Some(first) = taken.first()
                && file.id >= newest
            {
                newest = file.id;
                schema = Some(first.schema());
            }
            parts.extend(taken);
        }
        // Files written before a schema change have other columns: each part as the newest
        // file's columns, by name (a column a file lacks is NULL there; a type widened since
        // is cast to the newest).
        let schema =
            schema.ok_or_else(|| Error::from(ErrorKind::Internal("no rows read".into())))?;
        let parts = parts
            .into_iter()
            .map(|part| as_schema(&part, &schema))
            .collect::<Result<Vec<_>>>()?;
        arrow_select::concat::concat_batches(&schema, &parts).map_err(|e| {
            Error::from(ErrorKind::InvalidInput(format!(
                "the lake table's rows: {e}"
            )))
        })
    })
    .await
    .map_err(|e| Error::from(ErrorKind::Internal(format!("reading rows: {e}"))))?
}

/// `part` with `schema`'s columns, by name: a column it lacks NULL, a narrower type (a file
/// written before the column was widened) cast.
///
/// # Errors
/// A column whose values the newer type cannot hold (named).
pub(crate) fn as_schema(part: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match part.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow_cast::cast(c.as_ref(), f.data_type()).map_err(|e| {
                Error::from(ErrorKind::InvalidInput(format!(
                    "column {:?} of the lake table's older files ({}) as {}: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )))
            }),
            None => Ok(arrow_array::new_null_array(f.data_type(), part.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("taking rows: {e}"))))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, Int64Array, StringArray, StructArray, UInt64Array};
    use arrow_schema::{DataType, Field, Fields, Schema};

    use super::*;

    /// One change: `(op, id, big, old id, big unsent)`.
    type Row<'a> = (&'a str, i64, Option<&'a str>, Option<i64>, bool);

    /// A change batch of a table (id bigint key, big text) as the stream makes it.
    fn changes(rows: &[Row<'_>]) -> RecordBatch {
        let table = Fields::from(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("big", DataType::Utf8, true),
        ]);
        let mut unchanged = ListBuilder::new(StringBuilder::new());
        for r in rows {
            if r.4 {
                unchanged.values().append_value("big");
                unchanged.append(true);
            } else {
                unchanged.append_null();
            }
        }
        let unchanged = unchanged.finish();
        let old = StructArray::try_new(
            table.clone(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
            ],
            Some(
                rows.iter()
                    .map(|r| r.3.is_some())
                    .collect::<Vec<_>>()
                    .into(),
            ),
        )
        .unwrap();
        let n = rows.len() as u64;
        let mut fields: Vec<Field> = table.iter().map(|f| f.as_ref().clone()).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(UInt64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(UInt64Array::from(vec![100; rows.len()])),
            Arc::new(UInt64Array::from(vec![0; rows.len()])),
            Arc::new(UInt64Array::from(vec![0; rows.len()])),
            Arc::new(unchanged),
            Arc::new(old),
        ];
        for (name, c) in [
            (OP_COLUMN, &columns[2]),
            ("_lsn", &columns[3]),
            ("_commit_lsn", &columns[4]),
            ("_commit_time", &columns[5]),
            ("_xid", &columns[6]),
            (UNCHANGED_COLUMN, &columns[7]),
            (OLD_COLUMN, &columns[8]),
        ] {
            fields.push(Field::new(name, c.data_type().clone(), true));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    /// A table of file 7 holding ids 1, 2, 3 at positions 0, 1, 2.
    fn table() -> Live {
        let mut live = Live {
            key: vec!["id".into()],
            ..Live::default()
        };
        live.files.insert(
            7,
            LiveFile {
                constants: Vec::new(),
                id: 7,
                location: Location::parse("/nowhere/f.parquet", &Default::default()).unwrap(),
                rows: 3,
                bytes: 0,
                deleted: Default::default(),
            },
        );
        for (pos, id) in [1i64, 2, 3].iter().enumerate() {
            let ids = Int64Array::from(vec![*id]);
            let (body, _) = KeyEncoder::encode_all(&[&ids as &dyn Array]).unwrap();
            live.index.insert(Key::new(&body), (7, pos as u64));
        }
        live
    }

    /// The table's rows at positions asked for: `big` is "old-<position>".
    async fn rows_before(asked: Vec<(LiveFile, Vec<u64>)>) -> Result<RecordBatch> {
        let mut ids = Vec::new();
        let mut bigs = Vec::new();
        for (_, positions) in asked {
            for p in positions {
                ids.push(p as i64 + 1);
                bigs.push(format!("old-{p}"));
            }
        }
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("big", DataType::Utf8, true),
        ]);
        Ok(RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(bigs)),
            ],
        )
        .unwrap())
    }

    fn column(batch: &RecordBatch, name: &str) -> Vec<String> {
        let c = batch.column_by_name(name).unwrap();
        let c = arrow_array::cast::AsArray::as_string_opt::<i32>(c.as_ref());
        match c {
            Some(s) => s.iter().map(|v| v.unwrap_or("NULL").to_owned()).collect(),
            None => arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(
                batch.column_by_name(name).unwrap().as_ref(),
            )
            .values()
            .iter()
            .map(i64::to_string)
            .collect(),
        }
    }

    #[tokio::test]
    async fn updates_replace_rows_and_take_unsent_values_from_the_table() {
        let live = table();
        let batch = changes(&[
            // big unsent: the table's value; the old row deleted.
            ("update", 2, None, None, true),
            // A new key, then changed again without big: big from the change before.
            ("insert", 9, Some("nine"), None, false),
            ("update", 9, None, None, true),
            // Inserted and deleted between two commits: nothing.
            ("insert", 10, Some("x"), None, false),
            ("delete", 10, None, None, false),
            // A key change: 3 goes, 30 comes with 3's big.
            ("update", 30, None, Some(3), true),
        ]);
        let plan = live.plan(&batch, 2, "t", rows_before).await.unwrap();
        assert!(!plan.truncate);
        assert_eq!(plan.deletes[&7], [1, 2]);
        assert_eq!(plan.gone.len(), 2);
        let rows = plan.rows.unwrap();
        assert_eq!(column(&rows, "id"), ["2", "9", "30"]);
        assert_eq!(column(&rows, "big"), ["old-1", "nine", "old-2"]);
        assert_eq!(plan.changes, 6);
    }

    #[tokio::test]
    async fn a_truncate_empties_the_table_first() {
        let live = table();
        let batch = changes(&[
            ("delete", 1, None, None, false),
            ("truncate", 0, None, None, false),
            ("insert", 1, Some("again"), None, false),
        ]);
        let plan = live.plan(&batch, 2, "t", rows_before).await.unwrap();
        assert!(plan.truncate && plan.deletes.is_empty());
        assert_eq!(column(plan.rows.as_ref().unwrap(), "big"), ["again"]);
        // After a truncate, an unsent value has nowhere to come from.
        let batch = changes(&[
            ("truncate", 0, None, None, false),
            ("update", 2, None, None, true),
        ]);
        let e = live.plan(&batch, 2, "t", rows_before).await.unwrap_err();
        assert!(e.to_string().contains("not in step"), "{e}");
    }

    #[tokio::test]
    async fn the_index_follows_each_commit() {
        let mut live = table();
        let batch = changes(&[
            ("delete", 1, None, None, false),
            ("delete", 2, None, None, false),
        ]);
        let plan = live.plan(&batch, 2, "t", rows_before).await.unwrap();
        live.committed(&plan);
        assert_eq!(live.index.len(), 1);
        assert_eq!(live.files[&7].deleted, [0, 1]);
        // The last row of the file goes: the file goes with it.
        let batch = changes(&[("delete", 3, None, None, false)]);
        let plan = live.plan(&batch, 2, "t", rows_before).await.unwrap();
        live.committed(&plan);
        assert!(live.index.is_empty() && live.files.is_empty());
        // A change without its key is refused, naming the key.
        let batch = changes(&[("delete", 0, None, None, false)]);
        let nulled = RecordBatch::try_new(
            batch.schema(),
            std::iter::once(Arc::new(Int64Array::from(vec![None::<i64>])) as ArrayRef)
                .chain(batch.columns()[1..].iter().cloned())
                .collect(),
        )
        .unwrap();
        let e = live.plan(&nulled, 2, "t", rows_before).await.unwrap_err();
        assert!(e.to_string().contains("replica identity"), "{e}");
    }

    #[tokio::test]
    async fn copy_on_write_ends_the_files_that_lose_rows_and_forgets_their_places() {
        let mut live = table();
        live.files.get_mut(&7).unwrap().deleted = vec![2].into();
        let batch = changes(&[
            ("delete", 2, None, None, false),
            ("insert", 9, Some("nine"), None, false),
        ]);
        let plan = live.plan(&batch, 2, "t", rows_before).await.unwrap();
        assert_eq!(plan.deletes[&7], [1]);
        let plan = plan.copy_on_write(&live, &batch, 2).unwrap();
        // No deleted positions: file 7 ends, its rows left (the older delete too) rewritten.
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.ended, [7]);
        assert_eq!(
            (plan.deleted(), plan.inserted(), plan.rewritten()),
            (1, 1, 1)
        );
        let files = plan.file_rows.as_ref().unwrap();
        assert_eq!(files.files[0].deleted, [1, 2]);
        let names: Vec<&str> = files
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "big"]);
        // Written with the file's rows first: where each row lands is read back.
        assert!(plan.rows_alone().is_none());
        live.committed(&plan);
        assert!(
            live.files.is_empty() && live.index.is_empty(),
            "{:?}",
            live.index
        );
        // A file whose every row goes ends with nothing to write.
        let mut live = table();
        let batch = changes(&[
            ("delete", 1, None, None, false),
            ("delete", 2, None, None, false),
            ("delete", 3, None, None, false),
        ]);
        let plan = live.plan(&batch, 2, "t", rows_before).await.unwrap();
        let plan = plan.copy_on_write(&live, &batch, 2).unwrap();
        assert!(plan.file_rows.is_none() && !plan.adds_rows() && plan.ended == [7]);
        live.committed(&plan);
        assert!(live.files.is_empty() && live.index.is_empty());
    }

    #[test]
    fn forgetting_a_file_numbers_identical_rows_again() {
        let mut live = Live {
            key: vec!["a".into()],
            whole: true,
            ..Live::default()
        };
        let (d, e) = ([1u8; 16], [2u8; 16]);
        for at in [(1, 0), (2, 0), (1, 1)] {
            whole::insert(&mut live.index, d, at);
        }
        whole::insert(&mut live.index, e, (1, 2));
        whole::insert(&mut live.index, e, (3, 0));
        assert_eq!(
            (whole::count(&live.index, &d), whole::count(&live.index, &e)),
            (3, 2)
        );
        live.forget(&[1]);
        // One of d is left (file 2's), one of e (file 3's), each numbered 0.
        assert_eq!(
            (whole::count(&live.index, &d), whole::count(&live.index, &e)),
            (1, 1)
        );
        assert_eq!(live.index.get(whole::key(&d, 0).as_slice()), Some(&(2, 0)));
        assert_eq!(live.index.get(whole::key(&e, 0).as_slice()), Some(&(3, 0)));
        assert_eq!(live.index.len(), 2);
        assert!(live.index.dups.is_empty());
        // A new identical row is the second of its digest.
        whole::insert(&mut live.index, d, (4, 0));
        assert_eq!(whole::count(&live.index, &d), 2);
    }
}
