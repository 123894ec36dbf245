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
    /// Print the NomadJob CustomResourceDefinition as YAML (what crds/nomadjob.yaml holds).
    ///
    /// Example: nomad-operator crd | kubectl apply -f -
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match nomad_operator::crdgen::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(cmd) => {
            nomad_operator::telemetry::init(cmd.run.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("error: starting the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(nomad_operator::operator::run(*cmd, shutdown_signal()))
        }
    }
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
