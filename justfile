# pgarrow tasks. `just` installs with `cargo install just` or `apt-get install just`.

default:
    @just --list

# Start a scratch PostgreSQL, load a 1M-row lineitem table, export it to demo.parquet.
demo rows="1000000":
    cargo run --release -p pgarrow-cli -- demo --rows {{rows}}

# Run every test (needs PostgreSQL server binaries: apt-get install postgresql).
test:
    cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Everything CI does.
ci:
    bash .ci/run

# Rebuild testdata/copy/*.bin and *.columns from the .sql beside them, with a scratch cluster.
regen-fixtures:
    cargo run -p pgarrow-testkit --example regen_fixtures
