//! The store test suite, run against every backend by `store_suite!`.
//!
//! Each check takes a fresh, empty store. Checks compare revisions
//! relative to what the store reported, never absolute numbers.

#![allow(dead_code)]

pub mod claims;
pub mod leases;
pub mod watches;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aksnet_store::{
    Compare, CompareOp, EventKind, KeyValue, Store, StoreError, Txn, TxnOp, TxnOpResponse, Watcher,
};

/// A store under test and whatever keeps it alive (temp dir, etcd server).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub guard: Box<dyn std::any::Any>,
}

/// Instantiates every suite check as a `#[test]` for one backend.
/// `$setup(test_name) -> Option<Fixture>`; `None` means "skipped" (only
/// allowed outside CI).
#[macro_export]
macro_rules! store_suite {
    ($setup:path) => {
        $crate::store_suite!(@tests $setup;
            crud, put_get_metadata, ranges, deletes, txn_revisions, compare_kinds,
            compare_missing_keys, txn_branches_and_responses, txn_rejects_bad_shapes,
            create_if_absent_race, lease_expiry_deletes_keys, lease_keep_alive_and_revoke,
            lease_attach_rules, watch_from_revision, watch_from_now_and_prefix_isolation,
            watch_sees_lease_expiry, compaction, claim_helper_semantics, claim_race_100, bounded_route_table);
    };
    (@tests $setup:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if let Some(f) = $setup(stringify!($name)) {
                    $crate::common::run(stringify!($name), &f, $crate::common::$name);
                }
            }
        )*
    };
}

pub use claims::{
    bounded_route_table, claim_helper_semantics, claim_race_100, create_if_absent_race,
};
pub use leases::{lease_attach_rules, lease_expiry_deletes_keys, lease_keep_alive_and_revoke};
pub use watches::{
    compaction, watch_from_now_and_prefix_isolation, watch_from_revision, watch_sees_lease_expiry,
};

/// Runs one check and prints how long it took.
pub fn run(name: &str, f: &Fixture, check: fn(&Arc<dyn Store>)) {
    let started = Instant::now();
    check(&f.store);
    eprintln!("{name} on {}: {:?}", f.store.url(), started.elapsed());
}

pub fn put(s: &dyn Store, key: &str, value: &str) -> i64 {
    s.put(key, value.as_bytes(), None)
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
}

pub fn get(s: &dyn Store, key: &str) -> Option<KeyValue> {
    s.get(key).unwrap_or_else(|e| panic!("get {key}: {e}"))
}

pub fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads `n` events from a watcher, failing after `limit`.
pub fn next_events(w: &mut Watcher, n: usize, limit: Duration) -> Vec<aksnet_store::Event> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match w.recv_timeout(left) {
            Ok(Some(ev)) => out.push(ev),
            Ok(None) => panic!(
                "watch on {:?}: got {} of {n} events within {limit:?}: {out:?}",
                w.prefix(),
                out.len()
            ),
            Err(e) => panic!(
                "watch on {:?} failed after {} events: {e}",
                w.prefix(),
                out.len()
            ),
        }
    }
    out
}

/// Asserts that no event arrives within `wait`.
pub fn no_event(w: &mut Watcher, wait: Duration) {
    match w.recv_timeout(wait) {
        Ok(None) => {}
        other => panic!("expected no event on {:?}, got {other:?}", w.prefix()),
    }
}

pub fn crud(s: &Arc<dyn Store>) {
    let s = &**s;
    let r0 = s.revision().unwrap();
    assert!(r0 >= 1, "a store starts at revision 1 or later, got {r0}");
    assert_eq!(get(s, "/t/a"), None);
    let r1 = put(s, "/t/a", "one");
    assert_eq!(r1, r0 + 1, "one put raises the revision by one");
    assert_eq!(s.revision().unwrap(), r1);
    assert_eq!(get(s, "/t/a").unwrap().value, b"one");
    let r2 = put(s, "/t/a", "two");
    assert_eq!(r2, r1 + 1);
    assert_eq!(get(s, "/t/a").unwrap().value_str(), Some("two"));
    let d = s.delete("/t/a").unwrap();
    assert_eq!((d.deleted, d.revision), (1, r2 + 1));
    assert_eq!(get(s, "/t/a"), None);
    let d = s.delete("/t/a").unwrap();
    assert_eq!(
        (d.deleted, d.revision),
        (0, r2 + 1),
        "deleting a missing key changes nothing"
    );
    assert_eq!(s.revision().unwrap(), r2 + 1);
    assert!(matches!(s.get(""), Err(StoreError::InvalidKey { .. })));
    assert!(matches!(
        s.put("", b"x", None),
        Err(StoreError::InvalidKey { .. })
    ));
}

