//! Avro object container files, as Iceberg's manifests and manifest lists are written: the
//! binary encoding of the Avro 1.11 specification driven by a schema (records, arrays, maps,
//! unions, fixed, enums and the primitives), the `null` codec written and `null` and `deflate`
//! read. Small on purpose: the `apache-avro` crate would bring some seventy crates into the
//! build for the two record shapes Iceberg needs.

use std::collections::HashMap;
use std::io::Read;

use pgarrow::{Error, ErrorKind, Result};
use serde_json::Value as Json;

/// The four bytes an Avro object container file begins with.
const MAGIC: &[u8; 4] = b"Obj\x01";

/// Values of no bytes (nulls, empty records) a count may name beyond the bytes left.
const MAX_EMPTY_VALUES: usize = 1 << 16;

/// A value, shaped by a [`Schema`]. A union's value is its branch's (`Null` picks the null
/// branch, anything else the first branch that is not null).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    String(String),
    /// Fields by name, in any order (a missing one is written as `Null`).
    Record(Vec<(String, Value)>),
    Array(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The record's field `name` (`Null` when there is none, or this is not a record).
    pub(crate) fn get(&self, name: &str) -> &Value {
        match self {
            Value::Record(fields) => fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&Value::Null, |(_, v)| v),
            _ => &Value::Null,
        }
    }

    /// An int or a long as an `i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(i64::from(*n)),
            Value::Long(n) => Some(*n),
            _ => None,
        }
    }

    /// A string's text.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A parsed Avro schema (named types resolved where they are used).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Schema {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record(Vec<(String, Schema)>),
    Enum(Vec<String>),
    Array(Box<Schema>),
    Map(Box<Schema>),
    Union(Vec<Schema>),
    Fixed(usize),
}

fn malformed(what: impl Into<String>) -> Error {
    ErrorKind::Unexpected(format!("Avro: {}", what.into())).into()
}

impl Schema {
    /// Parses a schema's JSON.
    pub(crate) fn parse(json: &Json) -> Result<Schema> {
        Schema::parse_in(json, &mut HashMap::new())
    }

    fn parse_in(json: &Json, named: &mut HashMap<String, Schema>) -> Result<Schema> {
        let primitive = |name: &str| -> Option<Schema> {
            Some(match name {
                "null" => Schema::Null,
                "boolean" => Schema::Boolean,
                "int" => Schema::Int,
                "long" => Schema::Long,
                "float" => Schema::Float,
                "double" => Schema::Double,
                "bytes" => Schema::Bytes,
                "string" => Schema::String,
                _ => return None,
            })
        };
        match json {
            Json::String(name) => primitive(name)
                .or_else(|| named.get(name).cloned())
                .ok_or_else(|| malformed(format!("unknown type {name:?}"))),
            Json::Array(branches) => Ok(Schema::Union(
                branches
                    .iter()
                    .map(|b| Schema::parse_in(b, named))
                    .collect::<Result<_>>()?,
            )),
            Json::Object(o) => {
                let ty = o
                    .get("type")
                    .ok_or_else(|| malformed("a type without \"type\""))?;
                let kind = match ty {
                    Json::String(k) => k.as_str(),
                    other => return Schema::parse_in(other, named),
                };
                let schema = match kind {
                    "record" | "error" => {
                        let fields = o
                            .get("fields")
                            .and_then(Json::as_array)
                            .ok_or_else(|| malformed("a record without fields"))?;
                        let mut out = Vec::with_capacity(fields.len());
                        for f in fields {
                            let name = f
                                .get("name")
                                .and_then(Json::as_str)
                                .ok_or_else(|| malformed("a field without a name"))?;
                            let ty = f
                                .get("type")
                                .ok_or_else(|| malformed(format!("field {name} has no type")))?;
                            if out.iter().any(|(n, _)| n == name) {
                                return Err(malformed(format!(
                                    "a record with two fields named {name:?}"
                                )));
                            }
                            out.push((name.to_owned(), Schema::parse_in(ty, named)?));
                        }
                        Schema::Record(out)
                    }
                    "enum" => Schema::Enum(
                        o.get("symbols")
                            .and_then(Json::as_array)
                            .ok_or_else(|| malformed("an enum without symbols"))?
                            .iter()
                            .map(|s| s.as_str().unwrap_or_default().to_owned())
                            .collect(),
                    ),
                    "array" => Schema::Array(Box::new(Schema::parse_in(
                        o.get("items")
                            .ok_or_else(|| malformed("an array without items"))?,
                        named,
                    )?)),
                    "map" => Schema::Map(Box::new(Schema::parse_in(
                        o.get("values")
                            .ok_or_else(|| malformed("a map without values"))?,
                        named,
                    )?)),
                    "fixed" => Schema::Fixed(
                        o.get("size")
                            .and_then(Json::as_u64)
                            .ok_or_else(|| malformed("a fixed without a size"))?
                            as usize,
                    ),
                    other => primitive(other)
                        .ok_or_else(|| malformed(format!("unknown type {other:?}")))?,
                };
                if let Some(name) = o.get("name").and_then(Json::as_str) {
                    named.insert(name.to_owned(), schema.clone());
                    if let Some(space) = o.get("namespace").and_then(Json::as_str) {
                        named.insert(format!("{space}.{name}"), schema.clone());
                    }
                }
                Ok(schema)
            }
            other => Err(malformed(format!("a schema of {other}"))),
        }
    }
}

