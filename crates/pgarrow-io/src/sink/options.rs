//! What a sink writes: the format, Parquet's compression and row groups, how intervals are
//! held in Arrow IPC, and the file's metadata.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use parquet::basic::{GzipLevel, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder, WriterVersion};

use super::parquet_compat::ValueForms;
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
    /// Threads a Parquet row group's columns are encoded on (default 1: the caller's own).
    /// More when one file is written at a time and cores are idle: the file is the same.
    pub encode_threads: usize,
    /// Key-value metadata added to the file.
    pub metadata: Vec<(String, String)>,
    /// How Arrow IPC files hold intervals (Parquet always holds the struct form).
    pub intervals: IntervalEncoding,
    /// The output's write buffer (1 MiB; less where many files are open at once).
    pub(crate) buffer_bytes: usize,
    /// Whether each local file is synced as it is finished (a laid-out export's writer syncs
    /// its thousands of files at once instead).
    pub(crate) sync: bool,
    /// Parquet bloom filters, on these columns.
    pub bloom_filters: Vec<BloomFilter>,
    /// Parquet encodings chosen per column (the writer's choice otherwise: a dictionary,
    /// falling back to plain when it grows too large).
    pub encodings: Vec<ColumnEncoding>,
    /// Parquet data pages of version 2 (uncompressed levels; readers may skip to a row).
    pub data_page_v2: bool,
    /// Parquet field IDs, numbered as Iceberg numbers a new table's columns: top-level columns
    /// 1..n in order, then the fields nested in them, each struct's fields before what they
    /// hold.
    pub field_ids: bool,
    /// With `field_ids`: IDs some fields keep (an existing Iceberg table's columns).
    pub known_field_ids: Option<Arc<FieldIds>>,
    /// Geometry columns (`geoarrow.wkb`) typed with Parquet's own GEOMETRY and GEOGRAPHY
    /// logical types (with their CRS and edges, and the bounding boxes in the column
    /// statistics), as readers of GeoParquet 2.0 expect; otherwise plain binary described by
    /// GeoParquet 1.1's `geo` metadata alone (which is written either way), for readers that
    /// know no logical geometry types.
    pub geo_types: bool,
    /// GeoParquet 1.1's bbox covering: for each geometry column `g`, a column `g_bbox` (a
    /// struct of `xmin`, `ymin`, `xmax`, `ymax`) with each value's bounding box, which the
    /// `geo` metadata names, so that readers skip row groups by its statistics.
    pub geo_bbox: bool,
    /// The columns the rows are ordered by, which Parquet's `sorting_columns` then names in
    /// every row group (readers skip and merge by it). Checked as the rows are written: rows
    /// out of that order are an error, never a false claim.
    pub sorted_by: Vec<SortKey>,
    /// Arrow extension types (`arrow.json`, `arrow.uuid`, `geoarrow.wkb`) kept in the file's
    /// schema; without them a JSON column is plain text and a geometry plain binary, as table
    /// formats whose schema has no such types (Delta) want their readers to see them.
    pub arrow_extensions: bool,
    /// Values given another exact form, for a table format without their types (none by
    /// default): see [`ValueForms`].
    pub forms: ValueForms,
}

/// A top-level column the rows are ordered by, as PostgreSQL's `ORDER BY` orders them:
/// ascending with NULLs last, or descending with NULLs first. Parsed from `COLUMN`,
/// `COLUMN:asc` or `COLUMN:desc`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SortKey {
    /// The column.
    pub column: String,
    /// Descending (NULLs first), else ascending (NULLs last).
    pub descending: bool,
}

impl SortKey {
    /// `column`, ascending or descending.
    pub fn new(column: impl Into<String>, descending: bool) -> SortKey {
        SortKey {
            column: column.into(),
            descending,
        }
    }
}

impl FromStr for SortKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (column, descending) = match s.rsplit_once(':') {
            Some((c, d)) if d.eq_ignore_ascii_case("desc") => (c, true),
            Some((c, a)) if a.eq_ignore_ascii_case("asc") => (c, false),
            _ => (s, false),
        };
        if column.is_empty() {
            return Err(Error::usage(format!(
                "invalid sort key \"{s}\" (expected COLUMN, COLUMN:asc or COLUMN:desc)"
            )));
        }
        Ok(SortKey::new(column, descending))
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = if self.descending { "desc" } else { "asc" };
        write!(f, "{}:{order}", self.column)
    }
}

