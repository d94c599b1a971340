//! A real runtime: podman 4 with its CNI backend runs containers on an
//! aksnet network (aksnet-cni bridge mode + aksnet-ipam + aksnet-portmap).
//!
//! Nothing touches the machine's own network: podman itself runs inside a
//! "host" network namespace the test creates (`nsenter --net`, which keeps
//! the mount namespace so runc finds the cgroup hierarchy), with its own
//! storage, run and CNI configuration directories under a temporary
//! directory, and containers from a local busybox root filesystem (no image
//! pull). An "outside" namespace is routed to the host's uplink.
//!
//! The commands and their output are printed (run with `--nocapture`), and
//! written to `$AKSNET_PODMAN_TRANSCRIPT` when set (docs/podman.md holds one).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{can_run, NamedNs};
use serde_json::json;

const PODMAN: &str = "/usr/bin/podman";
const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/bin/busybox";
const NSENTER: &str = "/usr/bin/nsenter";
const CURL: &str = "/usr/bin/curl";
const NFT: &str = "/usr/sbin/nft";

const SUBNET: &str = "10.244.3.0/24";
const GATEWAY: &str = "10.244.3.1";
const NODE_IP: &str = "192.0.2.1";

/// The test's world; dropping it removes the containers, the namespaces
/// and the directory.
struct Lab {
    dir: PathBuf,
    host: NamedNs,
    outside: NamedNs,
    log: String,
}

impl Lab {
    fn path(&self, p: &str) -> String {
        self.dir.join(p).display().to_string()
    }

    /// Run `cmd`, print and record it with its output; returns (success,
    /// stdout).
    fn sh(&mut self, shown: &str, cmd: &mut Command) -> (bool, String) {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut rec = format!("$ {shown}\n{stdout}");
        if !stderr.trim().is_empty() {
            rec.push_str(&stderr);
        }
        if !out.status.success() {
            let _ = writeln!(rec, "({})", out.status);
        }
        print!("{rec}");
        self.log.push_str(&rec);
        (out.status.success(), stdout)
    }

    fn podman_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(NSENTER);
        c.arg(format!("--net={}", self.host.path))
            .arg(PODMAN)
            .args([
                "--root",
                &self.path("storage"),
                "--runroot",
                &self.path("run"),
                "--tmpdir",
                &self.path("tmp"),
                "--storage-driver",
                "vfs",
                "--cni-config-dir",
                &self.path("net.d"),
            ])
            .args(args)
            .env("CONTAINERS_CONF", self.path("containers.conf"));
        c
    }

    /// `podman ARGS` in the host namespace; panics when it fails.
    fn podman(&mut self, args: &[&str]) -> String {
        let mut c = self.podman_cmd(args);
        let (ok, out) = self.sh(&format!("podman {}", args.join(" ")), &mut c);
        assert!(ok, "podman {args:?} failed");
        out
    }

    /// `ip netns exec NS ARGS` (for curl and nft); returns (success, stdout).
    fn in_ns(&mut self, outside: bool, args: &[&str]) -> (bool, String) {
        let ns = if outside { &self.outside } else { &self.host };
        let name = ns.name.clone();
        let role = if outside { "outside" } else { "host" };
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &name]).args(args);
        self.sh(&format!("[{role} netns] {}", args.join(" ")), &mut c)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self
            .podman_cmd(&["rm", "-af", "-t", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Ok(path) = std::env::var("AKSNET_PODMAN_TRANSCRIPT") {
            let _ = std::fs::write(path, &self.log);
        }
    }
}

/// A root filesystem with static busybox, its applets, and a web page.
fn rootfs(dir: &Path) {
    for d in ["bin", "etc", "www", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "httpd", "ping", "wget", "ip", "sleep", "cat", "echo", "nc",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("www/index.html"),
        "hello from an aksnet container\n",
    )
    .unwrap();
}

