//! Store URLs: `sqlite:PATH` and `etcd://HOST:PORT[,HOST:PORT…]`, opened
//! through `aksnet-store` and seen through the agent's [`Kv`] interface.

use std::sync::Arc;

use crate::kv::{Kv, KvError};

pub fn open(url: &str) -> Result<Arc<dyn Kv>, KvError> {
    Err(KvError::Backend(format!(
        "cannot open {url}: no store backend in this build yet"
    )))
}
