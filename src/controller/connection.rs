//! Which Nomad an object talks to: its `spec.connectionRef` (a `NomadConnection` of its
//! namespace or a `ClusterNomadConnection` that selects its namespace), or the
//! operator's own flags (the default connection).
//!
//! A connection is read, with its Secrets, on every reconcile that uses it, so a rotated
//! token or certificate is used by the next call; the Nomad client is rebuilt only when
//! the connection or one of its Secrets changed (their `resourceVersion`s). Each distinct
//! Nomad cluster and token gets one set of watches ([`WatchRegistry`]), however many
//! connections and jobs use it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::core::{Selector, SelectorExt};
use kube::{Client, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::crd::{
    ClusterNomadConnection, ConnectionKind, ConnectionRef, ConnectionSettings, ConnectionStatus,
    NomadConnection, reason,
};
use crate::jobspec::ParseSupport;
use crate::leader::Leadership;
use crate::nomad::{InlineTls, NomadClient, NomadConfig, Pem, Token};

use super::context::JobIndex;
use super::mirror::Mirror;
use super::nomad_watch::{self, Routes, WatchConfig};
use super::render::Defaults;

/// How one object reaches Nomad.
#[derive(Clone)]
pub struct Route {
    /// The client.
    pub nomad: NomadClient,
    /// Namespace and region of jobs that name none.
    pub defaults: Defaults,
    /// The Nomad namespaces jobs may use (`*` globs); `None`: any.
    pub allowed: Option<Vec<String>>,
    /// The connection, for the status (`None`: the default connection).
    pub label: Option<ConnectionStatus>,
    /// Where the jobs of this cluster are registered for its watches.
    pub jobs: Arc<JobIndex>,
    /// What the cluster's watches saw of it.
    pub mirror: Arc<Mirror>,
    /// What the cluster's parse endpoint takes.
    pub parse_support: Arc<ParseSupport>,
}

impl Route {
    /// Why a job in Nomad namespace `namespace` may not go through this route, if it may
    /// not.
    pub fn denies(&self, namespace: &str) -> Option<String> {
        let allowed = self.allowed.as_ref()?;
        if allowed.iter().any(|p| glob_matches(p, namespace)) {
            return None;
        }
        let name = self
            .label
            .as_ref()
            .map(|l| format!("{} {:?}", l.kind, l.name))
            .unwrap_or_else(|| "the connection".into());
        Some(format!(
            "the job's Nomad namespace {namespace:?} is not one {name} allows ({}); nothing was sent to Nomad. Use an allowed namespace, or ask the connection's owner to allow it",
            allowed.join(", ")
        ))
    }
}

/// The connection an object may use, or why it may not use one.
pub enum Choice {
    /// Use this route.
    Use(Route),
    /// No Nomad call is made; the object is `Stalled` with `reason`.
    Refused {
        /// Condition reason.
        reason: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A client built for a connection: what it was built from, the client, and its
/// cluster's parse support.
type Built = (String, NomadClient, Arc<ParseSupport>);

/// A cluster's watches: the index of its jobs, the watch tasks, and the connections
/// that use it.
struct Watched {
    jobs: Arc<JobIndex>,
    mirror: Arc<Mirror>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    users: std::collections::BTreeSet<String>,
}

/// The connections in use: the default one, the clients built for the others, and their
/// watches.
pub struct Connections {
    default: Option<Route>,
    /// The namespace of ClusterNomadConnections' Secrets (the operator's own).
    secrets_namespace: Option<String>,
    clients: Mutex<HashMap<String, Built>>,
    /// One set of watches per Nomad cluster and token.
    pub watches: WatchRegistry,
    /// Gates the writes of every client built here.
    leadership: Leadership,
}

impl Connections {
    /// The connections, with `default` for objects without `spec.connectionRef` (none:
    /// those are refused) and the namespace of cluster-scoped connections' Secrets.
    pub fn new(
        default: Option<Route>,
        secrets_namespace: Option<String>,
        leadership: Leadership,
    ) -> Self {
        Self {
            default,
            secrets_namespace,
            clients: Mutex::default(),
            watches: WatchRegistry::default(),
            leadership,
        }
    }

    /// The route of an object in Kubernetes namespace `namespace` with `reference`.
    pub async fn choose(
        &self,
        kube: &Client,
        namespace: &str,
        reference: Option<&ConnectionRef>,
    ) -> Result<Choice, kube::Error> {
        let Some(reference) = reference else {
            return Ok(match &self.default {
                Some(route) => Choice::Use(route.clone()),
                None => refused(
                    reason::CONNECTION_NOT_FOUND,
                    "spec.connectionRef is not set and this operator has no default connection: name a NomadConnection or ClusterNomadConnection".into(),
                ),
            });
        };
        let name = &reference.name;
        let (settings, secrets_namespace, version) = match reference.kind {
            ConnectionKind::NomadConnection => {
                let api: Api<NomadConnection> = Api::namespaced(kube.clone(), namespace);
                let Some(c) = api.get_opt(name).await? else {
                    return Ok(refused(
                        reason::CONNECTION_NOT_FOUND,
                        format!(
                            "the NomadConnection {name:?} does not exist in namespace {namespace:?}"
                        ),
                    ));
                };
                let version = c.resource_version().unwrap_or_default();
                (c.spec.settings, namespace.to_string(), version)
            }
            ConnectionKind::ClusterNomadConnection => {
                let api: Api<ClusterNomadConnection> = Api::all(kube.clone());
                let Some(c) = api.get_opt(name).await? else {
                    return Ok(refused(
                        reason::CONNECTION_NOT_FOUND,
                        format!("the ClusterNomadConnection {name:?} does not exist"),
                    ));
                };
                if let Some(denied) = namespace_denied(kube, &c, namespace).await? {
                    return Ok(refused(reason::POLICY_DENIED, denied));
                }
                let Some(secrets) = self.secrets_namespace.clone() else {
                    return Ok(refused(
                        reason::CONNECTION_NOT_FOUND,
                        "the operator does not know its own namespace (POD_NAMESPACE), where ClusterNomadConnections' Secrets are".into(),
                    ));
                };
                let version = c.resource_version().unwrap_or_default();
                (c.spec.settings, secrets, version)
            }
        };
        let label = ConnectionStatus {
            kind: format!("{:?}", reference.kind),
            name: name.clone(),
            address: settings.address.clone(),
        };
        let material = match read_material(kube, &secrets_namespace, &settings).await? {
            Ok(material) => material,
            Err(message) => return Ok(refused(reason::CONNECTION_INVALID, message)),
        };
        let key = format!("{}/{namespace}/{name}", label.kind);
        let built_from = fingerprint(&[&version, &material.versions.join(",")]);
        let cached = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|(f, _, _)| *f == built_from)
            .map(|(_, client, support)| (client.clone(), support.clone()));
        let (client, parse_support) = match cached {
            Some(found) => found,
            None => {
                let config = material.config(&settings);
                let client = match NomadClient::new(&config) {
                    Ok(client) => client,
                    Err(e) => {
                        return Ok(refused(
                            reason::CONNECTION_INVALID,
                            format!("{} {name:?} cannot be used: {e}", label.kind),
                        ));
                    }
                };
                client.set_write_gate(self.leadership.write_gate());
                info!(connection = %key, address = %settings.address, "connection (re)built");
                let support = Arc::new(ParseSupport::default());
                self.clients
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), (built_from, client.clone(), support.clone()));
                (client, support)
            }
        };
        let cluster = fingerprint(&[&settings.address, material.token.as_deref().unwrap_or("")]);
        let (jobs, mirror) = self.watches.index_for(&cluster, &client, &key);
        Ok(Choice::Use(Route {
            nomad: client,
            defaults: Defaults {
                namespace: settings
                    .namespaces
                    .iter()
                    .find(|n| !n.contains('*'))
                    .cloned(),
                region: settings.region.clone(),
            },
            allowed: Some(settings.namespaces.clone()),
            label: Some(label),
            jobs,
            mirror,
            parse_support,
        }))
    }
}

