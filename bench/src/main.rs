//! `cni-bench`: aksnet-cni (bridge mode, in-process aksnet-ipam) against the
//! reference `bridge` + `host-local` given the equivalent configuration, in
//! the same run, inside a "host" network namespace the bench creates.
//!
//! Per round and plugin: N sequential ADDs then N sequential DELs, each
//! timed as a whole process (spawn to exit); then a burst of N parallel
//! ADDs (total wall time) and N parallel DELs. Plugins alternate which goes
//! first from round to round. Nothing touches the root namespace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Benchmark aksnet-cni against the reference bridge + host-local plugins")]
struct Args {
    /// Pods per phase.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Directory holding aksnet-cni (default: beside this binary).
    #[arg(long)]
    aksnet_dir: Option<PathBuf>,
    /// Directory holding the reference plugins.
    #[arg(long, default_value = "/usr/lib/cni")]
    ref_dir: PathBuf,
    /// Print the summary as JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct Ns {
    name: String,
    path: String,
}

impl Ns {
    fn new(name: String) -> Result<Ns> {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .context("run ip netns add")?;
        if !st.success() {
            bail!("ip netns add {name} failed");
        }
        let path = format!("/run/netns/{name}");
        Ok(Ns { name, path })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

struct Plugin {
    label: &'static str,
    bin: PathBuf,
    cni_path: String,
    conf: Value,
    data_dir: PathBuf,
}

/// Run one plugin invocation (the bench process is in the host namespace
/// already, so the child is spawned without a pre-exec hook: posix_spawn,
/// the cheapest spawn, for both plugins alike); its wall time.
fn invoke(p: &Plugin, cmd: &str, id: &str, netns: &str) -> Result<Duration> {
    let stdin = p.conf.to_string();
    let mut c = Command::new(&p.bin);
    c.env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_NETNS", netns)
        .env("CNI_PATH", &p.cni_path)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = c
        .spawn()
        .with_context(|| format!("spawn {}", p.bin.display()))?;
    if let Some(mut s) = child.stdin.take() {
        s.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let dt = t0.elapsed();
    if !out.status.success() {
        bail!(
            "{} {cmd} {id} failed: {} {}",
            p.label,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(dt)
}

#[derive(Default)]
struct Samples {
    add: Vec<Duration>,
    del: Vec<Duration>,
    burst_add: Vec<Duration>,
    burst_del: Vec<Duration>,
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    s[i.min(s.len() - 1)]
}

fn round(p: &Plugin, pods: &[Ns], s: &mut Samples, round: usize) -> Result<()> {
    for (i, pod) in pods.iter().enumerate() {
        s.add
            .push(invoke(p, "ADD", &format!("r{round}s{i}"), &pod.path)?);
    }
    for (i, pod) in pods.iter().enumerate() {
        s.del
            .push(invoke(p, "DEL", &format!("r{round}s{i}"), &pod.path)?);
    }
    let burst = |cmd: &'static str| -> Result<Duration> {
        let t0 = Instant::now();
        std::thread::scope(|sc| -> Result<()> {
            let hs: Vec<_> = pods
                .iter()
                .enumerate()
                .map(|(i, pod)| {
                    sc.spawn(move || invoke(p, cmd, &format!("r{round}b{i}"), &pod.path))
                })
                .collect();
            for h in hs {
                h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??;
            }
            Ok(())
        })?;
        Ok(t0.elapsed())
    };
    s.burst_add.push(burst("ADD")?);
    s.burst_del.push(burst("DEL")?);
    let left = std::fs::read_dir(p.data_dir.join("bench"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
                })
                .count()
        })
        .unwrap_or(0);
    if left != 0 {
        bail!("{}: {left} addresses still allocated after DEL", p.label);
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !aksnet_linux::process::is_root() {
        bail!("cni-bench needs root (it creates network namespaces)");
    }
    let ours_dir = match args.aksnet_dir.clone() {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .context("no directory for this binary")?,
    };
    for p in [
        ours_dir.join("aksnet-cni"),
        args.ref_dir.join("bridge"),
        args.ref_dir.join("host-local"),
    ] {
        if !p.is_file() {
            bail!("{} is missing", p.display());
        }
    }
    let pid = std::process::id();
    let tmp = std::env::temp_dir().join(format!("cni-bench-{pid}"));
    std::fs::create_dir_all(&tmp)?;
    let host = Ns::new(format!("cnib-host-{pid}"))?;
    let pods: Vec<Ns> = (0..args.count)
        .map(|i| Ns::new(format!("cnib-{pid}-{i}")))
        .collect::<Result<_>>()?;
    // Move this process (its only thread so far) into the host namespace:
    // every plugin it spawns starts there, and the root namespace is never
    // touched.
    // The guard lives until main returns, so the thread stays in the host.
    let _in_host = aksnet_linux::Netns::open(&host.path)
        .and_then(|ns| ns.enter())
        .with_context(|| format!("setns into {}", host.path))?;
    let common = |bridge: &str, subnet: &str, gw: &str, ipam: &str, dir: &Path| {
        json!({"cniVersion": "1.0.0", "name": "bench", "bridge": bridge, "isGateway": true,
            "mtu": 1500, "promiscMode": true, "hairpinMode": false, "ipMasq": false,
            "ipam": {"type": ipam, "ranges": [[{"subnet": subnet, "gateway": gw}]],
                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": dir.display().to_string()}})
    };
    let mut ours_conf = common(
        "cbr0",
        "10.244.0.0/24",
        "10.244.0.1",
        "aksnet-ipam",
        &tmp.join("ours"),
    );
    ours_conf["type"] = json!("aksnet-cni");
    ours_conf["mode"] = json!("bridge");
    let mut ref_conf = common(
        "cbr1",
        "10.245.0.0/24",
        "10.245.0.1",
        "host-local",
        &tmp.join("ref"),
    );
    ref_conf["type"] = json!("bridge");
    let plugins = [
        Plugin {
            label: "aksnet-cni (bridge, aksnet-ipam in-process)",
            bin: ours_dir.join("aksnet-cni"),
            cni_path: format!("{}:{}", ours_dir.display(), args.ref_dir.display()),
            conf: ours_conf,
            data_dir: tmp.join("ours"),
        },
        Plugin {
            label: "reference bridge + host-local",
            bin: args.ref_dir.join("bridge"),
            cni_path: args.ref_dir.display().to_string(),
            conf: ref_conf,
            data_dir: tmp.join("ref"),
        },
    ];
    let mut samples = [Samples::default(), Samples::default()];
    for r in 0..args.rounds {
        let order: [usize; 2] = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            round(&plugins[i], &pods, &mut samples[i], r)?;
        }
        eprintln!("round {}/{} done", r + 1, args.rounds);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let row = |s: &Samples| {
        json!({
            "add_median_ms": pct(&s.add, 0.5), "add_p95_ms": pct(&s.add, 0.95),
            "del_median_ms": pct(&s.del, 0.5), "del_p95_ms": pct(&s.del, 0.95),
            "burst_add_ms_median": pct(&s.burst_add, 0.5),
            "burst_del_ms_median": pct(&s.burst_del, 0.5),
        })
    };
    let (o, f) = (row(&samples[0]), row(&samples[1]));
    let ratio = |k: &str| f[k].as_f64().unwrap_or(f64::NAN) / o[k].as_f64().unwrap_or(f64::NAN);
    let summary = json!({
        "count": args.count, "rounds": args.rounds,
        "aksnet": o, "reference": f,
        "add_speedup": ratio("add_median_ms"), "del_speedup": ratio("del_median_ms"),
        "burst_add_speedup": ratio("burst_add_ms_median"),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!(
        "{} sequential ADDs then DELs, then a burst of {} parallel ADDs and DELs; {} rounds; whole-process times in ms\n",
        args.count, args.count, args.rounds
    );
    println!("| plugin | ADD median | ADD p95 | DEL median | DEL p95 | burst ADD wall (median) | burst DEL wall (median) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (p, r) in plugins.iter().zip([&o, &f]) {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} |",
            p.label,
            r["add_median_ms"].as_f64().unwrap_or(f64::NAN),
            r["add_p95_ms"].as_f64().unwrap_or(f64::NAN),
            r["del_median_ms"].as_f64().unwrap_or(f64::NAN),
            r["del_p95_ms"].as_f64().unwrap_or(f64::NAN),
            r["burst_add_ms_median"].as_f64().unwrap_or(f64::NAN),
            r["burst_del_ms_median"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "\nADD median: reference / aksnet = {:.2}×; DEL median: {:.2}×; burst ADD: {:.2}×",
        summary["add_speedup"].as_f64().unwrap_or(f64::NAN),
        summary["del_speedup"].as_f64().unwrap_or(f64::NAN),
        summary["burst_add_speedup"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}
