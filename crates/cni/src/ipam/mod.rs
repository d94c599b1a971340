//! `aksnet-ipam`: host-local compatible allocation on disk under `flock`.
//!
//! **Repeated ADD.** An ADD for a (container ID, ifname) pair that already
//! holds addresses in this network answers with those same addresses (and
//! allocates only for a range set that has none, e.g. after a range was
//! added). It never hands out a second address to the same attachment.
//! host-local answers the same situation with an error ("duplicate
//! allocation is not allowed"); returning the existing allocation makes a
//! runtime's retry after a lost reply harmless. `aksnet-cni` never releases
//! an allocation it did not make in the failing ADD.

pub mod store;

use std::collections::HashSet;
use std::net::IpAddr;

use aksnet_core::cni::ipam::{requested_ips, stale, IpamConf, RangeSet};
use aksnet_core::cni::{code, CniError, CniResult, IpConfig};
use ipnet::IpNet;

use crate::skel::{Plugin, Request};
use store::Store;

/// What an in-process ADD produced.
#[derive(Debug, Clone)]
pub struct Allocated {
    /// The IPAM result (abbreviated form).
    pub result: CniResult,
    /// Addresses this call reserved (to release if a later step fails).
    pub fresh: Vec<IpAddr>,
}

fn store_for(req: &Request) -> Result<(IpamConf, Store), CniError> {
    let conf = IpamConf::from_netconf(&req.conf)?;
    if req.conf.name.is_empty() {
        return Err(CniError::config(
            "the configuration has no network name (\"name\"), which names the IPAM store",
        ));
    }
    let store = Store::open(&conf.store_dir(&req.conf.name))?;
    Ok((conf, store))
}

fn ip_config(set: &RangeSet, ip: IpAddr) -> IpConfig {
    let range = set.range_for(ip);
    let prefix = range.map_or(if ip.is_ipv4() { 32 } else { 128 }, |r| {
        r.subnet.prefix_len()
    });
    IpConfig {
        address: IpNet::new(ip, prefix).unwrap_or_else(|_| IpNet::from(ip)),
        gateway: range.and_then(|r| r.gateway),
        interface: None,
    }
}

fn outside_ranges(req: &Request, ip: IpAddr, sets: &[RangeSet]) -> CniError {
    CniError::new(
        code::INTERNAL,
        format!(
            "container {} ifname {} holds {ip}, which is outside the configured ranges of network {}",
            req.env.container_id, req.env.ifname, req.conf.name
        ),
        format!(
            "the ranges were changed under a running pod (now {}); DEL the container and ADD it again",
            sets.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ),
    )
}

fn exhausted(set: &RangeSet, name: &str) -> CniError {
    CniError::new(
        code::INTERNAL,
        format!("no IP addresses available in range set {set} of network {name}"),
        "every address of the range is allocated; free some (DEL or GC) or widen the range",
    )
}

