//! Placeholder until the GetObjects builder lands (being written alongside).
use adbc_core::options::ObjectDepth;
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

pub(crate) type TextRow = Vec<Option<String>>;

#[derive(Debug, Default, Clone)]
pub(crate) struct ObjectFilter {
    pub(crate) catalog: Option<String>,
    pub(crate) db_schema: Option<String>,
    pub(crate) table_name: Option<String>,
    pub(crate) table_type: Option<Vec<String>>,
    pub(crate) column_name: Option<String>,
}

pub(crate) fn queries(_depth: ObjectDepth, _filter: &ObjectFilter) -> Vec<String> {
    Vec::new()
}

pub(crate) fn build(
    _depth: ObjectDepth,
    _results: Vec<Vec<TextRow>>,
) -> Result<RecordBatch, ArrowError> {
    Err(ArrowError::NotYetImplemented("get_objects".into()))
}
