//! The consent ledger: an append-only, hash-chained record of every permission event.
//!
//! Each workspace has its own chain. An entry's hash covers the previous entry's hash, its
//! sequence number, kind, time and the SHA-256 of its payload (the evidence). Editing, deleting
//! or reordering a row breaks the chain, which `optbridge ledger verify` reports. The payload
//! holds personal data and may be redacted (erasure, retention); its hash stays, so the chain
//! still verifies after redaction.
//!
//! A chain that is consistent in itself can still have lost its newest entries, or have been
//! deleted whole or re-hashed after an edit by someone with write access to the database
//! (PostgreSQL's TRUNCATE bypasses the append-only triggers). A [`Checkpoint`] — each chain's
//! head, printed by `optbridge ledger checkpoint` and kept outside the database — catches those:
//! `ledger verify --checkpoint FILE` fails when a chain no longer reaches its head.

use aws_lc_rs::hmac;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto;
use crate::db::schema::consent_ledger;
use crate::db::text_enum::db_enum;
use crate::db::{self, DbConn, DbError};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

db_enum! {
    /// `consent_ledger.kind`: which permission event an entry records.
    pub enum LedgerKind {
        EmailPermissionImported = "email_permission_imported",
        EmailUnsubscribed = "email_unsubscribed",
        SmsConsentRequested = "sms_consent_requested",
        SmsConsentConfirmed = "sms_consent_confirmed",
        SmsConsentWithdrawn = "sms_consent_withdrawn",
        SmsResubscribed = "sms_resubscribed",
        ContactErased = "contact_erased",
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub contact_id: Option<&'a str>,
    pub kind: LedgerKind,
    pub at: NaiveDateTime,
    pub payload: Value,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable, utoipa::ToSchema)]
#[diesel(table_name = consent_ledger)]
pub struct Entry {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub seq: i64,
    #[serde(skip)]
    pub contact_id: Option<String>,
    /// The stored text as it is, not a [`LedgerKind`]: `verify` reports an edited kind as a
    /// broken hash instead of failing to read the row.
    pub kind: String,
    pub at: NaiveDateTime,
    #[serde(serialize_with = "payload_as_json")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<String>,
    pub payload_hash: String,
    pub prev_hash: String,
    pub hash: String,
    pub redacted_at: Option<NaiveDateTime>,
}

fn payload_as_json<S: serde::Serializer>(raw: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    let value: Value = raw
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    value.serialize(s)
}

/// The chained hash of one entry.
fn entry_hash(prev_hash: &str, seq: i64, kind: &str, at: NaiveDateTime, payload_hash: &str) -> String {
    let canonical = format!(
        "{prev_hash}\n{seq}\n{kind}\n{}\n{payload_hash}",
        at.format("%Y-%m-%dT%H:%M:%S%.6f")
    );
    crypto::sha256_hex(canonical.as_bytes())
}

#[derive(Insertable)]
#[diesel(table_name = consent_ledger, treat_none_as_default_value = false)]
struct NewRow<'a> {
    id: String,
    workspace_id: &'a str,
    seq: i64,
    contact_id: Option<&'a str>,
    kind: LedgerKind,
    at: NaiveDateTime,
    payload: Option<String>,
    payload_hash: String,
    prev_hash: String,
    hash: String,
    redacted_at: Option<NaiveDateTime>,
}

/// Appends entries to a workspace's chain. Call inside the write transaction of the change the
/// entries record, so both commit or neither does.
pub fn append(conn: &mut DbConn, workspace_id: &str, entries: &[NewEntry<'_>]) -> Result<(), DbError> {
    if entries.is_empty() {
        return Ok(());
    }
    // One appender per workspace at a time, or two would take the same sequence number.
    db::lock_for_transaction(conn, &format!("consent-ledger:{workspace_id}"))?;
    let last: Option<(i64, String)> = consent_ledger::table
        .filter(consent_ledger::workspace_id.eq(workspace_id))
        .order(consent_ledger::seq.desc())
        .select((consent_ledger::seq, consent_ledger::hash))
        .first(conn)
        .optional()?;
    let (mut seq, mut prev) = last.unwrap_or((0, GENESIS.to_owned()));
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        seq += 1;
        let payload = e.payload.to_string();
        let payload_hash = crypto::sha256_hex(payload.as_bytes());
        let hash = entry_hash(&prev, seq, e.kind.as_str(), e.at, &payload_hash);
        rows.push(NewRow {
            id: db::new_id(),
            workspace_id,
            seq,
            contact_id: e.contact_id,
            kind: e.kind,
            at: e.at,
            payload: Some(payload),
            payload_hash,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
            redacted_at: None,
        });
    }
    for chunk in rows.chunks(1000) {
        db::on_each_backend!(conn, |c| diesel::insert_into(consent_ledger::table)
            .values(chunk)
            .execute(c))?;
    }
    Ok(())
}

