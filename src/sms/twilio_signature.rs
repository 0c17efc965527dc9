//! Twilio webhook request validation (the `X-Twilio-Signature` header).
//!
//! Twilio signs HMAC-SHA1(auth token, full URL + each POST parameter's name and value, sorted by
//! name) and sends it base64-encoded: <https://www.twilio.com/docs/usage/webhooks/webhooks-security>.
//! `params` are the decoded `application/x-www-form-urlencoded` fields as received. JSON bodies
//! signed through `bodySHA256` are not covered: SMS webhooks are always form-encoded.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::constant_time_eq;

/// The signature Twilio sends for a request to exactly `url` with `params`.
///
/// `url`: the exact public URL Twilio posted to (scheme, host, port, path and query).
pub fn expected_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    sign(auth_token, url, &sorted(params))
}

/// Whether `signature` is Twilio's for this request, compared in constant time.
///
/// Besides `url` itself, the same URL with the scheme's default port (443/80) added or removed is
/// accepted: Twilio's own validators do the same "since sig generation on back end is
/// inconsistent" (twilio-python `RequestValidator.validate`). A non-default port is kept as is.
/// An empty auth token never verifies, so a missing setting cannot turn into a known key.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    if auth_token.is_empty() {
        return false;
    }
    let params = sorted(params);
    let matches =
        |candidate: &str| constant_time_eq(sign(auth_token, candidate, &params).as_bytes(), signature.as_bytes());
    matches(url) || toggle_default_port(url).is_some_and(|other| matches(&other))
}

/// By name, then by value for repeated names, in byte order (as twilio-python's `sorted`, which
/// compares code points: the same order for UTF-8).
fn sorted(params: &[(String, String)]) -> Vec<&(String, String)> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted
}

