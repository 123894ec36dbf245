//! Canary deployments (pure): how far a deployment's canaries are, and whether the
//! operator promotes them now.

use crate::crd::{CanaryStatus, Promote};
use crate::nomad::Deployment;

use super::report::short_id;

/// The canaries of a deployment, over the task groups that have any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canaries {
    /// What the status shows.
    pub status: CanaryStatus,
    /// Every group has all its canaries placed and healthy.
    pub all_healthy: bool,
    /// Every group with canaries promotes itself (`auto_promote`).
    pub nomad_promotes: bool,
}

/// The canaries of `deployment`; `None` when no task group has any.
pub fn canaries(deployment: &Deployment) -> Option<Canaries> {
    let groups: Vec<_> = deployment
        .task_groups
        .values()
        .filter(|g| g.desired_canaries > 0)
        .collect();
    if groups.is_empty() {
        return None;
    }
    let placed = |g: &&crate::nomad::DeploymentState| g.placed_canaries.len() as u64;
    // Before a promotion only canaries are placed in the deployment, so its healthy
    // allocations are healthy canaries; after it, the canaries were all healthy.
    let healthy = |g: &&crate::nomad::DeploymentState| {
        if g.promoted {
            placed(g)
        } else {
            g.healthy_allocs.min(placed(g))
        }
    };
    Some(Canaries {
        status: CanaryStatus {
            deployment_id: deployment.id.clone(),
            desired: groups.iter().map(|g| g.desired_canaries).sum(),
            placed: groups.iter().map(placed).sum(),
            healthy: groups.iter().map(healthy).sum(),
            promoted: groups.iter().all(|g| g.promoted),
        },
        all_healthy: groups
            .iter()
            .all(|g| placed(g) >= g.desired_canaries && healthy(g) >= g.desired_canaries),
        nomad_promotes: groups.iter().all(|g| g.auto_promote),
    })
}

/// What to do about an active deployment's canaries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// The deployment has no canaries, or they are promoted.
    Nothing,
    /// The canaries wait (to be healthy, or for someone to promote them).
    Wait(String),
    /// Promote the deployment now.
    Promote {
        /// The deployment.
        deployment_id: String,
        /// Who asks, for the status and the Event.
        by: String,
    },
}

/// Whether to promote `deployment` (active, of the applied version) under `promote`;
/// `request` is a new value of the promote annotation, if there is one.
pub fn promotion(deployment: &Deployment, promote: Promote, request: Option<&str>) -> Promotion {
    let Some(c) = canaries(deployment) else {
        return Promotion::Nothing;
    };
    if c.status.promoted {
        return Promotion::Nothing;
    }
    let progress = format!(
        "{}/{} canaries of deployment {} healthy",
        c.status.healthy,
        c.status.desired,
        short_id(&deployment.id)
    );
    let by = match (request, promote) {
        (Some(value), _) => Some(format!(
            "the annotation {} (set to {value:?})",
            crate::crd::PROMOTE_ANNOTATION
        )),
        (None, Promote::Auto) => Some("spec.rollout.promote: Auto".to_string()),
        (None, Promote::Manual) => None,
    };
    match by {
        Some(by) if c.all_healthy => Promotion::Promote {
            deployment_id: deployment.id.clone(),
            by,
        },
        Some(by) => Promotion::Wait(format!(
            "{progress}; it is promoted when all are healthy, as asked by {by}"
        )),
        None if c.nomad_promotes => Promotion::Wait(format!(
            "{progress}; the job's auto_promote promotes them when all are healthy"
        )),
        None if c.all_healthy => Promotion::Wait(format!(
            "{progress}: waiting to be promoted. Set a new value of the annotation {} (kubectl annotate --overwrite nj NAME {}=$(date +%s)), or set spec.rollout.promote to Auto",
            crate::crd::PROMOTE_ANNOTATION,
            crate::crd::PROMOTE_ANNOTATION
        )),
        None => Promotion::Wait(format!(
            "{progress}; once they are, set a new value of the annotation {} to promote them (spec.rollout.promote is Manual)",
            crate::crd::PROMOTE_ANNOTATION
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::DeploymentState;

    fn deployment(groups: &[(&str, u64, usize, u64, bool, bool)]) -> Deployment {
        let mut d = Deployment {
            id: "0123456789abcdef".into(),
            status: "running".into(),
            ..Deployment::default()
        };
        for (name, desired, placed, healthy, promoted, auto) in groups {
            d.task_groups.insert(
                name.to_string(),
                DeploymentState {
                    desired_canaries: *desired,
                    desired_total: 3,
                    placed_canaries: (0..*placed).map(|i| format!("c{i}")).collect(),
                    healthy_allocs: *healthy,
                    promoted: *promoted,
                    auto_promote: *auto,
                    ..DeploymentState::default()
                },
            );
        }
        d
    }

    #[test]
    fn canaries_count_over_the_groups_that_have_them() {
        let d = deployment(&[("a", 2, 2, 1, false, false), ("b", 0, 0, 3, false, false)]);
        let c = canaries(&d).expect("canaries");
        assert_eq!(
            (
                c.status.desired,
                c.status.placed,
                c.status.healthy,
                c.status.promoted
            ),
            (2, 2, 1, false)
        );
        assert!(!c.all_healthy);
        assert!(canaries(&deployment(&[("b", 0, 0, 3, false, false)])).is_none());
    }

    #[test]
    fn auto_promotes_only_when_every_group_is_healthy() {
        let waiting = deployment(&[("a", 1, 1, 1, false, false), ("b", 2, 2, 1, false, false)]);
        assert!(matches!(
            promotion(&waiting, Promote::Auto, None),
            Promotion::Wait(m) if m.contains("2/3 canaries") && m.contains("Auto")
        ));
        let ready = deployment(&[("a", 1, 1, 1, false, false), ("b", 2, 2, 2, false, false)]);
        assert_eq!(
            promotion(&ready, Promote::Auto, None),
            Promotion::Promote {
                deployment_id: "0123456789abcdef".into(),
                by: "spec.rollout.promote: Auto".into()
            }
        );
        let promoted = deployment(&[("a", 1, 1, 3, true, false)]);
        assert_eq!(
            promotion(&promoted, Promote::Auto, None),
            Promotion::Nothing
        );
    }

    #[test]
    fn manual_waits_for_a_new_annotation_value() {
        let ready = deployment(&[("a", 1, 1, 1, false, false)]);
        match promotion(&ready, Promote::Manual, None) {
            Promotion::Wait(m) => assert!(m.contains("waiting to be promoted"), "{m}"),
            other => panic!("{other:?}"),
        }
        match promotion(&ready, Promote::Manual, Some("1")) {
            Promotion::Promote { by, .. } => assert!(by.contains("\"1\""), "{by}"),
            other => panic!("{other:?}"),
        }
        let unhealthy = deployment(&[("a", 1, 1, 0, false, false)]);
        assert!(matches!(
            promotion(&unhealthy, Promote::Manual, Some("1")),
            Promotion::Wait(m) if m.contains("when all are healthy")
        ));
        let nomad = deployment(&[("a", 1, 1, 0, false, true)]);
        assert!(matches!(
            promotion(&nomad, Promote::Manual, None),
            Promotion::Wait(m) if m.contains("auto_promote")
        ));
    }
}
