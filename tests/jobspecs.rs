//! Writing jobs the way Nomad users do, end to end: HCL jobspecs with variables from
//! `spec.variables`, ConfigMaps and Secrets; parse errors with their line; typo warnings
//! for the JSON form; `nomad-operator convert` of the examples; and the `plan` preview.
//! Each scenario runs on the simulator and on the run's real Nomad agent.

mod support;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::fixtures::service_hcl;
use support::log_capture;
use support::operator::{Backend, Harness, TOKEN, condition, ready, ready_message, wait_until};
use support::scenarios;
use tokio::process::Command;

const WEB: &str = "/v1/job/web";
const PARSE: &str = "/v1/jobs/parse";
const PLAN: &str = "/v1/job/web/plan";

/// A Secret value with characters HCL and JSON must escape.
const SECRET: &str = "pw-\"quoted\"-${not-a-reference}-7c1e";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_nomad-operator")
}

async fn apply_config_map(h: &Harness, name: &str, data: Value) {
    let api: Api<ConfigMap> = Api::namespaced(h.ns.client.clone(), &h.ns.name);
    let body =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data});
    api.patch(
        name,
        &PatchParams::apply("test-user").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply ConfigMap");
}

async fn apply_secret(h: &Harness, name: &str, data: Value) {
    let api: Api<Secret> = Api::namespaced(h.ns.client.clone(), &h.ns.name);
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    api.patch(
        name,
        &PatchParams::apply("test-user").force(),
        &Patch::Apply(&body),
    )
    .await
    .expect("apply Secret");
}

/// Every Event of the test's namespace, as text.
async fn all_events(h: &Harness) -> String {
    let api: Api<Event> = Api::namespaced(h.ns.client.clone(), &h.ns.name);
    let events = api.list(&ListParams::default()).await.expect("events");
    serde_json::to_string(&events.items).expect("json")
}

fn version(obj: &nomad_operator::crd::NomadJob) -> Option<u64> {
    obj.status.as_ref().and_then(|s| s.job_version)
}

async fn hcl_with_variables_from_a_config_map_and_a_secret_becomes_ready(backend: Backend) {
    let log = log_capture::capture();
    let h = Harness::start_on(backend, "hcl-vars", &["--variables-from"]).await;
    apply_config_map(&h, "settings", json!({"seconds": "1000000", "unused": "x"})).await;
    apply_secret(&h, "credentials", json!({"password": SECRET})).await;
    let spec = json!({
        "hcl": service_hcl(backend),
        "variables": {"count": "2"},
        "variablesFrom": [
            {"configMapRef": {"name": "settings"}},
            {"secretRef": {"name": "credentials"}}
        ]
    });
    h.apply("web", spec.clone()).await;
    h.wait_for("web", "Ready", ready).await;

    // Nomad runs the values; the Secret's value is in the Nomad job, where it must be.
    let job = h.nomad_job("web").await.expect("job in Nomad");
    assert_eq!(job["TaskGroups"][0]["Count"], 2);
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Config"]["args"], json!(["1000000"]));
    assert_eq!(task["Env"]["DB_PASSWORD"], SECRET);
    assert_eq!(h.count("POST", WEB), 1, "one register");
    assert_eq!(h.count("POST", PARSE), 1, "one parse");

    // At rest: resyncs plan, but neither parse nor register.
    let plans = h.count("POST", PLAN);
    h.wait_requests("POST", PLAN, plans + 2).await;
    assert_eq!(h.count("POST", PARSE), 1, "resyncs do not parse again");
    assert_eq!(h.count("POST", WEB), 1, "resyncs do not register");

    // Editing the ConfigMap is a change of the spec: parsed, planned and registered once.
    apply_config_map(&h, "settings", json!({"seconds": "1000001", "unused": "x"})).await;
    h.wait_for("web", "version 1 ready", |o| {
        ready(o) && version(o) == Some(1)
    })
    .await;
    let job = h.nomad_job("web").await.expect("job in Nomad");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["args"],
        json!(["1000001"])
    );
    assert_eq!(h.count("POST", WEB), 2, "the edit registers once");
    assert_eq!(h.count("POST", PARSE), 2, "the edit parses once");
    // Nothing else registers: not the unused key's presence, not resyncs.
    let plans = h.count("POST", PLAN);
    h.wait_requests("POST", PLAN, plans + 3).await;
    assert_eq!(h.count("POST", WEB), 2, "nothing else registers");
    assert_eq!(h.nomad_versions("web").await.len(), 2);

    // The Secret's value is nowhere the operator writes or logs.
    let obj = h.api().get("web").await.expect("get");
    let status = serde_json::to_string(&obj.status).expect("status");
    assert!(!status.contains("pw-"), "status: {status}");
    let events = all_events(&h).await;
    assert!(!events.contains("pw-"), "events: {events}");
    let logged = log.text();
    assert!(logged.contains("registered"), "the log was captured");
    for needle in ["pw-", "not-a-reference", "7c1e"] {
        assert!(!logged.contains(needle), "the log holds {needle:?}");
    }
    assert!(!logged.contains(TOKEN));
}

