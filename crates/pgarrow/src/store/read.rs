//! An object read in place, by ranges: a window of it at a time, with the next window already
//! on its way while this one is read, so that reading streams at the store's speed without
//! downloading the object first. It reads as a file does: [`Read`] and [`Seek`] (Arrow IPC)
//! and parquet's [`ChunkReader`].

use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use bytes::Bytes;
use object_store::ObjectStoreExt as _;
use parquet::file::reader::{ChunkReader, Length};

use super::{ObjectLocation, runtime};

/// Bytes fetched per request (and the read-ahead).
const WINDOW: u64 = 8 << 20;

type Pending = mpsc::Receiver<object_store::Result<Bytes>>;

struct Windows {
    /// The window held: where it starts, its bytes.
    held: Option<(u64, Bytes)>,
    /// The next window, asked for already.
    ahead: Option<(Range<u64>, Pending)>,
}

/// An object opened for reading; clones share its windows.
#[derive(Clone)]
pub(crate) struct ObjectReader {
    location: ObjectLocation,
    len: u64,
    pos: u64,
    windows: Arc<Mutex<Windows>>,
}

impl ObjectReader {
    /// Opens the object (its size is asked now: a missing object fails here).
    pub(crate) fn open(location: &ObjectLocation) -> crate::Result<ObjectReader> {
        let len = match location.size()? {
            Some(len) => len,
            None => {
                return Err(crate::ErrorKind::Storage(location.error(
                    "cannot read",
                    object_store::Error::NotFound {
                        path: location.key().to_owned(),
                        source: "no such object".into(),
                    },
                ))
                .into());
            }
        };
        Ok(ObjectReader::with_len(location, len))
    }

    /// Opens an object of a size known from a listing.
    pub(crate) fn with_len(location: &ObjectLocation, len: u64) -> ObjectReader {
        ObjectReader {
            location: location.clone(),
            len,
            pos: 0,
            windows: Arc::new(Mutex::new(Windows {
                held: None,
                ahead: None,
            })),
        }
    }

    fn fetch(&self, range: Range<u64>) -> Pending {
        let (store, path) = (
            self.location.store().store.clone(),
            self.location.path().clone(),
        );
        runtime::spawn(async move { store.get_range(&path, range).await }).1
    }

    fn failed(&self, e: object_store::Error) -> io::Error {
        io::Error::other(self.location.error("cannot read", e))
    }

    /// The bytes `start..start + len` (clipped to the object), from the windows.
    fn range(&self, start: u64, len: u64) -> io::Result<Bytes> {
        let end = (start + len).min(self.len);
        if start >= end {
            return Ok(Bytes::new());
        }
        let mut w = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, held)) = &w.held
            && start >= *at
            && end <= at + held.len() as u64
        {
            let from = (start - at) as usize;
            return Ok(held.slice(from..from + (end - start) as usize));
        }
        // The read-ahead serves when it starts here; otherwise it is dropped and this range
        // fetched (at least a window of it).
        let wanted = start..end.max((start + WINDOW).min(self.len));
        let bytes = match w.ahead.take() {
            Some((range, pending)) if range.start == start && range.end >= end => {
                pending.recv().unwrap_or_else(|_| {
                    Err(object_store::Error::Generic {
                        store: "pgarrow",
                        source: "a read ended without an answer".into(),
                    })
                })
            }
            _ => self.fetch(wanted.clone()).recv().unwrap_or_else(|_| {
                Err(object_store::Error::Generic {
                    store: "pgarrow",
                    source: "a read ended without an answer".into(),
                })
            }),
        }
        .map_err(|e| self.failed(e))?;
        let fetched_end = start + bytes.len() as u64;
        if fetched_end < end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ended early", self.location),
            ));
        }
        if fetched_end < self.len {
            let next = fetched_end..(fetched_end + WINDOW).min(self.len);
            w.ahead = Some((next.clone(), self.fetch(next)));
        }
        let out = bytes.slice(0..(end - start) as usize);
        w.held = Some((start, bytes));
        Ok(out)
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(WINDOW);
        let bytes = self.range(self.pos, want)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.pos += bytes.len() as u64;
        Ok(bytes.len())
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match pos {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start",
            )),
        }
    }
}

impl Length for ObjectReader {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for ObjectReader {
    type T = ObjectReader;

    fn get_read(&self, start: u64) -> parquet::errors::Result<ObjectReader> {
        let mut r = self.clone();
        r.pos = start;
        Ok(r)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let bytes = self
            .range(start, length as u64)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        if bytes.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!(
                "{} ended early",
                self.location
            )));
        }
        Ok(bytes)
    }
}
