//! host-local compatible IP address management, as pure logic.
//!
//! The configuration has host-local's shape (`ranges: [[{subnet,
//! rangeStart, rangeEnd, gateway}]]`, `routes`, `dataDir`, `resolvConf`,
//! and the legacy top-level `subnet`). Each inner list is a *range set*:
//! one address is allocated from every set. [`RangeSet::candidates`] yields
//! the addresses of a set in host-local's order (round robin from the last
//! reserved address, wrapping, skipping the gateway), so that a node that
//! switches between host-local and aksnet-ipam keeps allocating the same
//! way. The on-disk store lives in the plugin crate.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::args::CniArgs;
use super::config::{Attachment, NetConf};
use super::error::CniError;
use super::ipmath::{from_u128, same_family, to_u128};
use super::result::{Dns, Route};

/// Default directory of the allocation store.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One range as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RangeConf {
    /// The subnet (network address, no host bits).
    pub subnet: String,
    /// First allocatable address.
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<IpAddr>,
    /// Last allocatable address.
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<IpAddr>,
    /// Gateway (never allocated); network + 1 if absent.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// The `ipam` section (host-local's fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamConf {
    /// IPAM plugin type.
    #[serde(rename = "type", default)]
    pub ipam_type: String,
    /// Range sets.
    #[serde(default)]
    pub ranges: Vec<Vec<RangeConf>>,
    /// Legacy single range: subnet.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Legacy single range: first address.
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<IpAddr>,
    /// Legacy single range: last address.
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<IpAddr>,
    /// Legacy single range: gateway.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Routes to return.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Store directory (default [`DEFAULT_DATA_DIR`]).
    #[serde(rename = "dataDir", default)]
    pub data_dir: Option<String>,
    /// A resolv.conf to return as DNS settings.
    #[serde(rename = "resolvConf", default)]
    pub resolv_conf: Option<String>,
}

/// A checked range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Subnet.
    pub subnet: IpNet,
    /// First allocatable address.
    pub start: IpAddr,
    /// Last allocatable address.
    pub end: IpAddr,
    /// Gateway.
    pub gateway: Option<IpAddr>,
}

impl Range {
    /// Check a configured range and fill in host-local's defaults.
    pub fn from_conf(c: &RangeConf) -> Result<Range, CniError> {
        let subnet: IpNet = c.subnet.parse().map_err(|_| {
            CniError::config(format!(
                "ipam range subnet {:?} is not a CIDR (e.g. \"10.244.0.0/24\")",
                c.subnet
            ))
        })?;
        if subnet.addr() != subnet.network() {
            return Err(CniError::config(format!(
                "ipam range subnet {} has host bits set (did you mean {}?)",
                c.subnet,
                subnet.trunc()
            )));
        }
        if subnet.max_prefix_len() - subnet.prefix_len() < 2 {
            return Err(CniError::config(format!(
                "ipam range subnet {subnet} is too small to allocate from (at most /{} for {})",
                subnet.max_prefix_len() - 2,
                if subnet.addr().is_ipv4() {
                    "IPv4"
                } else {
                    "IPv6"
                }
            )));
        }
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        let gateway = Some(
            c.gateway
                .unwrap_or_else(|| from_u128(subnet.addr(), net + 1)),
        );
        let inside = |ip: IpAddr, what: &str| -> Result<u128, CniError> {
            if !same_family(ip, subnet.addr()) || !subnet.contains(&ip) {
                return Err(CniError::config(format!(
                    "ipam {what} {ip} is outside the range's subnet {subnet}"
                )));
            }
            Ok(to_u128(ip))
        };
        let start = match c.range_start {
            Some(s) => inside(s, "rangeStart")?,
            None => net + 1,
        };
        let end = match c.range_end {
            Some(e) => inside(e, "rangeEnd")?,
            // IPv4 leaves the broadcast address out.
            None if subnet.addr().is_ipv4() => last - 1,
            None => last,
        };
        if start > end {
            return Err(CniError::config(format!(
                "ipam rangeStart {} is after rangeEnd {} in {subnet}",
                from_u128(subnet.addr(), start),
                from_u128(subnet.addr(), end)
            )));
        }
        Ok(Range {
            subnet,
            start: from_u128(subnet.addr(), start),
            end: from_u128(subnet.addr(), end),
            gateway,
        })
    }

    /// True when `ip` is between start and end.
    pub fn contains(&self, ip: IpAddr) -> bool {
        same_family(ip, self.start)
            && to_u128(ip) >= to_u128(self.start)
            && to_u128(ip) <= to_u128(self.end)
    }

