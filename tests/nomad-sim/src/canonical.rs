//! Job canonicalisation and validation, following Nomad 1.1's `api.Job.Canonicalize`
//! + `ApiJobToStructJob` + `structs.Job.Validate`. Pure functions over JSON.

use serde_json::{Map, Value, json};

use crate::util::{format_go_duration, multierror};

/// A JSON object.
pub(crate) type Obj = Map<String, Value>;

const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;

/// Keys Nomad manages itself; they are not part of a job's spec.
pub(crate) const SERVER_FIELDS: &[&str] = &[
    "Status",
    "StatusDescription",
    "Stable",
    "Version",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "SubmitTime",
];

/// Job types Nomad 1.1 knows.
pub(crate) const JOB_TYPES: &[&str] = &["service", "batch", "system", "sysbatch"];

/// Reads a string field.
pub(crate) fn s<'a>(m: &'a Obj, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// Reads an unsigned integer field (negative → None).
pub(crate) fn u(m: &Obj, k: &str) -> Option<u64> {
    m.get(k).and_then(Value::as_u64)
}

/// Reads a signed integer field.
pub(crate) fn i(m: &Obj, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

/// Reads a boolean field (missing → false).
pub(crate) fn b(m: &Obj, k: &str) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads an object field.
pub(crate) fn o<'a>(m: &'a Obj, k: &str) -> Option<&'a Obj> {
    m.get(k).and_then(Value::as_object)
}

