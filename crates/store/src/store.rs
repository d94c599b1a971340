//! The [`Store`] trait and the [`Watcher`] that delivers watch events.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use crate::error::{Result, StoreError};
use crate::types::{
    DeleteResponse, Event, KeyValue, Lease, LeaseId, RangeResponse, Txn, TxnResponse,
};

/// A key-value store with etcd v3 semantics.
///
/// * One cluster-wide **revision** counts every change; each write (a put, a
///   delete that deleted something, a transaction that wrote, a lease expiry
///   that removed keys) raises it by one. A fresh store is at revision 1.
/// * Each key carries `create_revision`, `mod_revision`, `version` and its
///   lease, as in etcd.
/// * **Transactions** compare and then run one of two branches atomically.
/// * **Leases** expire `ttl` seconds after their grant or last keep-alive and
///   delete the keys attached to them (delete events are emitted).
/// * **Watches** deliver every change under a prefix from a given revision,
///   in revision order, including changes made before the watch started as
///   long as they were not compacted.
///
/// The trait is synchronous and object safe; use it as `Arc<dyn Store>`.
/// Calls block the calling thread: from async code, call it through
/// `tokio::task::spawn_blocking` (calling it on a runtime thread works but
/// blocks that thread).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The URL the store was opened with (for logs and errors).
    fn url(&self) -> &str;

    /// The current revision of the store.
    fn revision(&self) -> Result<i64>;

    /// Reads one key.
    fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Lists every key that starts with `prefix` (all keys for `""`), in
    /// byte order, with the revision the list was read at.
    fn range(&self, prefix: &str) -> Result<RangeResponse>;

    /// Writes a key, attached to `lease` or to none; returns the new revision.
    /// A put with a lease that does not exist fails with
    /// [`StoreError::LeaseNotFound`].
    fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<i64>;

    /// Deletes one key.
    fn delete(&self, key: &str) -> Result<DeleteResponse>;

    /// Deletes every key that starts with `prefix` (must not be empty).
    fn delete_prefix(&self, prefix: &str) -> Result<DeleteResponse>;

    /// Runs a transaction.
    fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Grants a lease of `ttl_secs` seconds (at least 1).
    fn lease_grant(&self, ttl_secs: i64) -> Result<Lease>;

    /// Refreshes a lease to its full TTL; returns that TTL in seconds.
    /// Fails with [`StoreError::LeaseNotFound`] once it has expired.
    fn lease_keep_alive(&self, id: LeaseId) -> Result<i64>;

    /// Revokes a lease now, deleting its keys.
    fn lease_revoke(&self, id: LeaseId) -> Result<()>;

    /// Whole seconds left on a lease (etcd rounds down, so a lease in its
    /// last second shows 0), or `None` if it does not exist any more.
    fn lease_ttl(&self, id: LeaseId) -> Result<Option<i64>>;

    /// Watches every key under `prefix` (all keys for `""`), starting at
    /// `start_revision` (inclusive; `0` means "changes after now").
    ///
    /// Fails with [`StoreError::Compacted`] when the start revision is older
    /// than the compaction point. A watcher overtaken by a compaction later
    /// yields that same error and ends.
    fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watcher>;

    /// Forgets the history before `revision`: watches can then start at
    /// `revision` or later. Compacting at or below the current compaction
    /// point does nothing; a revision above the current one is an error.
    fn compact(&self, revision: i64) -> Result<()>;
}

/// Receives the events of one watch, in revision order.
///
/// Dropping the watcher stops the watch. After an error item the watcher
/// is finished.
pub struct Watcher {
    prefix: String,
    rx: Receiver<Result<Event>>,
    _stop: Box<dyn Send>,
    finished: bool,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("prefix", &self.prefix)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Watcher {
    /// Builds a watcher from the receiving end of a channel fed by a backend,
    /// and a guard whose drop stops the feeding side.
    pub(crate) fn new(prefix: &str, rx: Receiver<Result<Event>>, stop: Box<dyn Send>) -> Self {
        Watcher {
            prefix: prefix.to_owned(),
            rx,
            _stop: stop,
            finished: false,
        }
    }

    /// The watched prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn closed(&mut self) -> StoreError {
        self.finished = true;
        StoreError::WatchClosed {
            prefix: self.prefix.clone(),
            reason: "the event feed stopped".into(),
        }
    }

    fn item(&mut self, item: Result<Event>) -> Result<Event> {
        if item.is_err() {
            self.finished = true;
        }
        item
    }

    /// Waits for the next event.
    pub fn recv(&mut self) -> Result<Event> {
        match self.rx.recv() {
            Ok(item) => self.item(item),
            Err(_) => Err(self.closed()),
        }
    }

    /// Waits up to `timeout` for the next event; `Ok(None)` on time-out.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Event>> {
        match self.rx.recv_timeout(timeout) {
            Ok(item) => self.item(item).map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.closed()),
        }
    }

    /// Returns an event if one is ready.
    pub fn try_recv(&mut self) -> Result<Option<Event>> {
        match self.rx.try_recv() {
            Ok(item) => self.item(item).map(Some),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(self.closed()),
        }
    }
}

/// Blocking iteration; ends after the first error.
impl Iterator for Watcher {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        Some(self.recv())
    }
}
