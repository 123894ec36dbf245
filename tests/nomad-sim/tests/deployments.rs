//! Deployments: success marks the version stable, failures by progress
//! deadline and by unhealthy allocations, auto-revert, rolling updates,
//! cancellation, and the control API's client-status override.

mod common;

use common::{service_job, start};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_deployment_marks_version_stable() {
    let s = start(1000.0, None).await;
    s.register(service_job("ok", "/bin/sleep", &["1000"], 2, json!(null)))
        .await;
    let d = s.wait_deployment("ok", 0, "successful").await;
    assert_eq!(d["StatusDescription"], "Deployment completed successfully");
    assert_eq!(d["TaskGroups"]["web"]["DesiredTotal"], 2);
    assert_eq!(d["TaskGroups"]["web"]["HealthyAllocs"], 2);
    assert_eq!(d["TaskGroups"]["web"]["PlacedAllocs"], 2);
    let j = s.get_json("/v1/job/ok").await;
    assert_eq!(j["Stable"], true);
    assert_eq!(j["Status"], "running");
    let sum = s.get_json("/v1/job/ok/summary").await;
    assert_eq!(sum["Summary"]["web"]["Running"], 2);
    let allocs = s.get_json("/v1/job/ok/allocations").await;
    let a = &allocs[0];
    assert_eq!(a["DeploymentStatus"]["Healthy"], true);
    assert_eq!(a["ClientStatus"], "running");
    assert!(a["Name"].as_str().expect("name").starts_with("ok.web["));
    let full = s
        .get_json(&format!("/v1/allocation/{}", a["ID"].as_str().expect("id")))
        .await;
    assert_eq!(full["Job"]["ID"], "ok");
    assert!(!full["NodeID"].as_str().expect("node").is_empty());
    assert_eq!(full["TaskStates"]["server"]["State"], "running");
    assert_eq!(s.get("/v1/allocation/nope").await.status, 404);
    let latest = s.get_json("/v1/job/ok/deployment").await;
    assert_eq!(latest["ID"], d["ID"]);
    let by_id = s
        .get_json(&format!("/v1/deployment/{}", d["ID"].as_str().expect("id")))
        .await;
    assert_eq!(by_id["Status"], "successful");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tasks_fail_deployment_at_progress_deadline() {
    let s = start(1000.0, None).await;
    s.register(service_job("pd", "/bin/false", &[], 1, json!(null)))
        .await;
    let d = s.wait_deployment("pd", 0, "failed").await;
    assert_eq!(d["StatusDescription"], "Failed due to progress deadline");
    assert!(d["TaskGroups"]["web"]["UnhealthyAllocs"].as_u64() >= Some(1));
    let allocs = s.get_json("/v1/job/pd/allocations").await;
    let failed = allocs
        .as_array()
        .expect("allocs")
        .iter()
        .find(|a| a["ClientStatus"] == "failed")
        .expect("a failed alloc");
    assert_eq!(failed["DeploymentStatus"]["Healthy"], false);
    assert_eq!(failed["TaskStates"]["server"]["Restarts"], 2);
    assert_eq!(s.get_json("/v1/job/pd").await["Stable"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tasks_without_progress_deadline_fail_on_unhealthy() {
    let s = start(1000.0, None).await;
    s.register(service_job(
        "nopd",
        "/bin/false",
        &[],
        1,
        json!({"ProgressDeadline": 0}),
    ))
    .await;
    let d = s.wait_deployment("nopd", 0, "failed").await;
    assert_eq!(
        d["StatusDescription"],
        "Failed due to unhealthy allocations"
    );
    assert_eq!(d["TaskGroups"]["web"]["ProgressDeadline"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_revert_rolls_back_to_stable_version() {
    let s = start(1000.0, None).await;
    let update = json!({"AutoRevert": true});
    s.register(service_job(
        "ar",
        "/bin/sleep",
        &["1000"],
        1,
        update.clone(),
    ))
    .await;
    s.wait_deployment("ar", 0, "successful").await;
    s.register(service_job("ar", "/bin/false", &[], 1, update.clone()))
        .await;
    let d = s.wait_deployment("ar", 1, "failed").await;
    assert_eq!(
        d["StatusDescription"],
        "Failed due to progress deadline - rolling back to job version 0"
    );
    let v2 = s.wait_deployment("ar", 2, "successful").await;
    assert_eq!(v2["JobVersion"], 2);
    let versions = s.get_json("/v1/job/ar/versions").await;
    let vs = versions["Versions"].as_array().expect("versions");
    assert_eq!(vs[0]["Version"], 2);
    assert_eq!(
        vs[0]["TaskGroups"][0]["Tasks"][0]["Config"]["command"],
        "/bin/sleep"
    );
    assert_eq!(vs[0]["Stable"], true);
    assert_eq!(vs[1]["Stable"], false);
    assert_eq!(vs[2]["Stable"], true);

    // Without a stable version there is nothing to roll back to.
    s.register(service_job("nostable", "/bin/false", &[], 1, update))
        .await;
    let d = s.wait_deployment("nostable", 0, "failed").await;
    assert_eq!(
        d["StatusDescription"],
        "Failed due to progress deadline - no stable job version to auto revert to"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_max_parallel_and_cancels_old_deployment() {
    let s = start(100.0, None).await;
    s.register(service_job("roll", "/bin/sleep", &["1000"], 3, json!(null)))
        .await;
    s.wait_deployment("roll", 0, "successful").await;
    s.register(service_job("roll", "/bin/sleep", &["2000"], 3, json!(null)))
        .await;
    // While rolling, never more than MaxParallel (1) new allocs that are not yet healthy.
    let done = s
        .wait_for("v1 rollout", || async {
            let allocs = s.get_json("/v1/job/roll/allocations").await;
            let new: Vec<_> = allocs
                .as_array()?
                .iter()
                .filter(|a| a["JobVersion"] == 1 && a["DesiredStatus"] == "run")
                .cloned()
                .collect();
            let unhealthy = new
                .iter()
                .filter(|a| a["DeploymentStatus"]["Healthy"] != true)
                .count();
            assert!(unhealthy <= 1, "more than MaxParallel allocs in flight");
            let d = s.get_json("/v1/job/roll/deployment").await;
            (d["JobVersion"] == 1 && d["Status"] == "successful").then_some(new.len())
        })
        .await;
    assert_eq!(done, 3);
    // A new version mid-rollout cancels the running deployment.
    s.register(service_job("roll", "/bin/sleep", &["3000"], 3, json!(null)))
        .await;
    // Wait until version 2 has its deployment: an evaluation runs against the current
    // job, so a version replaced before its evaluation ran never gets one (as in Nomad).
    s.wait_deployment("roll", 2, "running").await;
    s.register(service_job("roll", "/bin/sleep", &["4000"], 3, json!(null)))
        .await;
    let d = s.wait_deployment("roll", 2, "cancelled").await;
    assert_eq!(
        d["StatusDescription"],
        "Cancelled due to newer version of job"
    );
    s.wait_deployment("roll", 3, "successful").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_client_status_lost_and_failed() {
    let s = start(1000.0, None).await;
    s.register(service_job("ctl", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    s.wait_deployment("ctl", 0, "successful").await;
    let allocs = s.get_json("/v1/job/ctl/allocations").await;
    let id = allocs[0]["ID"].as_str().expect("id").to_string();
    s.sim.set_alloc_client_status(&id, "lost").expect("lost");
    let replacement = s
        .wait_for("replacement", || async {
            let allocs = s.get_json("/v1/job/ctl/allocations").await;
            allocs
                .as_array()?
                .iter()
                .find(|a| a["ID"] != id.as_str() && a["ClientStatus"] == "running")
                .map(|a| a["ID"].as_str().unwrap_or_default().to_string())
        })
        .await;
    let sum = s.get_json("/v1/job/ctl/summary").await;
    assert_eq!(sum["Summary"]["web"]["Lost"], 1);
    assert_eq!(sum["Summary"]["web"]["Running"], 1);

    let r = s
        .post(
            &format!("/_sim/allocations/{replacement}/client-status"),
            json!({"ClientStatus": "failed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = s.get_json(&format!("/v1/allocation/{replacement}")).await;
    assert_eq!(a["ClientStatus"], "failed");
    assert_eq!(a["TaskStates"]["server"]["Failed"], true);
    let r = s
        .post(
            "/_sim/allocations/nope/client-status",
            json!({"ClientStatus": "failed"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(s.sim.set_alloc_client_status(&id, "bogus").is_err());
}
