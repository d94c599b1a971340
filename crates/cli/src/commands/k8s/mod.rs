//! `aksnet apply|get|delete`: Kubernetes objects in the cluster store, as
//! kubectl handles them. The pure half (types, validation, planning,
//! endpoints) is `aksnet_core::k8s`; this module reads the store once per
//! attempt, runs each plan as one transaction, and prints.

pub mod apply;
pub mod delete;
pub mod get;
mod input;
mod kubelet;
mod netpol_status;

use std::sync::Arc;

use aksnet_core::cluster::NETWORK_KEY;
use aksnet_core::k8s::apply::{Expect, KeyWrite};
use aksnet_core::k8s::store::K8S_PREFIX;
use aksnet_core::k8s::K8sState;
use aksnet_core::spec::ClusterNetwork;
use aksnet_lab::state::LabDir;
use aksnet_store::{Compare, CompareOp, Store, Txn, TxnOp, DEFAULT_STORE_URL};
use clap::Args;

/// `--store URL | --lab NAME`.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Cluster store: sqlite:PATH or etcd://HOST:PORT[,HOST:PORT…] (default $AKSNET_STORE, else sqlite:/var/lib/aksnet/cluster.db).
    #[arg(long = "store", value_name = "URL", conflicts_with = "lab")]
    pub store: Option<String>,
    /// The store of the lab NAME (sqlite:/run/aksnet/lab/NAME/cluster.db).
    #[arg(long, value_name = "NAME")]
    pub lab: Option<String>,
}

/// Where the objects go.
#[derive(Debug, Clone)]
pub enum Target {
    Store(String),
    Lab(LabDir),
}

impl TargetArgs {
    /// The store URL, or the lab (which must exist). `AKSNET_STORE` is the
    /// default store, as for the other commands.
    pub fn resolve(&self) -> Result<Target, String> {
        if let Some(name) = &self.lab {
            let dir = LabDir::new(name).map_err(|e| e.to_string())?;
            if !dir.exists() {
                return Err(format!(
                    "no lab named '{name}' ({} does not exist); start one with `aksnet lab up --name {name}`, or use --store URL",
                    dir.state_path().display()
                ));
            }
            return Ok(Target::Lab(dir));
        }
        Ok(Target::Store(self.store.clone().unwrap_or_else(|| {
            std::env::var("AKSNET_STORE").unwrap_or_else(|_| DEFAULT_STORE_URL.to_string())
        })))
    }
}

impl Target {
    pub fn url(&self) -> anyhow::Result<String> {
        Ok(match self {
            Target::Store(u) => u.clone(),
            Target::Lab(d) => d.store_url()?,
        })
    }

    pub fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Target::Store(u) => aksnet_store::open(u)?,
            // The lab's own store, with its TLS settings.
            Target::Lab(d) => aksnet_lab::store::open(d)?,
        })
    }
}

/// One consistent read: the cluster network and every Kubernetes object
/// and allocation, at one revision.
pub struct Snapshot {
    pub revision: i64,
    pub network: Option<(ClusterNetwork, i64)>,
    pub k8s: K8sState,
}

/// The one read `apply`, `get` and `delete` make: a read-only transaction
/// of the network key and the `/aksnet/k8s/` range, so both come from the
/// same revision. (The cluster view of the whole store decodes the same
/// keys with [`K8sState::insert`].)
pub fn read(store: &dyn Store) -> anyhow::Result<Snapshot> {
    let r = store.txn(Txn::new().and_then([TxnOp::get(NETWORK_KEY), TxnOp::range(K8S_PREFIX)]))?;
    let network = match r.get(0) {
        Some(kv) => Some((
            serde_json::from_slice(&kv.value).map_err(|e| {
                anyhow::anyhow!("{NETWORK_KEY} in {} does not decode: {e}", store.url())
            })?,
            kv.mod_revision,
        )),
        None => None,
    };
    let mut k8s = K8sState::default();
    for kv in r.range(1) {
        k8s.insert(&kv.key, &kv.value, kv.mod_revision);
    }
    for bad in &k8s.bad {
        tracing::warn!(key = %bad.key, reason = %bad.reason, "a stored object does not decode");
    }
    Ok(Snapshot {
        revision: r.revision,
        network,
        k8s,
    })
}

fn compare(key: &str, e: Expect) -> Compare {
    match e {
        Expect::Absent => Compare::absent(key),
        Expect::Exists => Compare::exists(key),
        Expect::ModRevision(r) => Compare::mod_revision(key, CompareOp::Equal, r),
    }
}

