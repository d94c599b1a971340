//! Create-if-absent races and the claim helper.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use aksnet_store::claim::{self, ClaimOutcome, Claimer};
use aksnet_store::testing::race_claims;
use aksnet_store::{keys, Compare, CompareOp, Store, TxnOp};

// The cluster key layout, as the agent uses it.
use aksnet_core::cluster::{
    block_key, parse_block_key, route_key, BLOCKS_PREFIX as BLOCKS, ROUTES_PREFIX as ROUTES,
};
use ipnet::{IpNet, Ipv4Net};

use super::{get, put, together};

pub fn create_if_absent_race(s: &Arc<dyn Store>) {
    // 8 threads race for each of 10 keys: exactly one winner per key, and
    // every loser sees the winner's value.
    for round in 0..10 {
        let key = format!("/race/{round}");
        let store = Arc::clone(s);
        let k = key.clone();
        let results = together(8, move |i| {
            claim::create_if_absent(&*store, &k, format!("t{i}").as_bytes(), None)
                .unwrap_or_else(|e| panic!("claim {k}: {e}"))
        });
        let winners: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "{key}: winners {winners:?}");
        let value = format!("t{}", winners[0]);
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(r.value, value.as_bytes(), "losers see the winner");
        }
        let kv = get(&**s, &key).unwrap();
        assert_eq!((kv.value, kv.version), (value.into_bytes(), 1));
    }
}

pub fn claim_helper_semantics(s: &Arc<dyn Store>) {
    let st = &**s;
    let cands: Vec<String> = (0..4).map(|i| format!("/cl/{i}")).collect();
    put(st, "/cl/0", "other");
    // First free, in order.
    let a = Claimer::new(st, "a")
        .claim_first_free(cands.clone())
        .unwrap();
    assert!(
        matches!(&a, ClaimOutcome::Claimed { key, attempts: 2, .. } if key == "/cl/1"),
        "{a:?}"
    );
    // With the prefix listed, taken keys cost no transaction.
    let b = Claimer::new(st, "b")
        .skip_taken_under("/cl/")
        .claim_first_free(cands.clone())
        .unwrap();
    assert!(
        matches!(&b, ClaimOutcome::Claimed { key, attempts: 1, .. } if key == "/cl/2"),
        "{b:?}"
    );
    // Claiming again with the same value finds the existing claim.
    let again = Claimer::new(st, "b")
        .skip_taken_under("/cl/")
        .claim_first_free(cands.clone())
        .unwrap();
    assert_eq!(again.key(), Some("/cl/2"));
    // Without the listing, the lost race on our own key still says ours.
    let again = Claimer::new(st, "a")
        .claim_first_free(cands.clone())
        .unwrap();
    assert_eq!(again.key(), Some("/cl/1"));
    // Extra ops commit with the claim; extra compares guard it.
    let c = Claimer::new(st, "c")
        .when([Compare::absent("/cl-node/c")])
        .with_ops(|key| vec![TxnOp::put("/cl-node/c", key)])
        .claim_first_free(cands.clone())
        .unwrap();
    assert_eq!(c.key(), Some("/cl/3"));
    assert_eq!(get(st, "/cl-node/c").unwrap().value, b"/cl/3");
    st.delete("/cl/3").unwrap();
    let c2 = Claimer::new(st, "c2")
        .when([Compare::absent("/cl-node/c")])
        .claim_first_free(cands.clone())
        .unwrap();
    assert!(
        matches!(&c2, ClaimOutcome::PreconditionFailed { key, .. } if key == "/cl/3"),
        "{c2:?}"
    );
    assert!(
        get(st, "/cl/3").is_none(),
        "a failed precondition writes nothing"
    );
    // Exhausted.
    put(st, "/cl/3", "d");
    let e = Claimer::new(st, "e")
        .claim_first_free(cands.clone())
        .unwrap();
    assert_eq!(e, ClaimOutcome::Exhausted { attempts: 4 });
    // Spread starts elsewhere but still finds the free key.
    st.delete("/cl/0").unwrap();
    let f = Claimer::new(st, "f")
        .spread_by("node-f")
        .claim_first_free(cands.clone())
        .unwrap();
    assert_eq!(f.key(), Some("/cl/0"));
    // Release only when unchanged.
    let kv = get(st, "/cl/0").unwrap();
    put(st, "/cl/0", "f-updated");
    assert!(!claim::release(st, "/cl/0", kv.mod_revision).unwrap());
    let kv = get(st, "/cl/0").unwrap();
    assert!(claim::release(st, "/cl/0", kv.mod_revision).unwrap());
    assert!(get(st, "/cl/0").is_none());
    let owned = claim::find_owned(st, "/cl/", |kv| kv.value == b"a").unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].key, "/cl/1");
    // A claim with a lease carries it.
    let lease = st.lease_grant(30).unwrap();
    let g = Claimer::new(st, "g")
        .lease(Some(lease.id))
        .claim_first_free(cands)
        .unwrap();
    assert_eq!(g.key(), Some("/cl/0"));
    assert_eq!(get(st, "/cl/0").unwrap().lease, Some(lease.id));
    st.lease_revoke(lease.id).unwrap();
    assert!(get(st, "/cl/0").is_none());
}

