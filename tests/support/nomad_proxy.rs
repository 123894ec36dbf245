//! A recording reverse proxy in front of a real Nomad agent: what the simulator's request
//! log is for tests on the simulator. Every request that reaches the agent through it is
//! recorded (method, path, query, status) and passed on unchanged, blocking queries
//! included; answers come back unchanged too.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

/// One request that went through the proxy.
#[derive(Clone, Debug)]
pub struct ProxiedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Raw query string (without `?`).
    pub query: String,
    /// The agent's answer status (502 when it could not be reached).
    pub status: u16,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<ProxiedRequest>>>,
}

/// The proxy: its URL and its request log.
pub struct RecordingProxy {
    url: String,
    log: Arc<Mutex<Vec<ProxiedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`.
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: {
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .expect("proxy client")
            },
            log: log.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, log, task }
    }

    /// The URL clients use instead of the agent's.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let target = if query.is_empty() {
        format!("{}{path}", shared.upstream)
    } else {
        format!("{}{path}?{query}", shared.upstream)
    };
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut outgoing = shared.client.request(parts.method.clone(), &target);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.body(body).send().await;
    let response = match answer {
        Ok(answer) => {
            let mut builder = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    builder = builder.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            builder.body(Body::from(bytes))
        }
        Err(e) => Response::builder()
            .status(502)
            .body(Body::from(format!("recording proxy: {e}"))),
    };
    let response = response.unwrap_or_else(|_| Response::new(Body::empty()));
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(ProxiedRequest {
            method: parts.method.to_string(),
            path,
            query,
            status: response.status().as_u16(),
        });
    response
}
