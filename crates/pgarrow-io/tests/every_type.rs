//! Every Arrow type the decoder produces, alone and nested in every container it produces
//! (lists, structs, maps, lists of structs of lists), written through each file format and
//! read back: the same values come back, intervals in Parquet as their exact struct.

use std::fs::File;
use std::sync::Arc;

use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, IntervalMonthDayNanoType};
use arrow_array::*;
use arrow_buffer::{IntervalMonthDayNano, NullBuffer, OffsetBuffer, i256};
use arrow_schema::{DataType, Field, Fields, IntervalUnit, Schema};
use pgarrow_io::{Format, IntervalEncoding, META_INTERVAL_ENCODING, Output, Sink, SinkOptions};

/// Four values of each leaf type, the third NULL.
fn leaves() -> Vec<(&'static str, ArrayRef)> {
    let nulls = || Some(NullBuffer::from(vec![true, true, false, true]));
    vec![
        (
            "bool",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
        ),
        (
            "int2",
            Arc::new(Int16Array::from(vec![
                Some(i16::MIN),
                Some(-1),
                None,
                Some(i16::MAX),
            ])),
        ),
        (
            "int4",
            Arc::new(Int32Array::from(vec![
                Some(i32::MIN),
                Some(0),
                None,
                Some(7),
            ])),
        ),
        (
            "int8",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(1),
                None,
                Some(i64::MAX),
            ])),
        ),
        (
            "oid",
            Arc::new(UInt32Array::from(vec![
                Some(0),
                Some(1 << 31),
                None,
                Some(u32::MAX),
            ])),
        ),
        (
            "float4",
            Arc::new(Float32Array::from(vec![
                Some(-0.0),
                Some(f32::INFINITY),
                None,
                Some(0.1),
            ])),
        ),
        (
            "float8",
            Arc::new(Float64Array::from(vec![
                Some(f64::MIN),
                Some(f64::NEG_INFINITY),
                None,
                Some(1e-300),
            ])),
        ),
        (
            "numeric(38,10)",
            Arc::new(
                Decimal128Array::from(vec![Some(i128::MAX / 10), Some(-1), None, Some(0)])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
        ),
        (
            "numeric(76,20)",
            Arc::new(
                Decimal256Array::from(vec![
                    Some(i256::from_i128(i128::MIN)),
                    Some(i256::from_i128(5)),
                    None,
                    Some(i256::from_i128(-5)),
                ])
                .with_precision_and_scale(76, 20)
                .unwrap(),
            ),
        ),
        (
            "text",
            Arc::new(StringArray::from(vec![
                Some(""),
                Some("é😀"),
                None,
                Some("x"),
            ])),
        ),
        (
            "text large",
            Arc::new(LargeStringArray::from(vec![
                Some("a"),
                Some(""),
                None,
                Some("b"),
            ])),
        ),
        (
            "text view",
            Arc::new(StringViewArray::from(vec![
                Some("a string longer than twelve bytes"),
                Some(""),
                None,
                Some("short"),
            ])),
        ),
        (
            "bytea",
            Arc::new(BinaryArray::from(vec![
                Some(&b""[..]),
                Some(&b"\0\xff"[..]),
                None,
                Some(&b"x"[..]),
            ])),
        ),
        (
            "uuid",
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some([1u8; 16]), Some([0; 16]), None, Some([255; 16])].into_iter(),
                    16,
                )
                .unwrap(),
            ),
        ),
        (
            "date",
            Arc::new(Date32Array::from(vec![
                Some(-719_162),
                Some(0),
                None,
                Some(2_932_896),
            ])),
        ),
        (
            "time",
            Arc::new(Time64MicrosecondArray::from(vec![
                Some(0),
                Some(86_399_999_999),
                None,
                Some(1),
            ])),
        ),
        (
            "timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(i64::MIN + 1),
                Some(0),
                None,
                Some(1),
            ])),
        ),
        (
            "timestamptz",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(-1), Some(0), None, Some(i64::MAX)])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "interval",
            Arc::new(IntervalMonthDayNanoArray::from(vec![
                Some(IntervalMonthDayNano::new(1, -2, 3_000)),
                Some(IntervalMonthDayNano::new(-12, 30, -86_400_000_000_000)),
                None,
                Some(IntervalMonthDayNano::new(i32::MAX, i32::MIN, 999_999_000)),
            ])),
        ),
        (
            "enum",
            Arc::new(
                DictionaryArray::<Int16Type>::try_new(
                    Int16Array::new(vec![0, 2, 0, 1].into(), nulls()),
                    Arc::new(StringArray::from(vec!["sad", "ok", "happy"])),
                )
                .unwrap(),
            ),
        ),
        (
            "vector(2)",
            Arc::new(FixedSizeListArray::new(
                Arc::new(Field::new("item", DataType::Float32, true)),
                2,
                Arc::new(Float32Array::from(vec![
                    1.0, 2.0, 3.0, 4.0, 0.0, 0.0, -1.0, 0.5,
                ])),
                nulls(),
            )),
        ),
        ("hstore", {
            let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
            b.keys().append_value("k");
            b.values().append_null();
            b.append(true).unwrap();
            b.append(true).unwrap();
            b.append(false).unwrap();
            b.keys().append_value("a");
            b.values().append_value("b");
            b.append(true).unwrap();
            Arc::new(b.finish())
        }),
    ]
}

