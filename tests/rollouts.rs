//! Rollouts people can steer, end to end: canary promotion (Auto and by annotation),
//! placement failures in words, batch jobs that are Ready only when they complete,
//! periodic jobs forced by an annotation, and parameterized jobs dispatched from a
//! `NomadDispatch`. Each scenario runs on the simulator and on the run's real Nomad agent.

mod support;

use kube::api::{Api, Patch, PatchParams, PostParams};
use nomad_operator::controller::act::act;
use nomad_operator::controller::classify::{Fact, Step};
use nomad_operator::controller::render::DesiredJob;
use nomad_operator::controller::send::Sent;
use nomad_operator::crd::{NomadDispatch, NomadJob};
use serde_json::{Value, json};
use support::operator::{Backend, Harness, condition, ready, ready_message, wait_until_ok};
use support::scenarios;

scenarios! {
    both: [
        canaries_are_promoted_when_healthy_with_auto,
        manual_canaries_wait_for_the_promote_annotation,
        a_replaced_deployment_is_never_promoted,
        a_job_asking_too_much_memory_says_so,
        nomads_plan_warnings_reach_the_spec_warning_condition,
        a_failing_batch_job_is_not_ready_and_names_the_task,
        a_forced_periodic_launch_shows_the_child_and_its_outcome,
        a_dispatch_runs_a_parameterized_job_to_completion,
    ],
    simulator_only: [],
}

/// A service job of 2 allocations whose update strategy places 1 canary.
fn canary_job(h: &Harness, seconds: &str) -> Value {
    let mut job = h.service_job(2, "/bin/sleep", &[seconds], false);
    job["TaskGroups"][0]["Update"]["Canary"] = json!(1);
    job
}

/// `POST /v1/deployment/promote/:id` requests so far.
fn promotions(h: &Harness) -> usize {
    h.count_prefix("/v1/deployment/promote/")
}

/// Applies the canary job at version 0 and waits until it is Ready, then changes it
/// (a new version, whose deployment starts with one canary).
async fn start_canary_release(h: &Harness, rollout: Value) {
    h.apply_ready(
        "web",
        json!({"job": canary_job(h, "3600"), "rollout": rollout.clone()}),
    )
    .await;
    assert_eq!(promotions(h), 0, "the first version has no canaries");
    h.apply(
        "web",
        json!({"job": canary_job(h, "3601"), "rollout": rollout}),
    )
    .await;
}

async fn canaries_are_promoted_when_healthy_with_auto(backend: Backend) {
    let h = Harness::start_on(backend, "canary-auto", &[]).await;
    start_canary_release(&h, json!({"promote": "Auto"})).await;
    let obj = h.wait_for("web", "Ready after the promotion", ready).await;
    let status = obj.status.clone().unwrap_or_default();
    let canaries = status.canaries.clone().expect("status.canaries");
    assert_eq!(
        (
            canaries.desired,
            canaries.placed,
            canaries.healthy,
            canaries.promoted
        ),
        (1, 1, 1, true),
        "{status:#?}"
    );
    let promotion = status.last_promotion.clone().expect("status.lastPromotion");
    assert_eq!(promotion.deployment_id, canaries.deployment_id);
    assert_eq!(promotion.by, "spec.rollout.promote: Auto");
    assert_eq!(promotions(&h), 1, "one promotion: {:?}", h.requests());
    let note = h.wait_event("web", "Promoted").await;
    assert!(note.contains("spec.rollout.promote: Auto"), "{note}");
    assert_eq!(status.healthy.as_deref(), Some("2/2"), "{status:#?}");
    let table = kubectl_get(&h, "nj", "web");
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|header| header.contains("HEALTHY"))
            && table.contains("2/2"),
        "kubectl get nj shows healthy/desired:\n{table}"
    );
}

