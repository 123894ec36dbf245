//! The answers of a real Nomad 1.1.2 agent, recorded by `tests/fixtures/nomad/record.sh`,
//! decode into the client's types with the fields the operator relies on.
//!
//! Each re-recording changes IDs, indexes and times, so the tests check what the
//! conversation in `record.sh` makes certain: statuses, versions, counts, diff types and
//! texts, and how the IDs and indexes of different answers relate to each other.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::nomad::error::{Operation, classify};

/// The fixtures folder.
fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nomad")
}

/// The text of `tests/fixtures/nomad/<name>.json`.
fn text(name: &str) -> String {
    let path = dir().join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `tests/fixtures/nomad/<name>.json` decoded as `T`.
fn fixture<T: DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&text(name)).unwrap_or_else(|e| panic!("{name}.json: {e}"))
}

/// Decodes a fixture's text as `T`, for the table below.
fn decodes<T: DeserializeOwned>(text: &str) -> Result<(), String> {
    serde_json::from_str::<T>(text)
        .map(drop)
        .map_err(|e| e.to_string())
}

type Decoder = fn(&str) -> Result<(), String>;

/// Every recorded fixture, with the type the client decodes that answer as (`Value` for
/// jobs, which the client keeps as JSON).
const FIXTURES: &[(&str, Decoder)] = &[
    ("jobs-parse", decodes::<Value>),
    ("jobs-list", decodes::<Vec<JobListStub>>),
    ("job-plan-new", decodes::<JobPlanResponse>),
    ("job-plan-unchanged", decodes::<JobPlanResponse>),
    ("job-plan-edited", decodes::<JobPlanResponse>),
    ("job-plan-periodic", decodes::<JobPlanResponse>),
    ("job-plan-unplaceable", decodes::<JobPlanResponse>),
    ("job-register", decodes::<JobRegisterResponse>),
    ("job-register-update", decodes::<JobRegisterResponse>),
    ("job-register-periodic", decodes::<JobRegisterResponse>),
    ("job-revert", decodes::<JobRegisterResponse>),
    ("job-evaluate", decodes::<JobRegisterResponse>),
    ("job-stable", decodes::<JobStabilityResponse>),
    ("job-deregister", decodes::<JobDeregisterResponse>),
    ("job-deregister-purge", decodes::<JobDeregisterResponse>),
    ("job-dispatch", decodes::<JobDispatchResponse>),
    ("job-periodic-force", decodes::<PeriodicForceResponse>),
    ("job-read", decodes::<Value>),
    ("job-read-stopped", decodes::<Value>),
    ("job-versions", decodes::<Value>),
    ("job-summary", decodes::<JobSummary>),
    ("job-summary-batch", decodes::<JobSummary>),
    ("job-summary-periodic", decodes::<JobSummary>),
    ("job-allocations", decodes::<Vec<AllocationListStub>>),
    ("job-allocations-canary", decodes::<Vec<AllocationListStub>>),
    ("allocations-list", decodes::<Vec<AllocationListStub>>),
    ("allocation-read", decodes::<Allocation>),
    ("allocation-read-failed", decodes::<Allocation>),
    ("allocation-read-complete", decodes::<Allocation>),
    ("job-evaluations", decodes::<Vec<Evaluation>>),
    ("job-evaluations-blocked", decodes::<Vec<Evaluation>>),
    ("deployment-running", decodes::<Deployment>),
    ("deployment-failed", decodes::<Deployment>),
    ("deployment-auto-revert", decodes::<Deployment>),
    ("deployment-canary", decodes::<Deployment>),
    ("job-deployment", decodes::<Deployment>),
    ("job-deployment-none", decodes::<Option<Deployment>>),
    ("job-deployments", decodes::<Vec<Deployment>>),
    ("deployments-list", decodes::<Vec<Deployment>>),
    ("errors", decodes::<Vec<Exchange>>),
    ("unknown-job", decodes::<Vec<Exchange>>),
];

/// The test PKI of `src/nomad/tls.rs`'s tests, in `tls/`.
const TLS_FILES: &[&str] = &[
    "ca.pem",
    "client-key.pem",
    "client.pem",
    "server-key.pem",
    "server.pem",
];

/// One recorded request and its raw answer (`errors.json`, `unknown-job.json`).
#[derive(Debug, Deserialize)]
struct Exchange {
    name: String,
    request: String,
    status: u16,
    content_type: String,
    body: String,
}

/// The recorded exchanges of `errors.json` or `unknown-job.json`.
fn exchanges(name: &str) -> Vec<Exchange> {
    fixture(name)
}

fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn every_fixture_decodes() {
    let failures: Vec<String> = FIXTURES
        .iter()
        .filter_map(|(name, decode)| decode(&text(name)).err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_file_in_the_folder_is_used_and_documented() {
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| format!("{n}.json")).collect();
    let readme = std::fs::read_to_string(dir().join("README.md")).expect("README.md");
    let mut unused = Vec::new();
    for entry in std::fs::read_dir(dir()).expect("fixtures folder") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "tls" {
            let mut pki: Vec<String> = std::fs::read_dir(entry.path())
                .expect("tls")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            pki.sort();
            assert_eq!(pki, TLS_FILES, "tls/ holds what src/nomad/tls.rs reads");
        } else if name != "README.md" && name != "record.sh" && !listed.contains(&name) {
            unused.push(name);
        }
    }
    assert!(unused.is_empty(), "files no test reads: {unused:?}");
    for name in &listed {
        assert!(dir().join(name).is_file(), "{name} is missing");
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not describe {name}"
        );
    }
}

