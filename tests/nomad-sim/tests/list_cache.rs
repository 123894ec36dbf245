//! List answers are joined from texts each job, allocation, deployment and evaluation
//! keeps of itself (`src/cached.rs`), and `?pretty` answers are still encoded from
//! trees built for the answer. Through a life cycle that changes every kind of entry
//! (placement, task start, health, deployment success and failure, a new version, a
//! scale, a client-status override, a stop, a purge, a dispatch), each list answer must
//! be, byte for byte, its `?pretty` twin encoded compactly: a text kept from before a
//! change would show.

mod common;

use common::{Sim, TIMEOUT, service_job, start};
use serde_json::{Value, json};
use std::time::Instant;

/// `path` with `?pretty` (or `&pretty`).
fn pretty(path: &str) -> String {
    if path.contains('?') {
        format!("{path}&pretty")
    } else {
        format!("{path}?pretty")
    }
}

/// Asks `path` compact, pretty and compact again until the three answers are at one
/// index and the two compact ones agree (nothing changed in between), then checks the
/// compact answer against the pretty one. Returns the answer.
async fn check(s: &Sim, path: &str) -> Value {
    let started = Instant::now();
    loop {
        let a = s.get(path).await;
        let p = s.get(&pretty(path)).await;
        let b = s.get(path).await;
        assert_eq!(a.status, 200, "GET {path}: {}", a.text);
        assert_eq!(p.status, 200, "GET {}: {}", pretty(path), p.text);
        if a.index == p.index && p.index == b.index && a.text == b.text {
            let tree: Value = serde_json::from_str(&p.text).expect("pretty JSON");
            let compact = serde_json::to_string(&tree).expect("encode");
            assert_eq!(
                a.text, compact,
                "GET {path}: cached texts and fresh trees differ"
            );
            assert_eq!(a.content_type, p.content_type, "GET {path}");
            assert!(
                tree.as_array().is_some_and(Vec::is_empty) || p.text.contains("\n  "),
                "GET {}: not indented",
                pretty(path)
            );
            return tree;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "GET {path}: never two equal answers in a row"
        );
    }
}

/// Checks every list the state has, and returns how many entries they held.
async fn check_all(s: &Sim) -> usize {
    let mut entries = 0;
    let mut paths: Vec<String> = [
        "/v1/jobs",
        "/v1/jobs?namespace=*",
        "/v1/jobs?namespace=team",
        "/v1/jobs?prefix=we",
        "/v1/jobs?namespace=*&prefix=b",
        "/v1/allocations",
        "/v1/allocations?namespace=*",
        "/v1/deployments?namespace=*",
        "/v1/deployments?namespace=team",
        "/v1/evaluations?namespace=*",
        "/v1/job/web/allocations",
        "/v1/job/web/allocations?all=true",
        "/v1/job/web/deployments",
        "/v1/job/web/evaluations",
        "/v1/job/gone/allocations",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let evals = s.get_json("/v1/evaluations?namespace=*").await;
    for e in evals.as_array().into_iter().flatten() {
        if let Some(id) = e["ID"].as_str() {
            paths.push(format!("/v1/evaluation/{id}/allocations"));
        }
    }
    let deployments = s.get_json("/v1/deployments?namespace=*").await;
    for d in deployments.as_array().into_iter().flatten() {
        if let Some(id) = d["ID"].as_str() {
            paths.push(format!("/v1/deployment/allocations/{id}"));
        }
    }
    for path in &paths {
        entries += check(s, path).await.as_array().map_or(0, Vec::len);
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_answers_are_their_fresh_trees_through_every_change() {
    let s = start(1000.0, None).await;
    let r = s
        .post(
            "/v1/namespace/team",
            json!({"Name": "team", "Description": "t"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(check_all(&s).await, 0);

    let update = json!({"MaxParallel": 1, "MinHealthyTime": 100_000_000u64,
        "HealthyDeadline": 5_000_000_000u64, "ProgressDeadline": 10_000_000_000u64});
    s.register(service_job(
        "web",
        "/bin/sleep",
        &["1000"],
        2,
        update.clone(),
    ))
    .await;
    let mut team = service_job("api", "/bin/sleep", &["1000"], 1, update.clone());
    team["Namespace"] = json!("team");
    s.register(team).await;
    s.register(service_job("bad", "/bin/false", &[], 1, update.clone()))
        .await;
    let mut batch = service_job("batch", "/bin/true", &[], 1, json!(null));
    batch["Type"] = json!("batch");
    s.register(batch).await;
    let mut dispatch = service_job("param", "/bin/true", &[], 1, json!(null));
    dispatch["Type"] = json!("batch");
    dispatch["ParameterizedJob"] = json!({"Payload": "optional"});
    s.register(dispatch).await;
    // While the scheduler places and starts them.
    check_all(&s).await;
    s.wait_deployment("web", 0, "successful").await;
    check_all(&s).await;

    // A new version: a rolling deployment, old allocations stopped.
    s.register(service_job(
        "web",
        "/bin/sleep",
        &["2000"],
        2,
        update.clone(),
    ))
    .await;
    check_all(&s).await;
    s.wait_deployment("web", 1, "successful").await;
    check_all(&s).await;

    // A scale, a dispatch, a client-status override.
    let r = s
        .post(
            "/v1/job/web/scale",
            json!({"Count": 3, "Target": {"Group": "web"}, "Message": "test"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.post("/v1/job/param/dispatch", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_all(&s).await;
    let allocs = s.get_json("/v1/job/web/allocations").await;
    let running = allocs
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["ClientStatus"] == "running")
        .and_then(|a| a["ID"].as_str())
        .expect("a running allocation")
        .to_string();
    s.sim
        .set_alloc_client_status(&running, "failed")
        .expect("flip");
    check_all(&s).await;

    // A stop and a purge.
    let r = s.req("DELETE", "/v1/job/api?namespace=team", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.req("DELETE", "/v1/job/batch?purge=true", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    check_all(&s).await;
    s.wait_deployment("bad", 0, "failed").await;
    // Let the rest settle, then once more.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let entries = check_all(&s).await;
    assert!(entries > 20, "only {entries} entries listed");
}
