//! The agent's HTTP endpoints: `/metrics` (Prometheus text) and `/healthz`.
//!
//! The listening socket is made inside the namespace the agent manages
//! (`--netns`), so a lab node's agent answers on that node's loopback and
//! never on the host's; a socket keeps the namespace it was created in, so
//! only the bind runs in a short-lived thread that entered it. The server
//! runs on a one-thread Tokio runtime of its own, apart from the
//! synchronous reconcile loop.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use aksnet_linux::Netns;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::error::AgentError;
use crate::metrics::{HealthStatus, Metrics};

/// The Prometheus text format's content type (what `prometheus-client`
/// writes: OpenMetrics text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn bind_err(addr: SocketAddr, netns: Option<&Path>, e: impl std::fmt::Display) -> AgentError {
    let place = netns
        .map(|p| format!(" in namespace {}", p.display()))
        .unwrap_or_default();
    AgentError::Http(format!("cannot listen on {addr}{place}: {e}"))
}

/// Binds `addr` in the namespace at `netns` (the caller's own when `None`).
pub fn bind(addr: SocketAddr, netns: Option<&Path>) -> Result<TcpListener, AgentError> {
    let Some(path) = netns else {
        return TcpListener::bind(addr).map_err(|e| bind_err(addr, None, e));
    };
    let ns = Netns::open(path).map_err(|e| bind_err(addr, netns, e))?;
    let bound = std::thread::scope(|s| {
        s.spawn(|| {
            ns.run(|| {
                TcpListener::bind(addr).map_err(|source| aksnet_linux::Error::Io {
                    op: format!("bind {addr}"),
                    source,
                })
            })
        })
        .join()
    });
    match bound {
        Ok(Ok(l)) => Ok(l),
        Ok(Err(e)) => Err(bind_err(addr, netns, e)),
        Err(_) => Err(bind_err(addr, netns, "the namespace thread panicked")),
    }
}

/// Serves `/metrics` and `/healthz` on `listener` from a background thread
/// for the life of the process.
pub fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> Result<SocketAddr, AgentError> {
    let addr = listener
        .local_addr()
        .map_err(|e| AgentError::Http(format!("metrics listener: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| AgentError::Http(format!("metrics listener {addr}: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| AgentError::Http(format!("metrics runtime: {e}")))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(%addr, error = %e, "metrics listener");
                        return;
                    }
                };
                if let Err(e) = axum::serve(listener, router(metrics)).await {
                    tracing::error!(%addr, error = %e, "metrics server stopped");
                }
            })
        })
        .map_err(|e| AgentError::Http(format!("metrics thread: {e}")))?;
    Ok(addr)
}

/// The routes, for [`serve`] and tests.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(metrics)
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.encode())
}

async fn healthz_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.health() {
        HealthStatus::Ok { since_sync } => (
            StatusCode::OK,
            format!("ok: last sync {:.1}s ago\n", since_sync.as_secs_f64()),
        ),
        HealthStatus::Unhealthy(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, out)
    }

    #[test]
    fn serves_metrics_and_health_on_loopback() {
        let m = Arc::new(Metrics::new(Duration::from_secs(15)));
        let l = bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = serve(l, Arc::clone(&m)).unwrap();
        let (code, body) = get(addr, "/healthz");
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("no successful sync yet"), "{body}");
        m.observe(Duration::from_millis(2), Ok(&[]), None);
        let (code, body) = get(addr, "/healthz");
        assert_eq!(code, 200, "{body}");
        let (code, body) = get(addr, "/metrics");
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains("content-type: application/openmetrics-text"),
            "{body}"
        );
        assert!(
            body.contains("aksnet_agent_reconcile_duration_seconds_count 1"),
            "{body}"
        );
        let (code, _) = get(addr, "/nothing");
        assert_eq!(code, 404);
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let l = bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = l.local_addr().unwrap();
        let e = bind(addr, None).unwrap_err().to_string();
        assert!(e.contains(&format!("cannot listen on {addr}")), "{e}");
        let e = bind(addr, Some(Path::new("/nonexistent/netns")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/netns"), "{e}");
    }
}