    /// Number of allocatable addresses (the gateway excluded).
    pub fn capacity(&self) -> u128 {
        let n = to_u128(self.end) - to_u128(self.start) + 1;
        match self.gateway {
            Some(g) if self.contains(g) => n - 1,
            _ => n,
        }
    }

    fn overlaps(&self, o: &Range) -> bool {
        same_family(self.start, o.start)
            && to_u128(self.start) <= to_u128(o.end)
            && to_u128(o.start) <= to_u128(self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}-{})", self.subnet, self.start, self.end)
    }
}

/// A set of ranges one address is taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    /// The range containing `ip`.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(ip))
    }

    /// Number of allocatable addresses.
    pub fn capacity(&self) -> u128 {
        self.0.iter().map(Range::capacity).sum()
    }

    /// Addresses to try, in host-local's order: from the one after
    /// `last_reserved` (or the first range's start), through every range,
    /// wrapping around, ending with `last_reserved` itself; gateways are
    /// skipped.
    pub fn candidates(&self, last_reserved: Option<IpAddr>) -> Candidates<'_> {
        let mut c = Candidates {
            set: &self.0,
            range_idx: 0,
            start_range: 0,
            cur: None,
            start_ip: None,
            done: self.0.is_empty(),
        };
        if let Some(last) = last_reserved {
            if let Some(i) = self.0.iter().position(|r| r.contains(last)) {
                c.range_idx = i;
                c.start_range = i;
                c.cur = Some(to_u128(last));
            }
        }
        c
    }

    /// The first candidate not in `used`.
    pub fn next_free(
        &self,
        last_reserved: Option<IpAddr>,
        used: &HashSet<IpAddr>,
    ) -> Option<IpAddr> {
        self.candidates(last_reserved).find(|ip| !used.contains(ip))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Iterator of [`RangeSet::candidates`].
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    set: &'a [Range],
    range_idx: usize,
    start_range: usize,
    cur: Option<u128>,
    start_ip: Option<u128>,
    done: bool,
}

impl Candidates<'_> {
    fn advance(&mut self) -> Option<u128> {
        if self.done {
            return None;
        }
        let r = self.set.get(self.range_idx)?;
        let n = match self.cur {
            None => {
                let s = to_u128(r.start);
                self.start_ip = Some(s);
                self.start_range = self.range_idx;
                self.cur = Some(s);
                return Some(s);
            }
            Some(c) if c >= to_u128(r.end) => {
                self.range_idx = (self.range_idx + 1) % self.set.len();
                to_u128(self.set.get(self.range_idx)?.start)
            }
            Some(c) => c + 1,
        };
        self.cur = Some(n);
        match self.start_ip {
            // The first candidate may already be in the next range (the
            // last reserved address ended its range): the walk ends when
            // it comes back to this address *in this range*.
            None => {
                self.start_ip = Some(n);
                self.start_range = self.range_idx;
            }
            Some(s) if self.range_idx == self.start_range && n == s => {
                self.done = true;
                return None;
            }
            Some(_) => {}
        }
        Some(n)
    }
}

impl Iterator for Candidates<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        loop {
            let n = self.advance()?;
            let r = self.set.get(self.range_idx)?;
            let ip = from_u128(r.start, n);
            if r.gateway == Some(ip) {
                continue;
            }
            return Some(ip);
        }
    }
}

impl IpamConf {
    /// Read the `ipam` section of `conf`.
    pub fn from_netconf(conf: &NetConf) -> Result<IpamConf, CniError> {
        let v = conf
            .ipam
            .as_ref()
            .ok_or_else(|| CniError::config("the configuration has no ipam section"))?;
        serde_json::from_value(v.clone())
            .map_err(|e| CniError::config(format!("invalid ipam section: {e}")))
    }

