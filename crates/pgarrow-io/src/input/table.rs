//! A lake table's snapshot read as one input of the table's current columns: files written
//! under older versions of its schema conformed to it (columns matched by Parquet field ID,
//! else by name; a column a file lacks read as nulls; a narrower type widened), the rows its
//! metadata deletes by position dropped, and rows the metadata holds itself (not in any file)
//! appended.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, SchemaRef};

use super::nested::{self, Defaults, field_id};
use super::{Batches, Counted, Input, InputOptions, TableFile, open_file, restore};
use crate::variant;
use crate::{Error, Result};

/// Where one column of the table comes from in one file's batches.
#[derive(Debug, Clone)]
enum Source {
    /// The file's column at this place, as it is.
    Same(usize),
    /// The file's column at this place, cast to the table's type.
    Cast(usize),
    /// Not in the file: nulls.
    Missing,
    /// Not in the file: this one-row value (of the table's type) in every row.
    Absent(ArrayRef),
    /// The file's nested column at this place, of the file's field, read field by field
    /// ([`nested::adapt`]) with the values of nested fields it lacks.
    Nested(usize, Arc<Field>, Arc<Defaults>),
    /// The file's Variant group at this place, read as JSON text (by [`variant::decoded`],
    /// before the batches are conformed, so that errors count the file's rows).
    Variant(usize),
}

/// How `file`'s columns make the table's `schema`: a table column with a field ID by the file
/// column of that ID when the file's columns carry them (else by a file column of its name
/// without an ID: a value restored from the table's metadata), any other by name; a nested
/// column field by field the same way, with `defaults` for the nested fields a file lacks.
/// `mapped`: the file's field IDs are the table's name mapping's, not its batches'.
///
/// # Errors
/// A column whose file type cannot become the table's, named.
fn plan(
    schema: &SchemaRef,
    file: &SchemaRef,
    absent: &[(usize, ArrayRef)],
    defaults: &Arc<Defaults>,
    mapped: bool,
    shown: &str,
) -> Result<Vec<Source>> {
    let file_ids = file.fields().iter().any(|f| field_id(f).is_some());
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, want)| {
            let by_name = |have: &&arrow_schema::FieldRef| have.name() == want.name();
            let found = match field_id(want) {
                // By ID; else a column the file was given by name, without an ID (a partition
                // value restored from the table's metadata).
                Some(id) if file_ids => file
                    .fields()
                    .iter()
                    .position(|have| field_id(have) == Some(id))
                    .or_else(|| {
                        file.fields()
                            .iter()
                            .position(|have| field_id(have).is_none() && by_name(&have))
                    }),
                _ => file.fields().iter().position(|have| by_name(&have)),
            };
            let Some(k) = found else {
                let Some((_, value)) = absent.iter().find(|(at, _)| *at == i) else {
                    return Ok(Source::Missing);
                };
                // Cast once, for every batch of the file.
                let options = arrow_cast::CastOptions {
                    safe: false,
                    ..Default::default()
                };
                let value = super::cast_exact(value, want.data_type(), &options).map_err(|e| {
                    Error::usage(format!(
                        "{shown}: the value the table's metadata gives its column \"{}\", which \
                         the file does not hold, does not fit {}: {e}",
                        want.name(),
                        want.data_type()
                    ))
                })?;
                return Ok(Source::Absent(value));
            };
            let have = file.field(k).data_type();
            if variant::is_json_text(want) && variant::is_variant(file.field(k)) {
                return Ok(Source::Variant(k));
            }
            if nested::is_nested(have, want.data_type()) && (mapped || have != want.data_type()) {
                nested::check(file.field(k), want, want.name()).map_err(|e| {
                    Error::usage(format!(
                        "{shown}: its column \"{}\" cannot be read as the table's column \"{}\" \
                         ({}): {e}",
                        file.field(k).name(),
                        want.name(),
                        want.data_type()
                    ))
                })?;
                Ok(Source::Nested(
                    k,
                    Arc::new(file.field(k).clone()),
                    defaults.clone(),
                ))
            } else if have == want.data_type() {
                Ok(Source::Same(k))
            } else if arrow_cast::can_cast_types(have, want.data_type()) {
                Ok(Source::Cast(k))
            } else {
                Err(Error::usage(format!(
                    "{shown}: its column \"{}\" is {have}, which cannot be read as the table's \
                     column \"{}\" ({})",
                    file.field(k).name(),
                    want.name(),
                    want.data_type()
                )))
            }
        })
        .collect()
}

