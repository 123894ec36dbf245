//! Job write operations with Nomad 1.1's semantics and error texts: register
//! (with check-and-set), deregister/purge, revert, stability, plan, dispatch,
//! periodic force and evaluate.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::canonical::{Obj, b, s};
use crate::plan_diff::{annotate, job_diff};
use crate::state::{JobEntry, JobKey, JobVersion, State, TRACKED_VERSIONS, Table};

/// Drops the oldest version beyond [`TRACKED_VERSIONS`] (`versions` oldest first), but
/// never the newest stable one: then the next oldest goes (Nomad's `upsertJobVersion`).
fn prune_versions(versions: &mut Vec<JobVersion>) {
    while versions.len() > TRACKED_VERSIONS {
        let oldest_is_newest_stable = versions
            .iter()
            .rposition(|v| v.stable)
            .is_some_and(|i| i == 0);
        versions.remove(usize::from(oldest_is_newest_stable));
    }
}
use crate::util::{new_uuid, now_ns};

/// An error answered to an API client: status code + text/plain body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 400
    BadRequest(String),
    /// 403
    Forbidden(String),
    /// 404
    NotFound(String),
    /// 404 of a read, with the read's meta headers at this index (`job not found`).
    NotFoundRead(String, u64),
    /// 404 of an unknown path: no body, no content type.
    NoRoute,
    /// 405
    MethodNotAllowed,
    /// 500
    Server(String),
    /// 501
    NotImplemented(String),
}

/// Result of a write that creates an evaluation.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteResult {
    pub eval_id: String,
    pub eval_create_index: u64,
    pub job_modify_index: u64,
    pub index: u64,
    /// `Warnings` of a register (`""` for none).
    pub warnings: String,
}

/// Prefix Nomad puts on check-and-set register failures.
const ENFORCE_PREFIX: &str = "Enforcing job modify index";

impl State {
    /// Registers a canonical, validated job spec. `enforce` is the check-and-set
    /// `JobModifyIndex` (`Some(0)`: must not exist). `stable` is the `Stable` flag the
    /// registered job carries: false from a client, but a revert (by hand or Nomad's
    /// auto-revert) registers a copy of the old version, flag included.
    pub(crate) fn register_spec(
        &mut self,
        spec: Arc<Obj>,
        stable: bool,
        enforce: Option<u64>,
        triggered_by: &str,
    ) -> Result<WriteResult, ApiError> {
        let key: JobKey = (
            s(&spec, "Namespace").unwrap_or("default").to_string(),
            s(&spec, "ID").unwrap_or_default().to_string(),
        );
        let existing = self.jobs.get(&key);
        if let Some(jmi) = enforce {
            match existing {
                Some(_) if jmi == 0 => {
                    return Err(ApiError::Server(format!(
                        "{ENFORCE_PREFIX} 0: job already exists"
                    )));
                }
                Some(e) if e.job_modify_index != jmi => {
                    return Err(ApiError::Server(format!(
                        "{ENFORCE_PREFIX} {jmi}: job exists with conflicting job modify index: {}",
                        e.job_modify_index
                    )));
                }
                None if jmi != 0 => {
                    return Err(ApiError::Server(format!(
                        "{ENFORCE_PREFIX} {jmi}: job does not exist"
                    )));
                }
                _ => {}
            }
        }
        self.check_namespace(&key.0, &key.1)?;
        // Nomad gives each scaling policy the ID the job's policy of that group has, and
        // compares the specs after that (its `SpecChanged`, policy indexes included).
        let spec = self.propagate_policy_ids(&key, spec);
        let existing = self.jobs.get(&key);
        let changed = existing.is_none_or(|e| *e.spec != *spec || e.constraint_cached);
        let warnings = crate::canonical::job_warnings(&spec);
        let idx = self.bump();
        if changed {
            self.upsert_job(&key, spec, stable, now_ns(), None, idx);
            if let Some(j) = self.jobs.get_mut(&key) {
                j.constraint_cached = false;
            }
        }
        let (jmi, is_parent) = match self.jobs.get(&key) {
            Some(j) => (j.job_modify_index, j.is_parent()),
            None => (idx, false),
        };
        let mut res = WriteResult {
            job_modify_index: jmi,
            index: idx,
            warnings,
            ..Default::default()
        };
        if !is_parent {
            res.eval_id = self.create_eval(&key, triggered_by, jmi, idx, true);
            res.eval_create_index = idx;
        }
        self.refresh_job(&key, idx);
        Ok(res)
    }

