//! DKIM signatures for outgoing mail: RSA-SHA256 (RFC 6376) and Ed25519-SHA256 (RFC 8463),
//! relaxed/relaxed canonicalization.
//!
//! The signer returns the `DKIM-Signature` header; the caller prepends it to the message bytes.

use std::fmt;
use std::path::Path;

use aws_lc_rs::digest::{self, SHA256};
use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256K1_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
    ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::pem::{self, PemObject as _, SectionKind};

/// Headers we sign when present, in `h=` order. `from` is mandatory (RFC 6376 §5.4).
const SIGNED_HEADERS: [&str; 9] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Recommended line length, CRLF excluded (RFC 5322 §2.1.1).
const MAX_LINE: usize = 78;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read the DKIM key file {path}: {source}")]
    KeyFileUnreadable { path: String, source: std::io::Error },
    #[error("the DKIM key is not a PEM private key: {0}")]
    NotPem(&'static str),
    #[error(
        "unsupported DKIM key type: {0}; use an unencrypted RSA (PKCS#8 or PKCS#1) or Ed25519 (PKCS#8) private key"
    )]
    UnsupportedKeyType(String),
    #[error("the DKIM key was rejected: {0}")]
    InvalidKey(String),
    #[error("invalid DKIM signing domain {0:?}: expected an ASCII domain name such as mail.example.com")]
    InvalidDomain(String),
    #[error("invalid DKIM selector {0:?}: expected dot-separated letters, digits and hyphens")]
    InvalidSelector(String),
    #[error("invalid DKIM timestamp {0}: t= is seconds since 1970 and cannot be negative")]
    InvalidTimestamp(i64),
    #[error("cannot DKIM-sign a malformed message: {0}")]
    MalformedMessage(String),
    #[error("cannot DKIM-sign a message without a From header (RFC 6376 §5.4)")]
    MissingFrom,
    #[error("DKIM signing failed")]
    SigningFailed,
}

/// The private key a [`DkimSigner`] signs with (`a=rsa-sha256` or `a=ed25519-sha256`).
enum DkimKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl DkimKey {
    fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "rsa-sha256",
            Self::Ed25519(_) => "ed25519-sha256",
        }
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DkimError> {
        match self {
            Self::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), data, &mut signature)
                    .map_err(|_| DkimError::SigningFailed)?;
                Ok(signature)
            }
            // Ed25519 signs the SHA-256 hash of the data, not the data itself (RFC 8463 §3).
            Self::Ed25519(key) => key
                .try_sign(digest::digest(&SHA256, data).as_ref())
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| DkimError::SigningFailed),
        }
    }
}

/// Signs messages for one domain (`d=`) with the key published under one selector (`s=`).
pub struct DkimSigner {
    domain: String,
    selector: String,
    key: DkimKey,
}

impl fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigner")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.key.algorithm())
            .finish_non_exhaustive()
    }
}

impl DkimSigner {
    /// PEM text: "-----BEGIN PRIVATE KEY-----" (PKCS#8, RSA or Ed25519) or
    /// "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1 RSA). RSA keys must have 2048 to 8192 bits.
    pub fn from_pem(pem: &str, domain: &str, selector: &str) -> Result<Self, DkimError> {
        if !is_domain_name(domain) {
            return Err(DkimError::InvalidDomain(domain.to_owned()));
        }
        if !is_domain_name(selector) {
            return Err(DkimError::InvalidSelector(selector.to_owned()));
        }
        let key = DkimKey::from_pem(pem)?;
        Ok(Self {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            key,
        })
    }

