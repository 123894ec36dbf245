//! `nomad-operator run`: its settings and the wiring of the controller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::crd::{
    DELETION_PROTECTION_ANNOTATION, FINALIZER, FORCE_LAUNCH_ANNOTATION, NomadDispatch, NomadJob,
    PROMOTE_ANNOTATION, RETRY_ANNOTATION,
};
use crate::jobspec::ParseSupport;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::nomad::{NomadClient, NomadConfig, NomadError, parse_duration};

use super::connection::{Connections, Route};
use super::context::{Backoff, Context, JobIndex, ObjectClock};
use super::dispatch::{dispatch_error_policy, reconcile_dispatch};
use super::events::EventPublisher;
use super::mirror::Mirror;
use super::nomad_watch::{self, Routes, WatchConfig};
use super::reconcile::{error_policy, reconcile};
use super::render::Defaults;
use super::resolve::{ParsedJobs, SourceIndex, SourceKey};

/// Settings of `nomad-operator run` (flags with environment fallbacks).
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// How to reach Nomad.
    #[command(flatten)]
    pub nomad: NomadConfig,

    /// Kubernetes namespace to watch; repeat, or separate with commas, for several.
    /// Default: all namespaces.
    #[arg(long = "namespace", env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,

    /// How many objects are reconciled at once.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Coalesce triggers of one object that arrive within this time (a deployment's
    /// allocation, deployment and job changes) into one reconcile.
    #[arg(long, env = "RECONCILE_DEBOUNCE", default_value = "100ms", value_parser = parse_duration)]
    pub debounce: Duration,

    /// How often each object is looked at again when nothing happens: its job is read
    /// and its status refreshed; it is planned only when its spec or its job's spec
    /// index moved, or --plan-interval passed. Each object's interval is stretched by up
    /// to a fifth (fixed per object), so objects created together do not all resync at
    /// once.
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// How often an object whose spec and job did not move is planned anyway, to find
    /// drift that no index shows; never while the job's deployment is in progress. At
    /// least the resync interval.
    #[arg(long, env = "PLAN_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub plan_interval: Duration,

    /// After a register, hold back a status that only says the new version is on its
    /// way for up to this long: a deployment that ends sooner is shown in one status
    /// write instead of two. The Events are not held; `0s` writes at once.
    #[arg(long, env = "STATUS_HOLD", default_value = "2s", value_parser = parse_duration)]
    pub status_hold: Duration,

    /// First retry delay after an error; it doubles per failure up to --max-backoff.
    #[arg(long, env = "ERROR_BACKOFF", default_value = "1s", value_parser = parse_duration)]
    pub error_backoff: Duration,

    /// Longest retry delay after repeated errors.
    #[arg(long, env = "MAX_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,

    /// How long one blocking query on Nomad's lists may wait.
    #[arg(long, env = "NOMAD_WATCH_WAIT", default_value = "5m", value_parser = parse_duration)]
    pub nomad_watch_wait: Duration,

    /// Do not watch Nomad for changes; rely on the resync interval only.
    #[arg(long, env = "NO_NOMAD_WATCH")]
    pub no_nomad_watch: bool,

    /// Serve only NomadJobs with `spec.connectionRef`: the `--nomad-*` flags are no
    /// connection of their own (a multi-team setup where every team names its own).
    #[arg(long, env = "NO_DEFAULT_CONNECTION")]
    pub no_default_connection: bool,

    /// The namespace whose Secrets ClusterNomadConnections name (the operator's own).
    #[arg(long, env = "POD_NAMESPACE")]
    pub connection_secrets_namespace: Option<String>,

    /// Read the ConfigMaps and Secrets that NomadJobs name in `spec.variablesFrom` (and
    /// watch them, so that a change registers the job again). Needs RBAC to get, list and
    /// watch them in the watched namespaces.
    #[arg(long, env = "VARIABLES_FROM")]
    pub variables_from: bool,

    /// Protect every job from deletion: deleting a NomadJob leaves its Nomad job running
    /// (and the object in place) unless the object's
    /// `nomadoperator.dev/deletion-protection` annotation is "false".
    #[arg(long, env = "DELETION_PROTECTION")]
    pub deletion_protection: bool,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Nomad client settings are unusable.
    #[error("Nomad client: {0}")]
    Nomad(#[from] NomadError),
    /// No Kubernetes client could be configured.
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
}

