//! Funnel events and counters.
//!
//! Every step after the send is an event row (`funnel_events`). The send itself is recorded on
//! the invitation row (`status`, `sent_at`, `message_id`), which [`tracking::events_of`] reads
//! as the `sent` event: a row per invitation sent was the largest write of a send after the
//! invitation itself, and nothing else read it (PostgreSQL spent ~14 us per invitation on it;
//! BENCHMARKS.md, "sixth session"). Distinct-recipient counts live in
//! `funnel_counts` per campaign, variant, locale, metric and hour; they are incremented in the
//! same transaction as the first-time transition on the invitation row (a recipient who opens
//! five times is one open), so reading a campaign's funnel is a small sum at any size.

pub mod report;
pub mod tracking;

use chrono::{NaiveDateTime, Timelike};
use diesel::prelude::*;

use crate::db::schema::{funnel_counts, funnel_events};
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};

db_enum! {
    /// `funnel_events.kind`: one step of one recipient's invitation. `Sent` is not stored: it is
    /// the invitation's `sent_at` ([`tracking::events_of`]).
    pub enum EventKind {
        Sent = "sent",
        Bounced = "bounced",
        Failed = "failed",
        Skipped = "skipped",
        Opened = "opened",
        Clicked = "clicked",
        Unsubscribed = "unsubscribed",
    }
}

db_enum! {
    /// `funnel_counts.metric`: a stage of the funnel, counted once per recipient.
    pub enum Metric {
        Recipients = "recipients",
        Sent = "sent",
        Delivered = "delivered",
        Bounced = "bounced",
        Failed = "failed",
        Opened = "opened",
        OpenedHuman = "opened_human",
        Clicked = "clicked",
        Submitted = "submitted",
        Confirmed = "confirmed",
        OptedOut = "opted_out",
        Unsubscribed = "unsubscribed",
        /// Issue 17: the one email reminder went out to a pending sign-up.
        Reminded = "reminded",
        /// Confirmations by path, each counted with `Confirmed` (the first per invitation).
        ConfirmedAfterReminder = "confirmed_after_reminder",
        ConfirmedFormReply = "confirmed_form_reply",
        ConfirmedFormCode = "confirmed_form_code",
        ConfirmedTapToText = "confirmed_tap_to_text",
    }
}

fn hour_of(at: NaiveDateTime) -> NaiveDateTime {
    at.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

/// Adds `by` distinct recipients to a counter. Call only on a first-time transition, inside
/// the transaction that made it.
pub fn increment(
    conn: &mut DbConn,
    campaign_id: &str,
    variant: &str,
    locale: &str,
    metric: Metric,
    at: NaiveDateTime,
    by: i64,
) -> Result<(), DbError> {
    let mut tally = Tally::default();
    tally.add_n(campaign_id, variant, locale, metric, at, by);
    tally.flush(conn)
}

/// Counter increments gathered over a batch and written with one multi-row upsert, in key
/// order: every transaction that touches counters locks them in the same order, so concurrent
/// batches on PostgreSQL wait for each other instead of deadlocking.
#[derive(Debug, Default)]
pub struct Tally {
    counts: std::collections::BTreeMap<(String, String, String, Metric, NaiveDateTime), i64>,
}

impl Tally {
    /// Counts one recipient's first `metric`, at `at` (bucketed by hour).
    pub fn add(&mut self, campaign_id: &str, variant: &str, locale: &str, metric: Metric, at: NaiveDateTime) {
        self.add_n(campaign_id, variant, locale, metric, at, 1);
    }

    fn add_n(&mut self, campaign_id: &str, variant: &str, locale: &str, metric: Metric, at: NaiveDateTime, by: i64) {
        *self
            .counts
            .entry((
                campaign_id.to_owned(),
                variant.to_owned(),
                locale.to_owned(),
                metric,
                hour_of(at),
            ))
            .or_default() += by;
    }

    /// Writes the counts with one multi-row upsert; rows are inserted, and so locked, in key order.
    pub fn flush(self, conn: &mut DbConn) -> Result<(), DbError> {
        use diesel::upsert::excluded;
        if self.counts.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = self
            .counts
            .iter()
            .map(|((campaign, variant, locale, metric, hour), n)| {
                (
                    funnel_counts::campaign_id.eq(campaign.as_str()),
                    funnel_counts::variant.eq(variant.as_str()),
                    funnel_counts::locale.eq(locale.as_str()),
                    funnel_counts::metric.eq(*metric),
                    funnel_counts::hour.eq(*hour),
                    funnel_counts::count.eq(*n),
                )
            })
            .collect();
        let target = (
            funnel_counts::campaign_id,
            funnel_counts::variant,
            funnel_counts::locale,
            funnel_counts::metric,
            funnel_counts::hour,
        );
        let add = funnel_counts::count.eq(funnel_counts::count + excluded(funnel_counts::count));
        // A batch has a few dozen groups at most; SQLite's bound-value limit is far away, but
        // chunk anyway so that no tally can reach it.
        for chunk in rows.chunks(1000) {
            db::on_each_backend!(conn, |c| diesel::insert_into(funnel_counts::table)
                .values(chunk)
                .on_conflict(target)
                .do_update()
                .set(add)
                .execute(c))?;
        }
        for ((_, _, _, metric, _), n) in self.counts {
            db::after_commit(move || crate::metrics::METRICS.funnel_transition(metric, n));
        }
        Ok(())
    }
}

/// One funnel event as it happened.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub workspace_id: &'a str,
    pub campaign_id: &'a str,
    pub invitation_id: &'a str,
    pub kind: EventKind,
    pub at: Option<NaiveDateTime>,
    pub human: Option<bool>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub detail: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = funnel_events, treat_none_as_default_value = false)]