fn setup() -> Lab {
    let dir = std::env::temp_dir().join(format!("aksnet-podman-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["storage", "run", "tmp", "net.d", "bin", "ipam"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let host = NamedNs::with_lo_up("podh");
    let outside = NamedNs::with_lo_up("podo");
    let lab = Lab {
        dir,
        host,
        outside,
        log: String::new(),
    };
    rootfs(&lab.dir.join("rootfs-web"));
    rootfs(&lab.dir.join("rootfs-client"));
    // The plugins, as a runtime finds them: one directory of binaries.
    for (name, exe) in [
        ("aksnet-cni", env!("CARGO_BIN_EXE_aksnet-cni")),
        ("aksnet-ipam", env!("CARGO_BIN_EXE_aksnet-ipam")),
        ("aksnet-portmap", env!("CARGO_BIN_EXE_aksnet-portmap")),
    ] {
        std::os::unix::fs::symlink(exe, lab.dir.join("bin").join(name)).unwrap();
    }
    // The conflist the agent writes for kubenet (bridge mode), with
    // hairpinMode on so a container can reach itself through a host port.
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "aksnet",
        "plugins": [
            {
                "type": "aksnet-cni", "mode": "bridge", "bridge": "cbr0",
                "isGateway": true, "mtu": 1500, "promiscMode": true,
                "hairpinMode": true, "ipMasq": false,
                "ipam": {
                    "type": "aksnet-ipam",
                    "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": lab.path("ipam")
                }
            },
            {"type": "aksnet-portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    });
    std::fs::write(
        lab.dir.join("net.d/10-aksnet.conflist"),
        serde_json::to_string_pretty(&conflist).unwrap(),
    )
    .unwrap();
    // runc cannot raise RLIMIT_NOFILE/NPROC above this machine's hard
    // limits, which podman's defaults exceed.
    std::fs::write(
        lab.dir.join("containers.conf"),
        format!(
            r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{}"]
network_config_dir = "{}"
"#,
            lab.path("bin"),
            lab.path("net.d")
        ),
    )
    .unwrap();
    // The node's uplink, and a machine outside routed to it.
    lab.host.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &lab.outside.name,
    ]);
    lab.host
        .ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"]);
    lab.host.ip(&["link", "set", "eth0", "up"]);
    lab.outside
        .ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    lab.outside.ip(&["link", "set", "eth0", "up"]);
    lab.outside.ip(&["route", "add", "default", "via", NODE_IP]);
    lab
}

fn in_subnet(ip: &str) -> bool {
    let net: ipnet::Ipv4Net = SUBNET.parse().unwrap();
    ip.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| net.contains(&a) && a != net.network() && a.to_string() != GATEWAY)
}

#[test]
fn podman_runs_containers_on_an_aksnet_network_with_a_published_port() {
    if !can_run("podman", &[PODMAN, RUNC, BUSYBOX, NSENTER, CURL, NFT]) {
        return;
    }
    let mut lab = setup();
    let web_rootfs = lab.path("rootfs-web");
    let client_rootfs = lab.path("rootfs-client");

    lab.podman(&["version", "--format", "{{.Client.Version}}"]);
    lab.podman(&[
        "info",
        "--format",
        "network backend: {{.Host.NetworkBackend}}",
    ]);
    let nets = lab.podman(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(nets.lines().any(|l| l.starts_with("aksnet ")), "{nets}");

    // A web server publishing port 80 as host port 8080.
    lab.podman(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "aksnet",
        "-p",
        "8080:80",
        "--rootfs",
        &web_rootfs,
        "/bin/httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let ip = lab
        .podman(&[
            "inspect",
            "web",
            "--format",
            "{{.NetworkSettings.Networks.aksnet.IPAddress}}",
        ])
        .trim()
        .to_string();
    assert!(in_subnet(&ip), "web got {ip:?}, outside {SUBNET}");
    // aksnet-ipam recorded it (the file the agent reads).
    let record = lab.dir.join("ipam/aksnet").join(&ip);
    let owner = std::fs::read_to_string(&record)
        .unwrap_or_else(|e| panic!("{} not written by aksnet-ipam: {e}", record.display()));
    let id = lab.podman(&["inspect", "web", "--format", "{{.Id}}"]);
    assert!(owner.contains(id.trim()), "{owner:?} should name {id}");
    lab.podman(&["ps", "--format", "{{.Names}} {{.Status}} {{.Ports}}"]);

    // A second container: its own address, the gateway, and the first.
    let client = lab.podman(&[
        "run", "--rm", "--name", "client", "--network", "aksnet", "--cap-add", "NET_RAW",
        "--rootfs", &client_rootfs, "/bin/sh", "-c",
        &format!(
            "ip -4 -o addr show eth0; ip route; ping -c 1 -W 2 {GATEWAY} && ping -c 1 -W 2 {ip} && wget -q -O - http://{ip}/index.html && wget -q -O - http://{NODE_IP}:8080/index.html"
        ),
    ]);
    assert!(client.contains("1 packets received"), "{client}");
    assert!(
        client.contains("hello from an aksnet container"),
        "{client}"
    );
    assert!(
        client.contains(&format!("default via {GATEWAY}")),
        "{client}"
    );

    // The published port from the host itself, its loopback, and outside.
    for (outside, url) in [
        (false, format!("http://{NODE_IP}:8080/index.html")),
        (false, "http://127.0.0.1:8080/index.html".to_string()),
        (true, format!("http://{NODE_IP}:8080/index.html")),
    ] {
        let (ok, body) = lab.in_ns(outside, &["curl", "-sS", "-m", "5", &url]);
        assert!(
            ok && body.contains("hello from an aksnet container"),
            "{url}: {body}"
        );
    }
    // Hairpin: the container through the node's address.
    let hair = lab.podman(&[
        "exec",
        "web",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{NODE_IP}:8080/index.html"),
    ]);
    assert!(hair.contains("hello from an aksnet container"), "{hair}");
    let (_, rules) = lab.in_ns(false, &["nft", "list", "table", "ip", "aksnet-portmap"]);
    assert!(rules.contains(&format!("dnat to {ip}:80")), "{rules}");
    assert!(
        rules.contains(id.trim()),
        "rules tagged with the container ID"
    );

    // Removal: DEL through the chain frees the address and the rules.
    lab.podman(&["rm", "-f", "-t", "0", "web"]);
    assert!(!record.exists(), "{} left behind", record.display());
    let (_, rules) = lab.in_ns(
        false,
        &["nft", "list", "chain", "ip", "aksnet-portmap", "hostports"],
    );
    assert!(!rules.contains("dnat"), "{rules}");
    let (ok, _) = lab.in_ns(
        true,
        &["curl", "-sS", "-m", "3", &format!("http://{NODE_IP}:8080/")],
    );
    assert!(!ok, "the host port must be closed after podman rm");
}
