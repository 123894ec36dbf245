//! The Nomad client against the in-process Nomad simulator (and a tiny TLS server).
//!
//! Every client call, every error kind, blocking queries, and what went over the wire
//! (the simulator's request log: nothing sent twice, the right parameters).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nomad_operator::nomad::{
    Blocking, DiffType, NomadClient, NomadConfig, NomadError, Scope, Token,
};
use nomad_sim::{Fault, RequestRecord, SimConfig, SimServer, Simulator};
use serde_json::{Value, json};

/// The ACL token of every simulator here; no error message may ever contain it.
const TOKEN: &str = "s3cr3t-7f0c2a9e-operator-token";

/// A simulator with ACLs on, time sped up, served on a free port.
async fn start() -> Result<(Simulator, SimServer)> {
    let sim = Simulator::new(SimConfig {
        acl_token: Some(TOKEN.to_owned()),
        time_scale: 1000.0,
        ..SimConfig::default()
    });
    let server = sim.serve("127.0.0.1:0".parse()?).await?;
    Ok((sim, server))
}

/// A client for `url` with the test token.
fn client(url: &str) -> Result<NomadClient> {
    client_with(NomadConfig {
        token: Some(Token::new(TOKEN)),
        ..NomadConfig::new(url)
    })
}

/// A client from a full configuration.
fn client_with(config: NomadConfig) -> Result<NomadClient> {
    Ok(NomadClient::new(&config)?)
}

/// A small service job in Nomad's API JSON.
fn job(id: &str, count: u64) -> Value {
    json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Tasks": [{
                "Name": "server",
                "Driver": "docker",
                "Config": { "image": "nginx:1.25" },
                "Resources": { "CPU": 100, "MemoryMB": 64 }
            }]
        }]
    })
}

/// Registers `job(id, count)` as a new job and returns its `JobModifyIndex`.
async fn create(client: &NomadClient, id: &str, count: u64) -> Result<u64> {
    let answer = client
        .register_job(&Scope::default(), &job(id, count), Some(0))
        .await?;
    Ok(answer.job_modify_index)
}

/// Fails if the token appears in the error's Display or Debug text.
fn assert_no_token(error: &NomadError) {
    let shown = format!("{error} / {error:?}");
    assert!(!shown.contains(TOKEN), "token leaked into: {shown}");
}

/// The requests with this method and path.
fn calls<'a>(log: &'a [RequestRecord], method: &str, path: &str) -> Vec<&'a RequestRecord> {
    log.iter()
        .filter(|r| r.method == method && r.path == path)
        .collect()
}

/// Asserts exactly `n` requests with this method and path.
fn assert_calls(sim: &Simulator, method: &str, path: &str, n: usize) {
    let log = sim.requests();
    let found = calls(&log, method, path);
    assert_eq!(found.len(), n, "{method} {path} in {log:#?}");
}

#[tokio::test]
async fn plan_register_read_and_versions() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();

    let plan = nomad.plan_job(&scope, "web", &job("web", 1), true).await?;
    assert_eq!(plan.diff_type(), Some(DiffType::Added));
    assert_eq!(plan.job_modify_index, 0);

    let registered = nomad
        .register_job(&scope, &job("web", 1), Some(plan.job_modify_index))
        .await?;
    ensure!(registered.job_modify_index > 0, "{registered:?}");
    ensure!(!registered.eval_id.is_empty(), "{registered:?}");
    ensure!(registered.index > 0, "{registered:?}");

    let read = nomad.read_job(&scope, "web").await?;
    assert_eq!(read["ID"], "web");
    assert_eq!(read["Version"], 0);
    assert_eq!(read["JobModifyIndex"], registered.job_modify_index);

    let same = nomad.plan_job(&scope, "web", &job("web", 1), true).await?;
    assert_eq!(same.diff_type(), Some(DiffType::None));
    assert_eq!(same.job_modify_index, registered.job_modify_index);

    let edited = nomad.plan_job(&scope, "web", &job("web", 3), true).await?;
    assert_eq!(edited.diff_type(), Some(DiffType::Edited));
    let updates = &edited
        .annotations
        .context("annotations")?
        .desired_tg_updates;
    ensure!(updates.contains_key("web"), "{updates:?}");
    let second = nomad
        .register_job(&scope, &job("web", 3), Some(edited.job_modify_index))
        .await?;
    ensure!(second.job_modify_index > registered.job_modify_index);

    let versions = nomad.job_versions(&scope, "web").await?;
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["Version"], 1, "newest first");
    assert_eq!(versions[1]["Version"], 0);

    assert_calls(&sim, "POST", "/v1/job/web/plan", 3);
    assert_calls(&sim, "POST", "/v1/job/web", 2);
    assert_calls(&sim, "GET", "/v1/job/web/versions", 1);
    Ok(())
}

