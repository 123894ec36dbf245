//! The controller end to end: the real `run` code path against a real kube-apiserver and
//! a Nomad. Each scenario runs twice from the same body: on the simulator (`on_sim::`)
//! and on the run's real Nomad v1.1.2 agent (`on_real_nomad::`); the few that need fault
//! injection run on the simulator only. Each test has its own Kubernetes namespace and
//! operator, and its own simulator or Nomad namespace.

mod support;

use nomad_operator::crd::RevertActor;
use nomad_operator::nomad::Scope;
use serde_json::{Value, json};
use support::operator::{Backend, Harness, TOKEN, condition, ready, ready_message, wait_until};
use support::scenarios;

const WEB: &str = "/v1/job/web";

async fn create_registers_once_and_becomes_ready_and_resyncs_write_nothing(backend: Backend) {
    let h = Harness::start_on(backend, "create", &[]).await;
    h.apply(
        "web",
        json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h.wait_for("web", "Ready=True", ready).await;

    let status = obj.status.clone().expect("status");
    assert_eq!(status.job_id.as_deref(), Some("web"));
    assert_eq!(status.job_version, Some(0));
    assert_eq!(status.job_status.as_deref(), Some("running"));
    let deployment = status.deployment.clone().expect("deployment");
    assert_eq!(
        (deployment.status.as_str(), deployment.job_version),
        ("successful", 0)
    );
    assert_eq!(deployment.task_groups["web"].healthy, 2);
    assert_eq!(status.summary["web"].running, 2);
    assert_eq!(status.allocations.len(), 2);
    assert!(
        status
            .allocations
            .iter()
            .all(|a| a.client_status == "running" && a.healthy == Some(true))
    );
    assert_eq!(status.allocations[0].tasks["server"].state, "running");
    assert!(condition(&obj, "Stalled").is_some_and(|c| c.status == "False"));
    assert!(
        h.wait_event("web", "Registered")
            .await
            .contains("registered version 0")
    );

    // The job carries its owner in Meta, and the token went to Nomad, never to status.
    let job = h.nomad_job("web").await.expect("job in Nomad");
    assert_eq!(job["Meta"]["nomadoperator.dev/owner-name"], "web");
    assert!(!serde_json::to_string(&obj).expect("json").contains(TOKEN));
    assert_eq!(h.count("POST", WEB), 1, "one register");

    // Once the next plan shows nothing to do, the status is settled.
    let obj = h
        .wait_for("web", "plan None", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.plan.as_ref())
                .is_some_and(|p| p.diff_type == "None")
        })
        .await;

    // Several resyncs (2 s each) and an identical re-apply: plans, but no register, no
    // new version, no new evaluation, and no status write.
    let evaluations = h
        .nomad
        .job_evaluations(&Scope::default(), "web")
        .await
        .expect("evals")
        .len();
    let plans = h.count("POST", "/v1/job/web/plan");
    h.apply(
        "web",
        json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    h.wait_requests("POST", "/v1/job/web/plan", plans + 3).await;
    let after = h.api().get("web").await.expect("get");
    assert_eq!(
        h.count("POST", WEB),
        1,
        "no register on resync or identical re-apply"
    );
    assert_eq!(h.nomad_versions("web").await.len(), 1, "no new version");
    let evaluations_after = h
        .nomad
        .job_evaluations(&Scope::default(), "web")
        .await
        .expect("evals")
        .len();
    assert_eq!(evaluations_after, evaluations, "no new evaluation");
    assert_eq!(
        after.metadata.resource_version, obj.metadata.resource_version,
        "no status write at rest"
    );
}

async fn spec_change_registers_a_new_version_and_re_plans_on_check_and_set_conflict(
    backend: Backend,
) {
    let h = Harness::start_on(backend, "update", &[]).await;
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    assert_eq!(h.count("POST", WEB), 1);

    // On the simulator, someone else's write lands between the operator's plan and its
    // register: Nomad answers the check-and-set with its 500 text. The operator re-plans
    // and registers.
    let conflicts = match h.sim() {
        Some(sim) => {
            sim.add_fault(nomad_sim::Fault {
                method: Some("POST".into()),
                path: WEB.into(),
                status: Some(500),
                body: Some("job exists with conflicting job modify index: 1".into()),
                times: Some(1),
                ..Default::default()
            });
            1
        }
        None => 0,
    };
    let plans = h.count("POST", "/v1/job/web/plan");
    h.apply(
        "web",
        json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h
        .wait_for("web", "version 1 ready", |o| {
            ready(o) && o.status.as_ref().and_then(|s| s.job_version) == Some(1)
        })
        .await;
    assert_eq!(
        h.count("POST", WEB),
        2 + conflicts,
        "initial register, the conflicting one (if any), the re-planned one"
    );
    assert!(
        h.count("POST", "/v1/job/web/plan") > plans + conflicts,
        "planned, and re-planned after the conflict"
    );
    assert_eq!(
        obj.status.as_ref().map(|s| s.summary["web"].running),
        Some(2)
    );
    let versions = h.nomad_versions("web").await;
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["TaskGroups"][0]["Count"], 2);
    assert_eq!(versions[1]["Stable"], true);
    // Each register has an Event of its own: the second is not folded into the first.
    h.wait_event_with("web", "Registered", "registered version 0")
        .await;
    h.wait_event_with("web", "Registered", "registered version 1")
        .await;
}