/// `leaf` in each container the decoder builds, all of 4 rows.
fn containers(leaf: &ArrayRef) -> Vec<(&'static str, ArrayRef)> {
    let item = |a: &ArrayRef| Arc::new(Field::new("item", a.data_type().clone(), true));
    // A list of 4 rows over the 4 values: [v0, v1], [], NULL, [v2, v3].
    let list = |a: &ArrayRef| -> ArrayRef {
        Arc::new(ListArray::new(
            item(a),
            OffsetBuffer::new(vec![0, 2, 2, 2, 4].into()),
            a.clone(),
            Some(NullBuffer::from(vec![true, true, false, true])),
        ))
    };
    let structure = |a: &ArrayRef| -> ArrayRef {
        Arc::new(StructArray::new(
            Fields::from(vec![
                Field::new("v", a.data_type().clone(), true),
                Field::new("n", DataType::Int32, true),
            ]),
            vec![a.clone(), Arc::new(Int32Array::from(vec![1, 2, 3, 4]))],
            Some(NullBuffer::from(vec![true, false, true, true])),
        ))
    };
    let map = |a: &ArrayRef| -> ArrayRef {
        let entries = StructArray::new(
            Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", a.data_type().clone(), true),
            ]),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                a.clone(),
            ],
            None,
        );
        Arc::new(
            MapArray::try_new(
                Arc::new(Field::new("entries", entries.data_type().clone(), false)),
                OffsetBuffer::new(vec![0, 1, 2, 3, 4].into()),
                entries,
                None,
                false,
            )
            .unwrap(),
        )
    };
    let deep = list(&structure(&list(leaf)));
    vec![
        ("plain", leaf.clone()),
        ("list", list(leaf)),
        ("struct", structure(leaf)),
        ("map", map(leaf)),
        ("list of struct of list", deep),
    ]
}

fn write_and_read(format: Format, batch: &RecordBatch) -> Vec<RecordBatch> {
    write_and_read_with(format, batch, &SinkOptions::default())
}

