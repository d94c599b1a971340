//! The CI round of the chaos test: `cni-chaos` with 300 calls from 16
//! workers, a quarter of the plugins killed mid-call, the agent killed
//! and restarted and the store locked during the run; then recovery. Every
//! count the issue names must be 0, and every fault must have happened.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_chaos_round_is_clean() {
    let chaos = env!("CARGO_BIN_EXE_cni-chaos");
    let dir = Path::new(chaos).parent().unwrap_or(Path::new("."));
    let mut missing = aksnet_linux::testing::missing(&["ip", "nft"]);
    for b in ["aksnet", "aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        if !dir.join(b).is_file() {
            missing.push(format!(
                "{} (cargo build --workspace --bins)",
                dir.join(b).display()
            ));
        }
    }
    if !aksnet_linux::testing::ready("a_short_chaos_round_is_clean", &missing) {
        return;
    }
    let out = Command::new(chaos)
        .args(["--ops", "300", "--seed", "42", "--json"])
        .args([
            "--agent-kill-ms",
            "1000",
            "--store-lock-ms",
            "800",
            "--store-lock-every-ms",
            "1500",
        ])
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
    assert_eq!(r["ops"], 300);
    for k in ["plugin_kills", "agent_restarts", "store_locks", "survivors"] {
        assert!(r[k].as_u64().unwrap_or(0) > 0, "no {k}: {r:#}");
    }
}
