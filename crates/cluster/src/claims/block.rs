//! Kubenet/overlay: the node's /24 of the pod CIDR, claimed with one
//! create-if-absent transaction and kept across restarts.

use std::collections::BTreeSet;

use aksnet_core::cidr;
use aksnet_core::cluster::{self, Claim, ClaimKind};
use aksnet_store::claim::{ClaimOutcome, Claimer};
use aksnet_store::Store;
use ipnet::Ipv4Net;

use crate::error::{encode, ClusterError, Result};

/// Block size: one /24 per node, as AKS gives them.
pub const BLOCK_PREFIX: u8 = 24;
/// Listings retried before giving up when every candidate was taken by a
/// racing node in the meantime.
const RACE_ROUNDS: usize = 32;

/// The blocks to try, best first: the node's previous block (from its old
/// conflist) when still free, then every free block in address order (the
/// order AKS hands them out: 10.244.0.0/24, 10.244.1.0/24, …).
pub fn candidates(
    pod_cidr: &Ipv4Net,
    taken: &BTreeSet<Ipv4Net>,
    previous: Option<Ipv4Net>,
) -> Vec<Ipv4Net> {
    let pod_cidr = pod_cidr.trunc();
    let is_free = |b: &Ipv4Net| !taken.iter().any(|t| cidr::overlaps(t, b));
    let mut out = Vec::new();
    if let Some(p) = previous {
        if p.prefix_len() == BLOCK_PREFIX && cidr::contains_net(&pod_cidr, &p) && is_free(&p) {
            out.push(p.trunc());
        }
    }
    let count = cidr::subnet_count(&pod_cidr, BLOCK_PREFIX);
    for i in 0..count {
        if let Some(b) = cidr::nth_subnet(&pod_cidr, BLOCK_PREFIX, i) {
            if is_free(&b) && Some(b) != out.first().copied() {
                out.push(b);
            }
        }
    }
    out
}

/// The node's block: the one it already holds, or a new claim.
pub fn ensure_block(
    store: &dyn Store,
    node: &str,
    pod_cidr: &Ipv4Net,
    previous: Option<Ipv4Net>,
) -> Result<Ipv4Net> {
    let claim = encode(
        cluster::BLOCKS_PREFIX,
        &Claim {
            node: node.to_string(),
            kind: ClaimKind::PodBlock,
        },
    )?;
    for _ in 0..RACE_ROUNDS {
        let view = crate::read(store)?;
        if let Some(b) = view.blocks_of(node).next() {
            return Ok(b);
        }
        let taken: BTreeSet<Ipv4Net> = view.blocks.keys().copied().collect();
        let cands = candidates(pod_cidr, &taken, previous);
        if cands.is_empty() {
            return Err(ClusterError::PodCidrFull {
                pod_cidr: pod_cidr.trunc(),
                prefix: BLOCK_PREFIX,
                blocks: cidr::subnet_count(pod_cidr, BLOCK_PREFIX),
            });
        }
        // One create-if-absent per candidate, in order, until one is ours.
        let outcome = Claimer::new(store, claim.clone())
            .claim_first_free(cands.iter().map(cluster::block_key))?;
        if let ClaimOutcome::Claimed { key, .. } = outcome {
            if let Some(b) = cluster::parse_block_key(&key) {
                tracing::info!(node, block = %b, "claimed block");
                return Ok(b);
            }
        }
    }
    Err(ClusterError::RacesLost {
        what: format!("a block of {}", pod_cidr.trunc()),
        rounds: RACE_ROUNDS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn in_order_and_previous_first() {
        let taken: BTreeSet<_> = [n("10.244.0.0/24"), n("10.244.2.0/24")].into();
        let c = candidates(&n("10.244.0.0/22"), &taken, None);
        assert_eq!(c, vec![n("10.244.1.0/24"), n("10.244.3.0/24")]);
        let c = candidates(&n("10.244.0.0/22"), &taken, Some(n("10.244.3.0/24")));
        assert_eq!(c, vec![n("10.244.3.0/24"), n("10.244.1.0/24")]);
        // A previous block that is taken, or outside the CIDR, is ignored.
        let c = candidates(&n("10.244.0.0/22"), &taken, Some(n("10.244.2.0/24")));
        assert_eq!(c[0], n("10.244.1.0/24"));
        let c = candidates(&n("10.244.0.0/22"), &taken, Some(n("10.9.0.0/24")));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn cidr_smaller_than_a_block_has_none() {
        assert!(candidates(&n("10.244.0.0/25"), &BTreeSet::new(), None).is_empty());
    }
}