fn write_and_read_with(
    format: Format,
    batch: &RecordBatch,
    options: &SinkOptions,
) -> Vec<RecordBatch> {
    let (_dir, path) = write_file(format, batch, options);
    let file = File::open(&path).unwrap();
    match format {
        Format::Parquet => {
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        Format::ArrowFile => arrow_ipc::reader::FileReader::try_new(file, None)
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        Format::ArrowStream => arrow_ipc::reader::StreamReader::try_new(file, None)
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        Format::Null => unreachable!(),
    }
}

/// Writes `batch` through a sink into a new file: the file's directory (which removes it when
/// dropped) and its path.
fn write_file(
    format: Format,
    batch: &RecordBatch,
    options: &SinkOptions,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let mut sink = Sink::create(format, Output::File(path.clone()), &batch.schema(), options)
        .unwrap_or_else(|e| panic!("{format}: {e}"));
    sink.write(batch)
        .unwrap_or_else(|e| panic!("{format}: {e}"));
    sink.finish().unwrap_or_else(|e| panic!("{format}: {e}"));
    (dir, path)
}

/// The intervals of `a`, at any depth, as `(months, days, microseconds)`, from either form.
fn intervals(a: &dyn Array, out: &mut Vec<Option<(i32, i32, i64)>>) {
    match a.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let iv = a.as_primitive::<IntervalMonthDayNanoType>();
            out.extend(
                iv.iter()
                    .map(|v| v.map(|v| (v.months, v.days, v.nanoseconds / 1000))),
            );
        }
        DataType::Struct(f) if f.len() == 3 && f[0].name() == "months" => {
            let s = a.as_struct();
            for i in 0..s.len() {
                out.push(s.is_valid(i).then(|| {
                    (
                        s.column(0)
                            .as_primitive::<arrow_array::types::Int32Type>()
                            .value(i),
                        s.column(1)
                            .as_primitive::<arrow_array::types::Int32Type>()
                            .value(i),
                        s.column(2)
                            .as_primitive::<arrow_array::types::Int64Type>()
                            .value(i),
                    )
                }));
            }
        }
        DataType::Struct(_) => {
            // A value under a NULL struct is not data (Parquet does not keep it).
            let s = a.as_struct();
            for c in s.columns() {
                let mut values = Vec::new();
                intervals(c.as_ref(), &mut values);
                if c.data_type().is_nested() && !matches!(c.data_type(), DataType::Struct(_)) {
                    out.extend(values);
                } else {
                    out.extend(
                        values
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| v.filter(|_| s.is_valid(i))),
                    );
                }
            }
        }
        DataType::List(_) => intervals(a.as_list::<i32>().values().as_ref(), out),
        DataType::Map(_, _) => intervals(a.as_map().entries(), out),
        _ => {}
    }
}

/// Whether an interval field at any depth of `f` says how Parquet holds it.
fn interval_fields_declared(f: &Field) -> bool {
    match f.data_type() {
        DataType::Struct(fs) if fs.len() == 3 && fs[0].name() == "months" => {
            f.metadata().contains_key(META_INTERVAL_ENCODING)
        }
        DataType::Struct(fs) => fs.iter().all(|f| interval_fields_declared(f)),
        DataType::List(f) | DataType::Map(f, _) => interval_fields_declared(f),
        _ => true,
    }
}

#[test]
fn every_leaf_in_every_container_through_every_format() {
    let mut cases = 0;
    for (leaf_name, leaf) in leaves() {
        for (container, column) in containers(&leaf) {
            let what = format!("{leaf_name} in {container}");
            let schema = Arc::new(Schema::new(vec![Field::new(
                "c",
                column.data_type().clone(),
                true,
            )]));
            let batch = RecordBatch::try_new(schema, vec![column.clone()]).unwrap();
            for format in [Format::ArrowFile, Format::ArrowStream] {
                let back = write_and_read(format, &batch);
                assert_eq!(back.len(), 1, "{what}, {format}");
                assert_eq!(back[0].column(0), &column, "{what}, {format}");
            }
            // Parquet always holds intervals as structs; IPC does when asked.
            let structs = SinkOptions::default().with_intervals(IntervalEncoding::Struct);
            for (format, options) in [
                (Format::Parquet, SinkOptions::default()),
                (Format::ArrowFile, structs.clone()),
                (Format::ArrowStream, structs),
            ] {
                let back = write_and_read_with(format, &batch, &options);
                let got = arrow_select::concat::concat_batches(&back[0].schema(), &back).unwrap();
                assert_eq!(got.num_rows(), 4, "{what}, {format}");
                if leaf_name == "interval" {
                    let (mut want, mut have) = (Vec::new(), Vec::new());
                    intervals(column.as_ref(), &mut want);
                    intervals(got.column(0).as_ref(), &mut have);
                    assert!(!want.is_empty(), "{what}, {format}");
                    assert_eq!(have, want, "{what}, {format}");
                    assert!(
                        !format!("{:?}", got.schema()).contains("Interval"),
                        "{what}, {format}: {:?}",
                        got.schema()
                    );
                    assert!(
                        interval_fields_declared(got.schema().field(0)),
                        "{what}, {format}: {:?}",
                        got.schema()
                    );
                } else {
                    assert_eq!(got.column(0), &column, "{what}, {format}");
                }
            }
            cases += 1;
        }
    }
    assert_eq!(cases, leaves().len() * 5);
}

