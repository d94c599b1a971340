//! Claiming one free key among candidates, race-safe on any [`Store`].
//!
//! This is the primitive behind node block claims, VNet address batches and
//! route-table entries: every claim is one create-if-absent transaction
//! (`If Version(key) == 0 Then Put(key, owner)`), as flannel and Calico do
//! on etcd, so two claimers can never both own a key.
//!
//! ```no_run
//! # fn demo(store: &dyn aksnet_store::Store) -> Result<(), aksnet_store::StoreError> {
//! use aksnet_store::claim::{ClaimOutcome, Claimer};
//! let candidates = (0..=255).map(|i| format!("/aksnet/blocks/10.244.{i}.0-24"));
//! let lease = store.lease_grant(60)?;
//! match Claimer::new(store, br#"{"node":"node-1"}"#.to_vec())
//!     .lease(Some(lease.id))
//!     .skip_taken_under("/aksnet/blocks/")
//!     .spread_by("node-1")
//!     .claim_first_free(candidates)?
//! {
//!     ClaimOutcome::Claimed { key, .. } => println!("node-1 owns {key}"),
//!     ClaimOutcome::Exhausted { .. } => println!("no block left"),
//!     ClaimOutcome::PreconditionFailed { .. } => unreachable!("no extra compares"),
//! }
//! # Ok(()) }
//! ```

use std::collections::HashSet;

use crate::error::Result;
use crate::store::Store;
use crate::types::{Compare, KeyValue, LeaseId, Txn, TxnOp};

/// How a claim ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// `key` is now ours, written at `revision`.
    Claimed {
        key: String,
        revision: i64,
        /// Transactions sent, including lost races.
        attempts: u32,
    },
    /// Every candidate was taken.
    Exhausted { attempts: u32 },
    /// `key` was free but one of the extra compares did not hold, so
    /// nothing was written (e.g. the node record changed meanwhile).
    PreconditionFailed { key: String, attempts: u32 },
}

impl ClaimOutcome {
    /// The claimed key, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ClaimOutcome::Claimed { key, .. } => Some(key),
            _ => None,
        }
    }
}

type ExtraOps<'a> = Box<dyn Fn(&str) -> Vec<TxnOp> + 'a>;

/// Builder of a claim. `value` identifies the claimer (e.g. the node name
/// in JSON); it must differ between claimers, because a key found holding
/// exactly our value and lease is taken as ours (that makes a claim whose
/// reply was lost, and which was retried, come out right).
pub struct Claimer<'a> {
    store: &'a dyn Store,
    value: Vec<u8>,
    lease: Option<LeaseId>,
    taken_prefix: Option<String>,
    spread_seed: Option<u64>,
    compares: Vec<Compare>,
    extra_ops: Option<ExtraOps<'a>>,
}

impl std::fmt::Debug for Claimer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimer")
            .field("store", &self.store.url())
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("lease", &self.lease)
            .field("taken_prefix", &self.taken_prefix)
            .field("spread_seed", &self.spread_seed)
            .field("compares", &self.compares)
            .finish()
    }
}

impl<'a> Claimer<'a> {
    pub fn new(store: &'a dyn Store, value: impl Into<Vec<u8>>) -> Self {
        Claimer {
            store,
            value: value.into(),
            lease: None,
            taken_prefix: None,
            spread_seed: None,
            compares: Vec::new(),
            extra_ops: None,
        }
    }

    /// Attach the claimed key to a lease (it is deleted when the lease ends).
    pub fn lease(mut self, lease: Option<LeaseId>) -> Self {
        self.lease = lease;
        self
    }

    /// Every candidate lives under `prefix`: list it once up front and on
    /// every lost race, and skip the keys found there. Saves one
    /// transaction per taken key.
    pub fn skip_taken_under(mut self, prefix: impl Into<String>) -> Self {
        self.taken_prefix = Some(prefix.into());
        self
    }

    /// Start at a candidate chosen by hashing `seed` (e.g. the node name)
    /// and wrap around, instead of at the first one. Many claimers with
    /// different seeds then rarely race for the same key (Calico seeds its
    /// block search with the host name for the same reason).
    pub fn spread_by(mut self, seed: &str) -> Self {
        self.spread_seed = Some(fnv1a(seed.as_bytes()));
        self
    }

    /// More conditions for the claim transaction (e.g. the node record's
    /// `mod_revision` is unchanged).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// More writes to commit together with the claim, built from the key
    /// being claimed (e.g. record the block in the node object).
    pub fn with_ops(mut self, ops: impl Fn(&str) -> Vec<TxnOp> + 'a) -> Self {
        self.extra_ops = Some(Box::new(ops));
        self
    }

    fn is_ours(&self, kv: &KeyValue) -> bool {
        kv.value == self.value && kv.lease == self.lease
    }