impl Schema {
    /// Whether `value` is of this type's own kind (a union's branch is chosen by it).
    fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (Schema::Null, Value::Null)
            | (Schema::Boolean, Value::Bool(_))
            | (Schema::Int, Value::Int(_))
            | (Schema::Long, Value::Long(_))
            | (Schema::Float, Value::Float(_))
            | (Schema::Double, Value::Double(_))
            | (Schema::Bytes, Value::Bytes(_))
            | (Schema::String, Value::String(_))
            | (Schema::Array(_), Value::Array(_))
            | (Schema::Map(_), Value::Map(_)) => true,
            (Schema::Fixed(n), Value::Bytes(b)) => b.len() == *n,
            (Schema::Enum(symbols), Value::String(s)) => symbols.contains(s),
            (Schema::Record(fields), Value::Record(values)) => {
                fields.len() == values.len()
                    && fields.iter().zip(values).all(|((a, _), (b, _))| a == b)
            }
            _ => false,
        }
    }
}

fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Appends `value`'s binary encoding under `schema`.
///
/// # Errors
/// The value does not fit the schema (an internal error: pgarrow made both).
pub(crate) fn encode(out: &mut Vec<u8>, schema: &Schema, value: &Value) -> Result<()> {
    let wrong = || malformed(format!("{value:?} does not fit {schema:?}"));
    match (schema, value) {
        (Schema::Null, Value::Null) => {}
        (Schema::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
        (Schema::Int, Value::Int(n)) => put_long(out, i64::from(*n)),
        (Schema::Long, v) => put_long(out, v.as_i64().ok_or_else(wrong)?),
        (Schema::Float, Value::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (Schema::Double, Value::Double(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (Schema::Bytes, Value::Bytes(b)) => put_bytes(out, b),
        (Schema::String, Value::String(s)) => put_bytes(out, s.as_bytes()),
        (Schema::Fixed(n), Value::Bytes(b)) if b.len() == *n => out.extend_from_slice(b),
        (Schema::Enum(symbols), Value::String(s)) => {
            let k = symbols.iter().position(|x| x == s).ok_or_else(wrong)?;
            put_long(out, k as i64);
        }
        (Schema::Record(fields), Value::Record(_)) => {
            for (name, field) in fields {
                encode(out, field, value.get(name))?;
            }
        }
        (Schema::Array(items), Value::Array(values)) => {
            if !values.is_empty() {
                put_long(out, values.len() as i64);
                for v in values {
                    encode(out, items, v)?;
                }
            }
            put_long(out, 0);
        }
        (Schema::Map(values_schema), Value::Map(entries)) => {
            if !entries.is_empty() {
                put_long(out, entries.len() as i64);
                for (k, v) in entries {
                    put_bytes(out, k.as_bytes());
                    encode(out, values_schema, v)?;
                }
            }
            put_long(out, 0);
        }
        (Schema::Union(branches), v) => {
            // The branch of the value's own kind, else the first that is not null.
            let null = matches!(v, Value::Null);
            let k = branches
                .iter()
                .position(|b| b.holds(v))
                .or_else(|| branches.iter().position(|b| (*b == Schema::Null) == null))
                .ok_or_else(wrong)?;
            put_long(out, k as i64);
            encode(out, &branches[k], v)?;
        }
        _ => return Err(wrong()),
    }
    Ok(())
}

/// A reader of encoded values.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(malformed("the data ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn long(&mut self) -> Result<i64> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(malformed("a number longer than ten bytes"))
    }

    fn len(&mut self) -> Result<usize> {
        usize::try_from(self.long()?).map_err(|_| malformed("a negative length"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    /// A block count of an array or a map: a negative count is followed by the block's size.
    fn block(&mut self) -> Result<usize> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
        }
        let n = usize::try_from(n.unsigned_abs()).map_err(|_| malformed("a block too long"))?;
        self.count(n)
    }

    /// A count of values to read, checked against the bytes left: every value but a null (or
    /// an empty record) takes a byte, so a count past them (and a margin for those) is a
    /// corrupt file, not a reason to loop or allocate without end.
    fn count(&self, n: usize) -> Result<usize> {
        if n > self.bytes.len().saturating_add(MAX_EMPTY_VALUES) {
            return Err(malformed(format!(
                "a count of {n} values where {} bytes are left",
                self.bytes.len()
            )));
        }
        Ok(n)
    }

    fn value(&mut self, schema: &Schema) -> Result<Value> {
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Bool(self.take(1)?[0] != 0),
            Schema::Int => Value::Int(
                i32::try_from(self.long()?).map_err(|_| malformed("an int out of range"))?,
            ),
            Schema::Long => Value::Long(self.long()?),
            Schema::Float => Value::Float(f32::from_le_bytes(
                self.take(4)?.try_into().unwrap_or_default(),
            )),
            Schema::Double => Value::Double(f64::from_le_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            Schema::Bytes => Value::Bytes(self.bytes()?),
            Schema::String => Value::String(
                String::from_utf8(self.bytes()?).map_err(|_| malformed("a string not UTF-8"))?,
            ),
            Schema::Fixed(n) => Value::Bytes(self.take(*n)?.to_vec()),
            Schema::Enum(symbols) => {
                let k = self.len()?;
                Value::String(
                    symbols
                        .get(k)
                        .cloned()
                        .ok_or_else(|| malformed("an enum symbol out of range"))?,
                )
            }
            Schema::Record(fields) => Value::Record(
                fields
                    .iter()
                    .map(|(name, f)| Ok((name.clone(), self.value(f)?)))
                    .collect::<Result<_>>()?,
            ),
            Schema::Array(items) => {
                let mut out = Vec::new();
                loop {
                    let n = self.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        out.push(self.value(items)?);
                    }
                }
                Value::Array(out)
            }
            Schema::Map(values) => {
                let mut out = Vec::new();
                loop {
                    let n = self.block()?;
                    if n == 0 {
                        break;
                    }
                    for _ in 0..n {
                        let key = String::from_utf8(self.bytes()?)
                            .map_err(|_| malformed("a map key not UTF-8"))?;
                        out.push((key, self.value(values)?));
                    }
                }
                Value::Map(out)
            }
            Schema::Union(branches) => {
                let k = self.len()?;
                let branch = branches
                    .get(k)
                    .ok_or_else(|| malformed("a union branch out of range"))?;
                self.value(branch)?
            }
        })
    }
}

/// An object container file of `records` under `schema` (its JSON), with `metadata`, in one
/// block, uncompressed.
pub(crate) fn write_file(
    schema_json: &Json,
    metadata: &[(&str, String)],
    records: &[Value],
) -> Result<Vec<u8>> {
    let schema = Schema::parse(schema_json)?;
    let mut out = MAGIC.to_vec();
    let mut meta: Vec<(String, Value)> = vec![
        (
            "avro.schema".into(),
            Value::Bytes(schema_json.to_string().into_bytes()),
        ),
        ("avro.codec".into(), Value::Bytes(b"null".to_vec())),
    ];
    meta.extend(
        metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::Bytes(v.clone().into_bytes()))),
    );
    encode(
        &mut out,
        &Schema::Map(Box::new(Schema::Bytes)),
        &Value::Map(meta),
    )?;
    let sync: [u8; 16] = {
        let id = crate::common::new_uuid().replace('-', "");
        let mut s = [0u8; 16];
        for (k, b) in s.iter_mut().enumerate() {
            *b = u8::from_str_radix(&id[2 * k..2 * k + 2], 16).unwrap_or(0);
        }
        s
    };
    out.extend_from_slice(&sync);
    if !records.is_empty() {
        let mut block = Vec::new();
        for r in records {
            encode(&mut block, &schema, r)?;
        }
        put_long(&mut out, records.len() as i64);
        put_bytes(&mut out, &block);
        out.extend_from_slice(&sync);
    }
    Ok(out)
}

