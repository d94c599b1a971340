//! Issue 9 §2: `aksnet install` / `aksnet uninstall [--purge]` against a
//! `--root` directory, and the kernel part of `--purge` inside a network
//! namespace the test creates.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::*;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(aksnet()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (good, out, err) = run(args);
    assert!(good, "aksnet {args:?}: {out}{err}");
    out
}

/// Every path under `root`, relative, directories with a trailing `/`.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A directory holding three plugin executables.
fn plugins(dir: &Path, tag: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for p in PLUGINS {
        std::fs::write(dir.join(p), format!("#!/bin/sh\n# {p} {tag}\n")).unwrap();
    }
    dir.display().to_string()
}

fn install_args<'a>(root: &'a str, from: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    install_at(root, from, "10.224.0.4", extra)
}

fn install_at<'a>(root: &'a str, from: &'a str, ip: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "install",
        "--root",
        root,
        "--store",
        "sqlite:/var/lib/aksnet/cluster.db",
        "--node",
        "node-1",
        "--node-ip",
        ip,
        "--plugins-from",
        from,
    ];
    v.extend_from_slice(extra);
    v
}

const INSTALLED: &[&str] = &[
    "etc/",
    "etc/systemd/",
    "etc/systemd/system/",
    "etc/systemd/system/aksnet-agent.service",
    "opt/",
    "opt/cni/",
    "opt/cni/bin/",
    "opt/cni/bin/aksnet-cni",
    "opt/cni/bin/aksnet-ipam",
    "opt/cni/bin/aksnet-portmap",
    "usr/",
    "usr/local/",
    "usr/local/bin/",
    "usr/local/bin/aksnet",
    "var/",
    "var/lib/",
    "var/lib/aksnet/",
    "var/lib/aksnet/install.json",
];

#[test]
fn install_is_idempotent_and_uninstall_removes_exactly_what_it_added() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let from = plugins(&t.path().join("build"), "v1");
    let r = root.to_str().unwrap();

    let out = ok(&install_args(r, &from, &["--routes", "vxlan"]));
    assert_eq!(tree(&root), set(INSTALLED), "{out}");
    for p in PLUGINS {
        assert!(
            out.contains(&format!("installed {r}/opt/cni/bin/{p}\n")),
            "{out}"
        );
    }
    assert!(out.contains(&format!(
        "wrote     {r}/etc/systemd/system/aksnet-agent.service"
    )));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("opt/cni/bin/aksnet-ipam"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // The unit runs the installed aksnet with the flags given.
    let unit =
        std::fs::read_to_string(root.join("etc/systemd/system/aksnet-agent.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert_eq!(
        exec,
        "/usr/local/bin/aksnet agent --store sqlite:/var/lib/aksnet/cluster.db --node node-1 \
         --node-ip 10.224.0.4 --cni-bin-dir /opt/cni/bin --cni-conf-dir /etc/cni/net.d \
         --ipam-data-dir /var/lib/cni/networks --routes vxlan --metrics-addr 127.0.0.1:9965"
    );
    assert!(unit.contains("WantedBy=multi-user.target"));
    assert_eq!(
        std::fs::read(root.join("usr/local/bin/aksnet")).unwrap(),
        std::fs::read(aksnet()).unwrap()
    );

    // Again: nothing is written.
    let mtime = |p: &str| std::fs::metadata(root.join(p)).unwrap().modified().unwrap();
    let before = mtime("opt/cni/bin/aksnet-cni");
    let out = ok(&install_args(r, &from, &["--routes", "vxlan"]));
    assert!(out.ends_with("nothing to change\n"), "{out}");
    assert!(
        !out.contains("installed") && !out.contains("wrote"),
        "{out}"
    );
    assert_eq!(mtime("opt/cni/bin/aksnet-cni"), before);

    // A new plugin build and another node name: those files only.
    let from2 = plugins(&t.path().join("build2"), "v2");
    let out = ok(&install_at(r, &from2, "10.224.0.9", &["--routes", "vxlan"]));
    let changed: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("unchanged"))
        .collect();
    assert_eq!(
        changed,
        vec![
            format!("updated   {r}/opt/cni/bin/aksnet-cni"),
            format!("updated   {r}/opt/cni/bin/aksnet-ipam"),
            format!("updated   {r}/opt/cni/bin/aksnet-portmap"),
            format!("updated   {r}/etc/systemd/system/aksnet-agent.service"),
        ],
        "{out}"
    );
    assert!(
        std::fs::read_to_string(root.join("etc/systemd/system/aksnet-agent.service"))
            .unwrap()
            .contains("--node-ip 10.224.0.9")
    );

    // What install did not add stays: another plugin, another unit.
    std::fs::write(root.join("opt/cni/bin/bridge"), "x").unwrap();
    std::fs::write(root.join("etc/systemd/system/other.service"), "x").unwrap();
    let out = ok(&["uninstall", "--root", r]);
    assert!(
        out.contains(&format!("removed   {r}/usr/local/bin/aksnet\n")),
        "{out}"
    );
    assert_eq!(
        tree(&root),
        set(&[
            "etc/",
            "etc/systemd/",
            "etc/systemd/system/",
            "etc/systemd/system/other.service",
            "opt/",
            "opt/cni/",
            "opt/cni/bin/",
            "opt/cni/bin/bridge",
        ]),
        "{out}"
    );
    let out = ok(&["uninstall", "--root", r]);
    assert_eq!(out, "nothing to change\n");
}

