//! Admin HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process is alive)
//! and `/readyz` (the Kubernetes client works and, on the leader, the controller runs).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

/// Admin settings of `nomad-operator run`.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// Address of the admin endpoints (/metrics, /healthz, /readyz).
    #[arg(
        long = "admin-addr",
        env = "ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_addr: SocketAddr,
}

/// What the admin endpoints report; cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    render: Box<dyn Fn() -> String + Send + Sync>,
    ready: AtomicBool,
}

impl AdminState {
    /// A state whose `/metrics` answers with `render()`; not ready yet.
    pub fn new(render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                render: Box::new(render),
                ready: AtomicBool::new(false),
            }),
        }
    }

    /// Marks the process ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }
}

/// The admin routes.
fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        (state.inner.render)(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Serves the admin routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = AdminState::new(|| "nomad_operator_leader 1\n".to_string());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state.clone(), async {
            let _ = rx.await;
        }));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        state.set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"));
        assert!(metrics.contains("nomad_operator_leader 1"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));

        let _ = tx.send(());
        server.await.expect("join").expect("serve");
    }
}
