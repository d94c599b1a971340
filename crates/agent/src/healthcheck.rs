//! The `healthCheckNodePort` servers, as kube-proxy runs them: for every
//! Service with `externalTrafficPolicy: Local` that has a
//! `healthCheckNodePort` (type LoadBalancer; a NodePort Service given one),
//! an HTTP server on that port of the node's address answers any path
//! (the load balancer asks `/healthz`) with 200 when the node has at least
//! one ready local endpoint of the Service and 503 when it has none, and a
//! JSON body of kube-proxy's shape:
//!
//! ```text
//! {"service": {"namespace": "shop", "name": "web"}, "localEndpoints": 1, "serviceProxyHealthy": true}
//! ```
//!
//! What to serve is plain data ([`desired`], from the Services controller's
//! input); [`HealthServer`] keeps one listener per port equal to it. The
//! sockets are bound inside the managed namespace (`--netns`), as the
//! metrics listener is ([`crate::http::bind`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Router;

use crate::error::AgentError;
use crate::services::ServicesInput;

/// What one health check port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub namespace: String,
    pub name: String,
    /// Ready endpoints of the Service on this node (distinct addresses).
    pub local_endpoints: usize,
}

/// The health check ports this node serves, from the Services input: every
/// `externalTrafficPolicy: Local` Service with a `healthCheckNodePort`.
pub fn desired(input: &ServicesInput) -> BTreeMap<u16, Check> {
    let mut out = BTreeMap::new();
    for (svc, ports) in &input.services {
        if !svc.external_local() {
            continue;
        }
        let Some(port) = svc
            .spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let local: BTreeSet<Ipv4Addr> = ports
            .iter()
            .flat_map(|p| p.backends.iter())
            .filter(|b| b.ready && b.node.as_deref() == Some(input.node.as_str()))
            .map(|b| b.ip)
            .collect();
        out.insert(
            port,
            Check {
                namespace: svc.metadata.namespace.clone().unwrap_or_default(),
                name: svc.metadata.name.clone(),
                local_endpoints: local.len(),
            },
        );
    }
    out
}

