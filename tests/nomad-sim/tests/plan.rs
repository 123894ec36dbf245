//! Plan: diff types, annotations and DesiredTGUpdates; plans never write.

mod common;

use common::{service_job, start};
use serde_json::{Value, json};

fn task_annotation(plan: &Value) -> Value {
    plan["Diff"]["TaskGroups"][0]["Tasks"][0]["Annotations"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_added_none_edited() {
    let s = start(1000.0, None).await;
    let job = service_job("pl", "/bin/sleep", &["1000"], 2, json!(null));
    let r = s
        .post("/v1/job/pl/plan", json!({"Job": job, "Diff": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.json();
    assert_eq!(p["Diff"]["Type"], "Added");
    assert_eq!(p["JobModifyIndex"], 0);
    assert_eq!(p["Annotations"]["DesiredTGUpdates"]["web"]["Place"], 2);
    assert_eq!(p["Diff"]["TaskGroups"][0]["Updates"]["create"], 2);
    assert_eq!(task_annotation(&p), json!(["forces create"]));
    // Not a periodic job: null, not Go's zero time.
    assert!(p["NextPeriodicLaunch"].is_null());
    assert!(p["FailedTGAllocs"].is_null());
    // Plan never writes.
    assert_eq!(s.get("/v1/job/pl").await.status, 404);
    assert_eq!(s.get_json("/v1/evaluations").await, json!([]));

    let reg = s.register(job.clone()).await;
    s.wait_deployment("pl", 0, "successful").await;
    let p = s
        .post("/v1/job/pl/plan", json!({"Job": job, "Diff": true}))
        .await
        .json();
    assert_eq!(p["Diff"]["Type"], "None");
    assert_eq!(p["JobModifyIndex"], reg["JobModifyIndex"]);
    assert_eq!(p["Annotations"]["DesiredTGUpdates"]["web"]["Ignore"], 2);
    assert_eq!(p["Diff"]["TaskGroups"][0]["Updates"]["ignore"], 2);
    let evals_before = s
        .get_json("/v1/job/pl/evaluations")
        .await
        .as_array()
        .map(Vec::len);

    // Without Diff: no diff.
    let p = s.post("/v1/job/pl/plan", json!({"Job": job})).await.json();
    assert!(p["Diff"].is_null());

    // Destructive change: create/destroy update limited by MaxParallel (1).
    let changed = service_job("pl", "/bin/sleep", &["2000"], 2, json!(null));
    let p = s
        .post("/v1/job/pl/plan", json!({"Job": changed, "Diff": true}))
        .await
        .json();
    assert_eq!(p["Diff"]["Type"], "Edited");
    assert_eq!(p["Diff"]["TaskGroups"][0]["Type"], "Edited");
    assert_eq!(task_annotation(&p), json!(["forces create/destroy update"]));
    let du = &p["Annotations"]["DesiredTGUpdates"]["web"];
    assert_eq!(du["DestructiveUpdate"], 1);
    assert_eq!(du["Ignore"], 1);
    assert_eq!(
        p["Diff"]["TaskGroups"][0]["Updates"]["create/destroy update"],
        1
    );

    // Count increase only: in-place updates plus placements.
    let scaled = service_job("pl", "/bin/sleep", &["1000"], 3, json!(null));
    let p = s
        .post("/v1/job/pl/plan", json!({"Job": scaled, "Diff": true}))
        .await
        .json();
    assert_eq!(p["Diff"]["Type"], "Edited");
    let du = &p["Annotations"]["DesiredTGUpdates"]["web"];
    assert_eq!(du["Place"], 1);
    assert_eq!(du["InPlaceUpdate"], 2);
    let count = p["Diff"]["TaskGroups"][0]["Fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["Name"] == "Count")
        .expect("count field")
        .clone();
    assert_eq!(count["Type"], "Edited");
    assert_eq!(
        (count["Old"].as_str(), count["New"].as_str()),
        (Some("2"), Some("3"))
    );
    assert_eq!(count["Annotations"], json!(["forces create"]));

    // Service change only: in place.
    let mut svc = service_job("pl", "/bin/sleep", &["1000"], 2, json!(null));
    svc["TaskGroups"][0]["Tasks"][0]["Services"] = json!([{"Name": "web", "PortLabel": "http"}]);
    let p = s
        .post("/v1/job/pl/plan", json!({"Job": svc, "Diff": true}))
        .await
        .json();
    assert_eq!(task_annotation(&p), json!(["forces in-place update"]));
    assert_eq!(
        p["Annotations"]["DesiredTGUpdates"]["web"]["InPlaceUpdate"],
        2
    );

    let evals_after = s
        .get_json("/v1/job/pl/evaluations")
        .await
        .as_array()
        .map(Vec::len);
    assert_eq!(evals_before, evals_after);
    assert_eq!(s.get_json("/v1/job/pl").await["Version"], 0);

    // Plan errors.
    let r = s.post("/v1/job/other/plan", json!({"Job": job})).await;
    assert_eq!((r.status, r.text.as_str()), (400, "Job ID does not match"));
    let r = s.post("/v1/job/pl/plan", json!({})).await;
    assert_eq!((r.status, r.text.as_str()), (400, "Job must be specified"));
}