pub fn put_get_metadata(s: &Arc<dyn Store>) {
    let s = &**s;
    let r1 = put(s, "/m/k", "v1");
    let kv = get(s, "/m/k").unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
        (r1, r1, 1, None)
    );
    let r2 = put(s, "/m/k", "v2");
    let kv = get(s, "/m/k").unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r1, r2, 2)
    );
    let r3 = put(s, "/m/k", "v3");
    assert_eq!(get(s, "/m/k").unwrap().version, 3);
    s.delete("/m/k").unwrap();
    let r5 = put(s, "/m/k", "again");
    let kv = get(s, "/m/k").unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (r5, r5, 1),
        "a re-created key starts over (after {r3})"
    );
    // Binary and empty values survive.
    s.put("/m/bin", &[0u8, 255, 1, 0], None).unwrap();
    assert_eq!(get(s, "/m/bin").unwrap().value, vec![0u8, 255, 1, 0]);
    s.put("/m/empty", b"", None).unwrap();
    assert_eq!(get(s, "/m/empty").unwrap().value, Vec::<u8>::new());
}

pub fn ranges(s: &Arc<dyn Store>) {
    let s = &**s;
    for k in ["/r/b", "/r/a", "/r/c/x", "/r0", "/q/a", "/r/é"] {
        put(s, k, k);
    }
    let r = s.range("/r/").unwrap();
    assert_eq!(keys(&r.kvs), ["/r/a", "/r/b", "/r/c/x", "/r/é"]);
    assert_eq!(r.revision, s.revision().unwrap());
    assert_eq!(keys(&s.range("/r/c/").unwrap().kvs), ["/r/c/x"]);
    assert!(s.range("/nothing/").unwrap().kvs.is_empty());
    let all = s.range("").unwrap();
    assert_eq!(all.kvs.len(), 6, "the empty prefix lists every key");
    assert_eq!(keys(&s.range("/r").unwrap().kvs).len(), 5);
}

pub fn deletes(s: &Arc<dyn Store>) {
    let s = &**s;
    for k in ["/d/a", "/d/b", "/d/c/1", "/dd"] {
        put(s, k, "x");
    }
    let before = s.revision().unwrap();
    let d = s.delete_prefix("/d/").unwrap();
    assert_eq!(d.deleted, 3);
    assert_eq!(d.revision, before + 1, "a prefix delete is one revision");
    assert_eq!(keys(&s.range("/d").unwrap().kvs), ["/dd"]);
    let d = s.delete_prefix("/d/").unwrap();
    assert_eq!((d.deleted, d.revision), (0, before + 1));
    assert!(
        s.delete_prefix("").is_err(),
        "deleting everything is refused"
    );
}

pub fn txn_revisions(s: &Arc<dyn Store>) {
    let s = &**s;
    let r0 = s.revision().unwrap();
    let t = s
        .txn(Txn::new().and_then([
            TxnOp::put("/tr/a", "1"),
            TxnOp::put("/tr/b", "2"),
            TxnOp::get("/tr/a"),
        ]))
        .unwrap();
    assert!(t.succeeded, "no compares means success");
    assert_eq!(t.revision, r0 + 1, "one transaction is one revision");
    assert_eq!(t.responses[0], TxnOpResponse::Put { revision: r0 + 1 });
    assert_eq!(
        t.get(2).unwrap().value,
        b"1",
        "a get sees the puts before it"
    );
    assert_eq!(get(s, "/tr/a").unwrap().mod_revision, r0 + 1);
    assert_eq!(get(s, "/tr/b").unwrap().mod_revision, r0 + 1);
    let t = s
        .txn(Txn::new().and_then([TxnOp::get("/tr/a"), TxnOp::range("/tr/")]))
        .unwrap();
    assert_eq!(
        t.revision,
        r0 + 1,
        "a read-only transaction changes nothing"
    );
    assert_eq!(keys(t.range(1)), ["/tr/a", "/tr/b"]);
    assert_eq!(s.revision().unwrap(), r0 + 1);
    let t = s
        .txn(Txn::new().and_then([TxnOp::delete("/tr/missing")]))
        .unwrap();
    assert_eq!(t.revision, r0 + 1);
    assert_eq!(t.responses[0], TxnOpResponse::Delete { deleted: 0 });
}

