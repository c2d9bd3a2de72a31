//! The keyword arguments every export takes, checked before anything connects: an unknown
//! name or a bad value is a `pgarrow.UsageError` (a `ValueError`) naming it and what it
//! takes. Every choice is read by the library's own `FromStr`, as the CLI's flags are.

use std::time::Duration;

use pgarrow::ExportOptions;
use pgarrow::io::{
    BloomFilter, ColumnEncoding, Compression, IntervalEncoding, Layout, PartitionField,
    SinkOptions, SortKey,
};
use pgarrow::partition::{PartitionOptions, SnapshotMode, parse_size};
use pgarrow::policy::Policies;
use pgarrow::protocol::parse_duration;

use crate::error::usage_error;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The options, as keyword arguments, checked: every unknown name and bad value is a
/// `UsageError` naming it, before anything connects.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) export: ExportOptions,
    pub(crate) sink: SinkOptions,
    pub(crate) statement_timeout: Option<Duration>,
    /// Reading over several connections, when any of its options was given.
    pub(crate) partitions: Option<PartitionOptions>,
    /// A logical replication slot to create and export in the snapshot of, with its output
    /// plugin (`replication_slot`, `slot_plugin`).
    pub(crate) slot: Option<(String, String)>,
    /// How an export into a directory lays out its files (`files_by`, `max_file_rows`,
    /// `max_file_size`).
    pub(crate) layout: Layout,
}

const OPTION_NAMES: &str = "batch_rows, batch_bytes, statement_timeout, numeric, wide_numeric, \
     numeric_overflow, infinity, out_of_range, text, invalid_utf8, array_shape, array_bounds, enum, \
     partitions, parts, partition_by, snapshot, memory_limit, order_preserving, \
     compression, row_group_rows, row_group_bytes, intervals, bloom_filters, column_encodings, \
     data_page_v2, field_ids, geo_types, geo_bbox, sorted_by, files_by, max_file_rows, max_file_size, replication_slot, slot_plugin";

impl Options {
    pub(crate) fn parse(options: Option<&Bound<'_, PyDict>>, file: bool) -> PyResult<Options> {
        let mut o = Options::default();
        let Some(options) = options else {
            return Ok(o);
        };
        let p: &mut Policies = &mut o.export.policies;
        for (key, value) in options.iter() {
            let key: String = key.extract()?;
            if value.is_none() {
                continue;
            }
            let arg = Arg {
                key: &key,
                value: &value,
            };
            let bad = |why: String| arg.bad(why);
            let text = || arg.text();
            let size = || arg.count();
            if partition_option(&mut o.partitions, &arg)? {
                continue;
            }
            // A policy's value that is not text is refused by the policy, naming what it takes.
            if let Some(set) = p.set(&key, &value.str()?.to_string()) {
                set.map_err(|e| bad(e.to_string()))?;
                continue;
            }
            match key.as_str() {
                "batch_rows" => o.export.decode = o.export.decode.with_batch_rows(size()?),
                "batch_bytes" => o.export.decode = o.export.decode.with_batch_bytes(size()?),
                "statement_timeout" => o.statement_timeout = Some(duration(&value).map_err(bad)?),
                "compression" | "row_group_rows" | "row_group_bytes" | "intervals"
                | "bloom_filters" | "column_encodings" | "data_page_v2" | "field_ids"
                | "geo_types" | "geo_bbox" | "sorted_by" | "files_by" | "max_file_rows"
                | "max_file_size"
                    if !file =>
                {
                    return Err(bad(
                        "applies to files only (pgarrow.export_file, export_dataset, ...); Arrow \
                         data in memory is not compressed or split into row groups"
                            .to_owned(),
                    ));
                }
                "compression" => {
                    let compression = text()?
                        .parse::<Compression>()
                        .map_err(|e| bad(e.to_string()))?;
                    o.sink = o.sink.with_compression(compression);
                }
                "row_group_rows" => o.sink = o.sink.with_row_group_rows(size()?),
                "replication_slot" | "slot_plugin" if !file => {
                    return Err(bad(
                        "applies to exports into files (pgarrow.export_with_slot)".to_owned(),
                    ));
                }
                "replication_slot" => {
                    let plugin = o.slot.take().map(|(_, p)| p);
                    o.slot = Some((text()?, plugin.unwrap_or_else(|| "pgoutput".to_owned())));
                }
                "slot_plugin" => {
                    let name = o.slot.take().map(|(n, _)| n).unwrap_or_default();
                    o.slot = Some((name, text()?));
                }
                "row_group_bytes" => o.sink = o.sink.with_row_group_bytes(size()?),
                "bloom_filters" => {
                    let filters =
                        parsed::<BloomFilter>(&words(&value).map_err(&bad)?).map_err(&bad)?;
                    o.sink = o.sink.with_bloom_filters(filters);
                }
                "column_encodings" => {
                    let encodings = match value.cast::<PyDict>() {
                        Ok(d) => d
                            .iter()
                            .map(|(k, v)| Ok(format!("{}={}", k.str()?, v.str()?)))
                            .collect::<PyResult<Vec<_>>>()?,
                        Err(_) => words(&value).map_err(&bad)?,
                    };
                    let encodings = parsed::<ColumnEncoding>(&encodings).map_err(&bad)?;
                    o.sink = o.sink.with_encodings(encodings);
                }
                "data_page_v2" => o.sink = o.sink.with_data_page_v2(arg.flag()?),
                "field_ids" => o.sink = o.sink.with_field_ids(arg.flag()?),
                "geo_types" => o.sink = o.sink.with_geo_types(arg.flag()?),
                "geo_bbox" => o.sink = o.sink.with_geo_bbox(arg.flag()?),
                "sorted_by" => {
                    let keys = parsed::<SortKey>(&words(&value).map_err(&bad)?).map_err(&bad)?;
                    o.sink = o.sink.with_sorted_by(keys);
                }
                "files_by" => {
                    let fields =
                        parsed::<PartitionField>(&words(&value).map_err(&bad)?).map_err(&bad)?;
                    o.layout = o.layout.with_partitions(fields);
                }
                "max_file_rows" => o.layout = o.layout.with_max_file_rows(Some(size()? as u64)),
                "max_file_size" => {
                    let bytes = match value.extract::<usize>() {
                        Ok(n) if n >= 1 => n,
                        _ => parse_size(&text()?).map_err(|e| bad(e.to_string()))?,
                    };
                    o.layout = o.layout.with_max_file_bytes(Some(bytes as u64));
                }
                "intervals" => {
                    let intervals = text()?
                        .parse::<IntervalEncoding>()
                        .map_err(|e| bad(e.to_string()))?;
                    o.sink = o.sink.with_intervals(intervals);
                }
                _ => {
                    return Err(usage_error(
                        value.py(),
                        format!("unknown option {key:?}; the options are {OPTION_NAMES}"),
                    ));
                }
            }
        }
        if o.slot.as_ref().is_some_and(|(name, _)| name.is_empty()) {
            return Err(usage_error(
                options.py(),
                "slot_plugin goes with replication_slot (the slot to create)",
            ));
        }
        Ok(o)
    }
}

