//! What a sink writes: the format, Parquet's compression and row groups, how intervals are
//! held in Arrow IPC, and the file's metadata.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::{Error, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC file format (Feather v2).
    ArrowFile,
    /// Arrow IPC streaming format.
    ArrowStream,
    /// Decode and discard: for measuring.
    Null,
}

impl Format {
    /// The extension of a file in this format, as pgarrow names its files (`parquet`,
    /// `arrow`, `arrows`; `null` for [`Format::Null`], which writes none).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::ArrowFile => "arrow",
            Format::ArrowStream => "arrows",
            Format::Null => "null",
        }
    }

    /// The format implied by a file name's extension, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "parquet" | "pq" => Format::Parquet,
            "arrow" | "feather" | "ipc" => Format::ArrowFile,
            "arrows" => Format::ArrowStream,
            _ => return None,
        })
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        Ok(match s {
            "parquet" => Format::Parquet,
            "arrow" | "ipc" | "feather" => Format::ArrowFile,
            "arrow-stream" | "arrows" => Format::ArrowStream,
            "null" => Format::Null,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown format \"{other}\" (expected parquet, arrow, arrow-stream or null)"
                )));
            }
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Parquet => "parquet",
            Format::ArrowFile => "arrow",
            Format::ArrowStream => "arrow-stream",
            Format::Null => "null",
        })
    }
}

/// Parquet compression codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Zstandard at the given level (default 3).
    Zstd(i32),
    /// Snappy.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// Gzip at level 6.
    Gzip,
    /// No compression.
    None,
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Compression> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (s, None),
        };
        Ok(match (name, level) {
            ("zstd", None) => Compression::Zstd(3),
            ("zstd", Some(l)) => Compression::Zstd(
                l.parse()
                    .map_err(|_| Error::Invalid(format!("invalid zstd level \"{l}\"")))?,
            ),
            ("snappy", None) => Compression::Snappy,
            ("lz4", None) => Compression::Lz4,
            ("gzip", None) => Compression::Gzip,
            ("none" | "uncompressed", None) => Compression::None,
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown compression \"{s}\" (expected zstd[:LEVEL], snappy, lz4, gzip or none)"
                )));
            }
        })
    }
}

impl fmt::Display for Compression {
    /// As [`FromStr`] reads it: `zstd:LEVEL`, `snappy`, `lz4`, `gzip`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Zstd(level) => write!(f, "zstd:{level}"),
            Compression::Snappy => f.write_str("snappy"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Gzip => f.write_str("gzip"),
            Compression::None => f.write_str("none"),
        }
    }
}

/// Options for the file formats: [`SinkOptions::default`], then `with_*` for each setting
/// (the shape of arrow-ipc's `IpcWriteOptions`); [`validate`](SinkOptions::validate) checks
/// them together, as parquet's `WriterProperties` builder does when it builds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Parquet compression (default zstd level 3).
    pub compression: Compression,
    /// Rows per Parquet row group (default 1,048,576).
    pub row_group_rows: usize,
    /// A Parquet row group is also closed once its encoded data buffered in memory reaches
    /// this many bytes (default 32 MiB): the writer holds a whole row group until it is
    /// closed, so this is what bounds its memory on wide rows.
    pub row_group_bytes: usize,
    /// Key-value metadata added to the file.
    pub metadata: Vec<(String, String)>,
    /// How Arrow IPC files hold intervals (Parquet always holds the struct form).
    pub intervals: IntervalEncoding,
    /// The output's write buffer (1 MiB; less where many files are open at once).
    pub(crate) buffer_bytes: usize,
}

/// How intervals (`Interval(MonthDayNano)`, at any depth) are written to Arrow IPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntervalEncoding {
    /// Arrow's own MonthDayNano interval (default): exact, read by pyarrow, pandas and DuckDB.
    #[default]
    Native,
    /// `Struct{months: Int32, days: Int32, microseconds: Int64}`, as Parquet files hold
    /// them: exact, and readable by readers without MonthDayNano (polars).
    Struct,
}

impl FromStr for IntervalEncoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(Self::Native),
            "struct" => Ok(Self::Struct),
            other => Err(Error::usage(format!(
                "unknown interval encoding \"{other}\" (expected native or struct)"
            ))),
        }
    }
}

impl fmt::Display for IntervalEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Struct => "struct",
        })
    }
}

/// The default of [`SinkOptions::row_group_bytes`].
pub const DEFAULT_ROW_GROUP_BYTES: usize = 32 << 20;

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            compression: Compression::Zstd(3),
            row_group_rows: 1 << 20,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            metadata: Vec::new(),
            intervals: IntervalEncoding::Native,
            buffer_bytes: 1 << 20,
        }
    }
}

