//! The HTTP API: routing like Nomad 1.1's agent (`/v1/job/` suffix dispatch,
//! 405 `Invalid method`, empty 404s for unknown paths), request logging, faults, ACL,
//! region forwarding errors, blocking reads, JSON/text responses and the meta headers
//! Nomad sets on reads and writes (see `REAL_NOMAD.md`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::blocking::{NO_LEADER, blocking_query, parse_blocking};
use crate::cached::{Cached, List, json_array};
use crate::canonical::{Obj, canonicalize_job, check_types, s, validate_job};
use crate::jobs::{ApiError, WriteResult};
use crate::server::ConnAddr;
use crate::state::{JobKey, State, Table};
use crate::util::{parse_query, percent_decode};
use crate::{RequestRecord, Simulator};

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Per-server handler state.
#[derive(Clone)]
pub(crate) struct AppState {
    pub sim: Simulator,
    pub shutdown: watch::Receiver<bool>,
    /// The server's local TCP port (logged as [`RequestRecord::server`]).
    pub port: u16,
}

/// Builds the router of the server on local `port`: one fallback handler doing
/// Nomad-style dispatch.
pub(crate) fn router(sim: Simulator, shutdown: watch::Receiver<bool>, port: u16) -> Router {
    Router::new().fallback(handle).with_state(AppState {
        sim,
        shutdown,
        port,
    })
}

/// Response extension set by a successful job register: the digest of its `Job`
/// (see [`RequestRecord::job_digest`]).
#[derive(Clone, Debug)]
struct JobDigest(String);

/// Parsed query parameters.
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }

    fn has(&self, k: &str) -> bool {
        self.pairs.iter().any(|(key, _)| key == k)
    }

    fn namespace(&self) -> String {
        match self.get("namespace") {
            Some(ns) if !ns.is_empty() => ns.to_string(),
            _ => "default".to_string(),
        }
    }

    fn region(&self) -> String {
        match self.get("region") {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => "global".to_string(),
        }
    }

    fn prefix(&self) -> &str {
        self.get("prefix").unwrap_or("")
    }
}

/// Which of Nomad's meta headers an answer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Meta {
    /// None: parse, status, and errors raised before the RPC ran.
    None,
    /// `X-Nomad-Index` only: writes (register, plan, deregister, stable ...).
    Write(u64),
    /// A write that also sets empty query meta (revert): `X-Nomad-Index`,
    /// `X-Nomad-KnownLeader: false`, `X-Nomad-LastContact: 0`.
    WriteLeaderUnknown(u64),
    /// Reads: `X-Nomad-Index`, `X-Nomad-KnownLeader: true`, `X-Nomad-LastContact: 0`
    /// (on a "not found" answer of a read too).
    Read(u64),
}

fn set_meta(resp: &mut Response, meta: Meta) {
    let h = resp.headers_mut();
    let (index, leader) = match meta {
        Meta::None => return,
        Meta::Write(i) => (i, None),
        Meta::WriteLeaderUnknown(i) => (i, Some("false")),
        Meta::Read(i) => (i, Some("true")),
    };
    if let Ok(hv) = HeaderValue::from_str(&index.to_string()) {
        h.insert("X-Nomad-Index", hv);
    }
    if let Some(l) = leader {
        h.insert("X-Nomad-KnownLeader", HeaderValue::from_static(l));
        h.insert("X-Nomad-LastContact", HeaderValue::from_static("0"));
    }
}

/// A text/plain response (Nomad's error bodies).
pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// An answer with no body and no content type: Nomad's 404 for an unknown path, and
/// the 200 of a namespace write.
fn empty(status: u16, meta: Meta) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_meta(&mut resp, meta);
    resp
}

/// A JSON response with the given meta headers.
pub(crate) fn json_out(v: &Value, meta: Meta, pretty: bool) -> Response {
    let bytes = if pretty {
        serde_json::to_vec_pretty(v)
    } else {
        serde_json::to_vec(v)
    }
    .unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    set_meta(&mut resp, meta);
    resp
}

/// A list answer with the given meta headers: the entries' cached texts joined, or
/// (`?pretty`) their trees encoded.
fn list_out(list: List, meta: Meta, pretty: bool) -> Response {
    let bytes = match list {
        List::Texts(texts) => json_array(&texts),
        List::Trees(trees) => return json_out(&Value::Array(trees), meta, pretty),
    };
    let mut resp = Response::new(Body::from(bytes));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    set_meta(&mut resp, meta);
    resp
}

/// A JSON response: with `index`, as a read answers; without, bare (control API).
pub(crate) fn json_resp(v: &Value, index: Option<u64>, pretty: bool) -> Response {
    json_out(v, index.map(Meta::Read).unwrap_or(Meta::None), pretty)
}

fn error_resp(e: ApiError) -> Response {
    match e {
        ApiError::BadRequest(m) => text(400, m),
        ApiError::Forbidden(m) => text(403, m),
        ApiError::NotFound(m) => text(404, m),
        ApiError::NotFoundRead(m, index) => {
            let mut r = text(404, m);
            set_meta(&mut r, Meta::Read(index));
            r
        }
        ApiError::NoRoute => empty(404, Meta::None),
        ApiError::MethodNotAllowed => text(405, "Invalid method"),
        ApiError::Server(m) => text(500, m),
        ApiError::NotImplemented(m) => text(501, m),
    }
}

