//! Incremental runs into lake tables, for every format: the run's files exported in its own
//! snapshot, and its state ([`IncrementalState`]) carried by the commit that adds them, so
//! that the next run reads it back from the table and a crash between data and state can
//! neither lose nor repeat a run.

use pgarrow::incremental::{IncrementalOptions, IncrementalRun, IncrementalState, STATE_VERSION};
use pgarrow::io::DirTarget;
use pgarrow::partition::{ExportedFiles, PartitionOptions, export_files};
use pgarrow::{Client, Error, ErrorKind, ExportOptions, Hooks, IntoConfig, Result, Source};

use crate::common::{IfExists, LakeRun};

/// What an incremental run does with the table: goes on from the state it carries (an
/// append); a restart replaces its rows; a table that carries no run's state takes a first
/// run only when asked to append to it. Without a run, what was `asked`.
///
/// # Errors
/// A replace asked of a run; a table without a run's state, not asked to append.
pub(crate) fn if_exists(
    run: Option<&IncrementalOptions>,
    exists: bool,
    has_state: bool,
    asked: IfExists,
) -> Result<IfExists> {
    let usage = |m: &str| -> Error { ErrorKind::Usage(m.to_owned()).into() };
    match run {
        None => Ok(asked),
        Some(r) if r.restart && exists => Ok(IfExists::Replace),
        Some(_) if asked == IfExists::Replace => Err(usage(
            "an incremental run appends (a restart replaces): leave --if-exists replace out",
        )),
        Some(_) if exists && has_state => Ok(IfExists::Append),
        Some(_) if exists && asked == IfExists::Fail => Err(usage(
            "the table exists, and no commit of it carries an incremental run: append the \
             first run to it (--if-exists append) or start another table",
        )),
        Some(_) => Ok(asked),
    }
}

/// What an export into a lake table wrote, before its commit: its files (removed unless
/// kept), its incremental run, and their manifest with its Arrow schema.
pub(crate) struct Exported {
    pub(crate) files: ExportedFiles,
    pub(crate) run: Option<IncrementalRun>,
    pub(crate) manifest: pgarrow::io::Manifest,
    pub(crate) schema: arrow_schema::Schema,
}

/// The export's files into `files`: of `source`, or, with `run`, of the incremental run going
/// on from `previous` (`source` is then not read), over `partitions` in the run's snapshot.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn export(
    config: impl IntoConfig,
    source: impl Into<Source>,
    options: &ExportOptions,
    partitions: &PartitionOptions,
    files: &DirTarget,
    hooks: Hooks<'_>,
    run: Option<&IncrementalOptions>,
    previous: Option<&IncrementalState>,
) -> Result<Exported> {
    let (files, run) = match run {
        None => {
            let written = export_files(config, source, options, partitions, files, hooks).await?;
            (written, None)
        }
        Some(opts) => {
            let config = config.into_config()?;
            let mut client = Client::connect(&config).await?;
            let run = client.begin_incremental(opts, previous).await?;
            let id = client.share_incremental_snapshot().await?;
            let mut split = partitions.clone().with_import_snapshot(id);
            if matches!(run.source, Source::Query(_)) && split.by.is_none() {
                split = split.with_by(opts.column.clone());
            }
            let written =
                export_files(&config, run.source.clone(), options, &split, files, hooks).await?;
            client.end_incremental().await?;
            (written, Some(run))
        }
    };
    let manifest = files.manifest().clone();
    let schema = manifest.schema.clone().ok_or_else(|| {
        Error::from(ErrorKind::Internal(
            "the export's manifest has no schema".into(),
        ))
    })?;
    Ok(Exported {
        files,
        run,
        manifest,
        schema,
    })
}

/// The run's state once its `rows` are in `files`, and its JSON for the commit.
pub(crate) fn finish(
    run: Option<IncrementalRun>,
    rows: u64,
    files: Vec<String>,
) -> Result<(Option<LakeRun>, Option<String>)> {
    let Some(run) = run else {
        return Ok((None, None));
    };
    let (first, late_scan) = (run.first, run.late_scan);
    let state = run.finish(rows, files);
    let json = serde_json::to_string(&state)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("the incremental state: {e}"))))?;
    Ok((
        Some(LakeRun {
            state,
            first,
            late_scan,
        }),
        Some(json),
    ))
}

