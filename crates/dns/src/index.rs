//! The cluster's DNS records in lookup form, built once per store change
//! from [`ClusterRecords`] and then only read: every query is one hash
//! lookup (plus one more per CNAME hop), answered with references into the
//! index, so the serving path allocates little and never waits for the store.
//!
//! What is published follows the Kubernetes DNS specification (schema
//! 1.1.0) and CoreDNS's `kubernetes` plugin where the specification is
//! silent (endpoint names of ClusterIP Services, SRV at the Service name,
//! pod records, the SOA).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::names::{absolute, child, dashed, parse_dashed};
use crate::records::{ClusterRecords, EndpointRecord, ServiceKind, ServiceRecord};

/// `TXT dns-version.DOMAIN`: the schema version the records follow.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// SOA timers as CoreDNS sets them (the minimum is the TTL).
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;

/// How CNAME chains inside the cluster domain are followed at most.
const MAX_CNAME_HOPS: usize = 8;

/// `a-b-c-d.NS.pod.DOMAIN`, as CoreDNS's `pods` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodMode {
    /// Answered only when a Pod of that namespace has that IP.
    Verified,
    /// Answered for any IP (what AKS's CoreDNS does): the name only spells
    /// the address.
    Insecure,
    /// Not answered (NXDOMAIN).
    Disabled,
}

/// What shapes the published records beyond the cluster's objects.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The cluster domain, absolute and lower-case (`cluster.local.`).
    pub domain: Name,
    /// TTL of every record, and the SOA minimum (negative answers).
    pub ttl: u32,
    pub pods: PodMode,
}

#[derive(Debug)]
struct RrSet {
    rtype: RecordType,
    records: Vec<Record>,
    /// Address records of SRV targets (the Additional section).
    additionals: Vec<Record>,
}

/// A name that exists: its record sets (none for an empty non-terminal
/// such as `svc.DOMAIN` or an existing namespace).
#[derive(Debug, Default)]
struct Node {
    sets: Vec<RrSet>,
}

impl Node {
    fn set(&self, rtype: RecordType) -> Option<&RrSet> {
        self.sets.iter().find(|s| s.rtype == rtype)
    }

    fn set_mut(&mut self, rtype: RecordType) -> &mut RrSet {
        let i = match self.sets.iter().position(|s| s.rtype == rtype) {
            Some(i) => i,
            None => {
                self.sets.push(RrSet {
                    rtype,
                    records: vec![],
                    additionals: vec![],
                });
                self.sets.len() - 1
            }
        };
        &mut self.sets[i]
    }
}

/// What a query gets.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// An authoritative answer: records, NODATA or NXDOMAIN.
    Answer(Answer<'a>),
    /// An ExternalName Service: the CNAME chain so far, and its target
    /// outside the cluster domain, to be resolved upstream.
    External { answer: Answer<'a>, target: Name },
    /// Not the cluster's: forward to the upstreams (names outside the
    /// cluster domain, reverse names of addresses the cluster does not
    /// know, which CoreDNS lets fall through too).
    Forward,
}

/// One authoritative answer.
#[derive(Debug)]
pub struct Answer<'a> {
    pub rcode: ResponseCode,
    pub answers: Vec<Cow<'a, Record>>,
    pub additionals: Vec<Cow<'a, Record>>,
    /// The SOA of the Authority section (negative answers).
    pub soa: Option<&'a Record>,
}

impl Answer<'_> {
    fn empty(rcode: ResponseCode) -> Self {
        Answer {
            rcode,
            answers: vec![],
            additionals: vec![],
            soa: None,
        }
    }
}

/// The cluster's records at one store revision.
#[derive(Debug)]
pub struct Index {
    domain: LowerName,
    domain_labels: u8,
    pods_mode: PodMode,
    ttl: u32,
    names: HashMap<LowerName, Node>,
    reverse: HashMap<LowerName, Node>,
    /// `(namespace, IP)` of every Pod, for verified pod records.
    pods: HashSet<(String, IpAddr)>,
    soa: Record,
    revision: i64,
    services: usize,
}

struct Builder<'s> {
    settings: &'s Settings,
    names: HashMap<LowerName, Node>,
    reverse: HashMap<LowerName, Node>,
}

