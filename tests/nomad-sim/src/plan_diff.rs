//! Job diffs in the shape of Nomad's `structs.JobDiff` (`POST /v1/job/:id/plan` with
//! `Diff: true`, `GET /v1/job/:id/versions?diffs=true`), following Nomad's
//! `nomad/structs/diff.go`, plus the scheduler's plan annotations
//! (`scheduler/annotate.go`). Pure functions over canonical job JSON.
//!
//! What the real server does and this follows:
//! - The primitive fields of a job, group or task (including `Meta[k]` / `Env[k]`) are
//!   diffed without context: only changes are listed, and `Fields` is `null` when
//!   nothing changed. Inside objects (`Config`, `Resources`, `Update`, ...) the diff is
//!   contextual: an object that changed lists its unchanged fields too (`None`).
//! - A new job diffs against an empty one without flattening it: fields whose new
//!   value is `""` are left out, `false` and `0` are `Added`.
//! - Objects come in Nomad's fixed order per level (a group: constraints, affinities,
//!   `RestartPolicy`, `ReschedulePolicy`, `EphemeralDisk`, `Consul`, `Update`, networks,
//!   scaling, services), not by name; groups and tasks are sorted by name.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::canonical::{Obj, groups, s, tasks};

/// Counts of what the scheduler would do for one task group (`DesiredTGUpdates`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DesiredUpdates {
    pub ignore: u64,
    pub place: u64,
    pub migrate: u64,
    pub stop: u64,
    pub in_place_update: u64,
    pub destructive_update: u64,
    pub canary: u64,
    pub preemptions: u64,
}

const ADDED: &str = "Added";
const DELETED: &str = "Deleted";
const EDITED: &str = "Edited";
const NONE: &str = "None";

/// Job fields never diffed (`Job.Diff`'s filter, plus `Payload`, a byte slice).
const JOB_FILTER: &[&str] = &[
    "ID",
    "Status",
    "StatusDescription",
    "Version",
    "Stable",
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "Update",
    "SubmitTime",
    "NomadTokenID",
    "VaultToken",
    "Payload",
];

/// Maps of strings that Go's flattening expands into `Name[key]` fields.
const STRING_MAPS: &[&str] = &["Meta", "Env"];

type Flat = BTreeMap<String, String>;

fn or_null(v: Vec<Value>) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        Value::Array(v)
    }
}

/// Go's `%v` of a float64 (JSON numbers in a task's `Config` are float64 in Go):
/// `1000`, `1.5`, `1e+06`.
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// A primitive as Go's flatmap prints it.
fn prim_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Go's `flatmap.Flatten(obj, filter, true)`: the struct's primitive fields and its
/// string maps (`Meta[k]`). `skip` names pointer fields, which Go leaves out.
fn prim_flat(m: Option<&Obj>, filter: &[&str], skip: &[&str]) -> Option<Flat> {
    let m = m?;
    let mut out = Flat::new();
    for (k, v) in m {
        if filter.contains(&k.as_str()) || skip.contains(&k.as_str()) {
            continue;
        }
        if STRING_MAPS.contains(&k.as_str()) {
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if let Some(s) = prim_string(mv) {
                    out.insert(format!("{k}[{mk}]"), s);
                }
            }
        } else if let Some(s) = prim_string(v) {
            out.insert(k.clone(), s);
        }
    }
    Some(out)
}

/// Go's `flatmap.Flatten(obj, nil, false)` of a `map[string]interface{}` (a task's
/// `Config`): `command`, `args[0]`, `port_map[0][http]`; `null` is `nil`.
fn flatten_any(prefix: &str, v: &Value, out: &mut Flat) {
    match v {
        Value::Null => {
            out.insert(prefix.to_string(), "nil".into());
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten_any(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}[{k}]")
                };
                flatten_any(&name, x, out);
            }
        }
        Value::Number(n) => {
            let s = match (n.as_i64(), n.as_f64()) {
                (Some(i), _) if i.unsigned_abs() < 1_000_000 => i.to_string(),
                (_, Some(f)) => go_float(f),
                _ => n.to_string(),
            };
            out.insert(prefix.to_string(), s);
        }
        other => {
            out.insert(prefix.to_string(), prim_string(other).unwrap_or_default());
        }
    }
}