#[tokio::test]
async fn lists_summary_evaluations_allocations_deployments() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();
    create(&nomad, "api", 2).await?;
    create(&nomad, "worker", 1).await?;

    let jobs = nomad.list_jobs(&scope, None, None).await?;
    ensure!(jobs.index > 0, "X-Nomad-Index read");
    let ids: Vec<_> = jobs.value.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["api", "worker"]);
    let api = &jobs.value[0];
    assert_eq!(api.r#type, "service");
    ensure!(api.job_modify_index > 0 && api.modify_index >= api.job_modify_index);
    let prefixed = nomad.list_jobs(&scope, Some("wo"), None).await?;
    assert_eq!(prefixed.value.len(), 1);
    assert_eq!(prefixed.value[0].id, "worker");
    let everywhere = nomad
        .list_jobs(&Scope::all_namespaces(), None, None)
        .await?;
    assert_eq!(everywhere.value.len(), 2);

    let summary = nomad.job_summary(&scope, "api").await?;
    assert_eq!(summary.job_id, "api");
    ensure!(summary.summary.get("web").is_some(), "{summary:?}");

    let evals = nomad.job_evaluations(&scope, "api").await?;
    ensure!(!evals.is_empty(), "register creates an evaluation");
    assert_eq!(evals[0].job_id, "api");

    let allocs = wait_for_allocs(&nomad, "api", 2).await?;
    assert_eq!(allocs[0].job_id, "api");
    assert_eq!(allocs[0].task_group, "web");
    let all = nomad.list_allocations(&scope, None, None).await?;
    assert_eq!(all.value.len(), 3);
    ensure!(all.index > 0);
    let one = nomad.read_allocation(&scope, &allocs[0].id).await?;
    assert_eq!(one.id, allocs[0].id);
    assert_eq!(one.job_id, "api");
    ensure!(one.job.is_some(), "read allocation carries the job");
    let by_prefix = nomad
        .list_allocations(&scope, Some(&allocs[0].id[..8]), None)
        .await?;
    assert_eq!(by_prefix.value.len(), 1);
    let with_all = nomad.job_allocations(&scope, "api", true, None).await?;
    assert_eq!(with_all.value.len(), 2);

    let latest = nomad.job_deployment(&scope, "api").await?;
    let latest = latest.context("a service job registers with a deployment")?;
    assert_eq!(latest.job_id, "api");
    assert_eq!(latest.job_version, 0);
    let deployments = nomad.job_deployments(&scope, "api").await?;
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].id, latest.id);
    let listed = nomad.list_deployments(&scope, None, None).await?;
    assert_eq!(listed.value.len(), 2);
    let one_prefix = nomad
        .list_deployments(&scope, Some(&latest.id[..8]), None)
        .await?;
    assert_eq!(one_prefix.value.len(), 1);

    let log = sim.requests();
    let query = &calls(&log, "GET", "/v1/jobs")[1].query;
    ensure!(query.contains("prefix=wo"), "{query}");
    let query = &calls(&log, "GET", "/v1/jobs")[2].query;
    ensure!(query.contains("namespace=*"), "{query}");
    let query = &calls(&log, "GET", "/v1/job/api/allocations")
        .last()
        .context("log")?
        .query;
    ensure!(query.contains("all=true"), "{query}");
    Ok(())
}

