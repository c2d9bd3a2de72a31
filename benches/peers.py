"""One export or load by a Python peer, timed from inside: run by benches/e2e.py with the venv's
python.

    python peers.py TOOL URL TABLE [OUTPUT]      # an export tool
    python peers.py TOOL URL TABLE INPUT         # a load tool (`e2e.py --load`)

An export tool exports `SELECT * FROM TABLE` (to OUTPUT where it writes a file); a load tool
reads the Parquet file INPUT and appends its rows to the existing table TABLE, committed. Both
print one JSON line: {"rows": N, "seconds": S, "cpu": C} where S is the wall time and C the
user+system CPU time of this process (all threads) from connecting (a load: from opening the
Parquet file) to the last row (a load: the commit), without the interpreter's start and the
imports (e2e.py also records the whole process). N is the row count the tool reports, or null
where it reports none (e2e.py counts the table's rows after a load anyway).

    python peers.py --versions        # JSON: the version of each peer package, or why not

TOOL is one of:
  pgarrow-arrow      pgarrow's Python package (pgarrow-engine): pgarrow.read_arrow(), a
                     pyarrow Table
  pgarrow-batches    pgarrow.read_batches(): a streaming RecordBatchReader, batches dropped
  psycopg-copy       psycopg 3 reads COPY (...) TO STDOUT (FORMAT binary) and drops the bytes
  connectorx-arrow   connectorx.read_sql(return_type="arrow"): a pyarrow Table
  adbc-arrow         ADBC PostgreSQL driver, fetch_record_batch(): batches, dropped
  pgarrow-adbc-arrow pgarrow's ADBC driver through the same driver manager, fetch_record_batch()
  adbc-parquet       ADBC PostgreSQL driver batches -> pyarrow.parquet.ParquetWriter (zstd 3)
  duckdb-arrow       DuckDB + postgres extension: ATTACH ... (TYPE postgres), then
                     SELECT * FROM pg.public.TABLE as Arrow batches, dropped
  duckdb-parquet     the same into COPY (...) TO 'file' (FORMAT parquet, zstd 3)

Load tools (INPUT: a Parquet file, read batch by batch with pyarrow.parquet.ParquetFile):
  adbc-ingest        ADBC PostgreSQL driver: cursor.adbc_ingest(TABLE, reader, mode="append"),
                     then commit
  pgarrow-adbc-ingest  pgarrow's ADBC driver: the same adbc_ingest call
  pgpq-psycopg       pgpq's ArrowToPostgresBinaryEncoder encodes each batch to binary COPY,
                     written through psycopg 3's cursor.copy("COPY TABLE FROM STDIN (FORMAT
                     binary)"), then commit

DuckDB reads a table its usual way: binary COPY of ctid ranges, possibly over several
connections in parallel (its defaults); the others run one query on one connection.
"""

import importlib.metadata
import json
import os
import resource
import shutil
import sys
import time
import urllib.parse

PACKAGES = [
    "pgarrow-engine",
    "psycopg",
    "psycopg-binary",
    "connectorx",
    "adbc-driver-postgresql",
    "adbc-driver-manager",
    "pyarrow",
    "duckdb",
    "duckdb-extension-postgres",
    "pgpq",
]


def versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def libpq_string(url):
    """postgresql://user@host:port/db -> 'host=... port=... user=... dbname=...'."""
    u = urllib.parse.urlsplit(url)
    parts = {
        "host": u.hostname,
        "port": u.port,
        "user": urllib.parse.unquote(u.username or ""),
        "dbname": urllib.parse.unquote(u.path.lstrip("/")),
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


def psycopg_copy(url, query, _out):
    import psycopg

    n = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            for data in copy:
                n += len(data)
        rows = cur.rowcount
    return rows, {"copy_bytes": n}


def pgarrow_arrow(url, query, _out):
    import pgarrow

    table = pgarrow.read_arrow(url, query)
    return table.num_rows, {}


def pgarrow_batches(url, query, _out):
    import pgarrow

    rows = 0
    for batch in pgarrow.read_batches(url, query):
        rows += batch.num_rows
    return rows, {}


def connectorx_arrow(url, query, _out):
    import connectorx

    table = connectorx.read_sql(url, query, return_type="arrow")
    return table.num_rows, {}


def adbc_connect(url, pgarrow_driver=False):
    """A DBAPI connection through the ADBC driver manager: the official PostgreSQL driver, or
    pgarrow's."""
    if pgarrow_driver:
        import pgarrow.adbc

        return pgarrow.adbc.connect(url)
    import adbc_driver_postgresql.dbapi as adbc

    return adbc.connect(url)


def adbc_batches(url, query, pgarrow_driver=False):
    conn = adbc_connect(url, pgarrow_driver)
    cur = conn.cursor()
    cur.execute(query)
    return conn, cur, cur.fetch_record_batch()


def pgarrow_adbc_arrow(url, query, out):
    return adbc_arrow(url, query, out, pgarrow_driver=True)


def adbc_arrow(url, query, _out, pgarrow_driver=False):
    conn, cur, reader = adbc_batches(url, query, pgarrow_driver)
    rows = 0
    for batch in reader:
        rows += batch.num_rows
    cur.close()
    conn.close()
    return rows, {}


def adbc_parquet(url, query, out):
    import pyarrow.parquet as pq

    conn, cur, reader = adbc_batches(url, query)
    rows = 0
    with pq.ParquetWriter(out, reader.schema, compression="zstd", compression_level=3) as w:
        for batch in reader:
            rows += batch.num_rows
            w.write_batch(batch)
    cur.close()
    conn.close()
    return rows, {}


def duckdb_load():
    """An in-memory DuckDB with the postgres extension loaded (before the timer starts, like an
    import)."""
    import duckdb
    import duckdb_extension_postgres

    # `INSTALL postgres` needs the internet; the extension ships in this Python package and
    # loads from a file named after it.
    src = os.path.join(
        os.path.dirname(duckdb_extension_postgres.__file__),
        "extensions",
        f"v{duckdb.__version__}",
        "postgres.duckdb_extension",
    )
    ext_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "venv", "duckdb-ext")
    os.makedirs(ext_dir, exist_ok=True)
    ext = os.path.join(ext_dir, "postgres_scanner.duckdb_extension")
    if not os.path.exists(ext):
        shutil.copyfile(src, ext)
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    return con


def duckdb_attach(con, url):
    con.execute(f"ATTACH '{libpq_string(url)}' AS pg (TYPE postgres, READ_ONLY)")


def duckdb_arrow(url, table, _out, con):
    duckdb_attach(con, url)
    result = con.execute(f'SELECT * FROM pg.public."{table}"')
    if hasattr(result, "to_arrow_reader"):
        reader = result.to_arrow_reader()
    else:
        reader = result.fetch_record_batch()
    rows = 0
    for batch in reader:
        rows += batch.num_rows
    return rows, {}


def duckdb_parquet(url, table, out, con):
    duckdb_attach(con, url)
    target = out.replace("'", "''")
    res = con.execute(
        f'COPY (SELECT * FROM pg.public."{table}") TO \'{target}\' '
        "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3)"
    ).fetchall()
    return int(res[0][0]), {}


def duckdb_partitioned(url, table, out, con):
    """DuckDB's own Hive-partitioned write of lineitem by day (`COPY ... PARTITION_BY`), the
    day as a column of its own as DuckDB needs (its PARTITION_BY takes no expressions)."""
    duckdb_attach(con, url)
    target = out.replace("'", "''")
    res = con.execute(
        f'COPY (SELECT *, l_shipdate AS l_shipdate_day FROM pg.public."{table}") TO \'{target}\' '
        "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3, PARTITION_BY (l_shipdate_day))"
    ).fetchall()
    return int(res[0][0]), {}


def duckdb_ducklake(url, table, out, con):
    """DuckDB's postgres extension reading the table, written into a DuckLake table by its
    ducklake extension (catalog and data path in `out`: `URL|DIR`), replacing it each run."""
    import duckdb
    import duckdb_extension_ducklake

    catalog, data = out.split("|", 1)
    con.execute(
        "LOAD '"
        + os.path.join(os.path.dirname(duckdb_extension_ducklake.__file__), "extensions",
                       f"v{duckdb.__version__}", "ducklake.duckdb_extension")
        + "'"
    )
    duckdb_attach(con, url)
    con.execute(f"ATTACH 'ducklake:postgres:{libpq_string(catalog)}' AS lake (DATA_PATH '{data}/')")
    res = con.execute(
        f'CREATE OR REPLACE TABLE lake.main."{table}" AS SELECT * FROM pg.public."{table}"'
    ).fetchall()
    rows = con.execute(f'SELECT count(*) FROM lake.main."{table}"').fetchone()[0]
    del res
    return int(rows), {}


