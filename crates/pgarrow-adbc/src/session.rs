//! One ADBC connection's PostgreSQL session: a pgarrow [`Client`] on a runtime of its own,
//! lent to one statement at a time, with the transaction state ADBC's autocommit asks for.
//!
//! A query's result set keeps the connection while it is read (its export owns the client).
//! A result left unread (its reader released early, or never read to its end) stays open
//! until the session's next use, which drains it to its end first: the rows are read and
//! dropped, never cancelled, so that a transaction goes on and a statement that writes
//! (`INSERT ... RETURNING`) is never undone because its result was not read. A rollback
//! cancels instead: its work is undone anyway.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use adbc_core::error::Status;
use arrow_array::RecordBatch;
use pgarrow::protocol::{CancelToken, Config, TransactionStatus};
use pgarrow::{Client, Export, Stop};

use crate::error::{OrAdbc, Result, error};

/// Where the session's client is.
#[derive(Debug)]
enum Slot {
    /// Between statements.
    Ready(Box<Client>),
    /// Lent out: a statement runs, or a batch of a result set is being read.
    Lent,
    /// A result set is open: its export holds the connection. `reader` is the number of the
    /// reader reading it, `None` once that reader was released before the end.
    Reading {
        export: Box<Export<'static>>,
        reader: Option<u64>,
    },
    /// The connection broke (why): every later statement says so.
    Lost(String),
}

/// Where the session stands, as the official driver's `adbc.postgresql.transaction_status`
/// reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No transaction is open.
    Idle,
    /// A statement runs or a result set is open.
    Active,
    /// A transaction is open.
    InTransaction,
    /// The open transaction failed: only a rollback ends it.
    InError,
    /// The connection broke.
    Unknown,
}

impl State {
    /// The official driver's name for it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Active => "active",
            State::InTransaction => "intrans",
            State::InError => "inerror",
            State::Unknown => "unknown",
        }
    }
}

/// What a batch read on the session's open result set gives.
pub(crate) enum Fetched {
    /// A batch.
    Batch(RecordBatch),
    /// The end of the result set (the connection is back).
    End,
    /// Nothing read: the reader holds a batch read ahead, which it may hand out now.
    Held,
}

/// A session: its connection, the runtime that connection lives on, and its settings.
#[derive(Debug)]
pub(crate) struct Session {
    /// The runtime the connection's socket belongs to (a current-thread runtime: the calls
    /// of one ADBC connection come one at a time, from any thread).
    runtime: tokio::runtime::Runtime,
    /// What the connection was made with: partitions and their reads open connections of
    /// their own with it.
    config: Config,
    slot: Mutex<Slot>,
    cancel: CancelToken,
    /// The running statement's stop, set by a cancel (from any thread) and replaced when the
    /// next statement starts: an ingest watches it (CopyFail, rollback), and an open result
    /// set's next fetch fails once it is set, whatever the server had already sent.
    stop: Arc<Mutex<Stop>>,
    /// The numbers of readers, so that a released one is told from the current one.
    readers: AtomicU64,
    /// ADBC's autocommit: off, each statement runs in the transaction the session opens
    /// before it (when none is open), until commit or rollback.
    autocommit: AtomicBool,
    /// Whether queries run through COPY unless a statement says otherwise (the database's
    /// `adbc.postgresql.use_copy`).
    use_copy: bool,
}

impl Session {
    /// Connects with `config`; `use_copy` is its statements' default.
    pub(crate) fn open(config: Config, use_copy: bool) -> Result<Arc<Session>> {
        let runtime = pgarrow::blocking::runtime().or_adbc()?;
        let mut client = runtime.block_on(Client::connect(&config)).or_adbc()?;
        Ok(Arc::new(Session {
            cancel: client.connection().cancel_token(),
            runtime,
            config,
            slot: Mutex::new(Slot::Ready(Box::new(client))),
            stop: Arc::new(Mutex::new(Stop::new())),
            readers: AtomicU64::new(0),
            autocommit: AtomicBool::new(true),
            use_copy,
        }))
    }

