//! Validating a `NomadJob`'s spec and rendering the Nomad job to register (pure).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crd::{
    META_OWNER_NAME, META_OWNER_NAMESPACE, META_OWNER_UID, NomadJob, RETRY_ANNOTATION,
};

/// Where jobs go when neither the spec nor the job says.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    /// Nomad namespace (`NOMAD_NAMESPACE`); Nomad's own default is `default`.
    pub namespace: Option<String>,
    /// Nomad region (`NOMAD_REGION`); unset leaves it to the Nomad agent.
    pub region: Option<String>,
}

/// The Nomad job the spec asks for, ready to plan and register.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredJob {
    /// Nomad job ID.
    pub id: String,
    /// Nomad namespace.
    pub namespace: String,
    /// Nomad region, when known.
    pub region: Option<String>,
    /// The job in Nomad's JSON API form, with ID, Name, Namespace, Region and ownership
    /// `Meta` filled in.
    pub job: Value,
    /// Digest of the job and of the retry annotation: what "this spec" means when the
    /// operator remembers what it applied or what failed.
    pub digest: String,
}

/// Why a spec cannot be rendered: the offending field and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSpec {
    /// Path of the field, such as `spec.job.TaskGroups[0].Tasks`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// The Nomad job ID the object manages: `spec.jobID`, or the object's name.
pub fn job_id(obj: &NomadJob) -> Option<String> {
    obj.spec
        .job_id
        .clone()
        .or_else(|| obj.metadata.name.clone())
}

/// The job of `spec.job` (JSON form), after checking that exactly one of `spec.job` and
/// `spec.hcl` is set. `Ok(None)` means the spec holds a jobspec in `spec.hcl` instead.
pub fn json_job(obj: &NomadJob) -> Result<Option<Map<String, Value>>, InvalidSpec> {
    match (&obj.spec.job, &obj.spec.hcl) {
        (Some(_), Some(_)) => Err(invalid(
            "spec",
            "sets both job and hcl; keep exactly one of them",
        )),
        (None, None) => Err(invalid(
            "spec",
            "sets neither job (the job in Nomad's JSON form) nor hcl (a jobspec in HCL); set exactly one",
        )),
        (None, Some(_)) => Ok(None),
        (Some(job), None) => job
            .fields()
            .map(Some)
            .map_err(|e| invalid("spec.job", format!("is not a JSON object: {e}"))),
    }
}

/// Validates the spec and renders the Nomad job to register from `job`: the job of
/// `spec.job`, or the one Nomad parsed from `spec.hcl`. `root` names where the job came
/// from in messages (`spec.job`, or `spec.hcl (parsed)`).
pub fn render(
    obj: &NomadJob,
    job: Map<String, Value>,
    root: &str,
    defaults: &Defaults,
) -> Result<DesiredJob, InvalidSpec> {
    let name = obj
        .metadata
        .name
        .clone()
        .ok_or_else(|| invalid("metadata.name", "is missing"))?;
    let id = obj.spec.job_id.clone().unwrap_or_else(|| name.clone());
    let id_field = if obj.spec.job_id.is_some() {
        "spec.jobID"
    } else {
        "metadata.name"
    };
    validate_job_id(&id).map_err(|m| invalid(id_field, m))?;

    let mut job = job;
    match job.get("ID") {
        None => {}
        Some(Value::String(inner)) if *inner == id => {}
        Some(Value::String(inner)) => {
            return Err(invalid(
                format!("{root}.ID"),
                format!(
                    "is {inner:?} but the job ID is {id:?} (from {id_field}); remove the job's ID or make them equal"
                ),
            ));
        }
        Some(_) => return Err(invalid(format!("{root}.ID"), "must be a string")),
    }
    validate_structure(&job, root)?;

    job.insert("ID".into(), Value::String(id.clone()));
    if !matches!(job.get("Name"), Some(Value::String(n)) if !n.is_empty()) {
        job.insert("Name".into(), Value::String(id.clone()));
    }
    let namespace = optional_string(&job, "Namespace", root)?
        .or_else(|| defaults.namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    job.insert("Namespace".into(), Value::String(namespace.clone()));
    let region = optional_string(&job, "Region", root)?.or_else(|| defaults.region.clone());
    if let Some(region) = &region {
        job.insert("Region".into(), Value::String(region.clone()));
    }
    let meta = match job.remove("Meta") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(meta)) => meta,
        Some(_) => {
            return Err(invalid(
                format!("{root}.Meta"),
                "must be an object of strings",
            ));
        }
    };
    let mut meta = meta;
    if let Some((key, _)) = meta.iter().find(|(_, v)| !v.is_string()) {
        return Err(invalid(format!("{root}.Meta.{key}"), "must be a string"));
    }
    // The owner keys are the operator's to write (see `send`), never the spec's: a spec
    // pasted from `nomad job inspect` carries those of the job it was copied from.
    for key in [META_OWNER_NAMESPACE, META_OWNER_NAME, META_OWNER_UID] {
        meta.remove(key);
    }
    if !meta.is_empty() {
        job.insert("Meta".into(), Value::Object(meta));
    }

    let job = Value::Object(job);
    let retry = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RETRY_ANNOTATION))
        .map(String::as_str)
        .unwrap_or_default();
    let digest = digest(&job, retry);
    Ok(DesiredJob {
        id,
        namespace,
        region,
        job,
        digest,
    })
}

