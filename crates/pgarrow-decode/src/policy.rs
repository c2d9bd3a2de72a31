//! What to do where a value has no exact Arrow form, and the count of every time it happened.
//!
//! Every default refuses to lose information: it is an error naming the row and column. The
//! other choices are explicit, and each conversion they make is counted in [`Losses`], which
//! the library reports in its statistics and writes into the output file's metadata.

use std::fmt;
use std::str::FromStr;

pub use pgarrow_types::ChoiceError;

/// `date`, `timestamp` and `timestamptz` ±infinity, anywhere (plain, in arrays, composites,
/// range bounds).
///
/// PostgreSQL itself stores them as the type's extreme integer (a date's `infinity` is
/// `i32::MAX` days, a timestamp's `i64::MAX` microseconds), and no finite value reaches those
/// extremes, so the same extremes in Arrow are not a loss but the same representation: the
/// fields say so in their metadata ([`META_INFINITY`](crate::mapping::META_INFINITY)), and DuckDB
/// reads them back as ±infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Infinity {
    /// The Arrow type's largest (`infinity`) or smallest (`-infinity`) value (default; counted).
    #[default]
    Extreme,
    /// Write NULL (counted).
    Null,
    /// Refuse: the export fails naming row and column.
    Error,
}

/// Values Arrow cannot hold exactly, other than date and timestamp infinities: numeric NaN and
/// ±Infinity in a decimal, `time` 24:00:00, timestamps after 294247 AD, intervals beyond
/// ±2562047 hours or infinite (PostgreSQL 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecialValues {
    /// Refuse: the export fails naming row and column (default).
    #[default]
    Error,
    /// Write NULL.
    Null,
    /// Write the nearest value Arrow can hold (a numeric `Infinity` becomes the decimal's
    /// largest value; 24:00:00 becomes 23:59:59.999999; a timestamp past Arrow's range its last
    /// finite instant, one microsecond before the extreme that stands for `infinity`). NaN has
    /// no nearest value and becomes NULL.
    Clamp,
    /// Export every column whose type can hold such a value (`numeric(p,s)`, a numeric read
    /// as a decimal or a double, `time`, `timestamp`, `timestamptz`, `interval`, and arrays,
    /// composites and ranges of them) as Utf8 holding the server's text of each value: exact,
    /// nothing counted.
    Text,
}

/// The nesting of array columns. PostgreSQL does not enforce declared dimensions (`int[]` and
/// `int[][]` are one type, and views and `CREATE TABLE AS` declare none), so a column's values
/// may have any number of dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrayShape {
    /// As many nested Lists as the values have dimensions (default): declared when the column
    /// declares two or more, else from the column's first non-empty value, seen before the
    /// schema is handed out. A later value of another depth is an error naming both.
    #[default]
    Data,
    /// Every array as a 1-D List of its elements in row-major order (each multi-dimensional
    /// value counted).
    Flatten,
    /// Every column holding arrays (composites and ranges of them too) as Utf8 holding the
    /// server's text of each value (`[0:1]={1,2}`): bounds, any mix of dimensions, exact.
    Text,
}

/// Array lower bounds other than 1 (`'[0:2]={7,8,9}'`), which an Arrow List has no place for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArrayBounds {
    /// Refuse: the export fails naming row and column (default). `--array-shape text` keeps
    /// the bounds in the array's text.
    #[default]
    Error,
    /// Keep the elements in order and drop the bounds (each such array counted).
    Drop,
}

/// The Arrow type of an unconstrained `numeric` column (or one above precision 76).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumericTarget {
    /// Utf8 holding the exact decimal text (default).
    #[default]
    String,
    /// Decimal128 with this precision and scale.
    Decimal128(u8, i8),
    /// Decimal256 with this precision and scale.
    Decimal256(u8, i8),
    /// Float64, rounded to the nearest double (every value is counted as rounded).
    Float64,
}

