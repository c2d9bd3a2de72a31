//! Conformance against a well-formed server that does legal but unusual things, built on
//! pgwire's server API (`support/conformance_server.rs`): notices and parameter reports in the
//! middle of a COPY, empty CopyData messages, rows split across CopyData messages at every
//! byte, other `server_version` strings, and each authentication method the client supports.
//!
//! Each COPY is read three ways, as callers of `CopyOut` do: `fill`/`consume` only; `buffered`
//! first (the synchronous path); and `walk`/`consume_walk` first (a decoder walking CopyData
//! messages itself, as the export pipeline does). Every way must yield exactly the
//! stream the server sent.

#[path = "support/conformance_server.rs"]
mod conformance_server;

use std::future::Future;
use std::time::Duration;

use conformance_server::{Auth, ConformanceServer, msg};
use pgarrow_protocol::{ChannelBinding, Config, Connection, CopyOut, Error, ErrorKind};
use pgarrow_testkit::copy::CopyBuilder;
use pgwire::messages::PgWireBackendMessage;

const COPY_SQL: &str = "COPY (SELECT id, name FROM t) TO STDOUT (FORMAT binary)";

/// The rows of the COPY every case sends: a text value, a NULL, an empty text value.
const ROWS: [(i32, Option<&str>); 3] = [(1, Some("one")), (2, None), (-3, Some(""))];
/// Where each part of [`stream`] starts: the header is 19 bytes, the tuples 17, 14 and 14,
/// the trailer 2.
const ROW1: usize = 19;
const ROW2: usize = 36;
const ROW3: usize = 50;
const TRAILER: usize = 64;
const STREAM_LEN: usize = 66;

/// The binary COPY stream of [`ROWS`], as pgwire's `CopyEncoder` writes it.
fn stream() -> Vec<u8> {
    msg::binary_copy(&ROWS)
}

/// How a COPY is read.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// `fill` and `consume` only.
    Fill,
    /// `buffered` until it says `None`, then `fill`.
    Buffered,
    /// A `walk` over the whole CopyData messages buffered (using only the first half of the
    /// last payload, to leave the rest of it to `buffered`), then `buffered`, then `fill`.
    Walk,
}

const READS: [Read; 3] = [Read::Fill, Read::Buffered, Read::Walk];

/// Reads a COPY to its end, `how`: the payload bytes in order.
async fn read_copy(copy: &mut CopyOut<&mut Connection>, how: Read) -> Result<Vec<u8>, Error> {
    let mut data = Vec::new();
    loop {
        if let Read::Walk = how
            && let Some(mut walk) = copy.walk()
        {
            let buf = walk.buf();
            let mut last = None;
            for payload in walk.by_ref() {
                data.extend_from_slice(&buf[payload.clone()]);
                last = Some(payload);
            }
            let stopped_at = last.filter(|p| p.len() > 1).map(|p| {
                let half = p.start + p.len() / 2;
                data.truncate(data.len() - (p.end - half));
                half
            });
            copy.consume_walk(walk.finish(stopped_at));
        }
        if let Read::Buffered | Read::Walk = how {
            while let Some(chunk) = copy.buffered() {
                let n = chunk.len();
                assert!(n > 0, "buffered() handed out an empty slice");
                data.extend_from_slice(chunk);
                copy.consume(n);
            }
        }
        let chunk = copy.fill().await?;
        if chunk.is_empty() {
            return Ok(data);
        }
        let n = chunk.len();
        data.extend_from_slice(chunk);
        copy.consume(n);
    }
}

/// Fails the test instead of hanging when the client waits for something that never comes.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 10 s"))
}

/// Connects as [`conformance_server::USER`] with `password`, without consulting the
/// environment (`PGPASSWORD`, `PGPASSFILE`, ...).
async fn connect(server: &ConformanceServer, password: Option<&str>) -> Result<Connection, Error> {
    connect_with(server, password, |_| {}).await
}

async fn connect_with(
    server: &ConformanceServer,
    password: Option<&str>,
    tweak: impl FnOnce(&mut Config),
) -> Result<Connection, Error> {
    let mut config = Config::parse_with_env(&server.url(), &|_| None).unwrap();
    config.password = password.map(str::to_owned);
    tweak(&mut config);
    within("connecting", Connection::connect(&config)).await
}

/// Runs `sql` as a COPY, read `how`: the payload and the row count of CommandComplete.
async fn copy(conn: &mut Connection, sql: &str, how: Read) -> (Vec<u8>, Option<u64>) {
    within(&format!("COPY read by {how:?}"), async {
        let mut copy = conn.copy_out(sql).await.expect("copy_out");
        assert!(copy.is_binary());
        let data = read_copy(&mut copy, how)
            .await
            .unwrap_or_else(|e| panic!("reading the COPY by {how:?}: {e}"));
        (data, copy.rows())
    })
    .await
}