/// Allocate one address per range set for the request's attachment.
pub fn allocate(req: &Request) -> Result<Allocated, CniError> {
    let (conf, store) = store_for(req)?;
    let sets = conf.range_sets(&req.conf)?;
    let requested = requested_ips(&req.conf, &req.args)?;
    for ip in &requested {
        if !sets.iter().any(|s| s.range_for(*ip).is_some()) {
            return Err(CniError::config(format!(
                "requested address {ip} is in none of the configured ranges"
            )));
        }
    }
    let id = req.env.container_id.as_str();
    let ifname = req.env.ifname.as_str();
    let scan = store.scan()?;
    store.remove_temps(&scan.temps);
    let mine: Vec<IpAddr> = scan
        .allocations
        .iter()
        .filter(|a| a.owned_by(id, ifname))
        .map(|a| a.ip)
        .collect();
    // The range was changed under this attachment: answering with a new
    // address would leave the pod holding two, and configuring it would
    // renumber a running pod. The runtime must DEL it first.
    if let Some(ip) = mine
        .iter()
        .find(|ip| !sets.iter().any(|s| s.range_for(**ip).is_some()))
    {
        return Err(outside_ranges(req, *ip, &sets));
    }
    // One directory scan serves both purposes; an ownerless file's address
    // stays taken until GC frees it.
    let mut used: HashSet<IpAddr> = scan.used();
    let mut fresh: Vec<IpAddr> = Vec::new();
    let mut ips = Vec::with_capacity(sets.len());
    let outcome = (|| -> Result<(), CniError> {
        for (idx, set) in sets.iter().enumerate() {
            if let Some(ip) = mine.iter().find(|ip| set.range_for(**ip).is_some()) {
                ips.push(ip_config(set, *ip));
                continue;
            }
            let ip = if let Some(ip) = requested.iter().find(|ip| set.range_for(**ip).is_some()) {
                if used.contains(ip) || !store.reserve(*ip, id, ifname)? {
                    return Err(CniError::new(
                        code::INTERNAL,
                        format!(
                            "requested address {ip} is already allocated in network {}",
                            req.conf.name
                        ),
                        "",
                    ));
                }
                *ip
            } else {
                let last = store.last_reserved(idx);
                let mut got = None;
                for cand in set.candidates(last) {
                    if used.contains(&cand) {
                        continue;
                    }
                    if store.reserve(cand, id, ifname)? {
                        got = Some(cand);
                        break;
                    }
                    used.insert(cand);
                }
                got.ok_or_else(|| exhausted(set, &req.conf.name))?
            };
            used.insert(ip);
            fresh.push(ip);
            store.set_last_reserved(idx, ip)?;
            ips.push(ip_config(set, ip));
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        for ip in &fresh {
            let _ = store.release(*ip);
        }
        return Err(e);
    }
    let mut result = CniResult {
        ips,
        routes: conf.routes.clone(),
        ..CniResult::default()
    };
    if let Some(path) = conf.resolv_conf.as_deref().filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CniError::new(
                code::IO,
                format!("cannot read ipam resolvConf {path}"),
                e.to_string(),
            )
        })?;
        result.dns = aksnet_core::cni::ipam::parse_resolv_conf(&text);
    }
    Ok(Allocated { result, fresh })
}

/// Release every address of the request's attachment; returns them.
/// Nothing allocated is not an error.
pub fn release(req: &Request) -> Result<Vec<IpAddr>, CniError> {
    let (_conf, store) = store_for(req)?;
    release_in(&store, &req.env.container_id, &req.env.ifname)
}

fn release_in(store: &Store, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
    let mut out = Vec::new();
    for a in store.allocations()? {
        if a.owned_by(id, ifname) && store.release(a.ip)? {
            out.push(a.ip);
        }
    }
    Ok(out)
}

/// Release the addresses `ips` if they still belong to the attachment
/// (rollback of a failed ADD).
pub fn release_fresh(req: &Request, ips: &[IpAddr]) -> Result<(), CniError> {
    if ips.is_empty() {
        return Ok(());
    }
    let (_conf, store) = store_for(req)?;
    for ip in ips {
        let _ = store.release(*ip);
    }
    Ok(())
}

/// The addresses held by the request's attachment.
pub fn held(req: &Request) -> Result<Vec<IpAddr>, CniError> {
    let (_conf, store) = store_for(req)?;
    Ok(store
        .allocations()?
        .into_iter()
        .filter(|a| a.owned_by(&req.env.container_id, &req.env.ifname))
        .map(|a| a.ip)
        .collect())
}

/// CHECK: the attachment holds an address, and every address of
/// `prevResult` inside the configured ranges is held by it.
pub fn check(req: &Request) -> Result<(), CniError> {
    let conf = IpamConf::from_netconf(&req.conf)?;
    let sets = conf.range_sets(&req.conf)?;
    let mine = held(req)?;
    if mine.is_empty() {
        return Err(CniError::new(
            code::INTERNAL,
            format!(
                "no address is allocated to container {} ifname {} in network {}",
                req.env.container_id, req.env.ifname, req.conf.name
            ),
            "",
        ));
    }
    if let Some(ip) = mine
        .iter()
        .find(|ip| !sets.iter().any(|s| s.range_for(**ip).is_some()))
    {
        return Err(outside_ranges(req, *ip, &sets));
    }
    if let Some(prev) = req.conf.prev()? {
        for ipc in &prev.ips {
            let ip = ipc.address.addr();
            if sets.iter().any(|s| s.range_for(ip).is_some()) && !mine.contains(&ip) {
                return Err(CniError::new(
                    code::INTERNAL,
                    format!(
                        "address {ip} of prevResult is not allocated to container {}",
                        req.env.container_id
                    ),
                    "",
                ));
            }
        }
    }
    Ok(())
}

