# pgarrow tasks. `just` installs with `cargo install just` or `apt-get install just`.

default:
    @just --list

# Start a scratch PostgreSQL, load a 1M-row lineitem table, export it to demo.parquet.
demo rows="1000000":
    cargo run --release -p pgarrow-cli -- demo --rows {{rows}}

# Install what the tests need (system packages, target/venv, Azurite, other server versions),
# then run every test: the README's test command.
test *args:
    bash scripts/test-all.sh {{args}}

# Install what the tests need, without running them; then `cargo test` finds it all.
test-setup:
    bash scripts/test-all.sh --setup-only

# Formatting, layering, lints and documentation, as CI runs them.
lint:
    cargo fmt --all -- --check
    python3 scripts/depcheck.py
    bash scripts/python-lint.sh
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Build the book (docs/, mdBook) into target/book; its examples are checked by `cargo test`.
# mdbook: `cargo install mdbook --locked --version 0.5.4` (the version .ci/run pins).
book:
    mdbook build docs

# Everything CI does.
ci:
    bash .ci/run

# Rebuild testdata/copy/*.bin and *.columns from the .sql beside them, with a scratch cluster.
regen-fixtures:
    cargo run -p pgarrow-testkit --example regen_fixtures

# Install the benchmark peers: Python venv (benches/venv), pg2parquet (benches/tools).
bench-setup:
    bash benches/setup.sh

# Build what the end-to-end benchmarks run: the release pgarrow and the testkit's `serve`.
bench-build:
    cargo build --release -p pgarrow-cli
    cargo build --release -p pgarrow-testkit --example serve

# End-to-end benchmark: pgarrow vs raw COPY and the peers, median of `reps` rounds -> benches/RESULTS.md.
bench rows="6000000" wide_rows="2000000" reps="3": bench-setup bench-build
    python3 benches/e2e.py --rows {{rows}} --wide-rows {{wide_rows}} --reps {{reps}}
    python3 benches/e2e.py --object-store --rows 2000000 --reps {{reps}}
    python3 benches/e2e.py --layout --rows 2000000 --reps {{reps}}

# Layout benchmark: lineitem (`rows`) in Hive-style day partitions, rolled files and bloom
# filters, against the one-file export and DuckDB's partitioned COPY -> benches/RESULTS.md.
bench-layout rows="2000000" reps="3": bench-setup bench-build
    python3 benches/e2e.py --layout --rows {{rows}} --reps {{reps}}

# Lake tables: lineitem (`rows`) into DuckLake, Delta and Iceberg tables, against the one-file
# export, DuckDB writing the DuckLake table, dlt writing Delta and Iceberg, and pyiceberg over
# the ADBC driver -> benches/RESULTS.md.
bench-lake rows="2000000" reps="3": bench-setup bench-build
    python3 benches/e2e.py --lake --rows {{rows}} --reps {{reps}}

# Object stores: lineitem (`rows`) to Parquet on the local disk vs moto's S3 server, one
# connection and two, and import from each -> benches/RESULTS.md.
bench-s3 rows="2000000" reps="3": bench-setup bench-build
    python3 benches/e2e.py --object-store --rows {{rows}} --reps {{reps}}

# Engines: pgarrow's Spark/Ray/Dask readers vs Spark's JDBC source, ray.data.read_sql and
# dd.read_sql_table on lineitem (`rows`), two partitions, scan and Parquet -> benches/RESULTS.md.
bench-engines rows="2000000" reps="3": bench-setup bench-build
    python3 benches/engines.py --rows {{rows}} --reps {{reps}}

# ADBC: lineitem (`rows`) read and ingested through the ADBC driver manager, pgarrow's driver vs
# the official PostgreSQL driver (and pgarrow's own Python read) -> benches/RESULTS.md.
bench-adbc rows="2000000" reps="3": bench-setup bench-build
    python3 benches/e2e.py --rows {{rows}} --wide-rows 0 --reps {{reps}} --tools adbc read_batches --section adbc-read --heading "ADBC drivers: reading (\`just bench-adbc\`)"
    python3 benches/e2e.py --load --rows {{rows}} --reps {{reps}} --tools adbc --section adbc-load --heading "ADBC drivers: ingest (\`just bench-adbc\`)"

# Incremental runs: lineitem (`rows`) with an indexed cursor column, 1% of it updated per round;
# the next `--incremental-by` run against a full export -> benches/RESULTS.md.
bench-incremental rows="6000000" reps="3": bench-setup bench-build
    python3 benches/incremental.py --rows {{rows}} --reps {{reps}}

