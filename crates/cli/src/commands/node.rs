//! `aksnet node list|remove`.

use std::process::ExitCode;

use aksnet_cluster::ClusterError;
use clap::{Args, Subcommand};

use super::cluster::open_view;
use super::store::StoreArgs;
use super::{Output, EXIT_INVALID};
use crate::render;

#[derive(Args, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: NodeCommand,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Nodes with their IP, block or pool, and conditions.
    List(ListArgs),
    /// Remove a node: its record, block, addresses and route go back to the cluster.
    Remove(RemoveArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The node's name.
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        NodeCommand::List(a) => {
            let (_, view) = open_view(&a.store)?;
            let rows = render::cluster::node_rows(&view);
            match a.output {
                Output::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "nodes": rows,
                        "problems": view.problems,
                    }))?
                ),
                Output::Table => out!("{}", render::cluster::nodes(&rows)),
            }
            // A record left out of the list is never a silent success.
            if !view.is_clean() {
                err!("{}", render::cluster::problems("node list", &view.problems));
                return Ok(ExitCode::from(EXIT_INVALID));
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Remove(a) => remove(a),
    }
}

/// Exit 0 when the node is gone, 1 when the store knows no such node.
fn remove(args: &RemoveArgs) -> anyhow::Result<ExitCode> {
    let kv = args.store.open_existing()?;
    match aksnet_cluster::remove_node(kv.as_ref(), &args.name) {
        Ok(r) => {
            match args.output {
                Output::Json => outln!(
                    "{}",
                    serde_json::json!({"removed": {"nodes": [&args.name]}, "claims_released": r.released})
                ),
                Output::Table => outln!(
                    "node {} removed; {} claim(s) released",
                    args.name,
                    r.released
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClusterError::NoNode { .. }) => {
            errln!(
                "aksnet node remove: no node '{}' in {} (see `aksnet node list`)",
                args.name,
                args.store.url
            );
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Err(e) => Err(e.into()),
    }
}
