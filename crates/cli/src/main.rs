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
    /// Store a cluster network in the cluster store, or show it.
    Cluster(commands::cluster::ClusterArgs),
    /// List the cluster's nodes, or remove one.
    Node(commands::node::NodeArgs),
    /// Run the node agent.
    Agent(commands::agent::AgentArgs),
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    let cli = Cli::parse();
    // A long-running agent says what it does (the block it claimed, the
    // routes it programmed) at info; one-shot commands only warn.
    let default_level = match cli.command {
        Command::Agent(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        // Colour only for a person at a terminal: never in log files, pipes
        // or the lab's agent logs.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AKSNET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Plan(args) => commands::plan::run(&args),
        Command::Lab(args) => commands::lab::run(args),
        Command::Cluster(args) => commands::cluster::run(&args),
        Command::Node(args) => commands::node::run(&args),
        Command::Agent(args) => commands::agent::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aksnet: {}", error_chain(&e));
            ExitCode::from(commands::EXIT_UNUSABLE)
        }
    }
}

/// The error and its causes joined with ": ", leaving out a cause whose text
/// the message before it already contains (many library errors print their
/// source themselves, and `{:#}` would then say everything twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
