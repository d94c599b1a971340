//! The etcd v3 backend.
//!
//! The async `etcd-client` runs on a small tokio runtime owned by the store
//! (two worker threads); every [`Store`] call is one task on it, and the
//! caller blocks on a channel until it finishes, so the store can be called
//! from plain threads and (blocking a worker) from async code alike.
//! Calls go to one endpoint at a time and fail over to the next on
//! transport errors, time-outs and "no leader" answers (see `conn`).

mod conn;
mod convert;
mod tls;
mod watch;

pub use tls::EtcdTls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client as ec;

use self::conn::{is_compacted, is_lease_not_found, CallError, Inner, RuntimeOwner, SharedRuntime};
use crate::error::{Result, StoreError};
use crate::store::{Store, Watcher};
use crate::types::{
    DeleteResponse, KeyValue, Lease, LeaseId, RangeResponse, Txn, TxnOp, TxnResponse,
};

/// Tuning of the etcd backend.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Time for one try of one call on one endpoint.
    pub request_timeout: Duration,
    /// Time a call keeps retrying (on the next endpoints) before it fails
    /// with [`StoreError::Unavailable`].
    pub retry_for: Duration,
    /// Time to set up a connection to one endpoint.
    pub connect_timeout: Duration,
    /// Worker threads of the store's runtime.
    pub runtime_threads: usize,
    /// TLS (`etcds://`): when set, endpoints are reached over TLS with
    /// these files.
    pub tls: Option<EtcdTls>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            request_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(2),
            runtime_threads: 2,
            tls: None,
        }
    }
}

/// The etcd store.
#[derive(Debug)]
pub struct EtcdStore {
    inner: Arc<Inner>,
    runtime: SharedRuntime,
}

fn not_found_lease(txn: &Txn) -> LeaseId {
    txn.success
        .iter()
        .chain(&txn.failure)
        .find_map(|op| match op {
            TxnOp::Put { lease, .. } => *lease,
            _ => None,
        })
        .unwrap_or(LeaseId(0))
}

impl EtcdStore {
    /// Connects to the etcd cluster behind `endpoints` (`HOST:PORT` or
    /// `http://HOST:PORT` each) and checks that it answers.
    pub fn connect(endpoints: Vec<String>, options: EtcdOptions) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: "etcd://".into(),
                reason: "no etcd endpoint given".into(),
            });
        }
        let tls = options.tls.as_ref().map(EtcdTls::load).transpose()?;
        let (scheme, url_scheme) = if tls.is_some() {
            ("https", "etcds")
        } else {
            ("http", "etcd")
        };
        let mut plain: Vec<String> = Vec::with_capacity(endpoints.len());
        for e in &endpoints {
            if tls.is_none() && e.starts_with("https://") {
                return Err(StoreError::Tls(format!(
                    "endpoint {e} is https but no TLS files are given (--etcd-ca, --etcd-cert, --etcd-key)"
                )));
            }
            plain.push(
                e.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .to_owned(),
            );
        }
        let url = format!("{url_scheme}://{}", plain.join(","));
        let http = plain.iter().map(|e| format!("{scheme}://{e}")).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.runtime_threads.max(1))
            .thread_name("aksnet-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend(url.clone(), "starting the etcd client runtime", e))?;
        let store = EtcdStore {
            inner: Arc::new(Inner::new(url, http, options, tls)),
            runtime: Arc::new(RuntimeOwner(Some(runtime))),
        };
        store.revision()?;
        tracing::debug!(store = %store.inner.url, "connected");
        Ok(store)
    }

    /// Runs a future on the store's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        run_on(&self.runtime, &self.inner.url, fut)
    }

    /// Runs one etcd call with retries, mapping its errors with `map`
    /// (which may claim specific server errors before the generic mapping).
    fn call<T, F, Fut>(
        &self,
        what: &'static str,
        f: F,
        map: impl Fn(&ec::Error) -> Option<StoreError> + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(ec::Client) -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, ec::Error>> + Send,
    {
        let inner = Arc::clone(&self.inner);
        self.block(async move {
            match inner.call(what, f).await {
                Ok(v) => Ok(v),
                Err(CallError::Etcd(e)) => match map(&e) {
                    Some(mapped) => Err(mapped),
                    None => Err(fail(&inner, what, CallError::Etcd(e))),
                },
                Err(e) => Err(fail(&inner, what, e)),
            }
        })
    }
}

