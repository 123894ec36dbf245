//! Tenancy end to end: teams reach Nomad through their own connections, with their own
//! tokens and Nomad namespaces, on a real Nomad agent with ACLs enabled; a rotated token
//! is used by the next call; and two Nomad clusters (simulated) serve jobs side by side,
//! one of them down leaving the other's objects Ready.

mod support;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use nomad_operator::crd::NomadJob;
use serde_json::{Value, json};
use support::envtest::TestNamespace;
use support::fixtures::start_simulator;
use support::nomad_agent::acl_agent;
use support::operator::{Backend, Harness, condition, ready, ready_message};

/// A service job of one `/bin/sleep SECONDS` task in Nomad namespace `namespace`.
fn job_in(namespace: &str, seconds: &str) -> Value {
    let mut job = support::fixtures::service_job(Backend::Real, 1, "/bin/sleep", &[seconds], false);
    job["Namespace"] = json!(namespace);
    job
}

/// Creates or replaces Secret `name` in `namespace` with `token` under key `token`.
async fn token_secret(ns: &TestNamespace, namespace: &str, name: &str, token: &str) {
    let api: Api<Secret> = Api::namespaced(ns.client.clone(), namespace);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"token": token}
    });
    api.patch(
        name,
        &PatchParams::apply("tenancy-test").force(),
        &Patch::Apply(&secret),
    )
    .await
    .expect("apply Secret");
}

/// Applies a NomadConnection `name` in `namespace` to `address`, allowing `allowed`,
/// with the token in Secret `secret`.
async fn connection(
    ns: &TestNamespace,
    namespace: &str,
    name: &str,
    address: &str,
    allowed: &[&str],
    secret: &str,
) {
    let api: Api<nomad_operator::crd::NomadConnection> =
        Api::namespaced(ns.client.clone(), namespace);
    let body = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadConnection",
        "metadata": {"name": name},
        "spec": {"address": address, "namespaces": allowed, "tokenSecretRef": {"name": secret}}
    });
    api.patch(
        name,
        &PatchParams::apply("tenancy-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply NomadConnection");
}

/// Applies NomadJob `name` in `namespace` with `spec`.
async fn apply_in(ns: &TestNamespace, namespace: &str, name: &str, spec: Value) {
    let api: Api<NomadJob> = Api::namespaced(ns.client.clone(), namespace);
    let body = json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": name}, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply("tenancy-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply NomadJob");
}

/// Waits until NomadJob `name` in `namespace` satisfies `check`.
async fn wait_in(
    ns: &TestNamespace,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&NomadJob) -> bool,
) -> NomadJob {
    let api: Api<NomadJob> = Api::namespaced(ns.client.clone(), namespace);
    support::operator::wait_until_ok(&format!("{namespace}/{name}: {what}"), || async {
        match api.get_opt(name).await.expect("get") {
            Some(obj) if check(&obj) => Ok(obj),
            Some(obj) => Err(format!("; last status: {:#?}", obj.status)),
            None => Err("; no object".into()),
        }
    })
    .await
}

fn stalled_with(reason: &str) -> impl Fn(&NomadJob) -> bool + '_ {
    move |o| condition(o, "Stalled").is_some_and(|c| c.status == "True" && c.reason == reason)
}

/// Requests the proxy saw whose path mentions `id`.
fn calls_about(h: &Harness, id: &str) -> Vec<(String, String)> {
    h.requests()
        .into_iter()
        .filter(|(_, path)| path.contains(id))
        .collect()
}

