//! Every documented sample response decodes into the client's types with its key fields.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::*;

/// Reads `tests/fixtures/nomad/<name>.json` as `T`.
fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!(
        "{}/tests/fixtures/nomad/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn jobs_list() {
    let jobs: Vec<JobListStub> = fixture("jobs-list");
    let job = &jobs[0];
    assert_eq!(job.id, "example");
    assert_eq!(job.r#type, "service");
    assert_eq!(job.priority, 50);
    assert_eq!(job.status, "pending");
    assert_eq!(
        (job.create_index, job.modify_index, job.job_modify_index),
        (52, 93, 52)
    );
    let summary = job.job_summary.as_ref().expect("summary");
    assert_eq!(summary.job_id, "example");
    assert_eq!(summary.summary["cache"].queued, 1);
    assert_eq!(summary.summary["cache"].complete, 1);
    assert_eq!(summary.modify_index, 96);
}

#[test]
fn register_answers() {
    let create: JobRegisterResponse = fixture("jobs-create");
    assert_eq!(create.job_modify_index, 109);
    assert_eq!(create.eval_id, "");
    for name in ["job-update", "job-revert", "job-evaluate"] {
        let answer: JobRegisterResponse = fixture(name);
        assert_eq!(
            answer.eval_id, "d092fdc0-e1fd-2536-67d8-43af8ca798ac",
            "{name}"
        );
        assert_eq!(answer.eval_create_index, 35, "{name}");
        assert_eq!(answer.job_modify_index, 34, "{name}");
    }
    let delete: JobDeregisterResponse = fixture("job-delete");
    assert_eq!(delete.eval_id, "d092fdc0-e1fd-2536-67d8-43af8ca798ac");
    assert_eq!(delete.job_modify_index, 34);
    let stable: JobStabilityResponse = fixture("job-stable");
    assert_eq!(stable.job_modify_index, 34);
}

#[test]
fn read_job_and_versions_stay_json() {
    let job: Value = fixture("job-read");
    assert_eq!(job["ID"], "example");
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Driver"], "docker");
    assert_eq!(job["JobModifyIndex"], 7);
    let versions: Vec<Value> = fixture("job-versions");
    assert_eq!(versions[0]["Version"], 0);
    assert_eq!(versions[0]["Stable"], false);
}

#[test]
fn job_allocations() {
    let allocs: Vec<AllocationListStub> = fixture("job-allocations");
    let alloc = &allocs[0];
    assert_eq!(alloc.id, "ed344e0a-7290-d117-41d3-a64f853ca3c2");
    assert_eq!(alloc.eval_id, "a9c5effc-2242-51b2-f1fe-054ee11ab189");
    assert_eq!(alloc.node_id, "cb1f6030-a220-4f92-57dc-7baaabdc3823");
    assert_eq!(alloc.job_id, "example");
    assert_eq!(alloc.task_group, "cache");
    assert_eq!(alloc.client_status, "running");
    let redis = &alloc.task_states["redis"];
    assert_eq!(redis.state, "running");
    assert!(!redis.failed);
    assert_eq!(redis.events.len(), 4);
    assert_eq!(redis.events[1].r#type, "Task Setup");
    assert_eq!(redis.events[1].message, "Building Task Directory");
    assert_eq!(redis.events[1].summary(), "Building Task Directory");
    assert_eq!(redis.events[0].time, 1_495_755_675_956_923_000);
    assert_eq!((alloc.create_index, alloc.modify_index), (9, 13));
    assert!(alloc.deployment_status.is_none());
}

#[test]
fn job_evaluations() {
    let evals: Vec<Evaluation> = fixture("job-evaluations");
    let eval = &evals[0];
    assert_eq!(eval.id, "a9c5effc-2242-51b2-f1fe-054ee11ab189");
    assert_eq!(eval.r#type, "service");
    assert_eq!(eval.triggered_by, "job-register");
    assert_eq!(eval.job_id, "example");
    assert_eq!(eval.job_modify_index, 7);
    assert_eq!(eval.status, "complete");
    assert_eq!(eval.queued_allocations["cache"], 0);
    assert!(eval.failed_tg_allocs.is_empty());
    assert_eq!((eval.create_index, eval.modify_index), (8, 10));
}

#[test]
fn deployments() {
    let all: Vec<Deployment> = fixture("job-deployments");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].status, "successful");
    assert!(all[1].task_groups["cache"].placed_canaries.is_empty());
    let latest: Option<Deployment> = fixture("job-deployment");
    let d = latest.expect("deployment");
    assert_eq!(d.id, "85ee4a9a-339f-a921-a9ef-0550d20b2c61");
    assert_eq!(d.job_id, "my-job");
    assert_eq!(d.job_version, 1);
    assert_eq!(d.job_modify_index, 19);
    assert_eq!(d.job_create_index, 7);
    assert_eq!(d.status, "running");
    assert!(d.is_active());
    assert_eq!(d.status_description, "Deployment is running");
    let cache = &d.task_groups["cache"];
    assert!(cache.auto_revert);
    assert_eq!(cache.placed_canaries.len(), 2);
    assert_eq!(
        (
            cache.desired_canaries,
            cache.desired_total,
            cache.placed_allocs
        ),
        (2, 3, 2)
    );
    assert_eq!((cache.healthy_allocs, cache.unhealthy_allocs), (2, 0));
    assert_eq!((d.create_index, d.modify_index), (21, 25));
    let none: Option<Deployment> = serde_json::from_str("null").expect("null");
    assert!(none.is_none());
}

#[test]
fn summary() {
    let summary: JobSummary = fixture("job-summary");
    assert_eq!(summary.job_id, "example");
    assert_eq!(summary.summary["cache"].running, 1);
    assert_eq!(summary.children.as_ref().map(|c| c.dead), Some(0));
    assert_eq!((summary.create_index, summary.modify_index), (7, 13));
}

#[test]
fn plan() {
    let plan: JobPlanResponse = fixture("job-plan");
    assert_eq!(plan.job_modify_index, 0);
    assert_eq!(plan.diff_type(), Some(DiffType::Added));
    let diff = plan.diff.as_ref().expect("diff");
    assert_eq!(diff.id, "example");
    assert_eq!(diff.objects.len(), 3);
    assert_eq!(diff.objects[0].name, "Datacenters");
    let group = &diff.task_groups[0];
    assert_eq!(group.name, "cache");
    assert_eq!(group.updates["create"], 1);
    let task = &group.tasks[0];
    assert_eq!(task.name, "redis");
    assert_eq!(task.annotations, vec!["forces create".to_owned()]);
    assert_eq!(task.fields[0].name, "Driver");
    assert_eq!(task.fields[0].new, "docker");
    assert!(task.fields[0].annotations.is_empty());
    let updates = &plan
        .annotations
        .as_ref()
        .expect("annotations")
        .desired_tg_updates;
    assert_eq!(updates["cache"].place, 11);
    let failed = &plan.failed_tg_allocs["cache"];
    assert_eq!(failed.coalesced_failures, 3);
    assert_eq!(failed.dimension_exhausted["cpu exhausted"], 1);
    assert_eq!(failed.nodes_available["dc1"], 1);
    assert_eq!(plan.next_periodic_launch, "0001-01-01T00:00:00Z");
}

#[test]
fn plan_without_diff_type_is_an_error_not_no_change() {
    let result = serde_json::from_str::<JobPlanResponse>(r#"{"Diff": {"ID": "x"}}"#);
    assert!(result.is_err());
    let none: JobPlanResponse = serde_json::from_str(
        r#"{"Diff": {"Type": "None", "Objects": null}, "JobModifyIndex": 44}"#,
    )
    .expect("plan");
    assert_eq!(none.diff_type(), Some(DiffType::None));
    assert_eq!(none.job_modify_index, 44);
    let edited: JobPlanResponse =
        serde_json::from_str(r#"{"Diff": {"Type": "Edited"}, "Annotations": null}"#).expect("plan");
    assert_eq!(edited.diff_type(), Some(DiffType::Edited));
    assert!(edited.annotations.is_none());
}

#[test]
fn dispatch_and_periodic() {
    let dispatch: JobDispatchResponse = fixture("job-dispatch");
    assert_eq!(
        dispatch.dispatched_job_id,
        "example/dispatch-1485408778-81644024"
    );
    assert_eq!(dispatch.eval_id, "e5f55fac-bc69-119d-528a-1fc7ade5e02c");
    assert_eq!(
        (
            dispatch.index,
            dispatch.job_create_index,
            dispatch.eval_create_index
        ),
        (13, 12, 13)
    );
    let force: PeriodicForceResponse = fixture("job-periodic-force");
    assert_eq!(force.eval_id, "57983ddd-7fcf-3e3a-fd24-f699ccfb36f4");
    assert_eq!(force.eval_create_index, 7);
}

#[test]
fn allocations_list_and_read() {
    let list: Vec<AllocationListStub> = fixture("allocations-list");
    let stub = &list[0];
    assert_eq!(stub.id, "a8198d79-cfdb-6593-a999-1e9adabcba2e");
    assert_eq!(
        stub.previous_allocation,
        "516d2753-0513-cfc7-57ac-2d6fac18b9dc"
    );
    assert_eq!(stub.next_allocation, "cd13d9b9-4f97-7184-c88b-7b451981616b");
    assert_eq!(
        stub.task_states["redis"].events[1].driver_message,
        "Downloading image redis:3.2"
    );
    assert_eq!(
        stub.task_states["redis"].started_at,
        "2017-07-25T23:36:26.106431265Z"
    );
    assert_eq!(stub.modify_time, 1_495_747_371_794_276_400);

    let alloc: Allocation = fixture("allocation-read");
    assert_eq!(alloc.id, "a8198d79-cfdb-6593-a999-1e9adabcba2e");
    assert_eq!(alloc.eval_id, "5456bd7a-9fc0-c0dd-6131-cbee77f57577");
    assert_eq!(alloc.node_id, "fb2170a8-257d-3c64-b14d-bc06cc94e34c");
    assert_eq!(alloc.client_status, "running");
    assert_eq!(alloc.alloc_modify_index, 54);
    assert_eq!((alloc.create_index, alloc.modify_index), (54, 57));
    assert_eq!(alloc.task_states["redis"].events.len(), 3);
    let job = alloc.job.as_ref().expect("job");
    assert_eq!(job["TaskGroups"][0]["Name"], "cache");
}

#[test]
fn old_allocation_samples() {
    let list: Vec<AllocationListStub> = fixture("allocations-list.v0.3");
    assert_eq!(list[0].client_status, "running");
    assert_eq!(list[0].task_states["redis"].events[0].r#type, "Started");
    let alloc: Allocation = fixture("allocation-read.v0.3");
    assert_eq!(alloc.id, "203266e5-e0d6-9486-5e05-397ed2b184af");
    assert_eq!(alloc.modify_index, 9);
    assert!(alloc.job.is_some());
}

#[test]
fn nulls_and_unknown_fields_are_tolerated() {
    let stub: AllocationListStub = serde_json::from_str(
        r#"{"ID": "a", "TaskStates": null, "DeploymentStatus": {"Healthy": false,
            "Canary": true, "ModifyIndex": 3, "SomethingNew": [1]}, "Brand": "new"}"#,
    )
    .expect("stub");
    assert!(stub.task_states.is_empty());
    let status = stub.deployment_status.expect("status");
    assert_eq!(status.healthy, Some(false));
    assert!(status.canary);
    let state: TaskState =
        serde_json::from_str(r#"{"State": "dead", "Failed": true, "Events": null}"#)
            .expect("state");
    assert!(state.failed && state.events.is_empty());
    let deployment: Deployment = serde_json::from_str(
        r#"{"ID": "d", "TaskGroups": null, "Status": "failed",
            "StatusDescription": "Failed due to progress deadline - rolling back to job version 2"}"#,
    )
    .expect("deployment");
    assert_eq!(deployment.auto_revert_version(), Some(2));
    assert!(!deployment.is_active());
    let summary: JobSummary =
        serde_json::from_str(r#"{"Summary": null, "Children": null}"#).expect("summary");
    assert!(summary.summary.is_empty() && summary.children.is_none());
}