pub(crate) fn run_on<T: Send + 'static>(
    runtime: &SharedRuntime,
    url: &str,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let stopped = || StoreError::Unavailable {
        store: url.to_owned(),
        message: "the etcd client runtime has stopped".into(),
    };
    let handle = runtime.handle().ok_or_else(stopped)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| stopped())?
}

pub(crate) fn fail(inner: &Inner, what: &str, e: CallError) -> StoreError {
    match e {
        CallError::Unavailable(e) => e,
        CallError::Etcd(e) => StoreError::backend(inner.url.clone(), what.to_owned(), e),
    }
}

impl Store for EtcdStore {
    fn url(&self) -> &str {
        &self.inner.url
    }

    fn revision(&self) -> Result<i64> {
        self.call(
            "reading the revision",
            |mut c| async move {
                let r = c
                    .get("/", Some(ec::GetOptions::new().with_count_only()))
                    .await?;
                Ok(r.header().map_or(0, |h| h.revision()))
            },
            |_| None,
        )
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        crate::keys::check_key(key)?;
        let key = key.to_owned();
        self.call(
            "reading a key",
            move |mut c| {
                let key = key.clone();
                async move {
                    let r = c.get(key, None).await?;
                    Ok(r.kvs().first().map(convert::kv))
                }
            },
            |_| None,
        )
    }

    fn range(&self, prefix: &str) -> Result<RangeResponse> {
        let prefix = prefix.to_owned();
        self.call(
            "listing a prefix",
            move |mut c| {
                let prefix = prefix.clone();
                async move {
                    let r = c
                        .get(prefix, Some(ec::GetOptions::new().with_prefix()))
                        .await?;
                    Ok(RangeResponse {
                        kvs: r.kvs().iter().map(convert::kv).collect(),
                        revision: r.header().map_or(0, |h| h.revision()),
                    })
                }
            },
            |_| None,
        )
    }

    fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<i64> {
        crate::keys::check_key(key)?;
        let (key, value) = (key.to_owned(), value.to_vec());
        self.call(
            "writing a key",
            move |mut c| {
                let (key, value) = (key.clone(), value.clone());
                async move {
                    let opts = lease.map(|l| ec::PutOptions::new().with_lease(l.0));
                    let r = c.put(key, value, opts).await?;
                    Ok(r.header().map_or(0, |h| h.revision()))
                }
            },
            move |e| {
                is_lease_not_found(e)
                    .then(|| StoreError::LeaseNotFound(lease.unwrap_or(LeaseId(0))))
            },
        )
    }

    fn delete(&self, key: &str) -> Result<DeleteResponse> {
        crate::keys::check_key(key)?;
        self.delete_with(key.to_owned(), None)
    }

    fn delete_prefix(&self, prefix: &str) -> Result<DeleteResponse> {
        if prefix.is_empty() {
            return Err(StoreError::InvalidKey {
                key: String::new(),
                reason: "refusing to delete every key: give a non-empty prefix".into(),
            });
        }
        self.delete_with(
            prefix.to_owned(),
            Some(ec::DeleteOptions::new().with_prefix()),
        )
    }

    fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate()?;
        let lease = not_found_lease(&txn);
        let request = convert::txn(&txn);
        let txn = Arc::new(txn);
        self.call(
            "running a transaction",
            move |mut c| {
                let (request, txn) = (request.clone(), Arc::clone(&txn));
                async move {
                    let r = c.txn(request).await?;
                    let ops = if r.succeeded() {
                        &txn.success
                    } else {
                        &txn.failure
                    };
                    Ok(convert::txn_response(&r, ops))
                }
            },
            move |e| is_lease_not_found(e).then_some(StoreError::LeaseNotFound(lease)),
        )
    }

    fn lease_grant(&self, ttl_secs: i64) -> Result<Lease> {
        if ttl_secs < 1 {
            return Err(StoreError::InvalidArgument(format!(
                "lease TTL {ttl_secs}s: must be at least 1 second"
            )));
        }
        self.call(
            "granting a lease",
            move |mut c| async move {
                let r = c.lease_grant(ttl_secs, None).await?;
                Ok(Lease {
                    id: LeaseId(r.id()),
                    ttl_secs: r.ttl(),
                })
            },
            |_| None,
        )
    }

    fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        self.call(
            "refreshing a lease",
            move |mut c| async move {
                // Opening the keep-alive stream sends one refresh and fails
                // with "lease not found" if the lease is gone; a second
                // refresh on it reports the TTL.
                let (mut keeper, mut stream) = c.lease_keep_alive(id.0).await?;
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(r) if r.ttl() > 0 => Ok(r.ttl()),
                    Some(_) => Err(ec::Error::LeaseKeepAliveError("lease not found".into())),
                    None => Err(ec::Error::WatchError("keep-alive stream closed".into())),
                }
            },
            move |e| is_lease_not_found(e).then_some(StoreError::LeaseNotFound(id)),
        )
    }

    fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        self.call(
            "revoking a lease",
            move |mut c| async move {
                c.lease_revoke(id.0).await?;
                Ok(())
            },
            move |e| is_lease_not_found(e).then_some(StoreError::LeaseNotFound(id)),
        )
    }

    fn lease_ttl(&self, id: LeaseId) -> Result<Option<i64>> {
        self.call(
            "reading a lease",
            move |mut c| async move {
                let r = c.lease_time_to_live(id.0, None).await?;
                // etcd answers -1 for a lease it does not know.
                Ok((r.ttl() >= 0).then_some(r.ttl()))
            },
            |_| None,
        )
    }

    fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watcher> {
        watch::start(self, prefix, start_revision)
    }

    fn compact(&self, revision: i64) -> Result<()> {
        let current = self.revision()?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        let result = self.call(
            "compacting",
            move |mut c| async move {
                c.compact(revision, None).await?;
                Ok(())
            },
            |_| None,
        );
        match result {
            // Already compacted at or past `revision`: nothing to do.
            Err(StoreError::Backend { ref source, .. })
                if source.downcast_ref::<ec::Error>().is_some_and(is_compacted) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

impl EtcdStore {
    fn delete_with(&self, key: String, opts: Option<ec::DeleteOptions>) -> Result<DeleteResponse> {
        self.call(
            "deleting",
            move |mut c| {
                let (key, opts) = (key.clone(), opts.clone());
                async move {
                    let r = c.delete(key, opts).await?;
                    Ok(DeleteResponse {
                        deleted: r.deleted(),
                        revision: r.header().map_or(0, |h| h.revision()),
                    })
                }
            },
            |_| None,
        )
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub(crate) fn runtime(&self) -> &SharedRuntime {
        &self.runtime
    }

    /// Reads `prefix` at `revision`: fails with etcd's "compacted" error
    /// when that revision is gone (used to check a watch's start).
    pub(crate) fn probe_revision(&self, prefix: &str, revision: i64) -> Result<bool> {
        let prefix = prefix.to_owned();
        let result = self.call(
            "checking a watch start revision",
            move |mut c| {
                let prefix = prefix.clone();
                async move {
                    c.get(
                        prefix,
                        Some(
                            ec::GetOptions::new()
                                .with_prefix()
                                .with_count_only()
                                .with_revision(revision),
                        ),
                    )
                    .await?;
                    Ok(())
                }
            },
            move |e| {
                is_compacted(e).then(|| StoreError::Compacted {
                    requested: revision,
                    compact_revision: 0,
                })
            },
        );
        match result {
            Ok(()) => Ok(true),
            Err(StoreError::Compacted { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
