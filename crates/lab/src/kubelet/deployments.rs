//! The Deployment controller, pure: from the store's Deployments and Pods,
//! the Pods to create and delete so each Deployment has `replicas` Pods of
//! its current template, as the ReplicaSet controller keeps them.
//!
//! Pods are named `DEPLOYMENT-<pod-template-hash>-<5 random>` and labelled
//! from the template plus `pod-template-hash`, as upstream names a
//! Deployment's Pods; they point at the Deployment itself (aksnet keeps no
//! ReplicaSets) with a controller `ownerReference`. A template change
//! replaces every Pod of the old template (the Recreate strategy); a Pod
//! whose Deployment is gone is deleted (garbage collection).

use std::collections::BTreeSet;

use aksnet_core::k8s::alloc::Rng;
use aksnet_core::k8s::meta::ObjectMeta;
use aksnet_core::k8s::pod::{Deployment, PodTemplateSpec};
use aksnet_core::k8s::{K8sState, Kind, Object, ObjectId, Pod};
use serde_json::{json, Value};

/// The label upstream's Deployment controller puts on its Pods.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Upstream's `rand.String` alphabet: no vowels, no confusable digits.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What the controller wants written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub create: Vec<Pod>,
    /// With the `mod_revision` they were read at.
    pub delete: Vec<(ObjectId, i64)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.delete.is_empty()
    }
}

/// The controller owner of a Pod: `(kind, name, uid)`.
pub fn controller_of(meta: &ObjectMeta) -> Option<(String, String, Option<String>)> {
    let refs = meta.extra.get("ownerReferences")?.as_array()?;
    refs.iter().find_map(|r| {
        (r.get("controller").and_then(Value::as_bool) == Some(true)).then(|| {
            (
                r.get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                r.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                r.get("uid").and_then(Value::as_str).map(str::to_string),
            )
        })
    })
}

/// FNV-1a of the template as stored, in the safe alphabet (upstream hashes
/// the template with FNV-32a too; the value differs, the use is the same:
/// one hash per template).
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(t).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let n = ALPHANUMS.len() as u32;
    while h > 0 || out.is_empty() {
        out.push(char::from(ALPHANUMS[(h % n) as usize]));
        h /= n;
    }
    out
}

fn suffix(rng: &mut Rng) -> String {
    (0..5)
        .map(|_| char::from(ALPHANUMS[rng.below(ALPHANUMS.len() as u64) as usize]))
        .collect()
}

fn pods_in(state: &K8sState) -> impl Iterator<Item = (&ObjectId, &Pod, i64)> {
    state.objects.iter().filter_map(|(id, s)| match &s.value {
        Object::Pod(p) => Some((id, p, s.mod_revision)),
        _ => None,
    })
}

/// The Pod of `d`'s template, named `name`.
fn pod_for(d: &Deployment, name: &str, hash: &str, uid: String, now: &str) -> Pod {
    let t = &d.spec.template;
    let ns = d
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut labels = t.metadata.labels.clone();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut meta = ObjectMeta {
        name: name.into(),
        namespace: Some(ns),
        labels,
        annotations: t.metadata.annotations.clone(),
        uid: Some(uid),
        creation_timestamp: Some(now.into()),
        ..Default::default()
    };
    meta.extra.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": d.metadata.name,
            "uid": d.metadata.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
    let mut spec = t.spec.clone();
    spec.set_defaults();
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata: meta,
        spec,
        status: None,
        extra: Default::default(),
    }
}

/// Scale-down order (upstream's `ActivePods` ranking, simplified): Pods
/// without a node, then not ready, then the newest.
fn removal_rank(p: &Pod) -> (bool, bool, std::cmp::Reverse<String>) {
    (
        p.spec.node_name.is_some(),
        p.pod_ipv4().is_some() && p.ready_condition(),
        std::cmp::Reverse(p.metadata.creation_timestamp.clone().unwrap_or_default()),
    )
}

