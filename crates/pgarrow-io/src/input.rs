//! A load's input, opened as the outputs are written: Parquet, Arrow IPC files and streams
//! (by the extensions exports give them, or an explicit format), standard input (an IPC
//! stream), several files of the same columns, or a directory with a manifest (exactly the
//! files it lists, each checked against its row count).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};

mod ipc;
mod nested;
#[cfg(feature = "cloud")]
mod objects;
mod parquet_file;
mod table;

pub use nested::{MappedField, NameMapping};
mod thrift;

use crate::manifest::{MANIFEST_NAME, Manifest};
use crate::sink::Format;
#[cfg(feature = "cloud")]
use crate::store::ObjectReader;
use crate::{Error, Location, Result};
#[cfg(feature = "cloud")]
use objects::{ObjectInput, object_input};

/// Rows per batch read from Parquet files, unless an [`InputOptions`] says otherwise.
pub const DEFAULT_INPUT_BATCH_ROWS: usize = 65_536;

/// How inputs are read: [`InputOptions::default`], then `with_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputOptions {
    /// Rows per batch read from Parquet (IPC keeps the batches it holds).
    pub batch_rows: usize,
    /// The format of every file, instead of telling it by extension.
    pub format: Option<Format>,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            batch_rows: DEFAULT_INPUT_BATCH_ROWS,
            format: None,
        }
    }
}

impl InputOptions {
    /// Rows per batch read from Parquet.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    /// Every file read as `format`, whatever its extension; `None`: by extension.
    pub fn with_format(mut self, format: Option<Format>) -> Self {
        self.format = format;
        self
    }
}

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

