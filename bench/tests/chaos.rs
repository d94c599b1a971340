//! The CI rounds of the chaos test: `cni-chaos` with 300 calls from 16
//! workers, a quarter of the plugins killed mid-call, the agent killed
//! and restarted, and the store faulted during the run (SQLite locked, or
//! an etcd member killed and restarted); then recovery. Every count the
//! issue names must be 0, and every fault must have happened.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Runs `cni-chaos` with `args` (after `--json`) and checks every count the
/// issue names is 0 and every fault in `faults` happened.
fn chaos_round(test: &str, tools: &[&str], args: &[&str], faults: &[&str]) {
    let chaos = env!("CARGO_BIN_EXE_cni-chaos");
    let dir = Path::new(chaos).parent().unwrap_or(Path::new("."));
    let mut missing = aksnet_linux::testing::missing(tools);
    for b in ["aksnet", "aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        if !dir.join(b).is_file() {
            missing.push(format!(
                "{} (cargo build --workspace --bins)",
                dir.join(b).display()
            ));
        }
    }
    if !aksnet_linux::testing::ready(test, &missing) {
        return;
    }
    let out = Command::new(chaos)
        .arg("--json")
        .args(args)
        .output()
        .expect("run cni-chaos");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cni-chaos printed no JSON ({e}):\n{stderr}"));
    let r = &v["runs"][0];
    eprintln!("{r:#}");
    assert!(out.status.success(), "{r:#}\n{stderr}");
    for k in [
        "duplicates",
        "leaked_addresses",
        "leaked_files",
        "leaked_veths",
        "leaked_routes",
        "leaked_nft",
        "leaked_netns",
        "unreachable",
        "connection_breaks",
    ] {
        assert_eq!(r[k], 0, "{k}: {r:#}\n{stderr}");
    }
    let ops: u64 = args
        .windows(2)
        .find(|w| w[0] == "--ops")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(600);
    assert_eq!(r["ops"], ops);
    for k in faults {
        assert!(r[*k].as_u64().unwrap_or(0) > 0, "no {k}: {r:#}");
    }
}

/// The same round on a three-member etcd cluster, one member killed and
/// restarted in turn while the calls run.
#[test]
fn a_short_chaos_round_on_etcd_with_members_killed_is_clean() {
    chaos_round(
        "a_short_chaos_round_on_etcd_with_members_killed_is_clean",
        &["ip", "nft", "etcd"],
        &[
            "--store",
            "etcd",
            "--ops",
            "300",
            "--seed",
            "43",
            "--agent-kill-ms",
            "1000",
            "--etcd-member-stop-every-ms",
            "1500",
            "--etcd-member-down-ms",
            "1000",
        ],
        &[
            "plugin_kills",
            "agent_restarts",
            "etcd_member_stops",
            "survivors",
        ],
    );
}

#[test]
fn a_short_chaos_round_is_clean() {
    chaos_round(
        "a_short_chaos_round_is_clean",
        &["ip", "nft"],
        &[
            "--ops",
            "300",
            "--seed",
            "42",
            "--agent-kill-ms",
            "1000",
            "--store-lock-ms",
            "800",
            "--store-lock-every-ms",
            "1500",
        ],
        &["plugin_kills", "agent_restarts", "store_locks", "survivors"],
    );
}
