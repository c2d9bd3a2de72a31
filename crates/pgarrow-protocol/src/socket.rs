//! The socket under a connection: TCP, a Unix socket or TLS over TCP, and the TCP options
//! a connection sets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use crate::config::Config;

/// The socket under a connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Shuts the socket down at once, without waiting (usable from `Drop`): the server's
    /// next write fails, which ends a COPY it is sending.
    pub(crate) fn shutdown_now(&self) {
        let sock = match self {
            Stream::Tcp(s) => socket2::SockRef::from(s),
            Stream::Unix(s) => socket2::SockRef::from(s),
            Stream::Tls(s) => socket2::SockRef::from(s.get_ref().0),
        };
        let _ = sock.shutdown(std::net::Shutdown::Both);
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// TCP_NODELAY, keepalives and TCP_USER_TIMEOUT, as configured.
pub(crate) fn configure_socket(tcp: &TcpStream, config: &Config) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let sock = socket2::SockRef::from(tcp);
    let k = &config.keepalives;
    if k.enabled {
        let params = socket2::TcpKeepalive::new()
            .with_time(k.idle)
            .with_interval(k.interval);
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            target_os = "freebsd"
        ))]
        let params = params.with_retries(k.count);
        sock.set_tcp_keepalive(&params)?;
    } else {
        sock.set_keepalive(false)?;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(t) = config.tcp_user_timeout {
        sock.set_tcp_user_timeout(Some(t))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn sockets_get_keepalives_and_user_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config = Config::parse_with_env(
            "host=h keepalives_idle=31 keepalives_interval=7 keepalives_count=4 \
             tcp_user_timeout=12000",
            &|_| None,
        )
        .unwrap();
        configure_socket(&tcp, &config).unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.tcp_nodelay().unwrap());
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(31));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(7)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
            assert_eq!(
                sock.tcp_user_timeout().unwrap(),
                Some(Duration::from_secs(12))
            );
        }
        let tcp = TcpStream::connect(addr).await.unwrap();
        let off = Config::parse_with_env("host=h keepalives=0", &|_| None).unwrap();
        configure_socket(&tcp, &off).unwrap();
        assert!(!socket2::SockRef::from(&tcp).keepalive().unwrap());
    }
}