/// A batch of the file's columns as the table's.
fn conform(
    batch: &RecordBatch,
    plan: &[Source],
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    let rows = batch.num_rows();
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns =
        plan.iter()
            .zip(schema.fields())
            .map(
                |(source, field)| -> std::result::Result<ArrayRef, ArrowError> {
                    Ok(match source {
                        Source::Same(k) => batch.column(*k).clone(),
                        Source::Cast(k) => {
                            super::cast_exact(batch.column(*k), field.data_type(), &options)
                                .map_err(|e| {
                                    ArrowError::from(Error::usage(format!(
                                        "column \"{}\": a value does not fit {}: {e}",
                                        field.name(),
                                        field.data_type()
                                    )))
                                })?
                        }
                        Source::Nested(k, have, defaults) => {
                            nested::adapt(batch.column(*k), have, field, defaults).map_err(|e| {
                                ArrowError::from(Error::usage(format!(
                                    "column \"{}\": a value does not fit {}: {e}",
                                    field.name(),
                                    field.data_type()
                                )))
                            })?
                        }
                        Source::Variant(k) => match batch.column(*k).data_type() {
                            DataType::Utf8 => batch.column(*k).clone(),
                            _ => variant::json_array(batch.column(*k), field.name(), 0)?,
                        },
                        Source::Missing => arrow_array::new_null_array(field.data_type(), rows),
                        Source::Absent(value) => {
                            let zeros = arrow_array::UInt32Array::from(vec![0u32; rows]);
                            arrow_select::take::take(value, &zeros, None)?
                        }
                    })
                },
            )
            .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

/// Whether `a` and `b` are one type but for the names (and metadata) of nested fields.
fn same_but_names(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| same_but_names(f.data_type(), g.data_type()))
        }
        (List(x), List(y)) | (LargeList(x), LargeList(y)) => {
            same_but_names(x.data_type(), y.data_type())
        }
        (FixedSizeList(x, n), FixedSizeList(y, m)) => {
            n == m && same_but_names(x.data_type(), y.data_type())
        }
        (Map(x, s), Map(y, t)) => s == t && same_but_names(x.data_type(), y.data_type()),
        _ => a == b,
    }
}

