//! Following the slot: the change stream read, each table's changes gathered and committed at
//! every checkpoint (read again and folded anew when its files changed beside the mirror),
//! schema changes met as they come.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use pgarrow::protocol::Config;
use pgarrow::{Error, ErrorKind, Hooks, Result};
use pgarrow_changes::{ChangeEvent, ChangeOptions, ChangeStream, ValueFormat};
use pgarrow_protocol::replication::Lsn;

use super::schema::SchemaChange;
use super::{Again, DeleteMode, MirrorOptions, MirrorProgress, MirrorStats, Mirrored};
pub(crate) use crate::live::after;
use crate::live::{self, Live, MirrorPoint, Plan, debug};
use crate::retry::Retries;
use crate::table::Staged;

/// Follows the slot, committing each table's changes at every checkpoint and confirming it;
/// ends with the table to export again (and why) at a schema change it cannot take in place.
#[allow(clippy::too_many_arguments)]
pub(super) async fn follow(
    config: &Config,
    publication: &str,
    options: &MirrorOptions,
    mirrored: &mut [Mirrored],
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
    metrics: Option<&super::Metrics>,
    growing: &mut super::Growing,
) -> Result<Option<Again>> {
    // What a stream before this one gathered comes again: it was not confirmed.
    for m in mirrored.iter_mut() {
        m.pending.clear();
    }
    let start = mirrored
        .iter()
        .map(|m| m.point.lsn)
        .min()
        .unwrap_or_default();
    let mut stream = start_stream(config, publication, options, start, stats, hooks).await?;
    // Tables behind others (a run killed between the tables' commits of a round, or Delta's
    // tables, committed one by one) are first brought to the furthest one's position, so that
    // every position a table records is one where all of them equal the source.
    let ahead = mirrored
        .iter()
        .map(|m| m.point.lsn)
        .max()
        .unwrap_or_default();
    if ahead > start {
        let behind: Vec<String> = mirrored
            .iter()
            .filter(|m| m.point.lsn < ahead)
            .map(|m| m.table.quoted())
            .collect();
        log::info!(
            "{} behind the other tables' position {ahead}: committed up to it first",
            behind.join(", ")
        );
        stream.request_checkpoint_at(ahead);
    }
    if let Some(m) = metrics {
        m.watch(stream.positions());
    }
    if stats.start_lsn.is_empty() {
        stats.start_lsn = stream.started_at().to_string();
    }
    stats.end_lsn = start.to_string();
    let by_name: HashMap<String, usize> = mirrored
        .iter()
        .enumerate()
        .map(|(i, m)| (m.table.quoted(), i))
        .collect();
    let mut since = Instant::now();
    let mut changes_since = 0u64;
    // Tables joining or leaving are looked for every few seconds, at once after a change of a
    // table not followed (one added to the publication).
    let mut looked = Instant::now();
    let mut stranger = false;
    let mut reported = None;
    while let Some(event) = stream.next_event().await? {
        match event {
            ChangeEvent::Schema(s) => {
                let Some(&i) = by_name.get(&s.table.quoted()) else {
                    stranger = true;
                    continue;
                };
                let again = met(&mut mirrored[i], &s, options, stats, hooks).await?;
                if let Some((why, renamed)) = again {
                    stats.streamed.plus(&stream.streamed());
                    stream.close().await?;
                    return Ok(Some(Again::Reexport {
                        table: i,
                        why,
                        renamed,
                    }));
                }
            }
            ChangeEvent::Rows(b) => {
                let Some(&i) = by_name.get(&b.table.quoted()) else {
                    stranger = true;
                    continue;
                };
                let m = &mut mirrored[i];
                let batch = after(&b.batch, m.point.lsn)?;
                if batch.num_rows() > 0 {
                    changes_since += batch.num_rows() as u64;
                    pend(m, batch, options)?;
                }
            }
            ChangeEvent::Checkpoint(lsn) => {
                // A checkpoint of an idle stream, where the last one was: only the upkeep.
                if reported != Some(lsn) || changes_since > 0 {
                    reported = Some(lsn);
                    let time = stream.delivered_commit_time().map(unix_micros);
                    commit_round(mirrored, lsn, time, options, stats, hooks).await?;
                    stream.confirm(lsn).await?;
                    stats.end_lsn = lsn.to_string();
                    let server = stream.server_lsn().max(lsn);
                    let elapsed = since.elapsed().as_secs_f64().max(1e-9);
                    let lag_bytes = server.0.saturating_sub(lsn.0);
                    let spills = stats.folded_in_buckets
                        + mirrored
                            .iter()
                            .map(|m| m.live.index.stats().spills)
                            .sum::<u64>();
                    hooks.report(&MirrorProgress::Checkpoint {
                        lsn: lsn.to_string(),
                        server_lsn: server.to_string(),
                        lag_bytes,
                        lag_s: lag_seconds(lag_bytes, stream.delivered_commit_time()),
                        changes_per_s: changes_since as f64 / elapsed,
                        spills,
                    });
                    since = Instant::now();
                    changes_since = 0;
                }
                if let Some(found) = look(
                    config,
                    publication,
                    options,
                    mirrored,
                    growing,
                    &mut looked,
                    &mut stranger,
                )
                .await?
                {
                    stats.streamed.plus(&stream.streamed());
                    stream.close().await?;
                    return Ok(Some(Again::Tables(found)));
                }
            }
        }
    }
    stats.streamed.plus(&stream.streamed());
    stream.close().await?;
    Ok(None)
}

