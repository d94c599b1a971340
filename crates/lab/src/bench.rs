//! `lab bench`: iperf3 throughput pod → pod on the same node and across
//! nodes, against a bare veth pair between two fresh namespaces (same MTU)
//! measured in the same run, runs interleaved so drift hits all alike.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{LabError, Result};
use crate::ip;
use crate::netns;
use crate::process;
use crate::state::LabDir;
use crate::topology::netns_path;

const IPERF_PORT: &str = "5201";

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub case: String,
    pub from: String,
    pub to: String,
    /// Median of the runs, Gbit/s.
    pub gbits_per_sec: f64,
    pub runs: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub network_plugin: String,
    pub seconds_per_run: u32,
    pub repeats: u32,
    pub mtu: u32,
    pub rows: Vec<BenchRow>,
    /// Same-node pod → pod over the bare veth pair.
    pub same_node_ratio: Option<f64>,
    /// `/proc/loadavg` before the run: other work on the machine skews it.
    pub load_average: String,
}

struct Case {
    name: &'static str,
    from: String,
    to: String,
    from_ns: String,
    to_ns: String,
    to_ip: Ipv4Addr,
}

/// Runs the benchmark on lab `dir` (it must have a node with two pods).
pub fn run(dir: &LabDir, seconds: u32, repeats: u32) -> Result<BenchReport> {
    if !crate::lab::which("iperf3") {
        return Err(LabError::Invalid(
            "`iperf3` is not installed; install the iperf3 package".into(),
        ));
    }
    let state = dir.load()?;
    let names = state.names();
    let with_ip = |node: &str| -> Vec<(String, String, Ipv4Addr)> {
        state
            .pods_on(node)
            .filter_map(|p| Some((p.name.clone(), names.pod(p.node_index, p.index), p.ip?)))
            .collect()
    };
    let host = state
        .nodes
        .iter()
        .find(|n| with_ip(&n.name).len() >= 2)
        .ok_or_else(|| {
            LabError::Invalid(
                "bench needs a node with two pods; `aksnet lab add-pod` adds them".into(),
            )
        })?;
    let local = with_ip(&host.name);
    let mut cases = vec![Case {
        name: "pod-to-pod-same-node",
        from: local[0].0.clone(),
        to: local[1].0.clone(),
        from_ns: local[0].1.clone(),
        to_ns: local[1].1.clone(),
        to_ip: local[1].2,
    }];
    if let Some(remote) = state
        .nodes
        .iter()
        .filter(|n| n.name != host.name)
        .map(|n| with_ip(&n.name))
        .find(|v| !v.is_empty())
    {
        cases.push(Case {
            name: "pod-to-pod-cross-node",
            from: local[0].0.clone(),
            to: remote[0].0.clone(),
            from_ns: local[0].1.clone(),
            to_ns: remote[0].1.clone(),
            to_ip: remote[0].2,
        });
    }
    let mtu = link_mtu(&local[0].1, "eth0").unwrap_or(1500);
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let (a, b) = (names.bench("a"), names.bench("b"));
    let _cleanup = BenchNamespaces(vec![a.clone(), b.clone()]);
    ip::netns_batch(&[format!("netns add {a}"), format!("netns add {b}")])?;
    ip::batch(
        &a,
        &[
            "link set dev lo up".into(),
            format!("link add name veth0 mtu {mtu} type veth peer name veth0 netns {b}"),
            "addr add 198.18.0.1/30 dev veth0".into(),
            "link set dev veth0 up".into(),
        ],
    )?;
    ip::batch(
        &b,
        &[
            "link set dev lo up".into(),
            "addr add 198.18.0.2/30 dev veth0".into(),
            "link set dev veth0 up".into(),
        ],
    )?;
    cases.push(Case {
        name: "bare-veth-pair",
        from: "bench-a".into(),
        to: "bench-b".into(),
        from_ns: a.clone(),
        to_ns: b.clone(),
        to_ip: "198.18.0.2"
            .parse()
            .map_err(|_| LabError::Invalid("address".into()))?,
    });
    let mut runs: Vec<Vec<f64>> = vec![vec![]; cases.len()];
    for _ in 0..repeats.max(1) {
        for (i, c) in cases.iter().enumerate() {
            runs[i].push(iperf(&c.from_ns, &c.to_ns, c.to_ip, seconds)?);
        }
    }
    let rows: Vec<BenchRow> = cases
        .iter()
        .zip(runs)
        .map(|(c, r)| BenchRow {
            case: c.name.into(),
            from: c.from.clone(),
            to: c.to.clone(),
            gbits_per_sec: median(&r),
            runs: r,
        })
        .collect();
    let get = |n: &str| rows.iter().find(|r| r.case == n).map(|r| r.gbits_per_sec);
    let same_node_ratio = match (get("pod-to-pod-same-node"), get("bare-veth-pair")) {
        (Some(p), Some(v)) if v > 0.0 => Some(p / v),
        _ => None,
    };
    Ok(BenchReport {
        network_plugin: state.network.network_plugin.as_str().into(),
        seconds_per_run: seconds,
        repeats: repeats.max(1),
        mtu,
        rows,
        same_node_ratio,
        load_average,
    })
}

/// Removes the baseline namespaces however the run ends.
struct BenchNamespaces(Vec<String>);

impl Drop for BenchNamespaces {
    fn drop(&mut self) {
        let lines: Vec<String> = self
            .0
            .iter()
            .filter(|n| ip::netns_exists(n))
            .map(|n| format!("netns del {n}"))
            .collect();
        let _ = ip::netns_batch(&lines);
    }
}

fn link_mtu(ns: &str, dev: &str) -> Option<u32> {
    let v = ip::json(ns, &["link", "show", "dev", dev]).ok()?;
    v.get(0)?
        .get("mtu")?
        .as_u64()
        .and_then(|m| u32::try_from(m).ok())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// One iperf3 run (one TCP stream), Gbit/s received.
fn iperf(from_ns: &str, to_ns: &str, to: Ipv4Addr, seconds: u32) -> Result<f64> {
    let mut server = Command::new("iperf3");
    server
        .args(["-s", "-1", "-p", IPERF_PORT, "-B", &to.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    netns::command_in(&mut server, &netns_path(to_ns))?;
    let mut server = server.spawn().map_err(|source| LabError::Spawn {
        cmd: "iperf3 -s".into(),
        source,
    })?;
    let start = Instant::now();
    let result = loop {
        let out = client(from_ns, to, seconds)?;
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            break Ok(bps / 1e9);
        }
        let err = v["error"].as_str().unwrap_or("no result").to_string();
        if start.elapsed() > Duration::from_secs(5) {
            break Err(LabError::Invalid(format!("iperf3 {from_ns} → {to}: {err}")));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = server.kill();
    let _ = server.wait();
    process::reap(server.id());
    result
}

fn client(from_ns: &str, to: Ipv4Addr, seconds: u32) -> Result<Vec<u8>> {
    let mut c = Command::new("iperf3");
    c.args([
        "-c",
        &to.to_string(),
        "-p",
        IPERF_PORT,
        "-t",
        &seconds.to_string(),
        "-J",
    ])
    .stdin(Stdio::null())
    .stderr(Stdio::null());
    netns::command_in(&mut c, Path::new(&netns_path(from_ns)))?;
    let out = c.output().map_err(|source| LabError::Spawn {
        cmd: "iperf3 -c".into(),
        source,
    })?;
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_runs() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(super::median(&[]), 0.0);
    }
}
