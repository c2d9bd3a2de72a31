//! A file's nested columns read as the table's: each struct field found by its field ID (by
//! name where either side has none), a field the file lacks read as its default or as nulls,
//! list items and map entries the same way at any depth, leaves cast exactly. Arrow's own
//! struct cast matches fields by name or else by place, and so reads a field dropped and
//! another added in its place as the other's values; this never matches by place.
//!
//! Also the table's name mapping for files written without field IDs (Iceberg's
//! `schema.name-mapping.default`): each field of such a file given the ID its names map to.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, GenericListArray, MapArray, OffsetSizeTrait, StructArray};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema};

/// The Parquet field ID of a field, if it has one.
pub(super) fn field_id(field: &Field) -> Option<i64> {
    field
        .metadata()
        .get(parquet::arrow::PARQUET_FIELD_ID_META_KEY)
        .and_then(|v| v.parse().ok())
}

/// The values of nested fields a file may lack, by field ID: a one-row array of any type that
/// casts to the field's.
pub(super) type Defaults = HashMap<i64, ArrayRef>;

/// Whether the file's `have` and the table's `want` are nested types of one kind, read field
/// by field ([`adapt`]) rather than cast whole.
pub(super) fn is_nested(have: &DataType, want: &DataType) -> bool {
    use DataType::*;
    matches!(
        (have, want),
        (Struct(_), Struct(_))
            | (List(_), List(_))
            | (LargeList(_), LargeList(_))
            | (Map(..), Map(..))
    )
}

/// The place of the field of `have` that holds `want`: by field ID when both sides number
/// their fields, else by name.
fn find(have: &Fields, want: &Field) -> Option<usize> {
    match field_id(want) {
        Some(id) if have.iter().any(|f| field_id(f).is_some()) => {
            have.iter().position(|f| field_id(f) == Some(id))
        }
        _ => have.iter().position(|f| f.name() == want.name()),
    }
}

/// Whether the file's field `have` can be read as the table's `want` ([`adapt`]); the error
/// names the nested field (`path`) that cannot.
pub(super) fn check(have: &Field, want: &Field, path: &str) -> Result<(), String> {
    let inner = |h: &Field, w: &Field| check(h, w, &format!("{path}.{}", w.name()));
    match (have.data_type(), want.data_type()) {
        (DataType::Struct(hs), DataType::Struct(ws)) => {
            ws.iter().try_for_each(|w| match find(hs, w) {
                Some(k) => inner(&hs[k], w),
                None => Ok(()),
            })
        }
        (DataType::List(h), DataType::List(w))
        | (DataType::LargeList(h), DataType::LargeList(w)) => inner(h, w),
        (DataType::Map(h, _), DataType::Map(w, _)) => inner(h, w),
        (h, w) if h == w || arrow_cast::can_cast_types(h, w) => Ok(()),
        (h, w) => Err(format!(
            "its field {path} is {h}, which cannot be read as {w}"
        )),
    }
}

