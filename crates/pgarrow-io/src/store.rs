//! Where files live: a local path, or an object in S3 (or an S3-compatible store), Google Cloud
//! Storage or Azure Blob Storage, named by a URL ([`Location`]).
//!
//! Objects are written as local files are, atomically: a multipart upload whose parts go out
//! while the file is still being encoded (at most [`StorageOptions`]' `max_in_flight` parts
//! of `part_size` bytes at once), completed only when the file is finished and aborted when it
//! is dropped unfinished, so that a failed or stopped export leaves no object and no pending
//! upload. Objects are read by ranges, a window at a time, with the next window fetched while
//! the current one is read: never downloaded whole first.
//!
//! Every request runs on one small runtime of pgarrow's own (two threads, `pgarrow-io`), so
//! that the calls work the same from the CLI, Python, a caller's runtime or none.

#[cfg(feature = "cloud")]
mod aws_profile;
#[cfg(feature = "cloud")]
mod gcs;
#[cfg(feature = "cloud")]
mod object;
#[cfg(feature = "cloud")]
mod read;
#[cfg(feature = "cloud")]
mod runtime;
#[cfg(feature = "cloud")]
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(feature = "cloud")]
pub use object::ObjectLocation;
#[cfg(feature = "cloud")]
pub(crate) use read::ObjectReader;

use crate::sink::Output;
use crate::{Error, Result};

/// The default size of an upload's parts: 16 MiB (S3 takes 10,000 parts: objects up to
/// 160 GB; set `part_size` higher for more).
pub const DEFAULT_PART_SIZE: usize = 16 << 20;

/// The default number of parts one object's upload has in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Settings of object stores: `KEY=VALUE` pairs, as the CLI's `--storage-option` and Python's
/// `storage_options` give them. Keys are the `object_store` crate's for each cloud
/// (`aws_endpoint`, `allow_http`, `aws_virtual_hosted_style_request`, `azure_storage_account_name`,
/// `google_service_account`, ...; the `AWS_*`, `AZURE_*` and `GOOGLE_*` environment variables
/// are read first and these override them), `aws_profile`, and pgarrow's own: `part_size`
/// (bytes per uploaded part, `16MiB` by default, at least 5 MiB), `max_in_flight` (parts
/// uploading at once per object, 4), `max_retries` (10) and `retry_timeout` (seconds, 180).
/// Values are never shown: `Debug` prints the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageOptions {
    pairs: Vec<(String, String)>,
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.pairs.iter().map(|(k, _)| k))
            .finish()
    }
}

impl StorageOptions {
    /// No options: everything from the environment.
    pub fn new() -> StorageOptions {
        StorageOptions::default()
    }

    /// Adds `key` = `value` (a later value of the same key wins), as object_store's builders'
    /// `with_config` do.
    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into().trim().to_ascii_lowercase();
        self.pairs.retain(|(k, _)| *k != key);
        self.pairs.push((key, value.into()));
        self
    }

    /// Parses `KEY=VALUE`.
    ///
    /// # Errors
    /// [`Error::Invalid`]: no `=`, or an empty key.
    pub fn parse_pair(text: &str) -> Result<(String, String)> {
        match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_ascii_lowercase(), v.to_owned()))
            }
            _ => Err(Error::usage(format!(
                "a storage option is KEY=VALUE (such as aws_endpoint=http://localhost:9000), \
                 not {:?}",
                redact_pair(text)
            ))),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for StorageOptions {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> StorageOptions {
        iter.into_iter()
            .fold(StorageOptions::new(), |o, (k, v)| o.with_option(k, v))
    }
}

/// `KEY=...` of a bad `KEY=VALUE`, so that a value typed without its key is not echoed.
fn redact_pair(text: &str) -> String {
    match text.split_once('=') {
        Some((k, _)) => format!("{k}=..."),
        None if text.chars().count() > 12 => {
            format!("{}...", text.chars().take(4).collect::<String>())
        }
        None => text.to_owned(),
    }
}

/// Which cloud an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon S3 or an S3-compatible store (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
    /// Azure Blob Storage or Data Lake (`az://`, `azure://`, `abfs://`, `abfss://`,
    /// `adl://`).
    Azure,
}