/// The answer of one health check port: status and body.
pub fn answer(c: &Check) -> (StatusCode, String) {
    let body = serde_json::json!({
        "service": {"namespace": c.namespace, "name": c.name},
        "localEndpoints": c.local_endpoints,
        "serviceProxyHealthy": true,
    });
    let code = if c.local_endpoints > 0 {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{body}\n"))
}

type Shared = Arc<RwLock<BTreeMap<u16, Check>>>;

struct Listener {
    stop: tokio::sync::oneshot::Sender<()>,
}

/// One listener per health check port on the node's address, kept equal
/// to what [`HealthServer::set`] was last given.
pub struct HealthServer {
    addr: IpAddr,
    netns: Option<PathBuf>,
    runtime: tokio::runtime::Runtime,
    checks: Shared,
    listeners: BTreeMap<u16, Listener>,
}

impl HealthServer {
    /// Serves on `addr` (the node's address) inside `netns`.
    pub fn new(addr: IpAddr, netns: Option<PathBuf>) -> Result<Self, AgentError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("healthcheck")
            .enable_io()
            .build()
            .map_err(|e| AgentError::Http(format!("health check runtime: {e}")))?;
        Ok(Self {
            addr,
            netns,
            runtime,
            checks: Arc::default(),
            listeners: BTreeMap::new(),
        })
    }

    /// The ports listening now.
    pub fn ports(&self) -> Vec<u16> {
        self.listeners.keys().copied().collect()
    }

    /// Serves `want`: new ports are bound, gone ones closed, the counts of
    /// the others updated in place. A port that cannot be bound is logged
    /// and tried again by the next call.
    pub fn set(&mut self, want: &BTreeMap<u16, Check>) {
        if let Ok(mut c) = self.checks.write() {
            *c = want.clone();
        }
        let gone: Vec<u16> = self
            .listeners
            .keys()
            .filter(|p| !want.contains_key(p))
            .copied()
            .collect();
        for p in gone {
            if let Some(l) = self.listeners.remove(&p) {
                let _ = l.stop.send(());
                tracing::info!(port = p, "health check port closed");
            }
        }
        for (port, check) in want {
            if self.listeners.contains_key(port) {
                continue;
            }
            match self.listen(*port) {
                Ok(l) => {
                    tracing::info!(
                        port,
                        service = %format!("{}/{}", check.namespace, check.name),
                        "serving the health check node port"
                    );
                    self.listeners.insert(*port, l);
                }
                Err(e) => tracing::warn!(port, "health check node port: {e}"),
            }
        }
    }

    fn listen(&self, port: u16) -> Result<Listener, AgentError> {
        let addr = SocketAddr::new(self.addr, port);
        let std_listener = crate::http::bind(addr, self.netns.as_deref())?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| AgentError::Http(format!("health check {addr}: {e}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let checks = Arc::clone(&self.checks);
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(std_listener)
            .map_err(|e| AgentError::Http(format!("health check {addr}: {e}")))?;
        self.runtime.spawn(async move {
            let app = router(port, checks);
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                tracing::warn!(%addr, error = %e, "health check server stopped");
            }
        });
        Ok(Listener { stop })
    }
}

fn router(port: u16, checks: Shared) -> Router {
    Router::new()
        .fallback(move |State(c): State<Shared>| async move { respond(port, &c) })
        .with_state(checks)
}

fn respond(port: u16, checks: &Shared) -> impl IntoResponse {
    let check = checks.read().ok().and_then(|c| c.get(&port).cloned());
    let (code, body) = match check {
        Some(c) => answer(&c),
        // Between a Service's deletion and the listener's close.
        None => (StatusCode::SERVICE_UNAVAILABLE, "{}\n".to_string()),
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::PortInput;
    use aksnet_core::k8s::endpoints::Backend;
    use aksnet_core::k8s::service::Service;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn svc(etp: &str, hc: Option<i64>) -> Service {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.10",
                     "externalTrafficPolicy": etp, "healthCheckNodePort": hc,
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}
        }))
        .unwrap()
    }

    fn backend(ip: &str, node: &str, ready: bool) -> Backend {
        Backend {
            ip: ip.parse().unwrap(),
            port: 80,
            node: Some(node.into()),
            ready,
            serving: ready,
            terminating: false,
        }
    }

    fn input(services: Vec<(Service, Vec<Backend>)>) -> ServicesInput {
        ServicesInput {
            node: "node-1".into(),
            node_ips: vec!["127.0.0.1".parse().unwrap()],
            cluster_cidrs: vec![],
            services: services
                .into_iter()
                .map(|(s, b)| {
                    let port = s.spec.ports[0].clone();
                    (
                        s,
                        vec![PortInput {
                            namespace: "shop".into(),
                            name: "web".into(),
                            port,
                            backends: b,
                        }],
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn only_local_policy_services_with_a_port_count_their_ready_local_endpoints() {
        let d = desired(&input(vec![(
            svc("Local", Some(31000)),
            vec![
                backend("10.244.0.2", "node-1", true),
                backend("10.244.0.3", "node-1", false),
                backend("10.244.1.2", "node-2", true),
            ],
        )]));
        assert_eq!(d.len(), 1);
        assert_eq!(d[&31000].local_endpoints, 1);
        assert!(desired(&input(vec![(svc("Cluster", None), vec![])])).is_empty());
        let none = desired(&input(vec![(
            svc("Local", Some(31000)),
            vec![backend("10.244.1.2", "node-2", true)],
        )]));
        let (code, body) = answer(&none[&31000]);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["service"]["namespace"], "shop");
        assert_eq!(v["service"]["name"], "web");
        assert_eq!(v["localEndpoints"], 0);
        assert_eq!(answer(&d[&31000]).0, StatusCode::OK);
    }

    fn get(port: u16, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, out)
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn the_server_follows_the_counts_and_closes_gone_ports() {
        let port = free_port();
        let mut server = HealthServer::new("127.0.0.1".parse().unwrap(), None).unwrap();
        let check = |n| Check {
            namespace: "shop".into(),
            name: "web".into(),
            local_endpoints: n,
        };
        server.set(&BTreeMap::from([(port, check(2))]));
        assert_eq!(server.ports(), vec![port]);
        let (code, body) = get(port, "/healthz");
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(r#""localEndpoints":2"#), "{body}");
        assert!(body.contains("application/json"), "{body}");
        server.set(&BTreeMap::from([(port, check(0))]));
        let (code, body) = get(port, "/healthz");
        assert_eq!(code, 503, "{body}");
        server.set(&BTreeMap::new());
        assert!(server.ports().is_empty());
        // The listener goes (its task ends once it sees the stop).
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(start.elapsed() < Duration::from_secs(5), "port still open");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
