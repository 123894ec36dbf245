//! `nomad-sim`: serve the Nomad API simulator on a TCP address.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use nomad_sim::{Latency, NodeConfig, SimConfig, Simulator};

/// In-memory simulator of the HashiCorp Nomad HTTP API (Nomad 1.1 behaviour).
///
/// Serves /v1 (jobs, plan, versions, revert, deployments, allocations,
/// evaluations, blocking queries, HCL parse, agent/self) and a control API under /_sim
/// (request log, fault injection, leader loss, allocation client-status overrides, stats).
#[derive(Parser, Debug)]
#[command(name = "nomad-sim", version)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:4646 (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:4646")]
    listen: SocketAddr,
    /// Require this ACL token in X-Nomad-Token on every /v1 request.
    #[arg(long, env = "NOMAD_SIM_ACL_TOKEN", hide_env_values = true)]
    acl_token: Option<String>,
    /// Run simulated time this many times faster (deadlines, delays, run times).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Nomad release to emulate (GET /v1/agent/self; from 1.6.0 the parse endpoint
    /// reads a request's Variables).
    #[arg(long, default_value = nomad_sim::DEFAULT_NOMAD_VERSION)]
    nomad_version: String,
    /// CPU of the simulated node in MHz: a task group asking more is not placed.
    #[arg(long, default_value_t = NodeConfig::default().cpu_mhz)]
    node_cpu_mhz: u64,
    /// Memory of the simulated node in MB: a task group asking more is not placed.
    #[arg(long, default_value_t = NodeConfig::default().memory_mb)]
    node_memory_mb: u64,
    /// Disk of the simulated node in MB: a larger ephemeral disk is not placed.
    #[arg(long, default_value_t = NodeConfig::default().disk_mb)]
    node_disk_mb: u64,
    /// Latency model: every /v1 read (GET, and plan, parse and the other requests that
    /// change nothing) waits this long before it is answered, e.g. 2ms. Real time, not
    /// divided by --time-scale: it stands for the network.
    #[arg(long, default_value = "0ms", value_parser = nomad_sim::parse_duration)]
    read_latency: Duration,
    /// Latency model: every /v1 write (register, revert, deregister, dispatch, promote,
    /// ...) waits this long before it is answered, e.g. 10ms. Real time, not divided by
    /// --time-scale: it stands for the network and the Raft commit.
    #[arg(long, default_value = "0ms", value_parser = nomad_sim::parse_duration)]
    write_latency: Duration,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        eprintln!("--time-scale must be a positive number");
        std::process::exit(2);
    }
    if !nomad_sim::valid_nomad_version(&args.nomad_version) {
        eprintln!("--nomad-version must be a release such as 1.1.2 or 1.6.0");
        std::process::exit(2);
    }
    let sim = Simulator::with_node(
        SimConfig {
            acl_token: args.acl_token,
            time_scale: args.time_scale,
            version: args.nomad_version,
        },
        NodeConfig {
            cpu_mhz: args.node_cpu_mhz,
            memory_mb: args.node_memory_mb,
            disk_mb: args.node_disk_mb,
        },
    );
    sim.set_latency(Latency {
        read: args.read_latency,
        write: args.write_latency,
    });
    let server = sim.serve(args.listen).await?;
    tracing::info!(addr = %server.addr, "nomad-sim listening");
    println!("nomad-sim listening on {}", server.url());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(())
}