/// A contact's entries, oldest first.
pub fn of_contact(conn: &mut DbConn, workspace_id: &str, contact_id: &str) -> Result<Vec<Entry>, DbError> {
    Ok(consent_ledger::table
        .filter(consent_ledger::workspace_id.eq(workspace_id))
        .filter(consent_ledger::contact_id.eq(contact_id))
        .order(consent_ledger::seq.asc())
        .select(Entry::as_select())
        .load(conn)?)
}

/// Replaces the payloads of a contact's entries by a redaction marker (erasure, retention);
/// the hashes stay, so the chain still verifies. Returns how many entries were redacted.
pub fn redact_contact(conn: &mut DbConn, workspace_id: &str, contact_id: &str) -> Result<usize, DbError> {
    Ok(diesel::update(
        consent_ledger::table
            .filter(consent_ledger::workspace_id.eq(workspace_id))
            .filter(consent_ledger::contact_id.eq(contact_id))
            .filter(consent_ledger::redacted_at.is_null()),
    )
    .set((
        consent_ledger::payload.eq(None::<String>),
        consent_ledger::redacted_at.eq(db::now()),
    ))
    .execute(conn)?)
}

/// What `verify` found wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub workspace_id: String,
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub workspaces: usize,
    pub entries: u64,
    pub redacted: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Recomputes every chain (or one workspace's) and reports each break.
pub fn verify(conn: &mut DbConn, workspace: Option<&str>) -> Result<VerifyReport, DbError> {
    let mut workspaces_q = consent_ledger::table
        .select(consent_ledger::workspace_id)
        .distinct()
        .into_boxed();
    if let Some(ws) = workspace {
        workspaces_q = workspaces_q.filter(consent_ledger::workspace_id.eq(ws.to_owned()));
    }
    let workspaces: Vec<String> = workspaces_q.load(conn)?;
    let mut report = VerifyReport {
        workspaces: workspaces.len(),
        ..VerifyReport::default()
    };
    for ws in workspaces {
        let mut expected_seq = 1i64;
        let mut prev = GENESIS.to_owned();
        let mut after = 0i64;
        loop {
            let page: Vec<Entry> = consent_ledger::table
                .filter(consent_ledger::workspace_id.eq(&ws))
                .filter(consent_ledger::seq.gt(after))
                .order(consent_ledger::seq.asc())
                .limit(5000)
                .select(Entry::as_select())
                .load(conn)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in page {
                report.entries += 1;
                let mut problem = |p: String| {
                    report.problems.push(Problem {
                        workspace_id: ws.clone(),
                        seq: e.seq,
                        problem: p,
                    })
                };
                if e.seq != expected_seq {
                    problem(format!(
                        "sequence jumps from {} to {}: entries are missing",
                        expected_seq - 1,
                        e.seq
                    ));
                }
                if e.prev_hash != prev {
                    problem("does not follow the previous entry (deleted or reordered rows)".into());
                }
                match &e.payload {
                    Some(payload) if crypto::sha256_hex(payload.as_bytes()) != e.payload_hash => {
                        problem("payload was edited".into());
                    }
                    None if e.redacted_at.is_none() => problem("payload is missing but not marked redacted".into()),
                    None => report.redacted += 1,
                    _ => {}
                }
                if entry_hash(&e.prev_hash, e.seq, &e.kind, e.at, &e.payload_hash) != e.hash {
                    problem("hash does not match its content (kind, time or hashes edited)".into());
                }
                expected_seq = e.seq + 1;
                prev = e.hash;
            }
        }
    }
    Ok(report)
}

/// The newest entry of one workspace's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub workspace_id: String,
    pub seq: i64,
    pub hash: String,
}

/// Every chain's head at one moment, to be stored outside the database (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`CHECKPOINT_FORMAT`]: a file of another kind is refused rather than misread.
    pub format: String,
    pub created_at: DateTime<Utc>,
    pub heads: Vec<Head>,
    /// HMAC-SHA256 (hex) over [`Checkpoint::signed_text`], when made with a checkpoint key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

pub const CHECKPOINT_FORMAT: &str = "optbridge-ledger-checkpoint/1";

/// Shortest checkpoint key accepted: a short secret could be guessed offline from a signed file.
pub const MIN_CHECKPOINT_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("not a ledger checkpoint (format {0:?}, expected {CHECKPOINT_FORMAT:?})")]
    Format(String),
    #[error("the checkpoint key must be at least {MIN_CHECKPOINT_KEY_LEN} characters long")]
    ShortKey,
    #[error("the checkpoint is signed: set LEDGER_CHECKPOINT_KEY to the key it was signed with to check it")]
    KeyNeeded,
    #[error("the checkpoint is not signed but LEDGER_CHECKPOINT_KEY is set: an unsigned file could have been altered")]
    Unsigned,
    #[error("the checkpoint's signature does not match: the file was altered, or signed with another key")]
    BadSignature,
}