/// A file's place: a local path, or an object named by a URL (`s3://bucket/key`,
/// `gs://bucket/key`, `az://container/key`, `abfss://container@account.dfs.core.windows.net/key`).
/// `file://` URLs and everything that is not a URL are local paths.
///
/// ```
/// use pgarrow_io::{Location, StorageOptions};
///
/// let local = Location::parse("out/orders.parquet", &StorageOptions::new())?;
/// assert!(local.is_local());
/// // With the `cloud` feature:
/// # #[cfg(feature = "cloud")] {
/// let object = Location::parse("s3://bucket/orders.parquet", &StorageOptions::new())?;
/// assert_eq!(object.to_string(), "s3://bucket/orders.parquet");
/// # }
/// # Ok::<(), pgarrow_io::Error>(())
/// ```
#[derive(Clone)]
pub enum Location {
    /// A local path.
    Local(PathBuf),
    /// An object in an object store (with the `cloud` feature).
    #[cfg(feature = "cloud")]
    Object(ObjectLocation),
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => f.debug_tuple("Local").field(p).finish(),
            #[cfg(feature = "cloud")]
            Location::Object(o) => f.debug_tuple("Object").field(&o.to_string()).finish(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.fmt(f),
        }
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => a == b,
            #[cfg(feature = "cloud")]
            (Location::Object(a), Location::Object(b)) => a.same(b),
            #[cfg(feature = "cloud")]
            _ => false,
        }
    }
}

impl Eq for Location {}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::Local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::Local(p.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Location {
        Location::Local(p.clone())
    }
}

impl From<&Location> for Location {
    fn from(l: &Location) -> Location {
        l.clone()
    }
}

impl From<&str> for Location {
    /// A local path (use [`Location::parse`] for URLs).
    fn from(p: &str) -> Location {
        Location::Local(PathBuf::from(p))
    }
}

/// The cloud of a URL scheme, `None` for `file`, an error for other schemes.
fn cloud_of(scheme: &str) -> Result<Option<Cloud>> {
    Ok(Some(match scheme {
        "s3" | "s3a" => Cloud::S3,
        "gs" => Cloud::Gcs,
        "az" | "azure" | "abfs" | "abfss" | "adl" => Cloud::Azure,
        "file" => return Ok(None),
        other => {
            return Err(Error::usage(format!(
                "{other}:// is not a storage pgarrow knows: use s3://, gs://, az://, abfss:// or \
                 file:// URLs, or a local path"
            )));
        }
    }))
}

