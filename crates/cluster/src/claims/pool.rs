//! Azure CNI: pod addresses claimed one key each under `/aksnet/ips/<ip>`.
//!
//! - static (node subnet): max-pods addresses reserved up front, taken from
//!   the top of the subnet downwards so they stay clear of node addresses,
//!   which are numbered from the bottom (.4, .5, … as Azure hands them out);
//! - dynamic (pod subnet): batches of 16 kept at `dynamic_pool::target_ips`,
//!   taken from the bottom of the pod subnet.
//!
//! Contiguous runs are preferred so a node's conflist holds few ranges.
//! Claims go in transactions of at most 64 keys (64 compares + 64 puts stay
//! under etcd's 128-operation limit).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use aksnet_core::cluster::{self, Claim, ClaimKind, IPS_PREFIX};
use aksnet_core::dynamic_pool;
use aksnet_store::{Compare, Store, Txn, TxnOp};
use ipnet::Ipv4Net;

use crate::error::{encode, ClusterError, Result};
use crate::ClusterView;

pub const CHUNK: usize = 64;
const RACE_ROUNDS: usize = 32;

/// Addresses Azure keeps for itself in every subnet: the network address,
/// .1 (gateway), .2 and .3 (DNS), and the broadcast address.
pub fn usable_bounds(subnet: &Ipv4Net) -> Option<(u32, u32)> {
    let s = subnet.trunc();
    let lo = u32::from(s.network()).checked_add(4)?;
    let hi = u32::from(s.broadcast()).checked_sub(1)?;
    (s.prefix_len() <= 29 && lo <= hi).then_some((lo, hi))
}

/// Free runs `[a, b]` of `[lo, hi]` around the taken addresses, ascending.
fn free_runs(lo: u32, hi: u32, taken: &BTreeSet<u32>) -> Vec<(u32, u32)> {
    let mut runs = Vec::new();
    let mut start = lo;
    for &t in taken.range(lo..=hi) {
        if t > start {
            runs.push((start, t - 1));
        }
        start = match t.checked_add(1) {
            Some(s) => s,
            None => return runs,
        };
    }
    if start <= hi {
        runs.push((start, hi));
    }
    runs
}

/// Picks `want` free addresses of `[lo, hi]`: the first run (scanning up,
/// or down when `top_down`) that holds them all, else the runs in scan
/// order. Fewer are returned when fewer are free.
pub fn choose(lo: u32, hi: u32, taken: &BTreeSet<u32>, want: usize, top_down: bool) -> Vec<u32> {
    if want == 0 || lo > hi {
        return Vec::new();
    }
    let mut runs = free_runs(lo, hi, taken);
    if top_down {
        runs.reverse();
    }
    let run_len = |(a, b): (u32, u32)| (u64::from(b) - u64::from(a) + 1) as usize;
    let take = |(a, b): (u32, u32), n: usize| -> Vec<u32> {
        let n = n.min(run_len((a, b))) as u32;
        if top_down {
            (b - (n - 1)..=b).rev().collect()
        } else {
            (a..=a + (n - 1)).collect()
        }
    };
    if let Some(r) = runs.iter().find(|r| run_len(**r) >= want) {
        return take(*r, want);
    }
    let mut out = Vec::with_capacity(want);
    for r in runs {
        if out.len() >= want {
            break;
        }
        let n = want - out.len();
        out.extend(take(r, n));
    }
    out
}

fn claim_value(node: &str) -> Result<Vec<u8>> {
    encode(
        IPS_PREFIX,
        &Claim {
            node: node.to_string(),
            kind: ClaimKind::PodIp,
        },
    )
}

/// Claims the addresses chunk by chunk; stops at the first chunk a racing
/// node got to first. Returns how many were claimed.
pub fn claim_ips(store: &dyn Store, node: &str, addrs: &[Ipv4Addr]) -> Result<usize> {
    let value = claim_value(node)?;
    let mut done = 0;
    for chunk in addrs.chunks(CHUNK) {
        // All of the chunk's keys are created, or none if any exists.
        let keys: Vec<String> = chunk.iter().map(|a| cluster::ip_key(*a)).collect();
        let txn = Txn::new()
            .when(keys.iter().map(Compare::absent))
            .and_then(keys.iter().map(|k| TxnOp::put(k.clone(), value.clone())));
        if !store.txn(txn)?.succeeded {
            break;
        }
        done += chunk.len();
    }
    Ok(done)
}