/// A Parquet bloom filter on a column (every leaf under it, for a nested column), with the
/// false-positive rate it is sized for. Parsed from `COLUMN` or `COLUMN:FPP`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BloomFilter {
    /// The top-level column.
    pub column: String,
    /// The false-positive rate, in (0, 1) (default 0.05).
    pub fpp: f64,
}

impl BloomFilter {
    /// A filter on `column` of false-positive rate `fpp`.
    pub fn new(column: impl Into<String>, fpp: f64) -> BloomFilter {
        BloomFilter {
            column: column.into(),
            fpp,
        }
    }
}

impl PartialEq for BloomFilter {
    fn eq(&self, other: &Self) -> bool {
        self.column == other.column && self.fpp.to_bits() == other.fpp.to_bits()
    }
}

impl Eq for BloomFilter {}

impl FromStr for BloomFilter {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (column, fpp) = match s.rsplit_once(':') {
            Some((c, f)) if f.trim().parse::<f64>().is_ok() => (c, f.trim().parse::<f64>().ok()),
            _ => (s, None),
        };
        let fpp = fpp.unwrap_or(parquet::file::properties::DEFAULT_BLOOM_FILTER_FPP);
        if column.is_empty() || !(fpp > 0.0 && fpp < 1.0) {
            return Err(Error::usage(format!(
                "invalid bloom filter \"{s}\" (expected COLUMN or COLUMN:FPP, a false-positive \
                 rate between 0 and 1 such as 0.01)"
            )));
        }
        Ok(BloomFilter::new(column, fpp))
    }
}

impl fmt::Display for BloomFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.column, self.fpp)
    }
}

/// A Parquet encoding for a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Plain values, no dictionary.
    Plain,
    /// A dictionary per column chunk (the default for every column).
    Dictionary,
    /// DELTA_BINARY_PACKED: integers.
    Delta,
    /// DELTA_LENGTH_BYTE_ARRAY: text and bytes.
    DeltaLength,
    /// DELTA_BYTE_ARRAY (incremental prefixes): text and bytes, sorted ones best.
    DeltaPrefix,
    /// BYTE_STREAM_SPLIT: floats (and fixed-width integers and bytes).
    ByteStreamSplit,
    /// RLE: booleans.
    Rle,
}

const ENCODINGS: &str =
    "plain, dictionary, delta, delta-length, delta-prefix, byte-stream-split or rle";

impl FromStr for Encoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "plain" => Encoding::Plain,
            "dictionary" => Encoding::Dictionary,
            "delta" => Encoding::Delta,
            "delta-length" => Encoding::DeltaLength,
            "delta-prefix" => Encoding::DeltaPrefix,
            "byte-stream-split" => Encoding::ByteStreamSplit,
            "rle" => Encoding::Rle,
            other => {
                return Err(Error::usage(format!(
                    "unknown encoding \"{other}\" (expected {ENCODINGS})"
                )));
            }
        })
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Plain => "plain",
            Encoding::Dictionary => "dictionary",
            Encoding::Delta => "delta",
            Encoding::DeltaLength => "delta-length",
            Encoding::DeltaPrefix => "delta-prefix",
            Encoding::ByteStreamSplit => "byte-stream-split",
            Encoding::Rle => "rle",
        })
    }
}

impl Encoding {
    fn parquet(self) -> parquet::basic::Encoding {
        use parquet::basic::Encoding as E;
        match self {
            Encoding::Plain | Encoding::Dictionary => E::PLAIN,
            Encoding::Delta => E::DELTA_BINARY_PACKED,
            Encoding::DeltaLength => E::DELTA_LENGTH_BYTE_ARRAY,
            Encoding::DeltaPrefix => E::DELTA_BYTE_ARRAY,
            Encoding::ByteStreamSplit => E::BYTE_STREAM_SPLIT,
            Encoding::Rle => E::RLE,
        }
    }

