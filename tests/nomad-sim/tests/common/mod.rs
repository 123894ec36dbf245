//! Shared helpers for the simulator's HTTP tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use nomad_sim::{NodeConfig, SimConfig, SimServer, Simulator};
use serde_json::{Value, json};

/// Generous bound for waiting on simulated state changes.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Sim {
    pub sim: Simulator,
    pub server: SimServer,
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub index: Option<u64>,
    pub content_type: String,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

pub async fn start(time_scale: f64, token: Option<&str>) -> Sim {
    start_config(SimConfig {
        acl_token: token.map(str::to_string),
        time_scale,
        ..SimConfig::default()
    })
    .await
}

/// A simulator with `config` (its token sent on every request).
pub async fn start_config(config: SimConfig) -> Sim {
    start_node(config, NodeConfig::default()).await
}

/// A simulator with `config` whose node has `node`'s capacity.
pub async fn start_node(config: SimConfig, node: NodeConfig) -> Sim {
    let token = config.acl_token.clone();
    let sim = Simulator::with_node(config, node);
    let server = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let base = server.url();
    Sim {
        sim,
        server,
        http: http_client(),
        base,
        token,
    }
}

impl Sim {
    pub async fn req(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            rb = rb.header("X-Nomad-Token", t);
        }
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        let r = rb.send().await.expect("send");
        let status = r.status().as_u16();
        let index = r
            .headers()
            .get("X-Nomad-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = r.text().await.expect("body");
        Resp {
            status,
            index,
            content_type,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.req("POST", path, Some(body)).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        r.json()
    }

    pub async fn register(&self, job: Value) -> Value {
        let id = job["ID"].as_str().expect("id").to_string();
        let r = self
            .post(&format!("/v1/job/{id}"), json!({ "Job": job }))
            .await;
        assert_eq!(r.status, 200, "register: {}", r.text);
        r.json()
    }

    /// Polls `f` until it returns Some, panicking after [`TIMEOUT`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the job's latest deployment has `status`; returns it.
    pub async fn wait_deployment(&self, id: &str, version: u64, status: &str) -> Value {
        self.wait_for(
            &format!("deployment of {id} v{version} to be {status}"),
            || async {
                let d = self.get_json(&format!("/v1/job/{id}/deployments")).await;
                d.as_array()?
                    .iter()
                    .find(|d| d["JobVersion"] == version && d["Status"] == status)
                    .cloned()
            },
        )
        .await
    }
}

/// A service job running `command args` with `count` allocations and extra
/// group update settings.
pub fn service_job(id: &str, command: &str, args: &[&str], count: u64, update: Value) -> Value {
    let mut group = json!({
        "Name": "web",
        "Count": count,
        "Tasks": [{
            "Name": "server",
            "Driver": "raw_exec",
            "Config": {"command": command, "args": args},
            "Resources": {"CPU": 100, "MemoryMB": 64}
        }]
    });
    if !update.is_null() {
        group["Update"] = update;
    }
    json!({"ID": id, "Datacenters": ["dc1"], "Type": "service", "TaskGroups": [group]})
}

/// A plain-http client. reqwest may be built with `rustls-no-provider` in a workspace
/// build, so the ring provider is installed first (a second install is a no-op).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
