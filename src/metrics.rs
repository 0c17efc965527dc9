//! Process-wide counters, exposed at `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::funnel::Metric;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (rendered as a gauge).
#[derive(Debug, Default)]
pub struct Level(AtomicU64);

impl Level {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge to render: name, help text, and `(labels, value)` samples.
pub struct Gauge<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub samples: Vec<(String, i64)>,
}

pub struct Metrics {
    pub emails_sent: Counter,
    pub emails_bounced: Counter,
    pub emails_retried: Counter,
    pub emails_failed: Counter,
    pub tracking_events: Counter,
    pub tracking_events_dropped: Counter,
    pub unsubscribes: Counter,
    pub sms_sent: Counter,
    pub sms_failed: Counter,
    pub sms_retried: Counter,
    pub inbound_sms: Counter,
    pub webhook_rejected: Counter,
    /// Double-opt-in limits hit, by kind (token, phone, ip, country, workspace, resend).
    pub limit_hits: [Counter; 6],
    /// Funnel transitions (distinct recipients reaching a stage), in `Metric::ALL` order.
    pub funnel: [Counter; Metric::ALL.len()],
    /// HTTP responses by status class: 1xx … 5xx.
    pub http_responses: [Counter; 5],
    /// Circuit breakers by provider (`BREAKER_PROVIDERS`): times opened, and open now (0/1).
    pub circuit_opened: [Counter; 2],
    pub circuit_open: [Level; 2],
    /// Requests whose handler panicked (answered 500, also counted in `http_responses`).
    pub http_panics: Counter,
    /// Outbox batches whose processing panicked (the worker goes on; the jobs are retried).
    pub worker_panics: Counter,
    /// Messages read from the bounce mailbox, by outcome (`BOUNCE_OUTCOMES`).
    pub bounce_messages: [Counter; 4],
    /// Polls of the bounce mailbox that failed (connection, login, a command refused).
    pub bounce_polls_failed: Counter,
    /// Unrecognised messages left in the bounce mailbox at the last poll.
    pub bounce_unrecognised_left: Level,
    /// When the bounce mailbox was last read to the end (Unix seconds; 0: not yet).
    pub bounce_last_success: Level,
    /// Events from the ESPs' webhooks, by ESP (`ESP_NAMES`) and outcome (`ESP_OUTCOMES`).
    pub esp_events: [[Counter; 5]; 2],
}

/// What became of a message in the bounce mailbox: it bounced an invitation (deleted); it was a
/// report with nothing to record (a delay warning, a report seen before; deleted); it was not
/// understood (left in the mailbox, counted once per process); it was a feedback loop's spam
/// complaint that unsubscribed the recipient (deleted).
pub const BOUNCE_OUTCOMES: [&str; 4] = ["bounced", "ignored", "unrecognised", "unsubscribed"];

/// The ESPs whose event webhooks are read (`crate::mail::bounce::esp`).
pub const ESP_NAMES: [&str; 2] = ["mailgun", "sendgrid"];

/// What became of an ESP's event: it bounced an invitation; its spam complaint unsubscribed the
/// recipient; nothing to record (delivered, a delay, seen before); it names no invitation of
/// ours; its invitation is not recorded as sent yet (answered 503, the ESP sends it again).
pub const ESP_OUTCOMES: [&str; 5] = ["bounced", "unsubscribed", "ignored", "unmatched", "not_yet_sent"];

pub const BREAKER_PROVIDERS: [&str; 2] = ["smtp", "sms"];

const LIMIT_KINDS: [&str; 6] = ["token", "phone", "ip", "country", "workspace", "resend"];

pub static METRICS: Metrics = Metrics {
    emails_sent: Counter::new(),
    emails_bounced: Counter::new(),
    emails_retried: Counter::new(),
    emails_failed: Counter::new(),
    tracking_events: Counter::new(),
    tracking_events_dropped: Counter::new(),
    unsubscribes: Counter::new(),
    sms_sent: Counter::new(),
    sms_failed: Counter::new(),
    sms_retried: Counter::new(),
    inbound_sms: Counter::new(),
    webhook_rejected: Counter::new(),
    limit_hits: [const { Counter::new() }; 6],
    funnel: [const { Counter::new() }; Metric::ALL.len()],
    http_responses: [const { Counter::new() }; 5],
    circuit_opened: [const { Counter::new() }; 2],
    circuit_open: [const { Level::new() }; 2],
    http_panics: Counter::new(),
    worker_panics: Counter::new(),
    bounce_messages: [const { Counter::new() }; 4],
    bounce_polls_failed: Counter::new(),
    bounce_unrecognised_left: Level::new(),
    bounce_last_success: Level::new(),
    esp_events: [const { [const { Counter::new() }; 5] }; 2],
};

impl Metrics {
    pub fn limit_hit(&self, kind: &str) {
        if let Some(i) = LIMIT_KINDS.iter().position(|k| *k == kind) {
            self.limit_hits[i].inc();
        }
    }

    /// Counts `by` recipients reaching a funnel stage. Called where the counter row is written,
    /// so a transaction that rolls back and is retried may count twice.
    pub fn funnel_transition(&self, metric: Metric, by: i64) {
        if let Some(i) = Metric::ALL.iter().position(|m| *m == metric) {
            self.funnel[i].add(u64::try_from(by).unwrap_or(0));
        }
    }