    /// Whether it can hold values of this physical type.
    fn takes(self, physical: parquet::basic::Type) -> bool {
        use parquet::basic::Type as T;
        match self {
            Encoding::Plain | Encoding::Dictionary => true,
            Encoding::Delta => matches!(physical, T::INT32 | T::INT64),
            Encoding::DeltaLength => physical == T::BYTE_ARRAY,
            Encoding::DeltaPrefix => matches!(physical, T::BYTE_ARRAY | T::FIXED_LEN_BYTE_ARRAY),
            Encoding::ByteStreamSplit => matches!(
                physical,
                T::FLOAT | T::DOUBLE | T::INT32 | T::INT64 | T::FIXED_LEN_BYTE_ARRAY
            ),
            Encoding::Rle => physical == T::BOOLEAN,
        }
    }
}

/// A Parquet encoding chosen for a column (every leaf under it). Parsed from
/// `COLUMN=ENCODING`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnEncoding {
    /// The top-level column.
    pub column: String,
    /// Its encoding.
    pub encoding: Encoding,
}

impl ColumnEncoding {
    /// `column` encoded as `encoding`.
    pub fn new(column: impl Into<String>, encoding: Encoding) -> ColumnEncoding {
        ColumnEncoding {
            column: column.into(),
            encoding,
        }
    }
}

impl FromStr for ColumnEncoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let Some((column, encoding)) = s.rsplit_once('=').filter(|(c, _)| !c.is_empty()) else {
            return Err(Error::usage(format!(
                "invalid column encoding \"{s}\" (expected COLUMN=ENCODING, ENCODING one of \
                 {ENCODINGS})"
            )));
        };
        Ok(ColumnEncoding::new(column, encoding.trim().parse()?))
    }
}

impl fmt::Display for ColumnEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.column, self.encoding)
    }
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
            encode_threads: 1,
            metadata: Vec::new(),
            intervals: IntervalEncoding::Native,
            buffer_bytes: 1 << 20,
            sync: true,
            bloom_filters: Vec::new(),
            encodings: Vec::new(),
            data_page_v2: false,
            field_ids: false,
            known_field_ids: None,
            geo_types: false,
            geo_bbox: false,
            sorted_by: Vec::new(),
            arrow_extensions: true,
            forms: ValueForms::default(),
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

    /// Sets [`encode_threads`](Self::encode_threads).
    pub fn with_encode_threads(mut self, threads: usize) -> Self {
        self.encode_threads = threads.max(1);
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

    /// Values given another exact form, for a table format without their types.
    pub fn with_forms(mut self, forms: ValueForms) -> Self {
        self.forms = forms;
        self
    }

    /// Parquet bloom filters (replacing any given before).
    pub fn with_bloom_filters(mut self, filters: Vec<BloomFilter>) -> Self {
        self.bloom_filters = filters;
        self
    }

    /// Parquet encodings per column (replacing any given before).
    pub fn with_encodings(mut self, encodings: Vec<ColumnEncoding>) -> Self {
        self.encodings = encodings;
        self
    }

    /// Parquet data pages of version 2.
    pub fn with_data_page_v2(mut self, v2: bool) -> Self {
        self.data_page_v2 = v2;
        self
    }

    /// Parquet field IDs, numbered as Iceberg numbers columns.
    pub fn with_field_ids(mut self, field_ids: bool) -> Self {
        self.field_ids = field_ids;
        self
    }

    /// Parquet field IDs, `ids` kept where it knows the field (an existing Iceberg table's
    /// columns), the others numbered after them.
    pub fn with_known_field_ids(mut self, ids: FieldIds) -> Self {
        self.field_ids = true;
        self.known_field_ids = Some(Arc::new(ids));
        self
    }

    /// Parquet's GEOMETRY and GEOGRAPHY logical types for geometry columns.
    pub fn with_geo_types(mut self, geo_types: bool) -> Self {
        self.geo_types = geo_types;
        self
    }

    /// GeoParquet's bbox covering columns, one per geometry column.
    pub fn with_geo_bbox(mut self, geo_bbox: bool) -> Self {
        self.geo_bbox = geo_bbox;
        self
    }

    /// Whether the file's schema keeps Arrow extension types (the default).
    pub fn with_arrow_extensions(mut self, keep: bool) -> Self {
        self.arrow_extensions = keep;
        self
    }

    /// The columns the rows are ordered by, for Parquet's `sorting_columns` (checked as the
    /// rows are written).
    pub fn with_sorted_by(mut self, keys: Vec<SortKey>) -> Self {
        self.sorted_by = keys;
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
        writer_properties(self, None).map(|_| ())
    }
}