    /// The settings the session connected with.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The runtime the session's connection lives on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// What cancels the session's running statement: a CancelRequest to its backend, and
    /// the place of the statement's [`Stop`].
    pub(crate) fn canceller(&self) -> (CancelToken, Arc<Mutex<Stop>>) {
        (self.cancel.clone(), Arc::clone(&self.stop))
    }

    /// The running statement's stop (what an ADBC cancel sets).
    pub(crate) fn stop(&self) -> Stop {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets a cancel: the next statement gets a stop of its own.
    fn renew_stop(&self) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Stop::new();
    }

    /// Whether the statements of this session run queries through COPY by default.
    pub(crate) fn use_copy(&self) -> bool {
        self.use_copy
    }

    pub(crate) fn autocommit(&self) -> bool {
        self.autocommit.load(Ordering::Relaxed)
    }

    pub(crate) fn set_autocommit(&self, on: bool) {
        self.autocommit.store(on, Ordering::Relaxed);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Slot>> {
        self.slot
            .lock()
            .map_err(|_| error(Status::Internal, "pgarrow: the session's lock was poisoned"))
    }

    /// Takes the client for a statement, after draining a result set left open (see the
    /// module's notes; with `cancel`, the result's statement is cancelled instead). With
    /// `begin` and autocommit off, opens the transaction the statement runs in when none is
    /// open. A cancel asked before this point is forgotten: it was for an earlier statement.
    ///
    /// # Errors
    /// A statement of this connection runs on another thread; the connection broke; with
    /// `begin`, the session's transaction failed (only a rollback ends it); the `BEGIN`
    /// failed.
    pub(crate) fn take_settling(&self, begin: bool, cancel: bool) -> Result<Client> {
        let taken = {
            let mut slot = self.lock()?;
            match std::mem::replace(&mut *slot, Slot::Lent) {
                Slot::Ready(client) => Ok(*client),
                Slot::Reading { export, .. } => Err(export),
                Slot::Lent => {
                    return Err(error(
                        Status::InvalidState,
                        "pgarrow: another statement of this connection is running (an ADBC \
                         connection runs one statement at a time)",
                    ));
                }
                Slot::Lost(why) => {
                    *slot = Slot::Lost(why.clone());
                    return Err(error(
                        Status::IO,
                        format!("pgarrow: this connection is unusable: {why}"),
                    ));
                }
            }
        };
        self.renew_stop();
        let client = match taken {
            Ok(client) => client,
            Err(export) => {
                let settled = self.runtime.block_on(settle(*export, cancel));
                match settled {
                    Ok(Some(client)) if client.is_ready() => client,
                    Ok(_) => {
                        let why = "the connection broke while an unread result set was drained";
                        self.give_back(None, why);
                        return Err(error(Status::IO, format!("pgarrow: {why}")));
                    }
                    Err(e) => {
                        let why = format!("an unread result set could not be drained: {e}");
                        self.give_back(None, &why);
                        return Err(error(Status::IO, format!("pgarrow: {why}")));
                    }
                }
            }
        };
        if !begin {
            return Ok(client);
        }
        let mut client = client;
        if client.connection().transaction_status() == TransactionStatus::Failed {
            // The server would refuse it too (25P02), after a round trip.
            self.give_back(Some(client), "the connection broke");
            let e = error(
                Status::InvalidState,
                "pgarrow: connection is in an error state; first rollback (its transaction \
                 failed, and PostgreSQL ignores every statement until it ends)",
            );
            return Err(crate::error::with_sqlstate(e, "25P02"));
        }
        if self.autocommit() {
            return Ok(client);
        }
        if client.connection().transaction_status() == TransactionStatus::Idle {
            let begun = self
                .runtime
                .block_on(client.connection().simple_query("BEGIN"));
            if let Err(e) = begun {
                let e = pgarrow::Error::from(e);
                self.give_back(Some(client), &e.to_string());
                return Err(crate::error::from_pgarrow(&e));
            }
        }
        Ok(client)
    }

    /// [`Session::take_settling`], draining a result set left open.
    pub(crate) fn take(&self, begin: bool) -> Result<Client> {
        self.take_settling(begin, false)
    }

    /// Gives the client back after a statement: ready for the next one, or, when its
    /// connection is no longer usable (or `client` is `None`: it was lost), the session is
    /// lost for `why`.
    pub(crate) fn give_back(&self, client: Option<Client>, why: &str) {
        let slot = match client {
            Some(c) if c.is_ready() => Slot::Ready(Box::new(c)),
            _ => Slot::Lost(why.to_owned()),
        };
        // A poisoned lock leaves the session unusable anyway.
        if let Ok(mut guard) = self.slot.lock() {
            *guard = slot;
        }
    }

    /// Lends the connection to the result set `export` until it ends; the number its reader
    /// reads it by ([`Session::fetch`]).
    pub(crate) fn open_result(&self, export: Export<'static>) -> u64 {
        let id = self.readers.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut guard) = self.slot.lock() {
            *guard = Slot::Reading {
                export: Box::new(export),
                reader: Some(id),
            };
        }
        id
    }

