//! The index on its own (no sockets, no store): what the store's objects
//! cannot express yet (IPv6, dual-stack Services, stored IPv6 slices),
//! CNAME chains, SRV weights, and name edge cases.

use std::net::IpAddr;

use aksnet_dns::index::{Outcome, PodMode, Settings};
use aksnet_dns::records::{
    ClusterRecords, EndpointRecord, PodRecord, PortRecord, Protocol, ServiceKind, ServiceRecord,
};
use aksnet_dns::Index;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RecordType};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn settings() -> Settings {
    Settings {
        domain: aksnet_dns::names::cluster_domain("cluster.local").unwrap(),
        ttl: 5,
        pods: PodMode::Verified,
    }
}

fn svc(name: &str, kind: ServiceKind, endpoints: Vec<EndpointRecord>) -> ServiceRecord {
    ServiceRecord {
        namespace: "ns".into(),
        name: name.into(),
        kind,
        ports: vec![PortRecord {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
        }],
        endpoints,
    }
}

fn ep(addr: &str, ready: bool) -> EndpointRecord {
    EndpointRecord {
        addresses: vec![ip(addr)],
        hostname: None,
        ready,
        ports: vec![PortRecord {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 8080,
        }],
    }
}

/// `(rcode, sorted "name TYPE data" lines)`, or `None` for a forward.
fn ask(index: &Index, q: &str, ty: RecordType) -> Option<(ResponseCode, Vec<String>)> {
    let name = LowerName::new(&Name::from_ascii(q).unwrap());
    match index.lookup(&name, ty) {
        Outcome::Answer(a) => {
            let mut v: Vec<String> = a
                .answers
                .iter()
                .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
                .collect();
            v.sort();
            Some((a.rcode, v))
        }
        Outcome::External { answer, target } => {
            let mut v: Vec<String> = answer
                .answers
                .iter()
                .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
                .collect();
            v.push(format!("-> {target}"));
            Some((answer.rcode, v))
        }
        Outcome::Forward => None,
    }
}

fn cluster() -> Index {
    let recs = ClusterRecords {
        revision: 42,
        namespaces: vec!["ns".into()],
        services: vec![
            svc(
                "dual",
                ServiceKind::ClusterIp(vec![ip("10.0.0.5"), ip("fd00:10::5")]),
                vec![],
            ),
            svc(
                "v6",
                ServiceKind::Headless,
                vec![ep("fd00:244::7", true), ep("fd00:244::8", false)],
            ),
            svc(
                "three",
                ServiceKind::Headless,
                vec![
                    ep("10.244.0.1", true),
                    ep("10.244.0.2", true),
                    ep("10.244.0.3", true),
                ],
            ),
            svc(
                "none-ready",
                ServiceKind::Headless,
                vec![ep("10.244.0.9", false)],
            ),
            svc(
                "a",
                ServiceKind::ExternalName("b.ns.svc.cluster.local".into()),
                vec![],
            ),
            svc(
                "b",
                ServiceKind::ExternalName("dual.ns.svc.cluster.local.".into()),
                vec![],
            ),
            svc(
                "loop",
                ServiceKind::ExternalName("loop.ns.svc.cluster.local".into()),
                vec![],
            ),
        ],
        pods: vec![PodRecord {
            namespace: "ns".into(),
            name: "p".into(),
            ips: vec![ip("fd00:244::7")],
        }],
    };
    Index::build(&recs, &settings())
}

#[test]
fn dual_stack_and_ipv6() {
    let i = cluster();
    assert_eq!(
        ask(&i, "dual.ns.svc.cluster.local.", RecordType::A)
            .unwrap()
            .1,
        vec!["dual.ns.svc.cluster.local. A 10.0.0.5"]
    );
    assert_eq!(
        ask(&i, "dual.ns.svc.cluster.local.", RecordType::AAAA)
            .unwrap()
            .1,
        vec!["dual.ns.svc.cluster.local. AAAA fd00:10::5"]
    );
    // Headless over IPv6: ready endpoints only, dashed names with `--`.
    assert_eq!(
        ask(&i, "v6.ns.svc.cluster.local.", RecordType::AAAA)
            .unwrap()
            .1,
        vec!["v6.ns.svc.cluster.local. AAAA fd00:244::7"]
    );
    let (rc, a) = ask(&i, "v6.ns.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!((rc, a.len()), (ResponseCode::NoError, 0), "NODATA");
    assert_eq!(
        ask(&i, "fd00-244--7.v6.ns.svc.cluster.local.", RecordType::AAAA)
            .unwrap()
            .1,
        vec!["fd00-244--7.v6.ns.svc.cluster.local. AAAA fd00:244::7"]
    );
    // PTR under ip6.arpa (nibbles, reversed).
    let rev = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(
        ask(&i, rev, RecordType::PTR).unwrap().1,
        vec![format!("{rev} PTR dual.ns.svc.cluster.local.")]
    );
    // The v6 pod's record, in the short and the long spelling.
    for q in [
        "fd00-244--7.ns.pod.cluster.local.",
        "fd00-244-0-0-0-0-0-7.ns.pod.cluster.local.",
    ] {
        let (rc, a) = ask(&i, q, RecordType::AAAA).unwrap();
        assert_eq!(rc, ResponseCode::NoError, "{q}");
        assert_eq!(a, vec![format!("{q} AAAA fd00:244::7")]);
    }
}

#[test]
fn srv_weights_split_evenly() {
    let i = cluster();
    let (_, a) = ask(
        &i,
        "_http._tcp.three.ns.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|l| l.contains(" SRV 0 33 8080 ")), "{a:?}");
}

#[test]
fn headless_without_ready_endpoints_does_not_exist() {
    let i = cluster();
    let (rc, _) = ask(&i, "none-ready.ns.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(rc, ResponseCode::NXDomain);
    // Its endpoint's IP has no PTR of the Service: falls through.
    assert!(ask(&i, "9.0.244.10.in-addr.arpa.", RecordType::PTR).is_none());
}

#[test]
fn cname_chains_are_followed_and_loops_end() {
    let i = cluster();
    assert_eq!(
        ask(&i, "a.ns.svc.cluster.local.", RecordType::A).unwrap().1,
        vec![
            "a.ns.svc.cluster.local. CNAME b.ns.svc.cluster.local.",
            "b.ns.svc.cluster.local. CNAME dual.ns.svc.cluster.local.",
            "dual.ns.svc.cluster.local. A 10.0.0.5",
        ]
    );
    // A CNAME to itself ends after a few hops with the CNAMEs so far.
    let (rc, a) = ask(&i, "loop.ns.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(rc, ResponseCode::NoError);
    assert!(!a.is_empty() && a.len() <= 9, "{a:?}");
}

#[test]
fn outside_names_and_the_soa_serial() {
    let i = cluster();
    assert!(ask(&i, "example.com.", RecordType::A).is_none());
    assert!(ask(&i, "local.", RecordType::A).is_none());
    assert!(ask(&i, "xcluster.local.", RecordType::A).is_none());
    let (_, a) = ask(&i, "cluster.local.", RecordType::SOA).unwrap();
    assert_eq!(
        a,
        vec!["cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"]
    );
    assert_eq!(i.revision(), 42);
}
