//! The store suite on the SQLite backend, plus SQLite-only checks:
//! many processes on one file, auto-compaction, reopening.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_store::claim::{ClaimOutcome, Claimer};
use aksnet_store::{Compare, CompareOp, SqliteOptions, SqliteStore, Store, Txn, TxnOp};
use common::Fixture;

fn setup(_test: &str) -> Option<Fixture> {
    let dir = tempfile::Builder::new()
        .prefix("aksnet-store-test-")
        .tempdir()
        .expect("temp dir");
    let store = SqliteStore::open(dir.path().join("nested/dir/cluster.db")).expect("open");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

store_suite!(setup);

#[test]
fn open_by_url_creates_parents_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c.db");
    let url = format!("sqlite:{}", path.display());
    let s = aksnet_store::open(&url).unwrap();
    assert_eq!(s.url(), url);
    let r = s.put("/p/k", b"v", None).unwrap();
    drop(s);
    let s = aksnet_store::open(&url).unwrap();
    assert_eq!(s.revision().unwrap(), r, "the revision survives a reopen");
    assert_eq!(s.get("/p/k").unwrap().unwrap().mod_revision, r);
    let mut w = s.watch("/p/", r).unwrap();
    assert_eq!(
        w.recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .kv
            .key,
        "/p/k"
    );
    let bad = aksnet_store::open("sqlite-ish:/x").unwrap_err().to_string();
    assert!(bad.contains("sqlite-ish:/x"), "{bad}");
    // A directory where the file should be is reported with its path.
    let err = aksnet_store::open(&format!("sqlite:{}", dir.path().display()))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn auto_compaction_keeps_the_last_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        retain_revisions: 50,
        ..SqliteOptions::default()
    };
    let s = SqliteStore::open_with(dir.path().join("c.db"), opts).unwrap();
    let first = s.put("/ac/k", b"0", None).unwrap();
    for i in 1..200 {
        s.put("/ac/k", i.to_string().as_bytes(), None).unwrap();
    }
    let now = s.revision().unwrap();
    match s.watch("/ac/", first) {
        Err(aksnet_store::StoreError::Compacted {
            compact_revision, ..
        }) => {
            assert!(compact_revision > first && compact_revision >= now - 55);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let mut w = s.watch("/ac/", now - 40).unwrap();
    let ev = w.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(ev.revision(), now - 40);
}

#[test]
fn watch_sees_other_connections() {
    // Two store handles on one file behave like two processes: a watch on
    // one sees writes through the other (by polling the event log).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let mut w = a.watch("/x/", 0).unwrap();
    let started = Instant::now();
    b.put("/x/1", b"from b", None).unwrap();
    let ev = w.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(ev.kv.value, b"from b");
    eprintln!("cross-connection watch latency: {:?}", started.elapsed());
    // A lease granted through b expires for a.
    let l = b.lease_grant(1).unwrap();
    b.put("/x/leased", b"", Some(l.id)).unwrap();
    assert!(common::wait_for(Duration::from_secs(6), || a
        .get("/x/leased")
        .unwrap()
        .is_none()));
}

const CHILD_ENV: &str = "AKSNET_STORE_TEST_CHILD";
const PROCS: usize = 4;
const THREADS: usize = 3;
const SLOTS: usize = 200;
const INCREMENTS: usize = 20;

fn slot_keys() -> Vec<String> {
    (0..SLOTS).map(|i| format!("/mp/slots/{i:03}")).collect()
}

/// Child mode: claim slots until none is left, and CAS-increment a counter.
fn child(spec: &str) {
    let (path, id) = spec.split_once('|').expect("PATH|ID");
    println!();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).expect("child open"));
    // Start together: report ready, wait for the parent's go.
    let dir = std::path::Path::new(path).parent().expect("db dir");
    std::fs::write(dir.join(format!("ready-{id}")), b"").expect("ready file");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("go").exists() {
        assert!(Instant::now() < deadline, "no go from the parent");
        std::thread::sleep(Duration::from_millis(1));
    }
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let id = id.to_owned();
            std::thread::spawn(move || {
                let mut n = 0;
                loop {
                    let value = format!("p{id}-t{t}-{n}");
                    n += 1;
                    match Claimer::new(&*store, value.clone())
                        .claim_first_free(slot_keys())
                        .expect("claim")
                    {
                        ClaimOutcome::Claimed { key, .. } => println!("CLAIM {key} {value}"),
                        ClaimOutcome::Exhausted { .. } => break,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                for _ in 0..INCREMENTS {
                    loop {
                        let kv = store.get("/mp/counter").expect("get");
                        let (n, rev) = kv.map_or((0, 0), |kv| {
                            (
                                kv.value_str().unwrap().parse::<u64>().unwrap(),
                                kv.mod_revision,
                            )
                        });
                        let t = store
                            .txn(
                                Txn::new()
                                    .when([Compare::mod_revision(
                                        "/mp/counter",
                                        CompareOp::Equal,
                                        rev,
                                    )])
                                    .and_then([TxnOp::put("/mp/counter", (n + 1).to_string())]),
                            )
                            .expect("cas");
                        if t.succeeded {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("child thread");
    }
    println!("DONE");
}

/// Several processes hammer create-if-absent on one file: every slot is
/// claimed exactly once, and no CAS increment is lost.
#[test]
fn multi_process_claims() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    // The children create the database themselves, concurrently.
    let mut children: Vec<_> = (0..PROCS)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "multi_process_claims",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{}|{i}", path.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let ready = common::wait_for(Duration::from_secs(60), || {
        (0..PROCS).all(|i| dir.path().join(format!("ready-{i}")).exists())
    });
    std::fs::write(dir.path().join("go"), b"").unwrap();
    // Kill the children by PID if they hang.
    let watchdog_pids = pids.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            for pid in watchdog_pids {
                // Our own children, by PID.
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    });
    let mut claims: HashMap<String, String> = HashMap::new();
    let mut done = 0;
    for c in &mut children {
        let out = BufReader::new(c.stdout.take().unwrap());
        for line in out.lines() {
            let line = line.unwrap();
            // libtest may print "test NAME ... " in front of the first line.
            if let Some(rest) = line.find("CLAIM ").map(|at| &line[at + 6..]) {
                let (key, value) = rest.split_once(' ').unwrap();
                if let Some(prev) = claims.insert(key.to_owned(), value.to_owned()) {
                    panic!("{key} claimed twice: by {prev} and {value}");
                }
            } else if line.ends_with("DONE") {
                done += 1;
            }
        }
    }
    let statuses: Vec<_> = children.iter_mut().map(|c| c.wait().unwrap()).collect();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    assert!(ready, "every child opened the store");
    assert!(
        statuses.iter().all(|s| s.success()),
        "children: {statuses:?}"
    );
    assert_eq!(done, PROCS, "every child finished");
    assert_eq!(claims.len(), SLOTS, "every slot claimed once");
    let s = SqliteStore::open(&path).unwrap();
    let stored = s.range("/mp/slots/").unwrap().kvs;
    assert_eq!(stored.len(), SLOTS);
    for kv in stored {
        assert_eq!(
            claims.get(&kv.key).map(String::as_bytes),
            Some(kv.value.as_slice())
        );
    }
    let counter = s.get("/mp/counter").unwrap().unwrap();
    assert_eq!(
        counter.value_str().unwrap(),
        (PROCS * THREADS * INCREMENTS).to_string(),
        "no lost update"
    );
    let procs: std::collections::HashSet<&str> = claims
        .values()
        .map(|v| v.split('-').next().unwrap())
        .collect();
    assert!(procs.len() >= 2, "the processes raced: winners {procs:?}");
    eprintln!(
        "multi_process_claims: {PROCS} processes x {THREADS} threads, {SLOTS} slots claimed by {} processes, {} increments, {:?}",
        procs.len(),
        PROCS * THREADS * INCREMENTS,
        started.elapsed()
    );
}
