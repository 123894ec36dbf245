//! Errors of the Nomad client, and how Nomad's answers map onto them.
//!
//! Nomad answers most failures with a plain-text body and often with HTTP 500, so the
//! status alone does not say what went wrong: [`classify`] also reads the text.
//! No message ever contains the ACL token: every text built from outside input goes
//! through [`redact`].

/// What went wrong talking to Nomad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NomadError {
    /// The job, version, allocation or other object does not exist (404, or Nomad's
    /// `job "x" not found` as a 500).
    #[error("not found: {0}")]
    NotFound(String),
    /// A check-and-set failed: someone else changed the job (register's `EnforceIndex`,
    /// revert's `EnforcePriorVersion`). Re-read and re-plan; do not blindly retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The token is missing, unknown or lacks a capability (403).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Nomad refused the request as invalid (400, or a validation failure as a 500).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Any other error status from Nomad.
    #[error("Nomad server error (HTTP {status}): {message}")]
    Server {
        /// HTTP status code.
        status: u16,
        /// Nomad's message, whitespace-trimmed.
        message: String,
    },
    /// Nomad could not be reached, or the connection broke.
    #[error("transport error: {0}")]
    Transport(String),
    /// The request did not complete in time.
    #[error("timed out waiting for Nomad")]
    Timeout,
    /// Nomad's answer was not the JSON expected.
    #[error("cannot decode Nomad's response: {0}")]
    Decode(String),
    /// The client's own configuration is unusable (address, TLS files, token characters).
    #[error("invalid Nomad client configuration: {0}")]
    Config(String),
    /// A write was not sent: this replica no longer leads (its Lease ran out).
    #[error("not sent to Nomad: this replica is no longer the leader")]
    NotLeader,
    /// Not sent: Nomad kept failing and calls to it are paused. Shows as the failure that
    /// paused them, so that what the status says does not change while they stay paused.
    #[error("{error}")]
    Paused {
        /// The failure that paused the calls.
        error: Box<NomadError>,
        /// How long the pause still lasts.
        retry_in: std::time::Duration,
    },
}

impl NomadError {
    /// The same error with its message rewritten by `f` (used to redact values).
    pub fn map_message(self, f: impl Fn(&str) -> String) -> Self {
        match self {
            Self::NotFound(m) => Self::NotFound(f(&m)),
            Self::Conflict(m) => Self::Conflict(f(&m)),
            Self::PermissionDenied(m) => Self::PermissionDenied(f(&m)),
            Self::BadRequest(m) => Self::BadRequest(f(&m)),
            Self::Server { status, message } => Self::Server {
                status,
                message: f(&message),
            },
            Self::Transport(m) => Self::Transport(f(&m)),
            Self::Timeout => Self::Timeout,
            Self::Decode(m) => Self::Decode(f(&m)),
            Self::Config(m) => Self::Config(f(&m)),
            Self::NotLeader => Self::NotLeader,
            Self::Paused { error, retry_in } => Self::Paused {
                error: Box::new(error.map_message(f)),
                retry_in,
            },
        }
    }

    /// A stable snake_case label, used as Event reason and metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PermissionDenied(_) => "permission_denied",
            Self::BadRequest(_) => "bad_request",
            Self::Server { .. } => "server_error",
            Self::Transport(_) => "transport",
            Self::Timeout => "timeout",
            Self::Decode(_) => "decode",
            Self::Config(_) => "config",
            Self::NotLeader => "not_leader",
            Self::Paused { error, .. } => error.category(),
        }
    }

    /// How long calls to Nomad stay paused, when this error says they are.
    pub fn paused_for(&self) -> Option<std::time::Duration> {
        match self {
            Self::Paused { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// True for failures that may go away by themselves (retry with back-off):
    /// transport errors, timeouts and server errors.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout | Self::Server { .. } | Self::NotLeader => true,
            Self::Paused { error, .. } => error.is_transient(),
            _ => false,
        }
    }

    /// True when the request surely changed nothing in Nomad: it never went out (the
    /// calls were paused, this replica does not lead, the connection could not be made),
    /// or Nomad answered that it did not do it (no leader, a refusal). A timeout or a
    /// connection broken after the request was sent says nothing either way.
    pub fn surely_not_applied(&self) -> bool {
        match self {
            Self::Paused { .. } | Self::NotLeader | Self::Config(_) => true,
            Self::Transport(message) => message.starts_with("cannot connect to Nomad"),
            Self::Server { message, .. } => message.contains("No cluster leader"),
            Self::NotFound(_)
            | Self::Conflict(_)
            | Self::PermissionDenied(_)
            | Self::BadRequest(_) => true,
            Self::Timeout | Self::Decode(_) => false,
        }
    }

    /// True for [`NomadError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// True for [`NomadError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }
}

