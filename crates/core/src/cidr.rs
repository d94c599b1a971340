//! IPv4 CIDR arithmetic shared by the planner, the IPAM and the agent.
//!
//! Prefixes are kept exactly as the user wrote them (`10.240.0.5/16` stays
//! `10.240.0.5/16`) so the planner can report host bits as a design error
//! instead of silently truncating; every computation here works on the
//! network address.

use std::net::Ipv4Addr;
use std::str::FromStr;

pub use ipnet::Ipv4Net;

/// Why a string is not a usable IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrParseError {
    #[error("'{0}' has no prefix length; write it as ADDRESS/PREFIX, e.g. 10.244.0.0/16")]
    MissingPrefix(String),
    #[error("'{0}' is an IPv6 range; aksnet plans IPv4 clusters only today")]
    Ipv6(String),
    #[error("'{input}': '{address}' is not an IPv4 address")]
    BadAddress { input: String, address: String },
    #[error("'{input}': prefix length '{prefix}' is not a number from 0 to 32")]
    BadPrefix { input: String, prefix: String },
}

/// Parses `A.B.C.D/N`, keeping host bits (see [`has_host_bits`]).
pub fn parse_cidr(input: &str) -> Result<Ipv4Net, CidrParseError> {
    let s = input.trim();
    let Some((addr, prefix)) = s.split_once('/') else {
        if s.contains(':') {
            return Err(CidrParseError::Ipv6(s.to_string()));
        }
        // "no prefix length" only for what is an address; anything else is
        // not an address at all.
        if Ipv4Addr::from_str(s).is_err() {
            return Err(CidrParseError::BadAddress {
                input: s.to_string(),
                address: s.to_string(),
            });
        }
        return Err(CidrParseError::MissingPrefix(s.to_string()));
    };
    if addr.contains(':') {
        return Err(CidrParseError::Ipv6(s.to_string()));
    }
    let address = Ipv4Addr::from_str(addr).map_err(|_| CidrParseError::BadAddress {
        input: s.to_string(),
        address: addr.to_string(),
    })?;
    let bad_prefix = || CidrParseError::BadPrefix {
        input: s.to_string(),
        prefix: prefix.to_string(),
    };
    // Only plain decimal digits: "+8" or " 8" parse as u8 in some forms.
    if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_prefix());
    }
    let len: u8 = prefix.parse().map_err(|_| bad_prefix())?;
    Ipv4Net::new(address, len).map_err(|_| bad_prefix())
}

/// Parses a bare IPv4 address with an error that names the input.
pub fn parse_ipv4(input: &str) -> Result<Ipv4Addr, CidrParseError> {
    let s = input.trim();
    if s.contains(':') {
        return Err(CidrParseError::Ipv6(s.to_string()));
    }
    Ipv4Addr::from_str(s).map_err(|_| CidrParseError::BadAddress {
        input: s.to_string(),
        address: s.to_string(),
    })
}

/// True when the address part has bits set beyond the prefix (`10.0.0.5/24`).
pub fn has_host_bits(net: &Ipv4Net) -> bool {
    net.addr() != net.network()
}

/// The canonical form: the network address with the same prefix length.
pub fn canonical(net: &Ipv4Net) -> Ipv4Net {
    net.trunc()
}

/// Number of addresses in the range (2^(32 - prefix)); fits a u64 even for /0.
pub fn size(net: &Ipv4Net) -> u64 {
    1u64 << (32 - u32::from(net.prefix_len()))
}

/// First address of the range (the network address).
pub fn first(net: &Ipv4Net) -> Ipv4Addr {
    net.network()
}

/// Last address of the range (the broadcast address for prefixes below /31).
pub fn last(net: &Ipv4Net) -> Ipv4Addr {
    net.broadcast()
}

/// True when the two ranges share at least one address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    let (a0, a1) = (u32::from(first(a)), u32::from(last(a)));
    let (b0, b1) = (u32::from(first(b)), u32::from(last(b)));
    a0 <= b1 && b0 <= a1
}

/// True when every address of `inner` lies in `outer`.
pub fn contains_net(outer: &Ipv4Net, inner: &Ipv4Net) -> bool {
    u32::from(first(outer)) <= u32::from(first(inner))
        && u32::from(last(inner)) <= u32::from(last(outer))
}

/// True when the address lies in the range.
pub fn contains_addr(net: &Ipv4Net, addr: Ipv4Addr) -> bool {
    let a = u32::from(addr);
    u32::from(first(net)) <= a && a <= u32::from(last(net))
}

/// The address `offset` places after the network address, if still inside.
pub fn nth_addr(net: &Ipv4Net, offset: u64) -> Option<Ipv4Addr> {
    if offset >= size(net) {
        return None;
    }
    // offset < size <= 2^32, and network + offset stays within the range.
    Some(Ipv4Addr::from(u32::from(first(net)) + offset as u32))
}

/// Offset of `addr` from the network address, if inside.
pub fn offset_of(net: &Ipv4Net, addr: Ipv4Addr) -> Option<u64> {
    contains_addr(net, addr).then(|| u64::from(u32::from(addr) - u32::from(first(net))))
}

/// How many `/new_prefix` subnets fit in `net` (0 when `new_prefix` is shorter).
pub fn subnet_count(net: &Ipv4Net, new_prefix: u8) -> u64 {
    if new_prefix < net.prefix_len() || new_prefix > 32 {
        return 0;
    }
    1u64 << (new_prefix - net.prefix_len())
}