impl Location {
    /// Parses a path or a URL; an object's client is made now from the environment and
    /// `options` (no request is sent yet).
    ///
    /// # Errors
    /// [`Error::Invalid`]: an unknown scheme or storage option, a bad URL or option value,
    /// an AWS profile that cannot be used.
    pub fn parse(text: &str, options: &StorageOptions) -> Result<Location> {
        let Some((scheme, _)) = text.split_once("://") else {
            // `s3:/bucket/key`: a typo, or a URL that went through a path type (which
            // collapses `//`); not a local directory named `s3:`.
            if let Some((scheme, _)) = text.split_once(":/")
                && cloud_of(&scheme.to_ascii_lowercase()).is_ok_and(|c| c.is_some())
            {
                return Err(Error::usage(format!(
                    "{} is not a URL: write {scheme}://bucket/key (a path type such as \
                     pathlib.Path turns // into /: pass the URL as text)",
                    shown_url(text)
                )));
            }
            return Ok(Location::Local(PathBuf::from(text)));
        };
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(Location::Local(PathBuf::from(text)));
        }
        let scheme = scheme.to_ascii_lowercase();
        let bad_url = |e: &dyn fmt::Display| {
            Error::usage(format!("{} is not a valid URL: {e}", shown_url(text)))
        };
        let Some(cloud) = cloud_of(&scheme)? else {
            let url = url::Url::parse(text).map_err(|e| bad_url(&e))?;
            return url
                .to_file_path()
                .map(Location::Local)
                .map_err(|()| bad_url(&"not a local file's URL"));
        };
        #[cfg(feature = "cloud")]
        return ObjectLocation::parse(cloud, text, options, &bad_url).map(Location::Object);
        #[cfg(not(feature = "cloud"))]
        {
            let _ = options;
            Err(Error::usage(format!(
                "{} is an object in {cloud:?}: this build of pgarrow has no object stores \
                 (build it with the `cloud` feature)",
                shown_url(text)
            )))
        }
    }

    /// Whether it is a local path.
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local(_))
    }

    /// The local path, if it is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            #[cfg(feature = "cloud")]
            Location::Object(_) => None,
        }
    }

    /// The entry `name` under this directory or prefix.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(name)),
            #[cfg(feature = "cloud")]
            Location::Object(o) => Location::Object(o.child(name)),
        }
    }

    /// The entry at `path` under this directory or prefix: `/`-separated segments, each kept
    /// as it is (already escaped by the caller: a value partition's `k=a%2Fb`), where
    /// [`join`](Location::join) would escape a `/` or a `%` in an object's name.
    pub fn join_path(&self, path: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(path)),
            #[cfg(feature = "cloud")]
            Location::Object(o) => Location::Object(o.descendant(path)),
        }
    }

    /// The last segment of the path or key.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Local(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.file_name(),
        }
    }

    /// What a [`Sink`](crate::sink::Sink) writes to here: the local file (through a temporary
    /// file renamed at the end), or the object (through an upload completed at the end).
    pub fn output(&self) -> Output {
        match self {
            Location::Local(p) => Output::File(p.clone()),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.output(),
        }
    }

    /// For an object store: the same place, its uploads held to `bytes` of buffers (parts in
    /// flight fewer, down to one: at least two parts' worth); a local path as it is.
    pub fn with_upload_memory(&self, bytes: usize) -> Location {
        let _ = bytes;
        match self {
            Location::Local(_) => self.clone(),
            #[cfg(feature = "cloud")]
            Location::Object(o) => Location::Object(o.with_upload_memory(bytes)),
        }
    }

    /// The most bytes one object's upload holds: `part_size × (max_in_flight + 1)`; none for a
    /// local path.
    pub fn upload_memory(&self) -> usize {
        match self {
            Location::Local(_) => 0,
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.upload_memory(),
        }
    }

    /// Reads it whole (a manifest, a plan).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`] for local files.
    pub fn read(&self) -> Result<Vec<u8>> {
        match self {
            Location::Local(p) => std::fs::read(p).map_err(|e| local_io("cannot read", p, e)),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.read_all(),
        }
    }

    /// The bytes `ranges` name, each in full, without the rest of the file (an object's in
    /// ranged reads, which the store may coalesce).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`]; a range past the end.
    pub fn read_ranges(&self, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        match self {
            Location::Local(p) => {
                use std::os::unix::fs::FileExt;
                let file = std::fs::File::open(p).map_err(|e| local_io("cannot read", p, e))?;
                ranges
                    .iter()
                    .map(|r| {
                        let len = usize::try_from(r.end.saturating_sub(r.start)).unwrap_or(0);
                        let mut buf = vec![0; len];
                        file.read_exact_at(&mut buf, r.start)
                            .map_err(|e| local_io("cannot read", p, e))?;
                        Ok(bytes::Bytes::from(buf))
                    })
                    .collect()
            }
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.read_ranges(ranges),
        }
    }

    /// The bytes `ranges` name, one after another, into `out` (emptied first), as
    /// [`read_ranges`](Self::read_ranges) reads them: a caller reading many small ranges, a
    /// batch at a time, keeps one buffer for them all.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`]; a range past the end.
    pub fn read_ranges_into(
        &self,
        ranges: &[std::ops::Range<u64>],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.clear();
        match self {
            Location::Local(p) => {
                let lens: Vec<usize> = ranges
                    .iter()
                    .map(|r| usize::try_from(r.end.saturating_sub(r.start)).unwrap_or(usize::MAX))
                    .collect();
                let total = lens.iter().try_fold(0usize, |a, &l| a.checked_add(l));
                let total = total.ok_or_else(|| {
                    local_io("cannot read", p, std::io::Error::other("ranges too long"))
                })?;
                out.resize(total, 0);
                let file = std::fs::File::open(p).map_err(|e| local_io("cannot read", p, e))?;
                read_local_ranges(&file, ranges, &lens, out)
                    .map(drop)
                    .map_err(|e| local_io("cannot read", p, e))
            }
            #[cfg(feature = "cloud")]
            Location::Object(o) => {
                for b in o.read_ranges(ranges)? {
                    out.extend_from_slice(&b);
                }
                Ok(())
            }
        }
    }

    /// The footer of the Parquet file here (its schema, row groups and their column chunks'
    /// statistics) and the footer's length in bytes, read without the rest of the file (for
    /// an object, ranged reads of its end).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`]; [`Error::Input`] when it is not Parquet.
    pub fn parquet_metadata(&self) -> Result<(parquet::file::metadata::ParquetMetaData, u64)> {
        use parquet::file::reader::ChunkReader;
        fn footer<R: ChunkReader>(
            reader: &R,
        ) -> parquet::errors::Result<(parquet::file::metadata::ParquetMetaData, u64)> {
            let len = reader.len();
            if len < 12 {
                return Err(parquet::errors::ParquetError::General(format!(
                    "{len} bytes are too few for a Parquet file"
                )));
            }
            let tail = reader.get_bytes(len - 8, 8)?;
            let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
            let metadata =
                parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(reader)?;
            Ok((metadata, footer_len))
        }
        let not_parquet = |e: parquet::errors::ParquetError| {
            Error::Input(arrow_schema::ArrowError::ParquetError(format!(
                "{self}: {e}"
            )))
        };
        match self {
            Location::Local(p) => {
                let file = std::fs::File::open(p).map_err(|e| local_io("cannot read", p, e))?;
                footer(&file).map_err(not_parquet)
            }
            #[cfg(feature = "cloud")]
            Location::Object(o) => {
                let reader = ObjectReader::open(o)?;
                let read = footer(&reader);
                reader.release();
                read.map_err(not_parquet)
            }
        }
    }

    /// Writes `bytes` atomically: readers see the old contents or the whole new ones.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`] for local files.
    pub fn write_atomically(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Location::Local(p) => write_local_atomically(p, bytes),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.put(bytes),
        }
    }

    /// Writes `bytes` only if nothing is there, atomically: of two writers creating one name
    /// at once, one gets `true` and the other `false`, and readers see nothing or the whole
    /// bytes (a local file is written beside it, synced, and hard-linked into place; an
    /// object store is asked to refuse an existing object).
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`] for local files.
    pub fn create_new(&self, bytes: &[u8]) -> Result<bool> {
        match self {
            Location::Local(p) => create_local(p, bytes),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.create(bytes),
        }
    }

    /// The names and sizes of the files directly under this directory or prefix (not
    /// descending into subdirectories); none when it does not exist.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`] for local directories.
    pub fn list_names(&self) -> Result<Vec<(String, u64)>> {
        match self {
            Location::Local(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(local_io("cannot list", dir, e)),
                };
                let mut out = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| local_io("cannot list", dir, e))?;
                    let meta = match entry.metadata() {
                        Ok(meta) => meta,
                        // Removed since the directory was read (another writer's temporary
                        // file, say): not there, so not listed.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(local_io("cannot list", dir, e)),
                    };
                    if meta.is_file() {
                        out.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
                    }
                }
                Ok(out)
            }
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.list_names(),
        }
    }

    /// Removes it; nothing to remove is not an error.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Io`] for local files.
    pub fn remove(&self) -> Result<()> {
        match self {
            Location::Local(p) => match std::fs::remove_file(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(local_io("cannot remove", p, e)),
            },
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.delete(),
        }
    }

    /// Whether a file or object is there (a local directory counts).
    ///
    /// # Errors
    /// [`Error::Storage`]: the store cannot be asked.
    pub fn exists(&self) -> Result<bool> {
        match self {
            Location::Local(p) => Ok(p.exists()),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.size().map(|s| s.is_some()),
        }
    }

    /// Makes it ready to hold files (a directory or prefix): a local directory is created; an
    /// object store is asked whether the bucket is there and this client may write to it, so
    /// that an unusable destination fails before any query runs.
    ///
    /// # Errors
    /// [`Error::Storage`] (usage: the bucket, the credentials, the permissions) or
    /// [`Error::Io`] for local directories.
    pub fn prepare_dir(&self) -> Result<()> {
        match self {
            Location::Local(dir) => std::fs::create_dir_all(dir)
                .map_err(|e| local_io("cannot create the directory", dir, e)),
            #[cfg(feature = "cloud")]
            Location::Object(o) => o.check_writable(),
        }
    }
}