/// The task groups of a job as objects.
pub(crate) fn groups(job: &Obj) -> impl Iterator<Item = &Obj> {
    job.get("TaskGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// The tasks of a group as objects.
pub(crate) fn tasks(group: &Obj) -> impl Iterator<Item = &Obj> {
    group
        .get("Tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// Finds a task group by name.
pub(crate) fn group<'a>(job: &'a Obj, name: &str) -> Option<&'a Obj> {
    groups(job).find(|g| s(g, "Name") == Some(name))
}

fn missing(m: &Obj, k: &str) -> bool {
    m.get(k).is_none_or(Value::is_null)
}

/// Gives every constraint of a job, group or task the three fields of
/// `structs.Constraint` (`""` when not sent).
fn canonicalize_constraints(m: &mut Obj) {
    let Some(list) = m.get_mut("Constraints").and_then(Value::as_array_mut) else {
        return;
    };
    for c in list.iter_mut().filter_map(Value::as_object_mut) {
        for k in ["LTarget", "RTarget", "Operand"] {
            set_default(c, k, json!(""));
        }
    }
}

fn set_default(m: &mut Obj, k: &str, v: Value) {
    if missing(m, k) {
        m.insert(k.to_string(), v);
    }
}

/// Fills missing keys of `m[k]` (an object, created when absent) from `defaults`.
fn merge_defaults(m: &mut Obj, k: &str, defaults: Value) {
    let Value::Object(defaults) = defaults else {
        return;
    };
    let mut cur = match m.get(k) {
        Some(Value::Object(c)) => c.clone(),
        _ => Map::new(),
    };
    for (dk, dv) in defaults {
        set_default(&mut cur, &dk, dv);
    }
    m.insert(k.to_string(), Value::Object(cur));
}

/// Nomad's default update strategy (`api.DefaultUpdateStrategy`), durations in ns.
pub(crate) fn default_update() -> Obj {
    let v = json!({
        "Stagger": 30 * SEC,
        "MaxParallel": 1,
        "HealthCheck": "checks",
        "MinHealthyTime": 10 * SEC,
        "HealthyDeadline": 5 * MIN,
        "ProgressDeadline": 10 * MIN,
        "AutoRevert": false,
        "AutoPromote": false,
        "Canary": 0
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(crate) fn canonical_update(user: &Obj) -> Obj {
    let mut out = user.clone();
    for (k, v) in default_update() {
        set_default(&mut out, &k, v);
    }
    out
}

fn update_is_empty(u: &Obj) -> bool {
    u.values().all(|v| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    })
}

fn restart_defaults(job_type: &str) -> Value {
    if job_type == "batch" || job_type == "sysbatch" {
        json!({"Attempts": 3, "Interval": 24 * HOUR, "Delay": 15 * SEC, "Mode": "fail"})
    } else {
        json!({"Attempts": 2, "Interval": 30 * MIN, "Delay": 15 * SEC, "Mode": "fail"})
    }
}

fn reschedule_defaults(job_type: &str) -> Option<Value> {
    match job_type {
        "batch" => Some(json!({
            "Attempts": 1, "Interval": 24 * HOUR, "Delay": 5 * SEC,
            "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": false
        })),
        "service" => Some(json!({
            "Attempts": 0, "Interval": 0, "Delay": 30 * SEC,
            "DelayFunction": "exponential", "MaxDelay": HOUR, "Unlimited": true
        })),
        _ => None,
    }
}

/// An error Go's JSON decoder raises for a field of the wrong type (HTTP 400):
/// `json: cannot unmarshal string into Go struct field TaskGroup.Job.TaskGroups.Count of
/// type int` (the struct holding the field, then the field's path from the request).
fn type_error(v: &Value, strukt: &str, path: &str, go_type: &str) -> String {
    let kind = crate::gojson::kind(v, go_type == "int");
    format!("json: cannot unmarshal {kind} into Go struct field {strukt}.{path} of type {go_type}")
}

/// The Go type of a field as far as the decoder checks it.
#[derive(Clone, Copy)]
enum GoType {
    Str,
    Int,
    Bool,
    Strings,
    StringMap,
    AnyMap,
}

impl GoType {
    fn name(self) -> &'static str {
        match self {
            GoType::Str => "string",
            GoType::Int => "int",
            GoType::Bool => "bool",
            GoType::Strings => "[]string",
            GoType::StringMap => "map[string]string",
            GoType::AnyMap => "map[string]interface {}",
        }
    }
}

/// Checks `m[k]` against `t`; `null` always decodes.
fn check(m: &Obj, k: &str, t: GoType, strukt: &str, prefix: &str) -> Result<(), String> {
    let Some(v) = m.get(k).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let path = format!("{prefix}.{k}");
    let ok = match t {
        GoType::Str => v.is_string(),
        GoType::Int => v.as_i64().is_some(),
        GoType::Bool => v.is_boolean(),
        GoType::AnyMap => v.is_object(),
        GoType::Strings => match v.as_array() {
            None => false,
            Some(items) => {
                if let Some(bad) = items.iter().find(|x| !x.is_string() && !x.is_null()) {
                    return Err(type_error(bad, strukt, &path, "string"));
                }
                true
            }
        },
        GoType::StringMap => match v.as_object() {
            None => false,
            Some(items) => {
                if let Some(bad) = items.values().find(|x| !x.is_string() && !x.is_null()) {
                    return Err(type_error(bad, strukt, &path, "string"));
                }
                true
            }
        },
    };
    if ok {
        Ok(())
    } else {
        Err(type_error(v, strukt, &path, t.name()))
    }
}

const JOB_FIELDS: &[(&str, GoType)] = &[
    ("ID", GoType::Str),
    ("Name", GoType::Str),
    ("Type", GoType::Str),
    ("Region", GoType::Str),
    ("Namespace", GoType::Str),
    ("ParentID", GoType::Str),
    ("Priority", GoType::Int),
    ("AllAtOnce", GoType::Bool),
    ("Stop", GoType::Bool),
    ("Datacenters", GoType::Strings),
    ("Meta", GoType::StringMap),
];

const GROUP_FIELDS: &[(&str, GoType)] = &[
    ("Name", GoType::Str),
    ("Count", GoType::Int),
    ("Meta", GoType::StringMap),
];

const TASK_FIELDS: &[(&str, GoType)] = &[
    ("Name", GoType::Str),
    ("Driver", GoType::Str),
    ("User", GoType::Str),
    ("Leader", GoType::Bool),
    ("Config", GoType::AnyMap),
    ("Env", GoType::StringMap),
    ("Meta", GoType::StringMap),
];

/// Checks the JSON types Go's decoder would reject in a request's `Job` (HTTP 400).
pub(crate) fn check_types(job: &Obj) -> Result<(), String> {
    for (k, t) in JOB_FIELDS {
        check(job, k, *t, "Job", "Job")?;
    }
    let gs = match job.get("TaskGroups") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(gs)) => gs,
        Some(v) => {
            return Err(type_error(v, "Job", "Job.TaskGroups", "[]*api.TaskGroup"));
        }
    };
    for g in gs.iter().filter(|g| !g.is_null()) {
        let Some(g) = g.as_object() else {
            return Err(type_error(g, "Job", "Job.TaskGroups", "api.TaskGroup"));
        };
        for (k, t) in GROUP_FIELDS {
            check(g, k, *t, "TaskGroup", "Job.TaskGroups")?;
        }
        let ts = match g.get("Tasks") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(ts)) => ts,
            Some(v) => {
                return Err(type_error(
                    v,
                    "TaskGroup",
                    "Job.TaskGroups.Tasks",
                    "[]*api.Task",
                ));
            }
        };
        for t in ts.iter().filter(|t| !t.is_null()) {
            let Some(t) = t.as_object() else {
                return Err(type_error(
                    t,
                    "TaskGroup",
                    "Job.TaskGroups.Tasks",
                    "api.Task",
                ));
            };
            for (k, ty) in TASK_FIELDS {
                check(t, k, *ty, "Task", "Job.TaskGroups.Tasks")?;
            }
        }
    }
    Ok(())
}

