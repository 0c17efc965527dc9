//! Opens and clicks, recorded off the request path.
//!
//! The pixel and landing handlers only verify the link and push an event into a bounded
//! channel; one background task writes the events in batches (one transaction per batch), so the
//! request does no database work and thousands of opens a second cost a few transactions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio::sync::mpsc;

use super::{EventKind, Metric};
use crate::db::schema::{funnel_events, invitations};
use crate::db::{self, Db, DbConn, DbError};
use crate::metrics::METRICS;

const CHANNEL_CAPACITY: usize = 65_536;
const MAX_BATCH: usize = 2_000;
/// How long a request waits for room in a full buffer before dropping its event.
const FULL_WAIT: Duration = Duration::from_millis(100);
/// How long the writer waits to fill a batch once the first event arrived.
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Event rows kept per invitation and kind (opens, clicks); later ones only raise the counters, so
/// a link fetched endlessly (a scanner, a leaked URL, a load test) cannot fill the database.
const MAX_STORED_EVENTS_PER_KIND: i32 = 20;
/// Proxies that fetch images on delivery look like an open within this long after sending.
const PREFETCH_WINDOW_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackingKind {
    Open,
    Click,
}

#[derive(Debug, Clone)]
pub struct TrackingEvent {
    pub kind: TrackingKind,
    pub invitation_id: String,
    pub at: NaiveDateTime,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// The sending side, held by the HTTP handlers.
#[derive(Clone)]
pub struct TrackingBuffer {
    tx: mpsc::Sender<TrackingEvent>,
}

impl TrackingBuffer {
    /// Starts the writer task. It ends, after writing what is queued, when every sender is gone.
    pub fn spawn(db: Db) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let handle = tokio::spawn(writer(db, rx));
        (Self { tx }, handle)
    }

    /// Queues an event. When the buffer is full (the database far behind), waits up to 100 ms
    /// for room; only then is the event dropped and counted, so tracking slows a page down by
    /// at most that and never breaks it.
    pub async fn record(&self, event: TrackingEvent) {
        let Err(mpsc::error::TrySendError::Full(event)) = self.tx.try_send(event) else {
            return;
        };
        if tokio::time::timeout(FULL_WAIT, self.tx.send(event)).await.is_err() {
            METRICS.tracking_events_dropped.inc();
            tracing::warn!("tracking buffer full for 100 ms; an open/click event was dropped");
        }
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<TrackingEvent>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Let the batch gather while asleep rather than waiting on the channel: a sender wakes a
        // waiting receiver, and a wake-up per event (a cross-thread eventfd write from every
        // request) cost the tracking endpoints a third of their throughput.
        if rx.len() + 1 < MAX_BATCH {
            tokio::time::sleep(BATCH_WINDOW).await;
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        // Retry a failing batch a few times (database restarting); it is then logged and dropped
        // rather than blocking every later event.
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            let events = batch.clone();
            match db
                .run(move |conn| db::write_tx(conn, |conn| write_batch(conn, &events)))
                .await
            {
                Ok(()) => {
                    METRICS.tracking_events.add(n);
                    break;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %e, attempt, "writing tracking events failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    METRICS.tracking_events_dropped.add(n);
                    tracing::error!(error = %e, events = n, "writing tracking events failed; batch dropped");
                }
            }
        }
    }
}

#[derive(Debug, Clone, Queryable)]
struct InvitationState {
    id: String,
    workspace_id: String,
    campaign_id: String,
    variant: String,
    locale: String,
    sent_at: Option<NaiveDateTime>,
    opened_at: Option<NaiveDateTime>,
    human_opened_at: Option<NaiveDateTime>,
    clicked_at: Option<NaiveDateTime>,
    open_count: i32,
    click_count: i32,
}

fn write_batch(conn: &mut DbConn, events: &[TrackingEvent]) -> Result<(), DbError> {
    let mut ids: Vec<&str> = events.iter().map(|e| e.invitation_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut state: HashMap<String, (InvitationState, bool)> = invitations::table
        .filter(invitations::id.eq_any(&ids))
        .select((
            invitations::id,
            invitations::workspace_id,
            invitations::campaign_id,
            invitations::variant,
            invitations::locale,
            invitations::sent_at,
            invitations::opened_at,
            invitations::human_opened_at,
            invitations::clicked_at,
            invitations::open_count,
            invitations::click_count,
        ))
        .load::<InvitationState>(conn)?
        .into_iter()
        .map(|s| (s.id.clone(), (s, false)))
        .collect();

    let mut rows = Vec::with_capacity(events.len());
    let mut tally = super::Tally::default();
    for ev in events {
        let Some((inv, dirty)) = state.get_mut(&ev.invitation_id) else {
            continue; // a link to an invitation that no longer exists
        };
        let human = match ev.kind {
            TrackingKind::Open => is_human_open(ev.user_agent.as_deref(), ev.ip, inv.sent_at, ev.at),
            // A click is a person following the link (link scanners aside, which GET never
            // lets change consent state).
            TrackingKind::Click => !is_known_machine(ev.user_agent.as_deref(), ev.ip),
        };
        if inv.opened_at.is_none() {
            inv.opened_at = Some(ev.at);
            tally.add(&inv.campaign_id, &inv.variant, &inv.locale, Metric::Opened, ev.at);
        }
        if human && inv.human_opened_at.is_none() {
            inv.human_opened_at = Some(ev.at);
            tally.add(&inv.campaign_id, &inv.variant, &inv.locale, Metric::OpenedHuman, ev.at);
        }
        let nth = match ev.kind {
            TrackingKind::Open => {
                inv.open_count += 1;
                inv.open_count
            }
            TrackingKind::Click => {
                inv.click_count += 1;
                if inv.clicked_at.is_none() {
                    inv.clicked_at = Some(ev.at);
                    tally.add(&inv.campaign_id, &inv.variant, &inv.locale, Metric::Clicked, ev.at);
                }
                inv.click_count
            }
        };
        *dirty = true;
        if nth > MAX_STORED_EVENTS_PER_KIND {
            continue;
        }
        rows.push((
            funnel_events::id.eq(db::new_id()),
            funnel_events::workspace_id.eq(inv.workspace_id.clone()),
            funnel_events::campaign_id.eq(inv.campaign_id.clone()),
            funnel_events::invitation_id.eq(inv.id.clone()),
            funnel_events::kind.eq(match ev.kind {
                TrackingKind::Open => EventKind::Opened,
                TrackingKind::Click => EventKind::Clicked,
            }),
            funnel_events::at.eq(ev.at),
            funnel_events::human.eq(Some(human)),
            funnel_events::ip.eq(ev.ip.map(|ip| ip.to_string())),
            funnel_events::user_agent.eq(ev
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(500).collect::<String>())),
            funnel_events::detail.eq(None::<String>),
        ));
    }
    // Same lock order as every other writer: invitation rows by id, then counters by key.
    let mut dirty: Vec<&InvitationState> = state.values().filter(|(_, d)| *d).map(|(inv, _)| inv).collect();
    dirty.sort_by(|a, b| a.id.cmp(&b.id));
    for inv in dirty {
        diesel::update(invitations::table.find(&inv.id))
            .set((
                invitations::opened_at.eq(inv.opened_at),
                invitations::human_opened_at.eq(inv.human_opened_at),
                invitations::clicked_at.eq(inv.clicked_at),
                invitations::open_count.eq(inv.open_count),
                invitations::click_count.eq(inv.click_count),
            ))
            .execute(conn)?;
    }
    tally.flush(conn)?;
    db::on_each_backend!(conn, |c| diesel::insert_into(funnel_events::table)
        .values(&rows)
        .execute(c))?;
    Ok(())
}

