//! Fault injection at the protocol level, against a scripted fake server: server errors at
//! every point of a COPY, frames cut short, the connection closed at every byte, unknown
//! messages, absurd lengths, a server that stops answering, and cancellation (also over TLS).
//! Each case checks the exact error class, that nothing panics, and what state the
//! connection is left in.

#[path = "support/fault_server.rs"]
mod fault_server;

use std::time::{Duration, Instant};

use fault_server::{End, ErrorAt, Event, FaultServer, KEY, PID, Script, Wait, msg};
use pgarrow_protocol::{Config, Connection, CopyOut, Error, ErrorKind};

async fn connect(server: &FaultServer, extra: &str) -> Result<Connection, Error> {
    Connection::connect(&Config::parse(&server.url(extra)).unwrap()).await
}

/// Reads a COPY to its end: the bytes and the error, if any.
async fn drain(copy: &mut CopyOut<&mut Connection>) -> (Vec<u8>, Option<Error>) {
    let mut data = Vec::new();
    loop {
        match copy.fill().await {
            Ok([]) => return (data, None),
            Ok(chunk) => {
                let n = chunk.len();
                data.extend_from_slice(chunk);
                copy.consume(n);
            }
            Err(e) => return (data, Some(e)),
        }
    }
}

/// What an error must look like.
type Check = fn(&Error) -> bool;

const COPY_SQL: &str = "COPY (SELECT g FROM t) TO STDOUT (FORMAT binary)";

/// Login, then COPY with `copy` as the server's answer, then a `SELECT 1` that answers `1`;
/// then `end`.
fn copy_script(copy: Vec<u8>, end: End) -> Script {
    Script {
        end,
        ..Script::new(vec![
            (Wait::Startup, msg::login()),
            (Wait::Query, copy),
            (Wait::Query, select_one()),
        ])
    }
}

/// A server answering the COPY with `copy` after a login (and nothing after: then `end`), and
/// a connection to it with the URL parameters `extra`.
async fn serve_copy(copy: Vec<u8>, end: End, extra: &str) -> (FaultServer, Connection) {
    let mut script = copy_script(copy, end);
    script.turns.truncate(2);
    let server = FaultServer::start(script).await;
    let conn = connect(&server, extra).await.unwrap();
    (server, conn)
}

/// The CancelRequest every scripted session's cancel sends.
fn cancel_event(tls: bool) -> Event {
    Event::Cancel {
        pid: PID,
        key: KEY,
        tls,
    }
}

fn select_one() -> Vec<u8> {
    [
        msg::row_description(&[("x", 23)]),
        msg::data_row(&[Some("1")]),
        msg::complete("SELECT 1"),
        msg::ready(),
    ]
    .concat()
}

fn is_closed(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Closed)
}

fn is_protocol(e: &Error, needle: &str) -> bool {
    matches!(e.kind(), ErrorKind::Protocol(m) if m.contains(needle))
}

