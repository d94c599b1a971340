//! The lab as its pods' kubelet (and their Deployment controller): makes
//! the lab's pods the Pods of its store. `aksnet apply --lab` and `delete
//! --lab` call [`sync`] after their transaction; `lab up` and `lab add-pod`
//! [`record`] the pods they make as Pods in `default`; `lab rm-pod` and
//! `lab rm-node` delete the Pods of the pods they remove and sync, so a
//! Deployment gets its replicas back on the nodes that are left.
//!
//! One sync: (1) the Deployment controller writes the Pods each Deployment
//! needs and deletes the ones it no longer does; (2) every store Pod gets a
//! lab pod (node from `spec.nodeName`, else the least loaded), every lab
//! pod whose Pod is gone is removed, and a Pod whose container ports
//! changed gets its probe server restarted on them; (3) each running Pod's
//! `spec.nodeName` and `status` (`podIP`, `hostIP`, phase `Running`,
//! `Ready`) are written back, so the Services' endpoints, derived from the
//! Pods on read, follow.

pub mod deployments;
pub mod schedule;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_core::cluster::{self, NodeRecord};

use aksnet_core::k8s::alloc::Rng;
use aksnet_core::k8s::store::{object_key, K8S_PREFIX};
use aksnet_core::k8s::time::rfc3339;
use aksnet_core::k8s::{K8sState, Kind, Object, ObjectId, Pod};
use aksnet_store::{Compare, CompareOp, Store, Txn, TxnOp};
use serde::Serialize;

use crate::error::{LabError, Result};
use crate::pods;
use crate::state::{LabDir, LabState};
use schedule::Action;

/// How often a write that lost a race is planned again.
const ATTEMPTS: u32 = 16;
/// Writes per transaction (each is one compare and one op, within etcd's
/// 128-operation limit).
const BATCH: usize = 64;

/// What one sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Pods the Deployment controller created and deleted in the store.
    pub pods_created: Vec<String>,
    pub pods_deleted: Vec<String>,
    /// Lab pods started (`NAMESPACE/NAME on NODE (IP)`) and stopped.
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    /// Pods the lab does not run, with why.
    pub pending: Vec<String>,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.pods_created.is_empty()
            && self.pods_deleted.is_empty()
            && self.started.is_empty()
            && self.stopped.is_empty()
            && self.pending.is_empty()
    }
}

fn open(dir: &LabDir) -> Result<Arc<dyn Store>> {
    crate::store::open(dir)
}

fn now() -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

/// Every Kubernetes object of the store, at one revision.
fn read(store: &dyn Store) -> Result<K8sState> {
    let r = store.range(K8S_PREFIX)?;
    let mut st = K8sState::default();
    for kv in &r.kvs {
        st.insert(&kv.key, &kv.value, kv.mod_revision);
    }
    for bad in &st.bad {
        tracing::warn!(key = %bad.key, reason = %bad.reason, "a stored object does not decode");
    }
    Ok(st)
}

/// Every Kubernetes object of the lab's store (what `lab probe` resolves
/// Services with).
pub fn objects(dir: &LabDir) -> Result<K8sState> {
    read(open(dir)?.as_ref())
}

fn store_pods(st: &K8sState) -> Vec<(ObjectId, Pod, i64)> {
    st.objects
        .iter()
        .filter_map(|(id, s)| match &s.value {
            Object::Pod(p) => Some((id.clone(), p.clone(), s.mod_revision)),
            _ => None,
        })
        .collect()
}

/// Pod JSON as stored: without `resourceVersion` (the key's revision).
fn encode(p: &Pod) -> Vec<u8> {
    let mut p = p.clone();
    p.metadata.resource_version = None;
    serde_json::to_vec(&p).unwrap_or_default()
}

/// One write of a Pod key, compared with what was read.
struct Write {
    key: String,
    value: Option<Vec<u8>>,
    /// `None`: the key must be absent.
    mod_revision: Option<i64>,
}

/// Runs the writes in transactions of [`BATCH`]; `false` when one lost a
/// race (the caller reads and plans again).
fn commit(store: &dyn Store, writes: Vec<Write>) -> Result<bool> {
    let mut all = true;
    for chunk in writes.chunks(BATCH) {
        let compares = chunk.iter().map(|w| match w.mod_revision {
            Some(r) => Compare::mod_revision(w.key.clone(), CompareOp::Equal, r),
            None => Compare::absent(w.key.clone()),
        });
        let ops = chunk.iter().map(|w| match &w.value {
            Some(v) => TxnOp::put(w.key.clone(), v.clone()),
            None => TxnOp::delete(w.key.clone()),
        });
        let r = store.txn(Txn::new().when(compares).and_then(ops))?;
        all &= r.succeeded;
    }
    Ok(all)
}

