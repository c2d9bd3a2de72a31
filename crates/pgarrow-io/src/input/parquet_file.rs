//! Opening a Parquet file for a load so that every value it holds is read as written:
//!
//! - INT96 timestamps (Spark's, Impala's, Hive's) are read at a unit that holds them. Arrow's
//!   default is nanoseconds, which wrap silently outside 1677 to 2262 (year 9999 comes back as
//!   1815); each INT96 column is scanned once first, and read in nanoseconds only when every
//!   value fits, else in microseconds when no value has digits below the microsecond, else
//!   refused (no unit holds both).
//! - A column chunk whose dictionary page offset is 0 has no dictionary page (offset 0 is
//!   the file's magic number; some writers put 0 for "none"): it is read from its first data
//!   page.
//! - Page checksums are verified where the writer wrote them (the `crc` feature of the
//!   parquet crate): a flipped bit is an error, never a value.
//! - INTERVAL columns (months, days and milliseconds; DuckDB writes them) are read whole.
//!   The parquet crate reads them as Arrow's Interval(DayTime), dropping the months, and has
//!   no type that holds all three; a top-level INTERVAL column is read a second time for its
//!   months (Interval(YearMonth), its own column chunks only) and the two are put together as
//!   Interval(MonthDayNano), exactly. One inside a Struct or List is refused by name.

use super::{Malformed, malformed};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{IntervalDayTimeType, IntervalMonthDayNano, IntervalYearMonthType};
use arrow_array::{Array, IntervalMonthDayNanoArray, RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReader;
use parquet::data_type::Int96;
use parquet::errors::ParquetError;
use parquet::file::metadata::page_index::RowGroupPageIndex;
use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataBuilder, ParquetMetaDataReader,
};
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedRowGroupReader;

use super::Batches;
use crate::{Error, Result};

/// The Julian day of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i128 = 2_440_588;
const NANOS_PER_DAY: i128 = 86_400_000_000_000;

/// What an INT96 column holds, from a scan of its values.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int96Scan {
    /// Some value is outside i64 nanoseconds from 1970 (1677-09-21 to 2262-04-11).
    pub(crate) beyond_nanos: bool,
    /// Some value is outside i64 microseconds from 1970 (about ±292,000 years).
    pub(crate) beyond_micros: bool,
    /// Some value has nanoseconds that are not whole microseconds.
    pub(crate) sub_micros: bool,
}

impl Int96Scan {
    pub(crate) fn add(&mut self, v: &Int96) {
        let &[lo, hi, day] = v.data() else {
            return;
        };
        let nanos_of_day = i128::from(u64::from(lo) | (u64::from(hi) << 32));
        let nanos = (i128::from(day) - UNIX_EPOCH_JULIAN_DAY) * NANOS_PER_DAY + nanos_of_day;
        self.beyond_nanos |= i64::try_from(nanos).is_err();
        self.beyond_micros |= i64::try_from(nanos.div_euclid(1_000)).is_err();
        self.sub_micros |= nanos % 1_000 != 0;
    }

    /// The unit to read the column at; why none holds it.
    fn unit(&self, column: &str) -> Result<TimeUnit, Malformed> {
        match (self.beyond_nanos, self.beyond_micros, self.sub_micros) {
            (false, _, _) => Ok(TimeUnit::Nanosecond),
            (true, false, false) => Ok(TimeUnit::Microsecond),
            (true, true, _) => Err(malformed!(
                "column \"{column}\": an INT96 timestamp is more than 292,000 years from 1970, \
                 outside every timestamp PostgreSQL holds"
            )),
            (true, false, true) => Err(malformed!(
                "column \"{column}\": its INT96 timestamps are both outside 1677 to 2262 \
                 (Arrow's nanosecond range) and finer than microseconds: no Arrow unit holds \
                 them exactly"
            )),
        }
    }
}

