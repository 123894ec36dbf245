//! Task-group scaling as Nomad 1.1.2 does it: the `Scaling` policies of a job's groups
//! (IDs and indexes kept in a table of their own, like Nomad's `scaling_policy`),
//! `POST /v1/job/:id/scale` (a new job version with the group's count and a
//! `job-scaling` evaluation, or an event only) with its scaling events, and
//! `GET /v1/job/:id/scale`. What a real agent answers is in `REAL_NOMAD.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::canonical::{Obj, groups, i, o, s};
use crate::jobs::{ApiError, WriteResult};
use crate::state::{JobKey, State, Table};
use crate::util::{new_uuid, now_ns};

/// Nomad keeps this many scaling events per task group (`JobTrackedScalingEvents`).
pub(crate) const TRACKED_SCALING_EVENTS: usize = 20;

/// The text of a scale refused while a deployment of the job runs (and of its event).
pub(crate) const BLOCKED_BY_DEPLOYMENT: &str = "job scaling blocked due to active deployment";

/// `(namespace, job ID, group)`: the target a policy is unique for.
pub(crate) type PolicyKey = (String, String, String);

/// A row of the scaling policy table: the policy without its ID and indexes, its ID and
/// its `CreateIndex`.
#[derive(Clone, Debug)]
pub(crate) struct PolicyRecord {
    pub id: String,
    pub body: Obj,
    pub create_index: u64,
}

/// One scaling event (`structs.ScalingEvent`).
#[derive(Clone, Debug)]
pub(crate) struct ScalingEvent {
    pub time: i64,
    pub count: Option<i64>,
    pub previous_count: i64,
    pub message: String,
    pub error: bool,
    pub meta: Value,
    pub eval_id: Option<String>,
    pub create_index: u64,
}

impl ScalingEvent {
    fn to_json(&self) -> Value {
        json!({
            "Count": self.count, "CreateIndex": self.create_index, "Error": self.error,
            "EvalID": self.eval_id, "Message": self.message, "Meta": self.meta,
            "PreviousCount": self.previous_count, "Time": self.time
        })
    }
}

/// The scaling events of one job (`structs.JobScalingEvents`): newest first per group.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobScalingEvents {
    pub groups: BTreeMap<String, Vec<ScalingEvent>>,
    pub modify_index: u64,
}

/// A decoded `POST /v1/job/:id/scale` body (`api.ScalingRequest`).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ScaleRequest {
    pub count: Option<i64>,
    pub target: BTreeMap<String, String>,
    pub message: String,
    pub error: bool,
    /// `null` or an object whose numbers are floats, as Go decodes `interface{}`.
    pub meta: Value,
}

fn unmarshal_error(v: &Value, field: &str, go_type: &str, want_int: bool) -> ApiError {
    ApiError::BadRequest(format!(
        "json: cannot unmarshal {} into Go struct field ScalingRequest.{field} of type {go_type}",
        crate::gojson::kind(v, want_int)
    ))
}

/// Every number in `v` as a float: what Go's decoder makes of numbers in an
/// `interface{}`, encoded back as `1.0`.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

