//! The control API under `/_sim/` (no token, not logged): request log, faults,
//! cluster leader, allocation client-status overrides and stats.
//!
//! - `GET /_sim/requests`, `DELETE /_sim/requests`: the request log ([`crate::RequestRecord`]s).
//! - `GET /_sim/faults`, `POST|PUT /_sim/faults` (a [`Fault`] as JSON, answers `{"ID"}`),
//!   `DELETE /_sim/faults`.
//! - `GET /_sim/leader` (`{"Leader": bool}`), `POST|PUT /_sim/leader` with
//!   `{"Leader": bool}` ([`Simulator::set_leader`]).
//! - `POST|PUT /_sim/allocations/:id/client-status` with `{"ClientStatus"}`.
//! - `GET /_sim/stats`.

use axum::body::Bytes;
use axum::response::Response;
use serde_json::{Value, json};

use crate::http::{json_resp, text};
use crate::{Fault, SimError, Simulator};

/// Handles one control request.
pub(crate) fn handle(sim: &Simulator, method: &str, path: &str, body: Bytes) -> Response {
    match (method, path) {
        ("GET", "/_sim/requests") => json_resp(&json!(sim.requests()), None, false),
        ("DELETE", "/_sim/requests") => {
            sim.clear_requests();
            json_resp(&json!({}), None, false)
        }
        ("GET", "/_sim/faults") => {
            let faults = sim.inner.faults_snapshot();
            json_resp(&Value::Array(faults), None, false)
        }
        ("POST" | "PUT", "/_sim/faults") => match serde_json::from_slice::<Fault>(&body) {
            Ok(f) => json_resp(&json!({"ID": sim.add_fault(f)}), None, false),
            Err(e) => text(400, format!("invalid fault: {e}")),
        },
        ("DELETE", "/_sim/faults") => {
            sim.clear_faults();
            json_resp(&json!({}), None, false)
        }
        ("GET", "/_sim/leader") => json_resp(&json!({"Leader": sim.has_leader()}), None, false),
        ("POST" | "PUT", "/_sim/leader") => {
            let leader = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("Leader").and_then(Value::as_bool));
            let Some(leader) = leader else {
                return text(400, "body must be {\"Leader\": true|false}");
            };
            sim.set_leader(leader);
            json_resp(&json!({"Leader": leader}), None, false)
        }
        ("GET", "/_sim/stats") => {
            let (jobs, allocs, index) = sim.counts();
            json_resp(
                &json!({"OpenConnections": sim.open_connections(), "WaitingQueries": sim.waiting_queries(), "Jobs": jobs, "Allocations": allocs, "Index": index, "Leader": sim.has_leader()}),
                None,
                false,
            )
        }
        ("POST" | "PUT", p)
            if p.starts_with("/_sim/allocations/") && p.ends_with("/client-status") =>
        {
            let id = p
                .trim_start_matches("/_sim/allocations/")
                .trim_end_matches("/client-status");
            let status = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                v.get("ClientStatus")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            let Some(status) = status else {
                return text(400, "body must be {\"ClientStatus\": \"...\"}");
            };
            match sim.set_alloc_client_status(id, &status) {
                Ok(()) => json_resp(&json!({}), None, false),
                Err(e @ SimError::AllocNotFound(_)) => text(404, e.to_string()),
                Err(e) => text(400, e.to_string()),
            }
        }
        _ => text(
            404,
            format!("nomad-sim: unknown control endpoint {method} {path}"),
        ),
    }
}
