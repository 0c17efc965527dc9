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

/// The fields of a webhook's form body, if `signature` is Twilio's for them; `None` otherwise.
///
/// The body is decoded as `application/x-www-form-urlencoded` (invalid UTF-8 in a percent escape
/// becomes U+FFFD, as in any form decoder): Twilio signs the decoded fields, not the bytes.
pub fn verified_form(auth_token: &str, url: &str, body: &[u8], signature: &str) -> Option<Vec<(String, String)>> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    verify(auth_token, url, &params, signature).then_some(params)
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

    /// Twilio's scheme concatenates names and values without a separator, so moving the boundary
    /// between a name and its value keeps the signature when the sort order stays the same. Harmless
    /// here (the fields become unknown names, and a replay keeps its `MessageSid`), but the property
    /// tests below have to allow for it.
    #[test]
    fn names_and_values_are_signed_without_separators() {
        let split = |name: &str, value: &str| params(&[(name, value), ("To", "+4570202020")]);
        assert_eq!(
            expected_signature(TOKEN, URL, &split("Body", "JA")),
            expected_signature(TOKEN, URL, &split("BodyJ", "A"))
        );
        assert_eq!(
            verified_form(
                TOKEN,
                URL,
                b"BodyJ=A&To=%2B4570202020",
                &expected_signature(TOKEN, URL, &split("Body", "JA"))
            ),
            Some(split("BodyJ", "A"))
        );
    }

    #[test]
    fn large_and_repetitive_forms_verify_and_garbage_does_not() {
        let mut request = params(&[("Body", &"æ".repeat(500_000)), ("From", "+4520123456")]);
        request.extend((0..10_000).map(|i| ("MediaUrl".to_owned(), format!("https://m.example/{i}"))));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&request)
            .finish();
        assert!(body.len() > 3_000_000);
        let signature = expected_signature(TOKEN, URL, &request);
        assert_eq!(verified_form(TOKEN, URL, body.as_bytes(), &signature), Some(request));
        assert_eq!(verified_form(TOKEN, URL, body.as_bytes(), EXAMPLE_SIGNATURE), None);
        assert_eq!(verified_form(TOKEN, URL, &body.as_bytes()[1..], &signature), None);
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

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Names and values as Twilio sends them, and anything else: ASCII, Unicode, separators
        /// and percent signs inside them, empty strings; a few common names so they repeat.
        fn field() -> impl Strategy<Value = String> {
            prop_oneof![
                2 => prop::sample::select(vec!["Body", "From", "To", "MessageSid", "MediaUrl", ""]).prop_map(String::from),
                2 => "[ -~]{0,12}",
                1 => any::<String>(),
            ]
        }

        fn form() -> impl Strategy<Value = Vec<(String, String)>> {
            prop::collection::vec((field(), field()), 0..8)
        }

        fn url() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(URL.to_owned()),
                "(https?|HTTPS|ftp)://([a-z:]{0,6}@)?(\\[[0-9a-f:]{0,8}\\]|[a-z0-9.-]{0,12})(:[0-9]{0,5})?[/?#]?[ -~]{0,12}",
                any::<String>(),
            ]
        }

        fn encode(form: &[(String, String)]) -> String {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish()
        }

        /// What Twilio's signature covers: the URL, then every name and value, sorted.
        fn signed_text(url: &str, form: &[(String, String)]) -> String {
            let mut fields = form.to_vec();
            fields.sort();
            fields
                .iter()
                .fold(url.to_owned(), |text, (name, value)| text + name + value)
        }

        /// One byte replaced, inserted or removed.
        #[derive(Debug, Clone)]
        enum Edit {
            Replace(usize, u8),
            Insert(usize, u8),
            Delete(usize),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            let byte = prop_oneof![prop::sample::select(b"&=%+ aA0fF".to_vec()), any::<u8>(),];
            prop_oneof![
                (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
                (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
                any::<usize>().prop_map(Edit::Delete),
            ]
        }

        proptest! {
            #![proptest_config(crate::fuzzing::config(500))]

            /// A correctly signed form verifies, and comes back field for field in the order sent.
            #[test]
            fn signed_forms_verify_and_decode_exactly(form in form(), url in url(), token in "[ -~]{1,40}") {
                let signature = expected_signature(&token, &url, &form);
                prop_assert_eq!(verified_form(&token, &url, encode(&form).as_bytes(), &signature), Some(form.clone()));
                let mut reordered = form.clone();
                reordered.reverse();
                prop_assert_eq!(verified_form(&token, &url, encode(&reordered).as_bytes(), &signature), Some(reordered));
                // Another token never verifies it.
                let other = format!("{token}x");
                prop_assert_eq!(verified_form(&other, &url, encode(&form).as_bytes(), &signature), None);
            }

            /// A byte edited in a signed body is refused, unless the fields it decodes to carry the
            /// same signed text: an edit that changes nothing decoded (`%c3` for `%C3`, `+` for a
            /// space, an extra `&`), or one that moves a name/value boundary (see
            /// `names_and_values_are_signed_without_separators`), which needs an `&` or `=`.
            #[test]
            fn edited_bodies_are_refused_unless_the_signed_text_is_unchanged(
                form in form(),
                edit in edit(),
            ) {
                let signature = expected_signature(TOKEN, URL, &form);
                let mut body = encode(&form).into_bytes();
                let touched_separator = match edit {
                    Edit::Replace(i, b) if !body.is_empty() => {
                        let i = i % body.len();
                        let old = std::mem::replace(&mut body[i], b);
                        b"&=".contains(&old) || b"&=".contains(&b)
                    }
                    Edit::Insert(i, b) => {
                        body.insert(i % (body.len() + 1), b);
                        b"&=".contains(&b)
                    }
                    Edit::Delete(i) if !body.is_empty() => b"&=".contains(&body.remove(i % body.len())),
                    _ => false,
                };
                if let Some(accepted) = verified_form(TOKEN, URL, &body, &signature) {
                    prop_assert_eq!(signed_text(URL, &accepted), signed_text(URL, &form));
                    if !touched_separator {
                        prop_assert_eq!(accepted, form);
                    }
                }
            }

            /// Arbitrary bytes (percent escapes of invalid UTF-8, lone `%`, repeated keys, NULs) and
            /// arbitrary signatures: never a panic, never verified.
            #[test]
            fn arbitrary_bodies_and_signatures_are_refused(
                body in prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..300),
                    "([a-zA-Z]{0,4}(=([a-z+]|%[0-9A-Fa-f]{2}|%[G-Zg-z%]?|%[CDEF][0-9A-F]%[0-7][0-9A-F]|%00)*)?&?){0,8}".prop_map(String::into_bytes),
                ],
                signature in prop_oneof!["[A-Za-z0-9+/]{27}=", any::<String>()],
                url in url(),
                token in "[ -~]{0,40}",
            ) {
                prop_assert_eq!(verified_form(&token, &url, &body, &signature), None);
                // The same fields signed properly do verify: decoding garbage is stable.
                let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
                let proper = expected_signature(&token, &url, &fields);
                let verdict = verified_form(&token, &url, &body, &proper);
                prop_assert_eq!(verdict, (!token.is_empty()).then_some(fields));
            }

            /// The URL with its default port added or removed verifies like the URL itself; any
            /// other URL does not.
            #[test]
            fn default_port_variants_verify_and_other_urls_do_not(
                url in url(),
                other in url(),
                form in form(),
            ) {
                let signature = expected_signature(TOKEN, &url, &form);
                prop_assert!(verify(TOKEN, &url, &form, &signature));
                if let Some(toggled) = toggle_default_port(&url) {
                    prop_assert!(verify(TOKEN, &toggled, &form, &signature), "{}", toggled);
                }
                let same_site = other == url || toggle_default_port(&other).as_deref() == Some(url.as_str());
                prop_assert_eq!(verify(TOKEN, &other, &form, &signature), same_site);
            }
        }
    }
}