/// Builds the shared context from the settings.
pub fn context(kube: Client, args: &RunArgs, metrics: Metrics) -> Result<Arc<Context>, StartError> {
    let nomad = NomadClient::new(&args.nomad)?;
    let leadership = Leadership::always();
    nomad.set_write_gate(leadership.write_gate());
    let jobs = Arc::new(JobIndex::default());
    let mirror = Arc::new(Mirror::default());
    let defaults = Defaults {
        namespace: args.nomad.namespace.clone(),
        region: args.nomad.region.clone(),
    };
    let default_route = (!args.no_default_connection).then(|| Route {
        nomad: nomad.clone(),
        defaults: defaults.clone(),
        allowed: None,
        label: None,
        jobs: jobs.clone(),
        mirror: mirror.clone(),
        parse_support: Arc::new(ParseSupport::default()),
    });
    let instance = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok());
    let events = EventPublisher::start(
        kube.clone(),
        Reporter {
            controller: "nomad-operator".into(),
            instance,
        },
        leadership.clone(),
    );
    Ok(Arc::new(Context {
        kube,
        nomad,
        connections: Connections::new(
            default_route,
            args.connection_secrets_namespace.clone(),
            leadership.clone(),
        ),
        events,
        defaults,
        resync: args.resync_interval,
        plan_interval: args.plan_interval.max(args.resync_interval),
        backoff: Backoff::new(args.error_backoff, args.max_backoff),
        jobs,
        mirror,
        dispatches: Arc::new(JobIndex::default()),
        metrics,
        plans: ObjectClock::default(),
        list_waits: ObjectClock::default(),
        held: super::settle::HeldStatuses::default(),
        status_hold: args.status_hold,
        parsed: ParsedJobs::default(),
        sources: Arc::new(SourceIndex::default()),
        variables_from: args.variables_from,
        deletion_protection: args.deletion_protection,
        leadership,
    }))
}

/// Runs the controller until `shutdown` completes.
pub async fn run_controller(
    ctx: Arc<Context>,
    args: &RunArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (trigger_tx, trigger_rx) = mpsc::unbounded::<ObjectRef<NomadJob>>();
    let (dispatch_tx, dispatch_rx) = mpsc::unbounded::<ObjectRef<NomadDispatch>>();
    let source_watches = if ctx.variables_from {
        watch_variable_sources(&ctx, &args.namespaces, &trigger_tx)
    } else {
        Vec::new()
    };
    let watchers = if args.no_nomad_watch {
        Vec::new()
    } else {
        let config = WatchConfig {
            wait: args.nomad_watch_wait,
            ..WatchConfig::default()
        };
        match ctx.nomad.with_own_pool() {
            Ok(nomad) => {
                let routes = Routes {
                    jobs: ctx.jobs.clone(),
                    mirror: ctx.mirror.clone(),
                    trigger: trigger_tx,
                    dispatches: ctx.dispatches.clone(),
                    dispatch_trigger: dispatch_tx,
                };
                ctx.connections
                    .watches
                    .start(routes.clone(), config.clone());
                if args.no_default_connection {
                    Vec::new()
                } else {
                    nomad_watch::spawn(nomad, routes, config)
                }
            }
            Err(e) => {
                warn!("cannot start the Nomad watches ({e}); relying on the resync interval");
                Vec::new()
            }
        }
    };
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));

    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    // One trigger stream per controller: route Nomad-driven triggers by namespace.
    let mut routes = std::collections::HashMap::new();
    let mut dispatch_routes = std::collections::HashMap::new();
    let mut controllers = Vec::new();
    let mut dispatch_controllers = Vec::new();
    for namespace in namespaces {
        let (tx, rx) = mpsc::unbounded();
        routes.insert(namespace.clone(), tx);
        let (dtx, drx) = mpsc::unbounded();
        dispatch_routes.insert(namespace.clone(), dtx);
        let dispatch_api: Api<NomadDispatch> = match &namespace {
            Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
            None => Api::all(ctx.kube.clone()),
        };
        dispatch_controllers.push(
            Controller::new(dispatch_api, watcher::Config::default())
                .reconcile_on(drx)
                .graceful_shutdown_on(shutdown.clone())
                .run(reconcile_dispatch, dispatch_error_policy, ctx.clone())
                .for_each(|result| async move {
                    if let Err(e) = result {
                        tracing::debug!("dispatch controller: {e}");
                    }
                }),
        );
        let api: Api<Watched> = match &namespace {
            Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
            None => Api::all(ctx.kube.clone()),
        };
        info!(
            namespace = namespace.as_deref().unwrap_or("*"),
            "watching NomadJobs"
        );
        // Only the objects' metadata is watched: a spec is read (and decoded) by the
        // reconcile of its object alone, so one object that cannot be decoded never stops
        // the watch of the others.
        let (reader, writer) = reflector::store();
        let objects = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim)
            .reflect(writer)
            .touched_objects()
            .predicate_filter(trigger_fingerprint, Default::default());
        let controller = Controller::for_stream(objects, reader)
            .with_config(
                ControllerConfig::default()
                    .concurrency(args.concurrency)
                    .debounce(args.debounce),
            )
            .reconcile_on(rx)
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!("controller: {e}");
                }
            });
        controllers.push(controller);
    }
    let router = tokio::spawn(route_triggers(trigger_rx, routes));
    let dispatch_router = tokio::spawn(route_by_namespace(dispatch_rx, dispatch_routes));
    // Stops the tasks also when this future is dropped (a leader that lost its Lease
    // cuts the controller off), so that a replica leading again starts clean.
    let _tasks = Tasks {
        ctx: ctx.clone(),
        tasks: watchers
            .into_iter()
            .chain(source_watches)
            .chain([router, dispatch_router])
            .collect(),
    };
    futures::future::join(
        futures::future::join_all(controllers),
        futures::future::join_all(dispatch_controllers),
    )
    .await;
    info!("controller stopped");
}