async fn failed_deployment_is_reverted_once_and_the_spec_is_not_registered_again(backend: Backend) {
    let h = Harness::start_on(backend, "revert", &[]).await;
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;

    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/false", &[], false)}),
    )
    .await;
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("Reverted"))
        .await;
    let status = obj.status.clone().expect("status");
    let revert = status.last_revert.clone().expect("lastRevert");
    assert_eq!(
        (revert.from_version, revert.to_version, revert.by),
        (1, 0, RevertActor::Operator)
    );
    assert!(
        revert.reason.starts_with("Failed due to"),
        "{}",
        revert.reason
    );
    assert_eq!(status.failed_digest, status.last_applied_digest);
    assert!(condition(&obj, "Ready").is_some_and(|c| c.status == "False"));
    let message = condition(&obj, "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("nomadoperator.dev/retry"), "{message}");
    assert!(
        h.wait_event("web", "DeploymentFailed")
            .await
            .contains("version 1 failed")
    );
    assert!(
        h.wait_event("web", "Reverted")
            .await
            .contains("from version 1 to stable version 0")
    );
    assert_eq!(h.count("POST", "/v1/job/web/revert"), 1);

    // Nomad runs the reverted copy of version 0 as version 2.
    let job = h.nomad_job("web").await.expect("job");
    assert_eq!(job["Version"], 2);
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["command"],
        "/bin/sleep"
    );

    // Several resync periods later: no register loop, no second revert.
    h.wait_reconciles(4).await;
    assert_eq!(
        h.count("POST", WEB),
        2,
        "the failed spec is not registered again"
    );
    assert_eq!(h.count("POST", "/v1/job/web/revert"), 1);

    // Changing the retry annotation registers the spec again.
    h.apply_with(
        "web",
        json!({"job": h.service_job(1, "/bin/false", &[], false)}),
        json!({"annotations": {"nomadoperator.dev/retry": "1"}}),
    )
    .await;
    wait_until("a register after the retry annotation", || async {
        h.count("POST", WEB) == 3
    })
    .await;
}

async fn nomad_auto_revert_is_recorded_and_not_repeated(backend: Backend) {
    let h = Harness::start_on(backend, "autorevert", &[]).await;
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], true)}),
    )
    .await;
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/false", &[], true)}),
    )
    .await;
    let obj = h
        .wait_for("web", "lastRevert by Nomad", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.last_revert.as_ref())
                .is_some()
        })
        .await;
    let revert = obj
        .status
        .as_ref()
        .and_then(|s| s.last_revert.clone())
        .expect("lastRevert");
    assert_eq!(
        (revert.from_version, revert.to_version, revert.by),
        (1, 0, RevertActor::Nomad)
    );
    assert!(
        revert.reason.contains("rolling back to job version 0"),
        "{}",
        revert.reason
    );
    h.wait_reconciles(3).await;
    assert_eq!(
        h.count("POST", "/v1/job/web/revert"),
        0,
        "the operator does not revert again"
    );
    assert_eq!(h.count("POST", WEB), 2);
    assert!(
        h.wait_event("web", "Reverted")
            .await
            .contains("Nomad's auto-revert")
    );
}

/// Changes the job in Nomad behind the operator's back (keeping its ownership Meta).
async fn change_out_of_band(h: &Harness) {
    let mut job = h.nomad_job("web").await.expect("job");
    job["Priority"] = json!(80);
    h.nomad
        .register_job(&Scope::default(), &job, None)
        .await
        .expect("out-of-band register");
}

async fn drift_is_corrected_by_default(backend: Backend) {
    let h = Harness::start_on(backend, "drift-fix", &[]).await;
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    change_out_of_band(&h).await;
    let note = h.wait_event("web", "DriftCorrected").await;
    assert!(note.contains("re-registered"), "{note}");
    wait_until("priority restored", || async {
        h.nomad_job("web")
            .await
            .is_some_and(|j| j["Priority"] == json!(50))
    })
    .await;
    h.wait_condition("web", "Drifted", "False", None).await;
}

async fn drift_is_only_reported_with_policy_report(backend: Backend) {
    let h = Harness::start_on(backend, "drift-report", &[]).await;
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false), "driftPolicy": "Report"}),
    )
    .await;
    h.wait_for("web", "Ready", ready).await;
    change_out_of_band(&h).await;
    h.wait_condition("web", "Drifted", "True", Some("DriftDetected"))
        .await;
    let plans = h.count("POST", "/v1/job/web/plan");
    h.wait_requests("POST", "/v1/job/web/plan", plans + 2).await;
    assert_eq!(
        h.count("POST", WEB),
        2,
        "the operator's register and the out-of-band one only"
    );
    assert_eq!(
        h.nomad_job("web").await.map(|j| j["Priority"].clone()),
        Some(json!(80))
    );
    h.wait_event("web", "DriftDetected").await;
}

