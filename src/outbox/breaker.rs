//! Circuit breakers: when a provider a job handler calls (a mail relay, an HTTP API) fails again
//! and again, workers stop calling it for a cool-down instead of burning every queued message's
//! retry attempts against it, then let one probe through; the probe's answer closes the circuit or
//! opens it again for twice as long (up to a maximum).
//!
//! A failure is a temporary one (timeout, refused or dropped connection, SMTP 4xx, HTTP 429 and
//! 5xx); any answer that shows the provider is working (success, or a permanent refusal of one
//! recipient) closes the circuit. Messages that meet an open circuit go back to the queue
//! without counting an attempt, and so do messages whose failure opened it or kept it open (a
//! failed probe): during an outage only the failures before the circuit opened are charged, so
//! a long outage delays messages but does not use up their attempts. Breakers are per process:
//! each worker process learns on its own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::{BREAKER_PROVIDERS, METRICS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Temporary failures in a row that open the circuit; 0 disables the breaker.
    pub failures: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

/// Whether a send may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// The circuit is closed.
    Go,
    /// The circuit was open and its cool-down is over: this send tests the provider.
    Probe,
    /// Open: put the message back for this long, without counting an attempt.
    Wait(Duration),
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    /// Times opened since the provider last answered well (doubles the cool-down).
    opened: u32,
    probing: bool,
}

#[derive(Debug)]
pub struct Breaker {
    provider: &'static str,
    /// Index into the metrics' per-provider arrays; `None` for a provider they do not list.
    slot: Option<usize>,
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker for the provider named `provider` (in logs and the circuit metrics).
    pub fn new(provider: &'static str, config: BreakerConfig) -> Self {
        Self {
            provider,
            slot: BREAKER_PROVIDERS.iter().position(|p| *p == provider),
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent: use it anyway.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn permit(&self) -> Permit {
        self.permit_at(Instant::now())
    }

    fn permit_at(&self, now: Instant) -> Permit {
        let mut s = self.state();
        match s.open_until {
            None => Permit::Go,
            Some(until) if now < until => Permit::Wait(until - now),
            // One probe at a time; the rest wait a base cool-down for its answer.
            Some(_) if s.probing => Permit::Wait(self.config.cooldown),
            Some(_) => {
                s.probing = true;
                Permit::Probe
            }
        }
    }

    /// How long the circuit stays open from now, if it is open: a send that failed and left
    /// the circuit open is put back for that long instead of being charged an attempt.
    pub fn paused_for(&self) -> Option<Duration> {
        let now = Instant::now();
        self.state()
            .open_until
            .map(|until| until.saturating_duration_since(now).max(Duration::from_millis(1)))
    }

    /// Records the provider's answer to a send made under `permit`. `retry_after` is how long
    /// the provider asked to be left alone (HTTP 429 `Retry-After`), if it did.
    pub fn record(&self, permit: Permit, provider_ok: bool, retry_after: Option<Duration>) {
        self.record_at(Instant::now(), permit, provider_ok, retry_after);
    }

    fn record_at(&self, now: Instant, permit: Permit, provider_ok: bool, retry_after: Option<Duration>) {
        if self.config.failures == 0 {
            return;
        }
        let mut s = self.state();
        if provider_ok {
            if s.open_until.is_some() {
                tracing::info!(provider = self.provider, "circuit closed: the provider answers again");
                if let Some(slot) = self.slot {
                    METRICS.circuit_open[slot].set(0);
                }
            }
            *s = State::default();
            return;
        }
        match (permit, s.open_until) {
            // A send that started before the circuit opened: already accounted for.
            (Permit::Go, Some(_)) => return,
            (Permit::Probe, _) => s.probing = false,
            _ => {
                s.failures += 1;
                if s.failures < self.config.failures {
                    return;
                }
            }
        }
        let doubled = self
            .config
            .cooldown
            .saturating_mul(1u32 << s.opened.min(16))
            .min(self.config.max_cooldown);
        let cooldown = retry_after.map_or(doubled, |ra| ra.max(doubled));
        s.open_until = Some(now + cooldown);
        s.opened = s.opened.saturating_add(1);
        s.failures = 0;
        if let Some(slot) = self.slot {
            METRICS.circuit_opened[slot].inc();
            METRICS.circuit_open[slot].set(1);
        }
        tracing::warn!(
            provider = self.provider,
            cooldown_ms = cooldown.as_millis() as u64,
            "circuit open: the provider keeps failing; pausing sends"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn breaker(failures: u32) -> Breaker {
        Breaker::new(
            "test",
            BreakerConfig {
                failures,
                cooldown: 100 * MS,
                max_cooldown: 350 * MS,
            },
        )
    }

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cooldown() {
        let b = breaker(3);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(b.permit_at(t0), Permit::Go);
            b.record_at(t0, Permit::Go, false, None);
        }
        assert_eq!(b.permit_at(t0), Permit::Go, "two failures are not enough");
        b.record_at(t0, Permit::Go, false, None);
        assert_eq!(b.permit_at(t0), Permit::Wait(100 * MS));
        assert_eq!(b.permit_at(t0 + 60 * MS), Permit::Wait(40 * MS));
        // Sends already in flight when it opened do not extend the cool-down.
        b.record_at(t0 + 10 * MS, Permit::Go, false, None);
        assert_eq!(b.permit_at(t0 + 100 * MS), Permit::Probe);
        assert_eq!(
            b.permit_at(t0 + 100 * MS),
            Permit::Wait(100 * MS),
            "one probe at a time"
        );
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_the_maximum() {
        let b = breaker(1);
        let mut now = Instant::now();
        b.record_at(now, Permit::Go, false, None);
        for expected in [100, 200, 350, 350] {
            assert_eq!(b.permit_at(now), Permit::Wait(expected * MS));
            now += expected * MS;
            assert_eq!(b.permit_at(now), Permit::Probe);
            b.record_at(now, Permit::Probe, false, None);
        }
    }

    #[test]
    fn an_answer_closes_and_resets() {
        let b = breaker(2);
        let now = Instant::now();
        b.record_at(now, Permit::Go, false, None);
        b.record_at(now, Permit::Go, true, None);
        b.record_at(now, Permit::Go, false, None);
        assert_eq!(b.permit_at(now), Permit::Go, "a success in between resets the count");
        b.record_at(now, Permit::Go, false, None);
        assert!(matches!(b.permit_at(now), Permit::Wait(_)));
        let later = now + 100 * MS;
        assert_eq!(b.permit_at(later), Permit::Probe);
        b.record_at(later, Permit::Probe, true, None);
        assert_eq!(b.permit_at(later), Permit::Go);
        // Closed again, the next opening starts from the base cool-down.
        b.record_at(later, Permit::Go, false, None);
        b.record_at(later, Permit::Go, false, None);
        assert_eq!(b.permit_at(later), Permit::Wait(100 * MS));
    }

    #[test]
    fn retry_after_lengthens_the_cooldown() {
        let b = breaker(1);
        let now = Instant::now();
        b.record_at(now, Permit::Go, false, Some(Duration::from_secs(5)));
        assert_eq!(b.permit_at(now), Permit::Wait(Duration::from_secs(5)));
    }

    #[test]
    fn zero_disables() {
        let b = breaker(0);
        let now = Instant::now();
        for _ in 0..100 {
            b.record_at(now, Permit::Go, false, None);
        }
        assert_eq!(b.permit_at(now), Permit::Go);
    }
}
