//! Keys that sign the links in invitations (landing, open pixel, unsubscribe).
//!
//! The first `migrate` creates a key; `optbridge keys rotate` adds a new current key. Older keys
//! stay valid for verification, so links already sent keep working until they expire.
//!
//! With `SIGNING_KEY_ENCRYPTION_KEY` set, the secrets are stored encrypted (AES-256-GCM, a
//! random nonce per secret, the kid as associated data) as `v1:<nonce>:<ciphertext>`, so a copy
//! of the database alone cannot forge links. Start-up (`serve`, `migrate`, `demo`) encrypts
//! keys still stored in clear, and re-encrypts those sealed with `SIGNING_KEY_ENCRYPTION_KEY_OLD`
//! while the encryption key is being changed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::crypto::{self, EncryptionKey};
use crate::db::schema::signing_keys;
use crate::db::{self, DbConn, DbError};

/// A link-signing key with its secret in clear (in memory only).
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

/// What `keys list` shows of a key: never the secret, but whether it is stored encrypted.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub encrypted: bool,
}

/// `SIGNING_KEY_ENCRYPTION_KEY`, and the one it replaces while it is being changed
/// (`SIGNING_KEY_ENCRYPTION_KEY_OLD`).
#[derive(Debug, Clone, Default)]
pub struct KeyEncryption {
    pub current: Option<EncryptionKey>,
    pub previous: Option<EncryptionKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(
        "link-signing key {kid} is stored encrypted: set SIGNING_KEY_ENCRYPTION_KEY to the key it was encrypted with"
    )]
    EncryptionKeyMissing { kid: String },
    #[error(
        "SIGNING_KEY_ENCRYPTION_KEY does not decrypt link-signing key {kid} (a wrong key, or an altered secret); \
         while changing the key, set the previous one as SIGNING_KEY_ENCRYPTION_KEY_OLD"
    )]
    WrongEncryptionKey { kid: String },
    #[error("encrypting link-signing key {kid} failed")]
    Encrypt { kid: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for SigningKeyError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Marks a stored secret as encrypted; clear secrets are base64url and never contain `:`.
const SEALED_V1: &str = "v1:";

fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_V1)
}

fn seal(key: &EncryptionKey, kid: &str, secret: &str) -> Result<String, SigningKeyError> {
    let sealed = key
        .seal(secret.as_bytes(), kid.as_bytes())
        .map_err(|_| SigningKeyError::Encrypt { kid: kid.to_owned() })?;
    Ok(format!(
        "{SEALED_V1}{}:{}",
        URL_SAFE_NO_PAD.encode(sealed.nonce),
        URL_SAFE_NO_PAD.encode(&sealed.ciphertext)
    ))
}

fn open(key: &EncryptionKey, kid: &str, stored: &str) -> Option<String> {
    let (nonce, ciphertext) = stored.strip_prefix(SEALED_V1)?.split_once(':')?;
    let nonce = URL_SAFE_NO_PAD.decode(nonce).ok()?;
    let ciphertext = URL_SAFE_NO_PAD.decode(ciphertext).ok()?;
    String::from_utf8(key.open(&nonce, &ciphertext, kid.as_bytes())?).ok()
}

impl KeyEncryption {
    /// What to store for a new secret: sealed when an encryption key is set.
    fn to_store(&self, kid: &str, secret: &str) -> Result<String, SigningKeyError> {
        match &self.current {
            Some(key) => seal(key, kid, secret),
            None => Ok(secret.to_owned()),
        }
    }

    /// The clear secret of a stored key, and whether it is sealed with the previous key.
    fn reveal(&self, kid: &str, stored: &str) -> Result<(String, bool), SigningKeyError> {
        if !is_sealed(stored) {
            return Ok((stored.to_owned(), false));
        }
        let Some(current) = &self.current else {
            return Err(SigningKeyError::EncryptionKeyMissing { kid: kid.to_owned() });
        };
        if let Some(secret) = open(current, kid, stored) {
            return Ok((secret, false));
        }
        self.previous
            .as_ref()
            .and_then(|previous| open(previous, kid, stored))
            .map(|secret| (secret, true))
            .ok_or_else(|| SigningKeyError::WrongEncryptionKey { kid: kid.to_owned() })
    }
}

/// Other secrets the service must be able to read back (webhook signing secrets) are kept
/// the same way as the link-signing keys: sealed under `SIGNING_KEY_ENCRYPTION_KEY` when it is
/// set, with `context` (the row's identity) as associated data.
impl KeyEncryption {
    pub fn seal_secret(&self, context: &str, secret: &str) -> Result<String, SigningKeyError> {
        self.to_store(context, secret)
    }

    /// The clear secret, and whether it is sealed with the previous key (so it should be sealed again).
    pub fn open_secret(&self, context: &str, stored: &str) -> Result<(String, bool), SigningKeyError> {
        self.reveal(context, stored)
    }

