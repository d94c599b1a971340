//! What the DNS tests share: a cluster store in a temporary SQLite file with
//! objects applied through the k8s code (`aksnet_core::k8s`: the same
//! parse, validation, defaults and ClusterIP allocation `aksnet apply`
//! uses), the server under test on loopback, a client, and a fake
//! upstream: a second hickory-server on loopback answering a small zone.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aksnet_core::cluster::NETWORK_KEY;
use aksnet_core::k8s::apply::{plan_apply, ApplyContext, Input};
use aksnet_core::k8s::delete::plan_delete;
use aksnet_core::k8s::documents::{parse, read, Parsed};
use aksnet_core::k8s::store::K8S_PREFIX;
use aksnet_core::k8s::{K8sState, Kind, ObjectId};
use aksnet_core::planner;
use aksnet_core::spec::{ClusterNetwork, SpecInput};
use aksnet_dns::client::{exchange, query_message, Transport};
use aksnet_dns::{DnsConfig, DnsServer};
use aksnet_store::{Store, Txn, TxnOp};
use hickory_proto::op::{Edns, Header, HeaderCounts, Message, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;

pub struct Cluster {
    _dir: tempfile::TempDir,
    pub url: String,
    pub store: Arc<dyn Store>,
    net: ClusterNetwork,
}

impl Cluster {
    /// A store with the default cluster network (service CIDR 10.0.0.0/16).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ak4-dns-")
            .tempdir()
            .unwrap();
        let url = format!("sqlite:{}", dir.path().join("cluster.db").display());
        let store = aksnet_store::open(&url).unwrap();
        let net = planner::plan_input(&SpecInput::default()).unwrap().network;
        store
            .put(NETWORK_KEY, &serde_json::to_vec(&net).unwrap(), None)
            .unwrap();
        Cluster {
            _dir: dir,
            url,
            store,
            net,
        }
    }

    fn state(&self) -> K8sState {
        let mut st = K8sState::default();
        for kv in self.store.range(K8S_PREFIX).unwrap().kvs {
            st.insert(&kv.key, &kv.value, kv.mod_revision);
        }
        st
    }

    fn write(&self, writes: &[aksnet_core::k8s::apply::KeyWrite]) -> i64 {
        let ops: Vec<TxnOp> = writes
            .iter()
            .map(|w| match &w.value {
                Some(v) => TxnOp::put(w.key.clone(), v.clone()),
                None => TxnOp::delete(w.key.clone()),
            })
            .collect();
        let r = self.store.txn(Txn::new().and_then(ops)).unwrap();
        assert!(r.succeeded);
        r.revision
    }

    /// Applies manifests as `aksnet apply` plans them; the new revision.
    pub fn apply(&self, yaml: &str) -> i64 {
        let inputs: Vec<Input> = parse("test.yaml", yaml)
            .unwrap()
            .into_iter()
            .filter_map(|d| match read(d).unwrap() {
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
        let plan = plan_apply(&self.state(), &self.net, &ctx, inputs)
            .unwrap_or_else(|e| panic!("apply rejected: {e:?}"));
        self.write(&plan.writes)
    }

    /// Deletes one object as `aksnet delete` plans it.
    pub fn delete(&self, kind: Kind, ns: &str, name: &str) -> i64 {
        let plan = plan_delete(&self.state(), &[ObjectId::new(kind, ns, name)]).unwrap();
        assert!(plan.not_found.is_empty(), "{:?}", plan.not_found);
        self.write(&plan.writes)
    }

    /// The ClusterIP the store gave a Service.
    pub fn cluster_ip(&self, ns: &str, name: &str) -> Ipv4Addr {
        let kv = self
            .store
            .get(&format!("/aksnet/k8s/services/{ns}/{name}"))
            .unwrap()
            .expect("service stored");
        let v: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        v["spec"]["clusterIP"].as_str().unwrap().parse().unwrap()
    }

    /// Starts the server on a free loopback port and waits for its first read.
    pub async fn serve(&self, tweak: impl FnOnce(&mut DnsConfig)) -> DnsServer {
        let mut cfg = DnsConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            aksnet_dns::names::cluster_domain("cluster.local").unwrap(),
        );
        cfg.udp_sockets = 2;
        tweak(&mut cfg);
        let server = DnsServer::start(self.store.clone(), &cfg).unwrap();
        let rev = self.store.revision().unwrap();
        assert!(
            server.wait_revision(rev, Duration::from_secs(10)).await,
            "the server did not read the store within 10 s"
        );
        server
    }
}

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// One question, with EDNS (payload 1232) unless `classic`.
pub async fn ask(server: SocketAddr, q: &str, rtype: RecordType, t: Transport) -> Message {
    let msg = query_message(&name(q), rtype, Some(1232));
    exchange(server, &msg, t, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{q} {rtype}: {e}"))
}

/// One question without EDNS (the 512-byte UDP limit).
pub async fn ask_classic(server: SocketAddr, q: &str, rtype: RecordType, t: Transport) -> Message {
    let msg = query_message(&name(q), rtype, None);
    exchange(server, &msg, t, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{q} {rtype}: {e}"))
}

/// The answer section's addresses, sorted.
pub fn addrs(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The answer section as `name TYPE data` lines, sorted.
pub fn lines(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    v.sort();
    v
}

/// A fake upstream: `example.com A 192.0.2.1`, `www.example.com A
/// 192.0.2.2`, `big.example.com` with 60 TXT records (too big for 512
/// bytes), NXDOMAIN for the rest; counts the queries it got.
pub struct Upstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    server: Server<FakeZone>,
}

struct FakeZone {
    records: HashMap<(LowerName, RecordType), Vec<Record>>,
    queries: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl RequestHandler for FakeZone {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut rh: R,
    ) -> ResponseInfo {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let q = request.request_info().unwrap().query;
        let key = (q.name().clone(), q.query_type());
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().max(512));
            r
        });
        let empty = vec![];
        let answers = match self.records.get(&key) {
            Some(r) => r,
            None => {
                meta.response_code = ResponseCode::NXDomain;
                &empty
            }
        };
        let mut b = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = &edns {
            b.edns(e);
        }
        let msg = b.build(meta, answers.iter(), [], [], []);
        match rh.send_response(msg).await {
            Ok(i) => i,
            Err(_) => ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            }),
        }
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        let mut records: HashMap<(LowerName, RecordType), Vec<Record>> = HashMap::new();
        let mut add = |n: &str, rdata: RData| {
            let nm = name(n);
            records
                .entry((LowerName::new(&nm), rdata.record_type()))
                .or_default()
                .push(Record::from_rdata(nm, 300, rdata));
        };
        add("example.com.", RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));
        add("www.example.com.", RData::A(A(Ipv4Addr::new(192, 0, 2, 2))));
        for i in 0..60 {
            add(
                "big.example.com.",
                RData::TXT(TXT::new(vec![format!("record {i:02} of a long answer")])),
            );
        }
        let queries = Arc::new(AtomicUsize::new(0));
        let mut server = Server::new(FakeZone {
            records,
            queries: queries.clone(),
        });
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 65535);
        Upstream {
            addr,
            queries,
            server,
        }
    }

    pub fn count(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    pub async fn stop(mut self) {
        self.server.shutdown_gracefully().await.ok();
    }
}

/// A namespace, a ClusterIP Service with two named ports, a headless
/// Service with two ready pods (one with hostname/subdomain) and one not
/// ready, a pod of neither, and an ExternalName.
pub const APP: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: docs, namespace: shop}
spec: {type: ExternalName, externalName: www.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: web.shop.svc.cluster.local}
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
spec: {hostname: db-0, subdomain: db, containers: [{name: db, image: postgres}]}
status: {podIP: 10.244.1.9}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
status: {podIP: 10.244.2.4}
---
apiVersion: v1
kind: Pod
metadata: {name: db-2, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
status:
  podIP: 10.244.2.5
  conditions: [{type: Ready, status: 'False'}]
---
apiVersion: v1
kind: Pod
metadata: {name: lone, namespace: shop}
spec: {containers: [{name: c, image: busybox}]}
status: {podIP: 10.244.3.3}
";
