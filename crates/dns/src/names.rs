//! The names of the Kubernetes DNS schema: dashed IPs, and building
//! absolute names from parts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

use crate::error::DnsError;

/// An IP as one DNS label, as the schema spells endpoint and pod names:
/// `10-244-1-5`, and `fd00--1` for `fd00::1` (`:` becomes `-`).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The IP a dashed label stands for, read as CoreDNS reads it: three
/// dashes and no `--` is IPv4, anything else is tried as IPv6.
pub fn parse_dashed(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3 && !label.contains("--") {
        label
            .replace('-', ".")
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4)
    } else {
        label
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    }
}

/// An absolute name from dotted text (a trailing dot is optional).
pub fn absolute(text: &str) -> Result<Name, DnsError> {
    let mut name = Name::from_ascii(text).map_err(|e| DnsError::BadName {
        name: text.to_string(),
        reason: e.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// `label.parent`: one more label in front of an absolute name.
pub fn child(label: &str, parent: &Name) -> Result<Name, DnsError> {
    parent.prepend_label(label).map_err(|e| DnsError::BadName {
        name: format!("{label}.{parent}"),
        reason: e.to_string(),
    })
}

/// The cluster domain as given on the command line (`cluster.local`,
/// `cluster.local.`), lower-cased and checked.
pub fn cluster_domain(text: &str) -> Result<Name, DnsError> {
    let trimmed = text.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(DnsError::BadName {
            name: text.to_string(),
            reason: "the cluster domain may not be the root; use e.g. cluster.local".into(),
        });
    }
    Ok(absolute(trimmed)?.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_dashes_both_ways() {
        let ip: IpAddr = "10.244.1.5".parse().unwrap();
        assert_eq!(dashed(ip), "10-244-1-5");
        assert_eq!(parse_dashed("10-244-1-5"), Some(ip));
    }

    #[test]
    fn ipv6_dashes_both_ways() {
        let ip: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(dashed(ip), "fd00--1");
        assert_eq!(parse_dashed("fd00--1"), Some(ip));
        // The expanded form names the same address.
        assert_eq!(parse_dashed("fd00-0-0-0-0-0-0-1"), Some(ip));
    }

    #[test]
    fn labels_that_are_no_ip() {
        assert_eq!(parse_dashed("web"), None);
        assert_eq!(parse_dashed("10-244-1"), None);
        assert_eq!(parse_dashed("10-244-1-500"), None);
        assert_eq!(parse_dashed("10-244-1-5-6"), None);
        assert_eq!(parse_dashed("-"), None);
        // A `--` makes it IPv6, as CoreDNS reads it: 10::244:1:5.
        assert_eq!(parse_dashed("10--244-1-5"), "10::244:1:5".parse().ok());
    }

    #[test]
    fn cluster_domain_is_absolute_and_lower_case() {
        let d = cluster_domain("Cluster.Local").unwrap();
        assert_eq!(d.to_ascii(), "cluster.local.");
        assert_eq!(cluster_domain("cluster.local.").unwrap(), d);
        assert!(cluster_domain(".").is_err());
        assert!(cluster_domain("a..b").is_err());
    }
}