fn refused(reason: &'static str, message: String) -> Choice {
    Choice::Refused { reason, message }
}

/// Why a ClusterNomadConnection does not serve Kubernetes namespace `namespace`, if it
/// does not.
async fn namespace_denied(
    kube: &Client,
    connection: &ClusterNomadConnection,
    namespace: &str,
) -> Result<Option<String>, kube::Error> {
    let name = connection.name_any();
    let selector = match Selector::try_from(connection.spec.namespace_selector.clone()) {
        Ok(selector) => selector,
        Err(e) => {
            return Ok(Some(format!(
                "the ClusterNomadConnection {name:?} has an invalid namespaceSelector: {e}"
            )));
        }
    };
    let labels = Api::<Namespace>::all(kube.clone())
        .get_opt(namespace)
        .await?
        .map(|n| n.labels().clone())
        .unwrap_or_default();
    Ok((!selector.matches(&labels)).then(|| {
        format!(
            "the ClusterNomadConnection {name:?} does not serve Kubernetes namespace {namespace:?} (its namespaceSelector does not select it); nothing was sent to Nomad"
        )
    }))
}

/// A connection's token and TLS material, read from its Secrets.
struct Material {
    token: Option<String>,
    tls: InlineTls,
    /// The Secrets' `resourceVersion`s (a change rebuilds the client).
    versions: Vec<String>,
}

