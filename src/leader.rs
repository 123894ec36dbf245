//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only
//! one reconciles at a time.
//!
//! No maintained crate supports kube 5 yet (`kube-leader-election` 0.44 needs kube 4), so
//! this is a small lease loop in the manner of client-go's `leaderelection`:
//!
//! - a candidate takes the Lease when it does not exist, has no holder, or its record
//!   has not changed for `leaseDurationSeconds` as measured on the candidate's own clock
//!   (so clock skew between replicas does not matter);
//! - every write is a compare-and-swap on `metadata.resourceVersion` (a create, or a
//!   replace that the apiserver refuses with 409 when someone else wrote first);
//! - the leader renews every retry period. It may write (to Nomad and to Kubernetes) only
//!   until the renew deadline counted from when its last successful renew was *sent*
//!   ([`Leadership`]), and the deadline is shorter than the lease duration: its writes
//!   stop before any standby may take over, even if a renew answer is late or the
//!   process was frozen;
//! - a leader that loses the Lease stops its controller and stands by to lead again,
//!   rather than exiting;
//! - on a clean shutdown the leader releases the Lease so a standby takes over at once.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

use crate::nomad::parse_duration;

/// Leader election settings of `nomad-operator run` (flags with environment fallbacks).
#[derive(clap::Args, Clone, Debug)]
pub struct LeaderArgs {
    /// Elect a leader on a Lease so that only one replica reconciles. `--leader-election`
    /// turns it on (the Helm chart does), `--leader-election=false` off (the default, for
    /// local runs and tests).
    #[arg(
        long = "leader-election",
        env = "LEADER_ELECTION",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub leader_election: bool,

    /// Namespace of the Lease. Default: POD_NAMESPACE, else the client's namespace.
    #[arg(long = "leader-election-namespace", env = "LEADER_ELECTION_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Name of the Lease.
    #[arg(
        long = "leader-election-name",
        env = "LEADER_ELECTION_NAME",
        default_value = "nomad-operator"
    )]
    pub lease_name: String,

    /// This replica's identity in the Lease. Default: POD_NAME (else HOSTNAME) plus a
    /// random suffix.
    #[arg(long = "leader-election-identity", env = "LEADER_ELECTION_IDENTITY")]
    pub lease_identity: Option<String>,

    /// How long a standby waits, after the Lease stopped changing, before taking it.
    #[arg(long = "lease-duration", env = "LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps reconciling without a successful renewal; shorter than
    /// the lease duration.
    #[arg(long = "lease-renew-deadline", env = "LEASE_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,

    /// How often candidates try to take, and the leader to renew, the Lease.
    #[arg(long = "lease-retry-period", env = "LEASE_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
}

impl LeaderArgs {
    /// The timing settings, checked: `retry < renew deadline < lease duration`.
    pub fn timing(&self) -> Result<Timing, String> {
        let timing = Timing {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        timing.check()?;
        Ok(timing)
    }

    /// The identity to use: the flag, else `POD_NAME`/`HOSTNAME` with a random suffix.
    pub fn identity(&self) -> String {
        if let Some(id) = self.lease_identity.clone().filter(|s| !s.is_empty()) {
            return id;
        }
        let host = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "nomad-operator".into());
        format!("{host}_{}", random_suffix())
    }

    /// The Lease's namespace: the flag, else `POD_NAMESPACE`, else the client's default.
    pub fn namespace(&self, client: &Client) -> String {
        self.lease_namespace
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| client.default_namespace().to_string())
    }
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Timing of the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease whose record does not change stays valid.
    pub lease_duration: Duration,
    /// How long the leader may go without renewing before it steps down.
    pub renew_deadline: Duration,
    /// Interval between attempts.
    pub retry_period: Duration,
}

impl Timing {
    /// Checks `0 < retry < renew deadline < lease duration`.
    fn check(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("--lease-retry-period must be positive".into());
        }
        if self.renew_deadline <= self.retry_period {
            return Err("--lease-renew-deadline must be longer than --lease-retry-period".into());
        }
        if self.lease_duration <= self.renew_deadline {
            return Err("--lease-duration must be longer than --lease-renew-deadline".into());
        }
        Ok(())
    }
}

/// A candidate's handle on the Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    /// The resourceVersion of the Lease last seen, and when it was first seen.
    observed: Option<(String, Instant)>,
}

