//! Loading Arrow data into a table: binary `COPY ... FROM STDIN` in one transaction, appending,
//! replacing the table's rows, or upserting on a key.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Schema};
use pgarrow_encode::{HEADER, RowEncoder, TRAILER};

use crate::protocol::quote_ident;
use crate::{Client, Error, ErrorKind, Result, Source};

/// What a load does with the rows already in the table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Adds the rows.
    #[default]
    Append,
    /// Replaces every row (`TRUNCATE` in the same transaction).
    Replace,
    /// Inserts rows whose key is new and updates the others, through a temporary table and
    /// `INSERT ... ON CONFLICT (key) DO UPDATE`. The key must have a unique index.
    Upsert {
        /// The key columns.
        key: Vec<String>,
    },
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadStats {
    /// Rows loaded (as the server counted them).
    pub rows: u64,
    /// Bytes of COPY data sent.
    pub bytes: u64,
    /// Describing the table.
    pub describe: Duration,
    /// Reading the input (the batches' iterator).
    pub read: Duration,
    /// Encoding rows.
    pub encode: Duration,
    /// Sending them, and the server taking them.
    pub send: Duration,
    /// The upsert's INSERT (if any) and COMMIT.
    pub commit: Duration,
    /// Wall time.
    pub total: Duration,
}

/// Bytes of encoded rows handed to the connection at a time.
const SEND_AT: usize = 1 << 20;

impl Client {
    /// Loads `batches` (all of `schema`) into `table` (`name` or `schema.name`) in one
    /// transaction: the input's columns go into the table's columns of the same names (others
    /// get their defaults); every value is checked against its column's type (see
    /// `pgarrow_encode`). A failure of any kind (a value, the server, the input) rolls back:
    /// the table is as it was.
    ///
    /// # Errors
    /// An input column the table does not have; one whose type cannot go into its column; a
    /// value that does not fit (column, row, value); the server's error; the input's error.
    pub async fn load(
        &mut self,
        table: &str,
        schema: &Schema,
        batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
        mode: &LoadMode,
    ) -> Result<LoadStats> {
        let started = Instant::now();
        let mut stats = LoadStats::default();
        let Source::Table { schema: ns, name } = Source::table(table)? else {
            unreachable!("Source::table makes a table");
        };
        let qualified = match &ns {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&name)),
            None => quote_ident(&name),
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let list = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        // The target's types, in the input's order (a missing column is the server's error,
        // naming it).
        let plan = self
            .plan(&Source::query(format!("SELECT {list} FROM {qualified}")))
            .await
            .map_err(|e| e.context(format!("the columns of {table}")))?;
        let encoder = RowEncoder::new(&plan.columns, schema)
            .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
        stats.describe = started.elapsed();
        let conn = self.connection();
        conn.simple_query("BEGIN").await?;
        let result = async {
            let into = match mode {
                LoadMode::Append => qualified.clone(),
                LoadMode::Replace => {
                    conn.simple_query(&format!("TRUNCATE {qualified}")).await?;
                    qualified.clone()
                }
                LoadMode::Upsert { .. } => {
                    conn.simple_query(&format!(
                        "CREATE TEMPORARY TABLE _pgarrow_load (LIKE {qualified}) ON COMMIT DROP"
                    ))
                    .await?;
                    "_pgarrow_load".to_owned()
                }
            };
            let sql = format!("COPY {into} ({list}) FROM STDIN (FORMAT binary)");
            let mut copy = conn.copy_in(&sql).await?;
            let mut buf = Vec::with_capacity(SEND_AT + (64 << 10));
            buf.extend_from_slice(HEADER);
            let mut row = 0u64;
            let mut read_started = Instant::now();
            let sent: Result<()> = async {
                for batch in batches {
                    let batch = batch.map_err(|e| Error::from(ErrorKind::Input(e)))?;
                    stats.read += read_started.elapsed();
                    let t = Instant::now();
                    encoder
                        .encode(&batch, row, &mut buf)
                        .map_err(|e| Error::from(ErrorKind::Encode(e)))?;
                    stats.encode += t.elapsed();
                    row += batch.num_rows() as u64;
                    if buf.len() >= SEND_AT {
                        let t = Instant::now();
                        copy.write(&buf).await?;
                        stats.send += t.elapsed();
                        buf.clear();
                    }
                    read_started = Instant::now();
                }
                buf.extend_from_slice(TRAILER);
                let t = Instant::now();
                copy.write(&buf).await?;
                stats.send += t.elapsed();
                Ok(())
            }
            .await;
            stats.bytes = copy.bytes();
            if let Err(e) = sent {
                // The server discards what it took; its own error, if it has one, is the
                // same as ours or follows from it.
                let _ = copy.fail(&format!("pgarrow: {e}")).await;
                return Err(e.with_rows(0));
            }
            let t = Instant::now();
            stats.rows = copy.finish().await?;
            stats.send += t.elapsed();
            let t = Instant::now();
            if let LoadMode::Upsert { key } = mode {
                conn.simple_query(&upsert_sql(&qualified, &columns, key)?)
                    .await?;
            }
            conn.simple_query("COMMIT").await?;
            stats.commit = t.elapsed();
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = result {
            if conn.is_ready() {
                let _ = conn.simple_query("ROLLBACK").await;
            }
            return Err(e);
        }
        stats.total = started.elapsed();
        Ok(stats)
    }
}

/// `INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE` from the load's temporary table.
fn upsert_sql(table: &str, columns: &[String], key: &[String]) -> Result<String> {
    if key.is_empty() {
        return Err(Error::query(
            "an upsert needs a key: the columns of a unique index",
        ));
    }
    if let Some(k) = key.iter().find(|k| !columns.contains(k)) {
        return Err(Error::query(format!(
            "the upsert key {k:?} is not among the input's columns ({})",
            columns.join(", ")
        )));
    }
    let list = |cols: &mut dyn Iterator<Item = &String>| {
        cols.map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
    };
    let all = list(&mut columns.iter());
    let keys = list(&mut key.iter());
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
        .collect();
    let action = match updates.is_empty() {
        true => "NOTHING".to_owned(),
        false => format!("UPDATE SET {}", updates.join(", ")),
    };
    Ok(format!(
        "INSERT INTO {table} ({all}) SELECT {all} FROM _pgarrow_load ON CONFLICT ({keys}) DO {action}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts() {
        let cols = ["id".to_owned(), "v".to_owned(), "w x".to_owned()];
        assert_eq!(
            upsert_sql("\"t\"", &cols, &["id".to_owned()]).unwrap(),
            "INSERT INTO \"t\" (\"id\", \"v\", \"w x\") SELECT \"id\", \"v\", \"w x\" FROM \
             _pgarrow_load ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\", \
             \"w x\" = EXCLUDED.\"w x\""
        );
        assert!(
            upsert_sql("t", &cols[..1], &["id".to_owned()])
                .unwrap()
                .ends_with("DO NOTHING")
        );
        assert!(upsert_sql("t", &cols, &[]).is_err());
        assert!(
            upsert_sql("t", &cols, &["nope".to_owned()])
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }
}
