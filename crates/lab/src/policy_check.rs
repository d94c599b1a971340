//! `lab check --policy`: the probe matrix over every lab pod, on every port
//! any of them serves, beside the matrix expected from the NetworkPolicies
//! (and the routes and NSG on the way, [`crate::explain`]). The probes run
//! in parallel from the pods' namespaces with a short timeout, since a
//! denied probe waits it out.

use std::time::Duration;

use serde::Serialize;

use crate::explain::World;
use crate::probe::{self, Listen, Outcome, Probe, Protocol};
use crate::state::PodState;
use crate::targets::Destination;
use crate::topology::netns_path;

/// One pair on one port: exactly the contract's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairResult {
    pub from: String,
    pub to: String,
    pub reachable: bool,
    pub expected_reachable: bool,
    pub matches: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortResults {
    pub port: u16,
    pub protocol: Protocol,
    pub results: Vec<PairResult>,
}

/// `lab check --policy --output json`: `{"ports": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    pub ports: Vec<PortResults>,
    /// Per mismatch: the pair, the port and what the explanation and the
    /// probe said (for the table output; not part of the JSON contract).
    #[serde(skip)]
    pub notes: Vec<String>,
    #[serde(skip)]
    pub elapsed: Duration,
    #[serde(skip)]
    pub probes: usize,
}

impl PolicyReport {
    pub fn all_match(&self) -> bool {
        self.ports
            .iter()
            .all(|p| p.results.iter().all(|r| r.matches))
    }

    pub fn mismatches(&self) -> usize {
        self.ports
            .iter()
            .flat_map(|p| p.results.iter())
            .filter(|r| !r.matches)
            .count()
    }

    /// The pods in table order (`NAMESPACE/NAME`).
    pub fn pods(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![];
        if let Some(p) = self.ports.first() {
            for r in &p.results {
                if !v.contains(&r.from) {
                    v.push(r.from.clone());
                }
            }
        }
        v
    }
}

/// The pods of the matrix (those with an address), by `NAMESPACE/NAME`.
/// The cluster DNS pods are left out, as from every other check: port 53
/// is their `aksnet dns`, which does not answer the probe.
pub fn matrix_pods<'a>(w: &World<'a>) -> Vec<&'a PodState> {
    let mut pods: Vec<&PodState> = w
        .state
        .pods
        .iter()
        .filter(|p| p.ip.is_some() && !crate::cluster_dns::is_dns_pod(p))
        .collect();
    pods.sort_by_key(|p| p.id());
    pods
}

