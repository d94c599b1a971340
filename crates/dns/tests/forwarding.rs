//! Names outside the cluster domain go to the upstreams (a second
//! in-process server on loopback); UDP truncation is honoured for cluster
//! answers and forwarded ones alike, and TCP gets the whole answer.

mod common;

use std::net::SocketAddr;

use aksnet_dns::client::Transport;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// A loopback port nothing listens on (bound, then released).
fn dead_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_names_are_forwarded() {
    let c = Cluster::new();
    c.apply(APP);
    let up = Upstream::start().await;
    let upstream = up.addr;
    let s = c.serve(|cfg| cfg.upstreams = vec![upstream]).await;
    let at = s.local_addr();
    for t in [Transport::Udp, Transport::Tcp] {
        let before = up.count();
        let m = ask(at, "example.com.", RecordType::A, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&m), vec!["192.0.2.1"]);
        assert!(!m.metadata.authoritative, "a forwarded answer is not ours");
        assert!(m.metadata.recursion_available);
        assert_eq!(up.count(), before + 1, "the upstream was asked");
        // The upstream's NXDOMAIN is passed on.
        let m = ask(at, "missing.example.com.", RecordType::A, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // A cluster name never reaches the upstream, even a missing one.
        let before = up.count();
        let m = ask(at, "nope.shop.svc.cluster.local.", RecordType::A, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(up.count(), before);
        // A reverse name of an address the cluster does not know falls
        // through to the upstream (as CoreDNS's `fallthrough in-addr.arpa`).
        let before = up.count();
        let m = ask(at, "1.2.0.192.in-addr.arpa.", RecordType::PTR, t).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(up.count(), before + 1);
    }
    s.shutdown().await.unwrap();
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_skipped_and_none_left_is_servfail() {
    let c = Cluster::new();
    let up = Upstream::start().await;
    let upstream = up.addr;
    let dead = dead_port();
    let s = c.serve(|cfg| cfg.upstreams = vec![dead, upstream]).await;
    // Every query gets its answer whichever upstream the rotation starts at.
    for _ in 0..4 {
        let m = ask(
            s.local_addr(),
            "example.com.",
            RecordType::A,
            Transport::Udp,
        )
        .await;
        assert_eq!(addrs(&m), vec!["192.0.2.1"]);
    }
    s.shutdown().await.unwrap();
    up.stop().await;

    let s = c.serve(|cfg| cfg.upstreams = vec![dead]).await;
    let m = ask(
        s.local_addr(),
        "example.com.",
        RecordType::A,
        Transport::Tcp,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Cluster names are answered all the same.
    let m = ask(
        s.local_addr(),
        "dns-version.cluster.local.",
        RecordType::TXT,
        Transport::Udp,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstreams_outside_names_are_refused() {
    let c = Cluster::new();
    let s = c.serve(|_| {}).await;
    let m = ask(
        s.local_addr(),
        "example.com.",
        RecordType::A,
        Transport::Udp,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.recursion_available);
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let c = Cluster::new();
    // A headless Service with 80 ready pods: 80 A records, ~1.3 kB.
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: many}\nspec: {clusterIP: None, selector: {app: many}, ports: [{port: 80}]}\n",
    );
    for i in 0..80 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, labels: {{app: many}}}}\nspec: {{containers: [{{name: c, image: x}}]}}\nstatus: {{podIP: 10.244.9.{}}}\n",
            i + 1
        ));
    }
    c.apply(&yaml);
    let up = Upstream::start().await;
    let upstream = up.addr;
    let s = c.serve(|cfg| cfg.upstreams = vec![upstream]).await;
    let at = s.local_addr();
    let q = "many.default.svc.cluster.local.";

    // Classic UDP (no EDNS): at most 512 bytes, TC set.
    let m = ask_classic(at, q, RecordType::A, Transport::Udp).await;
    assert!(m.metadata.truncation, "512-byte answer must be truncated");
    assert!(m.to_vec().unwrap().len() <= 512);
    assert!(m.answers.len() < 80);
    // EDNS 1232: still too big for 80 records, truncated at 1232.
    let m = ask(at, q, RecordType::A, Transport::Udp).await;
    assert!(m.metadata.truncation);
    assert!(m.to_vec().unwrap().len() <= 1232);
    // TCP: everything.
    let m = ask(at, q, RecordType::A, Transport::Tcp).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 80);

    // A forwarded answer too big for UDP: passed on truncated, whole over TCP.
    let m = ask_classic(at, "big.example.com.", RecordType::TXT, Transport::Udp).await;
    assert!(m.metadata.truncation);
    assert!(m.to_vec().unwrap().len() <= 512);
    let m = ask(at, "big.example.com.", RecordType::TXT, Transport::Tcp).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 60);
    s.shutdown().await.unwrap();
    up.stop().await;
}
