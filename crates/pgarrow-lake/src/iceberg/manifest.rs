//! Iceberg's manifests and manifest lists (format version 2), as Avro files: a data file's
//! entry with its partition tuple, counts, sizes and bounds (in the specification's binary
//! single-value form), and a snapshot's list of manifests with their partitions' summaries.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use parquet::file::metadata::ParquetMetaData;
use pgarrow::io::ManifestFile;
use pgarrow::{Error, ErrorKind, Result};
use serde_json::{Value as Json, json};

use crate::avro::{self, Value};
use crate::bounds::{self, Value as Bound};

/// One field of a partition spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecField {
    pub(crate) source_id: i64,
    pub(crate) field_id: i64,
    pub(crate) name: String,
    /// `identity`, `year`, `bucket[16]`, `truncate[4]`, ...
    pub(crate) transform: String,
    /// The source column's Iceberg type.
    pub(crate) source_type: String,
}

impl SpecField {
    /// The type of the partition value.
    pub(crate) fn result_type(&self) -> &str {
        match self.transform.as_str() {
            "year" | "month" | "hour" => "int",
            t if t.starts_with("bucket") => "int",
            "day" => "date",
            _ => &self.source_type,
        }
    }

    /// The field as the table metadata's partition spec holds it.
    pub(crate) fn spec_field(&self) -> super::spec::PartitionSpecField {
        super::spec::PartitionSpecField {
            source_id: self.source_id,
            field_id: Some(self.field_id),
            name: self.name.clone(),
            transform: self.transform.clone(),
            other: Default::default(),
        }
    }
}

/// A partition value, typed.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub(crate) enum Typed {
    Bool(bool),
    Int(i32),
    Long(i64),
    /// An unscaled decimal.
    Decimal(i128),
    Text(String),
    Bytes(Vec<u8>),
}