pub(crate) fn writer_properties(
    options: &SinkOptions,
    schema: Option<&Schema>,
) -> Result<WriterProperties> {
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
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_created_by(format!("pgarrow {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata((!kv.is_empty()).then_some(kv));
    if options.data_page_v2 {
        builder = builder.set_writer_version(WriterVersion::PARQUET_2_0);
    }
    if let Some(schema) = schema {
        builder = column_properties(builder, options, schema)?;
    }
    Ok(builder.build())
}

/// The per-column settings (bloom filters, encodings) on every leaf under their top-level
/// columns, checked against the file's schema.
fn column_properties(
    mut builder: WriterPropertiesBuilder,
    options: &SinkOptions,
    schema: &Schema,
) -> Result<WriterPropertiesBuilder> {
    if options.bloom_filters.is_empty()
        && options.encodings.is_empty()
        && options.sorted_by.is_empty()
    {
        return Ok(builder);
    }
    let descriptor = parquet::arrow::ArrowSchemaConverter::new().convert(schema)?;
    let leaves = |column: &str, what: &str| -> Result<Vec<_>> {
        let found: Vec<_> = descriptor
            .columns()
            .iter()
            .filter(|c| c.path().parts().first().is_some_and(|p| p == column))
            .cloned()
            .collect();
        if found.is_empty() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(Error::usage(format!(
                "{what} on column \"{column}\": the result has no such column (its columns: {})",
                names.join(", ")
            )));
        }
        Ok(found)
    };
    for filter in &options.bloom_filters {
        for leaf in leaves(&filter.column, "a bloom filter")? {
            builder = builder
                .set_column_bloom_filter_enabled(leaf.path().clone(), true)
                .set_column_bloom_filter_fpp(leaf.path().clone(), filter.fpp);
        }
    }
    if !options.sorted_by.is_empty() {
        let mut sorting = Vec::new();
        for key in &options.sorted_by {
            let leaf = match &leaves(&key.column, "a sort order")?[..] {
                [leaf] if leaf.path().parts().len() == 1 => leaf.clone(),
                _ => {
                    return Err(Error::usage(format!(
                        "a sort order on column \"{}\": a nested column has no order of its own \
                         (name a scalar column)",
                        key.column
                    )));
                }
            };
            let column_idx = descriptor
                .columns()
                .iter()
                .position(|c| c.path() == leaf.path())
                .expect("the leaf is one of the descriptor's columns");
            sorting.push(SortingColumn {
                column_idx: column_idx as i32,
                descending: key.descending,
                nulls_first: key.descending,
            });
        }
        builder = builder.set_sorting_columns(Some(sorting));
    }
    for choice in &options.encodings {
        for leaf in leaves(&choice.column, "an encoding")? {
            if !choice.encoding.takes(leaf.physical_type()) {
                return Err(Error::usage(format!(
                    "encoding {} cannot hold column \"{}\" ({} values in Parquet)",
                    choice.encoding,
                    leaf.path().string(),
                    leaf.physical_type()
                )));
            }
            let path = leaf.path().clone();
            builder = match choice.encoding {
                Encoding::Dictionary => builder.set_column_dictionary_enabled(path, true),
                other => builder
                    .set_column_dictionary_enabled(path.clone(), false)
                    .set_column_encoding(path, other.parquet()),
            };
        }
    }
    Ok(builder)
}

/// Parquet field IDs that some fields keep (an existing Iceberg table's columns), by path: a
/// top-level column's name, then the names of the fields nested in it (`element` for a list's
/// element, `key` and `value` for a map's, whatever Arrow calls them). A field not here takes
/// the next ID from `next`, in the order [`with_field_ids`] numbers fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIds {
    /// IDs by path.
    pub known: std::collections::HashMap<Vec<String>, i32>,
    /// The ID of the first field not in `known`.
    pub next: i32,
}

impl Default for FieldIds {
    /// No known IDs: numbered from 1, as a new table's.
    fn default() -> FieldIds {
        FieldIds {
            known: Default::default(),
            next: 1,
        }
    }
}

/// `schema` with Parquet field IDs (`PARQUET:field_id`) numbered as Iceberg numbers a new
/// table's columns: the top-level columns 1..n, then, column by column, the fields nested in
/// each (a struct's fields, a list's element, a map's key and value) before what they hold.
pub fn with_field_ids(schema: &Schema) -> Schema {
    with_field_ids_from(schema, &FieldIds::default())
}