/// uuid and json columns carry Parquet's UUID and JSON logical types (from the `arrow.uuid` and
/// `arrow.json` extension types the decoder sets), so that readers such as DuckDB see UUID and
/// JSON rather than BLOB and VARCHAR; the file's metadata is also the Arrow schema's.
#[test]
fn uuid_and_json_get_their_parquet_logical_types() {
    use parquet::basic::LogicalType;
    use std::collections::HashMap;
    let ext = |name: &str| {
        HashMap::from([
            ("ARROW:extension:name".to_owned(), name.to_owned()),
            ("ARROW:extension:metadata".to_owned(), String::new()),
        ])
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("u", DataType::FixedSizeBinary(16), true).with_metadata(ext("arrow.uuid")),
        Field::new("j", DataType::Utf8, true).with_metadata(ext("arrow.json")),
        Field::new("t", DataType::Utf8, true),
        Field::new(
            "ua",
            DataType::List(Arc::new(
                Field::new("item", DataType::FixedSizeBinary(16), true)
                    .with_metadata(ext("arrow.uuid")),
            )),
            true,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some([7u8; 16]), None].into_iter(),
                    16,
                )
                .unwrap(),
            ),
            Arc::new(StringArray::from(vec![Some("{\"a\": 1}"), None])),
            Arc::new(StringArray::from(vec![Some("x"), None])),
            Arc::new(ListArray::new(
                Arc::new(
                    Field::new("item", DataType::FixedSizeBinary(16), true)
                        .with_metadata(ext("arrow.uuid")),
                ),
                OffsetBuffer::new(vec![0, 1, 1].into()),
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        vec![Some([9u8; 16])].into_iter(),
                        16,
                    )
                    .unwrap(),
                ),
                None,
            )),
        ],
    )
    .unwrap();
    let options = SinkOptions::default()
        .with_metadata(vec![("pgarrow.version".to_owned(), "9.9.9".to_owned())]);
    let (_dir, path) = write_file(Format::Parquet, &batch, &options);
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        File::open(&path).unwrap(),
    )
    .unwrap();
    // The file's metadata is in the embedded Arrow schema too (where pyarrow looks).
    assert_eq!(
        builder
            .schema()
            .metadata()
            .get("pgarrow.version")
            .map(String::as_str),
        Some("9.9.9")
    );
    let descr = builder.metadata().file_metadata().schema_descr();
    assert_eq!(descr.column(0).logical_type_ref(), Some(&LogicalType::Uuid));
    assert_eq!(descr.column(1).logical_type_ref(), Some(&LogicalType::Json));
    assert_eq!(
        descr.column(2).logical_type_ref(),
        Some(&LogicalType::String)
    );
    // The elements of a list (uuid[]) too, from their item field's extension type.
    assert_eq!(descr.column(3).logical_type_ref(), Some(&LogicalType::Uuid));
    let back: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    assert_eq!(back[0].column(0), batch.column(0));
    assert_eq!(back[0].column(1), batch.column(1));
}