/// The file's `array` of field `have` as the table's field `want` (see the module's doc).
pub(super) fn adapt(
    array: &ArrayRef,
    have: &Field,
    want: &Field,
    defaults: &Defaults,
) -> Result<ArrayRef, ArrowError> {
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    Ok(match (have.data_type(), want.data_type()) {
        (DataType::Struct(hs), DataType::Struct(ws)) => {
            let a = array.as_struct();
            let rows = a.len();
            let columns = ws
                .iter()
                .map(|w| match find(hs, w) {
                    Some(k) => adapt(a.column(k), &hs[k], w, defaults),
                    None => absent(w, rows, defaults),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new_with_length(
                ws.clone(),
                columns,
                a.nulls().cloned(),
                rows,
            )?)
        }
        (DataType::List(h), DataType::List(w)) => list::<i32>(array, h, w, defaults)?,
        (DataType::LargeList(h), DataType::LargeList(w)) => list::<i64>(array, h, w, defaults)?,
        (DataType::Map(h, _), DataType::Map(w, sorted)) => {
            let a = array.as_map();
            let entries = adapt(&(Arc::new(a.entries().clone()) as ArrayRef), h, w, defaults)?;
            Arc::new(MapArray::try_new(
                w.clone(),
                a.offsets().clone(),
                entries.as_struct().clone(),
                a.nulls().cloned(),
                *sorted,
            )?)
        }
        (_, w) if array.data_type() == w => array.clone(),
        (_, w) => crate::input::cast_exact(array, w, &options)?,
    })
}

/// A list `array` of items `have` as one of items `want`.
fn list<O: OffsetSizeTrait>(
    array: &ArrayRef,
    have: &FieldRef,
    want: &FieldRef,
    defaults: &Defaults,
) -> Result<ArrayRef, ArrowError> {
    let a = array.as_list::<O>();
    let values = adapt(a.values(), have, want, defaults)?;
    Ok(Arc::new(GenericListArray::<O>::try_new(
        want.clone(),
        a.offsets().clone(),
        values,
        a.nulls().cloned(),
    )?))
}

/// `rows` values of a field the file lacks: its default, else nulls.
fn absent(want: &Field, rows: usize, defaults: &Defaults) -> Result<ArrayRef, ArrowError> {
    let Some(value) = field_id(want).and_then(|id| defaults.get(&id)) else {
        return Ok(arrow_array::new_null_array(want.data_type(), rows));
    };
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let value = crate::input::cast_exact(value, want.data_type(), &options)?;
    let zeros = arrow_array::UInt32Array::from(vec![0u32; rows]);
    arrow_select::take::take(&value, &zeros, None)
}

/// A table's name mapping: the names each field ID had in files written without field IDs
/// (Iceberg's `schema.name-mapping.default`), nested fields under their parent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameMapping(pub Vec<MappedField>);

/// One field of a [`NameMapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedField {
    /// Its field ID; `None`: a name mapped to no field (its values are not read).
    pub id: Option<i64>,
    /// The names it has had.
    pub names: Vec<String>,
    /// Its fields: a struct's, a list's `element`, a map's `key` and `value`.
    pub fields: Vec<MappedField>,
}

impl NameMapping {
    /// `schema` (a file's, without field IDs) with each field given the ID the mapping gives
    /// its name, at every depth; a field the mapping does not name gets none (and so matches
    /// no column of the table).
    pub(super) fn apply(&self, schema: &Schema) -> Schema {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| named(f, by_name(&self.0, f.name())))
            .collect();
        Schema::new_with_metadata(fields, schema.metadata().clone())
    }
}

/// The mapped field of `name` among `fields`.
fn by_name<'a>(fields: &'a [MappedField], name: &str) -> Option<&'a MappedField> {
    fields.iter().find(|m| m.names.iter().any(|n| n == name))
}