    /// Writes a job like Nomad's `upsertJobImpl`: into the jobs table and, as its
    /// version, into the versions table (its scaling policies into theirs first). Without `keep`, the version is one past the
    /// current one and the job modify index is `idx`; with `keep = (version, jmi)` both
    /// stay (a stability change). Either way the job's status is computed now, before any
    /// evaluation of this write exists, and the version keeps that status for good.
    pub(crate) fn upsert_job(
        &mut self,
        key: &JobKey,
        spec: Arc<Obj>,
        stable: bool,
        submit_time: i64,
        keep: Option<(u64, u64)>,
        idx: u64,
    ) {
        let create_index = self.jobs.get(key).map(|e| e.create_index).unwrap_or(idx);
        let spec = self.upsert_scaling_policies(key, spec, idx);
        let status = self.derive_status(key, &spec, create_index).to_string();
        let (version, jmi) = match (keep, self.jobs.get(key)) {
            (Some(k), _) => k,
            (None, Some(e)) => (e.version + 1, idx),
            (None, None) => (0, idx),
        };
        let entry = JobVersion {
            spec: spec.clone(),
            version,
            stable,
            submit_time,
            create_index,
            modify_index: idx,
            job_modify_index: jmi,
            status: status.clone(),
        };
        match self.jobs.get_mut(key) {
            Some(e) => {
                e.spec = spec;
                e.version = version;
                e.stable = stable;
                e.submit_time = submit_time;
                e.status = status;
                e.status_description = String::new();
                e.modify_index = idx;
                e.job_modify_index = jmi;
                e.aliased = true;
                match e.versions.iter_mut().find(|v| v.version == version) {
                    Some(v) => *v = entry,
                    None => {
                        e.versions.push(entry);
                        e.versions.sort_by_key(|v| v.version);
                    }
                }
                prune_versions(&mut e.versions);
            }
            None => {
                self.jobs.insert(
                    key.clone(),
                    JobEntry {
                        spec,
                        version,
                        stable,
                        submit_time,
                        status,
                        status_description: String::new(),
                        create_index,
                        modify_index: idx,
                        job_modify_index: jmi,
                        versions: vec![entry],
                        summary: BTreeMap::new(),
                        children: Default::default(),
                        summary_create_index: idx,
                        summary_modify_index: idx,
                        aliased: true,
                        queued: BTreeMap::new(),
                        constraint_cached: false,
                    }
                    .into(),
                );
                self.touch(Table::Summary, idx);
            }
        }
        self.touch(Table::Jobs, idx);
    }

    /// `DELETE /v1/job/:id` (stop as a new version, or purge).
    pub(crate) fn deregister(&mut self, key: &JobKey, purge: bool) -> WriteResult {
        let idx = self.bump();
        // A periodic or parameterized job gets no evaluation.
        let parent = self.jobs.get(key).is_some_and(|j| j.is_parent());
        if self.jobs.contains_key(key) {
            if purge {
                self.jobs.remove(key);
                self.delete_job_scaling(key, idx);
                self.touch(Table::Jobs, idx);
                self.touch(Table::Summary, idx);
            } else if let Some(j) = self.jobs.get(key) {
                // A copy of the current job, stopped: a new version that keeps the
                // current one's `Stable` flag and submit time.
                let mut spec = (*j.spec).clone();
                spec.insert("Stop".into(), json!(true));
                let (stable, submit) = (j.stable, j.submit_time);
                self.upsert_job(key, Arc::new(spec), stable, submit, None, idx);
            }
        }
        let eval_id = if parent {
            String::new()
        } else {
            let id = self.create_eval(key, "job-deregister", idx, idx, true);
            // Nomad gives a deregister's evaluation the default priority and the
            // service type, whatever the job's.
            if let Some(e) = self.evals.get_mut(&id) {
                e.priority = 50;
                e.kind = "service".into();
            }
            id
        };
        self.refresh_job(key, idx);
        WriteResult {
            eval_id,
            eval_create_index: idx,
            job_modify_index: idx,
            index: idx,
            warnings: String::new(),
        }
    }

    /// `POST /v1/job/:id/revert`.
    pub(crate) fn revert(
        &mut self,
        key: &JobKey,
        version: u64,
        enforce_prior: Option<u64>,
    ) -> Result<WriteResult, ApiError> {
        let Some(cur) = self.jobs.get(key) else {
            return Err(ApiError::Server(format!("job {:?} not found", key.1)));
        };
        if version == cur.version {
            return Err(ApiError::Server("can't revert to current version".into()));
        }
        let Some(target) = cur.versions.iter().find(|v| v.version == version) else {
            return Err(ApiError::Server(format!(
                "job {:?} in namespace {:?} at version {} not found",
                key.1, key.0, version
            )));
        };
        let mut enforce = None;
        if let Some(prior) = enforce_prior {
            if cur.version != prior {
                return Err(ApiError::Server(format!(
                    "Current job has version {}; enforcing version {}",
                    cur.version, prior
                )));
            }
            enforce = Some(cur.job_modify_index);
        }
        let (spec, stable) = (target.spec.clone(), target.stable);
        self.register_spec(spec, stable, enforce, "job-register")
    }

