//! The TCP side: a listener that counts open connections and can kill any of
//! them (for the drop-connection fault and for shutdown), and `SimServer`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Shared between a connection's stream and whoever may kill it.
#[derive(Debug, Default)]
pub(crate) struct ConnShared {
    killed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ConnShared {
    /// Closes the connection: reads see EOF, writes fail, nothing more is sent.
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        let w = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// Live connections of one server.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnShared>>>,
    next: AtomicU64,
}

impl Registry {
    fn kill_all(&self) {
        let conns: Vec<Arc<ConnShared>> = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for c in conns {
            c.kill();
        }
    }
}

/// Per-connection info handed to request handlers.
#[derive(Clone, Debug)]
pub(crate) struct ConnAddr {
    pub peer: SocketAddr,
    pub conn: Option<Arc<ConnShared>>,
}

impl ConnAddr {
    /// Kills this connection.
    pub(crate) fn kill(&self) {
        if let Some(c) = &self.conn {
            c.kill();
        }
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnAddr {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP stream that counts itself and can be killed.
pub(crate) struct SimStream {
    stream: TcpStream,
    shared: Arc<ConnShared>,
    id: u64,
    registry: Arc<Registry>,
    open: Arc<AtomicUsize>,
}

impl Drop for SimStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.registry
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.shared.is_killed() {
            return Poll::Ready(Ok(()));
        }
        *self.shared.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        if self.shared.is_killed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.shared.is_killed() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection dropped by nomad-sim",
            )));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.is_killed() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection dropped by nomad-sim",
            )));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The accepting side, wrapping a `TcpListener`.
pub(crate) struct SimListener {
    listener: TcpListener,
    registry: Arc<Registry>,
    open: Arc<AtomicUsize>,
}

impl Listener for SimListener {
    type Io = SimStream;
    type Addr = ConnAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::new(ConnShared::default());
                    let id = self.registry.next.fetch_add(1, Ordering::SeqCst);
                    self.registry
                        .conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, shared.clone());
                    self.open.fetch_add(1, Ordering::SeqCst);
                    let io = SimStream {
                        stream,
                        shared: shared.clone(),
                        id,
                        registry: self.registry.clone(),
                        open: self.open.clone(),
                    };
                    return (
                        io,
                        ConnAddr {
                            peer,
                            conn: Some(shared),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnAddr {
            peer: self.listener.local_addr()?,
            conn: None,
        })
    }
}

/// A running HTTP server of a [`crate::Simulator`]. Dropping it stops it too.
pub struct SimServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    registry: Arc<Registry>,
}

impl SimServer {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (blocking queries return
    /// at once), closes every connection and releases the port.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
        {
            self.registry.kill_all();
            task.abort();
            let _ = task.await;
        }
        self.registry.kill_all();
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            self.registry.kill_all();
            task.abort();
        }
    }
}

/// Binds `addr` and serves the simulator's HTTP API on it.
pub(crate) async fn serve(sim: crate::Simulator, addr: SocketAddr) -> io::Result<SimServer> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let registry = Arc::new(Registry::default());
    let (tx, rx) = watch::channel(false);
    let open = sim.inner.open_conns.clone();
    let app = crate::http::router(sim, rx.clone(), local.port());
    let sl = SimListener {
        listener,
        registry: registry.clone(),
        open,
    };
    let mut stop = rx;
    let task = tokio::spawn(async move {
        let result = axum::serve(sl, app.into_make_service_with_connect_info::<ConnAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "nomad-sim server stopped with an error");
        }
    });
    Ok(SimServer {
        addr: local,
        shutdown: tx,
        task: Some(task),
        registry,
    })
}