    fn note_taken(taken: &mut HashSet<String>, kvs: &[KeyValue]) {
        taken.clear();
        taken.extend(kvs.iter().map(|kv| kv.key.clone()));
    }

    /// Claims the first free candidate (in the given order, or rotated by
    /// [`Claimer::spread_by`]).
    pub fn claim_first_free<I, S>(&self, candidates: I) -> Result<ClaimOutcome>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut candidates: Vec<String> = candidates.into_iter().map(Into::into).collect();
        if let (Some(seed), false) = (self.spread_seed, candidates.is_empty()) {
            let start = (seed % candidates.len() as u64) as usize;
            candidates.rotate_left(start);
        }
        let mut taken = HashSet::new();
        if let Some(prefix) = &self.taken_prefix {
            let listed = self.store.range(prefix)?;
            if let Some(kv) = listed
                .kvs
                .iter()
                .find(|kv| self.is_ours(kv) && candidates.contains(&kv.key))
            {
                return Ok(ClaimOutcome::Claimed {
                    key: kv.key.clone(),
                    revision: kv.mod_revision,
                    attempts: 0,
                });
            }
            Self::note_taken(&mut taken, &listed.kvs);
        }
        let mut attempts = 0u32;
        for key in &candidates {
            if taken.contains(key) {
                continue;
            }
            attempts += 1;
            let mut success = vec![TxnOp::put_with_lease(
                key.clone(),
                self.value.clone(),
                self.lease,
            )];
            if let Some(extra) = &self.extra_ops {
                success.extend(extra(key));
            }
            let mut failure = vec![TxnOp::get(key.clone())];
            if let Some(prefix) = &self.taken_prefix {
                failure.push(TxnOp::range(prefix.clone()));
            }
            let txn = Txn::new()
                .when([Compare::absent(key.clone())])
                .when(self.compares.iter().cloned())
                .and_then(success)
                .or_else(failure);
            let resp = self.store.txn(txn)?;
            if resp.succeeded {
                tracing::debug!(store = self.store.url(), key, attempts, "claimed");
                return Ok(ClaimOutcome::Claimed {
                    key: key.clone(),
                    revision: resp.revision,
                    attempts,
                });
            }
            match resp.get(0) {
                Some(kv) if self.is_ours(kv) => {
                    return Ok(ClaimOutcome::Claimed {
                        key: key.clone(),
                        revision: kv.mod_revision,
                        attempts,
                    });
                }
                Some(_) => {
                    tracing::trace!(store = self.store.url(), key, "candidate taken");
                }
                None => {
                    return Ok(ClaimOutcome::PreconditionFailed {
                        key: key.clone(),
                        attempts,
                    });
                }
            }
            if self.taken_prefix.is_some() {
                Self::note_taken(&mut taken, resp.range(1));
            }
        }
        Ok(ClaimOutcome::Exhausted { attempts })
    }
}

/// Creates `key` with `value` if it does not exist. `Ok(Ok(revision))` when
/// created, `Ok(Err(existing))` when the key was already there.
pub fn create_if_absent(
    store: &dyn Store,
    key: &str,
    value: &[u8],
    lease: Option<LeaseId>,
) -> Result<std::result::Result<i64, KeyValue>> {
    let resp = store.txn(
        Txn::new()
            .when([Compare::absent(key)])
            .and_then([TxnOp::put_with_lease(key, value, lease)])
            .or_else([TxnOp::get(key)]),
    )?;
    if resp.succeeded {
        return Ok(Ok(resp.revision));
    }
    match resp.get(0) {
        Some(kv) => Ok(Err(kv.clone())),
        // Deleted between the compare and the get cannot happen inside one
        // transaction; report it as taken at the current revision anyway.
        None => Ok(Err(KeyValue {
            key: key.to_owned(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: resp.revision,
            version: 0,
            lease: None,
        })),
    }
}

/// Deletes `key` only if it was not changed since `mod_revision` (a release
/// that cannot remove somebody else's newer claim). True when deleted.
pub fn release(store: &dyn Store, key: &str, mod_revision: i64) -> Result<bool> {
    let resp = store.txn(
        Txn::new()
            .when([Compare::mod_revision(
                key,
                crate::types::CompareOp::Equal,
                mod_revision,
            )])
            .and_then([TxnOp::delete(key)]),
    )?;
    Ok(resp.succeeded)
}

/// The keys under `prefix` whose value satisfies `owned` (e.g. "the blocks
/// this node already holds", to keep them across restarts).
pub fn find_owned(
    store: &dyn Store,
    prefix: &str,
    owned: impl Fn(&KeyValue) -> bool,
) -> Result<Vec<KeyValue>> {
    Ok(store
        .range(prefix)?
        .kvs
        .into_iter()
        .filter(|kv| owned(kv))
        .collect())
}

/// 64-bit FNV-1a: a stable, dependency-free hash for spreading claimers.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
