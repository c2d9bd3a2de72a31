//! A conformance fake PostgreSQL server on pgwire's server API: a well-formed server that
//! does legal but unusual things.
//!
//! Why pgwire here, when `fault_server.rs` writes bytes by hand: the faults there are bytes no
//! well-formed server writes, while the cases here are all legal protocol, so every message is
//! built and framed by pgwire's encoders, and startup and authentication run through pgwire's
//! own handlers: its `AuthDriver` with the cleartext, md5 and SCRAM-SHA-256 mechanisms, and
//! its `DefaultServerParameterProvider` (with the `server_version` a test asks for).
//!
//! Each simple query is answered by a [`Script`]: pgwire backend messages written in order,
//! then ReadyForQuery. That is how a NoticeResponse or ParameterStatus between CopyData
//! messages, empty CopyData messages, or rows split across CopyData messages are sent: pgwire's
//! high-level COPY API (`send_copy_out_response`) never sends those (it drops empty CopyData
//! messages, sends nothing between them, and counts one row per message).

#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::sink::{Sink, SinkExt};
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::md5pass::{Md5PasswordAuth, hash_md5_password};
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::scram::{
    SCRAM_ITERATIONS, ScramAuth, ScramSecret, gen_salted_password,
};
use pgwire::api::auth::{
    AuthDriver, AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    cleartext::CleartextPasswordAuth,
};
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{CopyEncoder, DataRowEncoder, FieldFormat, FieldInfo, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::data::RowDescription;
use pgwire::messages::response::{NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

#[path = "accept.rs"]
mod accept;

/// The user every test connects as.
pub const USER: &str = "conformance";

/// How the server authenticates the client.
#[derive(Debug, Clone)]
pub enum Auth {
    /// AuthenticationOk right after the startup packet.
    Trust,
    /// AuthenticationCleartextPassword, then this password.
    Cleartext(String),
    /// AuthenticationMD5Password (with [`MD5_SALT`]), then md5 of this password.
    Md5(String),
    /// SASL SCRAM-SHA-256 with this password ([`SCRAM_SALT`], 4096 iterations).
    ScramSha256(String),
    /// SCRAM-SHA-256 that accepts the client's proof for `password` but signs its final
    /// message with the server key of `signing_password`: a server that does not know the
    /// password (a man in the middle relaying the client's proof).
    ScramSha256ForgedSignature {
        /// The password the client's proof is checked against.
        password: String,
        /// The password whose server key signs the server-final message.
        signing_password: String,
    },
}

/// The md5 salt: bytes that are not ASCII, as a real server's random salt often has.
pub const MD5_SALT: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
/// The SCRAM salt.
pub const SCRAM_SALT: &[u8] = b"conformance-salt";

/// The answer to one simple query: these messages, then ReadyForQuery (idle).
pub type Script = Arc<dyn Fn(&str) -> Vec<PgWireBackendMessage> + Send + Sync>;

/// A running conformance server on a fresh port of 127.0.0.1. It stops accepting when
/// dropped; connections already open end when their client goes.
pub struct ConformanceServer {
    accept: accept::Acceptor,
    queries: Arc<Mutex<Vec<String>>>,
}

impl ConformanceServer {
    /// Starts a server that authenticates with `auth`, reports `server_version` at startup
    /// (with pgwire's other default parameters: `client_encoding` UTF8, `TimeZone` Etc/UTC,
    /// ...), and answers each query with `script(sql)`.
    ///
    /// The listener is bound before this returns, so a client may connect at once.
    pub async fn start(
        auth: Auth,
        server_version: &str,
        script: impl Fn(&str) -> Vec<PgWireBackendMessage> + Send + Sync + 'static,
    ) -> ConformanceServer {
        let queries = Arc::new(Mutex::new(Vec::new()));
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = server_version.to_owned();
        let handlers = Arc::new(Handlers {
            startup: Arc::new(Startup {
                driver: AuthDriver::new(Arc::new(parameters)),
                mechanism: mechanism(auth),
            }),
            query: Arc::new(Scripted {
                script: Arc::new(script),
                queries: queries.clone(),
            }),
        });
        let accept = accept::Acceptor::start(move |socket| {
            let handlers = handlers.clone();
            async move {
                let _ = pgwire::tokio::process_socket(socket, None, handlers).await;
            }
        })
        .await;
        ConformanceServer { accept, queries }
    }

    /// A URL for [`USER`], without TLS and without a password.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{USER}@{}/conformance?sslmode=disable",
            self.accept.addr()
        )
    }

    /// The SQL of every query received so far, in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

/// The mechanism for `auth`; `None` is trust.
fn mechanism(auth: Auth) -> Option<Arc<dyn AuthMechanismFactory>> {
    Some(match auth {
        Auth::Trust => return None,
        Auth::Cleartext(p) => Arc::new(CleartextPasswordAuth::new(Arc::new(Source::Plain(p)))),
        Auth::Md5(p) => Arc::new(Md5PasswordAuth::new(Arc::new(Source::Md5(p)))),
        Auth::ScramSha256(p) => Arc::new(ScramAuth::new(Arc::new(Source::Scram {
            password: p.clone(),
            signing_password: p,
        }))),
        Auth::ScramSha256ForgedSignature {
            password,
            signing_password,
        } => Arc::new(ScramAuth::new(Arc::new(Source::Scram {
            password,
            signing_password,
        }))),
    })
}

/// The user's password, in the form its mechanism asks for.
#[derive(Debug)]
enum Source {
    /// The password itself: pgwire's cleartext mechanism compares it with the client's.
    Plain(String),
    /// `md5(md5(password + user) + salt)` with [`MD5_SALT`]: pgwire's md5 mechanism sends
    /// the salt and compares the hash with the client's.
    Md5(String),
    /// A SCRAM verifier: the client's proof is checked against the stored key of `password`,
    /// the server-final message is signed with the server key of `signing_password`.
    Scram {
        password: String,
        signing_password: String,
    },
}

// `LoginInfo` without `<'_>`, as in the trait: async_trait makes a written `'_` an early-bound
// lifetime, which no longer matches the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait]
impl AuthSource for Source {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Ok(match self {
            Source::Plain(p) | Source::Scram { password: p, .. } => {
                Password::new(None, p.clone().into_bytes())
            }
            Source::Md5(p) => Password::new(
                Some(MD5_SALT.to_vec()),
                hash_md5_password(login.user().unwrap_or_default(), p, &MD5_SALT).into_bytes(),
            ),
        })
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let Source::Scram {
            password,
            signing_password,
        } = self
        else {
            return Err(PgWireError::InvalidPassword(
                login.user().unwrap_or_default().to_owned(),
            ));
        };
        let (
            ScramSecret::Verifier {
                salt,
                iterations,
                stored_key,
                ..
            },
            ScramSecret::Verifier { server_key, .. },
        ) = (scram_verifier(password), scram_verifier(signing_password))
        else {
            unreachable!("verifier_from_salted_password makes verifiers");
        };
        let verifier = ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        };
        Ok((verifier, None))
    }
}

