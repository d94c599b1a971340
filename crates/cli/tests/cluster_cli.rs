//! `aksnet cluster` and `aksnet node` as users and scripts run them.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::process::{Command, Output};

fn aksnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env_remove("AKSNET_STORE")
        .output()
        .expect("run aksnet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn init_refuses_a_design_the_planner_rejects_and_stores_nothing() {
    let dir = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let db = dir.path().join("cluster.db");
    let store = format!("sqlite:{}", db.display());
    // The AKS docs' example in a /22: the planner says the subnet is too small.
    let o = aksnet(&[
        "cluster",
        "init",
        "--store",
        &store,
        "--network-plugin",
        "azure",
        "--subnet-cidr",
        "10.240.0.0/22",
        "--vnet-cidr",
        "10.240.0.0/12",
        "--node-count",
        "50",
        "--max-pods",
        "30",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("subnet-too-small"), "{}", text(&o));
    assert!(!db.exists(), "nothing is stored for a rejected design");

    let o = aksnet(&[
        "cluster",
        "init",
        "--store",
        &store,
        "--pod-cidr",
        "10.244.0.0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!db.exists());
}

#[test]
fn unreadable_records_are_listed_as_problems_and_make_list_commands_fail() {
    let dir = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("cluster.db").display());
    let o = aksnet(&["cluster", "init", "--store", &store]);
    assert!(o.status.success(), "{}", text(&o));
    let kv = aksnet_store::open(&store).unwrap();
    let rec = aksnet_core::cluster::NodeRecord::new(
        "good",
        "10.224.0.4".parse().unwrap(),
        Default::default(),
    );
    kv.put(
        &aksnet_core::cluster::node_key("good"),
        &serde_json::to_vec(&rec).unwrap(),
        None,
    )
    .unwrap();
    kv.put("/aksnet/nodes/garbled", b"{\"name\": ", None)
        .unwrap();
    kv.put("/aksnet/ips/10.224.0.9", b"nope", None).unwrap();

    let o = aksnet(&["node", "list", "--store", &store]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("good"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("2 records in the store cannot be read"),
        "{err}"
    );
    assert!(err.contains("/aksnet/nodes/garbled"), "{err}");
    assert!(err.contains("/aksnet/ips/10.224.0.9"), "{err}");

    let o = aksnet(&["node", "list", "--store", &store, "--output", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(j["problems"][0]["key"], "/aksnet/ips/10.224.0.9");
    assert_eq!(j["problems"][1]["key"], "/aksnet/nodes/garbled");

    // The unreadable address stays taken: it counts as claimed.
    let o = aksnet(&["cluster", "show", "--store", &store, "--output", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["usage"]["nodes"], 2, "the garbled node is still a node");
    assert_eq!(j["problems"].as_array().unwrap().len(), 2);

    // The garbled node can be removed; then only the address is a problem.
    let o = aksnet(&["node", "remove", "garbled", "--store", &store, "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["removed"]["nodes"][0], "garbled", "{j}");
    assert!(j["claims_released"].as_u64().is_some(), "{j}");
    let o = aksnet(&["node", "remove", "never-was", "--store", &store]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("no node 'never-was'"), "{}", text(&o));
    let o = aksnet(&["node", "list", "--store", &store]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 record in the store cannot be read"));
}

/// Read-only commands never create a store, and a file that is not a
/// store is said once, with what to do.
#[test]
fn read_only_commands_never_create_a_store_and_a_corrupt_one_is_said_once() {
    let dir = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let missing = dir.path().join("not/there/cluster.db");
    let store = format!("sqlite:{}", missing.display());
    for args in [
        vec!["node", "list", "--store", &store],
        vec!["cluster", "show", "--store", &store],
        vec!["node", "remove", "node-1", "--store", &store],
    ] {
        let o = aksnet(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("no store at"), "{args:?}: {}", text(&o));
        assert!(
            !dir.path().join("not").exists(),
            "{args:?} created the store's directory"
        );
    }
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a_u8; 8192]).unwrap();
    let o = aksnet(&[
        "node",
        "list",
        "--store",
        &format!("sqlite:{}", junk.display()),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert_eq!(
        t.matches("file is not a database").count(),
        1,
        "said once: {t}"
    );
    assert!(
        t.contains(".backup") && t.contains("aksnet cluster init"),
        "a hint: {t}"
    );
}
