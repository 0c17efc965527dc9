//! Quiet hours: when a message that is not a direct reply to the recipient's own action may be sent
//! (PRODUCT.md, "Consent rules": default 08:00–20:00 recipient local time).
//!
//! There is no time-zone database in the tree, so local time comes from a small table of
//! countries with one time zone:
//! - European countries on WET/CET/EET observe the EU summer-time rule (Directive 2000/84/EC:
//!   +1 h from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October),
//!   which the UK, Norway, Switzerland, Ukraine and the Balkan states follow too. Portugal and Spain
//!   use their mainland time (the Azores and the Canaries are an hour behind).
//! - Iceland and a handful of countries outside Europe have a fixed offset and no daylight saving.
//! - Countries with several zones or their own daylight-saving dates (US, CA, AU, BR, MX, RU, GL,
//!   MD, …) are deliberately absent, as is anything unknown: they fall back to UTC rather than
//!   guess a zone that is wrong for part of the country.

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};

/// The local hours when sending is allowed: from `start_hour`:00 up to, not including,
/// `end_hour`:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start_hour: u32,
    pub end_hour: u32,
}

impl Default for QuietHours {
    fn default() -> Self {
        Self {
            start_hour: 8,
            end_hour: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietHoursError {
    #[error("sending window {start_hour}–{end_hour} is not within one day (need start < end <= 24)")]
    InvalidWindow { start_hour: u32, end_hour: u32 },
}

impl QuietHours {
    pub fn new(start_hour: u32, end_hour: u32) -> Result<Self, QuietHoursError> {
        let window = Self { start_hour, end_hour };
        if window.is_valid() {
            Ok(window)
        } else {
            Err(QuietHoursError::InvalidWindow { start_hour, end_hour })
        }
    }

    fn is_valid(self) -> bool {
        self.start_hour < self.end_hour && self.end_hour <= 24
    }

    fn allows(self, local_hour: u32) -> bool {
        self.start_hour <= local_hour && local_hour < self.end_hour
    }
}

const HOUR: i32 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Zone {
    /// Standard (winter) time, seconds east of UTC.
    standard: i32,
    eu_summer_time: bool,
}

fn zone(country: &str) -> Option<Zone> {
    let &[a, b] = country.trim().as_bytes() else {
        return None;
    };
    let (standard, eu_summer_time) = match [a.to_ascii_uppercase(), b.to_ascii_uppercase()] {
        // Western European Time.
        [b'G', b'B'] | [b'I', b'E'] | [b'P', b'T'] | [b'F', b'O'] | [b'I', b'M'] | [b'J', b'E'] | [b'G', b'G'] => {
            (0, true)
        }
        // Central European Time.
        [b'A', b'D']
        | [b'A', b'L']
        | [b'A', b'T']
        | [b'B', b'A']
        | [b'B', b'E']
        | [b'C', b'H']
        | [b'C', b'Z']
        | [b'D', b'E']
        | [b'D', b'K']
        | [b'E', b'S']
        | [b'F', b'R']
        | [b'G', b'I']
        | [b'H', b'R']
        | [b'H', b'U']
        | [b'I', b'T']
        | [b'L', b'I']
        | [b'L', b'U']
        | [b'M', b'C']
        | [b'M', b'E']
        | [b'M', b'K']
        | [b'M', b'T']
        | [b'N', b'L']
        | [b'N', b'O']
        | [b'P', b'L']
        | [b'R', b'S']
        | [b'S', b'E']
        | [b'S', b'I']
        | [b'S', b'J']
        | [b'S', b'K']
        | [b'S', b'M']
        | [b'V', b'A'] => (HOUR, true),
        // Eastern European Time.
        [b'A', b'X']
        | [b'B', b'G']
        | [b'C', b'Y']
        | [b'E', b'E']
        | [b'F', b'I']
        | [b'G', b'R']
        | [b'L', b'T']
        | [b'L', b'V']
        | [b'R', b'O']
        | [b'U', b'A'] => (2 * HOUR, true),
        // One zone, no daylight saving.
        [b'I', b'S'] => (0, false),
        [b'Z', b'A'] => (2 * HOUR, false),
        [b'B', b'Y'] | [b'T', b'R'] => (3 * HOUR, false),
        [b'A', b'E'] => (4 * HOUR, false),
        [b'I', b'N'] => (5 * HOUR + HOUR / 2, false),
        [b'C', b'N'] | [b'H', b'K'] | [b'S', b'G'] => (8 * HOUR, false),
        [b'J', b'P'] | [b'K', b'R'] => (9 * HOUR, false),
        _ => return None,
    };
    Some(Zone {
        standard,
        eu_summer_time,
    })
}

/// UTC offset of a country's local time at instant `at` (standard time plus daylight saving where
/// it applies). `country` is ISO 3166-1 alpha-2, case-insensitive; a country not in the table
/// gets UTC (see the module documentation).
pub fn utc_offset(country: &str, at: DateTime<Utc>) -> FixedOffset {
    let Some(zone) = zone(country) else {
        return Utc.fix();
    };
    let summer = if zone.eu_summer_time && in_eu_summer_time(at) {
        HOUR
    } else {
        0
    };
    FixedOffset::east_opt(zone.standard + summer).unwrap_or(Utc.fix())
}

fn in_eu_summer_time(at: DateTime<Utc>) -> bool {
    match (eu_switch(at.year(), 3), eu_switch(at.year(), 10)) {
        (Some(start), Some(end)) => start <= at && at < end,
        _ => false,
    }
}

/// 01:00 UTC on the last Sunday of `month` (March or October, both 31 days long).
fn eu_switch(year: i32, month: u32) -> Option<DateTime<Utc>> {
    let last_day = NaiveDate::from_ymd_opt(year, month, 31)?;
    let back_to_sunday = Days::new(u64::from(last_day.weekday().num_days_from_sunday()));
    Some(
        last_day
            .checked_sub_days(back_to_sunday)?
            .and_hms_opt(1, 0, 0)?
            .and_utc(),
    )
}

/// `at` if it is inside the window in the recipient's local time, else the next window opening.
///
/// The opening is normally `start_hour`:00 local; if a daylight-saving jump skips that time, it is
/// the jump itself (the first instant the local clock shows an allowed hour). A window that
/// [`QuietHours::new`] would reject is replaced by the product default 08–20 rather than allowing
/// any hour.
pub fn next_allowed(at: DateTime<Utc>, country: &str, window: QuietHours) -> DateTime<Utc> {
    let window = if window.is_valid() {
        window
    } else {
        QuietHours::default()
    };
    let local = |t: DateTime<Utc>| t.with_timezone(&utc_offset(country, t)).naive_local();
    let allowed = |t: DateTime<Utc>| window.allows(local(t).hour());
    if allowed(at) {
        return at;
    }
    let standard = zone(country).map_or(0, |zone| zone.standard);
    let today = local(at).date();
    // A day's opening is `start_hour`:00 on the local clock, reached under standard or summer
    // time; a conversion counts only if the clock really shows that time then.
    let openings = (0..=2)
        .filter_map(|days| {
            today
                .checked_add_days(Days::new(days))?
                .and_hms_opt(window.start_hour, 0, 0)
        })
        .flat_map(|opening| {
            [standard, standard + HOUR]
                .into_iter()
                .filter_map(move |offset| local_to_utc(opening, offset))
                .filter(move |&t| local(t) == opening)
        });
    let switches = [at.year(), at.year() + 1]
        .into_iter()
        .flat_map(|year| [eu_switch(year, 3), eu_switch(year, 10)])
        .flatten()
        .filter(|&t| zone(country).is_some_and(|zone| zone.eu_summer_time) && allowed(t));
    openings
        .chain(switches)
        .filter(|&t| t > at)
        .min()
        // Only reachable at the end of chrono's range (year 262143), where there is no later day.
        .unwrap_or(at)
}

fn local_to_utc(local: NaiveDateTime, offset_secs: i32) -> Option<DateTime<Utc>> {
    let offset = FixedOffset::east_opt(offset_secs)?;
    Some(offset.from_local_datetime(&local).single()?.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("test timestamp").to_utc()
    }

    fn hours(offset: FixedOffset) -> f64 {
        f64::from(offset.local_minus_utc()) / 3600.0
    }

    fn next(at: &str, country: &str) -> DateTime<Utc> {
        next_allowed(utc(at), country, QuietHours::default())
    }

    #[test]
    fn denmark_summer_morning_is_allowed_as_is() {
        // 06:30 UTC = 08:30 CEST.
        assert_eq!(next("2026-07-01T06:30:00Z", "DK"), utc("2026-07-01T06:30:00Z"));
    }

    #[test]
    fn denmark_summer_evening_waits_for_next_morning() {
        // 18:30 UTC = 20:30 CEST; next opening 08:00 CEST = 06:00 UTC.
        assert_eq!(next("2026-07-01T18:30:00Z", "DK"), utc("2026-07-02T06:00:00Z"));
        // After local midnight the opening is the same local day.
        assert_eq!(next("2026-07-01T23:30:00Z", "DK"), utc("2026-07-02T06:00:00Z"));
    }

    #[test]
    fn denmark_winter_early_morning_waits_until_eight_cet() {
        // 05:00 UTC = 06:00 CET; 08:00 CET = 07:00 UTC.
        assert_eq!(next("2026-01-15T05:00:00Z", "DK"), utc("2026-01-15T07:00:00Z"));
    }

    #[test]
    fn window_edges() {
        // Winter: 08:00 CET = 07:00 UTC, 20:00 CET = 19:00 UTC.
        assert_eq!(next("2026-01-15T07:00:00Z", "DK"), utc("2026-01-15T07:00:00Z"));
        assert_eq!(next("2026-01-15T06:59:59Z", "DK"), utc("2026-01-15T07:00:00Z"));
        assert_eq!(next("2026-01-15T18:59:59Z", "DK"), utc("2026-01-15T18:59:59Z"));
        assert_eq!(next("2026-01-15T19:00:00Z", "DK"), utc("2026-01-16T07:00:00Z"));
        // Summer: 08:00 CEST = 06:00 UTC, 20:00 CEST = 18:00 UTC.
        assert_eq!(next("2026-07-01T06:00:00Z", "DK"), utc("2026-07-01T06:00:00Z"));
        assert_eq!(next("2026-07-01T17:59:59Z", "DK"), utc("2026-07-01T17:59:59Z"));
        assert_eq!(next("2026-07-01T18:00:00Z", "DK"), utc("2026-07-02T06:00:00Z"));
    }

    #[test]
    fn eu_summer_time_switches_at_one_utc_on_the_last_sundays() {
        let dk = |at: &str| hours(utc_offset("DK", utc(at)));
        assert_eq!(dk("2026-03-29T00:59:59Z"), 1.0);
        assert_eq!(dk("2026-03-29T01:00:00Z"), 2.0);
        assert_eq!(dk("2026-10-25T00:59:59Z"), 2.0);
        assert_eq!(dk("2026-10-25T01:00:00Z"), 1.0);
        // A week earlier or later nothing changes; 2027's Sundays are March 28 and October 31.
        assert_eq!(dk("2026-03-22T12:00:00Z"), 1.0);
        assert_eq!(dk("2026-11-01T12:00:00Z"), 1.0);
        assert_eq!(dk("2027-03-28T00:59:59Z"), 1.0);
        assert_eq!(dk("2027-03-28T01:00:00Z"), 2.0);
        assert_eq!(dk("2027-10-30T12:00:00Z"), 2.0);
        assert_eq!(dk("2027-10-31T01:00:00Z"), 1.0);
    }

    #[test]
    fn switch_days_open_at_eight_local() {
        // Spring forward 2026-03-29: the evening before is CET, the morning is CEST.
        assert_eq!(next("2026-03-28T20:00:00Z", "DK"), utc("2026-03-29T06:00:00Z"));
        assert_eq!(next("2026-03-29T01:30:00Z", "DK"), utc("2026-03-29T06:00:00Z"));
        assert_eq!(next("2026-03-29T18:00:00Z", "DK"), utc("2026-03-30T06:00:00Z"));
        // Fall back 2026-10-25: the evening before is CEST, the morning is CET.
        assert_eq!(next("2026-10-24T19:00:00Z", "DK"), utc("2026-10-25T07:00:00Z"));
        assert_eq!(next("2026-10-25T06:30:00Z", "DK"), utc("2026-10-25T07:00:00Z"));
        assert_eq!(next("2026-10-25T19:00:00Z", "DK"), utc("2026-10-26T07:00:00Z"));
    }

    #[test]
    fn opening_skipped_by_spring_forward_is_the_jump() {
        // Window from 02:00: on 2026-03-29 the clock jumps from 02:00 CET to 03:00 CEST at 01:00 UTC.
        let window = QuietHours::new(2, 20).expect("window");
        assert_eq!(
            next_allowed(utc("2026-03-28T23:00:00Z"), "DK", window),
            utc("2026-03-29T01:00:00Z")
        );
        // On fall-back night 02:00 CEST (00:00 UTC) comes first.
        assert_eq!(
            next_allowed(utc("2026-10-24T22:30:00Z"), "DK", window),
            utc("2026-10-25T00:00:00Z")
        );
    }

    #[test]
    fn finland_is_on_eastern_european_time() {
        assert_eq!(hours(utc_offset("FI", utc("2026-01-15T12:00:00Z"))), 2.0);
        assert_eq!(hours(utc_offset("FI", utc("2026-07-01T12:00:00Z"))), 3.0);
        // 04:30 UTC = 07:30 EEST → 08:00 EEST = 05:00 UTC.
        assert_eq!(next("2026-07-01T04:30:00Z", "FI"), utc("2026-07-01T05:00:00Z"));
        // 05:30 UTC = 07:30 EET → 06:00 UTC.
        assert_eq!(next("2026-01-15T05:30:00Z", "FI"), utc("2026-01-15T06:00:00Z"));
        // 17:00 UTC = 20:00 EEST → next day 05:00 UTC.
        assert_eq!(next("2026-07-01T17:00:00Z", "FI"), utc("2026-07-02T05:00:00Z"));
    }

    #[test]
    fn great_britain_is_gmt_and_bst() {
        assert_eq!(hours(utc_offset("GB", utc("2026-01-15T12:00:00Z"))), 0.0);
        assert_eq!(hours(utc_offset("GB", utc("2026-07-01T12:00:00Z"))), 1.0);
        assert_eq!(next("2026-01-15T07:59:00Z", "GB"), utc("2026-01-15T08:00:00Z"));
        assert_eq!(next("2026-07-01T06:30:00Z", "GB"), utc("2026-07-01T07:00:00Z"));
        assert_eq!(next("2026-07-01T19:00:00Z", "GB"), utc("2026-07-02T07:00:00Z"));
    }

    #[test]
    fn iceland_has_no_summer_time() {
        assert_eq!(hours(utc_offset("IS", utc("2026-01-15T12:00:00Z"))), 0.0);
        assert_eq!(hours(utc_offset("IS", utc("2026-07-01T12:00:00Z"))), 0.0);
        assert_eq!(next("2026-07-01T07:30:00Z", "IS"), utc("2026-07-01T08:00:00Z"));
        assert_eq!(next("2026-07-01T19:59:00Z", "IS"), utc("2026-07-01T19:59:00Z"));
        assert_eq!(next("2026-07-01T20:00:00Z", "IS"), utc("2026-07-02T08:00:00Z"));
    }

    #[test]
    fn fixed_offsets_outside_europe() {
        let summer = utc("2026-07-01T12:00:00Z");
        assert_eq!(hours(utc_offset("IN", summer)), 5.5);
        assert_eq!(hours(utc_offset("JP", summer)), 9.0);
        assert_eq!(hours(utc_offset("TR", summer)), 3.0);
        // 02:00 UTC = 07:30 IST → 08:00 IST = 02:30 UTC.
        assert_eq!(next("2026-07-01T02:00:00Z", "IN"), utc("2026-07-01T02:30:00Z"));
        // 12:00 UTC = 21:00 JST → 08:00 JST next day = 23:00 UTC the same UTC day.
        assert_eq!(next("2026-07-01T12:00:00Z", "JP"), utc("2026-07-01T23:00:00Z"));
    }

    #[test]
    fn required_european_countries_are_in_the_table() {
        let winter = utc("2026-01-15T12:00:00Z");
        let summer = utc("2026-07-01T12:00:00Z");
        let expected = [
            ("DK", 1.0),
            ("NO", 1.0),
            ("SE", 1.0),
            ("DE", 1.0),
            ("NL", 1.0),
            ("BE", 1.0),
            ("FR", 1.0),
            ("ES", 1.0),
            ("IT", 1.0),
            ("AT", 1.0),
            ("CH", 1.0),
            ("PL", 1.0),
            ("CZ", 1.0),
            ("IE", 0.0),
            ("GB", 0.0),
            ("PT", 0.0),
            ("FI", 2.0),
            ("EE", 2.0),
            ("LV", 2.0),
            ("LT", 2.0),
            ("GR", 2.0),
        ];
        for (country, standard) in expected {
            assert!(zone(country).is_some(), "{country}");
            assert_eq!(hours(utc_offset(country, winter)), standard, "{country} winter");
            assert_eq!(hours(utc_offset(country, summer)), standard + 1.0, "{country} summer");
        }
    }

    #[test]
    fn unknown_countries_fall_back_to_utc() {
        for country in ["ZZ", "US", "", "DNK", "D"] {
            assert!(zone(country).is_none(), "{country}");
            assert_eq!(
                hours(utc_offset(country, utc("2026-07-01T12:00:00Z"))),
                0.0,
                "{country}"
            );
        }
        assert_eq!(next("2026-07-01T07:00:00Z", "ZZ"), utc("2026-07-01T08:00:00Z"));
    }

    #[test]
    fn country_codes_are_case_insensitive_and_trimmed() {
        let at = utc("2026-07-01T12:00:00Z");
        assert_eq!(utc_offset("dk", at), utc_offset("DK", at));
        assert_eq!(utc_offset(" Dk ", at), utc_offset("DK", at));
    }

    #[test]
    fn year_boundary() {
        // 20:00 UTC on New Year's Eve = 21:00 CET → 08:00 CET on 1 January.
        assert_eq!(next("2026-12-31T20:00:00Z", "DK"), utc("2027-01-01T07:00:00Z"));
    }

    #[test]
    fn custom_and_invalid_windows() {
        assert_eq!(
            QuietHours::default(),
            QuietHours {
                start_hour: 8,
                end_hour: 20
            }
        );
        let office = QuietHours::new(9, 17).expect("window");
        assert_eq!(
            next_allowed(utc("2026-01-15T07:30:00Z"), "DK", office),
            utc("2026-01-15T08:00:00Z")
        );
        assert_eq!(
            next_allowed(utc("2026-01-15T16:00:00Z"), "DK", office),
            utc("2026-01-16T08:00:00Z")
        );
        let all_day = QuietHours::new(0, 24).expect("window");
        assert_eq!(
            next_allowed(utc("2026-01-15T23:59:59Z"), "DK", all_day),
            utc("2026-01-15T23:59:59Z")
        );
        for (start, end) in [(20, 8), (8, 8), (8, 25), (24, 24)] {
            assert_eq!(
                QuietHours::new(start, end),
                Err(QuietHoursError::InvalidWindow {
                    start_hour: start,
                    end_hour: end
                })
            );
            // Built directly, an invalid window behaves as the default.
            let invalid = QuietHours {
                start_hour: start,
                end_hour: end,
            };
            assert_eq!(
                next_allowed(utc("2026-01-15T05:00:00Z"), "DK", invalid),
                utc("2026-01-15T07:00:00Z")
            );
        }
    }

    #[test]
    fn result_is_always_the_first_allowed_instant() {
        // Every 20 minutes around both switch days and the new year: the answer is allowed, not in
        // the past, and nothing on the same 20-minute grid before it was allowed. The 02–20 window
        // opens at the spring-forward jump itself; the 02–03 window is skipped entirely that day,
        // so its next opening can be two days away.
        let windows = [
            QuietHours::default(),
            QuietHours::new(2, 20).expect("window"),
            QuietHours::new(2, 3).expect("window"),
        ];
        let periods = [
            ("2026-03-26T00:00:00Z", "2026-04-02T00:00:00Z"),
            ("2026-10-22T00:00:00Z", "2026-10-29T00:00:00Z"),
            ("2026-12-29T00:00:00Z", "2027-01-03T00:00:00Z"),
        ];
        for country in ["DK", "FI", "GB", "IS", "IN", "ZZ"] {
            for window in windows {
                let allowed = |t: DateTime<Utc>| {
                    let hour = t.with_timezone(&utc_offset(country, t)).hour();
                    window.start_hour <= hour && hour < window.end_hour
                };
                for (from, to) in periods {
                    let mut at = utc(from);
                    while at < utc(to) {
                        let answer = next_allowed(at, country, window);
                        assert!(answer >= at && allowed(answer), "{country} {window:?} {at}");
                        assert!(answer - at < TimeDelta::hours(49), "{country} {window:?} {at}");
                        let mut probe = at;
                        while probe < answer {
                            assert!(
                                !allowed(probe),
                                "{country} {window:?} {at}: {probe} allowed before {answer}"
                            );
                            probe += TimeDelta::minutes(20);
                        }
                        at += TimeDelta::minutes(20);
                    }
                }
            }
        }
    }
}
