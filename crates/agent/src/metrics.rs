//! The agent's Prometheus metrics (text exposition through
//! `prometheus-client`) and the health it reports on `/healthz`.
//!
//! The reconcile loop feeds them after every pass ([`Metrics::observe`]):
//! durations, what each controller reported it holds, the node's IPAM use
//! read from aksnet-ipam's files, and failures. The names are documented
//! in `docs/operations.md`; [`NAMES`] lists them so a test keeps the two
//! equal.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::agent::controllers::ControllerRun;
use crate::conflist::PodRanges;
use crate::error::AgentError;
use crate::ipam_disk;

/// Every series name the agent exports (as they appear in `/metrics`,
/// suffixes included), for the documentation test.
pub const NAMES: &[&str] = &[
    "aksnet_agent_reconcile_duration_seconds",
    "aksnet_agent_controller_duration_seconds",
    "aksnet_agent_controller_errors_total",
    "aksnet_agent_reconcile_errors_total",
    "aksnet_agent_routes_programmed",
    "aksnet_agent_snat_rules_programmed",
    "aksnet_agent_services_programmed",
    "aksnet_agent_policies_programmed",
    "aksnet_agent_ipam_addresses_used",
    "aksnet_agent_ipam_addresses_free",
    "aksnet_agent_store_errors_total",
    "aksnet_agent_last_successful_sync_timestamp_seconds",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RangeLabel {
    range: String,
}

/// The agent's metrics and health. Shared (`Arc`) between the reconcile
/// loop and the HTTP server; every series is atomic.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Histogram,
    controller_duration: Family<ControllerLabel, Histogram>,
    controller_errors: Family<ControllerLabel, Counter>,
    reconcile_errors: Counter,
    routes: Gauge,
    snat_rules: Gauge,
    services: Gauge,
    policies: Gauge,
    ipam_used: Family<RangeLabel, Gauge>,
    ipam_free: Family<RangeLabel, Gauge>,
    store_errors: Counter,
    last_sync: Gauge<f64, AtomicU64>,
    health: Mutex<Health>,
}

#[derive(Debug)]
struct Health {
    last_success: Option<Instant>,
    last_error: Option<String>,
    /// A pass older than this means the agent is stuck.
    stale_after: Duration,
}

/// What `/healthz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthStatus {
    /// The last successful pass is recent.
    Ok { since_sync: Duration },
    /// No successful pass yet, or the last one is older than allowed.
    Unhealthy(String),
}