impl Material {
    fn config(&self, settings: &ConnectionSettings) -> NomadConfig {
        NomadConfig {
            token: self.token.clone().map(Token::new),
            region: settings.region.clone(),
            tls_server_name: settings.tls.as_ref().and_then(|t| t.server_name.clone()),
            inline_tls: self.tls.clone(),
            ..NomadConfig::new(settings.address.clone())
        }
    }
}

/// Reads the connection's Secrets in `namespace`; `Err` says what is missing.
async fn read_material(
    kube: &Client,
    namespace: &str,
    settings: &ConnectionSettings,
) -> Result<Result<Material, String>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let mut secrets: BTreeMap<String, Secret> = BTreeMap::new();
    let mut read = async |name: &str| -> Result<Result<Secret, String>, kube::Error> {
        if let Some(s) = secrets.get(name) {
            return Ok(Ok(s.clone()));
        }
        match api.get_opt(name).await {
            Ok(Some(secret)) => {
                secrets.insert(name.to_string(), secret.clone());
                Ok(Ok(secret))
            }
            Ok(None) => Ok(Err(format!(
                "the Secret {name:?} does not exist in namespace {namespace:?}"
            ))),
            Err(kube::Error::Api(status)) if status.code == 403 => Ok(Err(format!(
                "the operator may not read the Secret {name:?} in namespace {namespace:?} (for NomadConnections, the chart's connections.readTenantSecrets grants it)"
            ))),
            Err(e) => Err(e),
        }
    };
    let mut versions = Vec::new();
    let mut key_of = |secret: &Secret, key: &str| -> Result<Pem, String> {
        let name = secret.name_any();
        versions.push(secret.resource_version().unwrap_or_default());
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|bytes| Pem {
                origin: format!("Secret {namespace}/{name} key {key}"),
                bytes: bytes.0.clone(),
            })
            .ok_or_else(|| format!("the Secret {name:?} has no key {key:?}"))
    };
    let mut material = Material {
        token: None,
        tls: InlineTls::default(),
        versions: Vec::new(),
    };
    if let Some(r) = &settings.token_secret_ref {
        let secret = match read(&r.name).await? {
            Ok(s) => s,
            Err(m) => return Ok(Err(m)),
        };
        let pem = match key_of(&secret, r.key.as_deref().unwrap_or("token")) {
            Ok(p) => p,
            Err(m) => return Ok(Err(m)),
        };
        match String::from_utf8(pem.bytes) {
            Ok(token) => material.token = Some(token.trim().to_string()),
            Err(_) => return Ok(Err(format!("{} is not text", pem.origin))),
        }
    }
    if let Some(tls) = &settings.tls {
        if let Some(r) = &tls.ca_secret_ref {
            let secret = match read(&r.name).await? {
                Ok(s) => s,
                Err(m) => return Ok(Err(m)),
            };
            match key_of(&secret, r.key.as_deref().unwrap_or("ca.crt")) {
                Ok(p) => material.tls.ca_cert = Some(p),
                Err(m) => return Ok(Err(m)),
            }
        }
        if let Some(name) = &tls.client_certificate_secret_ref {
            let secret = match read(name).await? {
                Ok(s) => s,
                Err(m) => return Ok(Err(m)),
            };
            match (key_of(&secret, "tls.crt"), key_of(&secret, "tls.key")) {
                (Ok(cert), Ok(key)) => {
                    material.tls.client_cert = Some(cert);
                    material.tls.client_key = Some(key);
                }
                (Err(m), _) | (_, Err(m)) => return Ok(Err(m)),
            }
        }
    }
    material.versions = versions;
    Ok(Ok(material))
}

/// A short digest of `parts` (never shows a token).
fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `pattern` (with `*` for any run of characters) matches `name` whole.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// What spawning a cluster's watches needs, known once the controller runs.
struct Spawner {
    routes: Routes,
    config: WatchConfig,
}

