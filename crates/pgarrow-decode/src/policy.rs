//! What to do where a value has no exact Arrow form, and the count of every time it happened.
//!
//! Every default refuses to lose information: it is an error naming the row and column. The
//! other choices are explicit, and each conversion they make is counted in [`Losses`], which
//! the library reports in its statistics and writes into the output file's metadata.

use std::fmt;
use std::str::FromStr;

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

/// All conversion policies of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// taken too) to `value`, as text. `None` when `name` is no policy's.
    ///
    /// # Errors
    /// A value the policy does not take, with the values it takes.
    pub fn set(&mut self, name: &str, value: &str) -> Option<Result<(), String>> {
        fn put<T: FromStr<Err = String>>(slot: &mut T, value: &str) -> Result<(), String> {
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
}

fn bad(what: &str, value: &str, expected: &str) -> String {
    format!("invalid {what} policy \"{value}\" (expected {expected})")
}

impl FromStr for Infinity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "extreme" => Ok(Self::Extreme),
            "null" => Ok(Self::Null),
            "error" => Ok(Self::Error),
            _ => Err(bad("infinity", s, "extreme, null or error")),
        }
    }
}

impl FromStr for SpecialValues {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "null" => Ok(Self::Null),
            "clamp" => Ok(Self::Clamp),
            "text" => Ok(Self::Text),
            _ => Err(bad("special-value", s, "error, null, clamp or text")),
        }
    }
}

impl FromStr for ArrayShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "data" => Ok(Self::Data),
            "flatten" => Ok(Self::Flatten),
            "text" => Ok(Self::Text),
            _ => Err(bad("array-shape", s, "data, flatten or text")),
        }
    }
}

impl FromStr for ArrayBounds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "drop" => Ok(Self::Drop),
            _ => Err(bad("array-bounds", s, "error or drop")),
        }
    }
}

impl FromStr for NumericTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let expected = "string, float64, decimal128:P:S or decimal256:P:S";
        let ps = |max: u8| -> Result<(u8, i8), String> {
            let p: u8 = parts[1].parse().map_err(|_| bad("numeric", s, expected))?;
            let sc: i8 = parts[2].parse().map_err(|_| bad("numeric", s, expected))?;
            if p == 0 || p > max || i16::from(sc) > i16::from(p) {
                return Err(format!(
                    "invalid numeric policy \"{s}\": precision must be 1..={max} and scale at most the precision"
                ));
            }
            Ok((p, sc))
        };
        match parts.as_slice() {
            ["string"] => Ok(Self::String),
            ["float64"] => Ok(Self::Float64),
            ["decimal128", _, _] => ps(38).map(|(p, s)| Self::Decimal128(p, s)),
            ["decimal256", _, _] => ps(76).map(|(p, s)| Self::Decimal256(p, s)),
            _ => Err(bad("numeric", s, expected)),
        }
    }
}

impl FromStr for WideNumeric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "decimal256" => Ok(Self::Decimal256),
            "string" => Ok(Self::String),
            _ => Err(bad("wide numeric", s, "decimal256 or string")),
        }
    }
}

impl FromStr for Overflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "null" => Ok(Self::Null),
            _ => Err(bad("numeric overflow", s, "error or null")),
        }
    }
}

impl FromStr for TextLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "utf8" => Ok(Self::Utf8),
            "large" => Ok(Self::Large),
            "view" => Ok(Self::View),
            _ => Err(bad("text", s, "utf8, large or view")),
        }
    }
}

impl FromStr for InvalidUtf8 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(Self::Error),
            "replace" => Ok(Self::Replace),
            "binary" => Ok(Self::Binary),
            _ => Err(bad("invalid UTF-8", s, "error, replace or binary")),
        }
    }
}

impl FromStr for EnumLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dictionary" => Ok(Self::Dictionary),
            "utf8" => Ok(Self::Utf8),
            _ => Err(bad("enum", s, "dictionary or utf8")),
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
