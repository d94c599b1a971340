//! Planning one `aksnet apply` (or `delete`) against one listing of the
//! store: defaults, validation, the fields the server owns (ClusterIPs,
//! NodePorts, uid, creation time, status), immutable fields, namespaces —
//! and the exact keys the one transaction must write and compare. Pure: the
//! caller reads the listing, runs the transaction, and plans again from a
//! fresh listing if a compare failed (another apply won a race).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Serialize;

use super::alloc::{self, Rng, NODE_PORT_RANGE};
use super::errors::{child, index, Errs, ObjectError};
use super::kind::Kind;
use super::namespace::{is_system, DEFAULT_NAMESPACE};
use super::object::{Object, ObjectId};
use super::service::{Service, ServiceType, CLUSTER_IP_NONE};
use super::store::{cluster_ip_key, node_port_key, object_key, Allocation, K8sState};
use super::validate::validate;
use crate::spec::ClusterNetwork;

/// An object to apply and where it came from (`web.yaml, document 2`).
#[derive(Debug, Clone)]
pub struct Input {
    pub object: Object,
    pub source: String,
}

/// What the caller supplies that a pure function cannot know.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    /// Now, RFC 3339 (`creationTimestamp` of new objects).
    pub now: String,
    /// Seeds the random picks of ClusterIPs, NodePorts and uids.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
        }
    }
}

/// What a transaction needs of a key before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Absent,
    Exists,
    ModRevision(i64),
}

/// One key the transaction writes (`value: None` deletes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWrite {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub expect: Expect,
}

/// The outcome of planning an apply.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Puts and deletes, each with its compare.
    pub writes: Vec<KeyWrite>,
    /// Keys that must hold without being written (namespaces in use).
    pub checks: Vec<(String, Expect)>,
    /// One per input, in input order: what happened and the object as it
    /// is stored afterwards.
    pub outcomes: Vec<(ObjectId, Action, Object)>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.writes.is_empty()
    }
}

struct Work<'a> {
    state: &'a K8sState,
    net: &'a ClusterNetwork,
    rng: Rng,
    now: &'a str,
    objects: BTreeMap<ObjectId, Object>,
    ips: BTreeMap<Ipv4Addr, Option<Allocation>>,
    ports: BTreeMap<u16, Option<Allocation>>,
    touched_ips: BTreeSet<Ipv4Addr>,
    touched_ports: BTreeSet<u16>,
    checks: BTreeSet<String>,
}

/// Plans applying `inputs`: every error of every object, or the writes.
/// Namespaces are planned first, so objects may come before their
/// Namespace in the input; outcomes keep the input order.
pub fn plan_apply(
    state: &K8sState,
    net: &ClusterNetwork,
    ctx: &ApplyContext,
    inputs: Vec<Input>,
) -> Result<Plan, Vec<ObjectError>> {
    let mut w = Work {
        state,
        net,
        rng: Rng::new(ctx.seed),
        now: &ctx.now,
        objects: BTreeMap::new(),
        ips: state
            .cluster_ips
            .iter()
            .map(|(k, v)| (*k, v.value.clone()))
            .collect(),
        ports: state
            .node_ports
            .iter()
            .map(|(k, v)| (*k, v.value.clone()))
            .collect(),
        touched_ips: BTreeSet::new(),
        touched_ports: BTreeSet::new(),
        checks: BTreeSet::new(),
    };
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|i| inputs[*i].object.kind() != Kind::Namespace);
    let mut outcomes: Vec<Option<(ObjectId, Action, Object)>> = vec![None; inputs.len()];
    let mut errors: Vec<(usize, ObjectError)> = vec![];
    for i in order {
        let Input { object, source } = inputs[i].clone();
        match w.apply_one(object) {
            Ok(done) => outcomes[i] = Some(done),
            Err((id, errs)) => errors.push((
                i,
                ObjectError {
                    object: id,
                    source: Some(source),
                    errors: errs.0,
                },
            )),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|(i, _)| *i);
        return Err(errors.into_iter().map(|(_, e)| e).collect());
    }
    let writes = w.writes();
    Ok(Plan {
        writes,
        checks: w.checks.into_iter().map(|k| (k, Expect::Exists)).collect(),
        outcomes: outcomes.into_iter().flatten().collect(),
    })
}