    /// The next batch of the result set reader `id` reads; with `held` (the reader holds a
    /// batch read ahead), only whether it may hand that out.
    ///
    /// # Errors
    /// The result set was drained by a later statement; the connection was cancelled (the
    /// server's cancel error, or one saying so when the server had already sent every row);
    /// the export's error.
    pub(crate) fn fetch(&self, id: u64, held: bool) -> Result<Fetched> {
        let mut export = {
            let mut slot = self.lock()?;
            match std::mem::replace(&mut *slot, Slot::Lent) {
                Slot::Reading {
                    export,
                    reader: Some(reader),
                } if reader == id => export,
                other => {
                    *slot = other;
                    return Err(error(
                        Status::InvalidState,
                        "pgarrow: this result set was closed: the connection ran another \
                         statement (or a commit or rollback) before it was read to its end; \
                         read a result set before the next statement to keep its rows",
                    ));
                }
            }
        };
        if self.stop().is_stopped() {
            self.renew_stop();
            // The CancelRequest went out already; drain to see the server's answer.
            let drained = self.runtime.block_on(drain(&mut export));
            let client = self.runtime.block_on(export.into_client());
            let why = "the connection broke while a cancelled result set was drained";
            self.give_back(client.ok().flatten(), why);
            return Err(match drained {
                Err(e) => crate::error::from_pgarrow(&e),
                Ok(()) => cancelled_error(),
            });
        }
        if held {
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Slot::Reading {
                    export,
                    reader: Some(id),
                };
            }
            return Ok(Fetched::Held);
        }
        match self.runtime.block_on(export.next_batch()) {
            Ok(Some(batch)) => {
                if let Ok(mut slot) = self.slot.lock() {
                    *slot = Slot::Reading {
                        export,
                        reader: Some(id),
                    };
                }
                Ok(Fetched::Batch(batch))
            }
            Ok(None) => {
                let client = self.runtime.block_on(export.into_client());
                let why = "the connection broke at the end of a result set";
                self.give_back(client.ok().flatten(), why);
                Ok(Fetched::End)
            }
            Err(e) => {
                let client = self.runtime.block_on(export.into_client());
                self.give_back(client.ok().flatten(), &e.to_string());
                Err(crate::error::from_pgarrow(&e))
            }
        }
    }

    /// Reader `id` was released: its result set, when still open, waits for the session's
    /// next use, which drains it.
    pub(crate) fn release_result(&self, id: u64) {
        if let Ok(mut slot) = self.slot.lock()
            && let Slot::Reading { reader, .. } = &mut *slot
            && *reader == Some(id)
        {
            *reader = None;
        }
    }

    /// Runs one statement's work on the client: `work` gets the client and hands it back
    /// with its result. With `begin`, the statement runs in the session's transaction (see
    /// [`Session::take`]).
    ///
    /// # Errors
    /// As [`Session::take`], and `work`'s error.
    pub(crate) fn run<T, F, Fut>(&self, begin: bool, work: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = (Client, Result<T>)>,
    {
        let client = self.take(begin)?;
        let (client, result) = self.runtime.block_on(work(client));
        let why = match &result {
            Err(e) => e.message.clone(),
            Ok(_) => "the connection broke".to_owned(),
        };
        self.give_back(Some(client), &why);
        result
    }

    /// Runs `sql` (any statements) and returns the row count of its last command.
    pub(crate) fn execute(&self, sql: &str, begin: bool) -> Result<Option<u64>> {
        let sql = sql.to_owned();
        self.run(begin, |mut client| async move {
            let result = client.connection().execute(&sql).await;
            (client, result.map_err(pgarrow::Error::from).or_adbc())
        })
    }

    /// The rows of each of `queries` (catalog reads), run one after another, as text.
    pub(crate) fn simple_queries(
        &self,
        queries: Vec<String>,
    ) -> Result<Vec<Vec<pgarrow::protocol::TextRow>>> {
        self.run(false, |mut client| async move {
            let mut results = Vec::with_capacity(queries.len());
            for sql in &queries {
                match client.connection().simple_query(sql).await {
                    Ok(rows) => results.push(rows),
                    Err(e) => return (client, Err(pgarrow::Error::from(e)).or_adbc()),
                }
            }
            (client, Ok(results))
        })
    }

    /// The first column of the first row `sql` returns, as text.
    pub(crate) fn query_value(&self, sql: &str) -> Result<Option<String>> {
        let sql = sql.to_owned();
        self.run(false, |mut client| async move {
            let rows = client.connection().simple_query(&sql).await;
            let value = rows.map(|rows| rows.into_iter().next().and_then(|r| r.into_iter().next()));
            let value = value.map(Option::flatten).map_err(pgarrow::Error::from);
            (client, value.or_adbc())
        })
    }

    /// Where the session stands.
    pub(crate) fn state(&self) -> State {
        let Ok(mut slot) = self.lock() else {
            return State::Unknown;
        };
        match &mut *slot {
            Slot::Ready(client) => match client.connection().transaction_status() {
                TransactionStatus::Idle => State::Idle,
                TransactionStatus::InBlock => State::InTransaction,
                TransactionStatus::Failed => State::InError,
            },
            Slot::Lent | Slot::Reading { .. } => State::Active,
            Slot::Lost(_) => State::Unknown,
        }
    }
}

