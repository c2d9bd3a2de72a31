//! What an export runs, below the client that makes it and the export that runs it: the
//! options of one export, a described source ([`DescribedSource`]) and its COPY statement.

use std::time::Duration;

use arrow_schema::SchemaRef;
use pgarrow_decode::mapping::Catalog;
use pgarrow_decode::types::oid;

use crate::policy::Policies;
use crate::{ColumnMapping, DecodeOptions};

/// Options of one export: [`ExportOptions::default`], then `with_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// How batches are cut.
    pub decode: DecodeOptions,
    /// What to do where a value has no exact Arrow form.
    pub policies: Policies,
    /// The memory an export into a file on one connection may hold: its batches (the one
    /// decoded, the one waiting, the one written) and its row group in progress get their
    /// shares of it ([`ExportOptions::with_memory_limit`]); `None`: as the batch and row-group
    /// sizes say. Partitioned exports take theirs from
    /// [`PartitionOptions::memory_limit`](crate::partition::PartitionOptions::memory_limit).
    pub memory_limit: Option<usize>,
}

impl ExportOptions {
    /// Batches cut as `decode` says.
    pub fn with_decode(mut self, decode: DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// Values without an exact Arrow form handled as `policies` say.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// At most about `bytes` held by an export into a file on one connection: each batch
    /// gets a sixteenth of it and the row group in progress an eighth (64 KiB at least),
    /// where the batch and row-group sizes asked for more.
    pub fn with_memory_limit(mut self, bytes: Option<usize>) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// These options with the batch size cut to its share of the memory limit.
    pub(crate) fn limited(&self) -> ExportOptions {
        let mut options = self.clone();
        if let Some(limit) = self.memory_limit {
            options.decode.batch_bytes = self.decode.batch_bytes.min(limit / 16).max(MIN_SHARE);
        }
        options
    }

    /// A row group's size in bytes within the memory limit.
    pub(crate) fn limited_row_group_bytes(&self, row_group_bytes: usize) -> usize {
        match self.memory_limit {
            Some(limit) => row_group_bytes.min(limit / 8).max(MIN_SHARE),
            None => row_group_bytes,
        }
    }
}

/// The smallest batch or row group a memory limit cuts down to.
const MIN_SHARE: usize = 64 << 10;

/// A described source: its columns, decoders, Arrow schema and the COPY statement to run.
#[derive(Debug, Clone)]
pub struct DescribedSource {
    /// One mapping per result column.
    pub columns: Vec<ColumnMapping>,
    /// The Arrow schema of the batches, as described: an array column whose depth comes from the
    /// data ([`TypeMapping::list_depth_from_data`](crate::mapping::TypeMapping::list_depth_from_data)) has one
    /// level here and gets as many as its first values have once the COPY runs
    /// ([`Export::schema`](crate::Export::schema) is the batches' own).
    pub schema: SchemaRef,
    /// The COPY statement that will be sent.
    pub copy_sql: String,
    /// The types the columns' mappings were resolved from (arrays, composites, domains, enums,
    /// ranges, extension types): what loading into these columns needs too.
    pub catalog: Catalog,
    /// How long describing took, the catalog query included.
    pub(crate) describe_time: Duration,
    /// How long the catalog query took.
    pub(crate) catalog_time: Duration,
}

/// The COPY statement for a described query: the query itself when every column has a binary
/// decoder, else a projection over it that casts the others to text. The projection renames the
/// columns positionally (`AS _pgarrow(c1, c2, ...)`), so duplicate or odd names do not matter.
pub(crate) fn copy_statement(sql: &str, columns: &[ColumnMapping]) -> String {
    if columns.iter().all(|c| c.cast.is_none()) {
        return format!("COPY ({sql}\n) TO STDOUT (FORMAT binary)");
    }
    let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = columns
        .iter()
        .zip(&aliases)
        .map(|(c, a)| match c.cast {
            // `inet`'s cast to text always shows the netmask (`1.2.3.4/32`), unlike its output
            // function (`1.2.3.4`), which psql, COPY's text format and the text of an `inet[]`
            // or of a composite use: `abbrev(inet)` is that output function. A domain over
            // inet is described as inet. Every other type without a decoder casts to text
            // through its output function (pg_cast), `cidr` included.
            Some(_) if c.column.oid == oid::INET => format!("pg_catalog.abbrev({a})"),
            Some(cast) => format!("{a}::{cast}"),
            None => a.clone(),
        })
        .collect();
    format!(
        "COPY (SELECT {} FROM ({sql}\n) AS _pgarrow({})) TO STDOUT (FORMAT binary)",
        select.join(", "),
        aliases.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PgColumn;

    #[test]
    fn copy_statement_casts_only_when_needed() {
        let plain = vec![ColumnMapping::for_column(PgColumn::new("a", 23, -1))];
        assert_eq!(
            copy_statement("SELECT 1", &plain),
            "COPY (SELECT 1\n) TO STDOUT (FORMAT binary)"
        );
        let mixed = vec![
            ColumnMapping::for_column(PgColumn::new("a", 23, -1)),
            ColumnMapping::for_column(PgColumn::new("a", 650, -1)),
            ColumnMapping::for_column(PgColumn::new("a", oid::INET, -1)),
        ];
        assert_eq!(
            copy_statement("SELECT 1, '10/8'::cidr, '1.2.3.4'::inet", &mixed),
            "COPY (SELECT c1, c2::text, pg_catalog.abbrev(c3) FROM \
             (SELECT 1, '10/8'::cidr, '1.2.3.4'::inet\n) AS _pgarrow(c1, c2, c3)) \
             TO STDOUT (FORMAT binary)"
        );
    }
}
