//! The Helm chart and `deploy/`: the chart's CRD is the generated one, the chart lints and
//! installs with real Helm into a real apiserver, the objects follow the values, and
//! `deploy/` is the chart rendered with defaults and applies.

#[path = "helm/helm.rs"]
mod helm;
mod support;

use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ListParams};
use serde_json::json;
use support::envtest::{
    TestNamespace, admin_client, create_namespace, kubectl, plane, unique_suffix,
};

#[test]
fn chart_crds_are_byte_identical_to_crds() {
    let root = helm::repo_root();
    for kind in nomad_operator::crdgen::Kind::ALL {
        let file = kind.file();
        let generated = std::fs::read(root.join("crds").join(file)).expect("read crds/");
        let in_chart = std::fs::read(root.join("charts/nomad-operator/crds").join(file))
            .expect("read chart CRD");
        assert!(
            generated == in_chart,
            "charts/nomad-operator/crds/{file} differs from crds/{file}: copy it (cp crds/{file} charts/nomad-operator/crds/)"
        );
    }
}

#[test]
fn chart_lints() {
    let chart = helm::chart_dir();
    helm::helm_tool(&["lint", &chart.to_string_lossy()]);
}

#[tokio::test]
async fn chart_installs_what_the_values_ask_for() {
    let ns = TestNamespace::new("chart-values").await;
    let watched_a = create_namespace(&ns.client, "chart-watch-a").await;
    let watched_b = create_namespace(&ns.client, "chart-watch-b").await;
    let release = format!("rel-{}", unique_suffix());
    let values = json!({
        "replicas": 3,
        "watchNamespaces": [watched_a, watched_b],
        "nomad": {
            "address": "https://nomad.internal:4646",
            "token": {"secretName": "nomad-acl", "key": "secret-id"},
            "caCert": {"kind": "ConfigMap", "name": "nomad-ca", "key": "ca.pem"},
        },
        "log": {"level": "debug", "format": "text"},
        "metrics": {"service": {"enabled": true}},
        "variablesFrom": {"enabled": true},
    });
    helm::install(&plane().kubeconfig, &ns.name, &release, &values);
    let fullname = format!("{release}-nomad-operator");

    let deployment: Deployment = ns
        .api::<Deployment>()
        .get(&fullname)
        .await
        .expect("Deployment");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(fullname.as_str()));
    let pod_security = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    let resources = container.resources.clone().expect("resources");
    assert!(resources.requests.is_some() && resources.limits.is_some());
    let liveness = container
        .liveness_probe
        .clone()
        .and_then(|p| p.http_get)
        .expect("liveness httpGet");
    assert_eq!(liveness.path.as_deref(), Some("/healthz"));
    let readiness = container
        .readiness_probe
        .clone()
        .and_then(|p| p.http_get)
        .expect("readiness httpGet");
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));

    let env = container.env.clone().unwrap_or_default();
    let var = |name: &str| env.iter().find(|e| e.name == name).cloned();
    let token = var("NOMAD_TOKEN")
        .and_then(|e| e.value_from)
        .and_then(|v| v.secret_key_ref)
        .expect("NOMAD_TOKEN secretKeyRef");
    assert_eq!(token.name, "nomad-acl");
    assert_eq!(token.key, "secret-id");
    assert!(
        var("NOMAD_TOKEN").and_then(|e| e.value).is_none(),
        "the token is never inlined"
    );
    assert_eq!(
        var("NOMAD_ADDR").and_then(|e| e.value).as_deref(),
        Some("https://nomad.internal:4646")
    );
    assert_eq!(
        var("NOMAD_CACERT").and_then(|e| e.value).as_deref(),
        Some("/etc/nomad-operator/ca/ca.pem")
    );
    assert_eq!(
        var("WATCH_NAMESPACES").and_then(|e| e.value),
        Some(format!("{watched_a},{watched_b}"))
    );
    assert_eq!(
        var("LEADER_ELECTION").and_then(|e| e.value).as_deref(),
        Some("true")
    );
    assert_eq!(
        var("RUST_LOG").and_then(|e| e.value).as_deref(),
        Some("debug")
    );
    assert_eq!(
        var("LOG_FORMAT").and_then(|e| e.value).as_deref(),
        Some("text")
    );
    assert_eq!(
        var("VARIABLES_FROM").and_then(|e| e.value).as_deref(),
        Some("true")
    );
    let volume = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "nomad-ca")
        .expect("CA volume");
    assert_eq!(
        volume.config_map.map(|c| c.name),
        Some("nomad-ca".to_string())
    );

    ns.api::<ServiceAccount>()
        .get(&fullname)
        .await
        .expect("ServiceAccount");
    ns.api::<Service>()
        .get(&format!("{fullname}-metrics"))
        .await
        .expect("metrics Service");

    // Namespaced RBAC in each watched namespace, and no ClusterRole but the CRD reader.
    for watched in [&watched_a, &watched_b] {
        let role: Role = Api::namespaced(ns.client.clone(), watched)
            .get(&fullname)
            .await
            .expect("Role in watched namespace");
        let rules = role.rules.unwrap_or_default();
        let resources: Vec<String> = rules
            .iter()
            .flat_map(|r| r.resources.clone().unwrap_or_default())
            .collect();
        assert!(resources.contains(&"nomadjobs".to_string()));
        assert!(
            !resources.iter().any(|r| r == "*"),
            "least privilege: {resources:?}"
        );
        // variablesFrom.enabled: ConfigMaps and Secrets may be read, never written.
        for source in ["configmaps", "secrets"] {
            let mut verbs: Vec<String> = rules
                .iter()
                .filter(|r| {
                    r.resources
                        .as_ref()
                        .is_some_and(|rs| rs.iter().any(|x| x == source))
                })
                .flat_map(|r| r.verbs.clone())
                .collect();
            verbs.sort();
            assert_eq!(verbs, ["get", "list", "watch"], "{source}");
        }
        let binding: RoleBinding = Api::namespaced(ns.client.clone(), watched)
            .get(&fullname)
            .await
            .expect("RoleBinding");
        let subject = &binding.subjects.unwrap_or_default()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            (fullname.as_str(), Some(ns.name.as_str()))
        );
    }
    let cluster_roles: Api<ClusterRole> = Api::all(ns.client.clone());
    assert!(
        cluster_roles
            .get_opt(&fullname)
            .await
            .expect("get ClusterRole")
            .is_none(),
        "watchNamespaces must not create a ClusterRole for NomadJobs"
    );
    // The cluster-wide grants left: get on the NomadJob CRD, which is cluster-scoped, and
    // get on ClusterNomadConnections and namespaces (their selectors' labels).
    assert_crd_role(&ns.client, &fullname, &ns.name).await;
    assert_connections_role(&ns.client, &fullname).await;
    let release_objects =
        ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let cluster_wide: Vec<String> = cluster_roles
        .list(&release_objects)
        .await
        .expect("list ClusterRoles")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    assert_eq!(
        cluster_wide,
        [format!("{fullname}-connections"), format!("{fullname}-crd")],
        "ClusterRoles"
    );
    let cluster_bindings: Vec<String> = Api::<ClusterRoleBinding>::all(ns.client.clone())
        .list(&release_objects)
        .await
        .expect("list ClusterRoleBindings")
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    assert_eq!(
        cluster_bindings,
        [format!("{fullname}-connections"), format!("{fullname}-crd")],
        "ClusterRoleBindings"
    );
    ns.api::<Role>()
        .get(&format!("{fullname}-leader-election"))
        .await
        .expect("leader-election Role");
}