/// Polls the job's allocations until there are `n` (the simulator places them at once or
/// soon after).
async fn wait_for_allocs(
    nomad: &NomadClient,
    id: &str,
    n: usize,
) -> Result<Vec<nomad_operator::nomad::AllocationListStub>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let allocs = nomad
            .job_allocations(&Scope::default(), id, false, None)
            .await?;
        if allocs.value.len() >= n {
            return Ok(allocs.value);
        }
        if Instant::now() > deadline {
            bail!("{id}: {} allocations, wanted {n}", allocs.value.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn register_check_and_set_conflicts() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();
    let index = create(&nomad, "web", 1).await?;

    // Expected a new job, but it exists.
    let error = nomad
        .register_job(&scope, &job("web", 2), Some(0))
        .await
        .expect_err("job exists");
    assert!(matches!(error, NomadError::Conflict(_)), "{error:?}");
    assert_eq!(error.category(), "conflict");
    assert!(!error.is_transient());
    assert_no_token(&error);

    // A stale index.
    let error = nomad
        .register_job(&scope, &job("web", 2), Some(index + 100))
        .await
        .expect_err("stale index");
    assert!(matches!(error, NomadError::Conflict(_)), "{error:?}");

    // An index for a job that does not exist.
    let error = nomad
        .register_job(&scope, &job("ghost", 1), Some(7))
        .await
        .expect_err("no such job");
    assert!(matches!(error, NomadError::Conflict(_)), "{error:?}");

    // Without check-and-set the register goes through.
    let forced = nomad.register_job(&scope, &job("web", 2), None).await?;
    ensure!(forced.job_modify_index > index);

    // Each register was sent exactly once: no retry behind the caller's back.
    let log = sim.requests();
    let registers = calls(&log, "POST", "/v1/job/web");
    let statuses: Vec<u16> = registers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 500, 500, 200]);
    assert_calls(&sim, "POST", "/v1/job/ghost", 1);
    Ok(())
}

#[tokio::test]
async fn revert_and_stable() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();
    create(&nomad, "web", 1).await?;
    let plan = nomad.plan_job(&scope, "web", &job("web", 2), true).await?;
    nomad
        .register_job(&scope, &job("web", 2), Some(plan.job_modify_index))
        .await?;

    // Check-and-set on the current version: it is 1, not 0.
    let error = nomad
        .revert_job(&scope, "web", 0, Some(0))
        .await
        .expect_err("wrong prior version");
    assert!(matches!(error, NomadError::Conflict(_)), "{error:?}");
    assert_no_token(&error);

    // Reverting to the current version is a bad request.
    let error = nomad
        .revert_job(&scope, "web", 1, None)
        .await
        .expect_err("current version");
    assert!(matches!(error, NomadError::BadRequest(_)), "{error:?}");
    assert_eq!(error.category(), "bad_request");

    // A version that does not exist, and a job that does not exist.
    let error = nomad
        .revert_job(&scope, "web", 9, None)
        .await
        .expect_err("no version 9");
    assert!(matches!(error, NomadError::NotFound(_)), "{error:?}");
    let error = nomad
        .revert_job(&scope, "ghost", 0, None)
        .await
        .expect_err("no such job");
    assert!(matches!(error, NomadError::NotFound(_)), "{error:?}");

    let reverted = nomad.revert_job(&scope, "web", 0, Some(1)).await?;
    ensure!(reverted.job_modify_index > plan.job_modify_index);
    let versions = nomad.job_versions(&scope, "web").await?;
    assert_eq!(versions.len(), 3, "a revert is a new version");
    assert_eq!(versions[0]["Version"], 2);
    assert_eq!(versions[0]["TaskGroups"][0]["Count"], 1);

    let index = nomad.set_job_stable(&scope, "web", 0, true).await?;
    ensure!(index > 0);
    let versions = nomad.job_versions(&scope, "web").await?;
    let v0 = versions
        .iter()
        .find(|v| v["Version"] == 0)
        .context("version 0")?;
    assert_eq!(v0["Stable"], true);
    let error = nomad
        .set_job_stable(&scope, "ghost", 0, true)
        .await
        .expect_err("no such job");
    assert!(
        matches!(error, NomadError::NotFound(_) | NomadError::BadRequest(_)),
        "{error:?}"
    );

    let log = sim.requests();
    let reverts = calls(&log, "POST", "/v1/job/web/revert");
    let statuses: Vec<u16> = reverts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    Ok(())
}

