//! Per-token cost of signed links: the keyring's verification and signing next to
//! `jsonwebtoken::decode` / `encode` with a cached key and a pinned HS256 `Validation`, on the
//! same tokens in the same process.
//!
//!   cargo run --release --example bench-links [iterations]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use optbridge::links::{Keyring, LinkClaims, LinkPurpose};

#[path = "common.rs"]
mod common;
use common::{per_call, scratch_db};

/// Verification as `jsonwebtoken` does it: the header for the key id, then `decode` with a
/// `DecodingKey` cached per key id and HS256 pinned, no leeway.
struct CrateVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: HashMap<&'static str, Validation>,
}

impl CrateVerifier {
    fn new(keys: &[optbridge::signing::SigningKey]) -> Self {
        let validation = ["optbridge:landing", "optbridge:open", "optbridge:unsubscribe"]
            .into_iter()
            .map(|aud| {
                let mut v = Validation::new(Algorithm::HS256);
                v.leeway = 0;
                v.set_issuer(&["optbridge"]);
                v.set_audience(&[aud]);
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                (aud, v)
            })
            .collect();
        Self {
            keys: keys
                .iter()
                .map(|k| (k.kid.clone(), DecodingKey::from_secret(k.secret.as_bytes())))
                .collect(),
            validation,
        }
    }

    fn verify(&self, token: &str, audience: &'static str) -> Option<LinkClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        jsonwebtoken::decode::<LinkClaims>(token, key, &self.validation[audience])
            .ok()
            .map(|t| t.claims)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let (dir, db) = scratch_db("links")?;
    let keys = {
        let mut conn = db.get()?;
        optbridge::signing::all(&mut conn, &optbridge::signing::KeyEncryption::default())?
    };
    let ring = Keyring::load(db, Duration::from_secs(30 * 86_400), Default::default())?;
    let crate_verifier = CrateVerifier::new(&keys);
    let now = chrono::Utc::now().naive_utc();
    let invitation = "0199a3f2-7c4e-7d31-9a55-3c1f0e2b8d47";
    let campaign = "0199a3f2-6b10-7e02-8c44-1a2b3c4d5e6f";
    let links = ring.sign_invitation(invitation, campaign, "da", now)?;
    let open = links.open.as_str();
    let audience = "optbridge:open";

    assert_eq!(
        ring.verify_cached(open, LinkPurpose::Open).ok(),
        crate_verifier.verify(open, audience)
    );
    let mut forged = open.to_owned();
    forged.replace_range(forged.len() - 4.., "AAAA");

    let fast = per_call(iterations, || {
        black_box(ring.verify_cached(black_box(open), LinkPurpose::Open).is_ok());
    });
    let jwt = per_call(iterations, || {
        black_box(crate_verifier.verify(black_box(open), audience).is_some());
    });
    let fast_forged = per_call(iterations, || {
        black_box(ring.verify_cached(black_box(&forged), LinkPurpose::Open).is_ok());
    });
    let jwt_forged = per_call(iterations, || {
        black_box(crate_verifier.verify(black_box(&forged), audience).is_some());
    });

    // Signing: the keyring's three tokens of an invitation against three `jsonwebtoken::encode`.
    let current = keys.iter().find(|k| k.retired_at.is_none()).ok_or("no current key")?;
    let encoding_key = EncodingKey::from_secret(current.secret.as_bytes());
    let header = Header {
        kid: Some(current.kid.clone()),
        ..Header::new(Algorithm::HS256)
    };
    let claims = ring.verify_cached(open, LinkPurpose::Open).map_err(|e| e.to_string())?;
    let sign_fast = per_call(iterations / 4, || {
        black_box(ring.sign_invitation(invitation, campaign, "da", now).is_ok());
    });
    let sign_jwt = per_call(iterations / 4, || {
        let jti = optbridge::crypto::hex(&optbridge::crypto::random_bytes::<27>());
        for (aud, jti) in [
            ("optbridge:landing", &jti[..18]),
            ("optbridge:open", &jti[18..36]),
            ("optbridge:unsubscribe", &jti[36..]),
        ] {
            let claims = LinkClaims {
                aud: aud.into(),
                jti: jti.into(),
                ..claims.clone()
            };
            black_box(jsonwebtoken::encode(&header, &claims, &encoding_key).is_ok());
        }
    });

    println!("token length {} bytes, {iterations} iterations", open.len());
    println!("verify valid   keyring {fast:>9.2?}  jsonwebtoken {jwt:>9.2?}");
    println!("verify forged  keyring {fast_forged:>9.2?}  jsonwebtoken {jwt_forged:>9.2?}");
    println!("sign 3 tokens  keyring {sign_fast:>9.2?}  jsonwebtoken {sign_jwt:>9.2?}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