#[tokio::test]
async fn chart_defaults_watch_all_namespaces_with_a_cluster_role() {
    let ns = TestNamespace::new("chart-defaults").await;
    let release = format!("rel-{}", unique_suffix());
    helm::install(&plane().kubeconfig, &ns.name, &release, &json!({}));
    let fullname = format!("{release}-nomad-operator");
    let role: ClusterRole = Api::all(ns.client.clone())
        .get(&fullname)
        .await
        .expect("ClusterRole");
    let mut granted: Vec<String> = Vec::new();
    for rule in role.rules.unwrap_or_default() {
        for resource in rule.resources.unwrap_or_default() {
            for verb in rule.verbs.iter() {
                granted.push(format!("{resource}:{verb}"));
            }
        }
    }
    granted.sort();
    granted.dedup();
    assert_eq!(
        granted,
        [
            "events:create",
            "events:patch",
            "nomadconnections:get",
            "nomaddispatches/status:patch",
            "nomaddispatches:get",
            "nomaddispatches:list",
            "nomaddispatches:watch",
            "nomadjobs/finalizers:patch",
            "nomadjobs/finalizers:update",
            "nomadjobs/status:patch",
            "nomadjobs:get",
            "nomadjobs:list",
            "nomadjobs:patch",
            "nomadjobs:watch",
        ]
    );
    assert_crd_role(&ns.client, &fullname, &ns.name).await;
    let deployment: Deployment = ns
        .api::<Deployment>()
        .get(&fullname)
        .await
        .expect("Deployment");
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(2));
    let service = ns
        .api::<Service>()
        .get_opt(&format!("{fullname}-metrics"))
        .await
        .expect("get");
    assert!(service.is_none(), "no metrics Service by default");
}