#[tokio::test]
async fn not_found_and_empty_answers() -> Result<()> {
    let (_sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();

    for error in [
        nomad.read_job(&scope, "ghost").await.err(),
        nomad.job_versions(&scope, "ghost").await.err(),
        nomad.job_summary(&scope, "ghost").await.err(),
        nomad
            .read_allocation(&scope, "00000000-0000-0000-0000-000000000000")
            .await
            .err(),
    ] {
        let error = error.context("must fail")?;
        assert!(matches!(error, NomadError::NotFound(_)), "{error:?}");
        assert_eq!(error.category(), "not_found");
        assert!(!error.is_transient());
        assert_no_token(&error);
    }
    assert_eq!(nomad.job_deployment(&scope, "ghost").await?, None);
    assert!(nomad.job_deployments(&scope, "ghost").await?.is_empty());
    assert!(nomad.job_evaluations(&scope, "ghost").await?.is_empty());
    let allocs = nomad.job_allocations(&scope, "ghost", false, None).await?;
    assert!(allocs.value.is_empty());
    // Deleting a job that does not exist succeeds.
    nomad.deregister_job(&scope, "ghost", false).await?;
    Ok(())
}

#[tokio::test]
async fn deregister_stops_then_purges() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();
    create(&nomad, "web", 1).await?;

    let stopped = nomad.deregister_job(&scope, "web", false).await?;
    ensure!(!stopped.eval_id.is_empty(), "{stopped:?}");
    let read = nomad.read_job(&scope, "web").await?;
    assert_eq!(read["Stop"], true);
    assert_eq!(read["Version"], 1, "stopping writes a new version");

    nomad.deregister_job(&scope, "web", true).await?;
    let error = nomad.read_job(&scope, "web").await.expect_err("purged");
    assert!(matches!(error, NomadError::NotFound(_)), "{error:?}");

    let log = sim.requests();
    let deletes = calls(&log, "DELETE", "/v1/job/web");
    assert_eq!(deletes.len(), 2);
    ensure!(deletes[0].query.contains("purge=false"), "{:?}", deletes[0]);
    ensure!(deletes[1].query.contains("purge=true"), "{:?}", deletes[1]);
    Ok(())
}

#[tokio::test]
async fn permission_denied_without_or_with_a_wrong_token() -> Result<()> {
    let (sim, server) = start().await?;
    let anonymous = client_with(NomadConfig::new(server.url()))?;
    let error = anonymous
        .list_jobs(&Scope::default(), None, None)
        .await
        .expect_err("no token");
    assert!(
        matches!(error, NomadError::PermissionDenied(_)),
        "{error:?}"
    );
    assert_eq!(error.category(), "permission_denied");
    assert!(!error.is_transient());

    let wrong = client_with(NomadConfig {
        token: Some(Token::new("not-the-token")),
        ..NomadConfig::new(server.url())
    })?;
    let error = wrong
        .register_job(&Scope::default(), &job("web", 1), Some(0))
        .await
        .expect_err("wrong token");
    assert!(
        matches!(error, NomadError::PermissionDenied(_)),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("not-the-token"));

    // The right token is sent as X-Nomad-Token (the simulator accepts it).
    client(&server.url())?
        .list_jobs(&Scope::default(), None, None)
        .await?;
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 403, 200]);
    Ok(())
}