impl ScaleRequest {
    /// Decodes the body's fields like Go's decoder does into `api.ScalingRequest`:
    /// names match whatever their case, the first value of a wrong type is the error
    /// (HTTP 400), `null` leaves a field empty, other keys are ignored.
    pub(crate) fn decode(args: &Value) -> Result<Self, ApiError> {
        let mut req = ScaleRequest {
            meta: Value::Null,
            ..Default::default()
        };
        let Some(fields) = args.as_object() else {
            return Ok(req);
        };
        let mut first_error: Option<ApiError> = None;
        let mut fail = |e: ApiError| {
            if first_error.is_none() {
                first_error = Some(e);
            }
        };
        for (k, v) in fields {
            let field = [
                "Count",
                "Target",
                "Message",
                "Error",
                "Meta",
                "PolicyOverride",
            ]
            .into_iter()
            .find(|f| f.eq_ignore_ascii_case(k));
            match (field, v) {
                (None, _) => {}
                (Some("Count"), Value::Null) => req.count = None,
                (Some("Count"), v) => match v.as_i64() {
                    Some(n) => req.count = Some(n),
                    None => fail(unmarshal_error(v, "Count", "int64", true)),
                },
                (Some("Target"), Value::Null) => req.target.clear(),
                (Some("Target"), Value::Object(m)) => {
                    for (tk, tv) in m {
                        match tv {
                            Value::String(t) => {
                                req.target.insert(tk.clone(), t.clone());
                            }
                            Value::Null => {
                                req.target.insert(tk.clone(), String::new());
                            }
                            other => fail(unmarshal_error(other, "Target", "string", false)),
                        }
                    }
                }
                (Some("Target"), v) => {
                    fail(unmarshal_error(v, "Target", "map[string]string", false))
                }
                (Some("Message"), Value::Null) => {}
                (Some("Message"), Value::String(m)) => req.message = m.clone(),
                (Some("Message"), v) => fail(unmarshal_error(v, "Message", "string", false)),
                (Some("Error" | "PolicyOverride"), Value::Null) => {}
                (Some("Error"), Value::Bool(b)) => req.error = *b,
                (Some("PolicyOverride"), Value::Bool(_)) => {}
                (Some(f @ ("Error" | "PolicyOverride")), v) => {
                    fail(unmarshal_error(v, f, "bool", false))
                }
                (Some("Meta"), Value::Null) => req.meta = Value::Null,
                (Some("Meta"), Value::Object(_)) => req.meta = floats(v),
                (Some("Meta"), v) => {
                    fail(unmarshal_error(v, "Meta", "map[string]interface {}", false))
                }
                (Some(_), _) => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(req),
        }
    }

    fn target(&self, k: &str) -> &str {
        self.target.get(k).map(String::as_str).unwrap_or_default()
    }
}

/// The policy of a group without the fields the state store sets.
fn policy_body(p: &Obj) -> Obj {
    let mut body = p.clone();
    for k in ["ID", "CreateIndex", "ModifyIndex"] {
        body.remove(k);
    }
    body
}

/// The group `name` of `spec`, mutably.
fn group_mut<'a>(spec: &'a mut Obj, name: &str) -> Option<&'a mut Obj> {
    spec.get_mut("TaskGroups")?
        .as_array_mut()?
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|g| s(g, "Name") == Some(name))
}

/// The `Scaling` policy of the group `name` of `spec`, mutably.
fn policy_mut<'a>(spec: &'a mut Obj, name: &str) -> Option<&'a mut Obj> {
    group_mut(spec, name)?
        .get_mut("Scaling")
        .and_then(Value::as_object_mut)
}

/// `(group name, policy)` of every group of `spec` with a `Scaling` block.
fn policies(spec: &Obj) -> Vec<(String, Obj)> {
    groups(spec)
        .filter_map(|g| Some((s(g, "Name")?.to_string(), o(g, "Scaling")?.clone())))
        .collect()
}