fn field(kind: &str, name: &str, old: &str, new: &str) -> Value {
    json!({"Type": kind, "Name": name, "Old": old, "New": new, "Annotations": null})
}

/// Go's `fieldDiff`.
fn field_diff(old: &str, new: &str, name: &str, contextual: bool) -> Option<Value> {
    if old == new {
        return contextual.then(|| field(NONE, name, old, new));
    }
    Some(if old.is_empty() {
        field(ADDED, name, "", new)
    } else if new.is_empty() {
        field(DELETED, name, old, "")
    } else {
        field(EDITED, name, old, new)
    })
}

fn field_key(f: &Value) -> (String, String, String) {
    let g = |k: &str| f[k].as_str().unwrap_or_default().to_string();
    (g("Name"), g("Old"), g("New"))
}

/// Go's `fieldDiffs`, sorted by name, old and new value.
fn field_diffs(old: Option<&Flat>, new: Option<&Flat>, contextual: bool) -> Vec<Value> {
    let empty = Flat::new();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out: Vec<Value> = keys
        .into_iter()
        .filter_map(|k| {
            let ov = o.get(k).map(String::as_str).unwrap_or("");
            let nv = n.get(k).map(String::as_str).unwrap_or("");
            field_diff(ov, nv, k, contextual)
        })
        .collect();
    out.sort_by_key(field_key);
    out
}

fn type_rank(t: &Value) -> u8 {
    match t.as_str() {
        Some(EDITED) => 0,
        Some(ADDED) => 1,
        Some(DELETED) => 2,
        _ => 3,
    }
}

fn len_of(v: &Value) -> usize {
    v.as_array().map(Vec::len).unwrap_or(0)
}

/// `ObjectDiff.Less`: by name, then type (edited, added, deleted, none), then size.
fn object_order(a: &Value, b: &Value) -> Ordering {
    a["Name"]
        .as_str()
        .cmp(&b["Name"].as_str())
        .then(type_rank(&a["Type"]).cmp(&type_rank(&b["Type"])))
        .then(len_of(&a["Fields"]).cmp(&len_of(&b["Fields"])))
        .then(len_of(&a["Objects"]).cmp(&len_of(&b["Objects"])))
        .then_with(|| {
            let fa: Vec<_> = a["Fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(field_key)
                .collect();
            let fb: Vec<_> = b["Fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(field_key)
                .collect();
            fa.cmp(&fb)
        })
}

fn object(kind: &str, name: &str, fields: Vec<Value>, objects: Vec<Value>) -> Value {
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects)})
}

/// The type of an object diff from its fields (`primitiveObjectDiff`): `None` when
/// nothing changed.
fn fields_type(fields: &[Value]) -> &'static str {
    let has = |t: &str| fields.iter().any(|f| f["Type"] == t);
    if has(EDITED) || (has(ADDED) && has(DELETED)) {
        EDITED
    } else if has(ADDED) {
        ADDED
    } else if has(DELETED) {
        DELETED
    } else {
        NONE
    }
}

/// Go's `primitiveObjectDiff`: `None` when no primitive field changed.
fn primitive_object_diff(
    old: Option<&Obj>,
    new: Option<&Obj>,
    filter: &[&str],
    name: &str,
    contextual: bool,
) -> Option<Value> {
    let o = prim_flat(old, filter, &[]).unwrap_or_default();
    let n = prim_flat(new, filter, &[]).unwrap_or_default();
    let fields = field_diffs(Some(&o), Some(&n), contextual);
    match fields_type(&fields) {
        NONE => None,
        kind => Some(object(kind, name, fields, Vec::new())),
    }
}

fn obj_of(v: Option<&Value>) -> Option<&Obj> {
    v.and_then(Value::as_object)
}

fn list_of(v: Option<&Value>) -> Vec<&Value> {
    v.and_then(Value::as_array).into_iter().flatten().collect()
}