/// Which call produced an error answer; some texts mean different things per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `POST /v1/job/:id` or `/v1/jobs` (check-and-set texts apply).
    Register,
    /// `POST /v1/job/:id/revert` (prior-version texts apply).
    Revert,
    /// Anything else.
    Other,
}

/// Longest message kept from a response body.
const MAX_MESSAGE_CHARS: usize = 1000;

/// Texts that mark a register check-and-set failure, in any Nomad version.
const REGISTER_CAS_MARKERS: &[&str] =
    &["Enforcing job modify index", "conflicting job modify index"];

/// Texts (of 500 answers) that mean the request itself was invalid.
const VALIDATION_MARKERS: &[&str] = &[
    "error occurred:",
    "errors occurred:",
    "validation failed",
    "can't revert to current version",
    "missing job ID",
    "Missing job",
    "is not a parameterized job",
    "by parameterized job",
    "required meta keys",
    "can't evaluate parameterized job",
    "non-periodic job",
    "Payload exceeds maximum size",
    "can't promote terminal deployment",
    // A job in a namespace or region Nomad does not have: nothing to retry until the
    // spec (or Nomad) changes.
    "nonexistent namespace",
    "No path to region",
];

/// Maps an error answer (status and text body) to a [`NomadError`].
pub(crate) fn classify(status: u16, body: &str, operation: Operation) -> NomadError {
    let message = tidy(body, status);
    match status {
        // Nomad's own 404s name what is missing (`job not found`); a 404 without such a
        // text comes from something in between (a proxy, a wrong address) and says
        // nothing about the job, which must not count as gone.
        404 if is_not_found_text(&message) => NomadError::NotFound(message),
        404 => NomadError::Server {
            status,
            message: format!(
                "HTTP 404 that is not Nomad's ({message}); check that the address points at Nomad's HTTP API"
            ),
        },
        401 | 403 => NomadError::PermissionDenied(message),
        409 => NomadError::Conflict(message),
        400 | 405 | 411 | 413 | 415 | 422 => NomadError::BadRequest(message),
        301 | 302 | 303 | 307 | 308 => NomadError::Server {
            status,
            message: format!(
                "Nomad's address answered with a redirect (HTTP {status}), which the operator does not follow, so that its token goes nowhere else; set the address to the final URL"
            ),
        },
        _ => classify_text(status, message, operation),
    }
}

/// Classifies a 5xx (or otherwise unexpected) answer by its text.
fn classify_text(status: u16, message: String, operation: Operation) -> NomadError {
    if is_cas_conflict(&message, operation) {
        NomadError::Conflict(message)
    } else if is_permission_text(&message) {
        NomadError::PermissionDenied(message)
    } else if is_not_found_text(&message) {
        NomadError::NotFound(message)
    } else if status >= 500 && is_validation_text(&message) {
        NomadError::BadRequest(strip_single_error_header(message))
    } else {
        NomadError::Server { status, message }
    }
}

/// Register's `EnforceIndex` failures and revert's `EnforcePriorVersion` failure.
fn is_cas_conflict(message: &str, operation: Operation) -> bool {
    if REGISTER_CAS_MARKERS.iter().any(|m| message.contains(m)) {
        return true;
    }
    match operation {
        // Older texts without the prefix: a new job expected but one exists, or the reverse.
        Operation::Register => {
            message.contains("job already exists") || message.contains("job does not exist")
        }
        Operation::Revert => {
            message.contains("Current job has version") && message.contains("enforcing version")
        }
        Operation::Other => false,
    }
}

