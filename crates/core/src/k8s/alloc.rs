//! Picking a free ClusterIP or NodePort, as the API server's allocators do:
//! at random (so concurrent appliers rarely pick the same one and lose a
//! transaction), preferring the upper part of the range and leaving the
//! lower part for addresses users ask for by hand (KEP-3070 for ClusterIPs,
//! KEP-3668 for NodePorts). Never the network or broadcast address of the
//! service CIDR, nor the cluster DNS address.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

/// The default `--service-node-port-range`.
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// A small deterministic generator (splitmix64); the caller seeds it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A random (version 4 shaped) UUID, for `metadata.uid`.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

/// The size of the lower band kept for static picks (upstream
/// `calculateRangeOffset`): `size / step` within `[min, max]`, none when the
/// range is smaller than `min`.
fn static_band(size: u64, min: u64, max: u64, step: u64) -> u64 {
    if size < min {
        0
    } else {
        (size / step).clamp(min, max)
    }
}

/// Picks a free value among `size` candidates `0..size`: random in the
/// upper band `[offset, size)` first, then the lower band, scanning from
/// the random start with wrap-around.
fn pick(size: u64, offset: u64, rng: &mut Rng, free: impl Fn(u64) -> bool) -> Option<u64> {
    for (lo, hi) in [(offset, size), (0, offset)] {
        let n = hi.saturating_sub(lo);
        if n == 0 {
            continue;
        }
        let start = rng.below(n);
        for i in 0..n {
            let c = lo + (start + i) % n;
            if free(c) {
                return Some(c);
            }
        }
    }
    None
}

/// The addresses of a service CIDR a ClusterIP may have: all but the
/// network and broadcast addresses.
pub fn usable(cidr: &Ipv4Net) -> Option<RangeInclusive<u32>> {
    let first = u32::from(cidr.network()).checked_add(1)?;
    let last = u32::from(cidr.broadcast()).checked_sub(1)?;
    (cidr.prefix_len() <= 30 && first <= last).then_some(first..=last)
}

/// Why a requested ClusterIP cannot be had, worded as the API server does.
pub fn check_requested_ip(cidr: &Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    let ok = usable(cidr).is_some_and(|r| r.contains(&u32::from(ip)));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}{}",
            if cidr.contains(&ip) {
                " (without its network and broadcast addresses)"
            } else {
                ""
            }
        ))
    }
}

/// A free ClusterIP, never the DNS service address.
pub fn pick_cluster_ip(
    cidr: &Ipv4Net,
    dns: Ipv4Addr,
    rng: &mut Rng,
    taken: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let r = usable(cidr)?;
    let base = *r.start();
    let size = u64::from(r.end() - r.start()) + 1;
    let offset = static_band(size, 16, 256, 16);
    pick(size, offset, rng, |i| {
        let ip = Ipv4Addr::from(base + i as u32);
        ip != dns && !taken(ip)
    })
    .map(|i| Ipv4Addr::from(base + i as u32))
}

/// A free NodePort in 30000–32767.
pub fn pick_node_port(rng: &mut Rng, taken: impl Fn(u16) -> bool) -> Option<u16> {
    let base = *NODE_PORT_RANGE.start();
    let size = u64::from(NODE_PORT_RANGE.end() - base) + 1;
    let offset = static_band(size, 16, 128, 32);
    pick(size, offset, rng, |i| !taken(base + i as u16)).map(|i| base + i as u16)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn cluster_ips_skip_network_broadcast_and_dns() {
        let cidr: Ipv4Net = "10.0.0.0/29".parse().unwrap();
        let dns: Ipv4Addr = "10.0.0.3".parse().unwrap();
        let mut rng = Rng::new(1);
        let mut got = HashSet::new();
        while let Some(ip) = pick_cluster_ip(&cidr, dns, &mut rng, |ip| got.contains(&ip)) {
            got.insert(ip);
        }
        let mut v: Vec<String> = got.iter().map(|i| i.to_string()).collect();
        v.sort();
        assert_eq!(
            v,
            ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert!(check_requested_ip(&cidr, "10.0.0.0".parse().unwrap()).is_err());
        assert!(check_requested_ip(&cidr, "10.0.0.7".parse().unwrap()).is_err());
        assert!(
            check_requested_ip(&cidr, dns).is_ok(),
            "the DNS IP may be asked for"
        );
        let e = check_requested_ip(&cidr, "10.1.0.5".parse().unwrap()).unwrap_err();
        assert!(e.contains("10.0.0.0/29"), "{e}");
    }

    #[test]
    fn dynamic_picks_prefer_the_upper_band() {
        let cidr: Ipv4Net = "10.0.0.0/16".parse().unwrap();
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let ip =
                pick_cluster_ip(&cidr, "10.0.0.10".parse().unwrap(), &mut rng, |_| false).unwrap();
            // 65534 usable, static band 256: .0.1 – .1.0 are left for static picks.
            assert!(
                u32::from(ip) > u32::from(Ipv4Addr::new(10, 0, 1, 0)),
                "{ip}"
            );
        }
        for _ in 0..200 {
            let p = pick_node_port(&mut rng, |_| false).unwrap();
            assert!((30086..=32767).contains(&p), "{p}");
        }
        // When the upper band is full the lower one is used.
        let p = pick_node_port(&mut rng, |p| p >= 30086).unwrap();
        assert!((30000..30086).contains(&p));
        assert_eq!(pick_node_port(&mut rng, |_| true), None);
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = Rng::new(3).uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(Rng::new(3).uuid(), Rng::new(4).uuid());
    }
}
