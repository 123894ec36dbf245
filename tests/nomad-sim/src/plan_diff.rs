//! Job diffs in the shape of Nomad's `structs.JobDiff` (as returned by
//! `POST /v1/job/:id/plan` with `Diff: true`), plus the plan annotations.
//! Pure functions over canonical job JSON.

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

/// Keys never diffed at job level (Nomad's `Job.Diff` filter).
const JOB_IGNORE: &[&str] = &[
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
    "TaskGroups",
    "Payload",
];

/// List-of-object keys diffed as sets of singular-named objects.
const SETS: &[(&str, &str)] = &[
    ("Constraints", "Constraint"),
    ("Affinities", "Affinity"),
    ("Spreads", "Spread"),
    ("Services", "Service"),
    ("Networks", "Network"),
    ("Artifacts", "Artifact"),
    ("Templates", "Template"),
    ("VolumeMounts", "VolumeMount"),
    ("Checks", "Check"),
];

fn or_null(v: Vec<Value>) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        Value::Array(v)
    }
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Flattens a JSON value into `name -> string` leaves (`a.b`, `a[0]`, `m[k]`).
pub(crate) fn flatten(
    prefix: &str,
    v: &Value,
    map_style: bool,
    out: &mut BTreeMap<String, String>,
) {
    match v {
        Value::Null => {}
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, map_style, out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else if map_style {
                    format!("{prefix}[{k}]")
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, x, map_style, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), scalar_string(other));
        }
    }
}

fn field(kind: &str, name: &str, old: &str, new: &str) -> Value {
    json!({"Type": kind, "Name": name, "Old": old, "New": new, "Annotations": null})
}

fn field_diffs(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    contextual: bool,
) -> Vec<Value> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (old.get(k), new.get(k)) {
            (None, Some(n)) => out.push(field(ADDED, k, "", n)),
            (Some(o), None) => out.push(field(DELETED, k, o, "")),
            (Some(o), Some(n)) if o != n => out.push(field(EDITED, k, o, n)),
            (Some(o), Some(n)) if contextual => out.push(field(NONE, k, o, n)),
            _ => {}
        }
    }
    out
}

fn flat(v: Option<&Value>, map_style: bool) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(v) = v {
        flatten("", v, map_style, &mut m);
    }
    m
}