async fn deletion_policies_deregister_purge_or_orphan(backend: Backend) {
    let h = Harness::start_on(backend, "delete", &[]).await;
    for (name, policy) in [
        ("stop", "Deregister"),
        ("purge", "Purge"),
        ("keep", "Orphan"),
    ] {
        h.apply(name, json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false), "deletionPolicy": policy}))
            .await;
    }
    for name in ["stop", "purge", "keep"] {
        h.wait_for(name, "Ready", ready).await;
        h.delete_and_wait(name).await;
    }
    let stopped = h.nomad_job("stop").await.expect("deregistered job is kept");
    assert_eq!(
        (stopped["Stop"].clone(), stopped["Status"].clone()),
        (json!(true), json!("dead"))
    );
    assert!(h.nomad_job("purge").await.is_none(), "purged");
    assert_eq!(h.count("DELETE", "/v1/job/keep"), 0);
    assert_eq!(
        h.nomad_job("keep").await.map(|j| j["Stop"].clone()),
        Some(json!(false))
    );
}

async fn invalid_spec_stalls_without_calling_nomad_and_never_blocks_deletion(backend: Backend) {
    let h = Harness::start_on(backend, "invalid", &[]).await;
    let mut job = h.service_job(1, "/bin/sleep", &[], false);
    job["ID"] = json!("something-else");
    h.apply("web", json!({"job": job})).await;
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("InvalidSpec"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("spec.job.ID") && message.contains("something-else"),
        "{message}"
    );
    assert!(
        h.wait_event("web", "InvalidSpec")
            .await
            .contains("spec.job.ID")
    );
    assert_eq!(
        h.count_prefix("/v1/job/"),
        0,
        "no Nomad call for an invalid spec"
    );
    h.delete_and_wait("web").await;
    assert_eq!(h.count_prefix("/v1/job/"), 0);
}

async fn nomad_down_is_reported_and_recovered_from(backend: Backend) {
    let h = Harness::start_on(backend, "down", &[]).await;
    let sim = h.sim().expect("fault injection needs the simulator");
    sim.add_fault(nomad_sim::Fault {
        path: "*".into(),
        drop_connection: true,
        ..Default::default()
    });
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h
        .wait_condition("web", "Ready", "False", Some("NomadUnavailable"))
        .await;
    let message = ready_message(&obj);
    assert!(message.contains("retrying"), "{message}");
    assert!(!message.contains(TOKEN));
    assert!(h.wait_event("web", "NomadUnavailable").await.len() > 10);
    sim.clear_faults();
    h.wait_for("web", "Ready after Nomad returns", ready).await;
}

async fn two_objects_claiming_one_job_and_a_foreign_job_are_conflicts(backend: Backend) {
    // A resync far away: the owner must get its Nomad events through the watchers.
    let h = Harness::start_on(backend, "conflict", &["--resync-interval", "1h"]).await;
    h.apply(
        "first",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false), "jobID": "shared"}),
    )
    .await;
    h.wait_for("first", "Ready", ready).await;
    h.apply(
        "second",
        json!({"job": h.service_job(3, "/bin/sleep", &["1000000"], false), "jobID": "shared"}),
    )
    .await;
    let obj = h
        .wait_condition("second", "Stalled", "True", Some("Conflict"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains(&format!("NomadJob {}/first", h.ns.name)),
        "{message}"
    );
    assert!(h.wait_event("second", "Conflict").await.contains("shared"));

    // A job created outside the operator.
    let mut foreign = h.service_job(1, "/bin/sleep", &["1000000"], false);
    foreign["ID"] = json!("legacy");
    // Nomad files a job whose body names no namespace under "default", whatever the
    // request's `?namespace=` says.
    foreign["Namespace"] = json!(h.nomad_namespace);
    h.nomad
        .register_job(&Scope::default(), &foreign, None)
        .await
        .expect("foreign job");
    h.apply(
        "legacy",
        json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h
        .wait_condition("legacy", "Stalled", "True", Some("Conflict"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("not created by nomad-operator"),
        "{message}"
    );

    // The owner still follows Nomad's events: an allocation change reaches its status.
    let first = h.api().get("first").await.expect("first");
    let alloc = first
        .status
        .as_ref()
        .map(|s| s.allocations[0].id.clone())
        .expect("allocation");
    let changed = h.disturb_allocation(&alloc).await;
    h.wait_for("first", "allocation changed", |o| {
        o.status.as_ref().is_some_and(|s| {
            s.allocations
                .iter()
                .any(|a| a.id == alloc && a.client_status == changed)
        })
    })
    .await;
    assert_eq!(
        h.count("POST", "/v1/job/shared"),
        1,
        "only the first object registered"
    );
    assert_eq!(h.nomad_versions("shared").await.len(), 1);
    assert_eq!(
        h.count("POST", "/v1/job/legacy"),
        1,
        "only the out-of-band register"
    );
    assert_eq!(
        h.nomad_job("shared")
            .await
            .map(|j| j["TaskGroups"][0]["Count"].clone()),
        Some(json!(1))
    );
}

async fn suspended_objects_make_no_nomad_calls(backend: Backend) {
    let h = Harness::start_on(backend, "suspend", &[]).await;
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false), "suspend": true}),
    )
    .await;
    h.wait_condition("web", "Reconciling", "False", Some("Suspended"))
        .await;
    assert_eq!(h.count_prefix("/v1/job/"), 0);
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false), "suspend": false}),
    )
    .await;
    h.wait_for("web", "Ready once resumed", ready).await;
}

