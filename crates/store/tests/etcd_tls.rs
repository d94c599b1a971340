//! etcd over TLS with client certificates: an etcd started with
//! `--client-cert-auth` and a fresh test CA serves a client that presents a
//! certificate of that CA (`etcds://` with `--etcd-ca/--etcd-cert/
//! --etcd-key`) and refuses one without a certificate, one with a
//! certificate of another CA, and a plain-text client.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_store::testing::etcd::{require_etcd, test_options, EtcdCluster};
use aksnet_store::{EtcdOptions, EtcdStore, EtcdTls, StoreError};
use common::Fixture;

fn cluster(test: &str) -> Option<EtcdCluster> {
    let bin = require_etcd(test)?;
    Some(EtcdCluster::start_tls(&bin, 1).unwrap_or_else(|e| panic!("{test}: {e}")))
}

fn setup(test: &str) -> Option<Fixture> {
    let cluster = cluster(test)?;
    let store = cluster.open_store().expect("connect to etcd over TLS");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(cluster),
    })
}

// The whole store suite, over TLS.
store_suite!(setup);

fn quick(tls: EtcdTls) -> EtcdOptions {
    EtcdOptions {
        retry_for: Duration::from_secs(2),
        tls: Some(tls),
        ..test_options()
    }
}

#[test]
fn a_client_certificate_of_the_ca_is_required() {
    let Some(c) = cluster("a_client_certificate_of_the_ca_is_required") else {
        return;
    };
    let pki = c.pki().unwrap().clone();
    let url = c.store_url();
    assert!(url.starts_with("etcds://127.0.0.1:"), "{url}");

    // With the CA and a client certificate: a working store, as the agent
    // and the lab open it.
    let s = aksnet_store::open_with(&url, &pki.client_tls()).unwrap();
    assert_eq!(s.url(), url);
    s.put("/tls/k", b"v", None).unwrap();
    assert_eq!(s.get("/tls/k").unwrap().unwrap().value, b"v");
    let mut w = s.watch("/tls/", 0).unwrap();
    s.put("/tls/k2", b"w", None).unwrap();
    let ev = w.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(ev.kv.key, "/tls/k2");

    // Without a client certificate: refused.
    let t = Instant::now();
    let e = EtcdStore::connect(c.endpoints(), quick(pki.ca_only())).unwrap_err();
    let msg = e.to_string();
    eprintln!("no client certificate: refused in {:?}: {msg}", t.elapsed());
    assert!(matches!(e, StoreError::Tls(_)), "{e:?}");
    assert!(msg.contains(&url) && msg.contains("--etcd-cert"), "{msg}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refused at once, not after retries"
    );

    // A certificate another CA signed: refused.
    let e = EtcdStore::connect(c.endpoints(), quick(pki.rogue_tls())).unwrap_err();
    eprintln!("rogue client certificate: {e}");
    assert!(
        matches!(e, StoreError::Unavailable { .. } | StoreError::Tls(_)),
        "{e:?}"
    );

    // Plain text to the TLS port: refused.
    let plain = EtcdOptions {
        retry_for: Duration::from_secs(2),
        ..test_options()
    };
    let e = EtcdStore::connect(c.endpoints(), plain).unwrap_err();
    eprintln!("plain text: {e}");
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");

    // Nothing the refused clients tried was written.
    assert_eq!(s.range("/tls/").unwrap().kvs.len(), 2);
}

#[test]
fn tls_files_are_checked_before_connecting() {
    let Some(c) = cluster("tls_files_are_checked_before_connecting") else {
        return;
    };
    let pki = c.pki().unwrap().clone();
    let url = c.store_url();
    // etcds:// without a CA.
    let e = aksnet_store::open_with(&url, &EtcdTls::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--etcd-ca"), "{e}");
    // TLS files with a plain URL: refused, with the right URL suggested.
    let plain = url.replacen("etcds://", "etcd://", 1);
    let e = aksnet_store::open_with(&plain, &pki.client_tls())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&url), "{e}");
    let e = aksnet_store::open_with("sqlite:/tmp/x.db", &pki.client_tls())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("etcds://"), "{e}");
    // A certificate without its key.
    let half = EtcdTls {
        key: None,
        ..pki.client_tls()
    };
    let e = aksnet_store::open_with(&url, &half)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--etcd-key"), "{e}");
}
