//! Living alongside people and autoscalers, end to end: counts that belong to someone
//! else, jobs re-run by hand, adoption, re-created objects, renames, stopped jobs, and
//! deletes that cannot surprise. Each scenario runs on the simulator and on the run's
//! real Nomad agent.

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams};
use nomad_operator::nomad::Scope;
use serde_json::{Value, json};
use support::operator::{Backend, Harness, TOKEN, condition, ready, ready_message, wait_until};
use support::scenarios;

const WEB: &str = "/v1/job/web";
const PLAN: &str = "/v1/job/web/plan";

/// The IDs of the job's allocations that run, sorted.
async fn running_allocations(h: &Harness, id: &str) -> Vec<String> {
    let allocations = h
        .nomad
        .job_allocations(&Scope::default(), id, false, None)
        .await
        .expect("allocations");
    let mut ids: Vec<String> = allocations
        .value
        .into_iter()
        .filter(|a| a.client_status == "running" && a.desired_status == "run")
        .map(|a| a.id)
        .collect();
    ids.sort();
    ids
}

/// `POST /v1/job/:id/scale` as nomad-autoscaler or `nomad job scale` does it.
async fn scale(h: &Harness, id: &str, group: &str, count: u64) {
    let url = format!(
        "{}/v1/job/{id}/scale?namespace={}",
        h.nomad_url(),
        h.nomad_namespace
    );
    let answer = reqwest::Client::new()
        .post(url)
        .header("X-Nomad-Token", TOKEN)
        .json(&json!({"Count": count, "Target": {"Group": group}, "Message": "autoscaler"}))
        .send()
        .await
        .expect("scale request");
    assert!(
        answer.status().is_success(),
        "scale: {}",
        answer.text().await.unwrap_or_default()
    );
}

fn group_count(job: &Value) -> Option<u64> {
    job["TaskGroups"][0]["Count"].as_u64()
}

async fn counts_with_a_scaling_block_stay_with_the_autoscaler(backend: Backend) {
    let h = Harness::start_on(backend, "counts", &[]).await;
    let mut job = h.service_job(1, "/bin/sleep", &["1000000"], false);
    job["TaskGroups"][0]["Scaling"] = json!({"Min": 1, "Max": 5, "Enabled": true});
    h.apply_ready("web", json!({"job": job.clone()})).await;
    assert_eq!(h.count("POST", WEB), 1);

    // The autoscaler scales to 2: resyncs plan, see no drift, register nothing.
    scale(&h, "web", "web", 2).await;
    let plans = h.count("POST", PLAN);
    h.wait_requests("POST", PLAN, plans + 3).await;
    let live = h.nomad_job("web").await.expect("job");
    assert_eq!(group_count(&live), Some(2), "the autoscaler's count stays");
    assert_eq!(h.count("POST", WEB), 1, "no register fights the autoscaler");
    let obj = h.api().get("web").await.expect("get");
    assert!(ready(&obj), "still Ready");
    assert!(condition(&obj, "Drifted").is_none_or(|c| c.status == "False"));

    // A change of the spec's count is the user's intent: applied once, and said so.
    job["TaskGroups"][0]["Count"] = json!(3);
    h.apply("web", json!({"job": job.clone()})).await;
    h.wait_for("web", "the spec's count registered", |o| {
        ready(o)
            && o.status
                .as_ref()
                .is_some_and(|s| s.applied_counts.get("web") == Some(&3))
    })
    .await;
    let live = h.nomad_job("web").await.expect("job");
    assert_eq!(group_count(&live), Some(3));
    assert_eq!(h.count("POST", WEB), 2);
    let note = h.wait_event("web", "CountFromSpec").await;
    assert!(
        note.contains("set to 3 from the spec") && note.contains("it was 2"),
        "{note}"
    );

    // The autoscaler again, down to 1: kept over resyncs.
    scale(&h, "web", "web", 1).await;
    let plans = h.count("POST", PLAN);
    h.wait_requests("POST", PLAN, plans + 3).await;
    let live = h.nomad_job("web").await.expect("job");
    assert_eq!(group_count(&live), Some(1));
    assert_eq!(h.count("POST", WEB), 2, "still no register");
}