/// Canonicalises a job as Nomad 1.1 does on register/plan: fills every default
/// and converts the job-level update block to its struct form. Idempotent.
pub(crate) fn canonicalize_job(input: &Obj, namespace: &str, region: &str) -> Obj {
    let mut job = input.clone();
    for k in SERVER_FIELDS {
        job.remove(*k);
    }
    if missing(&job, "Name")
        && let Some(id) = job.get("ID").cloned()
    {
        job.insert("Name".into(), id);
    }
    set_default(&mut job, "Namespace", json!(namespace));
    set_default(&mut job, "Region", json!(region));
    set_default(&mut job, "Type", json!("service"));
    set_default(&mut job, "Priority", json!(50));
    set_default(&mut job, "AllAtOnce", json!(false));
    set_default(&mut job, "ParentID", json!(""));
    set_default(&mut job, "Dispatched", json!(false));
    set_default(&mut job, "Stop", json!(false));
    for k in [
        "Datacenters",
        "Constraints",
        "Affinities",
        "Spreads",
        "Meta",
        "Periodic",
        "ParameterizedJob",
        "Payload",
        "Multiregion",
    ] {
        set_default(&mut job, k, Value::Null);
    }
    canonicalize_constraints(&mut job);
    for k in [
        "ConsulToken",
        "ConsulNamespace",
        "VaultToken",
        "VaultNamespace",
        "NomadTokenID",
    ] {
        set_default(&mut job, k, json!(""));
    }
    if job.get("Periodic").is_some_and(Value::is_object) {
        merge_defaults(
            &mut job,
            "Periodic",
            json!({"Enabled": true, "SpecType": "cron", "ProhibitOverlap": false, "TimeZone": "UTC", "Spec": ""}),
        );
    }
    if job.get("ParameterizedJob").is_some_and(Value::is_object) {
        merge_defaults(
            &mut job,
            "ParameterizedJob",
            json!({"Payload": "optional", "MetaRequired": null, "MetaOptional": null}),
        );
    }
    let job_type = s(&job, "Type").unwrap_or("service").to_string();
    let api_update: Option<Obj> = match job.get("Update") {
        Some(Value::Object(u)) => Some(canonical_update(u)),
        _ if job_type == "service" => Some(default_update()),
        _ => None,
    };
    let job_update = match &api_update {
        Some(u) => json!({
            "Stagger": u.get("Stagger").cloned().unwrap_or(json!(0)),
            "MaxParallel": u.get("MaxParallel").cloned().unwrap_or(json!(0)),
            "HealthCheck": "", "MinHealthyTime": 0, "HealthyDeadline": 0,
            "ProgressDeadline": 0, "AutoRevert": false, "AutoPromote": false, "Canary": 0
        }),
        None => json!({
            "Stagger": 0, "MaxParallel": 0, "HealthCheck": "", "MinHealthyTime": 0,
            "HealthyDeadline": 0, "ProgressDeadline": 0, "AutoRevert": false,
            "AutoPromote": false, "Canary": 0
        }),
    };
    job.insert("Update".into(), job_update);
    let job_name = s(&job, "Name").unwrap_or_default().to_string();
    let target = (
        s(&job, "Namespace").unwrap_or_default().to_string(),
        s(&job, "ID").unwrap_or_default().to_string(),
    );
    if let Some(Value::Array(gs)) = job.get_mut("TaskGroups") {
        for g in gs.iter_mut() {
            if let Value::Object(g) = g {
                canonicalize_group(g, api_update.as_ref(), &job_type, &job_name);
                canonicalize_scaling(g, &target.0, &target.1);
            }
        }
    } else {
        job.insert("TaskGroups".into(), Value::Null);
    }
    job
}