impl Builder<'_> {
    fn record(&self, name: &Name, rdata: RData) -> Record {
        Record::from_rdata(name.clone(), self.settings.ttl, rdata)
    }

    /// Makes `name` and every name between it and the cluster domain exist.
    fn touch(&mut self, name: &Name) {
        let domain_labels = self.settings.domain.num_labels();
        let mut n = name.clone();
        while n.num_labels() >= domain_labels {
            let key = LowerName::new(&n);
            if self.names.contains_key(&key) {
                break;
            }
            self.names.insert(key, Node::default());
            if n.num_labels() == domain_labels {
                break;
            }
            n = n.base_name();
        }
    }

    fn add(&mut self, name: &Name, rdata: RData) {
        self.touch(name);
        let rtype = rdata.record_type();
        let rec = self.record(name, rdata);
        let set = self
            .names
            .get_mut(&LowerName::new(name))
            .expect("touched above")
            .set_mut(rtype);
        if !set.records.iter().any(|r| r.data == rec.data) {
            set.records.push(rec);
        }
    }

    fn address(&mut self, name: &Name, ip: IpAddr) {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.add(name, rdata);
    }

    fn ptr(&mut self, ip: IpAddr, target: &Name) {
        let rev = Name::from(ip);
        let rec = self.record(&rev, RData::PTR(PTR(target.clone())));
        let set = self
            .reverse
            .entry(LowerName::new(&rev))
            .or_default()
            .set_mut(RecordType::PTR);
        if !set.records.iter().any(|r| r.data == rec.data) {
            set.records.push(rec);
        }
    }

    fn srv(&mut self, name: &Name, port: u16, target: &Name) {
        // The weight is set once the set is complete (see `finish`).
        self.add(name, RData::SRV(SRV::new(0, 100, port, target.clone())));
    }

    fn service(&mut self, svc: &ServiceRecord) -> Result<(), crate::DnsError> {
        let domain = self.settings.domain.clone();
        let ns = child(&svc.namespace, &child("svc", &domain)?)?;
        let name = child(&svc.name, &ns)?;
        let ready: Vec<&EndpointRecord> = svc.endpoints.iter().filter(|e| e.ready).collect();
        match &svc.kind {
            ServiceKind::ClusterIp(ips) => {
                self.touch(&name);
                for ip in ips {
                    self.address(&name, *ip);
                    self.ptr(*ip, &name);
                }
                for p in &svc.ports {
                    self.srv(&name, p.port, &name);
                    if !p.name.is_empty() {
                        let srv = srv_name(&p.name, p.protocol.label(), &name)?;
                        self.srv(&srv, p.port, &name);
                    }
                }
                // Endpoint names answer for ClusterIP Services too (CoreDNS
                // does), so that the PTR of a pod IP leads to a name that
                // resolves back to it.
                for ep in ready {
                    for (ip, ep_name) in endpoint_names(ep, &name)? {
                        self.address(&ep_name, ip);
                        self.ptr(ip, &ep_name);
                    }
                }
            }
            ServiceKind::Headless => {
                // No ready endpoint: the name does not exist (CoreDNS).
                for ep in ready {
                    for (ip, ep_name) in endpoint_names(ep, &name)? {
                        self.address(&name, ip);
                        self.address(&ep_name, ip);
                        self.ptr(ip, &ep_name);
                        for p in &ep.ports {
                            self.srv(&name, p.port, &ep_name);
                            if !p.name.is_empty() {
                                let srv = srv_name(&p.name, p.protocol.label(), &name)?;
                                self.srv(&srv, p.port, &ep_name);
                            }
                        }
                    }
                }
            }
            ServiceKind::ExternalName(target) => {
                let target = absolute(target)?;
                self.add(&name, RData::CNAME(CNAME(target)));
            }
        }
        Ok(())
    }

    /// SRV weights as CoreDNS spreads them (100 split evenly, rounded
    /// down), and the address records of SRV targets as additionals.
    fn finish(&mut self) {
        let mut targets: Vec<(LowerName, Vec<Name>)> = vec![];
        for (key, node) in &mut self.names {
            if let Some(set) = node.sets.iter_mut().find(|s| s.rtype == RecordType::SRV) {
                let weight = u16::try_from(100 / set.records.len().max(1)).unwrap_or(0);
                let mut names = BTreeSet::new();
                for r in &mut set.records {
                    if let RData::SRV(srv) = &r.data {
                        names.insert(srv.target.clone());
                        let port = srv.port;
                        let target = srv.target.clone();
                        r.data = RData::SRV(SRV::new(0, weight, port, target));
                    }
                }
                targets.push((key.clone(), names.into_iter().collect()));
            }
        }
        for (key, names) in targets {
            let mut extra = vec![];
            for t in names {
                if let Some(node) = self.names.get(&LowerName::new(&t)) {
                    for rtype in [RecordType::A, RecordType::AAAA] {
                        if let Some(set) = node.set(rtype) {
                            extra.extend(set.records.iter().cloned());
                        }
                    }
                }
            }
            if let Some(set) = self
                .names
                .get_mut(&key)
                .and_then(|n| n.sets.iter_mut().find(|s| s.rtype == RecordType::SRV))
            {
                set.additionals = extra;
            }
        }
    }
}