def dlt_delta(url, table, out, con=None):
    """dlt's sql_table (pyarrow backend) into its filesystem destination as a Delta table
    (deltalake writes it) under `out`, replacing it each run."""
    import dlt
    from dlt.sources.sql_database import sql_table

    del con
    credentials = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    source = sql_table(credentials=credentials, table=table, backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="bench_lake_delta",
        destination=dlt.destinations.filesystem(bucket_url=os.path.join(out, "data")),
        dataset_name="bench",
        pipelines_dir=os.path.join(out, "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet", table_format="delta", write_disposition="replace")
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)
    return int(rows), {}


def dlt_iceberg(url, table, out, con=None):
    """dlt's sql_table (pyarrow backend) into its filesystem destination as an Iceberg table
    (pyiceberg writes it) under `out`, replacing it each run."""
    import dlt
    from dlt.sources.sql_database import sql_table

    del con
    credentials = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    source = sql_table(credentials=credentials, table=table, backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="bench_lake_iceberg",
        destination=dlt.destinations.filesystem(bucket_url=os.path.join(out, "data")),
        dataset_name="bench",
        pipelines_dir=os.path.join(out, "pipelines"),
    )
    pipeline.run(source, loader_file_format="parquet", table_format="iceberg", write_disposition="replace")
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(table, 0)
    return int(rows), {}


def pyiceberg_adbc(url, query, out, con=None):
    """The query's rows read by the ADBC PostgreSQL driver (one Arrow table), then overwritten
    into the Iceberg table bench.lineitem_pyiceberg of the SQL catalog in a PostgreSQL
    database by pyiceberg (`out`: `CATALOG_URL|WAREHOUSE`), replacing its rows each run."""
    from pyiceberg.catalog.sql import SqlCatalog

    del con
    catalog_url, warehouse = out.split("|", 1)
    conn = adbc_connect(url)
    cur = conn.cursor()
    cur.execute(query)
    data = cur.fetch_arrow_table()
    cur.close()
    conn.close()
    # The driver gives numeric as an opaque extension type, which pyiceberg refuses: its
    # storage (text), as a user would pass it.
    import pyarrow as pa

    columns = [c.combine_chunks().storage if isinstance(c.type, pa.BaseExtensionType) else c for c in data.columns]
    data = pa.table(columns, names=data.column_names)
    catalog = SqlCatalog(
        "default", uri=catalog_url.replace("postgresql://", "postgresql+psycopg://", 1), warehouse=warehouse
    )
    catalog.create_namespace_if_not_exists("bench")
    ident = "bench.lineitem_pyiceberg"
    if catalog.table_exists(ident):
        catalog.load_table(ident).overwrite(data)
    else:
        catalog.create_table(ident, schema=data.schema).append(data)
    return data.num_rows, {}


def parquet_reader(path):
    """The Parquet file as a stream of record batches (pyarrow's default 64Ki-row batches)."""
    import pyarrow
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    return pyarrow.RecordBatchReader.from_batches(pf.schema_arrow, pf.iter_batches())


def pgarrow_adbc_ingest(url, table, path):
    return adbc_ingest(url, table, path, pgarrow_driver=True)


def adbc_ingest(url, table, path, pgarrow_driver=False):
    reader = parquet_reader(path)
    conn = adbc_connect(url, pgarrow_driver)
    cur = conn.cursor()
    rows = cur.adbc_ingest(table, reader, mode="append")
    conn.commit()
    cur.close()
    conn.close()
    return (rows if rows is not None and rows >= 0 else None), {}


