//! Reading Arrow arrays by row, widened to one type per family: integers as `i128`, floats
//! as `f64`, text as `&str` (plain, large, view or dictionary), binary as `&[u8]`.
//!
//! Each family's Arrow types are an enum parsed from a column's `DataType` once, when the
//! column is checked against its target ([`Ints::of`], [`Floats::of`], [`Strs::of`],
//! [`Binaries::of`]); the encoder it is part of builds each batch's getter with one `match` on
//! it, with no arm for "any other type". An array that is not of the parsed type (the encoder
//! checks each batch's types first) is an error, not a panic.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::DataType;

use crate::error::EncodeError;

/// Reads the value of one row.
pub(crate) type Getter<'a, T> = Box<dyn Fn(usize) -> T + 'a>;

/// The error of an array that is not of the type its column was checked for.
pub(crate) fn changed(array: &dyn Array) -> EncodeError {
    EncodeError::changed(array)
}

/// `array` as a primitive array of `T`; an error if it is not one.
pub(crate) fn primitive<T: ArrowPrimitiveType>(
    array: &dyn Array,
) -> Result<&PrimitiveArray<T>, EncodeError> {
    array.as_primitive_opt::<T>().ok_or_else(|| changed(array))
}

fn widened<'a, T: ArrowPrimitiveType, V>(
    array: &'a dyn Array,
    f: impl Fn(T::Native) -> V + 'a,
) -> Result<Getter<'a, V>, EncodeError> {
    let a = primitive::<T>(array)?;
    Ok(Box::new(move |i| f(a.value(i))))
}

/// An integer Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ints {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
}

impl Ints {
    pub(crate) fn of(t: &DataType) -> Option<Ints> {
        Some(match t {
            DataType::Int8 => Ints::Int8,
            DataType::Int16 => Ints::Int16,
            DataType::Int32 => Ints::Int32,
            DataType::Int64 => Ints::Int64,
            DataType::UInt8 => Ints::UInt8,
            DataType::UInt16 => Ints::UInt16,
            DataType::UInt32 => Ints::UInt32,
            DataType::UInt64 => Ints::UInt64,
            _ => return None,
        })
    }

    /// The values of `array`, widened.
    pub(crate) fn getter<'a>(self, array: &'a dyn Array) -> Result<Getter<'a, i128>, EncodeError> {
        match self {
            Ints::Int8 => widened::<Int8Type, _>(array, i128::from),
            Ints::Int16 => widened::<Int16Type, _>(array, i128::from),
            Ints::Int32 => widened::<Int32Type, _>(array, i128::from),
            Ints::Int64 => widened::<Int64Type, _>(array, i128::from),
            Ints::UInt8 => widened::<UInt8Type, _>(array, i128::from),
            Ints::UInt16 => widened::<UInt16Type, _>(array, i128::from),
            Ints::UInt32 => widened::<UInt32Type, _>(array, i128::from),
            Ints::UInt64 => widened::<UInt64Type, _>(array, i128::from),
        }
    }
}

/// A floating-point Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floats {
    Float16,
    Float32,
    Float64,
}

impl Floats {
    pub(crate) fn of(t: &DataType) -> Option<Floats> {
        Some(match t {
            DataType::Float16 => Floats::Float16,
            DataType::Float32 => Floats::Float32,
            DataType::Float64 => Floats::Float64,
            _ => return None,
        })
    }

    /// The values of `array`, widened.
    pub(crate) fn getter<'a>(self, array: &'a dyn Array) -> Result<Getter<'a, f64>, EncodeError> {
        match self {
            Floats::Float16 => widened::<Float16Type, _>(array, f64::from),
            Floats::Float32 => widened::<Float32Type, _>(array, f64::from),
            Floats::Float64 => widened::<Float64Type, _>(array, |v| v),
        }
    }
}

/// A text Arrow type: plain, large, view, or a dictionary of one of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Strs {
    Utf8,
    LargeUtf8,
    Utf8View,
    /// A dictionary (with integer keys) of text.
    Dictionary(Box<Strs>),
}

impl Strs {
    pub(crate) fn of(t: &DataType) -> Option<Strs> {
        Some(match t {
            DataType::Utf8 => Strs::Utf8,
            DataType::LargeUtf8 => Strs::LargeUtf8,
            DataType::Utf8View => Strs::Utf8View,
            DataType::Dictionary(k, v) if k.is_integer() => {
                Strs::Dictionary(Box::new(Strs::of(v)?))
            }
            _ => return None,
        })
    }

