//! Partitioned exports into files: one file for all parts ([`export_to_file`]), one file per
//! part with a manifest ([`export_to_dir`]), or one part of a plan made elsewhere
//! ([`export_part_to_file`]).

use std::sync::Arc;

use pgarrow_io::{Format, Sink};

use super::PartitionOptions;
use super::budget::Shares;
use super::plan::{Coordinator, PartitionPlan};
use super::run::{FileOut, PartitionedExport, PartitionedStats};
use super::worker::WorkerOutput;
use crate::pipeline::file_options;
use crate::protocol::Config;
use crate::stats::ExportStats;
use crate::{ErrorKind, ExportOptions, FileTarget, Hooks, IntoConfig, Result, Source};
use pgarrow_io::{DirTarget, Location, Manifest};

/// Exports `source` over `partitions.connections` connections into one file (or stdout,
/// or nowhere with [`Format::Null`]), all reading one snapshot. For Parquet, each
/// connection's thread encodes its own row groups, which are appended to the file here.
/// Atomic as [`Client::export_to_file`](crate::Client::export_to_file): a failure of any part leaves no file.
///
/// # Errors
/// As [`Coordinator::begin`]; the first failure of any part, naming it; the output's.
pub async fn export_to_file(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &FileTarget,
    hooks: Hooks<'_>,
) -> Result<PartitionedStats> {
    let mut hooks = hooks;
    let config = config.into_config()?;
    let mut sink_options = file_options(&target.options, target.format)?;
    let coordinator = begin(&mut hooks, &config, source, options, partitions).await?;
    let parquet = (target.format == Format::Parquet).then_some(&sink_options);
    let shares = Shares::new(partitions, coordinator.plan(), options, parquet);
    sink_options.row_group_bytes = shares.row_group_bytes;
    let schema = Arc::new(coordinator.plan().schema.clone());
    let sink = Sink::create(target.format, target.output.clone(), &schema, &sink_options)?;
    let (out, output) = match target.format {
        Format::Null => (FileOut::Nothing, WorkerOutput::Discard),
        Format::Parquet => match sink.into_row_groups(&sink_options)? {
            Ok((file, encoders)) => (FileOut::RowGroups(file), WorkerOutput::RowGroups(encoders)),
            Err(sink) => (FileOut::Batches(sink), WorkerOutput::Forward),
        },
        _ => (FileOut::Batches(sink), WorkerOutput::Forward),
    };
    let export =
        PartitionedExport::spawn(config, coordinator, options, partitions, output, shares)?;
    export.write_file(out, &mut hooks).await
}

/// Exports `source` over `partitions.connections` connections into one file per part in
/// `target.dir` (each written atomically, by the connection that read it; laid out by
/// `target.layout`, each part's files, with one part per connection unless
/// `partitions.parts` says otherwise), then writes
/// `_manifest.json` ([`Manifest`](crate::io::Manifest)) last. A failure of any part leaves no manifest and
/// removes the files this run wrote.
///
/// # Errors
/// As [`export_to_file`]; the directory cannot be made.
pub async fn export_to_dir(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &DirTarget,
    hooks: Hooks<'_>,
) -> Result<PartitionedStats> {
    let (stats, _) = write_dir(config, source, options, partitions, target, hooks).await?;
    Ok(stats)
}

/// The files of an export into a directory, written and described but not yet committed:
/// what [`export_files`] gives the caller that commits them (a lake table's catalog). Unless
/// [`ExportedFiles::keep`] is called, dropping it removes the files, so an export whose
/// commit fails leaves nothing behind.
#[derive(Debug)]
#[must_use = "the files are removed unless kept"]
pub struct ExportedFiles {
    stats: PartitionedStats,
    manifest: Manifest,
    dir: Location,
    kept: bool,
}

impl ExportedFiles {
    /// What was written: each file's path under the directory, rows, bytes and partition
    /// values; the snapshot and WAL position read; the schema.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The export's statistics.
    pub fn stats(&self) -> &PartitionedStats {
        &self.stats
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Location {
        &self.dir
    }

    /// Keeps the files (they are committed), and returns the statistics.
    pub fn keep(mut self) -> PartitionedStats {
        self.kept = true;
        std::mem::take(&mut self.stats)
    }
}

impl Drop for ExportedFiles {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for f in &self.manifest.files {
            let _ = self.dir.join_path(&f.path).remove();
        }
    }
}