    /// Reads the PEM key from a file; see [`DkimSigner::from_pem`].
    pub fn from_pem_file(path: &Path, domain: &str, selector: &str) -> Result<Self, DkimError> {
        let pem = std::fs::read_to_string(path).map_err(|source| DkimError::KeyFileUnreadable {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem, domain, selector)
    }

    /// `message`: a complete RFC 5322 message with CRLF line endings (headers, blank line, body).
    /// Returns the complete `DKIM-Signature: ...\r\n` header (folded at <= 78 chars where
    /// possible) that the caller prepends to the message bytes. `timestamp` is the t= value
    /// (unix seconds).
    pub fn sign(&self, message: &[u8], timestamp: i64) -> Result<String, DkimError> {
        if timestamp < 0 {
            return Err(DkimError::InvalidTimestamp(timestamp));
        }
        let (fields, body) = parse_message(message)?;
        let signed: Vec<(&str, &HeaderField)> = SIGNED_HEADERS
            .iter()
            .filter_map(|name| last_field(&fields, name).map(|field| (*name, field)))
            .collect();
        if !signed.iter().any(|(name, _)| *name == "from") {
            return Err(DkimError::MissingFrom);
        }
        let body_hash = BASE64.encode(digest::digest(&SHA256, &relaxed_body(body)));

        let mut header = FoldedHeader::new("DKIM-Signature");
        header.word("v=1;");
        header.word(&format!("a={};", self.key.algorithm()));
        header.word("c=relaxed/relaxed;");
        header.word(&format!("d={};", self.domain));
        header.word(&format!("s={};", self.selector));
        header.word(&format!("t={timestamp};"));
        // " : " rather than ":" so every fold lands on existing whitespace and the relaxed form
        // does not depend on where we fold (RFC 6376 §3.5 allows FWS around the colons).
        for (i, (name, _)) in signed.iter().enumerate() {
            let before = if i == 0 { "h=" } else { ": " };
            let after = if i + 1 == signed.len() { ";" } else { "" };
            header.word(&format!("{before}{name}{after}"));
        }
        header.word(&format!("bh={body_hash};"));
        header.word("b=");

        let signed_fields: Vec<&HeaderField> = signed.iter().map(|(_, field)| *field).collect();
        let data = header_hash_input(&signed_fields, header.text.as_bytes());
        let signature = self.key.sign(&data)?;
        header.base64(&BASE64.encode(signature));
        header.text.push_str("\r\n");
        Ok(header.text)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }
}

fn rsa_rejected(e: KeyRejected) -> DkimError {
    DkimError::InvalidKey(format!("RSA key: {e} (RSA keys must be 2048 to 8192 bits)"))
}

/// `d=` and `s=` are domain names (RFC 6376 §3.5, sub-domain from RFC 5321 §4.1.2); checking
/// them also keeps CR, LF and `;` out of the header we build.
fn is_domain_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl DkimKey {
    /// The first PEM block (RFC 7468), decoded by `rustls-pki-types`; the key inside is parsed
    /// and checked by aws-lc.
    fn from_pem(pem: &str) -> Result<Self, DkimError> {
        let (kind, der) = <(SectionKind, Vec<u8>)>::from_pem_slice(pem.as_bytes()).map_err(|e| pem_error(pem, &e))?;
        if der.is_empty() {
            return Err(DkimError::NotPem("the PEM block is empty"));
        }
        match kind {
            SectionKind::PrivateKey => Self::from_pkcs8(&der),
            SectionKind::RsaPrivateKey => RsaKeyPair::from_der(&der).map(Self::Rsa).map_err(rsa_rejected),
            SectionKind::EcPrivateKey => Err(ec_unsupported()),
            other => Err(DkimError::UnsupportedKeyType(format!(
                "PEM block \"{}\" is not a private key",
                section_label(other)
            ))),
        }
    }

    /// A PKCS#8 key (RFC 5208): aws-lc parses it and answers `WrongAlgorithm` for a key of
    /// another type, so the key type is found by asking for RSA, then Ed25519.
    fn from_pkcs8(der: &[u8]) -> Result<Self, DkimError> {
        match RsaKeyPair::from_pkcs8(der) {
            Ok(key) => return Ok(Self::Rsa(key)),
            Err(e) if is_wrong_algorithm(e) => {}
            Err(e) if is_unreadable(e) => {
                return Err(DkimError::InvalidKey(
                    "the PKCS#8 key cannot be read: it is not valid DER, or of an algorithm other than RSA, Ed25519 or EC"
                        .into(),
                ));
            }
            Err(e) => return Err(rsa_rejected(e)),
        }
        match Ed25519KeyPair::from_pkcs8(der) {
            Ok(key) => return Ok(Self::Ed25519(key)),
            Err(e) if is_wrong_algorithm(e) => {}
            Err(e) => return Err(DkimError::InvalidKey(format!("Ed25519 key: {e}"))),
        }
        // Only to name the key type in the error.
        const EC_CURVES: [&EcdsaSigningAlgorithm; 4] = [
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &ECDSA_P384_SHA384_ASN1_SIGNING,
            &ECDSA_P521_SHA512_ASN1_SIGNING,
            &ECDSA_P256K1_SHA256_ASN1_SIGNING,
        ];
        if EC_CURVES
            .iter()
            .any(|curve| EcdsaKeyPair::from_pkcs8(curve, der).is_ok())
        {
            return Err(ec_unsupported());
        }
        Err(DkimError::UnsupportedKeyType(
            "PKCS#8 key of an algorithm other than RSA, Ed25519 or EC (DKIM signs with RSA or Ed25519 only)".into(),
        ))
    }
}

/// Why the PEM text did not yield a block, with the legacy encryption forms named.
fn pem_error(text: &str, error: &pem::Error) -> DkimError {
    let encrypted = |what: &str| DkimError::UnsupportedKeyType(format!("{what} (decrypt it with `openssl pkey`)"));
    match error {
        // rustls-pki-types skips blocks of labels it does not know, such as this one.
        pem::Error::NoItemsFound if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
            encrypted("encrypted PKCS#8 key")
        }
        pem::Error::NoItemsFound => {
            DkimError::NotPem("no \"-----BEGIN PRIVATE KEY-----\" or \"-----BEGIN RSA PRIVATE KEY-----\" block")
        }
        pem::Error::MissingSectionEnd { .. } => DkimError::NotPem("no END line matching the BEGIN line"),
        pem::Error::IllegalSectionStart { .. } => DkimError::NotPem("the BEGIN line does not end in \"-----\""),
        // RFC 1421 headers such as "Proc-Type: 4,ENCRYPTED" mark a legacy encrypted key.
        pem::Error::Base64Decode(_) if text.contains("Proc-Type:") => encrypted("encrypted PEM key"),
        pem::Error::Base64Decode(_) => DkimError::NotPem("the PEM body is not valid base64"),
        _ => DkimError::NotPem("the PEM block cannot be read"),
    }
}

