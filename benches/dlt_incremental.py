"""One run of dlt's incremental load of `lineitem` by `updated_at` (the peer of
`pgarrow export --incremental-by`), run by benches/incremental.py with benches/venv's Python:
`python dlt_incremental.py URL OUT_DIR BACKEND`. Prints the rows it loaded."""

import os
import sys

import dlt
from dlt.sources.sql_database import sql_table


def main():
    url, out, backend = sys.argv[1:4]
    credentials = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    table = sql_table(
        credentials=credentials,
        table="lineitem",
        incremental=dlt.sources.incremental("updated_at"),
        backend=backend,
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_incremental_{backend}",
        destination=dlt.destinations.filesystem(bucket_url=os.path.join(out, "data")),
        dataset_name="bench",
        pipelines_dir=os.path.join(out, "pipelines"),
    )
    pipeline.run(table, loader_file_format="parquet")
    counts = pipeline.last_trace.last_normalize_info.row_counts
    print(counts.get("lineitem", 0))


if __name__ == "__main__":
    main()
