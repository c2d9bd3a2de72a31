//! Where a sink's bytes go: a file written atomically (a temporary file beside the target,
//! synced and renamed over it only when the sink finishes), a device or pipe written directly,
//! standard output, or a [`Remote`] object (made visible only by its commit); each counting
//! the bytes written.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::NamedTempFile;

use crate::{Error, Format, Result};

/// Where a sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, written atomically (temporary file, renamed on success).
    File(PathBuf),
    /// Standard output (cannot be made atomic).
    Stdout,
    /// Nothing (only with [`Format::Null`]).
    Discard,
    /// An object somewhere else (an object store), written atomically by its own writer.
    Remote(Remote),
}

/// The bytes of one remote object, written as they come and made visible only by
/// [`commit`](RemoteWrite::commit); dropped uncommitted, it must leave nothing behind.
pub trait RemoteWrite: Write + Send {
    /// Makes everything written visible as one object.
    ///
    /// # Errors
    /// The object could not be completed (it is then not there).
    fn commit(self: Box<Self>) -> io::Result<()>;
}

type OpenRemote = dyn Fn() -> io::Result<Box<dyn RemoteWrite>> + Send + Sync;

/// A remote output: its name (for messages, with no secret in it) and how to open its writer.
#[derive(Clone)]
pub struct Remote {
    name: String,
    open: Arc<OpenRemote>,
}

impl Remote {
    /// A remote output named `name`, opened by `open` when a sink is created (so that an
    /// unusable destination fails before any work).
    pub fn new(
        name: impl Into<String>,
        open: impl Fn() -> io::Result<Box<dyn RemoteWrite>> + Send + Sync + 'static,
    ) -> Remote {
        Remote {
            name: name.into(),
            open: Arc::new(open),
        }
    }

    /// Its name, such as `s3://bucket/orders.parquet`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Remote").field(&self.name).finish()
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for Remote {
    fn eq(&self, other: &Remote) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.open, &other.open)
    }
}

impl Eq for Remote {}

/// Counts the bytes going through a writer.
#[derive(Debug)]
pub(crate) struct Counting<W> {
    inner: W,
    pub(crate) bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The bytes destination under a format writer.
pub(crate) enum Dest {
    Temp(BufWriter<NamedTempFile>),
    Direct(BufWriter<std::fs::File>),
    Stdout(BufWriter<io::Stdout>),
    Remote(Box<dyn RemoteWrite>),
}

impl fmt::Debug for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dest::Temp(_) => "Temp",
            Dest::Direct(_) => "Direct",
            Dest::Stdout(_) => "Stdout",
            Dest::Remote(_) => "Remote",
        })
    }
}

/// Whether `path` exists and is not a regular file (a character device, a FIFO, a socket).
fn is_special_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

impl Write for Dest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Dest::Temp(w) => w.write(buf),
            Dest::Direct(w) => w.write(buf),
            Dest::Stdout(w) => w.write(buf),
            Dest::Remote(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Dest::Temp(w) => w.flush(),
            Dest::Direct(w) => w.flush(),
            Dest::Stdout(w) => w.flush(),
            Dest::Remote(w) => w.flush(),
        }
    }
}

pub(crate) type Out = Counting<Dest>;

/// Opens the destination of `output` for `format`: for a file, its temporary file, created now
/// next to the target (so a missing or read-only directory fails before any work), buffered by
/// `buffer` bytes; returns the writer and the path to rename the temporary file to.
pub(crate) fn open(
    output: Output,
    format: Format,
    buffer: usize,
) -> Result<(Out, Option<PathBuf>)> {
    let (dest, target) = match output {
        // A device or a pipe (`-o /dev/null`, a FIFO) cannot be replaced by a rename, and
        // must not be: write to it directly.
        Output::File(path) if is_special_file(&path) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| Error::Io {
                    what: "opening",
                    path: path.clone(),
                    source,
                })?;
            (Dest::Direct(BufWriter::with_capacity(buffer, file)), None)
        }
        Output::File(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "output".to_owned());
            let tmp = tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".pgarrow-tmp")
                // As a plain `File::create` would: 0666 less the umask, not tempfile's 0600.
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(&dir)
                // Named after the user's path: the temporary file is ours, not theirs.
                .map_err(|e| Error::Io {
                    what: "cannot create",
                    path: path.clone(),
                    source: without_path(e),
                })?;
            (
                Dest::Temp(BufWriter::with_capacity(buffer, tmp)),
                Some(path),
            )
        }
        Output::Stdout => (
            Dest::Stdout(BufWriter::with_capacity(buffer, io::stdout())),
            None,
        ),
        Output::Remote(remote) => {
            let writer = (remote.open)().map_err(|source| Error::Io {
                what: "cannot create",
                path: PathBuf::from(&remote.name),
                source,
            })?;
            (Dest::Remote(writer), Some(PathBuf::from(remote.name)))
        }
        Output::Discard => {
            return Err(Error::Invalid(format!(
                "format {format} needs an output file or stdout"
            )));
        }
    };
    Ok((
        Counting {
            inner: dest,
            bytes: 0,
        },
        target,
    ))
}

/// The OS error under `tempfile`'s (which adds the temporary file's path to its message).
fn without_path(e: io::Error) -> io::Error {
    let os = e
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|cause| cause.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
        .or_else(|| e.raw_os_error());
    match os {
        Some(code) => io::Error::from_raw_os_error(code),
        None => {
            let text = e.to_string();
            match text.find(" at path ") {
                Some(end) => io::Error::new(e.kind(), &text[..end]),
                None => e,
            }
        }
    }
}

/// Flushes what `out` holds and, for a temporary file, syncs it (unless `sync` is false: the
/// caller syncs many files at once) and renames it over `target`. Returns the bytes written.
pub(crate) fn finish(out: Out, target: Option<PathBuf>, sync: bool) -> Result<u64> {
    let bytes = out.bytes;
    match out.inner {
        Dest::Stdout(mut w) => w.flush().map_err(Error::Stdout)?,
        Dest::Direct(mut w) => w.flush().map_err(|source| Error::Io {
            what: "writing",
            path: PathBuf::from("the output device"),
            source,
        })?,
        Dest::Remote(w) => w.commit().map_err(|source| Error::Io {
            what: "cannot complete",
            path: target.unwrap_or_default(),
            source,
        })?,
        Dest::Temp(w) => {
            let target = target.unwrap_or_default();
            let io_err = |what, source| Error::Io {
                what,
                path: target.clone(),
                source,
            };
            let tmp = w
                .into_inner()
                .map_err(|e| io_err("writing", e.into_error()))?;
            if sync {
                tmp.as_file().sync_all().map_err(|e| io_err("syncing", e))?;
            }
            tmp.persist(&target)
                .map_err(|e| io_err("renaming the temporary file to", e.error))?;
        }
    }
    Ok(bytes)
}
