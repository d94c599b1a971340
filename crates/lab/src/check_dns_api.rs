//! The `lab check` kinds of the cluster DNS and the API server endpoint:
//!
//! - `pod-to-service-by-name`: every pod (but the DNS pods) names the
//!   kube-dns Service as a pod would (`kube-dns.kube-system`), resolves it
//!   through its own resolver configuration — the query itself travels to
//!   the Service's ClusterIP and on to a DNS pod — and connects to the
//!   address it got on CoreDNS's metrics port: a DNS pod must answer, from
//!   the DNS service IP, seeing the pod's own address;
//! - `internet-to-apiserver`: reached unless authorized IP ranges leave
//!   the internet host out ([`crate::apiserver::admits`]), seeing its
//!   address;
//! - `node-to-apiserver`: every node, always (AKS authorizes the cluster's
//!   outbound IP), seen as the outbound public IP.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::check::{classify, CheckResult};
use crate::cluster_dns;
use crate::expect::{self, Kind};
use crate::probe::{self, Outcome, Probe, Protocol};
use crate::state::LabState;
use crate::topology::{netns_path, APISERVER_PORT_NUMBER};

/// The name pods resolve: a Service of another namespace, by its short form.
pub fn service_name() -> String {
    format!("{}.{}", cluster_dns::SERVICE, cluster_dns::NAMESPACE)
}

struct Planned {
    kind: Kind,
    from: String,
    from_ip: String,
    to: String,
    probe: Option<Probe>,
    /// Why there is nothing to probe (a name that did not resolve).
    failed: Option<String>,
    expected_reachable: bool,
    note: Option<String>,
}

/// Whether a pod on `from` reaches the DNS pods, when a kubenet node is
/// `NetworkUnavailable` (its /24 has no route: nothing crosses between it
/// and other nodes): `Some(true)` all of them, `Some(false)` none (with
/// why), `None` some (the Service's random pick decides; not checked).
fn dns_pods_reachable(
    state: &LabState,
    unavailable: &BTreeSet<String>,
    from: &str,
) -> Option<(bool, Option<String>)> {
    let eps: Vec<&str> = state
        .pods
        .iter()
        .filter(|p| cluster_dns::is_dns_pod(p))
        .map(|p| p.node.as_str())
        .collect();
    let crosses = |n: &str| n == from || !(unavailable.contains(n) || unavailable.contains(from));
    let ok = eps.iter().filter(|n| crosses(n)).count();
    if ok == eps.len() {
        Some((true, None))
    } else if ok == 0 {
        let down = if unavailable.contains(from) {
            from.to_string()
        } else {
            eps.iter()
                .find(|n| unavailable.contains(**n))
                .map(|n| n.to_string())
                .unwrap_or_default()
        };
        Some((
            false,
            Some(format!(
                "{down} is NetworkUnavailable: its /24 has no route in the route table, so no DNS pod can answer"
            )),
        ))
    } else {
        None
    }
}

/// Probes the three kinds and judges them.
pub fn run(state: &LabState, unavailable: &BTreeSet<String>) -> Vec<CheckResult> {
    let names = state.names();
    let a = &state.addressing;
    let mut plan: Vec<Planned> = vec![];
    let by_name = service_name();
    let sources: Vec<(
        &crate::state::PodState,
        std::net::Ipv4Addr,
        bool,
        Option<String>,
    )> = state
        .pods
        .iter()
        .filter(|p| !cluster_dns::is_dns_pod(p))
        .filter_map(|p| {
            let ip = p.ip?;
            let (expected, why) = dns_pods_reachable(state, unavailable, &p.node)?;
            Some((p, ip, expected, why))
        })
        .collect();
    // Each pod resolves on a thread of its own (a lookup that gets no
    // answer waits its time-out).
    let resolved: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = sources
            .iter()
            .map(|(p, ..)| {
                let ns = names.pod(p.node_index, p.index);
                let by_name = &by_name;
                s.spawn(move || cluster_dns::resolve_from(&ns, by_name))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(crate::LabError::Invalid("a lookup panicked".into())))
            })
            .collect()
    });
    for ((p, ip, expected, why), r) in sources.into_iter().zip(resolved) {
        let ns = names.pod(p.node_index, p.index);
        let (probe, failed, note) = match r {
            Ok(Some((addr, fqdn))) => (
                Some(Probe {
                    from_netns: netns_path(&ns),
                    to: addr,
                    port: cluster_dns::METRICS_PORT,
                    protocol: Protocol::Tcp,
                }),
                None,
                (addr != state.network.dns_service_ip).then(|| {
                    format!(
                        "{fqdn} resolved to {addr}, not the DNS service IP {}",
                        state.network.dns_service_ip
                    )
                }),
            ),
            Ok(None) => (None, Some(format!("{by_name} does not resolve")), None),
            Err(e) => (None, Some(e.to_string()), None),
        };
        plan.push(Planned {
            kind: Kind::PodToServiceByName,
            from: p.display(),
            from_ip: ip.to_string(),
            to: by_name.clone(),
            probe,
            failed,
            expected_reachable: expected,
            note: why.or(note),
        });
    }
    let to_api = |from: &str, netns: String, from_ip: String, expected: bool, note| Planned {
        kind: if from == "internet" {
            Kind::InternetToApiserver
        } else {
            Kind::NodeToApiserver
        },
        from: from.to_string(),
        from_ip,
        to: "apiserver".into(),
        probe: Some(Probe {
            from_netns: netns_path(&netns),
            to: a.apiserver_ip,
            port: APISERVER_PORT_NUMBER,
            protocol: Protocol::Tcp,
        }),
        failed: None,
        expected_reachable: expected,
        note,
    };
    let internet_ok = crate::apiserver::admits(state, a.internet_ip);
    plan.push(to_api(
        "internet",
        names.internet(),
        a.internet_ip.to_string(),
        internet_ok,
        (!internet_ok).then(|| {
            format!(
                "{} is outside the authorized IP ranges ({})",
                a.internet_ip,
                state.network.authorized_ip_ranges.join(", ")
            )
        }),
    ));
    for n in &state.nodes {
        plan.push(to_api(
            &n.name,
            names.node(n.index),
            n.ip.to_string(),
            true,
            None,
        ));
    }
    let probes: Vec<Probe> = plan.iter().filter_map(|p| p.probe.clone()).collect();
    let mut outcomes = probe::run_all(&probes, 16, Duration::from_millis(1500)).into_iter();
    plan.into_iter()
        .map(|p| {
            let o = match (&p.probe, &p.failed) {
                (Some(_), _) => outcomes
                    .next()
                    .unwrap_or_else(|| Outcome::failed("not run")),
                (None, why) => Outcome::failed(why.clone().unwrap_or_default()),
            };
            judge(state, p, &o)
        })
        .collect()
}

