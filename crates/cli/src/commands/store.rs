//! `--store URL`, shared by every command that reads or writes the cluster.

use std::sync::Arc;

use aksnet_store::{Store, DEFAULT_STORE_URL};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Cluster store: sqlite:PATH or etcd://HOST:PORT[,HOST:PORT…].
    #[arg(long = "store", value_name = "URL", env = "AKSNET_STORE", default_value = DEFAULT_STORE_URL)]
    pub url: String,
}

impl StoreArgs {
    pub fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(aksnet_store::open(&self.url)?)
    }

    /// Opens the store for a command that only reads it: a missing SQLite
    /// file is an error, never created.
    pub fn open_existing(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(aksnet_store::open_existing(&self.url)?)
    }
}