/// Nomad's ACL failures, also when an RPC layer wrapped them into a 500.
fn is_permission_text(message: &str) -> bool {
    message.ends_with("Permission denied") || message.ends_with("ACL token not found")
}

/// `job "x" not found`, `job "x" at version 3 not found`, `job not found`, `alloc not found`...
fn is_not_found_text(message: &str) -> bool {
    // Go's own `404 page not found` is what a Go proxy answers for a path it does not
    // serve; Nomad answers those with an empty body.
    message.ends_with("not found") && message != "404 page not found"
}

/// Validation failures Nomad 1.1 answers with a 500.
fn is_validation_text(message: &str) -> bool {
    VALIDATION_MARKERS.iter().any(|m| message.contains(m))
}

/// Collapses whitespace, bounds the length, and names the status when the body is empty.
fn tidy(body: &str, status: u16) -> String {
    let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    truncate(collapsed, MAX_MESSAGE_CHARS)
}

/// `1 error occurred: * Missing job task groups` becomes `Missing job task groups`.
fn strip_single_error_header(message: String) -> String {
    match message.strip_prefix("1 error occurred:") {
        Some(rest) => {
            let rest = rest.trim_start();
            rest.strip_prefix("* ").unwrap_or(rest).trim().to_owned()
        }
        None => message,
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
pub(crate) fn truncate(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut (the
/// limits Kubernetes puts on a field are in bytes).
pub fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// An error and its sources, joined by `: `, repeated texts dropped.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Replaces every occurrence of the secret (if any, and non-empty) with `<redacted>`.
pub(crate) fn redact(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => {
            text.replace(secret, "<redacted>")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_bounds_cut_at_a_character_boundary() {
        assert_eq!(truncate_bytes("short", 10), "short");
        let cut = truncate_bytes(&"é".repeat(600), 1024);
        assert!(cut.len() <= 1024 && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(truncate_bytes("abcdef", 5), "ab…");
    }

    fn c(status: u16, body: &str, op: Operation) -> NomadError {
        classify(status, body, op)
    }

    #[test]
    fn register_conflicts_in_every_wording() {
        for body in [
            "job exists with conflicting job modify index: 44",
            "Enforcing job modify index 12: job exists with conflicting job modify index: 44",
            "Enforcing job modify index 0: job already exists",
            "Enforcing job modify index 5: job does not exist",
            "rpc error: Enforcing job modify index 5: job does not exist",
        ] {
            assert!(c(500, body, Operation::Register).is_conflict(), "{body}");
        }
        assert!(c(500, "job already exists", Operation::Register).is_conflict());
        assert!(c(500, "job does not exist", Operation::Register).is_conflict());
        assert!(!c(500, "job does not exist", Operation::Other).is_conflict());
    }

    #[test]
    fn revert_conflict_and_errors() {
        assert_eq!(
            c(
                500,
                "Current job has version 3; enforcing version 2\n",
                Operation::Revert
            ),
            NomadError::Conflict("Current job has version 3; enforcing version 2".into())
        );
        assert_eq!(
            c(500, "can't revert to current version", Operation::Revert),
            NomadError::BadRequest("can't revert to current version".into())
        );
        assert!(c(500, "job \"web\" at version 9 not found", Operation::Revert).is_not_found());
        assert!(c(500, "job \"web\" not found", Operation::Revert).is_not_found());
    }

    #[test]
    fn validation_500_is_bad_request_with_trimmed_message() {
        assert_eq!(
            c(
                500,
                "1 error occurred:\n\t* Missing job task groups\n\n",
                Operation::Register
            ),
            NomadError::BadRequest("Missing job task groups".into())
        );
        let two = c(
            500,
            "2 errors occurred:\n\t* Missing job datacenters\n\t* Missing job task groups\n\n",
            Operation::Register,
        );
        assert_eq!(
            two,
            NomadError::BadRequest(
                "2 errors occurred: * Missing job datacenters * Missing job task groups".into()
            )
        );
    }

    #[test]
    fn dispatch_and_periodic_refusals_are_bad_requests() {
        for body in [
            "Specified job \"web\" is not a parameterized job",
            "Payload is not provided but required by parameterized job",
            "Payload provided but forbidden by parameterized job",
            "Dispatch did not provide required meta keys: [\"who\"]",
            "Dispatch provided meta keys not allowed by parameterized job: [\"x\"]",
            "Payload exceeds maximum size; 20000 > 16384",
            "can't force launch non-periodic job",
            "can't promote terminal deployment",
            "job \"nsx\" is in nonexistent namespace \"does-not-exist\"",
            "No path to region",
        ] {
            let error = c(500, body, Operation::Other);
            assert_eq!(error, NomadError::BadRequest(body.into()));
        }
        assert!(c(500, "parameterized job not found", Operation::Other).is_not_found());
    }

    #[test]
    fn statuses() {
        assert_eq!(
            c(404, "job not found", Operation::Other),
            NomadError::NotFound("job not found".into())
        );
        assert!(
            c(404, "<html>404 Not Found</html>", Operation::Other).is_transient(),
            "a proxy's 404 is not Nomad saying the job is gone"
        );
        assert!(c(404, "", Operation::Other).is_transient());
        assert!(c(404, "404 page not found", Operation::Other).is_transient());
        assert_eq!(
            c(404, "job not found", Operation::Other),
            NomadError::NotFound("job not found".into())
        );
        assert_eq!(
            c(403, "Permission denied", Operation::Other),
            NomadError::PermissionDenied("Permission denied".into())
        );
        assert!(matches!(
            c(500, "rpc error: Permission denied", Operation::Other),
            NomadError::PermissionDenied(_)
        ));
        assert_eq!(
            c(400, "Job ID does not match\n", Operation::Register),
            NomadError::BadRequest("Job ID does not match".into())
        );
        assert_eq!(
            c(500, "boom", Operation::Other),
            NomadError::Server {
                status: 500,
                message: "boom".into()
            }
        );
        assert_eq!(
            c(503, "", Operation::Other),
            NomadError::Server {
                status: 503,
                message: "HTTP 503 with an empty body".into()
            }
        );
        assert!(matches!(
            c(
                501,
                "not implemented by the simulator: GET /v1/x",
                Operation::Other
            ),
            NomadError::Server { status: 501, .. }
        ));
    }

    #[test]
    fn categories_and_transience() {
        let all = [
            (NomadError::NotFound(String::new()), "not_found", false),
            (NomadError::Conflict(String::new()), "conflict", false),
            (
                NomadError::PermissionDenied(String::new()),
                "permission_denied",
                false,
            ),
            (NomadError::BadRequest(String::new()), "bad_request", false),
            (
                NomadError::Server {
                    status: 500,
                    message: String::new(),
                },
                "server_error",
                true,
            ),
            (NomadError::Transport(String::new()), "transport", true),
            (NomadError::Timeout, "timeout", true),
            (NomadError::Decode(String::new()), "decode", false),
            (NomadError::Config(String::new()), "config", false),
        ];
        for (error, category, transient) in all {
            assert_eq!(error.category(), category);
            assert_eq!(error.is_transient(), transient, "{error}");
        }
    }

    #[test]
    fn long_bodies_are_cut_and_secrets_redacted() {
        let long = "x".repeat(5000);
        let NomadError::Server { message, .. } = c(502, &long, Operation::Other) else {
            panic!("expected a server error");
        };
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS + 1);
        let e = NomadError::BadRequest("token abc123 is bad".into())
            .map_message(|m| redact(m.to_string(), Some("abc123")));
        assert_eq!(e, NomadError::BadRequest("token <redacted> is bad".into()));
        assert_eq!(redact("x".into(), Some("")), "x");
    }
}