#[tokio::test]
async fn bad_requests() -> Result<()> {
    let (_sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();

    let mut no_groups = job("web", 1);
    no_groups["TaskGroups"] = json!([]);
    let error = nomad
        .register_job(&scope, &no_groups, Some(0))
        .await
        .expect_err("no task groups");
    let NomadError::BadRequest(message) = &error else {
        bail!("expected BadRequest, got {error:?}");
    };
    ensure!(message.contains("Missing job task groups"), "{message}");
    ensure!(
        !message.contains('\n') && !message.contains('\t'),
        "{message:?}"
    );
    assert_no_token(&error);

    // The path's job ID differs from the body's.
    let error = nomad
        .plan_job(&scope, "other", &job("web", 1), true)
        .await
        .expect_err("ID mismatch");
    assert!(matches!(error, NomadError::BadRequest(_)), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn server_error_from_a_fault() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    create(&nomad, "web", 1).await?;
    sim.clear_requests();
    sim.add_fault(Fault {
        path: "/v1/job/*".into(),
        status: Some(500),
        body: Some("boom".into()),
        ..Default::default()
    });
    let error = nomad
        .read_job(&Scope::default(), "web")
        .await
        .expect_err("fault");
    assert_eq!(
        error,
        NomadError::Server {
            status: 500,
            message: "boom".into()
        }
    );
    assert_eq!(error.category(), "server_error");
    assert!(error.is_transient());
    assert_no_token(&error);
    assert_calls(&sim, "GET", "/v1/job/web", 1);

    sim.clear_faults();
    nomad.read_job(&Scope::default(), "web").await?;
    Ok(())
}

#[tokio::test]
async fn transport_errors_name_the_address_not_the_token() -> Result<()> {
    let (sim, server) = start().await?;
    let url = server.url();
    let nomad = client(&url)?;

    // The connection is dropped without an answer.
    sim.add_fault(Fault {
        path: "/v1/jobs".into(),
        drop_connection: true,
        times: Some(1),
        ..Default::default()
    });
    let error = nomad
        .list_jobs(&Scope::default(), None, None)
        .await
        .expect_err("dropped");
    assert!(matches!(error, NomadError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
    assert_no_token(&error);
    // Sent once: the fault applies once, so a silent retry would have succeeded.
    let dropped = sim.requests();
    ensure!(calls(&dropped, "GET", "/v1/jobs").len() <= 1, "{dropped:?}");

    // Nothing listens any more.
    server.shutdown().await;
    let error = nomad
        .list_jobs(&Scope::default(), None, None)
        .await
        .expect_err("server gone");
    let NomadError::Transport(message) = &error else {
        bail!("expected Transport, got {error:?}");
    };
    ensure!(message.contains(url.trim_end_matches('/')), "{message}");
    assert_eq!(error.category(), "transport");
    assert_no_token(&error);
    Ok(())
}

#[tokio::test]
async fn slow_answers_time_out() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client_with(NomadConfig {
        token: Some(Token::new(TOKEN)),
        request_timeout: Duration::from_millis(300),
        ..NomadConfig::new(server.url())
    })?;
    sim.add_fault(Fault {
        path: "/v1/jobs".into(),
        latency_ms: Some(3000),
        ..Default::default()
    });
    let started = Instant::now();
    let error = nomad
        .list_jobs(&Scope::default(), None, None)
        .await
        .expect_err("slow");
    assert_eq!(error, NomadError::Timeout);
    assert_eq!(error.category(), "timeout");
    assert!(error.is_transient());
    ensure!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_no_token(&error);

    // A blocking query may take its wait on top of the request timeout.
    sim.clear_faults();
    let index = nomad.list_jobs(&Scope::default(), None, None).await?.index;
    let blocked = nomad
        .list_jobs(
            &Scope::default(),
            None,
            Some(Blocking::new(index, Duration::from_millis(800))),
        )
        .await?;
    assert_eq!(blocked.index, index);
    Ok(())
}

/// Waits until the jobs list stops changing (the simulator's scheduler settles), and
/// returns its index.
async fn settle(nomad: &NomadClient) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut index = nomad.list_jobs(&Scope::default(), None, None).await?.index;
    loop {
        let quiet = Blocking::new(index, Duration::from_millis(300));
        let next = nomad
            .list_jobs(&Scope::default(), None, Some(quiet))
            .await?
            .index;
        if next == index {
            return Ok(index);
        }
        ensure!(next > index, "index went back from {index} to {next}");
        ensure!(Instant::now() < deadline, "the jobs list never settled");
        index = next;
    }
}

#[tokio::test]
async fn blocking_queries() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();
    create(&nomad, "first", 1).await?;
    let quiet_index = settle(&nomad).await?;
    ensure!(quiet_index > 0);

    // An index in the past answers at once.
    let started = Instant::now();
    let past = nomad
        .list_jobs(
            &scope,
            None,
            Some(Blocking::new(1, Duration::from_secs(20))),
        )
        .await?;
    ensure!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(past.index, quiet_index);

    // The current index waits for a change and returns the new index.
    let watcher = nomad.clone();
    let watch = tokio::spawn(async move {
        let blocking = Blocking::new(quiet_index, Duration::from_secs(20));
        let started = Instant::now();
        let answer = watcher
            .list_jobs(&Scope::default(), None, Some(blocking))
            .await;
        (answer, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    create(&nomad, "second", 1).await?;
    let (answer, waited) = watch.await?;
    let answer = answer?;
    ensure!(
        answer.index > quiet_index,
        "{} <= {quiet_index}",
        answer.index
    );
    ensure!(answer.value.iter().any(|j| j.id == "second"), "{answer:?}");
    ensure!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // With no change it returns after the wait, with the same index.
    let settled = settle(&nomad).await?;
    let started = Instant::now();
    let idle = nomad
        .list_jobs(
            &scope,
            None,
            Some(Blocking::new(settled, Duration::from_millis(400))),
        )
        .await?;
    ensure!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(idle.index, settled);

    // Allocations block the same way.
    let allocs = nomad.list_allocations(&scope, None, None).await?;
    let past = nomad
        .list_allocations(
            &scope,
            None,
            Some(Blocking::new(1, Duration::from_secs(20))),
        )
        .await?;
    ensure!(past.index >= allocs.index && !past.value.is_empty());

    let log = sim.requests();
    let jobs = calls(&log, "GET", "/v1/jobs");
    let with = |text: &str| jobs.iter().filter(|r| r.query.contains(text)).count();
    assert_eq!(with("index=1&"), 1, "the past-index call, once");
    assert_eq!(
        with("wait=20000ms"),
        2,
        "past-index and watcher calls, once each"
    );
    assert_eq!(with("wait=400ms"), 1, "the idle call, once");
    let allocs = calls(&log, "GET", "/v1/allocations");
    assert_eq!(allocs.len(), 2);
    ensure!(allocs[1].query.contains("wait=20000ms"), "{:?}", allocs[1]);
    Ok(())
}

#[tokio::test]
async fn scope_and_defaults_become_query_parameters() -> Result<()> {
    let (sim, server) = start().await?;
    let nomad = client_with(NomadConfig {
        token: Some(Token::new(TOKEN)),
        namespace: Some("default".into()),
        region: Some("global".into()),
        ..NomadConfig::new(server.url())
    })?;
    nomad.list_jobs(&Scope::default(), None, None).await?;
    nomad
        .list_deployments(&Scope::all_namespaces(), None, None)
        .await?;
    let log = sim.requests();
    let query = &calls(&log, "GET", "/v1/jobs")[0].query;
    ensure!(
        query.contains("namespace=default") && query.contains("region=global"),
        "{query}"
    );
    let query = &calls(&log, "GET", "/v1/deployments")[0].query;
    ensure!(
        query.contains("namespace=*") && query.contains("region=global"),
        "{query}"
    );
    Ok(())
}

#[tokio::test]
async fn parse_dispatch_and_periodic() -> Result<()> {
    let (_sim, server) = start().await?;
    let nomad = client(&server.url())?;
    let scope = Scope::default();

    let hcl = r#"
job "batch" {
  datacenters = ["dc1"]
  type = "batch"
  parameterized {
    payload       = "optional"
    meta_required = ["who"]
  }
  group "g" {
    task "t" {
      driver = "exec"
      config {
        command = "/bin/true"
      }
    }
  }
}
"#;
    let parsed = nomad
        .parse_job(&nomad_operator::nomad::ParseRequest {
            hcl,
            canonicalize: true,
            ..Default::default()
        })
        .await?;
    assert_eq!(parsed["ID"], "batch");
    assert_eq!(parsed["Type"], "batch");
    nomad.register_job(&scope, &parsed, Some(0)).await?;

    let meta = BTreeMap::from([("who".to_owned(), "tests".to_owned())]);
    let dispatched = nomad
        .dispatch_job(&scope, "batch", Some(b"hello"), meta)
        .await?;
    ensure!(
        dispatched.dispatched_job_id.starts_with("batch/dispatch-"),
        "{dispatched:?}"
    );
    let child = nomad
        .read_job(&scope, &dispatched.dispatched_job_id)
        .await?;
    assert_eq!(child["ParentID"], "batch");

    let mut periodic = job("nightly", 1);
    periodic["Type"] = json!("batch");
    periodic["Periodic"] = json!({"Enabled": true, "Spec": "0 3 * * *", "SpecType": "cron"});
    nomad.register_job(&scope, &periodic, Some(0)).await?;
    let forced = nomad.force_periodic(&scope, "nightly").await?;
    ensure!(!forced.eval_id.is_empty(), "{forced:?}");

    let error = nomad
        .force_periodic(&scope, "batch")
        .await
        .expect_err("not periodic");
    assert!(matches!(error, NomadError::BadRequest(_)), "{error:?}");
    let error = nomad
        .dispatch_job(&scope, "nightly", None, BTreeMap::new())
        .await
        .expect_err("not parameterized");
    assert!(matches!(error, NomadError::BadRequest(_)), "{error:?}");
    Ok(())
}