/// The verifier PostgreSQL would store for `password` (salt [`SCRAM_SALT`], 4096 iterations).
fn scram_verifier(password: &str) -> ScramSecret {
    ScramSecret::verifier_from_salted_password(
        SCRAM_SALT.to_vec(),
        gen_salted_password(password, SCRAM_SALT, SCRAM_ITERATIONS),
        SCRAM_ITERATIONS,
    )
}

struct Handlers {
    startup: Arc<Startup>,
    query: Arc<Scripted>,
}

impl PgWireServerHandlers for Handlers {
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.query.clone()
    }
}

/// Startup as pgwire's built-in `*AuthStartupHandler`s do it, with the mechanism chosen per
/// server, and trust as AuthenticationOk straight after the startup packet.
struct Startup {
    driver: AuthDriver<Arc<DefaultServerParameterProvider>>,
    mechanism: Option<Arc<dyn AuthMechanismFactory>>,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                pgwire::api::auth::protocol_negotiation(client, startup).await?;
                pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                match &self.mechanism {
                    None => AuthOutcome::Authenticated {
                        identity: None,
                        final_message: None,
                    },
                    Some(factory) => {
                        self.driver
                            .begin_authentication(client, factory.create())
                            .await?
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.driver.advance_authentication(client, message).await?
            }
            _ => return Ok(()),
        };
        if let AuthOutcome::Authenticated { final_message, .. } = outcome {
            self.driver
                .complete_authentication(client, final_message)
                .await?;
        }
        Ok(())
    }
}

