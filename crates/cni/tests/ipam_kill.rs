//! `aksnet-ipam` killed with SIGKILL in the middle of an ADD leaks nothing:
//! after the runtime's recovery (DEL of every container it started, GC with
//! the attachments it still has) the store holds exactly the live
//! containers' addresses. No root needed: the IPAM plugin touches only its
//! directory.
//!
//! The worst moments are reached exactly through the plugin's test hook
//! (`AKSNET_IPAM_TEST_STALL=POINT:FILE`: write the PID to FILE, then stop),
//! and at random moments by killing ADDs after random delays.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const NET: &str = "killnet";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_aksnet-ipam")
}

fn conf(data: &Path, valid: Option<&[&str]>) -> Vec<u8> {
    let mut v = json!({"cniVersion": "1.1.0", "name": NET, "type": "aksnet-ipam",
        "ipam": {"type": "aksnet-ipam", "ranges": [[{"subnet": "10.77.0.0/24"}]],
                 "dataDir": data.display().to_string()}});
    if let Some(ids) = valid {
        v["cni.dev/valid-attachments"] = Value::Array(
            ids.iter()
                .map(|id| json!({"containerID": id, "ifname": "eth0"}))
                .collect(),
        );
    }
    v.to_string().into_bytes()
}

fn spawn(
    cmd: &str,
    id: &str,
    data: &Path,
    stall: Option<(&str, &Path)>,
    valid: Option<&[&str]>,
) -> Child {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/var/run/netns/ignored-by-ipam")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((point, file)) = stall {
        c.env(
            "AKSNET_IPAM_TEST_STALL",
            format!("{point}:{}", file.display()),
        );
    }
    let mut child = c.spawn().expect("spawn aksnet-ipam");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&conf(data, valid)).unwrap();
    drop(stdin);
    child
}

fn run(cmd: &str, id: &str, data: &Path, valid: Option<&[&str]>) -> Output {
    let out = spawn(cmd, id, data, None, valid)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} {id}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn add_ip(out: &Output) -> String {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// What the directory holds: address file name → content; other files.
fn disk(data: &Path) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut ips = BTreeMap::new();
    let mut other = BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(data.join(NET)) else {
        return (ips, other);
    };
    for e in rd {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.parse::<std::net::IpAddr>().is_ok() {
            ips.insert(name, std::fs::read_to_string(e.path()).unwrap());
        } else if name != "lock" && !name.starts_with("last_reserved_ip.") {
            other.insert(name);
        }
    }
    (ips, other)
}

fn wait_for(file: &Path, child: &mut Child) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::fs::read_to_string(file) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("the plugin exited ({st}) before reaching its stall point");
        }
        assert!(Instant::now() < deadline, "stall point never reached");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn data_of(d: &tempfile::TempDir) -> PathBuf {
    d.path().to_path_buf()
}

