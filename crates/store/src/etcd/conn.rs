//! Endpoint handling of the etcd backend: one client per endpoint, a
//! current endpoint, and a retry loop that fails over to the next endpoint
//! when the current one stops answering.
//!
//! Each endpoint gets its own client (rather than one client balancing over
//! all of them) so that a dead member is noticed on the call that hits it
//! and the call moves on to the next member. A client that failed is
//! dropped and rebuilt on next use, so a member that comes back is used
//! again.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, TlsOptions};
use tonic::Code;

use super::EtcdOptions;
use crate::error::StoreError;

/// What a call can end with besides success.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No endpoint answered within the retry budget.
    Unavailable(StoreError),
    /// The server answered with an error that retrying will not change.
    Etcd(etcd_client::Error),
}

/// Shared by the store and its watch tasks.
pub(crate) struct Inner {
    pub url: String,
    /// `http://HOST:PORT` each.
    pub endpoints: Vec<String>,
    pub options: EtcdOptions,
    /// Loaded TLS settings of an `etcds://` store.
    tls: Option<TlsOptions>,
    clients: Mutex<Vec<Option<Client>>>,
    current: AtomicUsize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("url", &self.url)
            .field("current", &self.current())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// An error with its chain of sources: a transport error alone says only
/// "transport error", its sources say why (refused, a TLS alert, ...).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// The TLS handshake was refused (a certificate the other side does not
/// accept): a setting to fix, not a failure to retry through. Every
/// endpoint of a store shares the same CA and client certificate.
pub(crate) fn tls_refusal(e: &etcd_client::Error) -> Option<String> {
    let d = describe(e);
    [
        "fatal alert",
        "invalid peer certificate",
        "certificate required",
    ]
    .iter()
    .any(|p| d.to_ascii_lowercase().contains(p))
    .then_some(d)
}

/// Why an error is worth retrying on another endpoint, or `None`.
pub(crate) fn retry_reason(e: &etcd_client::Error) -> Option<String> {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) | E::IoError(_) | E::EndpointError(_) | E::WatchError(_) => {
            Some(describe(e))
        }
        E::LeaseKeepAliveError(m) if m != "lease not found" => Some(e.to_string()),
        E::GRpcStatus(s) => match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted => Some(e.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The gRPC status code of an etcd error, if it is one.
pub(crate) fn status_code(e: &etcd_client::Error) -> Option<Code> {
    match e {
        etcd_client::Error::GRpcStatus(s) => Some(s.code()),
        _ => None,
    }
}

/// True for etcd's "required revision has been compacted".
pub(crate) fn is_compacted(e: &etcd_client::Error) -> bool {
    status_code(e) == Some(Code::OutOfRange) && e.to_string().contains("compacted")
}

/// True for etcd's "requested lease not found" (and the keep-alive form).
pub(crate) fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::LeaseKeepAliveError(m) => m == "lease not found",
        _ => status_code(e) == Some(Code::NotFound) && e.to_string().contains("lease not found"),
    }
}

impl Inner {
    pub(crate) fn new(
        url: String,
        endpoints: Vec<String>,
        options: EtcdOptions,
        tls: Option<TlsOptions>,
    ) -> Self {
        let slots = vec![None; endpoints.len()];
        Inner {
            url,
            endpoints,
            options,
            tls,
            clients: Mutex::new(slots),
            current: AtomicUsize::new(0),
        }
    }

    fn connect_options(&self) -> ConnectOptions {
        let o = match &self.tls {
            Some(tls) => ConnectOptions::new().with_tls(tls.clone()),
            None => ConnectOptions::new(),
        };
        o.with_connect_timeout(self.options.connect_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            // A member cut off from the leader answers "no leader" at once
            // instead of serving stale reads or hanging.
            .with_require_leader(true)
    }

    /// The endpoint calls go to now.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst) % self.endpoints.len().max(1)
    }

    /// The client of endpoint `idx`, built if needed.
    pub(crate) async fn client(&self, idx: usize) -> Result<Client, etcd_client::Error> {
        if let Some(Some(c)) = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(idx)
        {
            return Ok(c.clone());
        }
        let endpoint = self.endpoints.get(idx).cloned().unwrap_or_default();
        let client = Client::connect([endpoint], Some(self.connect_options())).await?;
        if let Some(slot) = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(idx)
        {
            *slot = Some(client.clone());
        }
        Ok(client)
    }