impl Typed {
    /// A partition value as a manifest holds it (`result_type`: the partition field's type),
    /// `None` for NULL; an error for a value pgarrow does not write.
    pub(crate) fn from_avro(
        value: &Value,
        result_type: &str,
    ) -> std::result::Result<Option<Typed>, String> {
        Ok(Some(match value {
            Value::Null => return Ok(None),
            Value::Bool(b) => Typed::Bool(*b),
            Value::Int(n) => Typed::Int(*n),
            Value::Long(n) => Typed::Long(*n),
            Value::String(s) => Typed::Text(s.clone()),
            Value::Bytes(b) if decimal_of(result_type).is_some() => {
                if b.len() > 16 {
                    return Err(format!("a decimal partition value of {} bytes", b.len()));
                }
                // Big-endian two's complement, sign-extended.
                let fill = if b.first().is_some_and(|&x| x & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut full = [fill; 16];
                full[16 - b.len()..].copy_from_slice(b);
                Typed::Decimal(i128::from_be_bytes(full))
            }
            Value::Bytes(b) => Typed::Bytes(b.clone()),
            other => return Err(format!("a partition value {other:?} of type {result_type}")),
        }))
    }

    /// The specification's binary single-value form, for bounds.
    pub(crate) fn binary(&self, precision: Option<u32>) -> Vec<u8> {
        match self {
            Typed::Bool(b) => vec![u8::from(*b)],
            Typed::Int(n) => n.to_le_bytes().to_vec(),
            Typed::Long(n) => n.to_le_bytes().to_vec(),
            Typed::Decimal(n) => match precision {
                Some(p) => decimal_fixed(*n, p),
                None => decimal_min_bytes(*n),
            },
            Typed::Text(s) => s.as_bytes().to_vec(),
            Typed::Bytes(b) => b.clone(),
        }
    }

    /// As an Avro value of the partition record.
    fn avro(&self, precision: Option<u32>) -> Value {
        match self {
            Typed::Bool(b) => Value::Bool(*b),
            Typed::Int(n) => Value::Int(*n),
            Typed::Long(n) => Value::Long(*n),
            Typed::Decimal(n) => Value::Bytes(decimal_fixed(*n, precision.unwrap_or(38))),
            Typed::Text(s) => Value::String(s.clone()),
            Typed::Bytes(b) => Value::Bytes(b.clone()),
        }
    }
}

/// A decimal's unscaled value in the fewest big-endian two's complement bytes.
fn decimal_min_bytes(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut k = 0;
    while k < 15 {
        let (b, next) = (bytes[k], bytes[k + 1]);
        let redundant = (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        k += 1;
    }
    bytes[k..].to_vec()
}

/// The bytes a decimal of `precision` digits takes in a fixed (Avro, Parquet).
pub(crate) fn decimal_size(precision: u32) -> usize {
    (1..=16)
        .find(|&n| 2f64.powi(8 * n as i32 - 1) >= 10f64.powi(precision as i32))
        .unwrap_or(16)
}

fn decimal_fixed(n: i128, precision: u32) -> Vec<u8> {
    let size = decimal_size(precision);
    n.to_be_bytes()[16 - size..].to_vec()
}

/// `decimal(P, S)`'s precision and scale.
pub(crate) fn decimal_of(ty: &str) -> Option<(u32, u32)> {
    let inner = ty.strip_prefix("decimal(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The Avro schema of a value of Iceberg primitive type `ty`.
fn avro_type(ty: &str) -> Json {
    if let Some((p, s)) = decimal_of(ty) {
        return json!({"type": "fixed", "name": format!("decimal_{p}_{s}"),
            "size": decimal_size(p), "logicalType": "decimal", "precision": p, "scale": s});
    }
    if let Some(n) = ty.strip_prefix("fixed[").and_then(|t| t.strip_suffix(']')) {
        return json!({"type": "fixed", "name": format!("fixed_{n}"), "size": n.parse::<u64>().unwrap_or(0)});
    }
    match ty {
        "boolean" | "int" | "long" | "float" | "double" | "string" => json!(ty),
        "date" => json!({"type": "int", "logicalType": "date"}),
        "time" => json!({"type": "long", "logicalType": "time-micros"}),
        "timestamp" => {
            json!({"type": "long", "logicalType": "timestamp-micros", "adjust-to-utc": false})
        }
        "timestamptz" => {
            json!({"type": "long", "logicalType": "timestamp-micros", "adjust-to-utc": true})
        }
        "uuid" => json!({"type": "fixed", "name": "uuid_fixed", "size": 16, "logicalType": "uuid"}),
        _ => json!("bytes"),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` (a year of any sign and width) as days.
fn parse_date(text: &str) -> Option<i64> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let mut parts = rest.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    Some(days_from_civil(if neg { -y } else { y }, m, d))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` as microseconds.
fn parse_timestamp(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    let days = parse_date(date)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut p = hms.split(':');
    let (h, m, s): (i64, i64, i64) = (
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    );
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").get(..6)?.parse().ok()?
    };
    Some(days * 86_400_000_000 + ((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// A partition value from the text the layout gave it (the directory's, unescaped).
pub(crate) fn typed_value(field: &SpecField, text: &str) -> Result<Typed> {
    let bad = || -> Error {
        ErrorKind::Internal(format!(
            "partition {}: the value {text:?} is not a {}",
            field.name,
            field.result_type()
        ))
        .into()
    };
    let t = field.transform.as_str();
    let int = |n: i64| i32::try_from(n).map(Typed::Int).map_err(|_| bad());
    match t {
        "year" => return int(text.parse::<i64>().map_err(|_| bad())? - 1970),
        "month" => {
            let (y, m) = text.rsplit_once('-').ok_or_else(bad)?;
            let y: i64 = y.parse().map_err(|_| bad())?;
            let m: i64 = m.parse().map_err(|_| bad())?;
            return int((y - 1970) * 12 + m - 1);
        }
        "day" => return int(parse_date(text).ok_or_else(bad)?),
        "hour" => {
            let (date, h) = text.rsplit_once('-').ok_or_else(bad)?;
            let h: i64 = h.parse().map_err(|_| bad())?;
            return int(parse_date(date).ok_or_else(bad)? * 24 + h);
        }
        _ if t.starts_with("bucket") => return int(text.parse().map_err(|_| bad())?),
        _ => {}
    }
    let ty = field.source_type.as_str();
    Ok(match ty {
        "boolean" => Typed::Bool(text == "true"),
        "int" => int(text.parse().map_err(|_| bad())?)?,
        "long" => Typed::Long(text.parse().map_err(|_| bad())?),
        "date" => int(parse_date(text).ok_or_else(bad)?)?,
        "timestamp" | "timestamptz" => Typed::Long(parse_timestamp(text).ok_or_else(bad)?),
        "string" => Typed::Text(text.to_owned()),
        "binary" => Typed::Bytes(
            (0..text.len() / 2)
                .map(|k| u8::from_str_radix(&text[2 * k..2 * k + 2], 16).map_err(|_| bad()))
                .collect::<Result<_>>()?,
        ),
        _ if decimal_of(ty).is_some() => {
            let (_, scale) = decimal_of(ty).ok_or_else(bad)?;
            let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
            let digits = format!("{int_part}{frac:0<width$}", width = scale as usize);
            Typed::Decimal(digits.parse().map_err(|_| bad())?)
        }
        _ => {
            return Err(ErrorKind::Usage(format!(
                "partition {}: Iceberg partitions of {ty} columns are not written by pgarrow: \
                 partition by bucket(N, column) instead",
                field.name
            ))
            .into());
        }
    })
}

/// A data file as a manifest entry's `data_file`.
pub(crate) struct DataFile {
    /// 0: data; 1: position deletes.
    pub(crate) content: i32,
    pub(crate) path: String,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) partition: Vec<Option<Typed>>,
    column_sizes: BTreeMap<i32, i64>,
    value_counts: BTreeMap<i32, i64>,
    null_counts: BTreeMap<i32, i64>,
    lower: BTreeMap<i32, Vec<u8>>,
    upper: BTreeMap<i32, Vec<u8>>,
}

/// Dates and timestamps readers parse: years 1 to 9999.
const FIRST_DAY: i64 = -719_162;
const LAST_DAY: i64 = 2_932_896;

/// A bound in the binary form of Iceberg type `ty`, when it is sure and readers parse it.
fn bound_bytes(bound: &Bound, ty: &str) -> Option<Vec<u8>> {
    Some(match (bound, ty) {
        (Bound::Bool(b), "boolean") => vec![u8::from(*b)],
        (Bound::Int(n), "int") => i32::try_from(*n).ok()?.to_le_bytes().to_vec(),
        (Bound::Int(n), "long") => i64::try_from(*n).ok()?.to_le_bytes().to_vec(),
        (Bound::Decimal(n, _), t) if decimal_of(t).is_some() => decimal_min_bytes(*n),
        (Bound::Date(d), "date") => {
            if !(FIRST_DAY..=LAST_DAY).contains(&i64::from(*d)) {
                return None;
            }
            d.to_le_bytes().to_vec()
        }
        (Bound::Timestamp { micros, .. }, "timestamp" | "timestamptz") => {
            if !(FIRST_DAY..=LAST_DAY).contains(&micros.div_euclid(86_400_000_000)) {
                return None;
            }
            micros.to_le_bytes().to_vec()
        }
        (Bound::Text(s), "string") => s.as_bytes().to_vec(),
        _ => return None,
    })
}

impl DataFile {
    /// The entry of `file` (under the table's `data` directory `data_dir`), its statistics
    /// from its footer, its partition tuple from the layout's values.
    pub(crate) fn new(
        data_dir: &str,
        file: &ManifestFile,
        metadata: &ParquetMetaData,
        spec: &[SpecField],
        types: &BTreeMap<i32, String>,
    ) -> Result<DataFile> {
        let mut partition = Vec::with_capacity(spec.len());
        // The layout's values come in the spec's order (the table's names may differ).
        for (k, field) in spec.iter().enumerate() {
            let value = file.values.get(k).and_then(|v| v.value.as_deref());
            partition.push(value.map(|v| typed_value(field, v)).transpose()?);
        }
        let mut out = DataFile {
            content: 0,
            path: format!("{}/{}", data_dir.trim_end_matches('/'), file.path),
            rows: file.rows,
            bytes: file.bytes,
            partition,
            column_sizes: BTreeMap::new(),
            value_counts: BTreeMap::new(),
            null_counts: BTreeMap::new(),
            lower: BTreeMap::new(),
            upper: BTreeMap::new(),
        };
        for leaf in bounds::leaves(metadata) {
            let Some(id) = leaf.id else { continue };
            out.column_sizes.insert(id, leaf.size);
            out.value_counts.insert(id, leaf.values);
            if let Some(n) = leaf.nulls {
                out.null_counts.insert(id, n);
            }
            if leaf.repeated {
                continue;
            }
            let Some(ty) = types.get(&id) else { continue };
            if let (Some(min), Some(max)) = (&leaf.min, &leaf.max)
                && let (Some(lo), Some(hi)) = (bound_bytes(min, ty), bound_bytes(max, ty))
            {
                out.lower.insert(id, lo);
                out.upper.insert(id, hi);
            }
        }
        Ok(out)
    }

    /// The entry of a position delete file of `rows` deletes (of an unpartitioned table).
    pub(crate) fn position_deletes(
        path: String,
        rows: u64,
        bytes: u64,
        partition: Vec<Option<Typed>>,
    ) -> DataFile {
        DataFile {
            content: 1,
            path,
            rows,
            bytes,
            partition,
            column_sizes: BTreeMap::new(),
            value_counts: BTreeMap::new(),
            null_counts: BTreeMap::new(),
            lower: BTreeMap::new(),
            upper: BTreeMap::new(),
        }
    }

    fn avro(&self, spec: &[SpecField], snapshot_id: i64) -> Value {
        let counts = |m: &BTreeMap<i32, i64>| {
            Value::Array(
                m.iter()
                    .map(|(k, v)| {
                        Value::Record(vec![
                            ("key".into(), Value::Int(*k)),
                            ("value".into(), Value::Long(*v)),
                        ])
                    })
                    .collect(),
            )
        };
        let bytes = |m: &BTreeMap<i32, Vec<u8>>| {
            Value::Array(
                m.iter()
                    .map(|(k, v)| {
                        Value::Record(vec![
                            ("key".into(), Value::Int(*k)),
                            ("value".into(), Value::Bytes(v.clone())),
                        ])
                    })
                    .collect(),
            )
        };
        let partition = Value::Record(
            spec.iter()
                .zip(&self.partition)
                .map(|(f, v)| {
                    let precision = decimal_of(f.result_type()).map(|(p, _)| p);
                    (
                        f.name.clone(),
                        v.as_ref().map_or(Value::Null, |v| v.avro(precision)),
                    )
                })
                .collect(),
        );
        Value::Record(vec![
            ("status".into(), Value::Int(1)),
            ("snapshot_id".into(), Value::Long(snapshot_id)),
            (
                "data_file".into(),
                Value::Record(vec![
                    ("content".into(), Value::Int(self.content)),
                    ("file_path".into(), Value::String(self.path.clone())),
                    ("file_format".into(), Value::String("PARQUET".into())),
                    ("partition".into(), partition),
                    ("record_count".into(), Value::Long(self.rows as i64)),
                    ("file_size_in_bytes".into(), Value::Long(self.bytes as i64)),
                    ("column_sizes".into(), counts(&self.column_sizes)),
                    ("value_counts".into(), counts(&self.value_counts)),
                    ("null_value_counts".into(), counts(&self.null_counts)),
                    ("lower_bounds".into(), bytes(&self.lower)),
                    ("upper_bounds".into(), bytes(&self.upper)),
                ]),
            ),
        ])
    }
}

/// A map of int keys as Iceberg writes one in Avro: an array of key-value records.
fn int_map(field_id: i64, name: &str, key_id: i64, value: &str) -> Json {
    json!({"name": name, "type": ["null", {
        "type": "array", "logicalType": "map",
        "items": {"type": "record", "name": format!("k{key_id}_v{}", key_id + 1), "fields": [
            {"name": "key", "type": "int", "field-id": key_id},
            {"name": "value", "type": value, "field-id": key_id + 1},
        ]},
    }], "default": null, "field-id": field_id})
}

/// The Avro schema of a manifest's entries, its partition record from `spec`.
fn manifest_schema(spec: &[SpecField]) -> Json {
    let partition_fields: Vec<Json> = spec
        .iter()
        .map(|f| {
            json!({"name": f.name, "type": ["null", avro_type(f.result_type())],
                "default": null, "field-id": f.field_id})
        })
        .collect();
    json!({"type": "record", "name": "manifest_entry", "fields": [
        {"name": "status", "type": "int", "field-id": 0},
        {"name": "snapshot_id", "type": ["null", "long"], "default": null, "field-id": 1},
        {"name": "sequence_number", "type": ["null", "long"], "default": null, "field-id": 3},
        {"name": "file_sequence_number", "type": ["null", "long"], "default": null, "field-id": 4},
        {"name": "data_file", "field-id": 2, "type": {"type": "record", "name": "r2", "fields": [
            {"name": "content", "type": "int", "field-id": 134},
            {"name": "file_path", "type": "string", "field-id": 100},
            {"name": "file_format", "type": "string", "field-id": 101},
            {"name": "partition", "field-id": 102,
                "type": {"type": "record", "name": "r102", "fields": partition_fields}},
            {"name": "record_count", "type": "long", "field-id": 103},
            {"name": "file_size_in_bytes", "type": "long", "field-id": 104},
            int_map(108, "column_sizes", 117, "long"),
            int_map(109, "value_counts", 119, "long"),
            int_map(110, "null_value_counts", 121, "long"),
            int_map(137, "nan_value_counts", 138, "long"),
            int_map(125, "lower_bounds", 126, "bytes"),
            int_map(128, "upper_bounds", 129, "bytes"),
            {"name": "key_metadata", "type": ["null", "bytes"], "default": null, "field-id": 131},
            {"name": "split_offsets", "type": ["null", {"type": "array", "items": "long",
                "element-id": 133}], "default": null, "field-id": 132},
            {"name": "equality_ids", "type": ["null", {"type": "array", "items": "int",
                "element-id": 136}], "default": null, "field-id": 135},
            {"name": "sort_order_id", "type": ["null", "int"], "default": null, "field-id": 140},
        ]}},
    ]})
}

/// A manifest of `files` (all data files, or all delete files), added by snapshot
/// `snapshot_id` (their sequence numbers inherited from the manifest list's entry).
pub(crate) fn write_manifest(
    files: &[DataFile],
    spec: &[SpecField],
    spec_id: i64,
    schema: &super::spec::Schema,
    snapshot_id: i64,
) -> Result<Vec<u8>> {
    let records: Vec<Value> = files.iter().map(|f| f.avro(spec, snapshot_id)).collect();
    let deletes = files.first().is_some_and(|f| f.content != 0);
    write_entries(&records, spec, spec_id, schema, deletes)
}

/// A manifest of `entries` (manifest entry records; all data files, or all delete files, of
/// one partition spec): as [`write_manifest`] writes new ones, or entries read from other
/// manifests, each as it was but `EXISTING` (status 0), its sequence numbers and snapshot made
/// explicit by the caller.
pub(crate) fn write_entries(
    entries: &[Value],
    spec: &[SpecField],
    spec_id: i64,
    schema: &super::spec::Schema,
    deletes: bool,
) -> Result<Vec<u8>> {
    let spec_fields: Vec<_> = spec.iter().map(SpecField::spec_field).collect();
    // Types of strings and numbers: their JSON cannot fail.
    let schema_text = serde_json::to_string(schema).unwrap_or_default();
    let spec_text = serde_json::to_string(&spec_fields).unwrap_or_default();
    avro::write_file(
        &manifest_schema(spec),
        &[
            ("schema", schema_text),
            ("schema-id", schema.schema_id.to_string()),
            ("partition-spec", spec_text),
            ("partition-spec-id", spec_id.to_string()),
            ("format-version", "2".into()),
            ("content", if deletes { "deletes" } else { "data" }.into()),
        ],
        entries,
    )
}

/// The manifest list entry of a manifest [`write_entries`] wrote of existing entries (of an
/// unpartitioned table): `files` existing files of `rows` rows, the lowest data sequence number
/// among them `min_sequence`, added to the list by snapshot `snapshot_id` of sequence number
/// `sequence`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn existing_list_entry(
    path: &str,
    length: u64,
    spec_id: i64,
    deletes: bool,
    sequence: i64,
    min_sequence: i64,
    snapshot_id: i64,
    (files, rows): (usize, i64),
    (deleted_files, deleted_rows): (usize, i64),
) -> Value {
    Value::Record(vec![
        ("manifest_path".into(), Value::String(path.to_owned())),
        ("manifest_length".into(), Value::Long(length as i64)),
        ("partition_spec_id".into(), Value::Int(spec_id as i32)),
        ("content".into(), Value::Int(i32::from(deletes))),
        ("sequence_number".into(), Value::Long(sequence)),
        ("min_sequence_number".into(), Value::Long(min_sequence)),
        ("added_snapshot_id".into(), Value::Long(snapshot_id)),
        ("added_files_count".into(), Value::Int(0)),
        ("existing_files_count".into(), Value::Int(files as i32)),
        (
            "deleted_files_count".into(),
            Value::Int(deleted_files as i32),
        ),
        ("added_rows_count".into(), Value::Long(0)),
        ("existing_rows_count".into(), Value::Long(rows)),
        ("deleted_rows_count".into(), Value::Long(deleted_rows)),
        ("partitions".into(), Value::Array(Vec::new())),
    ])
}

/// The Avro schema of a manifest list's entries.
fn manifest_list_schema() -> Json {
    json!({"type": "record", "name": "manifest_file", "fields": [
        {"name": "manifest_path", "type": "string", "field-id": 500},
        {"name": "manifest_length", "type": "long", "field-id": 501},
        {"name": "partition_spec_id", "type": "int", "field-id": 502},
        {"name": "content", "type": "int", "field-id": 517},
        {"name": "sequence_number", "type": "long", "field-id": 515},
        {"name": "min_sequence_number", "type": "long", "field-id": 516},
        {"name": "added_snapshot_id", "type": "long", "field-id": 503},
        {"name": "added_files_count", "type": "int", "field-id": 504},
        {"name": "existing_files_count", "type": "int", "field-id": 505},
        {"name": "deleted_files_count", "type": "int", "field-id": 506},
        {"name": "added_rows_count", "type": "long", "field-id": 512},
        {"name": "existing_rows_count", "type": "long", "field-id": 513},
        {"name": "deleted_rows_count", "type": "long", "field-id": 514},
        {"name": "partitions", "type": ["null", {"type": "array", "element-id": 508,
            "items": {"type": "record", "name": "r508", "fields": [
                {"name": "contains_null", "type": "boolean", "field-id": 509},
                {"name": "contains_nan", "type": ["null", "boolean"], "default": null,
                    "field-id": 518},
                {"name": "lower_bound", "type": ["null", "bytes"], "default": null,
                    "field-id": 510},
                {"name": "upper_bound", "type": ["null", "bytes"], "default": null,
                    "field-id": 511},
            ]}}], "default": null, "field-id": 507},
        {"name": "key_metadata", "type": ["null", "bytes"], "default": null, "field-id": 519},
    ]})
}

/// The manifest list entry of a new manifest of `files`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn list_entry(
    path: &str,
    length: u64,
    spec: &[SpecField],
    spec_id: i64,
    sequence: i64,
    snapshot_id: i64,
    files: &[DataFile],
) -> Value {
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let summaries: Vec<Value> = spec
        .iter()
        .enumerate()
        .map(|(k, field)| {
            let values: Vec<&Typed> = files
                .iter()
                .filter_map(|f| f.partition[k].as_ref())
                .collect();
            let contains_null = files.iter().any(|f| f.partition[k].is_none());
            let pick = |o: Ordering| {
                values
                    .iter()
                    .copied()
                    .reduce(|a, b| match b.partial_cmp(a) {
                        Some(c) if c == o => b,
                        _ => a,
                    })
            };
            let precision = decimal_of(field.result_type()).map(|(p, _)| p);
            let bound =
                |v: Option<&Typed>| v.map_or(Value::Null, |v| Value::Bytes(v.binary(precision)));
            Value::Record(vec![
                ("contains_null".into(), Value::Bool(contains_null)),
                ("contains_nan".into(), Value::Bool(false)),
                ("lower_bound".into(), bound(pick(Ordering::Less))),
                ("upper_bound".into(), bound(pick(Ordering::Greater))),
            ])
        })
        .collect();
    Value::Record(vec![
        ("manifest_path".into(), Value::String(path.to_owned())),
        ("manifest_length".into(), Value::Long(length as i64)),
        ("partition_spec_id".into(), Value::Int(spec_id as i32)),
        (
            "content".into(),
            Value::Int(i32::from(files.first().is_some_and(|f| f.content != 0))),
        ),
        ("sequence_number".into(), Value::Long(sequence)),
        ("min_sequence_number".into(), Value::Long(sequence)),
        ("added_snapshot_id".into(), Value::Long(snapshot_id)),
        ("added_files_count".into(), Value::Int(files.len() as i32)),
        ("existing_files_count".into(), Value::Int(0)),
        ("deleted_files_count".into(), Value::Int(0)),
        ("added_rows_count".into(), Value::Long(rows as i64)),
        ("existing_rows_count".into(), Value::Long(0)),
        ("deleted_rows_count".into(), Value::Long(0)),
        ("partitions".into(), Value::Array(summaries)),
    ])
}

/// A manifest list of `entries` for snapshot `snapshot_id`.
pub(crate) fn write_manifest_list(
    entries: &[Value],
    snapshot_id: i64,
    parent: Option<i64>,
    sequence: i64,
) -> Result<Vec<u8>> {
    let mut meta = vec![
        ("snapshot-id", snapshot_id.to_string()),
        ("sequence-number", sequence.to_string()),
        ("format-version", "2".to_owned()),
    ];
    if let Some(p) = parent {
        meta.push(("parent-snapshot-id", p.to_string()));
    }
    avro::write_file(&manifest_list_schema(), &meta, entries)
}

/// The entries of a manifest list (of any writer, format version 2).
pub(crate) fn read_manifest_list(bytes: &[u8]) -> Result<Vec<Value>> {
    Ok(avro::read_file(bytes)?.records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(transform: &str, source_type: &str) -> SpecField {
        SpecField {
            source_id: 1,
            field_id: 1000,
            name: "p".into(),
            transform: transform.into(),
            source_type: source_type.into(),
        }
    }

    #[test]
    fn partition_values_from_the_layouts_text() {
        let v = |t: &str, ty: &str, text: &str| typed_value(&field(t, ty), text).unwrap();
        assert_eq!(v("year", "date", "2026"), Typed::Int(56));
        assert_eq!(v("month", "timestamp", "1970-02"), Typed::Int(1));
        assert_eq!(v("month", "timestamp", "1969-12"), Typed::Int(-1));
        assert_eq!(v("day", "date", "1970-01-02"), Typed::Int(1));
        assert_eq!(v("day", "date", "-0044-03-15").binary(None).len(), 4);
        assert_eq!(v("hour", "timestamptz", "1970-01-01-05"), Typed::Int(5));
        assert_eq!(v("bucket[16]", "string", "7"), Typed::Int(7));
        assert_eq!(v("identity", "long", "-3"), Typed::Long(-3));
        assert_eq!(
            v("identity", "decimal(10, 2)", "-1.5"),
            Typed::Decimal(-150)
        );
        assert_eq!(
            v("truncate[10]", "decimal(10, 2)", "20.00"),
            Typed::Decimal(2000)
        );
        assert_eq!(
            v("identity", "timestamp", "1970-01-01 00:00:01.5"),
            Typed::Long(1_500_000)
        );
        assert_eq!(v("identity", "binary", "00ff"), Typed::Bytes(vec![0, 255]));
        assert!(typed_value(&field("identity", "uuid"), "x").is_err());
        assert!(typed_value(&field("year", "date"), "x").is_err());
    }

    #[test]
    fn decimals_take_their_fewest_bytes() {
        assert_eq!(decimal_min_bytes(0), vec![0]);
        assert_eq!(decimal_min_bytes(127), vec![127]);
        assert_eq!(decimal_min_bytes(128), vec![0, 128]);
        assert_eq!(decimal_min_bytes(-1), vec![0xff]);
        assert_eq!(decimal_min_bytes(-129), vec![0xff, 0x7f]);
        assert_eq!(decimal_size(9), 4);
        assert_eq!(decimal_size(10), 5);
        assert_eq!(decimal_size(38), 16);
        assert_eq!(decimal_fixed(-1, 9), vec![0xff; 4]);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1, 1, 1), FIRST_DAY);
        assert_eq!(days_from_civil(9999, 12, 31), LAST_DAY);
    }

    #[test]
    fn bounds_readers_cannot_parse_are_left_out() {
        assert_eq!(bound_bytes(&Bound::Date(i32::MAX), "date"), None);
        assert_eq!(
            bound_bytes(
                &Bound::Timestamp {
                    micros: i64::MIN,
                    utc: true
                },
                "timestamptz"
            ),
            None
        );
        assert_eq!(bound_bytes(&Bound::Int(5), "int"), Some(vec![5, 0, 0, 0]));
        assert_eq!(bound_bytes(&Bound::Int(1 << 40), "int"), None);
        assert_eq!(
            bound_bytes(&Bound::Text("é".into()), "string"),
            Some("é".as_bytes().to_vec())
        );
    }

    #[test]
    fn manifests_and_lists_read_back() {
        let spec = vec![field("day", "date")];
        let file = DataFile {
            content: 0,
            path: "/t/data/p=1970-01-02/f.parquet".into(),
            rows: 3,
            bytes: 100,
            partition: vec![Some(Typed::Int(1))],
            column_sizes: [(1, 10)].into(),
            value_counts: [(1, 3)].into(),
            null_counts: [(1, 0)].into(),
            lower: [(1, vec![1, 0, 0, 0])].into(),
            upper: [(1, vec![2, 0, 0, 0])].into(),
        };
        let schema = super::super::spec::Schema::new(0, Vec::new());
        let bytes = write_manifest(std::slice::from_ref(&file), &spec, 0, &schema, 42).unwrap();
        let read = avro::read_file(&bytes).unwrap();
        assert_eq!(read.meta("partition-spec-id"), Some("0"));
        let entry = &read.records[0];
        assert_eq!(entry.get("snapshot_id").as_i64(), Some(42));
        let data = entry.get("data_file");
        assert_eq!(
            data.get("file_path").as_str(),
            Some("/t/data/p=1970-01-02/f.parquet")
        );
        assert_eq!(data.get("partition").get("p"), &Value::Int(1));
        let list_entry = list_entry("m.avro", bytes.len() as u64, &spec, 0, 7, 42, &[file]);
        let list = write_manifest_list(std::slice::from_ref(&list_entry), 42, None, 7).unwrap();
        let read = read_manifest_list(&list).unwrap();
        assert_eq!(read.len(), 1);
        for key in [
            "manifest_path",
            "sequence_number",
            "added_rows_count",
            "partitions",
        ] {
            assert_eq!(read[0].get(key), list_entry.get(key), "{key}");
        }
        assert_eq!(read[0].get("key_metadata"), &Value::Null);
    }
}
