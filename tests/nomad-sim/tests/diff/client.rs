//! One side of the conversation: a backend (the real agent or the simulator), the
//! requests of the script and what each answered, recorded for the comparison.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Headers recorded from every answer (lower case, as compared).
pub const RECORDED_HEADERS: &[&str] = &[
    "content-type",
    "vary",
    "x-nomad-index",
    "x-nomad-knownleader",
    "x-nomad-lastcontact",
];

/// How long a step may wait for its backend to reach the state it needs. A deployment on
/// the real agent takes seconds alone and has passed a minute when the machine was busy
/// with the rest of the test run; a stall shows as a timeout with the state last seen.
pub const WAIT_LIMIT: Duration = Duration::from_secs(150);

/// An answer's body.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// No body at all.
    Empty,
    /// A body that parsed as JSON.
    Json(Value),
    /// Anything else (Nomad's error texts).
    Text(String),
}

/// One recorded request and its answer.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The request as the script names it: `POST /v1/job/web/plan (identical)`.
    pub label: String,
    /// HTTP status; 0 when the request failed or a wait timed out.
    pub status: u16,
    /// [`RECORDED_HEADERS`] that were present.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Body,
}

/// An answer handed back to the script.
#[derive(Clone, Debug)]
pub struct Resp {
    pub index: Option<u64>,
    pub json: Value,
}

/// One backend's side of one scenario.
pub struct Conv {
    base: String,
    token: Option<String>,
    /// The Nomad namespace of the scenario.
    pub ns: String,
    http: reqwest::Client,
    /// Everything recorded, in order.
    pub log: Vec<Exchange>,
}

fn with_namespace(path: &str, ns: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}namespace={ns}")
}

impl Conv {
    pub fn new(base: &str, token: Option<String>, ns: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            ns: ns.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .expect("http client"),
            log: Vec::new(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, BTreeMap<String, String>, Vec<u8>), String> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let url = format!("{}{}", self.base, with_namespace(path, &self.ns));
        let mut rb = self.http.request(m, url);
        if let Some(t) = &self.token {
            rb = rb.header("X-Nomad-Token", t);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status().as_u16();
        let headers = RECORDED_HEADERS
            .iter()
            .filter_map(|h| {
                let vals: Vec<&str> = r
                    .headers()
                    .get_all(*h)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect();
                (!vals.is_empty()).then(|| (h.to_string(), vals.join(", ")))
            })
            .collect();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: body: {e}"))?;
        Ok((status, headers, bytes.to_vec()))
    }

    fn decode(headers: &BTreeMap<String, String>, bytes: &[u8]) -> Body {
        if bytes.is_empty() {
            return Body::Empty;
        }
        let json_ct = headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json"));
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) if json_ct => Body::Json(v),
            _ => Body::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// Sends a request without recording it (polls, set-up).
    pub async fn quiet(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let raw = body.map(|b| b.to_string().into_bytes());
        match self.send(method, path, raw).await {
            Ok((_, headers, bytes)) => Resp {
                index: headers.get("x-nomad-index").and_then(|v| v.parse().ok()),
                json: match Self::decode(&headers, &bytes) {
                    Body::Json(v) => v,
                    _ => Value::Null,
                },
            },
            Err(_) => Resp {
                index: None,
                json: Value::Null,
            },
        }
    }

    /// Sends a request with a raw body; returns the exchange (not yet recorded) and the
    /// answer. Takes `&self`, so that two can be in flight at once.
    pub async fn exchange(
        &self,
        label: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (Exchange, Resp) {
        match self.send(method, path, body).await {
            Ok((status, headers, bytes)) => {
                let body = Self::decode(&headers, &bytes);
                let resp = Resp {
                    index: headers.get("x-nomad-index").and_then(|v| v.parse().ok()),
                    json: match &body {
                        Body::Json(v) => v.clone(),
                        _ => Value::Null,
                    },
                };
                let ex = Exchange {
                    label: label.to_string(),
                    status,
                    headers,
                    body,
                };
                (ex, resp)
            }
            Err(e) => (
                Exchange {
                    label: label.to_string(),
                    status: 0,
                    headers: BTreeMap::new(),
                    body: Body::Text(e),
                },
                Resp {
                    index: None,
                    json: Value::Null,
                },
            ),
        }
    }

    /// Sends a request with a raw body and records the exchange under `label`.
    pub async fn call_raw(
        &mut self,
        label: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Resp {
        let (ex, resp) = self.exchange(label, method, path, body).await;
        self.log.push(ex);
        resp
    }

    /// The label of a request: `METHOD PATH (note)`, IDs and the namespace masked.
    pub fn label(&self, method: &str, path: &str, note: &str) -> String {
        label(method, &path.replace(&self.ns, "{ns}"), note)
    }

    /// Sends a request with a JSON body (or none) and records the exchange. The label
    /// is `METHOD PATH` plus `note` when given.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        note: &str,
    ) -> Resp {
        let label = self.label(method, path, note);
        let raw = body.map(|b| b.to_string().into_bytes());
        self.call_raw(&label, method, path, raw).await
    }

    /// Records a fact the script derived (a blocking query's index relation, ...).
    pub fn fact(&mut self, label: &str, v: Value) {
        self.log.push(Exchange {
            label: label.to_string(),
            status: 200,
            headers: BTreeMap::new(),
            body: Body::Json(v),
        });
    }

    /// Records a failure of the script on this side (a timeout, a transport error).
    pub fn note(&mut self, label: &str, what: &str) {
        self.log.push(Exchange {
            label: label.to_string(),
            status: 0,
            headers: BTreeMap::new(),
            body: Body::Text(what.to_string()),
        });
    }

    /// Polls `f` until it holds or [`WAIT_LIMIT`] passes; false on timeout (the caller
    /// records it with [`Conv::note`]).
    pub async fn poll<F, Fut>(&self, mut f: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if f().await {
                return true;
            }
            if start.elapsed() > WAIT_LIMIT {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `METHOD PATH` plus a note in parentheses.
pub fn label(method: &str, path: &str, note: &str) -> String {
    let path = super::normalize::mask_uuids(path, "{id}");
    if note.is_empty() {
        format!("{method} {path}")
    } else {
        format!("{method} {path} ({note})")
    }
}
