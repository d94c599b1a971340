//! DNS queries as a client sends them to `aksnet dns`: arbitrary bytes as
//! one UDP datagram to a live server on loopback that serves a small
//! cluster (ClusterIP, headless and ExternalName Services, pods), then a
//! real query from the same socket. The server must answer that query
//! correctly after every input, and everything it sends back must decode
//! as a response to the datagram it answers.

use std::net::{SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aksnet_core::cluster::NETWORK_KEY;
use aksnet_core::k8s::apply::{plan_apply, ApplyContext, Input};
use aksnet_core::k8s::documents::{self, Parsed};
use aksnet_core::k8s::K8sState;
use aksnet_core::planner;
use aksnet_core::spec::SpecInput;
use aksnet_dns::client::query_message;
use aksnet_dns::{DnsConfig, DnsServer};
use aksnet_store::{Txn, TxnOp};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

const CLUSTER: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: docs, namespace: shop}
spec: {type: ExternalName, externalName: www.example.com}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.0.7}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {hostname: db-0, subdomain: db, containers: [{name: pg, image: postgres}]}
status: {podIP: 10.244.1.9}
";

struct Live {
    addr: SocketAddr,
    // Kept for the process's life: the server's threads run on it.
    _rt: tokio::runtime::Runtime,
    _server: DnsServer,
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// The cluster's objects written to `store` as `aksnet apply` plans them.
fn fill(store: &dyn aksnet_store::Store) {
    let net = planner::plan_input(&SpecInput::default())
        .expect("the default design plans")
        .network;
    store
        .put(
            NETWORK_KEY,
            &serde_json::to_vec(&net).expect("network encodes"),
            None,
        )
        .expect("write the network");
    let inputs: Vec<Input> = documents::parse("cluster.yaml", CLUSTER)
        .expect("the cluster parses")
        .into_iter()
        .filter_map(|d| match documents::read(d).expect("the cluster reads") {
            Parsed::Object { object, source } => Some(Input {
                object: *object,
                source,
            }),
            Parsed::Ignored(_) => None,
        })
        .collect();
    let ctx = ApplyContext {
        now: "2026-01-01T00:00:00Z".into(),
        seed: 7,
    };
    let plan = plan_apply(&K8sState::default(), &net, &ctx, inputs).expect("the cluster applies");
    let ops: Vec<TxnOp> = plan
        .writes
        .iter()
        .map(|w| match &w.value {
            Some(v) => TxnOp::put(w.key.clone(), v.clone()),
            None => TxnOp::delete(w.key.clone()),
        })
        .collect();
    assert!(
        store
            .txn(Txn::new().and_then(ops))
            .expect("write")
            .succeeded
    );
}

fn live() -> &'static Live {
    LIVE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::Builder::new()
            .prefix("aksnet-fuzz-dns-")
            .tempdir()
            .expect("a temporary directory");
        let store = aksnet_store::open(&format!(
            "sqlite:{}",
            dir.path().join("cluster.db").display()
        ))
        .expect("a SQLite store");
        fill(&*store);
        let mut cfg = DnsConfig::new(
            "127.0.0.1:0".parse().expect("an address"),
            aksnet_dns::names::cluster_domain("cluster.local").expect("a domain"),
        );
        cfg.udp_sockets = 1;
        let server = {
            let _enter = rt.enter();
            DnsServer::start(store.clone(), &cfg).expect("the server starts")
        };
        let rev = store.revision().expect("a revision");
        assert!(
            rt.block_on(server.wait_revision(rev, Duration::from_secs(10))),
            "the server did not read the store"
        );
        // The store's one connection stays open on the unlinked files, so
        // nothing is left on disk however the fuzzer exits.
        drop(dir);
        Live {
            addr: server.local_addr(),
            _rt: rt,
            _server: server,
        }
    })
}

fn probe(id: u16) -> Vec<u8> {
    let name = Name::from_ascii("web.shop.svc.cluster.local.").expect("a name");
    let mut m = query_message(&name, RecordType::A, None);
    m.metadata.id = id;
    m.to_vec().expect("the probe encodes")
}

/// Input: the datagram.
pub fn query(data: &[u8]) {
    let live = live();
    let s = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
    s.connect(live.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a timeout");
    let _ = s.send(data);
    // An ID the datagram does not carry, so the two replies are told apart.
    let probe_id = match data {
        [a, b, ..] if u16::from_be_bytes([*a, *b]) == 0xBEEF => 0xBEF0,
        _ => 0xBEEF,
    };
    s.send(&probe(probe_id)).expect("send the probe");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 65535];
    loop {
        assert!(
            Instant::now() < deadline,
            "no answer to a real query after this datagram"
        );
        let Ok(n) = s.recv(&mut buf) else { continue };
        let reply = Message::from_vec(&buf[..n])
            .unwrap_or_else(|e| panic!("the server sent what does not decode: {e}"));
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        if reply.metadata.id == probe_id {
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert_eq!(reply.answers.len(), 1, "{reply:?}");
            return;
        }
        // The datagram's own reply answers its ID.
        if data.len() >= 2 {
            assert_eq!(
                reply.metadata.id,
                u16::from_be_bytes([data[0], data[1]]),
                "{reply:?}"
            );
        }
    }
}
