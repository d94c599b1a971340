//! Kernel test helpers: namespaces named `ak4-…` created with `ip netns add`
//! and removed on drop, whatever the test's outcome.

#![allow(dead_code)]

use std::process::Command;

/// Whether kernel tests can run; under `CI=true` a missing prerequisite
/// fails the test instead of skipping it.
pub fn can_run(what: &str, binaries: &[&str]) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = binaries.iter().copied().filter(|b| !which(b)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if !root {
        "needs root".to_string()
    } else {
        format!("needs {}", missing.join(", "))
    };
    if ci {
        panic!("{what}: {why} (CI=true, so this fails instead of skipping)");
    }
    eprintln!("skipping {what}: {why}");
    false
}

pub fn which(bin: &str) -> bool {
    if bin.contains('/') {
        return std::path::Path::new(bin).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists()))
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sh_ok(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("ak4-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns { name }
    }

    pub fn path(&self) -> std::path::PathBuf {
        format!("/run/netns/{}", self.name).into()
    }

    pub fn exec(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.name))
    }

    pub fn exec_ok(&self, cmd: &str) -> bool {
        sh_ok(&format!("ip netns exec {} {cmd}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A "switch" namespace with a bridge, and node namespaces plugged into it
/// with a veth each (`eth0` inside the node).
pub struct L2 {
    pub switch: Netns,
    pub nodes: Vec<Netns>,
}

impl L2 {
    /// Nodes `10.224.0.{4+i}/16` on one bridge.
    pub fn new(tag: &str, count: usize) -> Self {
        let switch = Netns::new(&format!("{tag}-sw"));
        switch.exec("ip link add br0 type bridge");
        switch.exec("ip link set br0 up");
        let mut nodes = Vec::new();
        for i in 0..count {
            let n = Netns::new(&format!("{tag}-n{i}"));
            let port = format!("p{i}");
            sh(&format!(
                "ip -n {} link add {port} type veth peer name eth0 netns {}",
                switch.name, n.name
            ));
            switch.exec(&format!("ip link set {port} master br0 up"));
            n.exec(&format!("ip addr add 10.224.0.{}/16 dev eth0", 4 + i));
            n.exec("ip link set eth0 up");
            nodes.push(n);
        }
        L2 { switch, nodes }
    }
}
