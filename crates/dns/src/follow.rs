//! Keeps the index equal to the store: read every Kubernetes object at one
//! revision, build a new [`Index`], swap it in; then wait on a watch of
//! `/aksnet/k8s/` for the next change (or the resync period, or a lost
//! watch) and do it again. A rebuild is a full read: simple, always
//! consistent with one revision, and cheap next to the 5 s TTL (10,000
//! Services read and indexed in well under a second).
//!
//! Runs on a thread of its own because the store is a blocking API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_core::k8s::store::K8S_PREFIX;
use aksnet_store::{Store, Watcher};

use crate::handler::Shared;
use crate::index::{Index, Settings};
use crate::source;

/// How long the loop sleeps between checks of the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// After a change, further changes this close are read in the same rebuild
/// (an apply of many objects is one transaction anyway; a delete of many
/// is one event each).
const SETTLE: Duration = Duration::from_millis(20);
/// Wait before retrying a store that failed.
const RETRY: Duration = Duration::from_secs(1);

/// Reads the store once and publishes the index; the revision read.
pub fn sync_once(
    store: &dyn Store,
    shared: &Shared,
    settings: &Settings,
) -> Result<i64, crate::DnsError> {
    let t = Instant::now();
    let recs = source::read(store)?;
    let index = Index::build(&recs, settings);
    tracing::info!(
        revision = recs.revision,
        services = index.services(),
        names = index.names(),
        took_ms = t.elapsed().as_millis() as u64,
        "cluster DNS records rebuilt"
    );
    shared.set(index);
    Ok(recs.revision)
}

/// The follower loop; returns when `shared` is told to stop.
pub fn follow(store: Arc<dyn Store>, shared: Arc<Shared>, settings: Settings, resync: Duration) {
    let mut watcher: Option<Watcher> = None;
    while !shared.stopping() {
        let rev = match sync_once(store.as_ref(), &shared, &settings) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}; keeping the last records", store.url());
                watcher = None;
                sleep_unless_stopped(&shared, RETRY);
                continue;
            }
        };
        if watcher.is_none() {
            match store.watch(K8S_PREFIX, rev + 1) {
                Ok(w) => watcher = Some(w),
                Err(e) => {
                    // Without a watch the resync period is the poll.
                    tracing::warn!("cannot watch {}: {e}; polling", store.url());
                }
            }
        }
        let deadline = Instant::now() + resync;
        loop {
            if shared.stopping() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let wait = left.min(TICK);
            match watcher.as_mut() {
                Some(w) => match w.wait_past(rev, wait) {
                    Ok(true) => {
                        std::thread::sleep(SETTLE);
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("watch of {} ended: {e}; reading again", store.url());
                        watcher = None;
                        break;
                    }
                },
                None => {
                    // Poll: a cheap revision read instead of a full list.
                    std::thread::sleep(wait);
                    match store.revision() {
                        Ok(r) if r > rev => break,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

fn sleep_unless_stopped(shared: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !shared.stopping() && Instant::now() < end {
        std::thread::sleep(TICK.min(end.saturating_duration_since(Instant::now())));
    }
}
