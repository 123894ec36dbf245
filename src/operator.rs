//! `nomad-operator run`: admin endpoints, leader election, and the controller on the
//! leader.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::admin::{self, AdminArgs, AdminState};
use crate::controller::context::Context;
use crate::controller::{RunArgs, run};
use crate::leader::{self, LeaderArgs, LeaseLock};
use crate::metrics::Metrics;

/// Everything `nomad-operator run` takes: the controller's settings, leader election and
/// the admin endpoints.
#[derive(clap::Args, Debug)]
pub struct RunCommand {
    /// The controller's settings.
    #[command(flatten)]
    pub run: RunArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Admin endpoints.
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Starts the admin endpoints, waits for Kubernetes, then runs the controller — on the
/// leader only when leader election is on.
pub async fn run(cmd: RunCommand, shutdown: impl Future<Output = ()> + Send + 'static) -> ExitCode {
    let RunCommand {
        run: args,
        leader: leader_args,
        admin: admin_args,
    } = cmd;
    let timing = match leader_args.timing() {
        Ok(timing) => timing,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let kube = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("cannot configure the Kubernetes client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = match run::context(kube.clone(), &args, Metrics::default()) {
        Ok(ctx) => ctx,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let weak = Arc::downgrade(&ctx);
    ctx.nomad
        .set_call_hook(Arc::new(move |endpoint: &str, status: u16| {
            if let Some(ctx) = weak.upgrade() {
                ctx.metrics.observe_nomad_call(endpoint, status);
            }
        }));

    let shutdown = shutdown.boxed().shared();
    let weak = Arc::downgrade(&ctx);
    let state = AdminState::new(move || {
        weak.upgrade()
            .map(|ctx| ctx.metrics.render())
            .unwrap_or_default()
    });
    let listener = match tokio::net::TcpListener::bind(admin_args.admin_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(
                "cannot listen on --admin-addr {}: {e}",
                admin_args.admin_addr
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %admin_args.admin_addr, "admin endpoints (/metrics, /healthz, /readyz)");
    let admin = tokio::spawn(admin::serve(listener, state.clone(), shutdown.clone()));

    // Ready once the Kubernetes API answers.
    loop {
        match kube.apiserver_version().await {
            Ok(_) => break,
            Err(e) => tracing::warn!("waiting for the Kubernetes API: {e}"),
        }
        tokio::select! {
            _ = shutdown.clone() => return ExitCode::SUCCESS,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }

    let code = if leader_args.leader_election {
        let namespace = leader_args.namespace(&kube);
        let identity = leader_args.identity();
        tracing::info!(lease = %format!("{namespace}/{}", leader_args.lease_name), %identity, "leader election on");
        let lock = LeaseLock::new(
            kube.clone(),
            &namespace,
            &leader_args.lease_name,
            &identity,
            timing.lease_duration,
        );
        state.set_ready(true); // a standby is ready too
        let gauge = ctx.metrics.leader.clone();
        leader::run(
            lock,
            timing,
            ctx.leadership.clone(),
            gauge,
            shutdown.clone(),
            |stop| lead(ctx.clone(), args.clone(), stop),
        )
        .await;
        ExitCode::SUCCESS
    } else {
        ctx.metrics.leader.set(1);
        state.set_ready(true);
        lead(ctx, args, Box::pin(shutdown.clone())).await;
        ExitCode::SUCCESS
    };
    admin.abort();
    code
}

/// What the leader does: run the controller until `stop` completes.
async fn lead(ctx: Arc<Context>, args: RunArgs, stop: futures::future::BoxFuture<'static, ()>) {
    run::run_controller(ctx, &args, stop).await;
}
