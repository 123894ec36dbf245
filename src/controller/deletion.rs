//! What deleting a `NomadJob` does to its Nomad job (pure).

use std::collections::BTreeMap;

use crate::crd::{DELETION_PROTECTION_ANNOTATION, DeletionPolicy};

use super::observe::JobView;
use super::ownership::Ownership;

/// What the cleanup of a deleted object does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Leave the job running, for the reason given, and let the object go.
    Orphan(&'static str),
    /// Nothing to do: the job is gone, not this object's, or already stopped.
    Nothing,
    /// Deregister (stop) the job.
    Stop,
    /// Deregister and purge the job.
    Purge,
    /// Deletion protection is on: leave the job running and keep the object's finalizer
    /// until the protection is lifted. The message says how.
    Refused(String),
}

/// What can hold back a deletion besides the policy and the job itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guards {
    /// The `NomadJob` CRD is being deleted (or is gone): the operator is being
    /// uninstalled, so every job is left running
    /// ([`crd_terminating`](super::crd_presence::crd_terminating)).
    pub crd_terminating: bool,
    /// The object's Nomad job is protected from deletion ([`protected`]): a deletion that
    /// would stop or purge it is refused instead.
    pub protected: bool,
}

/// Whether deleting an object may not stop or purge its Nomad job: its
/// `nomadoperator.dev/deletion-protection` annotation is `"true"` (protected) or `"false"`
/// (not protected); absent or any other value, the operator's `--deletion-protection`
/// (`operator_default`) decides.
pub fn protected(annotations: Option<&BTreeMap<String, String>>, operator_default: bool) -> bool {
    match annotations
        .and_then(|a| a.get(DELETION_PROTECTION_ANNOTATION))
        .map(String::as_str)
    {
        Some("true") => true,
        Some("false") => false,
        _ => operator_default,
    }
}

/// Decides the cleanup from the policy, `spec.suspend`, the job as Nomad has it, who owns
/// it, and the [`Guards`]. Only a job Nomad says is this object's is ever stopped or
/// purged, and then only when it is not protected; while the CRD is being deleted, no job
/// is (and protection never keeps the finalizer, so the CRD's deletion can finish).
pub fn deletion(
    policy: DeletionPolicy,
    suspended: bool,
    job: Option<&JobView>,
    owned: &Ownership,
    guards: Guards,
) -> Deletion {
    if suspended {
        return Deletion::Orphan("the object is suspended");
    }
    if guards.crd_terminating {
        return Deletion::Orphan("the NomadJob CRD is being deleted");
    }
    match unguarded(policy, job, owned) {
        Deletion::Stop if guards.protected => Deletion::Refused(refusal("stopped")),
        Deletion::Purge if guards.protected => Deletion::Refused(refusal("purged")),
        other => other,
    }
}

/// The decision from the policy, the job and its owner alone.
fn unguarded(policy: DeletionPolicy, job: Option<&JobView>, owned: &Ownership) -> Deletion {
    if policy == DeletionPolicy::Orphan {
        return Deletion::Orphan("deletionPolicy is Orphan");
    }
    let Some(job) = job else {
        return Deletion::Nothing;
    };
    if *owned != Ownership::Ours {
        return Deletion::Nothing;
    }
    match policy {
        DeletionPolicy::Purge => Deletion::Purge,
        _ if job.stop => Deletion::Nothing,
        _ => Deletion::Stop,
    }
}