/// Go's `primitiveObjectSetDiff`: objects matched by identity (their hash).
fn primitive_object_set_diff(
    old: Option<&Value>,
    new: Option<&Value>,
    filter: &[&str],
    name: &str,
    contextual: bool,
) -> Vec<Value> {
    let (o, n) = (list_of(old), list_of(new));
    let mut out = Vec::new();
    for x in &o {
        if !n.contains(x) {
            out.extend(primitive_object_diff(
                x.as_object(),
                None,
                filter,
                name,
                contextual,
            ));
        }
    }
    for x in &n {
        if !o.contains(x) {
            out.extend(primitive_object_diff(
                None,
                x.as_object(),
                filter,
                name,
                contextual,
            ));
        }
    }
    out.sort_by(object_order);
    out
}

/// Go's `stringSetDiff`.
fn string_set_diff(
    old: Option<&Value>,
    new: Option<&Value>,
    name: &str,
    contextual: bool,
) -> Option<Value> {
    let set = |v: Option<&Value>| -> BTreeSet<String> {
        list_of(v).into_iter().filter_map(prim_string).collect()
    };
    let (o, n) = (set(old), set(new));
    if o == n && !contextual {
        return None;
    }
    let mut fields = Vec::new();
    let (mut added, mut removed) = (false, false);
    for k in &o {
        if !n.contains(k) {
            fields.extend(field_diff(k, "", name, contextual));
            removed = true;
        } else if contextual {
            fields.extend(field_diff(k, k, name, contextual));
        }
    }
    for k in &n {
        if !o.contains(k) {
            fields.extend(field_diff("", k, name, contextual));
            added = true;
        }
    }
    fields.sort_by_key(field_key);
    let kind = match (added, removed) {
        (true, true) => EDITED,
        (true, false) => ADDED,
        (false, true) => DELETED,
        _ if fields.is_empty() => return None,
        _ => NONE,
    };
    Some(object(kind, name, fields, Vec::new()))
}

/// The type of a whole-object diff: added, deleted or edited.
fn presence_type(old: Option<&Value>, new: Option<&Value>) -> Option<&'static str> {
    let present = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    match (present(old), present(new)) {
        (false, false) => None,
        (false, true) => Some(ADDED),
        (true, false) => Some(DELETED),
        _ if old == new => None,
        _ => Some(EDITED),
    }
}

