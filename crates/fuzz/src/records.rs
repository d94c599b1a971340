//! Store records read back: a listing of `/aksnet/` as the store returns
//! it, with whatever values a corrupted or foreign writer left.

use aksnet_core::cluster::view::{ClusterView, Entry};

/// Input: records separated by NUL, each `KEY` `\x01` `VALUE`. A key not
/// starting with `/` is put under `/aksnet/` so most records reach the
/// decoder's record kinds.
pub fn listing(data: &[u8]) {
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    for r in data.split(|b| *b == 0).take(256) {
        let f = crate::fields(r, 1, 2);
        let mut key = crate::text(f[0]);
        if !key.starts_with('/') {
            key = format!("/aksnet/{key}");
        }
        owned.push((key, f.get(1).copied().unwrap_or_default().to_vec()));
    }
    let entries = owned.iter().enumerate().map(|(i, (k, v))| Entry {
        key: k,
        value: v,
        mod_revision: i as i64 + 1,
        lease: (i % 3 == 0).then_some(i as i64),
    });
    let view = ClusterView::decode(owned.len() as i64, entries);
    // An unreadable node record is reported as a problem too.
    if !view.unreadable_nodes.is_empty() {
        assert!(!view.is_clean(), "{view:?}");
    }
    for p in &view.problems {
        assert!(
            owned.iter().any(|(k, _)| *k == p.key),
            "{p} names no record"
        );
        assert!(!p.reason.is_empty(), "{p}");
    }
    let names: Vec<String> = view.node_records().map(|n| n.name.clone()).collect();
    for n in names.iter().chain(view.unreadable_nodes.iter()) {
        let _ = view.blocks_of(n).count();
        let _ = view.block_of(n);
        let _ = view.pod_ips_of(n);
        let _ = view.route_slots_of(n).count();
        let _ = view.holds_anything(n);
    }
    let _ = view.vnet_ips_used();
}