/// `schema` with Parquet field IDs: those `ids` knows by path, and the others numbered from
/// `ids.next` as [`with_field_ids`] numbers them.
pub fn with_field_ids_from(schema: &Schema, ids: &FieldIds) -> Schema {
    let mut numbering = Numbering {
        known: &ids.known,
        next: ids.next,
    };
    let fields = numbering.fields(schema.fields(), &[]);
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

struct Numbering<'a> {
    known: &'a std::collections::HashMap<Vec<String>, i32>,
    next: i32,
}

impl Numbering<'_> {
    fn id(&mut self, path: &[String]) -> i32 {
        match self.known.get(path) {
            Some(id) => *id,
            None => {
                self.next += 1;
                self.next - 1
            }
        }
    }

    fn fields(&mut self, fields: &Fields, parent: &[String]) -> Vec<Field> {
        let paths: Vec<Vec<String>> = fields
            .iter()
            .map(|f| [parent, &[f.name().clone()]].concat())
            .collect();
        let ids: Vec<i32> = paths.iter().map(|p| self.id(p)).collect();
        fields
            .iter()
            .zip(ids)
            .zip(&paths)
            .map(|((f, id), path)| {
                let data_type = self.data_type(f.data_type(), path);
                with_id(f.as_ref().clone().with_data_type(data_type), id)
            })
            .collect()
    }

    fn element(&mut self, f: &FieldRef, path: &[String]) -> FieldRef {
        let path = [path, &["element".to_owned()]].concat();
        let id = self.id(&path);
        let data_type = self.data_type(f.data_type(), &path);
        Arc::new(with_id(f.as_ref().clone().with_data_type(data_type), id))
    }

    fn data_type(&mut self, data_type: &DataType, path: &[String]) -> DataType {
        match data_type {
            DataType::Struct(fields) => DataType::Struct(self.fields(fields, path).into()),
            DataType::List(f) => DataType::List(self.element(f, path)),
            DataType::LargeList(f) => DataType::LargeList(self.element(f, path)),
            DataType::FixedSizeList(f, n) => DataType::FixedSizeList(self.element(f, path), *n),
            DataType::Map(entries, sorted) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => {
                    // A map's key and value by their place, as Iceberg names them.
                    let names = ["key", "value"];
                    let paths: Vec<Vec<String>> = names
                        .iter()
                        .map(|n| [path, &[(*n).to_owned()]].concat())
                        .collect();
                    let ids: Vec<i32> = paths.iter().map(|p| self.id(p)).collect();
                    let numbered: Fields = kv
                        .iter()
                        .zip(ids)
                        .zip(&paths)
                        .map(|((f, id), p)| {
                            let data_type = self.data_type(f.data_type(), p);
                            with_id(f.as_ref().clone().with_data_type(data_type), id)
                        })
                        .collect::<Vec<_>>()
                        .into();
                    let entries = entries
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Struct(numbered));
                    DataType::Map(Arc::new(entries), *sorted)
                }
                _ => data_type.clone(),
            },
            other => other.clone(),
        }
    }
}

fn with_id(field: Field, id: i32) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.insert(PARQUET_FIELD_ID_META_KEY.to_owned(), id.to_string());
    field.with_metadata(metadata)
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

