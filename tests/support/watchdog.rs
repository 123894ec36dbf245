//! Clean-up that outlives a test process: a detached shell that waits for this process to
//! exit (however it exits, panics and kills included) and then runs a command.

use std::process::{Command, Stdio};

/// Runs `command` (a program and its arguments) once this process has exited.
///
/// The watchdog lives in its own session (`setsid`), so a Ctrl-C to the test run does not
/// kill it before it has cleaned up.
pub fn run_after_exit(command: &[&str]) -> Result<(), String> {
    Command::new("setsid")
        .args([
            "bash",
            "-c",
            r#"pid=$1; shift; while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done; exec "$@""#,
            "test-watchdog",
        ])
        .arg(std::process::id().to_string())
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("starting a watchdog for {command:?}: {e}"))
}
