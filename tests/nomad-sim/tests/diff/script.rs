//! The scripted conversation, run as-is against both backends. Every step that needs a
//! state (a deployment's outcome, allocations at rest) first polls, unrecorded, until
//! the backend is there; only then the step's requests are recorded. Values the script
//! reuses (IDs, indexes) come from the same side's earlier answers, and a missing value
//! never panics: the comparison will show it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::Conv;

const SEC: u64 = 1_000_000_000;

/// A raw_exec task running `command args`.
fn task(command: &str, args: &[&str]) -> Value {
    json!({
        "Name": "t",
        "Driver": "raw_exec",
        "Config": {"command": command, "args": args},
        "Resources": {"CPU": 100, "MemoryMB": 32}
    })
}

/// How a version of `web` behaves.
#[derive(Clone, Copy)]
enum Web {
    /// `sleep 1000`, no meta.
    V0,
    /// `sleep 2000`, with meta (an edit of v0).
    V1,
    /// `/bin/false`, no restarts: every allocation fails.
    Failing { auto_revert: bool },
}

/// The service job `web` in namespace `ns`: one allocation, a quick update block
/// (1 s min healthy time, a 5 s progress deadline) and no rescheduling, so that every
/// outcome is decided by the update block alone.
fn web(ns: &str, v: Web) -> Value {
    let mut group = json!({
        "Name": "g",
        "Count": 1,
        "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
        "Update": {
            "MaxParallel": 1,
            "MinHealthyTime": SEC,
            "HealthyDeadline": 4 * SEC,
            "ProgressDeadline": 5 * SEC,
        },
        "Tasks": [task("/bin/sleep", &["1000"])]
    });
    let mut job = json!({
        "ID": "web",
        "Namespace": ns,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": []
    });
    match v {
        Web::V0 => {}
        Web::V1 => {
            group["Tasks"] = json!([task("/bin/sleep", &["2000"])]);
            job["Meta"] = json!({"owner": "differential"});
        }
        Web::Failing { auto_revert } => {
            group["Tasks"] = json!([task("/bin/false", &[])]);
            group["RestartPolicy"] = json!({"Attempts": 0, "Mode": "fail"});
            group["Update"]["AutoRevert"] = json!(auto_revert);
            job["Meta"] = json!({"owner": "differential", "auto_revert": auto_revert.to_string()});
        }
    }
    job["TaskGroups"] = json!([group]);
    job
}

/// The batch job `batch` running `/bin/true` (`args` only to make an edit).
fn batch(ns: &str, args: &[&str]) -> Value {
    json!({
        "ID": "batch",
        "Namespace": ns,
        "Type": "batch",
        "Datacenters": ["dc1"],
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [task("/bin/true", args)]}]
    })
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn terminal(status: &Value) -> bool {
    matches!(status.as_str(), Some("complete" | "failed" | "lost"))
}

/// Allocations at rest: stopped ones have finished, running ones have their health.
fn allocs_at_rest(allocs: &Value) -> bool {
    arr(allocs).iter().all(|a| {
        let tasks_done = a["TaskStates"]
            .as_object()
            .is_some_and(|t| t.values().all(|t| t["State"] == "dead"));
        if a["DesiredStatus"] != "run" || terminal(&a["ClientStatus"]) {
            terminal(&a["ClientStatus"]) && tasks_done
        } else {
            a["ClientStatus"] == "running"
                && (a["DeploymentID"].as_str().unwrap_or_default().is_empty()
                    || a["DeploymentStatus"]["Healthy"].is_boolean())
        }
    })
}

fn evals_done(evals: &Value) -> bool {
    arr(evals).iter().all(|e| {
        matches!(
            e["Status"].as_str(),
            Some("complete" | "failed" | "canceled")
        )
    })
}

/// Polls until the job `id` is at rest: `extra` holds on its deployments, every
/// evaluation is done, every allocation at rest. Records a timeout as a note.
async fn settle(c: &mut Conv, what: &str, id: &str, extra: impl Fn(&Value, &Value) -> bool) {
    let last_seen = std::cell::RefCell::new(String::new());
    let ok = c
        .poll(|| async {
            let job = c.quiet("GET", &format!("/v1/job/{id}"), None).await;
            let deps = c
                .quiet("GET", &format!("/v1/job/{id}/deployments"), None)
                .await;
            let evals = c
                .quiet("GET", &format!("/v1/job/{id}/evaluations"), None)
                .await;
            let allocs = c
                .quiet("GET", &format!("/v1/job/{id}/allocations"), None)
                .await;
            let at_rest = extra(&job.json, &deps.json)
                && evals_done(&evals.json)
                && allocs_at_rest(&allocs.json);
            if !at_rest {
                *last_seen.borrow_mut() =
                    not_at_rest(&job.json, &deps.json, &evals.json, &allocs.json);
            }
            at_rest
        })
        .await;
    if !ok {
        // The recorded note stays the same text on both backends; what the backend
        // last showed goes to the test's output, to tell a stalled deployment from a
        // slow one.
        eprintln!(
            "WAIT {what} timed out in namespace {}; last seen:\n{}",
            c.ns,
            last_seen.borrow()
        );
        c.note(&format!("WAIT {what}"), "timed out");
    }
}

/// What a job that is not at rest shows: its version, each deployment's status and
/// description, each evaluation's status, and each allocation's statuses and the last
/// event of each task.
fn not_at_rest(job: &Value, deps: &Value, evals: &Value, allocs: &Value) -> String {
    let mut lines = vec![format!(
        "job version {} status {}",
        job["Version"], job["Status"]
    )];
    for d in arr(deps) {
        lines.push(format!(
            "deployment v{} {}: {}",
            d["JobVersion"], d["Status"], d["StatusDescription"]
        ));
    }
    for e in arr(evals) {
        lines.push(format!(
            "evaluation {} {} {}: {}",
            e["TriggeredBy"], e["Status"], e["FailedTGAllocs"], e["StatusDescription"]
        ));
    }
    for a in arr(allocs) {
        let events: Vec<String> = a["TaskStates"]
            .as_object()
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|(task, state)| {
                        let last = arr(&state["Events"]).last().cloned().unwrap_or_default();
                        format!("{task} {} ({})", state["State"], last["DisplayMessage"])
                    })
                    .collect()
            })
            .unwrap_or_default();
        lines.push(format!(
            "allocation v{} desired {} client {} healthy {}: {}",
            a["JobVersion"],
            a["DesiredStatus"],
            a["ClientStatus"],
            a["DeploymentStatus"]["Healthy"],
            events.join(", ")
        ));
    }
    lines.join("\n")
}

