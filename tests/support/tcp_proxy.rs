//! A TCP pass-through on loopback that a test can cut, to partition one process from a
//! server (say an operator replica from the apiserver) while everything else still
//! reaches it. Bytes pass unchanged, so TLS works end to end when the server's
//! certificate is for 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The proxy: its address, and whether it is cut.
pub struct TcpProxy {
    /// Where to connect instead of the upstream.
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    cut: bool,
    /// The live connections' pumps.
    conns: Vec<JoinHandle<()>>,
    /// Connections passed on to the upstream so far.
    passed: usize,
}

/// Starts a proxy on a free loopback port that passes every connection on to `upstream`.
pub async fn start(upstream: SocketAddr) -> TcpProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let shared = Arc::new(Mutex::new(Shared::default()));
    let accept = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
    TcpProxy {
        addr,
        shared,
        accept,
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Mutex<Shared>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // Decided under the lock that `cut` takes, so no connection slips past a cut.
        let mut state = lock(&shared);
        if state.cut {
            drop(client); // refused: closed at once
            continue;
        }
        state.conns.retain(|c| !c.is_finished());
        state.passed += 1;
        state.conns.push(tokio::spawn(pump(client, upstream)));
    }
}

async fn pump(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl TcpProxy {
    /// Cuts the link: closes every live connection (both ends) and, until
    /// [`heal`](Self::heal), closes each new one as soon as it is accepted. When this
    /// returns, no byte passes any more.
    pub async fn cut(&self) {
        let conns = {
            let mut state = lock(&self.shared);
            state.cut = true;
            std::mem::take(&mut state.conns)
        };
        for conn in conns {
            conn.abort();
            let _ = conn.await;
        }
    }

    /// Lets new connections through again.
    pub fn heal(&self) {
        lock(&self.shared).cut = false;
    }

    /// How many connections were passed on to the upstream so far.
    pub fn passed(&self) -> usize {
        lock(&self.shared).passed
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in lock(&self.shared).conns.drain(..) {
            conn.abort();
        }
    }
}