/// The Arrow type of `numeric(p, s)` columns wider than Decimal128 (39 to 76 digits).
///
/// Decimal256 is exact, but DuckDB reads it from Parquet as DOUBLE (rounding silently) and
/// polars refuses it; the exact decimal text is what every reader can keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WideNumeric {
    /// Decimal256 with the column's precision and scale (default).
    #[default]
    Decimal256,
    /// Utf8 holding the exact decimal text, as PostgreSQL prints it.
    String,
}

/// A numeric value that does not fit its Arrow decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Refuse (default).
    #[default]
    Error,
    /// Write NULL.
    Null,
}

/// The Arrow layout of text columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextLayout {
    /// Utf8, 32-bit offsets (default).
    #[default]
    Utf8,
    /// LargeUtf8, 64-bit offsets.
    Large,
    /// Utf8View.
    View,
}

/// Text that is not valid UTF-8 (only possible from a `SQL_ASCII` database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidUtf8 {
    /// Refuse (default).
    #[default]
    Error,
    /// Replace bad sequences with U+FFFD.
    Replace,
    /// Export every text column as Binary: the bytes exactly as stored.
    Binary,
}

/// The Arrow type of enum columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnumLayout {
    /// Dictionary(Int16, Utf8) whose dictionary is the labels in `pg_enum` order (default).
    #[default]
    Dictionary,
    /// Utf8 labels.
    Utf8,
}

/// All conversion policies of an export: [`Policies::default`] (every choice refuses to lose
/// information), then a `with_*` method per policy, or [`Policies::set`] by name from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Policies {
    /// Unconstrained numeric.
    pub numeric: NumericTarget,
    /// Numeric columns too wide for Decimal128.
    pub wide_numeric: WideNumeric,
    /// Numeric values that do not fit their decimal.
    pub numeric_overflow: Overflow,
    /// Date and timestamp ±infinity.
    pub infinity: Infinity,
    /// NaN, numeric and interval infinities, 24:00:00, out-of-range temporal values.
    pub special: SpecialValues,
    /// Text layout.
    pub text: TextLayout,
    /// Invalid UTF-8.
    pub invalid_utf8: InvalidUtf8,
    /// Enums.
    pub enums: EnumLayout,
    /// Array nesting.
    pub array_shape: ArrayShape,
    /// Array lower bounds other than 1.
    pub array_bounds: ArrayBounds,
}

/// The policies' names, as [`Policies::set`] takes them (and the CLI's flags, Python's
/// keyword arguments and the ADBC driver's `pgarrow.*` options spell them).
pub const POLICY_NAMES: &[&str] = &[
    "numeric",
    "wide_numeric",
    "numeric_overflow",
    "infinity",
    "out_of_range",
    "text",
    "invalid_utf8",
    "array_shape",
    "array_bounds",
    "enum",
];

impl Policies {
    /// Sets the policy `name` (one of [`POLICY_NAMES`]; `special_values` and `enums` are
    /// taken too) to `value`, read by that policy's [`FromStr`]: the one door of the CLI's
    /// flags, Python's keyword arguments and the ADBC driver's `pgarrow.*` options, as
    /// DataFusion's `ConfigOptions::set` is of its `SET` and its environment. `None` when
    /// `name` is no policy's.
    ///
    /// # Errors
    /// [`ChoiceError`]: a value the policy does not take, with the values it takes.
    pub fn set(&mut self, name: &str, value: &str) -> Option<Result<(), ChoiceError>> {
        fn put<T: FromStr<Err = ChoiceError>>(
            slot: &mut T,
            value: &str,
        ) -> Result<(), ChoiceError> {
            *slot = value.parse()?;
            Ok(())
        }
        Some(match name {
            "numeric" => put(&mut self.numeric, value),
            "wide_numeric" => put(&mut self.wide_numeric, value),
            "numeric_overflow" => put(&mut self.numeric_overflow, value),
            "infinity" => put(&mut self.infinity, value),
            "out_of_range" | "special_values" => put(&mut self.special, value),
            "text" => put(&mut self.text, value),
            "invalid_utf8" => put(&mut self.invalid_utf8, value),
            "array_shape" => put(&mut self.array_shape, value),
            "array_bounds" => put(&mut self.array_bounds, value),
            "enum" | "enums" => put(&mut self.enums, value),
            _ => return None,
        })
    }

