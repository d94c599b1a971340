//! The node agent: joins the cluster (a node record on a lease it keeps
//! alive), claims the node's addresses, writes the conflist, and keeps the
//! managed namespace's routes and SNAT equal to the store.

mod dataplane;
mod reconcile;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_core::cidr;
use aksnet_core::cluster::{self, ClusterNetwork, NodeRecord, RouteMode};
use aksnet_core::spec::NetworkPlugin;

use crate::error::AgentError;
use crate::kernel::Kernel;
use crate::kv::{Compare, Kv, LeaseId, Op};
use crate::view::read_network;

pub use reconcile::Report;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: String,
    pub node_ip: Ipv4Addr,
    pub netns: Option<PathBuf>,
    pub cni_conf_dir: PathBuf,
    pub ipam_data_dir: PathBuf,
    pub routes: RouteMode,
    /// Max pods for this node; the cluster's largest pool setting if unset.
    pub max_pods: Option<u32>,
    /// Pod MTU; the node link's MTU (less VXLAN's overhead) if unset.
    pub mtu: Option<u32>,
    pub lease_ttl: Duration,
    /// Longest wait between two reconciles when nothing changes.
    pub resync: Duration,
    /// How long an address leaves the conflist before its claim is given
    /// back (an ADD that read the old conflist has finished by then).
    pub release_grace: Duration,
}

impl AgentConfig {
    pub fn new(node: &str, node_ip: Ipv4Addr) -> Self {
        Self {
            node: node.to_string(),
            node_ip,
            netns: None,
            cni_conf_dir: "/etc/cni/net.d".into(),
            ipam_data_dir: "/var/lib/cni/networks".into(),
            routes: RouteMode::Fabric,
            max_pods: None,
            mtu: None,
            lease_ttl: Duration::from_secs(15),
            resync: Duration::from_secs(5),
            release_grace: Duration::from_secs(3),
        }
    }
}

pub struct Agent {
    cfg: AgentConfig,
    kv: Arc<dyn Kv>,
    kernel: Box<dyn Kernel>,
    net: ClusterNetwork,
    lease: LeaseId,
    lease_lost: Arc<AtomicBool>,
    /// Mod revision of our record as we last wrote it.
    record_rev: Option<i64>,
    record: NodeRecord,
    /// Dynamic pool: addresses out of the conflist, waiting to be released.
    pending_release: BTreeMap<Ipv4Addr, Instant>,
    /// Store revision the last reconcile read.
    seen_revision: i64,
    /// Last time the lease was renewed from the reconcile path.
    last_renewal: Instant,
    /// SNAT digest last found (or put) in the kernel, and when.
    snat_verified: Option<(String, Instant)>,
    /// When IPv4 forwarding was last found on.
    forward_verified: Option<Instant>,
}

impl Agent {
    /// Reads the cluster network, checks the node fits it, and registers
    /// the node. No kernel state is touched yet.
    pub fn start(
        cfg: AgentConfig,
        kv: Arc<dyn Kv>,
        kernel: Box<dyn Kernel>,
    ) -> Result<Self, AgentError> {
        let net = read_network(kv.as_ref())?;
        if !cidr::contains_addr(&net.subnet_cidr, cfg.node_ip) {
            return Err(AgentError::NodeIpOutsideSubnet {
                ip: cfg.node_ip,
                subnet: net.subnet_cidr.trunc(),
            });
        }
        if net.network_plugin == NetworkPlugin::Azure && cfg.routes != RouteMode::Fabric {
            return Err(AgentError::RoutesUnsupported {
                mode: route_mode_name(cfg.routes).into(),
                plugin: net.network_plugin.to_string(),
            });
        }
        let lease = kv.grant(cfg.lease_ttl)?;
        let record = NodeRecord {
            name: cfg.node.clone(),
            ip: cfg.node_ip,
            routes: cfg.routes,
            block: None,
            pool: vec![],
            pool_used: None,
            vtep_mac: None,
            conditions: vec![],
        };
        let mut agent = Self {
            cfg,
            kv,
            kernel,
            net,
            lease,
            lease_lost: Arc::new(AtomicBool::new(false)),
            record_rev: None,
            record,
            pending_release: BTreeMap::new(),
            seen_revision: 0,
            last_renewal: Instant::now(),
            snat_verified: None,
            forward_verified: None,
        };
        agent.register()?;
        Ok(agent)
    }

    pub fn network(&self) -> &ClusterNetwork {
        &self.net
    }

