use super::*;

/// Metadata of version 1 with `names`, offsets of `width` bytes.
fn metadata_of(names: &[&str], width: usize) -> Vec<u8> {
    let mut m = vec![0x01 | (((width - 1) as u8) << 6)];
    let put = |m: &mut Vec<u8>, n: usize| m.extend_from_slice(&n.to_le_bytes()[..width]);
    put(&mut m, names.len());
    let mut at = 0;
    put(&mut m, 0);
    for n in names {
        at += n.len();
        put(&mut m, at);
    }
    for n in names {
        m.extend_from_slice(n.as_bytes());
    }
    m
}

fn primitive(id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![id << 2];
    v.extend_from_slice(data);
    v
}

fn short(text: &str) -> Vec<u8> {
    let mut v = vec![((text.len() as u8) << 2) | 1];
    v.extend_from_slice(text.as_bytes());
    v
}

fn long(id: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![id << 2];
    v.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    v.extend_from_slice(bytes);
    v
}

/// An array of `elements`, offsets of `width` bytes, `large` count.
fn array_of(elements: &[Vec<u8>], width: usize, large: bool) -> Vec<u8> {
    let mut v = vec![(((u8::from(large) << 2) | (width as u8 - 1)) << 2) | 3];
    let count = if large { 4 } else { 1 };
    v.extend_from_slice(&elements.len().to_le_bytes()[..count]);
    let mut at = 0;
    v.extend_from_slice(&0usize.to_le_bytes()[..width]);
    for e in elements {
        at += e.len();
        v.extend_from_slice(&at.to_le_bytes()[..width]);
    }
    for e in elements {
        v.extend_from_slice(e);
    }
    v
}

/// An object of (field ID, value), in the order given, values laid out in reverse order.
fn object_of(fields: &[(usize, Vec<u8>)], id_width: usize, width: usize) -> Vec<u8> {
    let header = ((id_width as u8 - 1) << 2) | (width as u8 - 1);
    let mut v = vec![(header << 2) | 2, fields.len() as u8];
    for (id, _) in fields {
        v.extend_from_slice(&id.to_le_bytes()[..id_width]);
    }
    // Values in reverse: the offsets are not in order, as the specification allows.
    let mut offsets = vec![0; fields.len()];
    let mut at = 0;
    for (k, (_, value)) in fields.iter().enumerate().rev() {
        offsets[k] = at;
        at += value.len();
    }
    for o in offsets.iter().chain([&at]) {
        v.extend_from_slice(&o.to_le_bytes()[..width]);
    }
    for (_, value) in fields.iter().rev() {
        v.extend_from_slice(value);
    }
    v
}

fn json(metadata: &[u8], value: &[u8]) -> VResult<String> {
    let mut out = String::new();
    to_json(metadata, value, &mut out).map(|()| out)
}

fn empty() -> Vec<u8> {
    metadata_of(&[], 1)
}

macro_rules! gives {
    ($($value:expr => $text:expr),* $(,)?) => {$(
        assert_eq!(json(&empty(), &$value).as_deref(), Ok($text), "{:?}", $value);
    )*};
}