async fn allocation_changes_in_nomad_reach_the_status_without_polling(backend: Backend) {
    // A resync far away: only the Nomad watchers can bring the change.
    let h = Harness::start_on(backend, "allocs", &["--resync-interval", "1h"]).await;
    h.apply(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h.wait_for("web", "Ready", ready).await;
    // The status keeps the plan that was registered: one plan per create, and nothing
    // in it changes at the first resync.
    let plan = obj.status.as_ref().and_then(|s| s.plan.clone());
    assert!(
        plan.as_ref()
            .is_some_and(|p| p.diff_type == "Added" && p.registered),
        "{plan:?}"
    );
    assert_eq!(h.count("POST", "/v1/job/web/plan"), 1, "one plan");
    let alloc = obj
        .status
        .as_ref()
        .map(|s| s.allocations[0].id.clone())
        .expect("allocation");
    // The allocation's new client status, and the job summary that counts it.
    let changed = h.disturb_allocation(&alloc).await;
    h.wait_for("web", "allocation change in status and summary", |o| {
        o.status.as_ref().is_some_and(|s| {
            let counted = match changed {
                "lost" => s.summary["web"].lost,
                _ => s.summary["web"].complete,
            };
            counted == 1
                && s.allocations
                    .iter()
                    .any(|a| a.id == alloc && a.client_status == changed)
        })
    })
    .await;
}

async fn batch_jobs_are_ready_without_a_deployment(backend: Backend) {
    let h = Harness::start_on(backend, "batch", &[]).await;
    let job: Value = json!({
        "Type": "batch",
        "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "once", "Count": 1, "Tasks": [{"Name": "run", "Driver": "raw_exec", "Config": {"command": "/bin/true"}}]}]
    });
    h.apply("report", json!({"job": job})).await;
    let obj = h.wait_for("report", "Ready", ready).await;
    assert!(obj.status.as_ref().is_some_and(|s| s.deployment.is_none()));
    h.wait_for("report", "job dead after completion", |o| {
        o.status.as_ref().is_some_and(|s| {
            s.job_status.as_deref() == Some("dead") && s.summary["once"].complete == 1
        })
    })
    .await;
}

/// Applies an example manifest from `examples/` into the harness namespace with kubectl.
fn kubectl_apply(h: &Harness, file: &str) {
    h.kubectl_apply(&format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR")));
}

async fn the_examples_do_what_their_comments_say(backend: Backend) {
    let h = Harness::start_on(backend, "examples", &[]).await;
    kubectl_apply(&h, "web.yaml");
    let obj = h.wait_for("web", "Ready", ready).await;
    assert_eq!(obj.status.as_ref().map(|s| s.allocations.len()), Some(2));

    kubectl_apply(&h, "web-bad-release.yaml");
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("Reverted"))
        .await;
    let revert = obj
        .status
        .as_ref()
        .and_then(|s| s.last_revert.clone())
        .expect("lastRevert");
    assert_eq!(
        (revert.from_version, revert.to_version, revert.by),
        (1, 0, RevertActor::Operator)
    );

    kubectl_apply(&h, "report-batch.yaml");
    h.wait_for("nightly-report", "Ready and dead", |o| {
        ready(o)
            && o.status.as_ref().is_some_and(|s| {
                s.deployment.is_none()
                    && s.job_status.as_deref() == Some("dead")
                    && s.summary["once"].complete == 1
            })
    })
    .await;
}

async fn one_broken_object_does_not_stop_the_others(backend: Backend) {
    let h = Harness::start_on(backend, "isolation", &[]).await;
    let mut broken = h.service_job(1, "/bin/sleep", &["1000000"], false);
    broken["TaskGroups"][0]["Tasks"] = json!([]);
    h.apply("broken", json!({"job": broken})).await;
    // A job Nomad itself rejects: its validation wants at least 10 MB of memory.
    let mut rejected = h.service_job(1, "/bin/sleep", &["1000000"], false);
    rejected["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(1);
    h.apply("rejected", json!({"job": rejected, "jobID": "rejected"}))
        .await;
    h.apply_ready(
        "healthy",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    h.wait_condition("broken", "Stalled", "True", Some("InvalidSpec"))
        .await;
    let obj = h
        .wait_condition("rejected", "Stalled", "True", Some("NomadRejected"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("validation failed") && message.contains("minimum MemoryMB value is 10"),
        "{message}"
    );
    assert_eq!(h.count("POST", "/v1/job/rejected"), 0, "never registered");
}

async fn a_job_created_between_read_and_register_is_not_overwritten(backend: Backend) {
    let h = Harness::start_on(backend, "race", &[]).await;
    let sim = h.sim().expect("fault injection needs the simulator");
    // A job created outside the operator that the operator's first read misses: it
    // appears between the read and the plan.
    let mut foreign = h.service_job(1, "/bin/sleep", &["1000000"], false);
    foreign["ID"] = json!("web");
    h.nomad
        .register_job(&Scope::default(), &foreign, None)
        .await
        .expect("foreign job");
    sim.add_fault(nomad_sim::Fault {
        method: Some("GET".into()),
        path: WEB.into(),
        status: Some(404),
        body: Some("job not found".into()),
        times: Some(1),
        ..Default::default()
    });
    h.apply(
        "web",
        json!({"job": h.service_job(3, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("Conflict"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("not created by nomad-operator"),
        "{message}"
    );
    assert_eq!(h.count("POST", WEB), 1, "only the foreign register");
    assert_eq!(
        h.nomad_job("web")
            .await
            .map(|j| j["TaskGroups"][0]["Count"].clone()),
        Some(json!(1)),
        "the foreign job is untouched"
    );
}

async fn a_status_waits_for_the_allocations_a_deployment_counts_then_reads_them(backend: Backend) {
    // No plan at the end of the status hold (the harness's plan interval is as short):
    // the read asserted below is the wait's alone.
    let h = Harness::start_on(backend, "lagging", &["--plan-interval", "1h"]).await;
    let sim = h.sim().expect("fault injection needs the simulator");
    // The cluster's watches answer once before the object exists (their second query
    // blocks; Nomad 1.1.2 lists deployments by namespace, watched once an object is).
    wait_until("the jobs and allocations watched", || async {
        ["/v1/jobs", "/v1/allocations"]
            .iter()
            .all(|list| h.count("GET", list) >= 2)
    })
    .await;
    // The allocations watch's query now blocking answers at the first placement; the
    // one after it is held 30 s: meanwhile the deployments watch shows the deployment
    // counting the allocations healthy, and over, and the allocations list does not.
    sim.add_fault(nomad_sim::Fault {
        method: Some("GET".into()),
        path: "/v1/allocations".into(),
        latency_ms: Some(30_000),
        times: Some(1),
        ..Default::default()
    });
    let (statuses, watch) = record_statuses(&h, "web").await;
    h.apply(
        "web",
        json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    let obj = h.wait_for("web", "Ready=True", ready).await;
    watch.abort();
    let status = obj.status.expect("status");
    assert_eq!(
        status.deployment.as_ref().map(|d| d.status.as_str()),
        Some("successful")
    );
    assert_eq!(status.allocations.len(), 2);
    assert!(status.allocations.iter().all(|a| a.healthy == Some(true)));
    for shown in statuses.lock().expect("statuses").iter() {
        let counted: u64 = shown
            .deployment
            .iter()
            .flat_map(|d| d.task_groups.values())
            .map(|g| g.healthy)
            .sum();
        let listed = shown
            .allocations
            .iter()
            .filter(|a| a.healthy == Some(true))
            .count();
        assert!(
            counted <= listed as u64,
            "a status showed {counted} healthy in the deployment and {listed} allocations healthy: {shown:#?}"
        );
    }
    // The allocations were read once, when the wait was over: no sooner than 5 s
    // after the register (the allocations watch was still held then).
    let log = sim.requests();
    let at = |method: &str, path: &str| -> Vec<u64> {
        log.iter()
            .filter(|r| r.method == method && r.path == path)
            .map(|r| r.at_ms)
            .collect()
    };
    let registered = at("POST", WEB);
    let reads = at("GET", "/v1/job/web/allocations");
    assert_eq!(registered.len(), 1, "one register");
    assert_eq!(reads.len(), 1, "one read of the allocations: {reads:?}");
    assert!(
        reads[0] >= registered[0] + 5_000,
        "read {} ms after the register",
        reads[0] - registered[0]
    );
}

/// Every status `name` is given, in order (a watch on the object, until aborted),
/// from the status it has when the watch has listed it on. Returns once that list is
/// done, so that nothing written after the call is missed.
async fn record_statuses(
    h: &Harness,
    name: &str,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<nomad_operator::crd::NomadJobStatus>>>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = statuses.clone();
    let (listed, on_listed) = tokio::sync::watch::channel(false);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let watch = tokio::spawn(watcher(h.api(), config).for_each(move |event| {
        match event {
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                let mut seen = seen.lock().expect("statuses");
                if let Some(status) = obj.status
                    && seen.last() != Some(&status)
                {
                    seen.push(status);
                }
            }
            Ok(watcher::Event::InitDone) => {
                let _ = listed.send(true);
            }
            _ => {}
        }
        futures::future::ready(())
    }));
    let mut on_listed = on_listed;
    on_listed
        .wait_for(|listed| *listed)
        .await
        .expect("the status watch listed the object");
    (statuses, watch)
}

/// A hold longer than the deployment: the status after the register is held back,
/// and the first status the object is given is the deployment's outcome (one write
/// instead of two), while the `Registered` Event comes at once. Nothing is planned or
/// registered twice for it.
async fn a_deployment_that_ends_within_the_status_hold_is_shown_in_one_write(backend: Backend) {
    let h = Harness::start_on(
        backend,
        "holdshort",
        &["--status-hold", "1h", "--plan-interval", "1h"],
    )
    .await;
    let (statuses, watch) = record_statuses(&h, "web").await;
    h.apply(
        "web",
        json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    h.wait_event_with("web", "Registered", "registered version 0")
        .await;
    let obj = h.wait_for("web", "Ready=True", ready).await;
    watch.abort();
    let statuses = statuses.lock().expect("statuses").clone();
    let first = statuses.first().expect("a status was written");
    let ready_first = first
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.as_str(), c.reason.as_str()));
    assert_eq!(
        ready_first,
        Some(("True", "Succeeded")),
        "the first status shows the outcome: {statuses:#?}"
    );
    let status = obj.status.expect("status");
    assert_eq!(
        (status.job_version, status.applied_version),
        (Some(0), Some(0))
    );
    assert_eq!(
        status.deployment.as_ref().map(|d| d.status.as_str()),
        Some("successful")
    );
    assert_eq!(h.count("POST", "/v1/job/web/plan"), 1, "one plan");
    assert_eq!(h.count("POST", WEB), 1, "one register");
}

/// A deployment that outlasts the hold (its allocations need an hour of health): once
/// the default hold (2 s) ends, the status shows the rollout under way, as it would
/// without a hold, and it was not planned or registered again for it.
async fn a_deployment_longer_than_the_status_hold_is_shown_under_way(backend: Backend) {
    let h = Harness::start_on(backend, "holdlong", &["--plan-interval", "1h"]).await;
    let mut job = h.service_job(1, "/bin/sleep", &["1000000"], false);
    job["TaskGroups"][0]["Update"]["MinHealthyTime"] = json!(3_600_000_000_000u64);
    job["TaskGroups"][0]["Update"]["HealthyDeadline"] = json!(7_200_000_000_000u64);
    job["TaskGroups"][0]["Update"]["ProgressDeadline"] = json!(10_800_000_000_000u64);
    h.apply("web", json!({ "job": job })).await;
    let obj = h
        .wait_for("web", "Reconciling=True, deployment running", |o| {
            condition(o, "Reconciling").is_some_and(|c| c.status == "True")
                && o.status
                    .as_ref()
                    .and_then(|s| s.deployment.as_ref())
                    .is_some_and(|d| d.status == "running")
        })
        .await;
    let reconciling = condition(&obj, "Reconciling").expect("Reconciling");
    assert_eq!(reconciling.reason, "Deploying", "{reconciling:#?}");
    assert!(condition(&obj, "Ready").is_some_and(|c| c.status == "False"));
    let status = obj.status.expect("status");
    assert_eq!(status.applied_version, Some(0));
    assert_eq!(h.count("POST", "/v1/job/web/plan"), 1, "one plan");
    assert_eq!(h.count("POST", WEB), 1, "one register");
}

/// A ready object's job registered again without a recorded intent (purged in Nomad
/// behind the operator's back, and re-registered) is not held, however long the hold:
/// the status stops showing the purged job `Ready` at once, so that nothing waiting
/// for `Ready` takes it for the new one; then the outcome.
async fn a_ready_object_registered_again_is_shown_under_way_at_once(backend: Backend) {
    let h = Harness::start_on(
        backend,
        "holdready",
        &["--status-hold", "1h", "--plan-interval", "1h"],
    )
    .await;
    let obj = h
        .apply_ready(
            "web",
            json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
        )
        .await;
    let purged = obj.status.and_then(|s| s.job_create_index);
    let (statuses, watch) = record_statuses(&h, "web").await;
    h.nomad
        .deregister_job(&Scope::default(), "web", true)
        .await
        .expect("purge");
    let obj = h
        .wait_for("web", "Ready=True for the new job", |o| {
            ready(o)
                && o.status
                    .as_ref()
                    .is_some_and(|s| s.job_create_index.is_some() && s.job_create_index != purged)
        })
        .await;
    watch.abort();
    let statuses = statuses.lock().expect("statuses").clone();
    let first_of_new = statuses
        .iter()
        .find(|s| s.job_create_index != purged)
        .expect("a status of the new job");
    let ready_first = first_of_new
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(
        !ready_first,
        "the new job was shown under way first: {statuses:#?}"
    );
    assert!(ready(&obj));
    assert_eq!(h.count("POST", WEB), 2, "registered again once");
}

/// The `Ready` condition's reason of `name`, read with kubectl: an object that cannot be
/// decoded cannot be read through the typed API either.
fn ready_reason(h: &Harness, name: &str) -> String {
    let out = support::envtest::kubectl(&[
        "get",
        "nomadjob",
        name,
        "-n",
        &h.ns.name,
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}"#,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn an_object_nested_too_deep_to_decode_sits_next_to_healthy_ones(backend: Backend) {
    let mut h = Harness::start_on(backend, "deep", &[]).await;
    // 200 levels: the apiserver takes it, serde's decoder (128 levels) does not.
    let mut deep = json!("bottom");
    for _ in 0..200 {
        deep = json!({"nested": deep});
    }
    let mut job = h.service_job(1, "/bin/sleep", &["1000000"], false);
    job["Meta"] = json!({"deep": deep});
    let manifest = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1",
        "kind": "NomadJob",
        "metadata": {"name": "deep", "namespace": h.ns.name},
        "spec": {"job": job},
    });
    let path = std::env::temp_dir().join(format!("deep-{}.json", h.ns.name));
    std::fs::write(&path, manifest.to_string()).expect("write manifest");
    let out = support::envtest::kubectl(&["apply", "-f", &path.to_string_lossy()]);
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.apply_ready(
        "before",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    wait_until("the deep object reported as InvalidSpec", || async {
        ready_reason(&h, "deep") == "InvalidSpec"
    })
    .await;
    let note = h.wait_event("deep", "InvalidSpec").await;
    assert!(note.contains("cannot be decoded"), "{note}");

    // After a restart the first list of objects holds the deep one: the others still
    // reconcile.
    h.restart_operator(&[]).await;
    h.apply_ready(
        "after",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    h.wait_for("before", "still Ready", ready).await;
    assert_eq!(ready_reason(&h, "deep"), "InvalidSpec");
    assert_eq!(h.count_prefix("/v1/job/deep"), 0, "nothing reached Nomad");
    let out =
        support::envtest::kubectl(&["delete", "-f", &path.to_string_lossy(), "--timeout=60s"]);
    assert!(
        out.status.success(),
        "kubectl delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&path);
}

/// With the default plan interval, a resync takes the job from the watches and writes
/// nothing, and plans only when something moved: here, someone else's register of the
/// job.
async fn resyncs_take_the_job_from_the_watches_and_do_not_plan(backend: Backend) {
    let h = Harness::start_on(backend, "noplan", &["--plan-interval", "1h"]).await;
    // Until every watch has answered once, a reconcile reads the job.
    wait_until("every watch answered", || async {
        h.mirror().is_some_and(|m| m.synced())
    })
    .await;
    let spec = json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)});
    let obj = h.apply_ready("web", spec).await;
    // The plan's diff tells what the register created: the new job is not read back.
    let create: Vec<(String, String)> = h
        .requests()
        .into_iter()
        .filter(|(_, path)| path == WEB)
        .skip_while(|(method, _)| method != "POST")
        .collect();
    assert_eq!(
        create,
        [("POST".to_string(), WEB.to_string())],
        "after its register, a created job is not read"
    );
    let status = obj.status.clone().expect("status");
    let live = h.nomad_job("web").await.expect("job");
    assert_eq!(
        (
            status.job_version,
            status.job_modify_index,
            status.job_create_index
        ),
        (
            live["Version"].as_u64(),
            live["JobModifyIndex"].as_u64(),
            live["CreateIndex"].as_u64()
        ),
        "the status has the version and indexes Nomad gave the job"
    );
    let calls = h.requests().len();
    // Three resyncs (2 s each) pass...
    h.wait_reconciles(3).await;
    // ...taking the job from what the watches carry: no read of the job, no plan, no
    // register. Nomad 1.1.2 lists no deployments of all namespaces at once: until the
    // watch of the job's namespace answers, the job's are read while one may still
    // change; and while the allocations watch has not yet shown the health a
    // deployment counts (the two answer apart), the job's allocations are read...
    let made: Vec<(String, String)> = h.requests().split_off(calls);
    let catching_up = ["/v1/job/web/deployments", "/v1/job/web/allocations"];
    assert!(
        made.iter()
            .all(|(_, path)| catching_up.contains(&path.as_str()) || !path.starts_with(WEB)),
        "resyncs with nothing moved read at most the job's deployments and allocations: {made:?}"
    );
    // ...and not once the last read found them all over, with the job's allocations
    // unchanged since: two more resyncs make no call for the job at all.
    let calls = h.requests().len();
    h.wait_reconciles(2).await;
    let made: Vec<(String, String)> = h.requests().split_off(calls);
    assert!(
        made.iter().all(|(_, path)| !path.starts_with(WEB)),
        "resyncs with nothing moved and the deployment over make no call for the job: {made:?}"
    );
    assert_eq!(h.count("POST", WEB), 1, "and no register");
    let plans = h.count("POST", "/v1/job/web/plan");
    // Someone registers the job in Nomad: its JobModifyIndex moves, the watches see it,
    // and the next reconcile reads the job and plans (and corrects the drift).
    let mut live = h.nomad_job("web").await.expect("job");
    live["Meta"]["changed-by"] = json!("someone");
    h.nomad
        .register_job(&Scope::default(), &live, None)
        .await
        .expect("register out of band");
    h.wait_requests("POST", "/v1/job/web/plan", plans + 1).await;
    // Nomad 1.1.2 lists deployments one namespace at a time: once the watch of the job's
    // namespace has answered, a new version's deployment is followed from it, and the
    // job's deployments are not read.
    wait_until("the namespace's deployments watched", || async {
        h.mirror()
            .is_some_and(|m| m.lists_deployments_of(&h.nomad_namespace))
    })
    .await;
    let reads = h.count("GET", "/v1/job/web/deployments");
    let spec = json!({"job": h.service_job(1, "/bin/sleep", &["2000000"], false)});
    h.apply("web", spec).await;
    h.wait_for("web", "the new spec Ready", ready).await;
    assert_eq!(
        h.count("GET", "/v1/job/web/deployments"),
        reads,
        "a rollout followed from the watches reads no deployment"
    );
}

/// What the operator takes a created job to be, from the plan's diff and the register's
/// answer alone (it does not read a job it has just created), is what Nomad stores:
/// counts filled in, update strategies merged from the job into its groups, the groups
/// that get no deployment, for each shape of job.
async fn a_created_job_is_known_from_its_plan_as_nomad_stores_it(backend: Backend) {
    use nomad_operator::controller::observe::{JobView, Planned};
    let h = Harness::start_on(backend, "created", &[]).await;
    let base = h.service_job(1, "/bin/sleep", &["1000000"], false);
    let group = base["TaskGroups"][0].clone();
    let mut shapes: Vec<(&str, Value)> = Vec::new();
    let mut no_update = base.clone();
    no_update["TaskGroups"][0]["Update"] = Value::Null;
    no_update["TaskGroups"][0]
        .as_object_mut()
        .expect("group")
        .remove("Count");
    shapes.push(("no update block, no count", no_update.clone()));
    let mut job_level = no_update.clone();
    job_level["Update"] = json!({"MaxParallel": 2, "MinHealthyTime": 1_000_000_000u64});
    shapes.push(("update at job level only", job_level.clone()));
    let mut opted_out = job_level.clone();
    opted_out["TaskGroups"][0]["Update"] = json!({"MaxParallel": 0});
    let mut second = group.clone();
    second["Name"] = json!("api");
    second["Count"] = json!(3);
    second["Update"] = Value::Null;
    opted_out["TaskGroups"]
        .as_array_mut()
        .expect("groups")
        .push(second);
    shapes.push(("a group opting out of the job's update", opted_out));
    let mut default_parallel = no_update.clone();
    default_parallel["TaskGroups"][0]["Update"] = json!({"MinHealthyTime": 1_000_000_000u64});
    shapes.push(("update without max_parallel", default_parallel));
    let mut scaled = no_update.clone();
    scaled["TaskGroups"][0]["Scaling"] = json!({"Min": 2, "Max": 4, "Enabled": true});
    shapes.push(("a scaling block instead of a count", scaled));
    let mut batch = no_update.clone();
    batch["Type"] = json!("batch");
    shapes.push(("batch", batch));
    let mut system = no_update.clone();
    system["Type"] = json!("system");
    system["TaskGroups"][0]["Update"] = json!({"MaxParallel": 1});
    shapes.push(("system with an update block", system));
    shapes.push(("the fixture's service job", base.clone()));
    for (n, (shape, mut job)) in shapes.into_iter().enumerate() {
        let id = format!("shape-{n}");
        job["ID"] = json!(id);
        job["Name"] = json!(id);
        job["Meta"][nomad_operator::crd::META_OWNER_NAMESPACE] = json!("team-a");
        job["Meta"][nomad_operator::crd::META_OWNER_NAME] = json!("web");
        job["Namespace"] = json!(h.nomad_namespace);
        let scope = Scope::default();
        let plan = Planned::new(
            h.nomad
                .plan_job(&scope, &id, &job, true)
                .await
                .expect("plan"),
        );
        let answer = h
            .nomad
            .register_job(&scope, &job, Some(0))
            .await
            .expect("register");
        let created = JobView::created(&plan, &job, answer.job_modify_index)
            .unwrap_or_else(|| panic!("{shape}: a new job's view is told by its plan"));
        let stored = h.nomad_job(&id).await.expect("the job");
        let mut read = JobView::parse(&stored);
        // The status moves on its own (pending, then running), and with it ModifyIndex.
        read.status.clone_from(&created.status);
        assert!(
            read.modify_index >= created.modify_index,
            "{shape}: {stored}"
        );
        read.modify_index = created.modify_index;
        assert_eq!(created, read, "{shape}: as Nomad stored it: {stored}");
    }
}

/// On a Nomad that lists every namespace's deployments (1.2.4 and later, simulated), a
/// converged object costs no Nomad call at all at rest.
#[tokio::test]
async fn resyncs_on_newer_nomad_make_no_call() {
    let h = Harness::start_on_release("1.2.4", "restnew", &["--plan-interval", "1h"]).await;
    // The watches answer once before the object exists (their second query blocks).
    wait_until("every list watched", || async {
        ["/v1/jobs", "/v1/deployments", "/v1/allocations"]
            .iter()
            .all(|list| h.count("GET", list) >= 2)
    })
    .await;
    let spec = json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)});
    h.apply_ready("web", spec).await;
    let calls = h.requests().len();
    h.wait_reconciles(3).await;
    let made: Vec<(String, String)> = h.requests().split_off(calls);
    assert!(
        made.iter().all(|(_, path)| !path.starts_with(WEB)),
        "resyncs with nothing moved make no Nomad call for the job: {made:?}"
    );
    let create: Vec<(String, String)> = h
        .requests()
        .into_iter()
        .take(calls)
        .filter(|(_, path)| path.starts_with(WEB))
        .collect();
    assert_eq!(
        create,
        [
            ("POST".to_string(), "/v1/job/web/plan".to_string()),
            ("POST".to_string(), WEB.to_string()),
        ],
        "a create is one plan and one register"
    );
}

scenarios! {
    both: [
        resyncs_take_the_job_from_the_watches_and_do_not_plan,
        a_created_job_is_known_from_its_plan_as_nomad_stores_it,
        create_registers_once_and_becomes_ready_and_resyncs_write_nothing,
        spec_change_registers_a_new_version_and_re_plans_on_check_and_set_conflict,
        failed_deployment_is_reverted_once_and_the_spec_is_not_registered_again,
        nomad_auto_revert_is_recorded_and_not_repeated,
        drift_is_corrected_by_default,
        drift_is_only_reported_with_policy_report,
        deletion_policies_deregister_purge_or_orphan,
        invalid_spec_stalls_without_calling_nomad_and_never_blocks_deletion,
        two_objects_claiming_one_job_and_a_foreign_job_are_conflicts,
        suspended_objects_make_no_nomad_calls,
        allocation_changes_in_nomad_reach_the_status_without_polling,
        batch_jobs_are_ready_without_a_deployment,
        the_examples_do_what_their_comments_say,
        one_broken_object_does_not_stop_the_others,
        an_object_nested_too_deep_to_decode_sits_next_to_healthy_ones,
        a_deployment_that_ends_within_the_status_hold_is_shown_in_one_write,
        a_deployment_longer_than_the_status_hold_is_shown_under_way,
        a_ready_object_registered_again_is_shown_under_way_at_once,
    ],
    // Nomad going away, and a job appearing between two calls, need the simulator's
    // fault injection.
    simulator_only: [
        nomad_down_is_reported_and_recovered_from,
        a_job_created_between_read_and_register_is_not_overwritten,
        a_status_waits_for_the_allocations_a_deployment_counts_then_reads_them,
    ],
}