/// The Deployment controller's step: until its writes hold.
fn deployments_step(store: &dyn Store, report: &mut Report) -> Result<()> {
    let mut rng = Rng::new(seed());
    for _ in 0..ATTEMPTS {
        let st = read(store)?;
        let ch = deployments::plan(&st, &now(), &mut rng);
        if ch.is_empty() {
            return Ok(());
        }
        let mut writes = vec![];
        for p in &ch.create {
            let id = ObjectId::new(
                Kind::Pod,
                p.metadata.namespace.as_deref().unwrap_or("default"),
                &p.metadata.name,
            );
            writes.push(Write {
                key: object_key(&id),
                value: Some(encode(p)),
                mod_revision: None,
            });
        }
        for (id, rev) in &ch.delete {
            writes.push(Write {
                key: object_key(id),
                value: None,
                mod_revision: Some(*rev),
            });
        }
        if commit(store, writes)? {
            report.pods_created.extend(ch.create.iter().map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or("default"),
                    p.metadata.name
                )
            }));
            report.pods_deleted.extend(
                ch.delete
                    .iter()
                    .map(|(id, _)| format!("{}/{}", id.namespace, id.name)),
            );
            return Ok(());
        }
    }
    Err(LabError::Invalid(format!(
        "the store kept changing under the Deployment controller ({ATTEMPTS} attempts lost a race); run the command again"
    )))
}

/// Makes the lab's pods the store's Pods. The caller holds the lab's lock.
pub fn sync_locked(dir: &LabDir, state: &mut LabState) -> Result<Report> {
    let store = open(dir)?;
    let mut report = Report::default();
    deployments_step(store.as_ref(), &mut report)?;
    let st = read(store.as_ref())?;
    let pods = store_pods(&st);
    let wanted: Vec<(ObjectId, Pod)> = pods
        .iter()
        .map(|(id, p, _)| (id.clone(), p.clone()))
        .collect();
    let actions = schedule::plan(state, &wanted);
    let mut starts = vec![];
    let mut pending = vec![];
    let mut first_err = None;
    for a in actions {
        match a {
            Action::Stop(r) => {
                match pods::remove_one(dir, state, &r) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!("stopping {r}: {e}");
                        first_err.get_or_insert(e);
                    }
                }
                report.stopped.push(r);
            }
            Action::Ports(r, ports) => {
                if let Err(e) = pods::set_ports(dir, state, &r, ports) {
                    first_err.get_or_insert(e);
                }
            }
            Action::Start(n) => starts.push(n),
            Action::Pending(id, why) => pending.push((id, "Unschedulable".to_string(), why)),
        }
    }
    let any_started = !starts.is_empty();
    // Fail closed: a new pod's addresses are written first, and its
    // servers start once its node's agent enforces policy on it.
    let gate = |st: &LabState, ids: &[String]| -> Result<()> {
        let mut scratch = Report::default();
        write_statuses(st, store.as_ref(), &[], &mut scratch)?;
        wait_enforced(store.as_ref(), st, ids, ENFORCE_WAIT)
    };
    let created = pods::create_gated(dir, state, starts, &|_| {}, &gate)?;
    if any_started {
        // Azure CNI dynamic: the agent may have claimed addresses for the
        // new pods; the fabric routes them before the command returns.
        let snap = crate::store::snapshot(dir)?;
        crate::fabric::sync_routes(dir, state, &snap)?;
    }
    for (n, r) in created {
        if let Err(e) = r {
            pending.push((
                ObjectId::new(Kind::Pod, &n.namespace, &n.name),
                "FailedCreatePodSandBox".into(),
                format!("on {}: {e}", n.node),
            ));
        }
    }
    write_statuses(state, store.as_ref(), &pending, &mut report)?;
    match first_err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// How long a new pod waits for its node's agent to enforce policy on it.
const ENFORCE_WAIT: Duration = Duration::from_secs(10);

