//! `--store URL`, shared by every command that reads or writes the cluster.

use std::sync::Arc;

use aksnet_agent::kv::Kv;
use clap::Args;

pub const DEFAULT_STORE: &str = "sqlite:/var/lib/aksnet/cluster.db";

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Cluster store: sqlite:PATH or etcd://HOST:PORT[,HOST:PORT…].
    #[arg(long = "store", value_name = "URL", env = "AKSNET_STORE", default_value = DEFAULT_STORE)]
    pub url: String,
}

impl StoreArgs {
    pub fn open(&self) -> anyhow::Result<Arc<dyn Kv>> {
        Ok(aksnet_agent::store_url::open(&self.url)?)
    }
}