#[tokio::test]
async fn deploy_is_the_chart_rendered_with_defaults_and_applies() {
    let _client = admin_client().await;
    let out = tempdir();
    let status = Command::new(helm::repo_root().join("deploy/generate.sh"))
        .arg(&out)
        .env("ENVTEST_KUBECONFIG", &plane().kubeconfig)
        .status()
        .expect("run deploy/generate.sh");
    assert!(status.success(), "deploy/generate.sh failed");
    let deploy = helm::repo_root().join("deploy");
    for file in ["00-namespace.yaml", "01-crd.yaml", "02-operator.yaml"] {
        let fresh = std::fs::read_to_string(out.join(file)).expect("generated file");
        let checked_in = std::fs::read_to_string(deploy.join(file)).unwrap_or_default();
        assert!(
            fresh == checked_in,
            "deploy/{file} is stale or hand-edited: run deploy/generate.sh"
        );
    }

    // The namespace must exist for a server-side dry run of the namespaced objects.
    let created = kubectl(&[
        "apply",
        "-f",
        &deploy.join("00-namespace.yaml").to_string_lossy(),
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let dry = kubectl(&["apply", "--dry-run=server", "-f", &deploy.to_string_lossy()]);
    assert!(
        dry.status.success(),
        "kubectl apply --dry-run=server -f deploy/ failed: {}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let stdout = String::from_utf8_lossy(&dry.stdout);
    for kind in [
        "customresourcedefinition",
        "serviceaccount",
        "clusterrole",
        "deployment.apps/nomad-operator",
    ] {
        assert!(stdout.contains(kind), "{kind} missing from: {stdout}");
    }
}

/// The `<fullname>-crd` ClusterRole grants exactly one rule, `get` on the NomadJob CRD by
/// name, and its ClusterRoleBinding gives it to the release's ServiceAccount.
/// The `-connections` ClusterRole grants `get` on ClusterNomadConnections and namespaces,
/// and nothing else.
async fn assert_connections_role(client: &kube::Client, fullname: &str) {
    let role: ClusterRole = Api::all(client.clone())
        .get(&format!("{fullname}-connections"))
        .await
        .expect("the -connections ClusterRole");
    let mut granted: Vec<String> = Vec::new();
    for rule in role.rules.unwrap_or_default() {
        for resource in rule.resources.unwrap_or_default() {
            for verb in &rule.verbs {
                granted.push(format!("{resource}:{verb}"));
            }
        }
    }
    granted.sort();
    assert_eq!(granted, ["clusternomadconnections:get", "namespaces:get"]);
}

async fn assert_crd_role(client: &kube::Client, fullname: &str, namespace: &str) {
    let name = format!("{fullname}-crd");
    let role: ClusterRole = Api::all(client.clone())
        .get(&name)
        .await
        .expect("the -crd ClusterRole");
    let rules = role.rules.unwrap_or_default();
    assert_eq!(rules.len(), 1, "exactly one rule: {rules:?}");
    let rule = &rules[0];
    assert_eq!(
        rule.api_groups.as_deref(),
        Some(&["apiextensions.k8s.io".to_string()][..])
    );
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["customresourcedefinitions".to_string()][..])
    );
    assert_eq!(
        rule.resource_names.as_deref(),
        Some(&["nomadjobs.nomadoperator.dev".to_string()][..]),
        "only the NomadJob CRD"
    );
    assert_eq!(rule.verbs, ["get"], "only get");
    assert!(rule.non_resource_urls.is_none());
    assert!(role.aggregation_rule.is_none());
    let binding: ClusterRoleBinding = Api::all(client.clone())
        .get(&name)
        .await
        .expect("the -crd ClusterRoleBinding");
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("ClusterRole", name.as_str())
    );
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(
        (
            subjects[0].kind.as_str(),
            subjects[0].name.as_str(),
            subjects[0].namespace.as_deref()
        ),
        ("ServiceAccount", fullname, Some(namespace))
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("deploy-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