    /// Unconstrained numeric columns as `numeric`.
    pub fn with_numeric(mut self, numeric: NumericTarget) -> Self {
        self.numeric = numeric;
        self
    }

    /// Numeric columns too wide for Decimal128 as `wide_numeric`.
    pub fn with_wide_numeric(mut self, wide_numeric: WideNumeric) -> Self {
        self.wide_numeric = wide_numeric;
        self
    }

    /// Numeric values that do not fit their decimal: `overflow`.
    pub fn with_numeric_overflow(mut self, overflow: Overflow) -> Self {
        self.numeric_overflow = overflow;
        self
    }

    /// Date and timestamp ±infinity: `infinity`.
    pub fn with_infinity(mut self, infinity: Infinity) -> Self {
        self.infinity = infinity;
        self
    }

    /// NaN, numeric and interval infinities, 24:00:00, out-of-range temporal values:
    /// `special`.
    pub fn with_special(mut self, special: SpecialValues) -> Self {
        self.special = special;
        self
    }

    /// Text columns as `text`.
    pub fn with_text(mut self, text: TextLayout) -> Self {
        self.text = text;
        self
    }

    /// Invalid UTF-8: `invalid_utf8`.
    pub fn with_invalid_utf8(mut self, invalid_utf8: InvalidUtf8) -> Self {
        self.invalid_utf8 = invalid_utf8;
        self
    }

    /// Enum columns as `enums`.
    pub fn with_enums(mut self, enums: EnumLayout) -> Self {
        self.enums = enums;
        self
    }

    /// Array columns nested as `shape`.
    pub fn with_array_shape(mut self, shape: ArrayShape) -> Self {
        self.array_shape = shape;
        self
    }

    /// Array lower bounds other than 1: `bounds`.
    pub fn with_array_bounds(mut self, bounds: ArrayBounds) -> Self {
        self.array_bounds = bounds;
        self
    }
}

/// `FromStr` and `Display` of a policy of plain words: each word is one variant, both ways,
/// and any other text is a [`ChoiceError`] listing the words.
macro_rules! words {
    ($ty:ident, $what:literal, $expected:literal, { $($word:literal => $variant:ident),+ $(,)? }) => {
        impl FromStr for $ty {
            type Err = ChoiceError;
            fn from_str(s: &str) -> Result<Self, ChoiceError> {
                match s {
                    $($word => Ok(Self::$variant),)+
                    other => Err(ChoiceError::new($what, other, $expected)),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $(Self::$variant => $word,)+
                })
            }
        }
    };
}

words!(Infinity, "infinity policy", "extreme, null or error", {
    "extreme" => Extreme, "null" => Null, "error" => Error,
});
words!(SpecialValues, "out-of-range policy", "error, null, clamp or text", {
    "error" => Error, "null" => Null, "clamp" => Clamp, "text" => Text,
});
words!(ArrayShape, "array-shape policy", "data, flatten or text", {
    "data" => Data, "flatten" => Flatten, "text" => Text,
});
words!(ArrayBounds, "array-bounds policy", "error or drop", {
    "error" => Error, "drop" => Drop,
});
words!(WideNumeric, "wide-numeric policy", "decimal256 or string", {
    "decimal256" => Decimal256, "string" => String,
});
words!(Overflow, "numeric-overflow policy", "error or null", {
    "error" => Error, "null" => Null,
});
words!(TextLayout, "text layout", "utf8, large or view", {
    "utf8" => Utf8, "large" => Large, "view" => View,
});
words!(InvalidUtf8, "invalid-utf8 policy", "error, replace or binary", {
    "error" => Error, "replace" => Replace, "binary" => Binary,
});
words!(EnumLayout, "enum layout", "dictionary or utf8", {
    "dictionary" => Dictionary, "utf8" => Utf8,
});

