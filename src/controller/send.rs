//! The job as sent to Nomad (pure): the rendered job, with the owner keys the live job
//! calls for and the task group counts that belong to someone else.
//!
//! Owner keys in `Meta` reach the tasks' environment, so adding or changing one restarts
//! every allocation. They are written when the operator creates the job, and kept as the
//! live job has them (the owner UID of older operators included); a job taken over by
//! adoption, or re-run by hand without them, is not given them back (the operator proves
//! it owns such a job from its status, see [`super::ownership`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::crd::{META_DISPATCH_UID, META_OWNER_NAME, META_OWNER_NAMESPACE, META_OWNER_UID};

use super::counts::{CountChoice, keep_live_counts, spec_counts};
use super::observe::JobView;
use super::render::DesiredJob;

/// What a plan or a register sends.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// The job.
    pub job: Value,
    /// The count decisions for groups whose count belongs to someone else.
    pub counts: Vec<CountChoice>,
    /// The spec's counts of those groups, recorded when the job is registered.
    pub spec_counts: BTreeMap<String, u64>,
}

/// The job to plan or register for `desired`, given the live job (`None` when absent),
/// the counts recorded at the last register, `spec.preserveCounts`, and the owning
/// object (namespace, name).
pub fn job_to_send(
    desired: &DesiredJob,
    live: Option<&JobView>,
    applied_counts: &BTreeMap<String, u64>,
    preserve_counts: bool,
    owner: (&str, &str),
) -> Sent {
    let mut job = desired.job.clone();
    if let Some(fields) = job.as_object_mut() {
        let mut meta = match fields.remove("Meta") {
            Some(Value::Object(meta)) => meta,
            _ => Map::new(),
        };
        let write_keys = live.is_none_or(|j| j.owner.is_some());
        if write_keys {
            meta.insert(META_OWNER_NAMESPACE.into(), owner.0.into());
            meta.insert(META_OWNER_NAME.into(), owner.1.into());
        }
        if let Some(uid) = live.and_then(|j| j.owner_uid.as_ref()) {
            meta.insert(META_OWNER_UID.into(), uid.as_str().into());
        }
        if !meta.is_empty() {
            fields.insert("Meta".into(), Value::Object(meta));
        }
        allow_dispatch_uid(fields);
    }
    let live_counts = live.map(|j| &j.group_counts);
    let counts = keep_live_counts(&mut job, live_counts, applied_counts, preserve_counts);
    Sent {
        spec_counts: spec_counts(&desired.job, preserve_counts),
        job,
        counts,
    }
}

/// Lets a dispatch of a parameterized job carry the `NomadDispatch`'s UID in its meta:
/// adds [`META_DISPATCH_UID`] to `ParameterizedJob.MetaOptional`. A parameterized job
/// has no allocations of its own, so this restarts nothing.
fn allow_dispatch_uid(job: &mut Map<String, Value>) {
    let Some(Value::Object(parameterized)) = job.get_mut("ParameterizedJob") else {
        return;
    };
    let optional = parameterized
        .entry("MetaOptional")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !optional.is_array() {
        *optional = Value::Array(Vec::new());
    }
    if let Value::Array(keys) = optional
        && !keys.iter().any(|k| k == META_DISPATCH_UID)
    {
        keys.push(META_DISPATCH_UID.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(job: Value) -> DesiredJob {
        DesiredJob {
            id: "web".into(),
            namespace: "default".into(),
            region: None,
            job,
            digest: "sha256:x".into(),
        }
    }

    fn meta(sent: &Sent) -> Value {
        sent.job.get("Meta").cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn a_new_job_gets_the_owner_keys_without_a_uid() {
        let d = desired(json!({"Meta": {"team": "a"}, "TaskGroups": []}));
        let sent = job_to_send(&d, None, &BTreeMap::new(), false, ("ns", "web"));
        assert_eq!(
            meta(&sent),
            json!({"team": "a", META_OWNER_NAMESPACE: "ns", META_OWNER_NAME: "web"})
        );
    }

    #[test]
    fn a_live_job_keeps_its_owner_keys_and_uid_and_one_without_them_gets_none() {
        let d = desired(json!({"TaskGroups": []}));
        let with_keys = JobView {
            owner: Some(("ns".into(), "web".into())),
            owner_uid: Some("uid-1".into()),
            ..JobView::default()
        };
        let sent = job_to_send(&d, Some(&with_keys), &BTreeMap::new(), false, ("ns", "web"));
        assert_eq!(
            meta(&sent),
            json!({META_OWNER_NAMESPACE: "ns", META_OWNER_NAME: "web", META_OWNER_UID: "uid-1"})
        );
        let adopted = JobView::default();
        let sent = job_to_send(&d, Some(&adopted), &BTreeMap::new(), false, ("ns", "web"));
        assert_eq!(
            meta(&sent),
            Value::Null,
            "no Meta at all: nothing to restart"
        );
    }

    #[test]
    fn a_parameterized_job_allows_the_dispatch_uid_once() {
        let d = desired(json!({"ParameterizedJob": {"MetaOptional": ["a"]}, "TaskGroups": []}));
        let sent = job_to_send(&d, None, &BTreeMap::new(), false, ("ns", "web"));
        assert_eq!(
            sent.job["ParameterizedJob"]["MetaOptional"],
            json!(["a", META_DISPATCH_UID])
        );
        let d = desired(json!({"ParameterizedJob": {"MetaOptional": null}, "TaskGroups": []}));
        let sent = job_to_send(&d, None, &BTreeMap::new(), false, ("ns", "web"));
        assert_eq!(
            sent.job["ParameterizedJob"]["MetaOptional"],
            json!([META_DISPATCH_UID])
        );
        let plain = desired(json!({"TaskGroups": []}));
        let sent = job_to_send(&plain, None, &BTreeMap::new(), false, ("ns", "web"));
        assert!(sent.job.get("ParameterizedJob").is_none());
    }

    #[test]
    fn a_scaled_groups_live_count_is_sent() {
        let d = desired(json!({"TaskGroups": [{"Name": "g", "Count": 1, "Scaling": {"Max": 5}}]}));
        let live = JobView {
            owner: Some(("ns".into(), "web".into())),
            group_counts: [("g".to_string(), 3)].into(),
            ..JobView::default()
        };
        let applied = [("g".to_string(), 1)].into();
        let sent = job_to_send(&d, Some(&live), &applied, false, ("ns", "web"));
        assert_eq!(sent.job["TaskGroups"][0]["Count"], 3);
        assert_eq!(sent.spec_counts, [("g".to_string(), 1)].into());
    }
}