/// The batches of one or more inputs, in order, as one arrow [`RecordBatchReader`]: what the
/// engine's loads take. Errors travel as [`ArrowError::ExternalError`] around a
/// [`crate::Error`] naming the file.
pub struct Input {
    schema: SchemaRef,
    /// What it reads, for messages: a path, `N files`, or `standard input`.
    name: String,
    batches: Batches,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Input {
    /// Opens `inputs`: files or objects (Parquet `.parquet`/`.pq`, IPC files
    /// `.arrow`/`.feather`/`.ipc`, IPC streams `.arrows`, or all of `options.format`), `-`
    /// alone for an IPC stream on standard input, one directory or object-store prefix
    /// holding a manifest, or object URLs whose last segments hold `*` or `?` (matched
    /// within one segment: `s3://b/orders/*.parquet`), in name order. Every file is opened
    /// and its schema checked before this returns, so a bad input fails before anything
    /// connects; objects are read in place, by ranges.
    ///
    /// # Errors
    /// [`Error::Invalid`]: no input, `-` with files, an unknown extension, a directory
    /// without a manifest, a manifest of several tables, files whose columns differ, a
    /// pattern that matches nothing. [`Error::Input`]: a file that cannot be opened or
    /// read as its format. [`Error::Storage`]: an object store refused.
    pub fn open<L: Clone + Into<Location>>(inputs: &[L], options: &InputOptions) -> Result<Input> {
        let inputs: Vec<Location> = inputs.iter().cloned().map(Into::into).collect();
        let is_stdin = |l: &Location| l.as_local().is_some_and(|p| p.as_os_str() == "-");
        match inputs.as_slice() {
            [] => Err(Error::usage("no input: give files, a directory, or -")),
            [one] if is_stdin(one) => {
                let reader = arrow_ipc::reader::StreamReader::try_new(
                    ipc::CheckedStream::new(BufReader::new(std::io::stdin())),
                    None,
                )
                .map_err(|e| input_error("standard input", "an Arrow IPC stream", e))?;
                Ok(Input {
                    schema: reader.schema(),
                    name: "standard input".to_owned(),
                    batches: Box::new(reader),
                })
            }
            _ if inputs.iter().any(is_stdin) => Err(Error::usage(
                "- (standard input) cannot be combined with files",
            )),
            _ => {
                let mut files = Vec::new();
                let mut dirs = Vec::new();
                for input in &inputs {
                    match input {
                        Location::Local(p) if p.is_dir() => dirs.push(input.clone()),
                        Location::Local(_) => files.push((input.clone(), None, None)),
                        #[cfg(feature = "cloud")]
                        Location::Object(o) => match object_input(o)? {
                            ObjectInput::Dir => dirs.push(input.clone()),
                            ObjectInput::Files(found) => files.extend(found),
                        },
                    }
                }
                match (dirs.as_slice(), files.is_empty()) {
                    ([dir], true) => Input::open_dir(dir, options),
                    ([], _) => {
                        let name = match files.as_slice() {
                            [(one, _, _)] => one.to_string(),
                            more => format!("{} files", more.len()),
                        };
                        Input::open_files(name, files, options, &[])
                    }
                    _ => Err(Error::usage(
                        "a directory (with its manifest) is read alone, not with other inputs",
                    )),
                }
            }
        }
    }

    /// The files of a table whose metadata lists them (a lake table's snapshot), in order:
    /// each checked to hold the rows it says, with the columns its metadata holds for it
    /// (partition values) put back as constants in their places. `name` is for messages.
    ///
    /// # Errors
    /// As [`open`](Input::open): no file, files whose columns differ, a file that cannot be
    /// read; a partition value its column's type cannot hold, named.
    pub fn open_table(
        name: impl Into<String>,
        files: Vec<TableFile>,
        options: &InputOptions,
    ) -> Result<Input> {
        let name = name.into();
        if files.is_empty() {
            return Err(Error::usage(format!("{name} has no data file")));
        }
        let restored: Vec<Vec<Restored>> = files.iter().map(restored_of).collect();
        let files = files
            .into_iter()
            .map(|f| (f.location, f.rows, None))
            .collect();
        Input::open_files(name, files, options, &restored)
    }

    /// The files `DIR/_manifest.json` lists, each to hold the rows it says.
    fn open_dir(dir: &Location, options: &InputOptions) -> Result<Input> {
        if !dir.join(MANIFEST_NAME).exists()? {
            return Err(Error::usage(format!(
                "{dir} has no {MANIFEST_NAME}: a directory is read through the manifest of the \
                 export that wrote it (give the files themselves otherwise)"
            )));
        }
        let manifest = Manifest::read(dir)?;
        let tables: Vec<String> = manifest
            .files
            .iter()
            .filter_map(|f| f.table.as_ref().map(ToString::to_string))
            .collect();
        if tables.len() > 1 {
            return Err(Error::usage(format!(
                "{dir} holds several tables ({}): load one file at a time",
                tables.join(", ")
            )));
        }
        if manifest.files.is_empty() {
            return Err(Error::usage(format!("the manifest of {dir} lists no file")));
        }
        let format = manifest.format.parse::<Format>().ok();
        let mut options = options.clone();
        options.format = options.format.or(format);
        let files = manifest
            .files
            .iter()
            .map(|f| (dir.join_path(&f.path), Some(f.rows), None))
            .collect();
        let restored = restored_columns(&manifest)?;
        Input::open_files(dir.to_string(), files, &options, &restored)
    }

    /// Opens every file (checking that their columns agree), and chains their batches;
    /// files with an expected row count are checked against it as they end.
    /// `restored[i]` are the columns file `i` holds in its directories' names (identity value
    /// partitions), put back in their places.
    fn open_files(
        name: String,
        files: Vec<InputFile>,
        options: &InputOptions,
        restored: &[Vec<Restored>],
    ) -> Result<Input> {
        let mut opened = Vec::with_capacity(files.len());
        for (i, (path, rows, size)) in files.into_iter().enumerate() {
            let (schema, batches) = open_file(&path, size, options)?;
            let (schema, batches) = match restored.get(i) {
                Some(columns) if !columns.is_empty() => restore(schema, batches, columns, &path)?,
                _ => (schema, batches),
            };
            opened.push((path, rows, schema, batches));
        }
        let schema = opened[0].2.clone();
        for (path, _, s, _) in &opened[1..] {
            if !same_columns(&schema, s) {
                return Err(Error::usage(format!(
                    "{path} does not have the columns of {}: {} against {}",
                    opened[0].0,
                    columns(s),
                    columns(&schema)
                )));
            }
        }
        let batches = opened
            .into_iter()
            .flat_map(|(path, rows, _, batches)| Counted {
                path,
                expected: rows,
                seen: 0,
                batches: Some(batches),
            });
        Ok(Input {
            schema,
            name,
            batches: Box::new(batches),
        })
    }

    /// What it reads, for messages: a path, `N files`, a directory, or `standard input`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Iterator for Input {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next()
    }
}