/// The label of a PEM block (RFC 7468 §4), for the error message.
fn section_label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        _ => "unknown",
    }
}

fn ec_unsupported() -> DkimError {
    DkimError::UnsupportedKeyType("EC key (DKIM signs with RSA or Ed25519 only)".into())
}

/// aws-lc parsed the key but it is of another type.
fn is_wrong_algorithm(e: KeyRejected) -> bool {
    e.description_() == "WrongAlgorithm"
}

/// aws-lc could not parse the PKCS#8 structure at all (not DER, or an algorithm it does not know).
fn is_unreadable(e: KeyRejected) -> bool {
    e.description_() == "InvalidEncoding"
}

/// One header field as it appears in the message.
#[derive(Debug)]
struct HeaderField<'a> {
    /// The name as written, without whitespace before the colon.
    name: &'a [u8],
    /// Everything after the colon, continuation lines included, final CRLF excluded.
    value: &'a [u8],
}

/// Splits a message into its header fields and body (RFC 5322 §2.1, §2.2.3).
fn parse_message(message: &[u8]) -> Result<(Vec<HeaderField<'_>>, &[u8]), DkimError> {
    // A bare CR or LF would be rewritten in transit (RFC 5321 §2.3.8) and break the signature.
    for (i, &b) in message.iter().enumerate() {
        let bare = match b {
            b'\r' => message.get(i + 1) != Some(&b'\n'),
            b'\n' => i == 0 || message[i - 1] != b'\r',
            _ => false,
        };
        if bare {
            return Err(DkimError::MalformedMessage(format!(
                "bare CR or LF at byte {i}; lines must end in CRLF"
            )));
        }
    }

    let mut fields: Vec<HeaderField> = Vec::new();
    // Start and end (before CRLF) of the field being read, and where its name ends.
    let mut current: Option<(usize, usize, usize)> = None;
    let mut pos = 0;
    let mut body_start = message.len();
    while pos < message.len() {
        let line_end = find_crlf(message, pos).unwrap_or(message.len());
        let next = (line_end + 2).min(message.len());
        let line = &message[pos..line_end];
        if line.is_empty() {
            body_start = next;
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Continuation line: part of the field above (RFC 5322 §2.2.3).
            let Some((_, end, _)) = current.as_mut() else {
                return Err(DkimError::MalformedMessage(
                    "the first header line is a continuation line".into(),
                ));
            };
            *end = line_end;
        } else {
            if let Some(field) = current.take() {
                fields.push(header_field(message, field));
            }
            let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
                DkimError::MalformedMessage(format!(
                    "header line at byte {pos} has no colon: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(40)])
                ))
            })?;
            let name = trim_wsp_end(&line[..colon]);
            // Field names are printable ASCII except the colon (RFC 5322 §2.2).
            if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
                return Err(DkimError::MalformedMessage(format!(
                    "invalid header name {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
            current = Some((pos, line_end, pos + colon));
        }
        pos = next;
    }
    if let Some(field) = current {
        fields.push(header_field(message, field));
    }
    Ok((fields, &message[body_start..]))
}

fn header_field(message: &[u8], (start, end, colon): (usize, usize, usize)) -> HeaderField<'_> {
    HeaderField {
        name: trim_wsp_end(&message[start..colon]),
        value: &message[colon + 1..end],
    }
}

