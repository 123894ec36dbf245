//! RBAC proven, not assumed: the operator runs against the real apiserver as the chart's
//! ServiceAccount (impersonated), reconciles a `NomadJob` to Ready with the Nomad
//! simulator, takes its leader-election Lease, and is refused what it should not have.

#[path = "helm/helm.rs"]
mod helm;
mod support;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use nomad_operator::controller::context::Context;
use nomad_operator::controller::run::{self, RunArgs};
use nomad_operator::crd::NomadJob;
use nomad_operator::leader::LeaseLock;
use nomad_operator::metrics::Metrics;
use serde_json::json;
use support::envtest::{TestNamespace, kubectl, plane, unique_suffix};
use support::fixtures::{service_hcl, service_job};
use support::operator::{Backend, condition, wait_until, wait_until_ok};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RunArgs,
}

/// A client with the admin credentials that impersonates `user`.
async fn client_as(user: &str, groups: Vec<String>) -> Client {
    let kubeconfig = Kubeconfig::read_from(&plane().kubeconfig).expect("read kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(groups);
    Client::try_from(config).expect("client")
}

/// The user name of ServiceAccount `sa` in `namespace`, and a client acting as it.
async fn service_account(namespace: &str, sa: &str) -> (String, Client) {
    let user = format!("system:serviceaccount:{namespace}:{sa}");
    let groups = vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".to_string(),
    ];
    let client = client_as(&user, groups).await;
    (user, client)
}

/// The operator in-process with `client`'s credentials, watching `namespace`, against
/// the Nomad at `url`; `extra` adds `run` flags. Send on the sender to stop it.
fn start_operator(
    client: &Client,
    namespace: &str,
    url: &str,
    extra: &[&str],
) -> (
    Arc<Context>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut argv = vec![
        "run",
        "--nomad-addr",
        url,
        "--namespace",
        namespace,
        "--resync-interval",
        "2s",
    ];
    argv.extend_from_slice(extra);
    let args = Cli::try_parse_from(argv).expect("flags").args;
    let ctx = run::context(client.clone(), &args, Metrics::default()).expect("context");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            run::run_controller(ctx, &args, async move {
                let _ = stop_rx.await;
            })
            .await;
        }
    });
    (ctx, stop_tx, operator)
}

fn can_i(verb: &str, resource: &str, namespace: &str, user: &str) -> bool {
    let out = kubectl(&[
        "auth", "can-i", verb, resource, "-n", namespace, "--as", user,
    ]);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i: {answer:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

fn is_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(ref status)) if status.code == 403)
}

