//! Holding a plan's snapshot for workers that read lazily, until every part was read once.
//!
//! An engine such as Spark plans in one short-lived process and reads the parts later, in
//! others: no scope of the caller spans the reads. A [`Holder`] keeps the coordinating
//! transaction open and listens on a second connection: each part's reader notifies the
//! plan's channel as it starts, and again as its transaction commits at the end of the part
//! (a failed part rolls back and does not count as read, so a retried part still finds the
//! snapshot). The snapshot is released a short while (the linger time) after every part was
//! read and none started or finished since, or after the idle time without any part
//! starting or finishing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::protocol::{Config, quote_ident};
use crate::{Client, Error, Result};

use super::plan::{Coordinator, PartitionPlan};

/// The channel parts notify (`LISTEN pgarrow_plan`); the payload names the snapshot and part.
pub const NOTIFY_CHANNEL: &str = "pgarrow_plan";

/// How often the holder asks for notifications (a trivial query on the listening connection
/// brings those that arrived), and checks that its own transaction still stands.
const POLL_EVERY: Duration = Duration::from_millis(200);
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Why a [`Holder`] released its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Released {
    /// Every part was read to its end, and no part started or finished for the linger
    /// time after.
    AllRead,
    /// No part started or finished within the idle time.
    Idle,
}

/// A plan's coordinator, with a connection that listens for its parts' notifications.
#[derive(Debug)]
pub struct Holder {
    coordinator: Coordinator,
    /// `None` on a standby, which cannot LISTEN: the snapshot is then held for the idle
    /// time only.
    listener: Option<Client>,
}

impl Holder {
    /// Listens on [`NOTIFY_CHANNEL`] over a second connection (settings `config`, those the
    /// coordinator was made with) and sets the plan's [`PartitionPlan::notify`], so that
    /// parts read with [`super::export_part_with`] report their end.
    ///
    /// # Errors
    /// The plan has no shared snapshot ([`super::SnapshotMode::PerConnection`]); connecting.
    pub async fn start(mut coordinator: Coordinator, config: Config) -> Result<Holder> {
        if coordinator.plan().snapshot.is_none() {
            return Err(Error::usage(
                "a held plan needs a shared snapshot (snapshot \"shared\", the default)",
            ));
        }
        let mut listener = Client::connect(config).await?;
        let listening = listener
            .connection()
            .simple_query(&format!("LISTEN {}", quote_ident(NOTIFY_CHANNEL)))
            .await;
        let listener = match listening {
            Ok(_) => {
                coordinator.plan_mut().notify = Some(NOTIFY_CHANNEL.to_owned());
                Some(listener)
            }
            // A standby (in recovery) cannot LISTEN, nor its readers NOTIFY.
            Err(e) if e.code() == Some("25006") => None,
            Err(e) => return Err(e.into()),
        };
        Ok(Holder {
            coordinator,
            listener,
        })
    }

    /// The plan, to hand to the workers.
    pub fn plan(&self) -> &PartitionPlan {
        self.coordinator.plan()
    }

    /// Holds the snapshot while parts are being read: until `idle` passes without a part
    /// starting or finishing, or, once every part was read to its end at least once, until
    /// `linger` passes so (an engine may read its input twice: Spark's sort samples it
    /// first). Then ends the transaction and closes both connections.
    ///
    /// # Errors
    /// The coordinating transaction ended under it (a terminated backend, a broken
    /// connection): the parts not yet started cannot be read.
    pub async fn wait(mut self, idle: Duration, linger: Duration) -> Result<Released> {
        let prefix = format!(
            "{} ",
            self.coordinator.plan().snapshot.as_deref().unwrap_or("")
        );
        let wanted: BTreeSet<usize> = self
            .coordinator
            .plan()
            .parts
            .iter()
            .map(|p| p.part)
            .collect();
        let mut read = BTreeSet::new();
        let mut last_activity = Instant::now();
        let mut last_check = Instant::now();
        let released = loop {
            if let Some(listener) = self.listener.as_mut() {
                let conn = listener.connection();
                conn.simple_query("SELECT 1").await?;
                for n in conn.take_notifications() {
                    let Some(rest) = n.payload.strip_prefix(&prefix) else {
                        continue;
                    };
                    let mut words = rest.split(' ');
                    let part = words.next().and_then(|p| p.parse::<usize>().ok());
                    let Some(part) = part.filter(|p| wanted.contains(p)) else {
                        continue;
                    };
                    last_activity = Instant::now();
                    if words.next() == Some("end") {
                        read.insert(part);
                    }
                }
            }
            let all_read = read.len() == wanted.len();
            if all_read && last_activity.elapsed() >= linger {
                break Released::AllRead;
            }
            if last_activity.elapsed() >= idle {
                break Released::Idle;
            }
            if last_check.elapsed() >= CHECK_EVERY {
                self.coordinator.check().await.map_err(|e| {
                    e.context(
                        "the plan's snapshot ended before every part was read (its \
                         connection broke or its backend was terminated)",
                    )
                })?;
                last_check = Instant::now();
            }
            tokio::time::sleep(POLL_EVERY).await;
        };
        self.coordinator.close().await?;
        if let Some(listener) = self.listener {
            let _ = listener.close().await;
        }
        Ok(released)
    }
}
