"""dlt's Postgres replication into a Delta table (the peer of `pgarrow mirror --delta`), run
by benches/mirror.py with benches/venv's Python and dlt's `pg_replication` verified source
(`dlt init pg_replication filesystem` writes it; or a checkout of dlt-hub/verified-sources'
`sources` directory), whose directory is `SOURCES`:

    python dlt_mirror.py init SOURCES URL SLOT TABLE OUT    # slot, publication, initial load
    python dlt_mirror.py changes SOURCES URL SLOT TABLE OUT # the slot's changes, merged by key

Both write the Delta table of `TABLE` under OUT/data through the filesystem destination
(`table_format="delta"`, merged by the table's primary key, as the source sets it up); the
pipeline's state (the slot's last LSN) is kept under OUT/pipelines. Prints the rows the run
loaded."""

import os
import sys


def pipeline(out):
    import dlt

    return dlt.pipeline(
        pipeline_name="bench_mirror",
        destination=dlt.destinations.filesystem(bucket_url=os.path.join(out, "data")),
        dataset_name="bench",
        pipelines_dir=os.path.join(out, "pipelines"),
    )


def main():
    step, sources, url, slot, table, out = sys.argv[1:7]
    sys.path.insert(0, sources)
    from dlt.sources.credentials import ConnectionStringCredentials
    from pg_replication import replication_resource
    from pg_replication.helpers import init_replication

    credentials = ConnectionStringCredentials(url)
    p = pipeline(out)
    if step == "init":
        snapshot = init_replication(
            slot_name=slot,
            pub_name=slot,
            schema_name="public",
            table_names=table,
            credentials=credentials,
            persist_snapshots=True,
            reset=True,
        )
        p.run(snapshot, table_format="delta", loader_file_format="parquet")
    else:
        changes = replication_resource(slot, slot, credentials=credentials)
        p.run(changes, table_format="delta", loader_file_format="parquet")
    counts = p.last_trace.last_normalize_info.row_counts
    print(sum(n for name, n in counts.items() if not name.startswith("_dlt")))


if __name__ == "__main__":
    main()
