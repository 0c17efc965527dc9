//! Signed, single-purpose, expiring links: `/l/{token}` (landing), `/o/{token}` (open pixel),
//! `/u/{token}` (unsubscribe).
//!
//! Tokens are JWTs signed with HS256 by a key from the `signing_keys` table, named in the `kid`
//! header. Verification pins HS256 (so `alg: none` or an RSA/HMAC confusion is refused), checks
//! `iss`, the purpose in `aud`, and `exp`. A key retired by `optbridge keys rotate` keeps
//! verifying until the links it signed have expired. Callers map every failure to the same 404:
//! the reason is logged, never shown.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError};
use crate::signing::{self, SigningKey};

const ISSUER: &str = "optbridge";
/// How often a missing `kid` may trigger a reload from the database (keys rotated elsewhere).
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Landing,
    Open,
    Unsubscribe,
}

impl LinkPurpose {
    fn audience(self) -> &'static str {
        match self {
            Self::Landing => "optbridge:landing",
            Self::Open => "optbridge:open",
            Self::Unsubscribe => "optbridge:unsubscribe",
        }
    }
}

/// What a link says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkClaims {
    pub iss: String,
    pub aud: String,
    /// The invitation the link belongs to.
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// Campaign and recipient locale, so pages render without a database read.
    pub cid: String,
    pub loc: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("signing key expired")]
    KeyExpired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("no signing key: run `optbridge migrate`")]
    NoCurrentKey,
}

/// The signing keys, cached in memory and reloaded when a token names a key not seen yet.
pub struct Keyring {
    db: Db,
    ttl: chrono::Duration,
    keys: RwLock<Vec<SigningKey>>,
    last_reload: RwLock<Instant>,
}

impl Keyring {
    /// Loads the keys (blocking: call at start-up or from a blocking context).
    pub fn load(db: Db, ttl: Duration) -> Result<Self, DbError> {
        let mut conn = db.get()?;
        let keys = signing::all(&mut conn)?;
        drop(conn);
        Ok(Self {
            db,
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30)),
            keys: RwLock::new(keys),
            last_reload: RwLock::new(Instant::now()),
        })
    }

    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// Re-reads the keys from the database (blocking).
    pub fn reload(&self) -> Result<(), DbError> {
        let mut conn = self.db.get()?;
        let keys = signing::all(&mut conn)?;
        if let Ok(mut slot) = self.keys.write() {
            *slot = keys;
        }
        if let Ok(mut at) = self.last_reload.write() {
            *at = Instant::now();
        }
        Ok(())
    }

    /// Signs a link for an invitation with the current key.
    pub fn sign(
        &self,
        purpose: LinkPurpose,
        invitation_id: &str,
        campaign_id: &str,
        locale: &str,
        issued_at: NaiveDateTime,
    ) -> Result<String, LinkError> {
        let keys = self.keys.read().map_err(|_| LinkError::NoCurrentKey)?;
        let key = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .ok_or(LinkError::NoCurrentKey)?;
        let iat = issued_at.and_utc().timestamp();
        let claims = LinkClaims {
            iss: ISSUER.to_owned(),
            aud: purpose.audience().to_owned(),
            sub: invitation_id.to_owned(),
            exp: iat + self.ttl.num_seconds(),
            iat,
            jti: crate::crypto::hex(&crate::crypto::random_bytes::<9>()),
            cid: campaign_id.to_owned(),
            loc: locale.to_owned(),
        };
        let header = Header {
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.secret.as_bytes()))
            .map_err(|e| LinkError::Invalid(e.to_string()))
    }

    /// A form token bound to one link (`jti`), so a landing form can only be posted back to the
    /// page that served it. Stateless: an HMAC under the current signing key.
    pub fn csrf_token(&self, jti: &str) -> Option<String> {
        let keys = self.keys.read().ok()?;
        let key = keys.iter().find(|k| k.retired_at.is_none())?;
        Some(csrf_mac(&key.secret, jti))
    }

    /// Checks a form token against every key that still verifies links.
    pub fn verify_csrf(&self, jti: &str, token: &str) -> bool {
        let Ok(keys) = self.keys.read() else { return false };
        let now = Utc::now();
        keys.iter()
            .filter(|k| k.retired_at.is_none_or(|r| r.and_utc() + self.ttl >= now))
            .any(|k| crate::crypto::constant_time_eq(csrf_mac(&k.secret, jti).as_bytes(), token.as_bytes()))
    }

    /// Verifies a token for one purpose. Reloads the keys (at most every few seconds) when the
    /// token names a key this process has not seen, so rotation elsewhere is picked up.
    pub async fn verify(&self, token: &str, purpose: LinkPurpose) -> Result<LinkClaims, LinkError> {
        match self.verify_cached(token, purpose) {
            Err(LinkError::UnknownKey) if self.may_reload() => {
                let db = self.db.clone();
                let keys = db.run(signing::all).await.map_err(|_| LinkError::UnknownKey)?;
                if let Ok(mut slot) = self.keys.write() {
                    *slot = keys;
                }
                if let Ok(mut at) = self.last_reload.write() {
                    *at = Instant::now();
                }
                self.verify_cached(token, purpose)
            }
            other => other,
        }
    }

    fn may_reload(&self) -> bool {
        self.last_reload
            .read()
            .map(|at| at.elapsed() >= RELOAD_AT_MOST_EVERY)
            .unwrap_or(false)
    }

    /// Verification against the keys in memory; no I/O.
    pub fn verify_cached(&self, token: &str, purpose: LinkPurpose) -> Result<LinkClaims, LinkError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| LinkError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(LinkError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or(LinkError::UnknownKey)?;
        let secret = {
            let keys = self.keys.read().map_err(|_| LinkError::UnknownKey)?;
            let key = keys.iter().find(|k| k.kid == kid).ok_or(LinkError::UnknownKey)?;
            // A retired key stops verifying once every link it could have signed has expired.
            if let Some(retired) = key.retired_at
                && retired.and_utc() + self.ttl < Utc::now()
            {
                return Err(LinkError::KeyExpired);
            }
            key.secret.clone()
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[purpose.audience()]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<LinkClaims>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
            .map(|data| data.claims)
            .map_err(|e| LinkError::Invalid(e.to_string()))
    }
}

