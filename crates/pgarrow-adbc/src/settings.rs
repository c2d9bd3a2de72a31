//! The `pgarrow.*` statement options: batch size, type policies and partitioned reads, named
//! as the CLI's flags and Python's keyword arguments are.

use std::time::Duration;

use adbc_core::options::OptionValue;
use pgarrow::ExportOptions;
use pgarrow::partition::parse_size;

use crate::error::{Result, bad_option, unknown_option};

/// The prefix of this driver's own options.
pub const PREFIX: &str = "pgarrow.";

/// The official PostgreSQL driver's statement options that this driver takes as aliases of
/// its own, with the same meaning: (official name, this driver's name without the prefix).
pub const OFFICIAL_ALIASES: &[(&str, &str)] = &[
    // Batches cut at about this many bytes (the official driver's hint; ours is a limit
    // on the batch's Arrow buffers).
    ("adbc.postgresql.batch_size_hint_bytes", "batch_bytes"),
    // false: run the query without COPY (statements COPY cannot run, like SHOW).
    (USE_COPY, "use_copy"),
];

/// The official driver's switch of COPY, a database option too (every statement's default).
pub const USE_COPY: &str = "adbc.postgresql.use_copy";

/// `key`'s name without the prefix, for this driver's options and the official aliases.
fn own_name(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX).or_else(|| {
        OFFICIAL_ALIASES
            .iter()
            .find(|(official, _)| *official == key)
            .map(|(_, own)| *own)
    })
}

/// The partitions `ExecutePartitions` plans unless `pgarrow.partitions` says otherwise.
pub const DEFAULT_PARTITIONS: usize = 4;
/// How long a partitioned result's snapshot is held without any partition being read
/// (`pgarrow.hold_timeout`, seconds).
pub const DEFAULT_HOLD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long it is held after every partition was read (`pgarrow.linger`, seconds).
pub const DEFAULT_LINGER: Duration = Duration::from_secs(30);

/// A statement's `pgarrow.*` options.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Batches and type policies.
    pub(crate) export: ExportOptions,
    /// The options of `export` as given (without the prefix), in order: what a partition
    /// descriptor carries, so that any connection reads the partition the same way.
    pub(crate) given: Vec<(String, String)>,
    pub(crate) partitions: usize,
    pub(crate) partition_by: Option<String>,
    pub(crate) hold_timeout: Duration,
    pub(crate) linger: Duration,
    /// What ingest and bound parameters do with values their columns cannot hold exactly.
    pub(crate) encode: pgarrow::EncodePolicies,
    /// The column types an ingest that creates its table gives nested fields.
    pub(crate) create_nested: pgarrow::CreateNested,
    /// Whether a query runs through COPY (the fast path) or as a plain statement.
    pub(crate) use_copy: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            export: ExportOptions::default(),
            given: Vec::new(),
            partitions: DEFAULT_PARTITIONS,
            partition_by: None,
            hold_timeout: DEFAULT_HOLD_TIMEOUT,
            linger: DEFAULT_LINGER,
            encode: pgarrow::EncodePolicies::default(),
            create_nested: pgarrow::CreateNested::Json,
            use_copy: true,
        }
    }
}

/// An option's value as text (integers and doubles as written).
pub(crate) fn value_text(key: &str, value: &OptionValue) -> Result<String> {
    match value {
        OptionValue::String(s) => Ok(s.clone()),
        OptionValue::Int(i) => Ok(i.to_string()),
        OptionValue::Double(d) => Ok(d.to_string()),
        _ => Err(bad_option(key, "expected text or a number")),
    }
}

/// `value` as a switch: `true` or `false` (ADBC's spelling).
pub(crate) fn value_bool(key: &str, value: &OptionValue) -> Result<bool> {
    match value_text(key, value)?.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(bad_option(
            key,
            format!("{other:?} (expected true or false)"),
        )),
    }
}

impl Settings {
    /// Sets `key` (a `pgarrow.*` option) to `value`.
    ///
    /// # Errors
    /// NOT_IMPLEMENTED for an option this driver does not know, INVALID_ARGUMENT for a
    /// value the option does not take.
    pub(crate) fn set(&mut self, key: &str, value: &OptionValue) -> Result<()> {
        let name = own_name(key).ok_or_else(|| unknown_option(key))?;
        let text = value_text(key, value)?;
        self.set_text(name, &text)
            .map_err(|why| bad_option(key, why))?
            .then_some(())
            .ok_or_else(|| unknown_option(key))
    }