impl SinkOptions {
    /// Parquet compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Rows per Parquet row group.
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows;
        self
    }

    /// Bytes of encoded data that close a Parquet row group early.
    pub fn with_row_group_bytes(mut self, bytes: usize) -> Self {
        self.row_group_bytes = bytes;
        self
    }

    /// The file's extra key-value metadata (replacing any given before).
    pub fn with_metadata(mut self, metadata: Vec<(String, String)>) -> Self {
        self.metadata = metadata;
        self
    }

    /// How Arrow IPC files hold intervals.
    pub fn with_intervals(mut self, intervals: IntervalEncoding) -> Self {
        self.intervals = intervals;
        self
    }

    /// Checks the options (compression level, row group size) without writing anything.
    ///
    /// # Errors
    /// The first invalid option.
    pub fn validate(&self) -> Result<()> {
        if self.row_group_rows == 0 {
            return Err(Error::Invalid("row groups need at least one row".into()));
        }
        if self.row_group_bytes == 0 {
            return Err(Error::Invalid("row groups need at least one byte".into()));
        }
        writer_properties(self).map(|_| ())
    }
}

pub(crate) fn writer_properties(options: &SinkOptions) -> Result<WriterProperties> {
    let compression = match options.compression {
        Compression::Zstd(level) => parquet::basic::Compression::ZSTD(
            ZstdLevel::try_new(level).map_err(|e| Error::Invalid(format!("zstd level: {e}")))?,
        ),
        Compression::Snappy => parquet::basic::Compression::SNAPPY,
        Compression::Lz4 => parquet::basic::Compression::LZ4_RAW,
        Compression::Gzip => parquet::basic::Compression::GZIP(GzipLevel::default()),
        Compression::None => parquet::basic::Compression::UNCOMPRESSED,
    };
    let kv: Vec<KeyValue> = options
        .metadata
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_created_by(format!("pgarrow {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata((!kv.is_empty()).then_some(kv))
        .build())
}

#[cfg(test)]
mod choice_tests {
    use super::*;

    #[test]
    fn every_word_round_trips() {
        for word in ["parquet", "arrow", "arrow-stream", "null"] {
            assert_eq!(word.parse::<Format>().unwrap().to_string(), word);
        }
        assert_eq!("ipc".parse::<Format>().unwrap(), Format::ArrowFile);
        assert_eq!("feather".parse::<Format>().unwrap(), Format::ArrowFile);
        assert_eq!("arrows".parse::<Format>().unwrap(), Format::ArrowStream);
        for word in ["zstd:3", "zstd:19", "snappy", "lz4", "gzip", "none"] {
            assert_eq!(word.parse::<Compression>().unwrap().to_string(), word);
        }
        assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd(3));
        assert_eq!(
            "uncompressed".parse::<Compression>().unwrap(),
            Compression::None
        );
        for word in ["native", "struct"] {
            assert_eq!(word.parse::<IntervalEncoding>().unwrap().to_string(), word);
        }
    }

    #[test]
    fn a_wrong_word_names_itself_and_the_words() {
        let cases = [
            (
                "csv".parse::<Format>().unwrap_err(),
                "\"csv\"",
                "parquet, arrow, arrow-stream or null",
            ),
            (
                "brotli".parse::<Compression>().unwrap_err(),
                "\"brotli\"",
                "zstd[:LEVEL], snappy, lz4, gzip or none",
            ),
            (
                "snappy:2".parse::<Compression>().unwrap_err(),
                "\"snappy:2\"",
                "zstd[:LEVEL], snappy, lz4, gzip or none",
            ),
            (
                "tuple".parse::<IntervalEncoding>().unwrap_err(),
                "\"tuple\"",
                "native or struct",
            ),
        ];
        for (e, word, words) in cases {
            assert!(e.is_usage(), "{e}");
            let message = e.to_string();
            assert!(
                message.contains(word) && message.contains(words),
                "{message}"
            );
        }
    }

    #[test]
    fn options_are_set_with() {
        let o = SinkOptions::default()
            .with_compression(Compression::Snappy)
            .with_row_group_rows(10)
            .with_row_group_bytes(1 << 20)
            .with_metadata(vec![("k".into(), "v".into())])
            .with_intervals(IntervalEncoding::Struct);
        assert_eq!(o.compression, Compression::Snappy);
        assert_eq!(o.row_group_rows, 10);
        assert_eq!(o.row_group_bytes, 1 << 20);
        assert_eq!(o.intervals, IntervalEncoding::Struct);
        o.validate().unwrap();
    }
}