impl FromStr for NumericTarget {
    type Err = ChoiceError;
    fn from_str(s: &str) -> Result<Self, ChoiceError> {
        const WHAT: &str = "numeric policy";
        const EXPECTED: &str = "string, float64, decimal128:P:S or decimal256:P:S";
        let parts: Vec<&str> = s.split(':').collect();
        // Precision 1..=max, scale at most the precision.
        let ps = |max: u8, expected: &'static str| -> Result<(u8, i8), ChoiceError> {
            let bad = || ChoiceError::new(WHAT, s, expected);
            let p: u8 = parts[1].parse().map_err(|_| bad())?;
            let sc: i8 = parts[2].parse().map_err(|_| bad())?;
            if p == 0 || p > max || i16::from(sc) > i16::from(p) {
                return Err(bad());
            }
            Ok((p, sc))
        };
        match parts.as_slice() {
            ["string"] => Ok(Self::String),
            ["float64"] => Ok(Self::Float64),
            ["decimal128", _, _] => ps(
                38,
                "decimal128:P:S with a precision P of 1 to 38 and a scale S at most P",
            )
            .map(|(p, s)| Self::Decimal128(p, s)),
            ["decimal256", _, _] => ps(
                76,
                "decimal256:P:S with a precision P of 1 to 76 and a scale S at most P",
            )
            .map(|(p, s)| Self::Decimal256(p, s)),
            _ => Err(ChoiceError::new(WHAT, s, EXPECTED)),
        }
    }
}

impl fmt::Display for NumericTarget {
    /// As [`FromStr`] reads it: `string`, `float64`, `decimal128:P:S`, `decimal256:P:S`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Float64 => f.write_str("float64"),
            Self::Decimal128(p, s) => write!(f, "decimal128:{p}:{s}"),
            Self::Decimal256(p, s) => write!(f, "decimal256:{p}:{s}"),
        }
    }
}

/// A kind of lossy conversion that a policy made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LossKind {
    /// Date or timestamp ±infinity written as the type's extreme value, as PostgreSQL stores
    /// it (declared in the field's metadata; not lossy, counted so that it is seen).
    InfinityAsExtreme,
    /// ±infinity written as NULL.
    InfinityToNull,
    /// ±infinity written as the type's extreme value.
    InfinityClamped,
    /// NaN written as NULL.
    NanToNull,
    /// `time` 24:00:00 written as NULL.
    Time2400ToNull,
    /// `time` 24:00:00 written as 23:59:59.999999.
    Time2400Clamped,
    /// A value past Arrow's range written as NULL.
    OutOfRangeToNull,
    /// A value past Arrow's range written as the nearest representable value.
    OutOfRangeClamped,
    /// A numeric too large for its decimal written as NULL.
    NumericOverflowToNull,
    /// A numeric rounded to Float64.
    NumericToFloat64,
    /// Invalid UTF-8 replaced with U+FFFD.
    InvalidUtf8Replaced,
    /// An array's lower bound other than 1 dropped (`--array-bounds drop`).
    ArrayLowerBoundDropped,
    /// A multi-dimensional array flattened to a 1-D list (`--array-shape flatten`).
    ArrayFlattened,
    /// Loading: nanoseconds that are not whole microseconds rounded half to even
    /// (`--nanoseconds round`).
    NanosecondsRounded,
}

impl LossKind {
    const ALL: [LossKind; 14] = [
        LossKind::InfinityAsExtreme,
        LossKind::InfinityToNull,
        LossKind::InfinityClamped,
        LossKind::NanToNull,
        LossKind::Time2400ToNull,
        LossKind::Time2400Clamped,
        LossKind::OutOfRangeToNull,
        LossKind::OutOfRangeClamped,
        LossKind::NumericOverflowToNull,
        LossKind::NumericToFloat64,
        LossKind::InvalidUtf8Replaced,
        LossKind::ArrayLowerBoundDropped,
        LossKind::ArrayFlattened,
        LossKind::NanosecondsRounded,
    ];