/// The batches of the Parquet file `chunks` (`probe` is a second handle on the same bytes, for
/// the INT96 scan), `batch_rows` rows at a time; `shown` names it in errors.
///
/// # Errors
/// [`Error::Input`]: not a Parquet file, or an INT96 column no unit holds.
/// The file's footer (its `FileMetaData`), walked ([`super::thrift::check_footer`]) before
/// the parquet crate decodes it, when the file ends as a Parquet file with a plain footer that
/// fits it, without the fields whose type is not their number's; `None` for anything else,
/// which the parquet crate reads and says what is wrong. The bytes read here are the ones
/// decoded: the footer is fetched once.
fn checked_footer<C: ChunkReader>(chunks: &C) -> std::result::Result<Option<Bytes>, Malformed> {
    let len = chunks.len();
    if len < 12 {
        return Ok(None);
    }
    let Ok(tail) = chunks.get_bytes(len - 8, 8) else {
        return Ok(None);
    };
    let footer_len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if &tail[4..] != b"PAR1" || footer_len > len - 8 {
        return Ok(None);
    }
    let Ok(footer) = chunks.get_bytes(len - 8 - footer_len, footer_len as usize) else {
        return Ok(None);
    };
    match super::thrift::check_footer(&footer)? {
        Some(fixed) => Ok(Some(Bytes::from(fixed))),
        None => Ok(Some(footer)),
    }
}

