//! `aksnet explain [--store URL | --lab NAME] FROM TO [--port N]
//! [--protocol P] [--verify] [--output json]`: every step one connection
//! takes and why (routes, NAT, NSG, NetworkPolicy), and the verdict.
//!
//! FROM and TO are written as for `aksnet lab probe`: a pod
//! (`NAMESPACE/NAME`, or `NAME` in `default`), a node, `vm`, `internet`
//! (a lab only), and for TO also `svc/NAMESPACE/NAME`,
//! `nodeport/NAMESPACE/NAME@NODE`, `lb/NAMESPACE/NAME` or an IPv4 address.
//!
//! Exit status: 0 the flow is allowed (and, with `--verify`, the data plane
//! agrees); 1 it is denied, or `--verify` found the data plane disagreeing;
//! 2 unusable input (an unknown lab, store, pod, node or Service, `--verify`
//! without `--lab`, not root for `--verify`).

use std::process::ExitCode;
use std::time::Duration;

use aksnet_lab::explain::{self, Explanation, StepKind, World};
use aksnet_lab::probe::Protocol;
use aksnet_lab::targets;
use clap::Args;

use super::k8s::{Target, TargetArgs};
use super::{Output, EXIT_INVALID, EXIT_UNUSABLE};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// A pod (NAMESPACE/NAME, or NAME in default), a node, vm or internet (vm and internet: --lab only).
    pub from: String,
    /// FROM's forms, or svc/NAMESPACE/NAME, nodeport/NAMESPACE/NAME@NODE, lb/NAMESPACE/NAME, an IPv4 address.
    pub to: String,
    /// The port (default: the one TO implies, as for `lab probe`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// tcp or udp (default: the protocol of the port TO implies, else tcp).
    #[arg(long, value_name = "tcp|udp")]
    pub protocol: Option<String>,
    /// Also probe the flow in the lab and say whether the data plane agrees (needs --lab, root).
    #[arg(long)]
    pub verify: bool,
    /// How long one verifying probe waits for an answer.
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn unusable(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    errln!("aksnet explain: {msg}");
    Ok(ExitCode::from(EXIT_UNUSABLE))
}