    /// A stable machine-readable name (`infinity_to_null`, ...), for JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::InfinityAsExtreme => "infinity_as_extreme",
            LossKind::InfinityToNull => "infinity_to_null",
            LossKind::InfinityClamped => "infinity_clamped",
            LossKind::NanToNull => "nan_to_null",
            LossKind::Time2400ToNull => "time_2400_to_null",
            LossKind::Time2400Clamped => "time_2400_clamped",
            LossKind::OutOfRangeToNull => "out_of_range_to_null",
            LossKind::OutOfRangeClamped => "out_of_range_clamped",
            LossKind::NumericOverflowToNull => "numeric_overflow_to_null",
            LossKind::NumericToFloat64 => "numeric_to_float64",
            LossKind::InvalidUtf8Replaced => "invalid_utf8_replaced",
            LossKind::ArrayLowerBoundDropped => "array_lower_bound_dropped",
            LossKind::ArrayFlattened => "array_flattened",
            LossKind::NanosecondsRounded => "nanoseconds_rounded",
        }
    }

    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            LossKind::InfinityAsExtreme => {
                "infinity written as the type's extreme value (as PostgreSQL stores it)"
            }
            LossKind::InfinityToNull => "infinity written as NULL",
            LossKind::InfinityClamped => "infinity clamped to the largest value",
            LossKind::NanToNull => "NaN written as NULL",
            LossKind::Time2400ToNull => "24:00:00 written as NULL",
            LossKind::Time2400Clamped => "24:00:00 clamped to 23:59:59.999999",
            LossKind::OutOfRangeToNull => "out-of-range value written as NULL",
            LossKind::OutOfRangeClamped => "out-of-range value clamped",
            LossKind::NumericOverflowToNull => "numeric too large for its decimal written as NULL",
            LossKind::NumericToFloat64 => "numeric rounded to float64",
            LossKind::InvalidUtf8Replaced => "invalid UTF-8 replaced with U+FFFD",
            LossKind::ArrayLowerBoundDropped => "array lower bound other than 1 dropped",
            LossKind::ArrayFlattened => "multi-dimensional array flattened to 1-D",
            LossKind::NanosecondsRounded => "nanoseconds rounded to microseconds",
        }
    }
}

/// Counts of lossy conversions for one column, by kind. Counting never allocates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses([u64; LossKind::ALL.len()]);

impl Losses {
    /// Counts one conversion.
    #[inline]
    pub fn count(&mut self, kind: LossKind) {
        self.0[kind as usize] += 1;
    }

    /// Counts `n` conversions.
    pub fn add(&mut self, kind: LossKind, n: u64) {
        self.0[kind as usize] += n;
    }

    /// How many conversions of `kind` happened.
    pub fn get(&self, kind: LossKind) -> u64 {
        self.0[kind as usize]
    }

    /// Whether nothing was converted lossily.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    /// The kinds that happened, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (LossKind, u64)> + '_ {
        LossKind::ALL
            .iter()
            .map(|&k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
    }

    /// Adds another column's counts.
    pub fn merge(&mut self, other: &Losses) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// Lossy conversions of a whole export: per column name, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossReport {
    /// `(column name, counts)` for columns where something happened.
    pub columns: Vec<(String, Losses)>,
}

impl LossReport {
    /// Whether nothing was converted lossily.
    pub fn is_empty(&self) -> bool {
        self.columns.iter().all(|(_, l)| l.is_empty())
    }

    /// Total conversions.
    pub fn total(&self) -> u64 {
        self.columns
            .iter()
            .flat_map(|(_, l)| l.iter().map(|(_, n)| n))
            .sum()
    }
}

