//! The test bed never leaks a process: a test process that starts its own control plane
//! and then panics leaves no etcd or kube-apiserver behind.

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

fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
}

#[test]
fn control_plane_processes_stop_when_the_test_process_panics() {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_starts_a_control_plane_and_panics",
            "--ignored",
            "--nocapture",
        ])
        .env_remove("ENVTEST_KUBECONFIG")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child must fail: {stdout}");
    let pids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PID "))
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "the child reports etcd and kube-apiserver: {stdout}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids.iter().any(|p| alive(p)) {
        assert!(
            Instant::now() < deadline,
            "processes {pids:?} outlived the panicking test"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