/// `array` as `to`, its type but for the names of nested fields: the same buffers, the
/// nested arrays given `to`'s field names.
fn relabel(array: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, ArrowError> {
    use arrow_array::cast::AsArray;
    use arrow_array::{FixedSizeListArray, MapArray, StructArray};
    if array.data_type() == to {
        return Ok(array.clone());
    }
    Ok(match to {
        DataType::Struct(fields) => {
            let a = array.as_struct();
            let columns = a
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| relabel(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new_with_length(
                fields.clone(),
                columns,
                a.nulls().cloned(),
                a.len(),
            )?)
        }
        DataType::List(field) => relabel_list::<i32>(array, field)?,
        DataType::LargeList(field) => relabel_list::<i64>(array, field)?,
        DataType::FixedSizeList(field, n) => {
            let a = array.as_fixed_size_list();
            let values = relabel(a.values(), field.data_type())?;
            Arc::new(FixedSizeListArray::try_new(
                field.clone(),
                *n,
                values,
                a.nulls().cloned(),
            )?)
        }
        DataType::Map(field, sorted) => {
            let a = array.as_map();
            let entries = relabel(
                &(Arc::new(a.entries().clone()) as ArrayRef),
                field.data_type(),
            )?;
            Arc::new(MapArray::try_new(
                field.clone(),
                a.offsets().clone(),
                entries.as_struct().clone(),
                a.nulls().cloned(),
                *sorted,
            )?)
        }
        other => {
            return Err(ArrowError::CastError(format!(
                "{} cannot be named as {other}",
                array.data_type()
            )));
        }
    })
}

/// A list `array` as one of items `field` (see [`relabel`]).
fn relabel_list<O: arrow_array::OffsetSizeTrait>(
    array: &ArrayRef,
    field: &arrow_schema::FieldRef,
) -> std::result::Result<ArrayRef, ArrowError> {
    let a = arrow_array::cast::AsArray::as_list::<O>(array.as_ref());
    let values = relabel(a.values(), field.data_type())?;
    Ok(Arc::new(arrow_array::GenericListArray::<O>::try_new(
        field.clone(),
        a.offsets().clone(),
        values,
        a.nulls().cloned(),
    )?))
}

/// A batch of the files' names of the columns as `schema`'s (see [`relabel`]).
fn rename(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| relabel(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// `schema` and `file_schema` ([`Input::open_table_named`]) with each column the files hold as
/// a Variant group (a struct of binary `metadata` and `value`) and the table types as text (a
/// Delta `variant`) made JSON text ([`variant::variant_field`]) in both.
fn variants_as_json(schema: SchemaRef, file_schema: SchemaRef) -> (SchemaRef, SchemaRef) {
    let pairs = || schema.fields().iter().zip(file_schema.fields());
    let is_pair = |(table, file): (&arrow_schema::FieldRef, &arrow_schema::FieldRef)| {
        table.data_type() == &DataType::Utf8 && variant::is_variant(file)
    };
    if schema.fields().len() != file_schema.fields().len() || !pairs().any(is_pair) {
        return (schema, file_schema);
    }
    let (table, file): (Vec<Field>, Vec<Field>) = pairs()
        .map(|pair| match is_pair(pair) {
            true => (
                variant::json_field_of(pair.0),
                variant::json_field_of(pair.1),
            ),
            false => (pair.0.as_ref().clone(), pair.1.as_ref().clone()),
        })
        .collect();
    let with = |fields: Vec<Field>, of: &SchemaRef| {
        Arc::new(arrow_schema::Schema::new_with_metadata(
            fields,
            of.metadata().clone(),
        ))
    };
    (with(table, &schema), with(file, &file_schema))
}

/// The rows of a file's batches whose positions (from 0, sorted) are not in `deleted`.
struct Undeleted {
    batches: Batches,
    deleted: Vec<u64>,
    /// The position of the next batch's first row.
    at: u64,
    /// The first entry of `deleted` at or past `at`.
    next: usize,
}

impl Iterator for Undeleted {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.batches.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(e)),
        };
        let rows = batch.num_rows() as u64;
        let end = self.at + rows;
        let first = self.next;
        while self.next < self.deleted.len() && self.deleted[self.next] < end {
            self.next += 1;
        }
        let gone = &self.deleted[first..self.next];
        let start = self.at;
        self.at = end;
        if gone.is_empty() {
            return Some(Ok(batch));
        }
        let mut keep = vec![true; batch.num_rows()];
        for &p in gone {
            keep[(p - start) as usize] = false;
        }
        Some(arrow_select::filter::filter_record_batch(
            &batch,
            &BooleanArray::from(keep),
        ))
    }
}

