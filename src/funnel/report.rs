//! A campaign's funnel: counts of distinct recipients, rates, per variant and locale, an A/B
//! significance test and a time series, all from the `funnel_counts` counters (one small query,
//! whatever the campaign's size).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime, Timelike};
use diesel::prelude::*;
use serde::Serialize;

use super::Metric;
use crate::campaigns::{Campaign, CampaignStatus};
use crate::db::schema::funnel_counts;
use crate::db::{DbConn, DbError};

/// The seeds' reference case (KAiKU): an invitation email to an email list got a 52.2 % open
/// rate, 6.7 % of openers signed up, 3.5 % of all recipients converted (240 permissions).
pub const KAIKU: Benchmark = Benchmark {
    name: "KAiKU",
    open_rate: 0.522,
    signup_rate_of_openers: 0.067,
    conversion_rate: 0.035,
};

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Benchmark {
    pub name: &'static str,
    pub open_rate: f64,
    pub signup_rate_of_openers: f64,
    pub conversion_rate: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Counts {
    pub recipients: i64,
    pub sent: i64,
    pub delivered: i64,
    pub bounced: i64,
    pub failed: i64,
    pub opened: i64,
    pub opened_human: i64,
    pub clicked: i64,
    pub submitted: i64,
    pub confirmed: i64,
    pub opted_out: i64,
    pub unsubscribed: i64,
    /// Pending sign-ups sent the one email reminder (issue 17).
    pub reminded: i64,
    /// Of `confirmed`, those confirmed after their reminder.
    pub confirmed_after_reminder: i64,
    pub confirmed_by_path: ConfirmedByPath,
}

/// Confirmations by the way they came (issue 17); `after_reminder` overlaps the other three
/// (a person reminded by email then confirms by reply, code or tap-to-text).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConfirmedByPath {
    /// The landing form, then the reply keyword to the SMS.
    pub form_reply: i64,
    /// The landing form, then the code from the SMS typed on the page.
    pub form_code: i64,
    /// One prefilled text from the landing page's tap-to-text link.
    pub tap_to_text: i64,
    pub after_reminder: i64,
}

impl Counts {
    fn add(&mut self, metric: Metric, n: i64) {
        let slot = match metric {
            Metric::Recipients => &mut self.recipients,
            Metric::Sent => &mut self.sent,
            Metric::Delivered => &mut self.delivered,
            Metric::Bounced => &mut self.bounced,
            Metric::Failed => &mut self.failed,
            Metric::Opened => &mut self.opened,
            Metric::OpenedHuman => &mut self.opened_human,
            Metric::Clicked => &mut self.clicked,
            Metric::Submitted => &mut self.submitted,
            Metric::Confirmed => &mut self.confirmed,
            Metric::OptedOut => &mut self.opted_out,
            Metric::Unsubscribed => &mut self.unsubscribed,
            Metric::Reminded => &mut self.reminded,
            Metric::ConfirmedAfterReminder => {
                self.confirmed_by_path.after_reminder += n;
                &mut self.confirmed_after_reminder
            }
            Metric::ConfirmedFormReply => &mut self.confirmed_by_path.form_reply,
            Metric::ConfirmedFormCode => &mut self.confirmed_by_path.form_code,
            Metric::ConfirmedTapToText => &mut self.confirmed_by_path.tap_to_text,
        };
        *slot += n;
    }

    pub fn rates(&self) -> Rates {
        let ratio = |a: i64, b: i64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        Rates {
            open_rate: ratio(self.opened, self.delivered),
            human_open_rate: ratio(self.opened_human, self.delivered),
            click_rate: ratio(self.clicked, self.delivered),
            signup_rate_of_openers: ratio(self.confirmed, self.opened),
            conversion_rate: ratio(self.confirmed, self.sent),
        }
    }
}

