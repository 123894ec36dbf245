//! Version emulation: `GET /v1/agent/self` reports the configured Nomad release, and
//! `POST /v1/jobs/parse` takes a request's `Variables` only from Nomad 1.6.0 on.

mod common;

use common::{start, start_config};
use nomad_sim::SimConfig;
use serde_json::json;

const SPEC: &str = "variable \"image\" {\n  type = string\n}\nvariable \"n\" {\n  default = 1\n}\njob \"web\" {\n  datacenters = [\"dc1\"]\n  group \"g\" {\n    count = var.n\n    task \"t\" {\n      driver = \"docker\"\n      config {\n        image = \"${var.image}:1\"\n      }\n    }\n  }\n}\n";

const UNSET: &str = "<nil>: Unset variable \"image\"; A used variable must be set or have a default value; see https://www.nomadproject.io/docs/job-specification/hcl2/variables for details.";

fn release(version: &str) -> SimConfig {
    SimConfig {
        time_scale: 1000.0,
        version: version.into(),
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_self_reports_the_emulated_release() {
    let s = start(1000.0, None).await;
    let me = s.get_json("/v1/agent/self").await;
    assert_eq!(
        me["config"]["Version"],
        json!({"Revision": "", "Version": "1.1.2", "VersionMetadata": "", "VersionPrerelease": ""})
    );
    assert_eq!(me["config"]["Region"], "global");
    assert_eq!(me["config"]["Datacenter"], "dc1");
    assert_eq!(me["member"]["Tags"]["build"], "1.1.2");
    assert!(me["stats"]["nomad"].is_object(), "{me}");
    // The agent answers for itself: no region forwarding, GET only.
    assert_eq!(s.get("/v1/agent/self?region=elsewhere").await.status, 200);
    let r = s.req("PUT", "/v1/agent/self", None).await;
    assert_eq!((r.status, r.text.as_str()), (405, "Invalid method"));
    // The rest of /v1/agent/ stays unimplemented.
    assert_eq!(s.get("/v1/agent/members").await.status, 501);

    let s = start_config(release("1.6.0-beta.1+ent")).await;
    let me = s.get_json("/v1/agent/self").await;
    assert_eq!(me["config"]["Version"]["Version"], "1.6.0");
    assert_eq!(me["config"]["Version"]["VersionPrerelease"], "beta.1");
    assert_eq!(me["config"]["Version"]["VersionMetadata"], "ent");
    assert_eq!(me["member"]["Tags"]["build"], "1.6.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_self_needs_the_token() {
    let s = start_config(SimConfig {
        acl_token: Some("s3cret".into()),
        ..release("1.1.2")
    })
    .await;
    assert_eq!(s.get("/v1/agent/self").await.status, 200);
    let anonymous = reqwest::Client::new()
        .get(format!("{}/v1/agent/self", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(anonymous.status().as_u16(), 403);
    assert_eq!(anonymous.text().await.expect("body"), "Permission denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_takes_variables_from_1_6_on() {
    let vars = "image = \"redis\"\nn = 3\n";
    let body = json!({"JobHCL": SPEC, "Variables": vars});
    for old in ["1.1.2", "1.5.0"] {
        let s = start_config(release(old)).await;
        let r = s.post("/v1/jobs/parse", body.clone()).await;
        assert_eq!((r.status, r.text.as_str()), (400, UNSET), "{old}");
    }
    let s = start_config(release("1.6.0")).await;
    let r = s.post("/v1/jobs/parse", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = r.json();
    assert_eq!(job["TaskGroups"][0]["Count"], 3);
    assert_eq!(
        job["TaskGroups"][0]["Tasks"][0]["Config"]["image"],
        "redis:1"
    );
    let r = s.post("/v1/jobs/parse", json!({"JobHCL": SPEC})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text, format!("Failed to parse job: {UNSET}"));
}