#[test]
fn primitives() {
    gives! {
        primitive(0, &[]) => "null",
        primitive(1, &[]) => "true",
        primitive(2, &[]) => "false",
        primitive(3, &[0x80]) => "-128",
        primitive(4, &(-300i16).to_le_bytes()) => "-300",
        primitive(5, &i32::MAX.to_le_bytes()) => "2147483647",
        primitive(6, &i64::MIN.to_le_bytes()) => "-9223372036854775808",
        primitive(7, &0.1f64.to_le_bytes()) => "0.1",
        primitive(7, &(-3e10f64).to_le_bytes()) => "-3e10",
        primitive(7, &1e300f64.to_le_bytes()) => "1e300",
        primitive(7, &1.2345678901234568e17f64.to_le_bytes()) => "1.2345678901234568e17",
        primitive(7, &0.001f64.to_le_bytes()) => "0.001",
        primitive(7, &1e-5f64.to_le_bytes()) => "1e-5",
        primitive(7, &0.0f64.to_le_bytes()) => "0",
        primitive(14, &0.1f32.to_le_bytes()) => "0.1",
        primitive(14, &3.4e38f32.to_le_bytes()) => "3.4e38",
        primitive(14, &1.5f32.to_le_bytes()) => "1.5",
        short("") => r#""""#,
        short("hi é\n\"\\\u{1}") => r#""hi é\n\"\\\u0001""#,
        long(16, "x\"y".as_bytes()) => r#""x\"y""#,
        long(15, &[]) => r#""""#,
        long(15, &[0xff]) => r#""/w==""#,
        long(15, &[0x00, 0xff, 0x10]) => r#""AP8Q""#,
    }
}

#[test]
fn decimals_by_their_digits() {
    let dec4 = |scale: u8, unscaled: i32| {
        let mut d = vec![scale];
        d.extend_from_slice(&unscaled.to_le_bytes());
        primitive(8, &d)
    };
    let dec8 = |scale: u8, unscaled: i64| {
        let mut d = vec![scale];
        d.extend_from_slice(&unscaled.to_le_bytes());
        primitive(9, &d)
    };
    let dec16 = |scale: u8, unscaled: i128| {
        let mut d = vec![scale];
        d.extend_from_slice(&unscaled.to_le_bytes());
        primitive(10, &d)
    };
    gives! {
        dec4(4, 1_234_500) => "123.45",
        dec4(3, -5) => "-0.005",
        dec4(0, 0) => "0",
        dec8(2, 0) => "0",
        dec8(2, -123_456_789_012) => "-1234567890.12",
        dec16(0, 10i128.pow(37)) => "10000000000000000000000000000000000000",
        dec16(38, -(10i128.pow(37))) => "-0.1",
        dec16(18, 12_345_678_901_234_567_890_123_456_789_012_345_678) =>
            "12345678901234567890.123456789012345678",
        dec16(38, i128::MIN) => "-1.70141183460469231731687303715884105728",
    }
    let e = json(&empty(), &dec4(39, 1)).unwrap_err();
    assert!(e.is_malformed(), "{e}");
}

#[test]
fn dates_times_and_uuids_as_spark_writes_them() {
    let micros = |id: u8, n: i64| primitive(id, &n.to_le_bytes());
    let date = |days: i32| primitive(11, &days.to_le_bytes());
    gives! {
        date(19_782) => r#""2024-02-29""#,
        date(-719_162) => r#""0001-01-01""#,
        date(-800_000) => r#""-0221-09-04""#,
        date(3_000_000) => r#""+10183-09-21""#,
        micros(12, 0) => r#""1970-01-01 00:00:00+00:00""#,
        micros(12, 500_000) => r#""1970-01-01 00:00:00.5+00:00""#,
        micros(12, 1) => r#""1970-01-01 00:00:00.000001+00:00""#,
        micros(12, 1_709_210_096_789_012) => r#""2024-02-29 12:34:56.789012+00:00""#,
        micros(12, -62_135_596_800_000_001) => r#""0000-12-31 23:59:59.999999+00:00""#,
        micros(12, 253_402_300_800_000_005) => r#""+10000-01-01 00:00:00.000005+00:00""#,
        micros(13, 120_000) => r#""1970-01-01 00:00:00.12""#,
        micros(13, -1) => r#""1969-12-31 23:59:59.999999""#,
        micros(18, 1) => r#""1970-01-01 00:00:00.000000001+00:00""#,
        micros(19, 123_456_789) => r#""1970-01-01 00:00:00.123456789""#,
        micros(17, 45_296_789_012) => r#""12:34:56.789012""#,
        micros(17, 0) => r#""00:00:00""#,
        primitive(20, &[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78,
            0x9a, 0xbc, 0xde, 0xf0]) => r#""12345678-9abc-def0-1234-56789abcdef0""#,
    }
    let e = json(&empty(), &micros(17, 86_400_000_000)).unwrap_err();
    assert!(e.is_malformed(), "{e}");
}

