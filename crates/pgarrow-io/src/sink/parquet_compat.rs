//! What Parquet (or a table format) cannot hold as Arrow has it, and what the Parquet sink
//! writes instead.
//!
//! * `Interval(MonthDayNano)`, at any depth (a column, a list element, a struct field, a map
//!   value, a range bound): arrow-rs refuses it, and Parquet's own INTERVAL keeps only
//!   milliseconds. It is written as `Struct{months: Int32, days: Int32, microseconds: Int64}`,
//!   exact for PostgreSQL intervals, with field metadata [`META_INTERVAL_ENCODING`] on the
//!   converted field.
//! * What a table format has no type for, when [`ValueForms`] asks (a lake table's writer
//!   does, by format): a `uuid` as its canonical text, a `time` as PostgreSQL's text of it,
//!   unsigned integers widened to signed ones, decimals past 38 digits as their exact text,
//!   Float16 widened to Float32. Each is exact, and each converted field says so in its
//!   metadata ([`META_FORM`]), beside the PostgreSQL type it came from, so that a load turns
//!   it back.
//! * No columns at all, and structs with no fields: refused before any file is created, naming
//!   the column ([`check_parquet_schema`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{IntervalMonthDayNanoType, Time64MicrosecondType};
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, Int32Array, Int64Array,
    LargeListArray, ListArray, MapArray, PrimitiveArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields, IntervalUnit, Schema, SchemaRef, TimeUnit};

use crate::{Error, META_INTERVAL_ENCODING, Result};

/// The value of [`META_INTERVAL_ENCODING`].
const INTERVAL_ENCODING: &str = "struct<months:int32,days:int32,microseconds:int64>";

/// Refuses what Parquet cannot hold: a schema with no columns (a Parquet file counts rows per
/// column chunk, so its rows would be lost) and a struct with no fields (arrow-rs refuses
/// them), naming the column.
pub(crate) fn check_parquet_schema(schema: &Schema) -> Result<()> {
    if schema.fields().is_empty() {
        return Err(Error::Unsupported(
            "the result has no columns, and a Parquet file without columns cannot hold its rows: \
             export to Arrow IPC (--to arrow) instead, or select a column"
                .into(),
        ));
    }
    fn walk(path: &str, t: &DataType) -> Result<()> {
        match t {
            DataType::Struct(fields) if fields.is_empty() => Err(Error::Unsupported(format!(
                "column \"{path}\" is a composite type with no attributes, which Parquet cannot \
                 hold: export to Arrow IPC (--to arrow) instead, or leave the column out"
            ))),
            DataType::Struct(fields) => fields
                .iter()
                .try_for_each(|f| walk(&format!("{path}.{}", f.name()), f.data_type())),
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _)
            | DataType::Map(f, _) => walk(&format!("{path}[]"), f.data_type()),
            DataType::Dictionary(_, v) => walk(path, v),
            _ => Ok(()),
        }
    }
    schema
        .fields()
        .iter()
        .try_for_each(|f| walk(f.name(), f.data_type()))
}

/// The fields of the struct an interval becomes in Parquet.
fn interval_struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, false),
        Field::new("days", DataType::Int32, false),
        Field::new("microseconds", DataType::Int64, false),
    ])
}

/// Which values a writer gives another, exact form because its table format has no type for
/// them (Parquet's interval struct is always written). Every form is lossless, and the field
/// it converts says so in [`META_FORM`].
///
/// ```
/// use pgarrow_io::ValueForms;
/// let delta = ValueForms::default().with_uuid_text(true).with_time_text(true);
/// assert!(delta.uuid_text && !delta.unsigned_widened);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ValueForms {
    /// `uuid` (FixedSizeBinary(16), `arrow.uuid`) as its canonical text,
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lower case (as Spark and Databricks store
    /// UUIDs).
    pub uuid_text: bool,
    /// `time` (Time64(µs)) as PostgreSQL's text of it, `HH:MM:SS[.ffffff]` (which sorts as
    /// the times do).
    pub time_text: bool,
    /// UInt8/16/32 as Int64, UInt64 as Decimal128(20, 0).
    pub unsigned_widened: bool,
    /// Decimal256 (`numeric` past 38 digits) as its exact text.
    pub wide_decimal_text: bool,
    /// Float16 (`halfvec`) as Float32.
    pub float16_widened: bool,
}

