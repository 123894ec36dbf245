//! The classification table: every state, with a row for each case that has bitten us.

use serde_json::json;

use super::*;
use crate::crd::{AnsweredRequests, PendingKind, PendingWrite, Promote};
use crate::nomad::{JobDiff, JobPlanResponse};

const DIGEST: &str = "sha256:new";
const OLD: &str = "sha256:old";

fn desired() -> Spec {
    Spec::Desired(DesiredJob {
        id: "web".into(),
        namespace: "default".into(),
        region: None,
        job: json!({"ID": "web"}),
        digest: DIGEST.into(),
    })
}

/// Our job at `version` with `JobModifyIndex` `index`.
fn job(version: u64, index: u64) -> JobView {
    JobView {
        version,
        job_modify_index: index,
        modify_index: index,
        stop: false,
        status: "running".into(),
        owner: Some(("team".into(), "web".into())),
        expects_deployment: true,
        ..JobView::default()
    }
}

fn dep(version: u64, create_index: u64, status: &str, description: &str) -> Deployment {
    Deployment {
        id: format!("dep-{version}-{create_index}"),
        job_version: version,
        create_index,
        status: status.into(),
        status_description: description.into(),
        ..Default::default()
    }
}

fn seen(job: Option<JobView>, deployments: Vec<Deployment>) -> Observed {
    Observed {
        job,
        deployments,
        ..Observed::default()
    }
}