/// A group's `Scaling` policy as Nomad stores it from an API job: `Enabled` true and
/// `Min` the group's count unless given, `Max` -1 when missing (refused by validation),
/// type `horizontal`, the group as its `Target`, and the ID and indexes the server sets
/// (a client's are ignored: 0 until the policy is written).
fn canonicalize_scaling(g: &mut Obj, namespace: &str, job_id: &str) {
    let count = g.get("Count").cloned().unwrap_or(json!(1));
    let name = g.get("Name").cloned().unwrap_or(json!(""));
    let Some(Value::Object(p)) = g.get_mut("Scaling") else {
        return;
    };
    set_default(p, "Enabled", json!(true));
    set_default(p, "Min", count);
    set_default(p, "Max", json!(-1));
    set_default(p, "Policy", Value::Null);
    if s(p, "Type").unwrap_or_default().is_empty() {
        p.insert("Type".into(), json!("horizontal"));
    }
    p.insert(
        "Target".into(),
        json!({"Namespace": namespace, "Job": job_id, "Group": name}),
    );
    p.insert("ID".into(), json!(""));
    p.insert("CreateIndex".into(), json!(0));
    p.insert("ModifyIndex".into(), json!(0));
}

fn canonicalize_group(g: &mut Obj, job_update: Option<&Obj>, job_type: &str, job_name: &str) {
    set_default(g, "Name", json!(""));
    if missing(g, "Count") {
        let min = o(g, "Scaling").and_then(|sc| u(sc, "Min"));
        g.insert("Count".into(), json!(min.unwrap_or(1)));
    }
    for k in [
        "Constraints",
        "Affinities",
        "Spreads",
        "Meta",
        "Networks",
        "Services",
        "Volumes",
        "ShutdownDelay",
        "StopAfterClientDisconnect",
        "Scaling",
    ] {
        set_default(g, k, Value::Null);
    }
    canonicalize_constraints(g);
    merge_defaults(
        g,
        "EphemeralDisk",
        json!({"Sticky": false, "SizeMB": 300, "Migrate": false}),
    );
    let group_update = match g.get("Update") {
        Some(Value::Object(gu)) => Some(gu.clone()),
        _ => None,
    };
    let merged = match (job_update, group_update) {
        (Some(ju), Some(gu)) => {
            let mut m = ju.clone();
            for (k, v) in gu {
                if !v.is_null() {
                    m.insert(k, v);
                }
            }
            Some(m)
        }
        (Some(ju), None) if !update_is_empty(ju) => Some(ju.clone()),
        (None, Some(gu)) => Some(gu),
        _ => None,
    };
    match merged {
        Some(m) => {
            g.insert("Update".into(), Value::Object(canonical_update(&m)));
        }
        None => {
            g.insert("Update".into(), Value::Null);
        }
    }
    merge_defaults(g, "RestartPolicy", restart_defaults(job_type));
    merge_defaults(g, "Consul", json!({"Namespace": ""}));
    match reschedule_defaults(job_type) {
        Some(d) => merge_defaults(g, "ReschedulePolicy", d),
        None => set_default(g, "ReschedulePolicy", Value::Null),
    }
    if job_type == "service" {
        merge_defaults(
            g,
            "Migrate",
            json!({"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SEC, "HealthyDeadline": 5 * MIN}),
        );
    } else {
        set_default(g, "Migrate", Value::Null);
    }
    let group_name = s(g, "Name").unwrap_or_default().to_string();
    if let Some(Value::Array(svcs)) = g.get_mut("Services") {
        for svc in svcs.iter_mut().filter_map(Value::as_object_mut) {
            canonicalize_service(svc, &format!("{job_name}-{group_name}"));
        }
    }
    let restart = o(g, "RestartPolicy").cloned().unwrap_or_default();
    if let Some(Value::Array(ts)) = g.get_mut("Tasks") {
        for t in ts.iter_mut() {
            if let Value::Object(t) = t {
                canonicalize_task(t, job_name, &group_name, &restart);
            }
        }
    } else {
        g.insert("Tasks".into(), Value::Null);
    }
}

fn canonicalize_service(svc: &mut Obj, default_name: &str) {
    set_default(svc, "Name", json!(default_name));
    set_default(svc, "AddressMode", json!("auto"));
    set_default(svc, "PortLabel", json!(""));
    set_default(svc, "Tags", Value::Null);
    set_default(svc, "CanaryTags", Value::Null);
    set_default(svc, "Checks", Value::Null);
    set_default(svc, "EnableTagOverride", json!(false));
}

/// A task's restart policy: its group's, overridden field by field by its own
/// (`api.Task.Canonicalize`).
fn task_restart_policy(group: &Obj, own: Option<&Obj>) -> Value {
    let mut p = group.clone();
    for (k, v) in own.into_iter().flatten() {
        if !v.is_null() {
            p.insert(k.clone(), v.clone());
        }
    }
    Value::Object(p)
}

fn canonicalize_task(t: &mut Obj, job_name: &str, group_name: &str, group_restart: &Obj) {
    let restart = task_restart_policy(group_restart, o(t, "RestartPolicy"));
    t.insert("RestartPolicy".into(), restart);
    set_default(t, "Name", json!(""));
    set_default(t, "Driver", json!(""));
    set_default(t, "User", json!(""));
    for k in [
        "Config",
        "Env",
        "Services",
        "Vault",
        "Templates",
        "Constraints",
        "Affinities",
        "DispatchPayload",
        "Lifecycle",
        "Meta",
        "Artifacts",
        "VolumeMounts",
        "ScalingPolicies",
        "CSIPluginConfig",
    ] {
        set_default(t, k, Value::Null);
    }
    canonicalize_constraints(t);
    merge_defaults(
        t,
        "Resources",
        json!({"CPU": 100, "Cores": 0, "MemoryMB": 300, "MemoryMaxMB": 0, "DiskMB": 0, "IOPS": 0, "Networks": null, "Devices": null}),
    );
    set_default(t, "KillTimeout", json!(5 * SEC));
    merge_defaults(t, "LogConfig", json!({"MaxFiles": 10, "MaxFileSizeMB": 10}));
    set_default(t, "Leader", json!(false));
    set_default(t, "ShutdownDelay", json!(0));
    set_default(t, "KillSignal", json!(""));
    set_default(t, "Kind", json!(""));
    let task_name = s(t, "Name").unwrap_or_default().to_string();
    if let Some(Value::Array(svcs)) = t.get_mut("Services") {
        for svc in svcs.iter_mut().filter_map(Value::as_object_mut) {
            canonicalize_service(svc, &format!("{job_name}-{group_name}-{task_name}"));
        }
    }
}

/// Validates a canonical job like `structs.Job.Validate`; returns the multierror
/// text (answered with HTTP 500) when invalid.
pub(crate) fn validate_job(job: &Obj) -> Result<(), String> {
    let mut errs: Vec<String> = Vec::new();
    let job_type = s(job, "Type").unwrap_or_default();
    if s(job, "Region").unwrap_or_default().is_empty() {
        errs.push("Missing job region".into());
    }
    let id = s(job, "ID").unwrap_or_default();
    if id.is_empty() {
        errs.push("Missing job ID".into());
    } else if id.contains(' ') {
        errs.push("Job ID contains a space".into());
    } else if id.contains('\0') {
        errs.push("Job ID contains a null character".into());
    }
    if s(job, "Name").unwrap_or_default().is_empty() {
        errs.push("Missing job name".into());
    }
    if s(job, "Namespace").unwrap_or_default().is_empty() {
        errs.push("Job must be in a namespace".into());
    }
    if job_type.is_empty() {
        errs.push("Missing job type".into());
    } else if !JOB_TYPES.contains(&job_type) {
        errs.push(format!("Invalid job type: {job_type:?}"));
    }
    let prio = i(job, "Priority").unwrap_or(0);
    if !(1..=100).contains(&prio) {
        errs.push("Job priority must be between [1, 100]".into());
    }
    let dcs = job
        .get("Datacenters")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    if dcs == 0 {
        errs.push("Missing job datacenters".into());
    }
    let gs: Vec<&Obj> = groups(job).collect();
    if gs.is_empty() {
        errs.push("Missing job task groups".into());
    }
    errs.extend(constraint_errors(job));
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (idx, g) in gs.iter().enumerate() {
        let name = s(g, "Name").unwrap_or_default();
        if name.is_empty() {
            errs.push(format!("Job task group {} missing name", idx + 1));
        } else if let Some((_, other)) = seen.iter().find(|(n, _)| *n == name) {
            errs.push(format!(
                "Job task group {} redefines '{}' from group {}",
                idx + 1,
                name,
                other + 1
            ));
        } else {
            seen.push((name, idx));
        }
        let gerrs = validate_group(g, job_type);
        if !gerrs.is_empty() {
            errs.push(format!(
                "Task group {name} validation failed: {}",
                multierror(&gerrs)
            ));
        }
    }
    if job.get("Periodic").is_some_and(Value::is_object) && job_type != "batch" {
        errs.push("Periodic can only be used with \"batch\" scheduler".into());
    }
    if let Some(periodic) = o(job, "Periodic") {
        let perrs = validate_periodic(periodic);
        if !perrs.is_empty() {
            errs.push(multierror(&perrs));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(multierror(&errs))
    }
}

/// `PeriodicConfig.Validate` of Nomad 1.1.2, as far as the cron spec's shape: an enabled
/// cron block needs a spec of at least five fields (or an `@` alias).
fn validate_periodic(p: &Obj) -> Vec<String> {
    let enabled = p.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
    if !enabled {
        return Vec::new();
    }
    let spec = s(p, "Spec").unwrap_or_default();
    if spec.is_empty() {
        return vec!["Must specify a spec".into()];
    }
    let kind = s(p, "SpecType").unwrap_or("cron");
    if kind == "cron" && !spec.starts_with('@') && spec.split_whitespace().count() < 5 {
        return vec![format!("Invalid cron spec {spec:?}: missing field(s)")];
    }
    Vec::new()
}

fn validate_group(g: &Obj, job_type: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if i(g, "Count").unwrap_or(0) < 0 {
        errs.push("Task group count can't be negative".into());
    }
    let ts: Vec<&Obj> = tasks(g).collect();
    if ts.is_empty() {
        errs.push("Missing tasks for task group".into());
    }
    errs.extend(constraint_errors(g));
    if let Some(up) = o(g, "Update") {
        if job_type == "batch" || job_type == "sysbatch" {
            errs.push(format!("Job type {job_type:?} does not allow update block"));
        } else {
            errs.extend(validate_update(up));
        }
    }
    if let Some(p) = o(g, "Scaling") {
        let serrs = validate_scaling(p, i(g, "Count").unwrap_or(0));
        if !serrs.is_empty() {
            errs.push(format!(
                "Task group scaling policy validation failed: {}",
                multierror(&serrs)
            ));
        }
    }
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (idx, t) in ts.iter().enumerate() {
        let name = s(t, "Name").unwrap_or_default();
        if name.is_empty() {
            errs.push(format!("Task {} missing name", idx + 1));
        } else if let Some((_, other)) = seen.iter().find(|(n, _)| *n == name) {
            errs.push(format!(
                "Task {} redefines '{}' from task {}",
                idx + 1,
                name,
                other + 1
            ));
        } else {
            seen.push((name, idx));
        }
        let mut terrs = Vec::new();
        if s(t, "Driver").unwrap_or_default().is_empty() {
            terrs.push("Missing task driver".to_string());
        }
        if let Some(res) = o(t, "Resources") {
            if i(res, "CPU").unwrap_or(0) < 1 && i(res, "Cores").unwrap_or(0) < 1 {
                terrs.push(format!(
                    "minimum CPU value is 1; got {}",
                    i(res, "CPU").unwrap_or(0)
                ));
            }
            if i(res, "MemoryMB").unwrap_or(0) < 10 {
                terrs.push(format!(
                    "minimum MemoryMB value is 10; got {}",
                    i(res, "MemoryMB").unwrap_or(0)
                ));
            }
        }
        terrs.extend(constraint_errors(t));
        if !terrs.is_empty() {
            errs.push(format!(
                "Task {name} validation failed: {}",
                multierror(&terrs)
            ));
        }
    }
    errs
}

/// `Constraint N validation failed: ...` for each invalid constraint of a job, group or
/// task.
fn constraint_errors(m: &Obj) -> Vec<String> {
    m.get("Constraints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .enumerate()
        .filter_map(|(idx, c)| {
            let errs = crate::constraints::validate(c);
            (!errs.is_empty()).then(|| {
                format!(
                    "Constraint {} validation failed: {}",
                    idx + 1,
                    multierror(&errs)
                )
            })
        })
        .collect()
}

/// The `Warnings` of a register or plan of a valid job: memory oversubscription is off
/// (Nomad's default), so every task's `MemoryMaxMB` is ignored.
pub(crate) fn job_warnings(job: &Obj) -> String {
    let mut warnings = Vec::new();
    for g in groups(job) {
        for t in tasks(g) {
            let max = o(t, "Resources")
                .and_then(|r| i(r, "MemoryMaxMB"))
                .unwrap_or(0);
            if max != 0 {
                warnings.push(format!(
                    "Memory oversubscription is not enabled; Task \"{}.{}\" memory_max value will be ignored. Update the Scheduler Configuration to allow oversubscription.",
                    s(g, "Name").unwrap_or_default(),
                    s(t, "Name").unwrap_or_default()
                ));
            }
        }
    }
    if warnings.is_empty() {
        String::new()
    } else {
        format!(
            "{} warning(s):\n\n* {}",
            warnings.len(),
            warnings.join("\n* ")
        )
    }
}

/// `TaskGroup.validateScalingPolicy` of a canonical policy.
fn validate_scaling(p: &Obj, count: i64) -> Vec<String> {
    let mut errs = Vec::new();
    let (min, max) = (i(p, "Min").unwrap_or(0), i(p, "Max").unwrap_or(-1));
    if min < 0 {
        errs.push("minimum count must be specified and non-negative");
    }
    if max < 0 {
        errs.push("maximum count must be specified and non-negative");
    } else if max < min {
        errs.push("maximum count must not be less than minimum count");
    }
    if max < count {
        errs.push("task group count must not be greater than maximum count in scaling policy");
    }
    if count < min {
        errs.push("task group count must not be less than minimum count in scaling policy");
    }
    errs.into_iter()
        .map(|e| format!("Scaling policy invalid: {e}"))
        .collect()
}

fn validate_update(up: &Obj) -> Vec<String> {
    let mut errs = Vec::new();
    let hc = s(up, "HealthCheck").unwrap_or_default();
    if !["checks", "task_states", "manual"].contains(&hc) {
        errs.push(format!("Invalid health check given: {hc:?}"));
    }
    let mp = i(up, "MaxParallel").unwrap_or(0);
    if mp < 0 {
        errs.push(format!("Max parallel can not be less than zero: {mp} < 0"));
    }
    let canary = i(up, "Canary").unwrap_or(0);
    if canary < 0 {
        errs.push(format!(
            "Canary count can not be less than zero: {canary} < 0"
        ));
    }
    if canary == 0 && b(up, "AutoPromote") {
        errs.push("Auto Promote requires a Canary count greater than zero".into());
    }
    let mht = i(up, "MinHealthyTime").unwrap_or(0);
    let hd = i(up, "HealthyDeadline").unwrap_or(0);
    let pd = i(up, "ProgressDeadline").unwrap_or(0);
    let dur = |v: i64| format_go_duration(v.max(0) as u64);
    if mht < 0 {
        errs.push(format!(
            "Minimum healthy time may not be less than zero: {mht}"
        ));
    }
    if hd <= 0 {
        errs.push(format!(
            "Healthy deadline must be greater than zero: {}",
            dur(hd)
        ));
    }
    if pd < 0 {
        errs.push(format!("Progress deadline must be zero or greater: {pd}"));
    }
    if mht >= hd && hd > 0 {
        errs.push(format!(
            "Minimum healthy time must be less than healthy deadline: {} > {}",
            dur(mht),
            dur(hd)
        ));
    }
    if pd != 0 && hd >= pd {
        errs.push(format!(
            "Healthy deadline must be less than progress deadline: {} > {}",
            dur(hd),
            dur(pd)
        ));
    }
    errs
}

/// Total order of the task-visible meta for a task: job, group, then task meta.
fn combined_meta(job: &Obj, g: &Obj, t: &Obj) -> Obj {
    let mut m = Map::new();
    for src in [o(job, "Meta"), o(g, "Meta"), o(t, "Meta")]
        .into_iter()
        .flatten()
    {
        for (k, v) in src {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

/// Nomad's `tasksUpdated`: whether moving the allocations of `group` from job `a`
/// to job `b` needs a destructive (create/destroy) update rather than in place.
pub(crate) fn tasks_updated(a: &Obj, b: &Obj, group_name: &str) -> bool {
    let (Some(ga), Some(gb)) = (group(a, group_name), group(b, group_name)) else {
        return true;
    };
    let ta: Vec<&Obj> = tasks(ga).collect();
    let tb: Vec<&Obj> = tasks(gb).collect();
    if ta.len() != tb.len() {
        return true;
    }
    for k in [
        "EphemeralDisk",
        "Networks",
        "Affinities",
        "Spreads",
        "Volumes",
    ] {
        if ga.get(k) != gb.get(k) {
            return true;
        }
    }
    for at in &ta {
        let name = s(at, "Name").unwrap_or_default();
        let Some(bt) = tb.iter().find(|t| s(t, "Name") == Some(name)) else {
            return true;
        };
        for k in [
            "Driver",
            "User",
            "Lifecycle",
            "Config",
            "Env",
            "Artifacts",
            "Vault",
            "Templates",
            "CSIPluginConfig",
            "VolumeMounts",
            "DispatchPayload",
        ] {
            if at.get(k) != bt.get(k) {
                return true;
            }
        }
        if combined_meta(a, ga, at) != combined_meta(b, gb, bt) {
            return true;
        }
        let (ra, rb) = (o(at, "Resources"), o(bt, "Resources"));
        for k in [
            "CPU",
            "Cores",
            "MemoryMB",
            "MemoryMaxMB",
            "Networks",
            "Devices",
        ] {
            if ra.and_then(|r| r.get(k)) != rb.and_then(|r| r.get(k)) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Obj {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn minimal() -> Obj {
        obj(json!({
            "ID": "web", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": ["1000"]}}]}]
        }))
    }

    #[test]
    fn fills_defaults() {
        let c = canonicalize_job(&minimal(), "default", "global");
        assert_eq!(c["Name"], "web");
        assert_eq!(c["Type"], "service");
        assert_eq!(c["Priority"], 50);
        assert_eq!(c["Update"]["MaxParallel"], 1);
        assert_eq!(c["Update"]["HealthyDeadline"], 0);
        let g = &c["TaskGroups"][0];
        assert_eq!(g["Count"], 1);
        assert_eq!(g["Update"]["MinHealthyTime"], 10_000_000_000u64);
        assert_eq!(g["Update"]["ProgressDeadline"], 600_000_000_000u64);
        assert_eq!(g["RestartPolicy"]["Attempts"], 2);
        assert_eq!(g["Tasks"][0]["Resources"]["CPU"], 100);
        assert_eq!(g["Tasks"][0]["KillTimeout"], 5_000_000_000u64);
    }

    #[test]
    fn idempotent() {
        let c1 = canonicalize_job(&minimal(), "default", "global");
        let c2 = canonicalize_job(&c1, "default", "global");
        assert_eq!(c1, c2);
    }

    #[test]
    fn keeps_explicit_zero_progress_deadline() {
        let mut j = minimal();
        j["TaskGroups"][0]
            .as_object_mut()
            .expect("group")
            .insert("Update".into(), json!({"ProgressDeadline": 0}));
        let c = canonicalize_job(&j, "default", "global");
        assert_eq!(c["TaskGroups"][0]["Update"]["ProgressDeadline"], 0);
        assert_eq!(c["TaskGroups"][0]["Update"]["MaxParallel"], 1);
    }

    #[test]
    fn batch_has_no_group_update() {
        let mut j = minimal();
        j.insert("Type".into(), json!("batch"));
        let c = canonicalize_job(&j, "default", "global");
        assert!(c["TaskGroups"][0]["Update"].is_null());
        assert_eq!(c["Update"]["MaxParallel"], 0);
        assert_eq!(c["TaskGroups"][0]["RestartPolicy"]["Attempts"], 3);
    }

    #[test]
    fn validation_messages() {
        let mut j = minimal();
        j.insert("TaskGroups".into(), json!([]));
        let c = canonicalize_job(&j, "default", "global");
        assert_eq!(
            validate_job(&c).expect_err("invalid"),
            "1 error occurred:\n\t* Missing job task groups\n\n"
        );
        let mut j = minimal();
        j.insert("Type".into(), json!("bogus"));
        let c = canonicalize_job(&j, "default", "global");
        assert!(
            validate_job(&c)
                .expect_err("invalid")
                .contains("Invalid job type: \"bogus\"")
        );
        let mut j = minimal();
        j["TaskGroups"][0]
            .as_object_mut()
            .expect("group")
            .insert("Count".into(), json!(-1));
        let c = canonicalize_job(&j, "default", "global");
        assert!(
            validate_job(&c)
                .expect_err("invalid")
                .contains("Task group g validation failed: 1 error occurred:\n\t* Task group count can't be negative")
        );
        assert!(validate_job(&canonicalize_job(&minimal(), "default", "global")).is_ok());
    }

    #[test]
    fn destructive_vs_inplace() {
        let a = canonicalize_job(&minimal(), "default", "global");
        let mut b = a.clone();
        b["TaskGroups"][0]["Count"] = json!(3);
        assert!(!tasks_updated(&a, &b, "g"));
        let mut c = a.clone();
        c["TaskGroups"][0]["Tasks"][0]["Config"]["args"] = json!(["5"]);
        assert!(tasks_updated(&a, &c, "g"));
        let mut d = a.clone();
        d["Meta"] = json!({"k": "v"});
        assert!(tasks_updated(&a, &d, "g"));
    }
}
