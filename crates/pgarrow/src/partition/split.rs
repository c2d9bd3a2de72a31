//! How a source is cut into parts: physical block ranges of each leaf relation of a table
//! (`ctid` ranges, sized from `pg_relation_size`), key ranges of an integer, date or timestamp
//! column (bounds from the `pg_stats` histogram, else from its MIN and MAX), or the whole
//! source as one part.

use crate::protocol::{quote_ident, quote_literal};
use crate::types::oid;
use crate::{Client, DescribedSource, Error, Result, Source};

use super::PartitionOptions;
use pgarrow_types::PartRange;
use serde::{Deserialize, Serialize};

/// The server version from which `ctid` ranges are read with a TID range scan (PostgreSQL 14).
const TID_RANGE_SCANS: u32 = 140_000;

/// One part of a partitioned export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Part {
    /// Its position in the plan (0-based).
    pub part: usize,
    /// The relation it reads (`"schema"."name"`), for block ranges.
    pub relation: Option<String>,
    /// What it reads.
    pub range: PartRange,
    /// The SELECT that reads it.
    pub sql: String,
    /// Its size on disk, for block ranges (a guide to its rows, not a count).
    pub estimated_bytes: Option<u64>,
    /// Its rows, estimated from the statistics (`reltuples`) for block ranges: a guide for a
    /// scheduler, not a count.
    #[serde(default)]
    pub estimated_rows: Option<u64>,
}

/// The parts of `source`.
pub(super) async fn plan_parts(
    client: &mut Client,
    source: &Source,
    sql: &str,
    columns: &DescribedSource,
    partitions: &PartitionOptions,
) -> Result<Vec<Part>> {
    let n = partitions.planned_parts(None);
    if let Some(by) = &partitions.by {
        return key_parts(client, sql, columns, by, n).await;
    }
    let Source::Table(table) = source else {
        // A query has no blocks to split: one part, unless a key column was given.
        return Ok(vec![whole(sql)]);
    };
    let qualified = table.quoted();
    if client.conn().server_version_num() >= TID_RANGE_SCANS {
        return block_parts(client, &qualified, columns, partitions).await;
    }
    // Before PostgreSQL 14 a ctid range is a scan of the whole relation: split on a
    // single-column integer primary key instead, else read leaf by leaf.
    let pk = format!(
        "SELECT a.attname::text FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = {}::pg_catalog.regclass AND i.indisprimary AND i.indnatts = 1 \
           AND a.atttypid IN (20, 21, 23)",
        quote_literal(&qualified)
    );
    let rows = client.connection().simple_query(&pk).await?;
    match rows.first().and_then(|r| r.first().cloned().flatten()) {
        Some(key)
            if columns
                .columns
                .iter()
                .filter(|c| c.column.name == key)
                .count()
                == 1 =>
        {
            key_parts(client, sql, columns, &key, n).await
        }
        _ => {
            let leaves = leaves(client, &qualified).await?;
            let cols = column_list(columns);
            Ok(leaves
                .iter()
                .enumerate()
                .map(|(i, leaf)| Part {
                    part: i,
                    relation: Some(leaf.name.clone()),
                    range: PartRange::All,
                    sql: format!("SELECT {cols} FROM ONLY {}", leaf.name),
                    estimated_bytes: Some(leaf.bytes),
                    estimated_rows: leaf.rows_in(leaf.bytes.div_ceil(leaf.block_size)),
                })
                .collect())
        }
    }
}

fn whole(sql: &str) -> Part {
    Part {
        part: 0,
        relation: None,
        range: PartRange::All,
        sql: sql.to_owned(),
        estimated_bytes: None,
        estimated_rows: None,
    }
}

