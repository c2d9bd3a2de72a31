//! The library's door to object stores, against moto's S3 server (started here on a free port
//! of 127.0.0.1, ready when it says it runs): a file export to an object, a partitioned export
//! into a prefix with its manifest, reading both back through `Input` (one object, a pattern,
//! the prefix), and the check that refuses a missing bucket before the query runs. The three
//! emulators and the CLI and Python doors are in the pytest suite
//! (`crates/pgarrow-python/tests/test_object_stores.py`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use arrow_array::{RecordBatch, RecordBatchReader};
use pgarrow::io::Format;
use pgarrow::io::{DirTarget, Input, InputOptions, Location, Manifest, StorageOptions};
use pgarrow::partition::{PartitionOptions, export_to_dir};
use pgarrow::{Category, Client, ExportOptions, FileTarget, Hooks, Source, blocking};
use pgarrow_testkit::Cluster;

/// moto's server, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Option<Moto> {
        let spawned = pgarrow_testkit::python()
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = spawned else {
            pgarrow_testkit::missing("python3", "moto's server runs on it");
            return None;
        };
        // Werkzeug says where it listens on stderr; moto's own lines go to stdout.
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut seen = String::new();
        let mut endpoint = None;
        for line in lines.by_ref().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(at) = line.find("http://127.0.0.1:") {
                endpoint = Some(line[at..].trim().to_owned());
                break;
            }
        }
        // Its request log is not read, but drained, so that the server never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        let Some(endpoint) = endpoint else {
            let _ = child.kill();
            pgarrow_testkit::missing(
                "moto's S3 server",
                &format!(
                    "python3 -m moto.server did not start ({}): {seen}",
                    pgarrow_testkit::python::how_to_get_python_parts()
                ),
            );
            return None;
        };
        Some(Moto { child, endpoint })
    }

    fn options(&self) -> StorageOptions {
        StorageOptions::new()
            .with_option("aws_endpoint", &self.endpoint)
            .with_option("aws_allow_http", "true")
            .with_option("aws_region", "us-east-1")
            .with_option("aws_access_key_id", "testing")
            .with_option("aws_secret_access_key", "testing")
            .with_option("part_size", "5MiB")
    }

    /// Creates a bucket (moto takes unsigned requests).
    fn create_bucket(&self, name: &str) {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }
}

fn rows(
    batches: impl Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let b = b.unwrap();
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        let notes = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push(format!("{}:{}", ids.value(i), notes.value(i)));
        }
    }
    out.sort();
    out
}

