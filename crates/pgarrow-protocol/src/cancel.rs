//! CancelRequest: asking the server, over a second connection, to stop a running query.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::error::{Error, ErrorKind, Result};
use crate::tls::{Negotiated, TlsSetup, negotiate};

/// How long a cancel may take when the connection has no `connect_timeout`.
const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the session's server was reached.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// What is needed to cancel the query running on a connection, from anywhere: `Clone`,
/// `Send`, `'static`, and it holds no password.
///
/// The request goes to the address the session is connected to, over TLS when the session
/// uses TLS (with the same certificate checks), and carries the backend's process ID and
/// secret key. The server answers nothing: [`CancelToken::cancel`] returns once the server
/// has closed the cancel connection, which it does after signalling the backend.
///
/// A cancel that arrives when the backend is idle is ignored by the server; one that arrives
/// after the query ended and the next one began cancels that one (a race inherent in the
/// protocol: cancel only what you know is running).
#[derive(Clone)]
pub struct CancelToken {
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: Option<TlsSetup>,
    pub(crate) process_id: i32,
    pub(crate) secret_key: i32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) target: String,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.tls.is_some())
            .field("process_id", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl CancelToken {
    /// The backend process the cancel is for.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// Whether the request goes over TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sends the CancelRequest, waiting at most `limit`, best effort: for a caller that
    /// closes the connection next, where the connection's own drop cannot send the request
    /// (no runtime left to run it). The closed socket stops a query that sends anyway.
    pub async fn cancel_within(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.cancel()).await;
    }

    /// Sends the CancelRequest and waits until the server has taken it.
    ///
    /// # Errors
    /// The server cannot be reached, TLS fails, or the server takes longer than the
    /// connection's `connect_timeout` (10 s without one).
    pub async fn cancel(&self) -> Result<()> {
        let limit = self.timeout.unwrap_or(DEFAULT_CANCEL_TIMEOUT);
        tokio::time::timeout(limit, self.send())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "sending a cancel request to {} took longer than {} s",
                    self.target,
                    limit.as_secs()
                ))
            })?
    }

    async fn send(&self) -> Result<()> {
        let mut request = BytesMut::with_capacity(16);
        frontend::cancel_request(self.process_id, self.secret_key, &mut request);
        let connect_err = |source| {
            Error::new(ErrorKind::Connect {
                target: self.target.clone(),
                source,
            })
        };
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).await.map_err(connect_err)?;
                send_and_wait(s, &request).await
            }
            Endpoint::Tcp(addr) => {
                let tcp = TcpStream::connect(addr).await.map_err(connect_err)?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => send_and_wait(tcp, &request).await,
                    Some(setup) => match negotiate(tcp, setup).await? {
                        Negotiated::Tls(tls) => send_and_wait(*tls, &request).await,
                        Negotiated::Refused(_) => Err(Error::tls(
                            "the server refused TLS for the cancel request, although the \
                             session uses TLS",
                        )),
                    },
                }
            }
        }
    }
}

/// Writes the request, then reads until the server closes the connection.
async fn send_and_wait<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> Result<()> {
    s.write_all(request).await?;
    s.flush().await?;
    let mut sink = [0u8; 64];
    loop {
        match s.read(&mut sink).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            // The server closes without a TLS close_notify, or resets: it took the request.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}