def pgpq_psycopg(url, table, path):
    import psycopg
    from pgpq import ArrowToPostgresBinaryEncoder

    reader = parquet_reader(path)
    encoder = ArrowToPostgresBinaryEncoder(reader.schema)
    n = 0
    # Leaving the connection's block commits.
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f'COPY "{table}" FROM STDIN (FORMAT binary)') as copy:
            copy.write(encoder.write_header())
            for batch in reader:
                data = encoder.write_batch(batch)
                n += len(data)
                copy.write(data)
            copy.write(encoder.finish())
        rows = cur.rowcount
    return (rows if rows >= 0 else None), {"copy_bytes": n}


TOOLS = {
    "psycopg-copy": psycopg_copy,
    "pgarrow-arrow": pgarrow_arrow,
    "pgarrow-batches": pgarrow_batches,
    "connectorx-arrow": connectorx_arrow,
    "adbc-arrow": adbc_arrow,
    "adbc-parquet": adbc_parquet,
    "duckdb-arrow": duckdb_arrow,
    "duckdb-parquet": duckdb_parquet,
    "duckdb-partitioned": duckdb_partitioned,
    "duckdb-ducklake": duckdb_ducklake,
    "dlt-delta": dlt_delta,
    "dlt-iceberg": dlt_iceberg,
    "pyiceberg-adbc": pyiceberg_adbc,
    "adbc-ingest": adbc_ingest,
    "pgpq-psycopg": pgpq_psycopg,
    "pgarrow-adbc-arrow": pgarrow_adbc_arrow,
    "pgarrow-adbc-ingest": pgarrow_adbc_ingest,
}

# The tools that load a file into TABLE (their fourth argument is the input).
LOADERS = {"adbc-ingest", "pgpq-psycopg", "pgarrow-adbc-ingest"}

IMPORTS = {
    "psycopg-copy": ["psycopg"],
    "pgarrow-arrow": ["pgarrow", "pyarrow"],
    "pgarrow-batches": ["pgarrow", "pyarrow"],
    "connectorx-arrow": ["connectorx", "pyarrow"],
    "adbc-arrow": ["adbc_driver_postgresql.dbapi", "pyarrow"],
    "adbc-parquet": ["adbc_driver_postgresql.dbapi", "pyarrow.parquet"],
    "duckdb-arrow": ["duckdb", "duckdb_extension_postgres", "pyarrow"],
    "duckdb-parquet": ["duckdb", "duckdb_extension_postgres"],
    "duckdb-partitioned": ["duckdb", "duckdb_extension_postgres"],
    "duckdb-ducklake": ["duckdb", "duckdb_extension_postgres", "duckdb_extension_ducklake"],
    "dlt-delta": ["dlt", "dlt.sources.sql_database", "deltalake", "psycopg2"],
    "dlt-iceberg": ["dlt", "dlt.sources.sql_database", "pyiceberg", "psycopg2"],
    "pyiceberg-adbc": ["pyiceberg.catalog.sql", "adbc_driver_postgresql.dbapi", "psycopg"],
    "adbc-ingest": ["adbc_driver_postgresql.dbapi", "pyarrow.parquet"],
    "pgpq-psycopg": ["psycopg", "pgpq", "pyarrow.parquet"],
    "pgarrow-adbc-arrow": ["pgarrow.adbc", "adbc_driver_manager.dbapi", "pyarrow"],
    "pgarrow-adbc-ingest": ["pgarrow.adbc", "adbc_driver_manager.dbapi", "pyarrow.parquet"],
}


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv):
    if argv[1:] == ["--versions"]:
        print(json.dumps(versions()))
        return 0
    tool, url, table = argv[1], argv[2], argv[3]
    out = argv[4] if len(argv) > 4 else os.devnull
    # DuckDB and dlt read the table themselves and the loaders write into it; the others run
    # this query.
    named = tool.startswith(("duckdb", "dlt")) or tool in LOADERS
    target = table if named else f'SELECT * FROM "{table}"'
    # Imports first: they are not part of the export.
    for module in IMPORTS[tool]:
        __import__(module)
    args = (url, target, out)
    if tool.startswith("duckdb"):
        args += (duckdb_load(),)
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    rows, extra = TOOLS[tool](*args)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print(json.dumps({"rows": rows, "seconds": wall, "cpu": cpu, **extra}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
