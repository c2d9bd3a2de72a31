use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatchReader, StringArray};
use arrow_schema::{DataType, Field};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("n", DataType::Int64, false),
    ]))
}

fn batch(keys: &[Option<&str>], start: i64) -> RecordBatch {
    let n = Int64Array::from_iter_values(start..start + keys.len() as i64);
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(StringArray::from(keys.to_vec())), Arc::new(n)],
    )
    .unwrap()
}

fn read(path: &Path) -> (SchemaRef, Vec<i64>) {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let schema = reader.schema();
    let mut values = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let n = b.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        values.extend(n.iter().map(|v| v.unwrap()));
    }
    (schema, values)
}

fn writer(dir: &Path, layout: &Layout, memory: usize) -> LayoutWriter {
    LayoutWriter::new(
        Location::from(dir),
        Format::Parquet,
        &SinkOptions::default(),
        &schema(),
        layout,
        "part-00000",
        memory,
    )
    .unwrap()
}

/// Odd values each get one directory that decodes back to them; the null and the empty
/// string stay apart; the identity column is left out of the files.
#[test]
fn odd_values_get_one_directory_each() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::default().with_partition("k".parse().unwrap());
    let mut w = writer(dir.path(), &layout, 64 << 20);
    let keys = [
        Some("a/b"),
        Some("x=y"),
        Some("with space"),
        Some("ünï😀"),
        None,
        Some(""),
        Some("a/b"),
        Some(".."),
        Some("%41"),
    ];
    w.write(&batch(&keys, 0)).unwrap();
    let files = w.finish().unwrap();
    let dirs: Vec<&str> = files
        .iter()
        .map(|f| f.path.rsplit_once('/').unwrap().0)
        .collect();
    assert_eq!(
        dirs,
        [
            "k=%2541",
            "k=%2E%2E",
            "k=%C3%BCn%C3%AF%F0%9F%98%80",
            "k=",
            "k=__HIVE_DEFAULT_PARTITION__",
            "k=a%2Fb",
            "k=with%20space",
            "k=x%3Dy",
        ]
    );
    let by_value = |v: Option<&str>| {
        files
            .iter()
            .find(|f| f.values[0].value.as_deref() == v)
            .unwrap()
    };
    assert_eq!(by_value(Some("a/b")).rows, 2);
    assert_eq!(by_value(None).rows, 1);
    assert_eq!(by_value(Some("")).rows, 1);
    let (file_schema, values) = read(&dir.path().join(&by_value(Some("a/b")).path));
    assert_eq!(values, [0, 6]);
    assert!(file_schema.column_with_name("k").is_none());
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), keys.len() as u64);
}

#[test]
fn files_roll_at_their_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::default().with_max_file_rows(Some(2_500));
    let mut w = writer(dir.path(), &layout, 64 << 20);
    let keys = vec![Some("a"); 1_000];
    for i in 0..10 {
        w.write(&batch(&keys, i * 1_000)).unwrap();
    }
    let files = w.finish().unwrap();
    let rows: Vec<u64> = files.iter().map(|f| f.rows).collect();
    assert_eq!(rows, [2_500, 2_500, 2_500, 2_500]);
    assert_eq!(files[3].path, "part-00000-00003.parquet");
    let mut all = Vec::new();
    for f in &files {
        all.extend(read(&dir.path().join(&f.path)).1);
    }
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn files_roll_before_their_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let max = 256 << 10;
    let layout = Layout::default().with_max_file_bytes(Some(max));
    let mut w = LayoutWriter::new(
        Location::from(dir.path()),
        Format::Parquet,
        &SinkOptions::default().with_compression(crate::Compression::None),
        &schema(),
        &layout,
        "f",
        64 << 20,
    )
    .unwrap();
    // Distinct text: about 30 bytes a row, barely compressible.
    for i in 0..40 {
        let keys: Vec<String> = (0..2_000)
            .map(|j| format!("{:x}", (i * 2_000 + j) * 7919))
            .collect();
        let keys: Vec<Option<&str>> = keys.iter().map(|k| Some(k.as_str())).collect();
        w.write(&batch(&keys, i * 2_000)).unwrap();
    }
    let files = w.finish().unwrap();
    assert!(files.len() >= 4, "{} files", files.len());
    for f in &files {
        let size = std::fs::metadata(dir.path().join(&f.path)).unwrap().len();
        assert_eq!(size, f.bytes);
        assert!(size <= max, "{} is {size} bytes", f.path);
    }
    // All but the last near the limit, not a fraction of it.
    for f in &files[..files.len() - 1] {
        assert!(f.bytes > max / 2, "{} is only {} bytes", f.path, f.bytes);
    }
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 80_000);
}

