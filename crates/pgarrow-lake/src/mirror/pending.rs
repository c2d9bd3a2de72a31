//! A table's changes since its last commit: held in memory up to a share of the budget, then
//! set aside in a spill file (Arrow IPC, in the spill directory) that a commit reads back a
//! batch at a time (see [`Live::plan_large`](crate::live::Live::plan_large)).

use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use pgarrow::Result;
use pgarrow_changes::COMMIT_LSN_COLUMN;
use pgarrow_protocol::replication::Lsn;

use crate::live::Surveying;
use crate::spill::SpillWriter;

/// A table's pending changes, in the order they came.
#[derive(Default)]
pub(crate) struct Pending {
    batches: Vec<RecordBatch>,
    /// The memory of `batches`.
    bytes: usize,
    /// Changes, all told.
    rows: usize,
    /// The newest commit position among them.
    newest: u64,
    schema: Option<SchemaRef>,
    spill: Option<SpillWriter>,
    /// The fold's first pass over what was set aside, made as it was written (`None` once
    /// a batch did not take it: the fold makes its own).
    surveying: Option<Surveying>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Drops every change (and the spill file).
    pub(crate) fn clear(&mut self) {
        *self = Pending::default();
    }

    /// Their columns (the first batch's).
    pub(crate) fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }

    /// Whether they were set aside in a spill file.
    pub(crate) fn spilled(&self) -> bool {
        self.spill.is_some()
    }

    /// Whether any of them committed at or after `lsn`.
    pub(crate) fn any_since(&self, lsn: Lsn) -> bool {
        !self.is_empty() && self.newest >= lsn.0
    }

    /// Bytes set aside on disk.
    pub(crate) fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, SpillWriter::bytes)
    }

    /// Adds `batch`; past `limit` bytes in memory, they are all set aside in a file of `dir`
    /// (the system's temporary directory when `None`), and the later ones go there too, each
    /// taken by the fold's first pass (`survey` makes it, when they are first set aside).
    ///
    /// # Errors
    /// The spill file's.
    pub(crate) fn push(
        &mut self,
        batch: RecordBatch,
        limit: usize,
        dir: Option<&Path>,
        survey: impl FnOnce() -> Option<Surveying>,
    ) -> Result<()> {
        if let Some(commits) = batch
            .column_by_name(COMMIT_LSN_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::UInt64Array>())
            && let Some(&max) = commits.values().iter().max()
        {
            self.newest = self.newest.max(max);
        }
        self.rows += batch.num_rows();
        if self.schema.is_none() {
            self.schema = Some(batch.schema());
        }
        if self.spill.is_some() {
            self.survey(&batch);
        }
        if let Some(spill) = &mut self.spill {
            return spill.write(&batch);
        }
        self.bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.bytes > limit {
            let mut spill = SpillWriter::new(dir, "pgarrow-mirror-");
            self.surveying = survey();
            for b in std::mem::take(&mut self.batches) {
                self.survey(&b);
                spill.write(&b)?;
            }
            self.bytes = 0;
            self.spill = Some(spill);
        }
        Ok(())
    }

    /// `b` taken by the first pass; one it cannot take ends it (the fold's own pass then
    /// says why).
    fn survey(&mut self, b: &RecordBatch) {
        if let Some(s) = &mut self.surveying
            && s.see(b).is_err()
        {
            self.surveying = None;
        }
    }

    /// The fold's first pass over what was set aside, when one was made as they were.
    pub(crate) fn surveyed(&self) -> Option<&Surveying> {
        self.surveying.as_ref()
    }

    /// The batches held in memory (none once set aside).
    pub(crate) fn in_memory(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Where they were set aside.
    pub(crate) fn spill_path(&self) -> Option<PathBuf> {
        self.spill
            .as_ref()
            .and_then(|s| s.path())
            .map(Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::spill::read_spill;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(COMMIT_LSN_COLUMN, DataType::UInt64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(UInt64Array::from_iter_values(
                    (from..from + n).map(|v| v as u64),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn past_the_limit_changes_are_set_aside_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pending::default();
        p.push(batch(0, 10), 1 << 20, Some(dir.path()), || None)
            .unwrap();
        assert!(!p.spilled() && p.in_memory().len() == 1);
        for i in 1..20 {
            p.push(batch(i * 10, 10), 4096, Some(dir.path()), || None)
                .unwrap();
        }
        assert!(p.spilled() && p.in_memory().is_empty());
        assert!(p.any_since(Lsn(199)) && !p.any_since(Lsn(200)));
        let mut seen = Vec::new();
        read_spill(&p.spill_path().unwrap(), |b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            seen.extend(ids.values().iter().copied());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        let path = p.spill_path().unwrap();
        p.clear();
        assert!(p.is_empty() && !path.exists());
    }
}
