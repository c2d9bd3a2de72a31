//! Transactions the server streams before their commit (`streaming 'on'`, protocol 2,
//! PostgreSQL 14+): each one's messages are set aside on local disk as they come, then read
//! again at its commit, or dropped at its abort.
//!
//! A transaction larger than `logical_decoding_work_mem` is sent in parts, between its other
//! transactions' messages, long before it commits. Without streaming the server keeps it (and
//! spills it to its own disk) until the commit, and the reader waits idle; with it, the bytes
//! cross the network while the transaction runs and the server lets go of them. What is set
//! aside is the raw pgoutput messages: decoding waits for the commit, so a transaction that
//! aborts costs no decoding and a commit decodes its rows in the order of every other one.
//!
//! Layout of a transaction's file: records `[LSN u64 LE][length u32 LE][message]`. A
//! subtransaction's first record is remembered; when it aborts, the file is cut there. That is
//! right because a subtransaction's changes and its children's follow its first change, and
//! nothing of its parent comes until it ends (PostgreSQL's own apply worker does the same).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use pgarrow::{Error, ErrorKind, Result};
use pgarrow_protocol::replication::Lsn;

/// What streamed transactions cost this stream so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StreamedStats {
    /// Streamed transactions committed (and delivered like any other) that had changes set
    /// aside here.
    pub committed: u64,
    /// Streamed transactions aborted (nothing of them delivered) that had changes set aside
    /// here. The server also streams parts with no change of the publication (a transaction
    /// of another database holding catalog changes, on some versions): those are not counted.
    pub aborted: u64,
    /// Subtransactions rolled back after some of their changes were set aside (those were
    /// dropped).
    pub rolled_back: u64,
    /// Parts received (one `Stream Start` each).
    pub parts: u64,
    /// Bytes of messages set aside on disk, over the whole stream.
    pub bytes: u64,
    /// The most bytes set aside at one moment.
    pub peak_bytes: u64,
}

impl StreamedStats {
    /// Adds another stream's (a run that streamed more than once): the peaks are the larger.
    pub fn plus(&mut self, other: &StreamedStats) {
        self.committed += other.committed;
        self.aborted += other.aborted;
        self.rolled_back += other.rolled_back;
        self.parts += other.parts;
        self.bytes += other.bytes;
        self.peak_bytes = self.peak_bytes.max(other.peak_bytes);
    }
}

/// The transactions being streamed, each with its file.
#[derive(Debug)]
pub(crate) struct Streamed {
    dir: PathBuf,
    open: HashMap<u32, Spool>,
    /// The transaction whose part is being read (between `Stream Start` and `Stream Stop`).
    current: Option<u32>,
    /// Bytes set aside now, over every open transaction.
    held: u64,
    stats: StreamedStats,
}

#[derive(Debug)]
struct Spool {
    file: BufWriter<File>,
    len: u64,
    /// Subtransactions in the order of their first message, with the offset of that message.
    subxacts: Vec<(u32, u64)>,
    /// Each subtransaction's place in `subxacts` (a PL/pgSQL loop with an exception block
    /// makes one per iteration: a scan per message would be quadratic).
    places: HashMap<u32, usize>,
}

fn io_error(dir: &Path, source: std::io::Error) -> Error {
    Error::from(pgarrow::io::Error::Io {
        what: "setting a streamed transaction aside in",
        path: dir.to_path_buf(),
        source,
    })
}