#[test]
fn exports_to_objects_and_reads_them_back_in_place() {
    let Some(pg) = Cluster::shared() else {
        return;
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("pgarrow-lib");
    let db = pg.create_database("object_store").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT g AS id, repeat(md5(g::text), 4) AS note \
         FROM generate_series(1, 200000) g",
    )
    .unwrap();
    let url = pg.url(&db);
    let options = moto.options();
    let rt = blocking::runtime().unwrap();

    // One file: an object of several 5 MiB parts.
    let object = Location::parse("s3://pgarrow-lib/t.arrow", &options).unwrap();
    let target = FileTarget::new(Format::ArrowFile, object.output());
    let stats = rt
        .block_on(async {
            let mut client = Client::connect(url.as_str()).await?;
            client
                .export_to_file(
                    Source::table("t")?,
                    &ExportOptions::default(),
                    &target,
                    Hooks::new(),
                )
                .await
        })
        .unwrap();
    assert_eq!(stats.rows, 200_000);
    assert!(
        stats.written.unwrap() > 10 << 20,
        "several parts: {:?}",
        stats.written
    );

    // A prefix: parts, then the manifest.
    let prefix = Location::parse("s3://pgarrow-lib/parts/", &options).unwrap();
    let dir = DirTarget::new(prefix.clone(), Format::Parquet);
    let parted = rt
        .block_on(export_to_dir(
            url.as_str(),
            Source::table("t").unwrap(),
            &ExportOptions::default(),
            &PartitionOptions::new(2),
            &dir,
            Hooks::new(),
        ))
        .unwrap();
    assert_eq!(
        parted.manifest.as_deref(),
        Some("s3://pgarrow-lib/parts/_manifest.json")
    );
    let manifest = Manifest::read(&prefix).unwrap();
    assert_eq!(manifest.rows, 200_000);
    assert_eq!(manifest.files.len(), 2);

    let expected = {
        let reader = blocking::export(
            url.as_str(),
            Source::table("t").unwrap(),
            &Default::default(),
        )
        .unwrap();
        rows(reader)
    };
    let open = |text: &str| {
        let l = Location::parse(text, &options).unwrap();
        Input::open(&[l], &InputOptions::default()).unwrap()
    };
    assert_eq!(rows(open("s3://pgarrow-lib/t.arrow")), expected);
    assert_eq!(
        rows(open("s3://pgarrow-lib/parts/part-*.parquet")),
        expected
    );
    assert_eq!(rows(open("s3://pgarrow-lib/parts")), expected);

    // Laid out: value partitions with odd values as keys of their own (a `/` or a `%` in a
    // value stays inside its one segment), files rolled; read back through the manifest, the
    // partition column restored from it.
    let odd = "SELECT id, note, (ARRAY['a/b', 'x=y', 'sp ace', 'ü%', '', NULL])[id % 6 + 1] AS k \
               FROM t WHERE id <= 6000";
    let laid = Location::parse("s3://pgarrow-lib/laid/", &options).unwrap();
    let layout = pgarrow::io::Layout::default()
        .with_partition("k".parse().unwrap())
        .with_max_file_rows(Some(400));
    let dir = DirTarget::new(laid.clone(), Format::Parquet).with_layout(layout);
    rt.block_on(export_to_dir(
        url.as_str(),
        Source::query(odd),
        &ExportOptions::default(),
        &PartitionOptions::new(1),
        &dir,
        Hooks::new(),
    ))
    .unwrap();
    let manifest = Manifest::read(&laid).unwrap();
    assert_eq!(manifest.rows, 6000);
    // 1,000 rows per value, 400 a file: three files each.
    assert_eq!(manifest.files.len(), 18);
    let slash = manifest
        .files
        .iter()
        .find(|f| f.values[0].value.as_deref() == Some("a/b"))
        .unwrap();
    assert!(slash.path.starts_with("k=a%2Fb/"), "{}", slash.path);
    let null = manifest
        .files
        .iter()
        .find(|f| f.values[0].value.is_none())
        .unwrap();
    assert!(
        null.path.starts_with("k=__HIVE_DEFAULT_PARTITION__/"),
        "{}",
        null.path
    );
    let expected =
        rows(blocking::export(url.as_str(), Source::query(odd), &Default::default()).unwrap());
    assert_eq!(rows(open("s3://pgarrow-lib/laid")), expected);
    let back = open("s3://pgarrow-lib/laid");
    assert_eq!(back.schema().field(2).name(), "k");
    for b in back {
        let b = b.unwrap();
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        let ks = b
            .column(2)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            let want = [
                Some("a/b"),
                Some("x=y"),
                Some("sp ace"),
                Some("ü%"),
                Some(""),
                None,
            ][(ids.value(i) % 6) as usize];
            assert_eq!(arrow_array::Array::is_null(ks, i), want.is_none());
            if let Some(w) = want {
                assert_eq!(ks.value(i), w);
            }
        }
    }

    // A missing bucket: refused before the query (which would fail: division by zero).
    let missing = Location::parse("s3://pgarrow-no-such-bucket/x.parquet", &options).unwrap();
    let target = FileTarget::new(Format::Parquet, missing.output());
    let err = rt
        .block_on(async {
            let mut client = Client::connect(url.as_str()).await?;
            client
                .export_to_file(
                    Source::query("SELECT 1 / (random() * 0)::int AS x"),
                    &ExportOptions::default(),
                    &target,
                    Hooks::new(),
                )
                .await
        })
        .unwrap_err();
    assert_eq!(err.category(), Category::Usage, "{err}");
    assert!(err.to_string().contains("pgarrow-no-such-bucket"), "{err}");
    assert!(!err.to_string().contains("division"), "{err}");
}

#[test]
fn incremental_runs_keep_their_state_and_files_in_the_store() {
    use pgarrow::incremental::{
        IncrementalOptions, IncrementalState, RunTarget, export_run, next_run, run_name,
    };
    let Some(pg) = Cluster::shared() else {
        return;
    };
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("pgarrow-incr");
    let db = pg.create_database("object_store_incr").unwrap();
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, note text, n bigint NOT NULL);
         INSERT INTO t SELECT g, 'a', g FROM generate_series(1, 1000) g",
    )
    .unwrap();
    let url = pg.url(&db);
    let options = moto.options();
    let rt = blocking::runtime().unwrap();
    let state_at = Location::parse("s3://pgarrow-incr/t.state.json", &options).unwrap();
    let table = pgarrow::names::TableName::parse("t").unwrap();
    let run_once = || {
        let previous = IncrementalState::load(&state_at).unwrap();
        let name = run_name(
            "s3://pgarrow-incr/t.arrow",
            next_run(previous.as_ref()),
            false,
        );
        let object = Location::parse(&name, &options).unwrap();
        let target = RunTarget::File(FileTarget::new(Format::ArrowFile, object.output()));
        let done = rt
            .block_on(export_run(
                url.as_str(),
                &IncrementalOptions::new(table.clone(), "n"),
                previous.as_ref(),
                &ExportOptions::default(),
                None,
                &target,
                Hooks::new(),
            ))
            .unwrap();
        done.state.save(&state_at).unwrap();
        (name, done.state)
    };
    let (first, s1) = run_once();
    assert_eq!(
        (first.as_str(), s1.rows),
        ("s3://pgarrow-incr/t.run-000001.arrow", 1000)
    );
    pg.psql(&db, "UPDATE t SET note = 'b', n = 2000 WHERE id = 3")
        .unwrap();
    let (second, s2) = run_once();
    assert_eq!(s2.run, 2);
    assert_eq!(s2.files, vec![second.clone()]);
    let read = Input::open(
        &[Location::parse(&second, &options).unwrap()],
        &InputOptions::default(),
    )
    .unwrap();
    assert_eq!(rows(read), vec!["3:b".to_owned()]);
    // The state in the store is the second run's.
    assert_eq!(IncrementalState::load(&state_at).unwrap(), Some(s2));
}
