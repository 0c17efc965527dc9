//! VERP (variable envelope return path): every invitation's envelope sender is
//! `local+<token>@domain` for `BOUNCE_ADDRESS=local@domain`, so a bounce, which goes to the
//! envelope sender (RFC 5321 4.5.5), names the invitation it is about whatever its format.
//!
//! The token is random (80 bits, stored with the invitation), not a MAC of the invitation id:
//! it stays 20 characters (a MAC plus the id it covers would be 40 or more), it does not depend
//! on a key that rotates, and nothing about the invitation can be read from it. Lowercase hex,
//! because some MTAs lowercase the local part; `local+` and 20 characters keep the local part
//! far below the 64 octets RFC 5321 4.5.3.1.1 allows.

use lettre::Address;

/// Random bytes in a token; twice as many hex digits.
const TOKEN_BYTES: usize = 10;
/// Length of a token in hex digits.
pub const TOKEN_LEN: usize = TOKEN_BYTES * 2;
/// Longest local part RFC 5321 4.5.3.1.1 allows.
const MAX_LOCAL_PART: usize = 64;

/// A fresh, unguessable token for one invitation.
pub fn new_token() -> String {
    crate::crypto::hex(&crate::crypto::random_bytes::<TOKEN_BYTES>())
}

/// `BOUNCE_ADDRESS`: where bounces go, and the VERP addresses made from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceAddress {
    /// Lowercase: matched case-insensitively.
    local: String,
    domain: String,
}

impl BounceAddress {
    /// `bounces@shop.example`: an ASCII address whose VERP form stays within 64 octets.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let address: Address = raw.trim().parse().map_err(|e| format!("not an email address: {e}"))?;
        let (local, domain) = (address.user(), address.domain());
        if !raw.is_ascii() {
            return Err("must be ASCII (some relays cannot carry anything else in the envelope)".into());
        }
        if local.starts_with('"') {
            return Err("a quoted local part cannot carry a VERP token".into());
        }
        if local.len() + 1 + TOKEN_LEN > MAX_LOCAL_PART {
            return Err(format!(
                "the local part '{local}' is too long: with '+' and the {TOKEN_LEN}-character token it must stay within {MAX_LOCAL_PART} octets"
            ));
        }
        Ok(Self {
            local: local.to_ascii_lowercase(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The envelope sender for the invitation with `token`.
    pub fn envelope_sender(&self, token: &str) -> Result<Address, String> {
        Address::new(format!("{}+{token}", self.local), &self.domain).map_err(|e| e.to_string())
    }

    /// The first VERP token of this address found anywhere in `text` (an address, a header, a
    /// whole message), compared case-insensitively.
    pub fn find_token(&self, text: &str) -> Option<String> {
        let lower = text.to_ascii_lowercase();
        let prefix = format!("{}+", self.local);
        let suffix = format!("@{}", self.domain);
        let mut from = 0;
        while let Some(at) = lower[from..].find(&prefix) {
            let start = from + at;
            from = start + prefix.len();
            // A match must start the local part, not end another one (`xbounces+…`).
            let starts_word = lower[..start]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)));
            let token = lower.get(from..from + TOKEN_LEN)?;
            if starts_word
                && token.bytes().all(|b| b.is_ascii_hexdigit())
                && lower[from + TOKEN_LEN..].starts_with(&suffix)
            {
                return Some(token.to_owned());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_through_the_envelope_sender() {
        let bounces = BounceAddress::parse("Bounces@Shop.Example").unwrap();
        let token = new_token();
        assert_eq!(token.len(), TOKEN_LEN);
        let sender = bounces.envelope_sender(&token).unwrap();
        assert_eq!(sender.to_string(), format!("bounces+{token}@shop.example"));
        assert!(sender.user().len() <= MAX_LOCAL_PART);
        assert_eq!(bounces.find_token(sender.as_ref()), Some(token.clone()));
        // MTAs that uppercase or lowercase the address, and the address inside a header.
        assert_eq!(
            bounces.find_token(&sender.to_string().to_uppercase()),
            Some(token.clone())
        );
        assert_eq!(
            bounces.find_token(&format!("Delivered-To: <{sender}>\r\n")),
            Some(token.clone())
        );
        assert_ne!(new_token(), token, "a new token each time");
    }

    #[test]
    fn other_addresses_carry_no_token() {
        let bounces = BounceAddress::parse("bounces@shop.example").unwrap();
        let token = "0123456789abcdef0123";
        assert_eq!(bounces.find_token(&format!("bounces+{token}@other.example")), None);
        assert_eq!(bounces.find_token(&format!("xbounces+{token}@shop.example")), None);
        assert_eq!(bounces.find_token("bounces+0123@shop.example"), None);
        assert_eq!(
            bounces.find_token(&format!("bounces+{}@shop.example", "g".repeat(20))),
            None
        );
        assert_eq!(bounces.find_token("bounces@shop.example"), None);
        // A later good one is still found after a bad one.
        assert_eq!(
            bounces.find_token(&format!("bounces+nothex@shop.example, bounces+{token}@shop.example")),
            Some(token.to_owned())
        );
    }

    #[test]
    fn the_address_is_checked() {
        assert!(BounceAddress::parse("not an address").is_err());
        assert!(BounceAddress::parse(&format!("{}@shop.example", "b".repeat(44))).is_err());
        assert!(BounceAddress::parse(&format!("{}@shop.example", "b".repeat(43))).is_ok());
        assert!(BounceAddress::parse("bøunces@shop.example").is_err());
    }
}
