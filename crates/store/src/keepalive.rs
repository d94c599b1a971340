//! Keeping a lease alive from a background thread.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::StoreError;
use crate::store::Store;
use crate::types::LeaseId;

/// Refreshes a lease every `every` until dropped.
///
/// Transient errors (the store is unreachable) are logged and retried at
/// the next tick; when the lease is gone ([`StoreError::LeaseNotFound`]) or
/// another error occurs, the thread stops and [`KeepAlive::lost`] reports
/// why. Pick `every` at most a third of the TTL, so that two missed
/// refreshes still keep the lease.
#[derive(Debug)]
pub struct KeepAlive {
    lease: LeaseId,
    stop: Option<Sender<()>>,
    lost: Receiver<StoreError>,
    thread: Option<JoinHandle<()>>,
}

impl KeepAlive {
    /// Starts refreshing `lease` on `store`.
    pub fn start(store: Arc<dyn Store>, lease: LeaseId, every: Duration) -> Self {
        let (stop_tx, stop_rx) = channel::<()>();
        let (lost_tx, lost_rx) = channel();
        let spawn_failed = lost_tx.clone();
        let url = store.url().to_owned();
        let thread = std::thread::Builder::new()
            .name("aksnet-lease-keepalive".into())
            .spawn(move || loop {
                match stop_rx.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match store.lease_keep_alive(lease) {
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {
                        tracing::warn!(store = store.url(), %lease, error = %e, "lease refresh failed; retrying");
                    }
                    Err(e) => {
                        tracing::warn!(store = store.url(), %lease, error = %e, "lease lost");
                        let _ = lost_tx.send(e);
                        return;
                    }
                }
            })
            .map_err(|e| {
                let _ = spawn_failed.send(StoreError::backend(
                    url,
                    format!("starting the keep-alive thread of lease {lease}"),
                    e,
                ));
            })
            .ok();
        KeepAlive {
            lease,
            stop: Some(stop_tx),
            lost: lost_rx,
            thread,
        }
    }

    /// The lease being refreshed.
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// Why refreshing stopped, once it has (the lease expired or was
    /// revoked, or the store failed for good); `None` while it runs.
    pub fn lost(&self) -> Option<StoreError> {
        self.lost.try_recv().ok()
    }

    /// Waits up to `timeout` for the lease to be lost.
    pub fn wait_lost(&self, timeout: Duration) -> Option<StoreError> {
        self.lost.recv_timeout(timeout).ok()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
