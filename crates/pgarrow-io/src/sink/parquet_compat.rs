//! What Parquet cannot hold as Arrow has it, and what the Parquet sink writes instead.
//!
//! * `Interval(MonthDayNano)`, at any depth (a column, a list element, a struct field, a map
//!   value, a range bound): arrow-rs refuses it, and Parquet's own INTERVAL keeps only
//!   milliseconds. It is written as `Struct{months: Int32, days: Int32, microseconds: Int64}`,
//!   exact for PostgreSQL intervals, with field metadata [`META_INTERVAL_ENCODING`] on the
//!   converted field.
//! * No columns at all, and structs with no fields: refused before any file is created, naming
//!   the column ([`check_parquet_schema`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::IntervalMonthDayNanoType;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Int32Array, Int64Array, LargeListArray, ListArray,
    MapArray, RecordBatch, StructArray,
};
use arrow_schema::{DataType, Field, FieldRef, Fields, IntervalUnit, Schema, SchemaRef};

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

/// The schema with every `Interval(MonthDayNano)`, at any depth, replaced by the exact struct
/// (the same schema when there is none).
pub fn parquet_compatible_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema
        .fields()
        .iter()
        .any(|f| convert_type(f.data_type()).is_some())
    {
        return schema.clone();
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| convert_field(f).map_or_else(|| f.clone(), Arc::new))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `f` with its type converted, or `None` when it holds no interval.
fn convert_field(f: &Field) -> Option<Field> {
    let t = convert_type(f.data_type())?;
    let mut field = f.clone().with_data_type(t);
    if is_interval(f.data_type()) {
        let mut meta: HashMap<String, String> = f.metadata().clone().into();
        meta.insert(
            META_INTERVAL_ENCODING.to_owned(),
            INTERVAL_ENCODING.to_owned(),
        );
        field = field.with_metadata(meta);
    }
    Some(field)
}

/// `t` with its intervals converted, or `None` when it holds none.
fn convert_type(t: &DataType) -> Option<DataType> {
    let child = |f: &FieldRef| convert_field(f).map(Arc::new);
    match t {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            Some(DataType::Struct(interval_struct_fields()))
        }
        DataType::List(f) => child(f).map(DataType::List),
        DataType::LargeList(f) => child(f).map(DataType::LargeList),
        DataType::FixedSizeList(f, n) => child(f).map(|f| DataType::FixedSizeList(f, *n)),
        DataType::Map(f, sorted) => child(f).map(|f| DataType::Map(f, *sorted)),
        DataType::Struct(fields) => {
            if !fields.iter().any(|f| convert_type(f.data_type()).is_some()) {
                return None;
            }
            Some(DataType::Struct(
                fields
                    .iter()
                    .map(|f| child(f).unwrap_or_else(|| f.clone()))
                    .collect(),
            ))
        }
        _ => None,
    }
}

fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(IntervalUnit::MonthDayNano))
}

/// Converts a batch to `schema`, made by [`parquet_compatible_schema`] from the batch's.
pub(crate) fn parquet_compatible_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| convert_array(c, f.data_type()))
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// `array` as type `target`, which is its type with the intervals converted.
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
        other => {
            return Err(Error::Invalid(format!(
                "internal: no Parquet conversion from {} to {other}",
                array.data_type()
            )));
        }
    })
}
