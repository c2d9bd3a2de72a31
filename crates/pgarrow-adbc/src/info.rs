//! `GetInfo` and `GetTableTypes`: small batches of fixed shape.

use std::collections::HashSet;
use std::sync::Arc;

use adbc_core::options::InfoCode;
use adbc_core::schemas::{GET_INFO_SCHEMA, GET_TABLE_TYPES_SCHEMA};
use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array, UnionArray,
    new_empty_array,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{ArrowError, DataType};

/// The driver's name, as `GetInfo` reports it.
pub const DRIVER_NAME: &str = "pgarrow ADBC driver";
/// The ADBC API version the driver implements (1.1.0), as `GetInfo` encodes it.
pub const ADBC_VERSION: i64 = 1_001_000;
/// The Arrow implementation the driver builds its arrays with.
const ARROW_VERSION: &str = "arrow-rs 60";

/// One `GetInfo` value: the union member it goes in.
enum Value {
    Text(String),
    Bool(bool),
    Int(i64),
}

/// The `GetInfo` batch for `codes` (every code the driver knows when `None`; codes it does
/// not know are left out, as the specification asks). `server_version` is the server's
/// `server_version` setting.
pub(crate) fn info_batch(
    codes: Option<HashSet<InfoCode>>,
    server_version: &str,
) -> Result<RecordBatch, ArrowError> {
    let all = [
        (InfoCode::VendorName, Value::Text("PostgreSQL".to_owned())),
        (
            InfoCode::VendorVersion,
            Value::Text(server_version.to_owned()),
        ),
        (InfoCode::VendorSql, Value::Bool(true)),
        (InfoCode::VendorSubstrait, Value::Bool(false)),
        (InfoCode::DriverName, Value::Text(DRIVER_NAME.to_owned())),
        (
            InfoCode::DriverVersion,
            Value::Text(env!("CARGO_PKG_VERSION").to_owned()),
        ),
        (
            InfoCode::DriverArrowVersion,
            Value::Text(ARROW_VERSION.to_owned()),
        ),
        (InfoCode::DriverAdbcVersion, Value::Int(ADBC_VERSION)),
    ];
    let wanted = all
        .into_iter()
        .filter(|(code, _)| codes.as_ref().is_none_or(|c| c.contains(code)));
    let (mut names, mut type_ids, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut texts, mut bools, mut ints) = (Vec::new(), Vec::new(), Vec::new());
    for (code, value) in wanted {
        names.push(u32::from(&code));
        let (id, offset) = match value {
            Value::Text(s) => {
                texts.push(s);
                (0, texts.len() - 1)
            }
            Value::Bool(b) => {
                bools.push(b);
                (1, bools.len() - 1)
            }
            Value::Int(i) => {
                ints.push(i);
                (2, ints.len() - 1)
            }
        };
        type_ids.push(id);
        offsets.push(i32::try_from(offset).map_err(|e| ArrowError::ExternalError(Box::new(e)))?);
    }
    let DataType::Union(fields, _) = GET_INFO_SCHEMA.field(1).data_type() else {
        return Err(ArrowError::SchemaError(
            "GET_INFO_SCHEMA's info_value is not a union".into(),
        ));
    };
    let children: Vec<ArrayRef> = fields
        .iter()
        .map(|(id, field)| -> ArrayRef {
            match id {
                0 => Arc::new(StringArray::from(texts.clone())),
                1 => Arc::new(BooleanArray::from(bools.clone())),
                2 => Arc::new(Int64Array::from(ints.clone())),
                _ => new_empty_array(field.data_type()),
            }
        })
        .collect();
    let values = UnionArray::try_new(
        fields.clone(),
        ScalarBuffer::from(type_ids),
        Some(ScalarBuffer::from(offsets)),
        children,
    )?;
    RecordBatch::try_new(
        GET_INFO_SCHEMA.clone(),
        vec![Arc::new(UInt32Array::from(names)), Arc::new(values)],
    )
}

/// The `GetTableTypes` batch: one type per `pg_class` relation kind that holds rows, as
/// `GetObjects` reports them.
pub(crate) fn table_types_batch() -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new(
        GET_TABLE_TYPES_SCHEMA.clone(),
        vec![Arc::new(StringArray::from_iter_values(
            crate::objects::TABLE_KINDS.iter().map(|(_, name)| *name),
        ))],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    #[test]
    fn info_has_the_codes_asked_for() {
        let batch = info_batch(None, "15.4").unwrap();
        assert_eq!(batch.schema(), *GET_INFO_SCHEMA);
        assert_eq!(batch.num_rows(), 8);
        let one: HashSet<InfoCode> = [InfoCode::DriverAdbcVersion, InfoCode::VendorVersion]
            .into_iter()
            .collect();
        let batch = info_batch(Some(one), "15.4").unwrap();
        let names = batch
            .column(0)
            .as_primitive::<arrow_array::types::UInt32Type>();
        assert_eq!(names.values().to_vec(), vec![1, 103]);
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<UnionArray>()
            .unwrap();
        assert_eq!(values.type_id(0), 0);
        assert_eq!(values.value(0).as_string::<i32>().value(0), "15.4");
        assert_eq!(values.type_id(1), 2);
        let version = values.value(1);
        assert_eq!(
            version
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0),
            ADBC_VERSION
        );
        assert_eq!(version.len(), 1);
    }

    #[test]
    fn table_types_are_listed() {
        let batch = table_types_batch().unwrap();
        assert_eq!(batch.num_rows(), 5);
        assert_eq!(
            batch.column(0).as_string::<i32>().value(2),
            "materialized_view"
        );
    }
}