pub(super) fn open<C, P>(
    chunks: C,
    probe: P,
    batch_rows: usize,
    shown: &str,
) -> Result<(SchemaRef, Batches)>
where
    C: ChunkReader + 'static,
    P: ChunkReader + 'static,
{
    let not_parquet = |e: ParquetError| {
        (Error::Input(e.into())).context(format!("{shown} is not a Parquet file"))
    };
    let footer = checked_footer(&chunks)
        .map_err(|what| not_parquet(ParquetError::General(what.to_string())))?;
    let loaded = match footer {
        Some(footer) => ParquetMetaDataReader::decode_metadata(&footer).and_then(|metadata| {
            ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
        }),
        None => ArrowReaderMetadata::load(&chunks, ArrowReaderOptions::new()),
    }
    .map_err(not_parquet)?;
    let metadata = with_the_row_groups_count(without_zero_dictionary_offsets(loaded.metadata()));
    check_column_ranges(&metadata, chunks.len())
        .map_err(|what| not_parquet(ParquetError::General(what.to_string())))?;
    let schema = loaded.schema().clone();
    // Top-level INT96 columns: (Arrow field index, leaf column index).
    let descr = metadata.file_metadata().schema_descr_ptr();
    let int96: Vec<(usize, usize)> = (0..descr.num_columns())
        .filter(|&leaf| {
            let column = descr.column(leaf);
            column.physical_type() == PhysicalType::INT96 && column.path().parts().len() == 1
        })
        .filter_map(|leaf| {
            let column = descr.column(leaf);
            let name = column.path().parts().first()?;
            schema.index_of(name).ok().map(|field| (field, leaf))
        })
        .filter(|&(field, _)| {
            matches!(
                schema.field(field).data_type(),
                DataType::Timestamp(TimeUnit::Nanosecond, _)
            )
        })
        .collect();
    // Parquet INTERVAL leaves: top-level ones (Arrow field index, leaf index) are put
    // together from two reads; nested ones cannot be.
    let mut intervals: Vec<(usize, usize)> = Vec::new();
    for leaf in 0..descr.num_columns() {
        let column = descr.column(leaf);
        if column.converted_type() != parquet::basic::ConvertedType::INTERVAL {
            continue;
        }
        let parts = column.path().parts();
        match (parts.len(), schema.index_of(&parts[0])) {
            (1, Ok(field)) => intervals.push((field, leaf)),
            _ => {
                return Err((Error::Input(ArrowError::ParquetError(format!(
                    "column \"{}\": a Parquet INTERVAL inside a nested column cannot be read \
                     exactly (the parquet reader drops its months)",
                    column.path().string()
                ))))
                .context(shown.to_owned()));
            }
        }
    }
    // Variant groups (Spark 4's, Delta's and Iceberg's semi-structured values): read as JSON
    // text. Only top-level ones: one inside a struct, list or map is refused by name.
    let variants = variant_columns(descr.root_schema())
        .map_err(|why| (Error::Input(ArrowError::ParquetError(why))).context(shown.to_owned()))?;
    let probe = Shared(Arc::new(probe));
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut hinted = false;
    if !int96.is_empty() {
        let scans = scan_int96(
            probe.clone(),
            &metadata,
            int96.iter().map(|&(_, leaf)| leaf),
        )
        .map_err(|e| (Error::Input(e.into())).context(shown.to_owned()))?;
        for (&(index, _), scan) in int96.iter().zip(scans) {
            let field = &fields[index];
            let unit = scan.unit(field.name()).map_err(|m| {
                (Error::Input(ArrowError::ParquetError(m.to_string()))).context(shown.to_owned())
            })?;
            let DataType::Timestamp(_, zone) = field.data_type() else {
                continue;
            };
            fields[index] = field
                .clone()
                .with_data_type(DataType::Timestamp(unit, zone.clone()));
            hinted = true;
        }
    }
    // GeoParquet's columns, as GeoArrow fields: the CRS travels to the loader.
    hinted |= crate::sink::geo::geoarrow_from_geoparquet(&schema, &mut fields);
    let hint = |fields: Vec<Field>| {
        ArrowReaderOptions::new().with_schema(Arc::new(Schema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )))
    };
    let metadata = Arc::new(metadata);
    // The months of the INTERVAL columns, read apart (only their column chunks).
    let months = match intervals.is_empty() {
        true => None,
        false => {
            let mut month_fields = fields.clone();
            for &(index, _) in &intervals {
                month_fields[index] = month_fields[index]
                    .clone()
                    .with_data_type(DataType::Interval(IntervalUnit::YearMonth));
            }
            let mask = ProjectionMask::leaves(&descr, intervals.iter().map(|&(_, leaf)| leaf));
            let options = ArrowReaderMetadata::try_new(metadata.clone(), hint(month_fields))
                .map_err(not_parquet)?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(probe, options)
                .with_projection(mask)
                .with_batch_size(batch_rows.max(1))
                .build()
                .map_err(not_parquet)?;
            Some(reader)
        }
    };
    let options = match hinted {
        true => hint(fields),
        false => ArrowReaderOptions::new(),
    };
    // GeoParquet's covering columns (each geometry's bbox) are not read: they are derived
    // from the geometries, for readers that filter, and no table has them.
    let covering = crate::sink::geo::covering_columns(&schema);
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !covering.contains(i))
        .collect();
    let metadata = ArrowReaderMetadata::try_new(metadata, options).map_err(not_parquet)?;
    let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(chunks, metadata)
        .with_batch_size(batch_rows.max(1));
    if !covering.is_empty() {
        reader = reader.with_projection(ProjectionMask::roots(&descr, kept.iter().copied()));
    }
    let reader = reader.build().map_err(not_parquet)?;
    if let Some(months) = months {
        // The interval columns' places among the columns read.
        let columns: Vec<usize> = intervals
            .iter()
            .filter_map(|&(index, _)| kept.iter().position(|&k| k == index))
            .collect();
        let mut fields: Vec<Field> = reader
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for &index in &columns {
            fields[index] = fields[index]
                .clone()
                .with_data_type(DataType::Interval(IntervalUnit::MonthDayNano));
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            reader.schema().metadata().clone(),
        ));
        let out = schema.clone();
        let batches = reader
            .zip(months)
            .map(move |(batch, months)| with_months(batch?, &months?, &columns, out.clone()));
        return Ok(as_json(&schema, Box::new(batches), &variants));
    }
    Ok(as_json(&reader.schema(), Box::new(reader), &variants))
}

/// `batches` of `schema` with its columns named `variants` read as JSON text.
fn as_json(schema: &SchemaRef, batches: Batches, variants: &[String]) -> (SchemaRef, Batches) {
    let columns = variants
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .collect();
    crate::variant::decoded(schema, batches, columns)
}