fn not_implemented(method: &str, path: &str) -> ApiError {
    ApiError::NotImplemented(format!("nomad-sim: {method} {path} is not implemented"))
}

async fn handle(
    AxState(app): AxState<AppState>,
    ConnectInfo(conn): ConnectInfo<ConnAddr>,
    req: Request,
) -> Response {
    let method = req.method().as_str().to_string();
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if raw_path == "/_sim" || raw_path.starts_with("/_sim/") {
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .unwrap_or_default();
        return crate::control::handle(&app.sim, &method, &raw_path, body);
    }
    let inner = app.sim.inner.clone();
    let at_ms = inner.now_ms();
    let path = percent_decode(&raw_path, false);
    tracing::debug!(peer = %conn.peer, %method, %path, "request");
    let q = Query {
        pairs: parse_query(&query),
    };
    let deployment = deployment_of_request(&inner, &method, &path, &q);
    let record = |status: u16, dropped: bool, job_digest: Option<String>| {
        inner.record(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status,
            at_ms,
            server: app.port,
            dropped,
            job_digest,
            deployment: deployment.clone(),
        })
    };
    // The latency model's delay of this request, as it arrived.
    let latency = latency_of(&inner.latency(), &method, &path);
    let fault = inner.match_fault(&method, &path).unwrap_or_default();
    if let Some(ms) = fault.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if fault.drop_connection {
        conn.kill();
        record(0, true, None);
        return text(500, "");
    }
    if let Some(to) = &fault.redirect_to {
        let r = redirect(to);
        record(r.status().as_u16(), false, None);
        return with_vary(r);
    }
    if let Some(status) = fault.status {
        record(status, false, None);
        return with_vary(text(status, fault.body.unwrap_or_default()));
    }
    let mut resp = if needs_leader(&path) && !inner.has_leader() {
        text(500, NO_LEADER)
    } else {
        let headers = req.headers().clone();
        match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
            Ok(body) => match route(&app, &method, &path, &q, &headers, body).await {
                Ok(r) => r,
                Err(e) => error_resp(e),
            },
            Err(e) => error_resp(ApiError::BadRequest(format!("failed to read body: {e}"))),
        }
    };
    // Handled (a write is in the state), the locks released: the answer waits here,
    // side by side with any other request's.
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let digest = resp
        .extensions_mut()
        .remove::<JobDigest>()
        .map(|JobDigest(d)| d);
    record(resp.status().as_u16(), fault.commit_then_drop, digest);
    if let Some(ms) = fault.after_commit_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if fault.commit_then_drop {
        conn.kill();
        return text(500, "");
    }
    if fault.strip_index {
        let h = resp.headers_mut();
        for name in [
            "X-Nomad-Index",
            "X-Nomad-KnownLeader",
            "X-Nomad-LastContact",
        ] {
            h.remove(name);
        }
    }
    if let Some(n) = fault.pad_bytes {
        resp = pad_body(resp, n).await;
    }
    with_vary(resp)
}

/// The delay `latency` gives a `method` request to `path` (see [`crate::Latency`]): none
/// outside `/v1`, [`crate::Latency::read`] for a read or a request that changes nothing,
/// [`crate::Latency::write`] for any other `PUT`, `POST` or `DELETE`.
fn latency_of(latency: &crate::Latency, method: &str, path: &str) -> Duration {
    if !path.starts_with("/v1/") {
        return Duration::ZERO;
    }
    let changes_nothing = matches!(path, "/v1/jobs/parse" | "/v1/validate/job" | "/v1/search")
        || path.starts_with("/v1/search/")
        || path.strip_prefix("/v1/job/").is_some_and(|rest| {
            rest.ends_with("/plan") || rest.ends_with("/summary") || rest.ends_with("/versions")
        });
    if matches!(method, "PUT" | "POST" | "DELETE") && !changes_nothing {
        latency.write
    } else {
        latency.read
    }
}

/// Whether `path` answers `No cluster leader` when the cluster has none: every `/v1`
/// path but the agent's own `/v1/agent/self` (other paths are unrouted 404s anyway).
fn needs_leader(path: &str) -> bool {
    path.starts_with("/v1/") && path != "/v1/agent/self"
}

/// A `307 Temporary Redirect` to `to` with an empty body (a 500 when `to` is not a
/// valid header value).
fn redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(location) => {
            let mut r = empty(307, Meta::None);
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        Err(_) => text(500, format!("nomad-sim: invalid redirect_to {to:?}")),
    }
}