impl Input {
    /// A table's snapshot as the table's columns `schema` (each with its Parquet field ID when
    /// the table numbers its columns): its `files`, each checked to hold the rows its
    /// metadata says, conformed to `schema` (a column matched by field ID, or by name when
    /// the file or the table has none; a column the file lacks read as nulls; a type the
    /// file holds narrower cast to the table's), without the rows each file's
    /// [`TableFile::deleted`] positions name; then the table's `rows` held outside any file
    /// (already of `schema`'s columns, by name). No file and no row is a table of no rows.
    ///
    /// # Errors
    /// A file that cannot be opened; a column whose file type cannot be read as the table's,
    /// named with the file; a deleted position past a file's rows; a batch of `rows` whose
    /// columns are not `schema`'s.
    pub fn open_table_as(
        name: impl Into<String>,
        schema: SchemaRef,
        files: Vec<TableFile>,
        rows: Vec<RecordBatch>,
        options: &InputOptions,
    ) -> Result<Input> {
        Input::open_table_named(name, schema.clone(), schema, files, rows, options)
    }

    /// As [`open_table_as`](Input::open_table_as), for a table whose files name its columns
    /// otherwise (Delta's column mapping: each column, and each field inside one, under a
    /// physical name): `file_schema` is `schema` as the files hold it, field for field, the
    /// same types but for the names of nested fields (and each field's name and ID as the
    /// files give them). Each file's columns are matched and cast as `file_schema`'s, then
    /// given `schema`'s names.
    ///
    /// # Errors
    /// As [`open_table_as`](Input::open_table_as); a `file_schema` that is not `schema`
    /// under other names.
    pub fn open_table_named(
        name: impl Into<String>,
        schema: SchemaRef,
        file_schema: SchemaRef,
        files: Vec<TableFile>,
        rows: Vec<RecordBatch>,
        options: &InputOptions,
    ) -> Result<Input> {
        let name = name.into();
        let (schema, file_schema) = variants_as_json(schema, file_schema);
        if file_schema.fields().len() != schema.fields().len()
            || file_schema
                .fields()
                .iter()
                .zip(schema.fields())
                .any(|(f, t)| !same_but_names(f.data_type(), t.data_type()))
        {
            return Err(Error::usage(format!(
                "{name}: the columns as its files name them are not its columns"
            )));
        }
        let renamed = file_schema != schema;
        let file_schema_named = file_schema;
        let mut parts: Vec<Batches> = Vec::with_capacity(files.len() + 1);
        for file in files {
            let shown = file.location.to_string();
            let (file_schema, batches) = open_file(&file.location, None, options)?;
            let restored = super::restored_of(&file);
            let (file_schema, batches) = match restored.is_empty() {
                true => (file_schema, batches),
                false => restore(file_schema, batches, &restored, &file.location)?,
            };
            // A file written without field IDs: numbered by the table's name mapping.
            let (file_schema, mapped) = match &file.names {
                Some(names) if !file_schema.fields().iter().any(|f| field_id(f).is_some()) => {
                    (Arc::new(names.apply(&file_schema)), true)
                }
                _ => (file_schema, false),
            };
            let defaults = Arc::new(file.defaults.iter().cloned().collect::<Defaults>());
            if let (Some(rows), Some(last)) = (file.rows, file.deleted.last())
                && *last >= rows
            {
                return Err(Error::usage(format!(
                    "{shown}: its metadata deletes row {last}, past its {rows} rows"
                )));
            }
            let plan = plan(
                &file_schema_named,
                &file_schema,
                &file.absent,
                &defaults,
                mapped,
                &shown,
            )?;
            // Variant groups read as JSON text, their rows counted from the file's first.
            let variants = plan
                .iter()
                .filter_map(|s| match s {
                    Source::Variant(k) => Some(*k),
                    _ => None,
                })
                .collect();
            let (_, batches) = variant::decoded(&file_schema, batches, variants);
            let counted: Batches = Box::new(Counted {
                path: file.location.clone(),
                expected: file.rows,
                seen: 0,
                batches: Some(batches),
            });
            let mut deleted = file.deleted;
            deleted.sort_unstable();
            deleted.dedup();
            let kept: Batches = match deleted.is_empty() {
                true => counted,
                false => Box::new(Undeleted {
                    batches: counted,
                    deleted,
                    at: 0,
                    next: 0,
                }),
            };
            let (named, out) = (file_schema_named.clone(), schema.clone());
            parts.push(Box::new(kept.map(move |batch| {
                let batch = conform(&batch?, &plan, &named);
                let batch = match renamed {
                    true => batch.and_then(|b| rename(&b, &out)),
                    false => batch,
                };
                batch.map_err(|e| ArrowError::from(Error::Input(e).context(shown.clone())))
            })));
        }
        if !rows.is_empty() {
            let mut conformed = Vec::with_capacity(rows.len());
            for batch in rows {
                let plan = plan(
                    &schema,
                    &batch.schema(),
                    &[],
                    &Default::default(),
                    false,
                    &name,
                )?;
                conformed.push(conform(&batch, &plan, &schema).map_err(|e| {
                    Error::Input(e).context(format!("{name}: the rows its metadata holds"))
                })?);
            }
            parts.push(Box::new(conformed.into_iter().map(Ok)));
        }
        Ok(Input {
            schema,
            name,
            batches: Box::new(parts.into_iter().flatten()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[Option<i32>]) -> ArrayRef {
        Arc::new(arrow_array::Int32Array::from(values.to_vec()))
    }
    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Schema};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn with_id(field: Field, id: i64) -> Field {
        field.with_metadata(HashMap::from([(
            parquet::arrow::PARQUET_FIELD_ID_META_KEY.to_owned(),
            id.to_string(),
        )]))
    }

    #[test]
    fn columns_follow_field_ids_and_widen() {
        // The file: "a" int32 (ID 1), "old" text (ID 2, renamed "b" since).
        let file = Arc::new(Schema::new(vec![
            with_id(Field::new("a", DataType::Int32, true), 1),
            with_id(Field::new("old", DataType::Utf8, true), 2),
        ]));
        let table = Arc::new(Schema::new(vec![
            with_id(Field::new("b", DataType::Utf8, true), 2),
            with_id(Field::new("a", DataType::Int64, true), 1),
            with_id(Field::new("c", DataType::Float64, true), 3),
        ]));
        let plan = plan(&table, &file, &[], &Default::default(), false, "f").unwrap();
        let batch = RecordBatch::try_new(
            file,
            vec![
                ints(&[Some(1), None]),
                Arc::new(StringArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap();
        let out = conform(&batch, &plan, &table).unwrap();
        assert_eq!(out.schema(), table);
        let a = out.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![Some(1), None]);
        let b = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(b.value(1), "y");
        assert_eq!(out.column(2).null_count(), 2);
    }

    #[test]
    fn a_column_a_file_lacks_takes_the_value_the_metadata_gives() {
        let file = Arc::new(Schema::new(vec![with_id(
            Field::new("a", DataType::Int32, true),
            1,
        )]));
        let table = Arc::new(Schema::new(vec![
            with_id(Field::new("a", DataType::Int32, true), 1),
            with_id(Field::new("day", DataType::Date32, true), 2),
            with_id(Field::new("region", DataType::Utf8, true), 3),
            with_id(Field::new("n", DataType::Int64, true), 4),
        ]));
        // A partition tuple's date (days since 1970) and a default's text.
        let absent: Vec<(usize, ArrayRef)> = vec![
            (1, ints(&[Some(20_000)])),
            (2, Arc::new(StringArray::from(vec!["eu"]))),
        ];
        let plan = plan(&table, &file, &absent, &Default::default(), false, "f").unwrap();
        let batch = RecordBatch::try_new(file, vec![ints(&[Some(1), None, Some(3)])]).unwrap();
        let out = conform(&batch, &plan, &table).unwrap();
        let days = out
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Date32Array>()
            .unwrap();
        assert_eq!(days.values().to_vec(), [20_000; 3]);
        let region = out
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(region.iter().collect::<Vec<_>>(), [Some("eu"); 3]);
        // Without a value, NULL.
        assert_eq!(out.column(3).null_count(), 3);
    }

    #[test]
    fn a_type_that_cannot_be_read_is_named() {
        let file = Arc::new(Schema::new(vec![Field::new("a", DataType::Date32, true)]));
        let table = Arc::new(Schema::new(vec![Field::new(
            "a",
            DataType::Struct(Vec::<Field>::new().into()),
            true,
        )]));
        let e = plan(&table, &file, &[], &Default::default(), false, "f.parquet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.parquet") && e.contains("\"a\""), "{e}");
    }

    #[test]
    fn deleted_positions_are_dropped_across_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true)]));
        let batch = |v: &[i32]| {
            RecordBatch::try_new(
                schema.clone(),
                vec![ints(&v.iter().map(|x| Some(*x)).collect::<Vec<_>>())],
            )
        };
        let batches: Batches = Box::new(vec![batch(&[0, 1, 2]), batch(&[3, 4, 5])].into_iter());
        let kept: Vec<i32> = Undeleted {
            batches,
            deleted: vec![0, 2, 3, 5],
            at: 0,
            next: 0,
        }
        .flat_map(|b| {
            let b = b.unwrap();
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int32Array>()
                .unwrap()
                .clone();
            a.values().to_vec()
        })
        .collect();
        assert_eq!(kept, vec![1, 4]);
    }

    #[test]
    fn nested_fields_under_other_names_take_the_tables_names() {
        use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, StructBuilder};
        use arrow_schema::Fields;
        let inner = |x: &str, y: &str| {
            Fields::from(vec![
                Field::new(x, DataType::Int64, true),
                Field::new(y, DataType::Utf8, true),
            ])
        };
        let list_of = |fields: Fields| {
            DataType::List(Arc::new(Field::new(
                "element",
                DataType::Struct(fields),
                true,
            )))
        };
        // The file's: physical names; the table's: its own.
        let file_type = list_of(inner("col-1", "col-2"));
        let table_type = list_of(inner("x", "Label Y"));
        assert!(same_but_names(&file_type, &table_type));
        assert!(!same_but_names(
            &file_type,
            &list_of(inner("x", "y").iter().take(1).cloned().collect())
        ));
        let mut builder = ListBuilder::new(StructBuilder::new(
            inner("col-1", "col-2"),
            vec![
                Box::new(Int64Builder::new()),
                Box::new(StringBuilder::new()),
            ],
        ))
        .with_field(Arc::new(Field::new(
            "element",
            DataType::Struct(inner("col-1", "col-2")),
            true,
        )));
        let point = builder.values();
        point
            .field_builder::<Int64Builder>(0)
            .unwrap()
            .append_value(7);
        point
            .field_builder::<StringBuilder>(1)
            .unwrap()
            .append_null();
        point.append(true);
        builder.append(true);
        builder.append(false);
        let file: ArrayRef = Arc::new(builder.finish());
        assert_eq!(file.data_type(), &file_type);
        let named = relabel(&file, &table_type).unwrap();
        assert_eq!(named.data_type(), &table_type);
        assert_eq!(named.len(), 2);
        assert!(named.is_null(1));
        let list = arrow_array::cast::AsArray::as_list::<i32>(named.as_ref());
        let point = arrow_array::cast::AsArray::as_struct(list.value(0).as_ref()).clone();
        assert_eq!(point.column_names(), ["x", "Label Y"]);
        let x = point
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(x.value(0), 7);
        assert!(point.column(1).is_null(0));
        // A file schema that is not the table's under other names is refused.
        let table = Arc::new(Schema::new(vec![Field::new("a", table_type, true)]));
        let other = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let e = Input::open_table_named(
            "t",
            table,
            other,
            Vec::new(),
            Vec::new(),
            &InputOptions::default(),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not its columns"), "{e}");
    }
}
