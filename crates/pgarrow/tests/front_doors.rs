//! The library's front doors against a real server: the export as a `Stream`, as a blocking
//! `RecordBatchReader`, written into a `RecordBatchWriter`, and the whole file pipeline with
//! progress, cancellation and statistics.

use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::ArrowError;
use futures_util::StreamExt;
use pgarrow::io::{Format, Output};
use pgarrow::{Client, ErrorKind, ExportOptions, FileTarget, Hooks, Source};
use pgarrow_testkit::Cluster;

/// The URL of a new database holding `t`: ids 1 to 10000 (bigint) and their labels.
fn setup(prefix: &str) -> Option<String> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT g::bigint AS id, 'row ' || g AS label \
         FROM generate_series(1, 10000) g;",
    )
    .unwrap();
    Some(pg.url(&db))
}

/// A new temporary directory, and the path of `name` in it.
fn temp_path(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// A client (connected with a `String` URL) of a new database holding `t`, as [`setup`].
async fn client(prefix: &str) -> Option<Client> {
    let url = setup(prefix)?;
    Some(Client::connect(url).await.unwrap())
}

fn batch_rows(n: usize) -> ExportOptions {
    let mut o = ExportOptions::default();
    o.decode.batch_rows = n;
    o
}

fn sum_ids(batches: &[RecordBatch]) -> i64 {
    batches
        .iter()
        .map(|b| {
            b.column(0)
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.unwrap())
                .sum::<i64>()
        })
        .sum()
}

/// The "done when": connect with a URL, export SQL text, read with `StreamExt::next`.
#[tokio::test(flavor = "current_thread")]
async fn stream_of_batches_from_sql_text() {
    let Some(url) = setup("stream") else { return };
    let mut client = Client::connect(url.as_str()).await.unwrap();
    let mut export = client
        .export("SELECT id, label FROM t ORDER BY id", &batch_rows(3000))
        .await
        .unwrap();
    // The schema is there before the first batch.
    let schema = export.schema();
    assert_eq!(schema.field(0).name(), "id");
    assert_eq!(schema.field(1).name(), "label");
    let mut batches = Vec::new();
    while let Some(batch) = export.next().await {
        let batch = batch.unwrap();
        assert_eq!(batch.schema(), schema);
        batches.push(batch);
    }
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [3000, 3000, 3000, 1000]
    );
    assert_eq!(sum_ids(&batches), 10000 * 10001 / 2);
    assert_eq!(
        batches[3].column(1).as_string::<i32>().value(999),
        "row 10000"
    );
    // A finished stream stays finished.
    assert!(export.next().await.is_none());
    let stats = export.stats();
    assert_eq!(stats.rows, 10000);
    assert_eq!(stats.batches, 4);
    assert!(stats.bytes > 10000 * 8, "{stats:?}");
    assert!(!stats.connect.is_zero(), "{stats:?}");
    assert!(!stats.describe.is_zero() && stats.catalog <= stats.describe);
    assert!(
        !stats.first_byte.is_zero() && !stats.decode.is_zero(),
        "{stats:?}"
    );
    assert!(stats.total >= stats.connect + stats.describe + stats.first_byte);
    assert!(stats.written.is_none());
    drop(export);
    // The connection is ready again; a second export reports no second connect.
    let again: Vec<_> = client
        .export(Source::table("t").unwrap(), &ExportOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].as_ref().unwrap().num_rows(), 10000);
}

/// A stream ends after its first error, which carries the SQLSTATE and the rows before it.
#[tokio::test(flavor = "current_thread")]
async fn stream_errors_end_the_stream() {
    let Some(url) = setup("streamerr") else {
        return;
    };
    let mut client = Client::connect(&url).await.unwrap();
    let mut export = client
        // A sequential scan of the new table: rows in id order, the error at row 5000.
        .export("SELECT 1 / (id - 5000) AS x FROM t", &batch_rows(1000))
        .await
        .unwrap();
    let mut rows = 0;
    let err = loop {
        match export.next().await.expect("an error before the end") {
            Ok(b) => rows += b.num_rows() as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Some("22012"), "{err}");
    assert!(rows >= 1000, "{rows} rows before the error");
    assert_eq!(err.rows_delivered(), Some(rows));
    assert!(export.next().await.is_none());
    drop(export);
    client.connection().simple_query("SELECT 1").await.unwrap();
}

/// An export that owns its connection is `Send + 'static`: it can run on another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_export_runs_on_another_task() {
    let Some(client) = client("owned").await else {
        return;
    };
    let export = client
        .into_export("SELECT id FROM t", &batch_rows(4096))
        .await
        .unwrap();
    let batches = tokio::spawn(async move {
        export
            .map(Result::unwrap)
            .collect::<Vec<RecordBatch>>()
            .await
    })
    .await
    .unwrap();
    assert_eq!(sum_ids(&batches), 10000 * 10001 / 2);
}