/// GC: release every allocation of the network not owned by a valid
/// attachment, and whatever only a dead process leaves (address files
/// without an owner, temporary files; see [`store`]). Without an attachment
/// list no owned allocation is released.
pub fn gc(req: &Request) -> Result<Vec<IpAddr>, CniError> {
    let (_conf, store) = store_for(req)?;
    let scan = store.scan()?;
    store.remove_temps(&scan.temps);
    store.remove_misnamed(&scan.misnamed);
    let mut out = Vec::new();
    for ip in &scan.ownerless {
        if store.release(*ip)? {
            tracing::info!(ip = %ip, "GC freed an allocation file without an owner");
            out.push(*ip);
        }
    }
    let Some(valid) = req.conf.gc_attachments() else {
        return Ok(out);
    };
    for a in stale(&scan.allocations, valid) {
        if store.release(a.ip)? {
            tracing::info!(ip = %a.ip, id = %a.container_id, "GC released");
            out.push(a.ip);
        }
    }
    Ok(out)
}

/// STATUS: error 50 when some range set has no free address.
pub fn status(req: &Request) -> Result<(), CniError> {
    let (conf, store) = store_for(req)?;
    let sets = conf.range_sets(&req.conf)?;
    let used = store.used()?;
    for set in &sets {
        let taken = used
            .iter()
            .filter(|ip| set.range_for(**ip).is_some_and(|r| r.gateway != Some(**ip)))
            .count() as u128;
        if taken >= set.capacity() {
            return Err(CniError::new(
                code::NOT_AVAILABLE,
                format!(
                    "no IP addresses available in range set {set} of network {}",
                    req.conf.name
                ),
                format!("{taken} of {} addresses allocated", set.capacity()),
            ));
        }
    }
    Ok(())
}

/// The `aksnet-ipam` plugin.
#[derive(Debug, Default)]
pub struct IpamPlugin;