/// The controller's background tasks and the connections' watches, stopped on drop.
struct Tasks {
    ctx: Arc<Context>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.ctx.connections.watches.stop();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Watches the metadata of ConfigMaps and Secrets in the watched namespaces and
/// reconciles the objects that read one (`spec.variablesFrom`) when it changes. Only
/// metadata is watched: values are read by the reconcile that needs them, so the
/// operator holds no copy of the namespaces' Secrets.
fn watch_variable_sources(
    ctx: &Arc<Context>,
    namespaces: &[String],
    triggers: &mpsc::UnboundedSender<ObjectRef<NomadJob>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut tasks = Vec::new();
    for namespace in scopes {
        tasks.push(watch_sources_of::<ConfigMap>(
            ctx,
            namespace,
            "ConfigMap",
            triggers,
        ));
        tasks.push(watch_sources_of::<Secret>(
            ctx, namespace, "Secret", triggers,
        ));
    }
    tasks
}

fn watch_sources_of<K>(
    ctx: &Arc<Context>,
    namespace: Option<&str>,
    kind: &'static str,
    triggers: &mpsc::UnboundedSender<ObjectRef<NomadJob>>,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = match namespace {
        Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
        None => Api::all(ctx.kube.clone()),
    };
    let (sources, triggers) = (ctx.sources.clone(), triggers.clone());
    tokio::spawn(async move {
        let mut changes = std::pin::pin!(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects()
        );
        while let Some(change) = changes.next().await {
            let Ok(meta) = change else { continue };
            let key = SourceKey {
                kind,
                namespace: meta.metadata.namespace.clone().unwrap_or_default(),
                name: meta.metadata.name.clone().unwrap_or_default(),
            };
            for reader in sources.readers(&key) {
                if triggers.unbounded_send(reader).is_err() {
                    return;
                }
            }
        }
    })
}

async fn route_triggers(
    mut triggers: mpsc::UnboundedReceiver<ObjectRef<NomadJob>>,
    routes: std::collections::HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<Watched>>>,
) {
    while let Some(obj) = triggers.next().await {
        let route = routes.get(&None).or_else(|| routes.get(&obj.namespace));
        let mut watched = ObjectRef::<Watched>::new(&obj.name);
        watched.namespace = obj.namespace.clone();
        if let Some(tx) = route
            && tx.unbounded_send(watched).is_err()
        {
            warn!("a controller stopped taking triggers");
        }
    }
}

/// Sends each trigger to the controller of its namespace (or the one of all namespaces).
async fn route_by_namespace<K>(
    mut triggers: mpsc::UnboundedReceiver<ObjectRef<K>>,
    routes: std::collections::HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<K>>>,
) where
    K: kube::runtime::reflector::Lookup<DynamicType = ()>,
{
    while let Some(obj) = triggers.next().await {
        let route = routes.get(&None).or_else(|| routes.get(&obj.namespace));
        if let Some(tx) = route
            && tx.unbounded_send(obj).is_err()
        {
            warn!("a controller stopped taking triggers");
        }
    }
}

/// What the controller watches and caches of each `NomadJob`: its metadata.
type Watched = PartialObjectMeta<NomadJob>;

/// Drops what the reconcile never reads from the cached objects (managed fields and
/// kubectl's last-applied annotation), which would otherwise dominate the cache.
fn slim(obj: &mut Watched) {
    obj.metadata.managed_fields = None;
    obj.annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// What of an object makes it worth a reconcile: its generation (the spec), the
/// annotations the operator reads, deletion and finalizers. Status writes change none of these, so the
/// operator's own status updates do not wake it.
fn trigger_fingerprint(obj: &Watched) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    obj.metadata.generation.hash(&mut hasher);
    for annotation in [
        RETRY_ANNOTATION,
        DELETION_PROTECTION_ANNOTATION,
        PROMOTE_ANNOTATION,
        FORCE_LAUNCH_ANNOTATION,
    ] {
        obj.annotations().get(annotation).hash(&mut hasher);
    }
    obj.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    obj.finalizers()
        .iter()
        .any(|f| f == FINALIZER)
        .hash(&mut hasher);
    Some(hasher.finish())
}