impl RecordBatchReader for Input {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A data file of a table ([`Input::open_table`]): where it is, the rows its metadata says,
/// and the columns the metadata holds for it rather than the file (a partition's values):
/// each column's place in the table, its field, its value as text (`None`: null).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TableFile {
    /// The file.
    pub location: Location,
    /// Its rows, checked as it ends.
    pub rows: Option<u64>,
    /// Its constant columns: place, field, value as text.
    pub columns: Vec<(usize, arrow_schema::FieldRef, Option<String>)>,
    /// The positions (from 0) of its rows the table's metadata deletes
    /// ([`Input::open_table_as`] drops them).
    pub deleted: Vec<u64>,
    /// The values of table columns (by their place in the table's schema) for when the file
    /// does not hold the column: a one-row array of any type that casts to the column's (an
    /// Iceberg identity partition's value from the file's partition tuple, a column's
    /// `initial-default`). A column the file lacks and that has none here is NULL.
    pub absent: Vec<(usize, arrow_array::ArrayRef)>,
    /// The values of nested fields (by field ID) for when the file's struct lacks the field:
    /// a one-row array of any type that casts to the field's (an Iceberg `initial-default`).
    pub defaults: Vec<(i64, arrow_array::ArrayRef)>,
    /// The table's name mapping, which numbers the fields of a file written without field
    /// IDs (Iceberg's `schema.name-mapping.default`).
    pub names: Option<std::sync::Arc<NameMapping>>,
}

impl TableFile {
    /// The file at `location`, of `rows` rows, with `columns` held outside it.
    pub fn new(
        location: Location,
        rows: Option<u64>,
        columns: Vec<(usize, arrow_schema::FieldRef, Option<String>)>,
    ) -> TableFile {
        TableFile {
            location,
            rows,
            columns,
            deleted: Vec::new(),
            absent: Vec::new(),
            defaults: Vec::new(),
            names: None,
        }
    }

    /// With the value of the nested field of ID `id` for when the file's struct lacks it.
    pub fn with_default(mut self, id: i64, value: arrow_array::ArrayRef) -> TableFile {
        self.defaults.push((id, value));
        self
    }

    /// With the table's name mapping, for a file written without field IDs.
    pub fn with_names(mut self, names: std::sync::Arc<NameMapping>) -> TableFile {
        self.names = Some(names);
        self
    }

    /// With the value of the table's column at `index` for when the file does not hold it:
    /// a one-row array that casts to the column's type.
    pub fn with_absent(mut self, index: usize, value: arrow_array::ArrayRef) -> TableFile {
        self.absent.push((index, value));
        self
    }

    /// With the positions (from 0) of the rows the table deletes from it.
    pub fn with_deleted(mut self, positions: Vec<u64>) -> TableFile {
        self.deleted = positions;
        self
    }
}

/// The columns a table file holds outside it, in their places.
fn restored_of(f: &TableFile) -> Vec<Restored> {
    let mut columns: Vec<Restored> = f
        .columns
        .iter()
        .map(|(index, field, value)| Restored {
            index: *index,
            field: field.clone(),
            value: value.clone(),
        })
        .collect();
    columns.sort_by_key(|c| c.index);
    columns
}

/// A column a laid-out file holds in its directory's name: its place among the columns, its
/// field, and its value as text (`None`: null).
#[derive(Clone)]
pub(crate) struct Restored {
    index: usize,
    field: arrow_schema::FieldRef,
    value: Option<String>,
}

/// For each file of a laid-out export's manifest, the identity partitions' columns its
/// directories hold, typed by the manifest's schema.
fn restored_columns(manifest: &Manifest) -> Result<Vec<Vec<Restored>>> {
    let (Some(layout), Some(schema)) = (&manifest.layout, &manifest.schema) else {
        return Ok(Vec::new());
    };
    let identities: Vec<_> = layout
        .partitions
        .iter()
        .filter(|p| p.transform == crate::Transform::Identity)
        .collect();
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    manifest
        .files
        .iter()
        .map(|file| {
            let mut columns = Vec::new();
            for p in &identities {
                let (index, field) = schema.column_with_name(&p.column).ok_or_else(|| {
                    Error::usage(format!(
                        "the manifest partitions by column \"{}\", which its schema lacks",
                        p.column
                    ))
                })?;
                let value = file
                    .values
                    .iter()
                    .find(|v| v.name == p.name())
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "{} has no value for partition {} in the manifest",
                            file.path,
                            p.name()
                        ))
                    })?;
                columns.push(Restored {
                    index,
                    field: std::sync::Arc::new(field.clone()),
                    value: value.value.clone(),
                });
            }
            columns.sort_by_key(|c| c.index);
            Ok(columns)
        })
        .collect()
}