/// Go's `configDiff` (a task's driver config).
fn config_diff(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Option<Value> {
    if old == new || old.unwrap_or(&Value::Null) == new.unwrap_or(&Value::Null) {
        return None;
    }
    let len = |v: Option<&Value>| obj_of(v).map(|m| m.len()).unwrap_or(0);
    let kind = if len(old) == 0 {
        ADDED
    } else if len(new) == 0 {
        DELETED
    } else {
        EDITED
    };
    let flat = |v: Option<&Value>| {
        let mut f = Flat::new();
        if let Some(m) = obj_of(v) {
            flatten_any("", &Value::Object(m.clone()), &mut f);
        }
        f
    };
    let fields = field_diffs(Some(&flat(old)), Some(&flat(new)), contextual);
    Some(object(kind, "Config", fields, Vec::new()))
}

/// `NetworkResource.Diff` and its ports.
fn network_diff(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Option<Value> {
    let kind = presence_type(old, new)?;
    let filter = ["Device", "CIDR", "IP"];
    let (o, n) = (obj_of(old), obj_of(new));
    let fields = field_diffs(
        prim_flat(o, &filter, &[]).as_ref(),
        prim_flat(n, &filter, &[]).as_ref(),
        contextual,
    );
    let mut objects = Vec::new();
    for (key, name, port_filter) in [
        ("ReservedPorts", "Static Port", &[][..]),
        ("DynamicPorts", "Dynamic Port", &["Value"][..]),
    ] {
        let ports = |m: Option<&Obj>| -> BTreeMap<String, Obj> {
            list_of(m.and_then(|m| m.get(key)))
                .into_iter()
                .filter_map(Value::as_object)
                .map(|p| (s(p, "Label").unwrap_or_default().to_string(), p.clone()))
                .collect()
        };
        let (op, np) = (ports(o), ports(n));
        let labels: BTreeSet<&String> = op.keys().chain(np.keys()).collect();
        let mut diffs: Vec<Value> = labels
            .into_iter()
            .filter_map(|l| {
                primitive_object_diff(op.get(l), np.get(l), port_filter, name, contextual)
            })
            .collect();
        diffs.sort_by(object_order);
        objects.extend(diffs);
    }
    Some(object(kind, "Network", fields, objects))
}

/// `networkResourceDiffs`: networks matched by identity.
fn network_diffs(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Vec<Value> {
    let (o, n) = (list_of(old), list_of(new));
    let mut out = Vec::new();
    for x in &o {
        if !n.contains(x) {
            out.extend(network_diff(Some(x), None, contextual));
        }
    }
    for x in &n {
        if !o.contains(x) {
            out.extend(network_diff(None, Some(x), contextual));
        }
    }
    out.sort_by(object_order);
    out
}

/// `Resources.Diff`.
fn resources_diff(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Option<Value> {
    let kind = presence_type(old, new)?;
    let (o, n) = (obj_of(old), obj_of(new));
    let fields = field_diffs(
        prim_flat(o, &[], &[]).as_ref(),
        prim_flat(n, &[], &[]).as_ref(),
        contextual,
    );
    let mut objects = network_diffs(
        o.and_then(|m| m.get("Networks")),
        n.and_then(|m| m.get("Networks")),
        contextual,
    );
    objects.extend(primitive_object_set_diff(
        o.and_then(|m| m.get("Devices")),
        n.and_then(|m| m.get("Devices")),
        &[],
        "Device",
        contextual,
    ));
    Some(object(kind, "Resources", fields, objects))
}

/// `serviceDiff`: primitive fields in context, tags as sets, checks.
fn service_diff(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Option<Value> {
    let kind = presence_type(old, new)?;
    let (o, n) = (obj_of(old), obj_of(new));
    let fields = field_diffs(
        prim_flat(o, &[], &[]).as_ref(),
        prim_flat(n, &[], &[]).as_ref(),
        contextual,
    );
    let get = |m: Option<&Obj>, k: &str| m.and_then(|m| m.get(k)).cloned();
    let mut objects = Vec::new();
    for k in ["CanaryTags", "Tags"] {
        objects.extend(string_set_diff(
            get(o, k).as_ref(),
            get(n, k).as_ref(),
            k,
            contextual,
        ));
    }
    objects.extend(primitive_object_set_diff(
        get(o, "Checks").as_ref(),
        get(n, "Checks").as_ref(),
        &[],
        "Check",
        contextual,
    ));
    Some(object(kind, "Service", fields, objects))
}

/// `serviceDiffs`: services matched by name, port label and position.
fn service_diffs(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Vec<Value> {
    let (o, n) = (list_of(old), list_of(new));
    let mut taken = vec![false; n.len()];
    let mut out = Vec::new();
    for (oi, ov) in o.iter().enumerate() {
        let mut best: Option<(usize, u32)> = None;
        for (ni, nv) in n.iter().enumerate() {
            if taken[ni] {
                continue;
            }
            let mut score = 0;
            if ni == oi {
                score += 1;
            }
            if ov.get("PortLabel") == nv.get("PortLabel") {
                score += 2;
            }
            if ov.get("Name") == nv.get("Name") {
                score += 3;
            }
            if score > 2 && best.is_none_or(|(_, b)| score > b) {
                best = Some((ni, score));
            }
        }
        match best {
            Some((ni, _)) => {
                taken[ni] = true;
                out.extend(service_diff(Some(ov), Some(n[ni]), contextual));
            }
            None => out.extend(service_diff(Some(ov), None, contextual)),
        }
    }
    for (ni, nv) in n.iter().enumerate() {
        if !taken[ni] {
            out.extend(service_diff(None, Some(nv), contextual));
        }
    }
    out.sort_by(object_order);
    out
}

fn kind_of(old: bool, new: bool, changed: bool) -> &'static str {
    match (old, new) {
        (false, true) => ADDED,
        (true, false) => DELETED,
        _ if changed => EDITED,
        _ => NONE,
    }
}

fn get<'a>(m: Option<&'a Obj>, k: &str) -> Option<&'a Value> {
    m.and_then(|m| m.get(k)).filter(|v| !v.is_null())
}

/// `Task.Diff`.
fn task_diff(old: Option<&Obj>, new: Option<&Obj>, contextual: bool) -> Value {
    let name = new.or(old).and_then(|t| s(t, "Name")).unwrap_or_default();
    let fields = field_diffs(
        prim_flat(old, &["Name", "Config"], &[]).as_ref(),
        prim_flat(new, &["Name", "Config"], &[]).as_ref(),
        false,
    );
    let mut objects = Vec::new();
    for (k, singular) in [("Constraints", "Constraint"), ("Affinities", "Affinity")] {
        objects.extend(primitive_object_set_diff(
            get(old, k),
            get(new, k),
            &["str"],
            singular,
            contextual,
        ));
    }
    objects.extend(config_diff(
        get(old, "Config"),
        get(new, "Config"),
        contextual,
    ));
    objects.extend(resources_diff(
        get(old, "Resources"),
        get(new, "Resources"),
        contextual,
    ));
    for k in ["LogConfig", "DispatchPayload"] {
        objects.extend(primitive_object_diff(
            obj_of(get(old, k)),
            obj_of(get(new, k)),
            &[],
            k,
            contextual,
        ));
    }
    objects.extend(primitive_object_set_diff(
        get(old, "Artifacts"),
        get(new, "Artifacts"),
        &[],
        "Artifact",
        contextual,
    ));
    objects.extend(service_diffs(
        get(old, "Services"),
        get(new, "Services"),
        contextual,
    ));
    if let Some(kind) = presence_type(get(old, "Vault"), get(new, "Vault")) {
        let (o, n) = (obj_of(get(old, "Vault")), obj_of(get(new, "Vault")));
        let fields = field_diffs(
            prim_flat(o, &[], &[]).as_ref(),
            prim_flat(n, &[], &[]).as_ref(),
            contextual,
        );
        let pol = string_set_diff(
            get(o, "Policies"),
            get(n, "Policies"),
            "Policies",
            contextual,
        );
        objects.push(object(kind, "Vault", fields, pol.into_iter().collect()));
    }
    objects.extend(primitive_object_set_diff(
        get(old, "Templates"),
        get(new, "Templates"),
        &[],
        "Template",
        contextual,
    ));
    let kind = kind_of(old.is_some(), new.is_some(), old != new);
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects), "Annotations": null})
}