fn holds(s: &dyn Store, c: Compare) -> bool {
    s.txn(Txn::new().when([c.clone()]))
        .unwrap_or_else(|e| panic!("{c:?}: {e}"))
        .succeeded
}

pub fn compare_kinds(s: &Arc<dyn Store>) {
    let s = &**s;
    let c = put(s, "/c/k", "m");
    let m = put(s, "/c/k", "m");
    // version 2, create c, mod m, value "m".
    use CompareOp::*;
    let table: Vec<(Compare, bool)> = vec![
        (Compare::version("/c/k", Equal, 2), true),
        (Compare::version("/c/k", Equal, 1), false),
        (Compare::version("/c/k", NotEqual, 1), true),
        (Compare::version("/c/k", NotEqual, 2), false),
        (Compare::version("/c/k", Greater, 1), true),
        (Compare::version("/c/k", Greater, 2), false),
        (Compare::version("/c/k", Less, 3), true),
        (Compare::version("/c/k", Less, 2), false),
        (Compare::create_revision("/c/k", Equal, c), true),
        (Compare::create_revision("/c/k", Equal, m), false),
        (Compare::create_revision("/c/k", NotEqual, m), true),
        (Compare::create_revision("/c/k", NotEqual, c), false),
        (Compare::create_revision("/c/k", Greater, c - 1), true),
        (Compare::create_revision("/c/k", Greater, c), false),
        (Compare::create_revision("/c/k", Less, m), true),
        (Compare::create_revision("/c/k", Less, c), false),
        (Compare::mod_revision("/c/k", Equal, m), true),
        (Compare::mod_revision("/c/k", Equal, c), false),
        (Compare::mod_revision("/c/k", NotEqual, c), true),
        (Compare::mod_revision("/c/k", NotEqual, m), false),
        (Compare::mod_revision("/c/k", Greater, c), true),
        (Compare::mod_revision("/c/k", Greater, m), false),
        (Compare::mod_revision("/c/k", Less, m + 1), true),
        (Compare::mod_revision("/c/k", Less, m), false),
        (Compare::value("/c/k", Equal, "m"), true),
        (Compare::value("/c/k", Equal, "n"), false),
        (Compare::value("/c/k", NotEqual, "n"), true),
        (Compare::value("/c/k", NotEqual, "m"), false),
        (Compare::value("/c/k", Greater, "a"), true),
        (Compare::value("/c/k", Greater, "m"), false),
        (Compare::value("/c/k", Less, "z"), true),
        (Compare::value("/c/k", Less, "m"), false),
        (Compare::value("/c/k", Greater, "l\u{ff}"), true),
        (Compare::exists("/c/k"), true),
        (Compare::absent("/c/k"), false),
    ];
    for (cmp, want) in table {
        assert_eq!(holds(s, cmp.clone()), want, "{cmp:?}");
    }
    // Every compare must hold.
    assert!(holds_all(
        s,
        vec![Compare::exists("/c/k"), Compare::version("/c/k", Equal, 2)]
    ));
    assert!(!holds_all(
        s,
        vec![Compare::exists("/c/k"), Compare::version("/c/k", Equal, 1)]
    ));
}

fn holds_all(s: &dyn Store, cs: Vec<Compare>) -> bool {
    s.txn(Txn::new().when(cs)).unwrap().succeeded
}