/// Nomad's rules for a job ID, as its job validation applies them.
fn validate_job_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the job ID must not be empty".into());
    }
    if id.chars().count() > 128 {
        return Err(format!("the job ID {id:?} is longer than 128 characters"));
    }
    if id.chars().any(char::is_whitespace) {
        return Err(format!(
            "the job ID {id:?} contains whitespace, which Nomad forbids"
        ));
    }
    if id.contains('\0') {
        return Err("the job ID contains a null character".into());
    }
    if let Some(suffix) = NOMAD_JOB_ROUTES.iter().find(|s| id.ends_with(*s)) {
        return Err(format!(
            "the job ID {id:?} ends in {suffix:?}, which Nomad's HTTP API takes for its own route (/v1/job/ID{suffix}): the job could not be read or deleted by ID. Choose another ID"
        ));
    }
    let odd_segment = id.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if id.contains('/') && odd_segment {
        return Err(format!(
            "the job ID {id:?} has an empty, \".\" or \"..\" path segment, which URL normalization changes before Nomad sees it. Choose another ID"
        ));
    }
    Ok(())
}

/// The sub-routes of `/v1/job/:id` in Nomad's HTTP API (1.1.2 and later): a job ID
/// ending in one is routed there instead.
const NOMAD_JOB_ROUTES: [&str; 14] = [
    "/evaluate",
    "/allocations",
    "/evaluations",
    "/periodic/force",
    "/plan",
    "/summary",
    "/dispatch",
    "/versions",
    "/revert",
    "/deployments",
    "/deployment",
    "/stable",
    "/scale",
    "/services",
];

/// The structural checks that catch a malformed job before Nomad sees it: task groups
/// with named tasks that have a driver. Nomad validates the rest.
fn validate_structure(job: &Map<String, Value>, root: &str) -> Result<(), InvalidSpec> {
    // Null is absent: Nomad's parse of a jobspec sends `null` for every field it
    // leaves to Nomad's defaults.
    if let Some(kind) = job.get("Type").filter(|v| !v.is_null()) {
        match kind.as_str() {
            Some("service" | "batch" | "system" | "sysbatch") => {}
            _ => {
                return Err(invalid(
                    format!("{root}.Type"),
                    format!("is {kind}; Nomad job types are service, batch, system and sysbatch"),
                ));
            }
        }
    }
    let groups = match job.get("TaskGroups") {
        Some(Value::Array(groups)) if !groups.is_empty() => groups,
        Some(Value::Array(_)) => {
            return Err(invalid(
                format!("{root}.TaskGroups"),
                "must hold at least one task group",
            ));
        }
        Some(_) => {
            return Err(invalid(
                format!("{root}.TaskGroups"),
                "must be a list of task groups",
            ));
        }
        None => {
            let hint = job
                .keys()
                .find(|k| k.eq_ignore_ascii_case("taskgroups"))
                .map(|k| format!(" (found {k:?}: Nomad's JSON API uses PascalCase keys)"))
                .unwrap_or_default();
            return Err(invalid(
                format!("{root}.TaskGroups"),
                format!("is required{hint}"),
            ));
        }
    };
    for (g, group) in groups.iter().enumerate() {
        let at = format!("{root}.TaskGroups[{g}]");
        let group = group
            .as_object()
            .ok_or_else(|| invalid(&at, "must be an object"))?;
        require_name(group, &at)?;
        if let Some(count) = group.get("Count").filter(|v| !v.is_null())
            && count.as_i64().is_none_or(|c| c < 0)
        {
            return Err(invalid(
                format!("{at}.Count"),
                "must be a whole number, 0 or more",
            ));
        }
        let tasks = match group.get("Tasks") {
            Some(Value::Array(tasks)) if !tasks.is_empty() => tasks,
            _ => {
                return Err(invalid(
                    format!("{at}.Tasks"),
                    "must hold at least one task",
                ));
            }
        };
        for (t, task) in tasks.iter().enumerate() {
            let at = format!("{at}.Tasks[{t}]");
            let task = task
                .as_object()
                .ok_or_else(|| invalid(&at, "must be an object"))?;
            require_name(task, &at)?;
            if !matches!(task.get("Driver"), Some(Value::String(d)) if !d.is_empty()) {
                return Err(invalid(
                    format!("{at}.Driver"),
                    "is required (for example \"raw_exec\" or \"docker\")",
                ));
            }
        }
    }
    Ok(())
}

