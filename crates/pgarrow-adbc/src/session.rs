//! One ADBC connection's PostgreSQL session: a pgarrow [`Client`] on a runtime of its own,
//! lent to one statement at a time, with the transaction state ADBC's autocommit asks for.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use adbc_core::error::Status;
use pgarrow::Client;
use pgarrow::protocol::{CancelToken, Config, TransactionStatus};

use crate::error::{OrAdbc, Result, error};

/// Where the session's client is.
#[derive(Debug)]
enum Slot {
    /// Between statements.
    Ready(Box<Client>),
    /// Lent out: a statement runs, or a result set is being read.
    Lent,
    /// The connection broke (why): every later statement says so.
    Lost(String),
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
    /// ADBC's autocommit: off, each statement runs in the transaction the session opens
    /// before it (when none is open), until commit or rollback.
    autocommit: AtomicBool,
}

impl Session {
    /// Connects with `config`.
    pub(crate) fn open(config: Config) -> Result<Arc<Session>> {
        let runtime = pgarrow::blocking::runtime().or_adbc()?;
        let mut client = runtime.block_on(Client::connect(&config)).or_adbc()?;
        Ok(Arc::new(Session {
            cancel: client.connection().cancel_token(),
            runtime,
            config,
            slot: Mutex::new(Slot::Ready(Box::new(client))),
            autocommit: AtomicBool::new(true),
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

    /// What cancels the session's running statement (a CancelRequest to its backend).
    pub(crate) fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
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

    /// Takes the client for a statement. With `begin` and autocommit off, opens the
    /// transaction the statement runs in when none is open.
    ///
    /// # Errors
    /// A result set of this connection is still being read; the connection broke; the
    /// `BEGIN` failed.
    pub(crate) fn take(&self, begin: bool) -> Result<Client> {
        let client = {
            let mut slot = self.lock()?;
            match std::mem::replace(&mut *slot, Slot::Lent) {
                Slot::Ready(client) => *client,
                Slot::Lent => {
                    return Err(error(
                        Status::InvalidState,
                        "pgarrow: a result set of this connection is still open; read it to \
                         its end or release it before the next statement",
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
        if !begin || self.autocommit() {
            return Ok(client);
        }
        let mut client = client;
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

    /// Where the session stands in a transaction (`None` while its client is lent out or
    /// lost).
    pub(crate) fn transaction_status(&self) -> Option<TransactionStatus> {
        match &mut *self.lock().ok()? {
            Slot::Ready(client) => Some(client.connection().transaction_status()),
            _ => None,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(slot) = self.slot.get_mut()
            && let Slot::Ready(client) = std::mem::replace(slot, Slot::Lent)
        {
            // Terminate politely; an open transaction rolls back with the session.
            let _ = self.runtime.block_on(client.close());
        }
    }
}
