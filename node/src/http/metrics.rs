//! Counters and histograms for `/metrics` that no status field carries: commit latency,
//! keep-alive round trips, events by kind, and alert mails sent and failed.
//!
//! One set per process (a `tandemd` is one node), updated lock-free by the code that sees the
//! thing happen and rendered in Prometheus text by `http.rs`. Counters start at zero with the
//! process, as Prometheus expects of a `_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds, in seconds, of the commit-latency buckets: a sync write on a LAN takes a few
/// milliseconds, one waiting out `sync_timeout` up to seconds.
const COMMIT_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Upper bounds, in seconds, of the keep-alive round-trip buckets.
const RTT_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A Prometheus histogram with fixed buckets.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for above the last bound.
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

pub struct Metrics {
    /// A Data API or gateway write, from submission to its answer (in sync mode, after the
    /// peer's acknowledgement).
    pub commit_latency: Histogram,
    /// A heartbeat out and the peer's acknowledgement back, less the time the peer held it.
    pub keepalive_rtt: Histogram,
    pub alerts_sent: AtomicU64,
    pub alerts_failed: AtomicU64,
    events: Mutex<BTreeMap<String, u64>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    commit_latency: Histogram::new(COMMIT_BOUNDS),
    keepalive_rtt: Histogram::new(RTT_BOUNDS),
    alerts_sent: AtomicU64::new(0),
    alerts_failed: AtomicU64::new(0),
    events: Mutex::new(BTreeMap::new()),
});

/// This process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Counts an event recorded by this node.
    pub fn event(&self, kind: &str) {
        if let Ok(mut events) = self.events.lock() {
            *events.entry(kind.to_string()).or_default() += 1;
        }
    }

    fn events_of(&self, kind: &str) -> u64 {
        self.events
            .lock()
            .map(|events| events.get(kind).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Appends the counters and histograms in Prometheus text.
    pub fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            out,
            "tandem_failovers_total",
            "Failovers this node made (took the active role from a silent peer).",
            self.events_of("failover"),
        );
        counter(
            out,
            "tandem_switchovers_total",
            "Switchover events this node recorded.",
            self.events_of("switchover"),
        );
        counter(
            out,
            "tandem_alerts_sent_total",
            "Alert mails the mail server accepted.",
            self.alerts_sent.load(Ordering::Relaxed),
        );
        counter(
            out,
            "tandem_alerts_failed_total",
            "Attempts to send an alert mail that failed (each is retried).",
            self.alerts_failed.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP tandem_events_total Events this node recorded, by kind.\n# TYPE tandem_events_total counter"
        );
        if let Ok(events) = self.events.lock() {
            for (kind, count) in events.iter() {
                let _ = writeln!(out, "tandem_events_total{{kind=\"{kind}\"}} {count}");
            }
        }
        self.commit_latency.render(
            out,
            "tandem_commit_latency_seconds",
            "Writes through the Data API and the gateway, from submission to answer.",
        );
        self.keepalive_rtt.render(
            out,
            "tandem_keepalive_rtt_seconds",
            "Keep-alive round trips to the peer.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(2));
        let mut out = String::new();
        histogram.render(&mut out, "t", "help");
        assert!(out.contains("t_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.01\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("t_count 4\n"), "{out}");
        assert!(out.contains("t_sum 2.0105\n"), "{out}");
        assert!(out.contains("# TYPE t histogram\n"), "{out}");
    }

    #[test]
    fn events_are_counted_by_kind() {
        let metrics = Metrics {
            commit_latency: Histogram::new(COMMIT_BOUNDS),
            keepalive_rtt: Histogram::new(RTT_BOUNDS),
            alerts_sent: AtomicU64::new(0),
            alerts_failed: AtomicU64::new(0),
            events: Mutex::new(BTreeMap::new()),
        };
        metrics.event("failover");
        metrics.event("failover");
        metrics.event("merge");
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("tandem_failovers_total 2\n"), "{out}");
        assert!(
            out.contains("tandem_events_total{kind=\"merge\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("tandem_switchovers_total 0\n"), "{out}");
    }
}