/// A deployment of `version` with `status` among `deps`.
fn has_deployment(deps: &Value, version: u64, status: &str) -> bool {
    arr(deps)
        .iter()
        .any(|d| d["JobVersion"] == version && d["Status"] == status)
}

fn str_of(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// The service job's life: plan new / identical / edited, check-and-set conflicts,
/// deployments that succeed and fail, revert (with its errors), auto-revert, stable,
/// deregister and purge.
pub async fn service(mut c: Conv) -> Conv {
    let ns = c.ns.clone();
    let ns_body = json!({"Name": ns, "Description": "nomad-sim differential test"});
    c.call("POST", &format!("/v1/namespace/{ns}"), Some(&ns_body), "")
        .await;
    c.call("GET", &format!("/v1/namespace/{ns}"), None, "")
        .await;

    // Nothing there yet.
    for p in [
        "/v1/job/web",
        "/v1/job/web/versions",
        "/v1/job/web/summary",
        "/v1/job/web/deployment",
        "/v1/job/web/deployments",
        "/v1/job/web/allocations",
        "/v1/job/web/evaluations",
        "/v1/jobs",
    ] {
        c.call("GET", p, None, "nothing yet").await;
    }

    // Plan and register a new job with check-and-set 0.
    let v0 = web(&ns, Web::V0);
    c.call(
        "POST",
        "/v1/job/web/plan",
        Some(&json!({"Job": v0, "Diff": true})),
        "new",
    )
    .await;
    c.call(
        "POST",
        "/v1/job/web/plan",
        Some(&json!({"Job": v0})),
        "new, no diff",
    )
    .await;
    let reg = c
        .call(
            "POST",
            "/v1/jobs",
            Some(&json!({"Job": v0, "EnforceIndex": true, "JobModifyIndex": 0})),
            "v0",
        )
        .await;
    let eval0 = str_of(&reg.json, "EvalID");
    settle(&mut c, "v0 deployed", "web", |_, d| {
        has_deployment(d, 0, "successful")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/versions",
        "/v1/job/web/summary",
        "/v1/job/web/deployment",
        "/v1/job/web/deployments",
        "/v1/job/web/allocations",
        "/v1/job/web/evaluations",
        "/v1/jobs",
    ] {
        c.call("GET", p, None, "v0 deployed").await;
    }
    let allocs = c.quiet("GET", "/v1/job/web/allocations", None).await.json;
    let alloc0 = arr(&allocs)
        .first()
        .map(|a| str_of(a, "ID"))
        .unwrap_or_default();
    let dep = c.quiet("GET", "/v1/job/web/deployment", None).await.json;
    let dep0 = str_of(&dep, "ID");
    c.call("GET", &format!("/v1/allocation/{alloc0}"), None, "v0")
        .await;
    c.call(
        "GET",
        &format!("/v1/evaluation/{eval0}"),
        None,
        "v0 register",
    )
    .await;
    c.call(
        "GET",
        &format!("/v1/evaluation/{eval0}/allocations"),
        None,
        "v0 register",
    )
    .await;
    c.call("GET", &format!("/v1/deployment/{dep0}"), None, "v0")
        .await;
    c.call(
        "GET",
        &format!("/v1/deployment/allocations/{dep0}"),
        None,
        "v0",
    )
    .await;

    // The same job again: no difference, and a register makes no new version.
    let plan = c
        .call(
            "POST",
            "/v1/job/web/plan",
            Some(&json!({"Job": v0, "Diff": true})),
            "identical",
        )
        .await;
    let jmi0 = plan.json["JobModifyIndex"].as_u64().unwrap_or(0);
    let again = c
        .call(
            "POST",
            "/v1/job/web",
            Some(&json!({"Job": v0})),
            "identical",
        )
        .await;
    let eval_again = str_of(&again.json, "EvalID");
    settle(&mut c, "identical register evaluated", "web", |_, _| true).await;
    c.call(
        "GET",
        "/v1/job/web/versions",
        None,
        "after identical register",
    )
    .await;
    c.call(
        "GET",
        &format!("/v1/evaluation/{eval_again}"),
        None,
        "identical register",
    )
    .await;

    // Check-and-set conflicts.
    let v1 = web(&ns, Web::V1);
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": v1, "EnforceIndex": true, "JobModifyIndex": 0})),
        "CAS 0 on existing job",
    )
    .await;
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": v1, "EnforceIndex": true, "JobModifyIndex": 999_999})),
        "CAS stale index",
    )
    .await;
    c.call(
        "POST",
        "/v1/job/web/plan",
        Some(&json!({"Job": v1, "Diff": true})),
        "edited",
    )
    .await;
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": v1, "EnforceIndex": true, "JobModifyIndex": jmi0})),
        "v1 with CAS",
    )
    .await;
    settle(&mut c, "v1 deployed", "web", |_, d| {
        has_deployment(d, 1, "successful")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/deployments",
        "/v1/job/web/allocations",
        "/v1/job/web/evaluations",
        "/v1/job/web/summary",
    ] {
        c.call("GET", p, None, "v1 deployed").await;
    }
    c.call(
        "GET",
        "/v1/job/web/versions?diffs=true",
        None,
        "v1 deployed",
    )
    .await;

    // A version that fails: the deployment fails at its progress deadline.
    let v2 = web(&ns, Web::Failing { auto_revert: false });
    c.call(
        "POST",
        "/v1/job/web/plan",
        Some(&json!({"Job": v2, "Diff": true})),
        "failing",
    )
    .await;
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": v2})),
        "v2 failing",
    )
    .await;
    settle(&mut c, "v2 failed", "web", |_, d| {
        has_deployment(d, 2, "failed")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/deployment",
        "/v1/job/web/allocations",
        "/v1/job/web/evaluations",
        "/v1/job/web/summary",
    ] {
        c.call("GET", p, None, "v2 failed").await;
    }
    let allocs = c.quiet("GET", "/v1/job/web/allocations", None).await.json;
    let failed = arr(&allocs)
        .iter()
        .find(|a| a["ClientStatus"] == "failed")
        .map(|a| str_of(a, "ID"))
        .unwrap_or_default();
    c.call(
        "GET",
        &format!("/v1/allocation/{failed}"),
        None,
        "v2 failed",
    )
    .await;

    // Revert: its errors, then back to v1 as v3.
    for (body, note) in [
        (
            json!({"JobID": "web", "JobVersion": 1, "EnforcePriorVersion": 1}),
            "wrong prior version",
        ),
        (
            json!({"JobID": "web", "JobVersion": 2}),
            "to the current version",
        ),
        (
            json!({"JobID": "web", "JobVersion": 9}),
            "to a version that does not exist",
        ),
        (
            json!({"JobID": "other", "JobVersion": 1}),
            "body ID differs",
        ),
        (
            json!({"JobID": "web", "JobVersion": 1, "EnforcePriorVersion": 2}),
            "to v1",
        ),
    ] {
        c.call("POST", "/v1/job/web/revert", Some(&body), note)
            .await;
    }
    settle(&mut c, "v3 deployed", "web", |_, d| {
        has_deployment(d, 3, "successful")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/versions",
        "/v1/job/web/deployment",
    ] {
        c.call("GET", p, None, "v3 deployed").await;
    }

    // Auto-revert: v4 fails and Nomad itself registers v3's spec again as v5.
    let v4 = web(&ns, Web::Failing { auto_revert: true });
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": v4})),
        "v4 failing, auto-revert",
    )
    .await;
    settle(&mut c, "v4 reverted to v5", "web", |_, d| {
        has_deployment(d, 4, "failed") && has_deployment(d, 5, "successful")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/versions",
        "/v1/job/web/deployments",
        "/v1/job/web/evaluations",
        "/v1/job/web/allocations",
    ] {
        c.call("GET", p, None, "auto-reverted").await;
    }

    // Stable by hand, and its errors.
    for (body, note) in [
        (
            json!({"JobID": "web", "JobVersion": 5, "Stable": false}),
            "unmark v5",
        ),
        (
            json!({"JobID": "web", "JobVersion": 40, "Stable": true}),
            "no such version",
        ),
    ] {
        c.call("POST", "/v1/job/web/stable", Some(&body), note)
            .await;
    }
    c.call("GET", "/v1/job/web", None, "v5 unmarked").await;
    c.call("GET", "/v1/job/web/versions", None, "v5 unmarked")
        .await;
    let body = json!({"JobID": "web", "JobVersion": 5, "Stable": true});
    c.call("POST", "/v1/job/web/stable", Some(&body), "mark v5 again")
        .await;

    // Deregister: a stopped new version.
    c.call("DELETE", "/v1/job/web", None, "stop").await;
    settle(&mut c, "web stopped", "web", |j, _| j["Status"] == "dead").await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/versions",
        "/v1/job/web/allocations",
        "/v1/job/web/summary",
        "/v1/job/web/deployment",
    ] {
        c.call("GET", p, None, "stopped").await;
    }
    // Marking an older version stable writes that version back as the job.
    let body = json!({"JobID": "web", "JobVersion": 4, "Stable": true});
    c.call("POST", "/v1/job/web/stable", Some(&body), "older v4")
        .await;
    c.call("GET", "/v1/job/web", None, "v4 marked stable").await;
    c.call("GET", "/v1/job/web/versions", None, "v4 marked stable")
        .await;
    // Purge.
    c.call("DELETE", "/v1/job/web?purge=true", None, "purge")
        .await;
    for p in ["/v1/job/web", "/v1/job/web/versions", "/v1/jobs"] {
        c.call("GET", p, None, "purged").await;
    }
    c.call("DELETE", "/v1/job/web", None, "no such job").await;
    c.call("DELETE", &format!("/v1/namespace/{ns}"), None, "empty")
        .await;
    c
}

