//! Jobs in the shape of Go's `api.Job` (the client package), as `POST /v1/jobs/parse`
//! answers them: every field of the struct is present, pointer fields the job file did
//! not set are `null` and plain fields are their zero value. With `Canonicalize` the
//! defaults are the api package's, which differ from the server's stored job: no
//! `DiskMB` / `IOPS` / `MemoryMaxMB` defaults, the job's full default `Update` block on a
//! service job (`null` on others), no `CSIPluginConfig`, zero indexes.

use serde_json::{Value, json};

use crate::canonical::{Obj, canonical_update, canonicalize_job, default_update, s};

/// `(field, value when absent)` of one api struct; `Value::Null` for pointers.
type Fields = &'static [(&'static str, Zero)];

/// The value of an absent field.
#[derive(Clone, Copy)]
enum Zero {
    Null,
    False,
    Int,
    Str,
}

impl Zero {
    fn value(self) -> Value {
        match self {
            Zero::Null => Value::Null,
            Zero::False => json!(false),
            Zero::Int => json!(0),
            Zero::Str => json!(""),
        }
    }
}

use Zero::{False, Int, Null, Str};

const JOB: Fields = &[
    ("Affinities", Null),
    ("AllAtOnce", Null),
    ("Constraints", Null),
    ("ConsulNamespace", Null),
    ("ConsulToken", Null),
    ("CreateIndex", Null),
    ("Datacenters", Null),
    ("Dispatched", False),
    ("ID", Null),
    ("JobModifyIndex", Null),
    ("Meta", Null),
    ("Migrate", Null),
    ("ModifyIndex", Null),
    ("Multiregion", Null),
    ("Name", Null),
    ("Namespace", Null),
    ("NomadTokenID", Null),
    ("ParameterizedJob", Null),
    ("ParentID", Null),
    ("Payload", Null),
    ("Periodic", Null),
    ("Priority", Null),
    ("Region", Null),
    ("Reschedule", Null),
    ("Spreads", Null),
    ("Stable", Null),
    ("Status", Null),
    ("StatusDescription", Null),
    ("Stop", Null),
    ("SubmitTime", Null),
    ("TaskGroups", Null),
    ("Type", Null),
    ("Update", Null),
    ("VaultNamespace", Null),
    ("VaultToken", Null),
    ("Version", Null),
];

const GROUP: Fields = &[
    ("Affinities", Null),
    ("Constraints", Null),
    ("Consul", Null),
    ("Count", Null),
    ("EphemeralDisk", Null),
    ("Meta", Null),
    ("Migrate", Null),
    ("Name", Null),
    ("Networks", Null),
    ("ReschedulePolicy", Null),
    ("RestartPolicy", Null),
    ("Scaling", Null),
    ("Services", Null),
    ("ShutdownDelay", Null),
    ("Spreads", Null),
    ("StopAfterClientDisconnect", Null),
    ("Tasks", Null),
    ("Update", Null),
    ("Volumes", Null),
];

const TASK: Fields = &[
    ("Affinities", Null),
    ("Artifacts", Null),
    ("Config", Null),
    ("Constraints", Null),
    ("DispatchPayload", Null),
    ("Driver", Str),
    ("Env", Null),
    ("KillSignal", Str),
    ("KillTimeout", Null),
    ("Kind", Str),
    ("Leader", False),
    ("Lifecycle", Null),
    ("LogConfig", Null),
    ("Meta", Null),
    ("Name", Str),
    ("Resources", Null),
    ("RestartPolicy", Null),
    ("ScalingPolicies", Null),
    ("Services", Null),
    ("ShutdownDelay", Int),
    ("Templates", Null),
    ("User", Str),
    ("Vault", Null),
    ("VolumeMounts", Null),
];

const RESOURCES: Fields = &[
    ("CPU", Null),
    ("Cores", Null),
    ("Devices", Null),
    ("DiskMB", Null),
    ("IOPS", Null),
    ("MemoryMB", Null),
    ("MemoryMaxMB", Null),
    ("Networks", Null),
];

