//! Where an export writes, from `--to`, `-o` and the format options, checked before anything
//! connects: a contradiction or an option the format would ignore is an error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;
use pgarrow::incremental::RunTarget;
use pgarrow::io::DirTarget;
use pgarrow::io::{Format, IntervalEncoding, Layout, Output, SinkOptions};
use pgarrow::{DecodeOptions, ExportOptions, FileTarget};

use crate::args::OutputArgs;
use crate::errors::usage;
use pgarrow::policy::Policies;

/// The format and destination `--to` and `-o` name.
pub(crate) fn resolve_output(args: &OutputArgs) -> Result<(Format, Output)> {
    match (args.to, args.output.as_deref()) {
        (Some(Format::Null), None) => Ok((Format::Null, Output::Discard)),
        (Some(Format::Null), Some(_)) => Err(usage("--to null writes nothing: drop -o")),
        (Some(f), Some("-")) => Ok((f, Output::Stdout)),
        (None, Some("-")) => Err(usage(
            "writing to standard output (-o -) needs --to parquet, arrow or arrow-stream",
        )),
        (_, Some(p)) if !p.contains("://") && Path::new(p).is_dir() => Err(usage(&format!(
            "-o {p} is a directory: give a file name (or --output-dir for one file per table \
             or part)"
        ))),
        (Some(f), Some(p)) => match Format::from_path(Path::new(p)) {
            Some(implied) if implied != f => Err(usage(&format!(
                "--to {f} contradicts -o {p}, a .{} name ({implied}): name the file for its \
                 format, or drop --to",
                Path::new(p)
                    .extension()
                    .map(|e| e.to_string_lossy())
                    .unwrap_or_default(),
            ))),
            _ => Ok((f, args.storage.location(Path::new(p))?.output())),
        },
        (None, Some(p)) => {
            let path = PathBuf::from(p);
            let f = Format::from_path(&path).ok_or_else(|| {
                usage(&format!(
                    "cannot tell the format from \"{p}\": use a .parquet, .arrow or .arrows \
                     extension, or --to"
                ))
            })?;
            Ok((f, args.storage.location(&path)?.output()))
        }
        (_, None) => Err(usage("give an output file with -o PATH (or --to null)")),
    }
}

/// The format of the files an export writes into `--output-dir dir` (`--to`, else Parquet),
/// its options checked.
pub(crate) fn dir_format(args: &OutputArgs, dir: &Path) -> Result<Format> {
    let format = args.to.unwrap_or(Format::Parquet);
    if format == Format::Null {
        return Err(usage(
            "--output-dir writes files: --to parquet, arrow or arrow-stream",
        ));
    }
    check_format(format, &Output::File(dir.to_path_buf()), args)?;
    Ok(format)
}

/// Refuses the options that `format` would ignore, and binary output to a terminal.
pub(crate) fn check_format(format: Format, output: &Output, args: &OutputArgs) -> Result<()> {
    let parquet_only = [
        ("--compression", args.compression.is_some()),
        ("--row-group-rows", args.row_group_rows.is_some()),
        ("--row-group-bytes", args.row_group_bytes.is_some()),
        ("--bloom-filter", !args.bloom_filters.is_empty()),
        ("--column-encoding", !args.encodings.is_empty()),
        ("--data-page-v2", args.data_page_v2),
        ("--field-ids", args.field_ids),
        ("--geo-types", args.geo_types),
        ("--geo-bbox", args.geo_bbox),
        ("--sorted-by", !args.sorted_by.is_empty()),
    ];
    for (flag, given) in parquet_only {
        if given && format != Format::Parquet {
            return Err(usage(&format!(
                "{flag} applies to Parquet output (--to parquet), and this export writes {format}"
            )));
        }
    }
    if args.intervals.is_some() && !matches!(format, Format::ArrowFile | Format::ArrowStream) {
        return Err(usage(&format!(
            "--intervals applies to Arrow IPC output (arrow, arrow-stream), and this export \
             writes {format} (Parquet always writes intervals as its own INTERVAL)"
        )));
    }
    if *output == Output::Stdout && std::io::stdout().is_terminal() {
        return Err(usage(&format!(
            "refusing to write binary {format} data to a terminal: redirect standard output \
             to a file or a pipe, or give -o FILE"
        )));
    }
    if args.json && *output == Output::Stdout {
        return Err(usage(
            "--json prints on standard output, which -o - already writes the data to: write \
             the data to a file, or use --stats-json FILE",
        ));
    }
    Ok(())
}

/// The output of an export, from `--to`, `-o` and the format options, all checked.
pub(crate) fn file_target(args: &OutputArgs) -> Result<FileTarget> {
    if !layout(args).is_plain() {
        return Err(usage(
            "--files-by, --max-file-rows and --max-file-size write several files: give \
             --output-dir DIR instead of -o",
        ));
    }
    let (format, output) = resolve_output(args)?;
    check_format(format, &output, args)?;
    let target = FileTarget::new(format, output).with_options(sink_options(args)?);
    if format != Format::Null {
        target.options.validate()?;
    }
    Ok(target)
}