/// Every port a matrix pod serves, each once, in port then protocol order.
pub fn served_ports(pods: &[&PodState]) -> Vec<Listen> {
    let mut v: Vec<Listen> = pods
        .iter()
        .flat_map(|p| p.ports.iter())
        .map(|l| Listen::new(l.port, l.protocol))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// How many probes run at once, and how long a denied one waits.
pub const PARALLEL: usize = 64;
pub const TIMEOUT: Duration = Duration::from_millis(800);

/// The expected matrix and the probes, compared.
pub fn run(w: &World<'_>) -> PolicyReport {
    let started = std::time::Instant::now();
    let pods = matrix_pods(w);
    let ports = served_ports(&pods);
    let names = w.state.names();
    let mut probes = vec![];
    let mut expected = vec![];
    for l in &ports {
        for f in &pods {
            for t in &pods {
                let (Some(fip), Some(tip)) = (f.ip, t.ip) else {
                    continue;
                };
                let dest = Destination {
                    address: tip,
                    port: l.port,
                    protocol: l.protocol,
                };
                expected.push(w.explain(&f.id(), &t.id(), fip, &dest));
                probes.push(Probe {
                    from_netns: netns_path(&names.pod(f.node_index, f.index)),
                    to: tip,
                    port: l.port,
                    protocol: l.protocol,
                });
            }
        }
    }
    let outcomes = probe::run_all(&probes, PARALLEL, TIMEOUT);
    let mut report = PolicyReport {
        ports: ports
            .iter()
            .map(|l| PortResults {
                port: l.port,
                protocol: l.protocol,
                results: vec![],
            })
            .collect(),
        notes: vec![],
        elapsed: Duration::ZERO,
        probes: probes.len(),
    };
    let per_port = pods.len() * pods.len();
    for (i, (e, o)) in expected.iter().zip(outcomes.iter()).enumerate() {
        let r = judge(e, o);
        if !r.matches {
            report.notes.push(note(e, o));
        }
        if let Some(p) = report.ports.get_mut(i / per_port.max(1)) {
            p.results.push(r);
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// One pair: reachable means the intended pod answered.
pub fn judge(e: &crate::explain::Explanation, o: &Outcome) -> PairResult {
    let reachable = o.reachable && o.label.as_deref() == Some(e.to.as_str());
    PairResult {
        from: e.from.clone(),
        to: e.to.clone(),
        reachable,
        expected_reachable: e.allowed,
        matches: reachable == e.allowed,
    }
}

fn note(e: &crate::explain::Explanation, o: &Outcome) -> String {
    let why = e
        .paths
        .first()
        .and_then(|p| p.steps.iter().find(|s| !s.ok))
        .map(|s| s.detail.clone())
        .unwrap_or_else(|| "every step allows it".into());
    let got = if o.reachable {
        format!(
            "answered by {}",
            o.label.as_deref().unwrap_or("an unnamed server")
        )
    } else {
        o.error.clone().unwrap_or_else(|| "no answer".into())
    };
    format!(
        "{} → {} {}/{}: expected {} ({why}); probed: {got}",
        e.from,
        e.to,
        e.port,
        e.protocol,
        if e.allowed { "reachable" } else { "denied" }
    )
}

/// The tables: per port, the probed matrix and the expected one side by
/// side (rows from, columns to; `.` reachable, `X` denied; a cell that
/// differs is followed by `*`), the pods numbered in a legend.
pub fn render(r: &PolicyReport) -> String {
    let pods = r.pods();
    let n = pods.len();
    let width = n.to_string().len();
    let mut out = String::new();
    out.push_str("pods:\n");
    for (i, p) in pods.iter().enumerate() {
        out.push_str(&format!("  {:>width$} {p}\n", i + 1));
    }
    for port in &r.ports {
        let cell = |i: usize, j: usize, probed: bool| -> String {
            let Some(res) = port.results.get(i * n + j) else {
                return "? ".into();
            };
            let v = if probed {
                res.reachable
            } else {
                res.expected_reachable
            };
            let c = if v { '.' } else { 'X' };
            let mark = if !res.matches && probed { '*' } else { ' ' };
            let pad = " ".repeat(width.saturating_sub(1));
            format!("{pad}{c}{mark}")
        };
        let bad = port.results.iter().filter(|x| !x.matches).count();
        out.push_str(&format!(
            "\n{}/{}: {} pairs, {}\n",
            port.port,
            port.protocol,
            port.results.len(),
            if bad == 0 {
                "all as expected".to_string()
            } else {
                format!("{bad} differ (*)")
            }
        ));
        let header: String = (1..=n).map(|j| format!("{j:>width$} ")).collect();
        let block = width + 1 + n * (width + 1);
        out.push_str(&format!(
            "{:<block$}   {}\n",
            "probed", "expected (policies, routes, NSG)"
        ));
        out.push_str(&format!(
            "{:>width$} {header}   {:>width$} {header}\n",
            "", ""
        ));
        for i in 0..n {
            let probed: String = (0..n).map(|j| cell(i, j, true)).collect();
            let expected: String = (0..n).map(|j| cell(i, j, false)).collect();
            out.push_str(&format!(
                "{:>width$} {probed}   {:>width$} {expected}\n",
                i + 1,
                i + 1
            ));
        }
    }
    if !r.notes.is_empty() {
        out.push_str("\ndifferences:\n");
        for n in &r.notes {
            out.push_str(&format!("  {n}\n"));
        }
    }
    out.push_str(&format!(
        "\n{} probes in {:.1} s; {}\n",
        r.probes,
        r.elapsed.as_secs_f64(),
        if r.all_match() {
            "every pair as expected".to_string()
        } else {
            format!("{} pairs differ", r.mismatches())
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::Explanation;
    use crate::state::tests::sample_state;

    #[test]
    fn ports_pods_and_the_json_contract() {
        let mut st = sample_state("kubenet", None, 2, 2);
        st.pods[0].ports = vec![
            Listen::new(81, Protocol::Udp),
            Listen::new(80, Protocol::Tcp),
        ];
        st.pods[1].namespace = "x".into();
        let snap = Default::default();
        let k = Default::default();
        let w = World {
            state: &st,
            snap: &snap,
            k8s: &k,
            lab: true,
        };
        let pods = matrix_pods(&w);
        assert_eq!(pods[0].id(), "default/pod-1-1");
        assert_eq!(pods.last().unwrap().id(), "x/pod-1-2");
        let ports = served_ports(&pods);
        assert_eq!(
            ports,
            vec![
                Listen::new(80, Protocol::Tcp),
                Listen::new(81, Protocol::Udp)
            ]
        );
        let e = Explanation {
            from: "default/pod-1-1".into(),
            to: "x/pod-1-2".into(),
            network_plugin: "kubenet".into(),
            source_ip: "10.244.0.2".into(),
            address: "10.244.0.3".into(),
            port: 80,
            protocol: "tcp".into(),
            service: None,
            paths: vec![],
            allowed: true,
            verdict: "allowed".into(),
            verification: None,
        };
        let ok = Outcome {
            reachable: true,
            refused: false,
            source: None,
            label: Some("x/pod-1-2".into()),
            error: None,
            elapsed: Duration::ZERO,
        };
        assert!(judge(&e, &ok).matches);
        let other = Outcome {
            label: Some("default/pod-2-1".into()),
            ..ok.clone()
        };
        let r = judge(&e, &other);
        assert!(
            !r.reachable && !r.matches,
            "another pod answering is not reaching it"
        );
        let report = PolicyReport {
            ports: vec![PortResults {
                port: 80,
                protocol: Protocol::Tcp,
                results: vec![judge(&e, &ok), r],
            }],
            notes: vec!["n".into()],
            elapsed: Duration::ZERO,
            probes: 2,
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ports": [{"port": 80, "protocol": "tcp", "results": [
                {"from": "default/pod-1-1", "to": "x/pod-1-2", "reachable": true, "expected_reachable": true, "matches": true},
                {"from": "default/pod-1-1", "to": "x/pod-1-2", "reachable": false, "expected_reachable": true, "matches": false}]}]})
        );
        assert!(!report.all_match());
        assert_eq!(report.mismatches(), 1);
    }

    #[test]
    fn the_tables_mark_differences() {
        let r = |from: &str, to: &str, reachable: bool, expected: bool| PairResult {
            from: from.into(),
            to: to.into(),
            reachable,
            expected_reachable: expected,
            matches: reachable == expected,
        };
        let report = PolicyReport {
            ports: vec![PortResults {
                port: 81,
                protocol: Protocol::Udp,
                results: vec![
                    r("x/a", "x/a", true, true),
                    r("x/a", "x/b", true, false),
                    r("x/b", "x/a", false, false),
                    r("x/b", "x/b", true, true),
                ],
            }],
            notes: vec!["x/a → x/b 81/udp: expected denied".into()],
            elapsed: Duration::from_millis(1234),
            probes: 4,
        };
        let t = render(&report);
        assert!(t.contains("  1 x/a\n  2 x/b\n"), "{t}");
        assert!(t.contains("81/udp: 4 pairs, 1 differ (*)"), "{t}");
        // Row 1: probed `. .*`, expected `. X`.
        assert!(t.contains("1 . .*   1 . X"), "{t}");
        assert!(t.contains("2 X .    2 X ."), "{t}");
        assert!(t.contains("differences:\n  x/a → x/b 81/udp"), "{t}");
        assert!(t.ends_with("4 probes in 1.2 s; 1 pairs differ\n"), "{t}");
    }
}
