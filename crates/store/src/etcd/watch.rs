//! etcd watches: one task per watch on the store's runtime, resuming on
//! the next endpoint from the last delivered revision when a stream breaks.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client as ec;
use tokio::task::AbortHandle;

use super::conn::{retry_reason, Inner, SharedRuntime};
use super::{convert, EtcdStore};
use crate::error::{Result, StoreError};
use crate::store::{Store, Watcher};
use crate::types::Event;

/// Stops the watch task when the watcher is dropped; keeps the runtime
/// alive while the watcher exists.
struct AbortOnDrop {
    task: AbortHandle,
    _runtime: SharedRuntime,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn start(store: &EtcdStore, prefix: &str, start_revision: i64) -> Result<Watcher> {
    if start_revision < 0 {
        return Err(StoreError::InvalidArgument(format!(
            "watch start revision {start_revision}: must be 0 (now) or positive"
        )));
    }
    let current = store.revision()?;
    let next = if start_revision == 0 {
        current + 1
    } else {
        start_revision
    };
    let compacted = start_revision != 0
        && start_revision <= current
        && !store.probe_revision(prefix, start_revision)?;
    let handle = store
        .runtime()
        .handle()
        .ok_or_else(|| StoreError::Unavailable {
            store: store.url().to_owned(),
            message: "the etcd client runtime has stopped".into(),
        })?;
    let (tx, rx) = channel();
    let task = handle.spawn(feed(Arc::clone(store.inner()), prefix.to_owned(), next, tx));
    let guard = AbortOnDrop {
        task: task.abort_handle(),
        _runtime: Arc::clone(store.runtime()),
    };
    let mut watcher = Watcher::new(prefix, rx, Box::new(guard));
    if compacted {
        // etcd reports the compaction point on the watch stream itself.
        return match watcher.recv_timeout(Duration::from_secs(10)) {
            Err(e) => Err(e),
            Ok(_) => Err(StoreError::Compacted {
                requested: start_revision,
                compact_revision: 0,
            }),
        };
    }
    Ok(watcher)
}

enum Pump {
    /// The watcher was dropped.
    ReceiverGone,
    /// Report this and stop.
    Fatal(StoreError),
    /// Try again (on the next endpoint); `healthy` when the stream worked
    /// for a while before it broke.
    Retry { reason: String, healthy: bool },
}

async fn feed(inner: Arc<Inner>, prefix: String, mut next: i64, tx: Sender<Result<Event>>) {
    let mut failing_since: Option<Instant> = None;
    let mut pause = Duration::from_millis(20);
    loop {
        let idx = inner.current();
        let reason = match pump(&inner, idx, &prefix, &mut next, &tx).await {
            Pump::ReceiverGone => return,
            Pump::Fatal(e) => {
                let _ = tx.send(Err(e));
                return;
            }
            Pump::Retry { reason, healthy } => {
                if healthy {
                    failing_since = None;
                    pause = Duration::from_millis(20);
                }
                reason
            }
        };
        tracing::debug!(store = %inner.url, %prefix, next, reason, "watch stream broke; resuming");
        inner.failed(idx, &reason);
        let since = *failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() > inner.options.retry_for {
            let _ = tx.send(Err(StoreError::Unavailable {
                store: inner.url.clone(),
                message: format!(
                    "watch on {prefix:?}: no endpoint served it for {:?}; last error: {reason}",
                    inner.options.retry_for
                ),
            }));
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

fn classify(inner: &Inner, e: ec::Error, healthy: bool) -> Pump {
    match retry_reason(&e) {
        Some(reason) => Pump::Retry { reason, healthy },
        None => Pump::Fatal(StoreError::backend(inner.url.clone(), "watching", e)),
    }
}

async fn pump(
    inner: &Inner,
    idx: usize,
    prefix: &str,
    next: &mut i64,
    tx: &Sender<Result<Event>>,
) -> Pump {
    let timeout = inner.options.request_timeout;
    let opts = ec::WatchOptions::new()
        .with_prefix()
        .with_start_revision(*next);
    let open = async {
        let mut client = inner.client(idx).await?;
        client.watch(prefix.to_owned(), Some(opts)).await
    };
    let mut stream = match tokio::time::timeout(timeout, open).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return classify(inner, e, false),
        Err(_) => {
            return Pump::Retry {
                reason: format!("no answer to the watch request within {timeout:?}"),
                healthy: false,
            }
        }
    };
    let mut healthy = false;
    loop {
        match stream.message().await {
            Ok(Some(resp)) => {
                healthy = true;
                if resp.compact_revision() != 0 {
                    return Pump::Fatal(StoreError::Compacted {
                        requested: *next,
                        compact_revision: resp.compact_revision(),
                    });
                }
                for ev in resp.events() {
                    let Some(event) = convert::event(ev) else {
                        continue;
                    };
                    *next = event.revision() + 1;
                    if tx.send(Ok(event)).is_err() {
                        return Pump::ReceiverGone;
                    }
                }
                if resp.canceled() {
                    return Pump::Retry {
                        reason: format!("the server canceled the watch: {}", resp.cancel_reason()),
                        healthy: false,
                    };
                }
            }
            Ok(None) => {
                return Pump::Retry {
                    reason: "the watch stream ended".into(),
                    healthy,
                }
            }
            Err(e) => return classify(inner, e, healthy),
        }
    }
}