pub(crate) fn local_io(what: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        what,
        path: path.to_owned(),
        source: e,
    }
}

/// Reads `ranges` (of `lens` bytes) of `file` one after another into `out`, which holds their
/// sum; returns how many were not in the page cache.
///
/// Each range is first read from the page cache only (`preadv2` with `RWF_NOWAIT`, on
/// Linux): the ranges it does not hold are then asked of the disk all at once
/// (`POSIX_FADV_WILLNEED`, which starts their reads side by side) and read. A lookup of many
/// small blocks scattered over a large file that is not in memory so waits for the disk about
/// once, not once a block.
fn read_local_ranges(
    file: &std::fs::File,
    ranges: &[std::ops::Range<u64>],
    lens: &[usize],
    out: &mut [u8],
) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut missing = Vec::new();
    let mut at = 0;
    for (i, (r, &len)) in ranges.iter().zip(lens).enumerate() {
        if !read_cached(file, &mut out[at..at + len], r.start)? {
            missing.push((i, at));
        }
        at += len;
    }
    #[cfg(target_os = "linux")]
    if missing.len() > 1 {
        for &(i, _) in &missing {
            let len = std::num::NonZeroU64::new(lens[i] as u64);
            // Advice only: a refusal leaves the reads below to wait one by one.
            let _ = rustix::fs::fadvise(file, ranges[i].start, len, rustix::fs::Advice::WillNeed);
        }
    }
    for &(i, at) in &missing {
        file.read_exact_at(&mut out[at..at + lens[i]], ranges[i].start)?;
    }
    Ok(missing.len())
}