/// Waits until the agent of every node of `ids` publishes a policy
/// revision (`NodeRecord::policy`) covering the store as it is now: the
/// Pods' addresses just written, and every policy that may select them.
/// A node whose record carries no policy status has no policy engine
/// (an agent of an older build): nothing to wait for there.
fn wait_enforced(
    store: &dyn Store,
    state: &LabState,
    ids: &[String],
    wait: Duration,
) -> Result<()> {
    let want = read(store)?
        .objects
        .values()
        .map(|s| s.mod_revision)
        .max()
        .unwrap_or(0);
    let mut nodes: Vec<&str> = ids
        .iter()
        .filter_map(|id| state.pod(id).map(|p| p.node.as_str()))
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let deadline = Instant::now() + wait;
    loop {
        let mut behind = vec![];
        for n in &nodes {
            let rec = store
                .get(&cluster::node_key(n))?
                .and_then(|kv| serde_json::from_slice::<NodeRecord>(&kv.value).ok());
            match rec.and_then(|r| r.policy) {
                Some(p) if p.revision < want => behind.push(format!(
                    "{n} (at revision {}, wants {want}{})",
                    p.revision,
                    p.failed
                        .map(|f| format!("; failing: {f}"))
                        .unwrap_or_default()
                )),
                _ => {}
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::Invalid(format!(
                "network policy is not enforced on {} after {} s: the pod's containers are not started",
                behind.join(", "),
                wait.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes each running Pod's node and status, and each Pending one's why;
/// fills the report's `started` and `pending`.
fn write_statuses(
    state: &LabState,
    store: &dyn Store,
    pending: &[(ObjectId, String, String)],
    report: &mut Report,
) -> Result<()> {
    for (id, _, why) in pending {
        report
            .pending
            .push(format!("{}/{}: {why}", id.namespace, id.name));
    }
    for _ in 0..ATTEMPTS {
        let st = read(store)?;
        let now = now();
        let mut writes = vec![];
        for (id, p, rev) in store_pods(&st) {
            let key = format!("{}/{}", id.namespace, id.name);
            let new = if let Some((_, reason, why)) = pending.iter().find(|(i, ..)| *i == id) {
                schedule::pending(&p, reason, why)
            } else if let Some(lp) = state.pod(&key) {
                let host = state
                    .node(&lp.node)
                    .map(|n| n.ip.to_string())
                    .unwrap_or_default();
                let r = schedule::running(&p, lp, &host, &now);
                if r.is_some() {
                    report.started.push(format!(
                        "{key} on {} ({})",
                        lp.node,
                        lp.ip.map(|i| i.to_string()).unwrap_or_default()
                    ));
                }
                r
            } else {
                None
            };
            if let Some(mut new) = new {
                new.metadata.resource_version = None;
                writes.push(Write {
                    key: object_key(&id),
                    value: Some(encode(&new)),
                    mod_revision: Some(rev),
                });
            }
        }
        if writes.is_empty() || commit(store, writes)? {
            report.started.sort();
            report.started.dedup();
            return Ok(());
        }
    }
    Err(LabError::Invalid(format!(
        "the store kept changing while the lab wrote its Pods' status ({ATTEMPTS} attempts lost a race); run the command again"
    )))
}

/// Takes the lab's lock and syncs.
pub fn sync(dir: &LabDir) -> Result<Report> {
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    sync_locked(dir, &mut state)
}

/// Records lab pods that have no Pod in the store yet (the ones `lab up`
/// and `lab add-pod` make) as Pods in their namespace, Running on their
/// node with their address, and keeps each Pod's uid in the lab's state.
pub fn record(dir: &LabDir, state: &mut LabState) -> Result<()> {
    let store = open(dir)?;
    for _ in 0..ATTEMPTS {
        let st = read(store.as_ref())?;
        let now = now();
        let mut writes = vec![];
        let mut uids = vec![];
        for lp in state.pods.iter().filter(|p| p.uid.is_none()) {
            let id = ObjectId::new(Kind::Pod, &lp.namespace, &lp.name);
            if let Some(s) = st.objects.get(&id) {
                uids.push((lp.id(), s.value.meta().uid.clone()));
                continue;
            }
            let uid =
                Rng::new(seed() ^ (u64::from(lp.node_index) << 16) ^ u64::from(lp.index)).uuid();
            let mut p: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": lp.name,
                    "namespace": lp.namespace,
                    "uid": uid,
                    "creationTimestamp": now,
                },
                "spec": {"containers": [{"name": "probe", "image": "aksnet-probe"}]},
            }))
            .map_err(|e| LabError::Invalid(format!("pod {}: {e}", lp.id())))?;
            let host = state
                .node(&lp.node)
                .map(|n| n.ip.to_string())
                .unwrap_or_default();
            if let Some(r) = schedule::running(&p, lp, &host, &now) {
                p = r;
            }
            writes.push(Write {
                key: object_key(&id),
                value: Some(encode(&p)),
                mod_revision: None,
            });
            uids.push((lp.id(), Some(uid)));
        }
        if writes.is_empty() || commit(store.as_ref(), writes)? {
            for (id, uid) in uids {
                if let Some(p) = state.pods.iter_mut().find(|p| p.is(&id)) {
                    p.uid = uid;
                }
            }
            return dir.save(state);
        }
    }
    Err(LabError::Invalid(format!(
        "the store kept changing while the lab recorded its pods ({ATTEMPTS} attempts lost a race)"
    )))
}

/// Deletes the Pods of `references` (`NAMESPACE/NAME`) from the store.
pub fn forget(dir: &LabDir, references: &[String]) -> Result<()> {
    if references.is_empty() {
        return Ok(());
    }
    let store = open(dir)?;
    let writes: Vec<TxnOp> = references
        .iter()
        .map(|r| {
            let (ns, name) = crate::state::pod_ref(r);
            TxnOp::delete(object_key(&ObjectId::new(Kind::Pod, ns, name)))
        })
        .collect();
    for chunk in writes.chunks(BATCH) {
        store.txn(Txn::new().and_then(chunk.to_vec()))?;
    }
    Ok(())
}
