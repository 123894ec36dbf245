//! Faults that let the request through (commit then drop, held answers, stripped
//! index headers, padded bodies), redirects, leader loss, and what the request log
//! records (arrival time, server port, dropped answers, job digests, deployments).

mod common;

use std::time::Duration;

use common::{TIMEOUT, http_client, service_job, start};
use nomad_sim::{Fault, RequestRecord};
use serde_json::{Value, json};

/// The one logged request with `method` and `path`.
fn logged(s: &common::Sim, method: &str, path: &str) -> RequestRecord {
    let log = s.sim.requests();
    let hits: Vec<&RequestRecord> = log
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .collect();
    assert_eq!(hits.len(), 1, "{method} {path} in {log:?}");
    hits[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_drop_commits_and_closes_the_connection() {
    let s = start(1000.0, None).await;
    s.sim.add_fault(Fault {
        method: Some("POST".into()),
        path: "/v1/job/ctd".into(),
        commit_then_drop: true,
        times: Some(1),
        ..Default::default()
    });
    let job = service_job("ctd", "/bin/sleep", &["1000"], 1, json!(null));
    let r = s
        .http
        .post(format!("{}/v1/job/ctd", s.base))
        .body(json!({ "Job": job }).to_string())
        .send()
        .await;
    assert!(r.is_err(), "expected a transport error, got {r:?}");
    // The register happened all the same.
    let j = s.get_json("/v1/job/ctd").await;
    assert_eq!(j["ID"], "ctd");
    let rec = logged(&s, "POST", "/v1/job/ctd");
    assert_eq!((rec.status, rec.dropped), (200, true));
    assert!(rec.job_digest.is_some());

    // A delete deregisters, then drops.
    s.sim.add_fault(Fault {
        method: Some("DELETE".into()),
        path: "/v1/job/ctd".into(),
        commit_then_drop: true,
        times: Some(1),
        ..Default::default()
    });
    let r = s.http.delete(format!("{}/v1/job/ctd", s.base)).send().await;
    assert!(r.is_err(), "expected a transport error, got {r:?}");
    assert_eq!(s.get_json("/v1/job/ctd").await["Stop"], true);
    let rec = logged(&s, "DELETE", "/v1/job/ctd");
    assert_eq!((rec.status, rec.dropped), (200, true));

    // A drop before handling still logs status 0, now with `dropped`.
    s.sim.add_fault(Fault {
        path: "/v1/regions".into(),
        drop_connection: true,
        times: Some(1),
        ..Default::default()
    });
    assert!(
        s.http
            .get(format!("{}/v1/regions", s.base))
            .send()
            .await
            .is_err()
    );
    let rec = logged(&s, "GET", "/v1/regions");
    assert_eq!((rec.status, rec.dropped), (0, true));
    // Other requests are not dropped.
    assert!(
        s.sim
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/v1/job/ctd")
            .all(|r| !r.dropped && r.status == 200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_commit_ms_holds_the_answer_after_the_commit() {
    let s = start(1000.0, None).await;
    // Held for a minute, then dropped: the job exists while the answer is pending.
    s.sim.add_fault(Fault {
        method: Some("POST".into()),
        path: "/v1/job/held".into(),
        commit_then_drop: true,
        after_commit_ms: Some(60_000),
        times: Some(1),
        ..Default::default()
    });
    let job = service_job("held", "/bin/sleep", &["1000"], 1, json!(null));
    let http = s.http.clone();
    let url = format!("{}/v1/job/held", s.base);
    let client = tokio::spawn(async move {
        http.post(url)
            .body(json!({ "Job": job }).to_string())
            .send()
            .await
    });
    s.wait_for("the held register to commit", || async {
        let committed = s.get("/v1/job/held").await.status == 200;
        let logged = s
            .sim
            .requests()
            .iter()
            .any(|r| r.path == "/v1/job/held" && r.method == "POST" && r.dropped);
        (committed && logged).then_some(())
    })
    .await;
    assert!(!client.is_finished(), "the answer was not held");
    // The test may now kill the client while the answer is pending.
    client.abort();

    // Without commit_then_drop the answer comes, after the hold.
    s.sim.add_fault(Fault {
        path: "/v1/regions".into(),
        after_commit_ms: Some(150),
        times: Some(1),
        ..Default::default()
    });
    let t = std::time::Instant::now();
    let r = s.get("/v1/regions").await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    let rec = logged(&s, "GET", "/v1/regions");
    assert_eq!((rec.status, rec.dropped), (200, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_answers_500_except_agent_self() {
    let s = start(1000.0, None).await;
    s.register(service_job("ll", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    assert!(s.sim.has_leader());
    s.sim.set_leader(false);
    assert!(!s.sim.has_leader());
    s.sim.clear_requests();
    for path in ["/v1/jobs", "/v1/job/ll", "/v1/status/leader", "/v1/bogus"] {
        let r = s.get(path).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (500, "No cluster leader"),
            "{path}"
        );
        assert!(r.content_type.starts_with("text/plain"), "{path}");
        assert_eq!(r.index, None, "{path}");
    }
    let r = s
        .post(
            "/v1/jobs",
            json!({"Job": service_job("nl", "/bin/sleep", &["1"], 1, json!(null))}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (500, "No cluster leader"));
    let agent = s.get("/v1/agent/self").await;
    assert_eq!(agent.status, 200);
    assert!(agent.json()["config"].is_object(), "{}", agent.text);
    let log = s.sim.requests();
    assert!(
        log.iter()
            .filter(|r| r.path != "/v1/agent/self")
            .all(|r| r.status == 500 && !r.dropped),
        "{log:?}"
    );
    assert_eq!(logged(&s, "GET", "/v1/agent/self").status, 200);

    // Restoring the leader serves the same state; the register above did not happen.
    s.sim.set_leader(true);
    assert_eq!(s.get_json("/v1/job/ll").await["ID"], "ll");
    assert_eq!(s.get("/v1/job/nl").await.status, 404);

    // A blocking query parked when the leader goes answers the 500 without waiting.
    // (The namespaces table is not written by the job's scheduling.)
    let idx = s.get("/v1/namespaces").await.index.expect("index");
    let http = s.http.clone();
    let url = format!("{}/v1/namespaces?index={idx}&wait=5m", s.base);
    let parked = tokio::spawn(async move {
        let r = http.get(url).send().await.expect("send");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    });
    s.wait_for("the query to park", || async {
        (s.sim.waiting_queries() == 1).then_some(())
    })
    .await;
    s.sim.set_leader(false);
    let (status, body) = tokio::time::timeout(TIMEOUT, parked)
        .await
        .expect("answered before the wait elapsed")
        .expect("task");
    assert_eq!((status, body.as_str()), (500, "No cluster leader"));

    // The control API sets and reports it too.
    assert_eq!(s.get_json("/_sim/leader").await, json!({"Leader": false}));
    let r = s.post("/_sim/leader", json!({"Leader": true})).await;
    assert_eq!(r.status, 200);
    assert!(s.sim.has_leader());
    assert_eq!(s.get("/v1/jobs").await.status, 200);
    assert_eq!(s.get_json("/_sim/stats").await["Leader"], true);
    assert_eq!(
        s.post("/_sim/leader", json!({"Leader": false}))
            .await
            .status,
        200
    );
    assert_eq!(s.get("/v1/jobs").await.status, 500);
    assert_eq!(s.get_json("/_sim/leader").await["Leader"], false);
    assert_eq!(s.post("/_sim/leader", json!({"x": 1})).await.status, 400);
    s.sim.set_leader(true);
    assert_eq!(s.get("/v1/jobs").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_index_removes_the_meta_headers() {
    let s = start(1000.0, None).await;
    s.register(service_job("si", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    let url = format!("{}/v1/job/si", s.base);
    let plain = s.http.get(&url).send().await.expect("send");
    for h in [
        "X-Nomad-Index",
        "X-Nomad-KnownLeader",
        "X-Nomad-LastContact",
    ] {
        assert!(plain.headers().contains_key(h), "{h}");
    }
    // Over the control API, as a standalone simulator is driven.
    let r = s
        .post(
            "/_sim/faults",
            json!({"path": "/v1/job/si", "strip_index": true, "times": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stripped = s.http.get(&url).send().await.expect("send");
    assert_eq!(stripped.status().as_u16(), 200);
    for h in [
        "X-Nomad-Index",
        "X-Nomad-KnownLeader",
        "X-Nomad-LastContact",
    ] {
        assert!(!stripped.headers().contains_key(h), "{h}");
    }
    let body: Value = stripped.json().await.expect("json");
    assert_eq!(body["ID"], "si");
    assert!(s.get("/v1/job/si").await.index.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pad_bytes_appends_spaces_to_the_body() {
    let s = start(1000.0, None).await;
    s.register(service_job("pad", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    const PAD: usize = 3 * 1024 * 1024;
    s.sim.add_fault(Fault {
        path: "/v1/job/pad".into(),
        pad_bytes: Some(PAD as u64),
        times: Some(1),
        ..Default::default()
    });
    let padded = s.get("/v1/job/pad").await;
    assert_eq!(padded.status, 200);
    // The job moves on its own (time runs 1000 times faster), so the padded answer is
    // compared with itself: the job's JSON, then exactly PAD spaces.
    let body = padded.text.trim_end_matches(' ');
    assert_eq!(padded.text.len(), body.len() + PAD);
    let job: Value = serde_json::from_str(body).expect("the body before the padding");
    assert_eq!(job["ID"], "pad");
    assert_eq!(padded.json(), job);
    assert!(padded.index.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_answers_307_without_handling() {
    let s = start(1000.0, None).await;
    s.sim.add_fault(Fault {
        method: Some("POST".into()),
        path: "/v1/job/*".into(),
        redirect_to: Some("http://127.0.0.1:1/v1/job/rd".into()),
        times: Some(1),
        ..Default::default()
    });
    let _ = http_client();
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let job = service_job("rd", "/bin/sleep", &["1000"], 1, json!(null));
    let r = no_follow
        .post(format!("{}/v1/job/rd", s.base))
        .body(json!({ "Job": job }).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("http://127.0.0.1:1/v1/job/rd")
    );
    assert_eq!(r.text().await.expect("body"), "");
    assert_eq!(s.get("/v1/job/rd").await.status, 404, "the register ran");
    let rec = logged(&s, "POST", "/v1/job/rd");
    assert_eq!(
        (rec.status, rec.dropped, rec.job_digest),
        (307, false, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_arrival_time_and_server_port() {
    let s = start(1000.0, None).await;
    let second = s
        .sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let ports = [s.server.addr.port(), second.addr.port()];
    assert_ne!(ports[0], ports[1]);
    s.sim.clear_requests();
    for i in 0..6 {
        let base = if i % 2 == 0 {
            s.base.clone()
        } else {
            second.url()
        };
        let r = s
            .http
            .get(format!("{base}/v1/regions?n={i}"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let log = s.sim.requests();
    assert_eq!(log.len(), 6);
    for (i, r) in log.iter().enumerate() {
        assert_eq!(r.query, format!("n={i}"));
        assert_eq!(r.server, ports[i % 2]);
        assert!(!r.dropped);
        assert_eq!(
            (r.job_digest.as_deref(), r.deployment.as_deref()),
            (None, None)
        );
    }
    assert!(log.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{log:?}");
    second.shutdown().await;

    // Records written before these fields existed still parse.
    let old: RequestRecord = serde_json::from_str(
        r#"{"method": "GET", "path": "/v1/jobs", "query": "", "status": 200}"#,
    )
    .expect("old record");
    assert_eq!((old.at_ms, old.server, old.dropped), (0, 0, false));
    assert_eq!((old.job_digest, old.deployment), (None, None));
    // And the control API serves the new ones.
    let served = s.get_json("/_sim/requests").await;
    assert_eq!(served[0]["server"], ports[0]);
    assert!(served[0]["at_ms"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_digest_ignores_indexes_and_follows_the_spec() {
    let s = start(1000.0, None).await;
    let job = service_job("dg", "/bin/sleep", &["1000"], 1, json!(null));
    s.sim.clear_requests();
    let first = s.post("/v1/jobs", json!({ "Job": job })).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let modify = first.json()["JobModifyIndex"].as_u64().expect("index");
    // The same spec again, with check-and-set and server-set fields echoed back.
    let mut echoed = job.clone();
    echoed["Version"] = json!(0);
    echoed["ModifyIndex"] = json!(modify);
    echoed["JobModifyIndex"] = json!(modify);
    echoed["CreateIndex"] = json!(modify);
    echoed["SubmitTime"] = json!(1_600_000_000_000_000_000_u64);
    echoed["Stable"] = json!(true);
    echoed["Status"] = json!("running");
    echoed["StatusDescription"] = json!("");
    let second = s
        .post(
            "/v1/job/dg",
            json!({"Job": echoed, "EnforceIndex": true, "JobModifyIndex": modify}),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    // A changed spec.
    let mut changed = job.clone();
    changed["TaskGroups"][0]["Count"] = json!(2);
    let third = s.post("/v1/job/dg", json!({ "Job": changed })).await;
    assert_eq!(third.status, 200, "{}", third.text);
    // A failed register has no digest.
    let conflict = s
        .post(
            "/v1/job/dg",
            json!({"Job": job, "EnforceIndex": true, "JobModifyIndex": 1}),
        )
        .await;
    assert_eq!(conflict.status, 500, "{}", conflict.text);

    let digests: Vec<Option<String>> = s
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.job_digest)
        .collect();
    assert_eq!(digests.len(), 4);
    let d0 = digests[0].clone().expect("digest of the first register");
    assert_eq!(d0.len(), 16);
    assert!(d0.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(digests[1].as_deref(), Some(d0.as_str()));
    let d2 = digests[2].clone().expect("digest of the changed register");
    assert_ne!(d2, d0);
    assert_eq!(digests[3], None);
    // A plan is no register.
    let plan = s.post("/v1/job/dg/plan", json!({ "Job": job })).await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    assert_eq!(logged(&s, "POST", "/v1/job/dg/plan").job_digest, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_recorded_on_revert_and_deployment_writes() {
    let s = start(1000.0, None).await;
    s.register(service_job("rv", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    s.wait_deployment("rv", 0, "successful").await;
    s.register(service_job("rv", "/bin/sleep", &["2000"], 1, json!(null)))
        .await;
    let d1 = s.wait_deployment("rv", 1, "successful").await;
    let d1_id = d1["ID"].as_str().expect("id").to_string();
    assert_eq!(s.get_json("/v1/job/rv/deployment").await["ID"], d1["ID"]);
    s.sim.clear_requests();
    let r = s
        .post("/v1/job/rv/revert", json!({"JobID": "rv", "JobVersion": 0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        logged(&s, "POST", "/v1/job/rv/revert")
            .deployment
            .as_deref(),
        Some(d1_id.as_str())
    );
    // A deployment write records the job's newest deployment when it arrived.
    let newest = s
        .wait_for("the revert's deployment", || async {
            let d = s.get_json("/v1/job/rv/deployment").await;
            (d["ID"] != d1["ID"]).then(|| d["ID"].as_str().map(str::to_string))?
        })
        .await;
    let path = format!("/v1/deployment/fail/{d1_id}");
    let _ = s.post(&path, json!({})).await;
    assert_eq!(
        logged(&s, "POST", &path).deployment.as_deref(),
        Some(newest.as_str())
    );
    // Reads and unknown jobs record none.
    assert!(
        s.sim
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.deployment.is_none())
    );
    let r = s
        .post(
            "/v1/job/nope/revert",
            json!({"JobID": "nope", "JobVersion": 0}),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(logged(&s, "POST", "/v1/job/nope/revert").deployment, None);
}
