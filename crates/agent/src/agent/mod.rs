//! The node agent: joins the cluster (a node record on a lease it keeps
//! alive), claims the node's addresses, writes the conflist, and keeps the
//! managed namespace's routes and SNAT equal to the store.

pub mod controllers;
mod dataplane;
mod reconcile;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_cluster::{read_network, Problem};
use aksnet_core::cidr;
use aksnet_core::cluster::{self, ClusterNetwork, NodeRecord, RouteMode};
use aksnet_core::spec::NetworkPlugin;
use aksnet_store::{
    Compare, CompareOp, KeepAlive, LeaseId, Store, StoreError, Txn, TxnOp, Watcher,
};

use crate::conflist::PodRanges;
use crate::error::AgentError;
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use controllers::{Controller, ControllerRun};

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
    /// Published in the node record for `aksnet status`.
    pub info: Option<cluster::AgentInfo>,
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
            info: None,
        }
    }
}

pub struct Agent {
    cfg: AgentConfig,
    store: Arc<dyn Store>,
    kernel: Box<dyn Kernel>,
    net: ClusterNetwork,
    lease: LeaseId,
    /// The keep-alive found the lease gone: register again.
    lease_lost: bool,
    /// Mod revision of our record as we last wrote it.
    record_rev: Option<i64>,
    record: NodeRecord,
    /// Run in order by every reconcile ([`controllers::all`]).
    controllers: Vec<Box<dyn Controller>>,
    /// Each controller's last run, by name (for metrics).
    stats: BTreeMap<&'static str, ControllerRun>,
    /// The store's unreadable records as last logged.
    problems: Vec<Problem>,
    /// Store revision the last reconcile read.
    seen_revision: i64,
    /// Last time the lease was renewed from the reconcile path.
    last_renewal: Instant,
    /// The SNAT controller's table (what it applied last).
    snat: aksnet_nft::Owner,
    /// When the SNAT table was last read back from the kernel.
    snat_checked: Option<Instant>,
    /// The node's pod ranges as the last pass found them (for metrics).
    ranges: Option<PodRanges>,
    /// Fed after every pass of [`Agent::run`] when set.
    metrics: Option<Arc<Metrics>>,
    /// The `healthCheckNodePort` servers, kept by the Services controller
    /// when set.
    health: Option<crate::healthcheck::HealthServer>,
}

impl Agent {
    /// Reads the cluster network, checks the node fits it, and registers
    /// the node. No kernel state is touched yet.
    pub fn start(
        cfg: AgentConfig,
        store: Arc<dyn Store>,
        kernel: Box<dyn Kernel>,
    ) -> Result<Self, AgentError> {
        let net = read_network(store.as_ref())?;
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
        let lease = grant(store.as_ref(), cfg.lease_ttl)?;
        let mut record = NodeRecord::new(&cfg.node, cfg.node_ip, cfg.routes);
        record.agent = cfg.info.clone();
        let mut agent = Self {
            cfg,
            store,
            kernel,
            net,
            lease,
            lease_lost: false,
            record_rev: None,
            record,
            controllers: controllers::all(),
            stats: BTreeMap::new(),
            problems: Vec::new(),
            seen_revision: 0,
            last_renewal: Instant::now(),
            snat: aksnet_nft::Owner::new(crate::snat::table_id()),
            snat_checked: None,
            ranges: None,
            metrics: None,
            health: None,
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

    /// Each controller's last run (duration, objects programmed), by name:
    /// what metrics export.
    pub fn controller_stats(&self) -> &BTreeMap<&'static str, ControllerRun> {
        &self.stats
    }

    /// The node's pod ranges as the last reconcile found them.
    pub fn pod_ranges(&self) -> Option<&PodRanges> {
        self.ranges.as_ref()
    }

    /// Metrics that every pass of [`Agent::run`] feeds.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// Serves the `healthCheckNodePort`s of the node's Services (kept by
    /// every pass's Services controller).
    pub fn set_health_server(&mut self, server: crate::healthcheck::HealthServer) {
        self.health = Some(server);
    }

    /// Runs one reconcile and records it in the metrics, if any.
    pub fn reconcile_observed(&mut self) -> Result<Report, AgentError> {
        let start = Instant::now();
        let result = self.reconcile();
        if let Some(m) = &self.metrics {
            m.observe_pass(
                start.elapsed(),
                result.as_ref().map(|r| r.controllers.as_slice()),
                self.ranges.as_ref(),
                &self.cfg.ipam_data_dir,
            );
        }
        result
    }

    /// Writes the node record on our lease, keeping what a previous run of
    /// this node published (its block, pool) until the reconcile confirms it.
    fn register(&mut self) -> Result<(), AgentError> {
        let key = cluster::node_key(&self.cfg.node);
        if let Some(old) = self.store.get(&key)? {
            if let Ok(prev) = serde_json::from_slice::<NodeRecord>(&old.value) {
                if self.record.block.is_none() {
                    self.record.block = prev.block;
                }
            }
        }
        let value = encode(&self.record)?;
        self.record_rev = Some(self.store.put(&key, &value, Some(self.lease))?);
        tracing::info!(node = %self.cfg.node, lease = %self.lease, "registered");
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
            Some(r) => Compare::mod_revision(key.clone(), CompareOp::Equal, r),
            None => Compare::absent(key.clone()),
        };
        let put = self.store.txn(
            Txn::new()
                .when([cmp])
                .and_then([TxnOp::put_with_lease(
                    key.clone(),
                    value.clone(),
                    Some(self.lease),
                )])
                .or_else([TxnOp::get(key.clone())]),
        )?;
        let revision = if put.succeeded {
            put.revision
        } else if put.get(0).is_none() {
            return Err(AgentError::Removed(self.cfg.node.clone()));
        } else {
            self.store.put(&key, &value, Some(self.lease))?
        };
        self.record = new;
        self.record_rev = Some(revision);
        Ok(())
    }