fn shown(obj: &Object) -> String {
    let name = if obj.name().is_empty() {
        "<no name>"
    } else {
        obj.name()
    };
    if obj.kind().namespaced() {
        format!("{} {}/{name}", obj.kind(), obj.namespace())
    } else {
        format!("{} {name}", obj.kind())
    }
}

impl Work<'_> {
    fn current(&self, id: &ObjectId) -> Option<&Object> {
        self.objects.get(id).or_else(|| self.state.get(id))
    }

    fn apply_one(&mut self, mut obj: Object) -> Result<(ObjectId, Action, Object), (String, Errs)> {
        obj.set_type_meta();
        if obj.kind().namespaced() && obj.meta().namespace.as_deref().is_none_or(str::is_empty) {
            obj.meta_mut().namespace = Some(DEFAULT_NAMESPACE.into());
        }
        if !obj.kind().namespaced() {
            obj.meta_mut().namespace = None;
        }
        set_defaults(&mut obj);
        let mut errs = Errs(validate(&obj));
        if !errs.is_empty() {
            return Err((shown(&obj), errs));
        }
        let id = obj.id();
        if obj.kind().namespaced() {
            self.check_namespace(obj.namespace(), &mut errs);
        }
        let old = self.current(&id).cloned();
        self.merge(&mut obj, old.as_ref(), &mut errs);
        if !errs.is_empty() {
            return Err((id.to_string(), errs));
        }
        // Server-owned metadata.
        let old_meta = old.as_ref().map(|o| o.meta().clone());
        {
            let m = obj.meta_mut();
            m.resource_version = None;
            m.uid = old_meta.as_ref().and_then(|o| o.uid.clone());
            m.creation_timestamp = old_meta.as_ref().and_then(|o| o.creation_timestamp.clone());
            m.generation = old_meta.as_ref().and_then(|o| o.generation);
            if m.deletion_timestamp.is_none() {
                m.deletion_timestamp = old_meta.as_ref().and_then(|o| o.deletion_timestamp.clone());
            }
        }
        let action = match &old {
            None => {
                let uid = self.rng.uuid();
                let m = obj.meta_mut();
                m.uid = Some(uid);
                m.creation_timestamp = Some(self.now.to_string());
                m.generation = Some(1);
                Action::Created
            }
            Some(o) => {
                let mut before = o.clone();
                before.meta_mut().resource_version = None;
                if before.to_value() == obj.to_value() {
                    Action::Unchanged
                } else {
                    if body(&before) != body(&obj) {
                        let g = obj.meta().generation.unwrap_or(1) + 1;
                        obj.meta_mut().generation = Some(g);
                    }
                    Action::Configured
                }
            }
        };
        // An object never read (its stored value did not decode) is replaced.
        let replaces_bad = old.is_none() && self.state.undecodable.contains_key(&id);
        let action = if replaces_bad {
            Action::Configured
        } else {
            action
        };
        if action != Action::Unchanged {
            self.objects.insert(id.clone(), obj.clone());
        }
        Ok((id, action, obj))
    }

    fn check_namespace(&mut self, ns: &str, errs: &mut Errs) {
        let id = ObjectId::new(Kind::Namespace, "", ns);
        if self.objects.contains_key(&id) || is_system(ns) {
            return;
        }
        if self.state.objects.contains_key(&id) {
            self.checks.insert(object_key(&id));
            return;
        }
        errs.invalid(
            "metadata.namespace",
            ns,
            &format!(
                "namespace \"{ns}\" not found: apply a Namespace named {ns} first, or in the same apply"
            ),
        );
    }

    fn merge(&mut self, obj: &mut Object, old: Option<&Object>, errs: &mut Errs) {
        match (obj, old) {
            (Object::Service(s), old) => {
                let old = old.and_then(Object::as_service);
                if s.status.is_none() {
                    s.status = old.and_then(|o| o.status.clone());
                }
                self.service(s, old, errs);
            }
            (Object::Pod(p), Some(Object::Pod(o))) => {
                if p.status.is_none() {
                    p.status = o.status.clone();
                }
                if p.spec.node_name.is_none() {
                    p.spec.node_name = o.spec.node_name.clone();
                }
                let mut spec = p.spec.clone();
                for (c, oc) in spec.containers.iter_mut().zip(&o.spec.containers) {
                    c.image = oc.image.clone();
                }
                for (c, oc) in spec.init_containers.iter_mut().zip(&o.spec.init_containers) {
                    c.image = oc.image.clone();
                }
                if spec != o.spec {
                    errs.forbidden(
                        "spec",
                        "pod updates may not change fields other than `spec.containers[*].image` and \
                         `spec.initContainers[*].image`; delete the Pod and apply it again",
                    );
                }
            }
            (Object::Deployment(d), Some(Object::Deployment(o))) => {
                if d.status.is_none() {
                    d.status = o.status.clone();
                }
                if d.spec.selector != o.spec.selector {
                    let sel = d.spec.selector.clone().unwrap_or_default();
                    errs.invalid("spec.selector", &sel.to_string(), "field is immutable");
                }
            }
            (Object::EndpointSlice(s), Some(Object::EndpointSlice(o)))
                if s.address_type != o.address_type =>
            {
                errs.invalid("addressType", &s.address_type, "field is immutable");
            }
            (Object::NetworkPolicy(n), Some(Object::NetworkPolicy(o))) if n.status.is_none() => {
                n.status = o.status.clone();
            }
            (Object::Namespace(n), Some(Object::Namespace(o))) => {
                if let (Some(st), Some(ost)) = (n.status.as_mut(), o.status.as_ref()) {
                    for (k, v) in ost {
                        st.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            _ => {}
        }
    }

    fn release_all(&mut self, owner: &Allocation) {
        let ips: Vec<Ipv4Addr> = self
            .ips
            .iter()
            .filter(|(_, a)| a.as_ref() == Some(owner))
            .map(|(k, _)| *k)
            .collect();
        for ip in ips {
            self.ips.remove(&ip);
            self.touched_ips.insert(ip);
        }
        let ports: Vec<u16> = self
            .ports
            .iter()
            .filter(|(_, a)| a.as_ref() == Some(owner))
            .map(|(k, _)| *k)
            .collect();
        for p in ports {
            self.ports.remove(&p);
            self.touched_ports.insert(p);
        }
    }

    fn claim_ip(&mut self, ip: Ipv4Addr, owner: &Allocation) {
        self.ips.insert(ip, Some(owner.clone()));
        self.touched_ips.insert(ip);
    }

    fn claim_port(&mut self, p: u16, owner: &Allocation) {
        self.ports.insert(p, Some(owner.clone()));
        self.touched_ports.insert(p);
    }

    fn service(&mut self, svc: &mut Service, old: Option<&Service>, errs: &mut Errs) {
        let owner = Allocation {
            namespace: svc.metadata.namespace.clone().unwrap_or_default(),
            service: svc.metadata.name.clone(),
        };
        // Give back what this Service holds, then claim what its new spec
        // needs (old values are kept where the spec leaves them unset).
        self.release_all(&owner);
        let ty = svc.service_type();
        if ty == ServiceType::ExternalName {
            svc.spec.cluster_ip = None;
            svc.spec.cluster_ips.clear();
            return;
        }
        let old_ip = old
            .filter(|o| o.service_type() != ServiceType::ExternalName)
            .and_then(|o| o.spec.cluster_ip.clone())
            .filter(|s| !s.is_empty());
        let asked = svc.spec.cluster_ip.clone().filter(|s| !s.is_empty());
        let want = match (asked, old_ip) {
            (None, old) => old,
            (Some(a), Some(o)) if a != o => {
                errs.invalid("spec.clusterIP", &a, "field is immutable");
                return;
            }
            (Some(a), _) => Some(a),
        };
        match want.as_deref() {
            Some(CLUSTER_IP_NONE) => {
                svc.spec.cluster_ip = Some(CLUSTER_IP_NONE.into());
                svc.spec.cluster_ips = vec![CLUSTER_IP_NONE.into()];
            }
            Some(s) => {
                let Ok(ip) = s.parse::<Ipv4Addr>() else {
                    errs.invalid("spec.clusterIP", s, "must be a valid IPv4 address");
                    return;
                };
                if let Err(m) = alloc::check_requested_ip(&self.net.service_cidr, ip) {
                    errs.invalid("spec.clusterIP", s, &m);
                } else if self.ips.contains_key(&ip) {
                    errs.invalid(
                        "spec.clusterIP",
                        s,
                        &format!(
                            "failed to allocate IP {ip}: provided IP is already allocated{}",
                            self.holder_ip(ip)
                        ),
                    );
                } else {
                    self.claim_ip(ip, &owner);
                    svc.spec.cluster_ip = Some(s.to_string());
                    svc.spec.cluster_ips = vec![s.to_string()];
                }
            }
            None => {
                let ips = &self.ips;
                match alloc::pick_cluster_ip(
                    &self.net.service_cidr,
                    self.net.dns_service_ip,
                    &mut self.rng,
                    |ip| ips.contains_key(&ip),
                ) {
                    Some(ip) => {
                        self.claim_ip(ip, &owner);
                        svc.spec.cluster_ip = Some(ip.to_string());
                        svc.spec.cluster_ips = vec![ip.to_string()];
                    }
                    None => errs.invalid(
                        "spec.clusterIP",
                        "",
                        &format!(
                            "failed to allocate a ClusterIP: every address of the service CIDR {} is taken",
                            self.net.service_cidr
                        ),
                    ),
                }
            }
        }
        self.node_ports(svc, old, &owner, errs);
    }

    fn holder_ip(&self, ip: Ipv4Addr) -> String {
        match self.ips.get(&ip) {
            Some(Some(a)) => format!(" (to Service {}/{})", a.namespace, a.service),
            _ => String::new(),
        }
    }

    fn holder_port(&self, p: u16) -> String {
        match self.ports.get(&p) {
            Some(Some(a)) => format!(" (to Service {}/{})", a.namespace, a.service),
            _ => String::new(),
        }
    }

    /// A NodePort the user asked for: in range and free (or ours already).
    fn claim_asked_port(
        &mut self,
        np: i64,
        field: &str,
        owner: &Allocation,
        errs: &mut Errs,
    ) -> bool {
        let in_range = u16::try_from(np)
            .ok()
            .filter(|p| NODE_PORT_RANGE.contains(p));
        let Some(p) = in_range else {
            errs.invalid(
                field,
                &np,
                &format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    NODE_PORT_RANGE.start(),
                    NODE_PORT_RANGE.end()
                ),
            );
            return false;
        };
        match self.ports.get(&p) {
            Some(Some(a)) if a == owner => true,
            Some(_) => {
                errs.invalid(
                    field,
                    &np,
                    &format!("provided port is already allocated{}", self.holder_port(p)),
                );
                false
            }
            None => {
                self.claim_port(p, owner);
                true
            }
        }
    }

    fn pick_port(&mut self, owner: &Allocation, field: &str, errs: &mut Errs) -> Option<u16> {
        let ports = &self.ports;
        match alloc::pick_node_port(&mut self.rng, |p| ports.contains_key(&p)) {
            Some(p) => {
                self.claim_port(p, owner);
                Some(p)
            }
            None => {
                errs.invalid(
                    field,
                    "",
                    &format!(
                        "failed to allocate a nodePort: every port of {}-{} is taken",
                        NODE_PORT_RANGE.start(),
                        NODE_PORT_RANGE.end()
                    ),
                );
                None
            }
        }
    }

    fn node_ports(
        &mut self,
        svc: &mut Service,
        old: Option<&Service>,
        owner: &Allocation,
        errs: &mut Errs,
    ) {
        let wants = svc.wants_node_ports();
        let old_ports: Vec<_> = old
            .filter(|o| o.wants_node_ports() || o.service_type().is_external())
            .map(|o| o.spec.ports.clone())
            .unwrap_or_default();
        // Ports of one Service with the same number share a NodePort
        // (TCP and UDP 53, say), as upstream allocates them.
        let mut by_port: BTreeMap<i64, u16> = BTreeMap::new();
        for i in 0..svc.spec.ports.len() {
            let field = child(&index("spec.ports", i), "nodePort");
            let p = svc.spec.ports[i].clone();
            if let Some(np) = p.node_port.filter(|n| *n != 0) {
                if self.claim_asked_port(np, &field, owner, errs) {
                    by_port.entry(p.port).or_insert(np as u16);
                }
                continue;
            }
            if !wants {
                svc.spec.ports[i].node_port = None;
                continue;
            }
            let inherited = old_ports
                .iter()
                .find(|o| o.port == p.port && o.protocol() == p.protocol())
                .or_else(|| {
                    old_ports
                        .iter()
                        .find(|o| o.name.is_some() && o.name == p.name)
                })
                .and_then(|o| o.node_port)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| NODE_PORT_RANGE.contains(n) && !self.ports.contains_key(n));
            let chosen = match inherited.or_else(|| by_port.get(&p.port).copied()) {
                Some(n) => {
                    self.claim_port(n, owner);
                    Some(n)
                }
                None => self.pick_port(owner, &field, errs),
            };
            if let Some(n) = chosen {
                by_port.entry(p.port).or_insert(n);
                svc.spec.ports[i].node_port = Some(i64::from(n));
            }
        }
        if svc.wants_health_check_node_port() {
            let field = "spec.healthCheckNodePort";
            match svc.spec.health_check_node_port.filter(|h| *h != 0) {
                Some(h) => {
                    self.claim_asked_port(h, field, owner, errs);
                }
                None => {
                    let inherited = old
                        .and_then(|o| o.spec.health_check_node_port)
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| NODE_PORT_RANGE.contains(n) && !self.ports.contains_key(n));
                    let chosen = match inherited {
                        Some(n) => {
                            self.claim_port(n, owner);
                            Some(n)
                        }
                        None => self.pick_port(owner, field, errs),
                    };
                    svc.spec.health_check_node_port = chosen.map(i64::from);
                }
            }
        } else {
            svc.spec.health_check_node_port = None;
        }
    }

    fn writes(&self) -> Vec<KeyWrite> {
        let mut out = vec![];
        for (id, obj) in &self.objects {
            let expect = self
                .state
                .objects
                .get(id)
                .map(|s| s.mod_revision)
                .or_else(|| self.state.undecodable.get(id).copied())
                .map_or(Expect::Absent, Expect::ModRevision);
            out.push(KeyWrite {
                key: object_key(id),
                value: Some(serde_json::to_vec(obj).unwrap_or_default()),
                expect,
            });
        }
        for ip in &self.touched_ips {
            let before = self.state.cluster_ips.get(ip);
            let after = self.ips.get(ip);
            if let Some(w) = alloc_write(
                cluster_ip_key(*ip),
                before.map(|s| (&s.value, s.mod_revision)),
                after,
            ) {
                out.push(w);
            }
        }
        for p in &self.touched_ports {
            let before = self.state.node_ports.get(p);
            let after = self.ports.get(p);
            if let Some(w) = alloc_write(
                node_port_key(*p),
                before.map(|s| (&s.value, s.mod_revision)),
                after,
            ) {
                out.push(w);
            }
        }
        out
    }
}

