//! `aksnet`: plan an AKS cluster network, run its node agent, build a lab.

// Output goes through `out!`/`outln!` (stdout.rs): `print!` panics when the
// reader has closed the pipe.
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod stdout;
mod commands;
mod render;

/// The commit reader the build script uses, for its unit tests.
#[cfg(test)]
#[path = "../build/git.rs"]
mod build_git;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aksnet",
    version = env!("AKSNET_VERSION"),
    about = "AKS pod networking (kubenet, Azure CNI, Azure CNI Overlay) for any Linux machine"
)]
pub struct Cli {
    /// Log lines on stderr as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a cluster network design before it is built.
    Plan(Box<commands::plan::PlanArgs>),
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
    /// Every step of one connection (routes, NAT, NSG, NetworkPolicy) and its verdict; --verify probes it in a lab.
    Explain(commands::explain::ExplainArgs),
    /// Serve cluster DNS (the Kubernetes DNS specification) from the store; forward other names.
    Dns(commands::dns::DnsArgs),
    /// Check a node: agent, lease, conflist, routes, nftables tables, IPAM (exit 1 when one fails).
    Status(commands::status::StatusArgs),
    /// Put the CNI plugins, aksnet and the agent's systemd unit on this node.
    Install(commands::install::InstallArgs),
    /// Remove what install put on the node (--purge: also what the agent made).
    Uninstall(commands::install::UninstallArgs),
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    Completions(commands::docs::CompletionsArgs),
    /// Write the man pages (aksnet.1, aksnet-SUBCOMMAND.1, …) into a directory.
    Man(commands::docs::ManArgs),
}

/// The CLI definition, for completions and man pages.
pub fn cli_command() -> clap::Command {
    Cli::command()
}

/// Logs on standard error: text (colour only for a person at a terminal,
/// never in log files, pipes or the lab's agent logs) or JSON lines.
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("AKSNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => fmt.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `aksnet plan -o json` answers in JSON whatever happens, a
            // flag clap refuses (`--node-count abc`) included.
            use clap::error::{ContextKind, ErrorKind};
            let usage = !matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            );
            if usage && commands::plan::wants_json(std::env::args().skip(1)) {
                let text = e.render().to_string();
                let message = text
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_string();
                let field = e.get(ContextKind::InvalidArg).map(|a| a.to_string());
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "valid": false,
                        "errors": [{"code": "input-unusable", "message": message, "field": field}],
                    }))
                    .unwrap_or_default()
                );
            }
            e.exit()
        }
    };
    // A long-running agent says what it does (the block it claimed, the
    // routes it programmed) at info; one-shot commands only warn.
    let default_level = match cli.command {
        Command::Agent(_) | Command::Dns(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, default_level);
    let result = match cli.command {
        Command::Plan(args) => commands::plan::run(&args),
        Command::Lab(args) => commands::lab::run(args),
        Command::Cluster(args) => commands::cluster::run(&args),
        Command::Node(args) => commands::node::run(&args),
        Command::Agent(args) => commands::agent::run(&args),
        Command::Apply(args) => commands::k8s::apply::run(&args),
        Command::Get(args) => commands::k8s::get::run(&args),
        Command::Delete(args) => commands::k8s::delete::run(&args),
        Command::Explain(args) => commands::explain::run(&args),
        Command::Dns(args) => commands::dns::run(&args),
        Command::Status(args) => commands::status::run(&args),
        Command::Install(args) => commands::install::run_install(&args),
        Command::Uninstall(args) => commands::install::run_uninstall(&args),
        Command::Completions(args) => commands::docs::run_completions(&args),
        Command::Man(args) => commands::docs::run_man(&args),
    };
    match result {
        // The output was cut short by a write error (not a reader that
        // stopped early): the result is not what the command says it is.
        Ok(_) if stdout::failed() => ExitCode::from(commands::EXIT_UNUSABLE),
        Ok(code) => code,
        Err(e) => {
            errln!("aksnet: {}", error_chain(&e));
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_names_the_commit_of_this_checkout() {
        let (commit, _) =
            crate::build_git::commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        let short = commit.as_deref().map(|c| &c[..12]).unwrap_or("unknown");
        let want = format!("{} (commit {short})", env!("CARGO_PKG_VERSION"));
        assert_eq!(env!("AKSNET_VERSION"), want);
        assert_eq!(crate::cli_command().get_version(), Some(want.as_str()));
    }
}