    pub fn record(&self) -> &NodeRecord {
        &self.record
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    /// Writes the node record on our lease, keeping what a previous run of
    /// this node published (its block, pool) until the reconcile confirms it.
    fn register(&mut self) -> Result<(), AgentError> {
        let key = cluster::node_key(&self.cfg.node);
        if let Some(old) = self.kv.get(&key)? {
            if let Ok(prev) = serde_json::from_slice::<NodeRecord>(&old.value) {
                if self.record.block.is_none() {
                    self.record.block = prev.block;
                }
            }
        }
        let value = encode(&self.record)?;
        self.kv.txn(
            &[],
            &[Op::Put {
                key: key.clone(),
                value,
                lease: Some(self.lease),
            }],
        )?;
        self.record_rev = self.kv.get(&key)?.map(|e| e.mod_revision);
        tracing::info!(node = %self.cfg.node, lease = self.lease, "registered");
        Ok(())
    }

    /// Publishes the record if it changed. A record someone deleted while
    /// our lease lives means the node was removed: the agent stops.
    fn publish(&mut self, new: NodeRecord) -> Result<(), AgentError> {
        if new == self.record && self.record_rev.is_some() {
            return Ok(());
        }
        let key = cluster::node_key(&self.cfg.node);
        let value = encode(&new)?;
        let cmp = match self.record_rev {
            Some(r) => Compare::ModRevision(key.clone(), r),
            None => Compare::Absent(key.clone()),
        };
        let op = Op::Put {
            key: key.clone(),
            value,
            lease: Some(self.lease),
        };
        if !self.kv.txn(&[cmp], std::slice::from_ref(&op))? {
            match self.kv.get(&key)? {
                None => return Err(AgentError::Removed(self.cfg.node.clone())),
                Some(_) => {
                    self.kv.txn(&[], &[op])?;
                }
            }
        }
        self.record = new;
        self.record_rev = self.kv.get(&key)?.map(|e| e.mod_revision);
        Ok(())
    }

    /// The keeper thread renews the lease; a reconcile renews it itself only
    /// when it has not been renewed for a third of its TTL (a caller driving
    /// `reconcile` without `run`), or when the keeper found it gone.
    fn renew_lease_if_lost(&mut self) -> Result<(), AgentError> {
        let lost = self.lease_lost.swap(false, Ordering::SeqCst);
        let due = self.last_renewal.elapsed() >= self.cfg.lease_ttl / 3;
        let gone = lost || (due && !self.kv.keep_alive(self.lease)?);
        if due {
            self.last_renewal = Instant::now();
        }
        if gone {
            tracing::warn!(node = %self.cfg.node, "lease lost; registering again");
            self.lease = self.kv.grant(self.cfg.lease_ttl)?;
            self.record_rev = None;
            self.register()?;
        }
        Ok(())
    }

    /// Reconciles until `stop` is set: on every store change under
    /// `/aksnet/`, and at least every `resync`. A lease keeper thread
    /// renews the node's lease every third of its TTL.
    pub fn run(mut self, stop: &AtomicBool) -> Result<(), AgentError> {
        let keeper = {
            let kv = Arc::clone(&self.kv);
            let lost = Arc::clone(&self.lease_lost);
            let period = self.cfg.lease_ttl / 3;
            let lease = Arc::new(std::sync::atomic::AtomicI64::new(self.lease));
            let lease_for_thread = Arc::clone(&lease);
            let done = Arc::new(AtomicBool::new(false));
            let done_t = Arc::clone(&done);
            let handle = std::thread::spawn(move || {
                while !done_t.load(Ordering::SeqCst) {
                    let id = lease_for_thread.load(Ordering::SeqCst);
                    match kv.keep_alive(id) {
                        Ok(true) => {}
                        Ok(false) => lost.store(true, Ordering::SeqCst),
                        Err(e) => tracing::warn!(error = %e, "lease keep-alive failed; retrying"),
                    }
                    let until = Instant::now() + period;
                    while Instant::now() < until && !done_t.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
            (handle, lease, done)
        };
        let mut result = Ok(());
        let mut backoff = Duration::from_millis(200);
        while !stop.load(Ordering::SeqCst) {
            match self.reconcile() {
                Ok(report) => {
                    backoff = Duration::from_millis(200);
                    keeper.1.store(self.lease, Ordering::SeqCst);
                    if report.changed() {
                        tracing::info!(node = %self.cfg.node, ?report, "reconciled");
                    }
                }
                Err(AgentError::Removed(n)) => {
                    result = Err(AgentError::Removed(n));
                    break;
                }
                Err(e) => {
                    tracing::warn!(node = %self.cfg.node, error = %e, "reconcile failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            // Wake on any cluster change, or after `resync`, in slices so a
            // stop request is seen quickly.
            let deadline = Instant::now() + self.cfg.resync;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let slice = (deadline - Instant::now()).min(Duration::from_millis(500));
                match self.kv.wait(cluster::PREFIX, self.seen_revision, slice) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "store watch failed");
                        std::thread::sleep(slice);
                    }
                }
                if self.lease_lost.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        keeper.2.store(true, Ordering::SeqCst);
        let _ = keeper.0.join();
        result
    }
}

fn encode(r: &NodeRecord) -> Result<Vec<u8>, AgentError> {
    serde_json::to_vec(r).map_err(|e| AgentError::BadValue {
        key: cluster::node_key(&r.name),
        reason: e.to_string(),
    })
}

pub fn route_mode_name(m: RouteMode) -> &'static str {
    match m {
        RouteMode::Fabric => "fabric",
        RouteMode::HostGw => "host-gw",
        RouteMode::Vxlan => "vxlan",
    }
}