/// Releases the node's claims on these addresses (each only if unchanged
/// since `view` was read).
pub fn release_ips(
    store: &dyn Store,
    view: &ClusterView,
    node: &str,
    addrs: &[Ipv4Addr],
) -> Result<usize> {
    let mine: Vec<(String, i64)> = addrs
        .iter()
        .filter_map(|a| {
            let c = view.ips.get(a)?;
            (c.value.as_ref()?.node == node).then(|| (cluster::ip_key(*a), c.mod_revision))
        })
        .collect();
    super::delete_unchanged(store, &[], &mine)
}

/// What a pool holds after a claim round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOutcome {
    pub held: Vec<Ipv4Addr>,
    /// Addresses wanted that the subnet could not give.
    pub shortfall: u32,
}

/// Grows the node's pool in `subnet` to `want` addresses.
pub fn grow_to(
    store: &dyn Store,
    node: &str,
    subnet: &Ipv4Net,
    want: u32,
    top_down: bool,
) -> Result<PoolOutcome> {
    let Some((lo, hi)) = usable_bounds(subnet) else {
        return Err(ClusterError::SubnetTooSmall {
            subnet: subnet.trunc(),
        });
    };
    for _ in 0..RACE_ROUNDS {
        let view = crate::read(store)?;
        let held = view.pod_ips_of(node);
        let held_n = u32::try_from(held.len()).unwrap_or(u32::MAX);
        if held_n >= want {
            return Ok(PoolOutcome { held, shortfall: 0 });
        }
        let taken: BTreeSet<u32> = view.ips.keys().map(|a| u32::from(*a)).collect();
        let need = (want - held_n) as usize;
        let pick: Vec<Ipv4Addr> = choose(lo, hi, &taken, need, top_down)
            .into_iter()
            .map(Ipv4Addr::from)
            .collect();
        if pick.is_empty() {
            return Ok(PoolOutcome {
                held,
                shortfall: need as u32,
            });
        }
        let got = claim_ips(store, node, &pick)?;
        if got == pick.len() && pick.len() == need {
            let mut held = held;
            held.extend(pick);
            held.sort();
            return Ok(PoolOutcome { held, shortfall: 0 });
        }
    }
    let view = crate::read(store)?;
    let held = view.pod_ips_of(node);
    let shortfall = want.saturating_sub(held.len() as u32);
    Ok(PoolOutcome { held, shortfall })
}

/// Dynamic pool decision: how many to claim, or which to give back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DynamicPlan {
    pub target: u32,
    pub claim: u32,
    pub release: Vec<Ipv4Addr>,
}

