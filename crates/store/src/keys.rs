//! Key helpers and the aksnet key layout (see `docs/store.md`).
//!
//! Every aksnet key lives under [`ROOT`]. CIDRs in keys are written
//! `ADDR-LEN` (`10.244.3.0-24`), as flannel does, so that a `/` always
//! separates path segments.

use ipnet::IpNet;

use crate::error::{Result, StoreError};

/// Longest key accepted (etcd's default request limit is far larger; this
/// only catches mistakes).
pub const MAX_KEY_LEN: usize = 4096;

/// Root of every aksnet key.
pub const ROOT: &str = "/aksnet/";
/// The cluster network object (JSON), written once by `cluster init`.
pub const CLUSTER_NETWORK: &str = "/aksnet/cluster/network";
/// Prefix of node objects: `/aksnet/nodes/<name>`.
pub const NODES: &str = "/aksnet/nodes/";
/// Prefix of node liveness keys, attached to the node's lease:
/// `/aksnet/alive/<name>`.
pub const ALIVE: &str = "/aksnet/alive/";
/// Prefix of pod CIDR block claims: `/aksnet/blocks/<cidr>` (value: owner).
pub const BLOCKS: &str = "/aksnet/blocks/";
/// Prefix of VNet address pool claims (azure mode):
/// `/aksnet/pools/<subnet>/<range>` (value: owner).
pub const POOLS: &str = "/aksnet/pools/";
/// Prefix of the fabric route table: `/aksnet/routes/<node>`.
pub const ROUTES: &str = "/aksnet/routes/";
/// Prefix of the route-table slots: `/aksnet/route-slots/<NNNN>`, one per
/// allowed route-table entry; claiming a slot bounds the table's size.
pub const ROUTE_SLOTS: &str = "/aksnet/route-slots/";

/// Writes a CIDR as a key segment: `10.244.3.0/24` → `10.244.3.0-24`.
pub fn cidr_segment(net: &IpNet) -> String {
    format!("{}-{}", net.addr(), net.prefix_len())
}

/// Reads a key segment written by [`cidr_segment`].
pub fn parse_cidr_segment(segment: &str) -> Option<IpNet> {
    let (addr, len) = segment.rsplit_once('-')?;
    format!("{addr}/{len}").parse().ok()
}

/// `/aksnet/nodes/<name>`.
pub fn node(name: &str) -> String {
    format!("{NODES}{name}")
}

/// `/aksnet/alive/<name>`.
pub fn alive(name: &str) -> String {
    format!("{ALIVE}{name}")
}

/// `/aksnet/blocks/<cidr>`.
pub fn block(net: &IpNet) -> String {
    format!("{BLOCKS}{}", cidr_segment(net))
}

/// The CIDR of a block key, if it is one.
pub fn parse_block(key: &str) -> Option<IpNet> {
    parse_cidr_segment(key.strip_prefix(BLOCKS)?)
}

/// `/aksnet/pools/<subnet>/` (the prefix of one subnet's pool claims).
pub fn pool_prefix(subnet: &IpNet) -> String {
    format!("{POOLS}{}/", cidr_segment(subnet))
}

/// `/aksnet/pools/<subnet>/<range>`.
pub fn pool(subnet: &IpNet, range: &IpNet) -> String {
    format!("{}{}", pool_prefix(subnet), cidr_segment(range))
}

/// The (subnet, range) of a pool key, if it is one.
pub fn parse_pool(key: &str) -> Option<(IpNet, IpNet)> {
    let (subnet, range) = key.strip_prefix(POOLS)?.split_once('/')?;
    Some((parse_cidr_segment(subnet)?, parse_cidr_segment(range)?))
}

/// `/aksnet/routes/<node>`.
pub fn route(node: &str) -> String {
    format!("{ROUTES}{node}")
}

/// `/aksnet/route-slots/<NNNN>` (zero-padded so that slots sort by number).
pub fn route_slot(index: u32) -> String {
    format!("{ROUTE_SLOTS}{index:04}")
}

/// Every route-table slot key of a table with `limit` entries.
pub fn route_slots(limit: u32) -> Vec<String> {
    (0..limit).map(route_slot).collect()
}

/// Rejects keys no backend can hold.
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: "keys must not be empty".into(),
        });
    }
    if key.len() > MAX_KEY_LEN {
        let shown: String = key.chars().take(64).collect();
        return Err(StoreError::InvalidKey {
            key: format!("{shown}..."),
            reason: format!("keys are at most {MAX_KEY_LEN} bytes"),
        });
    }
    Ok(())
}

/// The first key after every key that starts with `prefix` (etcd's
/// `range_end` for a prefix); `None` when there is no such key (the prefix
/// is empty or all `0xff`), meaning "to the end".
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn layout_round_trips() {
        let net: IpNet = "10.244.3.0/24".parse().unwrap();
        assert_eq!(block(&net), "/aksnet/blocks/10.244.3.0-24");
        assert_eq!(parse_block(&block(&net)), Some(net));
        assert_eq!(parse_block("/aksnet/blocks/nonsense"), None);
        assert_eq!(parse_block("/aksnet/nodes/a"), None);
        let subnet: IpNet = "10.224.0.0/16".parse().unwrap();
        let range: IpNet = "10.224.1.16/28".parse().unwrap();
        assert_eq!(
            pool(&subnet, &range),
            "/aksnet/pools/10.224.0.0-16/10.224.1.16-28"
        );
        assert_eq!(parse_pool(&pool(&subnet, &range)), Some((subnet, range)));
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert_eq!(parse_block(&block(&v6)), Some(v6));
        assert_eq!(node("n1"), "/aksnet/nodes/n1");
        assert_eq!(route("n1"), "/aksnet/routes/n1");
        assert_eq!(alive("n1"), "/aksnet/alive/n1");
        assert_eq!(route_slot(7), "/aksnet/route-slots/0007");
        assert_eq!(route_slots(400).len(), 400);
        assert!(route_slots(400).windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn key_checks() {
        assert!(check_key("").is_err());
        assert!(check_key("/a").is_ok());
        assert!(check_key(&"é".repeat(MAX_KEY_LEN)).is_err());
    }
}