fn csrf_mac(secret: &str, jti: &str) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("optbridge-csrf:{jti}").as_bytes());
    crate::crypto::hex(&tag.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(keys: Vec<SigningKey>) -> Keyring {
        let url = crate::config::DatabaseUrl::Sqlite(":memory:".into());
        let db = Db::connect(&url, 1, Duration::from_millis(100)).expect("in-memory db");
        Keyring {
            db,
            ttl: chrono::Duration::days(30),
            keys: RwLock::new(keys),
            last_reload: RwLock::new(Instant::now()),
        }
    }

    fn key(kid: &str, retired_days_ago: Option<i64>) -> SigningKey {
        let now = Utc::now().naive_utc();
        SigningKey {
            kid: kid.into(),
            secret: format!("secret-of-{kid}-0123456789abcdef0123456789"),
            created_at: now - chrono::Duration::days(100),
            retired_at: retired_days_ago.map(|d| now - chrono::Duration::days(d)),
        }
    }

    fn sign(ring: &Keyring, purpose: LinkPurpose) -> String {
        ring.sign(purpose, "inv-1", "camp-1", "da", Utc::now().naive_utc())
            .expect("sign")
    }

    #[test]
    fn round_trip_and_purpose_pinning() {
        let ring = keyring(vec![key("new", None)]);
        let token = sign(&ring, LinkPurpose::Landing);
        let claims = ring.verify_cached(&token, LinkPurpose::Landing).expect("valid");
        assert_eq!(
            (claims.sub.as_str(), claims.cid.as_str(), claims.loc.as_str()),
            ("inv-1", "camp-1", "da")
        );
        assert!(matches!(
            ring.verify_cached(&token, LinkPurpose::Open),
            Err(LinkError::Invalid(_))
        ));
        assert!(matches!(
            ring.verify_cached(&token, LinkPurpose::Unsubscribe),
            Err(LinkError::Invalid(_))
        ));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_link() {
        let ring = keyring(vec![key("k1", None)]);
        let token = ring.csrf_token("jti-1").expect("token");
        assert!(ring.verify_csrf("jti-1", &token));
        assert!(!ring.verify_csrf("jti-2", &token));
        assert!(!ring.verify_csrf("jti-1", "forged"));
    }

    #[test]
    fn forged_and_malformed_tokens_fail() {
        let ring = keyring(vec![key("k1", None)]);
        let token = sign(&ring, LinkPurpose::Open);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_sig = "AAAA".repeat(10);
        parts[2] = &forged_sig;
        assert!(ring.verify_cached(&parts.join("."), LinkPurpose::Open).is_err());
        assert_eq!(
            ring.verify_cached("not-a-jwt", LinkPurpose::Open),
            Err(LinkError::Malformed)
        );
        assert_eq!(ring.verify_cached("", LinkPurpose::Open), Err(LinkError::Malformed));
    }

    #[test]
    fn retired_keys_verify_until_their_links_expire() {
        let ring = keyring(vec![
            key("current", None),
            key("old", Some(3)),
            key("ancient", Some(31)),
        ]);
        let signer = keyring(vec![key("old", None)]);
        let by_old = sign(&signer, LinkPurpose::Landing);
        assert!(ring.verify_cached(&by_old, LinkPurpose::Landing).is_ok());
        let signer = keyring(vec![key("ancient", None)]);
        let by_ancient = sign(&signer, LinkPurpose::Landing);
        assert_eq!(
            ring.verify_cached(&by_ancient, LinkPurpose::Landing),
            Err(LinkError::KeyExpired)
        );
        let signer = keyring(vec![key("unknown", None)]);
        assert_eq!(
            ring.verify_cached(&sign(&signer, LinkPurpose::Landing), LinkPurpose::Landing),
            Err(LinkError::UnknownKey)
        );
    }
}