/// 100 claimers race for /24 blocks of 10.244.0.0/16, first all for the
/// same first free block, then spread by name: 100 distinct blocks each time.
pub fn claim_race_100(s: &Arc<dyn Store>) {
    let pod_cidr: Ipv4Net = "10.244.0.0/16".parse().unwrap();
    let candidates: Vec<String> = pod_cidr
        .subnets(24)
        .unwrap()
        .map(|n| block_key(&n))
        .collect();
    assert_eq!(candidates.len(), 256);
    for spread in [false, true] {
        s.delete_prefix(BLOCKS).unwrap();
        let started = Instant::now();
        let results = race_claims(Arc::clone(s), 100, BLOCKS, &candidates, spread, None)
            .unwrap_or_else(|e| panic!("race: {e}"));
        let took = started.elapsed();
        let mut by_key: HashMap<&str, &str> = HashMap::new();
        let mut attempts = 0;
        for r in &results {
            let ClaimOutcome::Claimed {
                key, attempts: a, ..
            } = &r.outcome
            else {
                panic!("{} did not claim: {:?}", r.name, r.outcome);
            };
            attempts += a;
            if let Some(other) = by_key.insert(key, &r.name) {
                panic!("{key} claimed by both {other} and {}", r.name);
            }
            let net = parse_block_key(key).expect("a block key");
            assert!(pod_cidr.contains(&net) && net.prefix_len() == 24);
            // The store's own CIDR segment form is the same as the layout's.
            assert_eq!(
                keys::parse_cidr_segment(&key[BLOCKS.len()..]),
                Some(IpNet::V4(net))
            );
        }
        assert_eq!(by_key.len(), 100);
        let stored = s.range(BLOCKS).unwrap().kvs;
        assert_eq!(stored.len(), 100, "exactly the 100 claims are stored");
        for kv in &stored {
            assert_eq!(
                by_key.get(kv.key.as_str()).map(|n| n.as_bytes()),
                Some(kv.value.as_slice()),
                "{} holds its claimer's name",
                kv.key
            );
        }
        let names: HashSet<&str> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names.len(), 100);
        let slowest = results.iter().map(|r| r.took).max().unwrap_or_default();
        eprintln!(
            "claim_race_100 on {} (spread={spread}): 100 claims in {took:?}, {attempts} transactions, slowest claimer {slowest:?}",
            s.url()
        );
    }
    // The value compare guards a later update of one's own block.
    let kv = get(&**s, &candidates[0]);
    if let Some(kv) = kv {
        let mine = kv.value.clone();
        let t = s
            .txn(
                aksnet_store::Txn::new()
                    .when([Compare::value(&kv.key, CompareOp::Equal, mine)])
                    .and_then([TxnOp::delete(&kv.key)]),
            )
            .unwrap();
        assert!(t.succeeded);
    }
}

/// The route-table pattern of the cluster layout: `limit` slot keys; a
/// node claims one with its route entry as the value. With more nodes than
/// slots the extra ones are told the table is full, and a node that claims
/// again finds its own slot.
pub fn bounded_route_table(s: &Arc<dyn Store>) {
    let limit = 5;
    let slots: Vec<String> = (0..limit).map(route_key).collect();
    let entry = |i: usize| {
        format!(
            r#"{{"node":"node-{i}","destination":"10.244.{i}.0/24","next_hop":"10.224.0.{}"}}"#,
            i + 4
        )
    };
    let claim = {
        let slots = slots.clone();
        move |store: &dyn Store, i: usize| {
            Claimer::new(store, entry(i))
                .skip_taken_under(ROUTES)
                .spread_by(&format!("node-{i}"))
                .claim_first_free(slots.clone())
                .unwrap()
        }
    };
    let store = Arc::clone(s);
    let claim2 = claim.clone();
    let outcomes = together(8, move |i| claim2(&*store, i));
    let claimed: Vec<(usize, &str)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.key().map(|k| (i, k)))
        .collect();
    let full = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::Exhausted { .. }))
        .count();
    assert_eq!((claimed.len(), full), (5, 3), "{outcomes:?}");
    let routes = s.range(ROUTES).unwrap().kvs;
    assert_eq!(routes.len(), 5, "the table never exceeds its limit");
    for (i, key) in &claimed {
        let kv = routes
            .iter()
            .find(|kv| kv.key == *key)
            .expect("claimed slot stored");
        assert_eq!(kv.value, entry(*i).as_bytes());
        // Claiming again (an agent restart) finds the same slot.
        assert_eq!(claim(&**s, *i).key(), Some(*key));
    }
}