async fn a_hand_run_job_without_owner_keys_is_drift_and_still_deregistered(backend: Backend) {
    let h = Harness::start_on(backend, "hand-run", &[]).await;
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    // `nomad job run web.nomad` in an incident: the file has no owner keys.
    let mut hand = h.service_job(1, "/bin/sleep", &["1000000"], false);
    hand["ID"] = json!("web");
    // A job body names its namespace (Nomad ignores `?namespace=` for the body's job).
    hand["Namespace"] = json!(h.nomad_namespace);
    hand["Priority"] = json!(80);
    h.nomad
        .register_job(&Scope::default(), &hand, None)
        .await
        .expect("hand run");
    let note = h.wait_event("web", "DriftCorrected").await;
    assert!(note.contains("re-registered"), "{note}");
    wait_until("priority restored", || async {
        h.nomad_job("web")
            .await
            .is_some_and(|j| j["Priority"] == json!(50))
    })
    .await;
    // The status reports it (no write refused): in sync again, not stalled.
    let obj = h
        .wait_for("web", "in sync", |o| {
            condition(o, "Drifted").is_some_and(|c| c.status == "False")
        })
        .await;
    assert!(condition(&obj, "Stalled").is_some_and(|c| c.status == "False"));
    assert_eq!(
        obj.status.as_ref().and_then(|s| s.job_create_index),
        h.nomad_job("web")
            .await
            .and_then(|j| j["CreateIndex"].as_u64()),
        "the status records the job it proves it owns"
    );
    // Still this object's job: deleting the object deregisters it.
    h.delete_and_wait("web").await;
    assert_eq!(h.count("DELETE", WEB), 1);
    let job = h.nomad_job("web").await.expect("job");
    assert_eq!(job["Stop"], json!(true));
}

async fn adopting_an_identical_running_job_restarts_nothing(backend: Backend) {
    let h = Harness::start_on(backend, "adopt", &[]).await;
    let mut existing = h.service_job(2, "/bin/sleep", &["1000000"], false);
    existing["ID"] = json!("web");
    existing["Namespace"] = json!(h.nomad_namespace);
    h.nomad
        .register_job(&Scope::default(), &existing, None)
        .await
        .expect("existing job");
    wait_until("two allocations running", || async {
        running_allocations(&h, "web").await.len() == 2
    })
    .await;
    let before = running_allocations(&h, "web").await;
    let registers = h.count("POST", WEB);

    // Without the opt-in: a Conflict, and nothing is touched.
    let spec = json!({"job": h.service_job(2, "/bin/sleep", &["1000000"], false)});
    h.apply("web", spec.clone()).await;
    h.wait_condition("web", "Stalled", "True", Some("Conflict"))
        .await;
    // With it: taken as it runs.
    let mut adopt = spec.clone();
    adopt["adopt"] = json!(true);
    h.apply("web", adopt).await;
    h.wait_for("web", "Ready", ready).await;
    let note = h.wait_event("web", "Adopted").await;
    assert!(note.contains("no allocation restarted"), "{note}");
    assert_eq!(
        h.count("POST", WEB),
        registers,
        "adoption registered nothing"
    );
    let plans = h.count("POST", PLAN);
    h.wait_requests("POST", PLAN, plans + 2).await;
    assert_eq!(h.count("POST", WEB), registers);
    assert_eq!(running_allocations(&h, "web").await, before, "no restart");

    // Adopted jobs are this object's: deletion applies the policy.
    h.delete_and_wait("web").await;
    assert_eq!(
        h.nomad_job("web").await.map(|j| j["Stop"].clone()),
        Some(json!(true))
    );
}

async fn another_objects_job_is_never_adopted(backend: Backend) {
    let h = Harness::start_on(backend, "adopt-other", &[]).await;
    let spec = json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)});
    h.apply_ready("web", spec.clone()).await;
    let mut thief = spec.clone();
    thief["adopt"] = json!(true);
    thief["jobID"] = json!("web");
    h.apply("thief", thief).await;
    let obj = h
        .wait_condition("thief", "Stalled", "True", Some("Conflict"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains(&format!("belongs to NomadJob {}/web", h.ns.name)),
        "{message}"
    );
    assert_eq!(h.count("POST", WEB), 1);
}