/// A file's batches with the columns of its directory put back, each a constant of the
/// manifest's type.
fn restore(
    schema: SchemaRef,
    batches: Batches,
    columns: &[Restored],
    path: &Location,
) -> Result<(SchemaRef, Batches)> {
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    for c in columns {
        if c.index > fields.len() {
            return Err(Error::usage(format!(
                "{path} does not have the columns its manifest says"
            )));
        }
        fields.insert(c.index, c.field.clone());
    }
    let schema = std::sync::Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ));
    // Each value checked once, before any batch: a value its type cannot hold is an error
    // naming the file and the column.
    for c in columns {
        constant(c, 1).map_err(|e| e.context(path.to_string()))?;
    }
    let columns = columns.to_vec();
    let out_schema = schema.clone();
    let mapped = batches.map(move |batch| {
        let batch = batch?;
        let mut arrays = batch.columns().to_vec();
        for c in &columns {
            arrays.insert(c.index, constant(c, batch.num_rows())?);
        }
        RecordBatch::try_new(out_schema.clone(), arrays)
    });
    Ok((schema, Box::new(mapped)))
}

/// `array` cast to `target`, as arrow-cast does, but a timestamp in the zone named `UTC` (how
/// pgarrow and the lake formats name it) taken as the offset `+00:00`, which it is: arrow-cast
/// parses zone names only with a time zone database this crate does not carry, and a naive
/// timestamp (Spark's INT96, a partition value's text) cast into `UTC` needs no other zone.
///
/// # Errors
/// arrow-cast's: a value that does not fit `target`.
pub fn cast_exact(
    array: &dyn arrow_array::Array,
    target: &arrow_schema::DataType,
    options: &arrow_cast::CastOptions<'_>,
) -> std::result::Result<arrow_array::ArrayRef, arrow_schema::ArrowError> {
    use arrow_schema::DataType;
    match target {
        DataType::Timestamp(unit, Some(zone))
            if matches!(zone.as_ref(), "UTC" | "Etc/UTC" | "utc" | "Z") =>
        {
            let offset = DataType::Timestamp(*unit, Some("+00:00".into()));
            let cast = arrow_cast::cast_with_options(array, &offset, options)?;
            let data = cast
                .to_data()
                .into_builder()
                .data_type(target.clone())
                .build()?;
            Ok(arrow_array::make_array(data))
        }
        _ => arrow_cast::cast_with_options(array, target, options),
    }
}

/// A column of `rows` copies of a restored value.
fn constant(c: &Restored, rows: usize) -> Result<arrow_array::ArrayRef> {
    let text = arrow_array::StringArray::from(vec![c.value.as_deref(); rows]);
    let array = cast_exact(
        &text,
        c.field.data_type(),
        &arrow_cast::CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|e| {
        Error::usage(format!(
            "partition column \"{}\" value {:?} is not a {}: {e}",
            c.field.name(),
            c.value,
            c.field.data_type()
        ))
    })?;
    Ok(array)
}

/// An input file: where, the rows its manifest says, its size when a listing gave it.
pub(crate) type InputFile = (Location, Option<u64>, Option<u64>);

/// One file's batches, its rows counted and checked against the manifest at its end.
struct Counted {
    path: Location,
    expected: Option<u64>,
    seen: u64,
    /// `None` once it ended.
    batches: Option<Batches>,
}

impl Iterator for Counted {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batches = self.batches.as_mut()?;
        // A reader that panics on a malformed file (the parquet and IPC readers have had such
        // bugs) ends this file's batches with an error, as any other read error does.
        let next = catching(|| batches.next())
            .unwrap_or_else(|panic| Some(Err(ArrowError::ExternalError(panicked(panic).into()))));
        match next {
            Some(Ok(batch)) => {
                self.seen += batch.num_rows() as u64;
                Some(Ok(batch))
            }
            Some(Err(e)) => {
                self.batches = None;
                Some(Err(ArrowError::from(
                    (Error::Input(e)).context(self.path.to_string()),
                )))
            }
            None => {
                self.batches = None;
                match self.expected {
                    Some(rows) if rows != self.seen => {
                        Some(Err(ArrowError::from(Error::usage(format!(
                            "{} holds {} rows, and its manifest says {rows}: the directory \
                             is not what its export wrote",
                            self.path, self.seen
                        )))))
                    }
                    _ => None,
                }
            }
        }
    }
}