/// `resp` with `n` ASCII spaces appended to its body (a 500 when that much memory
/// cannot be had).
async fn pad_body(resp: Response, n: u64) -> Response {
    let (mut parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return text(
                500,
                format!("nomad-sim: cannot read the answer to pad: {e}"),
            );
        }
    };
    let too_large = || {
        text(
            500,
            format!("nomad-sim: cannot pad the answer by {n} bytes"),
        )
    };
    let Some(total) = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(body.len()))
    else {
        return too_large();
    };
    let mut out = Vec::new();
    if out.try_reserve_exact(total).is_err() {
        return too_large();
    }
    out.extend_from_slice(&body);
    out.resize(total, b' ');
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// [`RequestRecord::deployment`]: for a revert or a deployment write, the ID of the
/// job's newest deployment now.
fn deployment_of_request(
    inner: &crate::Inner,
    method: &str,
    path: &str,
    q: &Query,
) -> Option<String> {
    if method != "PUT" && method != "POST" {
        return None;
    }
    if let Some(id) = path
        .strip_prefix("/v1/job/")
        .and_then(|r| r.strip_suffix("/revert"))
    {
        let key: JobKey = (q.namespace(), id.to_string());
        return inner
            .lock_state()
            .latest_deployment(&key)
            .map(|d| d.id.clone());
    }
    let (op, id) = path.strip_prefix("/v1/deployment/")?.split_once('/')?;
    if !matches!(
        op,
        "fail" | "promote" | "pause" | "allocation-health" | "unblock"
    ) {
        return None;
    }
    let st = inner.lock_state();
    let key = st.deployments.get(id)?.key();
    st.latest_deployment(&key).map(|d| d.id.clone())
}

/// [`RequestRecord::job_digest`] of a register request's `Job`: FNV-1a 64 over its
/// JSON with sorted keys, without the fields a server sets or a client echoes back.
fn job_digest(job: &Value) -> String {
    const IGNORED: &[&str] = &[
        "JobModifyIndex",
        "ModifyIndex",
        "CreateIndex",
        "SubmitTime",
        "Version",
        "Stable",
        "Status",
        "StatusDescription",
    ];
    let mut job = job.clone();
    if let Value::Object(m) = &mut job {
        for k in IGNORED {
            m.remove(*k);
        }
    }
    let mut text = String::new();
    canonical_json(&job, &mut text);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `v` as compact JSON with every object's keys in sorted order (whatever
/// serde_json's `preserve_order` feature).
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Nomad's gzip handler adds `Vary: Accept-Encoding` to every answer.
fn with_vary(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    resp
}

/// Known Nomad API prefixes this simulator does not implement (answer 501).
const UNIMPLEMENTED_PREFIXES: &[&str] = &[
    "/v1/nodes",
    "/v1/node/",
    "/v1/agent/",
    "/v1/acl/",
    "/v1/operator/",
    "/v1/system/",
    "/v1/search",
    "/v1/client/",
    "/v1/metrics",
    "/v1/quota",
    "/v1/sentinel/",
    "/v1/volumes",
    "/v1/volume/",
    "/v1/plugins",
    "/v1/plugin/",
    "/v1/scaling/",
    "/v1/event/stream",
    "/v1/validate/job",
    "/v1/recommendation",
    "/v1/license",
    "/v1/csi/",
];

async fn route(
    app: &AppState,
    method: &str,
    path: &str,
    q: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !path.starts_with("/v1/") {
        return Err(ApiError::NoRoute);
    }
    let inner = &app.sim.inner;
    crate::acl::check(inner.config.acl_token.as_deref(), path, headers)?;
    // The agent answers about itself without forwarding: `?region=` is not looked at.
    if path == "/v1/agent/self" {
        require(method == "GET")?;
        let node_id = inner.lock_state().node.id.clone();
        let port = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(4646);
        let v = crate::agent::agent_self(
            &inner.release,
            &node_id,
            inner.config.acl_token.is_some(),
            port,
        );
        return Ok(json_out(&v, Meta::None, q.has("pretty")));
    }
    if q.region() != "global" {
        return Err(ApiError::Server("No path to region".into()));
    }
    let pretty = q.has("pretty");
    let get = method == "GET";
    let write = method == "PUT" || method == "POST";
    match path {
        "/v1/jobs" => {
            if get {
                list_jobs(app, q, pretty).await
            } else if write {
                register(app, None, q, &body, pretty)
            } else {
                Err(ApiError::MethodNotAllowed)
            }
        }
        "/v1/jobs/parse" => {
            if write {
                parse_hcl(&inner.release, &body, pretty)
            } else {
                Err(ApiError::MethodNotAllowed)
            }
        }
        "/v1/allocations" => {
            require(get)?;
            list_allocations(app, q, pretty).await
        }
        "/v1/deployments" => {
            require(get)?;
            list_deployments(app, q, pretty).await
        }
        "/v1/evaluations" => {
            require(get)?;
            list_evaluations(app, q, pretty).await
        }
        "/v1/status/leader" => Ok(json_out(&json!("127.0.0.1:4647"), Meta::None, pretty)),
        "/v1/status/peers" => Ok(json_out(&json!(["127.0.0.1:4647"]), Meta::None, pretty)),
        "/v1/regions" => Ok(json_out(&json!(["global"]), Meta::None, pretty)),
        "/v1/agent/health" => Ok(json_out(
            &json!({"client": {"ok": true, "message": "ok"}, "server": {"ok": true, "message": "ok"}}),
            Meta::None,
            pretty,
        )),
        "/v1/namespaces" => {
            require(get)?;
            let prefix = q.prefix().to_string();
            blocking(app, q, &[Table::Namespaces], pretty, move |st| {
                let v: Vec<Value> = st
                    .namespaces
                    .range(prefix.clone()..)
                    .take_while(|(name, _)| name.starts_with(&prefix))
                    .map(|(name, ns)| st.namespace_json(name, ns))
                    .collect();
                Ok((st.table(Table::Namespaces), Value::Array(v)))
            })
            .await
        }
        "/v1/namespace" => {
            require(write)?;
            namespace_write(app, None, &body)
        }
        _ => {
            if let Some(rest) = path.strip_prefix("/v1/job/") {
                job_specific(app, method, path, rest, q, &body, pretty).await
            } else if let Some(name) = path.strip_prefix("/v1/namespace/") {
                namespace_specific(app, method, name, q, &body, pretty).await
            } else if let Some(rest) = path.strip_prefix("/v1/allocation/") {
                if rest.ends_with("/stop") || rest.ends_with("/services") {
                    return Err(not_implemented(method, path));
                }
                require(get)?;
                read_allocation(app, rest, q, pretty).await
            } else if let Some(rest) = path.strip_prefix("/v1/deployment/") {
                deployment_specific(app, method, path, rest, q, &body, pretty).await
            } else if let Some(rest) = path.strip_prefix("/v1/evaluation/") {
                require(get)?;
                if let Some(id) = rest.strip_suffix("/allocations") {
                    eval_allocations(app, id, pretty)
                } else {
                    read_evaluation(app, rest, q, pretty).await
                }
            } else if UNIMPLEMENTED_PREFIXES.iter().any(|p| path.starts_with(p)) {
                Err(not_implemented(method, path))
            } else {
                Err(ApiError::NoRoute)
            }
        }
    }
}

/// `PUT|POST /v1/namespace[/:name]`: 200 with no body, only the index.
fn namespace_write(
    app: &AppState,
    path_name: Option<&str>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if body.is_empty() {
        return Err(ApiError::Server("Request body is empty".into()));
    }
    let args = parse_body(body, "structs.Namespace")?;
    let name = args.get("Name").and_then(Value::as_str).unwrap_or_default();
    if let Some(p) = path_name
        && p != name
    {
        return Err(ApiError::BadRequest(
            "Namespace name does not match request path".into(),
        ));
    }
    let description = args
        .get("Description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let idx = app
        .sim
        .inner
        .lock_state()
        .upsert_namespace(name, description)?;
    Ok(empty(200, Meta::Write(idx)))
}

async fn namespace_specific(
    app: &AppState,
    method: &str,
    name: &str,
    q: &Query,
    body: &Bytes,
    pretty: bool,
) -> Result<Response, ApiError> {
    match method {
        "GET" => {
            let name = name.to_string();
            blocking(app, q, &[Table::Namespaces], pretty, move |st| {
                let ns = st
                    .namespaces
                    .get(&name)
                    .ok_or_else(|| ApiError::NotFound("Namespace not found".into()))?;
                Ok((ns.modify_index, st.namespace_json(&name, ns)))
            })
            .await
        }
        "PUT" | "POST" => namespace_write(app, Some(name), body),
        "DELETE" => {
            let idx = app.sim.inner.lock_state().delete_namespace(name)?;
            Ok(empty(200, Meta::Write(idx)))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn require(ok: bool) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// Decodes a request body into `go_type` like Nomad's `decodeBody`: an empty body is an
/// error, the first JSON value counts, Go's texts for malformed JSON, and `null` is an
/// empty request.
fn parse_body(body: &Bytes, go_type: &str) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("Request body is empty".into()));
    }
    match crate::gojson::decode_first(body).map_err(ApiError::BadRequest)? {
        Value::Null => Ok(json!({})),
        v @ Value::Object(_) => Ok(v),
        v => Err(ApiError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            crate::gojson::kind(&v, false)
        ))),
    }
}