fn srv_name(port: &str, proto: &str, svc: &Name) -> Result<Name, crate::DnsError> {
    child(&format!("_{port}"), &child(&format!("_{proto}"), svc)?)
}

/// `hostname.SVC…` or `10-244-1-5.SVC…` for each address of an endpoint.
fn endpoint_names(ep: &EndpointRecord, svc: &Name) -> Result<Vec<(IpAddr, Name)>, crate::DnsError> {
    ep.addresses
        .iter()
        .map(|ip| {
            let label = ep.hostname.clone().unwrap_or_else(|| dashed(*ip));
            Ok((*ip, child(&label, svc)?))
        })
        .collect()
}

impl Index {
    /// Builds the index. Objects whose names cannot be DNS names (a stored
    /// EndpointSlice with an odd hostname) are left out with a warning;
    /// everything else is published.
    pub fn build(recs: &ClusterRecords, settings: &Settings) -> Index {
        let domain = settings.domain.clone();
        let mut b = Builder {
            settings,
            names: HashMap::new(),
            reverse: HashMap::new(),
        };
        let ns_name = Name::from_ascii("ns.dns")
            .and_then(|n| n.append_domain(&domain))
            .unwrap_or_else(|_| domain.clone());
        let hostmaster = Name::from_ascii("hostmaster")
            .and_then(|n| n.append_domain(&domain))
            .unwrap_or_else(|_| domain.clone());
        let serial = u32::try_from(recs.revision.max(0)).unwrap_or(u32::MAX);
        let soa = Record::from_rdata(
            domain.clone(),
            settings.ttl,
            RData::SOA(SOA::new(
                ns_name.clone(),
                hostmaster,
                serial,
                SOA_REFRESH,
                SOA_RETRY,
                SOA_EXPIRE,
                settings.ttl,
            )),
        );
        b.add(&domain, soa.data.clone());
        b.add(&domain, RData::NS(NS(ns_name.clone())));
        b.touch(&ns_name);
        if let Ok(v) = child("dns-version", &domain) {
            b.add(&v, RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])));
        }
        let svc_zone = child("svc", &domain).ok();
        let pod_zone = child("pod", &domain).ok();
        let mut namespaces: BTreeSet<&str> = recs.namespaces.iter().map(String::as_str).collect();
        namespaces.extend(recs.services.iter().map(|s| s.namespace.as_str()));
        namespaces.extend(recs.pods.iter().map(|p| p.namespace.as_str()));
        for zone in [&svc_zone, &pod_zone].into_iter().flatten() {
            b.touch(zone);
            for ns in &namespaces {
                match child(ns, zone) {
                    Ok(n) => b.touch(&n),
                    Err(e) => tracing::warn!("namespace left out of DNS: {e}"),
                }
            }
        }
        for svc in &recs.services {
            if let Err(e) = b.service(svc) {
                tracing::warn!(
                    "Service {}/{} partly left out of DNS: {e}",
                    svc.namespace,
                    svc.name
                );
            }
        }
        let mut pods = HashSet::new();
        if settings.pods != PodMode::Disabled {
            for pod in &recs.pods {
                for ip in &pod.ips {
                    pods.insert((pod.namespace.clone(), *ip));
                    // A pod IP that is no endpoint still has a name.
                    if !b.reverse.contains_key(&LowerName::new(&Name::from(*ip))) {
                        if let Some(n) = pod_zone
                            .as_ref()
                            .and_then(|z| child(&dashed(*ip), &child(&pod.namespace, z).ok()?).ok())
                        {
                            b.ptr(*ip, &n);
                        }
                    }
                }
            }
        }
        // `ns.dns.DOMAIN` is the kube-dns Service when there is one.
        if let Some(kube_dns) = recs
            .services
            .iter()
            .find(|s| s.namespace == "kube-system" && s.name == "kube-dns")
        {
            if let ServiceKind::ClusterIp(ips) = &kube_dns.kind {
                for ip in ips {
                    b.address(&ns_name, *ip);
                }
            }
        }
        b.finish();
        Index {
            domain: LowerName::new(&domain),
            domain_labels: domain.num_labels(),
            pods_mode: settings.pods,
            ttl: settings.ttl,
            names: b.names,
            reverse: b.reverse,
            pods,
            soa,
            revision: recs.revision,
            services: recs.services.len(),
        }
    }

    /// The store revision the index was built from.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// How many Services are published.
    pub fn services(&self) -> usize {
        self.services
    }

    /// How many names exist in the cluster domain (pod names not counted).
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// Whether `name` is the cluster domain or under it.
    pub fn in_domain(&self, name: &LowerName) -> bool {
        self.domain.zone_of(name)
    }

    /// Answers one question.
    pub fn lookup(&self, qname: &LowerName, qtype: RecordType) -> Outcome<'_> {
        if !self.domain.zone_of(qname) {
            return match self.reverse.get(qname) {
                Some(node) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                    Outcome::Answer(self.node_answer(node, qtype))
                }
                _ => Outcome::Forward,
            };
        }
        self.in_zone(qname, qtype, 0)
    }

    fn negative(&self, rcode: ResponseCode) -> Answer<'_> {
        Answer {
            soa: Some(&self.soa),
            ..Answer::empty(rcode)
        }
    }

    fn node_answer<'a>(&'a self, node: &'a Node, qtype: RecordType) -> Answer<'a> {
        if qtype == RecordType::ANY {
            let answers: Vec<Cow<'_, Record>> = node
                .sets
                .iter()
                .flat_map(|s| s.records.iter().map(Cow::Borrowed))
                .collect();
            if answers.is_empty() {
                return self.negative(ResponseCode::NoError);
            }
            return Answer {
                answers,
                ..Answer::empty(ResponseCode::NoError)
            };
        }
        match node.set(qtype) {
            Some(set) => Answer {
                rcode: ResponseCode::NoError,
                answers: set.records.iter().map(Cow::Borrowed).collect(),
                additionals: set.additionals.iter().map(Cow::Borrowed).collect(),
                soa: None,
            },
            None => self.negative(ResponseCode::NoError),
        }
    }

    fn in_zone(&self, qname: &LowerName, qtype: RecordType, hops: usize) -> Outcome<'_> {
        let Some(node) = self.names.get(qname) else {
            return Outcome::Answer(self.pod(qname, qtype));
        };
        let cname = node.set(RecordType::CNAME);
        let Some(cname) = cname.filter(|_| !matches!(qtype, RecordType::CNAME | RecordType::ANY))
        else {
            return Outcome::Answer(self.node_answer(node, qtype));
        };
        let mut answer = Answer {
            answers: cname.records.iter().map(Cow::Borrowed).collect(),
            ..Answer::empty(ResponseCode::NoError)
        };
        let Some(RData::CNAME(CNAME(target))) = cname.records.first().map(|r| &r.data) else {
            return Outcome::Answer(answer);
        };
        let lower = LowerName::new(target);
        if !self.domain.zone_of(&lower) {
            return Outcome::External {
                answer,
                target: target.clone(),
            };
        }
        if hops >= MAX_CNAME_HOPS {
            return Outcome::Answer(answer);
        }
        match self.in_zone(&lower, qtype, hops + 1) {
            Outcome::Answer(next) => {
                answer.answers.extend(next.answers);
                answer.additionals.extend(next.additionals);
                answer.rcode = next.rcode;
                answer.soa = next.soa;
                Outcome::Answer(answer)
            }
            Outcome::External {
                answer: next,
                target,
            } => {
                answer.answers.extend(next.answers);
                Outcome::External { answer, target }
            }
            Outcome::Forward => Outcome::Answer(answer),
        }
    }

    /// `a-b-c-d.NS.pod.DOMAIN`, or NXDOMAIN for any other unknown name.
    fn pod(&self, qname: &LowerName, qtype: RecordType) -> Answer<'_> {
        let nx = || self.negative(ResponseCode::NXDomain);
        if self.pods_mode == PodMode::Disabled || qname.num_labels() != self.domain_labels + 3 {
            return nx();
        }
        let name = Name::from(qname);
        let labels: Vec<&[u8]> = name.iter().collect();
        if !labels[2].eq_ignore_ascii_case(b"pod") {
            return nx();
        }
        let (Ok(label), Ok(ns)) = (
            std::str::from_utf8(labels[0]),
            std::str::from_utf8(labels[1]),
        ) else {
            return nx();
        };
        let Some(ip) = parse_dashed(label) else {
            return nx();
        };
        let known = match self.pods_mode {
            PodMode::Verified => self.pods.contains(&(ns.to_ascii_lowercase(), ip)),
            _ => true,
        };
        if !known {
            return nx();
        }
        let (rtype, rdata) = match ip {
            IpAddr::V4(v4) => (RecordType::A, RData::A(A(v4))),
            IpAddr::V6(v6) => (RecordType::AAAA, RData::AAAA(AAAA(v6))),
        };
        if qtype != rtype && qtype != RecordType::ANY {
            return self.negative(ResponseCode::NoError);
        }
        Answer {
            answers: vec![Cow::Owned(Record::from_rdata(name, self.ttl, rdata))],
            ..Answer::empty(ResponseCode::NoError)
        }
    }
}
