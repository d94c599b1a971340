//! The store suite on the etcd backend (a throwaway etcd per test), plus
//! etcd-only checks: URL errors, and a 3-member cluster losing a member
//! while claimers race.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_store::claim::{ClaimOutcome, Claimer};
use aksnet_store::testing::etcd::{require_etcd, test_options, EtcdCluster};
use aksnet_store::{EtcdOptions, EtcdStore, Store, StoreError};
use common::Fixture;

fn setup(test: &str) -> Option<Fixture> {
    let bin = require_etcd(test)?;
    let cluster = EtcdCluster::single(&bin).unwrap_or_else(|e| panic!("{test}: {e}"));
    let store = cluster.open_store().expect("connect to etcd");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(cluster),
    })
}

store_suite!(setup);

#[test]
fn open_by_url_and_unreachable_endpoints() {
    let Some(bin) = require_etcd("open_by_url_and_unreachable_endpoints") else {
        return;
    };
    let cluster = EtcdCluster::single(&bin).unwrap();
    let s = aksnet_store::open(&cluster.store_url()).unwrap();
    assert_eq!(s.url(), cluster.store_url());
    s.put("/u/k", b"v", None).unwrap();
    // A dead endpoint listed first is skipped over.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mixed = EtcdStore::connect(
        vec![
            format!("127.0.0.1:{dead_port}"),
            cluster.endpoints()[0].clone(),
        ],
        test_options(),
    )
    .unwrap();
    assert_eq!(mixed.get("/u/k").unwrap().unwrap().value, b"v");
    // Nothing reachable: a clear error naming the endpoints.
    let quick = EtcdOptions {
        retry_for: Duration::from_secs(1),
        ..test_options()
    };
    let err = EtcdStore::connect(vec![format!("127.0.0.1:{dead_port}")], quick).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("etcd://127.0.0.1:{dead_port}")),
        "{msg}"
    );
    let bad = aksnet_store::open("etcd://127.0.0.1")
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("etcd://127.0.0.1") && bad.contains("port"),
        "{bad}"
    );
}

/// A 3-member cluster; several clients race create-if-absent claims while
/// one member is killed mid-run: no key is ever owned twice, every claim
/// that was reported succeeded is stored with its claimer's value, and the
/// clients keep working on the two members left. A watch keeps delivering
/// through the failure too.
#[test]
fn cluster_member_failure_keeps_claims_unique() {
    let test = "cluster_member_failure_keeps_claims_unique";
    let Some(bin) = require_etcd(test) else {
        return;
    };
    let started = Instant::now();
    let mut cluster = EtcdCluster::start(&bin, 3).unwrap_or_else(|e| panic!("{test}: {e}"));
    eprintln!("3-member cluster up in {:?}", started.elapsed());

    const CLIENTS: usize = 6;
    const SLOTS: usize = 120;
    let slots: Arc<Vec<String>> =
        Arc::new((0..SLOTS).map(|i| format!("/mf/slots/{i:03}")).collect());
    // Each client has its own connection (as separate agents would); the
    // member it talks to first differs, so the killed one is in use.
    let stores: Vec<Arc<dyn Store>> = (0..CLIENTS)
        .map(|i| {
            let mut eps = cluster.endpoints();
            eps.rotate_left(i % 3);
            // Clients i, i+3 start on member i.
            Arc::new(EtcdStore::connect(eps, test_options()).unwrap()) as Arc<dyn Store>
        })
        .collect();
    // The member to kill: the raft leader (the harder case: an election
    // follows). Client `victim` and the watch talk to it first.
    let victim = cluster.leader().expect("a leader");
    let mut watch = stores[victim].watch("/mf/slots/", 0).unwrap();

    let killed = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let (store, slots, killed) =
                (Arc::clone(store), Arc::clone(&slots), Arc::clone(&killed));
            std::thread::spawn(move || -> Result<Vec<(String, String, bool)>, StoreError> {
                let mut won = Vec::new();
                let mut n = 0;
                loop {
                    let value = format!("client{i}-{n}");
                    n += 1;
                    let outcome = Claimer::new(&*store, value.clone())
                        .skip_taken_under("/mf/slots/")
                        .spread_by(&value)
                        .claim_first_free(slots.iter().cloned())?;
                    match outcome {
                        ClaimOutcome::Claimed { key, .. } => {
                            won.push((key, value, killed.load(Ordering::SeqCst)));
                            // Pace the claims so that the run spans the kill.
                            std::thread::sleep(Duration::from_millis(15));
                        }
                        ClaimOutcome::Exhausted { .. } => return Ok(won),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            })
        })
        .collect();

    // Let claims flow, then kill the leader.
    let victim_pid = cluster.pid(victim);
    assert!(common::wait_for(Duration::from_secs(30), || {
        stores[1]
            .range("/mf/slots/")
            .map(|r| r.kvs.len() >= 25)
            .unwrap_or(false)
    }));
    let kill_at = Instant::now();
    cluster.stop_member(victim);
    killed.store(true, Ordering::SeqCst);
    eprintln!(
        "killed member {victim} (the leader, pid {victim_pid:?}) at {:?}",
        started.elapsed()
    );

    let mut by_key: HashMap<String, String> = HashMap::new();
    let mut after_kill = 0;
    for h in handles {
        let won = h
            .join()
            .expect("client thread")
            .unwrap_or_else(|e| panic!("client: {e}"));
        for (key, value, late) in won {
            after_kill += usize::from(late);
            if let Some(prev) = by_key.insert(key.clone(), value.clone()) {
                panic!("{key} claimed by both {prev} and {value}");
            }
        }
    }
    let finished = kill_at.elapsed();
    assert_eq!(by_key.len(), SLOTS, "every slot claimed exactly once");
    assert!(after_kill > 0, "claims kept succeeding after the kill");
    let new_leader = cluster.leader();
    assert!(
        new_leader.is_some_and(|l| l != victim),
        "a new leader: {new_leader:?}"
    );
    // Read back through a client whose first endpoint is the dead member.
    let stored = stores[victim].range("/mf/slots/").unwrap().kvs;
    assert_eq!(stored.len(), SLOTS);
    for kv in &stored {
        assert_eq!(
            by_key.get(&kv.key).map(String::as_bytes),
            Some(kv.value.as_slice()),
            "{} holds the value of the claimer told it won",
            kv.key
        );
    }
    // The watch (first on the dead member) saw every claim exactly once.
    let events = common::next_events(&mut watch, SLOTS, Duration::from_secs(30));
    let mut seen: Vec<&str> = events.iter().map(|e| e.kv.key.as_str()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), SLOTS, "one put event per slot");
    assert!(events.windows(2).all(|p| p[0].revision() < p[1].revision()));
    eprintln!(
        "{test}: {SLOTS} slots by {CLIENTS} clients, {after_kill} claimed after the kill, \
         run finished {finished:?} after the kill, total {:?}",
        started.elapsed()
    );
    // Writes still work with two of three members; then the member rejoins.
    stores[victim].put("/mf/after", b"ok", None).unwrap();
    cluster.restart_member(victim).unwrap();
    let only_first =
        EtcdStore::connect(vec![cluster.endpoints()[victim].clone()], test_options()).unwrap();
    assert!(common::wait_for(Duration::from_secs(10), || {
        only_first.get("/mf/after").ok().flatten().is_some()
    }));
}
