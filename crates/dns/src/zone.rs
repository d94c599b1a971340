//! A small authoritative server for fixed A records: the lab's internet
//! host serves a public zone with it, so the cluster DNS's forwarding of
//! outside names can be seen (CoreDNS's `forward . /etc/resolv.conf` on
//! AKS reaches Azure DNS the same way). Names under one of the zones
//! without the type asked are NODATA, unknown ones NXDOMAIN, names outside
//! every zone REFUSED. Wire format and serving loops are hickory's.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;

use crate::error::DnsError;

/// TTL of the zone's answers.
pub const ZONE_TTL: u32 = 300;

/// Fixed records: names (absolute or not) to IPv4 addresses.
#[derive(Debug, Clone, Default)]
pub struct StaticZone {
    records: HashMap<LowerName, Vec<Record>>,
    names: BTreeSet<LowerName>,
    zones: Vec<LowerName>,
}

fn name(text: &str) -> Result<Name, DnsError> {
    let mut n = Name::from_ascii(text).map_err(|e| DnsError::BadName {
        name: text.to_string(),
        reason: e.to_string(),
    })?;
    n.set_fqdn(true);
    Ok(n)
}

impl StaticZone {
    /// A server authoritative for `zones` with `records` (each name must
    /// be inside one of the zones).
    pub fn new(zones: &[&str], records: &[(String, Ipv4Addr)]) -> Result<Self, DnsError> {
        let mut z = StaticZone {
            zones: zones
                .iter()
                .map(|z| name(z).map(|n| LowerName::new(&n)))
                .collect::<Result<_, _>>()?,
            ..Default::default()
        };
        for (n, ip) in records {
            let nm = name(n)?;
            let lower = LowerName::new(&nm);
            if !z.zones.iter().any(|zone| zone.zone_of(&lower)) {
                return Err(DnsError::BadName {
                    name: n.clone(),
                    reason: "outside the zones served".into(),
                });
            }
            // Every label between the name and its zone exists too (empty
            // non-terminals answer NODATA, not NXDOMAIN).
            let mut up = nm.clone();
            while up.num_labels() > 0 {
                let l = LowerName::new(&up);
                if !z.zones.iter().any(|zone| zone.zone_of(&l)) {
                    break;
                }
                z.names.insert(l);
                up = up.base_name();
            }
            z.records.entry(lower).or_default().push(Record::from_rdata(
                nm,
                ZONE_TTL,
                RData::A(A(*ip)),
            ));
        }
        Ok(z)
    }

    /// The answer's code and records for one question.
    fn lookup(&self, q: &LowerName, t: RecordType) -> (ResponseCode, &[Record]) {
        if !self.zones.iter().any(|z| z.zone_of(q)) {
            return (ResponseCode::Refused, &[]);
        }
        if !self.names.contains(q) && !self.zones.contains(q) {
            return (ResponseCode::NXDomain, &[]);
        }
        match (t, self.records.get(q)) {
            (RecordType::A | RecordType::ANY, Some(r)) => (ResponseCode::NoError, r),
            _ => (ResponseCode::NoError, &[]),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for StaticZone {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut rh: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        let answers: &[Record] = match request.request_info() {
            Ok(info) => {
                let (code, r) = self.lookup(info.query.name(), info.query.query_type());
                meta.response_code = code;
                meta.authoritative = code != ResponseCode::Refused;
                r
            }
            Err(_) => {
                meta.response_code = ResponseCode::FormErr;
                &[]
            }
        };
        let edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().max(512));
            r
        });
        let mut b = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = &edns {
            b.edns(e);
        }
        let msg = b.build(meta, answers.iter(), [], [], []);
        match rh.send_response(msg).await {
            Ok(i) => i,
            Err(_) => ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            }),
        }
    }
}

/// Serves `zone` on `listen` (UDP and TCP) until `stop` resolves.
pub async fn serve(
    zone: StaticZone,
    listen: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DnsError> {
    let bind = |proto| {
        move |source| DnsError::Bind {
            addr: listen,
            proto,
            source,
        }
    };
    let udp = tokio::net::UdpSocket::bind(listen)
        .await
        .map_err(bind("udp"))?;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(bind("tcp"))?;
    let mut server = Server::new(zone);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 65535);
    stop.await;
    server.shutdown_gracefully().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_nodata_nxdomain_refused() {
        let z = StaticZone::new(
            &["example.com"],
            &[
                ("www.example.com".into(), Ipv4Addr::new(203, 0, 113, 10)),
                ("a.b.example.com.".into(), Ipv4Addr::new(203, 0, 113, 11)),
            ],
        )
        .unwrap();
        let q = |n: &str| LowerName::new(&name(n).unwrap());
        let (c, r) = z.lookup(&q("WWW.example.com"), RecordType::A);
        assert_eq!((c, r.len()), (ResponseCode::NoError, 1));
        assert_eq!(
            z.lookup(&q("www.example.com"), RecordType::AAAA),
            (ResponseCode::NoError, &[][..])
        );
        assert_eq!(
            z.lookup(&q("b.example.com"), RecordType::A).0,
            ResponseCode::NoError,
            "an empty non-terminal exists"
        );
        assert_eq!(
            z.lookup(&q("nope.example.com"), RecordType::A).0,
            ResponseCode::NXDomain
        );
        assert_eq!(
            z.lookup(&q("example.org"), RecordType::A).0,
            ResponseCode::Refused
        );
        assert!(
            StaticZone::new(&["example.com"], &[("x.org".into(), Ipv4Addr::LOCALHOST)]).is_err()
        );
    }
}