impl LeaseLock {
    /// A lock on the Lease `namespace/name` for the candidate `identity`.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            observed: None,
        }
    }

    /// This candidate's identity.
    fn identity(&self) -> &str {
        &self.identity
    }

    /// Takes or renews the Lease. `Ok(true)`: this candidate holds it now. `Ok(false)`:
    /// someone else holds a valid lease, or won a race for it.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_seconds(self.lease_duration)),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        self.observe(&created);
                        Ok(true)
                    }
                    Err(e) if is_conflict(&e) => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        self.observe(&current);
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !self.expired(&spec) {
            return Ok(false);
        }
        let mut next = current.clone();
        let transitions = spec.lease_transitions.unwrap_or_default();
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(duration_seconds(self.lease_duration)),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours {
                transitions
            } else {
                transitions.saturating_add(1)
            }),
            ..spec
        });
        // `next` carries the resourceVersion read above: the replace is a CAS.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                Ok(true)
            }
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this candidate holds it, so a standby takes over at once.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Notes the Lease's resourceVersion; a new one restarts the expiry clock.
    fn observe(&mut self, lease: &Lease) {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self
            .observed
            .as_ref()
            .is_none_or(|(seen, _)| *seen != version)
        {
            self.observed = Some((version, Instant::now()));
        }
    }

    /// True when the Lease's record has not changed for its duration (by our clock).
    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.lease_duration);
        self.observed
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= duration)
    }
}

fn duration_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

/// Whether this replica may write (to Nomad and to Kubernetes) right now: always when
/// leader election is off; with it on, only until the renew deadline counted from the
/// moment its last successful Lease write was *sent*.
///
/// A standby starts its lease-duration clock no earlier than that write reached the
/// apiserver, and the renew deadline is shorter than the lease duration, so the old
/// leader's writes stop before a standby may take over, even when a renew answer comes
/// late or the process was frozen (`Instant` keeps counting while it is stopped).
#[derive(Clone, Debug)]
pub struct Leadership {
    state: Arc<Mutex<Holding>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holding {
    /// No election: this replica always writes.
    Always,
    /// Elected: writes are allowed until the instant, if any.
    Until(Option<Instant>),
}

impl Default for Leadership {
    fn default() -> Self {
        Self::always()
    }
}

impl Leadership {
    /// No election: writes are always allowed.
    pub fn always() -> Self {
        Self {
            state: Arc::new(Mutex::new(Holding::Always)),
        }
    }

    /// Turns election on for this handle and its clones: no write is allowed until
    /// [`grant_until`](Self::grant_until).
    pub fn require_election(&self) {
        *self.lock() = Holding::Until(None);
    }

    /// Allows writes until `until` (a successful Lease write sent at `until - renew
    /// deadline`). Never moves the limit back.
    pub fn grant_until(&self, until: Instant) {
        let mut state = self.lock();
        if let Holding::Until(current) = *state {
            *state = Holding::Until(Some(current.map_or(until, |c| c.max(until))));
        }
    }

    /// Refuses writes from now on (leadership lost or given up).
    pub fn revoke(&self) {
        let mut state = self.lock();
        if let Holding::Until(_) = *state {
            *state = Holding::Until(None);
        }
    }

    /// True while this replica may write.
    pub fn holds(&self) -> bool {
        match *self.lock() {
            Holding::Always => true,
            Holding::Until(until) => until.is_some_and(|u| Instant::now() < u),
        }
    }

    /// The gate of a Nomad client's writes: open while this replica [`holds`](Self::holds).
    pub fn write_gate(&self) -> crate::nomad::WriteGate {
        let leadership = self.clone();
        std::sync::Arc::new(move || leadership.holds())
    }