pub fn run(a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let protocol = match a
        .protocol
        .as_deref()
        .map(str::parse::<Protocol>)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return unusable(format!("--protocol {e}")),
    };
    let target = match a.target.resolve() {
        Ok(t) => t,
        Err(e) => return unusable(e),
    };
    // The lab's state, or one made from the store's nodes and pods.
    let (state, snap, k8s, lab_dir) = match &target {
        Target::Lab(dir) => {
            let state = match dir.load() {
                Ok(s) => s,
                Err(e) => return unusable(e),
            };
            let snap = match aksnet_lab::store::snapshot(dir) {
                Ok(s) => s,
                Err(e) => return unusable(e),
            };
            let k8s = match aksnet_lab::kubelet::objects(dir) {
                Ok(k) => k,
                Err(e) => return unusable(e),
            };
            (state, snap, k8s, Some(dir.clone()))
        }
        Target::Store(url) => {
            if a.verify {
                return unusable("--verify probes a lab: give --lab NAME");
            }
            for t in [&a.from, &a.to] {
                if t == "vm" || t == "internet" {
                    return unusable(format!(
                        "'{t}' is a host of a lab; with --store only the cluster's pods, nodes and Services are known"
                    ));
                }
            }
            let store = match target.open() {
                Ok(s) => s,
                Err(e) => return unusable(e),
            };
            let snap = match aksnet_cluster::read(store.as_ref()) {
                Ok(s) => s,
                Err(e) => return unusable(e),
            };
            let k8s = match super::k8s::read(store.as_ref()) {
                Ok(s) => s.k8s,
                Err(e) => return unusable(e),
            };
            let Some(net) = snap.network.as_ref().map(|n| n.value.clone()) else {
                return unusable(format!(
                    "the store {url} holds no cluster network (`aksnet cluster init` writes one)"
                ));
            };
            let state = match explain::store_state(net, &snap, &k8s) {
                Ok(s) => s,
                Err(e) => return unusable(e),
            };
            (state, snap, k8s, None)
        }
    };
    let src = match targets::source(&state, &a.from) {
        Ok(s) => s,
        Err(e) => return unusable(e),
    };
    let dst = match targets::destination(&state, &k8s, &a.to, a.port, protocol) {
        Ok(d) => d,
        Err(e) => return unusable(e),
    };
    let world = World {
        state: &state,
        snap: &snap,
        k8s: &k8s,
        lab: lab_dir.is_some(),
    };
    let mut e = world.explain(&a.from, &a.to, src.ip, &dst);
    if a.verify {
        if let Err(err) = aksnet_lab::lab::require_root() {
            return unusable(err);
        }
        // One probe, or enough to meet every backend of a Service.
        let count = if e.paths.len() > 1 {
            (e.paths.len() as u32 * 4).min(40)
        } else {
            1
        };
        let outcomes = targets::run(&src, &dst, count, Duration::from_millis(a.timeout_ms))?;
        e.verification = Some(explain::verify(&e, &outcomes));
    }
    match a.output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&e)?),
        Output::Table => out!("{}", render(&e)),
    }
    let agrees = e.verification.as_ref().is_none_or(|v| v.agrees);
    Ok(if e.allowed && agrees {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

fn kind(k: StepKind) -> &'static str {
    match k {
        StepKind::Route => "route",
        StepKind::Dnat => "dnat",
        StepKind::Snat => "snat",
        StepKind::Nsg => "nsg",
        StepKind::Policy => "policy",
        StepKind::Deliver => "deliver",
        StepKind::Drop => "drop",
    }
}

/// The steps as numbered lines, per backend when there are several.
pub fn render(e: &Explanation) -> String {
    let mut out = format!(
        "{} ({}) → {} {}:{}/{}{}, {}\n",
        e.from,
        e.source_ip,
        e.to,
        e.address,
        e.port,
        e.protocol,
        e.service
            .as_ref()
            .map(|s| format!(" (Service {s})"))
            .unwrap_or_default(),
        e.network_plugin
    );
    let at_w = e
        .paths
        .iter()
        .flat_map(|p| p.steps.iter())
        .map(|s| s.at.chars().count())
        .max()
        .unwrap_or(0);
    for (i, p) in e.paths.iter().enumerate() {
        if let Some(b) = &p.backend {
            out.push_str(&format!(
                "\nbackend {} of {}: {}:{}{}: {}\n",
                i + 1,
                e.paths.len(),
                b.ip,
                b.port,
                b.pod
                    .as_ref()
                    .map(|x| format!(" (pod {x})"))
                    .unwrap_or_default(),
                if p.allowed { "allowed" } else { "denied" }
            ));
        }
        for (n, s) in p.steps.iter().enumerate() {
            out.push_str(&format!(
                "  {:>2}. {:<at_w$}  {:<7} {}{}\n",
                n + 1,
                s.at,
                kind(s.kind),
                if s.ok { "" } else { "DENIED: " },
                s.detail
            ));
        }
    }
    out.push_str(&format!("verdict: {}\n", e.verdict));
    if let Some(v) = &e.verification {
        out.push_str(&format!(
            "verified: {} of {} probes reached{}{}: {}\n",
            v.reached,
            v.probes,
            if v.answered_by.is_empty() {
                String::new()
            } else {
                format!(" {}", v.answered_by.join(", "))
            },
            v.source_ip_seen
                .as_ref()
                .map(|s| format!(" (source seen {s})"))
                .unwrap_or_default(),
            if v.agrees {
                "the data plane agrees".to_string()
            } else {
                format!(
                    "the data plane DISAGREES ({})",
                    v.note.as_deref().unwrap_or("?")
                )
            }
        ));
    }
    out
}