impl fmt::Display for LossReport {
    /// `col: 3 infinity written as NULL; other: 1 NaN written as NULL`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, losses) in &self.columns {
            for (kind, n) in losses.iter() {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{name}: {n} {}", kind.describe())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("clamp".parse(), Ok(SpecialValues::Clamp));
        assert_eq!(
            "decimal128:20:4".parse(),
            Ok(NumericTarget::Decimal128(20, 4))
        );
        assert_eq!(
            "decimal256:60:-2".parse(),
            Ok(NumericTarget::Decimal256(60, -2))
        );
        assert!("decimal128:40:4".parse::<NumericTarget>().is_err());
        assert!("decimal128:4:5".parse::<NumericTarget>().is_err());
        assert!("double".parse::<NumericTarget>().is_err());
        assert_eq!("view".parse(), Ok(TextLayout::View));
        assert_eq!("binary".parse(), Ok(InvalidUtf8::Binary));
        assert_eq!("utf8".parse(), Ok(EnumLayout::Utf8));
    }

    /// Every word reads as its choice and prints as itself; another word is refused naming
    /// it and the words taken.
    fn round_trips<T>(words: &[&str], wrong: &str, expected: &str)
    where
        T: FromStr<Err = ChoiceError> + fmt::Display + fmt::Debug,
    {
        for word in words {
            let parsed: T = word.parse().unwrap();
            assert_eq!(parsed.to_string(), *word);
        }
        let e = wrong.parse::<T>().unwrap_err();
        assert_eq!(e.value, wrong);
        assert_eq!(e.expected, expected);
        let message = e.to_string();
        assert!(message.contains(&format!("{wrong:?}")), "{message}");
        assert!(message.contains(expected), "{message}");
    }

    #[test]
    fn every_word_round_trips() {
        round_trips::<Infinity>(
            &["extreme", "null", "error"],
            "max",
            "extreme, null or error",
        );
        round_trips::<SpecialValues>(
            &["error", "null", "clamp", "text"],
            "nearest",
            "error, null, clamp or text",
        );
        round_trips::<ArrayShape>(&["data", "flatten", "text"], "1d", "data, flatten or text");
        round_trips::<ArrayBounds>(&["error", "drop"], "keep", "error or drop");
        round_trips::<WideNumeric>(&["decimal256", "string"], "float64", "decimal256 or string");
        round_trips::<Overflow>(&["error", "null"], "clamp", "error or null");
        round_trips::<TextLayout>(
            &["utf8", "large", "view"],
            "utf8view",
            "utf8, large or view",
        );
        round_trips::<InvalidUtf8>(
            &["error", "replace", "binary"],
            "ignore",
            "error, replace or binary",
        );
        round_trips::<EnumLayout>(&["dictionary", "utf8"], "dict", "dictionary or utf8");
        round_trips::<NumericTarget>(
            &["string", "float64", "decimal128:20:4", "decimal256:60:-2"],
            "double",
            "string, float64, decimal128:P:S or decimal256:P:S",
        );
        // Case matters, as in every other door: no word is guessed.
        assert!("Error".parse::<Overflow>().is_err());
    }

    #[test]
    fn policies_are_set_by_name_or_with() {
        let mut by_name = Policies::default();
        by_name.set("numeric", "float64").unwrap().unwrap();
        by_name.set("special_values", "clamp").unwrap().unwrap();
        by_name.set("enum", "utf8").unwrap().unwrap();
        assert!(by_name.set("no_such_policy", "x").is_none());
        let e = by_name.set("text", "wide").unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown text layout \"wide\" (expected utf8, large or view)"
        );
        let with = Policies::default()
            .with_numeric(NumericTarget::Float64)
            .with_special(SpecialValues::Clamp)
            .with_enums(EnumLayout::Utf8);
        assert_eq!(by_name, with);
    }

    #[test]
    fn reports() {
        let mut a = Losses::default();
        a.count(LossKind::InfinityToNull);
        a.count(LossKind::InfinityToNull);
        let mut b = Losses::default();
        b.count(LossKind::NanToNull);
        let r = LossReport {
            columns: vec![
                ("d".into(), a),
                ("n".into(), b),
                ("x".into(), Losses::default()),
            ],
        };
        assert_eq!(r.total(), 3);
        assert_eq!(
            r.to_string(),
            "d: 2 infinity written as NULL; n: 1 NaN written as NULL"
        );
    }
}
