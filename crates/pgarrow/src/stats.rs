//! What an export did and where its time went.

use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::policy::LossReport;

/// Statistics of one export: counts, and the time spent in each phase.
///
/// Phases follow the data: `connect`, `describe` (Parse/Describe and the catalog query, also
/// counted apart as `catalog`), `first_byte` (from sending the COPY until its first data
/// arrived: the server planning and starting the query), `read` (waiting for the socket after
/// that), `decode` (walking the COPY data into Arrow buffers and building batches), and, when a
/// pipeline writes the batches, `write` (encoding and writing, on the writer thread, in
/// parallel with reading and decoding) and `finish` (footer, flush, sync and rename).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Connecting and authenticating (zero when the client had already been used).
    pub connect: Duration,
    /// Describing the source, the catalog query included.
    pub describe: Duration,
    /// The catalog query alone (part of `describe`).
    pub catalog: Duration,
    /// From sending the COPY until its first data arrived.
    pub first_byte: Duration,
    /// Waiting for the socket after the first data.
    pub read: Duration,
    /// Decoding COPY data into batches.
    pub decode: Duration,
    /// Encoding and writing batches (writer thread).
    pub write: Duration,
    /// Finishing the output.
    pub finish: Duration,
    /// Wall time from the start of the export (connecting included when reported) to now or
    /// its end.
    pub total: Duration,
    /// Rows delivered.
    pub rows: u64,
    /// Batches delivered.
    pub batches: u64,
    /// Bytes of COPY data received.
    pub bytes: u64,
    /// Bytes written to the output, when a pipeline wrote a file or stream.
    pub written: Option<u64>,
    /// Lossy conversions the policies made (empty under the default policies).
    pub losses: LossReport,
    /// The process's peak resident memory so far, where the system tells (Linux).
    pub peak_rss: Option<u64>,
}

impl ExportStats {
    /// The phases in order, with their names (in JSON, each is `NAME_s`).
    pub fn phases(&self) -> [(&'static str, Duration); 8] {
        [
            ("connect", self.connect),
            ("describe", self.describe),
            ("catalog", self.catalog),
            ("first_byte", self.first_byte),
            ("read", self.read),
            ("decode", self.decode),
            ("write", self.write),
            ("finish", self.finish),
        ]
    }

    /// The statistics as one JSON object (its [`Serialize`] form): counts, `total_s`,
    /// `phases` in seconds (`connect_s`, ...), `losses` per column and kind.
    pub fn to_json(&self) -> String {
        // Numbers and strings only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The document form of [`ExportStats`]: what `--json`, `--stats-json` and Python's dicts
/// hold.
#[derive(Serialize)]
struct StatsDocument<'a> {
    rows: u64,
    batches: u64,
    bytes: u64,
    written: Option<u64>,
    peak_rss: Option<u64>,
    #[serde(serialize_with = "seconds")]
    total_s: Duration,
    phases: Phases,
    #[serde(serialize_with = "losses")]
    losses: &'a LossReport,
}

#[derive(Serialize)]
struct Phases {
    #[serde(serialize_with = "seconds")]
    connect_s: Duration,
    #[serde(serialize_with = "seconds")]
    describe_s: Duration,
    #[serde(serialize_with = "seconds")]
    catalog_s: Duration,
    #[serde(serialize_with = "seconds")]
    first_byte_s: Duration,
    #[serde(serialize_with = "seconds")]
    read_s: Duration,
    #[serde(serialize_with = "seconds")]
    decode_s: Duration,
    #[serde(serialize_with = "seconds")]
    write_s: Duration,
    #[serde(serialize_with = "seconds")]
    finish_s: Duration,
}

impl Serialize for ExportStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StatsDocument {
            rows: self.rows,
            batches: self.batches,
            bytes: self.bytes,
            written: self.written,
            peak_rss: self.peak_rss,
            total_s: self.total,
            phases: Phases {
                connect_s: self.connect,
                describe_s: self.describe,
                catalog_s: self.catalog,
                first_byte_s: self.first_byte,
                read_s: self.read,
                decode_s: self.decode,
                write_s: self.write,
                finish_s: self.finish,
            },
            losses: &self.losses,
        }
        .serialize(serializer)
    }
}

/// A duration as seconds (a float), as every document writes times.
pub(crate) fn seconds<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// `{"column": {"kind": count, ...}, ...}` in column order.
fn losses<S: Serializer>(report: &&LossReport, serializer: S) -> Result<S::Ok, S::Error> {
    loss_report(report, serializer)
}

/// `{"column": {"kind": count, ...}, ...}` in column order.
pub(crate) fn loss_report<S: Serializer>(
    report: &LossReport,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Counts<'a>(&'a crate::policy::Losses);
    impl Serialize for Counts<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(kind, n)| (kind.name(), n)))
        }
    }
    serializer.collect_map(report.columns.iter().map(|(c, l)| (c, Counts(l))))
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`), in bytes.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LossKind, Losses};

    #[test]
    fn json_has_every_phase_and_escapes_names() {
        let mut losses = Losses::default();
        losses.add(LossKind::InfinityToNull, 3);
        let stats = ExportStats {
            rows: 7,
            decode: Duration::from_millis(1500),
            losses: LossReport {
                columns: vec![("a\"b\n".to_owned(), losses)],
            },
            ..ExportStats::default()
        };
        let json = stats.to_json();
        assert!(json.starts_with("{\"rows\":7,"), "{json}");
        assert!(json.contains("\"decode_s\":1.5"), "{json}");
        assert!(json.contains("\"written\":null"), "{json}");
        for (name, _) in stats.phases() {
            assert!(json.contains(&format!("\"{name}_s\":")), "{name}: {json}");
        }
        let kind = LossKind::InfinityToNull.name();
        assert!(
            json.contains(&format!("\"losses\":{{\"a\\\"b\\n\":{{\"{kind}\":3}}}}")),
            "{json}"
        );
    }

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().is_some_and(|b| b > 0));
        }
    }
}
