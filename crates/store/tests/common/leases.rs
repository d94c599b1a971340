//! Leases: expiry, keep-alive, revoke, attachment rules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_store::{KeepAlive, LeaseId, Store, StoreError, Txn, TxnOp};

use super::{get, wait_for};

pub fn lease_expiry_deletes_keys(s: &Arc<dyn Store>) {
    let st = &**s;
    let lease = st.lease_grant(1).unwrap();
    assert!(lease.ttl_secs >= 1);
    assert!(lease.id.0 != 0);
    st.put("/le/a", b"1", Some(lease.id)).unwrap();
    st.put("/le/b", b"2", Some(lease.id)).unwrap();
    st.put("/le/keep", b"3", None).unwrap();
    assert_eq!(st.get("/le/a").unwrap().unwrap().lease, Some(lease.id));
    let ttl = st.lease_ttl(lease.id).unwrap();
    assert!(matches!(ttl, Some(0..=2)), "ttl {ttl:?}");
    let started = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || st
            .get("/le/a")
            .unwrap()
            .is_none()),
        "a key of an expired lease is deleted"
    );
    eprintln!(
        "lease of {}s expired after {:?}",
        lease.ttl_secs,
        started.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(get(st, "/le/b").is_none());
    assert!(get(st, "/le/keep").is_some(), "keys without the lease stay");
    assert_eq!(st.lease_ttl(lease.id).unwrap(), None);
    assert!(matches!(
        st.lease_keep_alive(lease.id),
        Err(StoreError::LeaseNotFound(id)) if id == lease.id
    ));
    assert!(matches!(
        st.put("/le/c", b"x", Some(lease.id)),
        Err(StoreError::LeaseNotFound(_))
    ));
}

pub fn lease_keep_alive_and_revoke(s: &Arc<dyn Store>) {
    let st = &**s;
    let lease = st.lease_grant(2).unwrap();
    st.put("/lk/a", b"1", Some(lease.id)).unwrap();
    // Kept alive for twice its TTL, the key stays.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(st.lease_keep_alive(lease.id).unwrap(), lease.ttl_secs);
        assert!(get(st, "/lk/a").is_some(), "kept-alive key vanished");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(st.lease_ttl(lease.id).unwrap().is_some());
    let before = st.revision().unwrap();
    st.lease_revoke(lease.id).unwrap();
    assert!(get(st, "/lk/a").is_none(), "revoke deletes at once");
    assert_eq!(st.revision().unwrap(), before + 1);
    assert!(matches!(
        st.lease_revoke(lease.id),
        Err(StoreError::LeaseNotFound(_))
    ));
    // The background keeper keeps a key alive past its TTL, and reports
    // the loss once the lease is revoked behind its back.
    let lease = st.lease_grant(1).unwrap();
    st.put("/lk/kept", b"1", Some(lease.id)).unwrap();
    let keeper = KeepAlive::start(Arc::clone(s), lease.id, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(get(st, "/lk/kept").is_some(), "the keeper kept the lease");
    assert!(keeper.lost().is_none());
    st.lease_revoke(lease.id).unwrap();
    assert!(matches!(
        keeper.wait_lost(Duration::from_secs(5)),
        Some(StoreError::LeaseNotFound(id)) if id == lease.id
    ));
    drop(keeper);
    // Revoking a lease without keys changes no revision.
    let empty = st.lease_grant(5).unwrap();
    let before = st.revision().unwrap();
    st.lease_revoke(empty.id).unwrap();
    assert_eq!(st.revision().unwrap(), before);
}

pub fn lease_attach_rules(s: &Arc<dyn Store>) {
    let st = &**s;
    assert!(matches!(
        st.lease_grant(0),
        Err(StoreError::InvalidArgument(_))
    ));
    let bogus = LeaseId(0x7fff_0000_1234);
    assert!(matches!(
        st.put("/la/a", b"1", Some(bogus)),
        Err(StoreError::LeaseNotFound(id)) if id == bogus
    ));
    assert!(matches!(
        st.txn(Txn::new().and_then([TxnOp::put_with_lease("/la/a", "1", Some(bogus))])),
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(
        get(st, "/la/a").is_none(),
        "nothing of a failed txn is written"
    );
    assert!(matches!(
        st.lease_keep_alive(bogus),
        Err(StoreError::LeaseNotFound(_))
    ));
    assert_eq!(st.lease_ttl(bogus).unwrap(), None);
    // A put without the lease detaches the key from it.
    let lease = st.lease_grant(30).unwrap();
    st.put("/la/b", b"1", Some(lease.id)).unwrap();
    st.put("/la/b", b"2", None).unwrap();
    assert_eq!(get(st, "/la/b").unwrap().lease, None);
    st.lease_revoke(lease.id).unwrap();
    assert_eq!(get(st, "/la/b").unwrap().value, b"2");
    // Two leases are independent.
    let l1 = st.lease_grant(30).unwrap();
    let l2 = st.lease_grant(30).unwrap();
    assert_ne!(l1.id, l2.id);
    st.put("/la/1", b"", Some(l1.id)).unwrap();
    st.put("/la/2", b"", Some(l2.id)).unwrap();
    st.lease_revoke(l1.id).unwrap();
    assert!(get(st, "/la/1").is_none() && get(st, "/la/2").is_some());
    st.lease_revoke(l2.id).unwrap();
}