    /// The checked range sets: `runtimeConfig.ipRanges` if the runtime gave
    /// it, else `ranges`, else the legacy top-level range. Sets must not be
    /// empty, mix families or overlap.
    pub fn range_sets(&self, conf: &NetConf) -> Result<Vec<RangeSet>, CniError> {
        let runtime: Option<Vec<Vec<RangeConf>>> =
            match conf.runtime("ipRanges") {
                Some(Value::Null) | None => None,
                Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
                    CniError::config(format!("invalid runtimeConfig.ipRanges: {e}"))
                })?),
            };
        let confs: Vec<Vec<RangeConf>> =
            match runtime {
                Some(r) if !r.is_empty() => r,
                _ if !self.ranges.is_empty() => self.ranges.clone(),
                _ => match &self.subnet {
                    Some(s) => vec![vec![RangeConf {
                        subnet: s.clone(),
                        range_start: self.range_start,
                        range_end: self.range_end,
                        gateway: self.gateway,
                    }]],
                    None => return Err(CniError::config(
                        "ipam has no ranges (e.g. \"ranges\": [[{\"subnet\": \"10.244.0.0/24\"}]])",
                    )),
                },
            };
        let mut sets: Vec<RangeSet> = Vec::with_capacity(confs.len());
        for (i, set) in confs.iter().enumerate() {
            if set.is_empty() {
                return Err(CniError::config(format!("ipam range set #{i} is empty")));
            }
            let ranges = set
                .iter()
                .map(Range::from_conf)
                .collect::<Result<Vec<_>, _>>()?;
            for (a, ra) in ranges.iter().enumerate() {
                if !same_family(ra.start, ranges[0].start) {
                    return Err(CniError::config(format!(
                        "ipam range set #{i} mixes IPv4 and IPv6 ({} and {})",
                        ranges[0].subnet, ra.subnet
                    )));
                }
                for rb in &ranges[a + 1..] {
                    if ra.overlaps(rb) {
                        return Err(CniError::config(format!(
                            "ipam ranges {ra} and {rb} overlap"
                        )));
                    }
                }
            }
            let rs = RangeSet(ranges);
            for prev in &sets {
                for ra in &prev.0 {
                    for rb in &rs.0 {
                        if ra.overlaps(rb) {
                            return Err(CniError::config(format!(
                                "ipam ranges {ra} and {rb} overlap"
                            )));
                        }
                    }
                }
            }
            sets.push(rs);
        }
        Ok(sets)
    }

    /// The store directory for network `name`.
    pub fn store_dir(&self, name: &str) -> String {
        let base = self
            .data_dir
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_DATA_DIR);
        format!("{}/{}", base.trim_end_matches('/'), name)
    }
}

/// Requested addresses: `CNI_ARGS IP=`, `args.cni.ips`, `runtimeConfig.ips`
/// (entries may carry a prefix length, which is ignored).
pub fn requested_ips(conf: &NetConf, args: &CniArgs) -> Result<Vec<IpAddr>, CniError> {
    let mut out: Vec<IpAddr> = args.ips.clone();
    for (src, v) in [
        ("args.cni.ips", conf.args_cni("ips")),
        ("runtimeConfig.ips", conf.runtime("ips")),
    ] {
        let Some(v) = v else { continue };
        let Some(list) = v.as_array() else {
            return Err(CniError::config(format!(
                "{src} must be a list of addresses"
            )));
        };
        for item in list {
            let s = item.as_str().unwrap_or_default();
            let ip = s
                .split('/')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
                .ok_or_else(|| {
                    CniError::config(format!(
                        "{src}: {item} is not an address (e.g. \"10.244.0.7\" or \"10.244.0.7/24\")"
                    ))
                })?;
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    Ok(out)
}

/// One allocation as found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The address.
    pub ip: IpAddr,
    /// Owner container ID.
    pub container_id: String,
    /// Owner interface; `None` for legacy entries holding only the ID.
    pub ifname: Option<String>,
}

impl Allocation {
    /// True when the allocation belongs to (`id`, `ifname`); legacy entries
    /// match on the ID alone.
    pub fn owned_by(&self, id: &str, ifname: &str) -> bool {
        self.container_id == id && self.ifname.as_deref().is_none_or(|i| i == ifname)
    }
}

/// Parse the content of a store file: `containerID\r\nifname`, or only the
/// ID (legacy). Surrounding whitespace is ignored.
pub fn parse_owner(content: &str) -> Option<(String, Option<String>)> {
    let mut lines = content.split("\r\n");
    let id = lines.next()?.trim();
    if id.is_empty() {
        return None;
    }
    let ifname = lines
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some((id.to_string(), ifname))
}

/// The content of a store file for (`id`, `ifname`).
pub fn owner_content(id: &str, ifname: &str) -> String {
    format!("{id}\r\n{ifname}")
}

/// The allocations GC releases: those owned by no valid attachment.
pub fn stale<'a>(allocs: &'a [Allocation], valid: &[Attachment]) -> Vec<&'a Allocation> {
    let set: HashSet<(&str, &str)> = valid
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    let ids: HashSet<&str> = valid.iter().map(|a| a.container_id.as_str()).collect();
    allocs
        .iter()
        .filter(|a| match &a.ifname {
            Some(i) => !set.contains(&(a.container_id.as_str(), i.as_str())),
            None => !ids.contains(a.container_id.as_str()),
        })
        .collect()
}

/// DNS settings from the text of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut d = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => d.nameservers.extend(f.next().map(str::to_string)),
            Some("domain") => d.domain = f.next().map(str::to_string),
            Some("search") => d.search = f.map(str::to_string).collect(),
            Some("options") => d.options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests;
