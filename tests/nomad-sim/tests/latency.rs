//! The latency model (`Simulator::set_latency`): reads wait the read delay, writes the
//! write delay, each answer no earlier than its delay (lower bounds: not timing luck);
//! the delay holds no lock, so concurrent requests wait side by side (bounds as
//! fractions of what a server serializing them would need, with a wide margin).

mod common;

use std::time::{Duration, Instant};

use common::{Sim, service_job, start};
use nomad_sim::Latency;
use serde_json::{Value, json};

fn job(id: &str) -> Value {
    service_job(id, "/bin/sleep", &["1000"], 1, json!(null))
}

/// Runs `f` and returns what it returned and how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let out = f.await;
    (out, t.elapsed())
}

async fn with_latency(read_ms: u64, write_ms: u64) -> Sim {
    let s = start(1000.0, None).await;
    s.sim.set_latency(Latency {
        read: Duration::from_millis(read_ms),
        write: Duration::from_millis(write_ms),
    });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_the_read_delay_and_writes_the_write_delay() {
    // Far apart, so that which delay a request waited is plain.
    let (read, write) = (Duration::from_millis(300), Duration::from_millis(2500));
    let s = with_latency(300, 2500).await;
    assert_eq!(s.sim.latency(), Latency { read, write });

    let (r, took) = timed(s.get("/v1/jobs")).await;
    assert_eq!(r.status, 200);
    assert!(took >= read, "GET /v1/jobs answered after {took:?}");
    assert!(
        took < write,
        "GET /v1/jobs waited the write delay: {took:?}"
    );

    let (r, took) = timed(s.post("/v1/jobs", json!({"Job": job("a")}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= write, "register answered after {took:?}");

    // Plan and parse change nothing: reads, whatever their method.
    let (r, took) = timed(s.post("/v1/job/a/plan", json!({"Job": job("a")}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= read, "plan answered after {took:?}");
    assert!(took < write, "plan waited the write delay: {took:?}");
    let (r, took) = timed(s.post(
        "/v1/jobs/parse",
        json!({"JobHCL": "job \"p\" {\n group \"g\" {\n task \"t\" {\n driver = \"raw_exec\"\n }\n }\n}\n"}),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        (read..write).contains(&took),
        "parse answered after {took:?}"
    );

    // An error answer is an answer too.
    let (r, took) = timed(s.get("/v1/job/nope")).await;
    assert_eq!(r.status, 404);
    assert!(took >= read, "a 404 answered after {took:?}");

    let (r, took) = timed(s.req("DELETE", "/v1/job/a", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= write, "deregister answered after {took:?}");

    // The control API is no part of the model.
    let (r, took) = timed(s.get("/_sim/stats")).await;
    assert_eq!(r.status, 200);
    assert!(took < read, "GET /_sim/stats waited {took:?}");

    // Back to none.
    s.sim.set_latency(Latency::default());
    let (_, took) = timed(s.get("/v1/jobs")).await;
    assert!(took < read, "GET /v1/jobs still waited {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_wait_side_by_side() {
    const N: u32 = 20;
    let latency = Duration::from_millis(200);
    let s = with_latency(200, 200).await;
    // A server holding a lock through the delay would need N x latency (4 s).
    let bound = latency * N / 4;

    let (statuses, took) = timed(concurrently(&s, N, |http, base, _| {
        http.get(format!("{base}/v1/jobs"))
    }))
    .await;
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    assert!(took >= latency, "{N} reads answered after {took:?}");
    assert!(
        took < bound,
        "{N} concurrent reads with {latency:?} latency took {took:?}, not fewer than {N}/4 x latency"
    );

    let (statuses, took) = timed(concurrently(&s, N, |http, base, i| {
        http.post(format!("{base}/v1/jobs"))
            .body(json!({"Job": job(&format!("w{i}"))}).to_string())
    }))
    .await;
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    assert!(took >= latency, "{N} writes answered after {took:?}");
    assert!(
        took < bound,
        "{N} concurrent writes with {latency:?} latency took {took:?}, not fewer than {N}/4 x latency"
    );
}

/// Sends `n` requests made by `request(client, base, i)` at once; their statuses.
async fn concurrently(
    s: &Sim,
    n: u32,
    request: impl Fn(&reqwest::Client, &str, u32) -> reqwest::RequestBuilder,
) -> Vec<u16> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let send = request(&s.http, &s.base, i).send();
        tasks.spawn(async move { send.await.map(|r| r.status().as_u16()).unwrap_or(0) });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_its_delay_holds_no_lock_and_is_already_applied() {
    let write = Duration::from_secs(3);
    let s = with_latency(0, 3000).await;
    let register = s.post("/v1/jobs", json!({"Job": job("slow")}));
    let read = async {
        // While the register waits its delay, reads are answered, and see it.
        let started = Instant::now();
        loop {
            let r = s.get("/v1/jobs").await;
            assert_eq!(r.status, 200);
            if r.json().as_array().is_some_and(|a| !a.is_empty()) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let ((r, took), seen) = tokio::join!(timed(register), read);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took >= write, "register answered after {took:?}");
    assert!(
        seen < write / 3,
        "the registered job was listed only after {seen:?}, the register's delay being {write:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_query_waits_for_its_change_then_the_delay_once() {
    let read = Duration::from_secs(1);
    let s = with_latency(1000, 0).await;
    // Namespaces: nothing else writes them.
    let index = s.get("/v1/namespaces").await.index.expect("index");

    // No change: the wait, then the delay.
    let wait = Duration::from_secs(1);
    let (r, took) = timed(s.get(&format!("/v1/namespaces?index={index}&wait=1s"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.index, Some(index));
    assert!(
        took >= wait + read,
        "a blocking query with nothing to wait for answered after {took:?}"
    );

    // A change half a second into a 60 s wait: the answer follows it by the delay, the
    // rest of the wait is not waited.
    let change_after = Duration::from_millis(500);
    let path = format!("/v1/namespaces?index={index}&wait=60s");
    let blocking = timed(s.get(&path));
    let change = async {
        tokio::time::sleep(change_after).await;
        s.post("/v1/namespace/team", json!({"Name": "team"})).await
    };
    let ((r, took), w) = tokio::join!(blocking, change);
    assert_eq!(w.status, 200, "{}", w.text);
    assert_eq!(r.status, 200);
    assert!(r.index > Some(index), "answered at {:?}", r.index);
    assert!(took >= change_after + read, "answered after {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "a blocking query woken after {change_after:?} answered after {took:?}"
    );
}
