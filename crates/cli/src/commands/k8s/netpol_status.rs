//! `aksnet get netpol`'s `status`: whether every node's agent enforces a
//! NetworkPolicy, from what each agent publishes in its node record
//! (`policy`: the revision its table was computed from, or why it could
//! not program it). A policy written at revision R is enforced on a node
//! once that node's revision is at least R; a node whose agent failed holds
//! the lockdown table (its isolated pods allow nothing) and says why.

use aksnet_core::cluster::NodeRecord;
use serde_json::{json, Value};

/// One node's answer for a policy written at `revision`.
fn node_state(n: &NodeRecord, revision: i64) -> Value {
    match &n.policy {
        None => json!({"node": n.name, "programmed": false,
            "reason": "NoPolicyController", "message": "the node's agent has published no policy state"}),
        Some(p) => match &p.failed {
            Some(e) => json!({"node": n.name, "programmed": false,
                "reason": "PolicyProgrammingFailed", "message": e}),
            None if p.revision >= revision => json!({"node": n.name, "programmed": true}),
            None => json!({"node": n.name, "programmed": false, "reason": "Pending",
                "message": format!("the node's table is at revision {}, the policy at {revision}", p.revision)}),
        },
    }
}

/// `status` of a policy stored at `revision`, for `nodes`: a `Programmed`
/// condition (True on every node; False when a node failed, naming it;
/// Unknown while a node has not caught up) and one entry per node.
pub fn status(revision: i64, nodes: &[&NodeRecord]) -> Value {
    let per_node: Vec<Value> = nodes.iter().map(|n| node_state(n, revision)).collect();
    let failed: Vec<String> = per_node
        .iter()
        .filter(|v| v["reason"] == "PolicyProgrammingFailed")
        .map(|v| {
            format!(
                "{}: {}",
                v["node"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    let done = per_node.iter().filter(|v| v["programmed"] == true).count();
    let (st, reason, message) = if !failed.is_empty() {
        (
            "False",
            "PolicyProgrammingFailed",
            format!(
                "not programmed on {} of {} nodes (their isolated pods allow nothing): {}",
                failed.len(),
                nodes.len(),
                failed.join("; ")
            ),
        )
    } else if done == nodes.len() {
        (
            "True",
            "PolicyProgrammed",
            format!("enforced on {done} of {} nodes", nodes.len()),
        )
    } else {
        (
            "Unknown",
            "Pending",
            format!("enforced on {done} of {} nodes so far", nodes.len()),
        )
    };
    json!({
        "conditions": [{"type": "Programmed", "status": st, "reason": reason, "message": message}],
        "nodes": per_node,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::cluster::{PolicyStatus, RouteMode};

    fn node(name: &str, policy: Option<PolicyStatus>) -> NodeRecord {
        NodeRecord {
            policy,
            ..NodeRecord::new(name, "10.224.0.4".parse().unwrap(), RouteMode::HostGw)
        }
    }

    #[test]
    fn programmed_pending_and_failed_nodes_are_told_apart() {
        let at = |revision| {
            Some(PolicyStatus {
                revision,
                ..PolicyStatus::default()
            })
        };
        let a = node("node-1", at(12));
        let b = node("node-2", at(9));
        let s = status(10, &[&a, &b]);
        assert_eq!(s["conditions"][0]["status"], "Unknown", "{s}");
        assert_eq!(s["nodes"][0]["programmed"], true);
        assert_eq!(s["nodes"][1]["reason"], "Pending");

        let b = node("node-2", at(10));
        assert_eq!(status(10, &[&a, &b])["conditions"][0]["status"], "True");

        let c = node(
            "node-3",
            Some(PolicyStatus {
                revision: 20,
                failed: Some("nft: Error: Could not process rule".into()),
                ..PolicyStatus::default()
            }),
        );
        let s = status(10, &[&a, &b, &c]);
        assert_eq!(s["conditions"][0]["status"], "False", "{s}");
        assert_eq!(s["conditions"][0]["reason"], "PolicyProgrammingFailed");
        let msg = s["conditions"][0]["message"].as_str().unwrap();
        assert!(msg.contains("node-3: nft: Error"), "{msg}");
        assert_eq!(s["nodes"][2]["programmed"], false);

        let old = node("node-4", None);
        assert_eq!(
            status(10, &[&old])["nodes"][0]["reason"],
            "NoPolicyController"
        );
    }
}