fn duration_histogram() -> Histogram {
    // 1 ms to ~16 s: a pass on a quiet node takes milliseconds, a
    // store outage makes it wait seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// Metrics for an agent whose passes should succeed at least every
    /// `stale_after` (`/healthz` fails past it).
    pub fn new(stale_after: Duration) -> Self {
        let mut registry = Registry::with_prefix("aksnet_agent");
        let reconcile_duration = duration_histogram();
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile pass took (every controller, store reads and writes)",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let controller_duration = Family::<ControllerLabel, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "controller_duration",
            "Time each controller took in a pass",
            Unit::Seconds,
            controller_duration.clone(),
        );
        let controller_errors = Family::<ControllerLabel, Counter>::default();
        registry.register(
            "controller_errors",
            "Passes in which a controller failed to program the node",
            controller_errors.clone(),
        );
        let reconcile_errors = Counter::default();
        registry.register(
            "reconcile_errors",
            "Reconcile passes that ended with an error (retried with backoff)",
            reconcile_errors.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let routes = gauge(
            &mut registry,
            "routes_programmed",
            "Routes the routes controller holds: kernel routes to peers, VTEP entries, the node's route-table slot",
        );
        let snat_rules = gauge(
            &mut registry,
            "snat_rules_programmed",
            "Rules in the agent's SNAT table",
        );
        let services = gauge(
            &mut registry,
            "services_programmed",
            "Service ports programmed in the node's ip aksnet-services table",
        );
        let policies = gauge(
            &mut registry,
            "policies_programmed",
            "Network policies programmed on the node (0 until this version has a policy controller)",
        );
        let ipam_used = Family::<RangeLabel, Gauge>::default();
        registry.register(
            "ipam_addresses_used",
            "Pod addresses allocated (aksnet-ipam files) in each of the node's ranges",
            ipam_used.clone(),
        );
        let ipam_free = Family::<RangeLabel, Gauge>::default();
        registry.register(
            "ipam_addresses_free",
            "Pod addresses still free in each of the node's ranges",
            ipam_free.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Reconcile passes that failed on the cluster store",
            store_errors.clone(),
        );
        let last_sync = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "last_successful_sync_timestamp",
            "Unix time of the last reconcile pass that succeeded",
            Unit::Seconds,
            last_sync.clone(),
        );
        Metrics {
            registry,
            reconcile_duration,
            controller_duration,
            controller_errors,
            reconcile_errors,
            routes,
            snat_rules,
            services,
            policies,
            ipam_used,
            ipam_free,
            store_errors,
            last_sync,
            health: Mutex::new(Health {
                last_success: None,
                last_error: None,
                stale_after,
            }),
        }
    }

    /// Records one pass: `outcome` is the pass's controller runs (or its
    /// error), `duration` its length, `ipam` the node's ranges and the
    /// addresses allocated.
    pub fn observe(
        &self,
        duration: Duration,
        outcome: Result<&[ControllerRun], &AgentError>,
        ipam: Option<(&PodRanges, &std::collections::BTreeSet<Ipv4Addr>)>,
    ) {
        self.reconcile_duration.observe(duration.as_secs_f64());
        let runs = match outcome {
            Ok(runs) => runs,
            Err(e) => {
                self.reconcile_errors.inc();
                if matches!(e, AgentError::Store(_) | AgentError::Cluster(_)) {
                    self.store_errors.inc();
                }
                self.lock_health().last_error = Some(e.to_string());
                return;
            }
        };
        for run in runs {
            let label = ControllerLabel {
                controller: run.name.to_string(),
            };
            self.controller_duration
                .get_or_create(&label)
                .observe(run.duration.as_secs_f64());
            if run.error.is_some() {
                self.controller_errors.get_or_create(&label).inc();
            }
            let objects = i64::try_from(run.programmed.objects).unwrap_or(i64::MAX);
            match run.name {
                "routes" => self.routes.set(objects),
                "snat" => self.snat_rules.set(objects),
                "services" => self.services.set(objects),
                "policy" => self.policies.set(objects),
                _ => 0,
            };
        }
        self.ipam_used.clear();
        self.ipam_free.clear();
        if let Some((ranges, allocated)) = ipam {
            for u in ipam_use(ranges, allocated) {
                let label = RangeLabel { range: u.range };
                self.ipam_used.get_or_create(&label).set(to_i64(u.used));
                self.ipam_free.get_or_create(&label).set(to_i64(u.free));
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_sync.set(now);
        let mut h = self.lock_health();
        h.last_success = Some(Instant::now());
        h.last_error = None;
    }

    /// Reads the node's allocations and records the pass (what the loop
    /// calls). An unreadable IPAM directory leaves the IPAM series out.
    pub fn observe_pass(
        &self,
        duration: Duration,
        outcome: Result<&[ControllerRun], &AgentError>,
        ranges: Option<&PodRanges>,
        ipam_data_dir: &Path,
    ) {
        let allocated = match ranges {
            Some(_) if outcome.is_ok() => match ipam_disk::allocated(ipam_data_dir) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the IPAM allocations for metrics");
                    None
                }
            },
            _ => None,
        };
        let ipam = ranges.zip(allocated.as_ref());
        self.observe(duration, outcome, ipam);
    }

    pub fn health(&self) -> HealthStatus {
        let h = self.lock_health();
        match (h.last_success, &h.last_error) {
            (Some(at), _) if at.elapsed() <= h.stale_after => HealthStatus::Ok {
                since_sync: at.elapsed(),
            },
            (Some(at), err) => HealthStatus::Unhealthy(format!(
                "last successful sync {:.0}s ago (allowed {}s){}",
                at.elapsed().as_secs_f64(),
                h.stale_after.as_secs(),
                err.as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )),
            (None, Some(e)) => HealthStatus::Unhealthy(format!("no successful sync yet: {e}")),
            (None, None) => HealthStatus::Unhealthy("no successful sync yet".into()),
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One range's address use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeUse {
    /// `CIDR` for a block, `START-END` for an Azure pool range.
    pub range: String,
    pub used: u64,
    pub free: u64,
}

/// Use of each of the node's ranges. A block's pods take every address but
/// the network, the gateway (.1) and the broadcast address, as aksnet-ipam
/// (host-local) allocates them.
pub fn ipam_use(
    ranges: &PodRanges,
    allocated: &std::collections::BTreeSet<Ipv4Addr>,
) -> Vec<RangeUse> {
    match ranges {
        PodRanges::Block(b) => {
            let size = 1u64 << (32 - u32::from(b.prefix_len()));
            let usable = size.saturating_sub(3);
            let used = allocated.iter().filter(|ip| b.contains(*ip)).count() as u64;
            vec![RangeUse {
                range: b.trunc().to_string(),
                used,
                free: usable.saturating_sub(used),
            }]
        }
        PodRanges::Pool { ranges, .. } => ranges
            .iter()
            .map(|r| {
                let used = allocated
                    .iter()
                    .filter(|ip| (r.start..=r.end).contains(*ip))
                    .count() as u64;
                RangeUse {
                    range: format!("{}-{}", r.start, r.end),
                    used,
                    free: r.len().saturating_sub(used),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::controllers::Programmed;
    use aksnet_core::cluster::IpRange;
    use std::collections::BTreeSet;

    fn run(name: &'static str, objects: usize, error: Option<&str>) -> ControllerRun {
        ControllerRun {
            name,
            duration: Duration::from_millis(3),
            programmed: Programmed {
                objects,
                changed: 0,
            },
            error: error.map(str::to_string),
        }
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.split_once(' ').is_some_and(|(name, _)| name == series))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
    }

    fn ips(list: &[&str]) -> BTreeSet<Ipv4Addr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn has_family(text: &str, name: &str) -> bool {
        let base = name.strip_suffix("_total").unwrap_or(name);
        text.contains(&format!("# TYPE {base} "))
    }

    /// Series with labels (per controller, per range).
    const LABELLED: &[&str] = &[
        "aksnet_agent_controller_duration_seconds",
        "aksnet_agent_controller_errors_total",
        "aksnet_agent_ipam_addresses_used",
        "aksnet_agent_ipam_addresses_free",
    ];

    #[test]
    fn every_documented_series_is_exported() {
        let m = Metrics::new(Duration::from_secs(15));
        let text = m.encode();
        // Before the first pass: every series without labels, at 0.
        for name in NAMES.iter().filter(|n| !LABELLED.contains(n)) {
            assert!(has_family(&text, name), "{name} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(matches!(m.health(), HealthStatus::Unhealthy(_)));
        // After one: the labelled ones too.
        let runs = [run("routes", 1, Some("EPERM"))];
        let ranges = PodRanges::Block("10.244.3.0/24".parse().unwrap());
        m.observe(
            Duration::from_millis(1),
            Ok(&runs),
            Some((&ranges, &BTreeSet::new())),
        );
        let text = m.encode();
        for name in NAMES {
            assert!(has_family(&text, name), "{name} missing:\n{text}");
        }
        // And nothing undocumented.
        for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let family = line.split(' ').next().unwrap();
            assert!(
                NAMES
                    .iter()
                    .any(|n| *n == family || n.strip_suffix("_total") == Some(family)),
                "{family} is not in NAMES"
            );
        }
    }

    #[test]
    fn docs_operations_md_documents_every_series() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for name in NAMES {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "{name} is not in the table of {path}"
            );
        }
    }

    #[test]
    fn a_pass_sets_the_gauges_ipam_use_and_the_sync_time() {
        let m = Metrics::new(Duration::from_secs(15));
        let runs = [
            run("pool", 1, None),
            run("routes", 4, None),
            run("snat", 3, None),
        ];
        let ranges = PodRanges::Block("10.244.3.0/24".parse().unwrap());
        let alloc = ips(&["10.244.3.2", "10.244.3.3", "10.9.9.9"]);
        m.observe(
            Duration::from_millis(12),
            Ok(&runs),
            Some((&ranges, &alloc)),
        );
        let t = m.encode();
        assert_eq!(value(&t, "aksnet_agent_routes_programmed"), Some(4.0));
        assert_eq!(value(&t, "aksnet_agent_snat_rules_programmed"), Some(3.0));
        assert_eq!(value(&t, "aksnet_agent_services_programmed"), Some(0.0));
        assert_eq!(value(&t, "aksnet_agent_policies_programmed"), Some(0.0));
        assert_eq!(
            value(
                &t,
                "aksnet_agent_ipam_addresses_used{range=\"10.244.3.0/24\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                "aksnet_agent_ipam_addresses_free{range=\"10.244.3.0/24\"}"
            ),
            Some(251.0)
        );
        assert_eq!(
            value(&t, "aksnet_agent_reconcile_duration_seconds_count"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                "aksnet_agent_controller_duration_seconds_count{controller=\"snat\"}"
            ),
            Some(1.0)
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let sync = value(&t, "aksnet_agent_last_successful_sync_timestamp_seconds").unwrap();
        assert!((now - sync).abs() < 60.0, "{sync} vs {now}");
        assert!(matches!(m.health(), HealthStatus::Ok { .. }));
    }

    #[test]
    fn errors_count_by_kind_and_a_stale_agent_is_unhealthy() {
        let m = Metrics::new(Duration::from_millis(50));
        let store = AgentError::Store(aksnet_store::StoreError::LeaseNotFound(
            aksnet_store::LeaseId(7),
        ));
        m.observe(Duration::from_millis(1), Err(&store), None);
        let runs = [run("routes", 0, Some("EPERM"))];
        m.observe(Duration::from_millis(1), Ok(&runs), None);
        let removed = AgentError::Removed("a".into());
        m.observe(Duration::from_millis(1), Err(&removed), None);
        let t = m.encode();
        assert_eq!(value(&t, "aksnet_agent_store_errors_total"), Some(1.0));
        assert_eq!(value(&t, "aksnet_agent_reconcile_errors_total"), Some(2.0));
        assert_eq!(
            value(
                &t,
                "aksnet_agent_controller_errors_total{controller=\"routes\"}"
            ),
            Some(1.0)
        );
        assert!(matches!(m.health(), HealthStatus::Ok { .. }));
        std::thread::sleep(Duration::from_millis(80));
        match m.health() {
            HealthStatus::Unhealthy(why) => {
                assert!(why.contains("last error: node 'a'"), "{why}")
            }
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn ranges_that_change_drop_their_old_series() {
        let m = Metrics::new(Duration::from_secs(15));
        let pool = PodRanges::Pool {
            subnet: "10.224.0.0/16".parse().unwrap(),
            ranges: vec![
                IpRange {
                    start: "10.224.0.10".parse().unwrap(),
                    end: "10.224.0.39".parse().unwrap(),
                },
                IpRange {
                    start: "10.224.1.0".parse().unwrap(),
                    end: "10.224.1.0".parse().unwrap(),
                },
            ],
        };
        let alloc = ips(&["10.224.0.10", "10.224.0.39", "10.224.1.0"]);
        m.observe(Duration::ZERO, Ok(&[]), Some((&pool, &alloc)));
        let t = m.encode();
        let r1 = "{range=\"10.224.0.10-10.224.0.39\"}";
        let r2 = "{range=\"10.224.1.0-10.224.1.0\"}";
        assert_eq!(
            value(&t, &format!("aksnet_agent_ipam_addresses_used{r1}")),
            Some(2.0)
        );
        assert_eq!(
            value(&t, &format!("aksnet_agent_ipam_addresses_free{r1}")),
            Some(28.0)
        );
        assert_eq!(
            value(&t, &format!("aksnet_agent_ipam_addresses_free{r2}")),
            Some(0.0)
        );
        let block = PodRanges::Block("10.244.0.0/24".parse().unwrap());
        m.observe(Duration::ZERO, Ok(&[]), Some((&block, &BTreeSet::new())));
        let t = m.encode();
        assert!(!t.contains("10.224.0.10-"), "{t}");
        assert_eq!(
            value(
                &t,
                "aksnet_agent_ipam_addresses_free{range=\"10.244.0.0/24\"}"
            ),
            Some(253.0)
        );
    }
}
