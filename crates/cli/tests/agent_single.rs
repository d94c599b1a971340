//! One agent per node: a second `aksnet agent` for the node (the same
//! `--cni-conf-dir`) refuses to start and changes nothing; after the first
//! is killed with -9 a new one starts at once (the lock goes with the
//! process).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn a_second_agent_for_the_node_refuses() {
    if !can_run("a_second_agent_for_the_node_refuses", &["ip"], true) {
        return;
    }
    let f = Fabric::new("ak1a", 1);
    let store = format!("sqlite:{}", f.tmp.path().join("c.db").display());
    let out = Command::new(aksnet())
        .args([
            "cluster",
            "init",
            "--store",
            &store,
            "--network-plugin",
            "kubenet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut first = f.start_agent(&store, 0, "fabric");
    wait_for(
        "the first agent's conflist",
        Duration::from_secs(60),
        || f.nodes[0].conflist().is_some(),
    );
    let before = f.nodes[0].conflist().unwrap();

    let mut second = f.start_agent(&store, 0, "fabric");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = second.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the second agent keeps running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&second.log).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("another aksnet agent is running"), "{log}");
    assert!(
        log.contains(&f.nodes[0].conf_dir().display().to_string()),
        "{log}"
    );
    assert!(
        matches!(first.child.try_wait(), Ok(None)),
        "the first agent still runs"
    );
    assert_eq!(f.nodes[0].conflist().unwrap(), before, "nothing changed");

    // kill -9 frees the lock: a new agent takes over.
    first.kill9();
    let mut third = f.start_agent(&store, 0, "fabric");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        matches!(third.child.try_wait(), Ok(None)),
        "{}",
        std::fs::read_to_string(&third.log).unwrap_or_default()
    );
    third.kill9();
}