pub(crate) fn sink_options(args: &OutputArgs) -> Result<SinkOptions> {
    let defaults = SinkOptions::default();
    Ok(SinkOptions::default()
        .with_compression(args.compression.unwrap_or(defaults.compression))
        .with_row_group_rows(args.row_group_rows.unwrap_or(defaults.row_group_rows))
        .with_row_group_bytes(args.row_group_bytes.unwrap_or(defaults.row_group_bytes))
        .with_intervals(args.intervals.unwrap_or(IntervalEncoding::Native))
        .with_bloom_filters(args.bloom_filters.clone())
        .with_encodings(args.encodings.clone())
        .with_data_page_v2(args.data_page_v2)
        .with_field_ids(args.field_ids)
        .with_geo_types(args.geo_types)
        .with_geo_bbox(args.geo_bbox)
        .with_sorted_by(args.sorted_by.clone()))
}

/// How the files of an export into a directory are laid out.
pub(crate) fn layout(args: &OutputArgs) -> Layout {
    Layout::default()
        .with_partitions(args.files_by.clone())
        .with_max_file_rows(args.max_file_rows)
        .with_max_file_bytes(args.max_file_size.map(|b| b as u64))
}

pub(crate) fn export_options(args: &OutputArgs, policies: &Policies) -> ExportOptions {
    ExportOptions::default()
        .with_decode(
            DecodeOptions::default()
                .with_batch_rows(args.batch_rows)
                .with_batch_bytes(args.batch_bytes),
        )
        .with_policies(*policies)
}

/// Where an export writes, as the library takes it: the directory `dir` (files and their
/// manifest), else `output` as `-o` would be; with the target the report shows.
pub(crate) fn run_target(
    args: &OutputArgs,
    dir: Option<&str>,
    output: Option<String>,
) -> Result<(RunTarget, FileTarget)> {
    match dir {
        Some(dir) => {
            let path = Path::new(dir);
            let location = args.storage.location(path)?;
            let format = dir_format(args, path)?;
            let target = DirTarget::new(location.clone(), format)
                .with_options(sink_options(args)?)
                .with_layout(layout(args));
            target.options.validate()?;
            Ok((
                RunTarget::Dir(target),
                FileTarget::new(format, location.output()),
            ))
        }
        None => {
            let mut file_args = args.clone();
            file_args.output = output;
            let target = file_target(&file_args)?;
            Ok((RunTarget::File(target.clone()), target))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn out(to: Option<&str>, o: Option<&str>) -> OutputArgs {
        OutputArgs {
            to: to.map(|f| f.parse().unwrap()),
            output: o.map(str::to_owned),
            compression: None,
            row_group_rows: None,
            row_group_bytes: None,
            bloom_filters: Vec::new(),
            encodings: Vec::new(),
            data_page_v2: false,
            field_ids: false,
            geo_types: false,
            geo_bbox: false,
            sorted_by: Vec::new(),
            files_by: Vec::new(),
            max_file_rows: None,
            max_file_size: None,
            intervals: None,
            batch_rows: 1,
            batch_bytes: 1,
            quiet: true,
            json: false,
            dry_run: false,
            stats: false,
            stats_json: None,
            storage: Default::default(),
        }
    }

    #[test]
    fn output_resolution() {
        assert_eq!(
            resolve_output(&out(None, Some("a.parquet"))).unwrap(),
            (Format::Parquet, Output::File("a.parquet".into()))
        );
        assert_eq!(
            resolve_output(&out(Some("arrow-stream"), Some("-"))).unwrap(),
            (Format::ArrowStream, Output::Stdout)
        );
        assert_eq!(
            resolve_output(&out(Some("null"), None)).unwrap(),
            (Format::Null, Output::Discard)
        );
        assert_eq!(
            resolve_output(&out(Some("arrow"), Some("a.dat"))).unwrap(),
            (Format::ArrowFile, Output::File("a.dat".into()))
        );
        assert!(resolve_output(&out(None, Some("a.csv"))).is_err());
        assert!(resolve_output(&out(None, Some("-"))).is_err());
        assert!(resolve_output(&out(Some("parquet"), None)).is_err());
        let e = resolve_output(&out(Some("arrow"), Some("x.parquet"))).unwrap_err();
        assert!(
            e.to_string()
                .contains("--to arrow contradicts -o x.parquet"),
            "{e}"
        );
    }

    #[test]
    fn options_of_another_format_are_refused() {
        let file = Output::File("x".into());
        let mut a = out(None, None);
        a.compression = Some("snappy".parse().unwrap());
        assert!(check_format(Format::Parquet, &file, &a).is_ok());
        let e = check_format(Format::ArrowFile, &file, &a).unwrap_err();
        assert!(e.to_string().contains("--compression"), "{e}");
        let mut a = out(None, None);
        a.geo_bbox = true;
        assert!(check_format(Format::Parquet, &file, &a).is_ok());
        let e = check_format(Format::ArrowStream, &file, &a).unwrap_err();
        assert!(e.to_string().contains("--geo-bbox"), "{e}");
        let mut a = out(None, None);
        a.intervals = Some(IntervalEncoding::Struct);
        assert!(check_format(Format::ArrowStream, &file, &a).is_ok());
        assert!(check_format(Format::Parquet, &file, &a).is_err());
    }
}