impl Streamed {
    /// Streamed transactions set aside under `dir` (the system's temporary directory when
    /// `None`). The files have no name: they go with the process, however it ends.
    pub(crate) fn new(dir: Option<&Path>) -> Streamed {
        Streamed {
            dir: dir.map_or_else(std::env::temp_dir, Path::to_path_buf),
            open: HashMap::new(),
            current: None,
            held: 0,
            stats: StreamedStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> StreamedStats {
        self.stats
    }

    /// Whether a part is being read.
    pub(crate) fn in_part(&self) -> bool {
        self.current.is_some()
    }

    /// A part of `xid` starts (`first`: its first part).
    pub(crate) fn start(&mut self, xid: u32, first: bool) -> Result<()> {
        self.stats.parts += 1;
        if first && let Some(old) = self.open.remove(&xid) {
            // A transaction id streamed from its start again: what was set aside is stale.
            self.held -= old.len;
        }
        if !first && !self.open.contains_key(&xid) {
            // PostgreSQL's own apply worker refuses this too: the part cannot be whole.
            return Err(Error::unexpected(format!(
                "a later part of streamed transaction {xid} came without its first part"
            )));
        }
        if !self.open.contains_key(&xid) {
            let file = tempfile::tempfile_in(&self.dir).map_err(|e| io_error(&self.dir, e))?;
            self.open.insert(
                xid,
                Spool {
                    file: BufWriter::with_capacity(64 * 1024, file),
                    len: 0,
                    subxacts: Vec::new(),
                    places: HashMap::new(),
                },
            );
        }
        self.current = Some(xid);
        Ok(())
    }

    /// The part being read ends.
    pub(crate) fn stop(&mut self) {
        self.current = None;
    }

    /// Sets aside one message of the part being read, of subtransaction `subxid` (the
    /// transaction itself when it is the part's).
    pub(crate) fn push(&mut self, lsn: Lsn, subxid: Option<u32>, message: &[u8]) -> Result<()> {
        let Some(xid) = self.current else {
            return Err(Error::unexpected(
                "a streamed change outside a streamed transaction's part",
            ));
        };
        let Some(spool) = self.open.get_mut(&xid) else {
            return Err(Error::unexpected("a streamed transaction without its file"));
        };
        if let Some(sub) = subxid
            && sub != xid
            && !spool.places.contains_key(&sub)
        {
            spool.places.insert(sub, spool.subxacts.len());
            spool.subxacts.push((sub, spool.len));
        }
        let len = u32::try_from(message.len()).map_err(|_| {
            Error::from(ErrorKind::Internal(format!(
                "a streamed message of {} bytes",
                message.len()
            )))
        })?;
        let write = |f: &mut BufWriter<File>| -> std::io::Result<()> {
            f.write_all(&lsn.0.to_le_bytes())?;
            f.write_all(&len.to_le_bytes())?;
            f.write_all(message)
        };
        write(&mut spool.file).map_err(|e| io_error(&self.dir, e))?;
        let n = 12 + u64::from(len);
        spool.len += n;
        self.held += n;
        self.stats.bytes += n;
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.held);
        Ok(())
    }

    /// `subxid` of `xid` aborted (`xid` itself when they are equal): what it set aside goes.
    pub(crate) fn abort(&mut self, xid: u32, subxid: u32) -> Result<()> {
        if xid == subxid {
            if let Some(spool) = self.open.remove(&xid) {
                self.held -= spool.len;
                if spool.len > 0 {
                    self.stats.aborted += 1;
                }
            }
            return Ok(());
        }
        let Some(spool) = self.open.get_mut(&xid) else {
            return Ok(());
        };
        let Some(&i) = spool.places.get(&subxid) else {
            // Nothing of it was sent.
            return Ok(());
        };
        let cut = spool.subxacts[i].1;
        for (sub, _) in spool.subxacts.drain(i..) {
            spool.places.remove(&sub);
        }
        self.stats.rolled_back += 1;
        let cut_file = |f: &mut BufWriter<File>| -> std::io::Result<()> {
            f.flush()?;
            let file = f.get_mut();
            file.set_len(cut)?;
            file.seek(SeekFrom::Start(cut))?;
            Ok(())
        };
        cut_file(&mut spool.file).map_err(|e| io_error(&self.dir, e))?;
        self.held -= spool.len - cut;
        spool.len = cut;
        Ok(())
    }

    /// `xid` committed: its messages, to read again in order. `None` when nothing of it was
    /// set aside here.
    pub(crate) fn commit(&mut self, xid: u32) -> Result<Option<Replay>> {
        if self.current == Some(xid) {
            return Err(Error::unexpected(
                "a streamed transaction committed inside one of its parts",
            ));
        }
        let Some(spool) = self.open.remove(&xid) else {
            return Ok(None);
        };
        self.held -= spool.len;
        if spool.len > 0 {
            self.stats.committed += 1;
        }
        let mut file = spool
            .file
            .into_inner()
            .map_err(|e| io_error(&self.dir, e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_error(&self.dir, e))?;
        Ok(Some(Replay {
            reader: BufReader::with_capacity(64 * 1024, file.take(spool.len)),
            dir: self.dir.clone(),
            buf: Vec::new(),
        }))
    }
}

/// A committed streamed transaction's messages, read again in order.
#[derive(Debug)]
pub(crate) struct Replay {
    reader: BufReader<std::io::Take<File>>,
    dir: PathBuf,
    buf: Vec<u8>,
}

impl Replay {
    /// The next message and its LSN; `None` at the end.
    pub(crate) fn next_message(&mut self) -> Result<Option<(Lsn, &[u8])>> {
        let mut head = [0u8; 12];
        let mut got = 0;
        while got < head.len() {
            match self.reader.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io_error(
                        &self.dir,
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "a streamed transaction's file ends inside a record",
                        ),
                    ));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.dir, e)),
            }
        }
        let lsn = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(head[8..].try_into().unwrap_or_default());
        self.buf.resize(len as usize, 0);
        self.reader
            .read_exact(&mut self.buf)
            .map_err(|e| io_error(&self.dir, e))?;
        Ok(Some((Lsn(lsn), &self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut replay: Replay) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((lsn, m)) = replay.next_message().unwrap() {
            out.push((lsn.0, m.to_vec()));
        }
        out
    }

    #[test]
    fn parts_commit_in_order_and_subtransactions_abort_by_cutting() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Streamed::new(Some(dir.path()));
        s.start(10, true).unwrap();
        s.push(Lsn(1), Some(10), b"top-1").unwrap();
        s.push(Lsn(2), Some(11), b"sub11-a").unwrap();
        s.stop();
        // Another transaction's part between.
        s.start(20, true).unwrap();
        s.push(Lsn(3), Some(20), b"other").unwrap();
        s.stop();
        s.start(10, false).unwrap();
        s.push(Lsn(4), Some(12), b"sub12-nested").unwrap();
        s.stop();
        assert_eq!(s.held, 4 * 12 + 5 + 7 + 5 + 12);
        // Subtransaction 11 (and 12, begun after it) rolled back.
        s.abort(10, 11).unwrap();
        // One never seen: nothing happens.
        s.abort(10, 99).unwrap();
        s.start(10, false).unwrap();
        s.push(Lsn(5), Some(10), b"top-2").unwrap();
        s.stop();
        s.abort(20, 20).unwrap();
        assert!(s.commit(20).unwrap().is_none(), "an aborted one is gone");
        let replay = s.commit(10).unwrap().unwrap();
        assert_eq!(
            read_all(replay),
            vec![(1, b"top-1".to_vec()), (5, b"top-2".to_vec())]
        );
        assert_eq!(s.held, 0);
        let stats = s.stats();
        assert_eq!(
            (
                stats.committed,
                stats.aborted,
                stats.rolled_back,
                stats.parts
            ),
            (1, 1, 1, 4)
        );
        assert_eq!(stats.peak_bytes, 4 * 12 + 5 + 7 + 5 + 12);
    }

    /// Parts with nothing of the publication (another database's transaction holding catalog
    /// changes, which some versions stream) are neither committed nor aborted transactions.
    #[test]
    fn transactions_streamed_empty_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Streamed::new(Some(dir.path()));
        s.start(30, true).unwrap();
        s.stop();
        s.start(31, true).unwrap();
        s.stop();
        s.abort(30, 30).unwrap();
        let replay = s.commit(31).unwrap().unwrap();
        assert!(read_all(replay).is_empty());
        let stats = s.stats();
        assert_eq!((stats.committed, stats.aborted, stats.parts), (0, 0, 2));
    }

    #[test]
    fn a_push_outside_a_part_is_an_error_and_a_missing_dir_is_named() {
        let mut s = Streamed::new(None);
        assert!(s.push(Lsn(1), None, b"x").is_err());
        let mut s = Streamed::new(Some(Path::new("/nonexistent/pgarrow-spill")));
        let e = s.start(1, true).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/pgarrow-spill"), "{e}");
    }

    #[test]
    fn a_later_part_without_the_first_is_refused() {
        let mut s = Streamed::new(None);
        let e = s.start(9, false).unwrap_err().to_string();
        assert!(e.contains("without its first part"), "{e}");
    }

    #[test]
    fn a_first_part_again_starts_over() {
        let mut s = Streamed::new(None);
        s.start(7, true).unwrap();
        s.push(Lsn(1), Some(7), b"stale").unwrap();
        s.stop();
        s.start(7, true).unwrap();
        s.push(Lsn(2), Some(7), b"fresh").unwrap();
        s.stop();
        assert_eq!(
            read_all(s.commit(7).unwrap().unwrap()),
            vec![(2, b"fresh".to_vec())]
        );
    }
}