#[test]
fn what_jsonb_cannot_hold_is_refused() {
    for value in [
        primitive(7, &f64::NAN.to_le_bytes()),
        primitive(7, &f64::NEG_INFINITY.to_le_bytes()),
        primitive(14, &f32::INFINITY.to_le_bytes()),
        short("a\0"),
    ] {
        let e = json(&empty(), &value).unwrap_err();
        assert!(matches!(e, VariantError::NotJson { .. }), "{e}");
        assert!(!e.is_malformed());
    }
    // A key with U+0000 too.
    let e = json(
        &metadata_of(&["a\0"], 1),
        &object_of(&[(0, primitive(0, &[]))], 1, 1),
    );
    assert!(matches!(e, Err(VariantError::NotJson { .. })), "{e:?}");
    // Nested past the depth limit.
    let mut deep = primitive(0, &[]);
    for _ in 0..=MAX_DEPTH {
        deep = array_of(&[deep], 4, false);
    }
    let e = json(&empty(), &deep).unwrap_err();
    assert!(matches!(e, VariantError::NotJson { .. }), "{e}");
    // MAX_DEPTH levels read.
    let mut deep = primitive(0, &[]);
    for _ in 0..MAX_DEPTH {
        deep = array_of(&[deep], 4, false);
    }
    assert!(json(&empty(), &deep).is_ok());
}

#[test]
fn objects_and_arrays_nest() {
    let metadata = metadata_of(&["a", "b", "c", "d"], 1);
    let inner = object_of(&[(3, short("x"))], 1, 1);
    let list = array_of(
        &[primitive(1, &[]), primitive(0, &[]), short("x")],
        1,
        false,
    );
    let value = object_of(
        &[
            (0, primitive(3, &[1])),
            (1, list.clone()),
            (2, inner.clone()),
        ],
        1,
        1,
    );
    assert_eq!(
        json(&metadata, &value).unwrap(),
        r#"{"a":1,"b":[true,null,"x"],"c":{"d":"x"}}"#
    );
    // Wider IDs and offsets, a large count, 2-byte metadata offsets: the same text.
    let wide_meta = metadata_of(&["a", "b", "c", "d"], 2);
    let wide = object_of(
        &[
            (0, primitive(3, &[1])),
            (
                1,
                array_of(&[primitive(1, &[]), primitive(0, &[]), short("x")], 3, true),
            ),
            (2, object_of(&[(3, short("x"))], 4, 4)),
        ],
        2,
        2,
    );
    assert_eq!(
        json(&wide_meta, &wide).unwrap(),
        json(&metadata, &value).unwrap()
    );
    // Empty ones.
    assert_eq!(json(&empty(), &array_of(&[], 1, false)).unwrap(), "[]");
    assert_eq!(json(&empty(), &object_of(&[], 1, 1)).unwrap(), "{}");
    // Names are escaped.
    let m = metadata_of(&["q\"k"], 1);
    assert_eq!(
        json(&m, &object_of(&[(0, primitive(2, &[]))], 1, 1)).unwrap(),
        r#"{"q\"k":false}"#
    );
    // Every prefix of the value is an error, never a panic.
    for n in 0..value.len() {
        assert!(json(&metadata, &value[..n]).is_err(), "prefix {n}");
    }
    for n in 0..metadata.len() {
        assert!(json(&metadata[..n], &value).is_err(), "metadata prefix {n}");
    }
}