const UPDATE: Fields = &[
    ("AutoPromote", Null),
    ("AutoRevert", Null),
    ("Canary", Null),
    ("HealthCheck", Null),
    ("HealthyDeadline", Null),
    ("MaxParallel", Null),
    ("MinHealthyTime", Null),
    ("ProgressDeadline", Null),
    ("Stagger", Null),
];

const RESTART: Fields = &[
    ("Attempts", Null),
    ("Delay", Null),
    ("Interval", Null),
    ("Mode", Null),
];

const RESCHEDULE: Fields = &[
    ("Attempts", Null),
    ("Delay", Null),
    ("DelayFunction", Null),
    ("Interval", Null),
    ("MaxDelay", Null),
    ("Unlimited", Null),
];

const DISK: Fields = &[("Migrate", Null), ("SizeMB", Null), ("Sticky", Null)];

const LOGS: Fields = &[("MaxFileSizeMB", Null), ("MaxFiles", Null)];

const MIGRATE: Fields = &[
    ("HealthCheck", Null),
    ("HealthyDeadline", Null),
    ("MaxParallel", Null),
    ("MinHealthyTime", Null),
];

const PERIODIC: Fields = &[
    ("Enabled", Null),
    ("ProhibitOverlap", Null),
    ("Spec", Null),
    ("SpecType", Null),
    ("TimeZone", Null),
];

const CONSTRAINT: Fields = &[("LTarget", Str), ("Operand", Str), ("RTarget", Str)];

/// `m` with exactly the fields of `fields` (absent ones at their zero value). Fields
/// the api struct does not have are dropped.
fn shape(m: &Obj, fields: Fields) -> Obj {
    fields
        .iter()
        .map(|(k, zero)| {
            let v = match m.get(*k) {
                Some(v) if !v.is_null() => v.clone(),
                _ => zero.value(),
            };
            (k.to_string(), v)
        })
        .collect()
}

fn shape_in(m: &mut Obj, k: &str, fields: Fields) {
    if let Some(Value::Object(inner)) = m.get(k) {
        let shaped = shape(inner, fields);
        m.insert(k.to_string(), Value::Object(shaped));
    }
}

fn shape_list(m: &mut Obj, k: &str, fields: Fields) {
    if let Some(Value::Array(items)) = m.get_mut(k) {
        for item in items.iter_mut() {
            if let Value::Object(o) = item {
                *o = shape(o, fields);
            }
        }
    }
}

fn shape_task(t: &Obj) -> Obj {
    let mut out = shape(t, TASK);
    shape_in(&mut out, "Resources", RESOURCES);
    shape_in(&mut out, "RestartPolicy", RESTART);
    shape_in(&mut out, "LogConfig", LOGS);
    shape_list(&mut out, "Constraints", CONSTRAINT);
    out
}

fn shape_group(g: &Obj) -> Obj {
    let mut out = shape(g, GROUP);
    shape_in(&mut out, "Update", UPDATE);
    shape_in(&mut out, "RestartPolicy", RESTART);
    shape_in(&mut out, "ReschedulePolicy", RESCHEDULE);
    shape_in(&mut out, "EphemeralDisk", DISK);
    shape_in(&mut out, "Migrate", MIGRATE);
    shape_list(&mut out, "Constraints", CONSTRAINT);
    if let Some(Value::Array(ts)) = out.get_mut("Tasks") {
        for t in ts.iter_mut() {
            if let Value::Object(o) = t {
                *o = shape_task(o);
            }
        }
    }
    out
}

fn shape_job(j: &Obj) -> Obj {
    let mut out = shape(j, JOB);
    shape_in(&mut out, "Update", UPDATE);
    shape_in(&mut out, "Periodic", PERIODIC);
    shape_in(&mut out, "Migrate", MIGRATE);
    shape_in(&mut out, "Reschedule", RESCHEDULE);
    shape_list(&mut out, "Constraints", CONSTRAINT);
    if let Some(Value::Array(gs)) = out.get_mut("TaskGroups") {
        for g in gs.iter_mut() {
            if let Value::Object(o) = g {
                *o = shape_group(o);
            }
        }
    }
    out
}