/// Rates as fractions (0.522 = 52.2 %). Opens and clicks are of delivered emails; sign-ups of
/// openers are confirmed consents per opener; conversion is confirmed consents per email sent
/// (the KAiKU definitions).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Rates {
    pub open_rate: f64,
    pub human_open_rate: f64,
    pub click_rate: f64,
    pub signup_rate_of_openers: f64,
    pub conversion_rate: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Breakdown {
    pub key: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
}

/// Two-proportion z-test of conversion (confirmed / sent) of a variant against the first one.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AbTest {
    pub control: String,
    pub variant: String,
    pub control_conversion: f64,
    pub variant_conversion: f64,
    /// Variant minus control, in percentage points.
    pub difference_pp: f64,
    pub z: f64,
    pub p_value: f64,
    /// 1 − p, the confidence that the difference is not chance.
    pub confidence: f64,
    pub significant: bool,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    pub at: NaiveDateTime,
    pub sent: i64,
    pub opened: i64,
    pub clicked: i64,
    pub submitted: i64,
    pub confirmed: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimeSeries {
    /// Hours for the first 48 hours after sending started, days after that.
    pub points: Vec<SeriesPoint>,
    pub hourly_until: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FunnelReport {
    pub campaign_id: String,
    pub name: String,
    pub status: CampaignStatus,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub rates: Rates,
    pub variants: Vec<Breakdown>,
    pub locales: Vec<Breakdown>,
    pub ab_tests: Vec<AbTest>,
    pub benchmark: Benchmark,
    pub series: TimeSeries,
}

const HOURLY_WINDOW_HOURS: i64 = 48;
/// Below this many emails sent per variant the z-test's normal approximation is not trusted.
const MIN_SAMPLE: i64 = 30;

pub fn campaign_funnel(
    conn: &mut DbConn,
    campaign: &Campaign,
    variant_order: &[String],
) -> Result<FunnelReport, DbError> {
    let rows: Vec<(String, String, String, NaiveDateTime, i64)> = funnel_counts::table
        .filter(funnel_counts::campaign_id.eq(&campaign.id))
        .select((
            funnel_counts::variant,
            funnel_counts::locale,
            funnel_counts::metric,
            funnel_counts::hour,
            funnel_counts::count,
        ))
        .load(conn)?;
    Ok(build(campaign, variant_order, &rows, crate::db::now()))
}

fn build(
    campaign: &Campaign,
    variant_order: &[String],
    rows: &[(String, String, String, NaiveDateTime, i64)],
    now: NaiveDateTime,
) -> FunnelReport {
    let mut total = Counts::default();
    let mut by_variant: BTreeMap<String, Counts> =
        variant_order.iter().map(|v| (v.clone(), Counts::default())).collect();
    let mut by_locale: BTreeMap<String, Counts> = BTreeMap::new();
    let mut by_hour: BTreeMap<NaiveDateTime, Counts> = BTreeMap::new();
    for (variant, locale, metric, hour, n) in rows {
        let Some(metric) = Metric::parse(metric) else { continue };
        total.add(metric, *n);
        by_variant.entry(variant.clone()).or_default().add(metric, *n);
        by_locale.entry(locale.clone()).or_default().add(metric, *n);
        by_hour.entry(*hour).or_default().add(metric, *n);
    }
    let breakdown = |(key, counts): (String, Counts)| Breakdown {
        key,
        rates: counts.rates(),
        counts,
    };
    // Variants in the campaign's order (the first is the control), then any unexpected ones.
    let mut variants: Vec<Breakdown> = Vec::new();
    for v in variant_order {
        if let Some(c) = by_variant.remove(v) {
            variants.push(breakdown((v.clone(), c)));
        }
    }
    variants.extend(by_variant.into_iter().map(breakdown));
    let ab_tests = match variants.split_first() {
        Some((control, others)) => others.iter().map(|v| ab_test(control, v)).collect(),
        None => Vec::new(),
    };
    FunnelReport {
        campaign_id: campaign.id.clone(),
        name: campaign.name.clone(),
        status: campaign.status,
        rates: total.rates(),
        counts: total,
        variants,
        locales: by_locale.into_iter().map(breakdown).collect(),
        ab_tests,
        benchmark: KAIKU,
        series: series(campaign.send_requested_at, &by_hour, now),
    }
}

fn series(started: Option<NaiveDateTime>, by_hour: &BTreeMap<NaiveDateTime, Counts>, now: NaiveDateTime) -> TimeSeries {
    let first_data = by_hour.keys().next().copied();
    let Some(start) = started.or(first_data).map(truncate_hour) else {
        return TimeSeries {
            points: Vec::new(),
            hourly_until: None,
        };
    };
    let last_data = by_hour.keys().next_back().copied().unwrap_or(start);
    let end = now.max(last_data);
    let hourly_until = start + Duration::hours(HOURLY_WINDOW_HOURS);
    let point = |at: NaiveDateTime, c: &Counts| SeriesPoint {
        at,
        sent: c.sent,
        opened: c.opened,
        clicked: c.clicked,
        submitted: c.submitted,
        confirmed: c.confirmed,
    };
    let mut points = Vec::new();
    let mut hour = start;
    while hour < hourly_until && hour <= end {
        points.push(point(hour, by_hour.get(&hour).unwrap_or(&Counts::default())));
        hour += Duration::hours(1);
    }
    // After 48 hours, one point a day (each day starts at the end of the hourly window).
    let mut day = hourly_until;
    while day <= end {
        let mut sum = Counts::default();
        for (_, c) in by_hour.range(day..day + Duration::days(1)) {
            for (m, n) in [
                (Metric::Sent, c.sent),
                (Metric::Opened, c.opened),
                (Metric::Clicked, c.clicked),
                (Metric::Submitted, c.submitted),
                (Metric::Confirmed, c.confirmed),
            ] {
                sum.add(m, n);
            }
        }
        points.push(point(day, &sum));
        day += Duration::days(1);
    }
    // Data recorded before sending started (clock skew) is folded into the first point.
    let early: i64 = by_hour.range(..start).map(|(_, c)| c.sent).sum();
    if let Some(first) = points.first_mut() {
        first.sent += early;
    }
    TimeSeries {
        points,
        hourly_until: Some(hourly_until),
    }
}

fn truncate_hour(t: NaiveDateTime) -> NaiveDateTime {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn ab_test(control: &Breakdown, variant: &Breakdown) -> AbTest {
    let (x1, n1) = (control.counts.confirmed, control.counts.sent);
    let (x2, n2) = (variant.counts.confirmed, variant.counts.sent);
    let p1 = if n1 > 0 { x1 as f64 / n1 as f64 } else { 0.0 };
    let p2 = if n2 > 0 { x2 as f64 / n2 as f64 } else { 0.0 };
    let pooled = if n1 + n2 > 0 {
        (x1 + x2) as f64 / (n1 + n2) as f64
    } else {
        0.0
    };
    let se = (pooled * (1.0 - pooled) * (1.0 / n1.max(1) as f64 + 1.0 / n2.max(1) as f64)).sqrt();
    let z = if se > 0.0 { (p2 - p1) / se } else { 0.0 };
    let p_value = if se > 0.0 {
        2.0 * (1.0 - normal_cdf(z.abs()))
    } else {
        1.0
    };
    let enough = n1 >= MIN_SAMPLE && n2 >= MIN_SAMPLE;
    let significant = enough && p_value < 0.05;
    let diff_pp = (p2 - p1) * 100.0;
    let confidence = 1.0 - p_value;
    let (better, worse, gap) = if diff_pp >= 0.0 {
        (&variant.key, &control.key, diff_pp)
    } else {
        (&control.key, &variant.key, -diff_pp)
    };
    let verdict = if !enough {
        format!("Not enough data yet: each variant needs at least {MIN_SAMPLE} emails sent")
    } else if significant {
        format!(
            "{better} converts {gap:.1} pp better than {worse}, {:.0} % confidence",
            confidence * 100.0
        )
    } else {
        format!(
            "Not yet significant: {better} converts {gap:.1} pp better than {worse}, {:.0} % confidence",
            confidence * 100.0
        )
    };
    AbTest {
        control: control.key.clone(),
        variant: variant.key.clone(),
        control_conversion: p1,
        variant_conversion: p2,
        difference_pp: diff_pp,
        z,
        p_value,
        confidence,
        significant,
        verdict,
    }
}

/// Φ(x), the standard normal distribution function, from erf (Abramowitz & Stegun 7.1.26,
/// absolute error below 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    sign * y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sent: i64, confirmed: i64) -> Breakdown {
        let c = Counts {
            sent,
            delivered: sent,
            confirmed,
            ..Counts::default()
        };
        Breakdown {
            key: String::new(),
            rates: c.rates(),
            counts: c,
        }
    }

    #[test]
    fn normal_cdf_matches_tables() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn z_test_of_a_clear_and_an_unclear_difference() {
        let mut a = counts(1000, 35);
        a.key = "A".into();
        let mut b = counts(1000, 60);
        b.key = "B".into();
        let t = ab_test(&a, &b);
        // p1 = 3.5 %, p2 = 6 %: z ≈ 2.63, p ≈ 0.0085.
        assert!((t.z - 2.63).abs() < 0.02, "{}", t.z);
        assert!(t.significant);
        assert_eq!(t.verdict, "B converts 2.5 pp better than A, 99 % confidence");

        let mut c = counts(1000, 38);
        c.key = "C".into();
        let t = ab_test(&a, &c);
        assert!(!t.significant);
        assert!(
            t.verdict
                .starts_with("Not yet significant: C converts 0.3 pp better than A"),
            "{}",
            t.verdict
        );

        let t = ab_test(&counts(10, 1), &counts(10, 5));
        assert!(!t.significant);
        assert!(t.verdict.starts_with("Not enough data yet"));
        let t = ab_test(&counts(0, 0), &counts(0, 0));
        assert_eq!((t.p_value, t.z), (1.0, 0.0));
    }

    #[test]
    fn rates_use_the_kaiku_definitions() {
        let c = Counts {
            sent: 1000,
            delivered: 1000,
            opened: 522,
            confirmed: 35,
            ..Counts::default()
        };
        let r = c.rates();
        assert!((r.open_rate - 0.522).abs() < 1e-9);
        assert!((r.signup_rate_of_openers - 35.0 / 522.0).abs() < 1e-9);
        assert!((r.conversion_rate - 0.035).abs() < 1e-9);
        assert_eq!(Counts::default().rates(), Rates::default(), "no division by zero");
    }

    #[test]
    fn series_is_hourly_for_48_hours_then_daily() {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .expect("date");
        let mut by_hour = BTreeMap::new();
        let mut c = Counts::default();
        c.add(Metric::Sent, 100);
        by_hour.insert(start, c);
        let mut late = Counts::default();
        late.add(Metric::Confirmed, 3);
        by_hour.insert(start + Duration::hours(60), late);
        by_hour.insert(start + Duration::hours(70), late);
        let s = series(Some(start + Duration::minutes(5)), &by_hour, start + Duration::days(4));
        let hourly = s.points.iter().filter(|p| p.at < start + Duration::hours(48)).count();
        assert_eq!(hourly, 48);
        assert_eq!(s.points[0].sent, 100);
        let day1 = s
            .points
            .iter()
            .find(|p| p.at == start + Duration::hours(48))
            .expect("first day");
        assert_eq!(
            day1.confirmed, 6,
            "hours 60 and 70 fall in the first day after the window"
        );
        assert_eq!(
            s.points.len(),
            48 + 3,
            "days starting at hours 48, 72 and 96 (the current one)"
        );
    }
}