/// Reads `export` to its end, dropping its rows.
async fn drain(export: &mut Export<'static>) -> pgarrow::Result<()> {
    while export.next_batch().await?.is_some() {}
    Ok(())
}

/// Ends a result set left open and gives its client back: drained to its end, or with
/// `cancel`, its statement cancelled. An error the rest of the result carried (its
/// statement failed after the rows that were read) is the result's, not the next
/// statement's: the connection is back, and in a transaction block the transaction has
/// failed, which the next statement will hear from the server.
async fn settle(mut export: Export<'static>, cancel: bool) -> pgarrow::Result<Option<Client>> {
    if !cancel {
        let _ = drain(&mut export).await;
    }
    export.into_client().await
}

/// The error of a fetch after a cancel, when the server had sent every row before the cancel
/// reached it: the server's wording and SQLSTATE, as if it had been in time.
fn cancelled_error() -> adbc_core::error::Error {
    let e = error(
        Status::Cancelled,
        "pgarrow: canceling statement due to user request (the result set was cancelled)",
    );
    crate::error::with_sqlstate(e, "57014")
}

impl Drop for Session {
    fn drop(&mut self) {
        let Ok(slot) = self.slot.get_mut() else {
            return;
        };
        match std::mem::replace(slot, Slot::Lent) {
            // Terminate politely; an open transaction rolls back with the session.
            Slot::Ready(client) => {
                let _ = self.runtime.block_on(client.close());
            }
            // A result set left open: stop its statement, then close the socket.
            Slot::Reading { export, .. } => {
                let token = export.cancel_token();
                let wait = std::time::Duration::from_secs(1);
                let _ = self
                    .runtime
                    .block_on(async { tokio::time::timeout(wait, token.cancel()).await });
                drop(export);
            }
            Slot::Lent | Slot::Lost(_) => {}
        }
    }
}
