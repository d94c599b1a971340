//! Faults at the edges: a pod namespace that already has `eth0` (the ADD
//! fails, naming it, and gives its address back), and a read-only and a
//! full IPAM data directory. Each ADD fails with the spec's I/O error (code 5) as JSON on
//! stdout, names the directory, and leaves no partial state: no address
//! file, no temporary file. The filesystems are tmpfs mounts inside a mount
//! namespace of the plugin's own (`unshare --mount`), so nothing is mounted
//! on the machine.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::process::{Command, Stdio};

use common::{allocated, need_root, Call, NamedNs, TempDir};
use serde_json::{json, Value};

#[test]
fn a_pod_that_already_has_eth0_is_refused_and_keeps_it() {
    if !need_root() {
        return;
    }
    let host = NamedNs::new("akeh").with_node_ip("10.224.0.4/32");
    let pod = NamedNs::new("akep");
    pod.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let data = TempDir::new();
    let conf = json!({
        "cniVersion": "1.0.0", "name": "edgenet", "type": "aksnet-cni", "mode": "bridge",
        "bridge": "cbr0", "isGateway": true,
        "ipam": {"type": "aksnet-ipam", "ranges": [[{"subnet": "10.244.0.0/24"}]],
                 "dataDir": data.s()}
    });
    let out = Call::new(env!("CARGO_BIN_EXE_aksnet-cni"), "ADD", "c1", &pod.path)
        .run(&host.ns, conf.to_string().as_bytes());
    let msg = out.err(999);
    assert!(msg.contains("eth0") && msg.contains(&pod.path), "{msg}");
    // The pod's own eth0 is untouched, the address given back, no veth left
    // on the host.
    assert!(pod.ip(&["link", "show", "eth0"]).contains("other0"));
    assert!(
        allocated(&data.0.join("edgenet")).is_empty(),
        "the failed ADD kept its address"
    );
    assert!(!host
        .ip(&["-o", "link", "show", "type", "veth"])
        .contains("veth"));
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aksnet-ipam")
}

fn ready(test: &str) -> bool {
    aksnet_linux::testing::can_run(test, &["unshare", "mount", "sh"])
}

/// Runs `setup`, then an ADD of `aksnet-ipam` with its data directory in
/// `$D`, then lists what the network's directory holds, all inside a
/// private mount namespace. Returns (the plugin's stdout, its exit code,
/// the listing).
fn add_in(setup: &str) -> (Value, i32, Vec<String>) {
    let conf = r#"{"cniVersion":"1.1.0","name":"edgenet","type":"aksnet-ipam","ipam":{"type":"aksnet-ipam","ranges":[[{"subnet":"10.66.0.0/24"}]],"dataDir":"'"$D"'"}}"#;
    let script = format!(
        r#"set -e
D=$(mktemp -d /tmp/aksnet-edge.XXXXXX)
{setup}
set +e
printf '%s' '{conf}' | CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/run/netns/none CNI_IFNAME=eth0 CNI_PATH=/nonexistent "$1" > "$D.out"
rc=$?
cat "$D.out"; echo
echo "rc=$rc"
ls -A "$D/edgenet" 2>/dev/null | sed 's/^/file=/'
umount "$D" 2>/dev/null; rm -rf "$D" "$D.out""#
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
            bin(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    let json: Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap_or(Value::Null);
    let mut rc = -1;
    let mut files = Vec::new();
    for l in lines {
        if let Some(v) = l.strip_prefix("rc=") {
            rc = v.parse().unwrap_or(-1);
        } else if let Some(f) = l.strip_prefix("file=") {
            files.push(f.to_string());
        }
    }
    (json, rc, files)
}

#[test]
fn a_read_only_data_directory_fails_cleanly() {
    if !ready("a_read_only_data_directory_fails_cleanly") {
        return;
    }
    let (err, rc, files) = add_in(r#"mount -t tmpfs -o ro,size=1m tmpfs "$D""#);
    assert_ne!(rc, 0);
    assert_eq!(err["code"], 5, "{err}");
    let msg = format!("{} {}", err["msg"], err["details"]);
    assert!(
        msg.contains("/tmp/aksnet-edge."),
        "names the directory: {msg}"
    );
    assert!(msg.to_lowercase().contains("read-only"), "says why: {msg}");
    assert!(files.is_empty(), "{files:?}");
}

#[test]
fn a_full_data_directory_fails_cleanly() {
    if !ready("a_full_data_directory_fails_cleanly") {
        return;
    }
    // The network's directory and its lock exist; then the filesystem
    // fills up, so writing the allocation is what fails.
    let (err, rc, files) = add_in(
        r#"mount -t tmpfs -o size=64k,nr_inodes=64 tmpfs "$D"
mkdir -m 0700 "$D/edgenet"; : > "$D/edgenet/lock"
dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null || true
i=0; while touch "$D/f$i" 2>/dev/null; do i=$((i+1)); done"#,
    );
    assert_ne!(rc, 0, "{err}");
    assert_eq!(err["code"], 5, "{err}");
    let msg = format!("{} {}", err["msg"], err["details"]);
    assert!(
        msg.contains("No space left") || msg.contains("space"),
        "says why: {msg}"
    );
    assert_eq!(
        files,
        ["lock"],
        "no address or temporary file left: {files:?}"
    );
}
