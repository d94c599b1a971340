//! `aksnet status`: a node doctor. It reads the node's record (what its
//! agent published: directories, namespace, metrics address), re-derives
//! what the agent should have programmed from the store, and compares
//! with the node: one line per check, and for a failure what to run.
//!
//! Which node: `--node NAME` when given; else with `--netns PATH` the
//! record whose agent manages that namespace (same namespace inode); else
//! the one record whose agent runs without `--netns` on this host (same
//! hostname) and whose CNI conf directory exists here. None or several is
//! unusable input (exit 2), listing the candidates.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aksnet_agent::conflist::{self, ConflistParams, PodRanges};
use aksnet_agent::kernel::netlink::NetlinkKernel;
use aksnet_agent::kernel::Kernel;
use aksnet_agent::{routes, services, snat};
use aksnet_cluster::ClusterView;
use aksnet_core::cluster::{ClusterNetwork, NodeRecord, RouteMode};
use aksnet_core::k8s::Kind;
use aksnet_core::spec::NetworkPlugin;
use aksnet_nft::Driver;
use clap::Args;
use serde::Serialize;

use super::store::StoreArgs;
use super::{Output, EXIT_INVALID, EXIT_UNUSABLE};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The node's network namespace (a lab node's /run/netns/…): checks the
    /// node whose agent manages it.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// The node to check, by name (default: found from --netns or this host).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to run when it failed (empty when ok).
    pub fix: String,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok: true,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        ok: false,
        detail: detail.into(),
        fix: fix.into(),
    }
}

pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let unusable = |msg: String| {
        errln!("aksnet status: {msg}");
        Ok(ExitCode::from(EXIT_UNUSABLE))
    };
    let kv = match args.store.open_existing() {
        Ok(kv) => kv,
        Err(e) => return unusable(format!("{e:#}")),
    };
    let view = match aksnet_cluster::read(kv.as_ref()) {
        Ok(v) => v,
        Err(e) => return unusable(format!("cannot read {}: {e}", args.store.url)),
    };
    let Some(net) = view.network.as_ref().map(|n| n.value.clone()) else {
        return unusable(format!(
            "{} holds no cluster network (run `aksnet cluster init`)",
            args.store.url
        ));
    };
    let rec = match pick_node(&view, args) {
        Ok(r) => r.clone(),
        Err(msg) => return unusable(msg),
    };
    let snap = match super::k8s::read(kv.as_ref()) {
        Ok(s) => s,
        Err(e) => return unusable(format!("{e:#}")),
    };
    let services_in_store = snap.k8s.of_kind(Kind::Service, None).count();
    let pods = pods_on(&snap.k8s, &rec.name);
    let checks = run_checks(&view, &net, &rec, args, services_in_store, pods.as_ref());
    let all_ok = checks.iter().all(|c| c.ok);
    let text = match args.output {
        Output::Json => {
            let mut t = serde_json::to_string_pretty(&serde_json::json!({
                "node": rec.name,
                "checks": checks,
                "ok": all_ok,
            }))?;
            t.push('\n');
            t
        }
        Output::Table => {
            let mut t = format!("node {}\n", rec.name);
            for c in &checks {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                t.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
                if !c.ok {
                    t.push_str(&format!("     fix: {}\n", c.fix));
                }
            }
            t
        }
    };
    // A reader that stops early (`| head`) is not an error of the node's.
    crate::stdout::write_bytes(text.as_bytes());
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// The namespace's identity (device and inode of its nsfs file).
fn ns_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn pick_node<'a>(view: &'a ClusterView, args: &StatusArgs) -> Result<&'a NodeRecord, String> {
    let names = || {
        view.node_records()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = &args.node {
        return view
            .node(name)
            .ok_or_else(|| format!("no node {name} in the store (nodes: {})", names()));
    }
    let found: Vec<&NodeRecord> = if let Some(ns) = &args.netns {
        let want = ns_id(ns).ok_or_else(|| format!("--netns {}: no such file", ns.display()))?;
        view.node_records()
            .filter(|n| {
                n.agent
                    .as_ref()
                    .and_then(|a| a.netns.as_deref())
                    .and_then(|p| ns_id(Path::new(p)))
                    == Some(want)
            })
            .collect()
    } else {
        let host = hostname();
        view.node_records()
            .filter(|n| {
                n.agent.as_ref().is_some_and(|a| {
                    a.netns.is_none() && a.hostname == host && Path::new(&a.cni_conf_dir).is_dir()
                })
            })
            .collect()
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no node's agent runs {} (nodes: {}); name one with --node",
            match &args.netns {
                Some(p) => format!("in {}", p.display()),
                None => "on this host without --netns".into(),
            },
            names()
        )),
        many => Err(format!(
            "several nodes match ({}); name one with --node",
            many.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn run_checks(
    view: &ClusterView,
    net: &ClusterNetwork,
    rec: &NodeRecord,
    args: &StatusArgs,
    services_in_store: usize,
    pods: Option<&BTreeSet<Ipv4Addr>>,
) -> Vec<Check> {
    let info = rec.agent.clone().unwrap_or_default();
    let netns: Option<PathBuf> = info
        .netns
        .as_ref()
        .map(PathBuf::from)
        .or_else(|| args.netns.clone());
    let in_ns = netns
        .as_ref()
        .map(|p| {
            format!(
                "ip netns exec {} ",
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        })
        .unwrap_or_default();
    let restart = match &netns {
        Some(_) => format!(
            "restart the node's agent (`aksnet agent --node {} …`)",
            rec.name
        ),
        None => "systemctl restart aksnet-agent".to_string(),
    };
    let mut out = Vec::new();

    // The agent: its /healthz, then its lease (the record lives on it).
    out.push(match &info.metrics_addr {
        None if rec.agent.is_none() => fail(
            "agent",
            "the node record names no agent (written by an older agent?)",
            restart.clone(),
        ),
        None => ok(
            "agent",
            format!("pid {} (metrics off: health not asked)", info.pid),
        ),
        Some(addr) => match healthz(addr, netns.as_deref()) {
            Ok(line) if line.contains(" 200") => ok(
                "agent",
                format!("pid {}: /healthz on {addr} answers 200", info.pid),
            ),
            Ok(line) => fail(
                "agent",
                format!("/healthz on {addr}: {line}"),
                restart.clone(),
            ),
            Err(e) => fail("agent", format!("/healthz on {addr}: {e}"), restart.clone()),
        },
    });
    let lease = view.nodes.get(&rec.name).and_then(|r| r.lease);
    out.push(match lease {
        Some(id) => ok("lease", format!("record held by lease {id:x}")),
        None => fail(
            "lease",
            "the node record has no lease: nothing keeps it alive",
            restart.clone(),
        ),
    });

    // The conflist, re-rendered from the store.
    let ranges = match net.network_plugin {
        NetworkPlugin::Kubenet | NetworkPlugin::Overlay => rec.block.map(PodRanges::Block),
        NetworkPlugin::Azure => (!rec.pool.is_empty()).then(|| PodRanges::Pool {
            subnet: net.pod_subnet_cidr.unwrap_or(net.subnet_cidr).trunc(),
            ranges: rec.pool.clone(),
        }),
    };
    let conf_path = Path::new(&info.cni_conf_dir).join(conflist::FILE_NAME);
    out.push(conflist_check(
        net,
        ranges.as_ref(),
        &conf_path,
        &info.ipam_data_dir,
        &restart,
    ));

    // The kernel side, through the agent's own netlink and nft code.
    match NetlinkKernel::new(netns.as_deref()) {
        Err(e) => out.push(fail(
            "kernel",
            format!("cannot open the node's namespace: {e}"),
            "run as root, with the namespace the agent manages (--netns)",
        )),
        Ok(mut k) => {
            out.push(routes_check(view, net, rec, &mut k, &restart));
            out.push(snat_check(net, rec, &mut k, &in_ns, &restart));
            out.push(match k.list(&services::table_id()) {
                Err(e) => fail(
                    "services",
                    format!("cannot list the table: {e}"),
                    restart.clone(),
                ),
                Ok(Some(_)) => ok(
                    "services",
                    format!(
                        "table ip {} present ({services_in_store} Services in the store)",
                        services::TABLE
                    ),
                ),
                Ok(None) if services_in_store == 0 => {
                    ok("services", "no Services in the store, no table")
                }
                Ok(None) => fail(
                    "services",
                    format!(
                        "{services_in_store} Services in the store but no table ip {}",
                        services::TABLE
                    ),
                    restart.clone(),
                ),
            });
        }
    }
    out.push(ok("policy", "not programmed by this version"));
    out.extend(ipam_checks(
        ranges.as_ref(),
        Path::new(&info.ipam_data_dir),
        pods,
    ));
    out
}

/// `GET /healthz` from inside `netns`; the status line.
fn healthz(addr: &str, netns: Option<&Path>) -> Result<String, String> {
    let sa: SocketAddr = addr.parse().map_err(|e| format!("bad address: {e}"))?;
    let get = move || -> Result<String, String> {
        let mut s =
            TcpStream::connect_timeout(&sa, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: aksnet\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf);
        Ok(text.lines().next().unwrap_or("no answer").to_string())
    };
    let Some(path) = netns else { return get() };
    let ns = aksnet_linux::netns::Netns::open(path).map_err(|e| e.to_string())?;
    // Entering a namespace changes the calling thread: do it in a thread
    // of our own.
    std::thread::scope(|s| {
        s.spawn(|| {
            let _guard = ns.enter().map_err(|e| e.to_string())?;
            get()
        })
        .join()
        .unwrap_or_else(|_| Err("the namespace thread panicked".into()))
    })
}

fn conflist_check(
    net: &ClusterNetwork,
    ranges: Option<&PodRanges>,
    path: &Path,
    ipam_data_dir: &str,
    restart: &str,
) -> Check {
    let Some(ranges) = ranges else {
        return fail(
            "conflist",
            "the node holds no pod addresses in the store yet",
            restart,
        );
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail("conflist", format!("{}: {e}", path.display()), restart),
    };
    let found: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                "conflist",
                format!("{} is not JSON: {e}", path.display()),
                restart,
            )
        }
    };
    // The MTU comes from the node's link, which the store does not hold:
    // take the file's and compare everything else.
    let mtu = found["plugins"][0]["mtu"].as_u64().unwrap_or(1500) as u32;
    let want = conflist::render(&ConflistParams {
        plugin: net.network_plugin,
        ranges: ranges.clone(),
        mtu,
        ipam_data_dir: PathBuf::from(ipam_data_dir),
    });
    if want == found {
        ok("conflist", format!("{} equals the store's", path.display()))
    } else {
        fail(
            "conflist",
            format!("{} differs from what the store implies", path.display()),
            restart,
        )
    }
}