/// `SELECT 1` answers `1`: the connection is in step with the server.
async fn assert_in_step(conn: &mut Connection) {
    assert!(conn.is_ready());
    let rows = within("SELECT 1", conn.simple_query("SELECT 1"))
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![Some("1".to_owned())]]);
}

/// The script of a server that answers `SELECT 1` and any COPY with `copy_answer`.
fn copy_server_script(
    copy_answer: impl Fn(&str) -> Vec<PgWireBackendMessage> + Send + Sync + 'static,
) -> impl Fn(&str) -> Vec<PgWireBackendMessage> + Send + Sync + 'static {
    move |sql| {
        if sql == "SELECT 1" {
            msg::select_one()
        } else {
            copy_answer(sql)
        }
    }
}

async fn trust_server(
    copy_answer: impl Fn(&str) -> Vec<PgWireBackendMessage> + Send + Sync + 'static,
) -> ConformanceServer {
    ConformanceServer::start(Auth::Trust, "17.2", copy_server_script(copy_answer)).await
}

#[test]
fn the_stream_is_the_binary_copy_format() {
    let four = |v: i32| v.to_be_bytes();
    let expected = CopyBuilder::new()
        .row(&[Some(&four(1)), Some(b"one")])
        .row(&[Some(&four(2)), None])
        .row(&[Some(&four(-3)), Some(b"")])
        .trailer()
        .finish();
    let s = stream();
    assert_eq!(s, expected);
    assert_eq!(s.len(), STREAM_LEN);
    assert_eq!(&s[..11], b"PGCOPY\n\xff\r\n\0");
    for start in [ROW1, ROW2, ROW3] {
        assert_eq!(s[start..start + 2], 2i16.to_be_bytes(), "tuple at {start}");
    }
    assert_eq!(s[TRAILER..], (-1i16).to_be_bytes());
    assert_eq!(msg::binary_copy(&[]).len(), 21);
}

/// Case 1: NoticeResponse and ParameterStatus before, between and inside the rows of a COPY
/// (a row split across two CopyData messages with both in between), after CopyDone, and
/// before CopyOutResponse. A notice may carry a localized severity (`S`) beside the English
/// one (`V`), or, from a server before 9.6, only `S`.
#[tokio::test]
async fn notices_and_parameter_reports_in_the_middle_of_a_copy() {
    let s = stream();
    let server = trust_server(move |_| {
        let n = |sev, v, code, m| msg::notice(sev, v, code, m);
        vec![
            n("NOTICE", Some("NOTICE"), "00000", "before CopyOutResponse"),
            msg::copy_out_response(2),
            n("NOTICE", Some("NOTICE"), "00000", "before any data"),
            msg::copy_data(&s[..ROW1 + 5]),
            msg::parameter("TimeZone", "Asia/Kathmandu"),
            n("HINWEIS", Some("NOTICE"), "00000", "in the middle of a row"),
            msg::copy_data(&s[ROW1 + 5..ROW2]),
            msg::parameter("in_hot_standby", "on"),
            msg::copy_data(&s[ROW2..ROW3]),
            n("WARNING", None, "01000", "a notice without field V"),
            msg::copy_data(&s[ROW3..]),
            msg::copy_done(),
            n("NOTICE", Some("NOTICE"), "00000", "after CopyDone"),
            msg::parameter("is_superuser", "off"),
            msg::complete("COPY 3"),
        ]
    })
    .await;
    for how in READS {
        let mut conn = connect(&server, None).await.unwrap();
        assert_eq!(conn.parameter("TimeZone"), Some("Etc/UTC"));
        assert_eq!(conn.parameter("in_hot_standby"), Some("off"));
        assert_eq!(conn.parameter("is_superuser"), Some("on"));
        assert!(conn.take_notices().is_empty());

        let (data, rows) = copy(&mut conn, COPY_SQL, how).await;
        assert_eq!(data, stream(), "{how:?}");
        assert_eq!(rows, Some(3), "{how:?}");
        let notices: Vec<(String, String, String)> = conn
            .take_notices()
            .into_iter()
            .map(|n| (n.severity, n.code, n.message))
            .collect();
        let expected = [
            ("NOTICE", "00000", "before CopyOutResponse"),
            ("NOTICE", "00000", "before any data"),
            ("NOTICE", "00000", "in the middle of a row"),
            ("WARNING", "01000", "a notice without field V"),
            ("NOTICE", "00000", "after CopyDone"),
        ]
        .map(|(s, c, m)| (s.to_owned(), c.to_owned(), m.to_owned()));
        assert_eq!(notices, expected, "{how:?}");
        assert_eq!(
            conn.parameter("TimeZone"),
            Some("Asia/Kathmandu"),
            "{how:?}"
        );
        assert_eq!(conn.parameter("in_hot_standby"), Some("on"), "{how:?}");
        assert_eq!(conn.parameter("is_superuser"), Some("off"), "{how:?}");
        assert_in_step(&mut conn).await;
    }
}

