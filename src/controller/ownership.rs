//! Who owns a Nomad job: this object, another `NomadJob`, or nobody the operator knows
//! (pure).
//!
//! The rule: a job is this object's when its `Meta` names this object (namespace and
//! name), or, when its `Meta` names no object, when the object's status records the job's
//! `CreateIndex` (the operator registered it, or adopted it, and the job was not purged
//! and created anew since: a job keeps its `CreateIndex` over all its versions, hand-run
//! ones included), or when the object asks to adopt it (`spec.adopt`). A job whose `Meta`
//! names another object is never this object's.

use super::observe::JobView;

/// The relation between a `NomadJob` and the Nomad job with its ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// There is no such job in Nomad.
    Absent,
    /// The job was registered for this object (same namespace and name).
    Ours,
    /// The job belongs to another `NomadJob`.
    OwnedBy {
        /// Namespace of the other object.
        namespace: String,
        /// Name of the other object.
        name: String,
    },
    /// The job was created outside the operator.
    Foreign,
}

/// What the object knows of the job besides its `Meta`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    /// The job's `CreateIndex` as the object's status records it.
    pub recorded_create_index: Option<u64>,
    /// `spec.adopt`: take over a job that names no owner.
    pub adopt: bool,
}

impl Ownership {
    /// A message for the `Conflict` condition and Event, or `None` when the job may be
    /// written.
    pub fn conflict_message(&self, job_id: &str) -> Option<String> {
        match self {
            Self::Absent | Self::Ours => None,
            Self::OwnedBy { namespace, name } => Some(format!(
                "Nomad job {job_id:?} belongs to NomadJob {namespace}/{name}; it is left untouched. Give this object another spec.jobID, or delete one of the two"
            )),
            Self::Foreign => Some(format!(
                "Nomad job {job_id:?} exists but was not created by nomad-operator; it is left untouched. Choose another spec.jobID, or stop and purge the existing job in Nomad to let the operator create it"
            )),
        }
    }
}

/// Classifies the existing Nomad job (if any) relative to the object `namespace/name`,
/// by the owner its `Meta` records and the object's `claim`.
pub fn ownership(
    existing: Option<&JobView>,
    namespace: &str,
    name: &str,
    claim: Claim,
) -> Ownership {
    let Some(job) = existing else {
        return Ownership::Absent;
    };
    match &job.owner {
        Some((ns, n)) if ns == namespace && n == name => Ownership::Ours,
        Some((ns, n)) => Ownership::OwnedBy {
            namespace: ns.clone(),
            name: n.clone(),
        },
        None if claim.recorded_create_index == Some(job.create_index) || claim.adopt => {
            Ownership::Ours
        }
        None => Ownership::Foreign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ownership(job: Option<&JobView>, namespace: &str, name: &str) -> Ownership {
        super::ownership(job, namespace, name, Claim::default())
    }

    #[test]
    fn a_job_without_owner_keys_is_ours_by_the_status_record_or_by_adoption_only() {
        use crate::crd::{META_OWNER_NAME, META_OWNER_NAMESPACE};
        let hand_run = JobView::parse(&json!({"CreateIndex": 40, "Meta": {"team": "a"}}));
        let recorded = |index| Claim {
            recorded_create_index: Some(index),
            adopt: false,
        };
        let adopt = Claim {
            recorded_create_index: None,
            adopt: true,
        };
        let own = |job, claim| super::ownership(Some(job), "a", "web", claim);
        assert_eq!(own(&hand_run, recorded(40)), Ownership::Ours);
        assert_eq!(
            own(&hand_run, recorded(12)),
            Ownership::Foreign,
            "purged and created anew"
        );
        assert_eq!(own(&hand_run, Claim::default()), Ownership::Foreign);
        assert_eq!(own(&hand_run, adopt), Ownership::Ours);
        let other = JobView::parse(&json!({
            "CreateIndex": 40,
            "Meta": {META_OWNER_NAMESPACE: "b", META_OWNER_NAME: "x"}
        }));
        assert!(
            matches!(own(&other, recorded(40)), Ownership::OwnedBy { .. }),
            "never another object's job"
        );
        assert!(matches!(own(&other, adopt), Ownership::OwnedBy { .. }));
    }

    #[test]
    fn classifies_by_owner_meta() {
        use crate::crd::{META_OWNER_NAME, META_OWNER_NAMESPACE};
        let view = |job: serde_json::Value| JobView::parse(&job);
        assert_eq!(ownership(None, "a", "web"), Ownership::Absent);
        let ours =
            view(json!({"Meta": {META_OWNER_NAMESPACE: "a", META_OWNER_NAME: "web", "x": "y"}}));
        assert_eq!(ownership(Some(&ours), "a", "web"), Ownership::Ours);
        assert_eq!(
            ownership(Some(&ours), "b", "web"),
            Ownership::OwnedBy {
                namespace: "a".into(),
                name: "web".into()
            }
        );
        assert_eq!(
            ownership(Some(&view(json!({"Meta": null}))), "a", "web"),
            Ownership::Foreign
        );
        assert_eq!(
            ownership(Some(&view(json!({"ID": "web"}))), "a", "web"),
            Ownership::Foreign
        );
    }

    #[test]
    fn conflict_messages_say_what_to_do() {
        assert_eq!(Ownership::Ours.conflict_message("web"), None);
        let other = Ownership::OwnedBy {
            namespace: "a".into(),
            name: "x".into(),
        };
        assert!(
            other
                .conflict_message("web")
                .unwrap_or_default()
                .contains("NomadJob a/x")
        );
        assert!(
            Ownership::Foreign
                .conflict_message("web")
                .unwrap_or_default()
                .contains("not created by nomad-operator")
        );
    }
}
