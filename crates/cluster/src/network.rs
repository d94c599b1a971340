//! The cluster network `aksnet cluster init` (or `lab up`) stores.

use aksnet_core::cluster::{ClusterNetwork, NETWORK_KEY};
use aksnet_store::claim::create_if_absent;
use aksnet_store::Store;

use crate::error::{encode, ClusterError, Result};

/// Reads the stored cluster network.
pub fn read_network(store: &dyn Store) -> Result<ClusterNetwork> {
    let e = store
        .get(NETWORK_KEY)?
        .ok_or_else(|| ClusterError::NotInitialised {
            key: NETWORK_KEY.to_string(),
        })?;
    serde_json::from_slice(&e.value).map_err(|source| ClusterError::BadValue { key: e.key, source })
}

/// Stores the cluster network if the store holds none (create-if-absent);
/// returns whether it was created. A store that holds another network is
/// refused ([`ClusterError::OtherNetwork`]); the same one is fine.
pub fn init_network(store: &dyn Store, net: &ClusterNetwork) -> Result<bool> {
    let value = encode(NETWORK_KEY, net)?;
    if create_if_absent(store, NETWORK_KEY, &value, None)?.is_ok() {
        return Ok(true);
    }
    if read_network(store)? != *net {
        return Err(ClusterError::OtherNetwork {
            key: NETWORK_KEY.to_string(),
        });
    }
    Ok(false)
}