/// Answers every simple query with its script.
struct Scripted {
    script: Script,
    queries: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl SimpleQueryHandler for Scripted {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.queries.lock().unwrap().push(query.query.clone());
        // One write (and flush) per message: the client sees them in as many pieces as the
        // socket happens to deliver.
        for message in (self.script)(&query.query) {
            client.send(message).await?;
        }
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_query` answers every query itself.
        Ok(Vec::new())
    }
}

/// Backend messages, built with pgwire's types.
pub mod msg {
    use super::*;

    /// CopyOutResponse for a binary COPY of `ncols` columns.
    pub fn copy_out_response(ncols: i16) -> PgWireBackendMessage {
        PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            1,
            ncols,
            vec![1; ncols as usize],
        ))
    }

    /// CopyData carrying `payload` (which may be empty).
    pub fn copy_data(payload: &[u8]) -> PgWireBackendMessage {
        PgWireBackendMessage::CopyData(CopyData::new(payload.to_vec().into()))
    }

    /// CopyDone.
    pub fn copy_done() -> PgWireBackendMessage {
        PgWireBackendMessage::CopyDone(CopyDone::new())
    }

    /// CommandComplete with this tag (`COPY 2`).
    pub fn complete(tag: &str) -> PgWireBackendMessage {
        let (command, rows) = tag.split_once(' ').expect("a tag with a row count");
        PgWireBackendMessage::CommandComplete(
            Tag::new(command)
                .with_rows(rows.parse().expect("a row count"))
                .into(),
        )
    }

    /// NoticeResponse: `severity` is the localized severity (field `S`), `nonlocalized` the
    /// English one (field `V`, sent by PostgreSQL 9.6 and later).
    pub fn notice(
        severity: &str,
        nonlocalized: Option<&str>,
        code: &str,
        message: &str,
    ) -> PgWireBackendMessage {
        let mut info = ErrorInfo::new(severity.to_owned(), code.to_owned(), message.to_owned());
        info.severity_nonlocalized = nonlocalized.map(str::to_owned);
        PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info))
    }

    /// ParameterStatus.
    pub fn parameter(name: &str, value: &str) -> PgWireBackendMessage {
        PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
            name.to_owned(),
            value.to_owned(),
        ))
    }

    /// The answer to `SELECT 1`: one int4 column `x`, one row `1`, `SELECT 1`.
    pub fn select_one() -> Vec<PgWireBackendMessage> {
        let field = FieldInfo::new("x".to_owned(), None, None, Type::INT4, FieldFormat::Text);
        let description = RowDescription::new(vec![(&field).into()]);
        let mut row = DataRowEncoder::new(Arc::new(vec![field]));
        row.encode_field(&1i32).expect("encode 1");
        vec![
            PgWireBackendMessage::RowDescription(description),
            PgWireBackendMessage::DataRow(row.take_row()),
            complete("SELECT 1"),
        ]
    }

    /// A binary COPY stream (`int4`, `text`) of these rows, as pgwire's `CopyEncoder` writes
    /// it: the header and the first tuple, each later tuple, then the trailer.
    pub fn binary_copy(rows: &[(i32, Option<&str>)]) -> Vec<u8> {
        let schema = Arc::new(vec![
            FieldInfo::new("id".to_owned(), None, None, Type::INT4, FieldFormat::Binary),
            FieldInfo::new(
                "name".to_owned(),
                None,
                None,
                Type::TEXT,
                FieldFormat::Binary,
            ),
        ]);
        let mut encoder = CopyEncoder::new_binary(schema);
        let mut stream = Vec::new();
        for (id, name) in rows {
            encoder.encode_field(id).expect("encode int4");
            encoder.encode_field(name).expect("encode text");
            stream.extend_from_slice(&encoder.take_copy().data);
        }
        if rows.is_empty() {
            // The encoder writes the header with the first tuple only.
            stream.extend_from_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        }
        stream.extend_from_slice(&CopyEncoder::finish_copy_binary().data);
        stream
    }
}