/// Reads `buf` at `offset` of `file` if the page cache holds it all: `false` (and `buf` in
/// part) when the disk would have to be waited for. Elsewhere than Linux, or on a file system
/// that cannot tell, reads it.
fn read_cached(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use rustix::io::{Errno, ReadWriteFlags, preadv2};
        let mut done = 0;
        while done < buf.len() {
            let mut slice = [std::io::IoSliceMut::new(&mut buf[done..])];
            match preadv2(
                file,
                &mut slice,
                offset + done as u64,
                ReadWriteFlags::NOWAIT,
            ) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => {}
                // A kernel or file system without RWF_NOWAIT: read as usual.
                Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => break,
                Err(e) => return Err(e.into()),
            }
        }
        if done == buf.len() {
            return Ok(true);
        }
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut buf[done..], offset + done as u64)?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)?;
        Ok(true)
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, synced and renamed over it:
/// readers see the old file or the whole new one.
fn write_local_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.pgarrow-tmp"));
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        local_io("cannot write", path, e)
    })
}

/// Writes `bytes` to `path` only if nothing is there: through a synced file beside it,
/// hard-linked into place (a link refuses an existing name, atomically, and readers never see
/// a file half written).
fn create_local(path: &Path, bytes: &[u8]) -> Result<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{:?}.pgarrow-tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let write = || -> std::io::Result<bool> {
        use std::io::Write as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    };
    let made = write();
    let _ = std::fs::remove_file(&tmp);
    made.map_err(|e| local_io("cannot create", path, e))
}

/// A URL for messages: no user info, no query string (an Azure SAS token travels there).
fn shown_url(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let azure = matches!(
                scheme.to_ascii_lowercase().as_str(),
                "az" | "azure" | "abfs" | "abfss" | "adl"
            );
            match authority.rsplit_once('@') {
                // `abfss://container@account...` names its container there: keep it unless
                // it looks like credentials (a colon). Elsewhere user info is credentials.
                Some((user, host)) if !azure || user.contains(':') => {
                    format!("{scheme}://***@{host}{path}")
                }
                _ => format!("{scheme}://{authority}{path}"),
            }
        }
        None => text.to_owned(),
    }
}

/// An object store's failure: which object, what was being done, and the store's message
/// without secrets.
#[derive(Debug, Clone)]
pub struct StorageError {
    /// The object or prefix, as a URL without secrets.
    pub url: String,
    /// What was being done (`cannot write to`).
    pub action: &'static str,
    /// What kind of failure.
    pub problem: StorageProblem,
    message: String,
}

/// What kind of object-store failure: whether the call must change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageProblem {
    /// No such bucket, container or object.
    NotFound,
    /// The credentials were refused, or are missing.
    Unauthenticated,
    /// The credentials are good but may not do this.
    PermissionDenied,
    /// A setting is wrong (an unknown option, a bad value, a missing account name).
    Config,
    /// Anything else: the network, the service, an aborted upload.
    Other,
}

