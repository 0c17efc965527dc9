//! Every SMS the product sends is one segment (issue 18) for company names up to 20 characters
//! and privacy URLs up to 60, in all four locales; the consent-text API shows the count.

use optbridge::domain::Locale;
use optbridge::i18n::sms;
use optbridge::sms::segments::{Encoding, count};
use serde_json::json;

use crate::helpers::{Backend, both_backends, json, spawn_app};

/// 20 characters each, with the Nordic letters (all in the GSM-7 alphabet).
const COMPANIES: [&str; 4] = [
    "Nordlys Sko & Støvle",
    "Åhléns Göteborg City",
    "Bådeværftet Ærøskøbi",
    "Sports Outlet Norway",
];
/// 60 characters.
const PRIVACY_URL: &str = "https://nordlys-sko.dk/dk/kundeservice/privatlivspolitik.htm";
const FREQUENCY: &str = "højst 4 gange om måneden";

/// Every kind of SMS the product sends, as sent to `company` in `locale`.
fn every_sms(locale: Locale, company: &str) -> Vec<(&'static str, String)> {
    vec![
        ("doi_request", sms::doi_request(locale, company, "042917")),
        ("receipt", sms::receipt(locale, company, None, PRIVACY_URL)),
        (
            "receipt with frequency",
            sms::receipt(locale, company, Some(FREQUENCY), PRIVACY_URL),
        ),
        ("stopped", sms::stopped(locale, company)),
        ("restarted", sms::restarted(locale, company)),
        ("help", sms::help(locale, company, PRIVACY_URL)),
        ("hint", sms::hint(locale, company)),
        ("ambiguous", sms::ambiguous(locale)),
    ]
}

#[test]
fn every_sms_is_one_segment_for_long_names_and_urls() {
    assert_eq!(PRIVACY_URL.chars().count(), 60);
    for company in COMPANIES {
        assert_eq!(company.chars().count(), 20, "{company}");
        for locale in Locale::ALL {
            for (kind, text) in every_sms(locale, company) {
                let counted = count(&text);
                assert_eq!(
                    (counted.encoding, counted.segments),
                    (Encoding::Gsm7, 1),
                    "{locale:?} {kind}: {} units: {text}",
                    counted.units
                );
                // The answer to an ambiguous confirmation cannot know which company is meant.
                assert!(
                    kind == "ambiguous" || text.contains(company),
                    "{locale:?} {kind} names the company: {text}"
                );
            }
            let receipt = sms::receipt(locale, company, None, PRIVACY_URL);
            assert!(
                receipt.contains(PRIVACY_URL) && receipt.contains("STOP"),
                "{locale:?}: the receipt has the privacy link and the STOP hint: {receipt}"
            );
        }
    }
}

#[test]
fn the_frequency_is_in_the_receipt_where_it_fits() {
    let short = sms::receipt(Locale::Da, "Skobutikken", Some(FREQUENCY), "https://sko.dk/p");
    assert!(short.contains(FREQUENCY), "{short}");
    assert_eq!(count(&short).segments, 1);
    let long = sms::receipt(Locale::Da, COMPANIES[0], Some(FREQUENCY), PRIVACY_URL);
    assert!(
        !long.contains(FREQUENCY),
        "left out rather than a second segment: {long}"
    );
    assert_eq!(count(&long).segments, 1);
}

/// The consent-text API answers with the double-opt-in request and the receipt, each with its
/// encoding and segments.
async fn the_consent_text_api_shows_the_segments(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.create_workspace("Nordlys").await;
    let company = COMPANIES[0];
    for (locale, body) in [
        (
            "da",
            format!(
                "Ja tak, {company} må sende mig tilbud på SMS. Jeg kan altid trække mit samtykke tilbage ved at svare STOP."
            ),
        ),
        (
            "en",
            format!("Yes, {company} may text me offers by SMS. Reply STOP to withdraw."),
        ),
    ] {
        let res = app
            .post_json(
                &ws.token,
                "/api/v1/consent-texts",
                &json!({"locale": locale, "company_name": COMPANIES[0], "body": body,
                        "categories": [], "privacy_url": PRIVACY_URL}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let created = json(res).await;
        for kind in ["doi_request", "receipt"] {
            let preview = &created["sms_previews"][kind];
            assert_eq!(preview["segments"], 1, "{locale} {kind}: {preview}");
            assert_eq!(preview["encoding"], "gsm7", "{locale} {kind}: {preview}");
            assert!(preview["text"].as_str().unwrap().contains(COMPANIES[0]));
        }
        assert!(
            created["sms_previews"]["receipt"]["text"]
                .as_str()
                .unwrap()
                .contains(PRIVACY_URL)
        );
    }
}

both_backends!(the_consent_text_api_shows_the_segments);
