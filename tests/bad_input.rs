//! The bad-input corpus (`tests/bad-input/*.yaml`): every manifest gets its named
//! condition and at most one Event per reason, nothing reaches Nomad that should not, the
//! object's status stays small, and a healthy object next to them keeps reconciling. Each
//! manifest says what it expects in the annotation `test.nomadoperator.dev/expect`:
//!
//! - `InvalidSpec`, `ConnectionNotFound`: `Stalled` with that reason and no Nomad call
//!   for its job;
//! - `NomadRejected`: `Stalled` with that reason (Nomad was asked and said no);
//! - `UnknownFields`: the `SpecWarning` condition, the job still runs;
//! - `Rejected`: the API server refuses the manifest (kubectl, Helm and Argo CD show
//!   its message).
//!
//! Runs on the simulator and on the run's real Nomad agent.

mod support;

use std::path::PathBuf;

use kube::api::{Patch, PatchParams};
use nomad_operator::crd::NomadJob;
use serde_json::{Value, json};
use support::operator::{Backend, Harness, condition, ready};
use support::scenarios;

scenarios! {
    both: [every_bad_manifest_gets_its_condition_and_the_rest_keeps_working],
    simulator_only: [],
}

/// The annotation naming what a manifest expects.
const EXPECT: &str = "test.nomadoperator.dev/expect";
/// The largest status a bad manifest may leave (bytes of JSON).
const MAX_STATUS_BYTES: usize = 8 * 1024;

/// The corpus: (file name, manifest).
fn corpus() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read tests/bad-input")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read manifest");
            let value: Value = serde_saphyr::from_str(&text).expect("parse manifest");
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, value)
        })
        .collect()
}

fn expectation(manifest: &Value) -> String {
    manifest["metadata"]["annotations"][EXPECT]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether `obj` shows what `expect` names.
fn shows(obj: &NomadJob, expect: &str) -> bool {
    match expect {
        "UnknownFields" => condition(obj, "SpecWarning")
            .is_some_and(|c| c.status == "True" && c.reason == "UnknownFields"),
        reason => {
            condition(obj, "Stalled").is_some_and(|c| c.status == "True" && c.reason == reason)
        }
    }
}

async fn every_bad_manifest_gets_its_condition_and_the_rest_keeps_working(backend: Backend) {
    let h = Harness::start_on(backend, "bad-input", &[]).await;
    let healthy = |seconds: &str| json!({"job": h.service_job(1, "/bin/sleep", &[seconds], false)});
    h.apply_ready("healthy", healthy("3600")).await;
    let corpus = corpus();
    assert!(
        corpus.len() >= 25,
        "the corpus has {} manifests",
        corpus.len()
    );

    let params = PatchParams::apply("bad-input-test").force();
    let mut applied = Vec::new();
    for (file, manifest) in &corpus {
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let expect = expectation(manifest);
        let answer = h.api().patch(&name, &params, &Patch::Apply(manifest)).await;
        match (expect.as_str(), answer) {
            // Server-side apply of kube-apiserver 1.20 answers a type mismatch with a 500
            // that names the field (`.spec.job: expected map`); the rest are 422s.
            ("Rejected", Err(kube::Error::Api(status))) => {
                assert!(
                    status.code >= 400 && status.message.contains("spec"),
                    "{file}: {status:?}"
                );
            }
            ("Rejected", Ok(_)) => panic!("{file}: the API server took it"),
            (_, Ok(_)) => applied.push((file.clone(), name, expect)),
            (_, Err(e)) => panic!("{file}: the API server refused it: {e}"),
        }
    }

    for (file, name, expect) in &applied {
        let obj = h
            .wait_for(name, &format!("{file}: {expect}"), |o| shows(o, expect))
            .await;
        let status = serde_json::to_string(&obj.status).unwrap_or_default();
        assert!(
            status.len() <= MAX_STATUS_BYTES,
            "{file}: the status is {} bytes",
            status.len()
        );
    }

    // Let every object be reconciled again (two resyncs of the healthy one), and change
    // the healthy one: it still converges, next to all of them.
    let plans = h.count("POST", "/v1/job/healthy/plan");
    h.wait_requests("POST", "/v1/job/healthy/plan", plans + 2)
        .await;
    h.apply("healthy", healthy("3601")).await;
    let obj = h.wait_for("healthy", "Ready after a change", ready).await;
    assert_eq!(obj.status.and_then(|s| s.job_version), Some(1));

    for (file, name, expect) in &applied {
        let events = h.events(name).await;
        for (reason, note) in &events {
            assert!(
                note.len() <= 1024,
                "{file}: an Event note of {} bytes",
                note.len()
            );
            let same = events.iter().filter(|(r, _)| r == reason).count();
            assert!(same <= 1, "{file}: {same} {reason} Events: {events:?}");
        }
        assert!(
            events.iter().any(|(reason, _)| reason == expect),
            "{file}: no {expect} Event: {events:?}"
        );
        if matches!(expect.as_str(), "InvalidSpec" | "ConnectionNotFound") {
            let id = format!("/v1/job/{name}");
            let calls: Vec<_> = h
                .requests()
                .into_iter()
                .filter(|(_, path)| path.starts_with(&id))
                .collect();
            assert!(calls.is_empty(), "{file}: Nomad was called: {calls:?}");
        }
    }
}