fn routes_check(
    view: &ClusterView,
    net: &ClusterNetwork,
    rec: &NodeRecord,
    k: &mut NetlinkKernel,
    restart: &str,
) -> Check {
    let others = view.node_records().filter(|n| n.name != rec.name);
    let desired = match (rec.routes, rec.block) {
        (RouteMode::HostGw, _) => routes::desired_host_gw(&rec.name, others),
        (RouteMode::Vxlan, Some(_)) => routes::vxlan::desired(&rec.name, others).routes,
        _ => vec![],
    };
    let current = match k.routes() {
        Ok(r) => r,
        Err(e) => {
            return fail(
                "routes",
                format!("cannot read the kernel's routes: {e}"),
                restart,
            )
        }
    };
    let d = routes::diff(&current, &desired);
    if !d.is_empty() {
        return fail(
            "routes",
            format!(
                "{} to add or change, {} to delete (of {} wanted)",
                d.replace.len(),
                d.delete.len(),
                desired.len()
            ),
            restart,
        );
    }
    // Kubenet on the fabric: the node's block in the cluster route table.
    if rec.routes == RouteMode::Fabric && net.network_plugin == NetworkPlugin::Kubenet {
        let held = view.route_slots_of(&rec.name).any(|s| {
            view.routes
                .get(&s)
                .and_then(|r| r.value.as_ref())
                .is_some_and(|e| Some(e.destination) == rec.block && e.next_hop == rec.ip)
        });
        if !held {
            return fail(
                "routes",
                "no route-table entry for the node's block",
                restart,
            );
        }
        return ok("routes", "fabric: the node's block is in the route table");
    }
    ok(
        "routes",
        format!("{} kernel routes equal the store's", desired.len()),
    )
}

fn snat_check(
    net: &ClusterNetwork,
    rec: &NodeRecord,
    k: &mut NetlinkKernel,
    in_ns: &str,
    restart: &str,
) -> Check {
    let policy = snat::policy(net, rec);
    if policy.pod_sources.is_empty() {
        return ok("snat", "no pod ranges yet: no table wanted");
    }
    let want = snat::desired(&policy);
    // A running agent reads the table back every 30 s and rewrites it; a
    // restart does it at once.
    let fix = format!(
        "{restart}: it rewrites table ip {} at once (a running agent does within 30 s); check with `{in_ns}nft list table ip {}`",
        snat::TABLE,
        snat::TABLE
    );
    match k.list(&snat::table_id()) {
        Err(e) => fail("snat", format!("cannot list the table: {e}"), fix),
        Ok(None) => fail("snat", format!("table ip {} is missing", snat::TABLE), fix),
        Ok(Some(l)) if l.matches(&want) => ok(
            "snat",
            format!(
                "table ip {} equals the store's ({} objects)",
                snat::TABLE,
                want.objects()
            ),
        ),
        Ok(Some(_)) => fail(
            "snat",
            format!("table ip {} differs from the store's", snat::TABLE),
            fix,
        ),
    }
}