async fn re_creating_an_object_changes_nothing_in_nomad(backend: Backend) {
    let h = Harness::start_on(backend, "recreate", &[]).await;
    let spec = json!({
        "job": h.service_job(2, "/bin/sleep", &["1000000"], false),
        "deletionPolicy": "Orphan"
    });
    h.apply_ready("web", spec.clone()).await;
    let before = running_allocations(&h, "web").await;
    let versions = h.nomad_versions("web").await.len();
    h.delete_and_wait("web").await;
    // A restore from backup: the same namespace, name and spec, a new UID.
    h.apply_ready("web", spec).await;
    let plans = h.count("POST", PLAN);
    h.wait_requests("POST", PLAN, plans + 2).await;
    assert_eq!(
        h.count("POST", WEB),
        1,
        "the one register of the first object"
    );
    assert_eq!(
        h.nomad_versions("web").await.len(),
        versions,
        "no new version"
    );
    assert_eq!(running_allocations(&h, "web").await, before, "no restart");
}

async fn a_job_id_rename_leaves_no_running_orphan(backend: Backend) {
    let h = Harness::start_on(backend, "rename", &[]).await;
    let job = h.service_job(1, "/bin/sleep", &["1000000"], false);
    h.apply_ready("web", json!({"job": job.clone()})).await;
    h.apply("web", json!({"job": job.clone(), "jobID": "web-v2"}))
        .await;
    let note = h.wait_event("web", "Renamed").await;
    assert!(
        note.contains("deregistered (stopped)") && note.contains("\"web\""),
        "{note}"
    );
    let obj = h
        .wait_for("web", "Ready as web-v2", |o| {
            ready(o) && o.status.as_ref().and_then(|s| s.job_id.as_deref()) == Some("web-v2")
        })
        .await;
    assert!(
        obj.status
            .as_ref()
            .is_some_and(|s| s.renamed_from.is_none())
    );
    assert_eq!(h.count("DELETE", WEB), 1);
    assert_eq!(
        h.nomad_job("web").await.map(|j| j["Stop"].clone()),
        Some(json!(true))
    );
    assert!(h.nomad_job("web-v2").await.is_some());
    // With Orphan, the old job is kept, and said so.
    h.apply(
        "web",
        json!({"job": job, "jobID": "web-v3", "deletionPolicy": "Orphan"}),
    )
    .await;
    h.wait_event_with("web", "Renamed", "left Nomad job \"web-v2\"")
        .await;
    assert_ne!(
        h.nomad_job("web-v2").await.map(|j| j["Stop"].clone()),
        Some(json!(true))
    );
}

async fn deletion_protection_keeps_the_job_until_it_is_lifted(backend: Backend) {
    let h = Harness::start_on(backend, "protect", &[]).await;
    let spec = json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)});
    h.apply_with(
        "web",
        spec.clone(),
        json!({"annotations": {"nomadoperator.dev/deletion-protection": "true"}}),
    )
    .await;
    h.wait_for("web", "Ready", ready).await;
    h.api()
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("DeletionProtected"))
        .await;
    assert!(obj.metadata.deletion_timestamp.is_some());
    h.wait_event("web", "DeletionProtected").await;
    assert_eq!(h.count("DELETE", WEB), 0);
    assert_ne!(
        h.nomad_job("web").await.map(|j| j["Stop"].clone()),
        Some(json!(true))
    );
    // Lifted: the deletion goes on under the policy.
    h.apply_with(
        "web",
        spec,
        json!({"annotations": {"nomadoperator.dev/deletion-protection": "false"}}),
    )
    .await;
    wait_until("the object is gone", || async {
        h.api().get_opt("web").await.ok().flatten().is_none()
    })
    .await;
    assert_eq!(h.count("DELETE", WEB), 1);
}