/// Mail-privacy proxies and security scanners fetch the pixel without a person reading.
fn is_known_machine(user_agent: Option<&str>, ip: Option<IpAddr>) -> bool {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return true;
    };
    // Apple Mail Privacy Protection fetches through Apple's network (17.0.0.0/8) with a bare
    // "Mozilla/5.0" user agent, whether or not the message is read.
    if ua == "Mozilla/5.0" || matches!(ip, Some(IpAddr::V4(v4)) if v4.octets()[0] == 17) {
        return true;
    }
    let lower = ua.to_ascii_lowercase();
    [
        "bot",
        "crawler",
        "spider",
        "scanner",
        "barracuda",
        "mimecast",
        "proofpoint",
        "python-requests",
        "curl/",
        "wget/",
        "go-http-client",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Whether an open was a person reading. Image proxies (Gmail, Yahoo) fetch on behalf of a
/// reader, except right after delivery, when some prefetch every message.
pub fn is_human_open(
    user_agent: Option<&str>,
    ip: Option<IpAddr>,
    sent_at: Option<NaiveDateTime>,
    at: NaiveDateTime,
) -> bool {
    if is_known_machine(user_agent, ip) {
        return false;
    }
    let ua = user_agent.unwrap_or_default();
    let proxy = ua.contains("GoogleImageProxy") || ua.contains("ggpht.com") || ua.contains("YahooMailProxy");
    let seconds_after_send = sent_at.map(|s| (at - s).num_seconds());
    !(proxy && seconds_after_send.is_some_and(|s| s < PREFETCH_WINDOW_SECS))
}

/// The events of one invitation, oldest first: its `sent` (the invitation row's `sent_at`, see
/// [`crate::funnel`]) and its event rows.
pub fn events_of(
    conn: &mut DbConn,
    invitation_id: &str,
) -> Result<Vec<(String, NaiveDateTime, Option<bool>)>, DbError> {
    let sent: Option<NaiveDateTime> = invitations::table
        .find(invitation_id)
        .select(invitations::sent_at)
        .first::<Option<NaiveDateTime>>(conn)
        .optional()?
        .flatten();
    let mut events: Vec<(String, NaiveDateTime, Option<bool>)> = sent
        .map(|at| (EventKind::Sent.as_str().to_owned(), at, None))
        .into_iter()
        .collect();
    events.extend(
        funnel_events::table
            .filter(funnel_events::invitation_id.eq(invitation_id))
            // Stored by versions before the row's sent_at stood for it.
            .filter(funnel_events::kind.ne(EventKind::Sent))
            .order(funnel_events::at.asc())
            .select((funnel_events::kind, funnel_events::at, funnel_events::human))
            .load::<(String, NaiveDateTime, Option<bool>)>(conn)?,
    );
    events.sort_by_key(|e| e.1);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_opens_are_recognized() {
        let sent = chrono::Utc::now().naive_utc();
        let later = sent + chrono::Duration::minutes(10);
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
        assert!(is_human_open(Some(iphone), None, Some(sent), later));
        assert!(
            !is_human_open(Some("Mozilla/5.0"), None, Some(sent), later),
            "Apple MPP"
        );
        assert!(
            !is_human_open(Some(iphone), Some("17.58.1.2".parse().expect("ip")), Some(sent), later),
            "Apple range"
        );
        assert!(!is_human_open(None, None, Some(sent), later));
        let gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
        assert!(
            !is_human_open(Some(gmail), None, Some(sent), sent + chrono::Duration::seconds(3)),
            "prefetch"
        );
        assert!(
            is_human_open(Some(gmail), None, Some(sent), later),
            "proxy fetch on a real open"
        );
        assert!(!is_human_open(Some("Barracuda Sentinel"), None, Some(sent), later));
    }
}