    /// Endpoint `idx` failed: forget its client and move on to the next one
    /// (unless another call already did).
    pub(crate) fn failed(&self, idx: usize, reason: &str) {
        if let Some(slot) = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(idx)
        {
            *slot = None;
        }
        let n = self.endpoints.len().max(1);
        let next = (idx + 1) % n;
        if self
            .current
            .compare_exchange(idx, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
            && n > 1
        {
            tracing::warn!(
                store = %self.url,
                failed = %self.endpoints.get(idx).map_or("", String::as_str),
                next = %self.endpoints.get(next).map_or("", String::as_str),
                reason,
                "etcd endpoint failed; switching"
            );
        }
    }

    /// Over TLS 1.3 a server that demands a client certificate finishes
    /// the handshake and only then refuses: the client sees its alert or,
    /// as often, the connection simply closed. A TLS store given no client
    /// certificate whose endpoints kept closing the connection is that
    /// case, said so with the flags that fix it.
    fn closed_without_certificate(&self, reason: &str) -> Option<StoreError> {
        let no_cert = self.options.tls.as_ref().is_some_and(|t| t.cert.is_none());
        let r = reason.to_ascii_lowercase();
        let closed = [
            "connection closed",
            "canceled",
            "connection reset",
            "broken pipe",
        ]
        .iter()
        .any(|p| r.contains(p));
        (no_cert && closed).then(|| {
            StoreError::Tls(format!(
                "{}: the endpoints closed the connection after the TLS handshake ({reason}); an etcd started with --client-cert-auth does this to a client without a certificate: give --etcd-cert and --etcd-key (a client certificate its CA signed)",
                self.url
            ))
        })
    }

    /// Runs `f` against the current endpoint, retrying on the next ones
    /// while errors are transient, for at most `options.retry_for`.
    ///
    /// A write whose reply was lost may be applied twice this way; every
    /// write the store makes is either idempotent (put, delete, keep-alive)
    /// or guarded by compares that make the second try fail visibly.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, CallError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.options.retry_for;
        let mut pause = Duration::from_millis(20);
        let mut tries = 0u32;
        loop {
            tries += 1;
            let idx = self.current();
            let attempt = async {
                let client = self.client(idx).await?;
                f(client).await
            };
            let reason = match tokio::time::timeout(self.options.request_timeout, attempt).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if self.tls.is_some() && tls_refusal(&e).is_some() => {
                    let why = tls_refusal(&e).unwrap_or_default();
                    let fix = if self.options.tls.as_ref().is_some_and(|t| t.cert.is_none()) {
                        "no client certificate was given: an etcd started with --client-cert-auth needs --etcd-cert and --etcd-key (a client certificate its CA signed)"
                    } else {
                        "check that --etcd-ca is the CA of the etcd servers and that --etcd-cert/--etcd-key are a client certificate it signed"
                    };
                    return Err(CallError::Unavailable(StoreError::Tls(format!(
                        "{}: endpoint {} refused the TLS handshake ({why}); {fix}",
                        self.url,
                        self.endpoints.get(idx).map_or("", String::as_str)
                    ))));
                }
                Ok(Err(e)) => match retry_reason(&e) {
                    Some(reason) => reason,
                    None => return Err(CallError::Etcd(e)),
                },
                Err(_) => format!("no answer within {:?}", self.options.request_timeout),
            };
            tracing::debug!(store = %self.url, what, tries, reason, "etcd call failed");
            self.failed(idx, &reason);
            if Instant::now() + pause >= deadline {
                if let Some(e) = self.closed_without_certificate(&reason) {
                    return Err(CallError::Unavailable(e));
                }
                return Err(CallError::Unavailable(StoreError::Unavailable {
                    store: self.url.clone(),
                    message: format!(
                        "{what}: no endpoint answered after {tries} tries over {:?}; last error: {reason}",
                        self.options.retry_for
                    ),
                }));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

/// Keeps the runtime alive while the store or a watch uses it, and shuts it
/// down without blocking when the last one goes (dropping a runtime
/// normally blocks, which panics inside async code).
#[derive(Debug)]
pub(crate) struct RuntimeOwner(pub Option<tokio::runtime::Runtime>);

impl Drop for RuntimeOwner {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl RuntimeOwner {
    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle())
    }
}

pub(crate) type SharedRuntime = Arc<RuntimeOwner>;