/// The `index`-th `/new_prefix` subnet of `net`, in address order.
pub fn nth_subnet(net: &Ipv4Net, new_prefix: u8, index: u64) -> Option<Ipv4Net> {
    if index >= subnet_count(net, new_prefix) {
        return None;
    }
    let step = 1u64 << (32 - u32::from(new_prefix));
    let base = u64::from(u32::from(first(net))) + index * step;
    let base = u32::try_from(base).ok()?;
    Ipv4Net::new(Ipv4Addr::from(base), new_prefix).ok()
}

/// The longest prefix (smallest range) holding at least `count` addresses,
/// or `None` when even a /0 is too small.
pub fn min_prefix_for(count: u64) -> Option<u8> {
    if count > 1u64 << 32 {
        return None;
    }
    (0..=32u8)
        .rev()
        .find(|p| (1u64 << (32 - u32::from(*p))) >= count)
}

/// Groups a number with commas, as the planner's messages show figures
/// ("1,581 needed").
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> Ipv4Net {
        parse_cidr(s).unwrap()
    }

    #[test]
    fn parses_and_keeps_host_bits() {
        let n = net("10.240.0.5/16");
        assert!(has_host_bits(&n));
        assert_eq!(canonical(&n).to_string(), "10.240.0.0/16");
        assert!(!has_host_bits(&net("10.240.0.0/16")));
    }

    #[test]
    fn parse_errors_name_the_input() {
        let cases = [
            ("10.0.0.0", "no prefix length"),
            ("10.0.0/8", "not an IPv4 address"),
            ("10.0.0.0/33", "prefix length '33'"),
            ("10.0.0.0/+8", "prefix length '+8'"),
            ("10.0.0.0/", "prefix length ''"),
            ("fd00::/64", "IPv6"),
            // Not an address at all: not "no prefix length" (issue 16).
            ("banana", "'banana' is not an IPv4 address"),
        ];
        for (input, want) in cases {
            let err = parse_cidr(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn sizes_and_bounds() {
        assert_eq!(size(&net("0.0.0.0/0")), 1 << 32);
        assert_eq!(size(&net("10.0.0.0/22")), 1024);
        assert_eq!(last(&net("10.0.0.0/22")), Ipv4Addr::new(10, 0, 3, 255));
        assert_eq!(min_prefix_for(1586), Some(21));
        assert_eq!(min_prefix_for(1), Some(32));
        assert_eq!(min_prefix_for(0), Some(32));
        assert_eq!(min_prefix_for((1 << 32) + 1), None);
        assert_eq!(
            nth_subnet(&net("10.244.0.0/16"), 24, 3),
            Some(net("10.244.3.0/24"))
        );
        assert_eq!(nth_subnet(&net("10.244.0.0/16"), 24, 256), None);
        assert_eq!(thousands(1581), "1,581");
        assert_eq!(thousands(65531), "65,531");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    fn any_net() -> impl Strategy<Value = Ipv4Net> {
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Ipv4Net::new(Ipv4Addr::from(a), p).unwrap())
    }

    proptest! {
        #[test]
        fn text_round_trips(n in any_net()) {
            prop_assert_eq!(parse_cidr(&n.to_string()).unwrap(), n);
        }

        #[test]
        fn overlap_is_symmetric_and_matches_membership(a in any_net(), b in any_net()) {
            prop_assert_eq!(overlaps(&a, &b), overlaps(&b, &a));
            // Aligned ranges either nest or are disjoint.
            let nested = contains_net(&a, &b) || contains_net(&b, &a);
            prop_assert_eq!(overlaps(&a, &b), nested);
            // An overlap always contains the later network address.
            if overlaps(&a, &b) {
                let later = std::cmp::max(first(&a), first(&b));
                prop_assert!(contains_addr(&a, later) && contains_addr(&b, later));
            }
        }

        #[test]
        fn subnets_tile_the_parent(n in any_net(), extra in 0u8..=8) {
            let p = (n.prefix_len() + extra).min(32);
            let count = subnet_count(&n, p);
            prop_assert_eq!(count * size(&nth_subnet(&n, p, 0).unwrap()), size(&n));
            let lastsub = nth_subnet(&n, p, count - 1).unwrap();
            prop_assert_eq!(last(&lastsub), last(&n));
            prop_assert!(contains_net(&n, &lastsub));
            if count > 1 {
                let s0 = nth_subnet(&n, p, 0).unwrap();
                let s1 = nth_subnet(&n, p, 1).unwrap();
                prop_assert!(!overlaps(&s0, &s1));
            }
        }

        #[test]
        fn min_prefix_is_tight(count in 1u64..=(1u64 << 32)) {
            let p = min_prefix_for(count).unwrap();
            prop_assert!(1u64 << (32 - u32::from(p)) >= count);
            if p < 32 {
                prop_assert!(1u64 << (32 - u32::from(p) - 1) < count);
            }
        }

        #[test]
        fn nth_addr_and_offset_are_inverse(n in any_net(), off in any::<u64>()) {
            let off = off % size(&n);
            let a = nth_addr(&n, off).unwrap();
            prop_assert_eq!(offset_of(&n, a), Some(off));
            prop_assert_eq!(nth_addr(&n, size(&n)), None);
        }

        #[test]
        fn parse_never_panics(s in ".{0,24}") {
            let _ = parse_cidr(&s);
        }
    }
}
