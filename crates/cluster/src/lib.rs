//! aksnet-cluster: the cluster's state in the store, for everything that
//! reads or changes it (the agent, the lab, the CLI).
//!
//! - [`read`]: the whole cluster in one listing, decoded by the one decoder
//!   ([`aksnet_core::cluster::view`]) into a [`ClusterView`];
//! - [`claims`]: blocks, addresses and route slots, each claimed key by key
//!   with create-if-absent transactions, and given back;
//! - [`node`]: removing a node (`aksnet node remove`).
//!
//! The key layout and the records are pure data in `aksnet_core::cluster`;
//! this crate adds the store on top, so core stays free of I/O.

pub mod claims;
pub mod error;
pub mod network;
pub mod node;

pub use aksnet_core::cluster::view::{holder, At, ClaimAt, ClusterView, Entry, Problem};
pub use error::{ClusterError, Result};
pub use network::{init_network, read_network};
pub use node::{remove_node, Removed};

use aksnet_core::cluster::PREFIX;
use aksnet_store::Store;

/// Reads everything under `/aksnet/` in one listing (one revision).
pub fn read(store: &dyn Store) -> Result<ClusterView> {
    let listing = store.range(PREFIX)?;
    let view = ClusterView::decode(
        listing.revision,
        listing.kvs.iter().map(|e| Entry {
            key: &e.key,
            value: &e.value,
            mod_revision: e.mod_revision,
            lease: e.lease.map(|l| l.0),
        }),
    );
    Ok(view)
}