/// The names of the top-level groups of a file's schema annotated VARIANT.
///
/// # Errors
/// A VARIANT group inside another column, named by its path.
fn variant_columns(
    root: &parquet::schema::types::Type,
) -> std::result::Result<Vec<String>, String> {
    use parquet::basic::LogicalType;
    use parquet::schema::types::Type;
    fn is_variant(t: &Type) -> bool {
        t.is_group()
            && matches!(
                t.get_basic_info().logical_type_ref(),
                Some(LogicalType::Variant(_))
            )
    }
    fn nested(t: &Type, path: &str) -> std::result::Result<(), String> {
        for f in t.get_fields() {
            let here = format!("{path}.{}", f.name());
            if is_variant(f) {
                return Err(format!(
                    "column \"{here}\": a Variant inside a struct, list or map is not read \
                     (a top-level Variant column is read as JSON)"
                ));
            }
            if f.is_group() {
                nested(f, &here)?;
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    for f in root.get_fields() {
        if is_variant(f) {
            found.push(f.name().to_owned());
        } else if f.is_group() {
            nested(f, f.name())?;
        }
    }
    Ok(found)
}

/// `batch` with its Interval(DayTime) columns `columns` given their months from `months`
/// (one Interval(YearMonth) column each, in order) as Interval(MonthDayNano).
fn with_months(
    batch: RecordBatch,
    months: &RecordBatch,
    columns: &[usize],
    schema: SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    if months.num_rows() != batch.num_rows() || months.num_columns() != columns.len() {
        return Err(ArrowError::ParquetError(
            "the INTERVAL columns' second read does not line up with the first".to_owned(),
        ));
    }
    let mut arrays = batch.columns().to_vec();
    for (k, &index) in columns.iter().enumerate() {
        let times = arrays[index]
            .as_primitive_opt::<IntervalDayTimeType>()
            .ok_or_else(|| ArrowError::ParquetError("an INTERVAL column changed type".into()))?;
        let month = months
            .column(k)
            .as_primitive_opt::<IntervalYearMonthType>()
            .ok_or_else(|| ArrowError::ParquetError("an INTERVAL column changed type".into()))?;
        let values: Vec<IntervalMonthDayNano> = times
            .values()
            .iter()
            .zip(month.values().iter())
            .map(|(t, &m)| {
                IntervalMonthDayNano::new(m, t.days, i64::from(t.milliseconds) * 1_000_000)
            })
            .collect();
        arrays[index] = Arc::new(IntervalMonthDayNanoArray::new(
            values.into(),
            times.nulls().cloned(),
        ));
    }
    RecordBatch::try_new(schema, arrays)
}

/// One reader of a file, shared: the INT96 scan and the second read of INTERVAL columns.
struct Shared<P>(Arc<P>);

impl<P> Clone for Shared<P> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<P: ChunkReader> parquet::file::reader::Length for Shared<P> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<P: ChunkReader> ChunkReader for Shared<P> {
    type T = P::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// `metadata` with the file's row count taken from its row groups, which describe the data.
/// The parquet crate caps its batches at the footer's `num_rows`: a footer that says fewer
/// rows than its row groups hold (0 in the Parquet project's `repeated_no_annotation.parquet`,
/// whose row group holds 6; pyarrow and DuckDB read the 6) would read none of them.
fn with_the_row_groups_count(metadata: ParquetMetaData) -> ParquetMetaData {
    let rows = metadata
        .row_groups()
        .iter()
        .fold(0i64, |sum, rg| sum.saturating_add(rg.num_rows().max(0)));
    let file = metadata.file_metadata();
    if file.num_rows() == rows {
        return metadata;
    }
    let counted = FileMetaData::new(
        file.version(),
        rows,
        file.created_by().map(str::to_owned),
        file.key_value_metadata().cloned(),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut builder = metadata.into_builder();
    let row_groups = builder.take_row_groups();
    let page_index = builder.take_page_index();
    ParquetMetaDataBuilder::new(counted)
        .set_row_groups(row_groups)
        .set_page_index(page_index)
        .build()
}

/// `metadata` with every dictionary page offset of 0 taken as none.
/// Every column chunk's bytes (from its dictionary or first data page, its compressed size)
/// inside the file: the parquet crate panics on a negative offset or size, and reads past the
/// end of the file as an I/O error that does not say which column.
fn check_column_ranges(
    metadata: &ParquetMetaData,
    file_len: u64,
) -> std::result::Result<(), Malformed> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let size = column.compressed_size();
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(start, size)| start.checked_add(size));
            if end.is_none_or(|end| end > file_len) {
                return Err(malformed!(
                    "column {} of row group {g} claims {size} bytes at offset {start}, outside \
                     the file's {file_len}",
                    column.column_path()
                ));
            }
        }
    }
    Ok(())
}

fn without_zero_dictionary_offsets(metadata: &Arc<ParquetMetaData>) -> ParquetMetaData {
    let zero = metadata
        .row_groups()
        .iter()
        .flat_map(|rg| rg.columns())
        .any(|c| c.dictionary_page_offset() == Some(0));
    if !zero {
        return metadata.as_ref().clone();
    }
    let mut builder = metadata.as_ref().clone().into_builder();
    let row_groups = builder
        .take_row_groups()
        .into_iter()
        .map(|rg| {
            let mut rg = rg.into_builder();
            let columns = rg
                .take_columns()
                .into_iter()
                .map(|c| match c.dictionary_page_offset() {
                    Some(0) => c.into_builder().set_dictionary_page_offset(None).build(),
                    _ => Ok(c),
                })
                .collect::<Result<Vec<_>, ParquetError>>()?;
            rg.set_column_metadata(columns).build()
        })
        .collect::<Result<Vec<_>, ParquetError>>();
    match row_groups {
        Ok(row_groups) => builder.set_row_groups(row_groups).build(),
        // The builders refuse only what the file's own metadata already passed.
        Err(_) => metadata.as_ref().clone(),
    }
}

/// Scans the INT96 leaf columns `leaves` of every row group.
fn scan_int96<P: ChunkReader + 'static>(
    probe: P,
    metadata: &ParquetMetaData,
    leaves: impl Iterator<Item = usize> + Clone,
) -> std::result::Result<Vec<Int96Scan>, ParquetError> {
    let probe = Arc::new(probe);
    let properties = Arc::new(ReaderProperties::builder().build());
    let mut scans = vec![Int96Scan::default(); leaves.clone().count()];
    let mut values: Vec<Int96> = Vec::new();
    let mut levels: Vec<i16> = Vec::new();
    for (i, rg) in metadata.row_groups().iter().enumerate() {
        let reader = SerializedRowGroupReader::new(
            probe.clone(),
            rg,
            RowGroupPageIndex::new(i, None),
            properties.clone(),
        )?;
        for (scan, leaf) in scans.iter_mut().zip(leaves.clone()) {
            let ColumnReader::Int96ColumnReader(mut column) = reader.get_column_reader(leaf)?
            else {
                continue;
            };
            loop {
                values.clear();
                levels.clear();
                let (records, _, _) =
                    column.read_records(8192, Some(&mut levels), None, &mut values)?;
                values.iter().for_each(|v| scan.add(v));
                if records == 0 {
                    break;
                }
            }
        }
    }
    Ok(scans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int96(day: u32, nanos: u64) -> Int96 {
        let mut v = Int96::new();
        v.set_data(nanos as u32, (nanos >> 32) as u32, day);
        v
    }

    #[test]
    fn int96_scans_choose_the_unit() {
        let scan = |values: &[Int96]| {
            let mut s = Int96Scan::default();
            values.iter().for_each(|v| s.add(v));
            s.unit("ts")
        };
        // 1970-01-01 and 2024: nanoseconds hold them, with any digits.
        assert_eq!(scan(&[int96(2_440_588, 1)]), Ok(TimeUnit::Nanosecond));
        // 9999-12-31 (Julian day 5373484): microseconds.
        assert_eq!(
            scan(&[int96(5_373_484, 86_399_999_999_000), int96(2_440_588, 7)]),
            Err(
                "column \"ts\": its INT96 timestamps are both outside 1677 to 2262 (Arrow's \
                 nanosecond range) and finer than microseconds: no Arrow unit holds them exactly"
                    .into()
            )
        );
        assert_eq!(
            scan(&[int96(5_373_484, 86_399_999_999_000)]),
            Ok(TimeUnit::Microsecond)
        );
        // Year 290000 still fits microseconds; the largest Julian day does not.
        assert_eq!(
            scan(&[int96(2_440_588 + 105_200_000, 0)]),
            Ok(TimeUnit::Microsecond)
        );
        assert!(
            scan(&[int96(u32::MAX, 0)])
                .unwrap_err()
                .to_string()
                .contains("292,000")
        );
    }
}