pub fn compare_missing_keys(s: &Arc<dyn Store>) {
    let s = &**s;
    use CompareOp::*;
    let table: Vec<(Compare, bool)> = vec![
        (Compare::absent("/missing"), true),
        (Compare::exists("/missing"), false),
        (Compare::create_revision("/missing", Equal, 0), true),
        (Compare::mod_revision("/missing", Equal, 0), true),
        (Compare::mod_revision("/missing", Less, 1), true),
        // etcd: a value compare on a missing key is always false.
        (Compare::value("/missing", Equal, ""), false),
        (Compare::value("/missing", NotEqual, "x"), false),
        (Compare::value("/missing", Less, "z"), false),
    ];
    for (cmp, want) in table {
        assert_eq!(holds(s, cmp.clone()), want, "{cmp:?}");
    }
}

pub fn txn_branches_and_responses(s: &Arc<dyn Store>) {
    let s = &**s;
    put(s, "/b/x", "old");
    put(s, "/b/list/1", "a");
    put(s, "/b/list/2", "b");
    let t = s
        .txn(
            Txn::new()
                .when([Compare::value("/b/x", CompareOp::Equal, "nope")])
                .and_then([TxnOp::put("/b/x", "then")])
                .or_else([
                    TxnOp::get("/b/x"),
                    TxnOp::range("/b/list/"),
                    TxnOp::put("/b/else", "ran"),
                    TxnOp::delete_prefix("/b/list/"),
                    TxnOp::get("/b/nothing"),
                ]),
        )
        .unwrap();
    assert!(!t.succeeded);
    assert_eq!(t.responses.len(), 5);
    assert_eq!(t.get(0).unwrap().value, b"old");
    assert_eq!(keys(t.range(1)), ["/b/list/1", "/b/list/2"]);
    assert!(matches!(t.responses[2], TxnOpResponse::Put { revision } if revision == t.revision));
    assert_eq!(t.responses[3], TxnOpResponse::Delete { deleted: 2 });
    assert_eq!(t.responses[4], TxnOpResponse::Get(None));
    assert_eq!(get(s, "/b/x").unwrap().value, b"old");
    assert_eq!(get(s, "/b/else").unwrap().value, b"ran");
    assert!(s.range("/b/list/").unwrap().kvs.is_empty());
    // A CAS on mod_revision: the second writer with the same view loses.
    let kv = get(s, "/b/x").unwrap();
    let cas = |v: &str| {
        s.txn(
            Txn::new()
                .when([Compare::mod_revision(
                    "/b/x",
                    CompareOp::Equal,
                    kv.mod_revision,
                )])
                .and_then([TxnOp::put("/b/x", v)]),
        )
        .unwrap()
        .succeeded
    };
    assert!(cas("first"));
    assert!(!cas("second"));
    assert_eq!(get(s, "/b/x").unwrap().value, b"first");
}

pub fn txn_rejects_bad_shapes(s: &Arc<dyn Store>) {
    let s = &**s;
    let dup = Txn::new().and_then([TxnOp::put("/x", "1"), TxnOp::put("/x", "2")]);
    assert!(matches!(s.txn(dup), Err(StoreError::InvalidArgument(_))));
    let overlap = Txn::new().or_else([TxnOp::delete_prefix("/x/"), TxnOp::put("/x/y", "1")]);
    assert!(matches!(
        s.txn(overlap),
        Err(StoreError::InvalidArgument(_))
    ));
    let all = Txn::new().and_then([TxnOp::delete_prefix("")]);
    assert!(matches!(s.txn(all), Err(StoreError::InvalidKey { .. })));
    let big = Txn::new().and_then((0..129).map(|i| TxnOp::get(format!("/x/{i}"))));
    assert!(matches!(s.txn(big), Err(StoreError::InvalidArgument(_))));
    let empty = Txn::new().when([Compare::absent("")]);
    assert!(matches!(s.txn(empty), Err(StoreError::InvalidKey { .. })));
    assert!(get(s, "/x").is_none() && get(s, "/x/y").is_none());
}

/// Threads that start together and each run `f(i)`; returns the results.
pub fn together<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, f) = (Arc::clone(&barrier), Arc::clone(&f));
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("worker thread panicked"))
        .collect()
}

pub fn event_kinds(events: &[aksnet_store::Event]) -> Vec<(EventKind, &str)> {
    events.iter().map(|e| (e.kind, e.kv.key.as_str())).collect()
}