    /// When the current grant runs out (`None`: no grant, or no election).
    fn deadline(&self) -> Option<Instant> {
        match *self.lock() {
            Holding::Always => None,
            Holding::Until(until) => until,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Holding> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long a controller that was told to stop may take to finish before it is cut off.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Campaigns for the Lease, runs `lead` while this replica leads, and returns when
/// `shutdown` completes. A replica that loses the Lease (it could not renew in time, or
/// another replica holds it) stops leading and campaigns again as a standby instead of
/// exiting, so that an apiserver that flaps does not become a crash loop.
///
/// `lead` is called at each term with a future that completes when it must stop;
/// `leadership` allows writes only while the Lease is held; `leader` is 1 while leading.
pub async fn run<F, Fut>(
    mut lock: LeaseLock,
    timing: Timing,
    leadership: Leadership,
    leader: Gauge,
    shutdown: impl Future<Output = ()>,
    mut lead: F,
) where
    F: FnMut(futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    leadership.require_election();
    loop {
        info!(identity = lock.identity(), "campaigning for leadership");
        loop {
            let sent = Instant::now();
            match lock.try_acquire_or_renew().await {
                Ok(true) => {
                    leadership.grant_until(sent + timing.renew_deadline);
                    if leadership.holds() {
                        break;
                    }
                }
                Ok(false) => {}
                Err(e) => warn!("leader election: {e}"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(timing.retry_period) => {}
            }
        }
        info!(identity = lock.identity(), "became the leader");
        leader.set(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
            let _ = stop_rx.await;
        });
        let mut leading = tokio::spawn(lead(stop));
        let end = lead_term(&mut lock, timing, &leadership, &mut leading, &mut shutdown).await;
        leadership.revoke();
        leader.set(0);
        let _ = stop_tx.send(());
        // Writes are already refused; let the controller wind down, then cut it off.
        // (A controller that ended on its own has nothing left to wait for.)
        if end != Term::ControllerEnded
            && tokio::time::timeout(STOP_GRACE, &mut leading)
                .await
                .is_err()
        {
            leading.abort();
        }
        match end {
            Term::Shutdown => {
                if let Err(e) = lock.release().await {
                    warn!("releasing the Lease: {e}");
                }
                info!("released leadership");
                return;
            }
            Term::Lost => warn!(
                identity = lock.identity(),
                "lost leadership; standing by to lead again"
            ),
            Term::ControllerEnded => {
                if let Err(e) = lock.release().await {
                    warn!("releasing the Lease: {e}");
                }
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(timing.retry_period) => {}
        }
    }
}

/// How one term as leader ended.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    /// The shutdown signal came.
    Shutdown,
    /// The Lease could not be renewed within the renew deadline, or another replica took it.
    Lost,
    /// The controller stopped on its own (a failure): leadership is given up.
    ControllerEnded,
}

/// Renews the Lease every retry period until the term ends. The renew deadline is a
/// timer of its own: the term ends when the grant runs out, whatever a renew is doing.
async fn lead_term(
    lock: &mut LeaseLock,
    timing: Timing,
    leadership: &Leadership,
    leading: &mut tokio::task::JoinHandle<()>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Term {
    loop {
        let deadline = leadership
            .deadline()
            .map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
        tokio::select! {
            _ = &mut *shutdown => return Term::Shutdown,
            finished = &mut *leading => {
                warn!("the controller stopped on its own ({finished:?}); giving up leadership");
                return Term::ControllerEnded;
            }
            _ = tokio::time::sleep_until(deadline) => {
                warn!("could not renew the Lease within {:?}", timing.renew_deadline);
                return Term::Lost;
            }
            _ = tokio::time::sleep(timing.retry_period) => {}
        }
        let sent = Instant::now();
        let renew = tokio::select! {
            renewed = lock.try_acquire_or_renew() => renewed,
            _ = tokio::time::sleep_until(deadline) => {
                warn!("renewing the Lease did not finish within {:?}", timing.renew_deadline);
                return Term::Lost;
            }
        };
        match renew {
            Ok(true) => leadership.grant_until(sent + timing.renew_deadline),
            Ok(false) => {
                warn!("another replica took the Lease");
                return Term::Lost;
            }
            Err(e) => warn!("renewing the Lease: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        leader: LeaderArgs,
    }

    #[test]
    fn flags_default_off_with_client_go_timing() {
        let cli = Cli::parse_from(["x"]);
        assert!(!cli.leader.leader_election);
        let timing = cli.leader.timing().expect("valid");
        assert_eq!(timing.lease_duration, Duration::from_secs(15));
        assert_eq!(timing.renew_deadline, Duration::from_secs(10));
        assert_eq!(timing.retry_period, Duration::from_secs(2));
        assert!(
            Cli::parse_from(["x", "--leader-election"])
                .leader
                .leader_election
        );
        assert!(
            !Cli::parse_from(["x", "--leader-election=false"])
                .leader
                .leader_election
        );
    }

    #[test]
    fn timing_must_be_ordered() {
        let cli = Cli::parse_from([
            "x",
            "--lease-duration",
            "3s",
            "--lease-renew-deadline",
            "5s",
        ]);
        assert!(cli.leader.timing().is_err());
        let cli = Cli::parse_from([
            "x",
            "--lease-duration",
            "3s",
            "--lease-renew-deadline",
            "2s",
            "--lease-retry-period",
            "500ms",
        ]);
        assert!(cli.leader.timing().is_ok());
    }

    #[test]
    fn leadership_allows_writes_only_within_the_grant() {
        let always = Leadership::always();
        assert!(always.holds(), "no election: always writes");
        always.revoke();
        assert!(always.holds(), "revoking means nothing without an election");

        let elected = Leadership::always();
        let clone = elected.clone();
        elected.require_election();
        assert!(!clone.holds(), "no grant yet");
        elected.grant_until(Instant::now() + Duration::from_secs(60));
        assert!(clone.holds());
        elected.grant_until(Instant::now());
        assert!(clone.holds(), "a grant never moves the limit back");
        elected.revoke();
        assert!(!clone.holds());
        elected.grant_until(Instant::now());
        assert!(!clone.holds(), "a grant that has run out allows nothing");
    }

    #[test]
    fn explicit_identity_wins_and_default_is_unique() {
        let cli = Cli::parse_from(["x", "--leader-election-identity", "me"]);
        assert_eq!(cli.leader.identity(), "me");
        let cli = Cli::parse_from(["x"]);
        assert!(!cli.leader.identity().is_empty());
    }
}
