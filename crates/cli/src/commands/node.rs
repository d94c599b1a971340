//! `aksnet node list|remove`.

use std::process::ExitCode;

use aksnet_agent::claims;
use aksnet_agent::kv::{Compare, Op};
use aksnet_agent::view::ClusterView;
use aksnet_core::cluster::{self, Condition, IpRange, NodeRecord, RouteMode};
use clap::{Args, Subcommand};
use serde::Serialize;

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
}

/// One row of `node list` (its JSON form is a stable contract).
#[derive(Debug, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    pub routes: RouteMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<ipnet::Ipv4Net>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pool: Vec<IpRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_used: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_slot: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<String>,
    pub conditions: Vec<Condition>,
}

pub fn rows(view: &ClusterView) -> Vec<NodeRow> {
    view.nodes
        .values()
        .map(|at| {
            let n: &NodeRecord = &at.value;
            let size: u64 = n.pool.iter().map(|r| r.len()).sum();
            NodeRow {
                name: n.name.clone(),
                ip: n.ip,
                routes: n.routes,
                block: n.block,
                pool: n.pool.clone(),
                pool_size: (!n.pool.is_empty()).then_some(size),
                pool_used: n.pool_used,
                route_slot: view.route_slots_of(&n.name).next(),
                vtep_mac: n.vtep_mac.clone(),
                conditions: n.conditions.clone(),
            }
        })
        .collect()
}

pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        NodeCommand::List(a) => {
            let (_, view) = open_view(&a.store)?;
            let rows = rows(&view);
            match a.output {
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "nodes": rows }))?
                ),
                Output::Table => print!("{}", render::cluster::nodes(&rows)),
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Remove(a) => remove(a),
    }
}

/// Exit 0 when the node is gone, 1 when the store knows no such node.
fn remove(args: &RemoveArgs) -> anyhow::Result<ExitCode> {
    let (kv, view) = open_view(&args.store)?;
    let known = view.nodes.contains_key(&args.name)
        || view.blocks_of(&args.name).next().is_some()
        || view
            .ips
            .values()
            .any(|c| c.value.as_ref().is_some_and(|c| c.node == args.name))
        || view.route_slots_of(&args.name).next().is_some();
    if !known {
        eprintln!(
            "aksnet node remove: no node '{}' in {} (see `aksnet node list`)",
            args.name, args.store.url
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if let Some(at) = view.nodes.get(&args.name) {
        let key = cluster::node_key(&args.name);
        kv.txn(
            &[Compare::ModRevision(key.clone(), at.mod_revision)],
            &[Op::Delete(key)],
        )?;
    }
    let view = ClusterView::read(kv.as_ref())?;
    if view.nodes.contains_key(&args.name) {
        anyhow::bail!(
            "node '{}' was re-registered while being removed; stop its agent first",
            args.name
        );
    }
    let released = claims::release_node(kv.as_ref(), &view, &args.name)?;
    println!("node {} removed; {released} claim(s) released", args.name);
    Ok(ExitCode::SUCCESS)
}