/// A plan answer of `diff` at `index`; a difference shows as one field of that type.
fn plan_of(diff: DiffType, index: u64) -> Planned {
    Planned::new(JobPlanResponse {
        job_modify_index: index,
        diff: Some(JobDiff {
            r#type: diff,
            fields: match diff {
                DiffType::None => Vec::new(),
                _ => vec![crate::nomad::FieldDiff {
                    r#type: diff,
                    name: "Priority".into(),
                    ..Default::default()
                }],
            },
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn planned(o: Observed, diff: DiffType, index: u64) -> Observed {
    Observed {
        plan: Some(plan_of(diff, index)),
        ..o
    }
}

fn with_versions(o: Observed, versions: &[(u64, u64, bool)]) -> Observed {
    Observed {
        versions: Some(
            versions
                .iter()
                .map(|&(version, job_modify_index, stable)| VersionView {
                    version,
                    job_modify_index,
                    stable,
                })
                .collect(),
        ),
        ..o
    }
}

/// The memory of a spec `digest` applied as `version`, the job last seen at `index`.
fn applied(digest: &str, version: u64, index: u64) -> Memory {
    Memory {
        applied_digest: Some(digest.into()),
        applied_version: Some(version),
        seen_job_modify_index: Some(index),
        ..Memory::default()
    }
}

fn pending(kind: PendingKind, index: u64) -> PendingWrite {
    PendingWrite {
        kind,
        digest: DIGEST.into(),
        job_modify_index: index,
        from_version: Some(1),
        to_version: Some(0),
        reason: Some("Failed due to unhealthy allocations".into()),
        corrects_drift: false,
    }
}

fn failed(version: u64, description: &str) -> FailedDeployment {
    FailedDeployment {
        id: format!("dep-{version}-20"),
        version,
        description: description.into(),
    }
}

struct Row {
    name: &'static str,
    spec: Spec,
    observed: Option<Observed>,
    memory: Memory,
    progress: Progress,
    policy: Policy,
    state: JobState,
    step: Step,
}

fn row(name: &'static str, observed: Option<Observed>, memory: Memory) -> Row {
    Row {
        name,
        spec: desired(),
        observed,
        memory,
        progress: Progress::default(),
        policy: Policy {
            drift: DriftPolicy::Correct,
            revert_on_failure: true,
            ..Policy::default()
        },
        state: JobState::Unobserved,
        step: Step::Done,
    }
}

impl Row {
    fn expect(mut self, state: JobState, step: Step) -> Self {
        self.state = state;
        self.step = step;
        self
    }
    fn spec(mut self, spec: Spec) -> Self {
        self.spec = spec;
        self
    }
    fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
    fn report_drift(mut self) -> Self {
        self.policy.drift = DriftPolicy::Report;
        self
    }
    fn no_revert(mut self) -> Self {
        self.policy.revert_on_failure = false;
        self
    }
    fn promote(mut self, promote: Promote, annotation: Option<&str>) -> Self {
        self.policy.promote = promote;
        self.policy.requests.promote = annotation.map(str::to_string);
        self
    }
    fn launch(mut self, annotation: &str) -> Self {
        self.policy.requests.force_launch = Some(annotation.to_string());
        self
    }
}

/// Version 2 of our job rolling out with one canary, `healthy` of it healthy.
fn canary_release(healthy: u64, promoted: bool) -> Observed {
    let mut rollout = dep(
        2,
        30,
        "running",
        "Deployment is running but requires manual promotion",
    );
    rollout.id = "canary".into();
    rollout.task_groups.insert(
        "web".into(),
        crate::nomad::DeploymentState {
            desired_canaries: 1,
            desired_total: 2,
            placed_canaries: vec!["c1".into()],
            healthy_allocs: healthy,
            promoted,
            ..Default::default()
        },
    );
    seen(
        Some(job(2, 12)),
        vec![dep(1, 20, "successful", "done"), rollout],
    )
}

/// A periodic batch job of ours.
fn periodic_job() -> JobView {
    JobView {
        job_type: "batch".into(),
        expects_deployment: false,
        periodic: Some(json!({"Enabled": true, "Spec": "0 0 1 1 *"})),
        ..job(1, 10)
    }
}

const UNHEALTHY: &str = "Failed due to unhealthy allocations";
const AUTO_REVERTED: &str = "Failed due to unhealthy allocations - rolling back to job version 0";

fn register(cas_index: u64, corrects_drift: bool) -> Step {
    Step::Register {
        cas_index,
        corrects_drift,
    }
}

fn table() -> Vec<Row> {
    let running = || seen(Some(job(1, 10)), vec![dep(1, 20, "successful", "done")]);
    let failing = |description: &str| {
        seen(
            Some(job(1, 10)),
            vec![
                dep(0, 5, "successful", "done"),
                dep(1, 20, "failed", description),
            ],
        )
    };
    vec![
        row("suspended", None, Memory::default())
            .spec(Spec::Suspended)
            .expect(JobState::Suspended, Step::Done),
        row("invalid spec", None, Memory::default())
            .spec(Spec::Invalid("spec.job.ID: wrong".into()))
            .expect(
                JobState::Invalid {
                    message: "spec.job.ID: wrong".into(),
                },
                Step::Done,
            ),
        row("not read yet", None, Memory::default()).expect(JobState::Unobserved, Step::Observe),
        row("the job changed since it was read", Some(running()), applied(DIGEST, 1, 10))
            .progress(Progress {
                stale: true,
                ..Progress::default()
            })
            .expect(JobState::Stale, Step::Observe),
        row("absent, not planned", Some(seen(None, vec![])), Memory::default())
            .expect(JobState::NeedsPlan(PlanReason::Absent), Step::Plan),
        row(
            "absent, planned",
            Some(planned(seen(None, vec![]), DiffType::Added, 0)),
            Memory::default(),
        )
        .expect(JobState::Absent, register(0, false)),
        row("spec changed", Some(running()), applied(OLD, 1, 10))
            .expect(JobState::NeedsPlan(PlanReason::SpecChanged), Step::Plan),
        row(
            "spec changed, planned",
            Some(planned(running(), DiffType::Edited, 10)),
            applied(OLD, 1, 10),
        )
        .expect(JobState::OutOfSync { cas_index: 10 }, register(10, false)),
        row(
            "someone changed the job in Nomad",
            Some(running()),
            applied(DIGEST, 1, 7),
        )
        .expect(JobState::NeedsPlan(PlanReason::JobChanged), Step::Plan),
        row("resync due", Some(running()), applied(DIGEST, 1, 10))
            .progress(Progress {
                plan_due: true,
                ..Progress::default()
            })
            .expect(JobState::NeedsPlan(PlanReason::ResyncDue), Step::Plan),
        row(
            "plan due while a deployment is in progress",
            Some(seen(
                Some(job(1, 10)),
                vec![dep(1, 20, "running", "Deployment is running")],
            )),
            applied(DIGEST, 1, 10),
        )
        .progress(Progress {
            plan_due: true,
            ..Progress::default()
        })
        .expect(JobState::Deploying, Step::Done),
        row("at rest", Some(running()), applied(DIGEST, 1, 10)).expect(JobState::InSync, Step::Done),
        row(
            "planned, no difference",
            Some(planned(running(), DiffType::None, 10)),
            applied(DIGEST, 1, 10),
        )
        .expect(JobState::InSync, Step::Done),
        row(
            "drift, policy Correct",
            Some(planned(running(), DiffType::Edited, 10)),
            applied(DIGEST, 1, 10),
        )
        .expect(JobState::Drifted { cas_index: 10 }, register(10, true)),
        row(
            "drift, policy Report",
            Some(planned(running(), DiffType::Edited, 10)),
            applied(DIGEST, 1, 10),
        )
        .report_drift()
        .expect(JobState::DriftReported, Step::Done),
        row("drift reported before, nothing moved", Some(running()), Memory {
            unregistered_difference: true,
            ..applied(DIGEST, 1, 10)
        })
        .report_drift()
        .expect(JobState::DriftReported, Step::Done),
        // Bitten: the ownership check saw no job, but the job was created before the plan;
        // registering with the plan's index would overwrite it.
        row(
            "created between read and plan",
            Some(planned(seen(None, vec![]), DiffType::Edited, 44)),
            Memory::default(),
        )
        .expect(JobState::Stale, Step::Observe),
        row(
            "owned by another object",
            Some(seen(
                Some(JobView {
                    owner: Some(("team".into(), "other".into())),
                    ..job(1, 10)
                }),
                vec![],
            )),
            Memory::default(),
        )
        .expect(
            JobState::Conflict {
                message: "Nomad job \"web\" belongs to NomadJob team/other; it is left untouched. Give this object another spec.jobID, or delete one of the two".into(),
            },
            Step::Done,
        ),
        row(
            "created outside the operator",
            Some(seen(
                Some(JobView {
                    owner: None,
                    ..job(1, 10)
                }),
                vec![],
            )),
            Memory::default(),
        )
        .expect(
            JobState::Conflict {
                message: "Nomad job \"web\" exists but was not created by nomad-operator; it is left untouched. Choose another spec.jobID, or stop and purge the existing job in Nomad to let the operator create it".into(),
            },
            Step::Done,
        ),
        row(
            "deploying",
            Some(seen(Some(job(1, 10)), vec![dep(1, 20, "running", "Deployment is running")])),
            applied(DIGEST, 1, 10),
        )
        .expect(JobState::Deploying, Step::Done),
        row(
            "stopped in Nomad",
            Some(seen(
                Some(JobView {
                    stop: true,
                    ..job(1, 10)
                }),
                vec![],
            )),
            applied(DIGEST, 1, 10),
        )
        .expect(JobState::Stopped, Step::Done),
        row(
            "failed, Nomad auto-reverted",
            Some(failing(AUTO_REVERTED)),
            applied(DIGEST, 1, 10),
        )
        .expect(
            JobState::Failed(
                failed(1, AUTO_REVERTED),
                Answer::RevertedByNomad { to_version: 0 },
            ),
            Step::Record(Fact::FailureRecorded {
                failed: failed(1, AUTO_REVERTED),
                answer: Answer::RevertedByNomad { to_version: 0 },
            }),
        ),
        row("failed, revertOnFailure false", Some(failing(UNHEALTHY)), applied(DIGEST, 1, 10))
            .no_revert()
            .expect(
                JobState::Failed(failed(1, UNHEALTHY), Answer::RecordOnly),
                Step::Record(Fact::FailureRecorded {
                    failed: failed(1, UNHEALTHY),
                    answer: Answer::RecordOnly,
                }),
            ),
        row("failed, versions needed", Some(failing(UNHEALTHY)), applied(DIGEST, 1, 10))
            .expect(JobState::FailedNeedsVersions(failed(1, UNHEALTHY)), Step::ReadVersions),
        row(
            "failed, a stable version exists",
            Some(with_versions(failing(UNHEALTHY), &[(1, 10, false), (0, 5, true)])),
            applied(DIGEST, 1, 10),
        )
        .expect(
            JobState::Failed(
                failed(1, UNHEALTHY),
                Answer::Revert {
                    to_version: 0,
                    current_version: 1,
                },
            ),
            Step::Revert {
                failed: failed(1, UNHEALTHY),
                to_version: 0,
                current_version: 1,
            },
        ),
        row(
            "failed, no stable version",
            Some(with_versions(failing(UNHEALTHY), &[(1, 10, false), (0, 5, false)])),
            applied(DIGEST, 1, 10),
        )
        .expect(
            JobState::Failed(failed(1, UNHEALTHY), Answer::NoStableVersion),
            Step::Record(Fact::FailureRecorded {
                failed: failed(1, UNHEALTHY),
                answer: Answer::NoStableVersion,
            }),
        ),
        row(
            "failed, the job moved on since",
            Some(seen(Some(job(2, 12)), vec![dep(1, 20, "failed", UNHEALTHY)])),
            applied(DIGEST, 1, 12),
        )
        .expect(
            JobState::Failed(failed(1, UNHEALTHY), Answer::RecordOnly),
            Step::Record(Fact::FailureRecorded {
                failed: failed(1, UNHEALTHY),
                answer: Answer::RecordOnly,
            }),
        ),
        // Bitten: the failed spec must not be planned (and so registered) again, even
        // when the resync is due.
        row("holding the failed spec", Some(failing(UNHEALTHY)), Memory {
            failed_digest: Some(DIGEST.into()),
            ..applied(DIGEST, 1, 10)
        })
        .progress(Progress {
            plan_due: true,
            ..Progress::default()
        })
        .expect(JobState::HoldingFailedSpec, Step::Done),
        // Bitten: register -> crash -> Nomad auto-reverts (a new version past ours) -> the
        // plan looks like a change. The pending register is resolved from the versions:
        // the first version past the check-and-set index is ours.
        row(
            "a register before a crash, Nomad auto-reverted since: versions needed",
            Some(failing(AUTO_REVERTED)),
            Memory {
                pending: Some(pending(PendingKind::Register, 8)),
                ..applied(OLD, 0, 8)
            },
        )
        .expect(JobState::PendingNeedsVersions, Step::ReadVersions),
        row(
            "a register before a crash, Nomad auto-reverted since",
            Some(with_versions(
                seen(Some(job(2, 14)), vec![dep(1, 20, "failed", AUTO_REVERTED)]),
                &[(2, 14, false), (1, 10, false), (0, 5, true)],
            )),
            Memory {
                pending: Some(pending(PendingKind::Register, 8)),
                ..applied(OLD, 0, 8)
            },
        )
        .expect(
            JobState::PendingRegisterLanded { version: 1 },
            Step::Record(Fact::RegisterRecovered { version: 1 }),
        ),
        row("a register that did not happen", Some(running()), Memory {
            pending: Some(pending(PendingKind::Register, 10)),
            ..applied(OLD, 1, 10)
        })
        .expect(JobState::PendingNotLanded, Step::Record(Fact::PendingCleared)),
        // Bitten: revert -> crash lost `lastRevert` and reported NoStableVersion.
        row("a revert before a crash", Some(seen(Some(job(2, 12)), vec![])), Memory {
            pending: Some(pending(PendingKind::Revert, 10)),
            ..applied(DIGEST, 1, 10)
        })
        .expect(JobState::PendingRevertLanded, Step::Record(Fact::RevertRecovered)),
        row("a revert that did not happen", Some(failing(UNHEALTHY)), Memory {
            pending: Some(pending(PendingKind::Revert, 10)),
            ..applied(DIGEST, 1, 10)
        })
        .expect(JobState::PendingNotLanded, Step::Record(Fact::PendingCleared)),
        row("the job kept changing", Some(running()), applied(OLD, 1, 10))
            .progress(Progress {
                retries: CAS_ATTEMPTS,
                ..Progress::default()
            })
            .expect(JobState::KeptChanging, Step::Done),
        row(
            "registered in this reconcile: not planned twice",
            Some(seen(Some(job(2, 12)), vec![dep(1, 20, "successful", "done")])),
            applied(DIGEST, 2, 10),
        )
        .progress(Progress {
            registered: true,
            ..Progress::default()
        })
        .expect(JobState::Deploying, Step::Done),
        row(
            "canaries healthy under Auto: promote",
            Some(canary_release(1, false)),
            applied(DIGEST, 2, 12),
        )
        .promote(Promote::Auto, None)
        .expect(
            JobState::Promotable {
                deployment_id: "canary".into(),
                by: "spec.rollout.promote: Auto".into(),
                request: None,
            },
            Step::Promote {
                deployment_id: "canary".into(),
                by: "spec.rollout.promote: Auto".into(),
                request: None,
            },
        ),
        row(
            "canaries not healthy yet under Auto: wait",
            Some(canary_release(0, false)),
            applied(DIGEST, 2, 12),
        )
        .promote(Promote::Auto, None)
        .expect(
            JobState::AwaitingPromotion {
                message: "0/1 canaries of deployment canary healthy; it is promoted when all are healthy, as asked by spec.rollout.promote: Auto".into(),
            },
            Step::Done,
        ),
        row(
            "a promotion refused in this reconcile is not tried again",
            Some(canary_release(1, false)),
            applied(DIGEST, 2, 12),
        )
        .promote(Promote::Auto, None)
        .progress(Progress {
            promotion_tried: true,
            ..Progress::default()
        })
        .expect(JobState::Deploying, Step::Done),
        row(
            "a new promote annotation with healthy canaries: promote",
            Some(canary_release(1, false)),
            applied(DIGEST, 2, 12),
        )
        .promote(Promote::Manual, Some("2"))
        .expect(
            JobState::Promotable {
                deployment_id: "canary".into(),
                by: "the annotation nomadoperator.dev/promote (set to \"2\")".into(),
                request: Some("2".into()),
            },
            Step::Promote {
                deployment_id: "canary".into(),
                by: "the annotation nomadoperator.dev/promote (set to \"2\")".into(),
                request: Some("2".into()),
            },
        ),
        row(
            "the promote annotation already answered: wait for a person",
            Some(canary_release(1, false)),
            Memory {
                answered: AnsweredRequests {
                    promote: Some("2".into()),
                    ..AnsweredRequests::default()
                },
                ..applied(DIGEST, 2, 12)
            },
        )
        .promote(Promote::Manual, Some("2"))
        .expect(
            JobState::AwaitingPromotion {
                message: "1/1 canaries of deployment canary healthy: waiting to be promoted. Set a new value of the annotation nomadoperator.dev/promote (kubectl annotate --overwrite nj NAME nomadoperator.dev/promote=$(date +%s)), or set spec.rollout.promote to Auto".into(),
            },
            Step::Done,
        ),
        row(
            "a new promote annotation with nothing to promote is answered",
            Some(running()),
            applied(DIGEST, 1, 10),
        )
        .promote(Promote::Manual, Some("3"))
        .expect(
            JobState::NothingToPromote {
                request: "3".into(),
            },
            Step::Record(Fact::PromotionSkipped {
                request: Some("3".into()),
                why: "no deployment of this job waits for its canaries to be promoted".into(),
            }),
        ),
        row(
            "a new force-launch annotation on a periodic job: launch",
            Some(seen(Some(periodic_job()), vec![])),
            applied(DIGEST, 1, 10),
        )
        .launch("now")
        .expect(
            JobState::LaunchRequested {
                request: "now".into(),
                periodic: true,
            },
            Step::ForceLaunch {
                request: "now".into(),
            },
        ),
        row(
            "a force-launch annotation on a job that is not periodic is only answered",
            Some(running()),
            applied(DIGEST, 1, 10),
        )
        .launch("now")
        .expect(
            JobState::LaunchRequested {
                request: "now".into(),
                periodic: false,
            },
            Step::Record(Fact::LaunchSkipped {
                request: "now".into(),
                why: "the job is not periodic".into(),
            }),
        ),
        row(
            "drift left alone, then the policy became Correct",
            Some(running()),
            Memory {
                unregistered_difference: true,
                ..applied(DIGEST, 1, 10)
            },
        )
        .expect(JobState::NeedsPlan(PlanReason::JobChanged), Step::Plan),
    ]
}

#[test]
fn every_state_has_its_row_and_step() {
    let rows = table();
    for r in &rows {
        let state = classify(
            &r.spec,
            r.observed.as_ref(),
            &r.memory,
            &r.progress,
            &r.policy,
            ("team", "web"),
        );
        assert_eq!(state, r.state, "{}: state", r.name);
        assert_eq!(next_action(&state), r.step, "{}: step", r.name);
    }
    // Every state is named by at least one row.
    let names = |s: &JobState| {
        format!("{s:?}")
            .split(['(', ' ', '{'])
            .next()
            .map(str::to_string)
    };
    let covered: std::collections::BTreeSet<_> =
        rows.iter().filter_map(|r| names(&r.state)).collect();
    for state in [
        "Suspended",
        "Invalid",
        "Unobserved",
        "Stale",
        "PendingNotLanded",
        "PendingNeedsVersions",
        "PendingRegisterLanded",
        "PendingRevertLanded",
        "Conflict",
        "FailedNeedsVersions",
        "Failed",
        "HoldingFailedSpec",
        "NeedsPlan",
        "Absent",
        "OutOfSync",
        "Drifted",
        "DriftReported",
        "KeptChanging",
        "Stopped",
        "Deploying",
        "AwaitingPromotion",
        "Promotable",
        "NothingToPromote",
        "LaunchRequested",
        "InSync",
    ] {
        assert!(covered.contains(state), "no row for {state}");
    }
}

/// Runs classify -> next_action -> absorb with scripted facts for the I/O steps, and
/// returns the steps taken.
fn run(
    mut observed: Option<Observed>,
    mut memory: Memory,
    io: &mut Vec<Fact>,
) -> (Vec<Step>, Memory) {
    let (spec, policy) = (
        desired(),
        Policy {
            drift: DriftPolicy::Correct,
            revert_on_failure: true,
            ..Policy::default()
        },
    );
    let mut progress = Progress::default();
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let mut steps = Vec::new();
    for _ in 0..12 {
        let state = classify(
            &spec,
            observed.as_ref(),
            &memory,
            &progress,
            &policy,
            ("team", "web"),
        );
        let step = next_action(&state);
        steps.push(step.clone());
        let fact = match step {
            Step::Done => break,
            Step::Record(fact) => fact,
            _ => io.remove(0),
        };
        absorb(
            &fact,
            DIGEST,
            &now,
            &mut observed,
            &mut memory,
            &mut progress,
        );
    }
    (steps, memory)
}

#[test]
fn after_a_crash_between_register_and_status_the_failed_spec_is_not_registered_again() {
    // Restart: the status still says "registering at index 8"; Nomad has since made our
    // version 1 (index 10), failed it and auto-reverted to version 0 as version 2.
    let mut io = vec![
        Fact::Observed(Box::new(seen(
            Some(job(2, 14)),
            vec![
                dep(1, 20, "failed", AUTO_REVERTED),
                dep(2, 22, "running", ""),
            ],
        ))),
        Fact::Versions(vec![
            VersionView {
                version: 2,
                job_modify_index: 14,
                stable: false,
            },
            VersionView {
                version: 1,
                job_modify_index: 10,
                stable: false,
            },
            VersionView {
                version: 0,
                job_modify_index: 5,
                stable: true,
            },
        ]),
    ];
    let memory = Memory {
        pending: Some(pending(PendingKind::Register, 8)),
        ..applied(OLD, 0, 8)
    };
    let (steps, memory) = run(None, memory, &mut io);
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, Step::Register { .. } | Step::Plan | Step::Revert { .. })),
        "{steps:?}"
    );
    assert_eq!(memory.applied_version, Some(1));
    assert_eq!(memory.failed_digest.as_deref(), Some(DIGEST));
    assert_eq!(
        memory
            .last_revert
            .map(|r| (r.from_version, r.to_version, r.by)),
        Some((1, 0, RevertActor::Nomad))
    );
    assert!(memory.pending.is_none());
}

#[test]
fn after_a_crash_between_revert_and_status_the_revert_is_remembered() {
    let mut io = vec![Fact::Observed(Box::new(seen(
        Some(job(2, 12)),
        vec![dep(1, 20, "failed", UNHEALTHY), dep(2, 22, "running", "")],
    )))];
    let memory = Memory {
        pending: Some(pending(PendingKind::Revert, 10)),
        ..applied(DIGEST, 1, 10)
    };
    let (steps, memory) = run(None, memory, &mut io);
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Revert { .. })),
        "{steps:?}"
    );
    assert_eq!(
        memory
            .last_revert
            .map(|r| (r.from_version, r.to_version, r.by)),
        Some((1, 0, RevertActor::Operator))
    );
    assert_eq!(memory.failed_digest.as_deref(), Some(DIGEST));
}

