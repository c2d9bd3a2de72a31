//! Reading Arrow arrays by row, widened to one type per family: integers as `i128`, floats
//! as `f64`, text as `&str` (plain, large, view or dictionary), binary as `&[u8]`.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType};
use arrow_schema::DataType;

fn primitive_getter<'a, T: ArrowPrimitiveType>(
    array: &'a dyn Array,
    f: impl Fn(T::Native) -> i128 + 'a,
) -> Box<dyn Fn(usize) -> i128 + 'a> {
    let a = array.as_primitive::<T>();
    Box::new(move |i| f(a.value(i)))
}

/// The values of an integer array, widened.
pub(crate) fn int_getter<'a>(array: &'a dyn Array) -> Box<dyn Fn(usize) -> i128 + 'a> {
    match array.data_type() {
        DataType::Int8 => primitive_getter::<Int8Type>(array, i128::from),
        DataType::Int16 => primitive_getter::<Int16Type>(array, i128::from),
        DataType::Int32 => primitive_getter::<Int32Type>(array, i128::from),
        DataType::Int64 => primitive_getter::<Int64Type>(array, i128::from),
        DataType::UInt8 => primitive_getter::<UInt8Type>(array, i128::from),
        DataType::UInt16 => primitive_getter::<UInt16Type>(array, i128::from),
        DataType::UInt32 => primitive_getter::<UInt32Type>(array, i128::from),
        DataType::UInt64 => primitive_getter::<UInt64Type>(array, i128::from),
        other => unreachable!("accepts() admits only integers, not {other}"),
    }
}

pub(crate) fn float_getter<'a>(array: &'a dyn Array) -> Box<dyn Fn(usize) -> f64 + 'a> {
    match array.data_type() {
        DataType::Float16 => {
            let a = array.as_primitive::<Float16Type>();
            Box::new(move |i| f64::from(a.value(i)))
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            Box::new(move |i| f64::from(a.value(i)))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            Box::new(move |i| a.value(i))
        }
        other => unreachable!("accepts() admits only floats, not {other}"),
    }
}

/// The values of a text array (plain, large, view, or a dictionary of those).
pub(crate) fn str_getter<'a>(array: &'a dyn Array) -> Box<dyn Fn(usize) -> &'a str + 'a> {
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            Box::new(move |i| a.value(i))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            Box::new(move |i| a.value(i))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            Box::new(move |i| a.value(i))
        }
        DataType::Dictionary(..) => {
            let d = array.as_any_dictionary();
            let keys = d.normalized_keys();
            let values = str_getter(d.values().as_ref());
            Box::new(move |i| values(keys[i]))
        }
        other => unreachable!("accepts() admits only text, not {other}"),
    }
}

pub(crate) fn bytes_getter<'a>(array: &'a dyn Array) -> Box<dyn Fn(usize) -> &'a [u8] + 'a> {
    match array.data_type() {
        DataType::Binary => {
            let a = array.as_binary::<i32>();
            Box::new(move |i| a.value(i))
        }
        DataType::LargeBinary => {
            let a = array.as_binary::<i64>();
            Box::new(move |i| a.value(i))
        }
        DataType::BinaryView => {
            let a = array.as_binary_view();
            Box::new(move |i| a.value(i))
        }
        DataType::FixedSizeBinary(_) => {
            let a = array.as_fixed_size_binary();
            Box::new(move |i| a.value(i))
        }
        other => unreachable!("accepts() admits only binary, not {other}"),
    }
}