#[tokio::test]
async fn operator_works_with_the_charts_rbac_and_nothing_more() {
    nomad_operator::telemetry::init(nomad_operator::telemetry::LogFormat::Text);
    let ns = TestNamespace::new("rbac").await;
    let other = format!("rbac-other-{}", unique_suffix());
    let namespace = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(other.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(ns.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create other namespace");
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("not-yours".into()),
            ..Default::default()
        },
        string_data: Some([("token".to_string(), "hush".to_string())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(ns.client.clone(), &other)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");

    // The chart, watching only the test's namespace (namespaced Role + RoleBinding).
    let release = format!("rbac-{}", unique_suffix());
    helm::install(
        &plane().kubeconfig,
        &ns.name,
        &release,
        &json!({"watchNamespaces": [ns.name]}),
    );
    let sa = format!("{release}-nomad-operator");
    let (user, as_operator) = service_account(&ns.name, &sa).await;

    // Leader election as the ServiceAccount: its own Lease only.
    let mut lock = LeaseLock::new(
        as_operator.clone(),
        &ns.name,
        &sa,
        "rbac-test",
        Duration::from_secs(15),
    );
    assert!(
        lock.try_acquire_or_renew()
            .await
            .expect("take the Lease as the ServiceAccount")
    );
    assert!(lock.try_acquire_or_renew().await.expect("renew the Lease"));
    let mut foreign = LeaseLock::new(
        as_operator.clone(),
        &ns.name,
        "someone-elses-lease",
        "rbac-test",
        Duration::from_secs(15),
    );
    assert!(
        is_forbidden(foreign.try_acquire_or_renew().await),
        "a Lease of another name must be refused"
    );

    // The operator, in-process, as the ServiceAccount, with the simulator.
    let (_sim, server) = support::fixtures::start_simulator(None).await;
    let (ctx, stop_tx, operator) = start_operator(&as_operator, &ns.name, &server.url(), &[]);

    let api: Api<NomadJob> = ns.api();
    let job = service_job(Backend::Sim, 2, "/bin/sleep", &["3600"], false);
    let body = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": "web"},
        "spec": {"job": job}
    });
    api.patch(
        "web",
        &PatchParams::apply("rbac-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply NomadJob");

    let obj = wait_until_ok("Ready as the ServiceAccount", || async {
        let obj = api.get("web").await.expect("get");
        if condition(&obj, "Ready").is_some_and(|c| c.status == "True") {
            Ok(obj)
        } else {
            Err(format!("; status: {:#?}", obj.status))
        }
    })
    .await;
    // The finalizer went on (a patch of nomadjobs) and Events were published.
    assert!(
        !obj.metadata.finalizers.unwrap_or_default().is_empty(),
        "finalizer added"
    );
    wait_until("an Event from the operator", || async {
        Api::<Event>::namespaced(ns.client.clone(), &ns.name)
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .iter()
            .any(|e| e.reporting_controller.as_deref() == Some("nomad-operator"))
    })
    .await;
    assert!(
        ctx.metrics.status_writes.get() > 0,
        "status written as the ServiceAccount"
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;

    // What it must not do.
    assert!(
        can_i("patch", "nomadjobs", &ns.name, &user),
        "sanity: it may patch NomadJobs in its namespace"
    );
    assert!(!can_i("get", "secrets", &other, &user));
    // Its own (release) namespace: get only, for ClusterNomadConnections' Secrets.
    assert!(can_i("get", "secrets", &ns.name, &user));
    assert!(!can_i("list", "secrets", &ns.name, &user));
    assert!(!can_i("watch", "secrets", &ns.name, &user));
    assert!(
        !can_i("list", "nomadjobs", &other, &user),
        "watchNamespaces: no access elsewhere"
    );
    assert!(!can_i("delete", "nomadjobs", &ns.name, &user));
    assert!(!can_i("update", "nomadjobs", &ns.name, &user));
    assert!(!can_i("create", "pods", &ns.name, &user));
    assert!(!can_i("delete", "leases", &ns.name, &user));
    assert!(is_forbidden(
        Api::<Secret>::namespaced(as_operator.clone(), &other)
            .get("not-yours")
            .await
    ));
    assert!(is_forbidden(
        Api::<Secret>::namespaced(as_operator.clone(), &ns.name)
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<NomadJob>::namespaced(as_operator.clone(), &other)
            .list(&ListParams::default())
            .await
    ));
    assert!(is_forbidden(
        Api::<NomadJob>::all(as_operator.clone())
            .list(&ListParams::default())
            .await
    ));
    drop(server);
}

/// `variablesFrom.enabled`: the operator reads the ConfigMaps and Secrets its objects
/// name in the watched namespace, as the chart's ServiceAccount, and still nothing
/// elsewhere.
#[tokio::test]
async fn variables_from_works_with_the_charts_opt_in_and_nowhere_else() {
    nomad_operator::telemetry::init(nomad_operator::telemetry::LogFormat::Text);
    let ns = TestNamespace::new("rbac-vars").await;
    let release = format!("rbac-vars-{}", unique_suffix());
    helm::install(
        &plane().kubeconfig,
        &ns.name,
        &release,
        &json!({"watchNamespaces": [ns.name], "variablesFrom": {"enabled": true}}),
    );
    let (user, as_operator) = service_account(&ns.name, &format!("{release}-nomad-operator")).await;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("credentials".into()),
            ..Default::default()
        },
        string_data: Some(
            [
                ("seconds".to_string(), "3600".to_string()),
                ("password".to_string(), "hush".to_string()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let (_sim, server) = support::fixtures::start_simulator(None).await;
    let (_ctx, stop_tx, operator) =
        start_operator(&as_operator, &ns.name, &server.url(), &["--variables-from"]);

    let api: Api<NomadJob> = ns.api();
    let body = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": "web"},
        "spec": {"hcl": service_hcl(Backend::Sim), "variablesFrom": [{"secretRef": {"name": "credentials"}}]}
    });
    api.patch(
        "web",
        &PatchParams::apply("rbac-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply NomadJob");
    wait_until_ok("Ready with the Secret's values", || async {
        let obj = api.get("web").await.expect("get");
        if condition(&obj, "Ready").is_some_and(|c| c.status == "True") {
            Ok(obj)
        } else {
            Err(format!("; status: {:#?}", obj.status))
        }
    })
    .await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;

    for verb in ["get", "list", "watch"] {
        assert!(can_i(verb, "secrets", &ns.name, &user), "{verb} secrets");
        assert!(
            can_i(verb, "configmaps", &ns.name, &user),
            "{verb} configmaps"
        );
        assert!(
            !can_i(verb, "secrets", "default", &user),
            "{verb} elsewhere"
        );
    }
    for verb in ["create", "update", "patch", "delete"] {
        assert!(!can_i(verb, "secrets", &ns.name, &user), "{verb} secrets");
        assert!(
            !can_i(verb, "configmaps", &ns.name, &user),
            "{verb} configmaps"
        );
    }
    drop(server);
}

/// A Secret `name` in `namespace` holding `token` under `token`.
async fn token_secret(client: &Client, namespace: &str, name: &str, token: &str) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        string_data: Some([("token".to_string(), token.to_string())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

/// Waits until NomadJob `name` has condition `Ready` with `status` and `reason`.
async fn wait_ready(api: &Api<NomadJob>, name: &str, status: &str, reason: &str) -> NomadJob {
    wait_until_ok(&format!("{name}: Ready={status} ({reason})"), || async {
        let obj = api.get(name).await.expect("get");
        if condition(&obj, "Ready").is_some_and(|c| c.status == status && c.reason == reason) {
            Ok(obj)
        } else {
            Err(format!("; status: {:#?}", obj.status))
        }
    })
    .await
}

#[tokio::test]
async fn connections_read_only_the_secrets_the_chart_allows() {
    nomad_operator::telemetry::init(nomad_operator::telemetry::LogFormat::Text);
    let release_ns = TestNamespace::new("rbac-conn").await;
    let tenant = TestNamespace::new("rbac-tenant").await;
    let release = format!("rbac-conn-{}", unique_suffix());
    helm::install(
        &plane().kubeconfig,
        &release_ns.name,
        &release,
        &json!({"watchNamespaces": [tenant.name], "connections": {"defaultConnection": false}}),
    );
    let (user, as_operator) =
        service_account(&release_ns.name, &format!("{release}-nomad-operator")).await;
    let (_sim, server) = support::fixtures::start_simulator(Some("team-token")).await;
    token_secret(&release_ns.client, &release_ns.name, "shared", "team-token").await;
    token_secret(&release_ns.client, &tenant.name, "own", "team-token").await;
    let name = format!("shared-{}", unique_suffix());
    let cluster: Api<nomad_operator::crd::ClusterNomadConnection> =
        Api::all(release_ns.client.clone());
    cluster
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "ClusterNomadConnection",
                "metadata": {"name": name},
                "spec": {"address": server.url(), "namespaces": ["default"],
                         "tokenSecretRef": {"name": "shared"}, "namespaceSelector": {}}
            }))
            .expect("ClusterNomadConnection"),
        )
        .await
        .expect("create ClusterNomadConnection");
    let own: Api<nomad_operator::crd::NomadConnection> =
        Api::namespaced(release_ns.client.clone(), &tenant.name);
    own.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadConnection",
            "metadata": {"name": "own"},
            "spec": {"address": server.url(), "namespaces": ["default"],
                     "tokenSecretRef": {"name": "own"}}
        }))
        .expect("NomadConnection"),
    )
    .await
    .expect("create NomadConnection");
    let (_ctx, stop_tx, operator) = start_operator(
        &as_operator,
        &tenant.name,
        &server.url(),
        &[
            "--no-default-connection",
            "--connection-secrets-namespace",
            &release_ns.name,
        ],
    );
    let api: Api<NomadJob> = Api::namespaced(release_ns.client.clone(), &tenant.name);
    for (job, via) in [
        (
            "shared",
            json!({"kind": "ClusterNomadConnection", "name": name}),
        ),
        ("own", json!({"name": "own"})),
    ] {
        let mut spec = service_job(Backend::Sim, 1, "/bin/sleep", &["3600"], false);
        spec["ID"] = json!(job);
        let body = json!({
            "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": job},
            "spec": {"job": spec, "connectionRef": via}
        });
        api.patch(
            job,
            &PatchParams::apply("rbac-test").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("apply NomadJob");
    }
    // The cluster connection's Secret is in the operator's namespace: readable.
    wait_ready(&api, "shared", "True", "Succeeded").await;
    // A tenant's Secret is not, without connections.readTenantSecrets.
    let refused = wait_ready(&api, "own", "False", "ConnectionInvalid").await;
    let message = condition(&refused, "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("readTenantSecrets"), "{message}");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;

    assert!(can_i("get", "secrets", &release_ns.name, &user));
    assert!(!can_i("get", "secrets", &tenant.name, &user));
    assert!(!can_i("list", "secrets", &release_ns.name, &user));
    assert!(can_i("get", "nomadconnections", &tenant.name, &user));
    assert!(can_i("get", "clusternomadconnections", "", &user));
    drop(server);
}
