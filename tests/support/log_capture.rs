//! The operator's log lines, captured in memory: for tests that prove something never
//! reaches the log. Install it before the operator starts (the first global subscriber
//! of a test process wins, and nextest runs each test in a process of its own).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Everything logged since [`capture`], at debug level for the operator's own modules.
#[derive(Clone, Default)]
pub struct CapturedLog {
    lines: Arc<Mutex<Vec<u8>>>,
}

impl CapturedLog {
    /// The log so far.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&lines).into_owned()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (debug for `nomad_operator`, info elsewhere).
/// Panics when another subscriber was installed first: the test would prove nothing.
pub fn capture() -> CapturedLog {
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,nomad_operator=debug",
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the log capture must be the first subscriber of the test process");
    log
}
