"""Opens pgarrow's files with each reader, one column at a time, and prints what each shows.

Usage: read_all.py '{"label": "path", ...}'

Prints one JSON object: {"versions": {reader: version}, "cells": {"reader|label|column": cell}}
where a cell is {"type": the type the reader reports, "values": [each value as str, or null]},
or {"error": the reader's error} when the reader cannot read the column, and "values_error"
instead of "values" when the column reads but its values cannot become Python objects.
Readers: pyarrow, pandas (default dtypes), pandas-arrow (pyarrow-backed dtypes: ArrowDtype),
polars and duckdb. The caller (readers.rs) decides what is expected.
"""

import json
import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq


def first_line(e):
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def is_parquet(path):
    return path.endswith(".parquet")


def arrow_table(path, column):
    if is_parquet(path):
        return pq.read_table(path, columns=[column])
    return feather.read_table(path, columns=[column])


def column_names(path):
    if is_parquet(path):
        return pq.read_schema(path).names
    return feather.read_table(path).schema.names


def pyarrow_cell(path, c):
    t = arrow_table(path, c)
    return str(t.schema.field(c).type), t.column(c).to_pylist


def pandas_cell(path, c, arrow_dtypes):
    if is_parquet(path):
        kw = {"dtype_backend": "pyarrow"} if arrow_dtypes else {}
        df = pd.read_parquet(path, columns=[c], **kw)
    else:
        kw = {"types_mapper": pd.ArrowDtype} if arrow_dtypes else {}
        df = arrow_table(path, c).to_pandas(**kw)
    s = df[c]
    if str(s.dtype) == "category":
        return "category" + json.dumps(list(s.cat.categories)), s.tolist
    return str(s.dtype), s.tolist


def polars_cell(path, c):
    if is_parquet(path):
        df = pl.read_parquet(path, columns=[c])
    else:
        df = pl.read_ipc(path, columns=[c])
    return str(df.schema[c]), df[c].to_list


def duckdb_cell(path, c):
    con = duckdb.connect()
    q = '"' + c.replace('"', '""') + '"'
    if is_parquet(path):
        source = f"read_parquet('{path}')"
    else:
        # DuckDB reads Arrow IPC through pyarrow.
        con.register("ipc", arrow_table(path, c))
        source = "ipc"
    t = str(con.sql(f"SELECT {q} FROM {source}").types[0])

    def values():
        return [r[0] for r in con.sql(f"SELECT {q}::VARCHAR FROM {source}").fetchall()]

    return t, values


def main():
    files = json.loads(sys.argv[1])
    readers = {
        "pyarrow": pyarrow_cell,
        "pandas": lambda p, c: pandas_cell(p, c, False),
        "pandas-arrow": lambda p, c: pandas_cell(p, c, True),
        "polars": polars_cell,
        "duckdb": duckdb_cell,
    }
    cells = {}
    for label, path in files.items():
        for c in column_names(path):
            for reader, read in readers.items():
                key = f"{reader}|{label}|{c}"
                try:
                    t, values = read(path, c)
                except BaseException as e:  # noqa: BLE001 - the reader's error is the result
                    cells[key] = {"error": first_line(e)}
                    continue
                cells[key] = {"type": t}
                try:
                    cells[key]["values"] = [None if v is None else str(v) for v in values()]
                except BaseException as e:  # noqa: BLE001
                    cells[key]["values_error"] = first_line(e)
        if is_parquet(path):
            meta = pq.read_schema(path).metadata or {}
            cells[f"pyarrow|{label}|(schema metadata)"] = {
                "type": "",
                "values": sorted(k.decode() for k in meta),
            }
    versions = {
        "pyarrow": pa.__version__,
        "pandas": pd.__version__,
        "polars": pl.__version__,
        "duckdb": duckdb.__version__,
    }
    print(json.dumps({"versions": versions, "cells": cells}))


main()