/// Opens one file or object by its format (given, else from its extension).
fn open_file(
    location: &Location,
    size: Option<u64>,
    options: &InputOptions,
) -> Result<(SchemaRef, Batches)> {
    let shown = location.to_string();
    let named = location.file_name().unwrap_or_default();
    let format = match options
        .format
        .or_else(|| Format::from_path(Path::new(&named)))
    {
        Some(Format::Null) | None => {
            return Err(Error::usage(format!(
                "cannot tell the format of {shown}: use a .parquet, .arrow (IPC file) or \
                 .arrows (IPC stream) file, or say the format"
            )));
        }
        Some(f) => f,
    };
    #[cfg(not(feature = "cloud"))]
    let _ = size;
    #[allow(clippy::infallible_destructuring_match)] // Object exists with the `cloud` feature
    let path = match location {
        Location::Local(path) => path,
        #[cfg(feature = "cloud")]
        Location::Object(o) => {
            let reader = match size {
                Some(len) => ObjectReader::with_len(o, len),
                None => ObjectReader::open(o)?,
            };
            let opened = read_format(
                format,
                (reader.clone(), reader.clone()),
                reader.clone(),
                &shown,
                options,
            );
            reader.release();
            return opened;
        }
    };
    let file = File::open(path)
        .map_err(|e| Error::Input(ArrowError::IoError(format!("cannot open {shown}: {e}"), e)))?;
    let handle = || {
        file.try_clone()
            .map_err(|e| Error::Input(ArrowError::IoError(format!("cannot open {shown}: {e}"), e)))
    };
    let (probe, buffered) = (handle()?, BufReader::new(handle()?));
    read_format(format, (file, probe), buffered, &shown, options)
}

/// The batches of `format` read from `chunks` (Parquet: two handles on the file, one for
/// the INT96 scan) or `seekable` (Arrow IPC). A reader that panics on a malformed file gives
/// an input error.
fn read_format<C, P, S>(
    format: Format,
    chunks: (C, P),
    seekable: S,
    shown: &str,
    options: &InputOptions,
) -> Result<(SchemaRef, Batches)>
where
    C: parquet::file::reader::ChunkReader + 'static,
    P: parquet::file::reader::ChunkReader + 'static,
    S: std::io::Read + std::io::Seek + Send + 'static,
{
    let opened = catching(|| read_format_as(format, chunks, seekable, shown, options));
    opened.unwrap_or_else(|panic| {
        let expected = match format {
            Format::Parquet => "a Parquet file",
            Format::ArrowFile => "an Arrow IPC file",
            _ => "an Arrow IPC stream",
        };
        Err(input_error(
            shown,
            expected,
            ArrowError::ExternalError(panicked(panic).into()),
        ))
    })
}

thread_local! {
    /// Whether this thread is inside a reader call whose panic is caught ([`catching`]).
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a reader call, catching its panic (the parquet and IPC readers have had panics on
/// malformed data), with [`in_caught_reader`] true meanwhile.
fn catching<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let outer = CATCHING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result
}

/// Whether this thread is inside a file reader's call whose panic pgarrow catches and reports
/// as an input error naming the file. A panic hook can stay silent for those: the command line
/// and the Python module install one that does, so that a malformed file prints one error line,
/// not a panic message before it.
pub fn in_caught_reader() -> bool {
    CATCHING.with(std::cell::Cell::get)
}

/// Installs (once) a panic hook that stays silent for the panics [`in_caught_reader`] says
/// pgarrow catches, and hands every other panic to the hook that was there.
pub fn quiet_caught_reader_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !in_caught_reader() {
                previous(info);
            }
        }));
    });
}

/// What is wrong with a file another writer made, found by pgarrow's own checks before (or
/// instead of) the format's reader: the reason an input error gives after the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Malformed {
    fn from(why: String) -> Self {
        Malformed(why)
    }
}

impl From<&str> for Malformed {
    fn from(why: &str) -> Self {
        Malformed(why.to_owned())
    }
}