fn sign(auth_token: &str, url: &str, sorted_params: &[&(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(url.as_bytes());
    for (name, value) in sorted_params {
        context.update(name.as_bytes());
        context.update(value.as_bytes());
    }
    STANDARD.encode(context.sign().as_ref())
}

/// `url` with the scheme's default port removed if present, or added if no port is given; `None`
/// for other schemes or a non-default port. Done on the string, not through `url::Url`, whose
/// normalisation (it drops default ports, re-encodes paths) would change the signed bytes.
fn toggle_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    // An IPv6 literal's colons are inside the brackets; a port can only follow the last `]`.
    let port_search_from = authority[host_start..]
        .rfind(']')
        .map_or(host_start, |at| host_start + at + 1);
    match authority[port_search_from..].rfind(':') {
        Some(colon) => {
            let colon = port_search_from + colon;
            let port = &authority[colon + 1..];
            (port == default_port).then(|| format!("{scheme}://{}{tail}", &authority[..colon]))
        }
        None => Some(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    /// Twilio's published example (webhooks-security docs).
    const EXAMPLE_SIGNATURE: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn example_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn twilio_published_example() {
        assert_eq!(expected_signature(TOKEN, URL, &example_params()), EXAMPLE_SIGNATURE);
        assert!(verify(TOKEN, URL, &example_params(), EXAMPLE_SIGNATURE));
    }

    #[test]
    fn parameter_order_in_the_input_does_not_matter() {
        let mut shuffled = example_params();
        shuffled.reverse();
        shuffled.swap(0, 2);
        assert_eq!(expected_signature(TOKEN, URL, &shuffled), EXAMPLE_SIGNATURE);
        assert!(verify(TOKEN, URL, &shuffled, EXAMPLE_SIGNATURE));
    }

    #[test]
    fn tampered_request_fails() {
        let mut changed = example_params();
        changed[2].1 = "1235".into();
        assert!(!verify(TOKEN, URL, &changed, EXAMPLE_SIGNATURE));

        let mut added = example_params();
        added.push(("Body".into(), "STOP".into()));
        assert!(!verify(TOKEN, URL, &added, EXAMPLE_SIGNATURE));

        let removed = &example_params()[1..];
        assert!(!verify(TOKEN, URL, removed, EXAMPLE_SIGNATURE));

        // Moving a value to another name keeps the concatenation's characters but not its order.
        let renamed = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+18005551212"),
            ("To", "+12349013030"),
        ]);
        assert!(!verify(TOKEN, URL, &renamed, EXAMPLE_SIGNATURE));

        for url in [
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            "https://mycompany.com/myapp.php",
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            "https://mycompany.com/myapp.php/?foo=1&bar=2",
            "https://evil.example/myapp.php?foo=1&bar=2",
        ] {
            assert!(!verify(TOKEN, url, &example_params(), EXAMPLE_SIGNATURE), "{url}");
        }
    }

    #[test]
    fn wrong_token_fails() {
        assert!(!verify("12346", URL, &example_params(), EXAMPLE_SIGNATURE));
        assert!(!verify("", URL, &example_params(), EXAMPLE_SIGNATURE));
    }

    #[test]
    fn empty_token_never_verifies_even_with_its_own_signature() {
        let signature = expected_signature("", URL, &example_params());
        assert!(!verify("", URL, &example_params(), &signature));
    }

    #[test]
    fn empty_or_garbage_signature_fails() {
        for signature in [
            "",
            " ",
            "garbage",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ= ",
            "0/kctr6dlpkmkaf8muzzqo1ndgq=",
            "1/KCTR6DLpKmkAf8muzZqo1nDgQ=",
            "0_KCTR6DLpKmkAf8muzZqo1nDgQ=",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
            "😀",
        ] {
            assert!(!verify(TOKEN, URL, &example_params(), signature), "{signature:?}");
        }
    }

    #[test]
    fn no_parameters_signs_the_url_alone() {
        // Reference values computed with Python's hmac/hashlib, independently of this code.
        assert_eq!(expected_signature(TOKEN, URL, &[]), "zYQTYrRWXE7LtzbG4PfP7/bkkGo=");
    }

    #[test]
    fn repeated_names_sort_by_value_and_names_sort_by_bytes() {
        // Signed string: …/smsBodyBlåbær 😀 JAFrom+4512345678MediaUrlhttps://a…MediaUrlhttps://b…bodylower
        // ("B" < "F" < "M" < "b" in byte order; the two MediaUrl values in value order).
        let url = "https://sms.example.dk/webhooks/twilio/sms";
        let request = params(&[
            ("MediaUrl", "https://b.example/2"),
            ("Body", "Blåbær 😀 JA"),
            ("MediaUrl", "https://a.example/1"),
            ("body", "lower"),
            ("From", "+4512345678"),
        ]);
        let reference = "5hA+4wWlIm+R3XzhTU58RLCK/Ao=";
        assert_eq!(expected_signature("secret-token", url, &request), reference);
        let mut reordered = request.clone();
        reordered.swap(0, 2);
        assert!(verify("secret-token", url, &reordered, reference));
    }

    #[test]
    fn default_port_may_be_present_or_absent() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let signed_with_port = expected_signature(TOKEN, with_port, &example_params());
        assert_eq!(signed_with_port, "EpDEmp1PyjDYp77YxYU3GILBWzE=");
        assert!(verify(TOKEN, URL, &example_params(), &signed_with_port));
        assert!(verify(TOKEN, with_port, &example_params(), EXAMPLE_SIGNATURE));
        // The wrong default port, or a non-default one, is not stripped.
        let wrong = expected_signature(
            TOKEN,
            "https://mycompany.com:80/myapp.php?foo=1&bar=2",
            &example_params(),
        );
        assert!(!verify(TOKEN, URL, &example_params(), &wrong));
        let custom = expected_signature(
            TOKEN,
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &example_params(),
        );
        assert!(!verify(TOKEN, URL, &example_params(), &custom));
        assert!(verify(
            TOKEN,
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &example_params(),
            &custom
        ));
    }

    #[test]
    fn port_toggling_handles_userinfo_ipv6_and_odd_urls() {
        let cases = [
            ("https://a.example/x", Some("https://a.example:443/x")),
            ("https://a.example:443/x", Some("https://a.example/x")),
            ("HTTP://a.example?x=1", Some("HTTP://a.example:80?x=1")),
            ("http://a.example:80", Some("http://a.example")),
            ("http://u:p@a.example/x", Some("http://u:p@a.example:80/x")),
            ("http://u:p@a.example:80/x", Some("http://u:p@a.example/x")),
            ("https://[::1]/x", Some("https://[::1]:443/x")),
            ("https://[::1]:443/x", Some("https://[::1]/x")),
            ("https://a.example:8443/x", None),
            ("https://a.example:/x", None),
            ("ftp://a.example/x", None),
            ("not a url", None),
            ("", None),
        ];
        for (url, expected) in cases {
            assert_eq!(toggle_default_port(url).as_deref(), expected, "{url}");
        }
    }
}
