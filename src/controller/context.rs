//! What every reconcile shares: clients, settings, the Event recorder, per-object
//! back-off, and the map from Nomad jobs to the objects that own them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::reflector::{Lookup, ObjectRef};

use crate::crd::{NomadDispatch, NomadJob};
use crate::metrics::Metrics;
use crate::nomad::NomadClient;

use super::connection::Connections;
use super::events::EventPublisher;
use super::render::Defaults;
use super::resolve::{ParsedJobs, SourceIndex};

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub kube: Client,
    /// The default connection's Nomad client (the operator's flags).
    pub nomad: NomadClient,
    /// Which Nomad each object talks to (`spec.connectionRef`, or the default).
    pub connections: Connections,
    /// Publishes Kubernetes Events about `NomadJob`s.
    pub events: EventPublisher,
    /// Nomad namespace and region for jobs that do not name theirs (default connection).
    pub defaults: Defaults,
    /// How often an object is looked at again when nothing happens.
    pub resync: Duration,
    /// How often an object whose spec and job did not move is planned anyway.
    pub plan_interval: Duration,
    /// Per-object exponential back-off after errors.
    pub backoff: Backoff,
    /// Which object owns which Nomad job, for turning Nomad changes into reconciles.
    pub jobs: Arc<JobIndex>,
    /// What the default connection's watches saw of its cluster.
    pub mirror: Arc<super::mirror::Mirror>,
    /// Which `NomadDispatch` follows which dispatched job.
    pub dispatches: Arc<JobIndex<NomadDispatch>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// When each object was last planned: a reconcile woken by Nomad need not plan again
    /// while the job's spec index has not moved, yet every object is planned at least
    /// once per plan interval.
    pub plans: ObjectClock,
    /// Since when each object's status has waited for the allocations feed.
    pub list_waits: ObjectClock,
    /// Statuses held back after a register (`--status-hold`).
    pub held: super::settle::HeldStatuses,
    /// How long a status that only says a registered version is on its way is held.
    pub status_hold: Duration,
    /// Each object's jobspec as Nomad parsed it, by the digest of its text and values.
    pub parsed: ParsedJobs,
    /// Which objects read which ConfigMaps and Secrets (`spec.variablesFrom`).
    pub sources: Arc<SourceIndex>,
    /// Whether the operator may read ConfigMaps and Secrets for `spec.variablesFrom`.
    pub variables_from: bool,
    /// `--deletion-protection`: no deletion stops or purges a job unless its object's
    /// protection annotation is `"false"`.
    pub deletion_protection: bool,
    /// Whether this replica may write now (leader election); checked before every write
    /// to Nomad and to Kubernetes.
    pub leadership: crate::leader::Leadership,
}

/// One instant per object: when it was last planned (`Context::plans`), or since when
/// its status has waited for the allocations feed (`Context::list_waits`).
#[derive(Default)]
pub struct ObjectClock {
    at: Mutex<HashMap<ObjectRef<NomadJob>, Instant>>,
}

impl ObjectClock {
    /// Sets `obj`'s instant to now.
    pub fn stamp(&self, obj: &ObjectRef<NomadJob>) {
        self.lock().insert(obj.clone(), Instant::now());
    }

    /// Sets `obj`'s instant to now unless it has one.
    pub fn start(&self, obj: &ObjectRef<NomadJob>) {
        self.lock().entry(obj.clone()).or_insert_with(Instant::now);
    }

    /// The time since `obj`'s instant; `None` when it has none.
    pub fn elapsed(&self, obj: &ObjectRef<NomadJob>) -> Option<Duration> {
        self.lock().get(obj).map(Instant::elapsed)
    }