/// Copies `k` of the parsed object (or null) over the canonical one.
fn keep_parsed(canon: &mut Obj, parsed: Option<&Obj>, k: &str) {
    let v = parsed
        .and_then(|p| p.get(k))
        .cloned()
        .unwrap_or(Value::Null);
    canon.insert(k.to_string(), v);
}

/// A parsed job file as `POST /v1/jobs/parse` answers it.
pub(crate) fn api_job(parsed: &Obj, canonicalize: bool) -> Obj {
    if !canonicalize {
        return shape_job(parsed);
    }
    let mut c = canonicalize_job(parsed, "default", "global");
    // The api package's job-level update block: the defaults in full on a service job.
    let update = match parsed.get("Update") {
        Some(Value::Object(u)) => Value::Object(canonical_update(u)),
        _ if s(&c, "Type") == Some("service") => Value::Object(default_update()),
        _ => Value::Null,
    };
    c.insert("Update".into(), update);
    for k in ["Migrate", "Reschedule"] {
        keep_parsed(&mut c, Some(parsed), k);
    }
    for (k, v) in [
        ("Status", json!("")),
        ("StatusDescription", json!("")),
        ("Stable", json!(false)),
        ("Version", json!(0)),
        ("CreateIndex", json!(0)),
        ("ModifyIndex", json!(0)),
        ("JobModifyIndex", json!(0)),
        ("SubmitTime", Value::Null),
    ] {
        c.insert(k.into(), v);
    }
    let parsed_groups: Vec<&Obj> = crate::canonical::groups(parsed).collect();
    if let Some(Value::Array(gs)) = c.get_mut("TaskGroups") {
        for (gi, g) in gs.iter_mut().enumerate() {
            let Value::Object(g) = g else { continue };
            let pg = parsed_groups.get(gi).copied();
            let parsed_tasks: Vec<&Obj> = pg
                .map(|p| crate::canonical::tasks(p).collect())
                .unwrap_or_default();
            if let Some(Value::Array(ts)) = g.get_mut("Tasks") {
                for (ti, t) in ts.iter_mut().enumerate() {
                    let Value::Object(t) = t else { continue };
                    let pres = parsed_tasks
                        .get(ti)
                        .and_then(|pt| pt.get("Resources"))
                        .and_then(Value::as_object);
                    if let Some(Value::Object(r)) = t.get_mut("Resources") {
                        for k in ["DiskMB", "IOPS", "MemoryMaxMB"] {
                            keep_parsed(r, pres, k);
                        }
                    }
                }
            }
        }
    }
    shape_job(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed() -> Obj {
        let Value::Object(m) = json!({
            "ID": "p", "Name": "p", "Type": "batch", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                "Config": {"command": "/bin/true"}, "Resources": {"CPU": 50, "MemoryMB": 32}}]}]
        }) else {
            panic!()
        };
        m
    }

    #[test]
    fn as_written_has_every_field() {
        let j = api_job(&parsed(), false);
        assert_eq!(j.len(), JOB.len());
        assert_eq!(j["Dispatched"], false);
        assert!(j["Priority"].is_null());
        let t = &j["TaskGroups"][0]["Tasks"][0];
        assert_eq!(t["Leader"], false);
        assert_eq!(t["ShutdownDelay"], 0);
        assert!(t["Resources"]["DiskMB"].is_null());
        assert!(t.get("CSIPluginConfig").is_none());
    }

    #[test]
    fn canonical_uses_the_api_defaults() {
        let j = api_job(&parsed(), true);
        assert_eq!(j["Priority"], 50);
        assert!(j["Update"].is_null());
        assert!(j["SubmitTime"].is_null());
        let g = &j["TaskGroups"][0];
        assert_eq!(g["Consul"]["Namespace"], "");
        assert!(g["Update"].is_null());
        let t = &g["Tasks"][0];
        assert_eq!(t["RestartPolicy"]["Attempts"], 3);
        assert!(t["Resources"]["DiskMB"].is_null());
        assert_eq!(t["Resources"]["Cores"], 0);
    }
}