/// Group fields that are pointers in Go: left out of the flattening, and compared as
/// `""` or their value when both groups exist.
const GROUP_POINTERS: &[&str] = &["ShutdownDelay", "StopAfterClientDisconnect"];

/// `TaskGroup.Diff`.
fn group_diff(old: Option<&Obj>, new: Option<&Obj>, contextual: bool) -> Value {
    let name = new.or(old).and_then(|g| s(g, "Name")).unwrap_or_default();
    let mut of = prim_flat(old, &["Name"], GROUP_POINTERS);
    let mut nf = prim_flat(new, &["Name"], GROUP_POINTERS);
    if let (Some(of), Some(nf)) = (of.as_mut(), nf.as_mut()) {
        for k in GROUP_POINTERS {
            let v = |m: Option<&Obj>| get(m, k).and_then(prim_string).unwrap_or_default();
            of.insert(k.to_string(), v(old));
            nf.insert(k.to_string(), v(new));
        }
    }
    let fields = field_diffs(of.as_ref(), nf.as_ref(), false);
    let mut objects = Vec::new();
    for (k, singular) in [("Constraints", "Constraint"), ("Affinities", "Affinity")] {
        objects.extend(primitive_object_set_diff(
            get(old, k),
            get(new, k),
            &["str"],
            singular,
            contextual,
        ));
    }
    for (k, filter) in [
        ("RestartPolicy", &[][..]),
        ("ReschedulePolicy", &[][..]),
        ("EphemeralDisk", &[][..]),
        ("Consul", &[][..]),
        ("Update", &["Stagger"][..]),
    ] {
        objects.extend(primitive_object_diff(
            obj_of(get(old, k)),
            obj_of(get(new, k)),
            filter,
            k,
            contextual,
        ));
    }
    objects.extend(network_diffs(
        get(old, "Networks"),
        get(new, "Networks"),
        contextual,
    ));
    objects.extend(primitive_object_diff(
        obj_of(get(old, "Scaling")),
        obj_of(get(new, "Scaling")),
        &["CreateIndex", "ModifyIndex", "ID", "Type"],
        "Scaling",
        contextual,
    ));
    objects.extend(service_diffs(
        get(old, "Services"),
        get(new, "Services"),
        contextual,
    ));
    let mut names: BTreeSet<&str> = BTreeSet::new();
    names.extend(old.into_iter().flat_map(tasks).filter_map(|t| s(t, "Name")));
    names.extend(new.into_iter().flat_map(tasks).filter_map(|t| s(t, "Name")));
    let task_diffs: Vec<Value> = names
        .into_iter()
        .map(|tn| {
            let ot = old.and_then(|g| tasks(g).find(|t| s(t, "Name") == Some(tn)));
            let nt = new.and_then(|g| tasks(g).find(|t| s(t, "Name") == Some(tn)));
            task_diff(ot, nt, contextual)
        })
        .collect();
    let kind = kind_of(old.is_some(), new.is_some(), old != new);
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects),
           "Tasks": or_null(task_diffs), "Updates": null})
}

