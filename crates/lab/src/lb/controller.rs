//! The load balancer's controller: a thread of the lab's fabric controller
//! process (`aksnet lab controller`, started by `lab up`, stopped by `lab
//! down`), so it lives between CLI commands. Every second it reads the
//! store, gives each LoadBalancer Service its frontend IP (written to
//! `status.loadBalancer.ingress`), probes the pool members whose probe is
//! due (every [`super::PROBE_INTERVAL`], a new member at once), writes
//! `lb.json` and, when the rules or the healthy members changed, programs
//! the fabric (nftables and routing, under the fabric's lock).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aksnet_core::k8s::store::object_key;
use aksnet_core::k8s::{K8sState, Kind, ObjectId};
use aksnet_store::{Compare, CompareOp, Store, Txn, TxnOp};

use super::prober::{self, Target};
use super::{alloc, lb_services, now_ms, plan, service_id, LbStatus, ProbeSpec, PROBE_SOURCE};
use crate::error::Result;
use crate::state::{LabDir, LabState, Lock};
use crate::topology::netns_path;

/// How often the controller looks at the store.
pub const TICK: Duration = Duration::from_secs(1);

/// Writes `status.loadBalancer.ingress` of every LoadBalancer Service:
/// its frontend IP, or nothing while it has none. Compared with the
/// revision read, so a concurrent apply wins and is looked at next tick.
pub fn write_ingress(
    store: &dyn Store,
    k8s: &K8sState,
    ips: &BTreeMap<String, Ipv4Addr>,
) -> Result<usize> {
    let mut written = 0;
    for svc in lb_services(k8s) {
        let id = service_id(svc);
        let want: Vec<Ipv4Addr> = ips.get(&id).copied().into_iter().collect();
        if svc.ingress_ips() == want {
            continue;
        }
        let oid = ObjectId::new(
            Kind::Service,
            svc.metadata.namespace.as_deref().unwrap_or("default"),
            &svc.metadata.name,
        );
        let Some(stored) = k8s.objects.get(&oid) else {
            continue;
        };
        let key = object_key(&oid);
        let Some(kv) = store.get(&key)? else { continue };
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&kv.value) else {
            continue;
        };
        let ingress: Vec<serde_json::Value> = want
            .iter()
            .map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect();
        v["status"] = serde_json::json!({"loadBalancer": if ingress.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({"ingress": ingress})
        }});
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        let r = store.txn(
            Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    stored.mod_revision,
                )])
                .and_then([TxnOp::put(key, bytes)]),
        )?;
        if r.succeeded {
            tracing::info!(service = %id, ingress = ?want, "load balancer frontend");
            written += 1;
        }
    }
    Ok(written)
}

