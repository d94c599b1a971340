//! Watches from a revision, and compaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_store::{EventKind, Store, StoreError, Txn, TxnOp};

use super::{event_kinds, next_events, no_event, put};

const WAIT: Duration = Duration::from_secs(10);

pub fn watch_from_revision(s: &Arc<dyn Store>) {
    let st = &**s;
    let first = put(st, "/w/a", "1");
    put(st, "/other/x", "no");
    put(st, "/w/b", "2");
    st.delete("/w/a").unwrap();
    // Started after those changes, the watch replays them in order.
    let mut w = st.watch("/w/", first).unwrap();
    put(st, "/w/c", "3");
    st.txn(Txn::new().and_then([TxnOp::put("/w/d", "4"), TxnOp::put("/w/e", "5")]))
        .unwrap();
    let evs = next_events(&mut w, 6, WAIT);
    assert_eq!(
        event_kinds(&evs),
        [
            (EventKind::Put, "/w/a"),
            (EventKind::Put, "/w/b"),
            (EventKind::Delete, "/w/a"),
            (EventKind::Put, "/w/c"),
            (EventKind::Put, "/w/d"),
            (EventKind::Put, "/w/e"),
        ]
    );
    assert_eq!(evs[0].revision(), first);
    assert_eq!(evs[0].kv.value, b"1");
    assert_eq!(evs[0].kv.version, 1);
    assert_eq!(evs[1].revision(), first + 2, "the /other/ write is skipped");
    assert_eq!(evs[2].revision(), first + 3);
    assert!(evs[2].kv.value.is_empty() && evs[2].kv.version == 0);
    assert!(
        evs.windows(2).all(|p| p[0].revision() <= p[1].revision()),
        "revision order"
    );
    assert_eq!(
        evs[4].revision(),
        evs[5].revision(),
        "one txn, one revision"
    );
    assert_eq!(evs[3].revision() + 1, evs[4].revision());
    no_event(&mut w, Duration::from_millis(300));
    // Many quick writes all arrive, in order.
    for i in 0..200 {
        put(st, &format!("/w/many/{i:03}"), "x");
    }
    let evs = next_events(&mut w, 200, WAIT);
    for (i, ev) in evs.iter().enumerate() {
        assert_eq!(ev.kv.key, format!("/w/many/{i:03}"));
    }
    // A second watch from the middle sees the same tail.
    let mut w2 = st.watch("/w/", first + 3).unwrap();
    let evs = next_events(&mut w2, 1, WAIT);
    assert_eq!(event_kinds(&evs), [(EventKind::Delete, "/w/a")]);
}

pub fn watch_from_now_and_prefix_isolation(s: &Arc<dyn Store>) {
    let st = &**s;
    put(st, "/wn/old", "x");
    let mut w = st.watch("/wn/", 0).unwrap();
    let mut all = st.watch("", 0).unwrap();
    no_event(&mut w, Duration::from_millis(200));
    put(st, "/wnx", "not under /wn/");
    let r = put(st, "/wn/new", "y");
    let evs = next_events(&mut w, 1, WAIT);
    assert_eq!(event_kinds(&evs), [(EventKind::Put, "/wn/new")]);
    assert_eq!(evs[0].revision(), r);
    let evs = next_events(&mut all, 2, WAIT);
    assert_eq!(
        event_kinds(&evs),
        [(EventKind::Put, "/wnx"), (EventKind::Put, "/wn/new")]
    );
    // Dropping a watcher is quick and leaves the store usable.
    let started = Instant::now();
    drop(w);
    drop(all);
    assert!(started.elapsed() < Duration::from_secs(2));
    put(st, "/wn/after", "z");
    // A future start revision waits for it.
    let now = st.revision().unwrap();
    let mut future = st.watch("/wn/", now + 2).unwrap();
    put(st, "/wn/f1", "skipped: at now + 1");
    put(st, "/wn/f2", "seen");
    let evs = next_events(&mut future, 1, WAIT);
    assert_eq!(evs[0].kv.key, "/wn/f2");
    assert!(matches!(
        st.watch("/wn/", -1),
        Err(StoreError::InvalidArgument(_))
    ));
}

pub fn watch_sees_lease_expiry(s: &Arc<dyn Store>) {
    let st = &**s;
    let lease = st.lease_grant(1).unwrap();
    st.put("/wl/a", b"1", Some(lease.id)).unwrap();
    st.put("/wl/b", b"2", Some(lease.id)).unwrap();
    let mut w = st.watch("/wl/", 0).unwrap();
    // Nobody else touches the store: the expiry still happens and shows.
    let evs = next_events(&mut w, 2, Duration::from_secs(15));
    assert_eq!(
        event_kinds(&evs),
        [(EventKind::Delete, "/wl/a"), (EventKind::Delete, "/wl/b")]
    );
    assert_eq!(
        evs[0].revision(),
        evs[1].revision(),
        "one expiry, one revision"
    );
}

pub fn compaction(s: &Arc<dyn Store>) {
    let st = &**s;
    let r1 = put(st, "/cp/a", "1");
    put(st, "/cp/a", "2");
    let r3 = put(st, "/cp/b", "3");
    put(st, "/cp/c", "4");
    st.compact(r3).unwrap();
    match st.watch("/cp/", r1) {
        Err(StoreError::Compacted {
            requested,
            compact_revision,
        }) => {
            assert_eq!(requested, r1);
            assert_eq!(compact_revision, r3);
        }
        other => panic!("watch from a compacted revision: {other:?}"),
    }
    let err = st.watch("/cp/", r3 - 1).unwrap_err().to_string();
    assert!(err.contains("compacted"), "{err}");
    // From the compaction point on, history is there.
    let mut w = st.watch("/cp/", r3).unwrap();
    let evs = next_events(&mut w, 2, WAIT);
    assert_eq!(
        event_kinds(&evs),
        [(EventKind::Put, "/cp/b"), (EventKind::Put, "/cp/c")]
    );
    // Data itself is untouched.
    assert_eq!(st.get("/cp/a").unwrap().unwrap().value, b"2");
    assert_eq!(st.get("/cp/a").unwrap().unwrap().version, 2);
    // Compacting again lower or equal is a no-op; the future is refused.
    st.compact(r1).unwrap();
    st.compact(r3).unwrap();
    let now = st.revision().unwrap();
    assert!(matches!(
        st.compact(now + 10),
        Err(StoreError::FutureRevision { requested, current }) if requested == now + 10 && current == now
    ));
}
