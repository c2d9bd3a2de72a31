//! Where each key's row is in a mirrored table, found for one commit's keys at a cost that
//! follows those keys, not the table.
//!
//! The entries added since the index was last persisted are held in memory, up to their
//! share of the budget; past it they are written out as a run. Persisted runs live with the
//! table, under [`HOME`]: each is sorted by key and cut into segments of bounded size, each
//! segment a file of small blocks with a footer naming each block's first key, so that
//! finding a key reads the footer once and then one block. A manifest (`index-<n>.json`, the
//! highest `n` wins) names the runs and the table's data files they cover. After each
//! commit the new entries become a run; runs of like size are merged (entries of rows no
//! longer live dropped), so a table of `N` rows keeps about `log2(N)` runs.
//!
//! Nothing persisted is trusted. An entry says a key's row is at a position of a data file;
//! it counts only while that file is one of the table's and that position is not deleted,
//! so an index older than the table (another writer compacted or expired it, a kill came
//! between a commit and its index) is never wrong, only incomplete: a live file the manifest
//! does not cover is read for its keys when the table is opened. A manifest or a run that
//! cannot be read (removed as an orphan by another engine's maintenance, cut short) is
//! dropped, and the index is built again from the table's files. Each block carries a
//! checksum; a block that does not match it fails the lookup rather than delete a row that
//! is not the key's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use pgarrow::io::Location;
use pgarrow::{Error, ErrorKind, Result};
use pgarrow_changes::net::KeyHashing;
use serde::{Deserialize, Serialize};

use super::whole::{self, Digest, Secret};
use super::{At, Key, LiveFile, Positions};
use crate::cleanup::blocking;

/// The directory under a table's root that holds its index.
pub(crate) const HOME: &str = "_pgarrow_index";

const SEGMENT_MAGIC: &[u8; 8] = b"PGAXSEG1";
/// The bytes of a block, about (its last entry may pass it).
const BLOCK: usize = 2048;
/// The bytes of a segment, at most about: what one write holds in memory.
const SEGMENT: usize = 32 << 20;
/// The most entries held in memory under `memory` bytes: a hash table's buckets come in
/// powers of two, seven eighths of them used at most, each an entry and a control byte; and
/// writing them out sorts a reference to each. So the largest power of two of buckets whose
/// table and references fit, seven eighths of it: filled up to that, the table is never
/// resized past the budget.
///
/// Keys too long for an entry (`heap` bytes each, on average) are held apart: each then
/// takes those bytes more.
fn most_in_memory(memory: usize, heap: usize) -> usize {
    let buckets = (memory / (per_bucket() + heap * 7 / 8)).max(512);
    let buckets = match buckets.is_power_of_two() {
        true => buckets,
        false => buckets.next_power_of_two() / 2,
    };
    buckets / 8 * 7
}
/// The bytes of a hash table's bucket: its entry and control byte, and (seven eighths of the
/// time) a reference that sorts it.
fn per_bucket() -> usize {
    let bucket = std::mem::size_of::<(Key, At)>() + 1;
    let reference = std::mem::size_of::<Sorting<'_>>();
    bucket + reference * 7 / 8 + 1
}

/// An entry being sorted to be written out: its key's first eight bytes (zero-padded, read
/// big-endian) beside the reference, so that most comparisons read the sorting vector alone,
/// not the entries scattered over the hash table.
type Sorting<'m> = (u64, &'m Key, &'m At);

/// The key's first eight bytes, zero-padded, as a number that sorts as the keys do: where two
/// differ, the keys differ at that byte (or the shorter one ends there), and the keys sort the
/// same way; where they are equal, the keys' bytes decide.
fn prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// A run written: what the manifest says of it, and its segments.
type Written = (RunMeta, Vec<Location>);

/// Entries sorted by key, as a run holds them.
fn sort_fresh(fresh: &mut [(Key, At)]) {
    sort_on_two(fresh, |a, b| {
        let (a, b) = (a.0.as_slice(), b.0.as_slice());
        prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
    });
}

/// Lists shorter than this are sorted on one thread.
const SORT_ON_TWO_FROM: usize = 1 << 16;

/// `items` sorted by `order`; a long list on two threads when there are two cores: cut at its
/// middle element (those before it are not greater, those after not less), each half sorted
/// on a thread of its own.
fn sort_on_two<T: Send>(items: &mut [T], order: impl Fn(&T, &T) -> std::cmp::Ordering + Sync) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if items.len() < SORT_ON_TWO_FROM || cores < 2 {
        items.sort_unstable_by(order);
        return;
    }
    let middle = items.len() / 2;
    items.select_nth_unstable_by(middle, &order);
    let (low, high) = items.split_at_mut(middle);
    let order = &order;
    std::thread::scope(|s| {
        s.spawn(move || low.sort_unstable_by(order));
        high.sort_unstable_by(order);
    });
}

/// Runs past this many are merged whatever their sizes.
const MOST_RUNS: usize = 12;

/// What the index did, for `--stats` and `--json`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    /// Entries held in memory now.
    pub memory_entries: u64,
    /// Their memory, about.
    pub memory_bytes: u64,
    /// The persisted index's bytes on disk.
    pub disk_bytes: u64,
    /// Entries in the persisted runs (rows deleted since included until a merge drops them).
    pub disk_entries: u64,
    /// Runs persisted.
    pub runs: u64,
    /// Bytes of the persisted index read to find keys' rows.
    pub read_bytes: u64,
    /// Data files read for their keys (the manifest did not cover them).
    pub files_read: u64,
    /// Their bytes.
    pub files_read_bytes: u64,
    /// Times the entries in memory were written out as a run past the budget.
    pub spills: u64,
    /// Runs merged.
    pub merges: u64,
    /// Keys looked up.
    pub lookups: u64,
}

impl IndexStats {
    /// Both summed (the indexes of two tables).
    #[must_use]
    pub fn plus(self, o: IndexStats) -> IndexStats {
        IndexStats {
            memory_entries: self.memory_entries + o.memory_entries,
            memory_bytes: self.memory_bytes + o.memory_bytes,
            disk_bytes: self.disk_bytes + o.disk_bytes,
            disk_entries: self.disk_entries + o.disk_entries,
            runs: self.runs + o.runs,
            read_bytes: self.read_bytes + o.read_bytes,
            files_read: self.files_read + o.files_read,
            files_read_bytes: self.files_read_bytes + o.files_read_bytes,
            spills: self.spills + o.spills,
            merges: self.merges + o.merges,
            lookups: self.lookups + o.lookups,
        }
    }
}

/// The manifest: the runs, oldest first, and the data files they cover.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    /// The key's columns: an index of another key is not this one's.
    key: Vec<String>,
    /// Rows told apart by all their values (a table without a key): its keys are digests of
    /// them (see [`whole`](super::whole)).
    #[serde(default)]
    whole: bool,
    /// With `whole`: the secret key of the digests, as hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    secret: String,
    /// The next file number: numbers are never given twice, so that an entry of a file long
    /// gone never names a file of today.
    next: u32,
    /// The data files the runs cover (every row of each has its entry), by number.
    files: BTreeMap<u32, String>,
    runs: Vec<RunMeta>,
}

