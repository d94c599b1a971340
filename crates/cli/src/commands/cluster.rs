//! `aksnet cluster init|show`: the cluster network in the store.

use std::process::ExitCode;

use aksnet_agent::kv::{create_all, Kv};
use aksnet_agent::view::{read_network, ClusterView};
use aksnet_core::cluster::{ClusterNetwork, NETWORK_KEY};
use aksnet_core::planner;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::design::DesignArgs;
use super::store::StoreArgs;
use super::{Output, EXIT_INVALID, EXIT_UNUSABLE};
use crate::render;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Store a cluster network design (refused when the planner rejects it).
    Init(Box<InitArgs>),
    /// Show the stored design and how much of it is in use.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub design: DesignArgs,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

pub fn run(args: &ClusterArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ClusterCommand::Init(a) => init(a),
        ClusterCommand::Show(a) => show(a),
    }
}

/// Exit 0 when stored (or already stored identically), 1 when the planner
/// rejects the design, 2 when the input is unusable or the store already
/// holds another design.
fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let input = match args.design.to_input() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("aksnet cluster init: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let plan = match planner::plan_input(&input) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("aksnet cluster init: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    if !plan.valid {
        eprintln!("aksnet cluster init: the planner rejects this design; nothing was stored");
        for f in &plan.errors {
            eprintln!("  {}: {}", f.code, f.message);
        }
        if args.output == Output::Json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let kv = args.store.open()?;
    let value = serde_json::to_vec(&plan.network)?;
    let created = create_all(kv.as_ref(), &[(NETWORK_KEY.to_string(), value)], None)?;
    if !created {
        let existing = read_network(kv.as_ref())?;
        if existing != plan.network {
            eprintln!(
                "aksnet cluster init: {} already holds a different {} design; use a new store, or `aksnet cluster show` to see it",
                args.store.url,
                existing.network_plugin
            );
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    }
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "created": created,
                "store": args.store.url,
                "network": plan.network,
            }))?
        ),
        Output::Table => {
            let verb = if created {
                "initialised"
            } else {
                "already initialised"
            };
            println!("cluster {verb} in {}", args.store.url);
            print!("{}", render::cluster::network(&plan.network));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How much of the design is in use.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub nodes: usize,
    pub blocks_claimed: usize,
    pub blocks_total: u64,
    pub routes_used: usize,
    pub route_table_limit: u32,
    pub pod_ips_claimed: usize,
    pub node_ips_claimed: usize,
}

pub fn usage(net: &ClusterNetwork, view: &ClusterView) -> Usage {
    use aksnet_core::cluster::ClaimKind;
    let count_ips = |k: ClaimKind| {
        view.ips
            .values()
            .filter(|c| c.value.as_ref().is_some_and(|c| c.kind == k))
            .count()
    };
    Usage {
        nodes: view.nodes.len(),
        blocks_claimed: view.blocks.len(),
        blocks_total: net
            .effective_pod_cidr()
            .map(|c| aksnet_core::cidr::subnet_count(&c, 24))
            .unwrap_or(0),
        routes_used: view.routes.len(),
        route_table_limit: net.route_table_limit,
        pod_ips_claimed: count_ips(ClaimKind::PodIp),
        node_ips_claimed: count_ips(ClaimKind::NodeIp),
    }
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let kv = args.store.open()?;
    let net = read_network(kv.as_ref())?;
    let view = ClusterView::read(kv.as_ref()).context("reading the cluster")?;
    let u = usage(&net, &view);
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "network": net, "usage": u }))?
        ),
        Output::Table => {
            print!("{}", render::cluster::network(&net));
            print!("{}", render::cluster::usage(&net, &u));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Used by `node` too.
pub fn open_view(store: &StoreArgs) -> anyhow::Result<(std::sync::Arc<dyn Kv>, ClusterView)> {
    let kv = store.open()?;
    let view = ClusterView::read(kv.as_ref())?;
    Ok((kv, view))
}