/// The probe of each (member IP, probe) pair, deduplicated: rules that
/// share a probe (the HTTP probe of a `Local` Service) share its result.
fn due(status: &LbStatus, last_round: Option<Instant>, now: Instant) -> Vec<Target> {
    let round = last_round.is_none_or(|t| now.duration_since(t) >= super::PROBE_INTERVAL);
    let mut out: Vec<Target> = vec![];
    for f in &status.frontends {
        for r in &f.rules {
            let Some(spec) = &r.probe else { continue };
            for m in &r.pool {
                let t = Target {
                    ip: m.ip,
                    spec: spec.clone(),
                };
                if (round || m.probe.last_probe_ms.is_none()) && !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// Counts the results into every member they belong to.
fn record(status: &mut LbStatus, results: &[(Target, prober::Result1)], at: u64) -> bool {
    let by: BTreeMap<(Ipv4Addr, &ProbeSpec), &prober::Result1> =
        results.iter().map(|(t, r)| ((t.ip, &t.spec), r)).collect();
    let mut changed = false;
    for f in &mut status.frontends {
        for r in &mut f.rules {
            let Some(spec) = r.probe.clone() else {
                continue;
            };
            for m in &mut r.pool {
                if let Some(res) = by.get(&(m.ip, &spec)) {
                    changed |= m
                        .probe
                        .record(res.ok, res.seen.clone(), spec.probe_threshold, at);
                }
            }
        }
    }
    changed
}

/// Makes the fabric's nftables table and LB routing what `status` says,
/// and writes `lb.json`, under the fabric's lock.
pub fn program(dir: &LabDir, state: &LabState, status: &LbStatus) -> Result<()> {
    let _lock = Lock::take(&dir.path.join("fabric.lock"))?;
    status.save(dir)?;
    super::routing::sync(state, &status.frontends)?;
    crate::fabric::apply_nft_locked(state, status)
}

/// Runs until the lab's state file is gone (`lab down`).
pub fn run(dir: &LabDir) {
    let mut status = LbStatus::load(dir).unwrap_or_default();
    let mut programmed: Option<(Vec<u32>, crate::lb::LbStatus)> = None;
    let mut last_round: Option<Instant> = None;
    loop {
        let Ok(state) = dir.load() else { return };
        if let Err(e) = tick(dir, &state, &mut status, &mut programmed, &mut last_round) {
            tracing::warn!("load balancer: {e}");
        }
        std::thread::sleep(TICK);
    }
}

/// What the fabric was last programmed from: the nodes and the status
/// without its probe timestamps (healthy members are what count).
fn fingerprint(state: &LabState, status: &LbStatus) -> (Vec<u32>, LbStatus) {
    let mut s = status.clone();
    for f in &mut s.frontends {
        for r in &mut f.rules {
            let probed = r.probe.is_some();
            for m in &mut r.pool {
                m.probe = super::ProbeState {
                    up: m.probe.up || !probed,
                    ..Default::default()
                };
            }
        }
    }
    (state.nodes.iter().map(|n| n.index).collect(), s)
}

fn tick(
    dir: &LabDir,
    state: &LabState,
    status: &mut LbStatus,
    programmed: &mut Option<(Vec<u32>, LbStatus)>,
    last_round: &mut Option<Instant>,
) -> Result<()> {
    let store = crate::store::open(dir)?;
    let snap = aksnet_cluster::read(store.as_ref())?;
    let k8s = crate::kubelet::objects(dir)?;
    let (ips, pending) = alloc::assign(state, &snap, &k8s);
    write_ingress(store.as_ref(), &k8s, &ips)?;
    let mut next = LbStatus {
        frontends: plan(state, &k8s, &ips, status),
        pending,
    };
    let now = Instant::now();
    let targets = due(&next, *last_round, now);
    if !targets.is_empty() {
        let fabric = netns_path(&state.names().fabric());
        let results = prober::run(&fabric, PROBE_SOURCE, &targets, super::PROBE_TIMEOUT)?;
        let pairs: Vec<(Target, prober::Result1)> = targets.into_iter().zip(results).collect();
        let round = last_round.is_none_or(|t| now.duration_since(t) >= super::PROBE_INTERVAL);
        if round {
            *last_round = Some(now);
        }
        record(&mut next, &pairs, now_ms());
    }
    let fp = fingerprint(state, &next);
    if programmed.as_ref() != Some(&fp) {
        program(dir, state, &next)?;
        *programmed = Some(fp);
    } else if next != *status {
        next.save(dir)?;
    }
    *status = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::tests::{k8s, lb_svc};
    use crate::state::tests::sample_state;
    use serde_json::json;

    #[test]
    fn probes_are_due_each_interval_new_members_at_once_and_shared() {
        let st = sample_state("kubenet", None, 2, 0);
        let k = k8s(&[lb_svc("l", "Local", json!({}))]);
        let ips = BTreeMap::from([("shop/l".to_string(), "203.0.113.150".parse().unwrap())]);
        let mut s = LbStatus {
            frontends: plan(&st, &k, &ips, &LbStatus::default()),
            pending: vec![],
        };
        let t0 = Instant::now();
        // Two rules (TCP 80, UDP 53) share the HTTP probe: one per node.
        let d = due(&s, None, t0);
        assert_eq!(d.len(), 2, "{d:?}");
        let results: Vec<(Target, prober::Result1)> = d
            .iter()
            .map(|t| {
                let ok = t.ip == st.nodes[0].ip;
                (
                    t.clone(),
                    prober::Result1 {
                        ok,
                        seen: if ok { "200" } else { "503" }.into(),
                    },
                )
            })
            .collect();
        assert!(record(&mut s, &results, 1));
        for r in &s.frontends[0].rules {
            let healthy: Vec<&str> = r.healthy().iter().map(|m| m.node.as_str()).collect();
            assert_eq!(
                healthy,
                vec!["node-1"],
                "only the node with a local endpoint"
            );
        }
        // Within the interval nothing is due; after it everything is.
        assert!(due(&s, Some(t0), t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(due(&s, Some(t0), t0 + Duration::from_secs(5)).len(), 2);
        // The status keeps the state through a re-plan.
        let again = plan(&st, &k, &ips, &s);
        assert_eq!(again, s.frontends);
    }
}
