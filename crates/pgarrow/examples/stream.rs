//! Export a query as a stream of Arrow RecordBatches and print what arrives.
//!
//! ```text
//! cargo run -p pgarrow --example stream -- postgresql://postgres@localhost/postgres \
//!     "SELECT * FROM pg_class"
//! ```
//!
//! Without arguments it reads `DATABASE_URL` (else the `PG*` environment) and exports
//! `SELECT * FROM pg_catalog.pg_type`.

use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_default();
    let query = args
        .next()
        .unwrap_or_else(|| "SELECT * FROM pg_catalog.pg_type".to_owned());

    let mut client = pgarrow::Client::connect(url.as_str()).await?;
    let mut export = client.export(query, &Default::default()).await?;
    println!("schema: {}", export.schema());
    while let Some(batch) = export.next().await {
        let batch = batch?;
        println!("batch of {} rows", batch.num_rows());
    }
    let stats = export.stats();
    println!(
        "{} rows, {} bytes of COPY data in {:.3} s (first byte after {:.3} s, decoding {:.3} s)",
        stats.rows,
        stats.bytes,
        stats.total.as_secs_f64(),
        stats.first_byte.as_secs_f64(),
        stats.decode.as_secs_f64()
    );
    Ok(())
}
