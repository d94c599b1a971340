//! Address arithmetic on `IpAddr` through `u128`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as a number (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of the same family as `like` with value `n` (truncated to
/// 32 bits for IPv4).
pub fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// `ip + 1`, or `None` past the end of the family.
pub fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

/// True when both addresses are of the same family.
pub fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let a: IpAddr = "10.0.0.255".parse().unwrap();
        assert_eq!(next(a).unwrap().to_string(), "10.0.1.0");
        assert!(next("255.255.255.255".parse().unwrap()).is_none());
        assert_eq!(from_u128(a, to_u128(a)), a);
        let b: IpAddr = "fd00::ffff".parse().unwrap();
        assert_eq!(next(b).unwrap().to_string(), "fd00::1:0");
        assert!(!same_family(a, b));
    }
}