    pub fn http_response(&self, status: u16) {
        if let Some(counter) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.http_responses.get(usize::from(i)))
        {
            counter.inc();
        }
    }

    /// The counters in Prometheus text exposition format, plus any gauges passed in.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let counters = [
            (
                "optbridge_emails_sent_total",
                "Invitation emails accepted by the mail server",
                &self.emails_sent,
            ),
            (
                "optbridge_emails_bounced_total",
                "Invitation emails refused permanently",
                &self.emails_bounced,
            ),
            (
                "optbridge_emails_retried_total",
                "Temporary email failures scheduled for retry",
                &self.emails_retried,
            ),
            (
                "optbridge_emails_failed_total",
                "Invitation emails given up after all retries",
                &self.emails_failed,
            ),
            (
                "optbridge_tracking_events_total",
                "Open and click events recorded",
                &self.tracking_events,
            ),
            (
                "optbridge_tracking_events_dropped_total",
                "Open and click events dropped because the buffer was full",
                &self.tracking_events_dropped,
            ),
            (
                "optbridge_unsubscribes_total",
                "One-click and page unsubscribes",
                &self.unsubscribes,
            ),
            (
                "optbridge_sms_sent_total",
                "SMS accepted by the provider",
                &self.sms_sent,
            ),
            (
                "optbridge_sms_failed_total",
                "SMS given up or refused permanently",
                &self.sms_failed,
            ),
            (
                "optbridge_sms_retried_total",
                "Temporary SMS failures scheduled for retry",
                &self.sms_retried,
            ),
            ("optbridge_inbound_sms_total", "SMS replies received", &self.inbound_sms),
            (
                "optbridge_webhooks_rejected_total",
                "Provider webhooks refused (bad signature or malformed)",
                &self.webhook_rejected,
            ),
            (
                "optbridge_http_panics_total",
                "Requests whose handler panicked (answered 500)",
                &self.http_panics,
            ),
            (
                "optbridge_worker_panics_total",
                "Outbox batches whose processing panicked (their jobs are retried later)",
                &self.worker_panics,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let name = "optbridge_doi_limit_hits_total";
        let _ = writeln!(
            out,
            "# HELP {name} Double-opt-in SMS refused by an abuse limit\n# TYPE {name} counter"
        );
        for (kind, counter) in LIMIT_KINDS.iter().zip(&self.limit_hits) {
            let _ = writeln!(out, "{name}{{limit=\"{kind}\"}} {}", counter.get());
        }
        let name = "optbridge_funnel_transitions_total";
        let _ = writeln!(
            out,
            "# HELP {name} Recipients reaching a funnel stage (each recipient once per stage)\n# TYPE {name} counter"
        );
        for (metric, counter) in Metric::ALL.iter().zip(&self.funnel) {
            let _ = writeln!(out, "{name}{{stage=\"{}\"}} {}", metric.as_str(), counter.get());
        }
        let name = "optbridge_http_responses_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP responses by status class\n# TYPE {name} counter"
        );
        for (class, counter) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().zip(&self.http_responses) {
            let _ = writeln!(out, "{name}{{class=\"{class}\"}} {}", counter.get());
        }
        let name = "optbridge_circuit_opened_total";
        let _ = writeln!(
            out,
            "# HELP {name} Times a provider's circuit breaker opened\n# TYPE {name} counter"
        );
        for (provider, counter) in BREAKER_PROVIDERS.iter().zip(&self.circuit_opened) {
            let _ = writeln!(out, "{name}{{provider=\"{provider}\"}} {}", counter.get());
        }
        let name = "optbridge_circuit_open";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while sends to the provider are paused by its circuit breaker\n# TYPE {name} gauge"
        );
        for (provider, level) in BREAKER_PROVIDERS.iter().zip(&self.circuit_open) {
            let _ = writeln!(out, "{name}{{provider=\"{provider}\"}} {}", level.get());
        }
        let name = "optbridge_bounce_messages_total";
        let _ = writeln!(
            out,
            "# HELP {name} Messages read from the bounce mailbox, by outcome\n# TYPE {name} counter"
        );
        for (outcome, counter) in BOUNCE_OUTCOMES.iter().zip(&self.bounce_messages) {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", counter.get());
        }
        let name = "optbridge_bounce_polls_failed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Polls of the bounce mailbox that failed\n# TYPE {name} counter\n{name} {}",
            self.bounce_polls_failed.get()
        );
        let name = "optbridge_esp_events_total";
        let _ = writeln!(
            out,
            "# HELP {name} Events from the ESPs' event webhooks, by outcome\n# TYPE {name} counter"
        );
        for (esp, counters) in ESP_NAMES.iter().zip(&self.esp_events) {
            for (outcome, counter) in ESP_OUTCOMES.iter().zip(counters) {
                let _ = writeln!(out, "{name}{{esp=\"{esp}\",outcome=\"{outcome}\"}} {}", counter.get());
            }
        }
        let name = "optbridge_bounce_mailbox_unrecognised";
        let _ = writeln!(
            out,
            "# HELP {name} Unrecognised messages left in the bounce mailbox at the last poll\n# TYPE {name} gauge\n{name} {}",
            self.bounce_unrecognised_left.get()
        );
        let name = "optbridge_bounce_mailbox_last_success_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} When the bounce mailbox was last read to the end (0: not yet, by this process)
# TYPE {name} gauge
{name} {}",
            self.bounce_last_success.get()
        );
        for Gauge { name, help, samples } in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}