/// What `kubectl get KIND NAME` prints in the test's namespace.
fn kubectl_get(h: &Harness, kind: &str, name: &str) -> String {
    let out = support::envtest::kubectl(&["get", kind, name, "-n", &h.ns.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn manual_canaries_wait_for_the_promote_annotation(backend: Backend) {
    let h = Harness::start_on(backend, "canary-manual", &[]).await;
    start_canary_release(&h, json!({"promote": "Manual"})).await;
    let waiting = h
        .wait_for("web", "waiting for promotion with a healthy canary", |o| {
            condition(o, "Ready").is_some_and(|c| {
                c.reason == "AwaitingPromotion" && c.message.contains("waiting to be promoted")
            })
        })
        .await;
    assert!(
        condition(&waiting, "Reconciling").is_some_and(|c| c.status == "True"),
        "{:#?}",
        waiting.status
    );
    assert!(
        ready_message(&waiting).contains("nomadoperator.dev/promote"),
        "the condition says what to do: {}",
        ready_message(&waiting)
    );
    h.wait_event("web", "AwaitingPromotion").await;
    assert_eq!(promotions(&h), 0, "nothing promotes without the annotation");

    annotate(&h, "web", "nomadoperator.dev/promote", "go-1").await;
    let obj = h
        .wait_for("web", "Ready after the annotation", |o| {
            ready(o) && condition(o, "Ready").is_some_and(|c| c.reason == "Succeeded")
        })
        .await;
    let status = obj.status.unwrap_or_default();
    assert_eq!(promotions(&h), 1, "{:?}", h.requests());
    let by = status.last_promotion.expect("lastPromotion").by;
    assert!(
        by.contains("nomadoperator.dev/promote") && by.contains("go-1"),
        "{by}"
    );
    assert_eq!(status.answered.promote.as_deref(), Some("go-1"));
    let note = h.wait_event("web", "Promoted").await;
    assert!(note.contains("go-1"), "{note}");

    // The same value again asks for nothing; a new one with nothing to promote is
    // answered without a Nomad call.
    annotate(&h, "web", "nomadoperator.dev/promote", "go-2").await;
    h.wait_event_with("web", "PromotionSkipped", "no deployment")
        .await;
    assert_eq!(promotions(&h), 1);
}

/// The deployment the status shows canaries of.
async fn canary_deployment(h: &Harness, what: &str, differs_from: Option<&str>) -> String {
    let obj = h
        .wait_for("web", what, |o| {
            o.status
                .as_ref()
                .and_then(|s| s.canaries.as_ref())
                .is_some_and(|c| Some(c.deployment_id.as_str()) != differs_from && !c.promoted)
        })
        .await;
    obj.status
        .and_then(|s| s.canaries)
        .map(|c| c.deployment_id)
        .unwrap_or_default()
}

async fn a_replaced_deployment_is_never_promoted(backend: Backend) {
    let h = Harness::start_on(backend, "canary-replaced", &[]).await;
    start_canary_release(&h, json!({"promote": "Manual"})).await;
    let first = canary_deployment(&h, "the first canary deployment", None).await;
    h.apply(
        "web",
        json!({"job": canary_job(&h, "3602"), "rollout": {"promote": "Manual"}}),
    )
    .await;
    let second = canary_deployment(&h, "the next version's deployment", Some(&first)).await;

    // A promotion decided for the first deployment, carried out after it was replaced.
    let desired = DesiredJob {
        id: "web".into(),
        namespace: h.nomad_namespace.clone(),
        region: None,
        job: json!({}),
        digest: String::new(),
    };
    let sent = Sent {
        job: json!({}),
        counts: Vec::new(),
        spec_counts: Default::default(),
    };
    let scope = nomad_operator::nomad::Scope {
        namespace: Some(h.nomad_namespace.clone()),
        region: None,
    };
    let step = Step::Promote {
        deployment_id: first.clone(),
        by: "a test".into(),
        request: None,
    };
    let fact = act(
        &h.nomad,
        &scope,
        &desired,
        (&sent, None),
        (&h.ns.name, "web"),
        step,
    )
    .await
    .expect("act");
    match fact {
        Some(Fact::PromotionSkipped { why, .. }) => {
            assert!(why.contains("terminal"), "{why}");
        }
        other => panic!("expected PromotionSkipped, got {other:?}"),
    }
    let current = h
        .nomad
        .list_deployments(&scope, Some(&second), None)
        .await
        .expect("deployments")
        .value;
    assert!(
        current
            .iter()
            .all(|d| d.task_groups.values().all(|g| !g.promoted)),
        "the deployment that replaced it is not promoted: {current:?}"
    );

    // The annotation promotes the current deployment.
    annotate(&h, "web", "nomadoperator.dev/promote", "go").await;
    let obj = h.wait_for("web", "Ready after the annotation", ready).await;
    let promotion = obj
        .status
        .and_then(|s| s.last_promotion)
        .expect("lastPromotion");
    assert_eq!(promotion.deployment_id, second);
}

async fn a_job_asking_too_much_memory_says_so(backend: Backend) {
    let h = Harness::start_on(backend, "placement", &[]).await;
    let mut job = h.service_job(1, "/bin/sleep", &["3600"], false);
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(50_000_000);
    h.apply("huge", json!({"job": job})).await;
    let obj = h
        .wait_condition("huge", "Ready", "False", Some("PlacementFailed"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("task group \"web\"") && message.contains("memory"),
        "{message}"
    );
    assert!(
        message.contains("lower the tasks' resources.memory"),
        "{message}"
    );
    let status = obj.status.unwrap_or_default();
    assert!(
        status.placement_failures["web"].contains("memory"),
        "{status:#?}"
    );
    let note = h.wait_event("huge", "PlacementFailed").await;
    assert!(note.contains("memory"), "{note}");

    // Asking for what the node has places the job, and the failure goes away.
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(32);
    h.apply("huge", json!({"job": job})).await;
    let obj = h.wait_for("huge", "Ready once placeable", ready).await;
    assert!(
        obj.status.unwrap_or_default().placement_failures.is_empty(),
        "placement failures are cleared"
    );
}

async fn nomads_plan_warnings_reach_the_spec_warning_condition(backend: Backend) {
    let h = Harness::start_on(backend, "plan-warnings", &[]).await;
    let mut job = h.service_job(1, "/bin/sleep", &["3600"], false);
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] = json!(64);
    let obj = h.apply_ready("web", json!({"job": job})).await;
    let warning = condition(&obj, "SpecWarning")
        .cloned()
        .expect("SpecWarning");
    assert_eq!(
        (warning.status.as_str(), warning.reason.as_str()),
        ("True", "PlanWarnings")
    );
    assert!(
        warning
            .message
            .contains("Memory oversubscription is not enabled")
            && !warning.message.contains("warning(s)"),
        "{}",
        warning.message
    );
    let note = h.wait_event("web", "PlanWarnings").await;
    assert!(note.contains("memory_max"), "{note}");
    // Resyncs plan again and see the same warning: no second Event.
    let plans = h.count("POST", "/v1/job/web/plan");
    h.wait_requests("POST", "/v1/job/web/plan", plans + 2).await;
    let events = h.events("web").await;
    assert_eq!(
        events.iter().filter(|(r, _)| r == "PlanWarnings").count(),
        1,
        "{events:?}"
    );
}

/// A batch job of one raw_exec task `main` running `sh -c SCRIPT`, neither restarted nor
/// rescheduled when it fails.
fn batch_job(script: &str) -> Value {
    json!({
        "Datacenters": ["dc1"],
        "Type": "batch",
        "TaskGroups": [{
            "Name": "run",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Mode": "fail", "Interval": 86_400_000_000_000u64, "Delay": 1_000_000_000u64},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false, "Interval": 86_400_000_000_000u64},
            "Tasks": [{
                "Name": "main",
                "Driver": "raw_exec",
                "Config": {"command": "/bin/sh", "args": ["-c", script]},
                "Resources": {"CPU": 20, "MemoryMB": 32}
            }]
        }]
    })
}

async fn a_failing_batch_job_is_not_ready_and_names_the_task(backend: Backend) {
    let h = Harness::start_on(backend, "batch", &[]).await;
    h.apply("fails", json!({"job": batch_job("exit 3")})).await;
    h.wait_condition("fails", "Stalled", "True", Some("JobFailed"))
        .await;
    // The summary (jobs list) may say "failed" before the allocations list carries the
    // task's event; the next allocation change brings it.
    let obj = h
        .wait_for("fails", "the failed task named", |o| {
            let message = ready_message(o);
            message.contains("task \"main\"") && message.contains("Exit Code: 3")
        })
        .await;
    assert!(!ready(&obj));
    assert_eq!(
        obj.status.unwrap_or_default().healthy.as_deref(),
        Some("0/1")
    );
    let note = h.wait_event("fails", "JobFailed").await;
    assert!(note.contains("task \"main\""), "{note}");

    let done = h
        .apply_ready("works", json!({"job": batch_job("exit 0")}))
        .await;
    let message = ready_message(&done);
    assert!(message.contains("completed"), "{message}");
    assert_eq!(
        done.status.unwrap_or_default().healthy.as_deref(),
        Some("1/1")
    );
}

async fn a_forced_periodic_launch_shows_the_child_and_its_outcome(backend: Backend) {
    let h = Harness::start_on(backend, "periodic", &[]).await;
    let mut job = batch_job("exit 0");
    job["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "0 0 1 1 *", "ProhibitOverlap": false, "TimeZone": "UTC"});
    let obj = h.apply_ready("nightly", json!({"job": job})).await;
    let status = obj.status.unwrap_or_default();
    let next = status.next_launch.clone().expect("status.nextLaunch");
    assert_eq!(
        (next.0.strftime("%m-%d %H:%M:%S").to_string()),
        "01-01 00:00:00",
        "the next 1 January at midnight UTC"
    );
    assert!(
        ready_message(&h.api().get("nightly").await.expect("get")).contains("next launch"),
        "Ready says when it launches next"
    );
    let force = "/v1/job/nightly/periodic/force";
    assert_eq!(h.count("POST", force), 0);

    annotate(&h, "nightly", "nomadoperator.dev/force-launch", "now-1").await;
    let note = h.wait_event("nightly", "Launched").await;
    assert!(note.contains("now-1"), "{note}");
    let obj = h
        .wait_for("nightly", "the launched child succeeded", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.children.as_ref())
                .is_some_and(|c| {
                    c.dead == 1 && c.latest.first().is_some_and(|l| l.outcome == "Succeeded")
                })
        })
        .await;
    let children = obj.status.unwrap_or_default().children.expect("children");
    assert_eq!(children.latest.len(), 1, "{children:?}");
    assert!(
        children.latest[0].job_id.starts_with("nightly/periodic-"),
        "{children:?}"
    );
    assert_eq!(children.dead, 1, "{children:?}");
    assert_eq!(h.count("POST", force), 1, "one launch per annotation value");
}

/// The `NomadDispatch` API of the test's namespace.
fn dispatches(h: &Harness) -> Api<NomadDispatch> {
    Api::namespaced(h.ns.client.clone(), &h.ns.name)
}

async fn create_dispatch(h: &Harness, name: &str, spec: Value) {
    let obj: NomadDispatch = serde_json::from_value(json!({
        "apiVersion": "nomadoperator.dev/v1alpha1",
        "kind": "NomadDispatch",
        "metadata": {"name": name},
        "spec": spec
    }))
    .expect("NomadDispatch");
    dispatches(h)
        .create(&PostParams::default(), &obj)
        .await
        .expect("create NomadDispatch");
}

/// Waits until the dispatch's `Ready` condition has `status` and `reason`.
async fn wait_dispatch(h: &Harness, name: &str, status: &str, reason: &str) -> NomadDispatch {
    wait_until_ok(&format!("{name}: Ready={status} ({reason})"), || async {
        let obj = dispatches(h).get(name).await.expect("get NomadDispatch");
        let ready = obj
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        if ready.is_some_and(|c| c.status == status && c.reason == reason) {
            Ok(obj)
        } else {
            Err(format!("; last status: {:#?}", obj.status))
        }
    })
    .await
}

async fn a_dispatch_runs_a_parameterized_job_to_completion(backend: Backend) {
    let h = Harness::start_on(backend, "dispatch", &[]).await;
    let mut job = batch_job("test \"$NOMAD_META_who\" = ops");
    job["ParameterizedJob"] =
        json!({"Payload": "optional", "MetaRequired": ["who"], "MetaOptional": []});
    let parent = h.apply_ready("report", json!({"job": job})).await;
    assert!(
        ready_message(&parent).contains("parameterized"),
        "{}",
        ready_message(&parent)
    );

    create_dispatch(
        &h,
        "report-1",
        json!({"jobRef": {"name": "report"}, "payload": "hello", "meta": {"who": "ops"}}),
    )
    .await;
    let run = wait_dispatch(&h, "report-1", "True", "Succeeded").await;
    let status = run.status.unwrap_or_default();
    let child = status.job_id.clone().expect("status.jobID");
    assert!(child.starts_with("report/dispatch-"), "{child}");
    assert_eq!(status.outcome.as_deref(), Some("Succeeded"));
    assert_eq!(status.summary["run"].complete, 1, "{status:#?}");
    assert_eq!(h.count("POST", "/v1/job/report/dispatch"), 1);
    let table = kubectl_get(&h, "nd", "report-1");
    assert!(
        table.contains(&child) && table.contains("Succeeded"),
        "kubectl get nd shows the dispatched job and its outcome:\n{table}"
    );
    let dispatched = h
        .nomad_job(&child)
        .await
        .expect("the dispatched job in Nomad");
    assert_eq!(dispatched["Meta"]["who"], "ops");
    assert_eq!(
        dispatched["Meta"]["nomadoperator.dev/dispatch-uid"],
        json!(run.metadata.uid),
        "the dispatch carries the object's UID"
    );
    let parent = h
        .wait_for("report", "the dispatch among the children", |o| {
            o.status
                .as_ref()
                .and_then(|s| s.children.as_ref())
                .is_some_and(|c| c.latest.iter().any(|l| l.job_id == child))
        })
        .await;
    assert!(parent.status.is_some());

    // Missing required meta: Nomad's refusal, in words, and no second try.
    create_dispatch(&h, "report-2", json!({"jobRef": {"name": "report"}})).await;
    let refused = wait_dispatch(&h, "report-2", "False", "NotDispatchable").await;
    let message = refused
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("who"), "{message}");
    assert_eq!(h.count("POST", "/v1/job/report/dispatch"), 2);

    // A NomadJob that does not exist.
    create_dispatch(&h, "nothing", json!({"jobRef": {"name": "nope"}})).await;
    wait_dispatch(&h, "nothing", "False", "NotDispatchable").await;
    assert_eq!(h.count("POST", "/v1/job/report/dispatch"), 2);
}

/// Sets annotation `key` of NomadJob `name` to `value`, as `kubectl annotate
/// --overwrite` does.
async fn annotate(h: &Harness, name: &str, key: &str, value: &str) {
    let api: Api<NomadJob> = h.api();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
    )
    .await
    .expect("annotate");
}