impl Plugin for IpamPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        Ok(allocate(req)?.result.ipam_only())
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        release(req).map(|_| ())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        check(req)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        status(req)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        gc(req).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    //! The allocator against a real directory (no root needed).

    use super::*;
    use crate::skel::{Command, Env};
    use aksnet_core::cni::{CniArgs, NetConf};
    use serde_json::json;

    fn dir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "aksnet-ipam-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn req(data: &std::path::Path, id: &str, extra: serde_json::Value) -> Request {
        let mut v = json!({"cniVersion": "1.1.0", "name": "u", "ipam": {"type": "aksnet-ipam",
            "ranges": [[{"subnet": "10.9.0.0/29", "rangeStart": "10.9.0.2", "rangeEnd": "10.9.0.4"}]],
            "dataDir": data.display().to_string()}});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        let stdin = v.to_string().into_bytes();
        let (conf, raw, version) = NetConf::from_slice(&stdin).unwrap();
        Request {
            command: Command::Add,
            env: Env {
                container_id: id.into(),
                netns: "/x".into(),
                ifname: "eth0".into(),
                args: String::new(),
                path: vec!["/nonexistent".into()],
            },
            conf,
            raw,
            stdin,
            version,
            args: CniArgs::default(),
        }
    }

    fn ip(r: &CniResult) -> String {
        r.ips[0].address.to_string()
    }

    #[test]
    fn allocates_round_robin_and_exhausts_with_the_range_named() {
        let d = dir();
        let a = allocate(&req(&d, "a", json!({}))).unwrap();
        assert_eq!(ip(&a.result), "10.9.0.2/29");
        assert_eq!(a.fresh.len(), 1);
        assert_eq!(
            ip(&allocate(&req(&d, "b", json!({}))).unwrap().result),
            "10.9.0.3/29"
        );
        assert_eq!(
            ip(&allocate(&req(&d, "c", json!({}))).unwrap().result),
            "10.9.0.4/29"
        );
        status(&req(&d, "x", json!({}))).unwrap_err();
        let e = allocate(&req(&d, "d", json!({}))).unwrap_err();
        assert!(e.msg.contains("10.9.0.2-10.9.0.4"), "{e}");
        assert_eq!(status(&req(&d, "x", json!({}))).unwrap_err().code, 50);
        // Freed in the middle: round robin continues after the last one.
        release(&req(&d, "b", json!({}))).unwrap();
        assert_eq!(
            ip(&allocate(&req(&d, "e", json!({}))).unwrap().result),
            "10.9.0.3/29"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn repeated_add_returns_the_same_address_and_reserves_nothing() {
        let d = dir();
        let first = allocate(&req(&d, "a", json!({}))).unwrap();
        let again = allocate(&req(&d, "a", json!({}))).unwrap();
        assert_eq!(ip(&first.result), ip(&again.result));
        assert!(again.fresh.is_empty());
        // Rolling back the repeated ADD keeps the first one's address.
        release_fresh(&req(&d, "a", json!({})), &again.fresh).unwrap();
        assert_eq!(held(&req(&d, "a", json!({}))).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn gc_keeps_only_listed_attachments() {
        let d = dir();
        for id in ["a", "b", "c"] {
            allocate(&req(&d, id, json!({}))).unwrap();
        }
        let g = req(
            &d,
            "",
            json!({"cni.dev/valid-attachments": [{"containerID": "b", "ifname": "eth0"}]}),
        );
        assert_eq!(gc(&g).unwrap().len(), 2);
        assert!(held(&req(&d, "b", json!({}))).unwrap().len() == 1);
        assert!(held(&req(&d, "a", json!({}))).unwrap().is_empty());
        // No list at all: nothing released.
        assert!(gc(&req(&d, "", json!({}))).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn requested_address_outside_or_taken() {
        let d = dir();
        let r = allocate(&req(
            &d,
            "a",
            json!({"runtimeConfig": {"ips": ["10.9.0.4/29"]}}),
        ))
        .unwrap();
        assert_eq!(ip(&r.result), "10.9.0.4/29");
        let e = allocate(&req(
            &d,
            "b",
            json!({"args": {"cni": {"ips": ["10.9.0.4"]}}}),
        ))
        .unwrap_err();
        assert!(e.msg.contains("already allocated"), "{e}");
        let e = allocate(&req(
            &d,
            "b",
            json!({"args": {"cni": {"ips": ["10.9.1.4"]}}}),
        ))
        .unwrap_err();
        assert_eq!(e.code, 7);
        let _ = std::fs::remove_dir_all(&d);
    }

    fn with_ranges(data: &std::path::Path, id: &str, ranges: serde_json::Value) -> Request {
        let mut r = req(data, id, json!({}));
        let mut v = r.raw.clone();
        v["ipam"]["ranges"] = ranges;
        let stdin = v.to_string().into_bytes();
        let (conf, raw, version) = NetConf::from_slice(&stdin).unwrap();
        r.conf = conf;
        r.raw = raw;
        r.stdin = stdin;
        r.version = version;
        r
    }

    fn files(d: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d.join("u"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn gc_frees_what_only_a_dead_process_leaves_even_without_a_list() {
        let d = dir();
        allocate(&req(&d, "a", json!({}))).unwrap();
        let net = d.join("u");
        // A host-local (or older aksnet-ipam) killed between creating the
        // file and writing its owner; a killed aksnet-ipam's temporary file.
        std::fs::write(net.join("10.9.0.3"), "").unwrap();
        std::fs::write(net.join(format!("{}4242", store::TEMP_PREFIX)), "x\r\neth0").unwrap();
        // The empty file's address is not handed out again before GC.
        let b = allocate(&req(&d, "b", json!({}))).unwrap();
        assert_eq!(ip(&b.result), "10.9.0.4/29");
        // ADD already removed the temporary file (it holds the lock).
        assert_eq!(files(&d), ["10.9.0.2", "10.9.0.3", "10.9.0.4"]);
        std::fs::write(net.join(format!("{}4243", store::TEMP_PREFIX)), "").unwrap();
        let freed = gc(&req(&d, "", json!({}))).unwrap();
        assert_eq!(freed, ["10.9.0.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(files(&d), ["10.9.0.2", "10.9.0.4"]);
        // With a list: owned allocations not listed go too.
        let g = req(
            &d,
            "",
            json!({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]}),
        );
        std::fs::write(net.join("10.9.0.3"), "\r\n").unwrap();
        assert_eq!(gc(&g).unwrap().len(), 2);
        assert_eq!(files(&d), ["10.9.0.2"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn reboot_with_stale_files_gc_frees_them_and_live_pods_keep_theirs() {
        let d = dir();
        for id in ["live", "gone1", "gone2"] {
            allocate(&req(&d, id, json!({}))).unwrap();
        }
        let live = held(&req(&d, "live", json!({}))).unwrap();
        // After the reboot the runtime knows only "live".
        let g = req(
            &d,
            "",
            json!({"cni.dev/valid-attachments": [{"containerID": "live", "ifname": "eth0"}]}),
        );
        assert_eq!(gc(&g).unwrap().len(), 2);
        assert_eq!(held(&req(&d, "live", json!({}))).unwrap(), live);
        check(&req(&d, "live", json!({}))).unwrap();
        // The freed addresses are handed out again.
        allocate(&req(&d, "new1", json!({}))).unwrap();
        allocate(&req(&d, "new2", json!({}))).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_range_shrunk_under_a_running_pod_is_reported_not_renumbered() {
        let d = dir();
        let wide =
            json!([[{"subnet": "10.9.0.0/29", "rangeStart": "10.9.0.2", "rangeEnd": "10.9.0.6"}]]);
        let narrow =
            json!([[{"subnet": "10.9.0.0/29", "rangeStart": "10.9.0.5", "rangeEnd": "10.9.0.6"}]]);
        let a = allocate(&with_ranges(&d, "a", wide.clone())).unwrap();
        assert_eq!(ip(&a.result), "10.9.0.2/29");
        // The agent narrowed the range: a repeated ADD and CHECK of the pod
        // say so, and nothing new is allocated to it.
        let e = allocate(&with_ranges(&d, "a", narrow.clone())).unwrap_err();
        assert_eq!(e.code, code::INTERNAL);
        assert!(
            e.msg.contains("10.9.0.2") && e.msg.contains("outside"),
            "{e}"
        );
        assert!(e.details.contains("DEL"), "{e:?}");
        let e = check(&with_ranges(&d, "a", narrow.clone())).unwrap_err();
        assert!(e.msg.contains("outside"), "{e}");
        assert_eq!(files(&d), ["10.9.0.2"]);
        // New pods get addresses of the new range; GC keeps the live pod's.
        let b = allocate(&with_ranges(&d, "b", narrow.clone())).unwrap();
        assert_eq!(ip(&b.result), "10.9.0.5/29");
        let mut g = with_ranges(&d, "", narrow.clone());
        let mut v = g.raw.clone();
        v["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"},
                                                {"containerID": "b", "ifname": "eth0"}]);
        g.conf = NetConf::from_slice(v.to_string().as_bytes()).unwrap().0;
        assert!(gc(&g).unwrap().is_empty());
        // DEL frees the out-of-range address; the pod comes back inside.
        assert_eq!(
            release(&with_ranges(&d, "a", narrow.clone()))
                .unwrap()
                .len(),
            1
        );
        let a2 = allocate(&with_ranges(&d, "a", narrow)).unwrap();
        assert_eq!(ip(&a2.result), "10.9.0.6/29");
        assert_eq!(files(&d), ["10.9.0.5", "10.9.0.6"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn store_directory_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir();
        allocate(&req(&d, "a", json!({}))).unwrap();
        let mode =
            |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(d.join("u")), 0o700);
        for f in ["10.9.0.2", "lock", "last_reserved_ip.0"] {
            assert_eq!(mode(d.join("u").join(f)), 0o600, "{f}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