/// An object container file read whole: its metadata and its records.
#[derive(Debug)]
pub(crate) struct File {
    pub(crate) metadata: HashMap<String, Vec<u8>>,
    pub(crate) records: Vec<Value>,
}

impl File {
    /// A metadata entry as text.
    #[cfg(test)]
    pub(crate) fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .get(key)
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Reads an object container file (`null` or `deflate` blocks).
///
/// # Errors
/// Not an Avro file; another codec; a malformed block.
pub(crate) fn read_file(bytes: &[u8]) -> Result<File> {
    if bytes.get(..4) != Some(MAGIC) {
        return Err(malformed("not an Avro object container file"));
    }
    let mut c = Cursor { bytes: &bytes[4..] };
    let Value::Map(entries) = c.value(&Schema::Map(Box::new(Schema::Bytes)))? else {
        return Err(malformed("no file metadata"));
    };
    let metadata: HashMap<String, Vec<u8>> = entries
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Bytes(b) => Some((k, b)),
            _ => None,
        })
        .collect();
    let schema_json: Json = metadata
        .get("avro.schema")
        .and_then(|s| serde_json::from_slice(s).ok())
        .ok_or_else(|| malformed("no schema in the file"))?;
    let schema = Schema::parse(&schema_json)?;
    let codec = metadata
        .get("avro.codec")
        .map_or("null", |c| std::str::from_utf8(c).unwrap_or("?"))
        .to_owned();
    let sync = c.take(16)?.to_vec();
    let mut records = Vec::new();
    while !c.bytes.is_empty() {
        let count = c.len()?;
        let block = c.bytes()?;
        if c.take(16)? != sync.as_slice() {
            return Err(malformed("a block's sync marker differs from the file's"));
        }
        let data = match codec.as_str() {
            "null" => block,
            "deflate" => {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(block.as_slice())
                    .read_to_end(&mut out)
                    .map_err(|e| malformed(format!("a deflate block: {e}")))?;
                out
            }
            other => {
                return Err(malformed(format!(
                    "codec {other:?}: pgarrow reads null and deflate"
                )));
            }
        };
        let mut d = Cursor { bytes: &data };
        let count = d.count(count)?;
        for _ in 0..count {
            records.push(d.value(&schema)?);
        }
    }
    Ok(File { metadata, records })
}