/// What every Deployment of `state` needs written.
pub fn plan(state: &K8sState, now: &str, rng: &mut Rng) -> Changes {
    let mut ch = Changes::default();
    let mut taken: BTreeSet<ObjectId> = state.objects.keys().cloned().collect();
    let deployments: Vec<&Deployment> = state
        .objects
        .values()
        .filter_map(|s| match &s.value {
            Object::Deployment(d) => Some(d),
            _ => None,
        })
        .collect();
    let owner = |ns: &str, name: &str| {
        deployments.iter().copied().find(|d| {
            d.metadata.name == name && d.metadata.namespace.as_deref().unwrap_or("default") == ns
        })
    };
    // Garbage: Pods whose controlling Deployment is gone (or was replaced
    // by another of the same name).
    for (id, p, rev) in pods_in(state) {
        if let Some((kind, name, uid)) = controller_of(&p.metadata) {
            if kind != "Deployment" {
                continue;
            }
            let alive = owner(&id.namespace, &name).is_some_and(|d| {
                uid.is_none() || d.metadata.uid.is_none() || d.metadata.uid == uid
            });
            if !alive {
                ch.delete.push((id.clone(), rev));
            }
        }
    }
    for d in &deployments {
        let ns = d.metadata.namespace.as_deref().unwrap_or("default");
        let hash = template_hash(&d.spec.template);
        let mut current: Vec<(&ObjectId, &Pod, i64)> = vec![];
        for (id, p, rev) in pods_in(state) {
            if id.namespace != ns {
                continue;
            }
            let Some((kind, name, uid)) = controller_of(&p.metadata) else {
                continue;
            };
            if kind != "Deployment" || name != d.metadata.name {
                continue;
            }
            if uid.is_some() && d.metadata.uid.is_some() && uid != d.metadata.uid {
                continue; // garbage, above
            }
            if p.metadata.labels.get(TEMPLATE_HASH_LABEL) == Some(&hash) {
                current.push((id, p, rev));
            } else {
                ch.delete.push((id.clone(), rev));
            }
        }
        let want = usize::try_from(d.replicas().max(0)).unwrap_or(0);
        if current.len() > want {
            current.sort_by_key(|(_, p, _)| removal_rank(p));
            for (id, _, rev) in current.drain(..current.len() - want) {
                ch.delete.push((id.clone(), rev));
            }
        }
        for _ in current.len()..want {
            let name = loop {
                let n = format!("{}-{hash}-{}", d.metadata.name, suffix(rng));
                let id = ObjectId::new(Kind::Pod, ns, &n);
                if taken.insert(id) {
                    break n;
                }
            };
            let uid = rng.uuid();
            ch.create.push(pod_for(d, &name, &hash, uid, now));
        }
    }
    ch.delete.sort();
    ch.delete.dedup();
    ch
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::k8s::store::{object_key, Stored};

    fn state(objs: &[Value]) -> K8sState {
        let mut st = K8sState::default();
        for (i, v) in objs.iter().enumerate() {
            let kind = match v["kind"].as_str().unwrap() {
                "Pod" => Kind::Pod,
                _ => Kind::Deployment,
            };
            let o = Object::from_value(kind, v.clone()).unwrap();
            st.objects.insert(
                o.id(),
                Stored {
                    value: o,
                    mod_revision: 10 + i as i64,
                },
            );
        }
        st
    }

    fn deploy(name: &str, replicas: i64, app: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}")},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "c", "image": "nginx",
                        "ports": [{"containerPort": 8080}]}]}}}})
    }

    fn to_value(p: &Pod, rev: i64) -> (Value, i64) {
        (serde_json::to_value(p).unwrap(), rev)
    }

    #[test]
    fn creates_replicas_named_and_labelled_from_the_template() {
        let st = state(&[deploy("web", 3, "web")]);
        let ch = plan(&st, "2026-01-01T00:00:00Z", &mut Rng::new(1));
        assert!(ch.delete.is_empty());
        assert_eq!(ch.create.len(), 3);
        let hash = template_hash(&match &st.objects.values().next().unwrap().value {
            Object::Deployment(d) => d.spec.template.clone(),
            _ => unreachable!(),
        });
        let names: BTreeSet<&str> = ch.create.iter().map(|p| p.metadata.name.as_str()).collect();
        assert_eq!(names.len(), 3, "distinct names");
        for p in &ch.create {
            let n = &p.metadata.name;
            let rest = n.strip_prefix(&format!("web-{hash}-")).unwrap();
            assert_eq!(rest.len(), 5, "{n}");
            assert!(rest.bytes().all(|b| ALPHANUMS.contains(&b)));
            assert_eq!(p.metadata.namespace.as_deref(), Some("shop"));
            assert_eq!(p.metadata.labels["app"], "web");
            assert_eq!(p.metadata.labels[TEMPLATE_HASH_LABEL], hash);
            assert_eq!(
                controller_of(&p.metadata),
                Some(("Deployment".into(), "web".into(), Some("u-web".into())))
            );
            assert_eq!(
                p.spec.containers[0].ports[0].protocol.as_deref(),
                Some("TCP")
            );
            assert!(p.metadata.uid.is_some());
            // What the kubelet writes is a Pod the store decodes.
            let id = ObjectId::new(Kind::Pod, "shop", n);
            let bytes = serde_json::to_vec(p).unwrap();
            let mut back = K8sState::default();
            back.insert(&object_key(&id), &bytes, 1);
            assert!(back.bad.is_empty() && back.objects.contains_key(&id));
        }
    }

    #[test]
    fn scales_down_and_up_and_replaces_an_old_template() {
        let st = state(&[deploy("web", 3, "web")]);
        let ch = plan(&st, "2026-01-01T00:00:00Z", &mut Rng::new(1));
        let mut objs = vec![deploy("web", 1, "web")];
        let mut revs = vec![];
        for (i, p) in ch.create.iter().enumerate() {
            let mut p = p.clone();
            p.metadata.creation_timestamp = Some(format!("2026-01-01T00:00:0{i}Z"));
            p.spec.node_name = Some("node-1".into());
            let (v, r) = to_value(&p, 0);
            objs.push(v);
            revs.push(r);
        }
        let st2 = state(&objs);
        let ch = plan(&st2, "now", &mut Rng::new(2));
        assert!(ch.create.is_empty());
        assert_eq!(ch.delete.len(), 2, "{ch:?}");
        // The newest two go; the oldest stays.
        let kept = st2
            .objects
            .keys()
            .filter(|id| id.kind == Kind::Pod && !ch.delete.iter().any(|(d, _)| d == *id))
            .collect::<Vec<_>>();
        assert_eq!(kept.len(), 1);
        let kept_pod = st2.objects[kept[0]].value.as_pod().unwrap();
        assert_eq!(
            kept_pod.metadata.creation_timestamp.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        // The delete compares the revision it read.
        for (id, rev) in &ch.delete {
            assert_eq!(*rev, st2.objects[id].mod_revision);
        }
        // Up again: 2 new.
        objs[0] = deploy("web", 5, "web");
        let ch = plan(&state(&objs), "now", &mut Rng::new(3));
        assert_eq!((ch.create.len(), ch.delete.len()), (2, 0));
        // A new template: every old Pod goes, 3 new ones come.
        objs[0] = deploy("web", 3, "web2");
        let ch = plan(&state(&objs), "now", &mut Rng::new(4));
        assert_eq!((ch.create.len(), ch.delete.len()), (3, 3));
        assert!(ch.create.iter().all(|p| p.metadata.labels["app"] == "web2"));
        // replicas: 0 keeps none.
        objs[0] = deploy("web", 0, "web");
        let ch = plan(&state(&objs), "now", &mut Rng::new(5));
        assert_eq!((ch.create.len(), ch.delete.len()), (0, 3));
    }

    #[test]
    fn pods_of_a_gone_deployment_are_collected_and_others_left_alone() {
        let st = state(&[deploy("web", 2, "web")]);
        let ch = plan(&st, "now", &mut Rng::new(1));
        let mut objs: Vec<Value> = ch.create.iter().map(|p| to_value(p, 0).0).collect();
        // A Pod of the user's own, and one of a Deployment of the same name
        // that was deleted and applied again (another uid).
        objs.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "mine", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}]}}));
        let gone = state(&objs);
        let ch = plan(&gone, "now", &mut Rng::new(2));
        assert_eq!(ch.delete.len(), 2, "both Pods of the deleted Deployment");
        assert!(ch.delete.iter().all(|(id, _)| id.name != "mine"));
        let mut again = deploy("web", 2, "web");
        again["metadata"]["uid"] = json!("u-other");
        objs.push(again);
        let ch = plan(&state(&objs), "now", &mut Rng::new(3));
        assert_eq!((ch.create.len(), ch.delete.len()), (2, 2), "{ch:?}");
    }

    #[test]
    fn template_hash_is_stable_and_follows_the_template() {
        let a: Deployment = serde_json::from_value(deploy("web", 1, "a")).unwrap();
        let b: Deployment = serde_json::from_value(deploy("web", 9, "a")).unwrap();
        let c: Deployment = serde_json::from_value(deploy("web", 1, "c")).unwrap();
        assert_eq!(
            template_hash(&a.spec.template),
            template_hash(&b.spec.template)
        );
        assert_ne!(
            template_hash(&a.spec.template),
            template_hash(&c.spec.template)
        );
        assert!(template_hash(&a.spec.template)
            .bytes()
            .all(|x| ALPHANUMS.contains(&x)));
    }
}
