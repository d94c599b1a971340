//! `aksnet lab probe [--name LAB] FROM TO [--port N] [--protocol tcp|udp]
//! [--count N] [--output json]`.
//!
//! Exit 0 when every probe reached a probe server, 1 when any did not, 2
//! for input that cannot be used (an unknown lab, pod, node or Service, a
//! TO of no known form, a Service without the address asked for).

use std::process::ExitCode;
use std::time::Duration;

use aksnet_lab::probe::Protocol;
use aksnet_lab::state::LabDir;
use aksnet_lab::{kubelet, targets};
use clap::Args;

use super::{render, NameArg, OutputArg};
use crate::commands::{Output, EXIT_INVALID, EXIT_UNUSABLE};

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// A pod (NAMESPACE/NAME, or NAME in default), a node (node-1), vm or internet.
    pub from: String,
    /// FROM's forms, apiserver, svc/NAMESPACE/NAME, nodeport/NAMESPACE/NAME@NODE, lb/NAMESPACE/NAME, an IPv4 address, or a DNS name resolved as a pod FROM resolves it (web, web.shop, example.com).
    pub to: String,
    /// The port to probe (default: the one TO implies: a pod's first container port, a Service's first port or its nodePort, else the lab's probe port 7777).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// tcp or udp (default: the protocol of the port TO implies, else tcp).
    #[arg(long, value_name = "tcp|udp")]
    pub protocol: Option<String>,
    /// Probes to make, one after the other (each a new connection).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// How long one probe waits for an answer.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub output: OutputArg,
}

fn unusable(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    errln!("aksnet lab probe: {msg}");
    Ok(ExitCode::from(EXIT_UNUSABLE))
}

pub fn run(a: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let protocol = match a
        .protocol
        .as_deref()
        .map(str::parse::<Protocol>)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return unusable(format!("--protocol {e}")),
    };
    let dir = match LabDir::new(&a.name.name) {
        Ok(d) => d,
        Err(e) => return unusable(e),
    };
    let state = match dir.load() {
        Ok(s) => s,
        Err(e) => return unusable(e),
    };
    let k8s = match kubelet::objects(&dir) {
        Ok(k) => k,
        Err(e) => return unusable(e),
    };
    let src = match targets::source(&state, &a.from) {
        Ok(s) => s,
        Err(e) => return unusable(e),
    };
    let dst = match targets::destination(&state, &k8s, &a.to, a.port, protocol) {
        Ok(d) => d,
        // Not a lab target: a name, resolved as FROM's resolver would.
        Err(e) => match targets::by_name(&state, &k8s, &src, &a.to, a.port, protocol) {
            Some(Ok(d)) => d,
            Some(Err(e)) => return unusable(e),
            None => return unusable(e),
        },
    };
    if let Err(e) = aksnet_lab::lab::require_root() {
        return unusable(e);
    }
    let outcomes = targets::run(&src, &dst, a.count, Duration::from_millis(a.timeout_ms))?;
    let rows: Vec<targets::Row> = outcomes
        .iter()
        .map(|o| targets::row(&state, &a.from, &a.to, &dst, o))
        .collect();
    match a.output.output {
        Output::Json => {
            for r in &rows {
                outln!("{}", serde_json::to_string(r)?);
            }
        }
        Output::Table => out!("{}", render::probes(&rows)),
    }
    Ok(if rows.iter().all(|r| r.reachable) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}