fn object_diff(
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    contextual: bool,
    map_style: bool,
) -> Option<Value> {
    let (old, new) = (present(old), present(new));
    let kind = match (old, new) {
        (None, None) => return None,
        (None, Some(_)) => ADDED,
        (Some(_), None) => DELETED,
        (Some(o), Some(n)) if o == n => return None,
        _ => EDITED,
    };
    let fields = field_diffs(&flat(old, map_style), &flat(new, map_style), contextual);
    Some(json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": null}))
}

fn string_set_diff(name: &str, old: Option<&Value>, new: Option<&Value>) -> Option<Value> {
    let set = |v: Option<&Value>| -> BTreeSet<String> {
        present(v)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(scalar_string)
            .collect()
    };
    let (o, n) = (set(old), set(new));
    if o == n {
        return None;
    }
    let mut fields = Vec::new();
    for x in o.union(&n) {
        match (o.contains(x), n.contains(x)) {
            (true, false) => fields.push(field(DELETED, name, x, "")),
            (false, true) => fields.push(field(ADDED, name, "", x)),
            _ => fields.push(field(NONE, name, x, x)),
        }
    }
    let kind = if o.is_empty() {
        ADDED
    } else if n.is_empty() {
        DELETED
    } else {
        EDITED
    };
    Some(json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": null}))
}

fn object_set_diff(
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    contextual: bool,
) -> Vec<Value> {
    let items = |v: Option<&Value>| -> Vec<Value> {
        present(v)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (o, n) = (items(old), items(new));
    let by_name = o
        .iter()
        .chain(n.iter())
        .all(|x| x.get("Name").and_then(Value::as_str).is_some());
    let mut out = Vec::new();
    if by_name {
        let key = |x: &Value| {
            x.get("Name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let names: BTreeSet<String> = o.iter().chain(n.iter()).map(key).collect();
        for nm in names {
            let ov = o.iter().find(|x| key(x) == nm);
            let nv = n.iter().find(|x| key(x) == nm);
            if let Some(d) = object_diff(name, ov, nv, contextual, false) {
                out.push(d);
            }
        }
    } else {
        let mut unmatched_new: Vec<&Value> = n.iter().collect();
        for ov in &o {
            if let Some(pos) = unmatched_new.iter().position(|x| *x == ov) {
                unmatched_new.remove(pos);
            } else if let Some(d) = object_diff(name, Some(ov), None, contextual, false) {
                out.push(d);
            }
        }
        for nv in unmatched_new {
            if let Some(d) = object_diff(name, None, Some(nv), contextual, false) {
                out.push(d);
            }
        }
    }
    out
}

/// Diffs the fields and objects of one level (job, group or task).
fn level(
    old: Option<&Obj>,
    new: Option<&Obj>,
    ignore: &[&str],
    contextual: bool,
) -> (Vec<Value>, Vec<Value>) {
    let mut keys: BTreeSet<&String> = BTreeSet::new();
    keys.extend(old.into_iter().flat_map(|m| m.keys()));
    keys.extend(new.into_iter().flat_map(|m| m.keys()));
    let mut fields = Vec::new();
    let mut objects = Vec::new();
    let mut old_prims = BTreeMap::new();
    let mut new_prims = BTreeMap::new();
    for k in keys {
        if ignore.contains(&k.as_str()) {
            continue;
        }
        let ov = present(old.and_then(|m| m.get(k)));
        let nv = present(new.and_then(|m| m.get(k)));
        let sample = nv.or(ov);
        if k == "Meta" || k == "Env" {
            let mut om = BTreeMap::new();
            let mut nm = BTreeMap::new();
            if let Some(Value::Object(m)) = ov {
                for (mk, mv) in m {
                    om.insert(format!("{k}[{mk}]"), scalar_string(mv));
                }
            }
            if let Some(Value::Object(m)) = nv {
                for (mk, mv) in m {
                    nm.insert(format!("{k}[{mk}]"), scalar_string(mv));
                }
            }
            fields.extend(field_diffs(&om, &nm, contextual));
        } else if k == "Datacenters" {
            objects.extend(string_set_diff(k, ov, nv));
        } else if let Some((_, singular)) = SETS.iter().find(|(p, _)| *p == k.as_str()) {
            objects.extend(object_set_diff(singular, ov, nv, contextual));
        } else {
            match sample {
                None => {}
                Some(Value::Object(_)) | Some(Value::Array(_)) => {
                    objects.extend(object_diff(k, ov, nv, contextual, k == "Config"));
                }
                Some(_) => {
                    if let Some(v) = ov {
                        old_prims.insert(k.clone(), scalar_string(v));
                    }
                    if let Some(v) = nv {
                        new_prims.insert(k.clone(), scalar_string(v));
                    }
                }
            }
        }
    }
    fields.extend(field_diffs(&old_prims, &new_prims, contextual));
    fields.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    objects.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
    (fields, objects)
}

fn changed(items: &[Value]) -> bool {
    items.iter().any(|x| x["Type"] != NONE)
}

fn kind_of(old: bool, new: bool, any_change: bool) -> &'static str {
    match (old, new) {
        (false, true) => ADDED,
        (true, false) => DELETED,
        _ if any_change => EDITED,
        _ => NONE,
    }
}

fn task_diff(old: Option<&Obj>, new: Option<&Obj>, contextual: bool) -> Value {
    let name = new.or(old).and_then(|t| s(t, "Name")).unwrap_or_default();
    let (fields, objects) = level(old, new, &["Name"], contextual);
    let kind = kind_of(
        old.is_some(),
        new.is_some(),
        changed(&fields) || changed(&objects),
    );
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects), "Annotations": null})
}

fn group_diff(old: Option<&Obj>, new: Option<&Obj>, contextual: bool) -> Value {
    let name = new.or(old).and_then(|g| s(g, "Name")).unwrap_or_default();
    let (fields, objects) = level(old, new, &["Name", "Tasks"], contextual);
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
    let kind = kind_of(
        old.is_some(),
        new.is_some(),
        changed(&fields) || changed(&objects) || changed(&task_diffs),
    );
    json!({"Type": kind, "Name": name, "Fields": or_null(fields), "Objects": or_null(objects),
           "Tasks": or_null(task_diffs), "Updates": null})
}

/// Diffs two canonical jobs like Nomad's `Job.Diff(other, contextual)`. `old` is
/// `None` for a new job (top-level `Added`).
pub(crate) fn job_diff(old: Option<&Obj>, new: &Obj, contextual: bool) -> Value {
    let id = s(new, "ID").unwrap_or_default();
    let (fields, objects) = level(old, Some(new), JOB_IGNORE, contextual);
    let mut names: BTreeSet<&str> = BTreeSet::new();
    names.extend(
        old.into_iter()
            .flat_map(groups)
            .filter_map(|g| s(g, "Name")),
    );
    names.extend(groups(new).filter_map(|g| s(g, "Name")));
    let tgs: Vec<Value> = names
        .into_iter()
        .map(|gn| {
            let og = old.and_then(|j| groups(j).find(|g| s(g, "Name") == Some(gn)));
            let ng = groups(new).find(|g| s(g, "Name") == Some(gn));
            group_diff(og, ng, contextual)
        })
        .collect();
    let kind = kind_of(
        old.is_some(),
        true,
        changed(&fields) || changed(&objects) || changed(&tgs),
    );
    json!({"Type": kind, "ID": id, "Fields": or_null(fields), "Objects": or_null(objects),
           "TaskGroups": or_null(tgs)})
}

/// Whether an edited task's changes force a destructive update (Nomad's
/// `annotateTask`: only `KillTimeout`, `LogConfig`, `Service` and `Constraint`
/// changes are in place).
fn task_is_destructive(task: &Value) -> bool {
    let fields = task["Fields"].as_array().into_iter().flatten();
    let objects = task["Objects"].as_array().into_iter().flatten();
    fields
        .filter(|f| f["Type"] != NONE)
        .any(|f| f["Name"] != "KillTimeout")
        || objects.filter(|o| o["Type"] != NONE).any(|o| {
            !matches!(
                o["Name"].as_str(),
                Some("LogConfig" | "Service" | "Constraint")
            )
        })
}

/// Adds Nomad's plan annotations to a job diff: task-group `Updates`, task
/// annotations (`forces create`, `forces create/destroy update`, ...) and count
/// change annotations.
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
                ("destroy", u.stop),
                ("migrate", u.migrate),
                ("in-place update", u.in_place_update),
                ("create/destroy update", u.destructive_update),
                ("canary", u.canary),
            ] {
                if v > 0 {
                    m.insert(k.to_string(), json!(v));
                }
            }
            tg["Updates"] = if m.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            };
        }
        if let Some(fields) = tg.get_mut("Fields").and_then(Value::as_array_mut) {
            for f in fields {
                if f["Name"] == "Count" && f["Type"] == EDITED {
                    let old: i64 = f["Old"].as_str().and_then(|x| x.parse().ok()).unwrap_or(0);
                    let new: i64 = f["New"].as_str().and_then(|x| x.parse().ok()).unwrap_or(0);
                    let ann = if new > old {
                        "forces create"
                    } else {
                        "forces destroy"
                    };
                    f["Annotations"] = json!([ann]);
                }
            }
        }
        if let Some(tasks) = tg.get_mut("Tasks").and_then(Value::as_array_mut) {
            for t in tasks {
                let kind = if tg_kind == ADDED {
                    ADDED
                } else if tg_kind == DELETED {
                    DELETED
                } else {
                    t["Type"].as_str().unwrap_or(NONE)
                };
                let ann = match kind {
                    ADDED => Some("forces create"),
                    DELETED => Some("forces destroy"),
                    EDITED if task_is_destructive(t) => Some("forces create/destroy update"),
                    EDITED => Some("forces in-place update"),
                    _ => None,
                };
                t["Annotations"] = match ann {
                    Some(a) => json!([a]),
                    None => Value::Null,
                };
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
    fn none_when_equal() {
        let a = job(&["10"], 1);
        let d = job_diff(Some(&a), &a, true);
        assert_eq!(d["Type"], "None");
        assert_eq!(d["TaskGroups"][0]["Type"], "None");
    }

    #[test]
    fn added_for_new_job() {
        let a = job(&["10"], 2);
        let mut d = job_diff(None, &a, true);
        assert_eq!(d["Type"], "Added");
        let mut u = BTreeMap::new();
        u.insert(
            "g".to_string(),
            DesiredUpdates {
                place: 2,
                ..Default::default()
            },
        );
        annotate(&mut d, &u);
        assert_eq!(d["TaskGroups"][0]["Type"], "Added");
        assert_eq!(d["TaskGroups"][0]["Updates"]["create"], 2);
        assert_eq!(
            d["TaskGroups"][0]["Tasks"][0]["Annotations"][0],
            "forces create"
        );
    }

    #[test]
    fn edited_config_is_destructive() {
        let a = job(&["10"], 1);
        let b = job(&["20"], 1);
        let mut d = job_diff(Some(&a), &b, true);
        assert_eq!(d["Type"], "Edited");
        annotate(&mut d, &BTreeMap::new());
        let t = &d["TaskGroups"][0]["Tasks"][0];
        assert_eq!(t["Type"], "Edited");
        assert_eq!(t["Annotations"][0], "forces create/destroy update");
        let cfg = t["Objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["Name"] == "Config")
            .expect("config");
        let f = cfg["Fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["Name"] == "args[0]")
            .expect("args");
        assert_eq!(f["Old"], "10");
        assert_eq!(f["New"], "20");
    }

    #[test]
    fn count_change_annotated() {
        let a = job(&["10"], 1);
        let b = job(&["10"], 3);
        let mut d = job_diff(Some(&a), &b, true);
        annotate(&mut d, &BTreeMap::new());
        let f = d["TaskGroups"][0]["Fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["Name"] == "Count")
            .expect("count")
            .clone();
        assert_eq!(f["Type"], "Edited");
        assert_eq!(f["Annotations"][0], "forces create");
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
        let d = job_diff(Some(&a), &b, false);
        assert_eq!(d["Type"], "Edited");
        assert_eq!(d["Fields"][0]["Name"], "Meta[owner]");
        assert_eq!(d["Objects"][0]["Name"], "Datacenters");
    }
}