/// A batch job, blocking queries, HCL parsing and the error answers.
pub async fn batch_and_errors(mut c: Conv) -> Conv {
    let ns = c.ns.clone();
    let ns_body = json!({"Name": ns, "Description": "nomad-sim differential test"});
    c.call("POST", &format!("/v1/namespace/{ns}"), Some(&ns_body), "")
        .await;

    // A batch job runs to completion and never becomes stable.
    let b0 = batch(&ns, &[]);
    c.call(
        "POST",
        "/v1/job/batch/plan",
        Some(&json!({"Job": b0, "Diff": true})),
        "new",
    )
    .await;
    c.call("POST", "/v1/jobs", Some(&json!({"Job": b0})), "batch")
        .await;
    settle(&mut c, "batch finished", "batch", |j, _| {
        j["Status"] == "dead"
    })
    .await;
    for p in [
        "/v1/job/batch",
        "/v1/job/batch/versions",
        "/v1/job/batch/summary",
        "/v1/job/batch/allocations",
        "/v1/job/batch/evaluations",
        "/v1/job/batch/deployment",
        "/v1/job/batch/deployments",
    ] {
        c.call("GET", p, None, "finished").await;
    }
    c.call(
        "POST",
        "/v1/job/batch/plan",
        Some(&json!({"Job": b0, "Diff": true})),
        "identical",
    )
    .await;

    // Blocking queries on the job: a wait that times out returns the same index; an
    // old index returns at once; a change wakes a parked query with a newer index.
    let job = c.quiet("GET", "/v1/job/batch", None).await;
    let idx = job.index.unwrap_or(0);
    let t = Instant::now();
    let r = c
        .call_raw(
            &c.label("GET", "/v1/job/batch?index=N&wait=1s", "times out"),
            "GET",
            &format!("/v1/job/batch?index={idx}&wait=1s"),
            None,
        )
        .await;
    let waited = t.elapsed();
    c.fact(
        "blocking query that times out",
        json!({"same index": r.index == Some(idx), "waited 1s": waited >= Duration::from_millis(950)}),
    );
    let t = Instant::now();
    let r = c
        .call("GET", "/v1/job/batch?index=1&wait=30s", None, "old index")
        .await;
    c.fact(
        "blocking query with an old index",
        json!({"newer index": r.index.unwrap_or(0) > 1, "at once": t.elapsed() < Duration::from_secs(5)}),
    );
    let b1 = batch(&ns, &["edited"]);
    let register_label = c.label("POST", "/v1/job/batch", "edited while a query waits");
    let body = json!({"Job": b1}).to_string().into_bytes();
    let blocking_path = format!("/v1/job/batch?index={idx}&wait=30s");
    let ((woken, woken_resp), (reg, _)) = tokio::join!(
        c.exchange("woken query", "GET", &blocking_path, None),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.exchange(&register_label, "POST", "/v1/job/batch", Some(body))
                .await
        }
    );
    c.log.push(reg);
    // Only what is certain: whether the job shows `pending` or a later status by the
    // time the query runs again depends on the scheduler's pace.
    c.fact(
        "blocking query woken by a change",
        json!({"status": woken.status, "newer index": woken_resp.index.unwrap_or(0) > idx,
               "version": woken_resp.json["Version"]}),
    );
    settle(&mut c, "batch v1 finished", "batch", |j, _| {
        j["Status"] == "dead" && j["Version"] == 1
    })
    .await;
    c.call("GET", "/v1/job/batch/summary", None, "v1 finished")
        .await;
    c.call("GET", "/v1/job/batch/allocations", None, "v1 finished")
        .await;

    // HCL.
    let hcl = r#"job "parsed" {
  datacenters = ["dc1"]
  type        = "batch"
  meta {
    owner = "differential"
  }
  group "g" {
    count = 2
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
        args    = ["a", "b"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"#;
    for (body, note) in [
        (json!({"JobHCL": hcl}), "as written"),
        (
            json!({"JobHCL": hcl, "Canonicalize": true}),
            "canonicalized",
        ),
        (json!({"JobHCL": ""}), "empty"),
        (json!({"JobHCL": "job \"x\" {"}), "broken"),
    ] {
        c.call("POST", "/v1/jobs/parse", Some(&body), note).await;
    }
    hcl_variables(&mut c).await;

    // Errors.
    c.call_raw(
        &c.label("POST", "/v1/jobs", "invalid JSON"),
        "POST",
        "/v1/jobs",
        Some(b"{not json".to_vec()),
    )
    .await;
    c.call_raw(
        &c.label("POST", "/v1/jobs", "empty body"),
        "POST",
        "/v1/jobs",
        None,
    )
    .await;
    let mut no_groups = batch(&ns, &[]);
    no_groups["TaskGroups"] = json!([]);
    let mut bad_type = batch(&ns, &[]);
    bad_type["Type"] = json!("bogus");
    let mut other_ns = batch(&ns, &[]);
    other_ns["Namespace"] = json!("no-such-namespace");
    let mut wrong_field = batch(&ns, &[]);
    wrong_field["Priority"] = json!("high");
    for (path, body, note) in [
        ("/v1/jobs", json!({}), "no job"),
        ("/v1/jobs", json!({"Job": no_groups}), "no task groups"),
        ("/v1/jobs", json!({"Job": bad_type}), "bogus type"),
        ("/v1/jobs", json!({"Job": other_ns}), "no such namespace"),
        ("/v1/jobs", json!({"Job": wrong_field}), "string priority"),
        ("/v1/job/other", json!({"Job": b1}), "path ID differs"),
        (
            "/v1/job/batch/plan",
            json!({"Job": no_groups}),
            "no task groups",
        ),
        ("/v1/job/other/plan", json!({"Job": b1}), "path ID differs"),
        (
            "/v1/job/nope/revert",
            json!({"JobID": "nope", "JobVersion": 0}),
            "no such job",
        ),
        (
            "/v1/job/nope/stable",
            json!({"JobID": "nope", "JobVersion": 0, "Stable": true}),
            "no such job",
        ),
        ("/v1/job/nope/evaluate", json!({}), "no such job"),
    ] {
        c.call("POST", path, Some(&body), note).await;
    }
    let missing = "6e1c7c1e-0000-4000-8000-000000000000";
    for p in [
        format!("/v1/allocation/{missing}"),
        format!("/v1/evaluation/{missing}"),
        format!("/v1/deployment/{missing}"),
        "/v1/job/nope/summary".to_string(),
        "/v1/jobs?index=abc".to_string(),
        "/v1/jobs?wait=forever".to_string(),
        "/v1/job/batch?region=nowhere".to_string(),
        "/v1/bogus".to_string(),
        "/nothing".to_string(),
    ] {
        c.call("GET", &p, None, "error").await;
    }
    for (m, p) in [
        ("DELETE", "/v1/jobs"),
        ("PUT", "/v1/job/batch/summary"),
        ("GET", "/v1/job/batch/plan"),
    ] {
        c.call(m, p, None, "wrong method").await;
    }

    c.call("DELETE", "/v1/job/batch?purge=true", None, "purge")
        .await;
    for p in ["/v1/namespace/default", "/v1/namespace/no-such-namespace"] {
        c.call("DELETE", p, None, "error").await;
    }
    c.call("DELETE", &format!("/v1/namespace/{ns}"), None, "empty")
        .await;
    c
}

/// HCL2 input variables and locals in `POST /v1/jobs/parse`, their errors with the
/// line and column Nomad names, and the release `GET /v1/agent/self` reports (1.1.2
/// has no `Variables` in its parse request: the key is ignored).
async fn hcl_variables(c: &mut Conv) {
    let with_vars = r#"variable "image" {
  type        = string
  default     = "busybox"
  description = "what runs"
}
variable "tags" {
  type    = list(string)
  default = ["a", "b"]
}
variables {
  n = 2
}
locals {
  command = "/bin/${var.image}"
}
job "vars" {
  datacenters = ["dc1"]
  type        = "batch"
  meta {
    image = "${var.image}:1"
    tags  = join(",", var.tags)
  }
  group "g" {
    count = var.n > 1 ? var.n : 1
    task "t" {
      driver = "raw_exec"
      config {
        command = local.command
        args    = var.tags
      }
      env {
        NODE = "${node.unique.name}"
        IMAGE = upper(var.image)
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"#;
    let task = |group_body: &str| {
        format!(
            "job \"e\" {{\n  datacenters = [\"dc1\"]\n  group \"g\" {{\n{group_body}\n    task \"t\" {{\n      driver = \"raw_exec\"\n    }}\n  }}\n}}\n"
        )
    };
    let unset = format!(
        "variable \"image\" {{\n  type = string\n}}\n{}",
        task("    meta {\n      image = var.image\n    }")
    );
    let bad_default = format!(
        "variable \"n\" {{\n  type    = number\n  default = \"many\"\n}}\n{}",
        task("    count = var.n")
    );
    // One unknown argument: with two, the real agent lists them in either order.
    let unknown_arg = task("    bogus = 1");
    let undeclared = task("    count = var.nope");
    let float_count = format!("variables {{\n  n = 1.5\n}}\n{}", task("    count = var.n"));
    for (body, note) in [
        (json!({"JobHCL": with_vars}), "variables"),
        (
            json!({"JobHCL": with_vars, "Variables": "image = \"other\"\n"}),
            "variables (Variables ignored)",
        ),
        (json!({"JobHCL": unset}), "unset variable"),
        (json!({"JobHCL": bad_default}), "default of the wrong type"),
        (json!({"JobHCL": unknown_arg}), "unknown arguments"),
        (json!({"JobHCL": undeclared}), "undeclared variable"),
        (json!({"JobHCL": float_count}), "fractional count"),
    ] {
        c.call("POST", "/v1/jobs/parse", Some(&body), note).await;
    }
    let me = c.quiet("GET", "/v1/agent/self", None).await.json;
    let keys = |v: &Value| {
        v.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    c.fact(
        "GET /v1/agent/self (release)",
        json!({
            "keys": keys(&me),
            "stats": keys(&me["stats"]),
            "Version": me["config"]["Version"],
            "Region": me["config"]["Region"],
            "Datacenter": me["config"]["Datacenter"],
            "build": me["member"]["Tags"]["build"],
        }),
    );
}

/// `web` (v0) whose group `g` has a scaling policy (1 to 3), with `count` allocations.
fn scaled_web(ns: &str, count: u64) -> Value {
    let mut job = web(ns, Web::V0);
    job["TaskGroups"][0]["Count"] = json!(count);
    job["TaskGroups"][0]["Scaling"] =
        json!({"Min": 1, "Max": 3, "Enabled": true, "Policy": {"cooldown": "1m"}});
    job
}

/// `POST /v1/job/:id/scale` and `GET /v1/job/:id/scale`: a scale refused during a
/// deployment (which still changes the live count), scales that write a version and
/// start a deployment, events only, the errors, registers of a job with a scaling
/// policy, a stopped job, a batch job without a policy and a periodic one.
pub async fn scale(mut c: Conv) -> Conv {
    let ns = c.ns.clone();
    let ns_body = json!({"Name": ns, "Description": "nomad-sim differential test"});
    c.call("POST", &format!("/v1/namespace/{ns}"), Some(&ns_body), "")
        .await;
    let to = |count: Value, message: &str| json!({"Count": count, "Target": {"Group": "g"}, "Message": message});
    c.call("GET", "/v1/job/web/scale", None, "no such job")
        .await;
    c.call(
        "POST",
        "/v1/job/web/scale",
        Some(&to(json!(2), "")),
        "no such job",
    )
    .await;

    // Refused while the first deployment runs: the job's count changes all the same.
    let v0 = scaled_web(&ns, 1);
    c.call("POST", "/v1/jobs", Some(&json!({"Job": v0})), "v0")
        .await;
    let deploying = c
        .poll(|| async {
            let deps = c.quiet("GET", "/v1/job/web/deployments", None).await;
            has_deployment(&deps.json, 0, "running")
        })
        .await;
    if !deploying {
        c.note("WAIT v0 deploying", "timed out");
    }
    c.call(
        "POST",
        "/v1/job/web/scale",
        Some(&to(json!(2), "while deploying")),
        "during the deployment",
    )
    .await;
    c.call("GET", "/v1/job/web", None, "scale refused").await;
    settle(&mut c, "v0 deployed", "web", |_, d| {
        has_deployment(d, 0, "successful")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/versions",
        "/v1/job/web/allocations",
        "/v1/job/web/deployments",
        "/v1/job/web/evaluations",
        "/v1/job/web/summary",
        "/v1/job/web/scale",
    ] {
        c.call("GET", p, None, "v0 deployed").await;
    }

    // A scale: a new version, an evaluation, a deployment.
    let mut up = to(json!(2), "up to 2");
    up["Meta"] = json!({"who": "differential", "n": 1});
    c.call("POST", "/v1/job/web/scale", Some(&up), "to 2").await;
    c.call("GET", "/v1/job/web", None, "scaled to 2").await;
    c.call("GET", "/v1/job/web/versions", None, "scaled to 2")
        .await;
    settle(&mut c, "v1 deployed", "web", |_, d| {
        has_deployment(d, 1, "successful")
    })
    .await;
    for p in [
        "/v1/job/web",
        "/v1/job/web/allocations",
        "/v1/job/web/deployments",
        "/v1/job/web/evaluations",
        "/v1/job/web/scale",
    ] {
        c.call("GET", p, None, "v1 deployed").await;
    }
    // The policy of the job carries the indexes it was written with; a client's are 0.
    c.call(
        "POST",
        "/v1/job/web/plan",
        Some(&json!({"Job": scaled_web(&ns, 2), "Diff": true})),
        "the scaled spec",
    )
    .await;

    // Refused.
    let mut count_and_error = to(json!(2), "");
    count_and_error["Error"] = json!(true);
    for (body, note) in [
        (
            json!({"Count": 2, "Target": {"Group": "nope"}}),
            "unknown group",
        ),
        (to(json!(4), ""), "above the maximum"),
        (to(json!(0), ""), "below the minimum"),
        (to(json!(-1), ""), "negative"),
        (count_and_error, "count and error"),
        (json!({"Count": 2, "Target": {}}), "no group"),
        (json!({"Count": 2}), "no target"),
        (
            json!({"Count": 2, "Target": {"Group": "g", "Job": "other"}}),
            "another job",
        ),
        (
            json!({"Count": 2, "Target": {"Group": "g", "Namespace": "other"}}),
            "another namespace",
        ),
        (to(json!("2"), ""), "string count"),
        (to(json!(1.5), ""), "fractional count"),
        (
            json!({"Count": 2, "Target": {"Group": "g"}, "Meta": "x"}),
            "string meta",
        ),
    ] {
        c.call("POST", "/v1/job/web/scale", Some(&body), note).await;
    }
    for (raw, note) in [
        (None, "empty body"),
        (Some(b"[]".to_vec()), "array"),
        (Some(b"{nope".to_vec()), "invalid JSON"),
    ] {
        c.call_raw(
            &c.label("POST", "/v1/job/web/scale", note),
            "POST",
            "/v1/job/web/scale",
            raw,
        )
        .await;
    }
    c.call("DELETE", "/v1/job/web/scale", None, "wrong method")
        .await;

    // Events only: no version, no evaluation.
    let mut event = to(Value::Null, "just saying");
    event["Meta"] = json!({"k": 1, "l": [1, "x"], "f": 1.5});
    c.call("PUT", "/v1/job/web/scale", Some(&event), "event only")
        .await;
    let mut error = to(Value::Null, "it broke");
    error["Error"] = json!(true);
    c.call("POST", "/v1/job/web/scale", Some(&error), "error event")
        .await;
    c.call("GET", "/v1/job/web", None, "after events").await;
    c.call("GET", "/v1/job/web/scale", None, "after events")
        .await;

    // A register of the spec with the live count: the policy's indexes differ (a
    // client's are 0), so it is a new version; the same register again is not.
    let live = scaled_web(&ns, 2);
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": live})),
        "live count",
    )
    .await;
    c.call(
        "POST",
        "/v1/job/web",
        Some(&json!({"Job": live})),
        "live count again",
    )
    .await;
    settle(&mut c, "v2 deployed", "web", |_, d| {
        has_deployment(d, 2, "successful")
    })
    .await;
    for p in ["/v1/job/web", "/v1/job/web/versions"] {
        c.call("GET", p, None, "v2 deployed").await;
    }
    c.call(
        "POST",
        "/v1/job/web/plan",
        Some(&json!({"Job": live, "Diff": true})),
        "live count",
    )
    .await;

    // A stopped job can be scaled: a stopped version with the count.
    c.call("DELETE", "/v1/job/web", None, "stop").await;
    settle(&mut c, "web stopped", "web", |j, _| j["Status"] == "dead").await;
    c.call(
        "POST",
        "/v1/job/web/scale",
        Some(&to(json!(1), "")),
        "stopped job",
    )
    .await;
    settle(&mut c, "stopped job scaled", "web", |j, _| {
        j["Status"] == "dead"
    })
    .await;
    c.call("GET", "/v1/job/web", None, "stopped, scaled").await;
    // Its index is the later of the job's status update when the evaluation completes
    // and the scaling event written after the evaluation: on a real agent either.
    let status = c.quiet("GET", "/v1/job/web/scale", None).await.json;
    c.fact("GET /v1/job/web/scale (stopped, scaled; body)", status);
    c.call("DELETE", "/v1/job/web?purge=true", None, "purge")
        .await;
    c.call("GET", "/v1/job/web/scale", None, "purged").await;

    // Policies a register refuses.
    for (policy, count, note) in [
        (json!({"Min": 2, "Max": 1}), 2, "maximum below minimum"),
        (json!({"Min": 1}), 1, "no maximum"),
        (json!({"Min": 1, "Max": 3}), 5, "count above maximum"),
    ] {
        let mut job = scaled_web(&ns, count);
        job["TaskGroups"][0]["Scaling"] = policy;
        c.call("POST", "/v1/jobs", Some(&json!({"Job": job})), note)
            .await;
    }

    // A batch job without a policy: no deployment.
    let mut b = batch(&ns, &[]);
    b["TaskGroups"][0]["Tasks"] = json!([task("/bin/sleep", &["1000"])]);
    c.call("POST", "/v1/jobs", Some(&json!({"Job": b})), "batch")
        .await;
    settle(&mut c, "batch running", "batch", |_, _| true).await;
    c.call(
        "POST",
        "/v1/job/batch/scale",
        Some(&to(json!(2), "")),
        "batch to 2",
    )
    .await;
    settle(&mut c, "batch scaled", "batch", |j, _| j["Version"] == 1).await;
    for p in [
        "/v1/job/batch",
        "/v1/job/batch/versions",
        "/v1/job/batch/allocations",
        "/v1/job/batch/deployments",
        "/v1/job/batch/evaluations",
        "/v1/job/batch/scale",
    ] {
        c.call("GET", p, None, "batch scaled").await;
    }
    c.call("DELETE", "/v1/job/batch?purge=true", None, "purge")
        .await;

    // A periodic job: a version, no evaluation.
    let mut p = batch(&ns, &[]);
    p["ID"] = json!("cron");
    p["Periodic"] = json!({"Enabled": true, "SpecType": "cron", "Spec": "0 0 1 1 *"});
    c.call("POST", "/v1/jobs", Some(&json!({"Job": p})), "periodic")
        .await;
    c.call(
        "POST",
        "/v1/job/cron/scale",
        Some(&to(json!(2), "")),
        "periodic",
    )
    .await;
    for p in ["/v1/job/cron/versions", "/v1/job/cron/scale"] {
        c.call("GET", p, None, "periodic scaled").await;
    }
    c.call("DELETE", "/v1/job/cron?purge=true", None, "purge")
        .await;
    c.call("DELETE", &format!("/v1/namespace/{ns}"), None, "empty")
        .await;
    c
}

/// `web` v0 as job `id` with two allocations whose task asks `memory_mb`.
fn sized(ns: &str, id: &str, memory_mb: u64) -> Value {
    let mut job = web(ns, Web::V0);
    job["ID"] = json!(id);
    job["TaskGroups"][0]["Count"] = json!(2);
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(memory_mb);
    job
}

/// A constraint on the node's kernel no node meets.
fn windows_only() -> Value {
    json!({"LTarget": "${attr.kernel.name}", "Operand": "=", "RTarget": "windows"})
}

/// Polls `GET path` until `pred` holds on its answer; records a timeout as a note.
async fn wait_for(c: &mut Conv, what: &str, path: &str, pred: impl Fn(&Value) -> bool) {
    let ok = c
        .poll(|| async { pred(&c.quiet("GET", path, None).await.json) })
        .await;
    if !ok {
        c.note(&format!("WAIT {what}"), "timed out");
    }
}

/// Evaluations of which none is pending, one is blocked and `dups` were cancelled as
/// duplicates of a newer blocked one.
fn one_blocked(evals: &Value, dups: usize) -> bool {
    let e = arr(evals);
    let dup = |e: &Value| {
        e["StatusDescription"]
            .as_str()
            .is_some_and(|d| d.starts_with("existing blocked evaluation"))
    };
    e.iter().all(|e| e["Status"] != "pending")
        && e.iter().filter(|e| e["Status"] == "blocked").count() == 1
        && e.iter().filter(|e| dup(e)).count() == dups
}

/// Plans `job` and records the answer, and how the `JobModifyIndex` of the blocked
/// evaluation it would create relates to the job's (the normalizer leaves it alone).
async fn plan_failing(c: &mut Conv, job: &Value, note: &str) {
    let id = str_of(job, "ID");
    let plan = c
        .call(
            "POST",
            &format!("/v1/job/{id}/plan"),
            Some(&json!({"Job": job, "Diff": true})),
            note,
        )
        .await;
    let jmi = plan.json["JobModifyIndex"].as_u64().unwrap_or(0);
    let created = plan.json["CreatedEvals"][0]["JobModifyIndex"]
        .as_u64()
        .unwrap_or(0);
    c.fact(
        &format!("POST /v1/job/{id}/plan ({note}; blocked eval's JobModifyIndex - job's)"),
        json!(if created == 0 {
            None
        } else {
            Some(created as i64 - jmi as i64)
        }),
    );
}

/// Allocations the node cannot take: plans and evaluations with `FailedTGAllocs`, the
/// blocked evaluation, `Queued` in the summary, a pending job and a deployment that
/// places nothing; an identical register (a duplicate blocked evaluation is
/// cancelled); a fix that places them (the blocked evaluation is cancelled); a
/// constraint no node meets on a running job (its update in place fails, the one
/// destructive update allowed cannot be placed, the old allocations run on), whose
/// identical register is a new version; a batch job in no datacenter of the node; and
/// plans of other failures (CPU, two tasks' memory, a task constraint, an unknown
/// attribute, `regexp`, `distinct_hosts`, an escaped class, disk, `MemoryMaxMB`).
pub async fn placement(mut c: Conv) -> Conv {
    let ns = c.ns.clone();
    let ns_body = json!({"Name": ns, "Description": "nomad-sim differential test"});
    c.call("POST", &format!("/v1/namespace/{ns}"), Some(&ns_body), "")
        .await;

    // Two allocations asking more memory than any node has.
    let big = sized(&ns, "mem", 10_000_000);
    plan_failing(&mut c, &big, "too big").await;
    let reg = c
        .call("POST", "/v1/jobs", Some(&json!({"Job": big})), "too big")
        .await;
    let eval_id = str_of(&reg.json, "EvalID");
    wait_for(
        &mut c,
        "too big evaluated",
        &format!("/v1/evaluation/{eval_id}"),
        |e| e["Status"] == "complete",
    )
    .await;
    for p in [
        "/v1/job/mem",
        "/v1/job/mem/summary",
        "/v1/job/mem/evaluations",
        "/v1/job/mem/deployments",
        "/v1/job/mem/allocations",
    ] {
        c.call("GET", p, None, "too big").await;
    }
    let eval = c
        .quiet("GET", &format!("/v1/evaluation/{eval_id}"), None)
        .await;
    let blocked = str_of(&eval.json, "BlockedEval");
    c.call("GET", &format!("/v1/evaluation/{blocked}"), None, "blocked")
        .await;
    plan_failing(&mut c, &big, "too big, registered").await;

    // The same again: a new evaluation, a new blocked one, the old one cancelled.
    c.call(
        "POST",
        "/v1/jobs",
        Some(&json!({"Job": big})),
        "too big again",
    )
    .await;
    wait_for(
        &mut c,
        "duplicate cancelled",
        "/v1/job/mem/evaluations",
        |e| one_blocked(e, 1),
    )
    .await;
    for p in ["/v1/job/mem", "/v1/job/mem/evaluations"] {
        c.call("GET", p, None, "too big again").await;
    }

    // Small enough: placed, the blocked evaluation cancelled.
    let small = sized(&ns, "mem", 32);
    c.call("POST", "/v1/jobs", Some(&json!({"Job": small})), "fits")
        .await;
    settle(&mut c, "fits deployed", "mem", |_, d| {
        has_deployment(d, 1, "successful")
    })
    .await;
    for p in [
        "/v1/job/mem",
        "/v1/job/mem/summary",
        "/v1/job/mem/evaluations",
        "/v1/job/mem/deployments",
    ] {
        c.call("GET", p, None, "fits").await;
    }

    // A constraint no node meets, on the running job.
    let mut windows = small.clone();
    windows["Constraints"] = json!([windows_only()]);
    plan_failing(&mut c, &windows, "windows only").await;
    let reg = c
        .call(
            "POST",
            "/v1/jobs",
            Some(&json!({"Job": windows})),
            "windows only",
        )
        .await;
    let eval_id = str_of(&reg.json, "EvalID");
    wait_for(
        &mut c,
        "windows only evaluated",
        &format!("/v1/evaluation/{eval_id}"),
        |e| e["Status"] == "complete",
    )
    .await;
    for p in [
        "/v1/job/mem",
        "/v1/job/mem/summary",
        "/v1/job/mem/evaluations",
        "/v1/job/mem/deployments",
        "/v1/job/mem/allocations",
    ] {
        c.call("GET", p, None, "windows only").await;
    }
    // The reported constraint changed the stored job: the same spec is a new version.
    c.call(
        "POST",
        "/v1/jobs",
        Some(&json!({"Job": windows})),
        "windows only again",
    )
    .await;
    wait_for(
        &mut c,
        "windows duplicate cancelled",
        "/v1/job/mem/evaluations",
        |e| one_blocked(e, 2),
    )
    .await;
    for p in [
        "/v1/job/mem",
        "/v1/job/mem/evaluations",
        "/v1/job/mem/deployments",
    ] {
        c.call("GET", p, None, "windows only again").await;
    }
    c.call("DELETE", "/v1/job/mem", None, "stop").await;
    settle(&mut c, "mem stopped", "mem", |j, _| j["Status"] == "dead").await;
    for p in [
        "/v1/job/mem",
        "/v1/job/mem/summary",
        "/v1/job/mem/evaluations",
    ] {
        c.call("GET", p, None, "stopped").await;
    }
    c.call("DELETE", "/v1/job/mem?purge=true", None, "purge")
        .await;

    // A batch job in no datacenter of the node.
    let mut nowhere = batch(&ns, &[]);
    nowhere["Datacenters"] = json!(["nowhere"]);
    plan_failing(&mut c, &nowhere, "nowhere").await;
    let reg = c
        .call(
            "POST",
            "/v1/jobs",
            Some(&json!({"Job": nowhere})),
            "nowhere",
        )
        .await;
    let eval_id = str_of(&reg.json, "EvalID");
    wait_for(
        &mut c,
        "nowhere evaluated",
        &format!("/v1/evaluation/{eval_id}"),
        |e| e["Status"] == "complete",
    )
    .await;
    for p in [
        "/v1/job/batch",
        "/v1/job/batch/summary",
        "/v1/job/batch/evaluations",
    ] {
        c.call("GET", p, None, "nowhere").await;
    }
    c.call("DELETE", "/v1/job/batch", None, "stop").await;
    wait_for(&mut c, "nowhere stopped", "/v1/job/batch", |j| {
        j["Status"] == "dead"
    })
    .await;
    for p in [
        "/v1/job/batch",
        "/v1/job/batch/evaluations",
        "/v1/job/batch/versions",
    ] {
        c.call("GET", p, None, "nowhere, stopped").await;
    }
    c.call("DELETE", "/v1/job/batch?purge=true", None, "purge")
        .await;

    // Plans of other failures.
    let tg = |job: &mut Value, k: &str, v: Value| job["TaskGroups"][0][k] = v;
    let mut cpu = sized(&ns, "cpu", 32);
    cpu["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = json!(10_000_000);
    let mut two = sized(&ns, "two", 10_000_000);
    let mut second = task("/bin/sleep", &["1000"]);
    second["Name"] = json!("u");
    second["Resources"]["MemoryMB"] = json!(100);
    if let Some(tasks) = two["TaskGroups"][0]["Tasks"].as_array_mut() {
        tasks.push(second);
    }
    let mut dc_task = sized(&ns, "dctask", 32);
    dc_task["TaskGroups"][0]["Tasks"][0]["Constraints"] = json!([
        {"LTarget": "${node.datacenter}", "Operand": "!=", "RTarget": "dc1"}
    ]);
    let mut unknown = sized(&ns, "unknown", 32);
    tg(
        &mut unknown,
        "Constraints",
        json!([{"LTarget": "${attr.nope}", "Operand": "=", "RTarget": "x"}]),
    );
    let mut regexp = sized(&ns, "regexp", 32);
    tg(
        &mut regexp,
        "Constraints",
        json!([{"LTarget": "${attr.kernel.name}", "Operand": "regexp", "RTarget": "^win"}]),
    );
    let mut spread = sized(&ns, "spread", 32);
    tg(
        &mut spread,
        "Constraints",
        json!([{"Operand": "distinct_hosts", "RTarget": "true"}]),
    );
    let mut escaped = sized(&ns, "escaped", 32);
    tg(
        &mut escaped,
        "Constraints",
        json!([{"LTarget": "${node.unique.name}", "Operand": "=", "RTarget": "x"}]),
    );
    let mut disk = sized(&ns, "disk", 32);
    tg(&mut disk, "EphemeralDisk", json!({"SizeMB": 10_000_000}));
    for (job, note) in [
        (&cpu, "cpu"),
        (&two, "two tasks"),
        (&dc_task, "task constraint"),
        (&unknown, "unknown attribute"),
        (&regexp, "regexp"),
        (&spread, "distinct_hosts"),
        (&escaped, "escaped class"),
        (&disk, "disk"),
    ] {
        plan_failing(&mut c, job, note).await;
    }
    // Memory oversubscription is off: a warning, on plan and register alike.
    let mut max = sized(&ns, "max", 32);
    max["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] = json!(64);
    c.call(
        "POST",
        "/v1/job/max/plan",
        Some(&json!({"Job": max})),
        "memory max",
    )
    .await;
    c.call("POST", "/v1/jobs", Some(&json!({"Job": max})), "memory max")
        .await;
    c.call("DELETE", "/v1/job/max?purge=true", None, "purge")
        .await;
    c.call("DELETE", &format!("/v1/namespace/{ns}"), None, "empty")
        .await;
    c
}