async fn a_parse_error_names_the_line_and_registers_nothing(backend: Backend) {
    let h = Harness::start_on(backend, "hcl-error", &[]).await;
    // A line Nomad does not know, below the variable blocks that get values: the line
    // number must still be the user's.
    let good = service_hcl(backend);
    let marker = "  type        = \"service\"\n";
    let bad = good.replacen(marker, &format!("{marker}  bogus       = 1\n"), 1);
    let line = bad
        .lines()
        .position(|l| l.trim_start().starts_with("bogus"))
        .map(|i| i + 1)
        .expect("bogus line");
    let values = json!({"seconds": "1000000", "password": "p"});
    h.apply("web", json!({"hcl": bad, "variables": values}))
        .await;
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("InvalidSpec"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains(&format!("input.hcl:{line},3")) && message.contains("bogus"),
        "line {line}: {message}"
    );
    let note = h.wait_event("web", "InvalidSpec").await;
    assert!(note.contains(&format!("input.hcl:{line},")), "{note}");

    // A variable without default or value is Nomad's own error.
    h.apply(
        "web",
        json!({"hcl": good, "variables": {"seconds": "1000000"}}),
    )
    .await;
    let obj = h
        .wait_for("web", "unset variable", |o| {
            condition(o, "Ready").is_some_and(|c| c.message.contains("Unset variable \"password\""))
        })
        .await;
    assert!(condition(&obj, "Stalled").is_some_and(|c| c.status == "True"));
    assert_eq!(h.count("POST", WEB), 0, "nothing registered");
    assert_eq!(h.count("POST", PLAN), 0, "nothing planned");

    h.apply_ready("web", json!({"hcl": good, "variables": values}))
        .await;
    assert_eq!(h.count("POST", WEB), 1);
}