fn write_response(r: &WriteResult, meta: Meta, pretty: bool) -> Response {
    json_out(
        &json!({
            "EvalID": r.eval_id, "EvalCreateIndex": r.eval_create_index,
            "JobModifyIndex": r.job_modify_index, "Warnings": r.warnings, "Index": r.index,
            "LastContact": 0, "KnownLeader": false
        }),
        meta,
        pretty,
    )
}

/// Extracts and canonicalises `args.Job` for register/plan.
fn job_from_args(
    args: &Value,
    path_id: Option<&str>,
    q: &Query,
    plan: bool,
) -> Result<Obj, ApiError> {
    let job = match args.get("Job") {
        None | Some(Value::Null) => {
            return Err(ApiError::BadRequest("Job must be specified".into()));
        }
        Some(Value::Object(j)) => j,
        Some(other) => {
            let request = if plan {
                "JobPlanRequest"
            } else {
                "JobRegisterRequest"
            };
            return Err(ApiError::BadRequest(format!(
                "json: cannot unmarshal {} into Go struct field {request}.Job of type api.Job",
                crate::gojson::kind(other, false)
            )));
        }
    };
    check_types(job).map_err(ApiError::BadRequest)?;
    let id = match job.get("ID").and_then(Value::as_str) {
        Some(id) => id,
        None if plan => return Err(ApiError::BadRequest("Job must have a valid ID".into())),
        None => return Err(ApiError::BadRequest("Job ID hasn't been provided".into())),
    };
    if let Some(pid) = path_id
        && pid != id
    {
        return Err(ApiError::BadRequest(
            if plan {
                "Job ID does not match"
            } else {
                "Job ID does not match name"
            }
            .into(),
        ));
    }
    let region = match s(job, "Region") {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => q.region(),
    };
    if region != "global" {
        return Err(ApiError::Server("No path to region".into()));
    }
    let ns = match s(job, "Namespace") {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => q.namespace(),
    };
    let canon = canonicalize_job(job, &ns, &region);
    validate_job(&canon).map_err(ApiError::Server)?;
    Ok(canon)
}