#[test]
fn a_check_and_set_conflict_is_re_read_and_re_planned() {
    let mut io = vec![
        Fact::Observed(Box::new(seen(Some(job(1, 10)), vec![]))),
        Fact::Planned(Box::new(plan_of(DiffType::Edited, 10))),
        Fact::CasConflict,
        Fact::Observed(Box::new(seen(Some(job(2, 11)), vec![]))),
        Fact::Planned(Box::new(plan_of(DiffType::Edited, 11))),
        Fact::Registered {
            version: 3,
            spec_counts: Default::default(),
            count_notes: Vec::new(),
            eval_id: "e".into(),
            corrects_drift: false,
            job: Some(Box::new(job(3, 12))),
        },
    ];
    let (steps, memory) = run(None, applied(OLD, 1, 10), &mut io);
    assert_eq!(
        steps,
        vec![
            Step::Observe,
            Step::Plan,
            register(10, false),
            Step::Observe,
            Step::Plan,
            register(11, false),
            Step::Done,
        ]
    );
    assert_eq!(
        (memory.applied_digest.as_deref(), memory.applied_version),
        (Some(DIGEST), Some(3))
    );
}

#[test]
fn auto_revert_descriptions_name_the_target_version() {
    assert_eq!(auto_revert_target(AUTO_REVERTED), Some(0));
    assert_eq!(auto_revert_target("Failed due to progress deadline"), None);
    let retried = vec![dep(2, 10, "failed", ""), dep(2, 14, "successful", "")];
    assert_eq!(
        failed_deployment(&retried, 2),
        None,
        "only the newest deployment of the version counts"
    );
}

#[test]
fn the_plan_that_led_to_our_register_is_not_remembered_as_drift() {
    use crate::crd::PlanStatus;
    let with_plan = |diff: &str, registered: bool| NomadJobStatus {
        plan: Some(PlanStatus {
            diff_type: diff.into(),
            registered,
            ..PlanStatus::default()
        }),
        ..NomadJobStatus::default()
    };
    assert!(!Memory::from_status(&with_plan("Edited", true)).unregistered_difference);
    assert!(Memory::from_status(&with_plan("Edited", false)).unregistered_difference);
    assert!(!Memory::from_status(&with_plan("None", false)).unregistered_difference);
}