    /// Forgets `obj`'s instant.
    pub fn forget(&self, obj: &ObjectRef<NomadJob>) {
        self.lock().remove(obj);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<NomadJob>, Instant>> {
        self.at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a plan is due `since` the last one (`None`: never planned), once per
/// `interval`; with a little slack, so that the resync itself always counts as due.
pub fn plan_due(since: Option<Duration>, interval: Duration) -> bool {
    since.is_none_or(|elapsed| elapsed >= interval.mul_f64(0.9))
}

/// Whether a status may (still) wait for the allocations feed, having waited `since`
/// (`None`: not waiting) against `limit`: a longer wait ends in a read.
pub fn may_wait(since: Option<Duration>, limit: Duration) -> bool {
    since.is_none_or(|elapsed| elapsed < limit)
}

/// Exponential back-off per object: `base * 2^failures`, capped; reset on success.
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: Mutex<HashMap<ObjectRef<NomadJob>, u32>>,
}

impl Backoff {
    /// A back-off starting at `base` and never longer than `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: Mutex::default(),
        }
    }

    /// Records a failure of `obj` and returns how long to wait before retrying: the
    /// doubled delay, spread by up to a fifth either way (fixed per object and attempt),
    /// so that objects failing together (Nomad without a leader) do not retry in
    /// lockstep.
    pub fn next_delay(&self, obj: &ObjectRef<NomadJob>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(obj.clone()).or_insert(0);
        let delay = self
            .base
            .saturating_mul(2u32.saturating_pow(*n))
            .min(self.cap);
        let spread = 0.8 + 0.4 * fraction(obj, *n);
        *n = n.saturating_add(1);
        delay.mul_f64(spread)
    }

    /// How long `obj` waits when calls to its Nomad are paused for `pause` (the
    /// cluster's circuit breaker): until the pause ends, plus up to a quarter of it
    /// (fixed per object), so that the objects waiting on one cluster come back spread
    /// out, and none waits longer than the pause calls for.
    pub fn after_pause(&self, obj: &ObjectRef<NomadJob>, pause: Duration) -> Duration {
        pause.mul_f64(1.0 + 0.25 * fraction(obj, 0)) + Duration::from_millis(50)
    }

    /// Forgets the failures of `obj` after a successful reconcile.
    pub fn reset(&self, obj: &ObjectRef<NomadJob>) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(obj);
    }
}

/// A number in `[0, 1)` fixed by `obj` and `attempt`.
fn fraction(obj: &ObjectRef<NomadJob>, attempt: u32) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (obj, attempt).hash(&mut hasher);
    (hasher.finish() % 1000) as f64 / 1000.0
}

/// A Nomad job's identity: (Nomad namespace, job ID).
pub type NomadJobKey = (String, String);

/// Which object (a `NomadJob`, or a `NomadDispatch` for the job it dispatched) follows
/// which Nomad job; filled as objects are reconciled.
pub struct JobIndex<K: Lookup<DynamicType = ()> = NomadJob> {
    owners: Mutex<HashMap<NomadJobKey, ObjectRef<K>>>,
}

impl<K: Lookup<DynamicType = ()>> Default for JobIndex<K> {
    fn default() -> Self {
        Self {
            owners: Mutex::default(),
        }
    }
}

