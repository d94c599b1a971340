//! `--store URL` (and, for `etcds://`, `--etcd-ca`, `--etcd-cert`,
//! `--etcd-key`), shared by every command that reads or writes the cluster.

use std::path::PathBuf;
use std::sync::Arc;

use aksnet_store::{EtcdTls, Store, DEFAULT_STORE_URL};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Cluster store: sqlite:PATH, etcd://HOST:PORT[,HOST:PORT…] or etcds://HOST:PORT[,…] (TLS).
    #[arg(long = "store", value_name = "URL", env = "AKSNET_STORE", default_value = DEFAULT_STORE_URL)]
    pub url: String,
    #[command(flatten)]
    pub tls: EtcdTlsArgs,
}

/// The TLS files of an `etcds://` store.
#[derive(Args, Debug, Clone, Default)]
pub struct EtcdTlsArgs {
    /// etcds://: PEM file of the CA that signed the etcd servers' certificates.
    #[arg(long = "etcd-ca", value_name = "FILE", env = "AKSNET_ETCD_CA")]
    pub ca: Option<PathBuf>,
    /// etcds://: PEM file of the client certificate (for an etcd with --client-cert-auth).
    #[arg(long = "etcd-cert", value_name = "FILE", env = "AKSNET_ETCD_CERT")]
    pub cert: Option<PathBuf>,
    /// etcds://: PEM file of the client certificate's private key.
    #[arg(long = "etcd-key", value_name = "FILE", env = "AKSNET_ETCD_KEY")]
    pub key: Option<PathBuf>,
}

impl EtcdTlsArgs {
    pub fn tls(&self) -> EtcdTls {
        EtcdTls {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

impl StoreArgs {
    pub fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(aksnet_store::open_with(&self.url, &self.tls.tls())?)
    }

    /// Opens the store for a command that only reads it: a missing SQLite
    /// file is an error, never created.
    pub fn open_existing(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(aksnet_store::open_existing(&self.url, &self.tls.tls())?)
    }
}