fn find_crlf(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..].windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_wsp_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| !is_wsp(b)).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The last field with this name: signers take multiple instances bottom-up (RFC 6376 §5.4.2).
fn last_field<'m, 'a>(fields: &'m [HeaderField<'a>], name: &str) -> Option<&'m HeaderField<'a>> {
    fields
        .iter()
        .rev()
        .find(|field| field.name.eq_ignore_ascii_case(name.as_bytes()))
}

/// "relaxed" header canonicalization, without the final CRLF (RFC 6376 §3.4.2): lowercase name,
/// unfold, runs of WSP to one SP, no WSP at the ends of the value or around the colon.
fn relaxed_header(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = name.to_ascii_lowercase();
    out.push(b':');
    let mut in_value = false;
    let mut pending_space = false;
    for &b in value {
        match b {
            // Unfolding removes the CRLF; the WSP after it is kept, then collapsed.
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_space = true,
            _ => {
                if pending_space && in_value {
                    out.push(b' ');
                }
                pending_space = false;
                in_value = true;
                out.push(b);
            }
        }
    }
    out
}

/// "relaxed" body canonicalization (RFC 6376 §3.4.4): runs of WSP to one SP, no WSP at line
/// ends, no empty lines at the end, and a final CRLF on a non-empty body.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut empty_lines = 0;
    let mut pos = 0;
    while pos < body.len() {
        let line_end = find_crlf(body, pos).unwrap_or(body.len());
        let mut line = Vec::with_capacity(line_end - pos);
        let mut pending_space = false;
        for &b in &body[pos..line_end] {
            if is_wsp(b) {
                pending_space = true;
            } else {
                if pending_space {
                    line.push(b' ');
                }
                pending_space = false;
                line.push(b);
            }
        }
        if line.is_empty() {
            // Held back: only empty lines followed by content survive.
            empty_lines += 1;
        } else {
            for _ in 0..empty_lines {
                out.extend_from_slice(b"\r\n");
            }
            empty_lines = 0;
            out.extend_from_slice(&line);
            out.extend_from_slice(b"\r\n");
        }
        pos = line_end + 2;
    }
    out
}

/// The bytes a DKIM signature covers (RFC 6376 §3.7): each signed header canonicalized with its
/// CRLF, then the DKIM-Signature header with an empty b= and without a final CRLF.
fn header_hash_input(signed: &[&HeaderField], unsigned_dkim_header: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    for field in signed {
        data.extend_from_slice(&relaxed_header(field.name, field.value));
        data.extend_from_slice(b"\r\n");
    }
    let colon = unsigned_dkim_header.iter().position(|&b| b == b':').unwrap_or(0);
    data.extend_from_slice(&relaxed_header(
        trim_wsp_end(&unsigned_dkim_header[..colon]),
        &unsigned_dkim_header[colon + 1..],
    ));
    data
}

/// A header built word by word, folded before a word that would pass `MAX_LINE`.
struct FoldedHeader {
    text: String,
    line_len: usize,
}

impl FoldedHeader {
    fn new(name: &str) -> Self {
        Self {
            text: format!("{name}:"),
            line_len: name.len() + 1,
        }
    }

