//! Deterministic sample data, generated on the server with `generate_series` (nothing to
//! download): the table pgarrow's demo exports.
//!
//! ```no_run
//! use pgarrow_scratch::{Cluster, sample};
//! let pg = Cluster::start()?;
//! pg.psql("postgres", &sample::lineitem_sql("lineitem", 10_000))?;
//! let columns = pg.psql("postgres", "SELECT count(*) FROM information_schema.columns \
//!                                    WHERE table_name = 'lineitem'")?;
//! assert_eq!(columns.trim(), sample::LINEITEM_COLUMNS.len().to_string());
//! # Ok::<(), pgarrow_scratch::Error>(())
//! ```

/// Columns of the lineitem-shaped table, in order.
pub const LINEITEM_COLUMNS: [&str; 16] = [
    "l_orderkey",
    "l_partkey",
    "l_suppkey",
    "l_linenumber",
    "l_quantity",
    "l_extendedprice",
    "l_discount",
    "l_tax",
    "l_returnflag",
    "l_linestatus",
    "l_shipdate",
    "l_commitdate",
    "l_receiptdate",
    "l_shipinstruct",
    "l_shipmode",
    "l_comment",
];

/// SQL that creates table `name` shaped like TPC-H's `lineitem` (bigint, integers,
/// numeric(15,2), char(1), dates, char(25), char(10), varchar(44)) and fills it with `rows`
/// deterministic rows: the same `rows` always give the same table.
///
/// `name` is used as given: pass a plain lower-case identifier.
pub fn lineitem_sql(name: &str, rows: u64) -> String {
    format!(
        "CREATE TABLE {name} (
    l_orderkey bigint NOT NULL,
    l_partkey integer NOT NULL,
    l_suppkey integer NOT NULL,
    l_linenumber integer NOT NULL,
    l_quantity numeric(15,2) NOT NULL,
    l_extendedprice numeric(15,2) NOT NULL,
    l_discount numeric(15,2) NOT NULL,
    l_tax numeric(15,2) NOT NULL,
    l_returnflag char(1) NOT NULL,
    l_linestatus char(1) NOT NULL,
    l_shipdate date NOT NULL,
    l_commitdate date NOT NULL,
    l_receiptdate date NOT NULL,
    l_shipinstruct char(25) NOT NULL,
    l_shipmode char(10) NOT NULL,
    l_comment varchar(44) NOT NULL
);
INSERT INTO {name}
SELECT g / 4 + 1,
       (g * 7919) % 200000 + 1,
       (g * 104729) % 10000 + 1,
       g % 4 + 1,
       g % 50 + 1,
       round((g % 50 + 1) * (900 + ((g * 7919) % 200000) / 100.0), 2),
       (g % 11) / 100.0,
       (g % 9) / 100.0,
       (ARRAY['R', 'A', 'N'])[g % 3 + 1],
       (ARRAY['O', 'F'])[g % 2 + 1],
       DATE '1992-01-02' + (g % 2526)::int,
       DATE '1992-01-31' + (g % 2466)::int,
       DATE '1992-01-03' + ((g + 17) % 2556)::int,
       (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[g % 4 + 1],
       (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[g % 7 + 1],
       substr(md5(g::text) || md5((g + 1)::text), 1, (10 + g % 34)::int)
FROM generate_series(0::bigint, {rows}::bigint - 1) AS g;
ANALYZE {name};
"
    )
}
