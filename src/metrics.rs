//! Prometheus metrics of the operator.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a reconcile: its outcome and, on error, the error category.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    /// `success` or `error`.
    outcome: String,
    /// Error category (empty on success).
    category: String,
}

/// Labels of a Nomad API call: the endpoint template and the HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NomadCallLabels {
    /// `METHOD /v1/path` with IDs replaced by `:id`.
    endpoint: String,
    /// HTTP status code, or `error` when no answer came back.
    status: String,
}

/// Labels of the objects gauge: the status of their `Ready` condition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    /// `True`, `False` or `Unknown` (no condition yet).
    ready: String,
}

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    /// Registry rendered at `/metrics`.
    registry: Registry,
    /// Reconciles by outcome and error category.
    reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration in seconds, by outcome and error category.
    reconcile_duration: Family<ReconcileLabels, Histogram>,
    /// Jobs registered in Nomad.
    pub registers: Counter,
    /// Reverts made by the operator.
    pub reverts: Counter,
    /// Status writes to Kubernetes.
    pub status_writes: Counter,
    /// 1 while this replica is the leader.
    pub leader: Gauge,
    /// Nomad API calls by endpoint and status.
    nomad_calls: Family<NomadCallLabels, Counter>,
    /// `NomadJob` objects by the status of their `Ready` condition.
    objects: Family<ReadyLabels, Gauge>,
    /// The last `Ready` status seen per object, behind the objects gauge.
    ready_states: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nomad_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration = Family::<ReconcileLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        let registers = Counter::default();
        let reverts = Counter::default();
        let status_writes = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles of NomadJob objects",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of NomadJob reconciles",
            reconcile_duration.clone(),
        );
        registry.register(
            "nomad_registers",
            "Jobs registered in Nomad",
            registers.clone(),
        );
        registry.register(
            "nomad_reverts",
            "Jobs reverted by the operator",
            reverts.clone(),
        );
        registry.register(
            "status_writes",
            "NomadJob status writes",
            status_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        let nomad_calls = Family::<NomadCallLabels, Counter>::default();
        registry.register(
            "nomad_api_calls",
            "Nomad API calls by endpoint and HTTP status",
            nomad_calls.clone(),
        );
        let objects = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "objects",
            "NomadJob objects by the status of their Ready condition",
            objects.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_duration,
            registers,
            reverts,
            status_writes,
            leader,
            nomad_calls,
            objects,
            ready_states: Default::default(),
        }
    }
}

impl Metrics {
    /// Records a finished reconcile; `error` is the error category when it failed.
    pub fn observe_reconcile(&self, took: Duration, error: Option<&str>) {
        let labels = ReconcileLabels {
            outcome: if error.is_some() { "error" } else { "success" }.to_string(),
            category: error.unwrap_or_default().to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records a Nomad API call; `status` 0 means no answer came back.
    pub fn observe_nomad_call(&self, endpoint: &str, status: u16) {
        let status = if status == 0 {
            "error".to_string()
        } else {
            status.to_string()
        };
        self.nomad_calls
            .get_or_create(&NomadCallLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    /// Records the `Ready` status (`True`, `False`, `Unknown`) of object `key` after a
    /// reconcile, or forgets the object (`None`) when it is gone; keeps the objects
    /// gauge equal to the counts over all known objects, without listing them.
    pub fn record_ready(&self, key: &str, ready: Option<&str>) {
        let mut states = self.ready_states.lock().unwrap_or_else(|p| p.into_inner());
        let before = match ready {
            Some(state) => states.insert(key.to_string(), state.to_string()),
            None => states.remove(key),
        };
        if before.as_deref() == ready {
            return;
        }
        if let Some(old) = before {
            self.objects
                .get_or_create(&ReadyLabels { ready: old })
                .dec();
        }
        if let Some(new) = ready {
            self.objects
                .get_or_create(&ReadyLabels {
                    ready: new.to_string(),
                })
                .inc();
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(m: &Metrics, ready: &str) -> i64 {
        m.objects
            .get_or_create(&ReadyLabels {
                ready: ready.into(),
            })
            .get()
    }

    #[test]
    fn the_objects_gauge_follows_recorded_ready_states() {
        let m = Metrics::default();
        m.record_ready("ns/a", Some("Unknown"));
        m.record_ready("ns/b", Some("False"));
        m.record_ready("ns/a", Some("True"));
        m.record_ready("ns/a", Some("True"));
        assert_eq!(
            (gauge(&m, "True"), gauge(&m, "False"), gauge(&m, "Unknown")),
            (1, 1, 0)
        );
        m.record_ready("ns/b", None);
        assert_eq!(gauge(&m, "False"), 0);
        assert!(
            m.render()
                .contains("nomad_operator_objects{ready=\"True\"} 1"),
            "{}",
            m.render()
        );
    }
}