struct NewEvent<'a> {
    id: String,
    workspace_id: &'a str,
    campaign_id: &'a str,
    invitation_id: &'a str,
    kind: EventKind,
    at: NaiveDateTime,
    human: Option<bool>,
    ip: Option<&'a str>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl<'a> From<&'a Event<'a>> for NewEvent<'a> {
    fn from(e: &'a Event<'a>) -> Self {
        Self {
            id: db::new_id(),
            workspace_id: e.workspace_id,
            campaign_id: e.campaign_id,
            invitation_id: e.invitation_id,
            kind: e.kind,
            at: e.at.unwrap_or_else(db::now),
            human: e.human,
            ip: e.ip,
            user_agent: e.user_agent.map(|ua| ua.chars().take(500).collect()),
            detail: e.detail.map(|d| d.chars().take(1000).collect()),
        }
    }
}

/// Writes many events with one multi-row insert.
pub fn record_events(conn: &mut DbConn, events: &[Event<'_>]) -> Result<(), DbError> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewEvent<'_>> = events.iter().map(NewEvent::from).collect();
    // Multi-row insert is backend-specific in diesel's MultiConnection; SQLite allows 32,766
    // bound values per statement, so insert in chunks.
    for chunk in rows.chunks(2000) {
        match conn {
            DbConn::Sqlite(c) => diesel::insert_into(funnel_events::table).values(chunk).execute(c)?,
            // COPY is cheaper for PostgreSQL than parsing a statement of thousands of parameters.
            DbConn::Pg(c) => diesel::copy_from(funnel_events::table)
                .from_insertable(chunk)
                .execute(c)?,
        };
    }
    Ok(())
}

pub fn record_event(conn: &mut DbConn, event: &Event<'_>) -> Result<(), DbError> {
    diesel::insert_into(funnel_events::table)
        .values(NewEvent::from(event))
        .execute(conn)?;
    Ok(())
}

/// Counter totals of one campaign: `(variant, locale, metric, count)`.
pub fn totals(conn: &mut DbConn, campaign_id: &str) -> Result<Vec<(String, String, String, i64)>, DbError> {
    // diesel types SUM(BIGINT) as NUMERIC; the cast keeps it an integer on both backends.
    let total = diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(SUM(count) AS BIGINT)");
    Ok(funnel_counts::table
        .filter(funnel_counts::campaign_id.eq(campaign_id))
        .group_by((funnel_counts::variant, funnel_counts::locale, funnel_counts::metric))
        .select((
            funnel_counts::variant,
            funnel_counts::locale,
            funnel_counts::metric,
            total,
        ))
        .load(conn)?)
}
