//! `aksnet cluster` and `aksnet node` as users and scripts run them.

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