    /// The values of `array`.
    pub(crate) fn getter<'a>(
        &self,
        array: &'a dyn Array,
    ) -> Result<Getter<'a, &'a str>, EncodeError> {
        Ok(match self {
            Strs::Utf8 => {
                let a = array.as_string_opt::<i32>().ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
            Strs::LargeUtf8 => {
                let a = array.as_string_opt::<i64>().ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
            Strs::Utf8View => {
                let a = array.as_string_view_opt().ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
            Strs::Dictionary(values) => {
                let d = array
                    .as_any_dictionary_opt()
                    .ok_or_else(|| changed(array))?;
                let keys = d.normalized_keys();
                let values = values.getter(d.values().as_ref())?;
                Box::new(move |i| values(keys[i]))
            }
        })
    }
}

/// A binary Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binaries {
    Binary,
    LargeBinary,
    BinaryView,
    FixedSizeBinary,
}

impl Binaries {
    pub(crate) fn of(t: &DataType) -> Option<Binaries> {
        Some(match t {
            DataType::Binary => Binaries::Binary,
            DataType::LargeBinary => Binaries::LargeBinary,
            DataType::BinaryView => Binaries::BinaryView,
            DataType::FixedSizeBinary(_) => Binaries::FixedSizeBinary,
            _ => return None,
        })
    }

    /// The values of `array`.
    pub(crate) fn getter<'a>(
        self,
        array: &'a dyn Array,
    ) -> Result<Getter<'a, &'a [u8]>, EncodeError> {
        Ok(match self {
            Binaries::Binary => {
                let a = array.as_binary_opt::<i32>().ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
            Binaries::LargeBinary => {
                let a = array.as_binary_opt::<i64>().ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
            Binaries::BinaryView => {
                let a = array.as_binary_view_opt().ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
            Binaries::FixedSizeBinary => {
                let a = array
                    .as_fixed_size_binary_opt()
                    .ok_or_else(|| changed(array))?;
                Box::new(move |i| a.value(i))
            }
        })
    }
}

/// Whether value `i` of `array` is NULL: its validity says so, or it is of Arrow's null type
/// (whose arrays have no validity buffer, every value being NULL).
pub(crate) fn null_at(array: &dyn Array, i: usize) -> bool {
    array.is_null(i) || *array.data_type() == arrow_schema::DataType::Null
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{DictionaryArray, Int32Array, StringArray, types::Int8Type};

    use super::*;

    #[test]
    fn types_parse_into_their_family() {
        assert_eq!(Ints::of(&DataType::UInt64), Some(Ints::UInt64));
        assert_eq!(Ints::of(&DataType::Float32), None);
        assert_eq!(Floats::of(&DataType::Float16), Some(Floats::Float16));
        let dict = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8View));
        assert_eq!(
            Strs::of(&dict),
            Some(Strs::Dictionary(Box::new(Strs::Utf8View)))
        );
        let binary_dict =
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Binary));
        assert_eq!(Strs::of(&binary_dict), None);
        assert_eq!(
            Binaries::of(&DataType::FixedSizeBinary(16)),
            Some(Binaries::FixedSizeBinary)
        );
    }

    #[test]
    fn getters_read_and_refuse_another_type() {
        let ints = Int32Array::from(vec![-7, 9]);
        let get = Ints::Int32.getter(&ints).unwrap();
        assert_eq!((get(0), get(1)), (-7, 9));
        // Parsed as Int64, given an Int32: an error naming what came, not a panic.
        let e = Ints::Int64.getter(&ints).err().unwrap();
        assert_eq!(
            *e.kind(),
            crate::ErrorKind::TypeChanged {
                found: DataType::Int32,
                expected: None
            }
        );
        assert!(e.to_string().contains("Int32"), "{e}");
        assert!(Strs::Utf8.getter(&ints).is_err());
        assert!(Binaries::Binary.getter(&ints).is_err());
        assert!(Floats::Float64.getter(&ints).is_err());

        let dict: DictionaryArray<Int8Type> = vec!["b", "a", "b"].into_iter().collect();
        let parsed = Strs::of(dict.data_type()).unwrap();
        let get = parsed.getter(&dict).unwrap();
        assert_eq!((get(0), get(1), get(2)), ("b", "a", "b"));
        let plain: Arc<dyn Array> = Arc::new(StringArray::from(vec!["x"]));
        assert!(parsed.getter(plain.as_ref()).is_err());
    }
}