#[test]
fn malformed_bytes_are_errors_that_say_where() {
    let metadata = metadata_of(&["a", "b"], 1);
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        // Version 2.
        (vec![0x02, 0x00, 0x00], primitive(0, &[])),
        // A dictionary size past the end.
        (vec![0x01, 0xff, 0x00], primitive(0, &[])),
        // A name's last offset past the bytes.
        (vec![0x01, 0x01, 0x00, 0x05, b'a'], primitive(0, &[])),
        // A name that is not UTF-8.
        (
            vec![0x01, 0x01, 0x00, 0x01, 0xff],
            object_of(&[(0, primitive(0, &[]))], 1, 1),
        ),
        // A field ID past the dictionary.
        (metadata.clone(), object_of(&[(7, primitive(0, &[]))], 1, 1)),
        // One name twice.
        (
            metadata.clone(),
            object_of(&[(0, primitive(0, &[])), (0, primitive(1, &[]))], 1, 1),
        ),
        // A string that is not UTF-8.
        (empty(), vec![(1 << 2) | 1, 0xff]),
        // A long string longer than the value.
        (empty(), long(16, b"abc")[..6].to_vec()),
        // An empty value.
        (empty(), vec![]),
    ];
    for (m, v) in cases {
        let e = json(&m, &v).unwrap_err();
        assert!(e.is_malformed(), "{m:?} {v:?}: {e}");
    }
    // An unknown primitive type: named.
    let e = json(&empty(), &primitive(21, &[])).unwrap_err();
    assert_eq!(e, VariantError::UnknownType { offset: 0, id: 21 });
    // Two array elements at one offset: refused, not read twice.
    let shared = vec![0x03, 2, 0, 0, 1, 0x04];
    assert!(json(&empty(), &shared).unwrap_err().is_malformed());
    // Two object fields at one offset: refused.
    let shared = vec![0x02, 2, 0, 1, 0, 0, 1, 0x04];
    assert!(json(&metadata, &shared).unwrap_err().is_malformed());
    // Unsorted but distinct names read.
    let unsorted = object_of(&[(1, primitive(1, &[])), (0, primitive(2, &[]))], 1, 1);
    assert_eq!(
        json(&metadata, &unsorted).unwrap(),
        r#"{"b":true,"a":false}"#
    );
}

#[test]
fn columns_read_as_json_text_naming_column_and_row() {
    use arrow_array::BinaryArray;
    use arrow_schema::Fields;
    let fields = Fields::from(vec![
        Field::new("metadata", DataType::Binary, false),
        Field::new("value", DataType::Binary, true),
    ]);
    let variant = Field::new("v", DataType::Struct(fields.clone()), true);
    assert!(is_variant(&variant));
    assert!(!is_variant(&Field::new("v", DataType::Binary, true)));
    let m = empty();
    let make = |values: Vec<Option<&[u8]>>, nulls: Option<Vec<bool>>| -> ArrayRef {
        let n = values.len();
        Arc::new(StructArray::new(
            fields.clone(),
            vec![
                Arc::new(BinaryArray::from(vec![Some(m.as_slice()); n])),
                Arc::new(BinaryArray::from(values)),
            ],
            nulls.map(Into::into),
        ))
    };
    let one = primitive(3, &[1]);
    let nan = primitive(7, &f64::NAN.to_le_bytes());
    let array = make(
        vec![Some(&one), Some(&one), None],
        Some(vec![true, false, true]),
    );
    let got = json_array(&array, "v", 0).unwrap();
    let got = got.as_string::<i32>();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        [Some("1"), None, Some("null")]
    );
    // NaN: named by column and row (counted from the file's first row).
    let e = json_array(&make(vec![Some(&one), Some(&nan)], None), "v", 10).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("column \"v\", row 11"), "{e}");
    // Malformed: an input error, named.
    let e = json_array(&make(vec![Some(&[0x03, 9])], None), "v", 0).unwrap_err();
    assert!(
        e.is_input() && e.to_string().contains("column \"v\", row 0"),
        "{e}"
    );
    // A shredded value: refused by name.
    let shredded = Fields::from(vec![
        Field::new("metadata", DataType::Binary, false),
        Field::new("value", DataType::Binary, true),
        Field::new("typed_value", DataType::Int64, true),
    ]);
    let array: ArrayRef = Arc::new(StructArray::new(
        shredded.clone(),
        vec![
            Arc::new(BinaryArray::from(vec![Some(m.as_slice()); 2])),
            Arc::new(BinaryArray::from(vec![Some(one.as_slice()), None])),
            Arc::new(arrow_array::Int64Array::from(vec![None, Some(34)])),
        ],
        None,
    ));
    assert!(is_variant(&Field::new(
        "v",
        DataType::Struct(shredded),
        true
    )));
    let e = json_array(&array, "v", 0).unwrap_err().to_string();
    assert!(e.contains("row 1") && e.contains("shredded"), "{e}");
    // The field it becomes: JSON text, which pgarrow loads as jsonb.
    let field = json_field_of(&variant);
    assert!(is_json_text(&field) && field.name() == "v");
}

