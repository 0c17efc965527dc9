//! Signed, single-purpose, expiring links: `/l/{token}` (landing), `/o/{token}` (open pixel),
//! `/u/{token}` (unsubscribe).
//!
//! Tokens are JWTs signed with HS256 by a key from the `signing_keys` table, named in the `kid`
//! header. Verification pins HS256 (so `alg: none` or an RSA/HMAC confusion is refused), checks
//! `iss`, the purpose in `aud`, and `exp`. A key retired by `optbridge keys rotate` keeps
//! verifying until the links it signed have expired. Callers map every failure to the same 404:
//! the reason is logged, never shown.
//!
//! Two formats (issue 17). Links are signed *compact*: header `{"alg":"HS256","kid":<4-character
//! alias of the key id>}`, claims `{"<purpose letter>":<invitation id as base64url of its 16
//! UUID bytes>,"exp":…}` — nothing else, nothing the database could supply — so a landing link is
//! ~150 characters and every link in a message stays within 200 with a realistic BASE_URL.
//! Links sent before in the *long* format (full `kid`, `iss`/`aud`/`sub`/`iat`/`jti`/`cid`/`loc`)
//! keep verifying until they expire. The long format is also what an id that is no UUID gets.
//! A compact link carries no campaign or locale: the routes read them with the invitation.
//!
//! Why not `jsonwebtoken::decode`/`encode` themselves: the open pixel and the landing page verify
//! a token per request (~100k req/s), and `decode` takes 3.7 µs a token where this module takes
//! 1.6 µs (it parses the header twice and the claims twice and builds the HMAC key per call);
//! signing an invitation's three links takes 4.8 µs with `encode`, 2.8 µs here (release build,
//! `bench/links.rs`). Both paths are differential-tested against jsonwebtoken on thousands of
//! valid and damaged tokens: `verification_agrees_with_jsonwebtoken`,
//! `signing_agrees_with_jsonwebtoken`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDateTime, Utc};
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::signing::{self, KeyEncryption, SigningKey, SigningKeyError};

const ISSUER: &str = "optbridge";
/// How often a missing `kid` may trigger a reload from the database (keys rotated elsewhere).
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Landing,
    Open,
    Unsubscribe,
    /// Every link of a campaign preview or test send: opens a landing page that records nothing
    /// and takes no sign-up; no other route accepts it.
    Preview,
}

impl LinkPurpose {
    fn audience(self) -> &'static str {
        match self {
            Self::Landing => "optbridge:landing",
            Self::Open => "optbridge:open",
            Self::Unsubscribe => "optbridge:unsubscribe",
            Self::Preview => "optbridge:preview",
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
    /// Campaign and recipient locale, so pages render without a database read. Empty for a
    /// compact link (see [`LinkClaims::is_compact`]): the routes read them with the invitation.
    pub cid: String,
    pub loc: String,
}

impl LinkClaims {
    /// A compact link says only which invitation, for what, until when.
    pub fn is_compact(&self) -> bool {
        self.cid.is_empty()
    }
}

/// The claims of a compact link: exactly one purpose letter, naming the invitation.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct CompactClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    l: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    exp: i64,
}

impl CompactClaims {
    fn new(purpose: LinkPurpose, invitation: &uuid::Uuid, exp: i64) -> Self {
        let id = Some(URL_SAFE_NO_PAD.encode(invitation.as_bytes()));
        let mut claims = Self {
            l: None,
            o: None,
            u: None,
            p: None,
            exp,
        };
        match purpose {
            LinkPurpose::Landing => claims.l = id,
            LinkPurpose::Open => claims.o = id,
            LinkPurpose::Unsubscribe => claims.u = id,
            LinkPurpose::Preview => claims.p = id,
        }
        claims
    }

    /// The invitation id, when the link is for `purpose` and for nothing else.
    fn invitation_for(&self, purpose: LinkPurpose) -> Option<String> {
        let (wanted, others) = match purpose {
            LinkPurpose::Landing => (&self.l, [&self.o, &self.u, &self.p]),
            LinkPurpose::Open => (&self.o, [&self.l, &self.u, &self.p]),
            LinkPurpose::Unsubscribe => (&self.u, [&self.l, &self.o, &self.p]),
            LinkPurpose::Preview => (&self.p, [&self.l, &self.o, &self.u]),
        };
        if others.iter().any(|o| o.is_some()) {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(wanted.as_deref()?).ok()?;
        Some(uuid::Uuid::from_slice(&bytes).ok()?.to_string())
    }
}

/// The 4-character alias a compact header names a key by: base64url of the first 3 bytes of
/// SHA-256 of its kid. Two keys sharing an alias are both tried.
pub fn kid_alias(kid: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, kid.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..3])
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

/// The claims as signed, borrowing instead of owning (same fields, same order as [`LinkClaims`]).
#[derive(Serialize)]
struct ClaimsToSign<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    cid: &'a str,
    loc: &'a str,
}

/// A link-signing key as the keyring holds it: its HMAC key is built once per load, not per
/// token (building one costs about as much as the HMAC itself).
struct LinkKey {
    kid: String,
    /// The compact format's name for it.
    alias: String,
    retired_at: Option<NaiveDateTime>,
    mac: hmac::Key,
}

impl LinkKey {
    fn new(key: &SigningKey) -> Self {
        Self {
            kid: key.kid.clone(),
            alias: kid_alias(&key.kid),
            retired_at: key.retired_at,
            mac: hmac::Key::new(hmac::HMAC_SHA256, key.secret.as_bytes()),
        }
    }

    fn prepare(keys: &[SigningKey]) -> Vec<Self> {
        keys.iter().map(Self::new).collect()
    }
}

/// What signing with one key needs, prepared once: the encoded header and the HMAC key.
struct Signer {
    kid: String,
    header: String,
    /// The compact format's header: no `typ`, the key's alias as `kid`.
    compact_header: String,
    key: hmac::Key,
}