/// A [`Malformed`] with `format!`'s arguments.
macro_rules! malformed {
    ($($arg:tt)*) => {
        $crate::input::Malformed::from(format!($($arg)*))
    };
}
pub(crate) use malformed;

/// What a caught panic said, as an error's text.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("the reader failed on malformed data ({what})")
}

fn read_format_as<C, P, S>(
    format: Format,
    (chunks, probe): (C, P),
    seekable: S,
    shown: &str,
    options: &InputOptions,
) -> Result<(SchemaRef, Batches)>
where
    C: parquet::file::reader::ChunkReader + 'static,
    P: parquet::file::reader::ChunkReader + 'static,
    S: std::io::Read + std::io::Seek + Send + 'static,
{
    Ok(match format {
        Format::Parquet => parquet_file::open(chunks, probe, options.batch_rows, shown)?,
        Format::ArrowFile => {
            let mut seekable = seekable;
            ipc::check_file(&mut seekable).map_err(|what| {
                input_error(
                    shown,
                    "an Arrow IPC file",
                    ArrowError::ParseError(what.to_string()),
                )
            })?;
            let reader = arrow_ipc::reader::FileReader::try_new(seekable, None)
                .map_err(|e| input_error(shown, "an Arrow IPC file", e))?;
            (reader.schema(), Box::new(reader))
        }
        _ => {
            let reader =
                arrow_ipc::reader::StreamReader::try_new(ipc::CheckedStream::new(seekable), None)
                    .map_err(|e| input_error(shown, "an Arrow IPC stream", e))?;
            (reader.schema(), Box::new(reader))
        }
    })
}

fn input_error(what: &str, expected: &str, e: ArrowError) -> Error {
    (Error::Input(e)).context(format!("{what} is not {expected}"))
}

