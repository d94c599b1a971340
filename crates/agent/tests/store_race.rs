//! 100 agents racing for blocks against one real store (SQLite, and etcd
//! when the binary is there): every agent ends with a block of its own, and
//! the store holds exactly one claim per block.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use aksnet_agent::kernel::fake::FakeKernel;
use aksnet_agent::{Agent, AgentConfig};
use aksnet_core::cluster::RouteMode;
use aksnet_store::Store;

fn race(kv: Arc<dyn Store>, agents: usize) {
    common::init(kv.as_ref(), &[("plugin", "kubenet")]);
    let dir = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(agents));
    let handles: Vec<_> = (0..agents)
        .map(|i| {
            let kv = Arc::clone(&kv);
            let barrier = Arc::clone(&barrier);
            let conf = dir.path().join(format!("n{i}"));
            std::thread::spawn(move || {
                let ip = format!("10.224.{}.{}", 1 + i / 200, 4 + i % 200);
                let mut cfg = AgentConfig::new(&format!("racer-{i:03}"), ip.parse().unwrap());
                cfg.cni_conf_dir = conf;
                cfg.routes = RouteMode::Fabric;
                cfg.lease_ttl = Duration::from_secs(60);
                barrier.wait();
                let mut a = Agent::start(cfg, kv, Box::new(FakeKernel::default())).unwrap();
                a.reconcile().unwrap();
                a.record().block.unwrap()
            })
        })
        .collect();
    let blocks: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let distinct: BTreeSet<_> = blocks.iter().collect();
    assert_eq!(distinct.len(), agents, "two agents got the same block");
    let view = aksnet_cluster::read(kv.as_ref()).unwrap();
    assert_eq!(
        view.blocks.len(),
        agents,
        "one claim per agent, no leftovers"
    );
    assert_eq!(view.nodes.len(), agents);
    assert_eq!(view.routes.len(), agents, "one route-table slot each");
    let slots: BTreeSet<_> = view
        .routes
        .values()
        .map(|r| r.value.as_ref().unwrap().destination)
        .collect();
    assert_eq!(slots.len(), agents);
}

#[test]
fn hundred_agents_on_sqlite() {
    let dir = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("race.db").display());
    race(aksnet_store::open(&url).unwrap(), 100);
}

#[test]
fn hundred_agents_on_etcd() {
    let Some(bin) = aksnet_store::testing::etcd::require_etcd("100 agents on etcd") else {
        return;
    };
    let cluster = aksnet_store::testing::etcd::EtcdCluster::single(&bin).expect("etcd");
    race(aksnet_store::open(&cluster.store_url()).unwrap(), 100);
}
