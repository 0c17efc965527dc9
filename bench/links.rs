//! Per-token cost of signed links: the keyring's verification and signing next to
//! `jsonwebtoken::decode` / `encode` with a cached key and a pinned HS256 `Validation`, on the
//! same tokens in the same process. Both link formats (`src/links.rs`): the compact one every
//! invitation is signed with, and the long one links sent before it still use.
//!
//!   cargo run --release --example bench-links [iterations]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use optbridge::links::{Keyring, LinkClaims, LinkPurpose, kid_alias};

#[path = "common.rs"]
mod common;
use common::{per_call, scratch_db};

/// Verification as `jsonwebtoken` does it: the header for the key id, then `decode` with a
/// `DecodingKey` cached per key id (and per compact alias) and HS256 pinned, no leeway.
struct CrateVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: HashMap<&'static str, Validation>,
    /// A compact link's claims are only its purpose letter and `exp`.
    compact: Validation,
}

/// A compact open link's claims: the invitation's 16 UUID bytes in base64url, and `exp`.
#[derive(serde::Deserialize)]
struct CompactOpen {
    o: String,
    exp: i64,
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
        let mut compact = Validation::new(Algorithm::HS256);
        compact.leeway = 0;
        compact.validate_aud = false;
        compact.set_required_spec_claims(&["exp"]);
        Self {
            keys: keys
                .iter()
                .flat_map(|k| {
                    let key = DecodingKey::from_secret(k.secret.as_bytes());
                    [(k.kid.clone(), key.clone()), (kid_alias(&k.kid), key)]
                })
                .collect(),
            validation,
            compact,
        }
    }

    fn verify(&self, token: &str, audience: &'static str) -> Option<LinkClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        jsonwebtoken::decode::<LinkClaims>(token, key, &self.validation[audience])
            .ok()
            .map(|t| t.claims)
    }

    /// A compact open link: the invitation id and `exp`.
    fn verify_compact(&self, token: &str) -> Option<(String, i64)> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        let claims = jsonwebtoken::decode::<CompactOpen>(token, key, &self.compact)
            .ok()?
            .claims;
        let id = uuid::Uuid::from_slice(&URL_SAFE_NO_PAD.decode(claims.o).ok()?).ok()?;
        Some((id.to_string(), claims.exp))
    }
}

/// µs per call of the keyring and of jsonwebtoken, for a valid token and a forged one.
struct Verified {
    valid: (Duration, Duration),
    forged: (Duration, Duration),
}

fn verify_both(iterations: u32, token: &str, ours: impl Fn(&str) -> bool, theirs: impl Fn(&str) -> bool) -> Verified {
    let mut forged = token.to_owned();
    forged.replace_range(forged.len() - 4.., "AAAA");
    assert!(ours(token) && theirs(token), "both accept the valid token");
    assert!(!ours(&forged) && !theirs(&forged), "both refuse the forged one");
    let time = |f: &dyn Fn(&str) -> bool, t: &str| {
        per_call(iterations, || {
            black_box(f(black_box(t)));
        })
    };
    Verified {
        valid: (time(&ours, token), time(&theirs, token)),
        forged: (time(&ours, &forged), time(&theirs, &forged)),
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
    // Invitations are signed compact; an id that is no UUID gets the long format.
    let compact = ring.sign_invitation(invitation, campaign, "da", now)?.open;
    let long = ring.sign_invitation("legacy-invitation-7", campaign, "da", now)?.open;
    let audience = "optbridge:open";

    let ours = ring
        .verify_cached(&compact, LinkPurpose::Open)
        .map_err(|e| e.to_string())?;
    assert!(ours.is_compact());
    assert_eq!(crate_verifier.verify_compact(&compact), Some((ours.sub, ours.exp)));
    assert!(
        !ring
            .verify_cached(&long, LinkPurpose::Open)
            .map_err(|e| e.to_string())?
            .is_compact()
    );
    assert_eq!(
        ring.verify_cached(&long, LinkPurpose::Open).ok(),
        crate_verifier.verify(&long, audience)
    );
    let compact_times = verify_both(
        iterations,
        &compact,
        |t| ring.verify_cached(t, LinkPurpose::Open).is_ok(),
        |t| crate_verifier.verify_compact(t).is_some(),
    );
    let long_times = verify_both(
        iterations,
        &long,
        |t| ring.verify_cached(t, LinkPurpose::Open).is_ok(),
        |t| crate_verifier.verify(t, audience).is_some(),
    );

    // Signing: the keyring's three tokens of an invitation against three `jsonwebtoken::encode`.
    let current = keys.iter().find(|k| k.retired_at.is_none()).ok_or("no current key")?;
    let encoding_key = EncodingKey::from_secret(current.secret.as_bytes());
    let header = Header {
        kid: Some(current.kid.clone()),
        ..Header::new(Algorithm::HS256)
    };
    let claims = ring
        .verify_cached(&long, LinkPurpose::Open)
        .map_err(|e| e.to_string())?;
    let sign_fast = per_call(iterations / 4, || {
        black_box(ring.sign_invitation("legacy-invitation-7", campaign, "da", now).is_ok());
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

    let sign_compact = per_call(iterations / 4, || {
        black_box(ring.sign_invitation(invitation, campaign, "da", now).is_ok());
    });

    println!(
        "{iterations} iterations; open link token {} bytes compact, {} long",
        compact.len(),
        long.len()
    );
    for (format, t) in [("compact", &compact_times), ("long", &long_times)] {
        println!(
            "verify valid {format:<8} keyring {:>9.2?}  jsonwebtoken {:>9.2?}",
            t.valid.0, t.valid.1
        );
        println!(
            "verify forged {format:<7} keyring {:>9.2?}  jsonwebtoken {:>9.2?}",
            t.forged.0, t.forged.1
        );
    }
    println!("sign 3 long tokens    keyring {sign_fast:>9.2?}  jsonwebtoken {sign_jwt:>9.2?}");
    println!("sign 3 compact tokens keyring {sign_compact:>9.2?}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