/// `field` given the ID of `mapped` (none without it), its nested fields likewise: a struct's
/// by name, a list's item and a map's key and value by their places (the mapping names them
/// `element`, `key` and `value`; files name them as their writers do).
fn named(field: &Field, mapped: Option<&MappedField>) -> Field {
    let inner = |name: &str| mapped.and_then(|m| by_name(&m.fields, name));
    let data_type = match field.data_type() {
        DataType::Struct(fs) => DataType::Struct(
            fs.iter()
                .map(|f| named(f, inner(f.name())))
                .collect::<Vec<_>>()
                .into(),
        ),
        DataType::List(item) => DataType::List(Arc::new(named(item, inner("element")))),
        DataType::LargeList(item) => DataType::LargeList(Arc::new(named(item, inner("element")))),
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return field.clone();
            };
            let kv: Vec<Field> = kv
                .iter()
                .zip(["key", "value"])
                .map(|(f, name)| named(f, inner(name)))
                .collect();
            DataType::Map(
                Arc::new(
                    entries
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Struct(kv.into())),
                ),
                *sorted,
            )
        }
        other => other.clone(),
    };
    let mut metadata = field.metadata().clone();
    metadata.remove(parquet::arrow::PARQUET_FIELD_ID_META_KEY);
    if let Some(id) = mapped.and_then(|m| m.id) {
        metadata.insert(
            parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_owned(),
            id.to_string(),
        );
    }
    field
        .clone()
        .with_data_type(data_type)
        .with_metadata(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, Int64Array, StringArray};

    fn id(field: Field, id: i64) -> Field {
        field.with_metadata(HashMap::from([(
            parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_owned(),
            id.to_string(),
        )]))
    }

    #[test]
    fn struct_fields_follow_their_ids_never_their_places() {
        // The file's struct: a (ID 2), b (ID 3). The table's: b dropped, c (ID 4) added in
        // its place, a renamed "aa" and widened.
        let file = Fields::from(vec![
            id(Field::new("a", DataType::Int32, true), 2),
            id(Field::new("b", DataType::Utf8, true), 3),
        ]);
        let table = Fields::from(vec![
            id(Field::new("aa", DataType::Int64, true), 2),
            id(Field::new("c", DataType::Utf8, true), 4),
            id(Field::new("d", DataType::Int64, true), 5),
        ]);
        let have = Field::new("s", DataType::Struct(file.clone()), true);
        let want = Field::new("s", DataType::Struct(table.clone()), true);
        let array: ArrayRef = Arc::new(StructArray::new(
            file,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
            None,
        ));
        check(&have, &want, "s").unwrap();
        // d's default (a v3 `initial-default`).
        let defaults = Defaults::from([(5, Arc::new(Int32Array::from(vec![9])) as ArrayRef)]);
        let out = adapt(&array, &have, &want, &defaults).unwrap();
        assert_eq!(out.data_type(), want.data_type());
        let s = out.as_struct();
        let aa = s.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(aa.values().to_vec(), [1, 2]);
        assert_eq!(s.column(1).null_count(), 2, "never b's values in c's place");
        let d = s.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(d.values().to_vec(), [9, 9]);
    }

    #[test]
    fn a_field_that_cannot_be_read_is_named() {
        let have = Field::new_list("l", Field::new("element", DataType::Date32, true), true);
        let want = Field::new_list(
            "l",
            Field::new("element", DataType::Struct(Fields::empty()), true),
            true,
        );
        let e = check(&have, &want, "l").unwrap_err();
        assert!(e.contains("l.element") && e.contains("Date32"), "{e}");
    }

    #[test]
    fn a_name_mapping_numbers_a_files_fields_at_every_depth() {
        let m = |id: i64, names: &[&str], fields: Vec<MappedField>| MappedField {
            id: Some(id),
            names: names.iter().map(|n| n.to_string()).collect(),
            fields,
        };
        let mapping = NameMapping(vec![
            m(1, &["id"], vec![]),
            m(2, &["name", "title"], vec![]),
            m(
                3,
                &["point"],
                vec![m(4, &["x"], vec![]), m(5, &["label"], vec![])],
            ),
            m(6, &["tags"], vec![m(7, &["element"], vec![])]),
            m(
                8,
                &["attrs"],
                vec![m(9, &["key"], vec![]), m(10, &["value"], vec![])],
            ),
        ]);
        let file = Schema::new(vec![
            Field::new("title", DataType::Utf8, true),
            Field::new(
                "point",
                DataType::Struct(
                    vec![
                        Field::new("label", DataType::Utf8, true),
                        Field::new("unmapped", DataType::Utf8, true),
                    ]
                    .into(),
                ),
                true,
            ),
            Field::new_list("tags", Field::new("item", DataType::Utf8, true), true),
            Field::new_map(
                "attrs",
                "key_value",
                Field::new("k", DataType::Utf8, false),
                Field::new("v", DataType::Int64, true),
                false,
                true,
            ),
        ]);
        let out = mapping.apply(&file);
        let ids = |f: &Field| field_id(f);
        assert_eq!(ids(out.field(0)), Some(2));
        let DataType::Struct(point) = out.field(1).data_type() else {
            panic!()
        };
        assert_eq!(ids(out.field(1)), Some(3));
        assert_eq!((ids(&point[0]), ids(&point[1])), (Some(5), None));
        let DataType::List(item) = out.field(2).data_type() else {
            panic!()
        };
        assert_eq!(ids(item), Some(7));
        let DataType::Map(entries, _) = out.field(3).data_type() else {
            panic!()
        };
        let DataType::Struct(kv) = entries.data_type() else {
            panic!()
        };
        assert_eq!((ids(&kv[0]), ids(&kv[1])), (Some(9), Some(10)));
    }
}
