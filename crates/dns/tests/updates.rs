//! Store changes reach the answers without a restart, within 5 s (the
//! watch brings them in milliseconds; the resync is set far away here so
//! only the watch can explain a quick change).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_core::k8s::Kind;
use aksnet_dns::client::Transport;
use aksnet_store::{
    DeleteResponse, KeyValue, Lease, LeaseId, RangeResponse, Store, StoreError, Txn, TxnResponse,
    Watcher,
};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// Asks until `ok` holds; the time it took. Fails after 5 s.
async fn until(
    at: SocketAddr,
    q: &str,
    ty: RecordType,
    what: &str,
    ok: impl Fn(&Message) -> bool,
) -> Duration {
    let t = Instant::now();
    loop {
        let m = ask(at, q, ty, Transport::Udp).await;
        if ok(&m) {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: not answered within 5 s; last answer {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_answer_within_five_seconds() {
    let c = Cluster::new();
    c.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n");
    let s = c.serve(|cfg| cfg.resync = Duration::from_secs(3600)).await;
    let at = s.local_addr();
    let q = "web.shop.svc.cluster.local.";
    let m = ask(at, q, RecordType::A, Transport::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // A new Service answers.
    c.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {clusterIP: 10.0.0.80, ports: [{port: 80}]}\n",
    );
    let took = until(at, q, RecordType::A, "created Service", |m| {
        addrs(m) == ["10.0.0.80"]
    })
    .await;
    eprintln!("created Service answered after {took:?}");

    // A headless Service follows its pods' readiness.
    c.apply(
        "\
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
status: {podIP: 10.244.0.5}
",
    );
    until(
        at,
        "db.shop.svc.cluster.local.",
        RecordType::A,
        "headless",
        |m| addrs(m) == ["10.244.0.5"],
    )
    .await;
    c.apply(
        "\
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
status:
  podIP: 10.244.0.5
  conditions: [{type: Ready, status: 'False'}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
status: {podIP: 10.244.0.6}
",
    );
    until(
        at,
        "db.shop.svc.cluster.local.",
        RecordType::A,
        "readiness",
        |m| addrs(m) == ["10.244.0.6"],
    )
    .await;

    // A deleted Service is gone: NXDOMAIN again.
    c.delete(Kind::Service, "shop", "web");
    let took = until(at, q, RecordType::A, "deleted Service", |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
    eprintln!("deleted Service gone after {took:?}");
    // So is a deleted namespace's whole subtree.
    c.delete(Kind::Namespace, "", "shop");
    until(
        at,
        "shop.svc.cluster.local.",
        RecordType::A,
        "deleted namespace",
        |m| m.metadata.response_code == ResponseCode::NXDomain,
    )
    .await;
    s.shutdown().await.unwrap();
}

/// The real store, with reads that fail while `broken` is set: how a
/// store that is down (etcd unreachable, a locked file) looks to the server.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn Store>,
    broken: AtomicBool,
}

impl Flaky {
    fn check(&self) -> aksnet_store::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::WatchClosed {
                prefix: "/".into(),
                reason: "the store is down (test)".into(),
            });
        }
        Ok(())
    }
}

impl Store for Flaky {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn revision(&self) -> aksnet_store::Result<i64> {
        self.check()?;
        self.inner.revision()
    }
    fn get(&self, key: &str) -> aksnet_store::Result<Option<KeyValue>> {
        self.check()?;
        self.inner.get(key)
    }
    fn range(&self, prefix: &str) -> aksnet_store::Result<RangeResponse> {
        self.check()?;
        self.inner.range(prefix)
    }
    fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> aksnet_store::Result<i64> {
        self.inner.put(key, value, lease)
    }
    fn delete(&self, key: &str) -> aksnet_store::Result<DeleteResponse> {
        self.inner.delete(key)
    }
    fn delete_prefix(&self, prefix: &str) -> aksnet_store::Result<DeleteResponse> {
        self.inner.delete_prefix(prefix)
    }
    fn txn(&self, txn: Txn) -> aksnet_store::Result<TxnResponse> {
        self.inner.txn(txn)
    }
    fn lease_grant(&self, ttl: i64) -> aksnet_store::Result<Lease> {
        self.inner.lease_grant(ttl)
    }
    fn lease_keep_alive(&self, id: LeaseId) -> aksnet_store::Result<i64> {
        self.inner.lease_keep_alive(id)
    }
    fn lease_revoke(&self, id: LeaseId) -> aksnet_store::Result<()> {
        self.inner.lease_revoke(id)
    }
    fn lease_ttl(&self, id: LeaseId) -> aksnet_store::Result<Option<i64>> {
        self.inner.lease_ttl(id)
    }
    fn watch(&self, prefix: &str, start: i64) -> aksnet_store::Result<Watcher> {
        self.check()?;
        self.inner.watch(prefix, start)
    }
    fn compact(&self, revision: i64) -> aksnet_store::Result<()> {
        self.inner.compact(revision)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down() {
    let c = Cluster::new();
    c.apply(APP);
    let web_ip = c.cluster_ip("shop", "web").to_string();
    let flaky = Arc::new(Flaky {
        inner: c.store.clone(),
        broken: AtomicBool::new(true),
    });
    let mut cfg = aksnet_dns::DnsConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        aksnet_dns::names::cluster_domain("cluster.local").unwrap(),
    );
    cfg.udp_sockets = 1;
    let s = aksnet_dns::DnsServer::start(flaky.clone(), &cfg).unwrap();
    let at = s.local_addr();
    let q = "web.shop.svc.cluster.local.";
    // Never read: cluster names get SERVFAIL (CoreDNS before its first
    // sync), other names are still handled (refused: no upstream).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = ask(at, q, RecordType::A, Transport::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let m = ask(at, "example.com.", RecordType::A, Transport::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // The store comes back: the server reads it without a restart.
    flaky.broken.store(false, Ordering::SeqCst);
    until(at, q, RecordType::A, "store back", |m| {
        addrs(m) == [web_ip.as_str()]
    })
    .await;
    // Down again: the last records keep being served.
    flaky.broken.store(true, Ordering::SeqCst);
    c.delete(Kind::Service, "shop", "web");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let m = ask(at, q, RecordType::A, Transport::Udp).await;
    assert_eq!(addrs(&m), vec![web_ip.clone()]);
    // And once it is back, the change shows.
    flaky.broken.store(false, Ordering::SeqCst);
    until(at, q, RecordType::A, "store back again", |m| {
        m.metadata.response_code == ResponseCode::NXDomain
    })
    .await;
    s.shutdown().await.unwrap();
}
