//! Funnel events and counters.
//!
//! Every step is an event row (`funnel_events`). Distinct-recipient counts live in
//! `funnel_counts` per campaign, variant, locale, metric and hour; they are incremented in the
//! same transaction as the first-time transition on the invitation row (a recipient who opens
//! five times is one open), so reading a campaign's funnel is a small sum at any size.

pub mod tracking;

use chrono::{NaiveDateTime, Timelike};
use diesel::prelude::*;

use crate::db::schema::{funnel_counts, funnel_events};
use crate::db::{self, DbConn, DbError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Recipients,
    Sent,
    Delivered,
    Bounced,
    Failed,
    Opened,
    OpenedHuman,
    Clicked,
    Submitted,
    Confirmed,
    OptedOut,
    Unsubscribed,
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Self::Recipients,
        Self::Sent,
        Self::Delivered,
        Self::Bounced,
        Self::Failed,
        Self::Opened,
        Self::OpenedHuman,
        Self::Clicked,
        Self::Submitted,
        Self::Confirmed,
        Self::OptedOut,
        Self::Unsubscribed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recipients => "recipients",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
            Self::Opened => "opened",
            Self::OpenedHuman => "opened_human",
            Self::Clicked => "clicked",
            Self::Submitted => "submitted",
            Self::Confirmed => "confirmed",
            Self::OptedOut => "opted_out",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
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
    let row = (
        funnel_counts::campaign_id.eq(campaign_id),
        funnel_counts::variant.eq(variant),
        funnel_counts::locale.eq(locale),
        funnel_counts::metric.eq(metric.as_str()),
        funnel_counts::hour.eq(hour_of(at)),
        funnel_counts::count.eq(by),
    );
    let target = (
        funnel_counts::campaign_id,
        funnel_counts::variant,
        funnel_counts::locale,
        funnel_counts::metric,
        funnel_counts::hour,
    );
    // Upserts are backend-specific in diesel's MultiConnection; the SQL is the same.
    match conn {
        DbConn::Sqlite(c) => diesel::insert_into(funnel_counts::table)
            .values(row)
            .on_conflict(target)
            .do_update()
            .set(funnel_counts::count.eq(funnel_counts::count + by))
            .execute(c)?,
        DbConn::Pg(c) => diesel::insert_into(funnel_counts::table)
            .values(row)
            .on_conflict(target)
            .do_update()
            .set(funnel_counts::count.eq(funnel_counts::count + by))
            .execute(c)?,
    };
    Ok(())
}

/// One funnel event as it happened.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub workspace_id: &'a str,
    pub campaign_id: &'a str,
    pub invitation_id: &'a str,
    pub kind: &'a str,
    pub at: Option<NaiveDateTime>,
    pub human: Option<bool>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub detail: Option<&'a str>,
}

pub fn record_event(conn: &mut DbConn, event: &Event<'_>) -> Result<(), DbError> {
    diesel::insert_into(funnel_events::table)
        .values((
            funnel_events::id.eq(db::new_id()),
            funnel_events::workspace_id.eq(event.workspace_id),
            funnel_events::campaign_id.eq(event.campaign_id),
            funnel_events::invitation_id.eq(event.invitation_id),
            funnel_events::kind.eq(event.kind),
            funnel_events::at.eq(event.at.unwrap_or_else(db::now)),
            funnel_events::human.eq(event.human),
            funnel_events::ip.eq(event.ip),
            funnel_events::user_agent.eq(event.user_agent.map(|ua| ua.chars().take(500).collect::<String>())),
            funnel_events::detail.eq(event.detail.map(|d| d.chars().take(1000).collect::<String>())),
        ))
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