impl Checkpoint {
    /// The heads of every chain now, unsigned.
    pub fn take(conn: &mut DbConn) -> Result<Self, DbError> {
        Ok(Self {
            format: CHECKPOINT_FORMAT.to_owned(),
            created_at: Utc::now(),
            heads: heads(conn)?,
            signature: None,
        })
    }

    /// Signs the checkpoint with `key` (HMAC-SHA256), so that an edited file is noticed.
    pub fn sign(&mut self, key: &str) -> Result<(), CheckpointError> {
        let key = checkpoint_key(key)?;
        self.signature = Some(crypto::hex(hmac::sign(&key, self.signed_text().as_bytes()).as_ref()));
        Ok(())
    }

    /// Checks the file's format and, when signed or when a key is configured, its signature.
    pub fn authenticate(&self, key: Option<&str>) -> Result<(), CheckpointError> {
        if self.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError::Format(self.format.clone()));
        }
        match (key, &self.signature) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(CheckpointError::KeyNeeded),
            (Some(_), None) => Err(CheckpointError::Unsigned),
            (Some(key), Some(signature)) => {
                let key = checkpoint_key(key)?;
                let tag = crypto::hex(hmac::sign(&key, self.signed_text().as_bytes()).as_ref());
                if crypto::constant_time_eq(tag.as_bytes(), signature.as_bytes()) {
                    Ok(())
                } else {
                    Err(CheckpointError::BadSignature)
                }
            }
        }
    }

    /// What the signature covers: the format, the time and every head, one per line.
    fn signed_text(&self) -> String {
        let mut text = format!("{}\n{}\n", self.format, self.created_at.to_rfc3339());
        for h in &self.heads {
            text.push_str(&format!("{} {} {}\n", h.workspace_id, h.seq, h.hash));
        }
        text
    }
}

fn checkpoint_key(key: &str) -> Result<hmac::Key, CheckpointError> {
    if key.len() < MIN_CHECKPOINT_KEY_LEN {
        return Err(CheckpointError::ShortKey);
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()))
}

/// The newest entry of every workspace's chain, by workspace id.
pub fn heads(conn: &mut DbConn) -> Result<Vec<Head>, DbError> {
    let last: Vec<(String, Option<i64>)> = consent_ledger::table
        .group_by(consent_ledger::workspace_id)
        .select((consent_ledger::workspace_id, diesel::dsl::max(consent_ledger::seq)))
        .order(consent_ledger::workspace_id.asc())
        .load(conn)?;
    let mut heads = Vec::with_capacity(last.len());
    for (workspace_id, seq) in last {
        let Some(seq) = seq else { continue };
        let hash: String = consent_ledger::table
            .filter(consent_ledger::workspace_id.eq(&workspace_id))
            .filter(consent_ledger::seq.eq(seq))
            .select(consent_ledger::hash)
            .first(conn)?;
        heads.push(Head {
            workspace_id,
            seq,
            hash,
        });
    }
    Ok(heads)
}

/// What is wrong with the chains now, measured against the heads of an earlier checkpoint: a
/// chain that is gone, shorter, or holds another entry at the checkpoint's sequence number.
/// Chains that grew since, or that the checkpoint did not know, are fine. Authenticate the
/// checkpoint first ([`Checkpoint::authenticate`]).
pub fn check_against(
    conn: &mut DbConn,
    checkpoint: &Checkpoint,
    workspace: Option<&str>,
) -> Result<Vec<Problem>, DbError> {
    let mut problems = Vec::new();
    for head in &checkpoint.heads {
        if workspace.is_some_and(|ws| ws != head.workspace_id) {
            continue;
        }
        let problem = |problem: String| Problem {
            workspace_id: head.workspace_id.clone(),
            seq: head.seq,
            problem,
        };
        let at_head: Option<String> = consent_ledger::table
            .filter(consent_ledger::workspace_id.eq(&head.workspace_id))
            .filter(consent_ledger::seq.eq(head.seq))
            .select(consent_ledger::hash)
            .first(conn)
            .optional()?;
        match at_head {
            Some(hash) if hash == head.hash => {}
            Some(_) => problems.push(problem(format!(
                "entry {} differs from the checkpoint's: the chain was rewritten",
                head.seq
            ))),
            None => {
                let newest: Option<i64> = consent_ledger::table
                    .filter(consent_ledger::workspace_id.eq(&head.workspace_id))
                    .select(diesel::dsl::max(consent_ledger::seq))
                    .first(conn)?;
                problems.push(problem(match newest {
                    None => format!(
                        "the workspace's whole chain is gone (the checkpoint saw {} entries)",
                        head.seq
                    ),
                    Some(newest) if newest < head.seq => format!(
                        "the chain ends at entry {newest} but the checkpoint saw {}: entries were deleted from its end",
                        head.seq
                    ),
                    Some(_) => format!("entry {}, the checkpoint's head, is missing", head.seq),
                }));
            }
        }
    }
    Ok(problems)
}