#[tokio::test]
async fn teams_reach_only_their_own_nomad_namespaces_with_their_own_tokens() {
    let log = support::log_capture::capture();
    let nomad = acl_agent();
    let suffix = support::envtest::unique_suffix();
    let (ns_a, ns_b) = (format!("team-a-{suffix}"), format!("team-b-{suffix}"));
    nomad.namespace_with_policy(&ns_a).await;
    nomad.namespace_with_policy(&ns_b).await;
    let (accessor_a, token_a) = nomad.token(&ns_a).await;
    let (_, token_b) = nomad.token(&ns_b).await;

    // Team B's Kubernetes namespace, watched too.
    let team_b = TestNamespace::new("team-b").await;
    let h = Harness::start_behind_proxy(
        "team-a",
        &nomad.addr,
        &ns_a,
        &["--no-default-connection", "--namespace", &team_b.name],
    )
    .await;
    let team_a = &h.ns;
    let address = h.nomad_url();
    token_secret(team_a, &team_a.name, "nomad-token", &token_a).await;
    connection(
        team_a,
        &team_a.name,
        "nomad",
        &address,
        &[&ns_a],
        "nomad-token",
    )
    .await;
    token_secret(team_a, &team_b.name, "nomad-token", &token_b).await;
    connection(
        team_a,
        &team_b.name,
        "nomad",
        &address,
        &[&ns_b],
        "nomad-token",
    )
    .await;

    let via = json!({"name": "nomad"});
    apply_in(
        team_a,
        &team_a.name,
        "web",
        json!({"job": job_in(&ns_a, "3600"), "connectionRef": via}),
    )
    .await;
    apply_in(
        team_a,
        &team_b.name,
        "web",
        json!({"job": job_in(&ns_b, "3600"), "connectionRef": via}),
    )
    .await;
    let a = wait_in(team_a, &team_a.name, "web", "Ready", ready).await;
    wait_in(team_a, &team_b.name, "web", "Ready", ready).await;
    let status = a.status.clone().unwrap_or_default();
    let recorded = status.connection.clone().expect("status.connection");
    assert_eq!(
        (
            recorded.kind.as_str(),
            recorded.name.as_str(),
            recorded.address.as_str()
        ),
        ("NomadConnection", "nomad", address.as_str())
    );
    assert_eq!(status.job_namespace.as_deref(), Some(ns_a.as_str()));
    let table = support::envtest::kubectl(&["get", "nj", "web", "-n", &team_a.name]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("CONNECTION") && table.contains("nomad"),
        "kubectl get nj shows the connection:\n{table}"
    );

    // Team A pointing a job at team B's Nomad namespace: refused before any Nomad call.
    apply_in(
        team_a,
        &team_a.name,
        "sneaky",
        json!({"job": job_in(&ns_b, "3600"), "connectionRef": via}),
    )
    .await;
    let denied = wait_in(
        team_a,
        &team_a.name,
        "sneaky",
        "PolicyDenied",
        stalled_with("PolicyDenied"),
    )
    .await;
    let message = ready_message(&denied);
    assert!(
        message.contains(&ns_b) && message.contains("not one"),
        "{message}"
    );
    assert_eq!(calls_about(&h, "sneaky"), Vec::<(String, String)>::new());
    let note = h.wait_event("sneaky", "PolicyDenied").await;
    assert!(!note.contains(&token_a) && !note.contains(&token_b));

    // A connection that does not exist: a clear condition, no Nomad call.
    apply_in(
        team_a,
        &team_a.name,
        "lost",
        json!({"job": job_in(&ns_a, "3600"), "connectionRef": {"name": "nope"}}),
    )
    .await;
    wait_in(
        team_a,
        &team_a.name,
        "lost",
        "ConnectionNotFound",
        stalled_with("ConnectionNotFound"),
    )
    .await;
    assert!(calls_about(&h, "lost").is_empty());

    // Rotation: a new token in the Secret, the old one revoked; the next change goes
    // through with the new one (the old one would be refused).
    let (_, token_a2) = nomad.token(&ns_a).await;
    token_secret(team_a, &team_a.name, "nomad-token", &token_a2).await;
    nomad.revoke(&accessor_a).await;
    apply_in(
        team_a,
        &team_a.name,
        "web",
        json!({"job": job_in(&ns_a, "3601"), "connectionRef": via}),
    )
    .await;
    let rotated = wait_in(
        team_a,
        &team_a.name,
        "web",
        "Ready with the new token",
        ready,
    )
    .await;
    assert!(
        rotated.metadata.generation >= Some(2),
        "the change was applied: {:#?}",
        rotated.status
    );
    let version = rotated.status.unwrap_or_default().job_version;
    assert_eq!(version, Some(1), "the new spec is version 1");

    // No token, status, Event or log line shows a token.
    for name in ["web", "sneaky", "lost"] {
        for (_, note) in h.events(name).await {
            for token in [&token_a, &token_a2, &token_b] {
                assert!(!note.contains(token.as_str()), "{note}");
            }
        }
    }
    let status =
        serde_json::to_string(&h.api().get("web").await.expect("get").status).unwrap_or_default();
    assert!(!status.contains(&token_a2));
    let logged = log.text();
    assert!(
        logged.contains("connection (re)built"),
        "the log is captured"
    );
    for token in [&token_a, &token_a2, &token_b] {
        assert!(!logged.contains(token.as_str()), "a token reached the log");
    }
}