impl StorageError {
    /// Whether the call must change (a bucket, credentials, permissions, settings), rather
    /// than the work having failed on its way.
    pub fn is_usage(&self) -> bool {
        // Found on the way (a part refused, an upload gone): the work failed, not the call.
        self.problem != StorageProblem::Other
            && !matches!(self.action, "cannot upload" | "cannot complete")
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.action, self.url, self.message)?;
        match self.problem {
            StorageProblem::NotFound => f.write_str(" (is the bucket or container there?)"),
            StorageProblem::Unauthenticated => f.write_str(
                " (check the credentials: the environment, the AWS profile, --storage-option)",
            ),
            StorageProblem::PermissionDenied => {
                f.write_str(" (the credentials may not do this here)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for StorageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_file_is_created_once_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let log = Location::from(dir.path()).join("_log");
        assert!(
            log.list_names().unwrap().is_empty(),
            "no directory: no names"
        );
        let first = log.join("0.json");
        assert!(first.create_new(b"one").unwrap());
        assert!(
            !first.create_new(b"two").unwrap(),
            "the second writer is refused"
        );
        assert_eq!(first.read().unwrap(), b"one");
        let names = log.list_names().unwrap();
        assert_eq!(
            names,
            vec![("0.json".to_owned(), 3)],
            "no temporary file is left"
        );
        // Several threads racing for one name: exactly one wins.
        let next = log.join("1.json");
        let won: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|k| {
                    let next = next.clone();
                    s.spawn(move || next.create_new(format!("{k}").as_bytes()).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(won, 1);
        assert_eq!(log.list_names().unwrap().len(), 2);
    }

    #[test]
    fn a_directory_is_listed_while_others_create_names_in_it() {
        // Writers make and remove temporary files beside the names they create: a listing
        // meeting one that is gone by the time it looks at it skips it, and never fails.
        let dir = tempfile::tempdir().unwrap();
        let log = Location::from(dir.path()).join("_log");
        let done = std::sync::atomic::AtomicBool::new(false);
        let seen = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                for v in 0..2_000 {
                    assert!(log.join(&format!("{v}.json")).create_new(b"v").unwrap());
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            let mut seen = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let names = log.list_names().unwrap_or_else(|e| panic!("listing: {e}"));
                seen = seen.max(names.iter().filter(|(n, _)| n.ends_with(".json")).count());
            }
            writer.join().unwrap();
            seen
        });
        assert!(seen <= 2_000);
        assert_eq!(log.list_names().unwrap().len(), 2_000);
    }

    #[test]
    fn ranges_read_into_one_buffer_are_those_read_apart() {
        let dir = tempfile::tempdir().unwrap();
        let at = Location::from(dir.path()).join("f");
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        assert!(at.create_new(&body).unwrap());
        let ranges = [9_000..9_100, 0..10, 4_096..8_192, 10..10];
        let apart: Vec<u8> = at.read_ranges(&ranges).unwrap().concat();
        // A buffer holding more than the next read: it is emptied first.
        let mut buf = vec![7; 50_000];
        at.read_ranges_into(&ranges, &mut buf).unwrap();
        assert_eq!(buf, apart);
        assert_eq!(&buf[..100], &body[9_000..9_100]);
        let past = [0..10, 9_990..10_010];
        let e = at.read_ranges_into(&past, &mut buf).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ranges_not_in_the_page_cache_are_read_all_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        file.sync_all().unwrap();
        let ranges: Vec<std::ops::Range<u64>> =
            (0..50u64).map(|i| i * 19_000..i * 19_000 + 4096).collect();
        let lens = vec![4096; ranges.len()];
        let want: Vec<u8> = ranges
            .iter()
            .flat_map(|r| body[r.start as usize..r.end as usize].iter().copied())
            .collect();
        // Cached: none from the disk.
        let mut out = vec![0; want.len()];
        assert_eq!(
            read_local_ranges(&file, &ranges, &lens, &mut out).unwrap(),
            0
        );
        assert_eq!(out, want);
        // Dropped from the cache (clean pages go): read from the disk, the same bytes.
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        let mut out = vec![0; want.len()];
        let missing = read_local_ranges(&file, &ranges, &lens, &mut out).unwrap();
        assert_eq!(out, want);
        assert!(missing > 0, "no range left the page cache");
    }

    #[test]
    fn local_paths_and_file_urls() {
        let none = StorageOptions::new();
        assert!(Location::parse("a/b.parquet", &none).unwrap().is_local());
        assert_eq!(
            Location::parse("file:///tmp/x.parquet", &none).unwrap(),
            Location::Local(PathBuf::from("/tmp/x.parquet"))
        );
        let e = Location::parse("ftp://host/x", &none).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("ftp://"), "{e}");
        let e = Location::parse("s3:/bucket/x", &none).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("not a URL"), "{e}");
    }

    #[test]
    fn a_cloud_url_needs_the_cloud_feature() {
        let parsed = Location::parse("s3://bucket/x.parquet", &StorageOptions::new());
        if cfg!(feature = "cloud") {
            assert_eq!(parsed.unwrap().to_string(), "s3://bucket/x.parquet");
        } else {
            let e = parsed.unwrap_err();
            assert!(
                e.is_usage() && e.to_string().contains("`cloud` feature"),
                "{e}"
            );
        }
    }
}
