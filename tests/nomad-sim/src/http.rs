//! The HTTP API: routing like Nomad 1.1's agent (`/v1/job/` suffix dispatch,
//! 405 `Invalid method`, Go-mux 404s), request logging, faults, ACL, region
//! forwarding errors, blocking reads and JSON/text responses.

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

use crate::blocking::{blocking_query, parse_blocking};
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
}

/// Builds the router: one fallback handler doing Nomad-style dispatch.
pub(crate) fn router(sim: Simulator, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(AppState { sim, shutdown })
}

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

fn base_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert("X-Nomad-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Nomad-LastContact", HeaderValue::from_static("0"));
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

/// A JSON response with Nomad's query-meta headers.
pub(crate) fn json_resp(v: &Value, index: Option<u64>, pretty: bool) -> Response {
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
    if let Some(i) = index
        && let Ok(hv) = HeaderValue::from_str(&i.max(1).to_string())
    {
        resp.headers_mut().insert("X-Nomad-Index", hv);
    }
    base_headers(&mut resp);
    resp
}

fn error_resp(e: ApiError) -> Response {
    let mut r = match e {
        ApiError::BadRequest(m) => text(400, m),
        ApiError::Forbidden(m) => text(403, m),
        ApiError::NotFound(m) => text(404, m),
        ApiError::MethodNotAllowed => text(405, "Invalid method"),
        ApiError::Server(m) => text(500, m),
        ApiError::NotImplemented(m) => text(501, m),
    };
    base_headers(&mut r);
    r
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
    let path = percent_decode(&raw_path, false);
    tracing::debug!(peer = %conn.peer, %method, %path, "request");
    let inner = app.sim.inner.clone();
    let record = |status: u16| {
        inner.record(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status,
        })
    };
    if let Some(f) = app.sim.inner.match_fault(&method, &path) {
        if let Some(ms) = f.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if f.drop_connection {
            conn.kill();
            record(0);
            return text(500, "");
        }
        if let Some(status) = f.status {
            record(status);
            let mut r = text(status, f.body.unwrap_or_default());
            base_headers(&mut r);
            return r;
        }
    }
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let r = error_resp(ApiError::BadRequest(format!("failed to read body: {e}")));
            record(r.status().as_u16());
            return r;
        }
    };
    let q = Query {
        pairs: parse_query(&query),
    };
    let resp = match route(&app, &method, &path, &q, &headers, body).await {
        Ok(r) => r,
        Err(e) => error_resp(e),
    };
    record(resp.status().as_u16());
    resp
}

/// Known Nomad API prefixes this simulator does not implement (answer 501).
const UNIMPLEMENTED_PREFIXES: &[&str] = &[
    "/v1/nodes",
    "/v1/node/",
    "/v1/agent/",
    "/v1/acl/",
    "/v1/namespace/",
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
        return Err(ApiError::NotFound("404 page not found\n".into()));
    }
    let inner = &app.sim.inner;
    crate::acl::check(inner.config.acl_token.as_deref(), path, headers)?;
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
                parse_hcl(&body, pretty)
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
        "/v1/status/leader" => Ok(json_resp(&json!("127.0.0.1:4647"), None, pretty)),
        "/v1/status/peers" => Ok(json_resp(&json!(["127.0.0.1:4647"]), None, pretty)),
        "/v1/regions" => Ok(json_resp(&json!(["global"]), None, pretty)),
        "/v1/agent/health" => Ok(json_resp(
            &json!({"client": {"ok": true, "message": "ok"}, "server": {"ok": true, "message": "ok"}}),
            None,
            pretty,
        )),
        "/v1/namespaces" => {
            require(get)?;
            let st = inner.lock_state();
            let mut names: Vec<String> = st.jobs.keys().map(|k| k.0.clone()).collect();
            names.push("default".into());
            names.sort();
            names.dedup();
            let v: Vec<Value> = names
                .iter()
                .map(|n| json!({"Name": n, "Description": if n == "default" { "Default shared namespace" } else { "" }, "Quota": "", "CreateIndex": 1, "ModifyIndex": 1}))
                .collect();
            let idx = st.index;
            drop(st);
            Ok(json_resp(&Value::Array(v), Some(idx), pretty))
        }
        _ => {
            if let Some(rest) = path.strip_prefix("/v1/job/") {
                job_specific(app, method, path, rest, q, &body, pretty).await
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
                Err(ApiError::NotFound("404 page not found\n".into()))
            }
        }
    }
}

