//! The cluster as the lab reads it: the one cluster view every aksnet
//! component decodes the store with (`aksnet_core::cluster::view`), read in
//! one listing by `aksnet_cluster::read`. It is what the fabric programs its
//! routes from and what `check`, `status` and `diagram` show. A record that
//! does not decode is in [`Snapshot::problems`], and an address or block it
//! names stays taken (the lab never hands it to a new node).

pub use aksnet_cluster::ClusterView as Snapshot;

#[cfg(test)]
pub(crate) mod tests {
    use aksnet_core::cluster::{NodeRecord, RouteMode};

    pub fn record(name: &str, ip: &str, block: Option<&str>) -> NodeRecord {
        NodeRecord {
            block: block.map(|b| b.parse().unwrap()),
            ..NodeRecord::new(name, ip.parse().unwrap(), RouteMode::Fabric)
        }
    }
}