/// One keyword argument, for messages that name it.
struct Arg<'a, 'py> {
    key: &'a str,
    value: &'a Bound<'py, PyAny>,
}

impl Arg<'_, '_> {
    fn bad(&self, why: String) -> PyErr {
        usage_error(self.value.py(), format!("{}: {why}", self.key))
    }

    fn text(&self) -> PyResult<String> {
        self.value
            .extract::<String>()
            .map_err(|_| self.bad(format!("expected a string, got {}", self.value)))
    }

    /// True or False.
    fn flag(&self) -> PyResult<bool> {
        self.value
            .extract::<bool>()
            .map_err(|_| self.bad(format!("expected True or False, got {}", self.value)))
    }

    /// A positive integer.
    fn count(&self) -> PyResult<usize> {
        match self.value.extract::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(self.bad(format!("expected a positive integer, got {}", self.value))),
        }
    }
}

/// One string or a list of strings.
fn words(value: &Bound<'_, PyAny>) -> Result<Vec<String>, String> {
    if let Ok(one) = value.extract::<String>() {
        return Ok(vec![one]);
    }
    value
        .extract::<Vec<String>>()
        .map_err(|_| format!("expected a string or a list of strings, got {value}"))
}

/// Each of `words` parsed (a bloom filter, an encoding, a sort key, a partition field), or the
/// first one's error.
fn parsed<T: std::str::FromStr>(words: &[String]) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    words
        .iter()
        .map(|w| w.parse::<T>().map_err(|e| e.to_string()))
        .collect()
}

/// Takes `key` if it is an option of partitioned reads (setting `parts` up on the first);
/// whether it was one.
fn partition_option(parts: &mut Option<PartitionOptions>, arg: &Arg<'_, '_>) -> PyResult<bool> {
    let (key, value) = (arg.key, arg.value);
    let bad = |why: String| arg.bad(why);
    let text = || arg.text();
    let count = || arg.count();
    let known = [
        "partitions",
        "parts",
        "partition_by",
        "snapshot",
        "memory_limit",
        "order_preserving",
    ];
    if !known.contains(&key) {
        return Ok(false);
    }
    let p = parts.take().unwrap_or_else(|| PartitionOptions::new(1));
    let p = match key {
        "partitions" => p.with_connections(count()?),
        "parts" => p.with_parts(count()?),
        "partition_by" => p.with_by(text()?),
        "snapshot" => p.with_snapshot(
            text()?
                .parse::<SnapshotMode>()
                .map_err(|e| bad(e.to_string()))?,
        ),
        "memory_limit" => p.with_memory_limit(match value.extract::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => parse_size(&text()?).map_err(|e| bad(e.to_string()))?,
        }),
        _ => p.with_order_preserving(
            value
                .extract::<bool>()
                .map_err(|_| bad(format!("expected True or False, got {value}")))?,
        ),
    };
    *parts = Some(p);
    Ok(true)
}

/// A statement timeout: seconds (int or float), a `datetime.timedelta`, or text as the CLI
/// takes it (`30s`, `5min`, `1500ms`).
fn duration(value: &Bound<'_, PyAny>) -> Result<Duration, String> {
    let seconds = if let Ok(s) = value.extract::<String>() {
        return parse_duration(&s, Duration::from_secs(1)).map_err(|e| e.to_string());
    } else if let Ok(td) = value.call_method0("total_seconds") {
        td.extract::<f64>().map_err(|e| e.to_string())?
    } else {
        value.extract::<f64>().map_err(|_| {
            format!("expected seconds, a timedelta or text such as '30s', got {value}")
        })?
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a positive duration, got {seconds} seconds"))
}
