//! The contract a lake format implements for the writers that keep a table in step with
//! changes (a mirror, `apply`, compaction): [`open`] reads the table's current snapshot as
//! they hold it (its live files with their deleted positions, in an index by key, and the
//! position its last mirror commit reached); [`LakeTable::commit`] stages a [`Plan`] (new
//! data files, deletes, files ended) under one [`Cleanup`](crate::cleanup::Cleanup) guard and
//! commits it as a compare-and-swap on the snapshot read: it lands whole, or it is a
//! [`Conflict`](pgarrow::ErrorKind::Conflict) with nothing left behind, and the caller (under
//! one [`Retries`](crate::retry::Retries)) reads the table again and folds anew.
//!
//! Each format has one commit sequence, which its export shares: DuckLake's catalog
//! transaction ([`crate::ducklake`]'s `Commit`), Delta's next version written only if absent
//! (`delta::commit::DeltaLog`), Iceberg's updates under requirements taken by a catalog
//! (`iceberg::catalog::Catalog`). A fourth format implements this trait beside its code, adds
//! its [`LakeTarget`] variant, and one arm each here in [`open`], in `export_to_lake` and in
//! expiry's dispatch.

use std::future::Future;
use std::pin::Pin;

use pgarrow::Result;

use crate::delta::mirror::DeltaMirror;
use crate::ducklake::mirror::DuckLakeMirror;
use crate::iceberg::mirror::IcebergMirror;
use crate::live::{LakeCommit, Live, MirrorPoint, Plan};
use crate::mirror::RowKey;
use crate::target::LakeTarget;

/// A future a [`LakeTable`] returns (boxed, so that the tables of every format are one type).
pub(crate) type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A lake table of some format, as the writers that keep it hold it.
pub(crate) trait LakeTable: Send {
    /// The table's columns, in order.
    fn column_names(&self) -> Vec<String>;

    /// Why the table cannot take in place a source that dropped `dropped` and has `columns`
    /// now, if it cannot (the mirror exports the table again instead).
    fn refuses(&self, _dropped: &[String], _columns: &arrow_schema::Schema) -> Option<String> {
        None
    }

    /// The source's columns changed: the next commit that writes rows takes the new ones and
    /// ends `dropped`.
    fn evolve(&mut self, _dropped: &[String]) {}

    /// Renames columns in place (`(old, new)`), where the format keeps a column's identity
    /// apart from its name (Iceberg's field IDs), so that an export again keeps them;
    /// elsewhere nothing to do.
    fn rename<'a>(&'a mut self, _renames: &'a [(String, String)]) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    /// Commits `plan` on the snapshot read, recording `point` (a mirror's; compaction carries
    /// the table's on), then brings `live` up to date with what landed.
    ///
    /// # Errors
    /// [`Conflict`](pgarrow::ErrorKind::Conflict) when the table changed since it was read
    /// (nothing committed, no file of the attempt left); a column the table cannot take;
    /// files that cannot be written; the catalog's or store's.
    fn commit<'a>(
        &'a mut self,
        live: &'a mut Live,
        plan: &'a Plan,
        point: Option<&'a MirrorPoint>,
    ) -> Pending<'a, LakeCommit>;

    /// Stages `plan` (as [`LakeTable::commit`] would commit it) for [`commit_together`]: its
    /// files written, its catalog change ready. `None`: this format commits each table on its
    /// own.
    fn stage<'a>(
        &'a mut self,
        _live: &'a Live,
        _plan: &'a Plan,
        _point: Option<&'a MirrorPoint>,
    ) -> Pending<'a, Option<Staged>> {
        Box::pin(async { Ok(None) })
    }

    /// After [`commit_together`] landed `staged`: its files kept and `live` brought up to
    /// date, as [`LakeTable::commit`] ends.
    fn finish<'a>(
        &'a mut self,
        _live: &'a mut Live,
        _plan: &'a Plan,
        _staged: Staged,
    ) -> Pending<'a, LakeCommit> {
        Box::pin(async {
            Err(
                pgarrow::ErrorKind::Internal("a staged commit of a format that stages none".into())
                    .into(),
            )
        })
    }

    /// Takes back a staged commit that did not land (its files removed).
    fn unstage(&mut self, _staged: Staged) {}

    /// Whether [`LakeTable::stage`] stages (the format commits several tables at once), so
    /// that a round of tables that do not is never folded twice.
    fn stages(&self) -> bool {
        false
    }
}

/// Why staged commits did not land together: `lasting` when the catalog cannot commit them
/// at once (every round would fail alike), else a race lost this time.
pub(crate) struct Apart {
    pub(crate) why: String,
    pub(crate) lasting: bool,
}

/// A table's commit staged by [`LakeTable::stage`], for a commit of several tables at once.
pub(crate) enum Staged {
    Iceberg(Box<crate::iceberg::mirror::StagedCommit>),
    DuckLake(Box<crate::ducklake::mirror::StagedCommit>),
}

/// Commits several tables' staged commits in one operation of their catalog: all land (each
/// table's [`LakeTable::finish`] follows), or none; `Err(why)` inside when they did not (a
/// lost race, or a catalog that cannot), each table then taking back its own
/// ([`LakeTable::unstage`]) and committing on its own.
///
/// # Errors
/// The catalog's; a commit whose outcome is unknown (its files kept).
pub(crate) async fn commit_together(
    staged: &mut [Staged],
) -> Result<std::result::Result<(), Apart>> {
    let mut icebergs = Vec::new();
    let mut ducklakes = Vec::new();
    for s in staged.iter_mut() {
        match s {
            Staged::Iceberg(c) => icebergs.push(&mut **c),
            Staged::DuckLake(c) => ducklakes.push(&mut **c),
        }
    }
    match (icebergs.is_empty(), ducklakes.is_empty()) {
        (false, true) => crate::iceberg::mirror::commit_together(&mut icebergs).await,
        (true, false) => crate::ducklake::mirror::commit_together(&mut ducklakes).await,
        (true, true) => Ok(Ok(())),
        (false, false) => Ok(Err(Apart {
            why: "the tables are of different lake formats".into(),
            lasting: true,
        })),
    }
}

/// A lake table as [`open`] read it: the table, its live files indexed by key, and the
/// position its last mirror commit recorded.
pub(crate) type Opened = (Box<dyn LakeTable>, Live, Option<MirrorPoint>);

/// The table `target` names, if it exists, read as the writers that keep it hold it: its
/// index by `key`, and the position its last commit reached.
///
/// # Errors
/// The format's: a table pgarrow does not write; its files, deletes or catalog.
pub(crate) async fn open(
    target: &LakeTarget,
    key: &RowKey,
    memory_limit: u64,
) -> Result<Option<Opened>> {
    let memory = crate::mirror::index_memory(memory_limit);
    let (columns, whole) = match key {
        RowKey::Columns(k) => (k.clone(), false),
        RowKey::WholeRow => (Vec::new(), true),
    };
    fn opened<T: LakeTable + 'static>(
        (table, live, point): (T, Live, Option<MirrorPoint>),
    ) -> Opened {
        (Box::new(table), live, point)
    }
    Ok(match target {
        LakeTarget::DuckLake(t) => DuckLakeMirror::open(t, columns, whole, memory)
            .await?
            .map(opened),
        LakeTarget::Delta(t) => DeltaMirror::open(t, columns, whole, memory)
            .await?
            .map(opened),
        LakeTarget::Iceberg(t) => IcebergMirror::open(t, columns, whole, memory)
            .await?
            .map(opened),
    })
}
