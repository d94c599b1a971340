//! [`Kv`] over `aksnet-store`'s [`Store`] (SQLite or etcd), and store URLs
//! (`sqlite:PATH`, `etcd://HOST:PORT[,HOST:PORT…]`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aksnet_store::{
    Compare as SCompare, CompareOp, LeaseId as SLeaseId, Store, StoreError, Txn, TxnOp, Watcher,
};

use crate::kv::{Compare, Kv, KvEntry, KvError, LeaseId, Listing, Op};

pub struct StoreKv {
    store: Arc<dyn Store>,
    /// One watch kept open across waits (prefix, watcher).
    watch: Mutex<Option<(String, Watcher)>>,
}

fn err(e: StoreError) -> KvError {
    match e {
        StoreError::LeaseNotFound(id) => KvError::LeaseNotFound(id.0),
        other => KvError::Backend(other.to_string()),
    }
}

impl StoreKv {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            watch: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// Opens a store URL as the agent's [`Kv`].
pub fn open(url: &str) -> Result<Arc<dyn Kv>, KvError> {
    let store = aksnet_store::open(url).map_err(err)?;
    Ok(Arc::new(StoreKv::new(store)))
}

fn entry(kv: aksnet_store::KeyValue) -> KvEntry {
    KvEntry {
        key: kv.key,
        value: kv.value,
        mod_revision: kv.mod_revision,
        lease: kv.lease.map(|l| l.0).unwrap_or(0),
    }
}

impl Kv for StoreKv {
    fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(self.store.get(key).map_err(err)?.map(entry))
    }

    fn list(&self, prefix: &str) -> Result<Listing, KvError> {
        let r = self.store.range(prefix).map_err(err)?;
        Ok(Listing {
            entries: r.kvs.into_iter().map(entry).collect(),
            revision: r.revision,
        })
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<bool, KvError> {
        let cmps: Vec<SCompare> = compares
            .iter()
            .map(|c| match c {
                Compare::Absent(k) => SCompare::absent(k.clone()),
                Compare::ModRevision(k, r) => {
                    SCompare::mod_revision(k.clone(), CompareOp::Equal, *r)
                }
            })
            .collect();
        let ops: Vec<TxnOp> = ops
            .iter()
            .map(|o| match o {
                Op::Put { key, value, lease } => {
                    TxnOp::put_with_lease(key.clone(), value.clone(), lease.map(SLeaseId))
                }
                Op::Delete(k) => TxnOp::delete(k.clone()),
            })
            .collect();
        Ok(self
            .store
            .txn(Txn::new().when(cmps).and_then(ops))
            .map_err(err)?
            .succeeded)
    }

    fn grant(&self, ttl: Duration) -> Result<LeaseId, KvError> {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        Ok(self.store.lease_grant(secs).map_err(err)?.id.0)
    }

    fn keep_alive(&self, lease: LeaseId) -> Result<bool, KvError> {
        match self.store.lease_keep_alive(SLeaseId(lease)) {
            Ok(_) => Ok(true),
            Err(StoreError::LeaseNotFound(_)) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    fn revoke(&self, lease: LeaseId) -> Result<(), KvError> {
        match self.store.lease_revoke(SLeaseId(lease)) {
            Ok(()) | Err(StoreError::LeaseNotFound(_)) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    fn wait(&self, prefix: &str, after: i64, timeout: Duration) -> Result<bool, KvError> {
        let mut guard = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|(p, _)| p != prefix) {
            let w = self.store.watch(prefix, after + 1).map_err(err)?;
            *guard = Some((prefix.to_string(), w));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((_, w)) = guard.as_mut() else {
                return Ok(true);
            };
            match w.recv_timeout(left) {
                Ok(Some(ev)) if ev.revision() > after => return Ok(true),
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(false),
                Err(e) => {
                    // Compacted or closed: start afresh next time, and have
                    // the caller re-read everything now.
                    tracing::debug!(error = %e, "store watch ended; re-listing");
                    *guard = None;
                    return Ok(true);
                }
            }
        }
    }
}