/// Diffs two canonical jobs like Nomad's `Job.Diff(other, contextual)`. `old` is
/// `None` for a new job (top-level `Added`).
pub(crate) fn job_diff(old: Option<&Obj>, new: &Obj, contextual: bool) -> Value {
    let id = s(new, "ID").unwrap_or_default();
    let fields = field_diffs(
        prim_flat(old, JOB_FILTER, &[]).as_ref(),
        prim_flat(Some(new), JOB_FILTER, &[]).as_ref(),
        false,
    );
    let new = Some(new);
    let mut objects = Vec::new();
    objects.extend(
        string_set_diff(
            get(old, "Datacenters"),
            get(new, "Datacenters"),
            "Datacenters",
            contextual,
        )
        .filter(|d| d["Type"] != NONE),
    );
    for (k, singular) in [("Constraints", "Constraint"), ("Affinities", "Affinity")] {
        objects.extend(primitive_object_set_diff(
            get(old, k),
            get(new, k),
            &["str"],
            singular,
            contextual,
        ));
    }
    objects.extend(primitive_object_diff(
        obj_of(get(old, "Periodic")),
        obj_of(get(new, "Periodic")),
        &[],
        "Periodic",
        contextual,
    ));
    let (op, np) = (get(old, "ParameterizedJob"), get(new, "ParameterizedJob"));
    if let Some(kind) = presence_type(op, np) {
        let (o, n) = (obj_of(op), obj_of(np));
        let fields = field_diffs(
            prim_flat(o, &[], &[]).as_ref(),
            prim_flat(n, &[], &[]).as_ref(),
            contextual,
        );
        let mut objs = Vec::new();
        for k in ["MetaOptional", "MetaRequired"] {
            objs.extend(string_set_diff(get(o, k), get(n, k), k, contextual));
        }
        objects.push(object(kind, "ParameterizedJob", fields, objs));
    }
    let mut names: BTreeSet<&str> = BTreeSet::new();
    names.extend(
        old.into_iter()
            .flat_map(groups)
            .filter_map(|g| s(g, "Name")),
    );
    names.extend(
        new.into_iter()
            .flat_map(groups)
            .filter_map(|g| s(g, "Name")),
    );
    let tgs: Vec<Value> = names
        .into_iter()
        .map(|gn| {
            let og = old.and_then(|j| groups(j).find(|g| s(g, "Name") == Some(gn)));
            let ng = new.and_then(|j| groups(j).find(|g| s(g, "Name") == Some(gn)));
            group_diff(og, ng, contextual)
        })
        .collect();
    let changed = |v: &[Value]| v.iter().any(|x| x["Type"] != NONE);
    let kind = if old.is_none() {
        ADDED
    } else if changed(&fields) || changed(&objects) || changed(&tgs) {
        EDITED
    } else {
        NONE
    };
    json!({"Type": kind, "ID": id, "Fields": or_null(fields), "Objects": or_null(objects),
           "TaskGroups": or_null(tgs)})
}

