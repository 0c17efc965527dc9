use std::fmt;

/// An email address as a mailbox provider would accept it, with its case-insensitive key.
///
/// The check is deliberately practical (RFC 5321 sizes, one `@`, a dotted domain of valid
/// labels, no spaces or control characters) rather than the full RFC 5322 grammar, which admits
/// quoted local parts and comments that no retailer's list should contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailAddressError {
    #[error("email is empty")]
    Empty,
    #[error("'{0}' is not an email address (expected name@domain.tld)")]
    Malformed(String),
    #[error("'{0}' is longer than 254 characters")]
    TooLong(String),
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailAddressError> {
        let address = raw.trim();
        if address.is_empty() {
            return Err(EmailAddressError::Empty);
        }
        let malformed = || EmailAddressError::Malformed(address.to_owned());
        // RFC 5321 4.5.3.1: a path is at most 256 octets including the angle brackets.
        if address.len() > 254 {
            return Err(EmailAddressError::TooLong(address.chars().take(40).collect()));
        }
        let (local, domain) = address.rsplit_once('@').ok_or_else(malformed)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(malformed());
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(malformed());
        }
        let local_ok = local.chars().all(|c| {
            c.is_alphanumeric()
                || "!#$%&'*+-/=?^_`{|}~.".contains(c)
                || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        });
        if !local_ok {
            return Err(malformed());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(malformed());
        }
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !labels.iter().all(label_ok) {
            return Err(malformed());
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
            return Err(malformed());
        }
        Ok(Self {
            address: address.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The key under which a workspace stores the address: lower-cased, so that
    /// `Anna@Shop.dk` and `anna@shop.dk` are one contact.
    pub fn normalized(&self) -> String {
        self.address.to_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "anna@example.dk",
            "Anna.Hansen+news@Shop.Example.com",
            " bo@xn--blbrgrd-fxak7p.dk ",
            "søren@æøå.dk",
            "o'neil@example.co.uk",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            EmailAddress::parse("Anna@Shop.DK").map(|e| e.normalized()),
            Ok("anna@shop.dk".to_owned())
        );
    }

    #[test]
    fn rejects_what_cannot_receive_mail() {
        for bad in [
            "",
            "   ",
            "anna",
            "anna@",
            "@shop.dk",
            "anna@shop",
            "anna@@shop.dk",
            "an na@shop.dk",
            "anna@shop..dk",
            "anna@-shop.dk",
            "anna@shop.d",
            ".anna@shop.dk",
            "anna.@shop.dk",
            "a..b@shop.dk",
            "anna@shop.dk,bo@shop.dk",
            "anna@shop_x.dk",
            "anna@1.2.3.4",
            "anna\u{0}@shop.dk",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(matches!(EmailAddress::parse(&long), Err(EmailAddressError::TooLong(_))));
    }
}