/// A run's state from the JSON a commit carries (`at`: which commit, for errors).
pub(crate) fn parse_state(text: &str, at: &str) -> Result<IncrementalState> {
    let state: IncrementalState = serde_json::from_str(text).map_err(|e| {
        Error::from(ErrorKind::InvalidInput(format!(
            "{at}'s incremental state is not pgarrow's: {e}"
        )))
    })?;
    if state.pgarrow_incremental != STATE_VERSION {
        return Err(ErrorKind::InvalidInput(format!(
            "{at} carries an incremental state of version {}; this pgarrow reads version \
             {STATE_VERSION}",
            state.pgarrow_incremental
        ))
        .into());
    }
    Ok(state)
}

/// Refuses the commit of `ours` when another run of the same table (`theirs`, the newest the
/// table now carries) landed after the one this run went on from (`previous`).
pub(crate) fn check_race(
    ours: Option<&LakeRun>,
    previous: Option<&IncrementalState>,
    theirs: Option<&IncrementalState>,
) -> Result<()> {
    if let (Some(ours), Some(other)) = (ours, theirs)
        && other.table == ours.state.table
        && previous.is_none_or(|p| p.run != other.run || p.taken_at != other.taken_at)
    {
        return Err(ErrorKind::Conflict(format!(
            "another incremental run of {} (run {}) committed during this one; nothing was \
             committed (run again: it goes on from that run)",
            other.table, other.run
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgarrow::names::TableName;

    #[test]
    fn a_state_another_writer_spoiled_is_invalid_input_not_usage() {
        let e = parse_state("{\"pgarrow_incremental\": 1", "snapshot 7").unwrap_err();
        assert!(e.is_invalid_input() && !e.is_usage(), "{e}");
        assert!(
            e.to_string().starts_with("snapshot 7's incremental state"),
            "{e}"
        );
    }

    #[test]
    fn runs_go_on_restart_or_refuse() {
        let run = IncrementalOptions::new(TableName::parse("t").unwrap(), "id");
        let restart = run.clone().with_restart(true);
        assert_eq!(
            if_exists(None, true, false, IfExists::Fail).unwrap(),
            IfExists::Fail
        );
        assert_eq!(
            if_exists(Some(&run), false, false, IfExists::Fail).unwrap(),
            IfExists::Fail
        );
        assert_eq!(
            if_exists(Some(&run), true, true, IfExists::Fail).unwrap(),
            IfExists::Append
        );
        assert_eq!(
            if_exists(Some(&restart), true, true, IfExists::Fail).unwrap(),
            IfExists::Replace
        );
        assert!(if_exists(Some(&run), true, false, IfExists::Fail).is_err());
        assert_eq!(
            if_exists(Some(&run), true, false, IfExists::Append).unwrap(),
            IfExists::Append
        );
        assert!(if_exists(Some(&run), false, false, IfExists::Replace).is_err());
        assert!(parse_state("{}", "commit 3").is_err());
    }

    fn state(table: &str, run: u64) -> IncrementalState {
        let json = serde_json::json!({
            "pgarrow_incremental": STATE_VERSION, "database": "d", "table": table,
            "table_oid": 1, "column": "id", "column_type": "bigint", "since": null,
            "high_water": "5", "snapshot": "1:1:", "late_rows_possible": false, "run": run,
            "rows": 0, "files": [], "taken_at": format!("t{run}"),
        });
        parse_state(&json.to_string(), "test").unwrap()
    }

    #[test]
    fn a_run_that_another_run_of_its_table_overtook_is_refused() {
        let ours = LakeRun {
            state: state("public.t", 3),
            first: false,
            late_scan: false,
        };
        let previous = state("public.t", 2);
        // The table still carries the run this one went on from, or another table's: fine.
        assert!(check_race(Some(&ours), Some(&previous), Some(&previous)).is_ok());
        assert!(check_race(Some(&ours), Some(&previous), Some(&state("public.u", 9))).is_ok());
        assert!(check_race(None, Some(&previous), Some(&state("public.t", 3))).is_ok());
        // Another run of the table landed since: refused, naming it.
        let e = check_race(Some(&ours), Some(&previous), Some(&state("public.t", 3))).unwrap_err();
        assert!(e.to_string().contains("(run 3)"), "{e}");
        assert!(e.is_conflict(), "a lost race, never a usage error: {e}");
        assert!(check_race(Some(&ours), None, Some(&state("public.t", 1))).is_err());
    }
}
