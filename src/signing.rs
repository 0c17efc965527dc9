//! Keys that sign the links in invitations (landing, open pixel, unsubscribe).
//!
//! The first `migrate` creates a key; `optbridge keys rotate` adds a new current key. Older keys
//! stay valid for verification, so links already sent keep working until they expire.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::crypto;
use crate::db::schema::signing_keys;
use crate::db::{self, DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = signing_keys)]
pub struct SigningKey {
    pub kid: String,
    #[serde(skip)]
    pub secret: String,
    pub created_at: NaiveDateTime,
    /// Set when a newer key took over signing.
    pub retired_at: Option<NaiveDateTime>,
}

fn new_key() -> (String, String) {
    // Short, sortable key ids: the creation time plus randomness.
    let kid = format!(
        "k{}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        &crypto::hex(&crypto::random_bytes::<4>())
    );
    (kid, crypto::random_secret())
}

/// Creates a signing key if there is no current one. Returns the kid when one was created.
pub fn ensure_current(conn: &mut DbConn) -> Result<Option<String>, DbError> {
    db::write_tx(conn, |conn| {
        let current: i64 = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .count()
            .get_result(conn)?;
        if current > 0 {
            return Ok(None);
        }
        let (kid, secret) = new_key();
        insert(conn, &kid, &secret)?;
        Ok(Some(kid))
    })
}

/// Adds a new current key and retires the previous one from signing (it still verifies).
pub fn rotate(conn: &mut DbConn) -> Result<String, DbError> {
    db::write_tx(conn, |conn| {
        let now = db::now();
        diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
            .set(signing_keys::retired_at.eq(now))
            .execute(conn)?;
        let (kid, secret) = new_key();
        insert(conn, &kid, &secret)?;
        Ok(kid)
    })
}

fn insert(conn: &mut DbConn, kid: &str, secret: &str) -> Result<(), DbError> {
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(kid),
            signing_keys::secret.eq(secret),
            signing_keys::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// All keys, newest first.
pub fn all(conn: &mut DbConn) -> Result<Vec<SigningKey>, DbError> {
    Ok(signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKey::as_select())
        .load(conn)?)
}