fn judge(state: &LabState, p: Planned, o: &Outcome) -> CheckResult {
    let (_, want_src) = expect::expected(state.network.network_plugin, p.kind);
    let exp_src = want_src.filter(|_| p.expected_reachable);
    let seen = o.source.and_then(|ip| classify(state, ip));
    let label = o.label.as_deref().unwrap_or("");
    let right_target = match p.kind {
        Kind::PodToServiceByName => label.starts_with(&format!(
            "{}/{}-",
            cluster_dns::NAMESPACE,
            cluster_dns::DEPLOYMENT
        )),
        _ => label == "apiserver",
    };
    // A note made while planning an expected-reachable pair is a fault
    // (the name resolved to another address); for an expected refusal it
    // says why.
    let planning_fault = p.note.is_some() && p.expected_reachable;
    let matches = !planning_fault
        && o.reachable == p.expected_reachable
        && (!o.reachable || (right_target && seen == exp_src));
    let mut note = p.note;
    if o.reachable && !right_target {
        note = Some(format!("answered by {label}"));
    } else if o.reachable != p.expected_reachable && note.is_none() {
        note = o.error.clone();
    }
    CheckResult {
        kind: p.kind,
        from: p.from,
        to: p.to,
        reachable: o.reachable,
        source_ip_seen: o.source.map(|s| s.to_string()),
        source_seen: seen,
        expected_reachable: p.expected_reachable,
        expected_source: exp_src,
        matches,
        from_ip: p.from_ip,
        to_ip: p
            .probe
            .as_ref()
            .map(|x| x.to.to_string())
            .unwrap_or_default(),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Seen;
    use crate::state::tests::sample_state;

    fn planned(kind: Kind, expected: bool) -> Planned {
        Planned {
            kind,
            from: "x".into(),
            from_ip: "10.224.0.4".into(),
            to: "apiserver".into(),
            probe: Some(Probe {
                from_netns: "/run/netns/x".into(),
                to: "203.0.113.200".parse().unwrap(),
                port: 443,
                protocol: Protocol::Tcp,
            }),
            failed: None,
            expected_reachable: expected,
            note: None,
        }
    }

    fn answered(src: &str, label: &str) -> Outcome {
        Outcome {
            reachable: true,
            refused: false,
            source: Some(src.parse().unwrap()),
            label: Some(label.into()),
            error: None,
            elapsed: Duration::from_millis(1),
        }
    }

    #[test]
    fn judging_the_api_server_and_by_name() {
        let st = sample_state("kubenet", None, 2, 1);
        // A node through the public IP: as expected.
        let r = judge(
            &st,
            planned(Kind::NodeToApiserver, true),
            &answered("203.0.113.100", "apiserver"),
        );
        assert!(r.matches && r.source_seen == Some(Seen::Public), "{r:?}");
        // A node seen with its own address: the SNAT is missing.
        let r = judge(
            &st,
            planned(Kind::NodeToApiserver, true),
            &answered("10.224.0.4", "apiserver"),
        );
        assert!(!r.matches);
        // The internet refused by the ranges, as expected: a match.
        let r = judge(
            &st,
            planned(Kind::InternetToApiserver, false),
            &Outcome::failed("timed out"),
        );
        assert!(r.matches && r.expected_source.is_none(), "{r:?}");
        // … and reached although it should not be: a mismatch.
        let r = judge(
            &st,
            planned(Kind::InternetToApiserver, false),
            &answered("203.0.113.10", "apiserver"),
        );
        assert!(!r.matches);
        assert_eq!(r.source_seen, Some(Seen::Internet));
        // By name: a DNS pod must answer.
        let pod_ip = st.pods[0].ip.unwrap().to_string();
        let ok = judge(
            &st,
            planned(Kind::PodToServiceByName, true),
            &answered(&pod_ip, "kube-system/coredns-5d8f-abcde"),
        );
        assert!(ok.matches, "{ok:?}");
        let other = judge(
            &st,
            planned(Kind::PodToServiceByName, true),
            &answered(&pod_ip, "default/pod-2-1"),
        );
        assert!(!other.matches);
        let unresolved = Planned {
            probe: None,
            failed: Some("kube-dns.kube-system does not resolve".into()),
            ..planned(Kind::PodToServiceByName, true)
        };
        let r = judge(&st, unresolved, &Outcome::failed("x"));
        assert!(!r.matches);
        assert_eq!(service_name(), "kube-dns.kube-system");
    }
}
