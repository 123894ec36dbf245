//! The baseline: what a GitOps script does instead of the operator. For each job, one
//! after the other: plan (`Diff: true`), then register with check-and-set
//! (`EnforceIndex`, the plan's `JobModifyIndex`); then wait until every deployment is
//! successful.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nomad_operator::nomad::{NomadClient, NomadConfig, Scope};
use serde_json::Value;

/// The script's timings.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScriptResult {
    /// Jobs handled.
    pub jobs: usize,
    /// Time of the sequential plan + register loop, seconds.
    pub register_loop_seconds: f64,
    /// From the first plan until every deployment is successful, seconds.
    pub converge_seconds: f64,
    /// Nomad requests the script made (the polls of `/v1/deployments` included).
    pub nomad_requests: usize,
}

/// Runs the script for `n` jobs `script-<i>` made by `job(i)` against `addr`.
pub async fn run(
    addr: &str,
    n: usize,
    job: impl Fn(&str) -> Value,
    timeout: Duration,
) -> anyhow::Result<ScriptResult> {
    let client = NomadClient::new(&NomadConfig::new(addr)).context("Nomad client")?;
    let scope = Scope::default();
    let started = Instant::now();
    let mut requests = 0usize;
    for i in 0..n {
        let id = format!("script-{i}");
        let body = job(&id);
        let plan = client
            .plan_job(&scope, &id, &body, true)
            .await
            .with_context(|| format!("plan {id}"))?;
        client
            .register_job(&scope, &body, Some(plan.job_modify_index))
            .await
            .with_context(|| format!("register {id}"))?;
        requests += 2;
    }
    let register_loop_seconds = started.elapsed().as_secs_f64();
    loop {
        // The script's jobs are in the default namespace, and Nomad before 1.2.4 (the
        // real agent here) does not list the deployments of every namespace at once.
        let list = client.list_deployments(&scope, None, None).await?;
        requests += 1;
        let done: HashSet<&str> = list
            .value
            .iter()
            .filter(|d| d.job_id.starts_with("script-") && d.status == "successful")
            .map(|d| d.job_id.as_str())
            .collect();
        if done.len() >= n {
            break;
        }
        if started.elapsed() > timeout {
            bail!(
                "the script's deployments were not all successful within {timeout:?} ({}/{n})",
                done.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(ScriptResult {
        jobs: n,
        register_loop_seconds,
        converge_seconds: started.elapsed().as_secs_f64(),
        nomad_requests: requests,
    })
}