/// The result columns as a select list, quoted.
fn column_list(columns: &DescribedSource) -> String {
    columns
        .columns
        .iter()
        .map(|c| quote_ident(&c.column.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A relation the source reads from, with its size on disk.
struct Leaf {
    /// `"schema"."name"`.
    name: String,
    /// `relkind`.
    kind: String,
    bytes: u64,
    block_size: u64,
    /// `reltuples`, when the statistics know it.
    tuples: Option<u64>,
    /// `relpages`, the pages `reltuples` was counted over.
    pages: u64,
}

impl Leaf {
    /// Rows in `blocks` of its blocks, estimated from the statistics' rows per page.
    fn rows_in(&self, blocks: u64) -> Option<u64> {
        let tuples = self.tuples?;
        if self.pages == 0 {
            return (tuples == 0).then_some(0);
        }
        Some((u128::from(tuples) * u128::from(blocks) / u128::from(self.pages)) as u64)
    }
}

/// The relation and, for a partitioned table or an inheritance parent, every relation below
/// it, in creation order; partitioned tables themselves (which hold no rows) left out.
async fn leaves(client: &mut Client, qualified: &str) -> Result<Vec<Leaf>> {
    let sql = format!(
        "WITH RECURSIVE tree(oid) AS (
    SELECT {}::pg_catalog.regclass::pg_catalog.oid
  UNION
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.oid
)
SELECT n.nspname::text, c.relname::text, c.relkind::text,
       pg_catalog.pg_relation_size(c.oid)::text, pg_catalog.current_setting('block_size'),
       c.reltuples::bigint::text, c.relpages::text
FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind <> 'p'
ORDER BY c.oid",
        quote_literal(qualified)
    );
    let rows = client.connection().simple_query(&sql).await?;
    rows.iter()
        .map(|r| {
            let get = |i: usize| {
                r.get(i).cloned().flatten().ok_or_else(|| {
                    Error::unexpected(format!(
                        "unexpected answer to pgarrow's relation query: {r:?}"
                    ))
                })
            };
            let num = |i: usize| {
                get(i)?.parse::<u64>().map_err(|_| {
                    Error::unexpected(format!(
                        "unexpected answer to pgarrow's relation query: {r:?}"
                    ))
                })
            };
            Ok(Leaf {
                name: format!("{}.{}", quote_ident(&get(0)?), quote_ident(&get(1)?)),
                kind: get(2)?,
                bytes: num(3)?,
                block_size: num(4)?.max(1),
                // -1 (PostgreSQL 14+) when never vacuumed or analyzed: unknown.
                tuples: get(5)?.parse::<u64>().ok(),
                pages: num(6)?,
            })
        })
        .collect()
}

/// Block ranges of every leaf, about `total / n` blocks each, the last range of each leaf open
/// so that it also takes blocks added after its size was read.
async fn block_parts(
    client: &mut Client,
    qualified: &str,
    columns: &DescribedSource,
    partitions: &PartitionOptions,
) -> Result<Vec<Part>> {
    let leaves = leaves(client, qualified).await?;
    let cols = column_list(columns);
    let blocks = |l: &Leaf| l.bytes.div_ceil(l.block_size);
    let with_blocks = || leaves.iter().filter(|l| has_blocks(&l.kind));
    let total: u64 = with_blocks().map(blocks).sum();
    let n = partitions.planned_parts(Some(with_blocks().map(|l| l.bytes).sum()));
    let target = total.div_ceil(n as u64).max(1);
    let mut parts = Vec::new();
    for leaf in &leaves {
        let base = format!("SELECT {cols} FROM ONLY {}", leaf.name);
        if !has_blocks(&leaf.kind) {
            // A foreign table or a view below the parent: read whole.
            parts.push(Part {
                part: parts.len(),
                relation: Some(leaf.name.clone()),
                range: PartRange::All,
                sql: base,
                estimated_bytes: None,
                estimated_rows: None,
            });
            continue;
        }
        let b = blocks(leaf);
        let ranges = b.div_ceil(target).max(1);
        let step = b.div_ceil(ranges).max(1);
        for r in 0..ranges {
            let start = r * step;
            let end = (r + 1 < ranges).then_some((r + 1) * step);
            let mut sql = format!("{base} WHERE ctid >= '({start},0)'::pg_catalog.tid");
            if let Some(end) = end {
                sql.push_str(&format!(" AND ctid < '({end},0)'::pg_catalog.tid"));
            }
            parts.push(Part {
                part: parts.len(),
                relation: Some(leaf.name.clone()),
                range: PartRange::Blocks { start, end },
                sql,
                estimated_bytes: Some(end.unwrap_or(b).saturating_sub(start) * leaf.block_size),
                estimated_rows: leaf.rows_in(end.unwrap_or(b).saturating_sub(start)),
            });
        }
    }
    if parts.is_empty() {
        // A partitioned table without partitions.
        parts.push(whole(&format!("SELECT {cols} FROM {qualified}")));
    }
    Ok(parts)
}

/// Relation kinds with blocks and ctids: tables, materialized views.
fn has_blocks(relkind: &str) -> bool {
    matches!(relkind, "r" | "m")
}

/// How a key column's values are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    Integer,
    Date,
    Timestamp,
}

/// Key ranges of the result column `by`: `n` ranges with bounds from the column's `pg_stats`
/// histogram when it comes straight from a table that was analyzed, else evenly between its
/// finite MIN and MAX. NULLs go with the first range.
async fn key_parts(
    client: &mut Client,
    sql: &str,
    columns: &DescribedSource,
    by: &str,
    n: usize,
) -> Result<Vec<Part>> {
    let matching: Vec<usize> = (0..columns.columns.len())
        .filter(|&i| columns.columns[i].column.name == by)
        .collect();
    let index = match matching.as_slice() {
        [i] => *i,
        [] => {
            let names: Vec<&str> = columns
                .columns
                .iter()
                .map(|c| c.column.name.as_str())
                .collect();
            return Err(Error::usage(format!(
                "--partition-by {by}: the result has no column of that name (its columns: {}); \
                 names are exact",
                names.join(", ")
            )));
        }
        _ => {
            return Err(Error::usage(format!(
                "--partition-by {by}: the result has {} columns of that name; rename them",
                matching.len()
            )));
        }
    };
    let column = &columns.columns[index].column;
    let class = match column.oid {
        oid::INT2 | oid::INT4 | oid::INT8 => KeyClass::Integer,
        oid::DATE => KeyClass::Date,
        oid::TIMESTAMP | oid::TIMESTAMPTZ => KeyClass::Timestamp,
        _ => {
            return Err(Error::usage(format!(
                "--partition-by {by}: a {} column cannot be split into ranges; use an integer, \
                 date or timestamp column",
                column.type_name
            )));
        }
    };
    let type_name = column.type_name.clone();
    let quoted = quote_ident(by);
    let mut bounds = histogram(client, sql, index).await?;
    if bounds.len() < 2 {
        bounds = even_bounds(client, sql, &quoted, class, n).await?;
    } else {
        bounds = pick(&bounds, n);
    }
    bounds.dedup();
    if bounds.is_empty() {
        return Ok(vec![whole(sql)]);
    }
    let lit = |v: &str| format!("CAST({} AS {type_name})", quote_literal(v));
    let mut parts = Vec::new();
    for i in 0..=bounds.len() {
        let from = i.checked_sub(1).map(|j| bounds[j].clone());
        let to = bounds.get(i).cloned();
        let condition = match (&from, &to) {
            (None, Some(t)) => format!("({quoted} < {} OR {quoted} IS NULL)", lit(t)),
            (Some(f), Some(t)) => format!("{quoted} >= {} AND {quoted} < {}", lit(f), lit(t)),
            (Some(f), None) => format!("{quoted} >= {}", lit(f)),
            (None, None) => unreachable!("bounds is not empty"),
        };
        parts.push(Part {
            part: i,
            relation: None,
            range: PartRange::Keys {
                column: by.to_owned(),
                nulls: from.is_none(),
                from,
                to,
            },
            sql: format!("SELECT * FROM ({sql}\n) AS _pgarrow_part WHERE {condition}"),
            estimated_bytes: None,
            estimated_rows: None,
        });
    }
    Ok(parts)
}

/// The `pg_stats` histogram bounds of result column `index`, when it is a table's column.
async fn histogram(client: &mut Client, sql: &str, index: usize) -> Result<Vec<String>> {
    let described = client.connection().describe(sql).await?;
    let Some(field) = described.columns.as_ref().and_then(|c| c.get(index)) else {
        return Ok(Vec::new());
    };
    if field.table_oid == 0 || field.column_id <= 0 {
        return Ok(Vec::new());
    }
    let query = format!(
        "SELECT s.histogram_bounds::text FROM pg_catalog.pg_stats s
JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
WHERE c.oid = {} AND a.attnum = {} AND s.histogram_bounds IS NOT NULL
ORDER BY s.inherited DESC LIMIT 1",
        field.table_oid, field.column_id
    );
    let rows = client.connection().simple_query(&query).await?;
    Ok(rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .map(|text| parse_array_text(&text))
        .unwrap_or_default())
}

/// `n - 1` bounds spread evenly over the column's finite values (±infinity fall in the first
/// and last ranges), computed by the server in the column's own type.
async fn even_bounds(
    client: &mut Client,
    sql: &str,
    quoted: &str,
    class: KeyClass,
    n: usize,
) -> Result<Vec<String>> {
    if n < 2 {
        return Ok(Vec::new());
    }
    let (finite, step) = match class {
        KeyClass::Integer => (
            "true",
            format!(
                "(lo::pg_catalog.numeric + pg_catalog.floor((hi::pg_catalog.numeric - \
                 lo::pg_catalog.numeric) * i / {n}))::pg_catalog.int8::text"
            ),
        ),
        KeyClass::Date => (
            "pg_catalog.isfinite(v)",
            format!("(lo + ((hi - lo)::pg_catalog.int8 * i / {n})::pg_catalog.int4)::text"),
        ),
        KeyClass::Timestamp => (
            "pg_catalog.isfinite(v)",
            format!("(lo + (hi - lo) * (i::pg_catalog.float8 / {n}))::text"),
        ),
    };
    let query = format!(
        "SELECT DISTINCT {step}, i FROM (
    SELECT pg_catalog.min(v) FILTER (WHERE {finite}) AS lo,
           pg_catalog.max(v) FILTER (WHERE {finite}) AS hi
    FROM (SELECT {quoted} AS v FROM ({sql}\n) AS _pgarrow_s) AS k
) AS m, pg_catalog.generate_series(1, {}) AS i
WHERE lo IS NOT NULL AND lo < hi ORDER BY i",
        n - 1
    );
    let rows = client.connection().simple_query(&query).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

/// `n - 1` of `bounds` (sorted), evenly spaced, without their ends.
fn pick(bounds: &[String], n: usize) -> Vec<String> {
    let last = bounds.len() - 1;
    (1..n)
        .map(|k| bounds[(k * last + n / 2) / n].clone())
        .collect()
}

/// The elements of a one-dimensional array's text form (`{1,2}`, `{"a b",c}`).
fn parse_array_text(text: &str) -> Vec<String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut chars = inner.chars();
    let mut item = String::new();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => item.extend(chars.next()),
            ',' if !quoted => out.push(std::mem::take(&mut item)),
            c => item.push(c),
        }
    }
    if !inner.is_empty() {
        out.push(item);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_text() {
        assert_eq!(parse_array_text("{1,5,9}"), ["1", "5", "9"]);
        assert_eq!(
            parse_array_text(r#"{"2024-01-01 00:00:00","a\"b",c}"#),
            ["2024-01-01 00:00:00", "a\"b", "c"]
        );
        assert!(parse_array_text("{}").is_empty());
    }

    #[test]
    fn picking_bounds() {
        let b: Vec<String> = (0..=100).map(|i| i.to_string()).collect();
        assert_eq!(pick(&b, 4), ["25", "50", "75"]);
        assert_eq!(pick(&b, 1), Vec::<String>::new());
        let two: Vec<String> = vec!["1".into(), "9".into()];
        assert_eq!(pick(&two, 4), ["1", "9", "9"]);
    }
}