impl ValueForms {
    /// `uuid` as text.
    pub fn with_uuid_text(mut self, on: bool) -> Self {
        self.uuid_text = on;
        self
    }

    /// `time` as text.
    pub fn with_time_text(mut self, on: bool) -> Self {
        self.time_text = on;
        self
    }

    /// Unsigned integers widened.
    pub fn with_unsigned_widened(mut self, on: bool) -> Self {
        self.unsigned_widened = on;
        self
    }

    /// Decimal256 as text.
    pub fn with_wide_decimal_text(mut self, on: bool) -> Self {
        self.wide_decimal_text = on;
        self
    }

    /// Float16 widened.
    pub fn with_float16_widened(mut self, on: bool) -> Self {
        self.float16_widened = on;
        self
    }
}

/// Field metadata key naming the form a value was given by [`ValueForms`]: `text` (a `uuid`, a
/// `time`, a wide decimal) or `widened` (an unsigned integer, a Float16).
pub const META_FORM: &str = "pgarrow.form";

/// The schema with every `Interval(MonthDayNano)`, at any depth, replaced by the exact struct
/// (the same schema when there is none).
pub fn parquet_compatible_schema(schema: &SchemaRef) -> SchemaRef {
    compatible_schema(schema, &ValueForms::default())
}

/// The schema a Parquet file holds for batches of `schema` when `forms` are asked: the
/// intervals as structs, and the values `forms` names in their forms, at any depth (the same
/// schema when nothing changes). [`compatible_batch`] converts the batches.
pub fn compatible_schema(schema: &SchemaRef, forms: &ValueForms) -> SchemaRef {
    let converted: Vec<Option<Field>> = schema
        .fields()
        .iter()
        .map(|f| convert_field(f, forms))
        .collect();
    if converted.iter().all(Option::is_none) {
        return schema.clone();
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .zip(converted)
        .map(|(f, c)| c.map_or_else(|| f.clone(), Arc::new))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `f` with its type converted, or `None` when nothing in it changes.
fn convert_field(f: &Field, forms: &ValueForms) -> Option<Field> {
    let (t, form) = match leaf_form(f, forms) {
        Some((t, form)) => (t, Some(form)),
        None => (convert_type(f.data_type(), forms)?, None),
    };
    let mut field = f.clone().with_data_type(t);
    let mut meta: HashMap<String, String> = f.metadata().clone().into();
    if is_interval(f.data_type()) {
        meta.insert(
            META_INTERVAL_ENCODING.to_owned(),
            INTERVAL_ENCODING.to_owned(),
        );
    }
    if let Some(form) = form {
        // The extension named the old type (`arrow.uuid` on text would be a lie).
        meta.remove("ARROW:extension:name");
        meta.remove("ARROW:extension:metadata");
        meta.insert(META_FORM.to_owned(), form.to_owned());
    }
    field = field.with_metadata(meta);
    Some(field)
}

/// The form `forms` gives a field of a plain type, and its name.
fn leaf_form(f: &Field, forms: &ValueForms) -> Option<(DataType, &'static str)> {
    let uuid = f
        .metadata()
        .get("ARROW:extension:name")
        .is_some_and(|e| e == "arrow.uuid")
        || f.metadata()
            .get("pgarrow.pg_type")
            .is_some_and(|t| t == "uuid");
    Some(match f.data_type() {
        DataType::FixedSizeBinary(16) if forms.uuid_text && uuid => (DataType::Utf8, "text"),
        DataType::Time64(TimeUnit::Microsecond) if forms.time_text => (DataType::Utf8, "text"),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 if forms.unsigned_widened => {
            (DataType::Int64, "widened")
        }
        DataType::UInt64 if forms.unsigned_widened => (DataType::Decimal128(20, 0), "widened"),
        DataType::Decimal256(..) if forms.wide_decimal_text => (DataType::Utf8, "text"),
        DataType::Float16 if forms.float16_widened => (DataType::Float32, "widened"),
        _ => return None,
    })
}

/// `t` with what is in it converted, or `None` when nothing changes.
fn convert_type(t: &DataType, forms: &ValueForms) -> Option<DataType> {
    let child = |f: &FieldRef| convert_field(f, forms).map(Arc::new);
    match t {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            Some(DataType::Struct(interval_struct_fields()))
        }
        DataType::List(f) => child(f).map(DataType::List),
        DataType::LargeList(f) => child(f).map(DataType::LargeList),
        DataType::FixedSizeList(f, n) => child(f).map(|f| DataType::FixedSizeList(f, *n)),
        DataType::Map(f, sorted) => child(f).map(|f| DataType::Map(f, *sorted)),
        DataType::Struct(fields) => {
            let converted: Vec<Option<FieldRef>> = fields.iter().map(child).collect();
            if converted.iter().all(Option::is_none) {
                return None;
            }
            Some(DataType::Struct(
                fields
                    .iter()
                    .zip(converted)
                    .map(|(f, c)| c.unwrap_or_else(|| f.clone()))
                    .collect(),
            ))
        }
        _ => None,
    }
}

fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(IntervalUnit::MonthDayNano))
}