/// `blocking::export` is an arrow RecordBatchReader; its errors downcast to pgarrow's.
#[test]
fn blocking_reader() {
    let Some(url) = setup("blocking") else { return };
    let reader = pgarrow::blocking::export(&url, "SELECT id FROM t", &batch_rows(4000)).unwrap();
    fn total_rows(reader: impl RecordBatchReader) -> (usize, i64) {
        assert_eq!(reader.schema().field(0).name(), "id");
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        (batches.len(), sum_ids(&batches))
    }
    assert_eq!(total_rows(reader), (3, 10000 * 10001 / 2));

    let mut reader =
        pgarrow::blocking::export(url, "SELECT 1 / (id - 9000) FROM t", &batch_rows(4000)).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().num_rows(), 4000);
    assert_eq!(reader.next().unwrap().unwrap().num_rows(), 4000);
    let err = reader.next().unwrap().unwrap_err();
    let ArrowError::ExternalError(inner) = &err else {
        panic!("{err:?}");
    };
    let inner = inner.downcast_ref::<pgarrow::Error>().unwrap();
    assert_eq!(inner.code(), Some("22012"));
    assert_eq!(inner.rows_delivered(), Some(8000));
    assert!(reader.next().is_none());
    assert_eq!(reader.stats().rows, 8000);
}

/// The export as an Arrow C stream, read back through arrow's own importer (as another Arrow
/// implementation in the process would): the same batches, and a server error's message.
#[test]
fn ffi_stream() {
    use arrow_array::ffi_stream::RecordBatchStreamReader;
    let Some(url) = setup("ffistream") else {
        return;
    };
    let reader = pgarrow::blocking::export(&url, "SELECT id FROM t", &batch_rows(4000)).unwrap();
    let imported = RecordBatchStreamReader::try_new(reader.into_ffi_stream()).unwrap();
    assert_eq!(imported.schema().field(0).name(), "id");
    let batches: Vec<RecordBatch> = imported.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(sum_ids(&batches), 10000 * 10001 / 2);

    let reader =
        pgarrow::blocking::export(url, "SELECT 1 / (id - 9000) FROM t", &batch_rows(4000)).unwrap();
    let mut imported = RecordBatchStreamReader::try_new(reader.into_ffi_stream()).unwrap();
    assert_eq!(imported.next().unwrap().unwrap().num_rows(), 4000);
    assert_eq!(imported.next().unwrap().unwrap().num_rows(), 4000);
    let err = imported.next().unwrap().unwrap_err().to_string();
    assert!(err.contains("division by zero"), "{err}");
    assert!(err.contains("22012"), "{err}");
}

/// `write_to` drives any arrow RecordBatchWriter on the writer thread and closes it.
#[tokio::test(flavor = "current_thread")]
async fn write_to_an_arrow_writer() {
    let Some(mut client) = client("writeto").await else {
        return;
    };
    let (_dir, path) = temp_path("t.arrow");
    let export = client
        .export("SELECT id, label FROM t", &batch_rows(1500))
        .await
        .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let writer = arrow_ipc::writer::FileWriter::try_new(file, &export.schema()).unwrap();
    let stats = export.write_to(writer).await.unwrap();
    assert_eq!(stats.rows, 10000);
    assert_eq!(stats.batches, 7);
    assert!(!stats.write.is_zero(), "{stats:?}");
    let reader =
        arrow_ipc::reader::FileReader::try_new(std::fs::File::open(&path).unwrap(), None).unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 7);
    assert_eq!(sum_ids(&batches), 10000 * 10001 / 2);
}

/// A writer that fails: its error is the export's, and the connection is not reused mid-COPY.
#[tokio::test(flavor = "current_thread")]
async fn a_failing_writer_fails_the_export() {
    struct Failing(usize);
    impl arrow_array::RecordBatchWriter for Failing {
        fn write(&mut self, _: &RecordBatch) -> Result<(), ArrowError> {
            self.0 += 1;
            if self.0 == 2 {
                return Err(ArrowError::IoError(
                    "disk full".into(),
                    std::io::Error::other("disk full"),
                ));
            }
            Ok(())
        }
        fn close(self) -> Result<(), ArrowError> {
            Ok(())
        }
    }
    let Some(mut client) = client("failwriter").await else {
        return;
    };
    let export = client
        .export("SELECT id FROM t", &batch_rows(100))
        .await
        .unwrap();
    let err = export.write_to(Failing(0)).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Write(_)), "{err:?}");
    assert!(err.to_string().contains("disk full"), "{err}");
}

/// The file pipeline: progress after each batch, statistics with the write phases, and the
/// file's footer metadata.
#[tokio::test(flavor = "current_thread")]
async fn export_to_file_reports_progress_and_stats() {
    let Some(mut client) = client("tofile").await else {
        return;
    };
    let (_dir, path) = temp_path("t.parquet");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let hooks = Hooks::new()
        .on_progress(move |s: &pgarrow::ExportStats| seen2.lock().unwrap().push(s.rows));
    let target = FileTarget::new(Format::Parquet, Output::File(path.clone()));
    let stats = client
        .export_to_file(
            Source::table("t").unwrap(),
            &batch_rows(2500),
            &target,
            hooks,
        )
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [2500, 5000, 7500, 10000]);
    assert_eq!(stats.rows, 10000);
    let written = std::fs::metadata(&path).unwrap().len();
    assert_eq!(stats.written, Some(written));
    assert!(
        !stats.write.is_zero() && !stats.finish.is_zero(),
        "{stats:?}"
    );
    assert!(stats.peak_rss.is_some_and(|b| b > 0));
    let file = std::fs::File::open(&path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    assert!(
        kv.iter()
            .any(|k| k.key == "pgarrow.version"
                && k.value.as_deref() == Some(env!("CARGO_PKG_VERSION"))),
        "{kv:?}"
    );
    let batches: Vec<RecordBatch> = builder.build().unwrap().map(Result::unwrap).collect();
    assert_eq!(sum_ids(&batches), 10000 * 10001 / 2);
}