    /// Whether a stored secret is sealed (rather than in clear).
    pub fn is_sealed(stored: &str) -> bool {
        is_sealed(stored)
    }
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
pub fn ensure_current(conn: &mut DbConn, encryption: &KeyEncryption) -> Result<Option<String>, SigningKeyError> {
    db::write_tx(conn, |conn| {
        let current: i64 = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .count()
            .get_result(conn)?;
        if current > 0 {
            return Ok(None);
        }
        let (kid, secret) = new_key();
        insert(conn, &kid, &encryption.to_store(&kid, &secret)?)?;
        Ok(Some(kid))
    })
}

/// Adds a new current key and retires the previous one from signing (it still verifies).
pub fn rotate(conn: &mut DbConn, encryption: &KeyEncryption) -> Result<String, SigningKeyError> {
    db::write_tx(conn, |conn| {
        let now = db::now();
        diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
            .set(signing_keys::retired_at.eq(now))
            .execute(conn)?;
        let (kid, secret) = new_key();
        insert(conn, &kid, &encryption.to_store(&kid, &secret)?)?;
        Ok(kid)
    })
}

fn insert(conn: &mut DbConn, kid: &str, stored: &str) -> Result<(), DbError> {
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(kid),
            signing_keys::secret.eq(stored),
            signing_keys::created_at.eq(db::now()),
        ))
        .execute(conn)?;
    Ok(())
}

fn stored(conn: &mut DbConn) -> Result<Vec<SigningKey>, DbError> {
    Ok(signing_keys::table
        .order(signing_keys::created_at.desc())
        .select(SigningKey::as_select())
        .load(conn)?)
}

/// All keys with their secrets decrypted, newest first. Fails when a key is stored encrypted
/// and no encryption key given opens it.
pub fn all(conn: &mut DbConn, encryption: &KeyEncryption) -> Result<Vec<SigningKey>, SigningKeyError> {
    stored(conn)?
        .into_iter()
        .map(|mut key| {
            key.secret = encryption.reveal(&key.kid, &key.secret)?.0;
            Ok(key)
        })
        .collect()
}

/// All keys without their secrets, newest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<KeyInfo>, DbError> {
    Ok(stored(conn)?
        .into_iter()
        .map(|k| KeyInfo {
            encrypted: is_sealed(&k.secret),
            kid: k.kid,
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
        .collect())
}

/// What [`seal_stored`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sealing {
    /// Keys that were stored in clear.
    pub encrypted: usize,
    /// Keys that were sealed with the previous encryption key.
    pub reencrypted: usize,
}

/// Brings every stored key under the current encryption key: encrypts clear ones, re-encrypts
/// those sealed with the previous key. Without an encryption key, only checks that no key
/// needs one. Fails, changing nothing, when a sealed key opens with neither key.
pub fn seal_stored(conn: &mut DbConn, encryption: &KeyEncryption) -> Result<Sealing, SigningKeyError> {
    db::write_tx(conn, |conn| {
        let mut done = Sealing::default();
        for key in stored(conn)? {
            let (secret, under_previous) = encryption.reveal(&key.kid, &key.secret)?;
            let Some(current) = &encryption.current else {
                continue;
            };
            if is_sealed(&key.secret) && !under_previous {
                continue;
            }
            diesel::update(signing_keys::table.find(&key.kid))
                .set(signing_keys::secret.eq(seal(current, &key.kid, &secret)?))
                .execute(conn)?;
            if under_previous {
                done.reencrypted += 1;
            } else {
                done.encrypted += 1;
            }
        }
        Ok(done)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_name_their_format_and_open_only_for_their_kid() {
        let key = EncryptionKey::random();
        let stored = seal(&key, "k1", "the-secret").unwrap();
        assert!(stored.starts_with("v1:") && !stored.contains("the-secret"), "{stored}");
        assert_eq!(open(&key, "k1", &stored).as_deref(), Some("the-secret"));
        assert_eq!(open(&key, "k2", &stored), None, "moved to another key's row");
        assert!(
            !is_sealed(&crypto::random_secret()),
            "a clear secret never looks sealed"
        );
    }

    #[test]
    fn reveal_needs_the_key_that_sealed() {
        let (old, new) = (EncryptionKey::random(), EncryptionKey::random());
        let stored = seal(&old, "k1", "s").unwrap();
        let with = |current: Option<&EncryptionKey>, previous: Option<&EncryptionKey>| KeyEncryption {
            current: current.cloned(),
            previous: previous.cloned(),
        };
        assert!(matches!(
            with(None, None).reveal("k1", &stored),
            Err(SigningKeyError::EncryptionKeyMissing { .. })
        ));
        assert!(matches!(
            with(Some(&new), None).reveal("k1", &stored),
            Err(SigningKeyError::WrongEncryptionKey { .. })
        ));
        assert_eq!(
            with(Some(&old), None).reveal("k1", &stored).unwrap(),
            ("s".into(), false)
        );
        assert_eq!(
            with(Some(&new), Some(&old)).reveal("k1", &stored).unwrap(),
            ("s".into(), true)
        );
        assert_eq!(with(None, None).reveal("k1", "clear").unwrap(), ("clear".into(), false));
    }
}