/// Waits (polling, with a deadline) until the server saw a CancelRequest.
async fn wait_for_cancel(server: &FaultServer) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cancels = server.cancels();
        if !cancels.is_empty() {
            return cancels;
        }
        assert!(Instant::now() < deadline, "no CancelRequest arrived");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn server_errors_at_every_point_of_a_copy() {
    // The COPY data bytes handed out before the error; at `Start`, copy_out itself fails.
    let cases = [
        (ErrorAt::Start, 0),
        (ErrorAt::Header, 0),
        (ErrorAt::BetweenRows, 19 + 2 * 10),
        (ErrorAt::Trailer, 19 + 10 + 2),
        (ErrorAt::CopyDone, 19 + 10 + 2),
    ];
    for (case, bytes) in cases {
        let server = FaultServer::start(copy_script(msg::copy_failing(case), End::Idle)).await;
        let mut conn = connect(&server, "").await.unwrap();
        let err = match conn.copy_out(COPY_SQL).await {
            Err(e) => e,
            Ok(mut copy) => {
                let (data, err) = drain(&mut copy).await;
                assert_eq!(data.len(), bytes, "{case:?}");
                err.unwrap_or_else(|| panic!("{case:?}: the COPY should fail"))
            }
        };
        assert_eq!(err.code(), Some("22012"), "{case:?}: {err}");
        assert_eq!(err.to_string(), "ERROR: division by zero (SQLSTATE 22012)");
        // The error ended the statement cleanly: the connection is usable.
        assert!(conn.is_ready(), "{case:?}");
        assert_eq!(
            conn.simple_query("SELECT 1").await.unwrap().len(),
            1,
            "{case:?}"
        );
        assert!(server.cancels().is_empty(), "{case:?}: no cancel needed");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_fatal_error_mid_copy_ends_the_session_at_once() {
    // pg_terminate_backend: FATAL 57P01, then the server hangs up (no ReadyForQuery).
    let fatal = msg::error(
        "FATAL",
        "57P01",
        "terminating connection due to administrator command",
    );
    let (server, mut conn) = serve_copy(msg::copy_row_1_then(&[fatal]), End::Close, "").await;
    let mut copy = conn.copy_out(COPY_SQL).await.unwrap();
    let (data, err) = drain(&mut copy).await;
    let err = err.unwrap();
    assert_eq!(data.len(), 19 + 10);
    assert_eq!(err.code(), Some("57P01"), "{err}");
    drop(copy);
    assert!(!conn.is_ready());
    let err = conn.simple_query("SELECT 1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Broken(_)), "{err}");
    assert!(err.to_string().contains("administrator command"), "{err}");
    // The server said the session is over: nothing to cancel.
    assert!(server.cancels().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn broken_frames() {
    let header = msg::copy_header();
    let half_tuple = [1i16.to_be_bytes().as_slice(), &4i32.to_be_bytes(), &[0, 0]].concat();
    let unknown = msg::raw(b'!', b"what is this");
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        // A frame cut mid-field, then the connection closes.
        (
            "truncated frame",
            [
                msg::copy_out_response(1),
                msg::copy_data(&[header.clone(), half_tuple.clone()].concat())[..19 + 5 + 6]
                    .to_vec(),
            ]
            .concat(),
            is_closed,
        ),
        // An unknown message type in the middle of the COPY.
        (
            "unknown message type",
            [msg::copy_out_response(1), msg::copy_data(&header), unknown].concat(),
            |e| is_protocol(e, "malformed message '!' during COPY: unknown message tag"),
        ),
        // A message claiming 2 GiB: refused before any buffer grows.
        (
            "2 GiB CommandComplete",
            [
                msg::copy_out_response(1),
                msg::copy_data(&header),
                vec![b'C', 0x7f, 0xff, 0xff, 0xff],
            ]
            .concat(),
            |e| is_protocol(e, "claims 2147483647 bytes, over the 67108864-byte limit"),
        ),
        // A negative length.
        (
            "negative CopyData length",
            [
                msg::copy_out_response(1),
                vec![b'd', 0xff, 0xff, 0xff, 0xf0],
            ]
            .concat(),
            |e| is_protocol(e, "invalid length -16"),
        ),
        // CopyData claiming 2 GiB is streamed, not buffered: what arrives is handed out,
        // then the close is reported.
        (
            "2 GiB CopyData, then close",
            [
                msg::copy_out_response(1),
                vec![b'd', 0x7f, 0xff, 0xff, 0xff],
                header.clone(),
            ]
            .concat(),
            is_closed,
        ),
        // A message the protocol does not allow during COPY.
        (
            "RowDescription mid-COPY",
            [
                msg::copy_out_response(1),
                msg::row_description(&[("a", 23)]),
            ]
            .concat(),
            |e| is_protocol(e, "unexpected message RowDescription during COPY OUT"),
        ),
        // A malformed error message.
        (
            "unterminated ErrorResponse",
            [msg::copy_out_response(1), msg::raw(b'E', b"SERROR")].concat(),
            |e| matches!(e.kind(), ErrorKind::Protocol(_)),
        ),
    ];
    for (case, copy, expected) in cases {
        let (server, mut conn) = serve_copy(copy, End::Close, "").await;
        let mut copy = conn.copy_out(COPY_SQL).await.unwrap();
        let (_, err) = drain(&mut copy).await;
        let err = err.unwrap_or_else(|| panic!("{case}: should fail"));
        assert!(expected(&err), "{case}: {:?}: {err}", err.kind());
        // A second call reports the failure again instead of reading on.
        assert!(copy.fill().await.is_err(), "{case}");
        drop(copy);
        let again = conn.simple_query("SELECT 1").await.unwrap_err();
        assert!(
            matches!(again.kind(), ErrorKind::Broken(_)),
            "{case}: {again}"
        );
        if !is_closed(&err) {
            // The server may still be running the query: dropping the COPY cancelled it.
            let cancels = wait_for_cancel(&server).await;
            assert_eq!(cancels, [cancel_event(false)], "{case}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_connection_closed_at_every_byte() {
    // Login, a catalog query, then a 20-row COPY: about 700 bytes, cut at each of them.
    let script = Script::new(vec![
        (Wait::Startup, msg::login()),
        (Wait::Query, select_one()),
        (Wait::Query, msg::int4_copy(20)),
    ]);
    let total = script.total_len();
    assert!(total > 400, "{total}");
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for cut in 0..=total {
        let mut s = script.clone();
        s.cut_at = Some(cut);
        let server = FaultServer::start(s).await;
        let result = async {
            let mut conn = connect(&server, "").await?;
            conn.simple_query("SELECT 1").await?;
            let mut copy = conn.copy_out(COPY_SQL).await?;
            let (data, err) = drain(&mut copy).await;
            match err {
                Some(e) => Err(e),
                None => Ok(data.len()),
            }
        }
        .await;
        match result {
            Ok(len) => {
                assert_eq!(cut, total, "only the whole conversation succeeds");
                assert_eq!(len, 19 + 20 * 10 + 2);
            }
            Err(e) => {
                assert!(cut < total);
                assert!(is_closed(&e), "cut at {cut}: {:?}: {e}", e.kind());
                *outcomes.entry(e.to_string()).or_default() += 1;
            }
        }
    }
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        vec!["the server closed the connection unexpectedly"]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn startup_faults() {
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "too many connections",
            msg::error("FATAL", "53300", "sorry, too many clients already"),
            |e| e.code() == Some("53300"),
        ),
        (
            "garbage instead of a message",
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
            |e| matches!(e.kind(), ErrorKind::Protocol(_)),
        ),
        (
            "Kerberos",
            msg::raw(b'R', &2i32.to_be_bytes()),
            |e| matches!(e.kind(), ErrorKind::Auth(m) if m.contains("Kerberos")),
        ),
        (
            "password asked, none given",
            msg::auth_cleartext(),
            |e| matches!(e.kind(), ErrorKind::Auth(m) if m.contains("none was given")),
        ),
        (
            "client_encoding refused",
            [
                msg::auth_ok(),
                msg::param("client_encoding", "LATIN1"),
                msg::ready(),
            ]
            .concat(),
            |e| matches!(e.kind(), ErrorKind::Protocol(m) if m.contains("client_encoding")),
        ),
        (
            "closed before ReadyForQuery",
            [msg::auth_ok(), msg::backend_key()].concat(),
            is_closed,
        ),
    ];
    for (case, reply, expected) in cases {
        let mut script = Script::new(vec![(Wait::Startup, reply)]);
        script.end = End::Close;
        let server = FaultServer::start(script).await;
        // No password anywhere: an empty password file.
        let err = connect(&server, "passfile=/nonexistent").await.unwrap_err();
        assert!(expected(&err), "{case}: {:?}: {err}", err.kind());
    }
    // What pgarrow sends at startup.
    let server = FaultServer::start(copy_script(Vec::new(), End::Idle)).await;
    let _conn = connect(&server, "statement_timeout=1500&application_name=")
        .await
        .unwrap();
    let Event::Startup(params) = &server.events()[0] else {
        panic!("{:?}", server.events());
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("client_encoding"), Some("UTF8"));
    assert_eq!(get("statement_timeout"), Some("1500ms"));
    assert_eq!(get("user"), Some("fault"));
    let server = FaultServer::start(copy_script(Vec::new(), End::Idle)).await;
    let _conn = connect(&server, "").await.unwrap();
    let Event::Startup(params) = &server.events()[0] else {
        panic!();
    };
    assert!(params.contains(&("application_name".into(), "pgarrow".into())));
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_that_stops_answering() {
    // Accepts, reads the startup packet, never answers: connect_timeout fires (libpq's
    // minimum is 2 s).
    let silent = Script {
        turns: vec![(Wait::Startup, Vec::new())],
        cut_at: None,
        end: End::Hang,
    };
    let server = FaultServer::start(silent.clone()).await;
    let start = Instant::now();
    let err = connect(&server, "connect_timeout=1").await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Timeout(_)), "{err}");
    assert!(err.to_string().contains("connect_timeout"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // Stops mid-COPY with the socket open: read_timeout fires, and dropping the COPY sends
    // a cancel (the server may be alive but stuck).
    let (server, mut conn) =
        serve_copy(msg::copy_row_1_then(&[]), End::Hang, "read_timeout=200ms").await;
    let mut copy = conn.copy_out(COPY_SQL).await.unwrap();
    let start = Instant::now();
    let (data, err) = drain(&mut copy).await;
    let err = err.unwrap();
    assert_eq!(data.len(), 19 + 10);
    assert!(matches!(err.kind(), ErrorKind::Timeout(_)), "{err}");
    assert!(err.to_string().contains("read_timeout"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(copy);
    assert_eq!(wait_for_cancel(&server).await.len(), 1);
    assert!(conn.simple_query("SELECT 1").await.is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_a_copy_cancels_it_and_never_reuses_the_connection() {
    let copy = msg::copy_row_1_then(&[msg::copy_data(&msg::int4_tuple(2))]);
    let server = FaultServer::start(copy_script(copy, End::Hang)).await;
    let mut conn = connect(&server, "").await.unwrap();
    let token = conn.cancel_token();
    assert_eq!(token.process_id(), PID);
    assert!(!token.uses_tls());
    let mut copy = conn.copy_out(COPY_SQL).await.unwrap();
    let n = copy.fill().await.unwrap().len();
    copy.consume(n);
    drop(copy);
    assert_eq!(wait_for_cancel(&server).await, [cancel_event(false)]);
    let err = conn.simple_query("SELECT 1").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Broken(m) if m.contains("abandoned")),
        "{err}"
    );
    // An explicit cancel from a token.
    token.cancel().await.unwrap();
    assert_eq!(server.cancels().len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn cancel_requests_use_tls_when_the_session_does() {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    let certs = match pgarrow_testkit::tls::Certs::generate() {
        Ok(certs) => certs,
        Err(e) => {
            pgarrow_testkit::missing(
                "test certificates",
                &format!("openssl could not make them (apt-get install openssl): {e}"),
            );
            return;
        }
    };
    use rustls::pki_types::pem::PemObject;
    let chain: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(certs.server_cert())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(certs.server_key()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let upgrade: fault_server::Upgrade = Arc::new(move |tcp| {
        let acceptor = acceptor.clone();
        Box::pin(async move {
            let tls = acceptor.accept(tcp).await?;
            Ok(Box::new(tls) as Box<dyn fault_server::Io>)
        })
    });
    let script = copy_script(msg::copy_row_1_then(&[]), End::Hang);
    let server = FaultServer::start_with(script, Some(upgrade)).await;
    let url = format!(
        "postgresql://fault@127.0.0.1:{}/fault?sslmode=verify-full&host=pgarrow.test&\
         hostaddr=127.0.0.1&sslrootcert={}",
        server.port(),
        certs.ca_cert().display()
    );
    let mut conn = Connection::connect(&Config::parse(&url).unwrap())
        .await
        .unwrap();
    assert!(conn.is_tls());
    let token = conn.cancel_token();
    assert!(token.uses_tls());
    token.cancel().await.unwrap();
    assert_eq!(server.cancels(), [cancel_event(true)]);
    // Dropped mid-COPY over TLS: the spawned cancel goes over TLS too.
    let mut copy = conn.copy_out(COPY_SQL).await.unwrap();
    let n = copy.fill().await.unwrap().len();
    copy.consume(n);
    drop(copy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.cancels().len() < 2 {
        assert!(Instant::now() < deadline, "no second cancel");
        tokio::task::yield_now().await;
    }
    assert_eq!(server.cancels()[1], server.cancels()[0]);
}
