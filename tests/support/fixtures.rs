//! What the integration tests start from: the Nomad simulator, and one service job
//! shaped per Nomad backend.

use nomad_sim::{SimConfig, SimServer, Simulator};
use serde_json::{Value, json};

use super::operator::Backend;

/// Starts an in-process simulator on a free loopback port, time running 100x faster,
/// demanding `acl_token` when given.
pub async fn start_simulator(acl_token: Option<&str>) -> (Simulator, SimServer) {
    start_simulator_of(acl_token, nomad_sim::DEFAULT_NOMAD_VERSION).await
}

/// [`start_simulator`] emulating Nomad release `version`.
pub async fn start_simulator_of(acl_token: Option<&str>, version: &str) -> (Simulator, SimServer) {
    let sim = Simulator::new(SimConfig {
        acl_token: acl_token.map(str::to_string),
        time_scale: 100.0,
        version: version.to_string(),
    });
    let server = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve simulator");
    (sim, server)
}

/// A service job: `count` copies of `command` with `args`, small enough that many fit
/// on the real agent's node. A failing task fails its allocation at once (no
/// restarts). The update strategy suits the backend: on the simulator (time 100x)
/// deployments are short yet leave a healthy one seconds of slack on a loaded machine
/// (progress deadline 5m -> 3 s); on the real agent an unhealthy allocation fails the
/// deployment at once (no progress deadline) and a healthy one has a minute.
pub fn service_job(
    backend: Backend,
    count: u32,
    command: &str,
    args: &[&str],
    auto_revert: bool,
) -> Value {
    let (healthy_deadline, progress_deadline) = match backend {
        Backend::Sim => (120_000_000_000u64, 300_000_000_000u64),
        Backend::Real => (60_000_000_000u64, 0u64),
    };
    json!({
        "Datacenters": ["dc1"],
        "Type": "service",
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "RestartPolicy": {"Attempts": 0, "Mode": "fail", "Interval": 1_800_000_000_000u64, "Delay": 1_000_000_000u64},
            "Update": {
                "MaxParallel": 1,
                "MinHealthyTime": 1_000_000_000u64,
                "HealthyDeadline": healthy_deadline,
                "ProgressDeadline": progress_deadline,
                "AutoRevert": auto_revert
            },
            "Tasks": [{
                "Name": "server",
                "Driver": "raw_exec",
                "Config": {"command": command, "args": args},
                "Resources": {"CPU": 20, "MemoryMB": 32}
            }]
        }]
    })
}

/// A service jobspec in HCL like [`service_job`] (one group `web`, one raw_exec task
/// `server` running `/bin/sleep`), with variables: `count` (number, default 1),
/// `seconds` (the sleep's argument, no default) and `password` (put in the task's
/// environment as `DB_PASSWORD`, no default).
pub fn service_hcl(backend: Backend) -> String {
    let (healthy_deadline, progress_deadline) = match backend {
        Backend::Sim => ("2m", "5m"),
        Backend::Real => ("1m", "0s"),
    };
    format!(
        r#"variable "count" {{
  type    = number
  default = 1
}}

variable "seconds" {{
  type = string
}}

variable "password" {{
  type = string
}}

job "web" {{
  datacenters = ["dc1"]
  type        = "service"

  group "web" {{
    count = var.count

    restart {{
      attempts = 0
      mode     = "fail"
      interval = "30m"
      delay    = "1s"
    }}

    update {{
      max_parallel      = 1
      min_healthy_time  = "1s"
      healthy_deadline  = "{healthy_deadline}"
      progress_deadline = "{progress_deadline}"
      auto_revert       = false
    }}

    task "server" {{
      driver = "raw_exec"

      config {{
        command = "/bin/sleep"
        args    = [var.seconds]
      }}

      env {{
        DB_PASSWORD = var.password
      }}

      resources {{
        cpu    = 20
        memory = 32
      }}
    }}
  }}
}}
"#
    )
}
