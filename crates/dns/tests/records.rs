//! The Kubernetes DNS schema as served: real queries over loopback UDP and
//! TCP against a server reading a real SQLite store whose objects were
//! applied through the k8s code.

mod common;

use aksnet_dns::client::Transport;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

const BOTH: [Transport; 2] = [Transport::Udp, Transport::Tcp];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_service_a_srv_ptr() {
    let c = Cluster::new();
    c.apply(APP);
    let web_ip = c.cluster_ip("shop", "web").to_string();
    let s = c.serve(|_| {}).await;
    let at = s.local_addr();
    for t in BOTH {
        let m = ask(at, "web.shop.svc.cluster.local.", RecordType::A, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(
            m.metadata.authoritative,
            "cluster answers are authoritative"
        );
        assert_eq!(addrs(&m), vec![web_ip.clone()]);
        assert_eq!(m.answers[0].ttl, 5, "TTL 5 s by default");

        // SRV for a named port: priority 0, weight 100, the Service port,
        // the Service name as target, its address as additional.
        let m = ask(
            at,
            "_http._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
            t,
        )
        .await;
        assert_eq!(
            lines(&m),
            vec!["_http._tcp.web.shop.svc.cluster.local. SRV 0 100 80 web.shop.svc.cluster.local."]
        );
        assert!(
            m.additionals
                .iter()
                .any(|r| matches!(&r.data, RData::A(a) if a.0.to_string() == web_ip)),
            "{:?}",
            m.additionals
        );
        let m = ask(
            at,
            "_dns._udp.web.shop.svc.cluster.local.",
            RecordType::SRV,
            t,
        )
        .await;
        assert_eq!(
            lines(&m),
            vec!["_dns._udp.web.shop.svc.cluster.local. SRV 0 100 53 web.shop.svc.cluster.local."]
        );
        // The protocol is part of the name: no _dns._tcp.
        let m = ask(
            at,
            "_dns._tcp.web.shop.svc.cluster.local.",
            RecordType::SRV,
            t,
        )
        .await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

        // PTR of the ClusterIP.
        let rev = format!(
            "{}.in-addr.arpa.",
            web_ip.split('.').rev().collect::<Vec<_>>().join(".")
        );
        let m = ask(at, &rev, RecordType::PTR, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            lines(&m),
            vec![format!("{rev} PTR web.shop.svc.cluster.local.")]
        );
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_service_answers_ready_pods() {
    let c = Cluster::new();
    c.apply(APP);
    let s = c.serve(|_| {}).await;
    let at = s.local_addr();
    for t in BOTH {
        // db-2 is not ready: left out.
        let m = ask(at, "db.shop.svc.cluster.local.", RecordType::A, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&m), vec!["10.244.1.9", "10.244.2.4"]);
        // hostname + subdomain name the pod; without, its dashed IP does.
        let m = ask(at, "db-0.db.shop.svc.cluster.local.", RecordType::A, t).await;
        assert_eq!(addrs(&m), vec!["10.244.1.9"]);
        let m = ask(
            at,
            "10-244-2-4.db.shop.svc.cluster.local.",
            RecordType::A,
            t,
        )
        .await;
        assert_eq!(addrs(&m), vec!["10.244.2.4"]);
        let m = ask(
            at,
            "10-244-2-5.db.shop.svc.cluster.local.",
            RecordType::A,
            t,
        )
        .await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // SRV: one per ready endpoint, the endpoint's port and name,
        // the weight split between them.
        let m = ask(
            at,
            "_pg._tcp.db.shop.svc.cluster.local.",
            RecordType::SRV,
            t,
        )
        .await;
        assert_eq!(
            lines(&m),
            vec![
                "_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 5432 10-244-2-4.db.shop.svc.cluster.local.",
                "_pg._tcp.db.shop.svc.cluster.local. SRV 0 50 5432 db-0.db.shop.svc.cluster.local.",
            ]
        );
        assert_eq!(m.additionals.len(), 2, "{:?}", m.additionals);
        // PTR of an endpoint: its name under the Service.
        let m = ask(at, "9.1.244.10.in-addr.arpa.", RecordType::PTR, t).await;
        assert_eq!(
            lines(&m),
            vec!["9.1.244.10.in-addr.arpa. PTR db-0.db.shop.svc.cluster.local."]
        );
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_records_and_pod_ptr() {
    let c = Cluster::new();
    c.apply(APP);
    let s = c.serve(|_| {}).await;
    let at = s.local_addr();
    for t in BOTH {
        let m = ask(at, "10-244-3-3.shop.pod.cluster.local.", RecordType::A, t).await;
        assert_eq!(addrs(&m), vec!["10.244.3.3"]);
        assert!(m.metadata.authoritative);
        // Verified: an IP no pod of that namespace has does not exist.
        for q in [
            "10-244-3-4.shop.pod.cluster.local.",
            "10-244-3-3.default.pod.cluster.local.",
            "not-an-ip.shop.pod.cluster.local.",
        ] {
            let m = ask(at, q, RecordType::A, t).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{q}");
        }
        // A pod IP that is no endpoint has a PTR to its pod name.
        let m = ask(at, "3.3.244.10.in-addr.arpa.", RecordType::PTR, t).await;
        assert_eq!(
            lines(&m),
            vec!["3.3.244.10.in-addr.arpa. PTR 10-244-3-3.shop.pod.cluster.local."]
        );
        // An endpoint of a ClusterIP Service: its name under the Service,
        // which resolves back.
        let m = ask(at, "7.0.244.10.in-addr.arpa.", RecordType::PTR, t).await;
        assert_eq!(
            lines(&m),
            vec!["7.0.244.10.in-addr.arpa. PTR 10-244-0-7.web.shop.svc.cluster.local."]
        );
        let m = ask(
            at,
            "10-244-0-7.web.shop.svc.cluster.local.",
            RecordType::A,
            t,
        )
        .await;
        assert_eq!(addrs(&m), vec!["10.244.0.7"]);
    }
    s.shutdown().await.unwrap();
    // Insecure (AKS's CoreDNS): any address spelled is answered.
    let s = c
        .serve(|cfg| cfg.pods = aksnet_dns::PodMode::Insecure)
        .await;
    let m = ask(
        s.local_addr(),
        "192-0-2-9.anything.pod.cluster.local.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(addrs(&m), vec!["192.0.2.9"]);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_nodata_and_the_soa() {
    let c = Cluster::new();
    c.apply(APP);
    let s = c.serve(|_| {}).await;
    let at = s.local_addr();
    for t in BOTH {
        // Names that do not exist: NXDOMAIN with the zone's SOA.
        for q in [
            "nope.shop.svc.cluster.local.",
            "web.nowhere.svc.cluster.local.",
            "web.shop.cluster.local.",
            "whatever.cluster.local.",
            "a.b.web.shop.svc.cluster.local.",
        ] {
            let m = ask(at, q, RecordType::A, t).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{q}");
            assert!(m.answers.is_empty());
            let soa = m
                .authorities
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(s) => Some((r.name.to_string(), s.clone())),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{q}: no SOA in {:?}", m.authorities));
            assert_eq!(soa.0, "cluster.local.");
            assert_eq!(soa.1.mname.to_string(), "ns.dns.cluster.local.");
            assert_eq!(soa.1.rname.to_string(), "hostmaster.cluster.local.");
            assert_eq!(soa.1.minimum, 5, "the negative TTL is the TTL");
        }
        // Names that exist without the type asked: NODATA (NOERROR, no
        // answer, the SOA).
        for (q, ty) in [
            ("web.shop.svc.cluster.local.", RecordType::AAAA),
            ("web.shop.svc.cluster.local.", RecordType::TXT),
            ("db.shop.svc.cluster.local.", RecordType::AAAA),
            ("shop.svc.cluster.local.", RecordType::A),
            ("default.svc.cluster.local.", RecordType::A),
            ("svc.cluster.local.", RecordType::A),
            ("shop.pod.cluster.local.", RecordType::A),
            ("10-244-3-3.shop.pod.cluster.local.", RecordType::AAAA),
            ("_tcp.web.shop.svc.cluster.local.", RecordType::SRV),
            ("cluster.local.", RecordType::A),
        ] {
            let m = ask(at, q, ty, t).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{q} {ty}");
            assert!(m.answers.is_empty(), "{q} {ty}: {:?}", m.answers);
            assert!(
                m.authorities
                    .iter()
                    .any(|r| r.record_type() == RecordType::SOA),
                "{q} {ty}"
            );
        }
        // The apex has its SOA and NS; the schema version is published.
        let m = ask(at, "cluster.local.", RecordType::SOA, t).await;
        assert_eq!(m.answers.len(), 1);
        let m = ask(at, "cluster.local.", RecordType::NS, t).await;
        assert_eq!(lines(&m), vec!["cluster.local. NS ns.dns.cluster.local."]);
        let m = ask(at, "dns-version.cluster.local.", RecordType::TXT, t).await;
        assert_eq!(lines(&m), vec!["dns-version.cluster.local. TXT 1.1.0"]);
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_match_case_insensitively_and_ttl_is_configurable() {
    let c = Cluster::new();
    c.apply(APP);
    let web_ip = c.cluster_ip("shop", "web").to_string();
    let s = c.serve(|cfg| cfg.ttl = 30).await;
    let m = ask(
        s.local_addr(),
        "WeB.ShOp.SVC.Cluster.LOCAL.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(addrs(&m), vec![web_ip]);
    assert_eq!(m.answers[0].ttl, 30);
    // The question is echoed as asked (0x20-randomising resolvers check it).
    assert_eq!(
        m.queries[0].name().to_string(),
        "WeB.ShOp.SVC.Cluster.LOCAL."
    );
    let m = ask(
        s.local_addr(),
        "nope.cluster.local.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    let soa = m.authorities.first().expect("SOA");
    assert_eq!(soa.ttl, 30);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_name_is_a_cname() {
    let c = Cluster::new();
    c.apply(APP);
    let web_ip = c.cluster_ip("shop", "web").to_string();
    let up = Upstream::start().await;
    let upstream = up.addr;
    let s = c.serve(|cfg| cfg.upstreams = vec![upstream]).await;
    let at = s.local_addr();
    for t in BOTH {
        // Outside the cluster: the CNAME, then the target as resolved upstream.
        let m = ask(at, "docs.shop.svc.cluster.local.", RecordType::A, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            lines(&m),
            vec![
                "docs.shop.svc.cluster.local. CNAME www.example.com.",
                "www.example.com. A 192.0.2.2",
            ]
        );
        let m = ask(at, "docs.shop.svc.cluster.local.", RecordType::CNAME, t).await;
        assert_eq!(
            lines(&m),
            vec!["docs.shop.svc.cluster.local. CNAME www.example.com."]
        );
        // Inside the cluster: followed locally.
        let m = ask(at, "alias.shop.svc.cluster.local.", RecordType::A, t).await;
        assert_eq!(
            lines(&m),
            vec![
                "alias.shop.svc.cluster.local. CNAME web.shop.svc.cluster.local.".to_string(),
                format!("web.shop.svc.cluster.local. A {web_ip}"),
            ]
        );
    }
    s.shutdown().await.unwrap();
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_domain() {
    let c = Cluster::new();
    c.apply(APP);
    let web_ip = c.cluster_ip("shop", "web").to_string();
    let s = c
        .serve(|cfg| {
            cfg.cluster_domain = aksnet_dns::names::cluster_domain("aks.example.").unwrap()
        })
        .await;
    let m = ask(
        s.local_addr(),
        "web.shop.svc.aks.example.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(addrs(&m), vec![web_ip]);
    // cluster.local is now just another name outside (no upstream: refused).
    let m = ask(
        s.local_addr(),
        "web.shop.svc.cluster.local.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    s.shutdown().await.unwrap();
}
