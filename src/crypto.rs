//! The few primitives optbridge needs, all from aws-lc-rs (the one crypto library already in the
//! tree through rustls and jsonwebtoken).

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{constant_time, digest, rand as lc_rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Lower-case hex HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    hex(aws_lc_rs::hmac::sign(&key, data).as_ref())
}

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // aws-lc's RNG only fails if the OS entropy source is gone; nothing sensible can continue.
    #[allow(clippy::expect_used)]
    lc_rand::fill(&mut buf).expect("operating system random source failed");
    buf
}

/// A random secret of 32 bytes, base64url without padding (43 characters).
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A key for AES-256-GCM, used to encrypt secrets at rest (the link-signing keys).
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(…)")
    }
}

/// Sealed data: the random nonce and the ciphertext with its tag.
pub struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl EncryptionKey {
    /// 32 bytes in base64 (standard or URL-safe alphabet, padded or not), as
    /// `openssl rand -base64 32` prints them.
    pub fn from_base64(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = STANDARD
            .decode(raw)
            .or_else(|_| URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')))
            .map_err(|_| "is not base64 (generate one with `openssl rand -base64 32`)".to_owned())?;
        <[u8; 32]>::try_from(bytes.as_slice()).map(Self).map_err(|_| {
            format!(
                "must be 32 bytes in base64, not {} (generate one with `openssl rand -base64 32`)",
                bytes.len()
            )
        })
    }

    pub fn random() -> Self {
        Self(random_bytes::<32>())
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn aead(&self) -> Result<RandomizedNonceKey, aws_lc_rs::error::Unspecified> {
        RandomizedNonceKey::new(&AES_256_GCM, &self.0)
    }

    /// Encrypts `plaintext` under a fresh random nonce; `aad` is authenticated, not encrypted
    /// (it binds the ciphertext to where it is stored).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, aws_lc_rs::error::Unspecified> {
        let mut ciphertext = plaintext.to_vec();
        let nonce = self.aead()?.seal_in_place_append_tag(Aad::from(aad), &mut ciphertext)?;
        Ok(Sealed {
            nonce: *nonce.as_ref(),
            ciphertext,
        })
    }

    /// Decrypts what [`EncryptionKey::seal`] produced with this key and the same `aad`; `None`
    /// for another key, another `aad` or altered bytes.
    pub fn open(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ciphertext.to_vec();
        let plaintext = self.aead().ok()?.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
        Some(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let key = EncryptionKey::random();
        let sealed = key.seal(b"secret", b"k1").unwrap();
        assert_ne!(sealed.ciphertext[..6], *b"secret");
        assert_eq!(
            key.open(&sealed.nonce, &sealed.ciphertext, b"k1").as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(key.open(&sealed.nonce, &sealed.ciphertext, b"k2"), None, "another row");
        assert_eq!(
            EncryptionKey::random().open(&sealed.nonce, &sealed.ciphertext, b"k1"),
            None
        );
        let mut edited = sealed.ciphertext.clone();
        edited[0] ^= 1;
        assert_eq!(key.open(&sealed.nonce, &edited, b"k1"), None);
        assert_ne!(
            key.seal(b"secret", b"k1").unwrap().nonce,
            sealed.nonce,
            "a nonce per secret"
        );
    }

    #[test]
    fn encryption_keys_are_32_bytes_of_base64() {
        let key = EncryptionKey::random();
        assert_eq!(EncryptionKey::from_base64(&key.to_base64()), Ok(key.clone()));
        let url_safe = URL_SAFE_NO_PAD.encode(key.0);
        assert_eq!(EncryptionKey::from_base64(&url_safe), Ok(key));
        assert!(
            EncryptionKey::from_base64(&STANDARD.encode([7u8; 16]))
                .unwrap_err()
                .contains("not 16")
        );
        assert!(EncryptionKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secrets_are_random_and_url_safe() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(constant_time_eq(a.as_bytes(), a.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
    }
}