#[cfg(test)]
mod parquet_option_tests {
    use super::*;
    use crate::{Output, Sink};
    use arrow_array::{Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
    use parquet::column::page::Page;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn batch() -> RecordBatch {
        let tags = ListArray::from_iter_primitive::<arrow_array::types::Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
        ]);
        let point = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![5, 6])) as arrow_array::ArrayRef,
        )]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("tags", tags.data_type().clone(), true),
            Field::new("point", point.data_type().clone(), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(tags),
                Arc::new(point),
            ],
        )
        .unwrap()
    }

    fn write(options: &SinkOptions) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let b = batch();
        let mut sink = Sink::create(
            Format::Parquet,
            Output::File(path.clone()),
            &b.schema(),
            options,
        )
        .unwrap();
        sink.write(&b).unwrap();
        sink.finish().unwrap();
        (dir, path)
    }

    /// Iceberg's numbering: top-level 1..4, then tags' element 5, then point's x 6.
    #[test]
    fn field_ids_are_numbered_as_iceberg_numbers_them() {
        let (_dir, path) = write(&SinkOptions::default().with_field_ids(true));
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let root = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .root_schema()
            .clone();
        let ids: Vec<(String, i32)> = root
            .get_fields()
            .iter()
            .map(|f| (f.name().to_owned(), f.get_basic_info().id()))
            .collect();
        assert_eq!(
            ids,
            [
                ("id".into(), 1),
                ("name".into(), 2),
                ("tags".into(), 3),
                ("point".into(), 4)
            ]
        );
        let leaves: Vec<(String, i32)> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| (c.path().string(), c.self_type().get_basic_info().id()))
            .collect();
        assert_eq!(leaves[2], ("tags.list.item".into(), 5));
        assert_eq!(leaves[3], ("point.x".into(), 6));
    }

    #[test]
    fn known_field_ids_are_kept_and_the_others_numbered_after_them() {
        let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let ids = FieldIds {
            known: [
                (path(&["name"]), 7),
                (path(&["tags"]), 3),
                (path(&["tags", "element"]), 9),
            ]
            .into(),
            next: 20,
        };
        let (_dir, file) = write(&SinkOptions::default().with_known_field_ids(ids));
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let leaves: Vec<(String, i32)> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| (c.path().string(), c.self_type().get_basic_info().id()))
            .collect();
        // id and point are new (20, 21, in order), point's fields after them.
        assert_eq!(leaves[0], ("id".into(), 20));
        assert_eq!(leaves[1], ("name".into(), 7));
        assert_eq!(leaves[2], ("tags.list.item".into(), 9));
        assert_eq!(leaves[3], ("point.x".into(), 22));
    }

    #[test]
    fn bloom_filters_encodings_and_the_page_index() {
        let options = SinkOptions::default()
            .with_bloom_filters(vec!["name:0.01".parse().unwrap()])
            .with_encodings(vec!["id=delta".parse().unwrap()])
            .with_data_page_v2(true);
        let (_dir, path) = write(&options);
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        assert!(group.column(1).bloom_filter_offset().is_some());
        assert!(group.column(0).bloom_filter_offset().is_none());
        assert!(
            group
                .column(0)
                .encodings()
                .any(|e| e == parquet::basic::Encoding::DELTA_BINARY_PACKED)
        );
        // The page index (column and offset indexes) is written by default.
        assert!(group.column(0).column_index_offset().is_some());
        assert!(group.column(0).offset_index_offset().is_some());
        let mut pages = reader
            .get_row_group(0)
            .unwrap()
            .get_column_page_reader(0)
            .unwrap();
        let page = pages.get_next_page().unwrap().unwrap();
        assert!(
            matches!(page, Page::DataPageV2 { .. }),
            "{:?}",
            page.page_type()
        );
    }

    #[test]
    fn column_choices_name_what_is_wrong() {
        let cases = [
            (
                SinkOptions::default().with_bloom_filters(vec!["nope".parse().unwrap()]),
                "no such column",
            ),
            (
                SinkOptions::default().with_encodings(vec!["name=delta".parse().unwrap()]),
                "cannot hold column \"name\"",
            ),
        ];
        for (options, words) in cases {
            let b = batch();
            let dir = tempfile::tempdir().unwrap();
            let e = Sink::create(
                Format::Parquet,
                Output::File(dir.path().join("t.parquet")),
                &b.schema(),
                &options,
            )
            .unwrap_err();
            assert!(e.is_usage() && e.to_string().contains(words), "{e}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        for bad in ["x:2", ":0.1", "x:0"] {
            assert!(bad.parse::<BloomFilter>().is_err(), "{bad}");
        }
        assert_eq!("a:b:0.5".parse::<BloomFilter>().unwrap().column, "a:b");
        assert!(
            "x=zip"
                .parse::<ColumnEncoding>()
                .unwrap_err()
                .to_string()
                .contains("byte-stream-split")
        );
        for word in [
            "plain",
            "dictionary",
            "delta",
            "delta-length",
            "delta-prefix",
            "byte-stream-split",
            "rle",
        ] {
            assert_eq!(word.parse::<Encoding>().unwrap().to_string(), word);
        }
    }
}