/// Tables joining or leaving the mirror, when it is time to look (every [`LOOK_EVERY`], at
/// once after a change of a table not followed) and there are any.
async fn look(
    config: &Config,
    publication: &str,
    options: &MirrorOptions,
    mirrored: &[Mirrored],
    growing: &mut super::Growing,
    looked: &mut Instant,
    stranger: &mut bool,
) -> Result<Option<super::source::Discovered>> {
    if !growing.discovers || !(*stranger || looked.elapsed() >= LOOK_EVERY) {
        return Ok(None);
    }
    let followed: Vec<_> = mirrored.iter().map(|m| m.table.clone()).collect();
    let found = super::source::discover(
        config,
        publication,
        options.publication.is_none(),
        &options.patterns,
        &mut growing.known,
        &followed,
    )
    .await?;
    (*looked, *stranger) = (Instant::now(), false);
    Ok((!found.is_empty()).then_some(found))
}

/// How often a running mirror looks for tables joining or leaving it.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// A server's time (microseconds since 2000-01-01 UTC) in microseconds since 1970-01-01 UTC.
pub(crate) fn unix_micros(server: i64) -> i64 {
    server.saturating_add(946_684_800_000_000)
}

/// How far behind the source the tables are in time: none when the server has nothing past
/// them (`lag_bytes`), else how long ago the newest transaction they hold committed there
/// (`committed`, microseconds since 2000-01-01 UTC); `None` when that is not known yet.
pub(super) fn lag_seconds(lag_bytes: u64, committed: Option<i64>) -> Option<f64> {
    if lag_bytes == 0 {
        return Some(0.0);
    }
    // PostgreSQL's epoch, 2000-01-01, in Unix seconds.
    const PG_EPOCH: u64 = 946_684_800;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_micros();
    let now = i128::try_from(now).ok()? - i128::from(PG_EPOCH) * 1_000_000;
    let ago = now - i128::from(committed?);
    Some((ago.max(0) as f64) / 1e6)
}

/// Starts the stream of the slot from `start`: a walsender of a stream this run just closed
/// (before an export again) may still hold the slot for a moment.
async fn start_stream(
    config: &Config,
    publication: &str,
    options: &MirrorOptions,
    start: Lsn,
    stats: &MirrorStats,
    hooks: &Hooks<'_, MirrorProgress>,
) -> Result<ChangeStream> {
    let stream_options = ChangeOptions::new(&options.slot, &[publication])
        .with_start(Some(start))
        .with_values(ValueFormat::Binary)
        .with_decode(options.export.decode)
        .with_policies(options.export.policies)
        .with_catch_up(options.catch_up)
        .with_flush_interval(options.commit_interval)
        .with_flush_rows(options.commit_changes)
        .with_spill_dir(options.spill_dir.clone())
        // Tables joining or leaving are looked for on an idle source too.
        .with_idle_checkpoints(true);
    let mut waited = 0;
    loop {
        let stream_hooks = Hooks::new().with_stop(hooks.stop().clone());
        match ChangeStream::start_with(config.clone(), stream_options.clone(), stream_hooks).await {
            Ok(stream) => return Ok(stream),
            // The walsender of a stream this run just closed has not let go of the slot yet
            // ("replication slot ... is active for PID ...").
            Err(e) if e.code() == Some("55006") && waited < 50 && stats.reexported > 0 => {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) if e.to_string().contains("binary") => {
                return Err(
                    e.context("a mirror reads values in their binary form (PostgreSQL 14+)")
                );
            }
            Err(e) => return Err(e),
        }
    }
}