# `pgarrow changes` against pg_recvlogical: every row of lineitem updated, streamed to Parquet.
bench-changes rows="1000000" reps="3": bench-build
    python3 benches/changes.py --rows {{rows}} --reps {{reps}}

# The mirror: 1M updated rows through `pgarrow mirror` into DuckLake, Delta and Iceberg vs
# `pgarrow changes` to Parquet of the same changes, and the freshness at a steady 10,000
# changes/s -> benches/RESULTS.md.
bench-mirror rows="1000000" reps="3": bench-build
    python3 benches/mirror.py --rows {{rows}} --reps {{reps}}
    python3 benches/mirror_tables.py --reps {{reps}}

# Ten tables written by one transaction stream, mirrored into DuckLake and Iceberg: the commit
# rounds that bring every table to one source point, and the freshness; `--baseline BIN` beside
# a build whose rounds commit table by table (8a9c1fe, say) -> benches/RESULTS.md.
bench-mirror-tables *args: bench-build
    python3 benches/mirror_tables.py {{args}}

# Iceberg's two catalogs: the mirror bench into the SQL catalog and into a REST catalog
# (Rustberg, `cargo install rustberg --version 0.3.0 --locked --no-default-features --features
# cli`), commit latency under load included -> benches/RESULTS.md.
bench-mirror-rest rows="1000000" reps="3": bench-build
    python3 benches/mirror.py --rows {{rows}} --reps {{reps}} --formats iceberg iceberg_rest

# The delete modes: 1% of lineitem's rows updated (spread over every file), mirrored with
# deletion vectors / delete files and with --deletes copy-on-write -> benches/RESULTS.md.
bench-mirror-deletes rows="1000000" reps="3" every="100": bench-build
    python3 benches/mirror.py --rows {{rows}} --reps {{reps}} --every {{every}} --copy-on-write --seconds 0

# A mirror's cost as its table grows: runs with no change, 0.1% changed, 10,000 rows and one
# transaction of 25% into tables of 1M, 8M and 32M rows (and a uuid and a two-column key at 8M),
# time and peak RSS under --memory-limit 256MiB -> benches/RESULTS.md.
bench-mirror-scale sizes="1000000 8000000 32000000": bench-build
    python3 benches/mirror_scale.py --sizes {{sizes}}

# The mirror bench with dlt's pg_replication beside it (SOURCES: `dlt init pg_replication filesystem`'s directory)
bench-mirror-dlt sources rows="1000000" reps="3": bench-build
    python3 benches/mirror.py --rows {{rows}} --reps {{reps}} --dlt {{sources}}

# Compaction: a mirrored Delta table (1M rows, 10 rounds of updates) compacted by `pgarrow lake
# compact` vs deltalake's optimize.compact() -> benches/RESULTS.md.
bench-compact rows="1000000" reps="3": bench-build
    python3 benches/compact.py --rows {{rows}} --reps {{reps}}

# Applying changes: 1M updated rows, `pgarrow changes` + `pgarrow apply` into another database
# vs a PostgreSQL subscription doing the same -> benches/RESULTS.md.
bench-apply rows="1000000" reps="3": bench-build
    python3 benches/apply.py --rows {{rows}} --reps {{reps}}

# Peak RSS of long Parquet exports (lineitem of `base` rows repeated up to `rows`).
bench-memory rows="50000000" base="2000000": bench-build
    python3 benches/e2e.py --memory --memory-rows {{rows}} --rows {{base}}

# Loading benchmark: lineitem (`rows`) from Parquet into PostgreSQL (pgarrow import, ADBC, pgpq)
# and PostgreSQL -> PostgreSQL, against the server reading its own COPY file -> benches/RESULTS.md.
bench-load rows="2000000" reps="3": bench-setup bench-build
    python3 benches/e2e.py --load --rows {{rows}} --reps {{reps}}

# Redraw benches/charts/*.svg from benches/RESULTS.md (the bench recipes redraw their own section's).
bench-charts:
    python3 benches/chart.py

# Decoder micro benchmarks on testdata/copy (criterion, no server); saved as baseline `baseline`.
bench-decode baseline="main":
    cargo bench -p pgarrow-decode --bench decode -- --save-baseline {{baseline}}

# What a change costs: builds refs A and B (WORKTREE = uncommitted files) and runs the decoder
# and changes benchmarks, the end-to-end exports (one connection and partitioned) and loads
# (import, copy) interleaved; prints B/A per case.
bench-compare a b *args:
    python3 benches/compare.py {{a}} {{b}} {{args}}