    /// Appends a space and `word`, or a fold and `word` if the line would get too long.
    fn word(&mut self, word: &str) {
        if self.line_len + 1 + word.len() > MAX_LINE {
            self.text.push_str("\r\n ");
            self.line_len = 1;
        } else {
            self.text.push(' ');
            self.line_len += 1;
        }
        self.text.push_str(word);
        self.line_len += word.len();
    }

    /// Appends base64 directly, folding inside it where needed: FWS may appear anywhere in the
    /// b= value (RFC 6376 §3.5) and verifiers strip it.
    fn base64(&mut self, mut data: &str) {
        while !data.is_empty() {
            let room = MAX_LINE.saturating_sub(self.line_len);
            if room == 0 {
                self.text.push_str("\r\n ");
                self.line_len = 1;
                continue;
            }
            let (chunk, rest) = data.split_at_checked(room.min(data.len())).unwrap_or((data, ""));
            self.text.push_str(chunk);
            self.line_len += chunk.len();
            data = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TEST-ONLY keys, generated with `openssl genpkey` for these tests; they sign nothing real.
    const RSA_PKCS8: &str = include_str!("testdata/rsa2048.pkcs8.pem");
    const RSA_PKCS1: &str = include_str!("testdata/rsa2048.pkcs1.pem");
    const ED25519_PKCS8: &str = include_str!("testdata/ed25519.pkcs8.pem");

    // Vectors made by dkimpy (independent implementation) with testdata/generate.py.
    const INVITATION: &[u8] = include_bytes!("testdata/invitation.eml");
    const DKIMPY_RSA: &str = include_str!("testdata/invitation.rsa.dkimpy.txt");
    const DKIMPY_ED25519: &str = include_str!("testdata/invitation.ed25519.dkimpy.txt");
    const DKIMPY_DEFAULT_RSA: &str = include_str!("testdata/invitation.rsa.dkimpy-default.txt");
    const DKIMPY_DEFAULT_ED25519: &str = include_str!("testdata/invitation.ed25519.dkimpy-default.txt");
    const DOMAIN: &str = "buecherstube.example";
    const SELECTOR: &str = "ob2025";
    const TIMESTAMP: i64 = 1_748_934_900;

    fn rsa_signer() -> DkimSigner {
        DkimSigner::from_pem(RSA_PKCS8, DOMAIN, SELECTOR).expect("test RSA key loads")
    }

    fn ed25519_signer() -> DkimSigner {
        DkimSigner::from_pem(ED25519_PKCS8, DOMAIN, SELECTOR).expect("test Ed25519 key loads")
    }

    /// Tag name -> value with all whitespace removed, from a `DKIM-Signature: ...` header.
    fn tags(header: &str) -> Vec<(String, String)> {
        let value = header
            .strip_prefix("DKIM-Signature:")
            .expect("starts with DKIM-Signature:");
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        compact
            .split(';')
            .filter(|tag| !tag.is_empty())
            .map(|tag| {
                let (name, value) = tag.split_once('=').expect("tag has =");
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    fn tag(header: &str, name: &str) -> String {
        tags(header)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name}= tag in {header}"))
    }

    fn assert_well_folded(header: &str) {
        assert!(header.ends_with("\r\n"), "{header:?}");
        let lines: Vec<&str> = header.trim_end_matches("\r\n").split("\r\n").collect();
        for (i, line) in lines.iter().enumerate() {
            assert!(line.len() <= MAX_LINE, "line {i} is {} long: {line:?}", line.len());
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            if i > 0 {
                assert!(line.starts_with(' '), "continuation line {i}: {line:?}");
            }
        }
    }

    #[test]
    fn rsa_signature_matches_dkimpy() {
        let ours = rsa_signer().sign(INVITATION, TIMESTAMP).expect("signs");
        assert_well_folded(&ours);
        assert_eq!(tag(&ours, "bh"), tag(DKIMPY_RSA, "bh"));
        assert_eq!(tag(&ours, "b"), tag(DKIMPY_RSA, "b"));
        // Same tags in the same order, X-Mailer not signed.
        assert_eq!(tags(&ours), tags(DKIMPY_RSA));
        assert_eq!(
            tag(&ours, "h"),
            "from:to:subject:date:message-id:mime-version:content-type:list-unsubscribe:list-unsubscribe-post"
        );
    }

    #[test]
    fn ed25519_signature_matches_dkimpy() {
        let ours = ed25519_signer().sign(INVITATION, TIMESTAMP).expect("signs");
        assert_well_folded(&ours);
        assert_eq!(tag(&ours, "a"), "ed25519-sha256");
        assert_eq!(tag(&ours, "bh"), tag(DKIMPY_ED25519, "bh"));
        assert_eq!(tag(&ours, "b"), tag(DKIMPY_ED25519, "b"));
        assert_eq!(tags(&ours), tags(DKIMPY_ED25519));
    }

    /// dkim.sign()'s own layout (with i= and q=, folded elsewhere): canonicalizing that header
    /// and the message our way and signing must reproduce dkimpy's b=.
    #[test]
    fn dkimpy_default_layout_signs_identically() {
        for (signer, expected) in [
            (rsa_signer(), DKIMPY_DEFAULT_RSA),
            (ed25519_signer(), DKIMPY_DEFAULT_ED25519),
        ] {
            // The b= tag, not "b=" inside its base64 value: the first one after whitespace.
            let (b_start, _) = expected
                .match_indices("b=")
                .find(|(i, _)| expected[..*i].ends_with(char::is_whitespace))
                .expect("has b=");
            let unsigned = &expected[..b_start + 2];
            let (fields, _) = parse_message(INVITATION).expect("parses");
            let signed: Vec<&HeaderField> = SIGNED_HEADERS
                .iter()
                .filter_map(|name| last_field(&fields, name))
                .collect();
            let data = header_hash_input(&signed, unsigned.as_bytes());
            let signature = BASE64.encode(signer.key.sign(&data).expect("signs"));
            assert_eq!(signature, tag(expected, "b"));
        }
    }

    #[test]
    fn pkcs1_rsa_key_loads_and_signs_like_its_pkcs8_form() {
        let pkcs1 = DkimSigner::from_pem(RSA_PKCS1, DOMAIN, SELECTOR).expect("PKCS#1 loads");
        assert_eq!(pkcs1.domain(), DOMAIN);
        assert_eq!(pkcs1.selector(), SELECTOR);
        let header = pkcs1.sign(INVITATION, TIMESTAMP).expect("signs");
        assert_eq!(tag(&header, "b"), tag(DKIMPY_RSA, "b"));
    }

    #[test]
    fn key_file_loads_and_missing_file_is_a_clear_error() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mail/testdata/ed25519.pkcs8.pem");
        let signer = DkimSigner::from_pem_file(&path, DOMAIN, SELECTOR).expect("loads");
        assert_eq!(signer.key.algorithm(), "ed25519-sha256");

        let missing = Path::new("/nonexistent/dkim.pem");
        let err = DkimSigner::from_pem_file(missing, DOMAIN, SELECTOR).expect_err("no file");
        assert!(matches!(err, DkimError::KeyFileUnreadable { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/dkim.pem"), "{err}");
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        for garbage in ["", "hello", "-----BEGIN PRIVATE KEY-----\nMIIE\n"] {
            let err = DkimSigner::from_pem(garbage, DOMAIN, SELECTOR).expect_err(garbage);
            assert!(matches!(err, DkimError::NotPem(_)), "{garbage:?}: {err:?}");
        }
        let bad_base64 = "-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----\n";
        let err = DkimSigner::from_pem(bad_base64, DOMAIN, SELECTOR).expect_err("bad base64");
        assert_eq!(
            err.to_string(),
            "the DKIM key is not a PEM private key: the PEM body is not valid base64"
        );
        let not_der = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
        let err = DkimSigner::from_pem(not_der, DOMAIN, SELECTOR).expect_err("not DER");
        assert!(matches!(err, DkimError::InvalidKey(_)), "{err:?}");
    }

    #[test]
    fn other_key_types_are_unsupported() {
        // TEST-ONLY keys of types DKIM does not sign with, made with `openssl genpkey` / `openssl ec`.
        for (pem, expected) in [
            (include_str!("testdata/ec-p256.pkcs8.pem"), "EC key"),
            (include_str!("testdata/ec-p256.sec1.pem"), "EC key"),
            (
                include_str!("testdata/ed25519.encrypted.pkcs8.pem"),
                "encrypted PKCS#8 key (decrypt it with `openssl pkey`)",
            ),
        ] {
            let err = DkimSigner::from_pem(pem, DOMAIN, SELECTOR).expect_err(expected);
            assert!(matches!(err, DkimError::UnsupportedKeyType(_)), "{err:?}");
            assert!(err.to_string().contains(expected), "{err}");
        }

        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
        let err = DkimSigner::from_pem(public, DOMAIN, SELECTOR).expect_err("public key");
        assert!(err.to_string().contains("\"PUBLIC KEY\" is not a private key"), "{err}");

        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                         DEK-Info: AES-128-CBC,00\n\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        let err = DkimSigner::from_pem(encrypted, DOMAIN, SELECTOR).expect_err("encrypted");
        assert!(matches!(err, DkimError::UnsupportedKeyType(_)), "{err:?}");
        assert!(err.to_string().contains("encrypted PEM key"), "{err}");
    }

    #[test]
    fn a_key_of_another_algorithm_is_refused_with_the_algorithms_dkim_accepts() {
        // X25519 (key agreement only) is read but is no signing key; Ed448 is not read at all.
        let x25519 = include_str!("testdata/x25519.pkcs8.pem");
        let err = DkimSigner::from_pem(x25519, DOMAIN, SELECTOR).expect_err("X25519");
        assert!(matches!(err, DkimError::UnsupportedKeyType(_)), "{err:?}");
        assert!(err.to_string().contains("other than RSA, Ed25519 or EC"), "{err}");
        let ed448 = include_str!("testdata/ed448.pkcs8.pem");
        let err = DkimSigner::from_pem(ed448, DOMAIN, SELECTOR).expect_err("Ed448");
        assert!(err.to_string().contains("other than RSA, Ed25519 or EC"), "{err}");
    }

    #[test]
    fn a_short_rsa_key_is_refused_with_the_sizes_allowed() {
        let rsa1024 = include_str!("testdata/rsa1024.pkcs8.pem");
        let err = DkimSigner::from_pem(rsa1024, DOMAIN, SELECTOR).expect_err("1024-bit RSA");
        assert!(matches!(err, DkimError::InvalidKey(_)), "{err:?}");
        assert!(err.to_string().contains("2048 to 8192 bits"), "{err}");
    }

    #[test]
    fn domain_and_selector_cannot_inject_header_text() {
        for (domain, selector) in [
            ("example.com\r\nBcc: x@y", "s1"),
            ("example.com; b=", "s1"),
            ("", "s1"),
            ("example.com", "s1\r\n"),
            ("example.com", "-s1"),
        ] {
            assert!(
                DkimSigner::from_pem(ED25519_PKCS8, domain, selector).is_err(),
                "{domain:?} {selector:?}"
            );
        }
    }

    /// RFC 6376 §3.4.5, with <SP>, <HTAB> and <CRLF> written out.
    #[test]
    fn relaxed_canonicalization_matches_rfc6376_example() {
        let message = b"A: X\r\nB : Y\t\r\n    \tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        let (fields, body) = parse_message(message).expect("parses");
        let headers: Vec<Vec<u8>> = fields
            .iter()
            .map(|field| relaxed_header(field.name, field.value))
            .collect();
        assert_eq!(headers, [b"a:X".to_vec(), b"b:Y Z".to_vec()]);
        assert_eq!(relaxed_body(body), b" C\r\nD E\r\n");
    }

    #[test]
    fn relaxed_body_edge_cases() {
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n  \r\n"), b"");
        // A non-empty body without a final CRLF gets one (RFC 6376 §3.4.4).
        assert_eq!(relaxed_body(b"abc  "), b"abc\r\n");
        assert_eq!(relaxed_body(b"a\r\n\r\nb\r\n\r\n"), b"a\r\n\r\nb\r\n");
    }

    #[test]
    fn empty_body_hash_is_the_sha256_of_nothing() {
        let header = ed25519_signer()
            .sign(b"From: a@example.com\r\n\r\n", TIMESTAMP)
            .expect("signs");
        assert_eq!(tag(&header, "bh"), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn folded_headers_are_unfolded() {
        let message = b"Subject: Hello\r\n\tworld:  again\r\n X-Not-A-Header: 1\r\nFrom: a@example.com\r\n\r\nbody\r\n";
        let (fields, body) = parse_message(message).expect("parses");
        assert_eq!(fields.len(), 2);
        assert_eq!(
            relaxed_header(fields[0].name, fields[0].value),
            b"subject:Hello world: again X-Not-A-Header: 1"
        );
        assert_eq!(body, b"body\r\n");

        // Folding is not part of the signed content: the one-line form signs the same.
        let unfolded = b"Subject: Hello world: again X-Not-A-Header: 1\r\nFrom: a@example.com\r\n\r\nbody\r\n";
        let signer = ed25519_signer();
        assert_eq!(
            signer.sign(message, TIMESTAMP).expect("signs"),
            signer.sign(unfolded, TIMESTAMP).expect("signs")
        );
    }

    #[test]
    fn last_occurrence_of_a_repeated_header_is_signed() {
        let signer = ed25519_signer();
        let sign = |message: &[u8]| tag(&signer.sign(message, TIMESTAMP).expect("signs"), "b");
        let both = sign(b"From: a@example.com\r\nTo: first@example.com\r\nto: last@example.com\r\n\r\nx\r\n");
        let last = sign(b"From: a@example.com\r\nto: last@example.com\r\n\r\nx\r\n");
        let first = sign(b"From: a@example.com\r\nTo: first@example.com\r\n\r\nx\r\n");
        assert_eq!(both, last);
        assert_ne!(both, first);
    }

    #[test]
    fn only_listed_headers_present_in_the_message_are_signed() {
        let signer = rsa_signer();
        let message = b"X-Mailer: one\r\nFROM: a@example.com\r\nSubject: Hi\r\n\r\nx\r\n";
        let header = signer.sign(message, TIMESTAMP).expect("signs");
        assert_eq!(tag(&header, "h"), "from:subject");
        let other_mailer = b"X-Mailer: two\r\nFROM: a@example.com\r\nSubject: Hi\r\n\r\nx\r\n";
        assert_eq!(header, signer.sign(other_mailer, TIMESTAMP).expect("signs"));
        let other_subject = b"X-Mailer: one\r\nFROM: a@example.com\r\nSubject: Ho\r\n\r\nx\r\n";
        assert_ne!(header, signer.sign(other_subject, TIMESTAMP).expect("signs"));
    }

    #[test]
    fn missing_from_is_an_error() {
        let err = rsa_signer()
            .sign(b"To: b@example.com\r\nSubject: Hi\r\n\r\nbody\r\n", TIMESTAMP)
            .expect_err("no From");
        assert!(matches!(err, DkimError::MissingFrom), "{err:?}");
        // A body line that looks like a header does not count.
        let err = rsa_signer()
            .sign(b"To: b@example.com\r\n\r\nFrom: a@example.com\r\n", TIMESTAMP)
            .expect_err("From only in the body");
        assert!(matches!(err, DkimError::MissingFrom), "{err:?}");
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for message in [
            &b"From: a@example.com\nTo: b@example.com\n\nbody\n"[..],
            b"From: a@example.com\r\nno colon here\r\n\r\nbody\r\n",
            b" From: a@example.com\r\n\r\nbody\r\n",
            b"From: a@example.com\r\n\r\nbody\rmore\r\n",
        ] {
            let err = rsa_signer().sign(message, TIMESTAMP).expect_err("malformed");
            assert!(matches!(err, DkimError::MalformedMessage(_)), "{err:?}");
        }
        let err = rsa_signer()
            .sign(b"From: a@example.com\r\n\r\n", -1)
            .expect_err("negative t=");
        assert!(matches!(err, DkimError::InvalidTimestamp(-1)), "{err:?}");
    }

    #[test]
    fn header_only_message_is_signed() {
        let header = rsa_signer()
            .sign(b"From: a@example.com\r\nSubject: Hi\r\n", TIMESTAMP)
            .expect("signs");
        assert_eq!(tag(&header, "h"), "from:subject");
        assert_eq!(tag(&header, "bh"), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn debug_output_does_not_show_the_key() {
        let debug = format!("{:?}", rsa_signer());
        assert_eq!(
            debug,
            "DkimSigner { domain: \"buecherstube.example\", selector: \"ob2025\", algorithm: \"rsa-sha256\", .. }"
        );
    }
}