/// `kubectl apply FILE` (with `--validate=false` when `validate` is false) into the
/// test's namespace; returns whether it succeeded and its stderr.
fn kubectl_apply_object(h: &Harness, name: &str, spec: &Value, validate: bool) -> (bool, String) {
    let body = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1",
        "kind": "NomadJob",
        "metadata": {"name": name},
        "spec": spec
    });
    let path = scratch(h).join(format!("{name}.json"));
    std::fs::write(&path, body.to_string()).expect("write manifest");
    let path = path.display().to_string();
    let mut args = vec!["apply", "-n", &h.ns.name, "-f", &path];
    if !validate {
        args.push("--validate=false");
    }
    let out = support::envtest::kubectl(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn typos_are_warnings_and_errors_when_strict(backend: Backend) {
    let h = Harness::start_on(backend, "typos", &[]).await;
    let mut job = h.service_job(1, "/bin/sleep", &["1000000"], false);
    job["Datacenter"] = json!(["dc1"]);
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMb"] = json!(64);
    let spec = json!({"job": job, "deletion_policy": "Orphan"});
    // kubectl checks the spec's fields against the schema the API server publishes,
    // which it publishes a while after the CRD is established (later under load).
    wait_until("the NomadJob schema published", || async {
        let out = support::envtest::kubectl(&["explain", "nomadjobs.spec"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("revertOnFailure")
    })
    .await;
    let (applied, stderr) = kubectl_apply_object(&h, "web", &spec, true);
    assert!(!applied, "kubectl refuses an unknown spec field");
    assert!(
        stderr.contains("unknown field \"deletion_policy\""),
        "{stderr}"
    );
    // Past that check, the API server prunes the field; the operator still finds it in
    // kubectl's last-applied record and says so.
    let (applied, stderr) = kubectl_apply_object(&h, "web", &spec, false);
    assert!(applied, "{stderr}");
    let obj = h.wait_for("web", "Ready", ready).await;
    let warning = condition(&obj, "SpecWarning")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .expect("SpecWarning");
    assert_eq!(
        (warning.0.as_str(), warning.1.as_str()),
        ("True", "UnknownFields")
    );
    for expected in [
        "spec.job: unknown key \"Datacenter\" (did you mean \"Datacenters\"?)",
        "spec.job.TaskGroups[0].Tasks[0].Resources: unknown key \"MemoryMb\" (did you mean \"MemoryMB\"?)",
        "spec: unknown field \"deletion_policy\" (did you mean \"deletionPolicy\"?)",
    ] {
        assert!(warning.2.contains(expected), "{expected} in {}", warning.2);
    }
    let note = h.wait_event("web", "UnknownFields").await;
    assert!(note.contains("Datacenter"), "{note}");

    // strict: the same keys are an error, and nothing is registered for it.
    let mut strict = spec.clone();
    strict["strict"] = json!(true);
    strict["job"]["Priority"] = json!(60);
    let (applied, stderr) = kubectl_apply_object(&h, "web", &strict, false);
    assert!(applied, "{stderr}");
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("InvalidSpec"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("spec.strict is true") && message.contains("Datacenter"),
        "{message}"
    );
    assert_eq!(h.count("POST", WEB), 1, "the strict spec is not registered");

    // Deleting while deletion_policy stands in for deletionPolicy leaves the job alone
    // until the field is fixed; then the policy the user meant applies.
    h.api()
        .delete("web", &Default::default())
        .await
        .expect("delete");
    let obj = h
        .wait_for("web", "deletion refused", |o| {
            condition(o, "Stalled").is_some_and(|c| c.message.contains("deletion_policy"))
        })
        .await;
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert!(h.nomad_job("web").await.is_some(), "job untouched");
    h.wait_event_with("web", "InvalidSpec", "deletion_policy")
        .await;
    let mut fixed = spec.clone();
    if let Some(fields) = fixed.as_object_mut() {
        fields.remove("deletion_policy");
    }
    fixed["deletionPolicy"] = json!("Orphan");
    let (applied, stderr) = kubectl_apply_object(&h, "web", &fixed, true);
    assert!(applied, "{stderr}");
    wait_until("the object is gone", || async {
        h.api().get_opt("web").await.ok().flatten().is_none()
    })
    .await;
    let job = h.nomad_job("web").await.expect("orphaned job");
    assert_ne!(job["Stop"], json!(true), "Orphan: the job keeps running");
    assert_eq!(h.count("DELETE", WEB), 0);
}

/// Runs `nomad-operator ARGS` and returns (exit code, stdout, stderr). Asynchronously:
/// on the real agent the test's own recording proxy must serve the command's calls.
async fn run_cli(h: &Harness, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env_remove("NOMAD_ADDR")
        .env_remove("NOMAD_NAMESPACE")
        .env_remove("NOMAD_TOKEN")
        .env("NOMAD_ADDR", h.nomad_url())
        .env("NOMAD_TOKEN", TOKEN)
        .env("NOMAD_NAMESPACE", &h.nomad_namespace)
        .output()
        .await
        .expect("run nomad-operator");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(h: &Harness) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jobspecs-{}", h.ns.name));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn converted_examples_become_ready(backend: Backend) {
    let h = Harness::start_on(backend, "convert", &[]).await;
    let dir = scratch(&h);
    let files: Vec<String> =
        std::fs::read_dir(format!("{}/examples/hcl", env!("CARGO_MANIFEST_DIR")))
            .expect("examples/hcl")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "hcl"))
            .map(|p| p.display().to_string())
            .collect();
    assert!(files.len() >= 2, "{files:?}");
    for (i, file) in files.iter().enumerate() {
        // One of them in Nomad's JSON form, parsed by the Nomad at NOMAD_ADDR.
        let json = i == 0;
        let mut args = vec!["convert", file.as_str()];
        if json {
            args.push("--json");
        }
        let (code, manifest, stderr) = run_cli(&h, &args).await;
        assert_eq!(code, 0, "convert {file}: {stderr}");
        let parsed: Value = serde_saphyr::from_str(&manifest).expect("manifest YAML");
        assert_eq!(parsed["kind"], "NomadJob");
        assert_eq!(parsed["spec"]["job"].is_object(), json, "{manifest}");
        assert_eq!(parsed["spec"]["hcl"].is_string(), !json, "{manifest}");
        let name = parsed["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, &manifest).expect("write manifest");
        h.kubectl_apply(&path.display().to_string());
        let obj = h.wait_for(&name, "Ready", ready).await;
        assert!(
            condition(&obj, "SpecWarning").is_none(),
            "{name}: no unknown keys"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn manifest(dir: &Path, file: &str, name: &str, spec: &Value) -> String {
    let body = json!({
        "apiVersion": "nomadoperator.dev/v1alpha1",
        "kind": "NomadJob",
        "metadata": {"name": name},
        "spec": spec
    });
    let path = dir.join(file);
    std::fs::write(&path, serde_saphyr::to_string(&body).expect("yaml")).expect("write");
    path.display().to_string()
}

async fn plan_previews_unchanged_edited_and_conflicting_manifests(backend: Backend) {
    let h = Harness::start_on(backend, "preview", &[]).await;
    let values = json!({"seconds": "1000000", "password": "p"});
    let spec = json!({"hcl": service_hcl(backend), "variables": values});
    h.apply_ready("web", spec.clone()).await;
    let registers = h.count("POST", WEB);
    let dir = scratch(&h);
    let ns = h.ns.name.clone();

    let unchanged = manifest(&dir, "unchanged.yaml", "web", &spec);
    let (code, out, err) = run_cli(&h, &["plan", "-f", &unchanged, "--namespace", &ns]).await;
    assert_eq!(code, 0, "unchanged: {out}{err}");
    assert!(
        out.contains(&format!("NomadJob {ns}/web")) && out.contains("no change"),
        "{out}"
    );
    assert!(!out.contains("=>"), "no field changes: {out}");

    let mut edited_spec = spec.clone();
    edited_spec["variables"]["count"] = json!("2");
    let edited_dir = dir.join("edited");
    std::fs::create_dir_all(&edited_dir).expect("dir");
    manifest(&edited_dir, "web.yaml", "web", &edited_spec);
    let edited_dir = edited_dir.display().to_string();
    let (code, out, err) = run_cli(&h, &["plan", "-f", &edited_dir, "--namespace", &ns]).await;
    assert_eq!(code, 1, "edited: {out}{err}");
    assert!(out.contains("Task Group: \"web\""), "{out}");
    let count_line = out
        .lines()
        .find(|l| l.contains("Count:"))
        .unwrap_or_default();
    assert!(
        count_line.trim_start().starts_with("+/-") && count_line.contains("\"1\" => \"2\""),
        "{out}"
    );
    let (code, out, _) = run_cli(
        &h,
        &[
            "plan",
            "-f",
            &edited_dir,
            "--namespace",
            &ns,
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 1);
    let previews: Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(previews[0]["outcome"], "changes");
    assert_eq!(previews[0]["jobID"], "web");
    assert_eq!(previews[0]["diffType"], "Edited");
    assert_eq!(previews[0]["groups"][0]["group"], "web");
    assert_eq!(previews[0]["groups"][0]["create"], 1);

    let mut other = spec.clone();
    other["jobID"] = json!("web");
    let conflicting = manifest(&dir, "conflicting.yaml", "other", &other);
    let (code, out, err) = run_cli(&h, &["plan", "-f", &conflicting, "--namespace", &ns]).await;
    assert_eq!(code, 255, "conflicting: {out}{err}");
    assert!(
        out.contains("Conflict") && out.contains(&format!("{ns}/web")),
        "{out}"
    );

    assert_eq!(h.count("POST", WEB), registers, "previews register nothing");
    let _ = std::fs::remove_dir_all(dir);
}

/// `examples/web-hcl.yaml`: Ready, the Secret's value nowhere in the status, and an edit
/// of the ConfigMap registers version 1, as its comments say.
async fn the_hcl_example_does_what_its_comments_say(backend: Backend) {
    let h = Harness::start_on(backend, "hcl-example", &["--variables-from"]).await;
    h.kubectl_apply(&format!(
        "{}/examples/web-hcl.yaml",
        env!("CARGO_MANIFEST_DIR")
    ));
    let obj = h.wait_for("web-hcl", "Ready", ready).await;
    let status = serde_json::to_string(&obj.status).expect("status");
    assert!(!status.contains("example-key-change-me"), "{status}");
    apply_config_map(&h, "web-hcl-settings", json!({"seconds": "7200"})).await;
    let obj = h
        .wait_for("web-hcl", "version 1", |o| {
            ready(o) && version(o) == Some(1)
        })
        .await;
    assert_eq!(obj.status.as_ref().and_then(|s| s.job_version), Some(1));
    let job = h.nomad_job("web-hcl").await.expect("job");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["args"],
        json!(["7200"])
    );
}

/// HCL1 jobspecs, as `nomad job run -hcl1` takes them: parsed with Nomad's HCL1 parser.
/// They have no variables.
async fn an_hcl1_jobspec_becomes_ready(backend: Backend) {
    let h = Harness::start_on(backend, "hcl1", &[]).await;
    let hcl1 = r#"job "web" {
  datacenters = ["dc1"]
  type = "batch"
  group "once" {
    task "run" {
      driver = "raw_exec"
      config {
        command = "/bin/echo"
        args = ["hcl1"]
      }
      resources {
        cpu = 20
        memory = 32
      }
    }
  }
}
"#;
    h.apply_ready("web", json!({"hcl": hcl1, "hcl1": true}))
        .await;
    let job = h.nomad_job("web").await.expect("job");
    assert_eq!(job["Type"], "batch");
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["args"],
        json!(["hcl1"])
    );
    h.apply(
        "web",
        json!({"hcl": hcl1, "hcl1": true, "variables": {"x": "1"}}),
    )
    .await;
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("InvalidSpec"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("HCL1 jobspecs have no variables"),
        "{message}"
    );
    assert_eq!(
        h.count("POST", PARSE),
        1,
        "no parse for a spec that cannot be one"
    );
}

/// Nomad 1.6 and later take the values in the parse request; the operator asks the
/// agent's release once and uses that, with the same outcome as the rewrite older
/// releases get.
async fn newer_nomad_gets_the_values_in_the_parse_request(backend: Backend) {
    assert_eq!(
        backend,
        Backend::Sim,
        "emulating a release needs the simulator"
    );
    for release in ["1.6.0", "1.1.2"] {
        let h = Harness::start_on_release(release, "hcl-release", &[]).await;
        let values = json!({"seconds": "1000000", "password": "p", "count": "2"});
        h.apply_ready(
            "web",
            json!({"hcl": service_hcl(backend), "variables": values}),
        )
        .await;
        let job = h.nomad_job("web").await.expect("job");
        assert_eq!(job["TaskGroups"][0]["Count"], 2, "{release}");
        // A change of the values: parsed again, the release is not asked again.
        let mut changed = values.clone();
        changed["count"] = json!("3");
        h.apply(
            "web",
            json!({"hcl": service_hcl(backend), "variables": changed}),
        )
        .await;
        h.wait_for("web", "version 1", |o| ready(o) && version(o) == Some(1))
            .await;
        assert_eq!(h.count("POST", PARSE), 2, "{release}");
        assert_eq!(h.count("GET", "/v1/agent/self"), 1, "{release}: asked once");
    }
}

scenarios! {
    both: [
        hcl_with_variables_from_a_config_map_and_a_secret_becomes_ready,
        a_parse_error_names_the_line_and_registers_nothing,
        typos_are_warnings_and_errors_when_strict,
        converted_examples_become_ready,
        plan_previews_unchanged_edited_and_conflicting_manifests,
        an_hcl1_jobspec_becomes_ready,
        the_hcl_example_does_what_its_comments_say,
    ],
    // Only the simulator can be another Nomad release.
    simulator_only: [newer_nomad_gets_the_values_in_the_parse_request],
}