/// As [`export_to_dir`], without the manifest: the files come back to the caller, who commits
/// them (see [`ExportedFiles`]); `target.manifest` is ignored. Unless `partitions.parts` says
/// otherwise, each connection reads one part (its files few and large, as a table's readers
/// want them).
///
/// # Errors
/// As [`export_to_dir`].
pub async fn export_files(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &DirTarget,
    hooks: Hooks<'_>,
) -> Result<ExportedFiles> {
    let target = target.clone().without_manifest();
    let (stats, manifest) = write_dir(config, source, options, partitions, &target, hooks).await?;
    Ok(ExportedFiles {
        stats,
        manifest,
        dir: target.dir,
        kept: false,
    })
}

async fn write_dir(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    target: &DirTarget,
    hooks: Hooks<'_>,
) -> Result<(PartitionedStats, Manifest)> {
    let mut hooks = hooks;
    let config = config.into_config()?;
    let mut target = target.clone();
    target.check()?;
    target.options = file_options(&target.options, target.format)?;
    target.prepare()?;
    // Uploads to an object store hold parts in memory: their buffers come out of the limit
    // (a quarter of it at most, each connection's uploads held to their share).
    let mut partitions = partitions.clone();
    if (!target.layout.partitions.is_empty() || !target.manifest) && partitions.parts.is_none() {
        // Each part writes its own files (in every value partition it meets): as few parts
        // as connections keep the files few and large, which a table's readers want (a
        // lake table's caller commits them), and spare each connection the queries and
        // footers of more parts.
        partitions.parts = Some(partitions.connections);
    }
    let uploads = target.dir.upload_memory() * partitions.connections.max(1);
    if uploads > 0 {
        let reserve = uploads.min(partitions.memory_limit / 4);
        target.dir = target
            .dir
            .with_upload_memory(reserve / partitions.connections.max(1));
        partitions.memory_limit -= reserve;
    }
    let partitions = &partitions;
    let coordinator = begin(&mut hooks, &config, source, options, partitions).await?;
    // A partition of a missing column, or of a type its transform does not take, fails
    // before any part is read.
    target
        .layout
        .check(&coordinator.plan().schema)
        .map_err(crate::Error::from)?;
    let parquet = (target.format == Format::Parquet).then_some(&target.options);
    let shares =
        Shares::new(partitions, coordinator.plan(), options, parquet).with_writer_threads();
    let export = PartitionedExport::spawn(
        config,
        coordinator,
        options,
        partitions,
        WorkerOutput::Files(target.clone()),
        shares,
    )?;
    export.write_dir(&target, &mut hooks).await
}

/// Exports part `index` of `plan` into a file, in the plan's snapshot (see [`export_part`](super::export_part)):
/// the output is created first (so that a bad path fails before connecting), written on a
/// worker thread, and renamed over the target at the end, as [`Client::export_to_file`](crate::Client::export_to_file) does.
///
/// # Errors
/// As [`export_part`](super::export_part), the output's errors, and [`ErrorKind::Cancelled`].
pub async fn export_part_to_file(
    config: impl IntoConfig,
    plan: &PartitionPlan,
    index: usize,
    options: &ExportOptions,
    target: &FileTarget,
    hooks: Hooks<'_>,
) -> Result<ExportStats> {
    let mut hooks = hooks;
    plan.part(index)?;
    let sink_options = file_options(&target.options, target.format)?;
    let schema = Arc::new(plan.schema.clone());
    let sink = Sink::create(target.format, target.output.clone(), &schema, &sink_options)?;
    let Some(export) = hooks
        .or_cancelled(super::export_part(config, plan, index, options))
        .await
    else {
        return Err(ErrorKind::Cancelled.into());
    };
    crate::pipeline::pump(export?, sink, &mut hooks).await
}

/// [`Coordinator::begin`], unless the hooks cancel first.
async fn begin(
    hooks: &mut Hooks<'_>,
    config: &Config,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
) -> Result<Coordinator> {
    hooks
        .or_cancelled(Coordinator::begin(config, source, options, partitions))
        .await
        .ok_or(ErrorKind::Cancelled)?
}
