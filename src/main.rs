//! The `nomad-operator` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nomad_operator::operator::RunCommand;

/// Kubernetes operator that makes a NomadJob custom resource the source of truth for a
/// HashiCorp Nomad job.
#[derive(Parser, Debug)]
#[command(name = "nomad-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller: reconcile NomadJob objects with Nomad.
    ///
    /// Kubernetes credentials come from KUBECONFIG or the in-cluster service account;
    /// Nomad's from the usual NOMAD_* variables or the --nomad-* flags.
    Run(Box<RunCommand>),
    /// Print a CustomResourceDefinition as YAML: NomadJob (what crds/nomadjob.yaml
    /// holds), or NomadDispatch with `--kind NomadDispatch` (crds/nomaddispatch.yaml).
    ///
    /// Example: nomad-operator crd | kubectl apply -f -
    Crd {
        /// Which kind.
        #[arg(long, value_enum, default_value_t = nomad_operator::crdgen::Kind::NomadJob)]
        kind: nomad_operator::crdgen::Kind,
    },
    /// Print a NomadJob manifest for a Nomad jobspec (HCL).
    ///
    /// Example: for f in jobs/*.hcl; do nomad-operator convert "$f" > "manifests/$(basename "$f" .hcl).yaml"; done
    Convert(Box<nomad_operator::convert::ConvertArgs>),
    /// Preview what applying NomadJob manifests would change in Nomad, without a cluster.
    ///
    /// Plans each NomadJob against NOMAD_ADDR and prints the diff like `nomad job plan`.
    /// Exit code 0: no change; 1: changes; 255: an error or a conflict.
    Plan(Box<nomad_operator::preview::PlanArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => match nomad_operator::crdgen::crd_yaml_of(kind) {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Convert(args) => match runtime() {
            Ok(runtime) => match runtime.block_on(nomad_operator::convert::convert(&args)) {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
        Command::Plan(args) => match runtime() {
            Ok(runtime) => {
                use nomad_operator::preview::{Output, exit_code, plan, render_text};
                match runtime.block_on(plan(&args)) {
                    Ok(previews) => {
                        match args.output {
                            Output::Text => print!("{}", render_text(&previews)),
                            Output::Json => match serde_json::to_string_pretty(&previews) {
                                Ok(json) => println!("{json}"),
                                Err(e) => {
                                    eprintln!("error: {e}");
                                    return ExitCode::from(255);
                                }
                            },
                        }
                        ExitCode::from(exit_code(&previews))
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(255)
                    }
                }
            }
            Err(_) => ExitCode::from(255),
        },
        Command::Run(cmd) => {
            nomad_operator::telemetry::init(cmd.run.log_format);
            let runtime = match runtime() {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            runtime.block_on(nomad_operator::operator::run(*cmd, shutdown_signal()))
        }
    }
}

/// The async runtime, or the exit code after saying why there is none.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: starting the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
