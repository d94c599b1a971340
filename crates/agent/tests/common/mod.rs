//! Test helpers: a cluster network stored as `aksnet cluster init` does,
//! and, for kernel tests, namespaces named `ak4-…` created with
//! `ip netns add` and removed on drop, whatever the test's outcome.

#![allow(dead_code)]

use std::process::Command;

use aksnet_core::cluster::{ClusterNetwork, NETWORK_KEY};
use aksnet_core::planner;
use aksnet_core::spec::{Sourced, SpecInput};
use aksnet_store::Store;

/// Plans a design from `(flag, value)` pairs and stores its network.
pub fn init(store: &dyn Store, args: &[(&str, &str)]) {
    init_with(store, args, |_| {})
}

/// Plans the design, then lets the test bend it past what the planner
/// accepts (a tiny route table, say), and stores it.
pub fn init_with(store: &dyn Store, args: &[(&str, &str)], bend: impl FnOnce(&mut ClusterNetwork)) {
    let mut input = SpecInput::default();
    for &(k, v) in args {
        let s = Some(Sourced::new(v.to_string(), k));
        match k {
            "plugin" => input.network_plugin = s,
            "mode" => input.network_plugin_mode = s,
            "subnet" => input.subnet_cidr = s,
            "pod-subnet" => input.pod_subnet_cidr = s,
            "pod-cidr" => input.pod_cidr = s,
            "route-table-limit" => {
                input.route_table_limit = Some(Sourced::new(v.parse().unwrap(), k))
            }
            "max-pods" => input.max_pods = Some(Sourced::new(v.parse().unwrap(), k)),
            "vnet" => input.vnet_cidrs = vec![Sourced::new(v.to_string(), k)],
            _ => panic!("unknown {k}"),
        }
    }
    let mut plan = planner::plan_input(&input).unwrap();
    assert!(plan.valid, "{:?}", plan.errors);
    bend(&mut plan.network);
    let value = serde_json::to_vec(&plan.network).unwrap();
    store.put(NETWORK_KEY, &value, None).unwrap();
}

// Not every test binary that includes this module uses every helper.
#[allow(unused_imports)]
pub use aksnet_linux::testing::can_run;

#[allow(unused_imports)]
pub use aksnet_linux::testing::which;

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
    /// `ak4-<pid>-<tag>`.
    pub fn new(tag: &str) -> Self {
        Self::named(format!("ak4-{}-{tag}", std::process::id()))
    }

    /// Exactly `name` (a leftover of that name is deleted first).
    pub fn named(name: String) -> Self {
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
    /// Nodes `10.224.0.{4+i}/16` on one bridge (`ak4-<pid>-<tag>-n<i>`,
    /// switch `…-sw`).
    pub fn new(tag: &str, count: usize) -> Self {
        let switch = Netns::new(&format!("{tag}-sw"));
        switch.exec("ip link add br0 type bridge");
        switch.exec("ip link set br0 up");
        let mut l2 = L2 {
            switch,
            nodes: Vec::new(),
        };
        for i in 0..count {
            let n = Netns::new(&format!("{tag}-n{i}"));
            l2.plug(&n, &format!("p{i}"), &format!("10.224.0.{}", 4 + i));
            l2.nodes.push(n);
        }
        l2
    }

    /// Connects `ns` to the bridge through switch port `port`; its end is
    /// `eth0` with `ip`/16, up.
    pub fn plug(&self, ns: &Netns, port: &str, ip: &str) {
        sh(&format!(
            "ip -n {} link add {port} type veth peer name eth0 netns {}",
            self.switch.name, ns.name
        ));
        self.switch
            .exec(&format!("ip link set {port} master br0 up"));
        ns.exec(&format!("ip addr add {ip}/16 dev eth0"));
        ns.exec("ip link set eth0 up");
    }
}
