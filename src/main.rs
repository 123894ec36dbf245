//! The `nomad-operator` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    }
}