/// Case 2: CopyData messages with no payload, at the start, between rows, inside a row,
/// several in a row, after the trailer; and a COPY of no rows whose header is split by one.
#[tokio::test]
async fn empty_copy_data_messages_are_skipped() {
    let s = stream();
    let empty_stream = msg::binary_copy(&[]);
    let server = trust_server(move |sql| {
        let empty = || msg::copy_data(&[]);
        if sql.contains("no rows") {
            return vec![
                msg::copy_out_response(2),
                empty(),
                msg::copy_data(&empty_stream[..11]),
                empty(),
                msg::copy_data(&empty_stream[11..]),
                empty(),
                msg::copy_done(),
                msg::complete("COPY 0"),
            ];
        }
        vec![
            msg::copy_out_response(2),
            empty(),
            empty(),
            msg::copy_data(&s[..ROW2]),
            empty(),
            msg::copy_data(&s[ROW2..ROW2 + 4]),
            empty(),
            msg::copy_data(&s[ROW2 + 4..ROW3]),
            empty(),
            empty(),
            empty(),
            msg::copy_data(&s[ROW3..TRAILER]),
            msg::copy_data(&s[TRAILER..]),
            empty(),
            msg::copy_done(),
            msg::complete("COPY 3"),
        ]
    })
    .await;
    let mut conn = connect(&server, None).await.unwrap();
    for how in READS {
        let (data, rows) = copy(&mut conn, COPY_SQL, how).await;
        assert_eq!(data, stream(), "{how:?}");
        assert_eq!(rows, Some(3), "{how:?}");
        let (data, rows) = copy(&mut conn, "COPY (SELECT 1 WHERE false) -- no rows", how).await;
        assert_eq!(data, msg::binary_copy(&[]), "{how:?}");
        assert_eq!(rows, Some(0), "{how:?}");
        assert_in_step(&mut conn).await;
    }
    assert!(conn.take_notices().is_empty());
}

/// Case 3: the stream in two CopyData messages, cut at every byte (0 and the end included:
/// an empty message then the whole stream, and the reverse), and in one message per byte.
#[tokio::test]
async fn rows_split_across_copy_data_at_every_byte() {
    let s = stream();
    let server = trust_server(move |sql| {
        let mut answer = vec![msg::copy_out_response(2)];
        match sql.rsplit_once("split at ") {
            Some((_, at)) => {
                let at: usize = at.parse().unwrap();
                answer.push(msg::copy_data(&s[..at]));
                answer.push(msg::copy_data(&s[at..]));
            }
            None => answer.extend(s.chunks(1).map(msg::copy_data)),
        }
        answer.extend([msg::copy_done(), msg::complete("COPY 3")]);
        answer
    })
    .await;
    let mut conn = connect(&server, None).await.unwrap();
    for how in READS {
        for at in 0..=STREAM_LEN {
            let sql = format!("{COPY_SQL} -- split at {at}");
            let (data, rows) = copy(&mut conn, &sql, how).await;
            assert_eq!(data, stream(), "split at {at}, read by {how:?}");
            assert_eq!(rows, Some(3), "split at {at}, read by {how:?}");
        }
        let (data, rows) = copy(&mut conn, &format!("{COPY_SQL} -- a byte each"), how).await;
        assert_eq!(data, stream(), "a message per byte, read by {how:?}");
        assert_eq!(rows, Some(3), "a message per byte, read by {how:?}");
    }
    assert_in_step(&mut conn).await;
    assert_eq!(server.queries().len(), 3 * (STREAM_LEN + 2) + 1);
}

