//! The request handler hickory-server calls for every decoded query:
//! checks the request, answers names of the cluster domain from the current
//! [`Index`], forwards the rest.
//!
//! Malformed messages never get here: hickory-server answers a message
//! whose header decodes but whose body does not with FORMERR itself, and
//! drops what is shorter than a header (there is no ID to answer to).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::forward::{Forwarder, Transport, UDP_PAYLOAD};
use crate::index::{Answer, Index, Outcome};

/// What the store follower and the handlers share: the current index
/// (`None` until the first read of the store, when cluster names get
/// SERVFAIL as CoreDNS gives before its first sync).
#[derive(Debug, Default)]
pub struct Shared {
    index: RwLock<Option<Arc<Index>>>,
    pub(crate) stop: AtomicBool,
}

impl Shared {
    pub fn index(&self) -> Option<Arc<Index>> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, index: Index) {
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(index));
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

pub struct Handler {
    shared: Arc<Shared>,
    forwarder: Arc<Forwarder>,
    domain: LowerName,
}

impl Handler {
    pub fn new(shared: Arc<Shared>, forwarder: Arc<Forwarder>, domain: LowerName) -> Self {
        Handler {
            shared,
            forwarder,
            domain,
        }
    }
}

fn failed(meta: &Metadata, rcode: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(meta);
    metadata.response_code = rcode;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    rcode: ResponseCode,
    mut rh: R,
) -> ResponseInfo {
    let mut b = MessageResponseBuilder::new(&request.queries, None);
    if let Some(e) = edns {
        b.edns(e);
    }
    let msg = b.error_msg(&request.metadata, rcode);
    match rh.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(src = %request.src(), "cannot send the response: {e}");
            failed(&request.metadata, rcode)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send<'r, R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    mut metadata: Metadata,
    rcode: ResponseCode,
    answers: &'r [&'r Record],
    authorities: &'r [&'r Record],
    additionals: &'r [&'r Record],
    mut rh: R,
) -> ResponseInfo {
    metadata.response_code = rcode;
    let mut b = MessageResponseBuilder::new(&request.queries, None);
    if let Some(e) = edns {
        b.edns(e);
    }
    let msg = b.build(
        metadata,
        answers.iter().copied(),
        authorities.iter().copied(),
        std::iter::empty(),
        additionals.iter().copied(),
    );
    match rh.send_response(msg).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(src = %request.src(), "cannot send the response: {e}");
            failed(&request.metadata, ResponseCode::ServFail)
        }
    }
}

fn transport(p: Protocol) -> Transport {
    match p {
        Protocol::Udp => Transport::Udp,
        _ => Transport::Tcp,
    }
}

impl Handler {
    fn response_meta(&self, request: &Request, authoritative: bool) -> Metadata {
        let mut m = Metadata::response_from_request(&request.metadata);
        m.authoritative = authoritative;
        m.recursion_available = !self.forwarder.is_empty();
        m
    }

    async fn answer<R: ResponseHandler>(
        &self,
        request: &Request,
        edns: Option<&Edns>,
        answer: &Answer<'_>,
        extra: &[Record],
        rh: R,
    ) -> ResponseInfo {
        let answers: Vec<&Record> = answer
            .answers
            .iter()
            .map(|c| c.as_ref())
            .chain(extra.iter())
            .collect();
        let additionals: Vec<&Record> = answer.additionals.iter().map(|c| c.as_ref()).collect();
        let soa: Vec<&Record> = answer.soa.into_iter().collect();
        let meta = self.response_meta(request, true);
        send(
            request,
            edns,
            meta,
            answer.rcode,
            &answers,
            &soa,
            &additionals,
            rh,
        )
        .await
    }

    async fn forward<R: ResponseHandler>(
        &self,
        request: &Request,
        edns: Option<&Edns>,
        rh: R,
    ) -> ResponseInfo {
        if self.forwarder.is_empty() {
            return send_error(request, edns, ResponseCode::Refused, rh).await;
        }
        let Some(query) = request.queries.queries().first() else {
            return send_error(request, edns, ResponseCode::FormErr, rh).await;
        };
        let up = self
            .forwarder
            .forward(
                query.original(),
                request.metadata.recursion_desired,
                request.metadata.checking_disabled,
                transport(request.protocol()),
            )
            .await;
        let m = match up {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("forwarding {} failed: {e}", query.name());
                return send_error(request, edns, ResponseCode::ServFail, rh).await;
            }
        };
        let mut meta = self.response_meta(request, m.metadata.authoritative);
        meta.truncation = m.metadata.truncation;
        meta.recursion_available = m.metadata.recursion_available;
        let answers: Vec<&Record> = m.answers.iter().collect();
        let authorities: Vec<&Record> = m.authorities.iter().collect();
        let additionals: Vec<&Record> = m.additionals.iter().collect();
        send(
            request,
            edns,
            meta,
            m.metadata.response_code,
            &answers,
            &authorities,
            &additionals,
            rh,
        )
        .await
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        rh: R,
    ) -> ResponseInfo {
        // EDNS (RFC 6891): answer with OPT when asked with it, with the
        // client's payload size up to ours; a version above 0 is BADVERS.
        let edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().clamp(512, UDP_PAYLOAD));
            r.set_version(0);
            r
        });
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return send_error(request, edns.as_ref(), ResponseCode::BADVERS, rh).await;
        }
        if request.metadata.op_code != OpCode::Query {
            return send_error(request, edns.as_ref(), ResponseCode::NotImp, rh).await;
        }
        // Exactly one question, as every server in practice requires.
        let Ok(info) = request.request_info() else {
            return send_error(request, edns.as_ref(), ResponseCode::FormErr, rh).await;
        };
        let query = info.query;
        if query.query_class() != DNSClass::IN {
            return send_error(request, edns.as_ref(), ResponseCode::Refused, rh).await;
        }
        let qtype = query.query_type();
        let in_domain = self.domain.zone_of(query.name());
        if in_domain && matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers of the cluster domain are not offered.
            return send_error(request, edns.as_ref(), ResponseCode::Refused, rh).await;
        }
        let Some(index) = self.shared.index() else {
            if in_domain {
                return send_error(request, edns.as_ref(), ResponseCode::ServFail, rh).await;
            }
            return self.forward(request, edns.as_ref(), rh).await;
        };
        match index.lookup(query.name(), qtype) {
            Outcome::Answer(a) => self.answer(request, edns.as_ref(), &a, &[], rh).await,
            Outcome::Forward => self.forward(request, edns.as_ref(), rh).await,
            Outcome::External { mut answer, target } => {
                // An ExternalName's target is resolved upstream and its
                // records follow the CNAME, as CoreDNS does.
                let mut extra = vec![];
                if !self.forwarder.is_empty() && qtype != RecordType::CNAME {
                    let q = hickory_proto::op::Query::query(target, qtype);
                    match self
                        .forwarder
                        .forward(&q, true, false, transport(request.protocol()))
                        .await
                    {
                        Ok(m) => {
                            if m.metadata.response_code == ResponseCode::NXDomain {
                                answer.rcode = ResponseCode::NXDomain;
                            }
                            extra = m.answers;
                        }
                        Err(e) => tracing::debug!("ExternalName target not resolved: {e}"),
                    }
                }
                self.answer(request, edns.as_ref(), &answer, &extra, rh)
                    .await
            }
        }
    }
}