    /// The keeper thread renews the lease; a reconcile renews it itself only
    /// when it has not been renewed for a third of its TTL (a caller driving
    /// `reconcile` without `run`), or when the keeper found it gone.
    fn renew_lease_if_lost(&mut self) -> Result<(), AgentError> {
        let lost = std::mem::take(&mut self.lease_lost);
        let due = self.last_renewal.elapsed() >= self.cfg.lease_ttl / 3;
        let gone = lost
            || (due
                && match self.store.lease_keep_alive(self.lease) {
                    Ok(_) => false,
                    Err(StoreError::LeaseNotFound(_)) => true,
                    Err(e) => return Err(e.into()),
                });
        if due {
            self.last_renewal = Instant::now();
        }
        if gone {
            tracing::warn!(node = %self.cfg.node, "lease lost; registering again");
            self.lease = grant(self.store.as_ref(), self.cfg.lease_ttl)?;
            self.record_rev = None;
            self.register()?;
        }
        Ok(())
    }

    /// Reconciles until `stop` is set: on every store change under
    /// `/aksnet/`, and at least every `resync`. A keep-alive thread renews
    /// the node's lease every third of its TTL.
    pub fn run(mut self, stop: &AtomicBool) -> Result<(), AgentError> {
        let period = self.cfg.lease_ttl / 3;
        let mut keeper = KeepAlive::start(Arc::clone(&self.store), self.lease, period);
        let mut watch: Option<Watcher> = None;
        let mut result = Ok(());
        let mut backoff = Duration::from_millis(200);
        while !stop.load(Ordering::SeqCst) {
            self.check_keeper(&keeper);
            match self.reconcile_observed() {
                Ok(report) => {
                    backoff = Duration::from_millis(200);
                    if keeper.lease() != self.lease {
                        keeper = KeepAlive::start(Arc::clone(&self.store), self.lease, period);
                    }
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
                if self.wait_change(&mut watch, slice) || self.check_keeper(&keeper) {
                    break;
                }
            }
        }
        result
    }

    /// Waits up to `timeout` for a store change under `/aksnet/` past what
    /// the last reconcile read, on one watch kept open across waits.
    fn wait_change(&self, watch: &mut Option<Watcher>, timeout: Duration) -> bool {
        let w = match watch {
            Some(w) => w,
            None => match self.store.watch(cluster::PREFIX, self.seen_revision + 1) {
                Ok(w) => watch.insert(w),
                Err(e) => {
                    tracing::warn!(error = %e, "store watch failed");
                    std::thread::sleep(timeout);
                    return false;
                }
            },
        };
        match w.wait_past(self.seen_revision, timeout) {
            Ok(changed) => changed,
            Err(e) => {
                // Compacted or closed: watch afresh, and re-read everything now.
                tracing::debug!(error = %e, "store watch ended; re-listing");
                *watch = None;
                true
            }
        }
    }

    /// Notes a lease the keep-alive found gone (the next reconcile registers
    /// again); returns whether it did.
    fn check_keeper(&mut self, keeper: &KeepAlive) -> bool {
        match keeper.lost() {
            Some(e) if keeper.lease() == self.lease => {
                tracing::warn!(node = %self.cfg.node, error = %e, "lease keep-alive stopped");
                self.lease_lost = true;
                true
            }
            _ => false,
        }
    }
}

/// Grants a lease of `ttl` (whole seconds, at least one).
fn grant(store: &dyn Store, ttl: Duration) -> Result<LeaseId, AgentError> {
    let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
    Ok(store.lease_grant(secs)?.id)
}

fn encode(r: &NodeRecord) -> Result<Vec<u8>, AgentError> {
    serde_json::to_vec(r).map_err(|source| AgentError::Encode {
        key: cluster::node_key(&r.name),
        source,
    })
}

pub fn route_mode_name(m: RouteMode) -> &'static str {
    match m {
        RouteMode::Fabric => "fabric",
        RouteMode::HostGw => "host-gw",
        RouteMode::Vxlan => "vxlan",
    }
}