/// One set of the three Nomad watches per distinct cluster and token, each with the
/// index of the jobs its changes trigger.
#[derive(Default)]
pub struct WatchRegistry {
    clusters: Mutex<HashMap<String, Watched>>,
    /// Set while the controller runs (a replica that leads again starts it anew).
    spawner: Mutex<Option<Spawner>>,
}

impl WatchRegistry {
    /// Lets the registry start watches, with `routes`' triggers (its job index is
    /// replaced per cluster).
    pub fn start(&self, routes: Routes, config: WatchConfig) {
        *self.spawner.lock().unwrap_or_else(|p| p.into_inner()) = Some(Spawner { routes, config });
    }

    /// The job index of cluster `key` for connection `user`, starting its watches
    /// (through `client`) the first time. A connection that moved to another cluster
    /// (a new address or a rotated token) leaves its old one, whose watches stop when no
    /// connection uses it any more.
    pub fn index_for(
        &self,
        key: &str,
        client: &NomadClient,
        user: &str,
    ) -> (Arc<JobIndex>, Arc<Mirror>) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        let left: Vec<String> = clusters
            .iter_mut()
            .filter(|(k, _)| k.as_str() != key)
            .filter_map(|(k, w)| (w.users.remove(user) && w.users.is_empty()).then(|| k.clone()))
            .collect();
        for old in left {
            if let Some(w) = clusters.remove(&old) {
                w.tasks.iter().for_each(tokio::task::JoinHandle::abort);
            }
        }
        if let Some(watched) = clusters.get_mut(key) {
            watched.users.insert(user.to_string());
            return (watched.jobs.clone(), watched.mirror.clone());
        }
        let jobs = Arc::new(JobIndex::default());
        let mirror = Arc::new(Mirror::default());
        let spawner = self.spawner.lock().unwrap_or_else(|p| p.into_inner());
        let tasks = match (spawner.as_ref(), client.with_own_pool()) {
            (Some(spawner), Ok(own)) => {
                let routes = Routes {
                    jobs: jobs.clone(),
                    mirror: mirror.clone(),
                    ..spawner.routes.clone()
                };
                nomad_watch::spawn(own, routes, spawner.config.clone())
            }
            (Some(_), Err(e)) => {
                warn!("cannot watch a connection's Nomad ({e}); relying on the resync interval");
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        clusters.insert(
            key.to_string(),
            Watched {
                jobs: jobs.clone(),
                mirror: mirror.clone(),
                tasks,
                users: [user.to_string()].into(),
            },
        );
        (jobs, mirror)
    }

    /// How many clusters are watched.
    pub fn len(&self) -> usize {
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// True when no connection's cluster is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every watch; none starts again until [`start`](Self::start).
    pub fn stop(&self) {
        *self.spawner.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        for (_, watched) in clusters.drain() {
            watched
                .tasks
                .iter()
                .for_each(tokio::task::JoinHandle::abort);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_patterns_match_whole_names() {
        assert!(glob_matches("team-a", "team-a"));
        assert!(!glob_matches("team-a", "team-ab"));
        assert!(glob_matches("team-a-*", "team-a-web"));
        assert!(!glob_matches("team-a-*", "team-b-web"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(glob_matches("*-prod", "web-prod"));
    }

    #[tokio::test]
    async fn one_index_per_cluster_and_token_whatever_uses_it() {
        let registry = WatchRegistry::default();
        let client = NomadClient::new(&NomadConfig::new("http://127.0.0.1:1")).expect("client");
        let a = registry.index_for("cluster-1", &client, "NomadConnection/a/nomad");
        let b = registry.index_for("cluster-1", &client, "NomadConnection/b/nomad");
        assert!(
            Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1),
            "two connections to one cluster share its watches and their mirror"
        );
        assert_eq!(registry.len(), 1);
        // Team a's token rotated: its connection moves; team b still uses cluster-1.
        registry.index_for("cluster-2", &client, "NomadConnection/a/nomad");
        assert_eq!(registry.len(), 2);
        // Team b's token rotated too: nothing uses cluster-1 any more.
        registry.index_for("cluster-3", &client, "NomadConnection/b/nomad");
        assert_eq!(registry.len(), 2, "cluster-1's watches stopped");
        registry.stop();
        assert!(registry.is_empty());
    }

    #[test]
    fn fingerprints_differ_by_any_part_and_hide_them() {
        let a = fingerprint(&["http://n:4646", "token-1"]);
        let b = fingerprint(&["http://n:4646", "token-2"]);
        assert_ne!(a, b);
        assert!(!a.contains("token"));
        assert_eq!(a.len(), 24);
    }
}
