//! Blocking queries, ACL, HCL parse, faults, 501/404, request log, restart on
//! the same port and connection counting.

mod common;

use std::time::Duration;

use common::{service_job, start};
use nomad_sim::Fault;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_query_returns_at_once_then_wakes_on_change() {
    let s = start(1000.0, None).await;
    s.register(service_job("b1", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    let first = s.get("/v1/jobs").await;
    let idx = first.index.expect("index");
    assert!(idx >= 1);
    assert_eq!(first.status, 200);
    // A passed index returns at once.
    let r = s.get(&format!("/v1/jobs?index={}&wait=30s", idx - 1)).await;
    assert_eq!(r.status, 200);
    // Let the job settle so nothing else writes to the jobs/summary tables.
    s.wait_deployment("b1", 0, "successful").await;
    let settled = s.get("/v1/jobs").await.index.expect("index");

    // Checked before the query is sent: once spawned it may park at any moment.
    assert_eq!(s.sim.waiting_queries(), 0);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, String)>(1);
    let url = format!("{}/v1/jobs?index={settled}&wait=30s", s.base);
    let http = s.http.clone();
    tokio::spawn(async move {
        let r = http.get(url).send().await.expect("send");
        let idx = r.headers()["X-Nomad-Index"]
            .to_str()
            .expect("h")
            .parse()
            .expect("n");
        let body = r.text().await.expect("body");
        let _ = tx.send((idx, body)).await;
    });
    // The query parks (counted as a waiting query) until a write wakes it.
    s.wait_for("the query to park", || async {
        (s.sim.waiting_queries() == 1).then_some(())
    })
    .await;
    assert!(
        rx.try_recv().is_err(),
        "blocking query returned before any write"
    );
    let stats = s.get_json("/_sim/stats").await;
    assert_eq!(stats["WaitingQueries"], 1);
    s.register(service_job("b2", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    let (new_idx, body) = tokio::time::timeout(Duration::from_secs(25), rx.recv())
        .await
        .expect("woken before the wait elapsed")
        .expect("result");
    assert!(new_idx > settled);
    assert!(body.contains("\"b2\""));
    assert_eq!(
        s.sim.waiting_queries(),
        0,
        "a woken query is no longer waiting"
    );

    // A short wait elapses and returns the same index.
    let r = s
        .get(&format!(
            "/v1/job/b1?index={}&wait=50ms",
            s.get("/v1/job/b1").await.index.expect("i")
        ))
        .await;
    assert_eq!(r.status, 200);
    let r = s.get("/v1/jobs?wait=bogus&index=3").await;
    assert_eq!(r.status, 400);
    // A table never written answers index 0, as a fresh Nomad 1.1.2 does.
    let empty = start(1000.0, None).await;
    assert_eq!(empty.get("/v1/allocations").await.index, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_token_required_on_v1_but_not_control() {
    let s = start(1000.0, Some("s3cret")).await;
    let r = s
        .http
        .get(format!("{}/v1/jobs", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.text().await.expect("body"), "Permission denied");
    let r = s
        .http
        .get(format!("{}/v1/jobs", s.base))
        .header("X-Nomad-Token", "wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(s.get("/v1/jobs").await.status, 200);
    let r = s
        .http
        .get(format!("{}/_sim/stats", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hcl_parse_ok_and_errors() {
    let s = start(1000.0, None).await;
    let hcl = r#"
job "x" {
  datacenters = ["dc1"]
  type = "service"
  group "g" {
    count = 2
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args = ["1000"]
      }
      env { A = "1" }
      meta { owner = "me" }
      resources {
        cpu = 100
        memory = 64
      }
    }
    update {
      max_parallel = 1
      min_healthy_time = "1s"
      healthy_deadline = "30s"
      progress_deadline = "1m"
      auto_revert = true
    }
    constraint {
      attribute = "${attr.kernel.name}"
      value = "linux"
    }
  }
}
"#;
    let r = s
        .post(
            "/v1/jobs/parse",
            json!({"JobHCL": hcl, "Canonicalize": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = r.json();
    assert_eq!(j["ID"], "x");
    assert_eq!(j["Priority"], 50);
    assert_eq!(j["TaskGroups"][0]["Count"], 2);
    assert_eq!(
        j["TaskGroups"][0]["Update"]["HealthyDeadline"],
        30_000_000_000u64
    );
    assert_eq!(j["TaskGroups"][0]["Update"]["AutoRevert"], true);
    assert_eq!(
        j["TaskGroups"][0]["Constraints"][0]["LTarget"],
        "${attr.kernel.name}"
    );
    assert_eq!(j["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"], 64);
    assert_eq!(j["TaskGroups"][0]["Tasks"][0]["Env"]["A"], "1");
    // The parsed job registers as is.
    let r = s.post("/v1/jobs", json!({"Job": j})).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let r = s
        .post(
            "/v1/jobs/parse",
            json!({"JobHCL": "job \"x\" {\n  bogus {\n  }\n}\n"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("\"bogus\""), "{}", r.text);
    let r = s
        .post("/v1/jobs/parse", json!({"JobHCL": "job \"x\" {"}))
        .await;
    assert_eq!(r.status, 400);
    let r = s.post("/v1/jobs/parse", json!({"JobHCL": ""})).await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_status_times_latency_and_drop() {
    let s = start(1000.0, None).await;
    s.sim.add_fault(Fault {
        method: Some("GET".into()),
        path: "/v1/job/*".into(),
        status: Some(503),
        body: Some("injected".into()),
        times: Some(2),
        ..Default::default()
    });
    for _ in 0..2 {
        let r = s.get("/v1/job/x").await;
        assert_eq!((r.status, r.text.as_str()), (503, "injected"));
    }
    assert_eq!(s.get("/v1/job/x").await.status, 404);

    // Control API: add, apply, clear.
    let r = s
        .post(
            "/_sim/faults",
            json!({"path": "/v1/jobs", "status": 500, "body": "boom"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["ID"].as_u64().is_some());
    assert_eq!(s.get("/v1/jobs").await.status, 500);
    assert_eq!(s.req("DELETE", "/_sim/faults", None).await.status, 200);
    assert_eq!(s.get("/v1/jobs").await.status, 200);

    // Latency only passes through.
    s.sim.add_fault(Fault {
        path: "/v1/regions".into(),
        latency_ms: Some(150),
        times: Some(1),
        ..Default::default()
    });
    let t = std::time::Instant::now();
    assert_eq!(s.get("/v1/regions").await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));

    // Drop: the connection closes without a response.
    s.sim.add_fault(Fault {
        path: "/v1/status/leader".into(),
        drop_connection: true,
        times: Some(1),
        ..Default::default()
    });
    let err = s
        .http
        .get(format!("{}/v1/status/leader", s.base))
        .send()
        .await;
    assert!(err.is_err(), "expected a transport error, got {err:?}");
    assert_eq!(s.get("/v1/status/leader").await.status, 200);
    s.sim.clear_faults();

    let log = s.sim.requests();
    assert!(
        log.iter()
            .any(|r| r.path == "/v1/status/leader" && r.status == 0)
    );
    assert!(log.iter().any(|r| r.path == "/v1/job/x" && r.status == 503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_unknown_and_request_log() {
    let s = start(1000.0, None).await;
    s.sim.clear_requests();
    let r = s.get("/v1/nodes").await;
    assert_eq!(r.status, 501);
    assert_eq!(r.text, "nomad-sim: GET /v1/nodes is not implemented");
    let r = s.get("/v1/job/x/services").await;
    assert_eq!(r.status, 501);
    assert_eq!(s.get("/v1/bogus").await.status, 404);
    assert_eq!(s.get("/nope").await.status, 404);
    let _ = s.get("/v1/jobs?prefix=a&namespace=default").await;
    let _ = s.get("/_sim/stats").await;
    let log = s.sim.requests();
    let methods_paths: Vec<(String, String, u16)> = log
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status))
        .collect();
    assert_eq!(
        methods_paths,
        vec![
            ("GET".into(), "/v1/nodes".into(), 501),
            ("GET".into(), "/v1/job/x/services".into(), 501),
            ("GET".into(), "/v1/bogus".into(), 404),
            ("GET".into(), "/nope".into(), 404),
            ("GET".into(), "/v1/jobs".into(), 200),
        ]
    );
    assert_eq!(log[4].query, "prefix=a&namespace=default");
    let remote = s.get_json("/_sim/requests").await;
    assert_eq!(remote.as_array().map(Vec::len), Some(5));
    assert_eq!(s.sim.take_requests().len(), 5, "taken");
    assert!(s.sim.requests().is_empty(), "and emptied");
    let _ = s.get("/v1/jobs").await;
    s.sim.clear_requests();
    assert!(s.sim.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_serve_again_on_same_port_keeps_state() {
    let s = start(1000.0, None).await;
    s.register(service_job("keep", "/bin/sleep", &["1000"], 1, json!(null)))
        .await;
    // Open a keep-alive connection and a blocking query.
    let _ = s.get("/v1/jobs").await;
    assert!(s.sim.open_connections() >= 1);
    let idx = s.get("/v1/jobs").await.index.expect("i") + 1000;
    let http = s.http.clone();
    let url = format!("{}/v1/jobs?index={idx}&wait=60s", s.base);
    let pending =
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = s.server.addr;
    let sim = s.sim.clone();
    let t = std::time::Instant::now();
    s.server.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(5));
    let _ = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("blocking query ended");
    let server = sim.serve(addr).await.expect("rebind same port");
    let r = reqwest::get(format!("{}/v1/job/keep", server.url()))
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", server.url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["Jobs"], 1);
    server.shutdown().await;
}