/// CNS's rule: hold `target_ips(used)`; give back the highest unused
/// addresses when holding more.
pub fn plan_dynamic(held: &[Ipv4Addr], used: &BTreeSet<Ipv4Addr>) -> DynamicPlan {
    let used_n = held.iter().filter(|a| used.contains(a)).count() as u32;
    let target = dynamic_pool::target_ips(used_n);
    let held_n = held.len() as u32;
    if held_n < target {
        return DynamicPlan {
            target,
            claim: target - held_n,
            release: Vec::new(),
        };
    }
    let extra = (held_n - target) as usize;
    let mut release: Vec<Ipv4Addr> = held
        .iter()
        .rev()
        .filter(|a| !used.contains(a))
        .take(extra)
        .copied()
        .collect();
    release.sort();
    DynamicPlan {
        target,
        claim: 0,
        release,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_store::testing::TempSqlite;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn azure_reservations() {
        let (lo, hi) = usable_bounds(&"10.224.0.0/24".parse().unwrap()).unwrap();
        assert_eq!(
            (Ipv4Addr::from(lo), Ipv4Addr::from(hi)),
            (a("10.224.0.4"), a("10.224.0.254"))
        );
        assert_eq!(hi - lo + 1, 251, "a /24 has 251 usable addresses");
        assert!(usable_bounds(&"10.0.0.0/30".parse().unwrap()).is_none());
    }

    #[test]
    fn prefers_one_contiguous_run() {
        let taken: BTreeSet<u32> = [12, 13, 30].into();
        assert_eq!(choose(10, 40, &taken, 5, false), vec![14, 15, 16, 17, 18]);
        assert_eq!(choose(10, 40, &taken, 2, false), vec![10, 11]);
        assert_eq!(choose(10, 40, &taken, 5, true), vec![40, 39, 38, 37, 36]);
        // No run of 20: runs in order.
        let got = choose(10, 40, &taken, 20, false);
        assert_eq!(got.len(), 20);
        assert_eq!(&got[..3], &[10, 11, 14]);
        assert_eq!(
            choose(10, 12, &[10, 11, 12].into(), 3, false),
            Vec::<u32>::new()
        );
        assert_eq!(
            choose(u32::MAX - 1, u32::MAX, &[u32::MAX].into(), 3, false),
            vec![u32::MAX - 1]
        );
    }

    proptest! {
        #[test]
        fn choose_never_picks_taken_or_twice(
            taken in proptest::collection::btree_set(0u32..200, 0..150),
            want in 0usize..250,
            top_down: bool,
        ) {
            let got = choose(0, 199, &taken, want, top_down);
            let free = 200 - taken.len();
            prop_assert_eq!(got.len(), want.min(free));
            let set: BTreeSet<u32> = got.iter().copied().collect();
            prop_assert_eq!(set.len(), got.len());
            prop_assert!(got.iter().all(|g| !taken.contains(g) && *g < 200));
        }
    }

    #[test]
    fn dynamic_grows_and_shrinks_by_the_cns_rule() {
        let held: Vec<Ipv4Addr> = (4..20).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
        let none = BTreeSet::new();
        let p = plan_dynamic(&held, &none);
        assert_eq!((p.target, p.claim, p.release.len()), (16, 0, 0));
        let used: BTreeSet<Ipv4Addr> = held[..9].iter().copied().collect();
        let p = plan_dynamic(&held, &used);
        assert_eq!((p.target, p.claim), (32, 16));
        let held32: Vec<Ipv4Addr> = (4..36).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
        let used: BTreeSet<Ipv4Addr> = [held32[0], held32[31]].into();
        let p = plan_dynamic(&held32, &used);
        assert_eq!(p.target, 16);
        assert_eq!(p.release.len(), 16);
        assert!(
            !p.release.contains(&held32[31]),
            "an address in use is never released"
        );
    }

    #[test]
    fn static_pool_top_down_and_races_resolve() {
        let kv = TempSqlite::new().unwrap();
        let kv = &*kv;
        let subnet: Ipv4Net = "10.224.0.0/24".parse().unwrap();
        let o = grow_to(kv, "n1", &subnet, 30, true).unwrap();
        assert_eq!(o.shortfall, 0);
        assert_eq!(o.held.len(), 30);
        assert_eq!(*o.held.last().unwrap(), a("10.224.0.254"));
        let o2 = grow_to(kv, "n2", &subnet, 30, true).unwrap();
        assert!(o2.held.iter().all(|x| !o.held.contains(x)));
        // Idempotent.
        assert_eq!(grow_to(kv, "n1", &subnet, 30, true).unwrap().held, o.held);
        // Too few left: a shortfall, not an error.
        let o3 = grow_to(kv, "n3", &subnet, 250, true).unwrap();
        assert_eq!(o3.held.len(), 251 - 60);
        assert_eq!(o3.shortfall, 250 - 191);
        let view = crate::read(kv).unwrap();
        assert_eq!(release_ips(kv, &view, "n2", &o2.held).unwrap(), 30);
        assert_eq!(
            release_ips(kv, &view, "n2", &o.held).unwrap(),
            0,
            "not n2's"
        );
    }
}
