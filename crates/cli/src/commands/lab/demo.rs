//! `aksnet lab demo`: a small lab of each model in turn, checked, compared
//! in one table, and torn down.

use std::process::ExitCode;

use aksnet_lab::check::CheckReport;
use aksnet_lab::expect::Kind;
use aksnet_lab::lab::{self, UpOptions};
use aksnet_lab::state::LabDir;
use aksnet_lab::teardown;
use clap::Args;
use serde_json::json;

use super::{render, BinArg, OutputArg};
use crate::commands::design::DesignArgs;
use crate::commands::{Output, EXIT_INVALID};

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    #[arg(long, default_value_t = 2)]
    pub pods_per_node: u32,
    /// Labs are named PREFIX-kubenet, PREFIX-azure, PREFIX-overlay.
    #[arg(long, default_value = "demo")]
    pub prefix: String,
    #[command(flatten)]
    pub bin: BinArg,
    #[command(flatten)]
    pub output: OutputArg,
}

const MODELS: [(&str, Option<&str>); 3] = [
    ("kubenet", None),
    ("azure", None),
    ("azure", Some("overlay")),
];

pub fn run(a: &DemoArgs) -> anyhow::Result<ExitCode> {
    let env = super::env(&a.bin)?;
    let json_out = a.output.output == Output::Json;
    let mut reports: Vec<CheckReport> = vec![];
    for (plugin, mode) in MODELS {
        let design = DesignArgs {
            network_plugin: Some(plugin.into()),
            network_plugin_mode: mode.map(str::to_string),
            ..Default::default()
        };
        let network = match super::design(&design, a.nodes)? {
            Ok(n) => n,
            Err(code) => return Ok(code),
        };
        let name = format!("{}-{}", a.prefix, network.network_plugin.as_str());
        let d = LabDir::new(&name)?;
        if !json_out {
            errln!("== {name}: up");
        }
        let bar = super::bar(json_out);
        let up = lab::up(
            &env,
            &UpOptions {
                name: name.clone(),
                network,
                nodes: a.nodes,
                pods_per_node: a.pods_per_node,
                vm_subnet: None,
                store: None,
            },
            &bar,
        );
        bar.done();
        let checked = up
            .map_err(anyhow::Error::from)
            .and_then(|_| check_service(&d, &name))
            .and_then(|_| lab::check(&d).map_err(anyhow::Error::from));
        let down = teardown::down(&d);
        let report = checked?;
        let down = down?;
        if !down.left.is_empty() {
            anyhow::bail!("lab {name} was not fully removed: {}", down.left.join(", "));
        }
        if !json_out {
            out!("{}", render::check(&report));
            errln!(
                "== {name}: down ({} namespaces removed)\n",
                down.namespaces_removed.len()
            );
        }
        reports.push(report);
    }
    if json_out {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "models": reports }))?
        );
    } else {
        out!("{}", comparison(&reports));
    }
    Ok(if reports.iter().all(CheckReport::all_match) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// The Service the demo's `pod-to-service`, `node-to-nodeport` and
/// `pod-to-own-service` pairs go through: `default/lab-check`, a NodePort
/// Service without a selector whose EndpointSlice lists the lab's first pod
/// on port 80 (every lab pod's probe server listens there), applied as a user
/// would, with `aksnet apply --lab`.
fn check_service(d: &LabDir, name: &str) -> anyhow::Result<()> {
    let state = d.load()?;
    // One endpoint, the first pod: the others reach it as a Service, and
    // it reaches itself through its Service for certain (a hairpin).
    let endpoints: Vec<serde_json::Value> = state
        .pods
        .iter()
        .take(1)
        .filter_map(|p| {
            Some(json!({
                "addresses": [p.ip?.to_string()],
                "conditions": {"ready": true},
                "nodeName": p.node,
                "targetRef": {"kind": "Pod", "namespace": p.namespace, "name": p.name},
            }))
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "lab-check", "namespace": "default"},
         "spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 80}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "lab-check-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "lab-check"}},
         "addressType": "IPv4",
         "ports": [{"port": 80, "protocol": "TCP"}],
         "endpoints": endpoints},
    ]});
    let mut ch = std::process::Command::new(std::env::current_exe()?)
        .args(["apply", "--lab", name, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = ch.stdin.take() {
        use std::io::Write;
        stdin.write_all(list.to_string().as_bytes())?;
    }
    let out = ch.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "lab {name}: applying the check Service failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn comparison(reports: &[CheckReport]) -> String {
    let mut t = crate::render::table();
    let title = |p: &str| match p {
        "kubenet" => "kubenet",
        "azure" => "Azure CNI (node subnet)",
        _ => "Azure CNI Overlay",
    };
    let mut header = vec![String::new()];
    header.extend(reports.iter().map(|r| title(&r.network_plugin).to_string()));
    t.set_header(header);
    let row = |label: &str, f: &dyn Fn(&CheckReport) -> String| {
        let mut v = vec![label.to_string()];
        v.extend(reports.iter().map(f));
        v
    };
    t.add_row(row("pod addresses", &|r| r.pod_ranges.join("\n")));
    for k in Kind::ALL {
        t.add_row(row(k.as_str(), &|r| render::kind_cell(r, k)));
    }
    t.add_row(row("route-table entries", &|r| {
        r.route_table_entries.to_string()
    }));
    t.add_row(row("VNet IPs used", &|r| r.vnet_ips_used.to_string()));
    t.add_row(row("matches DESIGN §1", &|r| {
        format!(
            "{} of {}",
            r.results.len() - r.mismatches(),
            r.results.len()
        )
    }));
    format!("{t}\n")
}
