//! Names and ownership tags derived from (network, container ID, ifname).
//!
//! * The host end of a pod's veth is `veth` + 11 hex digits of a hash of
//!   (container ID, ifname): DEL finds it without entering the pod's
//!   namespace, even when that namespace is gone.
//! * Kernel objects that GC must be able to attribute carry a tag: the
//!   host veth's alias and the comments of nftables rules. A tag names the
//!   network, so GC of one network never touches another's objects.

/// FNV-1a, 64 bits.
pub fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The host-side veth name of (container ID, ifname): 15 characters.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let h = fnv64(&[container_id, ifname]);
    format!("veth{:011x}", h & 0x0fff_ffff_ffff)
}

/// Longest tag (nft comments are limited to 128 bytes with the NUL).
const MAX_TAG: usize = 127;

/// The tag prefix shared by every object of network `net`.
pub fn net_prefix(net: &str) -> String {
    let p = format!("aksnet {net} ");
    if p.len() <= 80 {
        p
    } else {
        format!("aksnet h{:016x} ", fnv64(&[net]))
    }
}

/// The tag of attachment (`net`, `container_id`, `ifname`).
pub fn attachment_tag(net: &str, container_id: &str, ifname: &str) -> String {
    let p = net_prefix(net);
    let full = format!("{p}{container_id} {ifname}");
    if full.len() <= MAX_TAG {
        full
    } else {
        format!("{p}h{:016x}", fnv64(&[container_id, ifname]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_and_short() {
        let a = host_veth_name("abc", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        assert_eq!(a, host_veth_name("abc", "eth0"));
        assert_ne!(a, host_veth_name("abc", "eth1"));
        assert_ne!(host_veth_name("ab", "ceth0"), host_veth_name("abc", "eth0"));
    }

    #[test]
    fn tags_fit_and_carry_the_network() {
        let id = "f".repeat(64);
        let t = attachment_tag("kubenet", &id, "eth0");
        assert_eq!(t, format!("aksnet kubenet {id} eth0"));
        assert!(t.starts_with(&net_prefix("kubenet")));
        let long = "n".repeat(100);
        let t = attachment_tag(&long, &id, "eth0");
        assert!(t.len() <= MAX_TAG);
        assert!(t.starts_with(&net_prefix(&long)));
        let t2 = attachment_tag("x".repeat(60).as_str(), &id, "eth0");
        assert!(t2.len() <= MAX_TAG);
        assert_ne!(attachment_tag("x".repeat(60).as_str(), &id, "eth1"), t2);
    }
}