#[test]
fn a_changed_bin_dir_moves_the_plugins_and_json_lists_the_changes() {
    let t = tempfile::tempdir().unwrap();
    let from = plugins(&t.path().join("build"), "v1");
    let r = t.path().to_str().unwrap();
    ok(&install_args(r, &from, &[]));
    let out = ok(&install_args(
        r,
        &from,
        &["--cni-bin-dir", "/usr/lib/cni", "--output", "json"],
    ));
    let changes: serde_json::Value = serde_json::from_str(&out).unwrap();
    let removed: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "removed")
        .map(|c| c["what"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 3, "{out}");
    assert!(removed.iter().all(|w| w.contains("/opt/cni/bin/")), "{out}");
    assert!(!t.path().join("opt/cni/bin/aksnet-cni").exists());
    assert!(t.path().join("usr/lib/cni/aksnet-cni").exists());
    // Uninstall finds the new place from the record.
    ok(&["uninstall", "--root", r]);
    assert!(!t.path().join("usr/lib/cni/aksnet-cni").exists());
    // The plugins' and the data's directories were not install's: they stay.
    assert!(t.path().join("build/aksnet-cni").exists());
}

#[test]
fn purge_removes_the_conflist_and_ipam_files_and_leaves_the_kernel_alone_under_a_root() {
    let t = tempfile::tempdir().unwrap();
    let from = plugins(&t.path().join("build"), "v1");
    let r = t.path().to_str().unwrap();
    ok(&install_args(
        r,
        &from,
        &[
            "--cni-conf-dir",
            "/etc/cni/net.d",
            "--ipam-data-dir",
            "/var/lib/cni/networks",
        ],
    ));
    let conf = t.path().join("etc/cni/net.d");
    let ipam = t.path().join("var/lib/cni/networks");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(ipam.join("aksnet")).unwrap();
    std::fs::create_dir_all(ipam.join("other")).unwrap();
    std::fs::write(conf.join("10-aksnet.conflist"), "{}").unwrap();
    std::fs::write(conf.join("20-other.conflist"), "{}").unwrap();
    std::fs::write(ipam.join("aksnet/10.244.0.2"), "c1").unwrap();
    std::fs::write(ipam.join("other/10.0.0.2"), "c2").unwrap();
    let out = ok(&["uninstall", "--root", r, "--purge"]);
    assert!(
        out.contains(&format!("removed   {r}/etc/cni/net.d/10-aksnet.conflist\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("removed   {r}/var/lib/cni/networks/aksnet\n")),
        "{out}"
    );
    assert!(out.contains("skipped   kernel state: --root"), "{out}");
    assert!(conf.join("20-other.conflist").exists());
    assert!(ipam.join("other/10.0.0.2").exists());
    assert!(!ipam.join("aksnet").exists());
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().to_str().unwrap();
    let (good, _, err) = run(&[
        "install",
        "--root",
        r,
        "--store",
        "sqlite:/x",
        "--node",
        "n",
        "--node-ip",
        "10.0.0.300",
    ]);
    assert!(!good);
    assert!(err.contains("10.0.0.300"), "{err}");
    let (good, _, err) = run(&[
        "install",
        "--root",
        "/nonexistent-root",
        "--store",
        "sqlite:/x",
        "--node",
        "n",
        "--node-ip",
        "10.0.0.3",
    ]);
    assert!(!good);
    assert!(
        err.contains("--root /nonexistent-root is not a directory"),
        "{err}"
    );
    std::fs::create_dir_all(t.path().join("var/lib/aksnet")).unwrap();
    std::fs::write(t.path().join("var/lib/aksnet/install.json"), "not json").unwrap();
    let (good, _, err) = run(&["uninstall", "--root", r]);
    assert!(!good);
    assert!(
        err.contains("install.json is not what aksnet install writes"),
        "{err}"
    );
}

#[test]
fn purge_deletes_the_agents_tables_routes_and_vtep_in_a_namespace_and_nothing_else() {
    if !can_run("uninstall --purge in a namespace", &["ip", "nft"], false) {
        return;
    }
    let ns = Netns::new("purge");
    for cmd in [
        "ip link set lo up",
        "ip link add eth0 type veth peer name eth1",
        "ip link set eth0 up",
        "ip link set eth1 up",
        "ip addr add 10.224.0.4/16 dev eth0",
        "ip route add 10.244.1.0/24 via 10.224.0.5 proto 77",
        "ip route add 10.244.2.0/24 via 10.224.0.6 proto 77",
        "ip route add 10.99.0.0/24 via 10.224.0.7",
        "ip link add aksnet.1 type vxlan id 1 dstport 8472 dev eth0",
        "ip link add other.1 type vxlan id 2 dstport 4789 dev eth0",
        "nft add table ip aksnet-agent",
        "nft add chain ip aksnet-agent postrouting '{ type nat hook postrouting priority 100; }'",
        "nft add table ip someone-else",
    ] {
        assert!(ns.exec_ok(cmd), "{cmd}");
    }
    let t = tempfile::tempdir().unwrap();
    let r = t.path().to_str().unwrap();
    let nspath = ns.path();
    let p = nspath.to_str().unwrap();
    let out = ok(&["uninstall", "--root", r, "--purge", "--netns", p]);
    assert!(
        out.contains(&format!(
            "deleted   nftables table ip aksnet-agent in {p}\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted   route 10.244.1.0/24 in {p}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted   route 10.244.2.0/24 in {p}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("deleted   link aksnet.1 in {p}\n")),
        "{out}"
    );
    assert_eq!(ns.exec("ip -4 route show proto 77"), "");
    assert!(ns
        .exec("ip -4 route show")
        .contains("10.99.0.0/24 via 10.224.0.7"));
    let tables = ns.exec("nft list tables");
    assert!(!tables.contains("aksnet-agent"), "{tables}");
    assert!(tables.contains("table ip someone-else"), "{tables}");
    assert!(!ns.exec_ok("ip link show aksnet.1"));
    assert!(ns.exec_ok("ip link show other.1"));
    // Again: nothing left to delete.
    let out = ok(&["uninstall", "--root", r, "--purge", "--netns", p]);
    assert_eq!(out, "nothing to change\n");
}