impl Manifest {
    /// The secret of its digests, when it has one.
    fn secret(&self) -> Option<Secret> {
        unhex(&self.secret)?.as_ref().try_into().ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunMeta {
    entries: u64,
    /// The file numbers its entries name.
    files: Vec<u32>,
    segments: Vec<SegmentMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SegmentMeta {
    name: String,
    bytes: u64,
    /// Where its footer begins, and the footer's CRC-32.
    footer: u64,
    footer_crc: u32,
    entries: u64,
    /// Its first and last keys, as hex.
    first: String,
    last: String,
}

/// A segment's blocks, read from its footer once: each block's first key (one after another
/// in `firsts`, each ending at its `ends`) and its place (offset, length, CRC-32).
#[derive(Debug)]
struct Blocks {
    firsts: Vec<u8>,
    ends: Vec<u32>,
    places: Vec<(u64, u32, u32)>,
}

/// A segment's footer: held with the segment, or read for one use (past the budget that
/// footers held may take).
enum Footer<'a> {
    Held(&'a Blocks),
    Read(Blocks),
}

impl std::ops::Deref for Footer<'_> {
    type Target = Blocks;

    fn deref(&self) -> &Blocks {
        match self {
            Footer::Held(b) => b,
            Footer::Read(b) => b,
        }
    }
}

/// The memory the footers held with their segments may take, and what they take: past it a
/// footer is read for each use and let go (a table of a billion rows has some 200 MiB of
/// them).
#[derive(Debug)]
struct Footers {
    most: usize,
    held: std::sync::atomic::AtomicUsize,
}

impl Footers {
    fn new(memory: usize) -> Arc<Footers> {
        Arc::new(Footers {
            most: memory / 8,
            held: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn give_back(&self, bytes: usize) {
        self.held
            .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `bytes` more may be held (then counted).
    fn take(&self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.held
            .fetch_update(Relaxed, Relaxed, |held| {
                (held + bytes <= self.most).then_some(held + bytes)
            })
            .is_ok()
    }
}

/// Where a segment's footer is held once read, counted against `footers` until let go.
#[derive(Debug)]
struct FooterCell {
    cell: std::sync::OnceLock<Blocks>,
    footers: Arc<Footers>,
}

impl Drop for FooterCell {
    fn drop(&mut self) {
        if let Some(b) = self.cell.get() {
            self.footers.give_back(b.bytes());
        }
    }
}

impl Blocks {
    /// Its memory, about.
    fn bytes(&self) -> usize {
        self.firsts.len() + self.ends.len() * 4 + self.places.len() * 16
    }

    /// The first key of block `b`.
    fn first(&self, b: usize) -> &[u8] {
        let start = match b {
            0 => 0,
            _ => self.ends[b - 1] as usize,
        };
        &self.firsts[start..self.ends[b] as usize]
    }

    /// The first block at or past `from` whose first key `before` is not true of (it is of
    /// the blocks before it, in their order).
    fn partition_point(&self, from: usize, before: impl Fn(&[u8]) -> bool) -> usize {
        let (mut lo, mut hi) = (from.min(self.ends.len()), self.ends.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match before(self.first(mid)) {
                true => lo = mid + 1,
                false => hi = mid,
            }
        }
        lo
    }
}

/// A persisted run as held: its manifest entry and its segments' footers once read.
#[derive(Debug, Clone)]
struct Run {
    meta: RunMeta,
    /// Per segment: its first and last key, and its blocks once read.
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
struct Segment {
    meta: SegmentMeta,
    first: Box<[u8]>,
    last: Box<[u8]>,
    blocks: Arc<FooterCell>,
}

/// The index's place with the table and the memory it may take.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    home: Location,
    /// The number of the manifest in use (0: none yet).
    seq: u64,
    manifest: Manifest,
    runs: Vec<Run>,
    /// File numbers by location, for files numbered this run or by the manifest.
    numbers: HashMap<String, u32>,
    /// Entries held in memory before they are written out.
    most_in_memory: usize,
    /// The memory they may take, keys longer than an entry holds included.
    memory: usize,
    /// What the runs' footers held take.
    footers: Arc<Footers>,
}

/// Where the index lives and how much memory it may take.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// The directory that holds it, with the table (`None`: memory only).
    pub(crate) home: Option<Location>,
    /// The memory its entries in memory may take.
    pub(crate) memory: usize,
}

impl Place {
    /// An index held in memory only.
    pub(crate) fn memory() -> Place {
        Place {
            home: None,
            memory: usize::MAX,
        }
    }
}

/// The key index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Entries not yet in a run, by key.
    mem: HashMap<Key, At, KeyHashing>,
    /// Entries of the files a commit wrote, while [`fresh`](Self::begin_fresh): in the order
    /// they came, to be sorted and written out as a run. A hash table would take each at a
    /// random place of its memory only to have them sorted out of it moments later.
    fresh: Vec<(Key, At)>,
    /// Whether entries go to `fresh` (between [`begin_fresh`](Self::begin_fresh) and
    /// [`end_fresh`](Self::end_fresh)).
    freshening: bool,
    /// Rows told apart by all their values: keys in memory are a digest and an ordinal, and
    /// a run holds the digest alone (see [`whole`]).
    whole: bool,
    /// The key of the digests (with `whole`).
    secret: Secret,
    /// With `whole`: the rows in memory of each digest held there more than once.
    pub(crate) dups: HashMap<Digest, u32>,
    /// The bytes the keys in memory hold on the heap (those longer than an entry holds: a
    /// uuid as text, a long text key), counted against the budget.
    heap: usize,
    store: Option<Store>,
    stats: IndexStats,
    /// Bytes read and keys looked up by [`locate`](Self::locate), which takes the index as
    /// it is.
    read: std::sync::atomic::AtomicU64,
    lookups: std::sync::atomic::AtomicU64,
}

/// A block's CRC-32.
fn crc(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Box<[u8]>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// The index is damaged (a block that does not match its checksum, an entry cut short): a
/// conflict, so that the table is read again, and its index built again from its files once
/// [`Index::locate`] removed the manifests.
fn damaged(what: impl std::fmt::Display) -> Error {
    Error::from(ErrorKind::Conflict(format!(
        "the mirror's key index is damaged ({what}): it is built again from the table's files"
    )))
}

/// The entry of `block` at `at` (key, file number, position), `at` moved past it.
fn entry<'b>(block: &'b [u8], at: &mut usize) -> Result<(&'b [u8], u32, u64)> {
    let bad = || damaged("a block's entry is cut short");
    let len = usize::try_from(get_varint(block, at).ok_or_else(bad)?).map_err(|_| bad())?;
    let end = at.checked_add(len).ok_or_else(bad)?;
    let key = block.get(*at..end).ok_or_else(bad)?;
    *at = end;
    let file = u32::try_from(get_varint(block, at).ok_or_else(bad)?).map_err(|_| bad())?;
    let pos = get_varint(block, at).ok_or_else(bad)?;
    Ok((key, file, pos))
}

/// Writes sorted entries as segments under `home`, each at most about [`SEGMENT`] bytes.
struct SegmentWriter {
    home: Location,
    prefix: String,
    body: Vec<u8>,
    block: Vec<u8>,
    block_first: Option<Vec<u8>>,
    footer: Vec<(Vec<u8>, u64, u32, u32)>,
    first: Option<Vec<u8>>,
    last: Vec<u8>,
    entries: u64,
    files: HashSet<u32>,
    done: Vec<SegmentMeta>,
    total: u64,
    written: Vec<Location>,
}

impl SegmentWriter {
    fn new(home: &Location) -> SegmentWriter {
        let prefix = format!("run-{}", uuid::Uuid::new_v4().simple());
        SegmentWriter {
            home: home.clone(),
            prefix,
            body: SEGMENT_MAGIC.to_vec(),
            block: Vec::with_capacity(BLOCK + 64),
            block_first: None,
            footer: Vec::new(),
            first: None,
            last: Vec::new(),
            entries: 0,
            files: HashSet::new(),
            done: Vec::new(),
            total: 0,
            written: Vec::new(),
        }
    }

    fn push(&mut self, key: &[u8], file: u32, pos: u64) -> Result<()> {
        if self.block_first.is_none() {
            self.block_first = Some(key.to_vec());
        }
        if self.first.is_none() {
            self.first = Some(key.to_vec());
        }
        put_varint(&mut self.block, key.len() as u64);
        self.block.extend_from_slice(key);
        put_varint(&mut self.block, u64::from(file));
        put_varint(&mut self.block, pos);
        self.last.clear();
        self.last.extend_from_slice(key);
        self.entries += 1;
        self.total += 1;
        self.files.insert(file);
        if self.block.len() >= BLOCK {
            self.end_block();
            if self.body.len() >= SEGMENT {
                self.end_segment()?;
            }
        }
        Ok(())
    }

    fn end_block(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let first = self.block_first.take().unwrap_or_default();
        let crc = crc(&self.block);
        self.footer
            .push((first, self.body.len() as u64, self.block.len() as u32, crc));
        self.body.extend_from_slice(&self.block);
        self.block.clear();
    }

    fn end_segment(&mut self) -> Result<()> {
        self.end_block();
        if self.entries == 0 {
            return Ok(());
        }
        let footer = self.body.len() as u64;
        put_varint(&mut self.body, self.footer.len() as u64);
        for (first, offset, len, crc) in self.footer.drain(..) {
            put_varint(&mut self.body, first.len() as u64);
            self.body.extend_from_slice(&first);
            self.body.extend_from_slice(&offset.to_le_bytes());
            self.body.extend_from_slice(&len.to_le_bytes());
            self.body.extend_from_slice(&crc.to_le_bytes());
        }
        let footer_crc = crc(&self.body[footer as usize..]);
        let name = format!("{}-{:04}.seg", self.prefix, self.done.len());
        let at = self.home.join(&name);
        at.write_atomically(&self.body)?;
        self.written.push(at);
        self.done.push(SegmentMeta {
            name,
            bytes: self.body.len() as u64,
            footer,
            footer_crc,
            entries: self.entries,
            first: hex(self.first.as_deref().unwrap_or_default()),
            last: hex(&self.last),
        });
        self.body.clear();
        self.body.extend_from_slice(SEGMENT_MAGIC);
        self.first = None;
        self.entries = 0;
        Ok(())
    }

    /// The run written (`None`: no entry).
    fn finish(mut self) -> Result<Option<(RunMeta, Vec<Location>)>> {
        self.end_segment()?;
        if self.done.is_empty() {
            return Ok(None);
        }
        let mut files: Vec<u32> = self.files.into_iter().collect();
        files.sort_unstable();
        Ok(Some((
            RunMeta {
                entries: self.total,
                files,
                segments: self.done,
            },
            self.written,
        )))
    }
}

impl Segment {
    fn of(meta: SegmentMeta, footers: &Arc<Footers>) -> Result<Segment> {
        let first = unhex(&meta.first).ok_or_else(|| damaged("a segment's first key"))?;
        let last = unhex(&meta.last).ok_or_else(|| damaged("a segment's last key"))?;
        Ok(Segment {
            meta,
            first,
            last,
            blocks: Arc::new(FooterCell {
                cell: std::sync::OnceLock::new(),
                footers: footers.clone(),
            }),
        })
    }

    /// Its blocks: its footer, read (counted in `read`) the first time and held while
    /// `footers` allow, else read for this use.
    fn footer(&self, home: &Location, read: &mut u64) -> Result<Footer<'_>> {
        if let Some(b) = self.blocks.cell.get() {
            return Ok(Footer::Held(b));
        }
        let at = home.join(&self.meta.name);
        let bytes = at
            .read_ranges(std::slice::from_ref(&(self.meta.footer..self.meta.bytes)))?
            .pop()
            .unwrap_or_default();
        *read += bytes.len() as u64;
        let bad = || damaged(format!("the footer of {at}"));
        if crc(&bytes) != self.meta.footer_crc {
            return Err(damaged(format!(
                "the footer of {at} does not match its checksum"
            )));
        }
        let mut p = 0;
        let n = get_varint(&bytes, &mut p).ok_or_else(bad)?;
        // A block's footer entry takes 17 bytes at least.
        let most = bytes.len() / 17;
        let mut places = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(most));
        let mut ends = Vec::with_capacity(places.capacity());
        let mut firsts = Vec::with_capacity(bytes.len());
        for _ in 0..n {
            let len =
                usize::try_from(get_varint(&bytes, &mut p).ok_or_else(bad)?).map_err(|_| bad())?;
            let end = p.checked_add(len).ok_or_else(bad)?;
            firsts.extend_from_slice(bytes.get(p..end).ok_or_else(bad)?);
            ends.push(u32::try_from(firsts.len()).map_err(|_| bad())?);
            p = end;
            let fixed = bytes.get(p..p + 16).ok_or_else(bad)?;
            p += 16;
            let word = |i: usize, n: usize| -> u64 {
                let mut b = [0u8; 8];
                b[..n].copy_from_slice(&fixed[i..i + n]);
                u64::from_le_bytes(b)
            };
            places.push((word(0, 8), word(8, 4) as u32, word(12, 4) as u32));
        }
        let blocks = Blocks {
            firsts,
            ends,
            places,
        };
        if !self.blocks.footers.take(blocks.bytes()) {
            return Ok(Footer::Read(blocks));
        }
        if let Err(lost) = self.blocks.cell.set(blocks) {
            // Another thread held it first.
            self.blocks.footers.give_back(lost.bytes());
        }
        self.blocks.cell.get().map(Footer::Held).ok_or_else(bad)
    }

    /// The blocks `which`, read at once into `buf` (counted in `read`), each checked against
    /// its checksum: where each is in `buf`.
    fn read_blocks_into(
        &self,
        home: &Location,
        blocks: &Blocks,
        which: &[usize],
        buf: &mut Vec<u8>,
        read: &mut u64,
    ) -> Result<Vec<std::ops::Range<usize>>> {
        let ranges: Vec<_> = which
            .iter()
            .map(|&b| {
                let (offset, len, _) = blocks.places[b];
                offset..offset + u64::from(len)
            })
            .collect();
        let at = home.join(&self.meta.name);
        at.read_ranges_into(&ranges, buf)?;
        *read += buf.len() as u64;
        let mut start = 0;
        let mut out = Vec::with_capacity(which.len());
        for &b in which {
            let end = start + blocks.places[b].1 as usize;
            let bytes = buf
                .get(start..end)
                .ok_or_else(|| damaged(format!("{at} cut short")))?;
            if crc(bytes) != blocks.places[b].2 {
                return Err(damaged(format!(
                    "block {b} of {at} does not match its checksum"
                )));
            }
            out.push(start..end);
            start = end;
        }
        Ok(out)
    }

    /// The blocks `which`, read at once (counted in `read`), each checked against its
    /// checksum: each a slice of one buffer.
    fn read_blocks(
        &self,
        home: &Location,
        blocks: &Blocks,
        which: &[usize],
        read: &mut u64,
    ) -> Result<Vec<Bytes>> {
        let mut buf = Vec::new();
        let ranges = self.read_blocks_into(home, blocks, which, &mut buf, read)?;
        let buf = Bytes::from(buf);
        Ok(ranges.into_iter().map(|r| buf.slice(r)).collect())
    }
}

impl Run {
    fn of(meta: RunMeta, footers: &Arc<Footers>) -> Result<Run> {
        let segments = meta
            .segments
            .iter()
            .cloned()
            .map(|m| Segment::of(m, footers))
            .collect::<Result<_>>()?;
        Ok(Run { meta, segments })
    }

    fn bytes(&self) -> u64 {
        self.meta.segments.iter().map(|s| s.bytes).sum()
    }
}

/// The keys `keys` (sorted) asks of `runs` that are there: each key's entries, any run.
/// With `many`, a run may hold a key many times, its entries across blocks and segments:
/// each key's first entries only (newest run first), as many as its cap says. Blocking.
fn look_up(
    home: &Location,
    runs: &[Run],
    keys: &[Vec<u8>],
    many: Option<&[usize]>,
    read: &mut u64,
) -> Result<Vec<(usize, u32, u64)>> {
    let mut found = Vec::new();
    // With `many`: each key's entries found so far.
    let mut got = vec![0usize; many.map_or(0, <[usize]>::len)];
    let open = |got: &[usize], i: usize| many.is_none_or(|caps| got[i] < caps[i]);
    // The blocks of a batch, read into one buffer that serves every batch.
    let mut buf = Vec::new();
    for run in runs.iter().rev() {
        for segment in &run.segments {
            // The keys within the segment's range.
            let lo = keys.partition_point(|k| k.as_slice() < &*segment.first);
            let hi = keys.partition_point(|k| k.as_slice() <= &*segment.last);
            if lo >= hi {
                continue;
            }
            let blocks = segment.footer(home, read)?;
            // Each asked key's block: the last whose first key is at most the key; with
            // `many`, from the last whose first key is before it. The keys are in order, so
            // are their blocks: each searched for from the last one's.
            let mut wanted: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            let mut from = 0;
            for (i, k) in keys.iter().enumerate().take(hi).skip(lo) {
                if !open(&got, i) {
                    continue;
                }
                let k = k.as_slice();
                let end = blocks.partition_point(from, |f| f <= k);
                let start = match many {
                    Some(_) => blocks.partition_point(from, |f| f < k).saturating_sub(1),
                    None => end.saturating_sub(1),
                };
                from = start;
                for b in start..end {
                    wanted.entry(b).or_default().push(i);
                }
            }
            // A few blocks at a time (the memory of one batch serves the next), each
            // walked once beside the keys asked of it (both in order).
            let wanted: Vec<(usize, Vec<usize>)> = wanted.into_iter().collect();
            for batch in wanted.chunks(READ_BLOCKS) {
                // Blocks only keys that have all they may take ask of are not read.
                let batch: Vec<&(usize, Vec<usize>)> = batch
                    .iter()
                    .filter(|(_, asked)| asked.iter().any(|&i| open(&got, i)))
                    .collect();
                let which: Vec<usize> = batch.iter().map(|(b, _)| *b).collect();
                let ranges = segment.read_blocks_into(home, &blocks, &which, &mut buf, read)?;
                for ((_, asked), range) in batch.iter().zip(ranges) {
                    let bytes = &buf[range];
                    let mut asked = asked.iter().map(|&i| (i, keys[i].as_slice())).peekable();
                    let mut at = 0;
                    while at < bytes.len() && asked.peek().is_some() {
                        let (e, file, pos) = entry(bytes, &mut at)?;
                        while asked.next_if(|(_, k)| *k < e).is_some() {}
                        // Not taken: the next entries may hold the same key (`many`).
                        if let Some(&(i, k)) = asked.peek()
                            && k == e
                            && open(&got, i)
                        {
                            found.push((i, file, pos));
                            if let Some(n) = got.get_mut(i) {
                                *n += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(found)
}

/// The live files by location, and whether a position of one is live.
struct Liveness<'a> {
    files: &'a BTreeMap<i64, LiveFile>,
    by_location: HashMap<String, i64>,
}

impl<'a> Liveness<'a> {
    fn new(files: &'a BTreeMap<i64, LiveFile>) -> Liveness<'a> {
        Liveness {
            files,
            by_location: files
                .values()
                .map(|f| (f.location.to_string(), f.id))
                .collect(),
        }
    }

    /// The place of a row, when its file is the table's and the row not deleted.
    fn place(&self, location: &str, pos: u64) -> Option<At> {
        let id = *self.by_location.get(location)?;
        self.live((id, pos)).then_some((id, pos))
    }

    fn live(&self, (id, pos): At) -> bool {
        self.files
            .get(&id)
            .is_some_and(|f| pos < f.rows && !f.deleted.contains(pos))
    }
}

impl Store {
    /// The index under `home` for `key`: its manifest, when there is one of this key that
    /// reads; else an empty one (the next manifest numbered past any there).
    fn open(home: Location, key: &[String], whole: bool, memory: usize) -> Result<Store> {
        let listed: HashMap<String, u64> = home.list_names()?.into_iter().collect();
        let mut names: Vec<(u64, String)> = listed
            .keys()
            .filter_map(|name| {
                let n = name.strip_prefix("index-")?.strip_suffix(".json")?;
                Some((n.parse().ok()?, name.clone()))
            })
            .collect();
        names.sort();
        let newest = names.last().map_or(0, |(n, _)| *n);
        let most_in_memory = most_in_memory(memory, 0);
        let empty = |why: &str| {
            if newest > 0 {
                log::info!("the mirror's key index under {home} is built again: {why}");
            }
            Store {
                home: home.clone(),
                seq: newest,
                manifest: Manifest {
                    version: 1,
                    key: key.to_vec(),
                    whole,
                    secret: match whole {
                        true => hex(&whole::new_secret()),
                        false => String::new(),
                    },
                    ..Manifest::default()
                },
                runs: Vec::new(),
                numbers: HashMap::new(),
                most_in_memory,
                memory,
                footers: Footers::new(memory),
            }
        };
        let Some((seq, name)) = names.pop() else {
            return Ok(empty("none"));
        };
        let manifest: Manifest = match home
            .join(&name)
            .read()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => m,
            Err(e) => return Ok(empty(&format!("{name} does not read: {e}"))),
        };
        if manifest.version != 1 || manifest.key != key || manifest.whole != whole {
            return Ok(empty(&format!("{name} is of another key or version")));
        }
        if whole && manifest.secret().is_none() {
            return Ok(empty(&format!("{name} has no secret of its digests")));
        }
        // Every run there whole (another engine's maintenance may remove files it does not
        // know as orphans).
        let missing = manifest
            .runs
            .iter()
            .flat_map(|r| &r.segments)
            .find(|s| listed.get(&s.name) != Some(&s.bytes));
        if let Some(s) = missing {
            return Ok(empty(&format!(
                "its run {} is missing or cut short",
                s.name
            )));
        }
        let footers = Footers::new(memory);
        let runs = match manifest
            .runs
            .iter()
            .cloned()
            .map(|r| Run::of(r, &footers))
            .collect()
        {
            Ok(runs) => runs,
            Err(e) => return Ok(empty(&e.to_string())),
        };
        let numbers = manifest
            .files
            .iter()
            .map(|(n, l)| (l.clone(), *n))
            .collect();
        Ok(Store {
            home,
            seq,
            manifest,
            runs,
            numbers,
            most_in_memory,
            memory,
            footers,
        })
    }

    /// The number of the file at `location`, given now when it has none.
    fn number(&mut self, location: &str) -> u32 {
        if let Some(&n) = self.numbers.get(location) {
            return n;
        }
        let n = self.manifest.next;
        self.manifest.next += 1;
        self.numbers.insert(location.to_owned(), n);
        n
    }

    /// The location of file number `n`, when it is one this index knows.
    fn locations(&self) -> HashMap<u32, &str> {
        self.numbers.iter().map(|(l, n)| (*n, l.as_str())).collect()
    }
}

impl Index {
    /// An index in memory only.
    pub(crate) fn in_memory() -> Index {
        Index {
            secret: whole::new_secret(),
            ..Index::default()
        }
    }

    /// The index at `place` for a table of `key` whose files are `files`: the persisted one
    /// when it reads (see [`Store::open`]). Returns it and the files it does not cover, whose
    /// keys the caller reads in.
    ///
    /// # Errors
    /// The storage's, listing the index's directory.
    pub(crate) async fn open(
        place: &Place,
        key: &[String],
        whole: bool,
        files: &BTreeMap<i64, LiveFile>,
    ) -> Result<(Index, Vec<i64>)> {
        let Some(home) = place.home.clone() else {
            return Ok((Index::in_memory(), files.keys().copied().collect()));
        };
        let (key, memory) = (key.to_vec(), place.memory);
        let shown = home.to_string();
        let store = match blocking(move || Store::open(home, &key, whole, memory)).await {
            Ok(store) => store,
            // The index is a cache: a place that cannot be listed leaves it in memory.
            Err(e) => {
                log::warn!("the mirror's key index under {shown} is held in memory: {e}");
                return Ok((Index::in_memory(), files.keys().copied().collect()));
            }
        };
        let covered: HashSet<&str> = store.manifest.files.values().map(String::as_str).collect();
        let uncovered = files
            .values()
            .filter(|f| !covered.contains(f.location.to_string().as_str()))
            .map(|f| f.id)
            .collect();
        let mut index = Index {
            whole,
            secret: store.manifest.secret().unwrap_or_default(),
            store: Some(store),
            ..Index::default()
        };
        index.refresh_stats();
        Ok((index, uncovered))
    }

    /// The key of the table's digests (a table told apart by whole rows).
    pub(crate) fn secret(&self) -> Secret {
        self.secret
    }

    /// Whether it is persisted with the table.
    pub(crate) fn persisted(&self) -> bool {
        self.store.is_some()
    }

    /// What it did and holds.
    pub(crate) fn stats(&self) -> IndexStats {
        use std::sync::atomic::Ordering::Relaxed;
        IndexStats {
            read_bytes: self.stats.read_bytes + self.read.load(Relaxed),
            lookups: self.stats.lookups + self.lookups.load(Relaxed),
            ..self.stats
        }
    }

    fn refresh_stats(&mut self) {
        self.stats.memory_entries = (self.mem.len() + self.fresh.len()) as u64;
        // A table of this room has about 8/7 as many buckets, each an entry and a control byte.
        let bucket = std::mem::size_of::<(Key, At)>() + 1;
        let list = self.fresh.capacity() * std::mem::size_of::<(Key, At)>();
        self.stats.memory_bytes = (self.mem.capacity() / 7 * 8 * bucket + list + self.heap) as u64;
        if let Some(s) = &self.store {
            self.stats.runs = s.runs.len() as u64;
            self.stats.disk_bytes = s.runs.iter().map(Run::bytes).sum();
            self.stats.disk_entries = s.runs.iter().map(|r| r.meta.entries).sum();
        }
    }

    /// Counts a data file read for its keys.
    pub(crate) fn file_read(&mut self, bytes: u64) {
        self.stats.files_read += 1;
        self.stats.files_read_bytes += bytes;
    }

    /// The entry of `key` held in memory.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&At> {
        self.mem.get(key)
    }

    /// Holds `key` at `at` in memory; returns the place it held before there (while
    /// [`begin_fresh`](Self::begin_fresh) holds, `None`: [`end_fresh`](Self::end_fresh) finds
    /// a key twice).
    pub(crate) fn insert(&mut self, key: Key, at: At) -> Option<At> {
        let heap = key.heap_bytes();
        if self.freshening {
            self.heap += heap;
            self.fresh.push((key, at));
            return None;
        }
        let before = self.mem.insert(key, at);
        if before.is_none() {
            self.heap += heap;
        }
        before
    }

    /// Takes `key` out of memory (a row gone: a persisted entry of it no longer counts, its
    /// position deleted).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<At> {
        let (key, at) = self.mem.remove_entry(key)?;
        self.heap -= key.heap_bytes();
        Some(at)
    }

    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.mem.contains_key(key)
    }

    /// The entries in memory.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &At)> {
        self.mem.iter()
    }

    pub(crate) fn retain(&mut self, mut f: impl FnMut(&Key, &mut At) -> bool) {
        self.fresh.retain_mut(|(k, at)| f(k, at));
        self.mem.retain(f);
        self.count_heap();
    }

    /// The bytes of the table of entries in memory: its buckets (a power of two, seven eighths
    /// of them usable), each an entry and a control byte, and the references that sort them.
    fn table_bytes(&self) -> usize {
        let buckets = (self.mem.capacity() / 7 * 8).next_power_of_two();
        let bucket = std::mem::size_of::<(Key, At)>() + 1;
        buckets * bucket
            + self.mem.len() * std::mem::size_of::<Sorting<'_>>()
            + self.fresh.capacity() * std::mem::size_of::<(Key, At)>()
    }

    /// Counts the bytes the keys in memory hold on the heap again.
    fn count_heap(&mut self) {
        self.heap = self.mem.keys().map(Key::heap_bytes).sum::<usize>()
            + self
                .fresh
                .iter()
                .map(|(k, _)| k.heap_bytes())
                .sum::<usize>();
    }

    /// Entries in memory.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.mem.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.mem.is_empty()
            && self.fresh.is_empty()
            && self.store.as_ref().is_none_or(|s| s.runs.is_empty())
    }

    /// The entries of the files a commit wrote go into a list, not the hash table, until
    /// [`end_fresh`](Self::end_fresh): they are written out as a run right after (they are
    /// the new entries [`persist`](Self::persist) writes), and a list takes them in order, in
    /// less memory. Only for a persisted index of keys (not whole rows) holding nothing in
    /// memory: then the list holds every entry not in a run, and nothing looks one up before
    /// `end_fresh`. The hash table's room is given back meanwhile (the list takes its place
    /// in the budget).
    pub(crate) fn begin_fresh(&mut self) {
        if self.store.is_some() && !self.whole && self.mem.is_empty() && self.dups.is_empty() {
            self.mem = HashMap::default();
            self.freshening = true;
        }
    }

    /// The entries since [`begin_fresh`](Self::begin_fresh) that are not written out yet are
    /// sorted, as a run holds them; a key among them twice is returned with both its places.
    /// They are written out by the next [`persist`](Self::persist), and held in the hash
    /// table if that fails.
    pub(crate) fn end_fresh(&mut self) -> Option<(At, At)> {
        self.freshening = false;
        sort_fresh(&mut self.fresh);
        self.fresh
            .windows(2)
            .find(|w| w[0].0 == w[1].0)
            .map(|w| (w[0].1, w[1].1))
    }

    /// The entries of `fresh` held in the hash table instead (they were not written out).
    pub(crate) fn unfresh(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        let fresh = std::mem::take(&mut self.fresh);
        self.mem.reserve(fresh.len());
        self.mem.extend(fresh);
        self.count_heap();
    }

    /// Every entry goes (a truncate: no file of the table is left).
    pub(crate) fn clear(&mut self) {
        self.mem = HashMap::default();
        self.fresh = Vec::new();
        self.freshening = false;
        self.dups = HashMap::default();
        self.heap = 0;
    }

    /// Room made for `n` more entries in memory, within the budget.
    pub(crate) fn reserve(&mut self, n: usize) {
        let most = self.store.as_ref().map_or(usize::MAX, |s| s.most_in_memory);
        self.mem.reserve(n.min(most.saturating_sub(self.mem.len())));
    }

    /// Where the live rows of `keys` are: those in memory, then those in the persisted runs,
    /// each counted only while its file is one of `files` and its position not deleted.
    ///
    /// # Errors
    /// The storage's; a damaged run.
    pub(crate) async fn locate(
        &self,
        keys: impl Iterator<Item = &[u8]>,
        files: &BTreeMap<i64, LiveFile>,
    ) -> Result<HashMap<Key, At, KeyHashing>> {
        let liveness = Liveness::new(files);
        let mut found: HashMap<Key, At, KeyHashing> = HashMap::default();
        let mut asked: Vec<Vec<u8>> = Vec::new();
        for k in keys {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match self.mem.get(k) {
                Some(&at) if liveness.live(at) => {
                    found.insert(Key::new(k), at);
                }
                _ => asked.push(k.to_vec()),
            }
        }
        let Some(store) = &self.store else {
            return Ok(found);
        };
        let (entries, asked) = self.search(asked, None).await?;
        let locations = store.locations();
        for (i, file, pos) in entries {
            let k = asked[i].as_slice();
            if found.contains_key(k) {
                continue;
            }
            if let Some(at) = locations.get(&file).and_then(|l| liveness.place(l, pos)) {
                found.insert(Key::new(k), at);
            }
        }
        Ok(found)
    }

    /// Live places the persisted runs hold for each of `keys` (a table told apart by whole
    /// rows: a run holds a digest once a row), each place once, as many as the key's count
    /// asks when the runs hold that many (and a few more at most); counted only while its file
    /// is one of `files` and its position not deleted. Entries in memory are the caller's (see
    /// [`whole`]). A digest held by many identical rows costs what the rows asked of it do:
    /// the runs are read again, taking twice as many, only while the entries taken name rows
    /// no longer live.
    ///
    /// # Errors
    /// The storage's; a damaged run.
    pub(crate) async fn locate_all<'k>(
        &self,
        keys: impl Iterator<Item = (&'k [u8], usize)>,
        files: &BTreeMap<i64, LiveFile>,
    ) -> Result<HashMap<Key, Vec<At>>> {
        let mut asked: Vec<(Vec<u8>, usize)> = keys.map(|(k, n)| (k.to_vec(), n)).collect();
        self.lookups
            .fetch_add(asked.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut found: HashMap<Key, Vec<At>> = HashMap::new();
        let Some(store) = &self.store else {
            return Ok(found);
        };
        let (liveness, locations) = (Liveness::new(files), store.locations());
        // Each key asked for the live rows it needs, with room for as many taken that are not.
        let mut caps: HashMap<Vec<u8>, usize> =
            asked.iter().map(|(k, n)| (k.clone(), *n)).collect();
        while !asked.is_empty() {
            let want: Vec<Vec<u8>> = asked.iter().map(|(k, _)| k.clone()).collect();
            let (entries, keys) = self.search(want, Some(&caps)).await?;
            let mut taken = vec![0usize; keys.len()];
            let mut live: Vec<Vec<At>> = vec![Vec::new(); keys.len()];
            let mut seen: HashSet<At> = HashSet::new();
            for (i, file, pos) in entries {
                taken[i] += 1;
                if let Some(at) = locations.get(&file).and_then(|l| liveness.place(l, pos))
                    && seen.insert(at)
                {
                    live[i].push(at);
                }
            }
            let need: HashMap<&[u8], usize> =
                asked.iter().map(|(k, n)| (k.as_slice(), *n)).collect();
            let mut again = Vec::new();
            for (i, (k, places)) in keys.iter().zip(live).enumerate() {
                let cap = caps.get(k).copied().unwrap_or(0);
                let n = need.get(k.as_slice()).copied().unwrap_or(0);
                // Short of its rows with all it could take taken: there may be more.
                if places.len() < n && taken[i] >= cap {
                    caps.insert(k.clone(), cap.saturating_mul(2).max(1));
                    again.push((k.clone(), n));
                } else if !places.is_empty() {
                    found.insert(Key::new(k), places);
                }
            }
            asked = again;
        }
        Ok(found)
    }

    /// The entries the persisted runs hold of `asked` (see [`look_up`]), and the keys asked,
    /// sorted, that they name by index; the bytes read counted. A damaged run leaves no
    /// manifest to trust it again.
    async fn search(
        &self,
        mut asked: Vec<Vec<u8>>,
        many: Option<&HashMap<Vec<u8>, usize>>,
    ) -> Result<(Vec<(usize, u32, u64)>, Vec<Vec<u8>>)> {
        let Some(store) = &self.store else {
            return Ok((Vec::new(), asked));
        };
        if asked.is_empty() || store.runs.is_empty() {
            return Ok((Vec::new(), asked));
        }
        asked.sort_unstable();
        asked.dedup();
        let caps: Option<Vec<usize>> = many.map(|caps| {
            asked
                .iter()
                .map(|k| caps.get(k).copied().unwrap_or(0))
                .collect()
        });
        let (home, runs) = (store.home.clone(), store.runs.clone());
        let (entries, read, asked) = blocking(move || {
            let mut read = 0;
            match look_up(&home, &runs, &asked, caps.as_deref(), &mut read) {
                Ok(entries) => Ok((entries, read, asked)),
                Err(e) if e.is_conflict() => {
                    log::warn!("{e}");
                    for (name, _) in home.list_names()? {
                        if name.starts_with("index-") && name.ends_with(".json") {
                            home.join(&name).remove()?;
                        }
                    }
                    Err(e)
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        self.read
            .fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        Ok((entries, asked))
    }

    /// Writes the entries in memory out as a run when they are past the budget (between
    /// files of a load, a commit's written files).
    ///
    /// # Errors
    /// The storage's.
    pub(crate) async fn spill_if_full(&mut self, files: &BTreeMap<i64, LiveFile>) -> Result<()> {
        // Past the entries the table holds, or past the budget with the keys held apart.
        let held = self.mem.len() + self.fresh.len();
        let full = self.store.as_ref().is_some_and(|s| {
            held >= s.most_in_memory
                || (self.heap > 0 && self.table_bytes() + self.heap >= s.memory)
        });
        if full {
            let heap = self.heap / held.max(1);
            self.write_out(files, false).await?;
            self.stats.spills += 1;
            // Keys held apart: a table of fewer entries, so that they fit beside it.
            if let Some(s) = &mut self.store
                && heap > 0
            {
                let most = most_in_memory(s.memory, heap);
                if most < s.most_in_memory {
                    s.most_in_memory = most;
                    if !self.freshening {
                        self.mem = HashMap::with_capacity_and_hasher(most, KeyHashing::default());
                    }
                }
            }
        }
        Ok(())
    }

    /// The entries in memory written as a run (only live ones when `live_only`), memory
    /// emptied (its room kept for the next ones); on an error they are held in memory still.
    async fn write_out(&mut self, files: &BTreeMap<i64, LiveFile>, live_only: bool) -> Result<()> {
        if self.store.is_none() {
            return Ok(());
        }
        if !self.fresh.is_empty() && !self.mem.is_empty() {
            // Not met (fresh entries come only to an empty table): one place for them all.
            self.unfresh();
        }
        if live_only {
            let liveness = Liveness::new(files);
            self.mem.retain(|_, at| liveness.live(*at));
            self.fresh.retain(|(_, at)| liveness.live(*at));
            self.count_heap();
        }
        if self.mem.is_empty() && self.fresh.is_empty() {
            self.dups.clear();
            return Ok(());
        }
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        // The files' numbers, given before the entries go to be sorted where they are (no
        // copy of them: that would double the memory they take).
        let mut numbers: HashMap<i64, u32, KeyHashing> = HashMap::default();
        for at in self.mem.values().chain(self.fresh.iter().map(|(_, at)| at)) {
            if let std::collections::hash_map::Entry::Vacant(v) = numbers.entry(at.0)
                && let Some(file) = files.get(&at.0)
            {
                v.insert(store.number(&file.location.to_string()));
            }
        }
        let home = store.home.clone();
        // A digest is written alone, without the ordinal it has in memory.
        let written_len = match self.whole {
            true => whole::WRITTEN,
            false => usize::MAX,
        };
        let written = match self.fresh.is_empty() {
            true => self.write_out_mem(home, numbers, written_len).await?,
            false => {
                let mut fresh = std::mem::take(&mut self.fresh);
                let (written, fresh) = blocking(move || {
                    let written = (|| -> Result<_> {
                        sort_fresh(&mut fresh);
                        home.prepare_dir()?;
                        let mut w = SegmentWriter::new(&home);
                        for (k, (id, pos)) in &fresh {
                            if let Some(&n) = numbers.get(id) {
                                w.push(k.as_slice(), n, *pos)?;
                            }
                        }
                        w.finish()
                    })();
                    if written.is_ok() {
                        fresh.clear();
                    }
                    Ok((written, fresh))
                })
                .await?;
                self.fresh = fresh;
                if written.is_err() && !self.freshening {
                    // Held in the hash table, as entries not written out are.
                    self.unfresh();
                }
                if written.is_ok() && !self.freshening {
                    self.fresh = Vec::new();
                }
                written
            }
        };
        let written = written?;
        self.dups.clear();
        self.heap = 0;
        if let Some(meta) = written {
            let Some(store) = &mut self.store else {
                return Ok(());
            };
            store.runs.push(Run::of(meta.0, &store.footers)?);
        }
        self.refresh_stats();
        Ok(())
    }

    /// The hash table's entries written as a run, sorted where they are; emptied when that
    /// worked. The run written, or why not.
    async fn write_out_mem(
        &mut self,
        home: Location,
        numbers: HashMap<i64, u32, KeyHashing>,
        written_len: usize,
    ) -> Result<Result<Option<Written>>> {
        let mut mem = std::mem::take(&mut self.mem);
        let (written, mem) = blocking(move || {
            let written = (|| -> Result<_> {
                let mut entries: Vec<Sorting<'_>> = mem
                    .iter()
                    .filter(|(_, at)| numbers.contains_key(&at.0))
                    .map(|(k, at)| (prefix(k.as_slice()), k, at))
                    .collect();
                sort_on_two(&mut entries, |a, b| {
                    a.0.cmp(&b.0)
                        .then_with(|| a.1.as_slice().cmp(b.1.as_slice()))
                });
                home.prepare_dir()?;
                let mut w = SegmentWriter::new(&home);
                for (_, k, (id, pos)) in entries {
                    let k = k.as_slice();
                    w.push(&k[..k.len().min(written_len)], numbers[id], *pos)?;
                }
                w.finish()
            })();
            if written.is_ok() {
                mem.clear();
            }
            Ok((written, mem))
        })
        .await?;
        self.mem = mem;
        Ok(written)
    }

    /// Persists the index for the table whose files are now `files` (after a commit, or a
    /// load that read files in): the entries in memory as a run, runs of like size merged,
    /// runs of no live file dropped, and a new manifest naming them; the manifest before it
    /// and what only it named are removed after. A kill at any moment leaves one manifest
    /// or the other in use, each right for a table it covers (see the module's text).
    ///
    /// # Errors
    /// The storage's.
    pub(crate) async fn persist(&mut self, files: &BTreeMap<i64, LiveFile>) -> Result<()> {
        if self.store.is_none() {
            return Ok(());
        }
        self.write_out(files, true).await?;
        let Some(store) = &mut self.store else {
            return Ok(());
        };
        let liveness = Liveness::new(files);
        let live_numbers: HashSet<u32> = files
            .values()
            .filter_map(|f| store.numbers.get(&f.location.to_string()).copied())
            .collect();
        store
            .runs
            .retain(|r| r.meta.files.iter().any(|n| live_numbers.contains(n)));
        // The newest runs that together are at least half the run before them are merged,
        // at once (and every run, past the most): each entry is written again about log2 of
        // the table's size times, and equal runs spilled by a load are merged in one pass.
        loop {
            let n = store.runs.len();
            if n < 2 {
                break;
            }
            let mut k = 1;
            let mut sum = store.runs[n - 1].meta.entries;
            while k < n && sum * 2 >= store.runs[n - k - 1].meta.entries {
                sum += store.runs[n - k - 1].meta.entries;
                k += 1;
            }
            if n > MOST_RUNS {
                k = n;
            }
            if k < 2 {
                break;
            }
            let runs = store.runs[n - k..].to_vec();
            let locations: HashMap<u32, String> = store
                .locations()
                .into_iter()
                .map(|(n, l)| (n, l.to_owned()))
                .collect();
            let live: HashMap<u32, (u64, Positions)> = locations
                .iter()
                .filter_map(|(n, l)| {
                    let id = liveness.by_location.get(l)?;
                    let f = files.get(id)?;
                    Some((*n, (f.rows, f.deleted.clone())))
                })
                .collect();
            let home = store.home.clone();
            let (merged, read) = blocking(move || merge(&home, &runs, &live)).await?;
            self.stats.read_bytes += read;
            self.stats.merges += 1;
            store.runs.truncate(n - k);
            if let Some(meta) = merged {
                store.runs.push(Run::of(meta, &store.footers)?);
            }
        }
        // The manifest: every live file is covered now.
        store.manifest.files = files
            .values()
            .map(|f| {
                let l = f.location.to_string();
                (store.number(&l), l)
            })
            .collect();
        store.numbers = store
            .manifest
            .files
            .iter()
            .map(|(n, l)| (l.clone(), *n))
            .collect();
        store.manifest.runs = store.runs.iter().map(|r| r.meta.clone()).collect();
        let body = serde_json::to_vec(&store.manifest)
            .map_err(|e| Error::from(ErrorKind::Internal(format!("the index's manifest: {e}"))))?;
        let home = store.home.clone();
        let before = store.seq;
        let named: HashSet<String> = store
            .runs
            .iter()
            .flat_map(|r| r.meta.segments.iter().map(|s| s.name.clone()))
            .collect();
        let seq = blocking(move || {
            home.prepare_dir()?;
            let mut seq = before + 1;
            while !home
                .join(&format!("index-{seq:020}.json"))
                .create_new(&body)?
            {
                seq += 1;
            }
            // What the new manifest does not name: older manifests, runs merged away or of
            // attempts that never landed.
            for (name, _) in home.list_names()? {
                let old_manifest = name
                    .strip_prefix("index-")
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n < seq);
                let old_run = name.ends_with(".seg") && !named.contains(&name);
                if old_manifest || old_run {
                    home.join(&name).remove()?;
                }
            }
            Ok(seq)
        })
        .await?;
        store.seq = seq;
        self.refresh_stats();
        Ok(())
    }
}

/// Blocks a run's reader reads at once (a merge of many runs holds this many per run).
const READ_BLOCKS: usize = 64;

/// Reads a run's entries in order, a few blocks at a time, each decoded as it is taken.
struct RunReader<'a> {
    home: &'a Location,
    run: &'a Run,
    segment: usize,
    /// The segment's footer, once read.
    footer: Option<Footer<'a>>,
    block: usize,
    /// Blocks read and not yet taken; the first one's next entry at `at`.
    buffered: std::collections::VecDeque<Bytes>,
    at: usize,
    read: u64,
}

impl<'a> RunReader<'a> {
    fn new(home: &'a Location, run: &'a Run) -> Self {
        RunReader {
            home,
            run,
            segment: 0,
            footer: None,
            block: 0,
            buffered: Default::default(),
            at: 0,
            read: 0,
        }
    }

    fn next(&mut self) -> Result<Option<(Vec<u8>, u32, u64)>> {
        loop {
            if let Some(block) = self.buffered.front() {
                if self.at < block.len() {
                    let (k, f, p) = entry(block, &mut self.at)?;
                    return Ok(Some((k.to_vec(), f, p)));
                }
                self.buffered.pop_front();
                self.at = 0;
                continue;
            }
            let Some(segment) = self.run.segments.get(self.segment) else {
                return Ok(None);
            };
            let footer = match self.footer.take() {
                Some(f) => f,
                None => segment.footer(self.home, &mut self.read)?,
            };
            let count = footer.places.len();
            if self.block >= count {
                self.segment += 1;
                self.block = 0;
                continue;
            }
            let which: Vec<usize> = (self.block..count.min(self.block + READ_BLOCKS)).collect();
            self.block += which.len();
            let blocks = segment.read_blocks(self.home, &footer, &which, &mut self.read)?;
            self.buffered.extend(blocks);
            self.footer = Some(footer);
        }
    }
}

/// Two runs merged into one, their entries of rows no longer live (`live`: each live file's
/// rows and deleted positions, by number) dropped. Blocking; memory: a few blocks.
fn merge(
    home: &Location,
    runs: &[Run],
    live: &HashMap<u32, (u64, Positions)>,
) -> Result<(Option<RunMeta>, u64)> {
    let is_live = |file: u32, pos: u64| {
        live.get(&file)
            .is_some_and(|(rows, deleted)| pos < *rows && !deleted.contains(pos))
    };
    let mut readers: Vec<RunReader<'_>> = runs.iter().map(|r| RunReader::new(home, r)).collect();
    let mut heads = Vec::with_capacity(readers.len());
    for r in &mut readers {
        heads.push(r.next()?);
    }
    let mut w = SegmentWriter::new(home);
    while let Some(i) = (0..heads.len())
        .filter(|&i| heads[i].is_some())
        .min_by(|&a, &b| {
            heads[a]
                .as_ref()
                .map(|h| &h.0)
                .cmp(&heads[b].as_ref().map(|h| &h.0))
        })
    {
        if let Some((k, f, p)) = heads[i].take()
            && is_live(f, p)
        {
            w.push(&k, f, p)?;
        }
        heads[i] = readers[i].next()?;
    }
    let read = readers.iter().map(|r| r.read).sum();
    Ok((w.finish()?.map(|(m, _)| m), read))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(i64, &str, u64, Vec<u64>)]) -> BTreeMap<i64, LiveFile> {
        list.iter()
            .map(|(id, name, rows, deleted)| {
                (
                    *id,
                    LiveFile {
                        id: *id,
                        location: Location::parse(name, &Default::default()).unwrap(),
                        rows: *rows,
                        bytes: 0,
                        deleted: deleted.clone().into(),
                        constants: Vec::new(),
                    },
                )
            })
            .collect()
    }

    fn key(i: u64) -> Vec<u8> {
        let mut k = vec![1];
        k.extend_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn keys_sort_by_their_prefix_then_their_bytes_as_by_their_bytes_alone() {
        let mut rng = fastrand::Rng::with_seed(7);
        // Short keys, keys ending in zeros, keys equal for their first eight bytes.
        let mut keys: Vec<Vec<u8>> = (0..5000)
            .map(|_| {
                let len = rng.usize(0..14);
                (0..len)
                    .map(|_| rng.choice([0u8, 1, 2, 255]).unwrap())
                    .collect()
            })
            .collect();
        keys.push(vec![1]);
        keys.push(vec![1, 0]);
        keys.push(vec![1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut by_prefix: Vec<(u64, &[u8])> =
            keys.iter().map(|k| (prefix(k), k.as_slice())).collect();
        by_prefix.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut by_bytes: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        by_bytes.sort_unstable();
        assert_eq!(by_prefix.iter().map(|e| e.1).collect::<Vec<_>>(), by_bytes);
    }

    /// A long list sorted on two threads is the list sorted on one (duplicates, runs).
    #[test]
    fn a_long_list_sorted_on_two_threads_is_sorted() {
        let mut rng = fastrand::Rng::with_seed(11);
        for len in [
            SORT_ON_TWO_FROM - 1,
            SORT_ON_TWO_FROM,
            3 * SORT_ON_TWO_FROM + 7,
        ] {
            let mut items: Vec<(u64, u32)> = (0..len)
                .map(|i| (rng.u64(0..1_000), u32::try_from(i).unwrap()))
                .collect();
            items.extend((0..100).map(|i| (5, i)));
            let mut expected = items.clone();
            expected.sort_unstable_by_key(|e| e.0);
            sort_on_two(&mut items, |a, b| a.0.cmp(&b.0));
            assert_eq!(
                items.iter().map(|e| e.0).collect::<Vec<_>>(),
                expected.iter().map(|e| e.0).collect::<Vec<_>>()
            );
            let mut seen: Vec<u32> = items.iter().map(|e| e.1).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), len.max(100), "every item once");
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut at = 0;
            assert_eq!(get_varint(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        assert_eq!(get_varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn entries_held_in_memory_fit_their_budget_with_the_references_that_sort_them() {
        let bucket = std::mem::size_of::<(Key, At)>() + 1;
        for memory in [64 << 10, 1 << 20, 3 << 20, 64 << 20, 100_000_000] {
            let most = most_in_memory(memory, 0);
            let mut map: HashMap<Key, At, KeyHashing> = HashMap::default();
            map.reserve(most);
            let room = map.capacity();
            for i in 0..most as u64 {
                map.insert(Key::new(&key(i)), (0, i));
            }
            assert_eq!(map.capacity(), room, "{memory}: filled without a resize");
            let buckets = (room + 1).next_power_of_two();
            let taken = buckets * bucket + most * std::mem::size_of::<Sorting<'_>>();
            assert!(
                taken <= memory,
                "{memory}: {taken} bytes for {most} entries"
            );
            assert!(taken * 3 > memory, "{memory}: {taken} bytes use the budget");
        }
    }

    #[tokio::test]
    async fn keys_too_long_for_an_entry_are_counted_against_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let home =
            Location::parse(dir.path().join(HOME).to_str().unwrap(), &Default::default()).unwrap();
        let memory = 1 << 20;
        let place = Place {
            home: Some(home),
            memory,
        };
        let k: Vec<String> = vec!["id".into()];
        let table = files(&[(0, "/t/a.parquet", 100_000, vec![])]);
        let (mut index, _) = Index::open(&place, &k, false, &table).await.unwrap();
        // Room made for as many as the budget holds of short keys (as a load does).
        index.reserve(100_000);
        // A uuid as text: 44 bytes of key, held apart from its entry.
        let long = |i: u64| format!("{:0>36}-{i:07}", i).into_bytes();
        let mut most_held = 0;
        for i in 0..100_000u64 {
            index.insert(Key::new(&long(i)), (0, i));
            let held = index.table_bytes() + index.heap;
            most_held = most_held.max(held);
            index.spill_if_full(&table).await.unwrap();
        }
        assert!(index.stats().spills >= 2, "{:?}", index.stats());
        // Each held with its key within the budget (at most one entry past it).
        assert!(most_held <= memory + 256, "{most_held} bytes of {memory}");
        // And the table made room for what fits beside the keys, not for short keys: most
        // spills write many entries.
        let runs = index.stats().runs.max(1);
        assert!(100_000 / runs > 2_000, "{:?}", index.stats());
        // Every key is found.
        index.persist(&table).await.unwrap();
        let asked: Vec<Vec<u8>> = [0u64, 4_999, 99_999].iter().map(|&i| long(i)).collect();
        let found = index
            .locate(asked.iter().map(Vec::as_slice), &table)
            .await
            .unwrap();
        assert_eq!(found.len(), 3);
    }

    #[tokio::test]
    async fn keys_are_found_in_runs_only_while_their_rows_live() {
        let dir = tempfile::tempdir().unwrap();
        let (place, k, mut table) = two_files(dir.path());
        let (mut index, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert_eq!(uncovered, vec![0, 1]);
        for i in 0..6000u64 {
            index.insert(Key::new(&key(i)), ((i / 3000) as i64, i % 3000));
            index.spill_if_full(&table).await.unwrap();
        }
        assert!(index.stats().spills >= 4, "{:?}", index.stats());
        index.persist(&table).await.unwrap();
        assert_eq!(index.len(), 0);
        let asked: Vec<Vec<u8>> = [5u64, 2999, 3000, 5999, 7000]
            .iter()
            .map(|&i| key(i))
            .collect();
        let before = index.stats().read_bytes;
        let found = index
            .locate(asked.iter().map(Vec::as_slice), &table)
            .await
            .unwrap();
        assert_eq!(found.get(key(5).as_slice()), Some(&(0, 5)));
        assert_eq!(found.get(key(3000).as_slice()), Some(&(1, 0)));
        assert_eq!(found.get(key(5999).as_slice()), Some(&(1, 2999)));
        assert!(!found.contains_key(key(7000).as_slice()));
        // The footer and a few blocks read, not the index.
        let read = index.stats().read_bytes - before;
        assert!(
            read < index.stats().disk_bytes / 2,
            "{read} of {:?}",
            index.stats()
        );

        // Opened again by another process: covered, and a deleted row is not found.
        table.get_mut(&0).unwrap().deleted = vec![5].into();
        let (again, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert!(uncovered.is_empty());
        let found = again
            .locate(asked.iter().map(Vec::as_slice), &table)
            .await
            .unwrap();
        assert!(!found.contains_key(key(5).as_slice()));
        assert_eq!(found.get(key(2999).as_slice()), Some(&(0, 2999)));

        // File b rewritten by another writer (compaction) as c: b's entries no longer count,
        // and c is not covered.
        let compacted = files(&[
            (0, "/t/a.parquet", 3000, vec![5]),
            (7, "/t/c.parquet", 3000, vec![]),
        ]);
        let (mut third, uncovered) = Index::open(&place, &k, false, &compacted).await.unwrap();
        assert_eq!(uncovered, vec![7]);
        let found = third
            .locate(asked.iter().map(Vec::as_slice), &compacted)
            .await
            .unwrap();
        assert!(!found.contains_key(key(3000).as_slice()));
        for i in 3000..6000u64 {
            third.insert(Key::new(&key(i)), (7, i - 3000));
        }
        third.persist(&compacted).await.unwrap();
        let found = third
            .locate(asked.iter().map(Vec::as_slice), &compacted)
            .await
            .unwrap();
        assert_eq!(found.get(key(3000).as_slice()), Some(&(7, 0)));
        // Merged: file b's entries dropped, one manifest left.
        let home = place.home.as_ref().unwrap();
        let names: Vec<String> = home
            .list_names()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".json")).count(),
            1,
            "{names:?}"
        );
        assert_eq!(third.stats().disk_entries, 5999, "{:?}", third.stats());
    }

    #[tokio::test]
    async fn footers_are_held_within_their_budget_and_let_go_with_their_runs() {
        use std::sync::atomic::Ordering::Relaxed;
        // Held (an eighth of a MiB is room for them), then never held (8 bytes is not).
        for (memory, held) in [(1usize << 20, true), (64, false)] {
            let dir = tempfile::tempdir().unwrap();
            let home =
                Location::parse(dir.path().join(HOME).to_str().unwrap(), &Default::default())
                    .unwrap();
            let place = Place {
                home: Some(home),
                memory,
            };
            let k: Vec<String> = vec!["id".into()];
            let table = files(&[(0, "/t/a.parquet", 20_000, vec![])]);
            let (mut index, _) = Index::open(&place, &k, false, &table).await.unwrap();
            for i in 0..20_000u64 {
                index.insert(Key::new(&key(i)), (0, i));
                index.spill_if_full(&table).await.unwrap();
            }
            index.persist(&table).await.unwrap();
            let asked = [key(17), key(19_999)];
            let mut reads = Vec::new();
            for _ in 0..2 {
                let before = index.stats().read_bytes;
                let found = index
                    .locate(asked.iter().map(Vec::as_slice), &table)
                    .await
                    .unwrap();
                assert_eq!(found.get(key(17).as_slice()), Some(&(0, 17)));
                assert_eq!(found.get(key(19_999).as_slice()), Some(&(0, 19_999)));
                reads.push(index.stats().read_bytes - before);
            }
            let footers = index.store.as_ref().unwrap().footers.clone();
            let now = footers.held.load(Relaxed);
            if held {
                // The second lookup read its blocks only.
                assert!(now > 0 && now <= footers.most, "{now} of {}", footers.most);
                assert!(reads[1] < reads[0], "{reads:?}");
            } else {
                assert_eq!(now, 0);
                assert_eq!(reads[1], reads[0], "{reads:?}");
            }
            drop(index);
            assert_eq!(footers.held.load(Relaxed), 0);
        }
    }

    #[tokio::test]
    async fn identical_rows_persisted_are_each_found_across_blocks_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        let home =
            Location::parse(dir.path().join(HOME).to_str().unwrap(), &Default::default()).unwrap();
        let place = Place {
            home: Some(home.clone()),
            memory: 128 << 10,
        };
        let k: Vec<String> = vec!["a".into(), "b".into()];
        let mut table = files(&[
            (0, "/t/a.parquet", 5000, vec![]),
            (1, "/t/b.parquet", 5000, vec![]),
        ]);
        let (mut index, uncovered) = Index::open(&place, &k, true, &table).await.unwrap();
        assert_eq!(uncovered, vec![0, 1]);
        let secret = index.secret();
        // 3,000 identical rows in file 0, the rest each of its own values.
        let many: Digest = [1; 16];
        let own = |i: u64| -> Digest {
            let mut d = [2; 16];
            d[..8].copy_from_slice(&i.to_be_bytes());
            d
        };
        for i in 0..10_000u64 {
            let digest = if i < 3000 { many } else { own(i) };
            whole::insert(&mut index, digest, ((i / 5000) as i64, i % 5000));
            index.spill_if_full(&table).await.unwrap();
        }
        assert!(index.stats().spills >= 4, "{:?}", index.stats());
        assert!(index.dups.len() <= 1, "counts of what memory holds only");
        index.persist(&table).await.unwrap();
        assert!(index.dups.is_empty());
        // Opened again: the same secret, every file covered, each identical row found.
        let (again, uncovered) = Index::open(&place, &k, true, &table).await.unwrap();
        assert!(uncovered.is_empty(), "{uncovered:?}");
        assert_eq!(again.secret(), secret);
        let absent: Digest = [3; 16];
        let asked = [(many, 3000), (own(3000), 1), (own(9999), 1), (absent, 1)];
        let found = again
            .locate_all(asked.iter().map(|(d, n)| (d.as_slice(), *n)), &table)
            .await
            .unwrap();
        let mut places = found[many.as_slice()].clone();
        places.sort_unstable();
        assert_eq!(places, (0..3000).map(|p| (0, p)).collect::<Vec<_>>());
        assert_eq!(found[own(3000).as_slice()], vec![(0, 3000)]);
        assert_eq!(found[own(9999).as_slice()], vec![(1, 4999)]);
        assert!(!found.contains_key(absent.as_slice()));
        // Asked for a few of them, a few are read: not every block they span.
        let read = |i: &Index| i.read.load(std::sync::atomic::Ordering::Relaxed);
        let before = read(&again);
        let found = again
            .locate_all(std::iter::once((many.as_slice(), 5)), &table)
            .await
            .unwrap();
        let few = read(&again) - before;
        assert!((5..3000).contains(&found[many.as_slice()].len()));
        let before = read(&again);
        again
            .locate_all(std::iter::once((many.as_slice(), 3000)), &table)
            .await
            .unwrap();
        let all = read(&again) - before;
        assert!(
            few * 3 < all,
            "{few} bytes read for 5 of them, {all} for all"
        );
        // Rows deleted are not found; the runs are read again past them for as many as
        // asked.
        table.get_mut(&0).unwrap().deleted = (0..100).chain(2990..3001).collect();
        let found = again
            .locate_all(std::iter::once((many.as_slice(), 3000)), &table)
            .await
            .unwrap();
        assert_eq!(found[many.as_slice()].len(), 2890);
        table.get_mut(&0).unwrap().deleted = (0..2000).collect();
        let found = again
            .locate_all(std::iter::once((many.as_slice(), 50)), &table)
            .await
            .unwrap();
        let places = &found[many.as_slice()];
        assert!(places.len() >= 50, "{}", places.len());
        assert!(
            places
                .iter()
                .all(|&(f, p)| f == 0 && (2000..3000).contains(&p))
        );
        // A keyed index of the same columns is not this one: built again.
        let (_, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert_eq!(uncovered, vec![0, 1]);
    }

    /// An index of `dir` in 64 KiB of memory, keyed by `id`, of a table of two files of 3,000
    /// rows: the place, the key, the files.
    fn two_files(dir: &std::path::Path) -> (Place, Vec<String>, BTreeMap<i64, LiveFile>) {
        let home = Location::parse(dir.join(HOME).to_str().unwrap(), &Default::default()).unwrap();
        let place = Place {
            home: Some(home),
            memory: 64 << 10,
        };
        let table = files(&[
            (0, "/t/a.parquet", 3000, vec![]),
            (1, "/t/b.parquet", 3000, vec![]),
        ]);
        (place, vec!["id".into()], table)
    }

    #[tokio::test]
    async fn a_commits_entries_listed_apart_are_found_as_those_of_the_hash_table() {
        let dir = tempfile::tempdir().unwrap();
        let (place, k, table) = two_files(dir.path());
        let (mut index, _) = Index::open(&place, &k, false, &table).await.unwrap();
        // Out of key order, past the memory's share (written out while listed).
        index.begin_fresh();
        for i in (0..6000u64).rev() {
            assert_eq!(
                index.insert(Key::new(&key(i)), ((i / 3000) as i64, i % 3000)),
                None
            );
            index.spill_if_full(&table).await.unwrap();
        }
        assert!(index.stats().spills >= 4, "{:?}", index.stats());
        assert_eq!(index.end_fresh(), None);
        index.persist(&table).await.unwrap();
        assert!(index.fresh.is_empty() && index.mem.is_empty());
        let asked: Vec<Vec<u8>> = (0..6000u64).step_by(7).map(key).collect();
        let found = index
            .locate(asked.iter().map(Vec::as_slice), &table)
            .await
            .unwrap();
        assert_eq!(found.len(), asked.len());
        for i in (0..6000u64).step_by(7) {
            assert_eq!(
                found.get(key(i).as_slice()),
                Some(&((i / 3000) as i64, i % 3000))
            );
        }

        // A key twice among them is named with both places.
        let (mut twice, _) = Index::open(&place, &k, false, &table).await.unwrap();
        twice.begin_fresh();
        twice.insert(Key::new(&key(9000)), (0, 1));
        twice.insert(Key::new(&key(9001)), (0, 2));
        twice.insert(Key::new(&key(9000)), (1, 4));
        assert_eq!(twice.end_fresh(), Some(((0, 1), (1, 4))));

        // Not written out (the index's home is a file now): held in the hash table, found.
        let (mut held, _) = Index::open(&place, &k, false, &table).await.unwrap();
        held.begin_fresh();
        held.insert(Key::new(&key(9002)), (1, 7));
        assert_eq!(held.end_fresh(), None);
        std::fs::rename(dir.path().join(HOME), dir.path().join("moved")).unwrap();
        std::fs::write(dir.path().join(HOME), b"not a directory").unwrap();
        assert!(held.persist(&table).await.is_err());
        assert!(held.fresh.is_empty());
        assert_eq!(held.get(key(9002).as_slice()), Some(&(1, 7)));
    }

    /// A table of 100 rows in file 0 and its index persisted under `dir`: the place, the key.
    async fn persisted(dir: &std::path::Path) -> (Place, Vec<String>, BTreeMap<i64, LiveFile>) {
        let home = Location::parse(dir.join(HOME).to_str().unwrap(), &Default::default()).unwrap();
        let place = Place {
            home: Some(home),
            memory: 1 << 20,
        };
        let k: Vec<String> = vec!["id".into()];
        let table = files(&[(0, "/t/a.parquet", 100, vec![])]);
        let (mut index, _) = Index::open(&place, &k, false, &table).await.unwrap();
        for i in 0..100u64 {
            index.insert(Key::new(&key(i)), (0, i));
        }
        index.persist(&table).await.unwrap();
        (place, k, table)
    }

    fn named(dir: &std::path::Path, suffix: &str) -> std::path::PathBuf {
        let name = std::fs::read_dir(dir.join(HOME))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(suffix))
            .unwrap();
        dir.join(HOME).join(name)
    }

    #[tokio::test]
    async fn a_damaged_block_is_a_conflict_and_the_index_is_built_again() {
        let dir = tempfile::tempdir().unwrap();
        let (place, k, table) = persisted(dir.path()).await;
        let path = named(dir.path(), ".seg");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (again, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert!(uncovered.is_empty());
        let e = again
            .locate(std::iter::once(key(3).as_slice()), &table)
            .await
            .unwrap_err();
        assert!(e.is_conflict() && e.to_string().contains("checksum"), "{e}");
        // Its manifest removed: the table is read for its keys again.
        let (_, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert_eq!(uncovered, vec![0]);
    }

    #[tokio::test]
    async fn a_missing_run_or_a_damaged_manifest_is_built_again() {
        let dir = tempfile::tempdir().unwrap();
        let (place, k, table) = persisted(dir.path()).await;
        // Another key's manifest is not this key's.
        let (_, uncovered) = Index::open(&place, &["other".to_owned()], false, &table)
            .await
            .unwrap();
        assert_eq!(uncovered, vec![0]);
        // A run removed (as an orphan, by another engine's maintenance).
        std::fs::remove_file(named(dir.path(), ".seg")).unwrap();
        let (_, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert_eq!(uncovered, vec![0]);

        let dir = tempfile::tempdir().unwrap();
        let (place, k, table) = persisted(dir.path()).await;
        std::fs::write(named(dir.path(), ".json"), b"{ cut").unwrap();
        let (_, uncovered) = Index::open(&place, &k, false, &table).await.unwrap();
        assert_eq!(uncovered, vec![0]);
    }

    #[tokio::test]
    async fn any_byte_of_a_run_damaged_is_found_never_a_wrong_place_nor_a_panic() {
        let asked: Vec<Vec<u8>> = (0..100u64).map(key).collect();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut caught = 0;
        for round in 0..300 {
            let dir = tempfile::tempdir().unwrap();
            let (place, k, table) = persisted(dir.path()).await;
            let path = named(dir.path(), ".seg");
            let mut bytes = std::fs::read(&path).unwrap();
            let at = rng.usize(SEGMENT_MAGIC.len()..bytes.len());
            bytes[at] ^= 1 << rng.u8(0..8);
            if round % 4 == 0 {
                bytes.truncate(rng.usize(0..bytes.len()));
            }
            std::fs::write(&path, &bytes).unwrap();
            let (index, _) = Index::open(&place, &k, false, &table).await.unwrap();
            match index.locate(asked.iter().map(Vec::as_slice), &table).await {
                Ok(found) => {
                    // Cut short, the run is dropped (nothing found, all read again); else a
                    // damaged byte the checksums missed would misplace a key: none may.
                    for (i, a) in asked.iter().enumerate() {
                        if let Some(&place) = found.get(a.as_slice()) {
                            assert_eq!(place, (0, i as u64), "round {round}, byte {at}");
                        }
                    }
                    assert!(
                        found.is_empty() || found.len() == 100,
                        "round {round}, byte {at}"
                    );
                }
                Err(e) => {
                    assert!(e.is_conflict(), "round {round}, byte {at}: {e}");
                    caught += 1;
                }
            }
        }
        assert!(caught > 100, "{caught}");
    }

    #[tokio::test]
    async fn a_home_that_cannot_be_listed_leaves_the_index_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the directory would be.
        let path = dir.path().join(HOME);
        std::fs::write(&path, b"not a directory").unwrap();
        let place = Place {
            home: Some(Location::parse(path.to_str().unwrap(), &Default::default()).unwrap()),
            memory: 1 << 20,
        };
        let table = files(&[(0, "/t/a.parquet", 10, vec![])]);
        let (mut index, uncovered) = Index::open(&place, &["id".to_owned()], false, &table)
            .await
            .unwrap();
        assert!(!index.persisted() && uncovered == vec![0]);
        index.insert(Key::new(&key(1)), (0, 1));
        index.persist(&table).await.unwrap();
        let found = index
            .locate(std::iter::once(key(1).as_slice()), &table)
            .await
            .unwrap();
        assert_eq!(found.get(key(1).as_slice()), Some(&(0, 1)));
    }
}
