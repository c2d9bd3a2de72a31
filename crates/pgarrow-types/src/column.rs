//! A result column as the server describes it.

use crate::builtin::builtin_type_name;

/// A result column as the server describes it (a RowDescription field, named with
/// `format_type`): what a decoder plans from, and what an encoder writes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgColumn {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub oid: u32,
    /// Type modifier (-1 when none).
    pub typmod: i32,
    /// Type name for messages and metadata, as `format_type(oid, typmod)` renders it.
    pub type_name: String,
}

impl PgColumn {
    /// A column with the built-in name of its type (or `oid N` for unknown types; see
    /// [`builtin_type_name`]).
    pub fn new(name: impl Into<String>, oid: u32, typmod: i32) -> Self {
        let type_name = builtin_type_name(oid, typmod);
        PgColumn {
            name: name.into(),
            oid,
            typmod,
            type_name,
        }
    }
}