/// Thousands of partitions under a small limit: the open files never hold more than it, the
/// least recently used are finished, and every row arrives once.
#[test]
fn many_partitions_stay_within_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::default().with_partition("bucket(600, n)".parse().unwrap());
    let limit = 8 << 20;
    let mut w = writer(dir.path(), &layout, limit);
    let mut most_open = 0;
    for i in 0..12 {
        let keys = vec![Some("v"); 5_000];
        w.write(&batch(&keys, i * 5_000)).unwrap();
        assert!(w.held() <= limit, "{} bytes held", w.held());
        most_open = most_open.max(w.open);
    }
    assert!(
        most_open <= limit / OPEN_FILE_COST,
        "{most_open} files open"
    );
    let files = w.finish().unwrap();
    // Rows wait in memory for their partition's file: far fewer files than partitions
    // times batches.
    assert!(files.len() < 600 * 3, "{} files", files.len());
    let mut all = Vec::new();
    for f in &files {
        assert_eq!(f.values[0].name, "n_bucket");
        all.extend(read(&dir.path().join(&f.path)).1);
    }
    all.sort_unstable();
    assert_eq!(all, (0..60_000).collect::<Vec<_>>());
    let partitions: std::collections::HashSet<_> =
        files.iter().map(|f| f.values[0].value.clone()).collect();
    assert_eq!(partitions.len(), 600);
}

#[test]
fn an_unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::default()
        .with_partition("k".parse().unwrap())
        .with_max_file_rows(Some(10));
    // No memory to spare: every row goes out to a file at once.
    let mut w = writer(dir.path(), &layout, 1);
    let keys: Vec<Option<&str>> = (0..100).map(|i| Some(["a", "b"][i % 2])).collect();
    w.write(&batch(&keys, 0)).unwrap();
    assert!(w.files_written() >= 8);
    drop(w);
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "{left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        match p.is_dir() {
            true => {
                out.push(p.clone());
                out.extend(walk(&p));
            }
            false => out.push(p),
        }
    }
    out
}

#[test]
fn bad_layouts_are_refused_before_any_file() {
    let s = schema();
    let e = Layout::default()
        .with_max_file_rows(Some(0))
        .check(&s)
        .unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("--max-file-rows"),
        "{e}"
    );
    let e = Layout::default()
        .with_max_file_bytes(Some(100))
        .check(&s)
        .unwrap_err();
    assert!(e.to_string().contains("--max-file-size"), "{e}");
    let e = Layout::default()
        .with_partition("k".parse().unwrap())
        .with_partition("k".parse().unwrap())
        .check(&s)
        .unwrap_err();
    assert!(e.to_string().contains("given twice"), "{e}");
    let both = Layout::default()
        .with_partition("k".parse().unwrap())
        .with_partition("missing".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let e = LayoutWriter::new(
        Location::from(dir.path()),
        Format::Parquet,
        &SinkOptions::default(),
        &s,
        &both,
        "p",
        1 << 30,
    )
    .unwrap_err();
    assert!(e.to_string().contains("no column"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(!Layout::default().with_max_file_rows(Some(1)).is_plain());
    assert!(Layout::default().is_plain());
    assert_eq!(
        Layout::default()
            .with_partition("k".parse().unwrap())
            .file_schema(&s)
            .unwrap()
            .fields()
            .len(),
        1
    );
}

/// Partitions are finished on several threads; one that fails fails the writer, and
/// nothing is left: not the files the other threads completed, nor their directories.
#[test]
fn a_partition_failing_at_the_end_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::default().with_partition("k".parse().unwrap());
    // The files claim ascending `n`: the last partition's rows break that claim.
    let options = SinkOptions::default().with_sorted_by(vec![crate::SortKey::new("n", false)]);
    let mut w = LayoutWriter::new(
        Location::from(dir.path()),
        Format::Parquet,
        &options,
        &schema(),
        &layout,
        "part-00000",
        64 << 20,
    )
    .unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("p{i:02}")).collect();
    let keys: Vec<Option<&str>> = (0..400).map(|i| Some(names[i % 40].as_str())).collect();
    w.write(&batch(&keys, 0)).unwrap();
    // p39 gets a smaller n after its larger ones.
    w.write(&batch(&[Some("p39")], -1)).unwrap();
    let e = w.finish().unwrap_err().to_string();
    assert!(e.contains("\"n\""), "{e}");
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "{left:?}");
}

/// Finishing on several threads writes what one thread would: every partition's rows, in
/// their order, in its own files.
#[test]
fn partitions_finished_in_parallel_keep_their_rows_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::default()
        .with_partition("k".parse().unwrap())
        .with_max_file_rows(Some(7));
    let mut w = writer(dir.path(), &layout, 64 << 20);
    let names: Vec<String> = (0..30).map(|i| format!("p{i:02}")).collect();
    for round in 0..5 {
        let keys: Vec<Option<&str>> = (0..90).map(|i| Some(names[i % 30].as_str())).collect();
        w.write(&batch(&keys, round * 90)).unwrap();
    }
    let files = w.finish().unwrap();
    assert_eq!(files.len(), 30 * 3);
    for (p, name) in names.iter().enumerate() {
        let mut values = Vec::new();
        for f in files
            .iter()
            .filter(|f| f.path.starts_with(&format!("k={name}/")))
        {
            let (_, v) = read(&dir.path().join(&f.path));
            assert_eq!(v.len() as u64, f.rows);
            values.extend(v);
        }
        let want: Vec<i64> = (0..450).filter(|n| n % 30 == p as i64).collect();
        assert_eq!(values, want, "{name}");
    }
}