/// Case 4: `server_version_num` as `Connection::server_version_num` documents it: derived
/// from `server_version`, `major * 10000 + minor` from 10 on, `major * 10000 + minor * 100 +
/// patch` before; whatever follows the numbers (a distribution's suffix, `devel`) is ignored,
/// and 0 when there is no number.
///
/// Pre-releases: PostgreSQL's own `server_version_num` of a beta or release candidate is
/// that of its `.0` release (`18beta1` is 180000, `9.6rc1` is 90600; `PG_VERSION_NUM` in
/// `pg_config.h`); the digits after `beta`/`rc` are not a minor version.
#[tokio::test]
async fn server_version_num_from_other_server_versions() {
    let releases = [
        ("9.6.24", 90_624),
        ("8.4.22", 80_422),
        ("10.23", 100_023),
        ("17.2 (Debian 17.2-1.pgdg120+1)", 170_002),
        ("16.6-pgwire-0.42.1", 160_006),
        ("18devel", 180_000),
        ("13.16 (Ubuntu 13.16-0ubuntu0.20.04.1)", 130_016),
        ("", 0),
    ];
    let prereleases = [
        ("18beta1", 180_000),
        ("17rc1", 170_000),
        ("10beta3", 100_000),
        ("9.6rc1", 90_600),
        ("9.6beta2", 90_600),
    ];
    for (version, num) in releases.into_iter().chain(prereleases) {
        let server = ConformanceServer::start(Auth::Trust, version, |_| msg::select_one()).await;
        let mut conn = connect(&server, None).await.unwrap();
        assert_eq!(conn.parameter("server_version"), Some(version));
        assert_eq!(conn.server_version_num(), num, "server_version {version:?}");
        assert_in_step(&mut conn).await;
    }
}

/// Case 5, trust: AuthenticationOk right after the startup packet, no password asked for
/// (one given is not sent).
#[tokio::test]
async fn auth_trust() {
    let server = ConformanceServer::start(Auth::Trust, "17.2", |_| msg::select_one()).await;
    for password in [None, Some("unused")] {
        let mut conn = connect(&server, password).await.unwrap();
        assert_eq!(conn.parameter("client_encoding"), Some("UTF8"));
        assert_eq!(conn.parameter("server_encoding"), Some("UTF8"));
        assert_eq!(conn.parameter("session_authorization"), Some("conformance"));
        assert!(!conn.is_channel_bound());
        assert_in_step(&mut conn).await;
    }
}

/// A password method: the right password logs in; a wrong one is the server's error
/// (`FATAL 28P01 invalid_password`, as `Connection::connect` documents: the server's error,
/// not `ErrorKind::Auth`); no password at all, and `channel_binding=require` on a connection
/// without TLS, are refused by the client itself (`ErrorKind::Auth`).
async fn check_password_method(auth: Auth) {
    let server = ConformanceServer::start(auth, "17.2", |_| msg::select_one()).await;
    let mut conn = connect(&server, Some(PASSWORD)).await.unwrap();
    assert!(!conn.is_channel_bound());
    assert_in_step(&mut conn).await;

    let err = connect(&server, Some("wrong")).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Db(_)), "{err}");
    assert_eq!(err.code(), Some("28P01"), "{err}");
    assert!(err.as_db_error().unwrap().is_fatal(), "{err}");

    let err = connect(&server, None).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{err}");

    let err = connect_with(&server, Some(PASSWORD), |c| {
        c.channel_binding = ChannelBinding::Require;
    })
    .await
    .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{err}");
    assert_eq!(server.queries(), ["SELECT 1"]);
}

/// A password with a space and a character outside ASCII (SCRAM normalizes it with
/// SASLprep, md5 and cleartext send its UTF-8 bytes).
const PASSWORD: &str = "s3cr\u{e9}t pass";

/// Case 5, AuthenticationCleartextPassword.
#[tokio::test]
async fn auth_cleartext_password() {
    check_password_method(Auth::Cleartext(PASSWORD.to_owned())).await;
}

/// Case 5, AuthenticationMD5Password (a salt of bytes that are not ASCII).
#[tokio::test]
async fn auth_md5_password() {
    check_password_method(Auth::Md5(PASSWORD.to_owned())).await;
}

/// Case 5, SASL SCRAM-SHA-256.
#[tokio::test]
async fn auth_scram_sha_256() {
    check_password_method(Auth::ScramSha256(PASSWORD.to_owned())).await;
}

/// SCRAM-SHA-256 from a server that accepts the client's proof but cannot sign its final
/// message with the password's server key: the client must refuse it (`ErrorKind::Auth`)
/// instead of going on with a server that never proved it knows the password.
#[tokio::test]
async fn auth_scram_sha_256_refuses_a_forged_server_signature() {
    let server = ConformanceServer::start(
        Auth::ScramSha256ForgedSignature {
            password: "right".to_owned(),
            signing_password: "other".to_owned(),
        },
        "17.2",
        |_| msg::select_one(),
    )
    .await;
    let err = connect(&server, Some("right")).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Auth(_)), "{err}");
    assert!(err.to_string().contains("SCRAM"), "{err}");
    assert!(server.queries().is_empty());
}