#[test]
fn parse_gives_the_job_registered_next() {
    let job: Value = fixture("jobs-parse");
    assert_eq!(job["ID"], "web");
    assert_eq!(job["Type"], "service");
    let group = &job["TaskGroups"][0];
    assert_eq!(group["Tasks"][0]["Driver"], "raw_exec");
    assert_eq!(group["Tasks"][0]["Config"]["command"], "/bin/sleep");
    // Durations are integer nanoseconds, and canonicalizing copies `update` into groups.
    assert_eq!(group["Update"]["MinHealthyTime"], 1_000_000_000u64);
    assert_eq!(group["Update"]["HealthyDeadline"], 10_000_000_000u64);
    assert_eq!(job["Update"]["ProgressDeadline"], 20_000_000_000u64);
}

#[test]
fn plans_of_a_new_an_unchanged_and_an_edited_job() {
    let new: JobPlanResponse = fixture("job-plan-new");
    let registered: JobRegisterResponse = fixture("job-register");
    let unchanged: JobPlanResponse = fixture("job-plan-unchanged");
    let edited: JobPlanResponse = fixture("job-plan-edited");
    let updated: JobRegisterResponse = fixture("job-register-update");

    // A new job: Added, check-and-set value 0, one allocation to place.
    assert_eq!(new.diff_type(), Some(DiffType::Added));
    assert_eq!(new.job_modify_index, 0);
    assert_eq!(new.next_periodic_launch, "", "1.1.2 sends null here");
    assert!(new.failed_tg_allocs.is_empty());
    let diff = new.diff.as_ref().expect("diff");
    assert_eq!(diff.id, "web");
    assert_eq!(diff.task_groups[0].name, "web");
    assert_eq!(diff.task_groups[0].updates["create"], 1);
    assert_eq!(diff.task_groups[0].tasks[0].annotations, ["forces create"]);
    let updates = &new
        .annotations
        .as_ref()
        .expect("annotations")
        .desired_tg_updates;
    assert_eq!(updates["web"].place, 1);

    // The same spec again: None at the top and below, and the register's index as CAS.
    assert_eq!(unchanged.diff_type(), Some(DiffType::None));
    assert_eq!(unchanged.job_modify_index, registered.job_modify_index);
    let diff = unchanged.diff.as_ref().expect("diff");
    assert!(
        diff.fields.is_empty() && diff.objects.is_empty(),
        "null lists"
    );
    assert_eq!(diff.task_groups[0].r#type, DiffType::None);
    assert_eq!(diff.task_groups[0].tasks[0].r#type, DiffType::None);
    assert!(diff.task_groups[0].tasks[0].annotations.is_empty());
    let updates = &unchanged
        .annotations
        .as_ref()
        .expect("annotations")
        .desired_tg_updates;
    assert_eq!((updates["web"].ignore, updates["web"].place), (1, 0));

    // A changed command argument: Edited, a destructive update, and sub-diffs that say
    // None for what did not change.
    assert_eq!(edited.diff_type(), Some(DiffType::Edited));
    assert_eq!(edited.job_modify_index, registered.job_modify_index);
    let group = &edited.diff.as_ref().expect("diff").task_groups[0];
    assert_eq!(group.r#type, DiffType::Edited);
    assert_eq!(group.updates["create/destroy update"], 1);
    let task = &group.tasks[0];
    assert_eq!(task.annotations, ["forces create/destroy update"]);
    let config = task
        .objects
        .iter()
        .find(|o| o.name == "Config")
        .expect("Config");
    let arg = config
        .fields
        .iter()
        .find(|f| f.name == "args[0]")
        .expect("args[0]");
    assert_eq!(
        (arg.r#type, arg.old.as_str(), arg.new.as_str()),
        (DiffType::Edited, "3600", "3601")
    );
    assert!(
        config
            .fields
            .iter()
            .any(|f| f.name == "command" && f.r#type == DiffType::None)
    );
    let updates = &edited
        .annotations
        .as_ref()
        .expect("annotations")
        .desired_tg_updates;
    assert_eq!(updates["web"].destructive_update, 1);

    // Registering with that CAS value moves the job's JobModifyIndex on.
    assert!(updated.job_modify_index > registered.job_modify_index);
}

#[test]
fn plans_of_a_periodic_and_an_unplaceable_job() {
    let periodic: JobPlanResponse = fixture("job-plan-periodic");
    let registered: JobRegisterResponse = fixture("job-register-periodic");
    assert_eq!(periodic.diff_type(), Some(DiffType::None));
    assert_eq!(periodic.job_modify_index, registered.job_modify_index);
    assert!(
        periodic.next_periodic_launch.ends_with("T03:00:00Z"),
        "{}",
        periodic.next_periodic_launch
    );

    // Asked without `Diff`: no diff at all (not "no change"), but the placement failure.
    let huge: JobPlanResponse = fixture("job-plan-unplaceable");
    assert_eq!(huge.diff_type(), None);
    assert_eq!(huge.job_modify_index, 0);
    let failed = &huge.failed_tg_allocs["huge"];
    assert_eq!((failed.nodes_evaluated, failed.nodes_exhausted), (1, 1));
    assert_eq!(failed.dimension_exhausted["memory"], 1);
    assert_eq!(failed.nodes_available["dc1"], 1);
    assert!(failed.class_filtered.is_empty() && failed.quota_exhausted.is_empty());
    let updates = &huge
        .annotations
        .as_ref()
        .expect("annotations")
        .desired_tg_updates;
    assert_eq!(updates["huge"].place, 1);
}

#[test]
fn write_answers() {
    let register: JobRegisterResponse = fixture("job-register");
    let update: JobRegisterResponse = fixture("job-register-update");
    let revert: JobRegisterResponse = fixture("job-revert");
    for (name, answer) in [
        ("job-register", &register),
        ("job-register-update", &update),
        ("job-revert", &revert),
    ] {
        assert!(is_uuid(&answer.eval_id), "{name}: {answer:?}");
        assert_eq!(answer.index, answer.eval_create_index, "{name}");
        assert_eq!(answer.job_modify_index, answer.index, "{name}");
        assert_eq!(answer.warnings, "", "{name}");
    }
    assert!(register.job_modify_index < update.job_modify_index);
    assert!(update.job_modify_index < revert.job_modify_index);

    // Periodic (and parameterized) jobs get no evaluation when registered.
    let periodic: JobRegisterResponse = fixture("job-register-periodic");
    assert_eq!(periodic.eval_id, "");
    assert_eq!(periodic.eval_create_index, 0);
    assert!(periodic.job_modify_index > 0 && periodic.index > 0);

    // Evaluate answers with the register shape, but its JobModifyIndex is the job's
    // ModifyIndex, not its spec index: never a check-and-set value.
    let evaluate: JobRegisterResponse = fixture("job-evaluate");
    let jobs: Vec<JobListStub> = fixture("jobs-list");
    let web = jobs.iter().find(|j| j.id == "web").expect("web");
    assert!(is_uuid(&evaluate.eval_id));
    assert_eq!(evaluate.job_modify_index, web.modify_index);
    assert_ne!(evaluate.job_modify_index, web.job_modify_index);

    let stable: JobStabilityResponse = fixture("job-stable");
    assert!(stable.index > revert.index);
    assert_eq!(stable.job_modify_index, 0, "1.1.2 sends only Index");

    let stop: JobDeregisterResponse = fixture("job-deregister");
    let purge: JobDeregisterResponse = fixture("job-deregister-purge");
    for answer in [&stop, &purge] {
        assert!(is_uuid(&answer.eval_id), "{answer:?}");
        assert_eq!(answer.index, answer.eval_create_index);
    }
    assert!(stop.job_modify_index < purge.job_modify_index);

    let dispatch: JobDispatchResponse = fixture("job-dispatch");
    assert!(dispatch.dispatched_job_id.starts_with("render/dispatch-"));
    assert!(is_uuid(&dispatch.eval_id));
    assert!(dispatch.job_create_index > 0);
    assert_eq!(dispatch.index, dispatch.eval_create_index);

    let force: PeriodicForceResponse = fixture("job-periodic-force");
    assert!(is_uuid(&force.eval_id));
    assert_eq!(force.index, force.eval_create_index);
}

#[test]
fn jobs_and_versions_stay_json() {
    let update: JobRegisterResponse = fixture("job-register-update");
    let job: Value = fixture("job-read");
    assert_eq!(job["ID"], "web");
    assert_eq!(job["Version"], 1);
    assert_eq!(job["Stable"], true);
    assert_eq!(job["Status"], "running");
    assert_eq!(job["JobModifyIndex"], update.job_modify_index);

    // Deregistered without purge: a new version that is stopped and dead.
    let stopped: Value = fixture("job-read-stopped");
    let stop: JobDeregisterResponse = fixture("job-deregister");
    assert_eq!(
        (&stopped["ID"], &stopped["Version"], &stopped["Stop"]),
        (&json!("batch"), &json!(1), &json!(true))
    );
    assert_eq!(stopped["Status"], "dead");
    assert_eq!(stopped["JobModifyIndex"], stop.job_modify_index);

    // `{"Versions": [...], "Diffs": null}`, newest first; only deployments and
    // `/stable` make a version stable.
    let versions: Value = fixture("job-versions");
    assert_eq!(versions["Diffs"], Value::Null);
    let versions = versions["Versions"].as_array().expect("Versions");
    let seen: Vec<(u64, bool)> = versions
        .iter()
        .map(|v| {
            (
                v["Version"].as_u64().expect("Version"),
                v["Stable"].as_bool().expect("Stable"),
            )
        })
        .collect();
    assert_eq!(seen, [(3, true), (2, false), (1, true), (0, true)]);
    let revert: JobRegisterResponse = fixture("job-revert");
    assert_eq!(versions[0]["JobModifyIndex"], revert.job_modify_index);
}

#[test]
fn jobs_list() {
    let jobs: Vec<JobListStub> = fixture("jobs-list");
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    let by_id = |id: &str| jobs.iter().find(|j| j.id == id).expect(id);

    let web = by_id("web");
    assert_eq!(
        (web.r#type.as_str(), web.status.as_str()),
        ("service", "running")
    );
    assert!(!web.periodic && !web.parameterized_job && !web.stop);
    assert!(web.modify_index >= web.job_modify_index && web.create_index > 0);
    let summary = web.job_summary.as_ref().expect("summary");
    assert_eq!(summary.summary["web"].running, 1);

    let nightly = by_id("nightly");
    assert!(nightly.periodic && nightly.parent_id.is_empty());
    let dead = nightly
        .job_summary
        .as_ref()
        .and_then(|s| s.children.as_ref())
        .map(|c| c.dead);
    assert_eq!(dead, Some(1));
    let render = by_id("render");
    assert!(render.parameterized_job);
    let children: Vec<&JobListStub> = jobs.iter().filter(|j| !j.parent_id.is_empty()).collect();
    assert_eq!(children.len(), 2);
    for child in children {
        assert!(child.id.starts_with(&format!("{}/", child.parent_id)));
        assert_eq!(
            (child.r#type.as_str(), child.status.as_str()),
            ("batch", "dead")
        );
    }

    // The last deployment is the one of auto-revert's re-registration.
    let deployments: Vec<Deployment> = fixture("job-deployments");
    let latest = deployments
        .iter()
        .max_by_key(|d| d.create_index)
        .expect("deployments");
    assert_eq!(web.job_modify_index, latest.job_spec_modify_index);
}

#[test]
fn summaries() {
    let web: JobSummary = fixture("job-summary");
    assert_eq!(web.job_id, "web");
    let counts = &web.summary["web"];
    assert_eq!((counts.running, counts.complete, counts.failed), (1, 1, 0));
    assert_eq!((counts.queued, counts.starting, counts.lost), (0, 0, 0));
    assert!(web.create_index < web.modify_index);

    let batch: JobSummary = fixture("job-summary-batch");
    assert_eq!(batch.summary["batch"].complete, 1);
    assert_eq!(batch.summary["batch"].running, 0);

    let periodic: JobSummary = fixture("job-summary-periodic");
    assert_eq!(periodic.summary["nightly"], TaskGroupSummary::default());
    assert_eq!(
        periodic.children,
        Some(JobChildrenSummary {
            pending: 0,
            running: 0,
            dead: 1
        })
    );
}

#[test]
fn allocations_of_two_versions() {
    let allocs: Vec<AllocationListStub> = fixture("job-allocations");
    let all: Vec<AllocationListStub> = fixture("allocations-list");
    assert_eq!(allocs, all, "only web runs when both are recorded");
    assert_eq!(allocs.len(), 2);
    let version = |v: u64| allocs.iter().find(|a| a.job_version == v).expect("version");
    let (old, new) = (version(0), version(1));
    for a in [old, new] {
        assert!(
            is_uuid(&a.id) && is_uuid(&a.eval_id) && is_uuid(&a.node_id),
            "{a:?}"
        );
        assert_eq!((a.job_id.as_str(), a.task_group.as_str()), ("web", "web"));
        assert_eq!(a.job_type, "service");
        assert_eq!(a.name, "web.web[0]");
        assert_eq!(
            a.deployment_status.as_ref().and_then(|d| d.healthy),
            Some(true)
        );
        assert!(a.create_index <= a.modify_index);
        assert!(a.create_time > 0 && a.modify_time >= a.create_time);
    }
    assert_eq!(
        (old.client_status.as_str(), old.desired_status.as_str()),
        ("complete", "stop")
    );
    assert_eq!(
        (new.client_status.as_str(), new.desired_status.as_str()),
        ("running", "run")
    );

    // A running task: not finished, never restarted (1.1.2 sends null for both times).
    let running = &new.task_states["server"];
    assert_eq!(running.state, "running");
    assert!(!running.failed);
    assert_eq!(
        (running.finished_at.as_str(), running.last_restart.as_str()),
        ("", "")
    );
    assert!(!running.started_at.is_empty());
    let kinds: Vec<&str> = running.events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["Received", "Task Setup", "Started"]);
    assert_eq!(running.events[0].summary(), "Task received by client");
    assert_eq!(
        running.events[1].details["message"],
        "Building Task Directory"
    );

    // The replaced one: stopped by the destructive update, dead but not failed.
    let stopped = &old.task_states["server"];
    assert_eq!(stopped.state, "dead");
    assert!(!stopped.failed);
    assert!(!stopped.finished_at.is_empty());
    let terminated = stopped
        .events
        .iter()
        .find(|e| e.r#type == "Terminated")
        .expect("Terminated");
    assert_eq!(
        (terminated.exit_code, terminated.signal),
        (130, 2),
        "SIGINT"
    );
    assert!(stopped.events.iter().any(|e| e.r#type == "Killing"));

    // Reading one gives the stub's fields and more.
    let alloc: Allocation = fixture("allocation-read");
    let deployment: Deployment = fixture("job-deployment");
    assert_eq!(alloc.id, new.id);
    assert_eq!(
        (alloc.eval_id.as_str(), alloc.node_id.as_str()),
        (new.eval_id.as_str(), new.node_id.as_str())
    );
    assert_eq!(alloc.client_status, "running");
    assert_eq!(alloc.deployment_id, deployment.id);
    assert!(alloc.alloc_modify_index >= alloc.create_index);
    assert_eq!(alloc.task_states["server"].finished_at, "");
    let job = alloc.job.as_ref().expect("job");
    assert_eq!((&job["ID"], &job["Version"]), (&json!("web"), &json!(1)));
}

#[test]
fn a_failed_and_a_complete_allocation() {
    let failed: Allocation = fixture("allocation-read-failed");
    let deployment: Deployment = fixture("deployment-failed");
    // The full allocation has no JobVersion or JobType of its own: read from its Job.
    assert_eq!(
        (failed.client_status.as_str(), failed.job_version),
        ("failed", 2)
    );
    assert_eq!(failed.job_type, "service");
    assert_eq!(failed.deployment_id, deployment.id);
    let health = failed
        .deployment_status
        .as_ref()
        .expect("deployment status");
    assert_eq!((health.healthy, health.canary), (Some(false), false));
    assert!(!health.timestamp.is_empty());
    let task = &failed.task_states["server"];
    assert_eq!(
        (task.state.as_str(), task.failed, task.restarts),
        ("dead", true, 0)
    );
    assert!(!task.finished_at.is_empty());
    assert_eq!(task.last_restart, "", "never restarted: null");
    let event = |kind: &str| task.events.iter().find(|e| e.r#type == kind).expect(kind);
    assert_eq!(event("Terminated").exit_code, 1);
    assert_eq!(event("Terminated").summary(), "Exit Code: 1");
    assert!(event("Not Restarting").fails_task);
    assert_eq!(
        event("Not Restarting").restart_reason,
        "Policy allows no restarts"
    );
    let last = task.events.iter().max_by_key(|e| e.time).expect("events");
    assert_eq!(
        (last.r#type.as_str(), last.summary()),
        ("Alloc Unhealthy", "Unhealthy because of failed task")
    );

    // A batch allocation: no deployment, so no deployment status (null).
    let complete: Allocation = fixture("allocation-read-complete");
    assert_eq!(
        (complete.client_status.as_str(), complete.job_type.as_str()),
        ("complete", "batch")
    );
    assert!(complete.deployment_status.is_none());
    assert_eq!(complete.deployment_id, "");
    let task = &complete.task_states["once"];
    assert_eq!((task.state.as_str(), task.failed), ("dead", false));
    assert!(!task.finished_at.is_empty());
    let terminated = task
        .events
        .iter()
        .find(|e| e.r#type == "Terminated")
        .expect("Terminated");
    assert_eq!(terminated.exit_code, 0);
}

#[test]
fn canary_allocations() {
    let allocs: Vec<AllocationListStub> = fixture("job-allocations-canary");
    let deployment: Deployment = fixture("deployment-canary");
    assert_eq!(allocs.len(), 2);
    let canary = allocs.iter().find(|a| a.job_version == 1).expect("canary");
    let health = canary.deployment_status.as_ref().expect("status");
    assert_eq!((health.canary, health.healthy), (true, Some(true)));
    let group = &deployment.task_groups["canary"];
    assert_eq!(group.placed_canaries, std::slice::from_ref(&canary.id));
    let old = allocs.iter().find(|a| a.job_version == 0).expect("old");
    assert_eq!(old.client_status, "running", "kept until promotion");
    assert!(!old.deployment_status.as_ref().is_some_and(|d| d.canary));
}

#[test]
fn evaluations() {
    let evals: Vec<Evaluation> = fixture("job-evaluations");
    let register: JobRegisterResponse = fixture("job-register");
    let update: JobRegisterResponse = fixture("job-register-update");
    for e in &evals {
        assert!(is_uuid(&e.id) && is_uuid(&e.deployment_id), "{e:?}");
        assert_eq!((e.job_id.as_str(), e.r#type.as_str()), ("web", "service"));
        assert_eq!(e.status, "complete");
        assert_eq!(e.queued_allocations["web"], 0);
        assert!(e.failed_tg_allocs.is_empty());
        assert!(e.create_index <= e.modify_index);
    }
    let by_register: Vec<&Evaluation> = evals
        .iter()
        .filter(|e| e.triggered_by == "job-register")
        .collect();
    let ids: BTreeSet<&str> = by_register.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([register.eval_id.as_str(), update.eval_id.as_str()])
    );
    for e in &by_register {
        assert_eq!(e.job_modify_index, e.create_index, "{e:?}");
    }
    // Deployment-watcher evaluations carry no JobModifyIndex at all.
    let watcher: Vec<&Evaluation> = evals
        .iter()
        .filter(|e| e.triggered_by == "deployment-watcher")
        .collect();
    assert!(!watcher.is_empty());
    assert!(watcher.iter().all(|e| e.job_modify_index == 0));

    // An unplaceable job: the register evaluation completes with the failure and a
    // blocked evaluation waits for room.
    let evals: Vec<Evaluation> = fixture("job-evaluations-blocked");
    let complete = evals
        .iter()
        .find(|e| e.status == "complete")
        .expect("complete");
    let blocked = evals
        .iter()
        .find(|e| e.status == "blocked")
        .expect("blocked");
    assert_eq!(complete.blocked_eval, blocked.id);
    assert_eq!(blocked.previous_eval, complete.id);
    assert_eq!(blocked.triggered_by, "queued-allocs");
    assert_eq!(complete.queued_allocations["huge"], 1);
    for e in [complete, blocked] {
        assert_eq!(e.failed_tg_allocs["huge"].dimension_exhausted["memory"], 1);
    }
}

#[test]
fn deployments_running_successful_failed_and_auto_reverted() {
    let update: JobRegisterResponse = fixture("job-register-update");
    let running: Deployment = fixture("deployment-running");
    assert!(is_uuid(&running.id));
    assert_eq!((running.job_id.as_str(), running.job_version), ("web", 1));
    assert_eq!(
        (running.status.as_str(), running.status_description.as_str()),
        ("running", "Deployment is running")
    );
    assert!(running.is_active());
    assert_eq!(running.job_spec_modify_index, update.job_modify_index);
    let group = &running.task_groups["web"];
    assert_eq!(
        (
            group.desired_total,
            group.healthy_allocs,
            group.unhealthy_allocs
        ),
        (1, 0, 0)
    );
    assert_eq!(group.progress_deadline, 20_000_000_000);
    assert!(!group.require_progress_by.is_empty());
    assert!(group.placed_canaries.is_empty(), "null");

    let done: Deployment = fixture("job-deployment");
    assert_eq!(done.id, running.id);
    assert_eq!(done.status, "successful");
    assert_eq!(done.status_description, "Deployment completed successfully");
    assert!(!done.is_active());
    assert_eq!(done.auto_revert_version(), None);
    let group = &done.task_groups["web"];
    assert_eq!(
        (
            group.desired_total,
            group.placed_allocs,
            group.healthy_allocs
        ),
        (1, 1, 1)
    );
    assert!(done.modify_index > running.modify_index);
    assert_eq!(done.create_index, running.create_index);

    // ProgressDeadline 0: fails after the healthy deadline; no deadline, so null.
    let failed: Deployment = fixture("deployment-failed");
    assert_eq!((failed.status.as_str(), failed.job_version), ("failed", 2));
    assert_eq!(
        failed.status_description,
        "Failed due to unhealthy allocations"
    );
    assert_eq!(failed.auto_revert_version(), None);
    let group = &failed.task_groups["web"];
    assert_eq!(
        (
            group.placed_allocs,
            group.healthy_allocs,
            group.unhealthy_allocs
        ),
        (1, 0, 1)
    );
    assert_eq!(
        (group.progress_deadline, group.require_progress_by.as_str()),
        (0, "")
    );
    assert!(!group.auto_revert);

    let reverted: Deployment = fixture("deployment-auto-revert");
    assert_eq!(
        (reverted.status.as_str(), reverted.job_version),
        ("failed", 4)
    );
    assert_eq!(
        reverted.status_description,
        "Failed due to unhealthy allocations - rolling back to job version 3"
    );
    assert_eq!(reverted.auto_revert_version(), Some(3));
    assert!(reverted.task_groups["web"].auto_revert);
    assert_eq!(reverted.job_create_index, running.job_create_index);
}

#[test]
fn deployment_lists_and_none() {
    // All of web's rollouts, in no particular order (not by version, not by index).
    let all: Vec<Deployment> = fixture("job-deployments");
    let mut seen: Vec<(u64, &str)> = all
        .iter()
        .map(|d| (d.job_version, d.status.as_str()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (0, "successful"),
            (1, "successful"),
            (2, "failed"),
            (3, "successful"),
            (4, "failed"),
            (5, "successful"),
        ]
    );
    assert!(all.iter().all(|d| d.job_id == "web" && is_uuid(&d.id)));
    let reverted: Deployment = fixture("deployment-auto-revert");
    assert!(all.contains(&reverted));

    let listed: Vec<Deployment> = fixture("deployments-list");
    let versions: Vec<(u64, &str)> = listed
        .iter()
        .map(|d| (d.job_version, d.status.as_str()))
        .collect();
    assert_eq!(versions.len(), 2);
    assert!(versions.contains(&(0, "successful")) && versions.contains(&(1, "successful")));
    let latest: Deployment = fixture("job-deployment");
    assert!(listed.contains(&latest));

    let canary: Deployment = fixture("deployment-canary");
    assert_eq!(canary.status, "running");
    assert_eq!(
        canary.status_description,
        "Deployment is running but requires manual promotion"
    );
    let group = &canary.task_groups["canary"];
    assert_eq!(
        (group.desired_canaries, group.healthy_allocs, group.promoted),
        (1, 1, false)
    );

    let none: Option<Deployment> = fixture("job-deployment-none");
    assert!(none.is_none(), "a batch job has no deployment: 200 null");
}

#[test]
fn error_answers_are_text_and_classify() {
    let expected = [
        ("register-cas-conflict", "conflict"),
        ("register-cas-job-exists", "conflict"),
        ("revert-prior-version-mismatch", "conflict"),
        ("revert-to-current-version", "bad_request"),
        ("revert-to-missing-version", "not_found"),
        ("dispatch-missing-meta", "bad_request"),
        ("dispatch-not-parameterized", "bad_request"),
        ("force-not-periodic", "bad_request"),
        ("job-not-found", "not_found"),
        ("versions-not-found", "not_found"),
        ("summary-not-found", "not_found"),
        ("allocation-not-found", "not_found"),
        ("deployment-not-found", "not_found"),
        ("register-no-task-groups", "bad_request"),
        ("register-id-mismatch", "bad_request"),
        ("register-invalid-json", "bad_request"),
        ("parse-invalid-hcl", "bad_request"),
    ];
    let recorded = exchanges("errors");
    let names: Vec<&str> = recorded.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, expected.map(|(n, _)| n));
    for (exchange, (_, category)) in recorded.iter().zip(expected) {
        assert_eq!(exchange.content_type, "text/plain", "{exchange:?}");
        assert!(
            serde_json::from_str::<Value>(&exchange.body).is_err(),
            "{exchange:?}"
        );
        let (method, path) = exchange.request.split_once(' ').expect("request");
        let operation = match (method, path) {
            ("POST", p) if p.ends_with("/revert") => Operation::Revert,
            ("POST", p) if p.starts_with("/v1/job/") && p.matches('/').count() == 3 => {
                Operation::Register
            }
            _ => Operation::Other,
        };
        let error = classify(exchange.status, &exchange.body, operation);
        assert_eq!(error.category(), category, "{exchange:?} -> {error:?}");
    }
    let by_name = |name: &str| recorded.iter().find(|e| e.name == name).expect(name);
    // The CAS conflict of 1.1.2: a 500 with both wordings in one text.
    let cas = by_name("register-cas-conflict");
    assert_eq!(cas.status, 500);
    assert!(cas.body.starts_with("Enforcing job modify index"));
    assert!(
        cas.body
            .contains("job exists with conflicting job modify index")
    );
    let invalid = classify(
        by_name("register-no-task-groups").status,
        &by_name("register-no-task-groups").body,
        Operation::Register,
    );
    assert_eq!(
        invalid,
        crate::nomad::NomadError::BadRequest("Missing job task groups".into())
    );
    assert_eq!(by_name("job-not-found").status, 404);
    assert_eq!(by_name("register-id-mismatch").status, 400);
}

#[test]
fn a_job_that_does_not_exist() {
    let recorded = exchanges("unknown-job");
    let names: Vec<&str> = recorded.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "job-deployment",
            "job-deployments",
            "job-allocations",
            "job-evaluations",
            "job-deregister"
        ]
    );
    for exchange in &recorded {
        assert_eq!(
            (exchange.status, exchange.content_type.as_str()),
            (200, "application/json"),
            "{exchange:?}"
        );
    }
    let body = |i: usize| recorded[i].body.as_str();
    let deployment: Option<Deployment> = serde_json::from_str(body(0)).expect("deployment");
    assert!(deployment.is_none());
    let deployments: Vec<Deployment> = serde_json::from_str(body(1)).expect("deployments");
    let allocations: Vec<AllocationListStub> = serde_json::from_str(body(2)).expect("allocations");
    let evaluations: Vec<Evaluation> = serde_json::from_str(body(3)).expect("evaluations");
    assert!(deployments.is_empty() && allocations.is_empty() && evaluations.is_empty());
    // Deleting a job that does not exist succeeds, with an evaluation.
    let deleted: JobDeregisterResponse = serde_json::from_str(body(4)).expect("deregister");
    assert!(is_uuid(&deleted.eval_id), "{deleted:?}");
}

/// Checks `T`'s one rule: the `required` fields must be there and not null; every other
/// field may be absent or null (reading as its default), and unknown fields are ignored.
/// The field names come from serializing `T::default()`.
fn check_nullability<T>(required: Value)
where
    T: Serialize + DeserializeOwned + Default + PartialEq + Debug,
{
    let name = std::any::type_name::<T>();
    let Value::Object(fields) = serde_json::to_value(T::default()).expect("serialize") else {
        panic!("{name} is not an object");
    };
    let Value::Object(required) = required else {
        panic!("required fields of {name} are not an object");
    };
    let mut all_null = serde_json::Map::new();
    for key in fields.keys() {
        all_null.insert(key.clone(), Value::Null);
    }
    all_null.extend(required.clone());
    all_null.insert("SomethingNewer".into(), json!({"Nested": [1, null]}));

    let absent: T = serde_json::from_value(Value::Object(required.clone()))
        .unwrap_or_else(|e| panic!("{name} with only its required fields: {e}"));
    let nulls: T = serde_json::from_value(Value::Object(all_null.clone()))
        .unwrap_or_else(|e| panic!("{name} with every optional field null: {e}"));
    assert_eq!(absent, nulls, "{name}: absent and null differ");
    let mut expected = fields.clone();
    expected.extend(required.clone());
    assert_eq!(
        serde_json::to_value(&absent).expect("serialize"),
        Value::Object(expected),
        "{name}: an absent field is not its default"
    );

    for key in required.keys() {
        let mut without = all_null.clone();
        without.remove(key);
        assert!(
            serde_json::from_value::<T>(Value::Object(without)).is_err(),
            "{name} decodes without its required {key}"
        );
        let mut null = all_null.clone();
        null.insert(key.clone(), Value::Null);
        assert!(
            serde_json::from_value::<T>(Value::Object(null)).is_err(),
            "{name} decodes with a null {key}"
        );
    }
}

#[test]
fn every_field_but_the_required_ones_takes_null_and_absence() {
    check_nullability::<JobListStub>(json!({"ID": "web"}));
    check_nullability::<JobSummary>(json!({}));
    check_nullability::<TaskGroupSummary>(json!({}));
    check_nullability::<JobChildrenSummary>(json!({}));
    check_nullability::<JobRegisterResponse>(json!({}));
    check_nullability::<JobDeregisterResponse>(json!({}));
    check_nullability::<JobStabilityResponse>(json!({}));
    check_nullability::<JobDispatchResponse>(json!({"DispatchedJobID": "render/dispatch-1"}));
    check_nullability::<PeriodicForceResponse>(json!({}));
    check_nullability::<JobPlanResponse>(json!({"JobModifyIndex": 7}));
    check_nullability::<JobDiff>(json!({"Type": "Edited"}));
    check_nullability::<FieldDiff>(json!({}));
    check_nullability::<ObjectDiff>(json!({}));
    check_nullability::<TaskGroupDiff>(json!({}));
    check_nullability::<TaskDiff>(json!({}));
    check_nullability::<PlanAnnotations>(json!({}));
    check_nullability::<DesiredUpdates>(json!({}));
    check_nullability::<AllocationMetric>(json!({}));
    check_nullability::<AllocationListStub>(json!({"ID": "a"}));
    check_nullability::<Allocation>(json!({"ID": "a"}));
    check_nullability::<TaskState>(json!({}));
    check_nullability::<TaskEvent>(json!({}));
    check_nullability::<AllocDeploymentStatus>(json!({}));
    check_nullability::<Evaluation>(json!({"ID": "e"}));
    check_nullability::<Deployment>(json!({"ID": "d", "JobVersion": 3}));
    check_nullability::<DeploymentState>(json!({}));
}

#[test]
fn a_plan_without_diff_type_is_an_error_not_no_change() {
    let result =
        serde_json::from_str::<JobPlanResponse>(r#"{"JobModifyIndex": 4, "Diff": {"ID": "x"}}"#);
    assert!(result.is_err());
    let result = serde_json::from_str::<JobPlanResponse>(
        r#"{"JobModifyIndex": 4, "Diff": {"Type": null, "ID": "x"}}"#,
    );
    assert!(result.is_err());
    let none: JobPlanResponse =
        serde_json::from_str(r#"{"Diff": null, "JobModifyIndex": 44}"#).expect("plan");
    assert_eq!((none.diff_type(), none.job_modify_index), (None, 44));
}

/// Shapes the 1.1.2 agent does not send, from the documentation of older releases and
/// from newer ones: they must decode too.
#[test]
fn shapes_of_other_nomad_releases() {
    // Older releases: the zero time where 1.1.2 sends null; kept as sent.
    let plan: JobPlanResponse = serde_json::from_str(
        r#"{"JobModifyIndex": 0, "NextPeriodicLaunch": "0001-01-01T00:00:00Z"}"#,
    )
    .expect("plan");
    assert_eq!(plan.next_periodic_launch, "0001-01-01T00:00:00Z");
    // The 0.6 documentation's stable answer names the index JobModifyIndex.
    let stable: JobStabilityResponse =
        serde_json::from_str(r#"{"JobModifyIndex": 34}"#).expect("stable");
    assert_eq!((stable.index, stable.job_modify_index), (0, 34));
    // Nomad 1.3+: `Unknown` allocations, and deployments that wait before running.
    let summary: TaskGroupSummary =
        serde_json::from_str(r#"{"Running": 1, "Unknown": 2}"#).expect("summary");
    assert_eq!((summary.running, summary.unknown), (1, 2));
    let pending: Deployment =
        serde_json::from_str(r#"{"ID": "d", "JobVersion": 0, "Status": "pending"}"#)
            .expect("deployment");
    assert!(pending.is_active());
}

#[test]
fn an_edited_diff_with_nothing_in_it_is_no_difference() {
    // What Nomad 1.1.2 answers when a job with a `Scaling` block is planned against
    // itself (measured on the real agent): `Edited`, a group `Edited` with nothing inside.
    let plan: JobPlanResponse = serde_json::from_value(serde_json::json!({
        "JobModifyIndex": 10,
        "Diff": {"Type": "Edited", "ID": "sc", "Fields": null, "Objects": null, "TaskGroups": [
            {"Type": "Edited", "Name": "g", "Fields": null, "Objects": null,
             "Updates": {"in-place update": 1},
             "Tasks": [{"Type": "None", "Name": "t", "Fields": null, "Objects": null, "Annotations": null}]}
        ]}
    }))
    .expect("plan");
    assert_eq!(plan.diff_type(), Some(DiffType::None));
    let edited: JobPlanResponse =
        serde_json::from_str(&text("job-plan-edited")).expect("recorded edited plan");
    assert_eq!(
        edited.diff_type(),
        Some(DiffType::Edited),
        "a real edit stays one"
    );
    let new: JobPlanResponse = serde_json::from_str(&text("job-plan-new")).expect("new plan");
    assert_eq!(new.diff_type(), Some(DiffType::Added));
}