impl Signer {
    fn new(key: &LinkKey) -> Result<Self, LinkError> {
        let header = Header {
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        let json = serde_json::to_vec(&header).map_err(|e| LinkError::Invalid(e.to_string()))?;
        let compact = Header {
            typ: None,
            kid: Some(key.alias.clone()),
            ..Header::new(Algorithm::HS256)
        };
        let compact = serde_json::to_vec(&compact).map_err(|e| LinkError::Invalid(e.to_string()))?;
        Ok(Self {
            kid: key.kid.clone(),
            header: URL_SAFE_NO_PAD.encode(json),
            compact_header: URL_SAFE_NO_PAD.encode(compact),
            key: key.mac.clone(),
        })
    }

    /// `header.claims.signature`, exactly what `jsonwebtoken::encode` produces for HS256.
    fn token(&self, claims: &ClaimsToSign<'_>) -> Result<String, LinkError> {
        self.token_with(&self.header, claims)
    }

    /// A compact link: exactly what `jsonwebtoken::encode` produces for the compact header.
    fn compact(&self, claims: &CompactClaims) -> Result<String, LinkError> {
        self.token_with(&self.compact_header, claims)
    }

    fn token_with(&self, header: &str, claims: &impl Serialize) -> Result<String, LinkError> {
        let json = serde_json::to_vec(claims).map_err(|e| LinkError::Invalid(e.to_string()))?;
        let mut token = String::with_capacity(header.len() + json.len() * 4 / 3 + 48);
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let tag = hmac::sign(&self.key, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        Ok(token)
    }
}

/// What every link of one invitation says, whatever its purpose.
struct Link<'a> {
    invitation_id: &'a str,
    campaign_id: &'a str,
    locale: &'a str,
    iat: i64,
}

/// The three links of one invitation.
#[derive(Debug, Clone)]
pub struct InvitationTokens {
    pub landing: String,
    pub open: String,
    pub unsubscribe: String,
}

/// The signing keys, cached in memory and reloaded when a token names a key not seen yet.
pub struct Keyring {
    db: Db,
    /// Opens the secrets on every reload.
    encryption: KeyEncryption,
    ttl: chrono::Duration,
    keys: RwLock<Vec<LinkKey>>,
    last_reload: RwLock<Instant>,
    /// The current key prepared for signing; rebuilt when the current key changes.
    signer: RwLock<Option<Arc<Signer>>>,
}

impl Keyring {
    /// Loads the keys (blocking: call at start-up or from a blocking context); fails when a key
    /// is stored encrypted and `encryption` does not open it.
    pub fn load(db: Db, ttl: Duration, encryption: KeyEncryption) -> Result<Self, SigningKeyError> {
        let mut conn = db.get()?;
        let keys = signing::all(&mut conn, &encryption)?;
        drop(conn);
        Ok(Self {
            db,
            encryption,
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30)),
            keys: RwLock::new(LinkKey::prepare(&keys)),
            last_reload: RwLock::new(Instant::now()),
            signer: RwLock::new(None),
        })
    }

    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// Re-reads the keys from the database (blocking).
    pub fn reload(&self) -> Result<(), SigningKeyError> {
        let mut conn = self.db.get()?;
        let keys = signing::all(&mut conn, &self.encryption)?;
        self.replace_keys(&keys);
        Ok(())
    }

    /// Re-reads the keys every `every` until the keyring is dropped: a key rotated by another
    /// process (`keys rotate`) is signed with here within that time, and a retired one no longer.
    pub fn spawn_reload(keyring: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(keyring);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(keyring) = weak.upgrade() else { return };
                let (db, encryption) = (keyring.db.clone(), keyring.encryption.clone());
                match db.run(move |conn| signing::all(conn, &encryption)).await {
                    Ok(keys) => keyring.replace_keys(&keys),
                    Err(e) => {
                        tracing::warn!(error = %e, "re-reading the link-signing keys failed; keeping the ones in memory")
                    }
                }
            }
        })
    }

    fn replace_keys(&self, keys: &[SigningKey]) {
        if let Ok(mut slot) = self.keys.write() {
            *slot = LinkKey::prepare(keys);
        }
        if let Ok(mut at) = self.last_reload.write() {
            *at = Instant::now();
        }
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
        // A preview's or test send's link stays in the long form: its page shows a campaign
        // that may be a draft with no invitation to read the campaign and locale from.
        if purpose != LinkPurpose::Preview
            && let Ok(id) = uuid::Uuid::parse_str(invitation_id)
        {
            let exp = issued_at.and_utc().timestamp() + self.ttl.num_seconds();
            return self.signer()?.compact(&CompactClaims::new(purpose, &id, exp));
        }
        let jti = crate::crypto::hex(&crate::crypto::random_bytes::<9>());
        let link = Link {
            invitation_id,
            campaign_id,
            locale,
            iat: issued_at.and_utc().timestamp(),
        };
        let signer = self.signer()?;
        self.token(&signer, &link, purpose, &jti)
    }

    /// Signs the landing, open and unsubscribe links of one invitation: the same tokens as three
    /// calls of [`Keyring::sign`], with one look-up of the key and one draw of randomness.
    pub fn sign_invitation(
        &self,
        invitation_id: &str,
        campaign_id: &str,
        locale: &str,
        issued_at: NaiveDateTime,
    ) -> Result<InvitationTokens, LinkError> {
        let signer = self.signer()?;
        if let Ok(id) = uuid::Uuid::parse_str(invitation_id) {
            let exp = issued_at.and_utc().timestamp() + self.ttl.num_seconds();
            return Ok(InvitationTokens {
                landing: signer.compact(&CompactClaims::new(LinkPurpose::Landing, &id, exp))?,
                open: signer.compact(&CompactClaims::new(LinkPurpose::Open, &id, exp))?,
                unsubscribe: signer.compact(&CompactClaims::new(LinkPurpose::Unsubscribe, &id, exp))?,
            });
        }
        let random = crate::crypto::hex(&crate::crypto::random_bytes::<27>());
        let link = Link {
            invitation_id,
            campaign_id,
            locale,
            iat: issued_at.and_utc().timestamp(),
        };
        Ok(InvitationTokens {
            landing: self.token(&signer, &link, LinkPurpose::Landing, &random[..18])?,
            open: self.token(&signer, &link, LinkPurpose::Open, &random[18..36])?,
            unsubscribe: self.token(&signer, &link, LinkPurpose::Unsubscribe, &random[36..])?,
        })
    }

    /// One token: the link's claims for `purpose`, expiring `ttl` after issue.
    fn token(&self, signer: &Signer, link: &Link<'_>, purpose: LinkPurpose, jti: &str) -> Result<String, LinkError> {
        signer.token(&ClaimsToSign {
            iss: ISSUER,
            aud: purpose.audience(),
            sub: link.invitation_id,
            exp: link.iat + self.ttl.num_seconds(),
            iat: link.iat,
            jti,
            cid: link.campaign_id,
            loc: link.locale,
        })
    }

    /// The current key, prepared for signing.
    fn signer(&self) -> Result<Arc<Signer>, LinkError> {
        let keys = self.keys.read().map_err(|_| LinkError::NoCurrentKey)?;
        let key = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .ok_or(LinkError::NoCurrentKey)?;
        if let Some(signer) = self
            .signer
            .read()
            .ok()
            .and_then(|s| s.clone())
            .filter(|s| s.kid == key.kid)
        {
            return Ok(signer);
        }
        let signer = Arc::new(Signer::new(key)?);
        if let Ok(mut slot) = self.signer.write() {
            *slot = Some(signer.clone());
        }
        Ok(signer)
    }

    /// A form token bound to one link (`jti`), so a landing form can only be posted back to the
    /// page that served it. Stateless: an HMAC under the current signing key.
    pub fn csrf_token(&self, jti: &str) -> Option<String> {
        let keys = self.keys.read().ok()?;
        let key = keys.iter().find(|k| k.retired_at.is_none())?;
        Some(csrf_mac(&key.mac, jti))
    }

    /// Checks a form token against every key that still verifies links.
    pub fn verify_csrf(&self, jti: &str, token: &str) -> bool {
        let Ok(keys) = self.keys.read() else { return false };
        let now = Utc::now();
        keys.iter()
            .filter(|k| k.retired_at.is_none_or(|r| r.and_utc() + self.ttl >= now))
            .any(|k| crate::crypto::constant_time_eq(csrf_mac(&k.mac, jti).as_bytes(), token.as_bytes()))
    }

    /// Verifies a token for one purpose. Reloads the keys (at most every few seconds) when the
    /// token names a key this process has not seen, so rotation elsewhere is picked up.
    pub async fn verify(&self, token: &str, purpose: LinkPurpose) -> Result<LinkClaims, LinkError> {
        match self.verify_cached(token, purpose) {
            Err(LinkError::UnknownKey) if self.may_reload() => {
                let (db, encryption) = (self.db.clone(), self.encryption.clone());
                let keys = db.run(move |conn| signing::all(conn, &encryption)).await.map_err(|e| {
                    tracing::error!(error = %e, "reloading the link-signing keys failed");
                    LinkError::UnknownKey
                })?;
                self.replace_keys(&keys);
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
    ///
    /// Each part is decoded once: the header for the algorithm and key, then the HS256 signature
    /// over the exact signed bytes with the key's prepared HMAC key (compared in constant time),
    /// and only then the claims, checked as jsonwebtoken's `Validation` would with no leeway.
    pub fn verify_cached(&self, token: &str, purpose: LinkPurpose) -> Result<LinkClaims, LinkError> {
        let mut parts = token.split('.');
        let (Some(header_part), Some(claims_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD.decode(header_part).map_err(|_| LinkError::Malformed)?;
        // jsonwebtoken's own header type, so a header is read exactly as `decode` reads it.
        let header: Header = serde_json::from_slice(&header_json).map_err(|_| LinkError::Malformed)?;
        // Pinned: `none`, other HMAC sizes and public-key algorithms are refused outright.
        if header.alg != Algorithm::HS256 {
            return Err(LinkError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.ok_or(LinkError::UnknownKey)?;
        // The decoder refuses non-canonical base64 (unused trailing bits set), as jsonwebtoken's does.
        let tag = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| LinkError::Invalid(format!("signature: {e}")))?;
        let signed = &token.as_bytes()[..header_part.len() + 1 + claims_part.len()];
        let compact = {
            let keys = self.keys.read().map_err(|_| LinkError::UnknownKey)?;
            // A long link names its key by kid, a compact one by alias (never the same length).
            let named: Vec<&LinkKey> = keys.iter().filter(|k| k.kid == kid || k.alias == kid).collect();
            if named.is_empty() {
                return Err(LinkError::UnknownKey);
            }
            let key = named
                .iter()
                .find(|k| hmac::verify(&k.mac, signed, &tag).is_ok())
                .ok_or_else(|| LinkError::Invalid("signature does not match".into()))?;
            // A retired key stops verifying once every link it could have signed has expired.
            if let Some(retired) = key.retired_at
                && retired.and_utc() + self.ttl < Utc::now()
            {
                return Err(LinkError::KeyExpired);
            }
            key.kid != kid
        };
        let json = URL_SAFE_NO_PAD
            .decode(claims_part)
            .map_err(|e| LinkError::Invalid(format!("claims: {e}")))?;
        if compact {
            let claims: CompactClaims =
                serde_json::from_slice(&json).map_err(|e| LinkError::Invalid(format!("claims: {e}")))?;
            let sub = claims
                .invitation_for(purpose)
                .ok_or_else(|| LinkError::Invalid("not a link for this purpose".into()))?;
            if claims.exp < Utc::now().timestamp() {
                return Err(LinkError::Invalid("expired".into()));
            }
            return Ok(LinkClaims {
                iss: ISSUER.to_owned(),
                aud: purpose.audience().to_owned(),
                sub,
                exp: claims.exp,
                iat: 0,
                // The link's own identity for form tokens and limits: its signature, unique per link.
                jti: signature.chars().take(24).collect(),
                cid: String::new(),
                loc: String::new(),
            });
        }
        // `iss`, `aud`, `sub` and `exp` are required fields of `LinkClaims`.
        let claims: LinkClaims =
            serde_json::from_slice(&json).map_err(|e| LinkError::Invalid(format!("claims: {e}")))?;
        if claims.iss != ISSUER {
            return Err(LinkError::Invalid(format!("issuer {:?}", claims.iss)));
        }
        if claims.aud != purpose.audience() {
            return Err(LinkError::Invalid(format!("audience {:?}", claims.aud)));
        }
        if claims.exp < Utc::now().timestamp() {
            return Err(LinkError::Invalid("expired".into()));
        }
        Ok(claims)
    }
}

fn csrf_mac(key: &hmac::Key, jti: &str) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(b"optbridge-csrf:");
    context.update(jti.as_bytes());
    let tag = context.sign();
    crate::crypto::hex(&tag.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::EncodingKey;

    use super::*;

    #[test]
    fn tokens_are_what_jsonwebtoken_would_sign() {
        let signing_key = key("k1", None);
        let ring = keyring(vec![signing_key.clone()]);
        let signer = ring.signer().expect("current key");
        let claims = LinkClaims {
            iss: ISSUER.into(),
            aud: LinkPurpose::Open.audience().into(),
            sub: "inv-\"1\"".into(),
            exp: 1_900_000_000,
            iat: 1_800_000_000,
            jti: "0123456789abcdef01".into(),
            cid: "camp-1".into(),
            loc: "da".into(),
        };
        let ours = signer
            .token(&ClaimsToSign {
                iss: &claims.iss,
                aud: &claims.aud,
                sub: &claims.sub,
                exp: claims.exp,
                iat: claims.iat,
                jti: &claims.jti,
                cid: &claims.cid,
                loc: &claims.loc,
            })
            .expect("signs");
        let header = Header {
            kid: Some("k1".into()),
            ..Header::new(Algorithm::HS256)
        };
        let theirs = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(signing_key.secret.as_bytes()),
        )
        .expect("signs");
        assert_eq!(ours, theirs);

        let now = Utc::now().naive_utc();
        let links = ring.sign_invitation("inv-1", "camp-1", "sv", now).expect("signs");
        let mut jtis = Vec::new();
        for (token, purpose) in [
            (&links.landing, LinkPurpose::Landing),
            (&links.open, LinkPurpose::Open),
            (&links.unsubscribe, LinkPurpose::Unsubscribe),
        ] {
            let claims = ring.verify_cached(token, purpose).expect("valid for its purpose");
            assert_eq!((claims.sub.as_str(), claims.loc.as_str()), ("inv-1", "sv"));
            assert_eq!(claims.jti.len(), 18);
            jtis.push(claims.jti);
        }
        jtis.dedup();
        assert_eq!(jtis.len(), 3, "each link has its own jti");
        assert!(ring.verify_cached(&links.open, LinkPurpose::Landing).is_err());
    }

    /// Compact links (issue 17): what jsonwebtoken signs for the same header and claims, and
    /// what it verifies; short; for one purpose.
    #[test]
    fn compact_links_are_short_and_what_jsonwebtoken_signs() {
        use jsonwebtoken::{DecodingKey, Validation};
        let signing_key = key("k20261206183734-608f9361", None);
        let ring = keyring(vec![signing_key.clone()]);
        let id = uuid::Uuid::now_v7();
        let now = Utc::now().naive_utc();
        let links = ring
            .sign_invitation(&id.to_string(), "camp-1", "da", now)
            .expect("signs");
        let exp = now.and_utc().timestamp() + ring.ttl.num_seconds();
        let header = Header {
            typ: None,
            kid: Some(kid_alias(&signing_key.kid)),
            ..Header::new(Algorithm::HS256)
        };
        let secret = EncodingKey::from_secret(signing_key.secret.as_bytes());
        for (token, purpose) in [
            (&links.landing, LinkPurpose::Landing),
            (&links.open, LinkPurpose::Open),
            (&links.unsubscribe, LinkPurpose::Unsubscribe),
        ] {
            // 146 characters: with `https://optbridge.nordlys-sko.example/l/` and `/confirm`, 194.
            assert!(token.len() <= 146, "{} characters: {token}", token.len());
            let theirs = jsonwebtoken::encode(&header, &CompactClaims::new(purpose, &id, exp), &secret).expect("signs");
            assert_eq!(token, &theirs);
            let claims = ring.verify_cached(token, purpose).expect("verifies");
            assert_eq!(claims.sub, id.to_string());
            assert!(claims.is_compact() && claims.exp == exp && !claims.jti.is_empty());
            for other in [LinkPurpose::Landing, LinkPurpose::Open, LinkPurpose::Unsubscribe] {
                assert_eq!(ring.verify_cached(token, other).is_ok(), other == purpose);
            }
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = 0;
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp"]);
            let decoded = jsonwebtoken::decode::<CompactClaims>(
                token,
                &DecodingKey::from_secret(signing_key.secret.as_bytes()),
                &validation,
            )
            .expect("jsonwebtoken verifies it");
            assert_eq!(decoded.claims, CompactClaims::new(purpose, &id, exp));
        }
        // The two links of one invitation differ in their form-token identity.
        let a = ring.verify_cached(&links.landing, LinkPurpose::Landing).unwrap();
        let b = ring
            .sign(
                LinkPurpose::Landing,
                &id.to_string(),
                "",
                "",
                now - chrono::Duration::seconds(1),
            )
            .unwrap();
        assert_ne!(a.jti, ring.verify_cached(&b, LinkPurpose::Landing).unwrap().jti);
        // Expired, or naming two purposes, or no UUID: refused.
        let old = ring
            .sign(
                LinkPurpose::Open,
                &id.to_string(),
                "",
                "",
                now - chrono::Duration::days(31),
            )
            .unwrap();
        assert_eq!(
            ring.verify_cached(&old, LinkPurpose::Open),
            Err(LinkError::Invalid("expired".into()))
        );
        let signer = ring.signer().unwrap();
        let mut two = CompactClaims::new(LinkPurpose::Open, &id, exp);
        two.l = two.o.clone();
        let two = signer.compact(&two).unwrap();
        assert!(ring.verify_cached(&two, LinkPurpose::Open).is_err());
        assert!(ring.verify_cached(&two, LinkPurpose::Landing).is_err());
        let short = signer
            .compact(&CompactClaims {
                l: Some("AAAA".into()),
                o: None,
                u: None,
                p: None,
                exp,
            })
            .unwrap();
        assert!(ring.verify_cached(&short, LinkPurpose::Landing).is_err());
    }

    /// Links sent in the long format before compact links keep verifying until they expire,
    /// under the same key (by its full kid).
    #[test]
    fn long_links_already_sent_keep_working() {
        let signing_key = key("k20261101000000-0badcafe", None);
        let ring = keyring(vec![signing_key.clone()]);
        let id = uuid::Uuid::now_v7().to_string();
        let now = Utc::now().timestamp();
        let long = LinkClaims {
            iss: ISSUER.into(),
            aud: LinkPurpose::Landing.audience().into(),
            sub: id.clone(),
            exp: now + 3600,
            iat: now,
            jti: "0123456789abcdef01".into(),
            cid: "camp-1".into(),
            loc: "sv".into(),
        };
        let header = Header {
            kid: Some(signing_key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        let token =
            jsonwebtoken::encode(&header, &long, &EncodingKey::from_secret(signing_key.secret.as_bytes())).unwrap();
        assert!(token.len() > 300);
        let claims = ring
            .verify_cached(&token, LinkPurpose::Landing)
            .expect("an old link verifies");
        assert_eq!(claims, long);
        assert!(!claims.is_compact());
        let expired = LinkClaims { exp: now - 1, ..long };
        let token = jsonwebtoken::encode(
            &header,
            &expired,
            &EncodingKey::from_secret(signing_key.secret.as_bytes()),
        )
        .unwrap();
        assert!(ring.verify_cached(&token, LinkPurpose::Landing).is_err());
    }

    fn keyring(keys: Vec<SigningKey>) -> Keyring {
        let url = crate::config::DatabaseUrl::Sqlite(":memory:".into());
        let db = Db::connect(&url, 1, Duration::from_millis(100)).expect("in-memory db");
        Keyring {
            db,
            encryption: KeyEncryption::default(),
            ttl: chrono::Duration::days(30),
            keys: RwLock::new(LinkKey::prepare(&keys)),
            last_reload: RwLock::new(Instant::now()),
            signer: RwLock::new(None),
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
    fn expiry_issuer_and_shape_are_checked() {
        let ring = keyring(vec![key("k1", None)]);
        // Issued 31 days ago with a 30-day lifetime: expired a day ago.
        let old = ring
            .sign(
                LinkPurpose::Open,
                "inv",
                "c",
                "da",
                (Utc::now() - chrono::Duration::days(31)).naive_utc(),
            )
            .expect("sign");
        assert_eq!(
            ring.verify_cached(&old, LinkPurpose::Open),
            Err(LinkError::Invalid("expired".into()))
        );
        let fresh = sign(&ring, LinkPurpose::Open);
        assert!(ring.verify_cached(&fresh, LinkPurpose::Open).is_ok());
        // A fourth part, or a part missing: malformed.
        assert_eq!(
            ring.verify_cached(&format!("{fresh}.x"), LinkPurpose::Open),
            Err(LinkError::Malformed)
        );
        let two = fresh.rsplit_once('.').expect("three parts").0;
        assert_eq!(ring.verify_cached(two, LinkPurpose::Open), Err(LinkError::Malformed));
        // Another issuer, correctly signed with our key: refused.
        let header = Header {
            kid: Some("k1".into()),
            ..Header::new(Algorithm::HS256)
        };
        let mut claims = ring.verify_cached(&fresh, LinkPurpose::Open).expect("valid");
        claims.iss = "someone-else".into();
        let foreign = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(key("k1", None).secret.as_bytes()),
        )
        .expect("sign");
        assert!(
            matches!(ring.verify_cached(&foreign, LinkPurpose::Open), Err(LinkError::Invalid(m)) if m.contains("issuer"))
        );
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

    /// Base64url keeps 2 bits of the last character of a 32-byte signature unused; a token whose
    /// last character differs only there decodes to the same signature under a lenient decoder.
    /// The decoder jsonwebtoken uses refuses such non-canonical encodings, so even this edit of a
    /// token is refused rather than verified with the same claims.
    #[test]
    fn unused_trailing_bits_of_the_signature_are_not_ignored() {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let ring = keyring(vec![key("k1", None)]);
        let token = sign(&ring, LinkPurpose::Landing);
        let last = token.as_bytes()[token.len() - 1];
        let value = ALPHABET.iter().position(|&c| c == last).expect("base64url");
        for unused_bits in 1..4 {
            let twin = char::from(ALPHABET[(value & !0b11) | ((value + unused_bits) & 0b11)]);
            let edited = format!("{}{twin}", &token[..token.len() - 1]);
            assert_ne!(edited, token);
            assert!(matches!(
                ring.verify_cached(&edited, LinkPurpose::Landing),
                Err(LinkError::Invalid(_))
            ));
        }
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

    mod properties {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use proptest::prelude::*;

        use super::*;

        /// One keyring for all cases: building one opens a database pool.
        fn ring() -> &'static Keyring {
            static RING: std::sync::OnceLock<Keyring> = std::sync::OnceLock::new();
            RING.get_or_init(|| keyring(vec![key("k1", None), key("k0", Some(3)), key("k-expired", Some(31))]))
        }

        fn purpose() -> impl Strategy<Value = LinkPurpose> {
            prop::sample::select(vec![LinkPurpose::Landing, LinkPurpose::Open, LinkPurpose::Unsubscribe])
        }

        /// Ways to damage a token.
        #[derive(Debug, Clone)]
        enum Edit {
            /// Replace the character at this position (modulo the length).
            Replace(usize, char),
            Insert(usize, char),
            Delete(usize),
            /// Keep only this many characters.
            Truncate(usize),
            /// Exchange two of the three dot-separated parts.
            SwapParts(usize, usize),
            /// Append `=` padding to one of the dot-separated parts.
            Pad(usize, usize),
            /// Append a fourth part.
            AddPart,
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let c = prop_oneof![
                4 => prop::sample::select(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".map(char::from).to_vec()
                ),
                1 => prop::sample::select(vec!['.', '=', '+', '/', ' ', '%', '\0', 'é', '😀']),
            ];
            prop_oneof![
                (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
                (any::<usize>(), c).prop_map(|(i, c)| Edit::Insert(i, c)),
                any::<usize>().prop_map(Edit::Delete),
                any::<usize>().prop_map(Edit::Truncate),
                (0..3_usize, 0..3_usize).prop_map(|(a, b)| Edit::SwapParts(a, b)),
                (0..3_usize, 1..3_usize).prop_map(|(part, n)| Edit::Pad(part, n)),
                Just(Edit::AddPart),
            ]
        }

        fn apply(token: &str, edit: &Edit) -> String {
            let mut chars: Vec<char> = token.chars().collect();
            let len = chars.len();
            match *edit {
                Edit::Insert(i, c) => chars.insert(i % (len + 1), c),
                _ if len == 0 => {}
                Edit::Replace(i, c) => chars[i % len] = c,
                Edit::Delete(i) => {
                    chars.remove(i % len);
                }
                Edit::Truncate(n) => chars.truncate(n % len),
                Edit::SwapParts(a, b) => {
                    let mut parts: Vec<&str> = token.split('.').collect();
                    let n = parts.len();
                    parts.swap(a % n, b % n);
                    return parts.join(".");
                }
                Edit::Pad(part, n) => {
                    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                    let i = part % parts.len();
                    parts[i].push_str(&"=".repeat(n));
                    return parts.join(".");
                }
                Edit::AddPart => return format!("{token}.e30"),
            }
            chars.into_iter().collect()
        }

        /// A token with this header and these claims, signed with `secret`.
        fn forge(header: &serde_json::Value, claims: &serde_json::Value, secret: &str) -> String {
            forge_bytes(header.to_string().as_bytes(), claims.to_string().as_bytes(), secret)
        }

        /// A token with these bytes as header and claims, signed with `secret`.
        fn forge_bytes(header: &[u8], claims: &[u8], secret: &str) -> String {
            use aws_lc_rs::hmac;
            let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
                message.as_bytes(),
            );
            format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
        }

        proptest! {
            #![proptest_config(crate::fuzzing::config(500))]

            /// A link verifies for its purpose, with exactly the claims it was signed with, whatever
            /// the ids and locale hold; for any other purpose it is refused.
            #[test]
            fn signed_links_verify_for_their_purpose_only(
                purpose in purpose(),
                other in purpose(),
                (invitation, campaign, locale) in (any::<String>(), any::<String>(), any::<String>()),
            ) {
                let ring = ring();
                let token = ring.sign(purpose, &invitation, &campaign, &locale, Utc::now().naive_utc()).expect("sign");
                let claims = ring.verify_cached(&token, purpose).expect("a fresh link verifies");
                prop_assert_eq!(
                    (claims.sub.as_str(), claims.cid.as_str(), claims.loc.as_str()),
                    (invitation.as_str(), campaign.as_str(), locale.as_str())
                );
                prop_assert_eq!(ring.verify_cached(&token, other).is_ok(), other == purpose);
            }

            /// The keyring signs exactly what `jsonwebtoken::encode` makes of the same header and
            /// claims, whatever the ids and locale hold, and `jsonwebtoken::decode` verifies it.
            #[test]
            fn signing_agrees_with_jsonwebtoken(
                (invitation, campaign, locale) in (any::<String>(), any::<String>(), any::<String>()),
                age in 0..86_400 * 29_i64,
            ) {
                use jsonwebtoken::EncodingKey;
                let ring = ring();
                let issued_at = (Utc::now() - chrono::Duration::seconds(age)).naive_utc();
                let links = ring.sign_invitation(&invitation, &campaign, &locale, issued_at).expect("sign");
                let header = Header {
                    kid: Some("k1".into()),
                    ..Header::new(Algorithm::HS256)
                };
                let secret = EncodingKey::from_secret(key("k1", None).secret.as_bytes());
                for (token, purpose) in [
                    (links.landing, LinkPurpose::Landing),
                    (links.open, LinkPurpose::Open),
                    (links.unsubscribe, LinkPurpose::Unsubscribe),
                ] {
                    let claims = verify_with_jsonwebtoken(ring, &token, purpose);
                    prop_assert!(claims.is_some(), "jsonwebtoken refuses {}", token);
                    let claims = claims.expect("checked");
                    prop_assert_eq!(
                        (claims.sub.as_str(), claims.cid.as_str(), claims.loc.as_str()),
                        (invitation.as_str(), campaign.as_str(), locale.as_str())
                    );
                    let theirs = jsonwebtoken::encode(&header, &claims, &secret).expect("sign");
                    prop_assert_eq!(token, theirs);
                }
            }

            /// Any edit of a valid token (a character replaced, added or removed, truncation,
            /// parts swapped) is refused. Even edits of the signature's unused trailing bits are:
            /// see `unused_trailing_bits_of_the_signature_are_not_ignored`.
            #[test]
            fn edited_tokens_are_refused(
                purpose in purpose(),
                edits in prop::collection::vec(edit(), 1..4),
            ) {
                let ring = ring();
                let token = sign(ring, purpose);
                let mut edited = token.clone();
                for e in &edits {
                    edited = apply(&edited, e);
                }
                prop_assume!(edited != token);
                let verdict = ring.verify_cached(&edited, purpose);
                prop_assert!(verdict.is_err(), "{} verified: {:?}", edited, verdict);
            }

            /// Compact links verify for their purpose with their invitation, and any edit of one is
            /// refused.
            #[test]
            fn compact_links_verify_and_edits_are_refused(
                bytes in any::<[u8; 16]>(),
                purpose in purpose(),
                edits in prop::collection::vec(edit(), 1..4),
            ) {
                let ring = ring();
                let id = uuid::Uuid::from_bytes(bytes).to_string();
                let token = ring.sign(purpose, &id, "", "", Utc::now().naive_utc()).expect("sign");
                prop_assert_eq!(ring.verify_cached(&token, purpose).expect("verifies").sub, id);
                let edited = edits.iter().fold(token.clone(), |t, e| apply(&t, e));
                prop_assume!(edited != token);
                prop_assert!(ring.verify_cached(&edited, purpose).is_err(), "{}", edited);
            }

            /// Arbitrary text, and arbitrary text in the three-part shape, never verifies.
            #[test]
            fn arbitrary_text_is_refused(
                text in any::<String>(),
                parts in "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,60}",
                purpose in purpose(),
            ) {
                prop_assert!(ring().verify_cached(&text, purpose).is_err());
                prop_assert!(ring().verify_cached(&parts, purpose).is_err());
            }

            /// Tokens made by someone who knows the format but not a key: `alg: none` or another
            /// algorithm, no `kid`, the right claims signed with a wrong secret, or with the right
            /// secret under the wrong algorithm.
            #[test]
            fn tokens_without_a_valid_signature_are_refused(
                alg in prop::sample::select(vec!["none", "None", "NONE", "HS384", "HS512", "RS256", "ES256", "EdDSA", ""]),
                kid in prop::option::of(prop::sample::select(vec!["k1", "k0", "unknown"])),
                wrong_secret in "[ -~]{0,40}",
                purpose in purpose(),
            ) {
                let ring = ring();
                let now = Utc::now().timestamp();
                let claims = serde_json::json!({
                    "iss": ISSUER, "aud": purpose.audience(), "sub": "inv-1", "exp": now + 3600, "iat": now,
                    "jti": "j", "cid": "camp-1", "loc": "da",
                });
                let right_secret = key("k1", None).secret;
                prop_assume!(wrong_secret != right_secret);
                let mut header = serde_json::json!({"alg": alg, "typ": "JWT"});
                if let Some(kid) = kid {
                    header["kid"] = kid.into();
                }
                let unsigned = forge(&header, &claims, &right_secret);
                let unsigned = format!("{}.", unsigned.rsplit_once('.').map_or("", |(m, _)| m));
                for token in [forge(&header, &claims, &right_secret), unsigned] {
                    prop_assert!(ring.verify_cached(&token, purpose).is_err(), "{}", token);
                }
                let hs256 = serde_json::json!({"alg": "HS256", "kid": kid.unwrap_or("k1")});
                prop_assert!(ring.verify_cached(&forge(&hs256, &claims, &wrong_secret), purpose).is_err());
                // The same claims under the right key do verify: the refusals above are not
                // refusals of the claims.
                let genuine = forge(&serde_json::json!({"alg": "HS256", "kid": "k1"}), &claims, &right_secret);
                prop_assert!(ring.verify_cached(&genuine, purpose).is_ok());
            }

            /// A form token is bound to its link: it verifies for its `jti` only, and any other
            /// text, or an edit of it, does not.
            #[test]
            fn form_tokens_verify_only_for_their_link(
                jti in any::<String>(),
                other_jti in any::<String>(),
                edit in edit(),
                garbage in any::<String>(),
            ) {
                let ring = ring();
                let token = ring.csrf_token(&jti).expect("current key");
                prop_assert!(ring.verify_csrf(&jti, &token));
                prop_assert_eq!(ring.verify_csrf(&other_jti, &token), other_jti == jti);
                let edited = apply(&token, &edit);
                prop_assert_eq!(ring.verify_csrf(&jti, &edited), edited == token);
                prop_assert_eq!(ring.verify_csrf(&jti, &garbage), garbage == token);
            }
        }

        /// What `verify_cached` must agree with: the key named by `kid`, found and aged as the
        /// keyring does (key rotation is ours, not JWT's), then `jsonwebtoken::decode` with HS256
        /// pinned, issuer and the purpose's audience required, no leeway.
        fn verify_with_jsonwebtoken(ring: &Keyring, token: &str, purpose: LinkPurpose) -> Option<LinkClaims> {
            use jsonwebtoken::{DecodingKey, Validation};
            let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
            {
                let keys = ring.keys.read().ok()?;
                let known = keys.iter().find(|k| k.kid == kid)?;
                if known.retired_at.is_some_and(|r| r.and_utc() + ring.ttl < Utc::now()) {
                    return None;
                }
            }
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = 0;
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[purpose.audience()]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            let secret = key(&kid, None).secret;
            jsonwebtoken::decode::<LinkClaims>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
                .ok()
                .map(|data| data.claims)
        }

        /// A JSON member: `Some((name, value))`, or `None` for "left out".
        type Member = Option<(&'static str, serde_json::Value)>;

        /// Member `name`: mostly `right`, sometimes one of `wrong` or left out.
        fn member(
            name: &'static str,
            right: serde_json::Value,
            wrong: Vec<serde_json::Value>,
        ) -> impl Strategy<Value = Member> {
            let mut wrong: Vec<Member> = wrong.into_iter().map(|v| Some((name, v))).collect();
            wrong.push(None);
            prop_oneof![19 => Just(Some((name, right))), 1 => prop::sample::select(wrong)]
        }

        fn object(members: Vec<Member>) -> Vec<u8> {
            let map: serde_json::Map<String, serde_json::Value> =
                members.into_iter().flatten().map(|(k, v)| (k.to_owned(), v)).collect();
            serde_json::Value::Object(map).to_string().into_bytes()
        }

        /// Headers: the algorithm, key id and type right or wrong, the other registered header
        /// parameters (RFC 7515 §4.1) well or badly typed, and JSON that is not quite an object.
        fn header() -> impl Strategy<Value = Vec<u8>> {
            use serde_json::json;
            let structured = (
                member(
                    "alg",
                    json!("HS256"),
                    vec![
                        json!("hs256"),
                        json!("HS384"),
                        json!("HS512"),
                        json!("none"),
                        json!("None"),
                        json!("RS256"),
                        json!("ES256"),
                        json!("EdDSA"),
                        json!("PS256"),
                        json!(""),
                        json!(256),
                        json!(null),
                        json!(["HS256"]),
                    ],
                ),
                member(
                    "kid",
                    json!("k1"),
                    vec![
                        json!("k0"),
                        json!("k-expired"),
                        json!("unknown"),
                        json!(""),
                        json!(1),
                        json!(null),
                        json!(["k1"]),
                    ],
                ),
                member("typ", json!("JWT"), vec![json!("jwt"), json!(5), json!(null)]),
                prop::sample::select(vec![
                    None,
                    None,
                    None,
                    Some(("cty", json!("JWT"))),
                    Some(("cty", json!(7))),
                    Some(("crit", json!(["exp"]))),
                    Some(("crit", json!("exp"))),
                    Some(("jku", json!("https://example.com/keys"))),
                    Some(("jwk", json!({"kty": "oct", "k": "c2VjcmV0"}))),
                    Some(("jwk", json!(5))),
                    Some(("x5u", json!(5))),
                    Some(("x5c", json!(["MIIB"]))),
                    Some(("x5c", json!("MIIB"))),
                    Some(("x5t", json!(5))),
                    Some(("x5t#S256", json!("abc"))),
                    Some(("enc", json!("A128GCM"))),
                    Some(("enc", json!("bogus"))),
                    Some(("zip", json!("DEF"))),
                    Some(("zip", json!(5))),
                    Some(("url", json!(5))),
                    Some(("nonce", json!("n"))),
                    Some(("b64", json!(false))),
                    Some(("custom", json!({"a": [1, 2]}))),
                ]),
            )
                .prop_map(|(alg, kid, typ, extra)| object(vec![alg, kid, typ, extra]));
            let raw = prop::sample::select(vec![
                br#"{"alg":"HS256","kid":"k1","alg":"none"}"#.to_vec(),
                br#"{"alg":"HS256","kid":"unknown","kid":"k1"}"#.to_vec(),
                br#"{"alg":"HS\u0032\u0035\u0036","kid":"k\u0031"}"#.to_vec(),
                b" {\"alg\" : \"HS256\" ,\n\"kid\":\"k1\"}\t".to_vec(),
                br#"{"alg":"HS256","kid":"k1"}x"#.to_vec(),
                br#"{"alg":"HS256","kid":"k1",}"#.to_vec(),
                br#"{"alg":"HS256","kid":"k1"}{}"#.to_vec(),
                br#"{"ALG":"HS256","kid":"k1"}"#.to_vec(),
                b"{\"alg\":\"HS256\",\"kid\":\"k1\xff\"}".to_vec(),
                b"{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"\xc3\xa9\"}".to_vec(),
                b"[]".to_vec(),
                b"{}".to_vec(),
                b"null".to_vec(),
                br#""HS256""#.to_vec(),
                Vec::new(),
            ]);
            prop_oneof![8 => structured, 2 => raw]
        }

        /// Claims for `purpose`: each right, wrong, of another type, or left out; expiry far
        /// enough from now that the two verifications cannot straddle it.
        fn claims(purpose: LinkPurpose) -> impl Strategy<Value = Vec<u8>> {
            use serde_json::json;
            let now = Utc::now().timestamp();
            let audiences = [
                "optbridge:landing",
                "optbridge:open",
                "optbridge:unsubscribe",
                "optbridge:other",
            ];
            let mut wrong_audiences: Vec<serde_json::Value> = audiences
                .iter()
                .filter(|a| **a != purpose.audience())
                .map(|a| json!(a))
                .collect();
            wrong_audiences.extend([json!([purpose.audience()]), json!(null)]);
            let structured = (
                (
                    member(
                        "iss",
                        json!(ISSUER),
                        vec![json!("optbridge "), json!([ISSUER]), json!(1)],
                    ),
                    member("aud", json!(purpose.audience()), wrong_audiences),
                    prop::sample::select(vec![
                        json!(now + 3600),
                        json!(now + 86_400 * 29),
                        json!(now - 3600),
                        json!(-1),
                        json!(0),
                        json!((now + 3600) as f64 + 0.5),
                        json!((now + 3600).to_string()),
                        json!(i64::MAX),
                        json!(u64::MAX),
                        json!(null),
                    ])
                    .prop_flat_map(|exp| member("exp", json!(Utc::now().timestamp() + 3600), vec![exp])),
                    member(
                        "sub",
                        json!("inv-1"),
                        vec![json!(""), json!("é\"\\\u{0}"), json!(5), json!(null)],
                    ),
                ),
                (
                    member("iat", json!(now), vec![json!("now"), json!(-now)]),
                    member("jti", json!("0123456789abcdef01"), vec![json!(9)]),
                    member("cid", json!("camp-1"), vec![json!(null)]),
                    member("loc", json!("da"), vec![json!("")]),
                    prop::sample::select(vec![
                        None,
                        None,
                        None,
                        Some(("nbf", json!(now + 3600))),
                        Some(("nbf", json!("soon"))),
                        Some(("extra", json!({"x": [1]}))),
                    ]),
                ),
            )
                .prop_map(|((iss, aud, exp, sub), (iat, jti, cid, loc, extra))| {
                    object(vec![iss, aud, exp, sub, iat, jti, cid, loc, extra])
                });
            let exp = now + 3600;
            let aud = purpose.audience();
            let raw = prop::sample::select(vec![
                format!(r#"{{"iss":"{ISSUER}","aud":"{aud}","aud":"optbridge:other","sub":"s","exp":{exp},"iat":0,"jti":"j","cid":"c","loc":"da"}}"#),
                format!(r#"{{"iss":"{ISSUER}","aud":"{aud}","sub":"s","exp":{},"exp":{exp},"iat":0,"jti":"j","cid":"c","loc":"da"}}"#, now - 3600),
                format!(r#"{{"iss":"optbridg\u0065","aud":"{aud}","sub":"\u0073","exp":{exp},"iat":0,"jti":"j","cid":"c","loc":"da"}}"#),
                format!(r#"{{"iss":"{ISSUER}","aud":"{aud}","sub":"s","exp":{exp}e0,"iat":0,"jti":"j","cid":"c","loc":"da"}}"#),
                format!(r#"{{"iss":"{ISSUER}","aud":"{aud}","sub":"s","exp":{exp}.0,"iat":0,"jti":"j","cid":"c","loc":"da"}}"#),
                format!(r#" {{"iss":"{ISSUER}","aud":"{aud}","sub":"s","exp":{exp},"iat":0,"jti":"j","cid":"c","loc":"da"}} "#),
                format!(r#"{{"iss":"{ISSUER}","aud":"{aud}","sub":"s","exp":{exp},"iat":0,"jti":"j","cid":"c","loc":"da"}}]"#),
                "[]".to_owned(),
                "{}".to_owned(),
            ])
            .prop_map(String::into_bytes);
            prop_oneof![8 => structured, 2 => raw]
        }

        /// Tokens before any edit, mostly meant for `purpose`: links the keyring signs (fresh,
        /// about to expire, expired, issued in the future), and tokens assembled from [`header`]
        /// and [`claims`] signed with the secret of the key they name, of another key, or of none.
        fn token(purpose: LinkPurpose) -> impl Strategy<Value = String> {
            let signed = (
                prop_oneof![4 => Just(purpose), 1 => self::purpose()],
                prop::sample::select(vec![-3600_i64, 0, 86_400 * 29, 86_400 * 31, 86_400 * 60]),
            )
                .prop_map(|(purpose, age)| {
                    let issued_at = (Utc::now() - chrono::Duration::seconds(age)).naive_utc();
                    ring().sign(purpose, "inv-1", "camp-1", "da", issued_at).expect("sign")
                });
            let signer = prop_oneof![
                6 => Just("k1"),
                1 => prop::sample::select(vec!["k0", "k-expired", "unknown", ""]),
            ];
            let assembled = (header(), claims(purpose), signer)
                .prop_map(|(header, claims, signer)| forge_bytes(&header, &claims, &key(signer, None).secret));
            prop_oneof![3 => signed, 7 => assembled]
        }

        /// The fast path against `jsonwebtoken::decode` (see [`verify_with_jsonwebtoken`]) on
        /// thousands of tokens, each then edited zero to three times: the same verdict, and the
        /// same claims when both accept. Valid tokens must be a fair share, or agreeing means little.
        #[test]
        fn verification_agrees_with_jsonwebtoken() {
            use std::sync::atomic::{AtomicU32, Ordering};
            let cases = crate::fuzzing::config(4000);
            let mut runner = proptest::test_runner::TestRunner::new(cases.clone());
            let (accepted, total) = (AtomicU32::new(0), AtomicU32::new(0));
            let edits = prop_oneof![Just(Vec::new()), prop::collection::vec(edit(), 1..4)];
            let strategy =
                (purpose(), edits).prop_flat_map(|(purpose, edits)| (Just(purpose), token(purpose), Just(edits)));
            runner
                .run(&strategy, |(purpose, token, edits)| {
                    let ring = ring();
                    let token = edits.iter().fold(token, |token, e| apply(&token, e));
                    let fast = ring.verify_cached(&token, purpose).ok();
                    let reference = verify_with_jsonwebtoken(ring, &token, purpose);
                    total.fetch_add(1, Ordering::Relaxed);
                    if fast.is_some() {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    prop_assert_eq!(fast, reference, "{}", token);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
            let (accepted, total) = (accepted.into_inner(), total.into_inner());
            assert!(total >= cases.cases, "{total} tokens");
            assert!(accepted * 10 >= total, "only {accepted} of {total} tokens verified");
        }
    }
}
