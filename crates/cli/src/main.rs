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
    /// Store Kubernetes objects (Namespace, Pod, Deployment, Service, EndpointSlice, NetworkPolicy) from manifests.
    Apply(commands::k8s::apply::ApplyArgs),
    /// Show Kubernetes objects of the store, as kubectl get does.
    Get(commands::k8s::get::GetArgs),
    /// Delete Kubernetes objects from the store.
    Delete(commands::k8s::delete::DeleteArgs),
    /// Serve cluster DNS (the Kubernetes DNS specification) from the store; forward other names.
    Dns(commands::dns::DnsArgs),
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
        Command::Cluster(args) => commands::cluster::run(&args),
        Command::Node(args) => commands::node::run(&args),
        Command::Agent(args) => commands::agent::run(&args),
        Command::Apply(args) => commands::k8s::apply::run(&args),
        Command::Get(args) => commands::k8s::get::run(&args),
        Command::Delete(args) => commands::k8s::delete::run(&args),
        Command::Dns(args) => commands::dns::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aksnet: {e:#}");
            ExitCode::from(commands::EXIT_UNUSABLE)
        }
    }
}