fn register(
    app: &AppState,
    path_id: Option<&str>,
    q: &Query,
    body: &Bytes,
    pretty: bool,
) -> Result<Response, ApiError> {
    let args = parse_body(body, "api.JobRegisterRequest")?;
    let spec = job_from_args(&args, path_id, q, false)?;
    let enforce = args
        .get("EnforceIndex")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        .then(|| {
            args.get("JobModifyIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        });
    let res =
        app.sim
            .inner
            .lock_state()
            .register_spec(Arc::new(spec), false, enforce, "job-register")?;
    let mut resp = write_response(&res, Meta::Write(res.index), pretty);
    if let Some(job) = args.get("Job") {
        resp.extensions_mut().insert(JobDigest(job_digest(job)));
    }
    Ok(resp)
}

/// A blocking read answering `f`'s JSON tree.
async fn blocking(
    app: &AppState,
    q: &Query,
    tables: &[Table],
    pretty: bool,
    f: impl FnMut(&State) -> Result<(u64, Value), ApiError>,
) -> Result<Response, ApiError> {
    let (idx, v) = blocking_read(app, q, tables, f).await?;
    Ok(json_out(&v, Meta::Read(idx), pretty))
}

/// A blocking read answering `f`'s list (joined outside the state lock).
async fn blocking_list(
    app: &AppState,
    q: &Query,
    tables: &[Table],
    pretty: bool,
    f: impl FnMut(&State) -> Result<(u64, List), ApiError>,
) -> Result<Response, ApiError> {
    let (idx, list) = blocking_read(app, q, tables, f).await?;
    Ok(list_out(list, Meta::Read(idx), pretty))
}

async fn blocking_read<T>(
    app: &AppState,
    q: &Query,
    tables: &[Table],
    f: impl FnMut(&State) -> Result<(u64, T), ApiError>,
) -> Result<(u64, T), ApiError> {
    let (min, wait) = parse_blocking(q.get("index"), q.get("wait"))?;
    match blocking_query(&app.sim.inner, &app.shutdown, tables, min, wait, f).await {
        Ok(answer) => Ok(answer),
        // A read of something missing still answers with the read's meta, at the
        // index of the table it looked in.
        Err(ApiError::NotFound(m)) => {
            let st = app.sim.inner.lock_state();
            let idx = tables.first().map(|t| st.table(*t)).unwrap_or(0);
            Err(ApiError::NotFoundRead(m, idx))
        }
        Err(e) => Err(e),
    }
}

fn ns_match(q_ns: &str, ns: &str) -> bool {
    q_ns == "*" || q_ns == ns
}

async fn list_jobs(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking_list(app, q, &[Table::Jobs, Table::Summary], pretty, move |st| {
        let idx = st.table(Table::Jobs).max(st.table(Table::Summary));
        // Every namespace: all jobs, the prefix filtering each; one namespace: the run
        // of its jobs that start with the prefix.
        let all = ns == "*";
        let start: JobKey = if all {
            (String::new(), String::new())
        } else {
            (ns.clone(), prefix.clone())
        };
        let jobs = st
            .jobs
            .range(start..)
            .take_while(|(k, _)| all || (k.0 == ns && k.1.starts_with(&prefix)))
            .filter(|(k, _)| k.1.starts_with(&prefix));
        let list = List::of(
            jobs,
            pretty,
            |(k, j)| j.stub_text(st, k),
            |(k, j)| st.job_stub_json(k, j),
        );
        Ok((idx, list))
    })
    .await
}

async fn list_allocations(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking_list(app, q, &[Table::Allocs], pretty, move |st| {
        let allocs = by_prefix(&st.allocs, &prefix).filter(|a| ns_match(&ns, &a.namespace));
        let list = List::of(
            allocs,
            pretty,
            |a| a.stub_text(&st.node),
            |a| a.stub_json(&st.node.id, &st.node.name),
        );
        Ok((st.table(Table::Allocs), list))
    })
    .await
}

/// The release from which `GET /v1/deployments` takes `namespace=*`; before it, `*` is
/// read as a namespace of that name, which holds nothing (as 1.1.2 answers).
const DEPLOYMENTS_OF_ALL_NAMESPACES_SINCE: (u64, u64, u64) = (1, 2, 4);

async fn list_deployments(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    let all_namespaces = app
        .sim
        .inner
        .release
        .at_least(DEPLOYMENTS_OF_ALL_NAMESPACES_SINCE);
    blocking_list(app, q, &[Table::Deployments], pretty, move |st| {
        let deployments = by_prefix(&st.deployments, &prefix).filter(|d| {
            if ns == "*" && !all_namespaces {
                d.namespace == "*"
            } else {
                ns_match(&ns, &d.namespace)
            }
        });
        let list = List::of(deployments, pretty, |d| d.text(), |d| d.to_json());
        Ok((st.table(Table::Deployments), list))
    })
    .await
}

async fn list_evaluations(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking_list(app, q, &[Table::Evals], pretty, move |st| {
        let evals = by_prefix(&st.evals, &prefix).filter(|e| ns_match(&ns, &e.namespace));
        let list = List::of(evals, pretty, |e| e.text(), |e| e.to_json());
        Ok((st.table(Table::Evals), list))
    })
    .await
}

async fn read_allocation(
    app: &AppState,
    id: &str,
    q: &Query,
    pretty: bool,
) -> Result<Response, ApiError> {
    let id = id.to_string();
    blocking(app, q, &[Table::Allocs], pretty, move |st| {
        let a = st
            .allocs
            .get(&id)
            .ok_or_else(|| ApiError::NotFound("alloc not found".into()))?;
        Ok((
            a.modify_index,
            a.full_json(&st.node.id, &st.node.name, st.alloc_job_json(a)),
        ))
    })
    .await
}

async fn read_evaluation(
    app: &AppState,
    id: &str,
    q: &Query,
    pretty: bool,
) -> Result<Response, ApiError> {
    let id = id.to_string();
    blocking(app, q, &[Table::Evals], pretty, move |st| {
        let e = st
            .evals
            .get(&id)
            .ok_or_else(|| ApiError::NotFound("eval not found".into()))?;
        Ok((e.modify_index, e.to_json()))
    })
    .await
}

fn eval_allocations(app: &AppState, id: &str, pretty: bool) -> Result<Response, ApiError> {
    let st = app.sim.inner.lock_state();
    let key = st
        .evals
        .get(id)
        .map(|e| (e.namespace.clone(), e.job_id.clone()));
    let allocs = key
        .iter()
        .flat_map(|k| st.job_alloc_ids(k))
        .filter_map(|a| st.allocs.get(a))
        .filter(|a| a.eval_id == id);
    let list = List::of(
        allocs,
        pretty,
        |a| a.stub_text(&st.node),
        |a| a.stub_json(&st.node.id, &st.node.name),
    );
    let idx = st.table(Table::Allocs);
    drop(st);
    Ok(list_out(list, Meta::Read(idx), pretty))
}

async fn deployment_specific(
    app: &AppState,
    method: &str,
    path: &str,
    rest: &str,
    q: &Query,
    body: &Bytes,
    pretty: bool,
) -> Result<Response, ApiError> {
    let write = method == "PUT" || method == "POST";
    let op = |prefix: &str| rest.strip_prefix(prefix).map(str::to_string);
    if let Some(id) = op("allocations/") {
        require(method == "GET")?;
        let st = app.sim.inner.lock_state();
        let key = st.deployments.get(&id).map(|d| d.key());
        let allocs = key
            .iter()
            .flat_map(|k| st.job_alloc_ids(k))
            .filter_map(|a| st.allocs.get(a))
            .filter(|a| a.deployment_id == id);
        let list = List::of(
            allocs,
            pretty,
            |a| a.stub_text(&st.node),
            |a| a.stub_json(&st.node.id, &st.node.name),
        );
        let idx = st.table(Table::Allocs);
        drop(st);
        return Ok(list_out(list, Meta::Read(idx), pretty));
    }
    let dep_write = |res: Result<u64, String>| -> Result<Response, ApiError> {
        let idx = res.map_err(ApiError::Server)?;
        Ok(json_out(
            &json!({"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": idx, "RevertedJobVersion": null, "Index": idx}),
            Meta::Write(idx),
            pretty,
        ))
    };
    if let Some(id) = op("promote/") {
        require(write)?;
        let args = parse_body(body, "structs.DeploymentPromoteRequest")?;
        let all = args.get("All").and_then(Value::as_bool).unwrap_or(false);
        let groups: Vec<String> = args
            .get("Groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        let r = app
            .sim
            .inner
            .lock_state()
            .promote_deployment(&id, all, &groups);
        return dep_write(r);
    }
    if let Some(id) = op("pause/") {
        require(write)?;
        let args = parse_body(body, "structs.DeploymentPauseRequest")?;
        let pause = args.get("Pause").and_then(Value::as_bool).unwrap_or(false);
        let r = app.sim.inner.lock_state().pause_deployment(&id, pause);
        return dep_write(r);
    }
    if let Some(id) = op("fail/") {
        require(write)?;
        let r = app.sim.inner.lock_state().fail_deployment_by_user(&id);
        return dep_write(r);
    }
    if rest.starts_with("allocation-health/") || rest.starts_with("unblock/") {
        return Err(not_implemented(method, path));
    }
    require(method == "GET")?;
    let id = rest.to_string();
    blocking(app, q, &[Table::Deployments], pretty, move |st| {
        let d = st
            .deployments
            .get(&id)
            .ok_or_else(|| ApiError::NotFound("deployment not found".into()))?;
        Ok((d.modify_index, d.to_json()))
    })
    .await
}

async fn job_specific(
    app: &AppState,
    method: &str,
    path: &str,
    rest: &str,
    q: &Query,
    body: &Bytes,
    pretty: bool,
) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let get = method == "GET";
    let write = method == "PUT" || method == "POST";
    let key_of = |id: &str| -> JobKey { (ns.clone(), id.to_string()) };
    let inner = &app.sim.inner;
    if let Some(id) = rest.strip_suffix("/evaluate") {
        require(write)?;
        // With a body, the job comes from its `JobID` (Nomad reads no path then).
        let id = if body.is_empty() {
            id.to_string()
        } else {
            let args = parse_body(body, "structs.JobEvaluateRequest")?;
            match args.get("JobID").and_then(Value::as_str) {
                Some(j) if !j.is_empty() => j.to_string(),
                _ => return Err(ApiError::BadRequest("Job ID must be specified".into())),
            }
        };
        let res = inner.lock_state().evaluate(&key_of(&id))?;
        return Ok(write_response(&res, Meta::Write(res.index), pretty));
    }
    if let Some(id) = rest.strip_suffix("/allocations") {
        require(get)?;
        let key = key_of(id);
        let all = q.flag("all");
        return blocking_list(app, q, &[Table::Allocs], pretty, move |st| {
            let ci = st.jobs.get(&key).map(|j| j.create_index);
            let allocs = st
                .job_alloc_ids(&key)
                .iter()
                .filter_map(|a| st.allocs.get(a))
                .filter(|a| all || Some(a.job_create_index) == ci);
            let list = List::of(
                allocs,
                pretty,
                |a| a.stub_text(&st.node),
                |a| a.stub_json(&st.node.id, &st.node.name),
            );
            Ok((st.table(Table::Allocs), list))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/evaluations") {
        require(get)?;
        let key = key_of(id);
        return blocking_list(app, q, &[Table::Evals], pretty, move |st| {
            let evals = st
                .evals_by_job
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|e| st.evals.get(e));
            let list = List::of(evals, pretty, |e| e.text(), |e| e.to_json());
            Ok((st.table(Table::Evals), list))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/periodic/force") {
        require(write)?;
        let v = inner.lock_state().periodic_force(&key_of(id))?;
        let idx = v.get("Index").and_then(Value::as_u64).unwrap_or(0);
        return Ok(json_out(&v, Meta::Write(idx), pretty));
    }
    if let Some(id) = rest.strip_suffix("/plan") {
        require(write)?;
        let args = parse_body(body, "api.JobPlanRequest")?;
        let spec = job_from_args(&args, Some(id), q, true)?;
        let want_diff = args.get("Diff").and_then(Value::as_bool).unwrap_or(false);
        let key: JobKey = (
            s(&spec, "Namespace").unwrap_or("default").to_string(),
            id.to_string(),
        );
        let v = inner.lock_state().plan(&key, &spec, want_diff)?;
        let idx = v.get("Index").and_then(Value::as_u64).unwrap_or(0);
        return Ok(json_out(&v, Meta::Write(idx), pretty));
    }
    // Nomad 1.1 serves `/summary` and `/versions` whatever the method.
    if let Some(id) = rest.strip_suffix("/summary") {
        let key = key_of(id);
        return blocking(app, q, &[Table::Summary], pretty, move |st| {
            let j = st
                .jobs
                .get(&key)
                .ok_or_else(|| ApiError::NotFound("job not found".into()))?;
            Ok((j.summary_modify_index, st.summary_json(&key, j)))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/dispatch") {
        require(write)?;
        let args = if body.is_empty() {
            json!({})
        } else {
            parse_body(body, "structs.JobDispatchRequest")?
        };
        if let Some(bid) = args.get("JobID").and_then(Value::as_str)
            && !bid.is_empty()
            && bid != id
        {
            return Err(ApiError::BadRequest("Job ID does not match".into()));
        }
        let payload = args
            .get("Payload")
            .and_then(Value::as_str)
            .map(str::to_string);
        let meta: BTreeMap<String, String> = args
            .get("Meta")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let v = inner.lock_state().dispatch(&key_of(id), payload, meta)?;
        let idx = v.get("Index").and_then(Value::as_u64).unwrap_or(0);
        return Ok(json_out(&v, Meta::Write(idx), pretty));
    }
    if let Some(id) = rest.strip_suffix("/versions") {
        let key = key_of(id);
        let diffs = q.flag("diffs");
        return blocking(app, q, &[Table::Jobs], pretty, move |st| {
            let j = st
                .jobs
                .get(&key)
                .ok_or_else(|| ApiError::NotFound("job versions not found".into()))?;
            let versions: Vec<Value> = j.versions.iter().rev().map(|v| st.version_json(v)).collect();
            let diff_v = if diffs {
                let ds: Vec<Value> = j
                    .versions
                    .windows(2)
                    .rev()
                    .map(|w| crate::plan_diff::job_diff(Some(&w[0].spec), &w[1].spec, true))
                    .collect();
                Value::Array(ds)
            } else {
                Value::Null
            };
            // The newest version's modify index (not the largest: a stability change
            // of an older version writes that one again).
            let idx = j.versions.last().map(|v| v.modify_index).unwrap_or(j.modify_index);
            Ok((
                idx,
                json!({"Versions": versions, "Diffs": diff_v, "Index": idx, "KnownLeader": true, "LastContact": 0}),
            ))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/revert") {
        require(write)?;
        let args = parse_body(body, "structs.JobRevertRequest")?;
        if let Some(bid) = args.get("JobID").and_then(Value::as_str)
            && bid != id
        {
            return Err(ApiError::BadRequest("Job ID does not match".into()));
        }
        let version = args.get("JobVersion").and_then(Value::as_u64).unwrap_or(0);
        let prior = args.get("EnforcePriorVersion").and_then(Value::as_u64);
        let res = inner.lock_state().revert(&key_of(id), version, prior)?;
        return Ok(write_response(
            &res,
            Meta::WriteLeaderUnknown(res.index),
            pretty,
        ));
    }
    if let Some(id) = rest.strip_suffix("/deployments") {
        require(get)?;
        let key = key_of(id);
        return blocking_list(app, q, &[Table::Deployments], pretty, move |st| {
            let mut ds: Vec<&Cached<crate::state::Deployment>> = st
                .deployments_by_job
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|d| st.deployments.get(d))
                .collect();
            ds.sort_by_key(|d| std::cmp::Reverse(d.create_index));
            let list = List::of(ds.into_iter(), pretty, |d| d.text(), |d| d.to_json());
            Ok((st.table(Table::Deployments), list))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/deployment") {
        require(get)?;
        let key = key_of(id);
        return blocking(app, q, &[Table::Deployments], pretty, move |st| {
            let v = st
                .latest_deployment(&key)
                .map(|d| d.to_json())
                .unwrap_or(Value::Null);
            Ok((st.table(Table::Deployments), v))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/stable") {
        require(write)?;
        let args = parse_body(body, "structs.JobStabilityRequest")?;
        if let Some(bid) = args.get("JobID").and_then(Value::as_str)
            && bid != id
        {
            return Err(ApiError::BadRequest("Job ID does not match".into()));
        }
        let version = args.get("JobVersion").and_then(Value::as_u64).unwrap_or(0);
        let stable = args.get("Stable").and_then(Value::as_bool).unwrap_or(false);
        let idx = inner.lock_state().stable(&key_of(id), version, stable)?;
        return Ok(json_out(&json!({"Index": idx}), Meta::Write(idx), pretty));
    }
    if let Some(id) = rest.strip_suffix("/scale") {
        let key = key_of(id);
        return match method {
            "GET" => {
                blocking(
                    app,
                    q,
                    &[Table::Jobs, Table::Allocs, Table::ScalingEvents],
                    pretty,
                    move |st| {
                        // A job that does not exist answers index 0 (Nomad sets none).
                        st.scale_status(&key)
                            .ok_or_else(|| ApiError::NotFoundRead("job not found".into(), 0))
                    },
                )
                .await
            }
            "PUT" | "POST" => {
                let args = parse_body(body, "api.ScalingRequest")?;
                let req = crate::scaling::ScaleRequest::decode(&args)?;
                if req
                    .target
                    .get("Job")
                    .is_some_and(|j| !j.is_empty() && j != id)
                {
                    return Err(ApiError::BadRequest(
                        "job ID in payload did not match URL".into(),
                    ));
                }
                let res = inner.lock_state().scale(&key, &req)?;
                Ok(json_out(
                    &json!({
                        "EvalCreateIndex": res.eval_create_index, "EvalID": res.eval_id,
                        "Index": res.index, "JobModifyIndex": res.job_modify_index,
                        "KnownLeader": true, "LastContact": 0, "Warnings": ""
                    }),
                    Meta::Write(res.index),
                    pretty,
                ))
            }
            _ => Err(ApiError::MethodNotAllowed),
        };
    }
    if rest.ends_with("/services") {
        return Err(not_implemented(method, path));
    }
    // Job CRUD.
    let id = rest;
    match method {
        "GET" => {
            let key = key_of(id);
            blocking(app, q, &[Table::Jobs], pretty, move |st| {
                let j = st
                    .jobs
                    .get(&key)
                    .ok_or_else(|| ApiError::NotFound("job not found".into()))?;
                Ok((j.modify_index, st.job_json(j)))
            })
            .await
        }
        "PUT" | "POST" => register(app, Some(id), q, body, pretty),
        "DELETE" => {
            let purge = q.flag("purge");
            let res = inner.lock_state().deregister(&key_of(id), purge);
            Ok(json_out(
                &json!({"EvalID": res.eval_id, "EvalCreateIndex": res.eval_create_index,
                        "JobModifyIndex": res.job_modify_index, "VolumeEvalID": "", "VolumeEvalIndex": 0,
                        "Index": res.index, "LastContact": 0, "KnownLeader": false}),
                Meta::Write(res.index),
                pretty,
            ))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// `POST /v1/jobs/parse` (see [`crate::hcl::parse_request`]).
fn parse_hcl(
    release: &crate::agent::Release,
    body: &Bytes,
    pretty: bool,
) -> Result<Response, ApiError> {
    let args = parse_body(body, "api.JobsParseRequest")?;
    let (job, canonicalize) =
        crate::hcl::parse_request(release, &args).map_err(ApiError::BadRequest)?;
    let job = crate::apijob::api_job(&job, canonicalize);
    Ok(json_out(&Value::Object(job), Meta::None, pretty))
}

/// The values of `map` whose key starts with `prefix`, in key order (Nomad's `?prefix=`).
fn by_prefix<'a, T>(
    map: &'a std::collections::BTreeMap<String, T>,
    prefix: &'a str,
) -> impl Iterator<Item = &'a T> {
    map.range(prefix.to_string()..)
        .take_while(move |(id, _)| id.starts_with(prefix))
        .map(|(_, value)| value)
}

#[cfg(test)]
mod prefix_tests {
    use super::by_prefix;
    use std::collections::BTreeMap;

    #[test]
    fn by_prefix_returns_the_matching_keys_in_order_and_nothing_else() {
        let map: BTreeMap<String, u32> = [("ab1", 1), ("ab2", 2), ("abc", 3), ("b", 4), ("a", 5)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(
            by_prefix(&map, "ab").copied().collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(by_prefix(&map, "").count(), 5);
        assert_eq!(by_prefix(&map, "zz").count(), 0);
    }
}
