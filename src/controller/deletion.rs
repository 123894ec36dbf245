//! What deleting a `NomadJob` does to its Nomad job (pure).

use crate::crd::DeletionPolicy;

use super::observe::JobView;
use super::ownership::Ownership;

/// What the cleanup of a deleted object does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Leave the job running, for the reason given.
    Orphan(&'static str),
    /// Nothing to do: the job is gone, not this object's, or already stopped.
    Nothing,
    /// Deregister (stop) the job.
    Stop,
    /// Deregister and purge the job.
    Purge,
}

/// Decides the cleanup from the policy, `spec.suspend`, the job as Nomad has it, and
/// who owns it. Only a job Nomad says is this object's is ever stopped or purged.
pub fn deletion(
    policy: DeletionPolicy,
    suspended: bool,
    job: Option<&JobView>,
    owned: &Ownership,
) -> Deletion {
    if suspended {
        return Deletion::Orphan("the object is suspended");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_running_job_is_stopped_and_only_ours_is_purged() {
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
        type Row<'a> = (
            &'a str,
            DeletionPolicy,
            bool,
            Option<&'a JobView>,
            &'a Ownership,
            Deletion,
        );
        let rows: [Row; 9] = [
            (
                "deregister ours",
                Deregister,
                false,
                Some(&running),
                &Ownership::Ours,
                Deletion::Stop,
            ),
            (
                "purge ours",
                Purge,
                false,
                Some(&running),
                &Ownership::Ours,
                Deletion::Purge,
            ),
            (
                "purge ours, stopped",
                Purge,
                false,
                Some(&stopped),
                &Ownership::Ours,
                Deletion::Purge,
            ),
            (
                "already stopped",
                Deregister,
                false,
                Some(&stopped),
                &Ownership::Ours,
                Deletion::Nothing,
            ),
            (
                "gone already",
                Deregister,
                false,
                None,
                &Ownership::Absent,
                Deletion::Nothing,
            ),
            (
                "another object's",
                Purge,
                false,
                Some(&running),
                &other,
                Deletion::Nothing,
            ),
            (
                "made outside",
                Deregister,
                false,
                Some(&running),
                &Ownership::Foreign,
                Deletion::Nothing,
            ),
            (
                "orphan",
                Orphan,
                false,
                Some(&running),
                &Ownership::Ours,
                Deletion::Orphan("deletionPolicy is Orphan"),
            ),
            (
                "suspended",
                Purge,
                true,
                Some(&running),
                &Ownership::Ours,
                Deletion::Orphan("the object is suspended"),
            ),
        ];
        for (name, policy, suspended, job, owned, want) in rows {
            assert_eq!(deletion(policy, suspended, job, owned), want, "{name}");
        }
    }
}