#[tokio::test]
async fn a_cluster_connection_serves_only_the_namespaces_it_selects() {
    // The operator's own namespace holds the Secrets of cluster-wide connections.
    let operator_ns = TestNamespace::new("operator").await;
    let other = TestNamespace::new("not-selected").await;
    let h = Harness::start_on(
        Backend::Sim,
        "cluster-conn",
        &[
            "--no-default-connection",
            "--connection-secrets-namespace",
            &operator_ns.name,
            "--namespace",
            &other.name,
        ],
    )
    .await;
    token_secret(
        &h.ns,
        &operator_ns.name,
        "shared-token",
        support::operator::TOKEN,
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(h.ns.client.clone());
    namespaces
        .patch(
            &h.ns.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"nomad-team": "a"}}})),
        )
        .await
        .expect("label namespace");
    let connections: Api<nomad_operator::crd::ClusterNomadConnection> =
        Api::all(h.ns.client.clone());
    let name = format!("shared-{}", support::envtest::unique_suffix());
    connections
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "nomadoperator.dev/v1alpha1", "kind": "ClusterNomadConnection",
                "metadata": {"name": name},
                "spec": {
                    "address": h.nomad_url(), "namespaces": ["default"],
                    "tokenSecretRef": {"name": "shared-token"},
                    "namespaceSelector": {"matchLabels": {"nomad-team": "a"}}
                }
            }))
            .expect("ClusterNomadConnection"),
        )
        .await
        .expect("create ClusterNomadConnection");
    let via = json!({"kind": "ClusterNomadConnection", "name": name});
    let job = |id: &str| {
        let mut job = h.service_job(1, "/bin/sleep", &["3600"], false);
        job["ID"] = json!(id);
        job
    };
    h.apply(
        "selected",
        json!({"job": job("selected"), "connectionRef": via}),
    )
    .await;
    let obj = h.wait_for("selected", "Ready", ready).await;
    assert_eq!(
        obj.status.and_then(|s| s.connection).map(|c| c.kind),
        Some("ClusterNomadConnection".to_string())
    );

    // A namespace the selector does not select: refused, no Nomad call.
    apply_in(
        &h.ns,
        &other.name,
        "elsewhere",
        json!({"job": job("elsewhere"), "connectionRef": via}),
    )
    .await;
    let denied = wait_in(
        &h.ns,
        &other.name,
        "elsewhere",
        "PolicyDenied",
        stalled_with("PolicyDenied"),
    )
    .await;
    assert!(ready_message(&denied).contains("namespaceSelector"));
    assert!(calls_about(&h, "elsewhere").is_empty());
}

#[tokio::test]
async fn two_nomad_clusters_side_by_side_and_one_down_leaves_the_other_ready() {
    let h = Harness::start_on(Backend::Sim, "two-clusters", &["--no-default-connection"]).await;
    let (second, server) = start_simulator(Some("second-token")).await;
    token_secret(&h.ns, &h.ns.name, "first", support::operator::TOKEN).await;
    token_secret(&h.ns, &h.ns.name, "second", "second-token").await;
    connection(
        &h.ns,
        &h.ns.name,
        "first",
        &h.nomad_url(),
        &["default"],
        "first",
    )
    .await;
    connection(
        &h.ns,
        &h.ns.name,
        "second",
        &server.url(),
        &["default"],
        "second",
    )
    .await;
    for (name, via) in [("one", "first"), ("two", "second")] {
        h.apply(
            name,
            json!({"job": h.service_job(1, "/bin/sleep", &["3600"], false), "connectionRef": {"name": via}}),
        )
        .await;
    }
    h.wait_for("one", "Ready", ready).await;
    h.wait_for("two", "Ready", ready).await;
    let on_second: Vec<String> = second.requests().into_iter().map(|r| r.path).collect();
    assert!(on_second.iter().any(|p| p == "/v1/job/two"));
    assert!(
        !on_second.iter().any(|p| p.contains("/v1/job/one")),
        "{on_second:?}"
    );
    assert!(!h.requests().iter().any(|(_, p)| p.contains("/v1/job/two")));
    // Each cluster is watched: its lists are read with namespace=* (deployments only
    // from Nomad 1.2.4 on, the simulator's 1.1.2 lists no namespace "*").
    assert!(
        ["/v1/jobs", "/v1/allocations"].iter().all(|list| second
            .requests()
            .iter()
            .any(|r| r.path == *list && r.query.contains("index="))),
        "the second cluster's jobs and allocations are watched"
    );

    // The second cluster goes down; the first one's objects keep reconciling.
    drop(server);
    h.apply(
        "two",
        json!({"job": h.service_job(1, "/bin/sleep", &["3601"], false), "connectionRef": {"name": "second"}}),
    )
    .await;
    h.apply(
        "one",
        json!({"job": h.service_job(1, "/bin/sleep", &["3601"], false), "connectionRef": {"name": "first"}}),
    )
    .await;
    let one = h.wait_for("one", "Ready after a change", ready).await;
    assert_eq!(one.status.and_then(|s| s.job_version), Some(1));
    h.wait_condition("two", "Reconciling", "True", Some("NomadUnavailable"))
        .await;
}
