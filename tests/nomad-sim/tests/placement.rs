//! Allocations the simulated node cannot take: plans and evaluations report
//! `FailedTGAllocs`, a blocked evaluation waits, the summary shows them `Queued`, the
//! job is `pending`, and a later placeable version places them (REAL_NOMAD.md,
//! "Placement failures").

mod common;

use common::{Sim, service_job, start, start_node};
use nomad_sim::{NodeConfig, SimConfig};
use serde_json::{Value, json};

/// The quick update block of the differential test's `web` (5 s progress deadline).
fn update() -> Value {
    json!({"MaxParallel": 1, "MinHealthyTime": 1_000_000_000u64,
           "HealthyDeadline": 4_000_000_000u64, "ProgressDeadline": 5_000_000_000u64})
}

/// `service_job` whose task asks `memory_mb`.
fn sized(id: &str, count: u64, memory_mb: u64) -> Value {
    let mut job = service_job(id, "/bin/sleep", &["1000"], count, update());
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(memory_mb);
    job
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Registers `job` and waits until the evaluation of the register is complete.
async fn register_evaluated(s: &Sim, job: Value) -> Value {
    let reg = s.register(job).await;
    let id = reg["EvalID"].as_str().unwrap_or_default().to_string();
    s.wait_for("the register's evaluation", || async {
        let e = s.get_json(&format!("/v1/evaluation/{id}")).await;
        (e["Status"] == "complete").then_some(e)
    })
    .await
}

async fn plan(s: &Sim, job: &Value) -> Value {
    let id = job["ID"].as_str().unwrap_or_default();
    let r = s
        .post(&format!("/v1/job/{id}/plan"), json!({"Job": job}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_big_a_job_waits_blocked_until_it_fits() {
    let s = start(100.0, None).await;
    let big = sized("mem", 2, 10_000_000);

    let p = plan(&s, &big).await;
    let m = &p["FailedTGAllocs"]["web"];
    assert_eq!(m["NodesEvaluated"], 1);
    assert_eq!(m["NodesExhausted"], 1);
    assert_eq!(m["NodesAvailable"], json!({"dc1": 1}));
    assert_eq!(m["DimensionExhausted"], json!({"memory": 1}));
    assert_eq!(m["CoalescedFailures"], 1);
    // Two allocations' worth, memory only (the exhausted dimension).
    assert_eq!(m["ResourcesExhausted"]["server"]["MemoryMB"], 20_000_000);
    assert_eq!(m["ResourcesExhausted"]["server"]["CPU"], 0);
    assert!(m["ConstraintFiltered"].is_null() && m["ScoreMetaData"].is_null());
    assert_eq!(p["Annotations"]["DesiredTGUpdates"]["web"]["Place"], 2);
    let created = &p["CreatedEvals"][0];
    assert_eq!(created["Status"], "blocked");
    assert_eq!(created["TriggeredBy"], "queued-allocs");
    assert_eq!(
        created["StatusDescription"],
        "created to place remaining allocations"
    );
    assert!(created.get("CreateIndex").is_none() && created.get("JobModifyIndex").is_none());
    let class = created["ClassEligibility"].as_object().expect("classes");
    assert_eq!(class.values().collect::<Vec<_>>(), [&json!(true)]);
    // A plan writes nothing.
    assert_eq!(s.get("/v1/job/mem").await.status, 404);

    let eval = register_evaluated(&s, big.clone()).await;
    assert_eq!(
        eval["FailedTGAllocs"]["web"]["DimensionExhausted"],
        json!({"memory": 1})
    );
    assert_eq!(eval["QueuedAllocations"], json!({"web": 2}));
    let blocked_id = eval["BlockedEval"].as_str().expect("a blocked evaluation");
    let blocked = s.get_json(&format!("/v1/evaluation/{blocked_id}")).await;
    assert_eq!(blocked["Status"], "blocked");
    assert_eq!(blocked["PreviousEval"], eval["ID"]);
    assert_eq!(blocked["JobModifyIndex"], eval["JobModifyIndex"]);
    assert_eq!(blocked["FailedTGAllocs"], eval["FailedTGAllocs"]);
    assert!(blocked.get("DeploymentID").is_none());
    assert!(blocked.get("QueuedAllocations").is_none());
    // Written before the plan (the deployment), which is before the evaluation's end.
    let ci = |v: &Value| v["CreateIndex"].as_u64().unwrap_or(0);
    let dep = s.get_json("/v1/job/mem/deployment").await;
    assert!(ci(&eval) < ci(&blocked) && ci(&blocked) < ci(&dep));
    assert!(ci(&dep) < eval["ModifyIndex"].as_u64().unwrap_or(0));
    assert_eq!(eval["DeploymentID"], dep["ID"]);

    let job = s.get_json("/v1/job/mem").await;
    assert_eq!(job["Status"], "pending");
    assert_eq!(job["ModifyIndex"], job["JobModifyIndex"]);
    let sum = s.get_json("/v1/job/mem/summary").await;
    assert_eq!(sum["Summary"]["web"]["Queued"], 2);
    assert_eq!(sum["ModifyIndex"], eval["ModifyIndex"]);
    assert_eq!(s.get_json("/v1/job/mem/allocations").await, json!([]));
    // The deployment places nothing and never reaches its progress deadline.
    assert_eq!(dep["Status"], "running");
    assert_eq!(dep["TaskGroups"]["web"]["PlacedAllocs"], 0);
    assert!(dep["TaskGroups"]["web"]["RequireProgressBy"].is_null());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        s.get_json("/v1/job/mem/deployment").await["Status"],
        "running"
    );

    // The same spec again: no version, a new blocked evaluation, the old one cancelled.
    let again = register_evaluated(&s, big).await;
    assert_eq!(s.get_json("/v1/job/mem").await["Version"], 0);
    let old = s.get_json(&format!("/v1/evaluation/{blocked_id}")).await;
    assert_eq!(old["Status"], "canceled");
    assert_eq!(
        old["StatusDescription"],
        "existing blocked evaluation exists for job \"mem\""
    );
    let newer = again["BlockedEval"]
        .as_str()
        .expect("blocked again")
        .to_string();

    // Small enough: placed, and the blocked evaluation is cancelled.
    s.register(sized("mem", 2, 32)).await;
    s.wait_deployment("mem", 1, "successful").await;
    let b = s.get_json(&format!("/v1/evaluation/{newer}")).await;
    assert_eq!(b["Status"], "canceled");
    assert_eq!(
        b["StatusDescription"],
        format!("evaluation \"{newer}\" successful")
    );
    let sum = s.get_json("/v1/job/mem/summary").await;
    assert_eq!(sum["Summary"]["web"]["Queued"], 0);
    assert_eq!(s.get_json("/v1/job/mem").await["Status"], "running");
    let deps = s.get_json("/v1/job/mem/deployments").await;
    let first = arr(&deps)
        .iter()
        .find(|d| d["JobVersion"] == 0)
        .expect("v0");
    assert_eq!(first["Status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_has_the_configured_capacity() {
    let node = NodeConfig {
        cpu_mhz: 1000,
        memory_mb: 1024,
        disk_mb: 500,
    };
    let s = start_node(
        SimConfig {
            time_scale: 1000.0,
            ..SimConfig::default()
        },
        node,
    )
    .await;
    assert!(plan(&s, &sized("fits", 3, 1024)).await["FailedTGAllocs"].is_null());
    let p = plan(&s, &sized("big", 1, 1025)).await;
    assert_eq!(
        p["FailedTGAllocs"]["web"]["DimensionExhausted"],
        json!({"memory": 1})
    );
    // CPU is checked before memory; resources are not accounted cumulatively.
    let mut cpu = sized("cpu", 1, 2048);
    cpu["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = json!(1001);
    let m = &plan(&s, &cpu).await["FailedTGAllocs"]["web"];
    assert_eq!(m["DimensionExhausted"], json!({"cpu": 1}));
    assert_eq!(m["ResourcesExhausted"]["server"]["CPU"], 1001);
    assert_eq!(m["ResourcesExhausted"]["server"]["MemoryMB"], 0);
    // The ephemeral disk (300 MB by default) counts against the node's disk.
    let mut disk = sized("disk", 1, 32);
    disk["TaskGroups"][0]["EphemeralDisk"] = json!({"SizeMB": 600});
    let m = &plan(&s, &disk).await["FailedTGAllocs"]["web"];
    assert_eq!(m["DimensionExhausted"], json!({"disk": 1}));
    assert_eq!(m["ResourcesExhausted"]["server"]["MemoryMB"], 0);

    // The default node takes 10,000 allocations of 32 MB.
    let d = start(1000.0, None).await;
    assert!(plan(&d, &sized("many", 10_000, 32)).await["FailedTGAllocs"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_filter_the_node() {
    let s = start(100.0, None).await;
    let c = |l: &str, op: &str, r: &str| json!([{"LTarget": l, "Operand": op, "RTarget": r}]);
    let with = |id: &str, level: &str, cons: Value| {
        let mut job = sized(id, 2, 32);
        match level {
            "job" => job["Constraints"] = cons,
            "group" => job["TaskGroups"][0]["Constraints"] = cons,
            _ => job["TaskGroups"][0]["Tasks"][0]["Constraints"] = cons,
        }
        job
    };
    let kernel = "${attr.kernel.name}";
    for (job, reason) in [
        (
            with("a", "job", c(kernel, "=", "windows")),
            "${attr.kernel.name} = windows",
        ),
        (
            with("b", "task", c("${node.datacenter}", "!=", "dc1")),
            "${node.datacenter} != dc1",
        ),
        (
            with("c", "group", c("${attr.nope}", "=", "x")),
            "${attr.nope} = x",
        ),
        (
            with("d", "group", c(kernel, "regexp", "^win")),
            "${attr.kernel.name} regexp ^win",
        ),
        (
            with("e", "group", c("${attr.nope}", "is_set", "")),
            "${attr.nope} is_set ",
        ),
        (
            with(
                "f",
                "group",
                c("${attr.kernel.version}", "version", "> 100.0"),
            ),
            "${attr.kernel.version} version > 100.0",
        ),
    ] {
        let p = plan(&s, &job).await;
        let m = &p["FailedTGAllocs"]["web"];
        assert_eq!(m["ConstraintFiltered"], json!({reason: 1}), "{job}");
        assert_eq!(
            (&m["NodesFiltered"], &m["CoalescedFailures"]),
            (&json!(1), &json!(1))
        );
        assert!(m["ResourcesExhausted"].is_null() && m["DimensionExhausted"].is_null());
        let classes = p["CreatedEvals"][0]["ClassEligibility"]
            .as_object()
            .cloned();
        assert_eq!(
            classes.map(|c| c.values().cloned().collect::<Vec<_>>()),
            Some(vec![json!(false)])
        );
    }
    for job in [
        with("ok1", "job", c(kernel, "=", "linux")),
        with("ok2", "group", c("${attr.nope}", "!=", "x")),
        with(
            "ok3",
            "task",
            c("${attr.kernel.version}", "semver", ">= 5.0.0"),
        ),
        with("ok4", "group", c("${attr.driver.raw_exec}", "is_set", "")),
    ] {
        assert!(plan(&s, &job).await["FailedTGAllocs"].is_null(), "{job}");
    }

    // No node in the job's datacenters: nothing evaluated, no class seen.
    let mut nowhere = sized("nowhere", 2, 32);
    nowhere["Datacenters"] = json!(["nowhere", "dc1x"]);
    let p = plan(&s, &nowhere).await;
    let m = &p["FailedTGAllocs"]["web"];
    assert_eq!(m["NodesEvaluated"], 0);
    assert_eq!(m["NodesAvailable"], json!({"nowhere": 0, "dc1x": 0}));
    assert!(p["CreatedEvals"][0].get("ClassEligibility").is_none());

    // One node: distinct_hosts places one allocation of three.
    let mut spread = sized("spread", 3, 32);
    spread["TaskGroups"][0]["Constraints"] = json!([{"Operand": "distinct_hosts"}]);
    let m = &plan(&s, &spread).await["FailedTGAllocs"]["web"];
    assert_eq!(m["ConstraintFiltered"], json!({"distinct_hosts": 1}));
    assert_eq!(m["CoalescedFailures"], 1);
    let eval = register_evaluated(&s, spread).await;
    assert_eq!(eval["QueuedAllocations"], json!({"web": 2}));
    assert_eq!(
        arr(&s.get_json("/v1/job/spread/allocations").await).len(),
        1
    );

    // A node-unique target escapes the computed class.
    let p = plan(
        &s,
        &with("esc", "group", c("${node.unique.name}", "=", "x")),
    )
    .await;
    let created = &p["CreatedEvals"][0];
    assert_eq!(created["EscapedComputedClass"], true);
    assert!(created.get("ClassEligibility").is_none());

    // A job constraint spares a second group its own check.
    let mut two = with("two", "job", c(kernel, "=", "windows"));
    let mut h = two["TaskGroups"][0].clone();
    h["Name"] = json!("h");
    two["TaskGroups"].as_array_mut().expect("groups").push(h);
    let f = &plan(&s, &two).await["FailedTGAllocs"];
    assert_eq!(
        f["web"]["ConstraintFiltered"],
        json!({"${attr.kernel.name} = windows": 1})
    );
    assert_eq!(
        f["h"]["ConstraintFiltered"],
        json!({"computed class ineligible": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_on_a_running_job() {
    let s = start(100.0, None).await;
    s.register(sized("web", 2, 32)).await;
    s.wait_deployment("web", 0, "successful").await;
    let mut windows = sized("web", 2, 32);
    windows["Constraints"] =
        json!([{"LTarget": "${attr.kernel.name}", "Operand": "=", "RTarget": "windows"}]);

    // The update in place fails on the node, so it is destructive (one at a time), and
    // its placement finds the class already ineligible.
    let p = plan(&s, &windows).await;
    let du = &p["Annotations"]["DesiredTGUpdates"]["web"];
    assert_eq!(
        (
            &du["DestructiveUpdate"],
            &du["Ignore"],
            &du["InPlaceUpdate"]
        ),
        (&json!(1), &json!(1), &json!(0))
    );
    let m = &p["FailedTGAllocs"]["web"];
    assert_eq!(
        m["ConstraintFiltered"],
        json!({"computed class ineligible": 1})
    );
    assert_eq!(m["CoalescedFailures"], 0);
    assert_eq!(
        p["CreatedEvals"][0]["JobModifyIndex"].as_u64(),
        p["JobModifyIndex"].as_u64().map(|j| j + 1)
    );

    let eval = register_evaluated(&s, windows.clone()).await;
    assert_eq!(eval["QueuedAllocations"], json!({"web": 1}));
    // The old allocations run on.
    let allocs = s.get_json("/v1/job/web/allocations").await;
    assert!(
        arr(&allocs)
            .iter()
            .all(|a| a["DesiredStatus"] == "run" && a["JobVersion"] == 0)
    );
    assert_eq!(arr(&allocs).len(), 2);
    assert_eq!(s.get_json("/v1/job/web").await["Status"], "running");
    let sum = s.get_json("/v1/job/web/summary").await;
    assert_eq!(
        (
            &sum["Summary"]["web"]["Queued"],
            &sum["Summary"]["web"]["Running"]
        ),
        (&json!(1), &json!(2))
    );

    // The reported constraint differs from the same spec sent again: a new version.
    s.register(windows.clone()).await;
    assert_eq!(s.get_json("/v1/job/web").await["Version"], 2);
    // Not so for a spec whose constraint held.
    let t = start(1000.0, None).await;
    let mut linux = sized("lin", 1, 32);
    linux["Constraints"] =
        json!([{"LTarget": "${attr.kernel.name}", "Operand": "=", "RTarget": "linux"}]);
    register_evaluated(&t, linux.clone()).await;
    register_evaluated(&t, linux).await;
    assert_eq!(t.get_json("/v1/job/lin").await["Version"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_in_no_datacenter_of_the_node() {
    let s = start(100.0, None).await;
    let job = json!({"ID": "b", "Type": "batch", "Datacenters": ["nowhere"], "TaskGroups": [
        {"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
            "Config": {"command": "/bin/true"}, "Resources": {"CPU": 100, "MemoryMB": 32}}]}
    ]});
    let eval = register_evaluated(&s, job).await;
    assert_eq!(
        eval["FailedTGAllocs"]["g"]["NodesAvailable"],
        json!({"nowhere": 0})
    );
    // No plan: the evaluation completes in the write after the blocked one's.
    let blocked = eval["BlockedEval"].as_str().expect("blocked").to_string();
    let b = s.get_json(&format!("/v1/evaluation/{blocked}")).await;
    assert_eq!(
        b["CreateIndex"].as_u64().map(|i| i + 1),
        eval["ModifyIndex"].as_u64()
    );
    assert_eq!(s.get_json("/v1/job/b").await["Status"], "pending");
    assert!(s.get_json("/v1/job/b/deployments").await == json!([]));

    let r = s.req("DELETE", "/v1/job/b", None).await.json();
    let id = r["EvalID"].as_str().unwrap_or_default().to_string();
    let stop = s
        .wait_for("the stop's evaluation", || async {
            let e = s.get_json(&format!("/v1/evaluation/{id}")).await;
            (e["Status"] == "complete").then_some(e)
        })
        .await;
    // A deregister's evaluation is a service one of default priority, whatever the job.
    assert_eq!(
        (&stop["Type"], &stop["Priority"]),
        (&json!("service"), &json!(50))
    );
    let b = s.get_json(&format!("/v1/evaluation/{blocked}")).await;
    assert_eq!(b["Status"], "canceled");
    assert_eq!(s.get_json("/v1/job/b").await["Status"], "dead");
    // The stopped version was written while the blocked evaluation waited.
    let versions = s.get_json("/v1/job/b/versions").await;
    assert_eq!(versions["Versions"][0]["Status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_constraints_and_warnings() {
    let s = start(100.0, None).await;
    let mut job = sized("bad", 1, 32);
    job["TaskGroups"][0]["Constraints"] =
        json!([{"LTarget": "${attr.kernel.name}", "Operand": "bogus", "RTarget": "x"}]);
    let r = s.post("/v1/jobs", json!({"Job": job})).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.text,
        "1 error occurred:\n\t* Task group web validation failed: 1 error occurred:\n\t* Constraint 1 validation failed: 1 error occurred:\n\t* Unknown constraint type \"bogus\"\n\n\n\n\n\n"
    );
    let mut job = sized("bad", 1, 32);
    job["Constraints"] = json!([{"LTarget": "${attr.kernel.name}", "Operand": "="}]);
    let r = s.post("/v1/jobs", json!({"Job": job})).await;
    assert_eq!(
        r.text,
        "1 error occurred:\n\t* Constraint 1 validation failed: 1 error occurred:\n\t* Operator \"=\" requires an RTarget\n\n\n\n"
    );

    let mut max = sized("max", 1, 32);
    max["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] = json!(64);
    let warning = "1 warning(s):\n\n* Memory oversubscription is not enabled; Task \"web.server\" memory_max value will be ignored. Update the Scheduler Configuration to allow oversubscription.";
    assert_eq!(plan(&s, &max).await["Warnings"], warning);
    assert_eq!(s.register(max).await["Warnings"], warning);
}