async fn deleting_the_crd_stops_no_job(backend: Backend) {
    let h = Harness::start_on_private_plane(backend, "crd-delete", &[]).await;
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false)}),
    )
    .await;
    // `kubectl delete -f deploy/`: the CRD goes, and Kubernetes deletes every NomadJob.
    let crds: Api<CustomResourceDefinition> = Api::all(h.ns.client.clone());
    crds.delete("nomadjobs.nomadoperator.dev", &DeleteParams::default())
        .await
        .expect("delete CRD");
    wait_until("the CRD is gone", || async {
        crds.get_opt("nomadjobs.nomadoperator.dev")
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    assert_eq!(h.count("DELETE", WEB), 0, "no job stopped");
    let job = h.nomad_job("web").await.expect("job");
    assert_ne!(job["Stop"], json!(true));
}

async fn stopped_jobs_have_a_clear_meaning(backend: Backend) {
    let h = Harness::start_on(backend, "stopped", &[]).await;
    let mut stopped = h.service_job(1, "/bin/sleep", &["1000000"], false);
    stopped["Stop"] = json!(true);
    h.apply("web", json!({"job": stopped})).await;
    let obj = h.wait_for("web", "Ready while stopped", ready).await;
    let message = ready_message(&obj);
    assert!(
        message.contains("stopped in Nomad, as the spec asks"),
        "{message}"
    );

    // Someone stops a job the spec wants running: drift, corrected by default.
    h.apply_ready(
        "other",
        json!({"job": h.service_job(1, "/bin/sleep", &["1000000"], false), "jobID": "other"}),
    )
    .await;
    h.nomad
        .deregister_job(&Scope::default(), "other", false)
        .await
        .expect("nomad job stop");
    let note = h.wait_event("other", "DriftCorrected").await;
    assert!(note.contains("re-registered"), "{note}");
    wait_until("running again", || async {
        h.nomad_job("other")
            .await
            .is_some_and(|j| j["Stop"] != json!(true))
    })
    .await;
}

async fn deletes_of_gone_stopped_and_invalid_jobs_are_handled(backend: Backend) {
    let h = Harness::start_on(backend, "delete-cases", &[]).await;
    let job = |h: &Harness| h.service_job(1, "/bin/sleep", &["1000000"], false);
    // Gone: purged in Nomad behind the operator's back.
    h.apply_ready("gone", json!({"job": job(&h), "jobID": "gone"}))
        .await;
    h.nomad
        .deregister_job(&Scope::default(), "gone", true)
        .await
        .expect("purge");
    h.delete_and_wait("gone").await;
    // Stopped by hand, policy Purge: purged.
    h.apply_ready(
        "stopped",
        json!({"job": job(&h), "jobID": "stopped", "deletionPolicy": "Purge", "driftPolicy": "Report"}),
    )
    .await;
    h.nomad
        .deregister_job(&Scope::default(), "stopped", false)
        .await
        .expect("stop");
    h.delete_and_wait("stopped").await;
    assert!(h.nomad_job("stopped").await.is_none(), "purged");
    // A spec made invalid after the job was registered: deletion still stops the job.
    h.apply_ready("broken", json!({"job": job(&h), "jobID": "broken"}))
        .await;
    let mut invalid = job(&h);
    invalid["TaskGroups"][0]["Tasks"] = json!([]);
    h.apply("broken", json!({"job": invalid, "jobID": "broken"}))
        .await;
    h.wait_condition("broken", "Stalled", "True", Some("InvalidSpec"))
        .await;
    h.delete_and_wait("broken").await;
    let job = h.nomad_job("broken").await.expect("job");
    assert_eq!(job["Stop"], json!(true));
}

scenarios! {
    both: [
        counts_with_a_scaling_block_stay_with_the_autoscaler,
        a_hand_run_job_without_owner_keys_is_drift_and_still_deregistered,
        adopting_an_identical_running_job_restarts_nothing,
        another_objects_job_is_never_adopted,
        re_creating_an_object_changes_nothing_in_nomad,
        a_job_id_rename_leaves_no_running_orphan,
        deletion_protection_keeps_the_job_until_it_is_lifted,
        deleting_the_crd_stops_no_job,
        stopped_jobs_have_a_clear_meaning,
        deletes_of_gone_stopped_and_invalid_jobs_are_handled,
    ],
    simulator_only: [],
}
