//! The aksnet cluster store: shared cluster state with etcd v3 semantics.
//!
//! One trait, [`Store`], two backends:
//!
//! * [`SqliteStore`] (`sqlite:PATH`, the default, `sqlite:/var/lib/aksnet/cluster.db`):
//!   an embedded database file that every process on one machine can use at
//!   once (the CLI, several node agents, tests).
//! * [`EtcdStore`] (`etcd://HOST:PORT[,HOST:PORT...]`): an etcd v3 cluster,
//!   for nodes on separate machines; fails over between the endpoints.
//!
//! Open either with [`open`], which parses the URL.
//!
//! # Why a synchronous trait
//!
//! The users are a short-lived CLI, a long-lived node agent whose work is a
//! reconcile loop, and tests that race a hundred claimers on threads. None
//! of them needs thousands of concurrent store calls, and all of them are
//! simpler with plain blocking calls: no runtime to set up in the CLI or the
//! tests, and `Arc<dyn Store>` (`Send + Sync`, object safe) shared between
//! threads. SQLite is blocking anyway. The etcd backend owns a small tokio
//! runtime of its own and runs the async etcd client on it; callers only
//! block. Watches deliver events through a channel, read with
//! [`Watcher::recv_timeout`] (or as a blocking iterator), so a reconcile
//! loop can wait for "a change or the next resync tick" in one call. An
//! async caller uses `spawn_blocking`.
//!
//! # Semantics
//!
//! Both backends follow etcd: a cluster revision raised by every write, per
//! key `create_revision` / `mod_revision` / `version` / lease, transactions
//! with compares on version, create or mod revision or value (equal, not
//! equal, greater, less), leases whose expiry deletes their keys (with
//! delete events), and prefix watches from a revision, which report
//! [`StoreError::Compacted`] when that revision is gone. The shared test
//! suite in `tests/` runs the same checks on both backends.
//!
//! # Claims
//!
//! [`claim::Claimer`] claims the first free key among candidates with one
//! create-if-absent transaction per try: the building block for node CIDR
//! blocks, VNet address batches and route-table entries. [`KeepAlive`]
//! refreshes a lease from a background thread. The cluster's key layout is
//! defined with the cluster objects in `aksnet_core::cluster` and described
//! in `docs/store.md`; [`keys`] holds the store's own key helpers.

pub mod claim;
mod error;
pub mod etcd;
mod keepalive;
pub mod keys;
mod lease;
pub mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
mod url;

use std::sync::Arc;

pub use error::{BoxError, Result, StoreError};
pub use etcd::{EtcdOptions, EtcdStore};
pub use keepalive::KeepAlive;
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{Store, Watcher};
pub use types::{
    Compare, CompareOp, CompareTarget, DeleteResponse, Event, EventKind, KeyValue, Lease, LeaseId,
    RangeResponse, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
pub use url::{StoreUrl, DEFAULT_SQLITE_PATH, DEFAULT_STORE_URL};

/// Opens the store a URL names: `sqlite:PATH` or
/// `etcd://HOST:PORT[,HOST:PORT...]`.
///
/// For SQLite the file and its parent directories are created if missing.
/// For etcd the first reachable endpoint is contacted, so a cluster that
/// cannot be reached at all fails here.
pub fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_url(&url.parse()?)
}

/// Opens the store a URL names, for a command that only reads it: an SQLite
/// file that does not exist is [`StoreError::Missing`], never created.
pub fn open_existing(url: &str) -> Result<Arc<dyn Store>> {
    let parsed: StoreUrl = url.parse()?;
    if let StoreUrl::Sqlite { path } = &parsed {
        if !path.exists() {
            return Err(StoreError::Missing {
                store: format!("sqlite:{}", path.display()),
            });
        }
    }
    open_url(&parsed)
}

/// Opens the store of an already parsed URL.
pub fn open_url(url: &StoreUrl) -> Result<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
        StoreUrl::Etcd { endpoints } => Arc::new(EtcdStore::connect(
            endpoints.clone(),
            EtcdOptions::default(),
        )?),
    })
}