/// A Parquet file of one Variant column `v` as a writer that does not annotate it leaves it:
/// a plain struct of metadata and value.
fn unannotated_file(path: &std::path::Path, values: &[Vec<u8>]) {
    use arrow_array::BinaryArray;
    let fields = arrow_schema::Fields::from(vec![
        Field::new("metadata", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]);
    let m = empty();
    let column = StructArray::new(
        fields.clone(),
        vec![
            Arc::new(BinaryArray::from(vec![m.as_slice(); values.len()])),
            Arc::new(BinaryArray::from(
                values.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            )),
        ],
        None,
    );
    let schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        DataType::Struct(fields),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn a_table_reads_its_variant_columns_as_json() {
    use crate::{Input, InputOptions, TableFile};
    use arrow_array::RecordBatchReader as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.parquet");
    unannotated_file(&path, &[short("a"), primitive(3, &[7])]);
    let texts = |input: Input| -> Vec<Option<String>> {
        input
            .flat_map(|b| {
                let b = b.unwrap();
                let c = b.column(0).as_string::<i32>().clone();
                c.iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>()
            })
            .collect()
    };
    let file = || vec![TableFile::new(path.clone().into(), Some(2), Vec::new())];
    // Iceberg's way: the table's field is variant_field.
    let schema = Arc::new(Schema::new(vec![variant_field("v")]));
    let input = Input::open_table_as(
        "t",
        schema.clone(),
        file(),
        vec![],
        &InputOptions::default(),
    )
    .unwrap();
    assert!(is_json_text(input.schema().field(0)));
    assert_eq!(
        texts(input),
        [Some("\"a\"".to_owned()), Some("7".to_owned())]
    );
    // Delta's way: the files' field is the struct, the table's is text.
    let file_schema = Arc::new(Schema::new(vec![Field::new(
        "v",
        DataType::Struct(
            vec![
                Field::new("metadata", DataType::Binary, false),
                Field::new("value", DataType::Binary, false),
            ]
            .into(),
        ),
        true,
    )]));
    let table = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, true)]));
    let input = Input::open_table_named(
        "t",
        table,
        file_schema,
        file(),
        vec![],
        &InputOptions::default(),
    )
    .unwrap();
    assert!(is_json_text(input.schema().field(0)));
    assert_eq!(
        texts(input),
        [Some("\"a\"".to_owned()), Some("7".to_owned())]
    );
    // A malformed value: the file, the column and the row named.
    unannotated_file(&path, &[short("a"), vec![0x03, 9]]);
    let input =
        Input::open_table_as("t", schema, file(), vec![], &InputOptions::default()).unwrap();
    let e = input
        .map(|b| b.map(|_| ()))
        .collect::<std::result::Result<Vec<()>, _>>();
    let e = e.unwrap_err().to_string();
    assert!(
        e.contains("v.parquet") && e.contains("column \"v\", row 1"),
        "{e}"
    );
}