/// A plan as one transaction: every write compares its key with what the
/// plan read, so a concurrent change of any of them fails the whole
/// transaction (and the caller plans again).
pub fn transaction(
    writes: &[KeyWrite],
    checks: &[(String, Expect)],
    network_rev: Option<i64>,
) -> Txn {
    let mut compares: Vec<Compare> = writes.iter().map(|w| compare(&w.key, w.expect)).collect();
    compares.extend(checks.iter().map(|(k, e)| compare(k, *e)));
    if let Some(r) = network_rev {
        compares.push(Compare::mod_revision(NETWORK_KEY, CompareOp::Equal, r));
    }
    let ops = writes.iter().map(|w| match &w.value {
        Some(v) => TxnOp::put(w.key.clone(), v.clone()),
        None => TxnOp::delete(w.key.clone()),
    });
    Txn::new().when(compares).and_then(ops)
}

/// How often a plan is redone after losing a race before giving up.
pub const ATTEMPTS: u32 = 64;

/// Too many writes for one transaction (etcd's `--max-txn-ops`).
pub fn too_big(txn: &Txn) -> Option<String> {
    let n = txn.success.len().max(txn.compares.len());
    (n > Txn::MAX_OPS).then(|| {
        format!(
            "this needs {n} keys in one transaction; the store takes at most {} (etcd's limit), so split the input into smaller files and apply them one by one",
            Txn::MAX_OPS
        )
    })
}

/// A seed for the random picks: differs between processes and calls.
pub fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `-o` of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GetOutput {
    Table,
    Json,
    Yaml,
}

#[cfg(test)]
mod tests {
    use aksnet_core::k8s::apply::{plan_apply, ApplyContext, Input};
    use aksnet_core::k8s::documents::{parse, read as read_doc, Parsed};
    use aksnet_core::planner;
    use aksnet_core::spec::SpecInput;

    use super::*;

    fn input(yaml: &str) -> Vec<Input> {
        parse("t.yaml", yaml)
            .unwrap()
            .into_iter()
            .map(|d| match read_doc(d).unwrap() {
                Parsed::Object { object, source } => Input {
                    object: *object,
                    source,
                },
                Parsed::Ignored(_) => unreachable!(),
            })
            .collect()
    }

    /// Two appliers that read the same revision and pick the same
    /// ClusterIP and NodePort (same seed): the store takes the first
    /// transaction and refuses the second, whose compares no longer hold.
    #[test]
    fn the_second_of_two_identical_picks_loses() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            aksnet_store::open(&format!("sqlite:{}", dir.path().join("c.db").display())).unwrap();
        let net = planner::plan_input(&SpecInput::default()).unwrap().network;
        store
            .put(NETWORK_KEY, &serde_json::to_vec(&net).unwrap(), None)
            .unwrap();
        let snap = read(store.as_ref()).unwrap();
        let (net, rev) = snap.network.clone().unwrap();
        let ctx = ApplyContext {
            now: "2026-01-01T00:00:00Z".into(),
            seed: 42,
        };
        let svc = |name: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{type: NodePort, ports: [{{port: 80}}]}}\n")
        };
        let a = plan_apply(&snap.k8s, &net, &ctx, input(&svc("a"))).unwrap();
        let b = plan_apply(&snap.k8s, &net, &ctx, input(&svc("b"))).unwrap();
        let pick = |p: &aksnet_core::k8s::apply::Plan| {
            let mut keys: Vec<String> = p
                .writes
                .iter()
                .map(|w| w.key.clone())
                .filter(|k| !k.contains("/services/"))
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(pick(&a), pick(&b), "same seed, same picks");
        let ta = transaction(&a.writes, &a.checks, Some(rev));
        let tb = transaction(&b.writes, &b.checks, Some(rev));
        assert!(store.txn(ta).unwrap().succeeded);
        assert!(
            !store.txn(tb).unwrap().succeeded,
            "b must lose: its picks are taken"
        );
        // Planned again from a fresh read, b gets other ones.
        let snap = read(store.as_ref()).unwrap();
        let b2 = plan_apply(&snap.k8s, &net, &ctx, input(&svc("b"))).unwrap();
        assert!(pick(&b2).iter().all(|k| !pick(&a).contains(k)));
        assert!(
            store
                .txn(transaction(&b2.writes, &b2.checks, Some(rev)))
                .unwrap()
                .succeeded
        );
    }
}