#[test]
fn killed_before_the_link_leaves_only_a_temporary_file_that_add_and_gc_remove() {
    let d = tmp();
    let data = data_of(&d);
    let marker = data.join("stalled");
    let mut child = spawn("ADD", "victim", &data, Some(("before-link", &marker)), None);
    let pid = wait_for(&marker, &mut child);
    assert_eq!(pid, child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let (ips, other) = disk(&data);
    assert!(ips.is_empty(), "no address file may exist: {ips:?}");
    assert_eq!(other.len(), 1, "{other:?}");
    // The runtime's recovery: DEL of the container it started, then GC.
    run("DEL", "victim", &data, None);
    run("GC", "", &data, Some(&[]));
    assert_eq!(disk(&data), (BTreeMap::new(), BTreeSet::new()));
    // The address is handed out to the next container.
    assert_eq!(add_ip(&run("ADD", "next", &data, None)), "10.77.0.2");
}

#[test]
fn killed_after_the_link_leaves_a_complete_allocation_that_del_frees() {
    let d = tmp();
    let data = data_of(&d);
    let marker = data.join("stalled");
    let mut child = spawn("ADD", "victim", &data, Some(("after-link", &marker)), None);
    wait_for(&marker, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let (ips, _) = disk(&data);
    // The allocation exists and names its owner, so DEL finds it.
    assert_eq!(
        ips.get("10.77.0.2").map(String::as_str),
        Some("victim\r\neth0")
    );
    run("DEL", "victim", &data, None);
    run("GC", "", &data, Some(&[]));
    assert_eq!(disk(&data), (BTreeMap::new(), BTreeSet::new()));
}

#[test]
fn an_empty_file_left_by_a_killed_host_local_is_freed_by_gc() {
    let d = tmp();
    let data = data_of(&d);
    run("ADD", "live", &data, None);
    std::fs::write(data.join(NET).join("10.77.0.3"), "").unwrap();
    // DEL of every container matches nothing; GC frees the orphan but not
    // the live container's address.
    run("DEL", "dead", &data, None);
    run("GC", "", &data, Some(&["live"]));
    let (ips, other) = disk(&data);
    assert_eq!(ips.keys().collect::<Vec<_>>(), ["10.77.0.2"]);
    assert!(other.is_empty());
}

/// The recipe at the IPAM level: concurrent ADDs, a quarter of them
/// killed at random moments, then DEL of every container and GC with the
/// survivors: exactly the survivors' addresses remain, each once.
#[test]
fn random_kills_during_concurrent_adds_leak_nothing() {
    let d = tmp();
    let data = data_of(&d);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut killed = 0;
    let mut survivors: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..12 {
        let mut batch: Vec<(String, Child, Option<Duration>)> = (0..16)
            .map(|i| {
                let id = format!("c{round}x{i}");
                let kill = (rand(4) == 0).then(|| Duration::from_micros(rand(4000)));
                let child = spawn("ADD", &id, &data, None, None);
                (id, child, kill)
            })
            .collect();
        let start = Instant::now();
        for (_, child, kill) in batch.iter_mut() {
            if let Some(after) = kill {
                if let Some(left) = after.checked_sub(start.elapsed()) {
                    std::thread::sleep(left);
                }
                if child.kill().is_ok() {
                    killed += 1;
                }
            }
        }
        for (id, child, _) in batch {
            let out = child.wait_with_output().unwrap();
            // A call that finished before its kill landed succeeded, as far
            // as the runtime can tell.
            if out.status.success() {
                survivors.insert(id, add_ip(&out));
            }
        }
        // Some of the survivors are deleted again, as pods come and go.
        let gone: Vec<String> = survivors.keys().filter(|_| rand(3) == 0).cloned().collect();
        for id in gone {
            run("DEL", &id, &data, None);
            survivors.remove(&id);
        }
    }
    assert!(killed > 0);
    // Recovery: DEL of every container the runtime started and does not
    // keep (it does not know which ADDs got an address), then GC.
    for round in 0..12 {
        for i in 0..16 {
            let id = format!("c{round}x{i}");
            if !survivors.contains_key(&id) {
                run("DEL", &id, &data, None);
            }
        }
    }
    let keep: Vec<&str> = survivors.keys().map(String::as_str).collect();
    run("GC", "", &data, Some(&keep));
    let (ips, other) = disk(&data);
    assert!(other.is_empty(), "temporary files left: {other:?}");
    let on_disk: BTreeMap<String, String> = ips
        .iter()
        .map(|(ip, owner)| (owner.split("\r\n").next().unwrap().to_string(), ip.clone()))
        .collect();
    assert_eq!(
        ips.len(),
        survivors.len(),
        "leaked or lost: {ips:?} vs {survivors:?}"
    );
    assert_eq!(on_disk, survivors);
    eprintln!(
        "{killed} of 192 ADDs killed; {} survivors, each with its own address, nothing leaked",
        survivors.len()
    );
}