/// A table's new Relation message `s`, met: its columns as the lake table takes them (what
/// changed before them committed under the old ones), or the export again it needs (why, and
/// the columns renamed for sure).
///
/// # Errors
/// A change no export again takes, or any without [`MirrorOptions::reexport`]; a transaction
/// that changed rows and then columns without it; the commit's.
async fn met(
    m: &mut Mirrored,
    s: &pgarrow_changes::TableSchema,
    options: &MirrorOptions,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<Option<(String, Vec<(String, String)>)>> {
    let columns = s.schema.fields().len() - pgarrow_changes::net::CHANGE_COLUMNS;
    let theirs: Vec<String> = s.schema.fields()[..columns]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let ours: Vec<String> = m.lake.column_names();
    // Columns of a transaction the table holds already (a stream that starts
    // before the table's position replays older Relation messages): the lake
    // table's are newer.
    if s.lsn < m.point.lsn {
        m.columns = columns;
        return Ok(None);
    }
    let table_columns = arrow_schema::Schema::new(s.schema.fields()[..columns].to_vec());
    // A type the table does not take in place is seen here even when the names are
    // the same and the stream has had no other columns (a run that stopped before
    // it exported the table again).
    if s.changed || theirs != ours || m.lake.refuses(&[], &table_columns).is_some() {
        let defaults: Vec<String> = s
            .schema
            .metadata()
            .get(pgarrow_changes::META_DEFAULTS)
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_else(|| theirs.clone());
        let change = SchemaChange::compare(m, &ours, &table_columns, &defaults);
        // Rows of the announcing transaction under the old columns (an ALTER
        // TABLE after changes in one transaction) cannot be committed apart.
        if m.pending.any_since(s.lsn) {
            if options.reexport && change.is_ok() {
                let why = "a transaction changed its rows and then its columns";
                let renamed = change.map(|c| c.renamed).unwrap_or_default();
                return Ok(Some((why.to_owned(), renamed)));
            }
            return Err(Error::usage(format!(
                "a transaction changed rows of {} and then its columns (at {}): a \
                 mirror commits whole transactions under one set of columns. Start \
                 over from a new snapshot (--start-over)",
                m.table.quoted(),
                s.lsn
            )));
        }
        // What changed before the new columns goes in under the old ones, at the
        // transaction that announced them (and before a change refused).
        commit_table(m, s.lsn, None, options, stats, hooks).await?;
        let change = change.map_err(|what| {
            Error::usage(format!(
                "the columns of {} changed at {}: {what}. The lake table holds every \
                 change before it; nothing after it was committed. Start over from a \
                 new snapshot to take the new columns (--start-over)",
                m.table.quoted(),
                s.lsn
            ))
        })?;
        if let Some(why) = change.reexport {
            if !options.reexport {
                return Err(Error::usage(format!(
                    "the columns of {} changed at {}: {why}, which the lake table \
                     cannot take in place. The lake table holds every change before \
                     it; nothing after it was committed. Let the mirror export the \
                     table again (leave out --no-reexport), or start over from a \
                     new snapshot (--start-over)",
                    m.table.quoted(),
                    s.lsn
                )));
            }
            return Ok(Some((why, change.renamed)));
        }
        m.lake.evolve(&change.dropped_names);
        hooks.report(&MirrorProgress::SchemaChanged {
            table: m.table.quoted(),
            lsn: s.lsn.to_string(),
            added: change.added,
            dropped: change.dropped_names,
        });
    }
    m.columns = columns;
    m.types = table_columns
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    Ok(None)
}

/// Commits every table's pending changes up to `lsn`: where several tables have changes and
/// their format and catalog can (DuckLake, Iceberg), together, in one operation of the catalog, so that
/// readers see all of them at the one source transaction boundary; else, or when that did not
/// land (another writer committed to one of them first), each on its own.
pub(crate) async fn commit_round(
    mirrored: &mut [Mirrored],
    lsn: Lsn,
    time: Option<i64>,
    options: &MirrorOptions,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<()> {
    // Tables whose format stages their commits, while their catalog has not said it cannot
    // commit them at once (then every round of this run commits table by table).
    let due: Vec<&Mirrored> = mirrored.iter().filter(|m| !m.pending.is_empty()).collect();
    if due.len() > 1 && due.iter().all(|m| m.lake.stages()) && stats.apart.is_none() {
        together(mirrored, lsn, time, options, stats, hooks).await?;
    }
    // What the round committed together has nothing pending left.
    for m in mirrored.iter_mut() {
        commit_table(m, lsn, time, options, stats, hooks).await?;
    }
    Ok(())
}

/// Stages each table's fold and commits them all at once; a table whose format stages none, a
/// fold or staging that fails, or a commit that did not land leaves every table's changes
/// pending (and its staged files removed) for its own commit, which reports any error.
async fn together(
    mirrored: &mut [Mirrored],
    lsn: Lsn,
    time: Option<i64>,
    options: &MirrorOptions,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<()> {
    let started = Instant::now();
    let point = MirrorPoint {
        slot: options.slot.clone(),
        lsn,
        time,
    };
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    let mut staged: Vec<Staged> = Vec::new();
    let mut alone = None;
    for (i, m) in mirrored.iter_mut().enumerate() {
        if m.pending.is_empty() {
            continue;
        }
        let plan = match folded(m, options).await {
            Ok(plan) => plan,
            Err(e) => {
                alone = Some(e.to_string());
                break;
            }
        };
        if plan.is_empty() {
            // The changes cancel out: nothing to commit (the slot is confirmed past them).
            m.pending.clear();
            stats.changes += plan.changes;
            continue;
        }
        match m.lake.stage(&m.live, &plan, Some(&point)).await {
            Ok(Some(s)) => {
                plans.push((i, plan));
                staged.push(s);
            }
            Ok(None) => {
                unstage(mirrored, plans, staged);
                return Ok(());
            }
            Err(e) => {
                alone = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(why) = alone {
        debug(format_args!(
            "the round's tables commit each on its own: {why}"
        ));
        unstage(mirrored, plans, staged);
        return Ok(());
    }
    if plans.len() < 2 {
        unstage(mirrored, plans, staged);
        return Ok(());
    }
    let publishing = Instant::now();
    if let Err(apart) = crate::table::commit_together(&mut staged).await? {
        log::info!(
            "the round's tables are committed each on its own: {}",
            apart.why
        );
        if apart.lasting {
            stats.apart = Some(apart.why);
        }
        unstage(mirrored, plans, staged);
        return Ok(());
    }
    let publish_s = publishing.elapsed().as_secs_f64();
    let n = plans.len();
    for ((i, plan), s) in plans.into_iter().zip(staged) {
        let m = &mut mirrored[i];
        let done = m.lake.finish(&mut m.live, &plan, s).await?;
        landed(m, &plan, done, publish_s, &point, started, n, stats, hooks);
    }
    stats.together += 1;
    Ok(())
}

/// Gives each table back what it staged (its files removed).
fn unstage(mirrored: &mut [Mirrored], plans: Vec<(usize, Plan)>, staged: Vec<Staged>) {
    for ((i, _), s) in plans.into_iter().zip(staged) {
        mirrored[i].lake.unstage(s);
    }
}

/// `batch` added to the table's pending changes (past their share of `options`' budget, set
/// aside, and surveyed as `folded` reads them).
///
/// # Errors
/// The spill file's.
pub(crate) fn pend(m: &mut Mirrored, batch: RecordBatch, options: &MirrorOptions) -> Result<()> {
    let reading = (m.point.lsn, m.columns, Some(m.target.lake_format()));
    let live = &m.live;
    m.pending.push(
        batch,
        super::pending_memory(options.memory_limit),
        options.spill_dir.as_deref(),
        || live.surveying(reading),
    )
}

/// The table's pending changes folded into a plan against the files it holds: only what the
/// table does not hold yet, as its files hold values. Changes set aside past the budget fold in
/// buckets, unless an update changed its key.
async fn folded(m: &Mirrored, options: &MirrorOptions) -> Result<Plan> {
    if m.pending.spilled() {
        let name = m.table.quoted();
        let planning = Instant::now();
        let changes = crate::live::Changes {
            memory: m.pending.in_memory(),
            spill: m.pending.spill_path(),
            after: m.point.lsn,
            // The lake's forms of the values (as `gathered`), bucket by bucket.
            format: Some(m.target.lake_format()),
            surveyed: m.pending.surveyed(),
        };
        let bucket = super::pending_memory(options.memory_limit) / 2;
        let dir = options.spill_dir.as_deref();
        if let Some(plan) = m
            .live
            .plan_large(changes, m.columns, &name, bucket, dir)
            .await?
        {
            debug(format_args!(
                "{name}: {} changes ({} bytes set aside) folded in buckets in {:.3} s",
                plan.changes,
                m.pending.spilled_bytes(),
                planning.elapsed().as_secs_f64()
            ));
            let plan = Plan {
                fold_s: planning.elapsed().as_secs_f64(),
                ..plan
            };
            return match options.deletes {
                DeleteMode::CopyOnWrite => {
                    let schema = plan.spilled.as_ref().map(|s| s.schema.clone());
                    let empty = RecordBatch::new_empty(
                        schema
                            .unwrap_or_else(|| std::sync::Arc::new(arrow_schema::Schema::empty())),
                    );
                    plan.copy_on_write(&m.live, &empty, m.columns)
                }
                DeleteMode::MergeOnRead => Ok(plan),
            };
        }
        debug(format_args!(
            "{name}: an update changed its key: the changes set aside fold whole"
        ));
    }
    let batch = gathered(m)?;
    fold(m, &after(&batch, m.point.lsn)?, options).await
}

/// The table's pending changes as one batch, its values as the lake table's files hold them
/// (a uuid as text in Delta, an interval as its struct): the rows it keeps and the keys it
/// finds are of the same types.
fn gathered(m: &Mirrored) -> Result<RecordBatch> {
    let schema = m
        .pending
        .schema()
        .ok_or_else(|| Error::from(ErrorKind::Internal("no pending changes".into())))?;
    let mut parts = Vec::new();
    if let Some(path) = m.pending.spill_path() {
        crate::spill::read_spill(&path, |b| {
            parts.push(b);
            Ok(())
        })?;
    }
    parts.extend(m.pending.in_memory().iter().cloned());
    let batch = arrow_select::concat::concat_batches(&schema, &parts)
        .map_err(|e| Error::from(ErrorKind::Internal(format!("gathering changes: {e}"))))?;
    crate::common::lake_batch(&batch, m.columns, m.target.lake_format())
}

/// `batch` folded into a plan against the table's files.
async fn fold(m: &Mirrored, batch: &RecordBatch, options: &MirrorOptions) -> Result<Plan> {
    let name = m.table.quoted();
    let planning = Instant::now();
    let plan = m
        .live
        .plan(batch, m.columns, &name, live::read_rows)
        .await
        .map(|mut p| {
            p.fold_s = planning.elapsed().as_secs_f64();
            p
        });
    debug(format_args!(
        "{name}: {} changes folded in {:.3} s",
        batch.num_rows(),
        planning.elapsed().as_secs_f64()
    ));
    match (plan, options.deletes) {
        (Ok(plan), DeleteMode::CopyOnWrite) => plan.copy_on_write(&m.live, batch, m.columns),
        (plan, _) => plan,
    }
}

/// Commits a table's pending changes up to `lsn`, reading the table again and folding anew
/// when its files changed beside the mirror.
pub(crate) async fn commit_table(
    m: &mut Mirrored,
    lsn: Lsn,
    time: Option<i64>,
    options: &MirrorOptions,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) -> Result<()> {
    if m.pending.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let name = m.table.quoted();
    let point = MirrorPoint {
        slot: options.slot.clone(),
        lsn,
        time,
    };
    let mut tries = Retries::new(options.retries, format!("mirroring into {name}"));
    let (plan, done): (Plan, _) = loop {
        // Only what the table does not hold yet (all of it, unless the table moved on).
        let plan = folded(m, options).await;
        let tried = match plan {
            Ok(plan) if plan.is_empty() => {
                // The changes cancel out: nothing to commit (the slot is confirmed past them).
                m.pending.clear();
                stats.changes += plan.changes;
                return Ok(());
            }
            Ok(plan) => match timed(m.lake.commit(&mut m.live, &plan, Some(&point))).await {
                (Ok(done), took) => {
                    let publish_s = done.publish_s(took);
                    break (plan, (done, publish_s));
                }
                (Err(e), _) => e,
            },
            Err(e) => e,
        };
        // The table's files changed beside the mirror (compaction; expiry then removed files
        // the mirror read from): read the table again and fold anew. Another error on a table
        // that did not change is the error.
        let moved = is_moved(&tried);
        debug(format_args!("moved ({moved}): {tried}"));
        if tries.lost(&tried).await.is_err() {
            return Err(tried);
        }
        let Some((lake, live, now)) =
            crate::table::open(&m.target, &m.key, options.memory_limit).await?
        else {
            return Err(Error::usage(format!(
                "lake table {} was dropped beside the mirror",
                m.target.name()
            )));
        };
        if !moved && same_files(&live, &m.live) {
            return Err(tried);
        }
        stats.retried += 1;
        match now {
            Some(now) if now.slot == options.slot => m.point = now,
            _ => {
                return Err(Error::usage(format!(
                    "lake table {} no longer records slot {:?}: another writer replaced it \
                     beside the mirror",
                    m.target.name(),
                    options.slot
                )));
            }
        }
        m.lake = lake;
        m.live = live;
    };
    let (done, publish_s) = done;
    landed(m, &plan, done, publish_s, &point, started, 1, stats, hooks);
    Ok(())
}

/// A table's commit of `plan` landed (with `together - 1` other tables' in one operation):
/// its changes are no longer pending, its point is the round's, and the commit is counted and
/// reported.
#[allow(clippy::too_many_arguments)]
fn landed(
    m: &mut Mirrored,
    plan: &Plan,
    done: crate::live::LakeCommit,
    publish_s: f64,
    point: &MirrorPoint,
    started: Instant,
    together: usize,
    stats: &mut MirrorStats,
    hooks: &mut Hooks<'_, MirrorProgress>,
) {
    stats.set_aside_bytes += m.pending.spilled_bytes();
    stats.folded_in_buckets += u64::from(plan.spilled.is_some());
    m.pending.clear();
    m.point = point.clone();
    stats.commits += 1;
    stats.files += done.files as u64;
    stats.changes += plan.changes;
    stats.inserted += plan.inserted();
    stats.deleted += plan.deleted();
    stats.truncates += u64::from(plan.truncate);
    hooks.report(&MirrorProgress::Committed {
        table: m.table.quoted(),
        lsn: point.lsn.to_string(),
        changes: plan.changes,
        inserted: plan.inserted(),
        deleted: plan.deleted(),
        truncated: plan.truncate,
        snapshot: done.snapshot,
        commit_s: started.elapsed().as_secs_f64(),
        fold_s: plan.fold_s,
        lookup_s: plan.lookup_s,
        write_s: done.write_s,
        publish_s,
        index_s: done.index_s,
        index_read_bytes: plan.index_read,
        together,
    });
}

/// Whether two reads of a table found the same files (each at the same place, with the same
/// deletes).
fn same_files(a: &Live, b: &Live) -> bool {
    let files = |l: &Live| {
        let mut f: Vec<(String, u64)> = l
            .files
            .values()
            .map(|f| (f.location.to_string(), f.deleted.len()))
            .collect();
        f.sort();
        f
    };
    files(a) == files(b)
}

/// Whether `e` says the table's files changed under a commit: an optimistic commit that lost
/// its race ([`Error::is_conflict`], by its kind, never its text).
pub(crate) fn is_moved(e: &Error) -> bool {
    e.is_conflict()
}

/// `f` awaited, and the seconds it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, f64) {
    let began = Instant::now();
    let out = f.await;
    (out, began.elapsed().as_secs_f64())
}
