//! The accept loop of the fake servers (`fault_server.rs`, `conformance_server.rs`, which
//! include this file by path): a fresh port of 127.0.0.1, each connection served on a task of
//! its own, and the loop stopped when the server is dropped.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// A running accept loop. It stops accepting when dropped; connections already open end when
/// their client goes.
pub struct Acceptor {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Acceptor {
    /// Binds a fresh port of 127.0.0.1 (before returning, so a client may connect at once) and
    /// serves every connection with `serve`.
    pub async fn start<F, Fut>(serve: F) -> Acceptor
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket));
            }
        });
        Acceptor { addr, task }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