impl<K: Lookup<DynamicType = ()>> JobIndex<K> {
    /// Records that `obj` manages `key`.
    pub fn insert(&self, key: NomadJobKey, obj: ObjectRef<K>) {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, obj);
    }

    /// Forgets `key` if `obj` manages it.
    pub fn remove(&self, key: &NomadJobKey, obj: &ObjectRef<K>) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if owners.get(key) == Some(obj) {
            owners.remove(key);
        }
    }

    /// The object managing `key`, if known.
    pub fn owner(&self, key: &NomadJobKey) -> Option<ObjectRef<K>> {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// The object managing `key`, or the job that launched it (a periodic or
    /// parameterized job's child, `PARENT/periodic-...` or `PARENT/dispatch-...`).
    pub fn owner_or_parent(&self, key: &NomadJobKey) -> Option<ObjectRef<K>> {
        self.owner(key).or_else(|| {
            let parent = parent_job(&key.1)?;
            self.owner(&(key.0.clone(), parent.to_string()))
        })
    }

    /// The Nomad namespaces of the jobs known.
    pub fn namespaces(&self) -> std::collections::BTreeSet<String> {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .map(|(namespace, _)| namespace.clone())
            .collect()
    }

    /// How many jobs are known.
    pub fn len(&self) -> usize {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no job is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The job that launched `id`, when `id` is a periodic or parameterized job's child.
pub fn parent_job(id: &str) -> Option<&str> {
    let (parent, child) = id.rsplit_once('/')?;
    (child.starts_with("periodic-") || child.starts_with("dispatch-")).then_some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_spreads_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let a = ObjectRef::new("a").within("ns");
        let delays: Vec<f64> = (0..5)
            .map(|_| backoff.next_delay(&a).as_secs_f64())
            .collect();
        for (delay, nominal) in delays.iter().zip([1.0, 2.0, 4.0, 5.0, 5.0]) {
            assert!(
                (nominal * 0.8..=nominal * 1.2).contains(delay),
                "{delay} around {nominal}"
            );
        }
        // Objects failing together retry at different times.
        let firsts: std::collections::BTreeSet<u128> = (0..20)
            .map(|i| {
                let obj = ObjectRef::new(&format!("o{i}")).within("ns");
                backoff.next_delay(&obj).as_millis()
            })
            .collect();
        assert!(firsts.len() > 10, "spread: {firsts:?}");
        backoff.reset(&a);
        assert!(backoff.next_delay(&a) <= Duration::from_millis(1200));
    }

    #[test]
    fn a_plan_is_due_once_per_interval() {
        let minute = Duration::from_secs(60);
        assert!(plan_due(None, minute), "never planned");
        assert!(!plan_due(Some(Duration::from_secs(1)), minute));
        assert!(plan_due(Some(Duration::from_secs(55)), minute), "the slack");
        assert!(plan_due(Some(Duration::ZERO), Duration::ZERO));
    }

    #[test]
    fn a_list_wait_lasts_until_its_limit_from_its_start() {
        let minute = Duration::from_secs(60);
        assert!(may_wait(None, Duration::ZERO), "not waiting");
        assert!(may_wait(Some(Duration::from_secs(1)), minute));
        assert!(!may_wait(Some(minute), minute), "waited past the limit");
    }

    #[test]
    fn an_object_clock_keeps_a_start_and_replaces_a_stamp() {
        let clock = ObjectClock::default();
        let a = ObjectRef::new("a").within("ns");
        assert_eq!(clock.elapsed(&a), None);
        clock.start(&a);
        let first = clock.elapsed(&a).expect("started");
        std::thread::sleep(Duration::from_millis(20));
        clock.start(&a);
        assert!(clock.elapsed(&a).expect("started") >= first + Duration::from_millis(20));
        clock.stamp(&a);
        assert!(clock.elapsed(&a).expect("stamped") < Duration::from_millis(20));
        clock.forget(&a);
        assert_eq!(clock.elapsed(&a), None);
    }

    #[test]
    fn children_of_periodic_and_parameterized_jobs_route_to_the_parent() {
        let index: JobIndex = JobIndex::default();
        let a = ObjectRef::new("a").within("ns");
        index.insert(("default".into(), "team/report".into()), a.clone());
        for child in [
            "team/report/periodic-1700000000",
            "team/report/dispatch-1700000000-abcd1234",
        ] {
            assert_eq!(
                index.owner_or_parent(&("default".into(), child.into())),
                Some(a.clone()),
                "{child}"
            );
        }
        assert_eq!(
            index.owner_or_parent(&("default".into(), "team/report/other".into())),
            None
        );
        assert_eq!(parent_job("web"), None);
    }

    #[test]
    fn job_index_forgets_only_its_own_owner() {
        let index: JobIndex = JobIndex::default();
        let key = ("default".to_string(), "web".to_string());
        let a = ObjectRef::new("a").within("ns");
        index.insert(key.clone(), a.clone());
        index.remove(&key, &ObjectRef::new("b").within("ns"));
        assert_eq!(index.owner(&key), Some(a.clone()));
        index.remove(&key, &a);
        assert!(index.is_empty());
    }
}
