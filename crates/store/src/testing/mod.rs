//! Test support, enabled by the `testing` feature: throwaway SQLite stores
//! and etcd servers, and claim races.
pub mod etcd;
pub mod pki;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::claim::{ClaimOutcome, Claimer};
use crate::error::Result;
use crate::store::Store;
use crate::types::LeaseId;

/// A SQLite store in a fresh temporary directory
/// (`sqlite:<tmp>/cluster.db`), removed when this is dropped.
#[derive(Debug)]
pub struct TempSqlite {
    pub store: Arc<dyn Store>,
    /// The store's URL, for other processes (`aksnet … --store URL`).
    pub url: String,
    dir: tempfile::TempDir,
}

impl TempSqlite {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("aksnet-store-")
            .tempdir()
            .map_err(|e| crate::StoreError::InvalidArgument(format!("temporary directory: {e}")))?;
        let url = format!("sqlite:{}", dir.path().join("cluster.db").display());
        let store = crate::open(&url)?;
        Ok(TempSqlite { store, url, dir })
    }

    /// The temporary directory (for other files of the test).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl std::ops::Deref for TempSqlite {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

/// One claimer's result in [`race_claims`].
#[derive(Debug, Clone)]
pub struct RaceResult {
    /// The claimer's name (`claimer-N`), also its claim value.
    pub name: String,
    pub outcome: ClaimOutcome,
    /// How long this claimer's claim took.
    pub took: Duration,
}

/// Starts `claimers` threads at once, each claiming one key among
/// `candidates` (all under `prefix`) with its own name as value, and
/// returns every outcome. With `spread`, claimers start at a candidate
/// seeded by their name; without, they all fight for the first free one.
pub fn race_claims(
    store: Arc<dyn Store>,
    claimers: usize,
    prefix: &str,
    candidates: &[String],
    spread: bool,
    lease: Option<LeaseId>,
) -> Result<Vec<RaceResult>> {
    let barrier = Arc::new(Barrier::new(claimers));
    let candidates = Arc::new(candidates.to_vec());
    let handles: Vec<_> = (0..claimers)
        .map(|i| {
            let (store, barrier, candidates) = (
                Arc::clone(&store),
                Arc::clone(&barrier),
                Arc::clone(&candidates),
            );
            let prefix = prefix.to_owned();
            std::thread::spawn(move || -> Result<RaceResult> {
                let name = format!("claimer-{i}");
                barrier.wait();
                let started = Instant::now();
                let mut claimer = Claimer::new(&*store, name.clone().into_bytes())
                    .lease(lease)
                    .skip_taken_under(prefix);
                if spread {
                    claimer = claimer.spread_by(&name);
                }
                let outcome = claimer.claim_first_free(candidates.iter().cloned())?;
                Ok(RaceResult {
                    name,
                    outcome,
                    took: started.elapsed(),
                })
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(crate::StoreError::InvalidArgument(
                    "a claimer thread panicked".into(),
                ))
            })
        })
        .collect()
}