/// `annotateTask`: whether an edited task's changes can be made in place.
fn task_is_destructive(task: &Value) -> bool {
    let fields = task["Fields"].as_array().into_iter().flatten();
    let objects = task["Objects"].as_array().into_iter().flatten();
    fields.into_iter().any(|f| f["Name"] != "KillTimeout")
        || objects.into_iter().any(|o| match o["Name"].as_str() {
            Some("Service" | "Constraint" | "Affinity" | "Spread") => false,
            Some("LogConfig") => o["Fields"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["Name"] == "Disabled"),
            _ => true,
        })
}

/// Adds Nomad's plan annotations to a job diff (`scheduler.Annotate`): a group's
/// `Updates` (an empty object when the scheduler has an entry with all zeros), the
/// count change, and per task `forces create` / `forces create/destroy update` / ...
pub(crate) fn annotate(diff: &mut Value, updates: &BTreeMap<String, DesiredUpdates>) {
    let Some(tgs) = diff.get_mut("TaskGroups").and_then(Value::as_array_mut) else {
        return;
    };
    for tg in tgs {
        let name = tg["Name"].as_str().unwrap_or_default().to_string();
        let tg_kind = tg["Type"].as_str().unwrap_or(NONE).to_string();
        if let Some(u) = updates.get(&name) {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("ignore", u.ignore),
                ("create", u.place),
                ("migrate", u.migrate),
                ("destroy", u.stop),
                ("canary", u.canary),
                ("in-place update", u.in_place_update),
                ("create/destroy update", u.destructive_update),
            ] {
                if v > 0 {
                    m.insert(k.to_string(), json!(v));
                }
            }
            tg["Updates"] = Value::Object(m);
        }
        if let Some(f) = tg
            .get_mut("Fields")
            .and_then(Value::as_array_mut)
            .and_then(|fs| fs.iter_mut().find(|f| f["Name"] == "Count"))
        {
            let num = |k: &str| -> i64 { f[k].as_str().and_then(|x| x.parse().ok()).unwrap_or(0) };
            let (old, new) = (num("Old"), num("New"));
            if old != new {
                f["Annotations"] = json!([if new > old {
                    "forces create"
                } else {
                    "forces destroy"
                }]);
            }
        }
        if let Some(tasks) = tg.get_mut("Tasks").and_then(Value::as_array_mut) {
            for t in tasks {
                let kind = t["Type"].as_str().unwrap_or(NONE);
                let whole = tg_kind == ADDED || tg_kind == DELETED;
                let ann = match kind {
                    NONE => continue,
                    ADDED if whole => "forces create",
                    DELETED if whole => "forces destroy",
                    _ if task_is_destructive(t) => "forces create/destroy update",
                    _ => "forces in-place update",
                };
                t["Annotations"] = json!([ann]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonicalize_job;

    fn job(args: &[&str], count: u64) -> Obj {
        let v = json!({
            "ID": "web", "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "g", "Count": count, "Tasks": [{"Name": "t", "Driver": "raw_exec",
                "Config": {"command": "/bin/sleep", "args": args}}]}]
        });
        let Value::Object(m) = v else { panic!() };
        canonicalize_job(&m, "default", "global")
    }

    #[test]
    fn none_when_equal_and_no_fields_listed() {
        let a = job(&["10"], 1);
        let d = job_diff(Some(&a), &a, true);
        assert_eq!(d["Type"], "None");
        assert!(d["Fields"].is_null());
        assert!(d["Objects"].is_null());
        let g = &d["TaskGroups"][0];
        assert_eq!(g["Type"], "None");
        assert!(g["Fields"].is_null());
        assert!(g["Tasks"][0]["Fields"].is_null());
    }

    #[test]
    fn added_for_new_job() {
        let a = job(&["10"], 2);
        let mut d = job_diff(None, &a, true);
        assert_eq!(d["Type"], "Added");
        let names: Vec<&str> = d["Fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter_map(|f| f["Name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "AllAtOnce",
                "Dispatched",
                "Name",
                "Namespace",
                "Priority",
                "Region",
                "Stop",
                "Type"
            ]
        );
        let mut u = BTreeMap::new();
        u.insert(
            "g".to_string(),
            DesiredUpdates {
                place: 2,
                ..Default::default()
            },
        );
        annotate(&mut d, &u);
        let g = &d["TaskGroups"][0];
        assert_eq!(g["Type"], "Added");
        assert_eq!(g["Updates"]["create"], 2);
        assert_eq!(g["Fields"][0]["Annotations"][0], "forces create");
        let objects: Vec<&str> = g["Objects"]
            .as_array()
            .expect("objects")
            .iter()
            .filter_map(|o| o["Name"].as_str())
            .collect();
        assert_eq!(
            objects,
            [
                "RestartPolicy",
                "ReschedulePolicy",
                "EphemeralDisk",
                "Update"
            ]
        );
        let t = &g["Tasks"][0];
        assert_eq!(t["Annotations"][0], "forces create");
        let objects: Vec<&str> = t["Objects"]
            .as_array()
            .expect("objects")
            .iter()
            .filter_map(|o| o["Name"].as_str())
            .collect();
        assert_eq!(objects, ["Config", "Resources", "LogConfig"]);
    }

    #[test]
    fn edited_config_is_destructive_and_contextual() {
        let a = job(&["10"], 1);
        let b = job(&["20"], 1);
        let mut d = job_diff(Some(&a), &b, true);
        assert_eq!(d["Type"], "Edited");
        annotate(&mut d, &BTreeMap::new());
        let t = &d["TaskGroups"][0]["Tasks"][0];
        assert_eq!(t["Type"], "Edited");
        assert!(t["Fields"].is_null());
        assert_eq!(t["Annotations"][0], "forces create/destroy update");
        let cfg = &t["Objects"][0];
        assert_eq!(cfg["Name"], "Config");
        assert_eq!(cfg["Fields"][0]["Name"], "args[0]");
        assert_eq!(cfg["Fields"][0]["Old"], "10");
        assert_eq!(cfg["Fields"][1]["Name"], "command");
        assert_eq!(cfg["Fields"][1]["Type"], "None");
    }

    #[test]
    fn count_change_annotated() {
        let a = job(&["10"], 1);
        let b = job(&["10"], 3);
        let mut d = job_diff(Some(&a), &b, true);
        annotate(&mut d, &BTreeMap::new());
        let f = &d["TaskGroups"][0]["Fields"][0];
        assert_eq!(f["Name"], "Count");
        assert_eq!(f["Type"], "Edited");
        assert_eq!(f["Annotations"][0], "forces create");
        assert!(d["TaskGroups"][0]["Tasks"][0]["Annotations"].is_null());
    }

    #[test]
    fn service_change_is_in_place() {
        let a = job(&["10"], 1);
        let mut b = a.clone();
        b["TaskGroups"][0]["Tasks"][0]["Services"] = json!([{"Name": "svc", "PortLabel": "http"}]);
        let mut d = job_diff(Some(&a), &b, true);
        annotate(&mut d, &BTreeMap::new());
        assert_eq!(
            d["TaskGroups"][0]["Tasks"][0]["Annotations"][0],
            "forces in-place update"
        );
    }

    #[test]
    fn meta_and_datacenters() {
        let a = job(&["10"], 1);
        let mut b = a.clone();
        b["Meta"] = json!({"owner": "me"});
        b["Datacenters"] = json!(["dc1", "dc2"]);
        let d = job_diff(Some(&a), &b, true);
        assert_eq!(d["Type"], "Edited");
        assert_eq!(d["Fields"][0]["Name"], "Meta[owner]");
        assert_eq!(d["Fields"][0]["Type"], "Added");
        let dc = &d["Objects"][0];
        assert_eq!(dc["Name"], "Datacenters");
        assert_eq!(dc["Type"], "Added");
        assert_eq!(dc["Fields"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(1000.0), "1000");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(1_234_567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
    }
}
