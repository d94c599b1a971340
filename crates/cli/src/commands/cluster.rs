//! `aksnet cluster init|show`: the cluster network in the store.

use std::process::ExitCode;

use aksnet_cluster::{read_network, ClusterError, ClusterView};
use aksnet_core::planner;
use aksnet_store::Store;
use anyhow::Context;
use clap::{Args, Subcommand};

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
            errln!("aksnet cluster init: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let plan = match planner::plan_input(&input) {
        Ok(p) => p,
        Err(e) => {
            errln!("aksnet cluster init: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    if !plan.valid {
        errln!("aksnet cluster init: the planner rejects this design; nothing was stored");
        for f in &plan.errors {
            errln!("  {}: {}", f.code, f.message);
        }
        if args.output == Output::Json {
            outln!("{}", serde_json::to_string_pretty(&plan)?);
        }
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let kv = args.store.open()?;
    let created = match aksnet_cluster::init_network(kv.as_ref(), &plan.network) {
        Ok(created) => created,
        Err(ClusterError::OtherNetwork { .. }) => {
            let existing = read_network(kv.as_ref())?;
            errln!(
                "aksnet cluster init: {} already holds a different {} design; use a new store, or `aksnet cluster show` to see it",
                args.store.url,
                existing.network_plugin
            );
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
        Err(e) => return Err(e.into()),
    };
    match args.output {
        Output::Json => outln!(
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
            outln!("cluster {verb} in {}", args.store.url);
            out!("{}", render::cluster::network(&plan.network));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let kv = args.store.open_existing()?;
    let net = read_network(kv.as_ref())?;
    let view = aksnet_cluster::read(kv.as_ref()).context("reading the cluster")?;
    let u = render::cluster::usage_of(&net, &view);
    match args.output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "network": net,
                "usage": u,
                "problems": view.problems,
            }))?
        ),
        Output::Table => {
            out!("{}", render::cluster::network(&net));
            out!("{}", render::cluster::usage(&net, &u));
        }
    }
    if !view.is_clean() {
        err!(
            "{}",
            render::cluster::problems("cluster show", &view.problems)
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    Ok(ExitCode::SUCCESS)
}

/// Used by `node` too.
pub fn open_view(store: &StoreArgs) -> anyhow::Result<(std::sync::Arc<dyn Store>, ClusterView)> {
    let kv = store.open_existing()?;
    let view = aksnet_cluster::read(kv.as_ref())?;
    Ok((kv, view))
}