    /// Sets option `name` (without the prefix) from `text`; whether `name` is an option.
    pub(crate) fn set_text(&mut self, name: &str, text: &str) -> std::result::Result<bool, String> {
        let count = |t: &str| match t.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!("{t:?} (expected a positive integer)")),
        };
        let seconds = |t: &str| match t.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(format!("{t:?} (expected seconds, a number >= 0)")),
        };
        let export_option = match self.export.policies.set(name, text) {
            Some(set) => {
                set.map_err(|e| e.to_string())?;
                true
            }
            None => match name {
                "batch_rows" => {
                    self.export.decode = self.export.decode.with_batch_rows(count(text)?);
                    true
                }
                "batch_bytes" => {
                    let bytes = parse_size(text).map_err(|e| e.to_string())?;
                    self.export.decode = self.export.decode.with_batch_bytes(bytes);
                    true
                }
                "partitions" => {
                    self.partitions = count(text)?;
                    false
                }
                "partition_by" => {
                    self.partition_by = Some(text.to_owned()).filter(|t| !t.is_empty());
                    false
                }
                "hold_timeout" => {
                    self.hold_timeout = seconds(text)?;
                    false
                }
                "linger" => {
                    self.linger = seconds(text)?;
                    false
                }
                "nanoseconds" => {
                    let nanoseconds = text
                        .parse()
                        .map_err(|e: pgarrow::policy::ChoiceError| e.to_string())?;
                    self.encode = self.encode.with_nanoseconds(nanoseconds);
                    false
                }
                "create_nested" => {
                    self.create_nested = text.parse().map_err(|e: pgarrow::Error| e.to_string())?;
                    false
                }
                "use_copy" => {
                    self.use_copy = match text {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("{text:?} (expected true or false)")),
                    };
                    false
                }
                _ => return Ok(false),
            },
        };
        if export_option {
            self.given.retain(|(n, _)| n != name);
            self.given.push((name.to_owned(), text.to_owned()));
        }
        Ok(true)
    }

    /// Option `key`'s value as text.
    ///
    /// # Errors
    /// NOT_FOUND for an option that was not set and has no default here.
    pub(crate) fn get(&self, key: &str) -> Result<String> {
        let name = own_name(key).unwrap_or(key);
        let found = match name {
            "use_copy" => Some(self.use_copy.to_string()),
            "partitions" => Some(self.partitions.to_string()),
            "partition_by" => self.partition_by.clone(),
            "hold_timeout" => Some(self.hold_timeout.as_secs_f64().to_string()),
            "linger" => Some(self.linger.as_secs_f64().to_string()),
            "nanoseconds" => Some(self.encode.nanoseconds.to_string()),
            "create_nested" => Some(self.create_nested.to_string()),
            "batch_rows" => Some(self.export.decode.batch_rows.to_string()),
            "batch_bytes" => Some(self.export.decode.batch_bytes.to_string()),
            _ => self
                .given
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone()),
        };
        found.ok_or_else(|| {
            crate::error::error(
                adbc_core::error::Status::NotFound,
                format!("pgarrow: option {key:?} is not set"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adbc_core::error::Status;
    use pgarrow::policy::NumericTarget;

    #[test]
    fn options_are_read_and_kept_for_descriptors() {
        let mut s = Settings::default();
        s.set("pgarrow.numeric", &"float64".into()).unwrap();
        s.set("pgarrow.batch_rows", &OptionValue::Int(1000))
            .unwrap();
        s.set("pgarrow.partitions", &"3".into()).unwrap();
        assert_eq!(s.export.policies.numeric, NumericTarget::Float64);
        assert_eq!(s.export.decode.batch_rows, 1000);
        assert_eq!(s.partitions, 3);
        assert_eq!(
            s.given,
            vec![
                ("numeric".to_owned(), "float64".to_owned()),
                ("batch_rows".to_owned(), "1000".to_owned())
            ]
        );
        assert_eq!(s.get("pgarrow.numeric").unwrap(), "float64");
        let unknown = s.set("pgarrow.nope", &"1".into()).unwrap_err();
        assert_eq!(unknown.status, Status::NotImplemented);
        let bad = s.set("pgarrow.numeric", &"float".into()).unwrap_err();
        assert_eq!(bad.status, Status::InvalidArguments);
        assert!(bad.message.contains("pgarrow.numeric"), "{}", bad.message);
        let bad = s.set("pgarrow.batch_rows", &"0".into()).unwrap_err();
        assert_eq!(bad.status, Status::InvalidArguments);
    }
}
