//! What one part of a partitioned read holds: a range of a relation's blocks, a range of a
//! column's values, or everything. The engine plans parts; a manifest records them.

use serde::{Deserialize, Serialize};

/// What a part reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartRange {
    /// Physical blocks `start..end` of one relation (`end` open for the last range).
    Blocks {
        /// First block.
        start: u64,
        /// Block after the last, or `None` for the rest of the relation.
        end: Option<u64>,
    },
    /// Rows whose `column` is in `[from, to)` (either side open when `None`), and the NULLs
    /// when `nulls`.
    Keys {
        /// The result column.
        column: String,
        /// Lower bound (inclusive), as text.
        from: Option<String>,
        /// Upper bound (exclusive), as text.
        to: Option<String>,
        /// Whether this part also takes the rows where the column is NULL.
        nulls: bool,
    },
    /// The whole source, or the whole of one relation that has no blocks to split.
    All,
}
