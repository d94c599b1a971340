//! The part of the cluster store the agent uses, with etcd's semantics:
//! keys with revisions, all-or-nothing transactions guarded by compares,
//! leases, and waiting for a change under a prefix.
//!
//! It is deliberately narrow: [`crate::store_adapter`] implements it over
//! `aksnet-store`'s `Store` (SQLite or etcd), and [`MemKv`] implements it in
//! memory for tests (and for in-process races).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A lease identifier (etcd's `int64`).
pub type LeaseId = i64;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the last write to this key.
    pub mod_revision: i64,
    /// The lease the key is attached to (0: none).
    pub lease: LeaseId,
}

/// Every key under a prefix, as of one store revision.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub entries: Vec<KvEntry>,
    pub revision: i64,
}

/// A transaction guard; every compare must hold for the ops to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist (etcd `version(key) == 0`).
    Absent(String),
    /// The key exists with this mod revision.
    ModRevision(String, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete(String),
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cluster store: {0}")]
    Backend(String),
    #[error("cluster store: lease {0} does not exist (expired or revoked)")]
    LeaseNotFound(LeaseId),
}

/// Most operations (and compares) one transaction may carry: etcd's default
/// `--max-txn-ops` is 128.
pub const MAX_TXN_OPS: usize = 128;

pub trait Kv: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError>;
    /// Every key starting with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Listing, KvError>;
    /// Runs `ops` if every compare holds; returns whether it did.
    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<bool, KvError>;
    fn grant(&self, ttl: Duration) -> Result<LeaseId, KvError>;
    /// Renews the lease; `Ok(false)` when it no longer exists.
    fn keep_alive(&self, lease: LeaseId) -> Result<bool, KvError>;
    fn revoke(&self, lease: LeaseId) -> Result<(), KvError>;
    /// Returns once something under `prefix` changed after revision `after`,
    /// or when `timeout` passed (then `Ok(false)`).
    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> Result<bool, KvError>;
}

/// Creates every key if none exists yet, in one transaction.
pub fn create_all(
    kv: &dyn Kv,
    puts: &[(String, Vec<u8>)],
    lease: Option<LeaseId>,
) -> Result<bool, KvError> {
    let compares: Vec<Compare> = puts
        .iter()
        .map(|(k, _)| Compare::Absent(k.clone()))
        .collect();
    let ops: Vec<Op> = puts
        .iter()
        .map(|(k, v)| Op::Put {
            key: k.clone(),
            value: v.clone(),
            lease,
        })
        .collect();
    kv.txn(&compares, &ops)
}

/// In-memory store with etcd semantics, safe for many threads.
#[derive(Default)]
pub struct MemKv {
    inner: Mutex<MemInner>,
    changed: Condvar,
}

#[derive(Default)]
struct MemInner {
    revision: i64,
    keys: BTreeMap<String, KvEntry>,
    leases: HashMap<LeaseId, (Duration, Instant)>,
    next_lease: LeaseId,
    /// (revision, key) of every change, for `wait`.
    log: Vec<(i64, String)>,
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.expire();
        g
    }

    /// Current store revision.
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }
}

impl MemInner {
    fn expire(&mut self) {
        let now = Instant::now();
        let dead: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.drop_lease(id);
        }
    }

    fn drop_lease(&mut self, id: LeaseId) {
        self.leases.remove(&id);
        let keys: Vec<String> = self
            .keys
            .values()
            .filter(|e| e.lease == id)
            .map(|e| e.key.clone())
            .collect();
        if !keys.is_empty() {
            self.revision += 1;
        }
        for k in keys {
            self.keys.remove(&k);
            self.log.push((self.revision, k));
        }
    }
}

impl Kv for MemKv {
    fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(self.lock().keys.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Listing, KvError> {
        let g = self.lock();
        let entries = g
            .keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect();
        Ok(Listing {
            entries,
            revision: g.revision,
        })
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<bool, KvError> {
        let mut g = self.lock();
        let holds = compares.iter().all(|c| match c {
            Compare::Absent(k) => !g.keys.contains_key(k),
            Compare::ModRevision(k, r) => g.keys.get(k).is_some_and(|e| e.mod_revision == *r),
        });
        if !holds {
            return Ok(false);
        }
        for op in ops {
            if let Op::Put { lease: Some(l), .. } = op {
                if !g.leases.contains_key(l) {
                    return Err(KvError::LeaseNotFound(*l));
                }
            }
        }
        if ops.is_empty() {
            return Ok(true);
        }
        g.revision += 1;
        let rev = g.revision;
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    g.keys.insert(
                        key.clone(),
                        KvEntry {
                            key: key.clone(),
                            value: value.clone(),
                            mod_revision: rev,
                            lease: lease.unwrap_or(0),
                        },
                    );
                    g.log.push((rev, key.clone()));
                }
                Op::Delete(key) => {
                    if g.keys.remove(key).is_some() {
                        g.log.push((rev, key.clone()));
                    }
                }
            }
        }
        drop(g);
        self.changed.notify_all();
        Ok(true)
    }

    fn grant(&self, ttl: Duration) -> Result<LeaseId, KvError> {
        let mut g = self.lock();
        g.next_lease += 1;
        let id = g.next_lease;
        g.leases.insert(id, (ttl, Instant::now() + ttl));
        Ok(id)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<bool, KvError> {
        let mut g = self.lock();
        match g.leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + *ttl;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        let mut g = self.lock();
        g.drop_lease(lease);
        drop(g);
        self.changed.notify_all();
        Ok(())
    }

    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> Result<bool, KvError> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if g.log
                .iter()
                .any(|(r, k)| *r > after && k.starts_with(prefix))
            {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            // Wake at least every 100 ms so lease expiry is noticed.
            let step = (deadline - now).min(Duration::from_millis(100));
            g = self
                .changed
                .wait_timeout(g, step)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            g.expire();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_if_absent_once() {
        let kv = MemKv::new();
        let put = vec![("/a".to_string(), b"1".to_vec())];
        assert!(create_all(&kv, &put, None).unwrap());
        assert!(!create_all(&kv, &put, None).unwrap());
        let e = kv.get("/a").unwrap().unwrap();
        assert!(kv
            .txn(
                &[Compare::ModRevision("/a".into(), e.mod_revision)],
                &[Op::Delete("/a".into())]
            )
            .unwrap());
        assert!(kv.get("/a").unwrap().is_none());
    }

    #[test]
    fn lease_expiry_removes_keys_and_wakes_waiters() {
        let kv = MemKv::new();
        let lease = kv.grant(Duration::from_millis(150)).unwrap();
        let rev = kv.revision();
        kv.txn(
            &[],
            &[Op::Put {
                key: "/n/x".into(),
                value: vec![],
                lease: Some(lease),
            }],
        )
        .unwrap();
        assert!(kv.wait("/n/", rev, Duration::from_millis(10)).unwrap());
        let rev = kv.revision();
        assert!(kv.wait("/n/", rev, Duration::from_secs(2)).unwrap());
        assert!(kv.get("/n/x").unwrap().is_none());
        assert!(!kv.keep_alive(lease).unwrap());
        assert!(matches!(
            kv.txn(
                &[],
                &[Op::Put {
                    key: "/k".into(),
                    value: vec![],
                    lease: Some(lease)
                }]
            ),
            Err(KvError::LeaseNotFound(_))
        ));
    }
}
