//! Misbehaving network peers on loopback: a TCP proxy that delays every byte by an amount
//! that can change while it runs, an address where nothing listens, and a listener that
//! accepts and hangs up at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Forwards TCP both ways to `upstream`, holding each chunk for the current delay before
/// passing it on. Bytes already read are delivered even if the sender has gone, as a slow
/// network would: a write the client gave up on may still land.
pub struct DelayProxy {
    addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let delay = delay.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, delay.clone()), pipe(sr, cw, delay));
                });
            }
        });
        DelayProxy { addr, delay_ms, accept }
    }

    /// `http://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay_ms: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let d = delay_ms.load(Ordering::SeqCst);
        if d > 0 {
            tokio::time::sleep(Duration::from_millis(d)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The socket address of an `http://host:port` URL.
pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").trim_end_matches('/').parse().expect("an http://127.0.0.1:port URL")
}

/// An `http://` URL on loopback where nothing listens (connections are refused).
pub fn refused_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    format!("http://{}", l.local_addr().expect("bound"))
}

/// An `http://` URL of a listener that accepts every connection and closes it at once,
/// before any answer (a connection reset, as the client sees it).
pub async fn hang_up_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = l.local_addr().expect("bound");
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            // Linger 0 turns the close into a reset rather than an orderly FIN.
            let _ = sock.set_zero_linger();
            drop(sock);
        }
    });
    format!("http://{addr}")
}
