//! What the catalog expects a source to hold, for progress.

use crate::protocol::quote_literal;
use crate::{Client, Source};

impl Client {
    /// The rows the catalog expects a table to hold (`pg_class.reltuples`, summed over the
    /// leaf partitions of a partitioned table), for a progress bar's percentage; `None` for a
    /// query, a view, a table never analyzed, or any failure (it is only an estimate).
    pub async fn estimate_rows(&mut self, source: &Source) -> Option<u64> {
        let table = source.as_table()?;
        // pg_partition_tree lists a partitioned table's partitions (and nothing for a plain
        // one).
        let sql = format!(
            "SELECT (CASE WHEN c.relkind = 'p' THEN \
               (SELECT sum(GREATEST(l.reltuples, 0)) FROM pg_catalog.pg_partition_tree(c.oid) t \
                JOIN pg_catalog.pg_class l ON l.oid = t.relid WHERE t.isleaf) \
               ELSE GREATEST(c.reltuples, 0) END)::int8::text \
             FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass({})",
            quote_literal(&table.quoted())
        );
        let rows = self.connection().simple_query(&sql).await.ok()?;
        let n: u64 = rows.first()?.first()?.as_deref()?.parse().ok()?;
        (n > 0).then_some(n)
    }
}
