//! Conversions between the store's types and etcd-client's.

use etcd_client as ec;

use crate::types::{
    Compare, CompareOp, CompareTarget, Event, EventKind, KeyValue, LeaseId, Txn, TxnOp,
    TxnOpResponse, TxnResponse,
};

pub(crate) fn key_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn kv(kv: &ec::KeyValue) -> KeyValue {
    KeyValue {
        key: key_of(kv.key()),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: (kv.lease() != 0).then_some(LeaseId(kv.lease())),
    }
}

pub(crate) fn event(ev: &ec::Event) -> Option<Event> {
    let kind = match ev.event_type() {
        ec::EventType::Put => EventKind::Put,
        ec::EventType::Delete => EventKind::Delete,
    };
    Some(Event {
        kind,
        kv: kv(ev.kv()?),
    })
}

fn op(o: CompareOp) -> ec::CompareOp {
    match o {
        CompareOp::Equal => ec::CompareOp::Equal,
        CompareOp::NotEqual => ec::CompareOp::NotEqual,
        CompareOp::Greater => ec::CompareOp::Greater,
        CompareOp::Less => ec::CompareOp::Less,
    }
}

fn compare(c: &Compare) -> ec::Compare {
    let key = c.key.as_bytes().to_vec();
    match &c.target {
        CompareTarget::Version(v) => ec::Compare::version(key, op(c.op), *v),
        CompareTarget::CreateRevision(r) => ec::Compare::create_revision(key, op(c.op), *r),
        CompareTarget::ModRevision(r) => ec::Compare::mod_revision(key, op(c.op), *r),
        CompareTarget::Value(v) => ec::Compare::value(key, op(c.op), v.clone()),
    }
}

fn txn_op(o: &TxnOp) -> ec::TxnOp {
    match o {
        TxnOp::Put { key, value, lease } => ec::TxnOp::put(
            key.as_bytes().to_vec(),
            value.clone(),
            lease.map(|l| ec::PutOptions::new().with_lease(l.0)),
        ),
        TxnOp::Delete { key } => ec::TxnOp::delete(key.as_bytes().to_vec(), None),
        TxnOp::DeletePrefix { prefix } => ec::TxnOp::delete(
            prefix.as_bytes().to_vec(),
            Some(ec::DeleteOptions::new().with_prefix()),
        ),
        TxnOp::Get { key } => ec::TxnOp::get(key.as_bytes().to_vec(), None),
        TxnOp::Range { prefix } => ec::TxnOp::get(
            prefix.as_bytes().to_vec(),
            Some(ec::GetOptions::new().with_prefix()),
        ),
    }
}

pub(crate) fn txn(t: &Txn) -> ec::Txn {
    ec::Txn::new()
        .when(t.compares.iter().map(compare).collect::<Vec<_>>())
        .and_then(t.success.iter().map(txn_op).collect::<Vec<_>>())
        .or_else(t.failure.iter().map(txn_op).collect::<Vec<_>>())
}

/// Converts a response; `ops` is the branch that ran, to tell a `Get` from
/// a `Range` (both are range requests to etcd).
pub(crate) fn txn_response(resp: &ec::TxnResponse, ops: &[TxnOp]) -> TxnResponse {
    let revision = resp.header().map_or(0, |h| h.revision());
    let responses = resp
        .op_responses()
        .iter()
        .zip(ops)
        .map(|(r, o)| match (r, o) {
            (ec::TxnOpResponse::Put(_), _) => TxnOpResponse::Put { revision },
            (ec::TxnOpResponse::Delete(d), _) => TxnOpResponse::Delete {
                deleted: d.deleted(),
            },
            (ec::TxnOpResponse::Get(g), TxnOp::Range { .. }) => {
                TxnOpResponse::Range(g.kvs().iter().map(kv).collect())
            }
            (ec::TxnOpResponse::Get(g), _) => TxnOpResponse::Get(g.kvs().first().map(kv)),
            (ec::TxnOpResponse::Txn(_), _) => TxnOpResponse::Get(None),
        })
        .collect();
    TxnResponse {
        succeeded: resp.succeeded(),
        revision,
        responses,
    }
}