/// The addresses of the store's Pods on `node`, when it has any: the
/// store is what the kubelet runs from, so a Pod there is a container the
/// runtime knows. `None` (no Pod on the node) judges no file by its Pod.
fn pods_on(k8s: &aksnet_core::k8s::K8sState, node: &str) -> Option<BTreeSet<Ipv4Addr>> {
    let mut any = false;
    let mut ips = BTreeSet::new();
    for o in k8s.of_kind(Kind::Pod, None) {
        let aksnet_core::k8s::Object::Pod(p) = o else {
            continue;
        };
        if p.spec.node_name.as_deref() != Some(node) {
            continue;
        }
        any = true;
        let status = p.status.as_ref();
        let all = status.and_then(|s| s.pod_ip.clone()).into_iter().chain(
            status
                .into_iter()
                .flat_map(|s| s.pod_ips.iter().map(|i| i.ip.clone())),
        );
        ips.extend(all.filter_map(|ip| ip.parse::<Ipv4Addr>().ok()));
    }
    any.then_some(ips)
}

/// The container an allocation file names (host-local's format:
/// `containerID\r\nifname`, or the ID alone).
fn container_of(dir: &Path, ip: Ipv4Addr) -> String {
    std::fs::read_to_string(dir.join(ip.to_string()))
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// Use per range, and allocation files whose container is gone: outside
/// the node's ranges, or (when the store has Pods on the node) held by no
/// Pod of the node. Only reported: the plugin's DEL (or its GC) removes
/// files, never this.
fn ipam_checks(
    ranges: Option<&PodRanges>,
    data_dir: &Path,
    pods: Option<&BTreeSet<Ipv4Addr>>,
) -> Vec<Check> {
    let allocated = match aksnet_agent::ipam_disk::allocated(data_dir) {
        Ok(a) => a,
        Err(e) => {
            return vec![fail(
                "ipam",
                e.to_string(),
                "check the IPAM data directory's permissions",
            )]
        }
    };
    let spans: Vec<(String, u32, u32)> = match ranges {
        Some(PodRanges::Block(b)) => vec![(
            b.trunc().to_string(),
            u32::from(b.network()) + 2,
            u32::from(b.broadcast()).saturating_sub(1),
        )],
        Some(PodRanges::Pool { ranges, .. }) => ranges
            .iter()
            .map(|r| {
                (
                    format!("{}-{}", r.start, r.end),
                    u32::from(r.start),
                    u32::from(r.end),
                )
            })
            .collect(),
        None => vec![],
    };
    let mut out = Vec::new();
    for (label, lo, hi) in &spans {
        let used = allocated
            .iter()
            .filter(|a| (*lo..=*hi).contains(&u32::from(**a)))
            .count();
        out.push(ok(
            "ipam",
            format!(
                "{label}: {used} of {} addresses used",
                hi.saturating_sub(*lo) + 1
            ),
        ));
    }
    let dir = aksnet_agent::ipam_disk::network_dir(data_dir);
    let stale: Vec<String> = allocated
        .iter()
        .copied()
        .filter_map(|a| {
            let inside = spans
                .iter()
                .any(|(_, lo, hi)| (*lo..=*hi).contains(&u32::from(a)));
            let why = if !inside {
                "outside the node's ranges"
            } else if pods.is_some_and(|p| !p.contains(&a)) {
                "no Pod of the node has it"
            } else {
                return None;
            };
            Some(format!("{a} (container {}: {why})", container_of(&dir, a)))
        })
        .collect();
    out.push(if stale.is_empty() {
        ok(
            "ipam-stale",
            format!(
                "{} allocation(s) in {}, none whose container is gone",
                allocated.len(),
                dir.display()
            ),
        )
    } else {
        fail(
            "ipam-stale",
            format!("{} allocation(s) whose container is gone: {}", stale.len(), stale.join(", ")),
            format!(
                "delete the pod if it still runs (CNI DEL frees the address); once sure no container uses it, rm {}/<IP>",
                dir.display()
            ),
        )
    });
    out
}
