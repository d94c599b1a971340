//! `aksnet`: plan an AKS cluster network, run its node agent, build a lab.

mod commands;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aksnet",
    version,
    about = "AKS pod networking (kubenet, Azure CNI, Azure CNI Overlay) for any Linux machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a cluster network design before it is built.
    Plan(commands::plan::PlanArgs),
    /// An Azure VNet with nodes and pods in network namespaces: the three models for real.
    Lab(commands::lab::LabArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AKSNET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(args) => commands::plan::run(&args),
        Command::Lab(args) => commands::lab::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aksnet: {e:#}");
            ExitCode::from(commands::EXIT_UNUSABLE)
        }
    }
}