fn require(ok: bool) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("EOF".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn write_response(r: &WriteResult, pretty: bool) -> Response {
    json_resp(
        &json!({
            "EvalID": r.eval_id, "EvalCreateIndex": r.eval_create_index,
            "JobModifyIndex": r.job_modify_index, "Warnings": "", "Index": r.index,
            "LastContact": 0, "KnownLeader": false
        }),
        Some(r.index),
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
        Some(_) => {
            return Err(ApiError::BadRequest(
                "json: cannot unmarshal non-object into Go struct field .Job of type api.Job"
                    .into(),
            ));
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
    let args = parse_body(body)?;
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
    let res = app
        .sim
        .inner
        .lock_state()
        .register_spec(Arc::new(spec), enforce, "job-register")?;
    Ok(write_response(&res, pretty))
}

async fn blocking(
    app: &AppState,
    q: &Query,
    tables: &[Table],
    pretty: bool,
    f: impl FnMut(&State) -> Result<(u64, Value), ApiError>,
) -> Result<Response, ApiError> {
    let (min, wait) = parse_blocking(q.get("index"), q.get("wait"))?;
    let (idx, v) = blocking_query(&app.sim.inner, &app.shutdown, tables, min, wait, f).await?;
    Ok(json_resp(&v, Some(idx), pretty))
}

fn ns_match(q_ns: &str, ns: &str) -> bool {
    q_ns == "*" || q_ns == ns
}

async fn list_jobs(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking(app, q, &[Table::Jobs, Table::Summary], pretty, move |st| {
        let idx = st.table(Table::Jobs).max(st.table(Table::Summary));
        let mut out = Vec::new();
        if ns == "*" {
            for (k, j) in &st.jobs {
                if k.1.starts_with(&prefix) {
                    out.push(st.job_stub_json(k, j));
                }
            }
        } else {
            let start: JobKey = (ns.clone(), prefix.clone());
            for (k, j) in st.jobs.range(start..) {
                if k.0 != ns || !k.1.starts_with(&prefix) {
                    break;
                }
                out.push(st.job_stub_json(k, j));
            }
        }
        Ok((idx, Value::Array(out)))
    })
    .await
}

async fn list_allocations(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking(app, q, &[Table::Allocs], pretty, move |st| {
        let out: Vec<Value> = by_prefix(&st.allocs, &prefix)
            .filter(|a| ns_match(&ns, &a.namespace))
            .map(|a| a.stub_json(&st.node.id, &st.node.name))
            .collect();
        Ok((st.table(Table::Allocs), Value::Array(out)))
    })
    .await
}

async fn list_deployments(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking(app, q, &[Table::Deployments], pretty, move |st| {
        let out: Vec<Value> = by_prefix(&st.deployments, &prefix)
            .filter(|d| ns_match(&ns, &d.namespace))
            .map(|d| d.to_json())
            .collect();
        Ok((st.table(Table::Deployments), Value::Array(out)))
    })
    .await
}

async fn list_evaluations(app: &AppState, q: &Query, pretty: bool) -> Result<Response, ApiError> {
    let ns = q.namespace();
    let prefix = q.prefix().to_string();
    blocking(app, q, &[Table::Evals], pretty, move |st| {
        let out: Vec<Value> = by_prefix(&st.evals, &prefix)
            .filter(|e| ns_match(&ns, &e.namespace))
            .map(|e| e.to_json())
            .collect();
        Ok((st.table(Table::Evals), Value::Array(out)))
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
    let out: Vec<Value> = key
        .map(|k| {
            st.job_alloc_ids(&k)
                .iter()
                .filter_map(|a| st.allocs.get(a))
                .filter(|a| a.eval_id == id)
                .map(|a| a.stub_json(&st.node.id, &st.node.name))
                .collect()
        })
        .unwrap_or_default();
    let idx = st.table(Table::Allocs);
    drop(st);
    Ok(json_resp(&Value::Array(out), Some(idx), pretty))
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
        let out: Vec<Value> = key
            .map(|k| {
                st.job_alloc_ids(&k)
                    .iter()
                    .filter_map(|a| st.allocs.get(a))
                    .filter(|a| a.deployment_id == id)
                    .map(|a| a.stub_json(&st.node.id, &st.node.name))
                    .collect()
            })
            .unwrap_or_default();
        let idx = st.table(Table::Allocs);
        drop(st);
        return Ok(json_resp(&Value::Array(out), Some(idx), pretty));
    }
    let dep_write = |res: Result<u64, String>| -> Result<Response, ApiError> {
        let idx = res.map_err(ApiError::Server)?;
        Ok(json_resp(
            &json!({"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": idx, "RevertedJobVersion": null, "Index": idx}),
            Some(idx),
            pretty,
        ))
    };
    if let Some(id) = op("promote/") {
        require(write)?;
        let args = parse_body(body)?;
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
        let args = parse_body(body)?;
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
        let res = inner.lock_state().evaluate(&key_of(id))?;
        return Ok(write_response(&res, pretty));
    }
    if let Some(id) = rest.strip_suffix("/allocations") {
        require(get)?;
        let key = key_of(id);
        let all = q.flag("all");
        return blocking(app, q, &[Table::Allocs], pretty, move |st| {
            let ci = st.jobs.get(&key).map(|j| j.create_index);
            let out: Vec<Value> = st
                .job_alloc_ids(&key)
                .iter()
                .filter_map(|a| st.allocs.get(a))
                .filter(|a| all || Some(a.job_create_index) == ci)
                .map(|a| a.stub_json(&st.node.id, &st.node.name))
                .collect();
            Ok((st.table(Table::Allocs), Value::Array(out)))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/evaluations") {
        require(get)?;
        let key = key_of(id);
        return blocking(app, q, &[Table::Evals], pretty, move |st| {
            let out: Vec<Value> = st
                .evals_by_job
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|e| st.evals.get(e))
                .map(|e| e.to_json())
                .collect();
            Ok((st.table(Table::Evals), Value::Array(out)))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/periodic/force") {
        require(write)?;
        let v = inner.lock_state().periodic_force(&key_of(id))?;
        let idx = v.get("Index").and_then(Value::as_u64);
        return Ok(json_resp(&v, idx, pretty));
    }
    if let Some(id) = rest.strip_suffix("/plan") {
        require(write)?;
        let args = parse_body(body)?;
        let spec = job_from_args(&args, Some(id), q, true)?;
        let want_diff = args.get("Diff").and_then(Value::as_bool).unwrap_or(false);
        let key: JobKey = (
            s(&spec, "Namespace").unwrap_or("default").to_string(),
            id.to_string(),
        );
        let v = inner.lock_state().plan(&key, &spec, want_diff);
        let idx = v.get("Index").and_then(Value::as_u64);
        return Ok(json_resp(&v, idx, pretty));
    }
    if let Some(id) = rest.strip_suffix("/summary") {
        require(get)?;
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
            parse_body(body)?
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
        let idx = v.get("Index").and_then(Value::as_u64);
        return Ok(json_resp(&v, idx, pretty));
    }
    if let Some(id) = rest.strip_suffix("/versions") {
        require(get)?;
        let key = key_of(id);
        let diffs = q.flag("diffs");
        return blocking(app, q, &[Table::Jobs], pretty, move |st| {
            let j = st
                .jobs
                .get(&key)
                .ok_or_else(|| ApiError::NotFound("job versions not found".into()))?;
            let versions: Vec<Value> = j.versions.iter().rev().map(|v| st.version_json(j, v)).collect();
            let diff_v = if diffs {
                let ds: Vec<Value> = j
                    .versions
                    .windows(2)
                    .rev()
                    .map(|w| crate::plan_diff::job_diff(Some(&w[0].spec), &w[1].spec, false))
                    .collect();
                Value::Array(ds)
            } else {
                Value::Null
            };
            let idx = j.versions.iter().map(|v| v.modify_index).max().unwrap_or(j.modify_index).max(j.modify_index);
            Ok((
                idx,
                json!({"Versions": versions, "Diffs": diff_v, "Index": idx, "KnownLeader": true, "LastContact": 0}),
            ))
        })
        .await;
    }
    if let Some(id) = rest.strip_suffix("/revert") {
        require(write)?;
        let args = parse_body(body)?;
        if let Some(bid) = args.get("JobID").and_then(Value::as_str)
            && bid != id
        {
            return Err(ApiError::BadRequest("Job ID does not match".into()));
        }
        let version = args.get("JobVersion").and_then(Value::as_u64).unwrap_or(0);
        let prior = args.get("EnforcePriorVersion").and_then(Value::as_u64);
        let res = inner.lock_state().revert(&key_of(id), version, prior)?;
        return Ok(write_response(&res, pretty));
    }
    if let Some(id) = rest.strip_suffix("/deployments") {
        require(get)?;
        let key = key_of(id);
        return blocking(app, q, &[Table::Deployments], pretty, move |st| {
            let mut ds: Vec<&crate::state::Deployment> = st
                .deployments_by_job
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|d| st.deployments.get(d))
                .collect();
            ds.sort_by_key(|d| std::cmp::Reverse(d.create_index));
            let out: Vec<Value> = ds.iter().map(|d| d.to_json()).collect();
            Ok((st.table(Table::Deployments), Value::Array(out)))
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
        let args = parse_body(body)?;
        if let Some(bid) = args.get("JobID").and_then(Value::as_str)
            && bid != id
        {
            return Err(ApiError::BadRequest("Job ID does not match".into()));
        }
        let version = args.get("JobVersion").and_then(Value::as_u64).unwrap_or(0);
        let stable = args.get("Stable").and_then(Value::as_bool).unwrap_or(false);
        let idx = inner.lock_state().stable(&key_of(id), version, stable)?;
        return Ok(json_resp(
            &json!({"JobModifyIndex": idx, "Index": idx}),
            Some(idx),
            pretty,
        ));
    }
    if rest.ends_with("/scale") || rest.ends_with("/services") {
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
            Ok(json_resp(
                &json!({"EvalID": res.eval_id, "EvalCreateIndex": res.eval_create_index,
                        "JobModifyIndex": res.job_modify_index, "VolumeEvalID": "", "VolumeEvalIndex": 0,
                        "Index": res.index, "LastContact": 0, "KnownLeader": false}),
                Some(res.index),
                pretty,
            ))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn parse_hcl(body: &Bytes, pretty: bool) -> Result<Response, ApiError> {
    let args = parse_body(body)?;
    let src = args
        .get("JobHCL")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if src.trim().is_empty() {
        return Err(ApiError::BadRequest("Job spec is empty".into()));
    }
    let canonicalize = args
        .get("Canonicalize")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let job = crate::hcl::parse_job(src).map_err(ApiError::BadRequest)?;
    let job = if canonicalize {
        canonicalize_job(&job, "default", "global")
    } else {
        job
    };
    Ok(json_resp(&Value::Object(job), None, pretty))
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
