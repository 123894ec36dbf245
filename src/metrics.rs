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
pub struct ReconcileLabels {
    /// `success` or `error`.
    pub outcome: String,
    /// Error category (empty on success).
    pub category: String,
}

/// Labels of a Nomad API call: the endpoint template and the HTTP status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NomadCallLabels {
    /// `METHOD /v1/path` with IDs replaced by `:id`.
    pub endpoint: String,
    /// HTTP status code, or `error` when no answer came back.
    pub status: String,
}

/// Labels of the objects gauge: the status of their `Ready` condition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `True`, `False` or `Unknown` (no condition yet).
    pub ready: String,
}

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    /// Registry rendered at `/metrics`.
    pub registry: Registry,
    /// Reconciles by outcome and error category.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration in seconds, by outcome and error category.
    pub reconcile_duration: Family<ReconcileLabels, Histogram>,
    /// Jobs registered in Nomad.
    pub registers: Counter,
    /// Reverts made by the operator.
    pub reverts: Counter,
    /// Status writes to Kubernetes.
    pub status_writes: Counter,
    /// 1 while this replica is the leader.
    pub leader: Gauge,
    /// Nomad API calls by endpoint and status.
    pub nomad_calls: Family<NomadCallLabels, Counter>,
    /// `NomadJob` objects by the status of their `Ready` condition.
    pub objects: Family<ReadyLabels, Gauge>,
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

    /// Sets the objects gauge from counts of `Ready` = True, False and Unknown.
    pub fn set_objects(&self, ready_true: i64, ready_false: i64, unknown: i64) {
        for (ready, n) in [
            ("True", ready_true),
            ("False", ready_false),
            ("Unknown", unknown),
        ] {
            self.objects
                .get_or_create(&ReadyLabels {
                    ready: ready.to_string(),
                })
                .set(n);
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