fn require_name(object: &Map<String, Value>, at: &str) -> Result<(), InvalidSpec> {
    match object.get("Name") {
        Some(Value::String(n)) if !n.is_empty() => Ok(()),
        _ => Err(invalid(format!("{at}.Name"), "is required")),
    }
}

fn optional_string(
    job: &Map<String, Value>,
    key: &str,
    root: &str,
) -> Result<Option<String>, InvalidSpec> {
    match job.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{root}.{key}"), "must be a string")),
    }
}

/// Digest of a rendered job and the retry annotation's value (`sha256:<hex>`).
///
/// `serde_json` keeps object keys sorted, so equal jobs give equal digests.
pub fn digest(job: &Value, retry: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(job.to_string().as_bytes());
    hasher.update([0u8]);
    hasher.update(retry.as_bytes());
    let bytes = hasher.finalize();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::NomadJobSpec;
    use serde_json::json;

    fn object(spec: Value) -> NomadJob {
        let spec: NomadJobSpec = serde_json::from_value(spec).expect("spec");
        let mut obj = NomadJob::new("web", spec);
        obj.metadata.namespace = Some("team-a".into());
        obj.metadata.uid = Some("uid-1".into());
        obj
    }

    /// Renders `obj` as the controller does for a JSON-form spec.
    fn render(obj: &NomadJob, defaults: &Defaults) -> Result<DesiredJob, InvalidSpec> {
        let job = json_job(obj)?.expect("a JSON spec");
        super::render(obj, job, "spec.job", defaults)
    }

    fn valid_job() -> Value {
        json!({"Datacenters": ["dc1"], "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]})
    }

    #[test]
    fn renders_id_name_namespace_and_ownership() {
        let desired =
            render(&object(json!({"job": valid_job()})), &Defaults::default()).expect("valid");
        assert_eq!(desired.id, "web");
        assert_eq!(desired.namespace, "default");
        assert_eq!(desired.region, None);
        assert_eq!(desired.job["ID"], "web");
        assert_eq!(desired.job["Name"], "web");
        assert_eq!(desired.job["Namespace"], "default");
        assert!(desired.job.get("Region").is_none());
        assert!(
            desired.job.get("Meta").is_none(),
            "owner keys are added when sent, and only as the live job calls for"
        );
        assert!(desired.digest.starts_with("sha256:"));
    }

    #[test]
    fn job_id_namespace_and_region_come_from_spec_then_defaults() {
        let defaults = Defaults {
            namespace: Some("apps".into()),
            region: Some("eu".into()),
        };
        let desired = render(
            &object(json!({"job": valid_job(), "jobID": "web-prod"})),
            &defaults,
        )
        .expect("valid");
        assert_eq!(
            (desired.id.as_str(), desired.namespace.as_str()),
            ("web-prod", "apps")
        );
        assert_eq!(desired.job["Region"], "eu");

        let mut job = valid_job();
        job["Namespace"] = json!("batch");
        job["Region"] = json!("us");
        job["Name"] = json!("Pretty name");
        job["Meta"] = json!({"team": "a"});
        let desired = render(&object(json!({"job": job})), &defaults).expect("valid");
        assert_eq!(
            (desired.namespace.as_str(), desired.region.as_deref()),
            ("batch", Some("us"))
        );
        assert_eq!(desired.job["Name"], "Pretty name");
        assert_eq!(desired.job["Meta"]["team"], "a");
    }

    #[test]
    fn invalid_specs_name_the_offending_field() {
        let cases = [
            (
                json!({"job": {"ID": "other", "TaskGroups": []}}),
                "spec.job.ID",
            ),
            (json!({"job": {}}), "spec.job.TaskGroups"),
            (json!({"job": {"taskGroups": []}}), "spec.job.TaskGroups"),
            (json!({"job": {"TaskGroups": []}}), "spec.job.TaskGroups"),
            (
                json!({"job": {"TaskGroups": [{"Tasks": [{"Name": "t", "Driver": "d"}]}]}}),
                "spec.job.TaskGroups[0].Name",
            ),
            (
                json!({"job": {"TaskGroups": [{"Name": "g", "Tasks": []}]}}),
                "spec.job.TaskGroups[0].Tasks",
            ),
            (
                json!({"job": {"TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t"}]}]}}),
                "spec.job.TaskGroups[0].Tasks[0].Driver",
            ),
            (
                json!({"job": {"TaskGroups": [{"Name": "g", "Count": -1, "Tasks": [{"Name": "t", "Driver": "d"}]}]}}),
                "spec.job.TaskGroups[0].Count",
            ),
            (
                json!({"job": {"Type": "cron", "TaskGroups": []}}),
                "spec.job.Type",
            ),
            (
                json!({"job": valid_job(), "jobID": "has space"}),
                "spec.jobID",
            ),
            (
                json!({"job": valid_job(), "jobID": "web/evaluate"}),
                "spec.jobID",
            ),
            (
                json!({"job": valid_job(), "jobID": "x/summary"}),
                "spec.jobID",
            ),
            (json!({"job": valid_job(), "jobID": "a/../b"}), "spec.jobID"),
            (json!({"job": valid_job(), "jobID": "a//b"}), "spec.jobID"),
            (json!({"job": valid_job(), "jobID": "/web"}), "spec.jobID"),
        ];
        for (spec, field) in cases {
            let err =
                render(&object(spec.clone()), &Defaults::default()).expect_err(&spec.to_string());
            assert_eq!(err.field, field, "{spec}: {err}");
        }
        for fine in ["team/web", "web.v2", "evaluate", "web-plan"] {
            let spec = json!({"job": valid_job(), "jobID": fine});
            assert!(
                render(&object(spec), &Defaults::default()).is_ok(),
                "{fine} is a fine job ID"
            );
        }
        let err = render(
            &object(json!({"job": {"taskGroups": []}})),
            &Defaults::default(),
        )
        .expect_err("camelCase");
        assert!(err.message.contains("PascalCase"), "{err}");
        let mut job = valid_job();
        job["Meta"] = json!({"n": 1});
        let err = render(&object(json!({"job": job})), &Defaults::default()).expect_err("meta");
        assert_eq!(err.to_string(), "spec.job.Meta.n: must be a string");
    }

    #[test]
    fn nulls_are_absent_fields_as_nomads_parse_sends_them() {
        let job = json!({"Type": null, "Meta": null, "Namespace": null, "Name": null,
            "TaskGroups": [{"Name": "g", "Count": null, "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]});
        let desired = render(&object(json!({"job": job})), &Defaults::default()).expect("valid");
        assert_eq!(desired.job["Name"], "web");
        assert_eq!(desired.job["Namespace"], "default");
    }

    #[test]
    fn exactly_one_of_job_and_hcl() {
        let both = object(json!({"job": valid_job(), "hcl": "job \"web\" {}"}));
        assert!(
            json_job(&both)
                .expect_err("both")
                .message
                .contains("exactly one")
        );
        let neither = object(json!({"suspend": true}));
        assert!(
            json_job(&neither)
                .expect_err("neither")
                .message
                .contains("set exactly one")
        );
        let hcl = object(json!({"hcl": "job \"web\" {}"}));
        assert_eq!(json_job(&hcl), Ok(None), "the job comes from Nomad's parse");
    }

    #[test]
    fn digest_changes_with_the_job_and_with_the_retry_annotation_only() {
        let a = render(&object(json!({"job": valid_job()})), &Defaults::default()).expect("valid");
        let same = render(
            &object(json!({"job": valid_job(), "suspend": true})),
            &Defaults::default(),
        )
        .expect("valid");
        assert_eq!(
            a.digest, same.digest,
            "fields outside the job do not change the digest"
        );
        let mut retried = object(json!({"job": valid_job()}));
        retried.metadata.annotations =
            Some([(RETRY_ANNOTATION.to_string(), "1".to_string())].into());
        let retried = render(&retried, &Defaults::default()).expect("valid");
        assert_ne!(a.digest, retried.digest);
        let mut job = valid_job();
        job["Priority"] = json!(70);
        let changed = render(&object(json!({"job": job})), &Defaults::default()).expect("valid");
        assert_ne!(a.digest, changed.digest);
    }
}