fn alloc_write(
    key: String,
    before: Option<(&Option<Allocation>, i64)>,
    after: Option<&Option<Allocation>>,
) -> Option<KeyWrite> {
    match (before, after) {
        (None, Some(Some(a))) => Some(KeyWrite {
            key,
            value: Some(serde_json::to_vec(a).unwrap_or_default()),
            expect: Expect::Absent,
        }),
        (Some((_, rev)), None) => Some(KeyWrite {
            key,
            value: None,
            expect: Expect::ModRevision(rev),
        }),
        (Some((b, rev)), Some(Some(a))) if b.as_ref() != Some(a) => Some(KeyWrite {
            key,
            value: Some(serde_json::to_vec(a).unwrap_or_default()),
            expect: Expect::ModRevision(rev),
        }),
        _ => None,
    }
}

/// Everything but `metadata` and `status`: what `generation` counts.
fn body(o: &Object) -> serde_json::Value {
    let mut v = o.to_value();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn set_defaults(obj: &mut Object) {
    match obj {
        Object::Namespace(n) => n.set_defaults(),
        Object::Pod(p) => p.spec.set_defaults(),
        Object::Deployment(d) => d.set_defaults(),
        Object::Service(s) => s.set_defaults(),
        Object::EndpointSlice(s) => s.set_defaults(),
        Object::NetworkPolicy(n) => n.set_defaults(),
    }
}
