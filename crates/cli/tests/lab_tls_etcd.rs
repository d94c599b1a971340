//! A lab on an etcd that serves clients only over TLS with client
//! certificates (`--client-cert-auth`): `lab up --store etcds://...` with
//! `--etcd-ca/--etcd-cert/--etcd-key` runs its agents on it, the lab's
//! pods reach each other, `lab down` removes its nodes from the store
//! (which outlives the lab), and a client without a certificate is refused.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aksnet_linux::testing;
use aksnet_store::testing::etcd::{require_etcd, EtcdCluster};

fn aksnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env("AKSNET_LOG", "info")
        .output()
        .expect("run aksnet")
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_aksnet"))
        .parent()
        .unwrap()
        .to_path_buf()
}

struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = aksnet(&["lab", "down", "--name", &self.0]);
    }
}

#[test]
fn a_lab_runs_on_a_tls_etcd_with_client_certificates() {
    let test = "a_lab_runs_on_a_tls_etcd_with_client_certificates";
    let mut missing = testing::missing(&["ip", "nft"]);
    for p in ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        if !bin_dir().join(p).exists() {
            missing.push(format!(
                "{p} in {} (cargo build --workspace)",
                bin_dir().display()
            ));
        }
    }
    if !testing::ready(test, &missing) {
        return;
    }
    let Some(etcd) = require_etcd(test) else {
        return;
    };
    let cluster = EtcdCluster::start_tls(&etcd, 1).unwrap();
    let pki = cluster.pki().unwrap().clone();
    let url = cluster.store_url();
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let tls = ["--etcd-ca", &ca, "--etcd-cert", &cert, "--etcd-key", &key];

    let name = format!("ak5-tls{}", std::process::id() % 100_000);
    let _down = Down(name.clone());
    let mut up = vec![
        "lab",
        "up",
        "--name",
        &name,
        "--nodes",
        "2",
        "--pods-per-node",
        "1",
    ];
    up.extend(["--network-plugin", "kubenet", "--store", &url]);
    up.extend(tls);
    let out = aksnet(&up);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let check = aksnet(&["lab", "check", "--name", &name]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // The nodes are in the TLS store; without a certificate nobody gets in.
    let mut list = vec!["node", "list", "--store", &url, "--output", "json"];
    list.extend(tls);
    let nodes = aksnet(&list);
    let text = String::from_utf8_lossy(&nodes.stdout).into_owned();
    assert!(nodes.status.success(), "{text}");
    assert!(text.contains("node-1") && text.contains("node-2"), "{text}");
    let refused = aksnet(&["node", "list", "--store", &url, "--etcd-ca", &ca]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("--etcd-cert"), "{err}");

    // lab down gives the store back.
    let down = aksnet(&["lab", "down", "--name", &name]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let after = aksnet(&list);
    let text = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(after.status.success(), "{text}");
    assert!(
        !text.contains("node-1") && !text.contains("node-2"),
        "{text}"
    );
}