/// Why a protected job is not `what` (stopped, purged), and how to let the deletion go on.
fn refusal(what: &str) -> String {
    format!(
        "deletion protection is on ({DELETION_PROTECTION_ANNOTATION} is \"true\", or the operator runs with --deletion-protection): the Nomad job is left running instead of being {what}, and the object stays until the annotation is set to \"false\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_running_unprotected_job_is_stopped_or_purged_and_never_while_the_crd_goes() {
        let running = JobView::default();
        let stopped = JobView {
            stop: true,
            ..JobView::default()
        };
        let other = Ownership::OwnedBy {
            namespace: "a".into(),
            name: "b".into(),
        };
        use DeletionPolicy::{Deregister, Orphan, Purge};
        let none = Guards::default();
        let crd_gone = Guards {
            crd_terminating: true,
            protected: false,
        };
        let guarded = Guards {
            crd_terminating: false,
            protected: true,
        };
        let both = Guards {
            crd_terminating: true,
            protected: true,
        };
        let crd = Deletion::Orphan("the NomadJob CRD is being deleted");
        let refused_stop = Deletion::Refused(refusal("stopped"));
        let refused_purge = Deletion::Refused(refusal("purged"));
        type Row<'a> = (
            &'a str,
            DeletionPolicy,
            bool,
            Option<&'a JobView>,
            &'a Ownership,
            Guards,
            Deletion,
        );
        let rows: [Row; 27] = [
            // No guards: the policy, the job and its owner decide.
            (
                "deregister ours",
                Deregister,
                false,
                Some(&running),
                &Ownership::Ours,
                none,
                Deletion::Stop,
            ),
            (
                "purge ours",
                Purge,
                false,
                Some(&running),
                &Ownership::Ours,
                none,
                Deletion::Purge,
            ),
            (
                "purge ours, stopped",
                Purge,
                false,
                Some(&stopped),
                &Ownership::Ours,
                none,
                Deletion::Purge,
            ),
            (
                "already stopped",
                Deregister,
                false,
                Some(&stopped),
                &Ownership::Ours,
                none,
                Deletion::Nothing,
            ),
            (
                "gone already",
                Deregister,
                false,
                None,
                &Ownership::Absent,
                none,
                Deletion::Nothing,
            ),
            (
                "another object's",
                Purge,
                false,
                Some(&running),
                &other,
                none,
                Deletion::Nothing,
            ),
            (
                "made outside",
                Deregister,
                false,
                Some(&running),
                &Ownership::Foreign,
                none,
                Deletion::Nothing,
            ),
            (
                "orphan",
                Orphan,
                false,
                Some(&running),
                &Ownership::Ours,
                none,
                Deletion::Orphan("deletionPolicy is Orphan"),
            ),
            (
                "suspended",
                Purge,
                true,
                Some(&running),
                &Ownership::Ours,
                none,
                Deletion::Orphan("the object is suspended"),
            ),
            // The CRD is going: nothing is stopped, purged or refused.
            (
                "crd: deregister ours",
                Deregister,
                false,
                Some(&running),
                &Ownership::Ours,
                crd_gone,
                crd.clone(),
            ),
            (
                "crd: purge ours",
                Purge,
                false,
                Some(&running),
                &Ownership::Ours,
                crd_gone,
                crd.clone(),
            ),
            (
                "crd: gone already",
                Deregister,
                false,
                None,
                &Ownership::Absent,
                crd_gone,
                crd.clone(),
            ),
            (
                "crd: orphan policy",
                Orphan,
                false,
                Some(&running),
                &Ownership::Ours,
                crd_gone,
                crd.clone(),
            ),
            (
                "crd: suspended says so first",
                Purge,
                true,
                Some(&running),
                &Ownership::Ours,
                crd_gone,
                Deletion::Orphan("the object is suspended"),
            ),
            (
                "crd: protected, purge ours",
                Purge,
                false,
                Some(&running),
                &Ownership::Ours,
                both,
                crd.clone(),
            ),
            (
                "crd: protected, deregister ours",
                Deregister,
                false,
                Some(&running),
                &Ownership::Ours,
                both,
                crd.clone(),
            ),
            // Protected: a stop or purge is refused; nothing else changes.
            (
                "protected: deregister ours",
                Deregister,
                false,
                Some(&running),
                &Ownership::Ours,
                guarded,
                refused_stop.clone(),
            ),
            (
                "protected: purge ours",
                Purge,
                false,
                Some(&running),
                &Ownership::Ours,
                guarded,
                refused_purge.clone(),
            ),
            (
                "protected: purge ours, stopped",
                Purge,
                false,
                Some(&stopped),
                &Ownership::Ours,
                guarded,
                refused_purge.clone(),
            ),
            (
                "protected: already stopped",
                Deregister,
                false,
                Some(&stopped),
                &Ownership::Ours,
                guarded,
                Deletion::Nothing,
            ),
            (
                "protected: gone already",
                Deregister,
                false,
                None,
                &Ownership::Absent,
                guarded,
                Deletion::Nothing,
            ),
            (
                "protected: gone already, purge",
                Purge,
                false,
                None,
                &Ownership::Absent,
                guarded,
                Deletion::Nothing,
            ),
            (
                "protected: another object's",
                Purge,
                false,
                Some(&running),
                &other,
                guarded,
                Deletion::Nothing,
            ),
            (
                "protected: made outside",
                Deregister,
                false,
                Some(&running),
                &Ownership::Foreign,
                guarded,
                Deletion::Nothing,
            ),
            (
                "protected: made outside, purge",
                Purge,
                false,
                Some(&running),
                &Ownership::Foreign,
                guarded,
                Deletion::Nothing,
            ),
            (
                "protected: orphan policy",
                Orphan,
                false,
                Some(&running),
                &Ownership::Ours,
                guarded,
                Deletion::Orphan("deletionPolicy is Orphan"),
            ),
            (
                "protected: suspended",
                Purge,
                true,
                Some(&running),
                &Ownership::Ours,
                guarded,
                Deletion::Orphan("the object is suspended"),
            ),
        ];
        for (name, policy, suspended, job, owned, guards, want) in rows {
            assert_eq!(
                deletion(policy, suspended, job, owned, guards),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn a_refusal_says_what_was_held_back_and_how_to_lift_it() {
        let Deletion::Refused(why) = deletion(
            DeletionPolicy::Purge,
            false,
            Some(&JobView::default()),
            &Ownership::Ours,
            Guards {
                crd_terminating: false,
                protected: true,
            },
        ) else {
            panic!("not refused");
        };
        for part in [
            "nomadoperator.dev/deletion-protection is \"true\"",
            "--deletion-protection",
            "left running instead of being purged",
            "set to \"false\"",
        ] {
            assert!(why.contains(part), "{part:?} missing from {why:?}");
        }
    }

    #[test]
    fn the_annotation_overrides_the_operator_default_only_when_true_or_false() {
        let with = |value: &str| {
            BTreeMap::from([(
                DELETION_PROTECTION_ANNOTATION.to_string(),
                value.to_string(),
            )])
        };
        let unrelated = BTreeMap::from([("example.com/x".to_string(), "true".to_string())]);
        type Row<'a> = (&'a str, Option<BTreeMap<String, String>>, bool, bool);
        let rows: [Row; 12] = [
            ("no annotations, default off", None, false, false),
            ("no annotations, default on", None, true, true),
            (
                "other annotations only",
                Some(unrelated.clone()),
                false,
                false,
            ),
            (
                "other annotations only, default on",
                Some(unrelated),
                true,
                true,
            ),
            ("true", Some(with("true")), false, true),
            ("true, default on", Some(with("true")), true, true),
            ("false lifts the default", Some(with("false")), true, false),
            ("false", Some(with("false")), false, false),
            ("empty", Some(with("")), true, true),
            ("not exactly true", Some(with("True")), false, false),
            ("not exactly false", Some(with("no")), true, true),
            ("padded", Some(with(" false")), true, true),
        ];
        for (name, annotations, operator_default, want) in rows {
            assert_eq!(
                protected(annotations.as_ref(), operator_default),
                want,
                "{name}"
            );
        }
    }
}
