//! The test bed never leaks a process: a test process that starts its own control plane,
//! or its own real Nomad agent running a task, and then panics leaves no etcd,
//! kube-apiserver, Nomad agent, executor or task behind.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

/// Run only as the child of the test below: start a private control plane, report its
/// processes, and panic.
#[tokio::test]
#[ignore = "run by control_plane_processes_stop_when_the_test_process_panics"]
async fn child_starts_a_control_plane_and_panics() {
    let plane = support::envtest::plane();
    let dir = plane.kubeconfig.parent().expect("control plane dir");
    for name in ["etcd", "apiserver"] {
        let pid = std::fs::read_to_string(dir.join(format!("{name}.pid"))).expect("pid file");
        println!("PID {name} {}", pid.trim());
    }
    panic!("a test that fails after starting the control plane");
}

/// Run only as the child of the test below: start a private Nomad agent, run a task on
/// it, report the agent and everything it started, and panic.
#[tokio::test]
#[ignore = "run by nomad_processes_stop_when_the_test_process_panics"]
async fn child_starts_a_nomad_agent_runs_a_task_and_panics() {
    let agent = support::nomad_agent::agent();
    let dir = agent.dir.as_ref().expect("an agent of this process");
    let pid = std::fs::read_to_string(dir.join("nomad.pid")).expect("pid file");
    let job = serde_json::json!({"Job": {
        "ID": "guard", "Name": "guard", "Datacenters": ["dc1"], "Type": "service",
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "raw_exec",
            "Config": {"command": "/bin/sleep", "args": ["3600"]},
            "Resources": {"CPU": 20, "MemoryMB": 32}}]}]}});
    let http = support::nomad_agent::http();
    let answer = http
        .post(format!("{}/v1/job/guard", agent.addr))
        .json(&job)
        .send()
        .await
        .expect("register");
    assert!(
        answer.status().is_success(),
        "register: {}",
        answer.status()
    );
    support::operator::wait_until("the task to run", || async {
        let allocs: serde_json::Value = http
            .get(format!("{}/v1/job/guard/allocations", agent.addr))
            .send()
            .await
            .expect("allocations")
            .json()
            .await
            .expect("json");
        allocs[0]["ClientStatus"] == "running"
    })
    .await;
    println!("PID agent {}", pid.trim());
    for child in descendants(pid.trim()) {
        println!("PID child {child}");
    }
    panic!("a test that fails after starting a Nomad agent and a task");
}

/// Every descendant of `pid`, from `/proc`.
fn descendants(pid: &str) -> Vec<String> {
    let parents: Vec<(String, String)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let rest = stat.rsplit_once(") ")?.1;
            let ppid = rest.split_whitespace().nth(1)?.to_string();
            Some((e.file_name().to_string_lossy().to_string(), ppid))
        })
        .collect();
    let mut family = vec![pid.to_string()];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i].clone();
        family.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(p, _)| p.clone()),
        );
        i += 1;
    }
    family.split_off(1)
}

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
}

/// Runs the ignored test `child` in a child process without `unset`, and returns the
/// PIDs it reports once it has failed.
fn pids_of_failed_child(child: &str, unset: &str) -> Vec<String> {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", child, "--ignored", "--nocapture"])
        .env_remove(unset)
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child must fail: {stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PID "))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// Waits until none of `pids` is alive.
fn all_gone(pids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids.iter().any(|p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "processes {pids:?} outlived the panicking test"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn nomad_processes_stop_when_the_test_process_panics() {
    let pids = pids_of_failed_child(
        "child_starts_a_nomad_agent_runs_a_task_and_panics",
        "NOMAD_TEST_ADDR",
    );
    // The agent, and at least a logmon, an executor and the task itself.
    assert!(
        pids.len() >= 4,
        "the child reports the agent and its children: {pids:?}"
    );
    all_gone(&pids);
}

#[test]
fn control_plane_processes_stop_when_the_test_process_panics() {
    let pids = pids_of_failed_child(
        "child_starts_a_control_plane_and_panics",
        "ENVTEST_KUBECONFIG",
    );
    assert_eq!(
        pids.len(),
        2,
        "the child reports etcd and kube-apiserver: {pids:?}"
    );
    all_gone(&pids);
}
