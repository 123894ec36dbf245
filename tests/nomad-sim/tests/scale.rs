//! `POST /v1/job/:id/scale` and `GET /v1/job/:id/scale` as Nomad 1.1.2 answers them
//! (see `REAL_NOMAD.md`): a scale is a new job version with a `job-scaling`
//! evaluation that the allocations follow; a scale refused during a deployment still
//! changes the live count; events only; the errors; scaling policies on register.

mod common;

use common::{Sim, service_job, start};
use serde_json::{Value, json};

/// `service_job` whose group `web` has a scaling policy from 1 to `max`.
fn scaled_job(id: &str, count: u64, max: u64, update: Value) -> Value {
    let mut job = service_job(id, "/bin/sleep", &["1000"], count, update);
    job["TaskGroups"][0]["Scaling"] = json!({"Min": 1, "Max": max, "Policy": {"cooldown": "1m"}});
    job
}

fn to(count: Value) -> Value {
    json!({"Count": count, "Target": {"Group": "web"}, "Message": "by the test"})
}

/// The job's allocations that are to run.
async fn running(s: &Sim, id: &str) -> Vec<Value> {
    let allocs = s.get_json(&format!("/v1/job/{id}/allocations")).await;
    allocs
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["DesiredStatus"] == "run" && a["ClientStatus"] == "running")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_running(s: &Sim, id: &str, n: usize) {
    s.wait_for(&format!("{n} running allocations of {id}"), || async {
        let allocs = s.get_json(&format!("/v1/job/{id}/allocations")).await;
        let live = allocs
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|a| a["DesiredStatus"] == "run")
                    .map(|a| a["ClientStatus"] == "running")
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        (live.len() == n && live.iter().all(|r| *r)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_is_a_new_version_with_an_evaluation_and_allocations_follow() {
    let s = start(1000.0, None).await;
    s.register(scaled_job("web", 1, 5, json!(null))).await;
    s.wait_deployment("web", 0, "successful").await;
    let before = s.get_json("/v1/job/web").await;
    let policy = &before["TaskGroups"][0]["Scaling"];
    assert_eq!(policy["Type"], "horizontal");
    assert_eq!(policy["Enabled"], true);
    assert_eq!(
        policy["Target"],
        json!({"Namespace": "default", "Job": "web", "Group": "web"})
    );
    assert_eq!(policy["CreateIndex"], before["JobModifyIndex"]);
    assert!(policy["ID"].as_str().is_some_and(|id| id.len() == 36));

    let r = s.post("/v1/job/web/scale", to(json!(3))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ans = r.json();
    let jmi = ans["JobModifyIndex"].as_u64().expect("jmi");
    assert_eq!(ans["EvalCreateIndex"].as_u64(), Some(jmi + 1));
    assert_eq!(ans["Index"].as_u64(), Some(jmi + 2));
    assert_eq!(r.index, ans["Index"].as_u64());
    assert_eq!(ans["KnownLeader"], true);
    let eval_id = ans["EvalID"].as_str().expect("eval").to_string();

    let job = s.get_json("/v1/job/web").await;
    assert_eq!(job["Version"], 1);
    assert_eq!(job["JobModifyIndex"].as_u64(), Some(jmi));
    assert_eq!(job["TaskGroups"][0]["Count"], 3);
    assert_eq!(job["SubmitTime"], before["SubmitTime"], "kept");
    assert_eq!(job["Stable"], true, "copied from the job scaled");
    assert_eq!(
        job["TaskGroups"][0]["Scaling"], *policy,
        "the policy as it was"
    );
    // The job scaled was its version entry too (written by the deployment's success):
    // the old version shows the new count.
    let versions = s.get_json("/v1/job/web/versions").await;
    assert_eq!(versions["Versions"][1]["Version"], 0);
    assert_eq!(versions["Versions"][1]["TaskGroups"][0]["Count"], 3);

    let eval = s.get_json(&format!("/v1/evaluation/{eval_id}")).await;
    assert_eq!(eval["TriggeredBy"], "job-scaling");
    assert_eq!(eval["JobModifyIndex"].as_u64(), Some(jmi));
    s.wait_deployment("web", 1, "successful").await;
    wait_running(&s, "web", 3).await;
    let allocs = running(&s, "web").await;
    assert!(
        allocs
            .iter()
            .all(|a| a["JobVersion"] == 1 && a["EvalID"] == eval_id)
    );

    let r = s.get("/v1/job/web/scale").await;
    assert_eq!(r.status, 200);
    let st = r.json();
    let g = &st["TaskGroups"]["web"];
    assert_eq!(
        (g["Desired"].clone(), g["Placed"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(
        (g["Running"].clone(), g["Healthy"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(g["Events"][0]["Count"], 3);
    assert_eq!(g["Events"][0]["PreviousCount"], 1);
    assert_eq!(g["Events"][0]["EvalID"], eval_id);
    assert_eq!(g["Events"][0]["Message"], "by the test");
    assert_eq!(g["Events"][0]["CreateIndex"], ans["Index"]);
    assert_eq!(
        st["JobModifyIndex"],
        s.get_json("/v1/job/web").await["ModifyIndex"]
    );
    assert!(r.index >= st["JobModifyIndex"].as_u64());

    // Down to 1: two allocations stop.
    let r = s.post("/v1/job/web/scale", to(json!(1))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_running(&s, "web", 1).await;
    assert_eq!(s.get_json("/v1/job/web").await["Version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_refused_during_a_deployment_still_changes_the_live_count() {
    // 10 s of minimum healthy time is 1 s here: the deployment is still running when
    // the scale arrives.
    let s = start(10.0, None).await;
    let job = scaled_job("web", 1, 3, json!({"MinHealthyTime": 10_000_000_000u64}));
    s.register(job).await;
    s.wait_deployment("web", 0, "running").await;
    let mut req = to(json!(2));
    req["Meta"] = json!({"n": 1});
    let r = s.post("/v1/job/web/scale", req).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (400, "job scaling blocked due to active deployment")
    );
    let job = s.get_json("/v1/job/web").await;
    assert_eq!(job["TaskGroups"][0]["Count"], 2, "changed all the same");
    assert_eq!(job["Version"], 0);
    let v = s.get_json("/v1/job/web/versions").await;
    assert_eq!(
        v["Versions"][0]["TaskGroups"][0]["Count"], 1,
        "the version entry is a copy since the job's status changed"
    );
    let st = s.get_json("/v1/job/web/scale").await;
    let ev = &st["TaskGroups"]["web"]["Events"][0];
    assert_eq!(ev["Error"], true);
    assert!(ev["Count"].is_null() && ev["EvalID"].is_null());
    assert_eq!(
        ev["Message"],
        "job scaling blocked due to active deployment"
    );
    assert_eq!(ev["PreviousCount"], 1);
    assert_eq!(
        ev["Meta"],
        json!({"OriginalMessage": "by the test", "OriginalCount": 2, "OriginalMeta": {"n": 1.0}})
    );
    // The deployment places one more allocation for the count it sees, and its success
    // writes version 0 back: count 1 with two allocations running.
    s.wait_deployment("web", 0, "successful").await;
    wait_running(&s, "web", 2).await;
    let job = s.get_json("/v1/job/web").await;
    assert_eq!(job["TaskGroups"][0]["Count"], 1);
    assert_eq!(job["Version"], 0);
    let d = s.get_json("/v1/job/web/deployment").await;
    assert_eq!(d["TaskGroups"]["web"]["DesiredTotal"], 1);
    assert_eq!(d["TaskGroups"]["web"]["PlacedAllocs"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_only_and_the_errors() {
    let s = start(1000.0, None).await;
    let r = s.get("/v1/job/web/scale").await;
    assert_eq!(
        (r.status, r.text.as_str(), r.index),
        (404, "job not found", Some(0))
    );
    let r = s.post("/v1/job/web/scale", to(json!(2))).await;
    assert_eq!((r.status, r.text.as_str()), (404, "job \"web\" not found"));
    s.register(scaled_job("web", 1, 3, json!(null))).await;
    s.wait_deployment("web", 0, "successful").await;

    let mut count_and_error = to(json!(2));
    count_and_error["Error"] = json!(true);
    for (body, status, text) in [
        (
            json!({"Count": 2, "Target": {"Group": "nope"}}),
            400,
            "task group \"nope\" specified for scaling does not exist in job",
        ),
        (
            to(json!(4)),
            400,
            "group count was greater than scaling policy maximum: 4 > 3",
        ),
        (
            to(json!(0)),
            400,
            "group count was less than scaling policy minimum: 0 < 1",
        ),
        (to(json!(-1)), 400, "scaling action count can't be negative"),
        (
            count_and_error,
            400,
            "scaling action should not contain count if error is true",
        ),
        (
            json!({"Count": 2}),
            400,
            "missing task group name for scaling action",
        ),
        (
            json!({"Count": 2, "Target": {"Group": "web", "Job": "other"}}),
            400,
            "job ID in payload did not match URL",
        ),
        (
            json!({"Count": 2, "Target": {"Group": "web", "Namespace": "other"}}),
            400,
            "namespace in payload did not match header",
        ),
        (
            to(json!("2")),
            400,
            "json: cannot unmarshal string into Go struct field ScalingRequest.Count of type int64",
        ),
        (
            json!([]),
            400,
            "json: cannot unmarshal array into Go value of type api.ScalingRequest",
        ),
    ] {
        let r = s.post("/v1/job/web/scale", body.clone()).await;
        assert_eq!((r.status, r.text.as_str()), (status, text), "{body}");
        assert_eq!(r.index, None);
    }
    let r = s.req("POST", "/v1/job/web/scale", None).await;
    assert_eq!((r.status, r.text.as_str()), (400, "Request body is empty"));
    let r = s.req("DELETE", "/v1/job/web/scale", None).await;
    assert_eq!((r.status, r.text.as_str()), (405, "Invalid method"));

    // Events only: no version, no evaluation; the answer's job modify index is the
    // job's modify index.
    let job = s.get_json("/v1/job/web").await;
    let r = s
        .req("PUT", "/v1/job/web/scale", Some(to(Value::Null)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ans = r.json();
    assert_eq!(ans["EvalID"], "");
    assert_eq!(ans["EvalCreateIndex"], 0);
    assert_eq!(ans["JobModifyIndex"], job["ModifyIndex"]);
    assert_eq!(s.get_json("/v1/job/web").await["Version"], 0);
    for n in 0..22 {
        let body =
            json!({"Target": {"Group": "web"}, "Message": format!("e{n}"), "Error": n % 2 == 0});
        assert_eq!(s.post("/v1/job/web/scale", body).await.status, 200);
    }
    let r = s.get("/v1/job/web/scale").await;
    let events = r.json()["TaskGroups"]["web"]["Events"].clone();
    let events = events.as_array().expect("events");
    assert_eq!(events.len(), 20, "Nomad keeps 20 per group");
    assert_eq!(events[0]["Message"], "e21");
    assert_eq!(events[0]["Error"], false);
    assert_eq!(events[1]["Error"], true);
    assert_eq!(r.index, events[0]["CreateIndex"].as_u64());

    // A purge takes the events along.
    assert_eq!(
        s.req("DELETE", "/v1/job/web?purge=true", None).await.status,
        200
    );
    s.register(scaled_job("web", 1, 3, json!(null))).await;
    let st = s.get_json("/v1/job/web/scale").await;
    assert!(st["TaskGroups"]["web"]["Events"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_of_a_job_with_a_scaling_policy() {
    let s = start(1000.0, None).await;
    let job = scaled_job("web", 2, 3, json!(null));
    s.register(job.clone()).await;
    let v0 = s.get_json("/v1/job/web").await;
    let id = v0["TaskGroups"][0]["Scaling"]["ID"].clone();
    // The client's policy has no indexes, the stored one has: a new version, whose
    // policy keeps the ID and has indexes 0 (the policy itself did not change).
    let again = s.register(job.clone()).await;
    assert_ne!(again["JobModifyIndex"], v0["JobModifyIndex"]);
    let v1 = s.get_json("/v1/job/web").await;
    assert_eq!(v1["Version"], 1);
    assert_eq!(v1["TaskGroups"][0]["Scaling"]["ID"], id);
    assert_eq!(v1["TaskGroups"][0]["Scaling"]["CreateIndex"], 0);
    assert_eq!(v1["TaskGroups"][0]["Scaling"]["ModifyIndex"], 0);
    let third = s.register(job.clone()).await;
    assert_eq!(
        third["JobModifyIndex"], again["JobModifyIndex"],
        "no change now"
    );
    // A changed policy: written again, its creation index kept.
    let mut wider = job.clone();
    wider["TaskGroups"][0]["Scaling"]["Max"] = json!(9);
    let w = s.register(wider).await;
    let v2 = s.get_json("/v1/job/web").await;
    let p = &v2["TaskGroups"][0]["Scaling"];
    assert_eq!(p["ID"], id);
    assert_eq!(p["CreateIndex"], v0["JobModifyIndex"]);
    assert_eq!(p["ModifyIndex"], w["JobModifyIndex"]);

    // No count: the policy's minimum.
    let mut no_count = scaled_job("min", 1, 5, json!(null));
    no_count["TaskGroups"][0]
        .as_object_mut()
        .expect("group")
        .remove("Count");
    no_count["TaskGroups"][0]["Scaling"]["Min"] = json!(2);
    s.register(no_count).await;
    let g = &s.get_json("/v1/job/min").await["TaskGroups"][0];
    assert_eq!(
        (g["Count"].clone(), g["Scaling"]["Min"].clone()),
        (json!(2), json!(2))
    );

    let prefix = "1 error occurred:\n\t* Task group web validation failed: 1 error occurred:\n\t* Task group scaling policy validation failed: ";
    for (policy, count, errors) in [
        (
            json!({"Min": 2, "Max": 1}),
            1,
            "2 errors occurred:\n\t* Scaling policy invalid: maximum count must not be less than minimum count\n\t* Scaling policy invalid: task group count must not be less than minimum count in scaling policy\n\n",
        ),
        (
            json!({"Min": 1}),
            1,
            "2 errors occurred:\n\t* Scaling policy invalid: maximum count must be specified and non-negative\n\t* Scaling policy invalid: task group count must not be greater than maximum count in scaling policy\n\n",
        ),
        (
            json!({"Min": 1, "Max": 3}),
            5,
            "1 error occurred:\n\t* Scaling policy invalid: task group count must not be greater than maximum count in scaling policy\n\n",
        ),
    ] {
        let mut job = service_job("bad", "/bin/sleep", &["1"], count, json!(null));
        job["TaskGroups"][0]["Scaling"] = policy;
        let r = s.post("/v1/jobs", json!({"Job": job})).await;
        assert_eq!(r.status, 500);
        assert_eq!(r.text, format!("{prefix}{errors}\n\n\n\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_periodic_and_stopped_jobs_scale_too() {
    let s = start(1000.0, None).await;
    // A batch job without a policy: any count, an evaluation of type service.
    let mut b = service_job("b", "/bin/sleep", &["1000"], 1, json!(null));
    b["Type"] = json!("batch");
    s.register(b.clone()).await;
    wait_running(&s, "b", 1).await;
    let r = s.post("/v1/job/b/scale", to(json!(7))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let eval = s
        .get_json(&format!(
            "/v1/evaluation/{}",
            r.json()["EvalID"].as_str().unwrap_or("none")
        ))
        .await;
    assert_eq!(
        (eval["Type"].clone(), eval["Priority"].clone()),
        (json!("service"), json!(50))
    );
    wait_running(&s, "b", 7).await;
    assert_eq!(s.get_json("/v1/job/b/deployments").await, json!([]));

    // A periodic job: a version, no evaluation.
    let mut p = b.clone();
    p["ID"] = json!("cron");
    p["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "0 0 1 1 *"});
    s.register(p).await;
    let r = s.post("/v1/job/cron/scale", to(json!(2))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ans = r.json();
    assert_eq!(
        (ans["EvalID"].clone(), ans["EvalCreateIndex"].clone()),
        (json!(""), json!(0))
    );
    assert_eq!(s.get_json("/v1/job/cron").await["Version"], 1);
    let del = s
        .req("DELETE", "/v1/job/cron?purge=true", None)
        .await
        .json();
    assert_eq!(del["EvalID"], "", "no evaluation for a periodic job");

    // A stopped job: a stopped version with the count.
    assert_eq!(s.req("DELETE", "/v1/job/b", None).await.status, 200);
    let r = s.post("/v1/job/b/scale", to(json!(1))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = s.get_json("/v1/job/b").await;
    assert_eq!(
        (job["Stop"].clone(), job["Version"].clone()),
        (json!(true), json!(3))
    );
    assert_eq!(job["TaskGroups"][0]["Count"], 1);
    assert_eq!(s.get_json("/v1/job/b/scale").await["JobStopped"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_and_requests_are_logged() {
    let s = start(1000.0, Some("s3cret")).await;
    s.register(scaled_job("web", 1, 3, json!(null))).await;
    s.sim.clear_requests();
    let r = s
        .http
        .post(format!("{}/v1/job/web/scale", s.base))
        .body(to(json!(2)).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 403);
    let r = s.get("/v1/job/web/scale?namespace=default").await;
    assert_eq!(r.status, 200);
    let log = s.sim.requests();
    let seen: Vec<(&str, &str, &str, u16)> = log
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.query.as_str(),
                r.status,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST", "/v1/job/web/scale", "", 403),
            ("GET", "/v1/job/web/scale", "namespace=default", 200)
        ]
    );
}
