//! The `NomadJob` API on a real kube-apiserver: the generated CRD, what the apiserver
//! accepts and rejects, the status subresource, and what `kubectl` shows.

mod support;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use nomad_operator::crd::{DeletionPolicy, DriftPolicy, NomadJob, NomadJobSpec, NomadJobStatus};
use serde_json::json;
use support::envtest::{TestNamespace, kubectl};

fn job_spec() -> NomadJobSpec {
    serde_json::from_value(json!({
        "job": {
            "Datacenters": ["dc1"],
            "TaskGroups": [{"Name": "web", "Count": 1,
                "Tasks": [{"Name": "server", "Driver": "raw_exec", "Config": {"command": "/bin/sleep", "args": ["3600"]}}]}]
        }
    }))
    .expect("spec")
}

#[test]
fn checked_in_crds_match_the_rust_types() {
    use nomad_operator::crdgen::{Kind, crd_yaml_of};
    for kind in Kind::ALL {
        let (file, flag) = (kind.file(), kind.flag());
        let generated = crd_yaml_of(kind).expect("generate CRD");
        let path = format!("{}/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let checked_in = std::fs::read_to_string(&path).expect("read crds/");
        assert!(
            generated == checked_in,
            "crds/{file} is stale: run `cargo run -- crd{flag} > crds/{file}`"
        );
    }
}

#[tokio::test]
async fn create_read_and_list_with_defaults_applied() {
    let ns = TestNamespace::new("crd-crud").await;
    let api: Api<NomadJob> = ns.api();
    api.create(&PostParams::default(), &NomadJob::new("web", job_spec()))
        .await
        .expect("create");

    let read = api.get("web").await.expect("read");
    // The apiserver fills in the documented defaults.
    assert!(read.spec.revert_on_failure);
    assert!(!read.spec.suspend);
    assert_eq!(read.spec.deletion_policy, DeletionPolicy::Deregister);
    assert_eq!(read.spec.drift_policy, DriftPolicy::Correct);
    assert_eq!(read.spec.job_id, None);
    assert_eq!(
        read.spec.job.as_ref().expect("job").fields().expect("job")["TaskGroups"][0]["Tasks"][0]["Config"]
            ["command"],
        "/bin/sleep"
    );

    let listed = api.list(&ListParams::default()).await.expect("list");
    let names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["web".to_string()]);
}

#[tokio::test]
async fn status_is_written_through_the_status_subresource_only() {
    let ns = TestNamespace::new("crd-status").await;
    let api: Api<NomadJob> = ns.api();
    api.create(&PostParams::default(), &NomadJob::new("web", job_spec()))
        .await
        .expect("create");

    let status = NomadJobStatus {
        observed_generation: Some(1),
        job_id: Some("web".into()),
        job_version: Some(3),
        job_status: Some("running".into()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Succeeded".into(),
            message: "deployed".into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
            observed_generation: Some(1),
        }],
        ..Default::default()
    };
    let patch =
        json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "status": status});
    api.patch_status(
        "web",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&patch),
    )
    .await
    .expect("patch status");
    let read = api.get("web").await.expect("read");
    assert_eq!(read.status.as_ref().and_then(|s| s.job_version), Some(3));
    assert_eq!(
        read.metadata.generation,
        Some(1),
        "a status write must not bump the generation"
    );

    // A status sent to the main resource is ignored: status belongs to the subresource.
    let mut via_main = read.clone();
    via_main.status.as_mut().expect("status").job_version = Some(99);
    let replaced = api
        .replace("web", &PostParams::default(), &via_main)
        .await
        .expect("replace");
    assert_eq!(replaced.status.and_then(|s| s.job_version), Some(3));

    // kubectl get shows the printer columns from the status.
    let out = kubectl(&["get", "nj", "-n", &ns.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = text.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "JOB ID",
        "VERSION",
        "STATUS",
        "DEPLOYMENT",
        "READY",
        "AGE",
    ] {
        assert!(
            header.contains(column),
            "missing column {column} in {header:?}"
        );
    }
    let row = text.lines().nth(1).unwrap_or_default();
    let cells: Vec<_> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        &["web", "web", "3", "running", "True"],
        "row: {row:?}"
    );
}

async fn create_raw(ns: &TestNamespace, body: serde_json::Value) -> Result<(), String> {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<NomadJob>(&()),
    );
    let object: kube::api::DynamicObject =
        serde_json::from_value(body).map_err(|e| e.to_string())?;
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn manifest(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn the_apiserver_rejects_invalid_objects_with_clear_messages() {
    let ns = TestNamespace::new("crd-invalid").await;
    let cases = [
        (
            "no-job",
            json!({"suspend": true}),
            "spec.job: Required value",
        ),
        (
            "job-and-hcl",
            json!({"job": {}, "hcl": "job \"x\" {}"}),
            "\"spec\" must validate one and only one schema (oneOf)",
        ),
        (
            "job-string",
            json!({"job": "web"}),
            "spec.job: Invalid value: \"string\"",
        ),
        (
            "job-list",
            json!({"job": [1, 2]}),
            "spec.job: Invalid value: \"array\"",
        ),
        (
            "bad-policy",
            json!({"job": {}, "deletionPolicy": "Explode"}),
            "spec.deletionPolicy: Unsupported value: \"Explode\"",
        ),
        (
            "bad-id",
            json!({"job": {}, "jobID": "has space"}),
            "spec.jobID: Invalid value: \"has space\"",
        ),
        (
            "bad-suspend",
            json!({"job": {}, "suspend": "yes"}),
            "spec.suspend: Invalid value: \"string\"",
        ),
    ];
    for (name, spec, expected) in cases {
        let err = create_raw(&ns, manifest(name, spec)).await.expect_err(name);
        assert!(
            err.contains(expected),
            "{name}: expected {expected:?} in {err:?}"
        );
    }
    // A well-formed one is accepted, with unknown job fields preserved as they are.
    create_raw(
        &ns,
        manifest(
            "ok",
            json!({"job": {"Anything": {"Nested": [1]}}, "jobID": "ok-1"}),
        ),
    )
    .await
    .expect("valid object");
    let read = ns.api::<NomadJob>().get("ok").await.expect("read");
    assert_eq!(
        read.spec.job.as_ref().expect("job").fields().expect("job")["Anything"],
        json!({"Nested": [1]})
    );
}

/// Runs `kubectl explain` until the apiserver has published the CRD's OpenAPI schema
/// (it does so asynchronously after the CRD is established).
async fn explain(field: &str) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        let out = kubectl(&["explain", field]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("`kubectl explain {field}` kept failing: {last}");
}

#[tokio::test]
async fn kubectl_explain_documents_the_fields() {
    let _ns = TestNamespace::new("crd-explain").await;
    let text = explain("nomadjob.spec").await;
    for needle in [
        "job",
        "jobID",
        "revertOnFailure",
        "suspend",
        "deletionPolicy",
        "driftPolicy",
        "Nomad's JSON API form",
    ] {
        assert!(
            text.contains(needle),
            "`kubectl explain nomadjob.spec` lacks {needle:?}:\n{text}"
        );
    }
    let text = explain("nomadjob.status.lastRevert").await;
    assert!(
        text.contains("fromVersion") && text.contains("toVersion"),
        "{text}"
    );
}