/// The fields that must agree between files: names and types (metadata may differ).
fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn columns(schema: &SchemaRef) -> String {
    let list: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    format!("({})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::Int32Array;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn timestamps_cast_into_utc_by_its_name() {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        use arrow_array::types::TimestampMicrosecondType;
        use arrow_schema::TimeUnit;
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let options = arrow_cast::CastOptions {
            safe: false,
            ..Default::default()
        };
        // A partition value's text, with and without its zone.
        let text = arrow_array::StringArray::from(vec![
            Some("2026-11-26 10:00:00"),
            Some("2026-11-26T10:00:00.000001Z"),
            None,
        ]);
        let got = cast_exact(&text, &utc, &options).unwrap();
        assert_eq!(got.data_type(), &utc);
        let got = got.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(got.value(0), 1_795_687_200_000_000);
        assert_eq!(got.value(1), 1_795_687_200_000_001);
        assert!(got.is_null(2));
        // A naive timestamp (Spark's INT96 reads as nanoseconds without a zone) is UTC.
        let naive = arrow_array::TimestampNanosecondArray::from(vec![1_795_687_200_000_001_000]);
        let got = cast_exact(&naive, &utc, &options).unwrap();
        assert_eq!(
            got.as_primitive::<TimestampMicrosecondType>().value(0),
            1_795_687_200_000_001
        );
        // Without the helper, arrow-cast refuses the name.
        assert!(arrow_cast::cast_with_options(&text, &utc, &options).is_err());
    }
    use crate::manifest::ManifestFile;

    fn write_ipc(path: &Path, values: &[i32], name: &str) {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int32, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(values.to_vec()))],
        )
        .unwrap();
        let file = File::create(path).unwrap();
        let mut w = arrow_ipc::writer::FileWriter::try_new(file, &schema).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
    }

    fn rows(input: Input) -> std::result::Result<usize, String> {
        let mut n = 0;
        for b in input {
            n += b.map_err(|e| e.to_string())?.num_rows();
        }
        Ok(n)
    }

    #[test]
    fn files_and_manifest_directories_open_as_one_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("part-00000.arrow");
        let b = dir.path().join("part-00001.feather");
        write_ipc(&a, &[1, 2], "v");
        write_ipc(&b, &[3], "v");
        let opts = InputOptions::default();
        assert_eq!(
            rows(Input::open(&[a.clone(), b.clone()], &opts).unwrap()),
            Ok(3)
        );

        // No manifest: refused.
        let e = Input::open(&[dir.path().to_owned()], &opts).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains(MANIFEST_NAME), "{e}");

        // A manifest lists only the first file: only it is read.
        let listed = vec![ManifestFile::new("part-00000.arrow", 2, 0)];
        let m = Manifest::new(Format::ArrowFile, None, None, None, listed);
        m.write(&dir.path().into()).unwrap();
        let input = Input::open(&[dir.path().to_owned()], &opts).unwrap();
        assert_eq!(rows(input), Ok(2));

        // A manifest whose count is wrong: the load's input fails naming the file.
        let wrong = vec![ManifestFile::new("part-00000.arrow", 5, 0)];
        Manifest::new(Format::ArrowFile, None, None, None, wrong)
            .write(&dir.path().into())
            .unwrap();
        let e = rows(Input::open(&[dir.path().to_owned()], &opts).unwrap()).unwrap_err();
        assert!(e.contains("holds 2 rows, and its manifest says 5"), "{e}");
    }

    /// A Parquet file of `values` (no dictionary), with every column chunk's dictionary page
    /// offset set to `offset` (0, as some writers set it for "no dictionary"; or nonsense).
    fn parquet_with_dictionary_offsets(path: &Path, values: &[i64], offset: i64) {
        use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow_array::Int64Array::from(values.to_vec()))],
        )
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
            .build();
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(bytes.clone()))
            .unwrap();
        let footer =
            u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
        bytes.truncate(bytes.len() - 8 - footer as usize);
        let mut builder = metadata.into_builder();
        let row_groups = builder
            .take_row_groups()
            .into_iter()
            .map(|rg| {
                let mut rg = rg.into_builder();
                let columns = rg
                    .take_columns()
                    .into_iter()
                    .map(|c| {
                        c.into_builder()
                            .set_dictionary_page_offset(Some(offset))
                            .build()
                            .unwrap()
                    })
                    .collect();
                rg.set_column_metadata(columns).build().unwrap()
            })
            .collect();
        let metadata = builder.set_row_groups(row_groups).build();
        ParquetMetaDataWriter::new(&mut bytes, &metadata)
            .finish()
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_column_chunk_outside_the_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for (name, offset) in [("negative", -5), ("past", 1 << 40)] {
            let path = dir.path().join(format!("{name}.parquet"));
            parquet_with_dictionary_offsets(&path, &[1, 2], offset);
            let e = Input::open(&[path], &InputOptions::default()).unwrap_err();
            let e = e.to_string();
            assert!(e.contains("is not a Parquet file"), "{e}");
            assert!(
                e.contains("column \"v\" of row group 0 claims 33 bytes")
                    && e.contains(&format!("at offset {offset}, outside the file")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_dictionary_page_offset_of_zero_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zero.parquet");
        parquet_with_dictionary_offsets(&path, &[7, -1, 1 << 40], 0);
        // The file is as described: the offset reads back as 0.
        let file = File::open(&path).unwrap();
        let plain = parquet::file::serialized_reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        let column = plain.metadata().row_group(0).column(0).clone();
        assert_eq!(column.dictionary_page_offset(), Some(0));
        let input = Input::open(&[path], &InputOptions::default()).unwrap();
        let values: Vec<i64> = input
            .flat_map(|b| {
                let b = b.unwrap();
                let c = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap();
                c.values().to_vec()
            })
            .collect();
        assert_eq!(values, [7, -1, 1 << 40]);
    }

    #[test]
    fn bad_inputs_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.arrow");
        let c = dir.path().join("c.arrow");
        write_ipc(&a, &[1], "v");
        write_ipc(&c, &[1], "w");
        let opts = InputOptions::default();
        let e = Input::open(&[a.clone(), c], &opts).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("columns"), "{e}");
        let e = Input::open(&[dir.path().join("x.csv")], &opts).unwrap_err();
        assert!(e.to_string().contains("cannot tell the format"), "{e}");
        let e = Input::open(&[a.clone(), "-".into()], &opts).unwrap_err();
        assert!(e.is_usage(), "{e}");
        let e = Input::open(&[dir.path().join("missing.parquet")], &opts).unwrap_err();
        assert!(e.is_input(), "{e}");
        // An IPC file read as Parquet: an input error naming the file.
        let pq = dir.path().join("a.pq");
        std::fs::copy(&a, &pq).unwrap();
        let e = Input::open(&[pq], &opts).unwrap_err();
        assert!(e.to_string().contains("is not a Parquet file"), "{e}");
    }
}
