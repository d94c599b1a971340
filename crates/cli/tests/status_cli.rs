//! `aksnet status` against a real lab, as root: a healthy node passes
//! every check (exit 0, in text and JSON); a node whose SNAT table was
//! deleted by hand fails the SNAT check with its fix (exit 1); an
//! allocation file no Pod holds is reported and left in place; a node
//! that cannot be found is unusable input (exit 2). The lab (name
//! `ak9-…`) is torn down however the test ends. Without root, `ip` or
//! `nft`, or the CNI plugins, the test says why and passes, except under
//! `CI=true`, where it fails.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aksnet_linux::testing;
use serde_json::Value;

fn aksnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env("AKSNET_LOG", "warn")
        .output()
        .expect("run aksnet")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn bin_dir() -> PathBuf {
    std::env::var_os("AKSNET_CNI_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_aksnet"))
                .parent()
                .unwrap()
                .to_path_buf()
        })
}

fn ready() -> bool {
    let mut missing = testing::missing(&["ip", "nft"]);
    for p in ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        if !bin_dir().join(p).exists() {
            missing.push(format!(
                "{p} in {} (cargo build -p aksnet-cni-plugins)",
                bin_dir().display()
            ));
        }
    }
    testing::ready("aksnet status tests", &missing)
}

/// Tears the lab down however the test ends.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let o = aksnet(&["lab", "down", "--name", &self.0]);
        if !o.status.success() && !std::thread::panicking() {
            panic!("lab down {}: {}", self.0, text(&o));
        }
    }
}

fn checks(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v}"))
}

#[test]
fn status_passes_a_healthy_node_and_names_a_deleted_snat_table() {
    if !ready() {
        return;
    }
    let name = format!("ak9-st{}", std::process::id() % 100_000);
    let up = aksnet(&["lab", "up", "--name", &name, "--network-plugin", "kubenet"]);
    let _lab = Lab(name.clone());
    assert!(up.status.success(), "lab up: {}", text(&up));
    let store = format!("sqlite:/run/aksnet/lab/{name}/cluster.db");
    let ns_name = format!("aksnet-lab-{name}-node-1");
    let netns = format!("/run/netns/{ns_name}");
    let args = ["status", "--store", &store, "--netns", &netns];

    // Healthy: every check ok, exit 0, the node found from its namespace.
    let o = aksnet(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("node node-1\n"), "{out}");
    for c in [
        "agent",
        "lease",
        "conflist",
        "routes",
        "snat",
        "services",
        "policy",
        "ipam",
        "ipam-stale",
    ] {
        assert!(out.contains(&format!("ok   {c}: ")), "{c} not ok:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    let mut ja = args.to_vec();
    ja.extend(["--output", "json"]);
    let j = checks(&aksnet(&ja));
    assert_eq!(j["node"], "node-1");
    assert_eq!(j["ok"], true, "{j}");
    assert!(check(&j, "snat")["detail"]
        .as_str()
        .unwrap()
        .contains("equals the store's"));
    assert_eq!(
        check(&j, "policy")["detail"],
        "not programmed by this version"
    );

    // The other node by name: its record says where its agent runs.
    let o = aksnet(&["status", "--store", &store, "--node", "node-2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("node node-2\n"));

    // An allocation file no Pod holds: reported with its container, kept.
    let ipam = format!("/run/aksnet/lab/{name}/nodes/node-1/ipam/aksnet");
    let stale = Path::new(&ipam).join("10.244.0.77");
    std::fs::write(&stale, "gone-container\r\neth0").unwrap();
    let o = aksnet(&ja);
    let j = checks(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let c = check(&j, "ipam-stale");
    assert_eq!(c["ok"], false, "{j}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("10.244.0.77 (container gone-container"),
        "{c}"
    );
    assert!(stale.exists(), "status deleted an allocation file");
    std::fs::remove_file(&stale).unwrap();

    // The SNAT table deleted by hand: the SNAT check fails with its fix.
    // (The agent reads its table back every 30 s and restores it: a
    // recheck between the delete and the status is retried.)
    let o = snat_deleted(&ns_name, &args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAIL snat: table ip aksnet-agent is missing\n     fix: "),
        "{out}"
    );
    assert!(
        out.contains("ok   conflist: "),
        "only SNAT is broken:\n{out}"
    );
    assert_eq!(out.matches("FAIL").count(), 1, "{out}");
    let j = checks(&snat_deleted(&ns_name, &ja));
    assert_eq!(j["ok"], false);
    let c = check(&j, "snat");
    assert_eq!(c["ok"], false);
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("aksnet agent --node node-1"),
        "{c}"
    );
    assert_eq!(check(&j, "agent")["ok"], true);

    // Unusable input: exit 2 with the reason.
    let o = aksnet(&["status", "--store", &store, "--node", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no node nope"),
        "{}",
        text(&o)
    );
    let o = aksnet(&["status", "--store", "sqlite:/nonexistent/x.db"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// Deletes the node's SNAT table (if there) and runs status, until status
/// sees it missing (exit 1), at most three times.
fn snat_deleted(ns_name: &str, args: &[&str]) -> Output {
    let mut last = None;
    for _ in 0..3 {
        let del = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns_name,
                "nft",
                "delete",
                "table",
                "ip",
                "aksnet-agent",
            ])
            .output()
            .unwrap();
        // Already gone (an earlier call) is fine.
        assert!(
            del.status.success() || String::from_utf8_lossy(&del.stderr).contains("No such file"),
            "nft delete: {}",
            text(&del)
        );
        let o = aksnet(args);
        if o.status.code() == Some(1) {
            return o;
        }
        last = Some(o);
    }
    let o = last.unwrap();
    panic!("status never saw the deleted SNAT table: {}", text(&o));
}