    /// `POST /v1/job/:id/stable`.
    pub(crate) fn stable(
        &mut self,
        key: &JobKey,
        version: u64,
        stable: bool,
    ) -> Result<u64, ApiError> {
        let exists = self
            .jobs
            .get(key)
            .is_some_and(|j| j.versions.iter().any(|v| v.version == version));
        if !exists {
            return Err(ApiError::Server(format!(
                "job {:?} in namespace {:?} at version {} not found",
                key.1, key.0, version
            )));
        }
        let idx = self.bump();
        self.set_stable(key, version, stable, idx);
        Ok(idx)
    }

    /// `POST /v1/job/:id/plan`: never writes.
    pub(crate) fn plan(
        &self,
        key: &JobKey,
        new_spec: &Obj,
        want_diff: bool,
    ) -> Result<Value, ApiError> {
        self.check_namespace(&key.0, &key.1)?;
        let existing = self.jobs.get(key);
        let old = existing.map(|j| j.spec.as_ref());
        let new_spec = self.propagate_policy_ids(key, Arc::new(new_spec.clone()));
        let new_spec = new_spec.as_ref();
        // A stored job whose constraint text was reported differs from any spec sent.
        let changed =
            old.is_none_or(|o| o != new_spec) || existing.is_some_and(|j| j.constraint_cached);
        let mut ctx = crate::placement::SchedCtx::for_plan();
        let (updates, attempts) = self.plan_updates(key, new_spec, changed, &mut ctx);
        // Destructive updates are placed first, then new allocations (canaries too),
        // group by group in the job's order (Nomad's order is a map's).
        for destructive in [true, false] {
            for g in crate::canonical::groups(new_spec).filter_map(|g| s(g, "Name")) {
                let Some((_, (d, p))) = attempts.iter().find(|(n, _)| n == g) else {
                    continue;
                };
                for _ in 0..if destructive { *d } else { *p } {
                    ctx.place(self, key, new_spec, g, None);
                }
            }
        }
        // The plan's blocked evaluation (never written) carries the index the job would
        // be inserted at into the plan's snapshot: one past the job's when it changed.
        let created = if ctx.failed.is_empty() {
            Value::Null
        } else {
            let jmi = existing
                .filter(|_| changed)
                .map_or(0, |j| j.job_modify_index + 1);
            let ev = self.blocked_eval(key, new_spec, &ctx, &new_uuid(), jmi, 0, 0);
            json!([ev.to_json()])
        };
        let diff = if want_diff {
            let mut d = job_diff(old, new_spec, true);
            annotate(&mut d, &updates);
            d
        } else {
            Value::Null
        };
        Ok(json!({
            "Index": existing.map(|j| j.job_modify_index).unwrap_or(0),
            "JobModifyIndex": existing.map(|j| j.job_modify_index).unwrap_or(0),
            "Diff": diff,
            "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": null},
            "FailedTGAllocs": ctx.failed_json(),
            "CreatedEvals": created,
            "NextPeriodicLaunch": null,
            "Warnings": crate::canonical::job_warnings(new_spec)
        }))
    }

    /// `POST /v1/job/:id/dispatch`.
    pub(crate) fn dispatch(
        &mut self,
        key: &JobKey,
        payload: Option<String>,
        meta: BTreeMap<String, String>,
    ) -> Result<Value, ApiError> {
        let Some(parent) = self.jobs.get(key) else {
            return Err(ApiError::Server("parameterized job not found".into()));
        };
        let Some(pj) = parent
            .spec
            .get("ParameterizedJob")
            .and_then(Value::as_object)
            .cloned()
        else {
            return Err(ApiError::Server(format!(
                "Specified job {:?} is not a parameterized job",
                key.1
            )));
        };
        if parent.stopped() {
            return Err(ApiError::Server(format!(
                "Specified job {:?} is stopped",
                key.1
            )));
        }
        let payload = payload.filter(|p| !p.is_empty());
        match (s(&pj, "Payload").unwrap_or("optional"), &payload) {
            ("required", None) => {
                return Err(ApiError::Server(
                    "Payload is not provided but required by parameterized job".into(),
                ));
            }
            ("forbidden", Some(_)) => {
                return Err(ApiError::Server(
                    "Payload provided but forbidden by parameterized job".into(),
                ));
            }
            _ => {}
        }
        let list = |k: &str| -> Vec<String> {
            pj.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let required = list("MetaRequired");
        let optional = list("MetaOptional");
        let missing: Vec<&String> = required.iter().filter(|k| !meta.contains_key(*k)).collect();
        if !missing.is_empty() {
            return Err(ApiError::Server(format!(
                "Dispatch did not provide required meta keys: {missing:?}"
            )));
        }
        let unpermitted: Vec<&String> = meta
            .keys()
            .filter(|k| !required.contains(k) && !optional.contains(k))
            .collect();
        if !unpermitted.is_empty() {
            return Err(ApiError::Server(format!(
                "Dispatch provided meta keys not allowed by parameterized job: {unpermitted:?}"
            )));
        }
        let mut child = (*parent.spec).clone();
        let child_id = format!(
            "{}/dispatch-{}-{}",
            key.1,
            now_ns() / 1_000_000_000,
            &new_uuid()[..8]
        );
        child.insert("ID".into(), json!(child_id));
        child.insert("Name".into(), json!(child_id));
        child.insert("ParentID".into(), json!(key.1));
        child.insert("Dispatched".into(), json!(true));
        child.insert(
            "Payload".into(),
            payload.map(Value::String).unwrap_or(Value::Null),
        );
        let mut m = child
            .get("Meta")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in meta {
            m.insert(k, json!(v));
        }
        if !m.is_empty() {
            child.insert("Meta".into(), Value::Object(m));
        }
        let res = self.register_spec(Arc::new(child), false, None, "job-register")?;
        let ci = self
            .jobs
            .get(&(key.0.clone(), child_id.clone()))
            .map(|j| j.create_index)
            .unwrap_or(res.index);
        Ok(json!({
            "Index": res.index, "JobCreateIndex": ci, "EvalCreateIndex": res.eval_create_index,
            "EvalID": res.eval_id, "DispatchedJobID": child_id
        }))
    }

    /// `POST /v1/job/:id/periodic/force`.
    pub(crate) fn periodic_force(&mut self, key: &JobKey) -> Result<Value, ApiError> {
        let Some(parent) = self.jobs.get(key) else {
            return Err(ApiError::Server(format!("job {:?} not found", key.1)));
        };
        let periodic = parent
            .spec
            .get("Periodic")
            .and_then(Value::as_object)
            .is_some_and(|p| b(p, "Enabled"));
        if !periodic {
            return Err(ApiError::Server(
                "can't force launch non-periodic job".into(),
            ));
        }
        let mut child = (*parent.spec).clone();
        let child_id = format!("{}/periodic-{}", key.1, now_ns() / 1_000_000_000);
        let child_id = if self.jobs.contains_key(&(key.0.clone(), child_id.clone())) {
            format!("{child_id}-{}", &new_uuid()[..4])
        } else {
            child_id
        };
        child.insert("ID".into(), json!(child_id));
        child.insert("Name".into(), json!(child_id));
        child.insert("ParentID".into(), json!(key.1));
        child.insert("Periodic".into(), Value::Null);
        let res = self.register_spec(Arc::new(child), false, None, "periodic-job")?;
        Ok(
            json!({"EvalID": res.eval_id, "EvalCreateIndex": res.eval_create_index, "Index": res.index}),
        )
    }

    /// `POST /v1/job/:id/evaluate`.
    pub(crate) fn evaluate(&mut self, key: &JobKey) -> Result<WriteResult, ApiError> {
        let Some(j) = self.jobs.get(key) else {
            return Err(ApiError::Server("job not found".into()));
        };
        if j.spec.get("Periodic").is_some_and(Value::is_object) {
            return Err(ApiError::Server("can't evaluate periodic job".into()));
        }
        if j.spec.get("ParameterizedJob").is_some_and(Value::is_object) && !b(&j.spec, "Dispatched")
        {
            return Err(ApiError::Server("can't evaluate parameterized job".into()));
        }
        let jmi = j.job_modify_index;
        let idx = self.bump();
        let eval_id = self.create_eval(key, "job-register", jmi, idx, true);
        self.refresh_job(key, idx);
        Ok(WriteResult {
            eval_id,
            eval_create_index: idx,
            job_modify_index: jmi,
            index: idx,
            warnings: String::new(),
        })
    }
}