/// Converts a batch to `schema`, made by [`compatible_schema`] from the batch's.
///
/// # Errors
/// A batch of another shape than the one `schema` was made from.
pub fn compatible_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| convert_array(c, f.data_type()))
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `array` as type `target`, which is its type with the intervals and forms converted.
fn convert_array(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    let nulls = array.nulls().cloned();
    Ok(match target {
        DataType::Struct(fields) if is_interval(array.data_type()) => {
            let iv = array.as_primitive::<IntervalMonthDayNanoType>();
            let mut months = Vec::with_capacity(iv.len());
            let mut days = Vec::with_capacity(iv.len());
            let mut micros = Vec::with_capacity(iv.len());
            for v in iv.values().iter() {
                months.push(v.months);
                days.push(v.days);
                // Exact: PostgreSQL intervals have whole microseconds.
                micros.push(v.nanoseconds / 1000);
            }
            Arc::new(StructArray::try_new(
                fields.clone(),
                vec![
                    Arc::new(Int32Array::from(months)),
                    Arc::new(Int32Array::from(days)),
                    Arc::new(Int64Array::from(micros)),
                ],
                nulls,
            )?)
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let columns = s
                .columns()
                .iter()
                .zip(fields)
                .map(|(c, f)| convert_array(c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            Arc::new(StructArray::try_new(fields.clone(), columns, nulls)?)
        }
        DataType::List(f) => {
            let l = array.as_list::<i32>();
            let values = convert_array(l.values(), f.data_type())?;
            Arc::new(ListArray::try_new(
                f.clone(),
                l.offsets().clone(),
                values,
                nulls,
            )?)
        }
        DataType::LargeList(f) => {
            let l = array.as_list::<i64>();
            let values = convert_array(l.values(), f.data_type())?;
            Arc::new(LargeListArray::try_new(
                f.clone(),
                l.offsets().clone(),
                values,
                nulls,
            )?)
        }
        DataType::FixedSizeList(f, n) => {
            let l = array.as_fixed_size_list();
            let values = convert_array(l.values(), f.data_type())?;
            Arc::new(FixedSizeListArray::try_new(f.clone(), *n, values, nulls)?)
        }
        DataType::Map(f, sorted) => {
            let m = array.as_map();
            let entries: ArrayRef = Arc::new(m.entries().clone());
            let entries = convert_array(&entries, f.data_type())?;
            Arc::new(MapArray::try_new(
                f.clone(),
                m.offsets().clone(),
                entries.as_struct().clone(),
                nulls,
                *sorted,
            )?)
        }
        DataType::Utf8 => match array.data_type() {
            DataType::FixedSizeBinary(16) => Arc::new(uuid_text(array.as_fixed_size_binary())?),
            DataType::Time64(TimeUnit::Microsecond) => {
                Arc::new(time_text(array.as_primitive::<Time64MicrosecondType>())?)
            }
            _ => arrow_cast::cast(array, target)?,
        },
        DataType::Int64 | DataType::Decimal128(..) | DataType::Float32 => {
            arrow_cast::cast(array, target)?
        }
        other => {
            return Err(Error::Invalid(format!(
                "internal: no Parquet conversion from {} to {other}",
                array.data_type()
            )));
        }
    })
}

/// Each UUID as its canonical text, lower case.
fn uuid_text(a: &FixedSizeBinaryArray) -> Result<StringArray> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut values = Vec::with_capacity(a.len() * 36);
    let mut offsets = Vec::with_capacity(a.len() + 1);
    offsets.push(0i32);
    for i in 0..a.len() {
        if a.is_valid(i) {
            for (k, b) in a.value(i).iter().enumerate() {
                if matches!(k, 4 | 6 | 8 | 10) {
                    values.push(b'-');
                }
                values.push(HEX[usize::from(b >> 4)]);
                values.push(HEX[usize::from(b & 15)]);
            }
        }
        // At most 36 bytes a row: a batch's text stays far below 2 GiB.
        offsets.push(i32::try_from(values.len()).unwrap_or(i32::MAX));
    }
    text_array(values, offsets, a.nulls().cloned())
}

/// Each time of day as PostgreSQL prints it: `HH:MM:SS`, then the microseconds without their
/// trailing zeros (`12:00:00.5`). A value past a day (24:00:00, which PostgreSQL allows)
/// prints as its hours.
fn time_text(a: &PrimitiveArray<Time64MicrosecondType>) -> Result<StringArray> {
    let mut values = Vec::with_capacity(a.len() * 15);
    let mut offsets = Vec::with_capacity(a.len() + 1);
    offsets.push(0i32);
    for i in 0..a.len() {
        if a.is_valid(i) {
            pgarrow_types::write_time(a.value(i), &mut values);
        }
        offsets.push(i32::try_from(values.len()).unwrap_or(i32::MAX));
    }
    text_array(values, offsets, a.nulls().cloned())
}

fn text_array(
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: Option<NullBuffer>,
) -> Result<StringArray> {
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    Ok(StringArray::try_new(offsets, values.into(), nulls)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Decimal128Array, Decimal256Array, Float32Array, Time64MicrosecondArray, UInt32Array,
        UInt64Array,
    };
    use arrow_buffer::i256;

    fn uuid_field(name: &str) -> Field {
        Field::new(name, DataType::FixedSizeBinary(16), true).with_metadata(HashMap::from([
            ("ARROW:extension:name".to_owned(), "arrow.uuid".to_owned()),
            ("pgarrow.pg_type".to_owned(), "uuid".to_owned()),
        ]))
    }

    #[test]
    fn uuid_text_and_time_text() {
        let uuid = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            [
                Some((0u8..16).collect::<Vec<_>>()),
                None,
                Some(vec![0xff; 16]),
            ]
            .into_iter(),
            16,
        )
        .unwrap();
        let text = uuid_text(&uuid).unwrap();
        assert_eq!(text.value(0), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert!(text.is_null(1));
        assert_eq!(text.value(2), "ffffffff-ffff-ffff-ffff-ffffffffffff");
        let times = Time64MicrosecondArray::from(vec![
            Some(0),
            Some(45_296_500_000),
            None,
            Some(86_399_999_999),
            Some(86_400_000_000),
            Some(1),
        ]);
        let text = time_text(&times).unwrap();
        let got: Vec<Option<&str>> = text.iter().collect();
        assert_eq!(
            got,
            [
                Some("00:00:00"),
                Some("12:34:56.5"),
                None,
                Some("23:59:59.999999"),
                Some("24:00:00"),
                Some("00:00:00.000001"),
            ]
        );
    }

    #[test]
    fn forms_convert_at_any_depth_and_say_so() {
        let forms = ValueForms::default()
            .with_uuid_text(true)
            .with_time_text(true)
            .with_unsigned_widened(true)
            .with_wide_decimal_text(true)
            .with_float16_widened(true);
        let schema = Arc::new(Schema::new(vec![
            uuid_field("u"),
            Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("o", DataType::UInt32, true),
            Field::new("x", DataType::UInt64, true),
            Field::new("n", DataType::Decimal256(50, 2), true),
            Field::new("h", DataType::Float16, true),
            Field::new_list("us", uuid_field("item"), true),
            Field::new("plain", DataType::Int32, true),
        ]));
        let converted = compatible_schema(&schema, &forms);
        let types: Vec<&DataType> = converted.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types[..6],
            [
                &DataType::Utf8,
                &DataType::Utf8,
                &DataType::Int64,
                &DataType::Decimal128(20, 0),
                &DataType::Utf8,
                &DataType::Float32,
            ]
        );
        let u = converted.field(0);
        assert_eq!(
            u.metadata().get(META_FORM).map(String::as_str),
            Some("text")
        );
        assert_eq!(
            u.metadata().get("pgarrow.pg_type").map(String::as_str),
            Some("uuid")
        );
        assert!(!u.metadata().contains_key("ARROW:extension:name"));
        let DataType::List(item) = converted.field(6).data_type() else {
            panic!("a list")
        };
        assert_eq!(item.data_type(), &DataType::Utf8);
        assert_eq!(converted.field(7), schema.field(7));
        // Nothing asked, nothing changed.
        assert_eq!(compatible_schema(&schema, &ValueForms::default()), schema);

        let id = |b: u8| Some(vec![b; 16]);
        let uuids =
            FixedSizeBinaryArray::try_from_sparse_iter_with_size([id(1), None].into_iter(), 16)
                .unwrap();
        let list = ListArray::new(
            Arc::new(uuid_field("item")),
            OffsetBuffer::from_lengths([2, 0]),
            Arc::new(uuids.clone()),
            None,
        );
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(uuids),
                Arc::new(Time64MicrosecondArray::from(vec![Some(1_000_000), None])),
                Arc::new(UInt32Array::from(vec![Some(u32::MAX), None])),
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), None])),
                Arc::new(
                    Decimal256Array::from(vec![Some(i256::from_i128(-12345)), None])
                        .with_precision_and_scale(50, 2)
                        .unwrap(),
                ),
                arrow_cast::cast(
                    &Float32Array::from(vec![Some(1.5), None]),
                    &DataType::Float16,
                )
                .unwrap(),
                Arc::new(list),
                Arc::new(Int32Array::from(vec![Some(7), None])),
            ],
        )
        .unwrap();
        let out = compatible_batch(&batch, &converted).unwrap();
        assert_eq!(
            out.column(0).as_string::<i32>().value(0),
            "01010101-0101-0101-0101-010101010101"
        );
        assert_eq!(out.column(1).as_string::<i32>().value(0), "00:00:01");
        assert_eq!(
            out.column(2)
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0),
            i64::from(u32::MAX)
        );
        let wide = out
            .column(3)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .unwrap();
        assert_eq!(wide.value(0), i128::from(u64::MAX));
        assert_eq!(out.column(4).as_string::<i32>().value(0), "-123.45");
        let f = out
            .column(5)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert_eq!(f.value(0), 1.5);
        for c in 0..6 {
            assert!(out.column(c).is_null(1), "column {c} keeps its NULL");
        }
        let l = out.column(6).as_list::<i32>();
        assert_eq!(l.values().as_string::<i32>().value(1), "");
        assert!(l.values().is_null(1));
    }
}