/// Reads `bytes` as an object container file and, when they are one, writes its records
/// again under its schema and reads them back: the records must be the same (for the fuzz
/// target in `fuzz/`).
///
/// # Errors
/// The bytes are not a file pgarrow reads (never a panic).
///
/// # Panics
/// A file read that does not read back as it was written (a bug).
pub fn fuzz_round_trip(bytes: &[u8]) -> Result<usize> {
    let file = read_file(bytes)?;
    let schema_json: Json = file
        .metadata
        .get("avro.schema")
        .and_then(|s| serde_json::from_slice(s).ok())
        .ok_or_else(|| malformed("no schema"))?;
    let again = write_file(&schema_json, &[], &file.records)?;
    let back = read_file(&again)?;
    assert_eq!(
        format!("{:?}", back.records),
        format!("{:?}", file.records),
        "records read back differ"
    );
    Ok(file.records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_past_the_bytes_left_are_refused() {
        // A file of nulls claiming 2^40 of them in a block of no bytes.
        let plain = write_file(&json!("null"), &[], &[Value::Null]).unwrap();
        let mut c = Cursor { bytes: &plain[4..] };
        c.value(&Schema::Map(Box::new(Schema::Bytes))).unwrap();
        let header = plain.len() - c.bytes.len();
        let sync = c.take(16).unwrap().to_vec();
        let mut out = plain[..header + 16].to_vec();
        put_long(&mut out, 1 << 40);
        put_bytes(&mut out, &[]);
        out.extend_from_slice(&sync);
        assert!(
            read_file(&out)
                .unwrap_err()
                .to_string()
                .contains("values where")
        );
        // An array of nulls claiming as many.
        let mut arr = Vec::new();
        put_long(&mut arr, 1 << 40);
        let e = Cursor { bytes: &arr }
            .value(&Schema::Array(Box::new(Schema::Null)))
            .unwrap_err();
        assert!(e.to_string().contains("values where"), "{e}");
        assert_eq!(fuzz_round_trip(&plain).unwrap(), 1);
    }

    fn schema() -> Json {
        json!({"type": "record", "name": "r", "fields": [
            {"name": "a", "type": "int"},
            {"name": "b", "type": ["null", "long"]},
            {"name": "c", "type": {"type": "array", "items": {"type": "record", "name": "kv",
                "fields": [{"name": "k", "type": "int"}, {"name": "v", "type": "bytes"}]}}},
            {"name": "d", "type": ["null", "kv"]},
            {"name": "e", "type": {"type": "map", "values": "string"}},
            {"name": "f", "type": {"type": "fixed", "name": "f16", "size": 2}},
            {"name": "g", "type": "boolean"},
            {"name": "h", "type": "double"},
        ]})
    }

    #[test]
    fn files_read_back_as_written() {
        let kv = |k: i32, v: &[u8]| {
            Value::Record(vec![
                ("k".into(), Value::Int(k)),
                ("v".into(), Value::Bytes(v.to_vec())),
            ])
        };
        let records = vec![
            Value::Record(vec![
                ("a".into(), Value::Int(-3)),
                ("b".into(), Value::Long(i64::MIN)),
                ("c".into(), Value::Array(vec![kv(1, b"x"), kv(70000, b"")])),
                ("d".into(), kv(2, b"yz")),
                (
                    "e".into(),
                    Value::Map(vec![("key".into(), Value::String("é".into()))]),
                ),
                ("f".into(), Value::Bytes(vec![1, 2])),
                ("g".into(), Value::Bool(true)),
                ("h".into(), Value::Double(-0.5)),
            ]),
            Value::Record(vec![
                ("a".into(), Value::Int(i32::MAX)),
                ("c".into(), Value::Array(vec![])),
                ("e".into(), Value::Map(vec![])),
                ("f".into(), Value::Bytes(vec![0, 0])),
                ("g".into(), Value::Bool(false)),
                ("h".into(), Value::Double(1e300)),
            ]),
        ];
        let bytes = write_file(&schema(), &[("format-version", "2".into())], &records).unwrap();
        let file = read_file(&bytes).unwrap();
        assert_eq!(file.meta("format-version"), Some("2"));
        assert_eq!(file.records[0], records[0]);
        // The second record's missing fields read back as nulls.
        assert_eq!(file.records[1].get("b"), &Value::Null);
        assert_eq!(file.records[1].get("d"), &Value::Null);
        assert_eq!(file.records[1].get("a").as_i64(), Some(i64::from(i32::MAX)));
        assert_eq!(file.records.len(), 2);
    }

    #[test]
    fn zigzag_matches_the_specification() {
        for (n, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 1]),
        ] {
            let mut out = Vec::new();
            put_long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
            assert_eq!(Cursor { bytes: &out }.long().unwrap(), n);
        }
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        let good = write_file(&schema(), &[], &[]).unwrap();
        assert!(read_file(b"Obj").is_err());
        assert!(read_file(b"PAR1....").is_err());
        for cut in 4..good.len() {
            let _ = read_file(&good[..cut]);
        }
        // A record of two fields of one name is not a schema.
        let twice = json!({"type": "record", "name": "r", "fields": [
            {"name": "a", "type": "int"}, {"name": "a", "type": "long"}]});
        assert!(
            Schema::parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("two fields")
        );
        // A wrong value for the schema is refused when writing.
        let bad = Value::Record(vec![("a".into(), Value::String("x".into()))]);
        assert!(write_file(&schema(), &[], &[bad]).is_err());
    }

    #[test]
    fn deflate_blocks_are_read() {
        use std::io::Write;
        let schema = json!("long");
        let plain = write_file(&schema, &[], &[Value::Long(5), Value::Long(-7)]).unwrap();
        // Rebuild it with a deflate block.
        let mut c = Cursor { bytes: &plain[4..] };
        let Value::Map(mut meta) = c.value(&Schema::Map(Box::new(Schema::Bytes))).unwrap() else {
            panic!()
        };
        let sync = c.take(16).unwrap().to_vec();
        let count = c.len().unwrap();
        let block = c.bytes().unwrap();
        for (k, v) in &mut meta {
            if k == "avro.codec" {
                *v = Value::Bytes(b"deflate".to_vec());
            }
        }
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&block).unwrap();
        let mut out = MAGIC.to_vec();
        encode(
            &mut out,
            &Schema::Map(Box::new(Schema::Bytes)),
            &Value::Map(meta),
        )
        .unwrap();
        out.extend_from_slice(&sync);
        put_long(&mut out, count as i64);
        put_bytes(&mut out, &z.finish().unwrap());
        out.extend_from_slice(&sync);
        let file = read_file(&out).unwrap();
        assert_eq!(file.records, vec![Value::Long(5), Value::Long(-7)]);
    }
}
