//! Reads a managed cluster's network fields — from ARM `properties`, `az aks
//! show` output (whose spellings differ: `dnsServiceIp`, `vnetSubnetId`) or
//! an azure-service-operator `spec` — into a [`SpecInput`]. Field names are
//! matched case-insensitively, as ARM does.

use crate::finding::Finding;
use crate::spec::input::{InputError, Pending, PoolInput, Sourced, SpecInput, SubnetRef};

use super::lazy::{Fail, Lazy};

/// Where failed reads go: a field the planner needs becomes pending (an
/// error unless its flag is given).
pub struct Reader<'a> {
    pub input: &'a mut SpecInput,
}

impl Reader<'_> {
    /// A field with a flag is needed: its failure pends. One without a
    /// flag only feeds rules: its failure is a warning, and it reads unset.
    fn pend(&mut self, f: Fail, flag: Option<&'static str>) {
        if flag.is_none() {
            let msg = f.message(None);
            self.note(
                "field-not-evaluated",
                format!("{}: {msg}; read as unset", f.source),
            );
            return;
        }
        self.input.pending.push(Pending {
            covered_by: flag,
            error: InputError::new(f.source.clone(), f.message(flag)),
        });
    }

    fn note(&mut self, code: &str, msg: String) {
        self.input.notes.push(Finding::new(code, msg));
    }

    /// Text at `key` of `obj`; failures pend under `flag`.
    pub fn text(
        &mut self,
        obj: &Lazy,
        key: &str,
        flag: Option<&'static str>,
    ) -> Option<Sourced<String>> {
        match obj.get(key).and_then(|v| match v {
            Some(v) => v.text().map(|t| t.map(|t| (t, v.source()))),
            None => Ok(None),
        }) {
            Ok(Some((t, src))) if !t.trim().is_empty() => Some(Sourced::new(t, src)),
            Ok(_) => None,
            Err(f) => {
                self.pend(f, flag);
                None
            }
        }
    }

    pub fn count(
        &mut self,
        obj: &Lazy,
        key: &str,
        flag: Option<&'static str>,
    ) -> Option<Sourced<u32>> {
        match obj.get(key).and_then(|v| match v {
            Some(v) => v.count().map(|n| n.map(|n| (n, v.source()))),
            None => Ok(None),
        }) {
            Ok(Some((n, src))) => Some(Sourced::new(n, src)),
            Ok(None) => None,
            Err(f) => {
                self.pend(f, flag);
                None
            }
        }
    }

    fn flag_at(&mut self, obj: &Lazy, key: &str) -> Option<bool> {
        match obj.get(key).and_then(|v| v.map(|v| v.flag()).transpose()) {
            Ok(b) => b.flatten(),
            Err(f) => {
                let msg = f.message(None);
                self.note(
                    "field-not-evaluated",
                    format!("{}: {msg}; read as unset", f.source),
                );
                None
            }
        }
    }

    /// A list of texts (`podCidrs`, `authorizedIPRanges`).
    fn texts(&mut self, obj: &Lazy, key: &str, flag: Option<&'static str>) -> Vec<Sourced<String>> {
        let items = match obj.get(key).and_then(|v| v.map(|v| v.items()).transpose()) {
            Ok(Some(items)) => items,
            Ok(None) => return Vec::new(),
            Err(f) => {
                self.pend(f, flag);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for it in items {
            match it.text() {
                Ok(Some(t)) => out.push(Sourced::new(t, it.source())),
                Ok(None) => {}
                Err(f) => self.pend(f, flag),
            }
        }
        out
    }

    /// A subnet named by ID: `vnetSubnetID` (ARM), `vnetSubnetId` (az),
    /// `vnetSubnetReference.armId` (ASO).
    fn subnet_ref(&mut self, pool: &Lazy, key: &str, flag: &'static str) -> Option<SubnetRef> {
        if let Some(s) = self.text(pool, key, Some(flag)) {
            return Some(SubnetRef {
                id: s.value,
                source: s.source,
                ..SubnetRef::default()
            });
        }
        let reference = format!(
            "{}Reference",
            key.trim_end_matches("ID").trim_end_matches("Id")
        );
        let r = pool.get(&reference).ok().flatten()?;
        let s = self.text(&r, "armId", Some(flag))?;
        Some(SubnetRef {
            id: s.value,
            source: s.source,
            ..SubnetRef::default()
        })
    }

    /// A cluster's network profile and pools; `props` is the ARM
    /// `properties` object (or an az / ASO equivalent).
    pub fn cluster(&mut self, props: &Lazy) {
        let profile = match props.get("networkProfile") {
            Ok(p) => p,
            Err(f) => {
                self.pend(f, Some("--network-plugin"));
                None
            }
        };
        if let Some(np) = &profile {
            self.network_profile(np);
        }
        // A version the cluster object does not hold may come from
        // elsewhere (CAPZ's control plane `spec.version`): keep it.
        let version = self
            .text(props, "kubernetesVersion", None)
            .or_else(|| self.text(props, "currentKubernetesVersion", None));
        if version.is_some() {
            self.input.kubernetes_version = version;
        }
        if let Ok(Some(api)) = props.get("apiServerAccessProfile") {
            // ARM `authorizedIPRanges`; az prints `authorizedIpRanges` (get
            // is case-insensitive).
            self.input.authorized_ip_ranges = self.texts(&api, "authorizedIPRanges", None);
            if let Some(b) = self.flag_at(&api, "enablePrivateCluster") {
                self.input.private_cluster = Some(Sourced::new(
                    b,
                    "apiServerAccessProfile.enablePrivateCluster",
                ));
            }
        }
        match props
            .get("agentPoolProfiles")
            .and_then(|p| p.map(|p| p.items()).transpose())
        {
            Ok(Some(pools)) => {
                for p in pools {
                    self.pool(&p, None);
                }
            }
            Ok(None) => {}
            Err(f) => self.pend(f, Some("--node-count")),
        }
    }

    pub fn network_profile(&mut self, np: &Lazy) {
        let i = &mut *self;
        i.input.network_plugin = i.text(np, "networkPlugin", Some("--network-plugin"));
        i.input.network_plugin_mode =
            i.text(np, "networkPluginMode", Some("--network-plugin-mode"));
        i.input.network_policy = i.text(np, "networkPolicy", None);
        i.input.network_dataplane = i.text(np, "networkDataplane", None);
        let pod_cidrs = i.texts(np, "podCidrs", Some("--pod-cidr"));
        let svc_cidrs = i.texts(np, "serviceCidrs", Some("--service-cidr"));
        let (pod4, pod6) = split_families(pod_cidrs);
        let (svc4, svc6) = split_families(svc_cidrs);
        i.input.pod_cidr = i.text(np, "podCidr", Some("--pod-cidr")).or(pod4);
        i.input.service_cidr = i.text(np, "serviceCidr", Some("--service-cidr")).or(svc4);
        i.input.pod_cidr_v6 = pod6;
        i.input.service_cidr_v6 = svc6;
        // ARM `dnsServiceIP`; az prints `dnsServiceIp` (get is case-insensitive).
        i.input.dns_service_ip = i.text(np, "dnsServiceIP", Some("--dns-service-ip"));
        i.input.ip_families = i.texts(np, "ipFamilies", None);
        i.input.outbound.outbound_type = i.text(np, "outboundType", None);
        i.input.load_balancer_sku = i.text(np, "loadBalancerSku", None);
        if let Ok(Some(lb)) = np.get("loadBalancerProfile") {
            if let Ok(Some(m)) = lb.get("managedOutboundIPs") {
                i.input.outbound.lb_managed_ips = i.count(&m, "count", None);
            }
            let mut own = 0u32;
            let mut src = None;
            for key in ["outboundIPs", "outboundIPPrefixes"] {
                if let Ok(Some(o)) = lb.get(key) {
                    for list in ["publicIPs", "publicIPPrefixes"] {
                        if let Ok(Some(l)) = o.get(list) {
                            if let Ok(items) = l.items() {
                                own = own
                                    .saturating_add(u32::try_from(items.len()).unwrap_or(u32::MAX));
                                src.get_or_insert(l.source());
                            }
                        }
                    }
                }
            }
            if let Some(src) = src.filter(|_| own > 0) {
                i.input.outbound.lb_own_ips = Some(Sourced::new(own, src));
            }
            i.input.outbound.lb_allocated_ports = i.count(&lb, "allocatedOutboundPorts", None);
        }
        if let Ok(Some(nat)) = np.get("natGatewayProfile") {
            if let Ok(Some(m)) = nat.get("managedOutboundIPProfile") {
                i.input.outbound.nat_managed_ips = i.count(&m, "count", None);
            }
            i.input.outbound.nat_idle_timeout = i.count(&nat, "idleTimeoutInMinutes", None);
        }
    }

    /// One agent pool (an `agentPoolProfiles` element, or an agentPools
    /// resource's properties with its `name`).
    pub fn pool(&mut self, p: &Lazy, name: Option<String>) {
        let name = name
            .or_else(|| self.text(p, "name", None).map(|s| s.value))
            .unwrap_or_else(|| format!("pool{}", self.input.pools.len() + 1));
        let autoscale = self.flag_at(p, "enableAutoScaling") == Some(true);
        // An autoscaled pool can grow to maxCount: plan for that.
        let count = match autoscale {
            true => self
                .count(p, "maxCount", Some("--node-count"))
                .or_else(|| self.count(p, "count", Some("--node-count"))),
            false => self.count(p, "count", Some("--node-count")),
        };
        let max_pods = self.count(p, "maxPods", Some("--max-pods"));
        let max_surge = match p.get("upgradeSettings") {
            Ok(Some(u)) => self.text(&u, "maxSurge", Some("--max-surge")),
            Ok(None) => None,
            Err(f) => {
                self.pend(f, Some("--max-surge"));
                None
            }
        };
        let mode = self.text(p, "mode", None);
        let subnet = self.subnet_ref(p, "vnetSubnetID", "--subnet-cidr");
        let pod_subnet = self.subnet_ref(p, "podSubnetID", "--pod-subnet-cidr");
        let pod_ip_allocation_mode = self.text(p, "podIPAllocationMode", None);
        self.input.pools.push(PoolInput {
            name,
            count,
            max_pods,
            max_surge,
            mode,
            subnet,
            pod_subnet,
            pod_ip_allocation_mode,
        });
    }
}

fn split_families(
    list: Vec<Sourced<String>>,
) -> (Option<Sourced<String>>, Option<Sourced<String>>) {
    let mut v4 = None;
    let mut v6 = None;
    for s in list {
        if s.value.contains(':') {
            v6.get_or_insert(s);
        } else {
            v4.get_or_insert(s);
        }
    }
    (v4, v6)
}
