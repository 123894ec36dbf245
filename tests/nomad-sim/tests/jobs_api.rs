//! Jobs API: register/read/versions, check-and-set, validation errors,
//! idempotent registers, revert, stable, deregister/purge, batch jobs.

mod common;

use common::{service_job, start};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_read_versions_and_cas_conflict() {
    let s = start(1000.0, None).await;
    let job = service_job("web", "/bin/sleep", &["1000"], 1, json!(null));
    let r = s
        .post(
            "/v1/jobs",
            json!({"Job": job, "EnforceIndex": true, "JobModifyIndex": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reg = r.json();
    let jmi = reg["JobModifyIndex"].as_u64().expect("jmi");
    assert!(jmi > 0);
    assert_eq!(r.index, reg["Index"].as_u64());
    assert!(!reg["EvalID"].as_str().expect("eval").is_empty());

    let j = s.get_json("/v1/job/web").await;
    assert_eq!(j["Version"], 0);
    assert_eq!(j["Name"], "web");
    assert_eq!(j["Priority"], 50);
    assert_eq!(j["Namespace"], "default");
    assert_eq!(j["TaskGroups"][0]["Update"]["MaxParallel"], 1);
    assert_eq!(
        j["TaskGroups"][0]["Update"]["HealthyDeadline"],
        300_000_000_000u64
    );
    assert_eq!(j["JobModifyIndex"].as_u64(), Some(jmi));

    // CAS "must not exist" on an existing job.
    let r = s
        .post("/v1/job/web", json!({"Job": service_job("web", "/bin/sleep", &["5"], 1, json!(null)), "EnforceIndex": true, "JobModifyIndex": 0}))
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    assert_eq!(r.text, "Enforcing job modify index 0: job already exists");

    // Stale index.
    let r = s
        .post("/v1/job/web", json!({"Job": service_job("web", "/bin/sleep", &["5"], 1, json!(null)), "EnforceIndex": true, "JobModifyIndex": jmi - 1}))
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text,
        format!(
            "Enforcing job modify index {}: job exists with conflicting job modify index: {jmi}",
            jmi - 1
        )
    );

    // Correct index: new version.
    let r = s
        .post("/v1/job/web", json!({"Job": service_job("web", "/bin/sleep", &["5"], 1, json!(null)), "EnforceIndex": true, "JobModifyIndex": jmi}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let jmi2 = r.json()["JobModifyIndex"].as_u64().expect("jmi");
    assert!(jmi2 > jmi);
    let v = s.get_json("/v1/job/web/versions").await;
    let versions = v["Versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["Version"], 1);
    assert_eq!(versions[1]["Version"], 0);
    assert_eq!(versions[0]["Stable"], false);
    assert!(v["Diffs"].is_null());

    // CAS on a job that does not exist.
    let r = s
        .post("/v1/jobs", json!({"Job": service_job("other", "/bin/sleep", &["5"], 1, json!(null)), "EnforceIndex": true, "JobModifyIndex": 7}))
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text, "Enforcing job modify index 7: job does not exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_register_keeps_version_but_creates_eval() {
    let s = start(1000.0, None).await;
    let job = service_job("same", "/bin/sleep", &["1000"], 1, json!(null));
    let a = s.register(job.clone()).await;
    let b = s.register(job.clone()).await;
    assert_eq!(a["JobModifyIndex"], b["JobModifyIndex"]);
    assert_ne!(a["EvalID"], b["EvalID"]);
    assert!(b["EvalCreateIndex"].as_u64() > a["EvalCreateIndex"].as_u64());
    let v = s.get_json("/v1/job/same/versions").await;
    assert_eq!(v["Versions"].as_array().map(Vec::len), Some(1));
    // One evaluation per register; the scheduler may add its own follow-ups (its
    // simulated time runs 1000 times faster), which are not the registers'.
    let evals = s.get_json("/v1/job/same/evaluations").await;
    let registers = evals
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["TriggeredBy"] == "job-register")
                .count()
        })
        .unwrap_or_default();
    assert_eq!(registers, 2, "{evals}");
    // A canonical copy of the stored job is also "identical".
    let stored = s.get_json("/v1/job/same").await;
    let c = s.register(stored).await;
    assert_eq!(c["JobModifyIndex"], a["JobModifyIndex"]);
    assert_eq!(s.get_json("/v1/job/same").await["Version"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_absent_jobs() {
    let s = start(1000.0, None).await;
    let mut job = service_job("bad", "/bin/sleep", &["1"], 1, json!(null));
    job["TaskGroups"] = json!([]);
    let r = s.post("/v1/jobs", json!({"Job": job})).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.text, "1 error occurred:\n\t* Missing job task groups\n\n");

    let mut job = service_job("bad", "/bin/sleep", &["1"], 1, json!(null));
    job["Type"] = json!("nope");
    let r = s.post("/v1/jobs", json!({"Job": job})).await;
    assert_eq!(r.status, 500);
    assert!(r.text.contains("Invalid job type: \"nope\""), "{}", r.text);

    let mut job = service_job("bad", "/bin/sleep", &["1"], 1, json!(null));
    job["TaskGroups"][0]["Tasks"] = json!([]);
    let r = s.post("/v1/jobs", json!({"Job": job})).await;
    assert_eq!(r.status, 500);
    assert!(
        r.text.contains("Missing tasks for task group"),
        "{}",
        r.text
    );

    let r = s
        .post(
            "/v1/job/other",
            json!({"Job": service_job("bad", "/bin/sleep", &["1"], 1, json!(null))}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text, "Job ID does not match name");

    let r = s.req("POST", "/v1/jobs", None).await;
    assert_eq!(r.status, 400);
    let r = s
        .http
        .post(format!("{}/v1/jobs", s.base))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);

    let r = s.get("/v1/job/missing").await;
    assert_eq!((r.status, r.text.as_str()), (404, "job not found"));
    assert_eq!(s.get("/v1/job/missing/versions").await.status, 404);
    assert_eq!(s.get("/v1/job/missing/summary").await.status, 404);
    let r = s.get("/v1/job/missing/deployment").await;
    assert_eq!((r.status, r.text.as_str()), (200, "null"));
    assert_eq!(s.get_json("/v1/job/missing/allocations").await, json!([]));
    assert_eq!(s.get_json("/v1/job/missing/deployments").await, json!([]));
    assert_eq!(s.get_json("/v1/job/missing/evaluations").await, json!([]));

    let r = s.get("/v1/jobs?region=eu").await;
    assert_eq!((r.status, r.text.as_str()), (500, "No path to region"));
    let mut job = service_job("eu", "/bin/sleep", &["1"], 1, json!(null));
    job["Region"] = json!("eu");
    assert_eq!(s.post("/v1/jobs", json!({"Job": job})).await.status, 500);
    assert_eq!(s.req("PATCH", "/v1/jobs", None).await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_prefix_listing() {
    let s = start(1000.0, None).await;
    s.register(service_job(
        "api-1",
        "/bin/sleep",
        &["1000"],
        1,
        json!(null),
    ))
    .await;
    s.register(service_job(
        "api-2",
        "/bin/sleep",
        &["1000"],
        1,
        json!(null),
    ))
    .await;
    let mut other = service_job("api-3", "/bin/sleep", &["1000"], 1, json!(null));
    other["Namespace"] = json!("team");
    // A job can only go into a namespace that exists.
    let r = s.post("/v1/jobs", json!({"Job": other})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (500, "job \"api-3\" is in nonexistent namespace \"team\"")
    );
    let r = s
        .post(
            "/v1/namespace/team",
            json!({"Name": "team", "Description": "t"}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    s.register(other).await;
    let names: Vec<Value> = s
        .get_json("/v1/namespaces")
        .await
        .as_array()
        .map(|a| a.iter().map(|n| n["Name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, [json!("default"), json!("team")]);
    let l = s.get_json("/v1/jobs?prefix=api-").await;
    assert_eq!(l.as_array().map(Vec::len), Some(2));
    assert!(l[0]["JobSummary"]["Summary"]["web"].is_object());
    assert_eq!(
        s.get_json("/v1/jobs?namespace=team")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        s.get_json("/v1/jobs?namespace=*")
            .await
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(s.get("/v1/job/api-3").await.status, 404);
    assert_eq!(s.get("/v1/job/api-3?namespace=team").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_and_stable() {
    let s = start(1000.0, None).await;
    s.register(service_job("rv", "/bin/sleep", &["1"], 1, json!(null)))
        .await;
    s.register(service_job("rv", "/bin/sleep", &["2"], 1, json!(null)))
        .await;

    let r = s
        .post("/v1/job/rv/revert", json!({"JobID": "rv", "JobVersion": 1}))
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (500, "can't revert to current version")
    );
    let r = s
        .post(
            "/v1/job/rv/revert",
            json!({"JobID": "rv", "JobVersion": 0, "EnforcePriorVersion": 5}),
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (500, "Current job has version 1; enforcing version 5")
    );
    let r = s
        .post("/v1/job/rv/revert", json!({"JobID": "rv", "JobVersion": 9}))
        .await;
    assert_eq!(r.status, 500);
    assert!(r.text.contains("at version 9 not found"), "{}", r.text);

    let r = s
        .post(
            "/v1/job/rv/revert",
            json!({"JobID": "rv", "JobVersion": 0, "EnforcePriorVersion": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = s.get_json("/v1/job/rv").await;
    assert_eq!(j["Version"], 2);
    assert_eq!(j["Stable"], false);
    assert_eq!(j["TaskGroups"][0]["Tasks"][0]["Config"]["args"][0], "1");

    let r = s
        .post(
            "/v1/job/rv/stable",
            json!({"JobID": "rv", "JobVersion": 2, "Stable": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Nomad 1.1 answers only the index.
    assert!(r.json()["Index"].as_u64().is_some());
    assert!(r.json().get("JobModifyIndex").is_none());
    assert_eq!(s.get_json("/v1/job/rv").await["Stable"], true);
    let r = s
        .post(
            "/v1/job/rv/stable",
            json!({"JobID": "rv", "JobVersion": 42, "Stable": true}),
        )
        .await;
    assert_eq!(r.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregister_keeps_dead_job_and_purge_removes() {
    let s = start(1000.0, None).await;
    s.register(service_job("gone", "/bin/sleep", &["1000"], 2, json!(null)))
        .await;
    s.wait_for("allocs running", || async {
        let a = s.get_json("/v1/job/gone/allocations").await;
        let n = a
            .as_array()?
            .iter()
            .filter(|a| a["ClientStatus"] == "running")
            .count();
        (n == 2).then_some(())
    })
    .await;
    let r = s.req("DELETE", "/v1/job/gone", None).await;
    assert_eq!(r.status, 200);
    assert!(!r.json()["EvalID"].as_str().unwrap_or_default().is_empty());
    let j = s
        .wait_for("job dead", || async {
            let j = s.get_json("/v1/job/gone").await;
            (j["Status"] == "dead").then_some(j)
        })
        .await;
    assert_eq!(j["Stop"], true);
    assert_eq!(j["Version"], 1);
    let allocs = s.get_json("/v1/job/gone/allocations").await;
    assert!(
        allocs
            .as_array()
            .expect("allocs")
            .iter()
            .all(|a| a["DesiredStatus"] == "stop")
    );
    let stub = s.get_json("/v1/jobs?prefix=gone").await;
    assert_eq!(stub[0]["Stop"], true);
    assert_eq!(stub[0]["Status"], "dead");

    let r = s.req("DELETE", "/v1/job/gone?purge=true", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get("/v1/job/gone").await.status, 404);
    // Deleting a job that does not exist answers 200 with an evaluation.
    let r = s.req("DELETE", "/v1/job/never", None).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["EvalID"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_job_completes_dead_without_deployment() {
    let s = start(1000.0, None).await;
    let mut job = service_job("once", "/bin/true", &[], 2, json!(null));
    job["Type"] = json!("batch");
    s.register(job).await;
    let j = s
        .wait_for("batch dead", || async {
            let j = s.get_json("/v1/job/once").await;
            (j["Status"] == "dead").then_some(j)
        })
        .await;
    assert_eq!(j["Stable"], false);
    let sum = s.get_json("/v1/job/once/summary").await;
    assert_eq!(sum["Summary"]["web"]["Complete"], 2);
    let r = s.get("/v1/job/once/deployment").await;
    assert_eq!(r.text, "null");
    let allocs = s.get_json("/v1/job/once/allocations").await;
    for a in allocs.as_array().expect("allocs") {
        assert_eq!(a["ClientStatus"], "complete");
        assert_eq!(a["TaskStates"]["server"]["State"], "dead");
        assert_eq!(a["TaskStates"]["server"]["Failed"], false);
    }

    let mut job = service_job("oops", "/bin/false", &[], 1, json!(null));
    job["Type"] = json!("batch");
    s.register(job).await;
    let sum = s
        .wait_for("batch failed", || async {
            let j = s.get_json("/v1/job/oops").await;
            if j["Status"] != "dead" {
                return None;
            }
            Some(s.get_json("/v1/job/oops/summary").await)
        })
        .await;
    // One reschedule attempt (batch default), both failed.
    assert_eq!(sum["Summary"]["web"]["Failed"], 2);
    let allocs = s.get_json("/v1/job/oops/allocations").await;
    let a = &allocs[0];
    let ts = &a["TaskStates"]["server"];
    assert_eq!(ts["Failed"], true);
    assert_eq!(ts["Restarts"], 3);
    let kinds: Vec<&str> = ts["Events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["Type"].as_str())
        .collect();
    assert_eq!(
        &kinds[..4],
        &["Received", "Task Setup", "Started", "Terminated"]
    );
    assert_eq!(kinds.last(), Some(&"Not Restarting"));
    let term = ts["Events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["Type"] == "Terminated")
        .expect("terminated");
    assert_eq!(term["ExitCode"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_periodic_and_evaluate() {
    let s = start(1000.0, None).await;
    let r = s.post("/v1/job/none/dispatch", json!({})).await;
    assert_eq!(r.status, 500);
    s.register(service_job("svc", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    let r = s.post("/v1/job/svc/dispatch", json!({})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (500, "Specified job \"svc\" is not a parameterized job")
    );
    let r = s.post("/v1/job/svc/periodic/force", json!({})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (500, "can't force launch non-periodic job")
    );
    // With a body, Nomad takes the job from its `JobID`, and without one refuses.
    let r = s.post("/v1/job/svc/evaluate", json!({})).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (400, "Job ID must be specified")
    );
    let r = s
        .post("/v1/job/svc/evaluate", json!({"JobID": "svc"}))
        .await;
    assert_eq!(r.status, 200);

    let mut p = service_job("param", "/bin/true", &[], 1, json!(null));
    p["Type"] = json!("batch");
    p["ParameterizedJob"] = json!({"Payload": "forbidden", "MetaRequired": ["k"]});
    s.register(p).await;
    let r = s.post("/v1/job/param/dispatch", json!({"Meta": {}})).await;
    assert_eq!(r.status, 500);
    let r = s
        .post("/v1/job/param/dispatch", json!({"Meta": {"k": "v"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let child = r.json()["DispatchedJobID"]
        .as_str()
        .expect("child")
        .to_string();
    assert!(child.starts_with("param/dispatch-"));
    let path = format!("/v1/job/{}", child.replace('/', "%2F"));
    let j = s.get_json(&path).await;
    assert_eq!(j["ParentID"], "param");
    assert_eq!(j["Meta"]["k"], "v");
    s.wait_for("children counted", || async {
        let sum = s.get_json("/v1/job/param/summary").await;
        (sum["Children"]["Dead"] == 1).then_some(())
    })
    .await;
}