impl State {
    /// Nomad's `propagateScalingPolicyIDs` (register and plan): each policy of `spec`
    /// gets the ID of the registered job's policy of its group, or a new one.
    pub(crate) fn propagate_policy_ids(&self, key: &JobKey, spec: Arc<Obj>) -> Arc<Obj> {
        let wanted = policies(&spec);
        if wanted.is_empty() {
            return spec;
        }
        let existing: BTreeMap<String, String> = self
            .jobs
            .get(key)
            .map(|j| {
                policies(&j.spec)
                    .into_iter()
                    .filter_map(|(g, p)| Some((g, s(&p, "ID")?.to_string())))
                    .filter(|(_, id)| !id.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = (*spec).clone();
        for (name, _) in wanted {
            let id = existing.get(&name).cloned().unwrap_or_else(new_uuid);
            if let Some(p) = policy_mut(&mut out, &name) {
                p.insert("ID".into(), json!(id));
            }
        }
        Arc::new(out)
    }

    /// Nomad's `updateJobScalingPolicies` for a job written at `idx`: a policy new to
    /// the table gets `CreateIndex` and `ModifyIndex` `idx`, a changed one keeps the
    /// table's ID and `CreateIndex` and gets `ModifyIndex` `idx`; an unchanged one is
    /// left as the job carries it (indexes 0 when the job came from a client). Policies
    /// of groups that lost theirs are deleted. Returns the job to store.
    pub(crate) fn upsert_scaling_policies(
        &mut self,
        key: &JobKey,
        spec: Arc<Obj>,
        idx: u64,
    ) -> Arc<Obj> {
        let wanted = policies(&spec);
        let prefix = (key.0.clone(), key.1.clone(), String::new());
        let stale: Vec<PolicyKey> = self
            .scaling_policies
            .range(prefix..)
            .take_while(|((ns, job, _), _)| *ns == key.0 && *job == key.1)
            .filter(|((_, _, g), _)| !wanted.iter().any(|(name, _)| name == g))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.scaling_policies.remove(&k);
        }
        let mut out: Option<Obj> = None;
        for (name, p) in wanted {
            let pk: PolicyKey = (key.0.clone(), key.1.clone(), name.clone());
            let body = policy_body(&p);
            let (id, create_index) = match self.scaling_policies.get(&pk) {
                Some(rec) if rec.body == body => continue,
                Some(rec) => (rec.id.clone(), rec.create_index),
                None => (s(&p, "ID").unwrap_or_default().to_string(), idx),
            };
            let job = out.get_or_insert_with(|| (*spec).clone());
            if let Some(jp) = policy_mut(job, &name) {
                jp.insert("ID".into(), json!(id));
                jp.insert("CreateIndex".into(), json!(create_index));
                jp.insert("ModifyIndex".into(), json!(idx));
            }
            self.scaling_policies.insert(
                pk,
                PolicyRecord {
                    id,
                    body,
                    create_index,
                },
            );
        }
        out.map(Arc::new).unwrap_or(spec)
    }

    /// A purged job's scaling policies and events go with it.
    pub(crate) fn delete_job_scaling(&mut self, key: &JobKey, idx: u64) {
        let prefix = (key.0.clone(), key.1.clone(), String::new());
        let gone: Vec<PolicyKey> = self
            .scaling_policies
            .range(prefix..)
            .take_while(|((ns, job, _), _)| *ns == key.0 && *job == key.1)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.scaling_policies.remove(&k);
        }
        if self.scaling_events.remove(key).is_some() {
            self.touch(Table::ScalingEvents, idx);
        }
    }

    /// Records a scaling event of `group` at a new index; returns the index.
    fn add_scaling_event(&mut self, key: &JobKey, group: &str, mut event: ScalingEvent) -> u64 {
        let idx = self.bump();
        event.create_index = idx;
        let events = self.scaling_events.entry(key.clone()).or_default();
        let list = events.groups.entry(group.to_string()).or_default();
        list.insert(0, event);
        list.truncate(TRACKED_SCALING_EVENTS);
        events.modify_index = idx;
        self.touch(Table::ScalingEvents, idx);
        idx
    }

    /// Sets the count of `group` in the job as the jobs table holds it, without a write
    /// (no index, no watcher woken): Nomad's `Job.Scale` changes the job it read from
    /// its state store in place, before it knows whether the scale is allowed. When the
    /// jobs table and the current version entry hold one object, both change.
    fn set_live_count(&mut self, key: &JobKey, group: &str, count: i64) {
        let Some(j) = self.jobs.get_mut(key) else {
            return;
        };
        if let Some(g) = group_mut(Arc::make_mut(&mut j.spec), group) {
            g.insert("Count".into(), json!(count));
        }
        if j.aliased {
            let version = j.version;
            if let Some(v) = j.versions.iter_mut().find(|v| v.version == version)
                && let Some(g) = group_mut(Arc::make_mut(&mut v.spec), group)
            {
                g.insert("Count".into(), json!(count));
            }
        }
    }

    /// `POST /v1/job/:id/scale` (Nomad's `Job.Scale`), after the HTTP layer's checks.
    pub(crate) fn scale(
        &mut self,
        key: &JobKey,
        req: &ScaleRequest,
    ) -> Result<WriteResult, ApiError> {
        // `JobScaleRequest.Validate`.
        let ns = req.target("Namespace");
        if !ns.is_empty() && ns != key.0 {
            return Err(ApiError::BadRequest(
                "namespace in payload did not match header".into(),
            ));
        }
        let group = req.target("Group").to_string();
        if group.is_empty() {
            return Err(ApiError::BadRequest(
                "missing task group name for scaling action".into(),
            ));
        }
        if let Some(n) = req.count {
            if n < 0 {
                return Err(ApiError::BadRequest(
                    "scaling action count can't be negative".into(),
                ));
            }
            if req.error {
                return Err(ApiError::BadRequest(
                    "scaling action should not contain count if error is true".into(),
                ));
            }
        }
        let Some(j) = self.jobs.get(key) else {
            return Err(ApiError::NotFound(format!("job {:?} not found", key.1)));
        };
        let Some(g) = groups(&j.spec).find(|g| s(g, "Name") == Some(group.as_str())) else {
            return Err(ApiError::BadRequest(format!(
                "task group {group:?} specified for scaling does not exist in job"
            )));
        };
        let previous_count = i(g, "Count").unwrap_or(0);
        let mut event = ScalingEvent {
            time: now_ns(),
            count: req.count,
            previous_count,
            message: req.message.clone(),
            error: req.error,
            meta: req.meta.clone(),
            eval_id: None,
            create_index: 0,
        };
        let mut res = WriteResult::default();
        match req.count {
            Some(n) => {
                if let Some(p) = o(g, "Scaling") {
                    let min = i(p, "Min").unwrap_or(0);
                    let max = i(p, "Max").unwrap_or(-1);
                    if n < min {
                        return Err(ApiError::BadRequest(format!(
                            "group count was less than scaling policy minimum: {n} < {min}"
                        )));
                    }
                    if max < n {
                        return Err(ApiError::BadRequest(format!(
                            "group count was greater than scaling policy maximum: {n} > {max}"
                        )));
                    }
                }
                let create_index = j.create_index;
                self.set_live_count(key, &group, n);
                let blocked = self
                    .latest_deployment(key)
                    .is_some_and(|d| d.active() && d.job_create_index == create_index);
                if blocked {
                    let mut meta = Map::new();
                    meta.insert("OriginalMessage".into(), json!(req.message));
                    meta.insert("OriginalCount".into(), json!(n));
                    meta.insert("OriginalMeta".into(), req.meta.clone());
                    event.count = None;
                    event.error = true;
                    event.message = BLOCKED_BY_DEPLOYMENT.into();
                    event.meta = Value::Object(meta);
                    self.add_scaling_event(key, &group, event);
                    return Err(ApiError::BadRequest(BLOCKED_BY_DEPLOYMENT.into()));
                }
                // The changed job is registered as a new version: the `Stable` flag and
                // submit time of the job it was copied from, a new job modify index.
                let Some(j) = self.jobs.get(key) else {
                    return Err(ApiError::NotFound(format!("job {:?} not found", key.1)));
                };
                let (spec, stable, submit, is_parent) =
                    (j.spec.clone(), j.stable, j.submit_time, j.is_parent());
                let jmi = self.bump();
                self.upsert_job(key, spec, stable, submit, None, jmi);
                res.job_modify_index = jmi;
                if is_parent {
                    self.refresh_job(key, jmi);
                } else {
                    let eval_index = self.bump();
                    let eval_id = self.create_eval(key, "job-scaling", jmi, eval_index, true);
                    // Nomad 1.1.2 gives the evaluation the service type and the default
                    // priority, whatever the job's.
                    if let Some(e) = self.evals.get_mut(&eval_id) {
                        e.kind = "service".into();
                        e.priority = 50;
                    }
                    self.refresh_job(key, eval_index);
                    event.eval_id = Some(eval_id.clone());
                    res.eval_id = eval_id;
                    res.eval_create_index = eval_index;
                }
            }
            // An event only: the answer's job modify index is the job's modify index.
            None => res.job_modify_index = j.modify_index,
        }
        res.index = self.add_scaling_event(key, &group, event);
        Ok(res)
    }

    /// `GET /v1/job/:id/scale` (Nomad's `Job.ScaleStatus`) and its index: the largest of
    /// the job's modify index, the modify indexes of the allocations it counts and the
    /// index of the job's last scaling event. `None` when there is no such job.
    pub(crate) fn scale_status(&self, key: &JobKey) -> Option<(u64, Value)> {
        let j = self.jobs.get(key)?;
        let events = self.scaling_events.get(key);
        let mut tgs: Map<String, Value> = Map::new();
        // Placed, running, healthy, unhealthy.
        let mut counts: BTreeMap<String, [u64; 4]> = groups(&j.spec)
            .filter_map(|g| s(g, "Name"))
            .map(|n| (n.to_string(), [0; 4]))
            .collect();
        let mut index = j.modify_index;
        for a in self
            .job_alloc_ids(key)
            .iter()
            .filter_map(|id| self.allocs.get(id))
            .filter(|a| a.job_create_index == j.create_index)
        {
            // Canaries are left out, like terminal allocations.
            if a.health.as_ref().is_some_and(|h| h.canary) || a.terminal() {
                continue;
            }
            let Some(c) = counts.get_mut(&a.task_group) else {
                continue;
            };
            c[0] += 1;
            if a.client_status == "running" {
                c[1] += 1;
            }
            match a.health.as_ref().and_then(|h| h.healthy) {
                Some(true) => c[2] += 1,
                Some(false) => c[3] += 1,
                None => {}
            }
            index = index.max(a.modify_index);
        }
        if let Some(e) = events {
            index = index.max(e.modify_index);
        }
        for g in groups(&j.spec) {
            let name = s(g, "Name").unwrap_or_default();
            let [placed, running, healthy, unhealthy] =
                counts.get(name).copied().unwrap_or_default();
            let evs = events
                .and_then(|e| e.groups.get(name))
                .map(|l| Value::Array(l.iter().map(ScalingEvent::to_json).collect()))
                .unwrap_or(Value::Null);
            tgs.insert(
                name.to_string(),
                json!({
                    "Desired": i(g, "Count").unwrap_or(0), "Events": evs,
                    "Healthy": healthy, "Placed": placed, "Running": running,
                    "Unhealthy": unhealthy
                }),
            );
        }
        Some((
            index,
            json!({
                "JobCreateIndex": j.create_index, "JobID": key.1,
                "JobModifyIndex": j.modify_index, "JobStopped": j.stopped(),
                "Namespace": key.0, "TaskGroups": tgs
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let r = ScaleRequest::decode(&json!({
            "count": 3, "Target": {"Group": "g", "Job": null}, "Message": "m",
            "Error": false, "Meta": {"n": 1, "l": [2, "x"]}, "PolicyOverride": true, "Other": 1
        }))
        .expect("decodes");
        assert_eq!(r.count, Some(3));
        assert_eq!(r.target("Group"), "g");
        assert_eq!(r.target("Job"), "");
        assert_eq!(r.message, "m");
        assert_eq!(
            serde_json::to_string(&r.meta).expect("json"),
            r#"{"l":[2.0,"x"],"n":1.0}"#
        );
        assert_eq!(
            ScaleRequest::decode(&json!({"Count": null}))
                .expect("decodes")
                .count,
            None
        );
        let err = |v: Value| match ScaleRequest::decode(&v) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(json!({"Count": "2"})),
            "json: cannot unmarshal string into Go struct field ScalingRequest.Count of type int64"
        );
        assert_eq!(
            err(json!({"Count": 1.5})),
            "json: cannot unmarshal number 1.5 into Go struct field ScalingRequest.Count of type int64"
        );
        assert_eq!(
            err(json!({"Target": {"Group": 5}})),
            "json: cannot unmarshal number into Go struct field ScalingRequest.Target of type string"
        );
        assert_eq!(
            err(json!({"Target": "g"})),
            "json: cannot unmarshal string into Go struct field ScalingRequest.Target of type map[string]string"
        );
        assert_eq!(
            err(json!({"Meta": "x"})),
            "json: cannot unmarshal string into Go struct field ScalingRequest.Meta of type map[string]interface {}"
        );
        assert_eq!(
            err(json!({"Error": 1})),
            "json: cannot unmarshal number into Go struct field ScalingRequest.Error of type bool"
        );
    }

    #[test]
    fn policy_body_drops_what_the_state_store_sets() {
        let p = json!({"ID": "x", "CreateIndex": 4, "ModifyIndex": 5, "Min": 1, "Max": 3});
        let body = policy_body(p.as_object().expect("object"));
        assert_eq!(Value::Object(body), json!({"Min": 1, "Max": 3}));
    }
}
