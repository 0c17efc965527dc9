//! Finding (issue 15, item 5): anyone with one landing link could learn which numbers are signed
//! up or opted out: the page said "Du er allerede tilmeldt" or "har tidligere svaret STOP" for
//! any number typed in, even through a link already at its limit. Every valid number must get
//! the same answer, and the limits come first.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::prelude::*;
use optbridge::db::schema::consent_requests;

use crate::helpers::{Backend, TestApp, both_backends, field, twilio_app};

const FRESH: &str = "+4520111111";
const SIGNED_UP_ELSEWHERE: &str = "+4520222222";
const SIGNED_UP_HERE: &str = "+4520333333";
const STOPPED: &str = "+4520444444";
const PENDING_ELSEWHERE: &str = "+4520555555";

/// `number` signs up through `link` and confirms by replying JA.
async fn sign_up(app: &TestApp, link: &str, number: &str, sid: &str) {
    assert_eq!(app.submit_landing(link, number, true, &[]).await.0, 303);
    app.drain_outbox(Duration::from_secs(10)).await;
    assert!(app.sms_reply(number, "JA", sid).await.status().is_success());
    app.drain_outbox(Duration::from_secs(10)).await;
}

/// A page with the masked number (`•••• 1111`) replaced, so pages for different numbers compare.
fn unmasked(page: &str, number: &str) -> String {
    page.replace(&format!("•••• {}", &number[number.len() - 4..]), "•••• NNNN")
}

async fn every_number_gets_the_same_answer(backend: Backend) {
    let (app, fake) = twilio_app(backend, |a| {
        a.limit_doi_per_token = 5;
        a.limit_doi_per_ip = 100;
        a.doi_resend_secs = 0;
    })
    .await;
    let here = app.invited().await;
    let elsewhere = app.invited().await;
    sign_up(&app, &elsewhere.anna, SIGNED_UP_ELSEWHERE, "SM1").await;
    sign_up(&app, &here.bo, SIGNED_UP_HERE, "SM2").await;
    app.sms_reply(STOPPED, "STOP", "SM3").await;
    assert_eq!(
        app.submit_landing(&elsewhere.bo, PENDING_ELSEWHERE, true, &[]).await.0,
        303
    );
    app.drain_outbox(Duration::from_secs(10)).await;
    let before = fake.requests().len();

    // The attacker holds one link and tries each number: the answer to the form, the code page
    // it leads to, and asking for the code again must not differ but for the masked number.
    let numbers = [FRESH, SIGNED_UP_ELSEWHERE, SIGNED_UP_HERE, STOPPED, PENDING_ELSEWHERE];
    let mut answers = Vec::new();
    for number in numbers {
        let (status, body, location) = app.submit_landing(&here.anna, number, true, &[]).await;
        let (page_status, page) = app.page(&format!("/l/{}/confirm", here.anna)).await;
        assert!(page.contains("Vi har sendt en SMS til"), "{number}: {page}");
        let csrf = field(&page, "csrf");
        let (resend_status, resent, _) = app
            .post_form(&format!("/l/{}/resend", here.anna), &[("csrf", &csrf)])
            .await;
        answers.push((
            number,
            (status, body, location),
            (page_status, unmasked(&page, number)),
            (resend_status, unmasked(&resent, number)),
        ));
    }
    let (_, first_post, first_page, first_resend) = &answers[0];
    assert_eq!(first_post.0, 303);
    assert_eq!(first_page.0, 200);
    assert!(first_resend.1.contains("Vi har sendt en ny kode"), "{}", first_resend.1);
    for (number, post, page, resend) in &answers[1..] {
        assert_eq!(post, first_post, "the form's answer for {number}");
        assert_eq!(page, first_page, "the code page for {number}");
        assert_eq!(resend, first_resend, "asking again for {number}");
    }
    // Every code page says, to every number, why a code may not come.
    assert!(
        first_page
            .1
            .contains("Er du allerede tilmeldt, sender vi ingen ny kode")
    );
    assert!(first_page.1.contains("send START til +4570202020"));

    // Only numbers that may sign up with this workspace get the code (and the code again): not
    // the one signed up here already, not the one that sent STOP.
    app.drain_outbox(Duration::from_secs(10)).await;
    let texted: Vec<String> = fake.requests()[before..].iter().map(|r| r.to.clone()).collect();
    let texted_once: BTreeSet<&str> = texted.iter().map(String::as_str).collect();
    assert_eq!(
        texted_once,
        BTreeSet::from([FRESH, SIGNED_UP_ELSEWHERE, PENDING_ELSEWHERE]),
        "{texted:?}"
    );
    assert_eq!(texted.len(), 6, "the code and the code again: {texted:?}");
    // Nobody was sent a code for those two sign-ups, so a stray JA confirms neither: the one
    // signed up keeps the consent it gave, the one that sent STOP stays out.
    app.sms_reply(SIGNED_UP_HERE, "JA", "SM4").await;
    app.sms_reply(STOPPED, "JA", "SM5").await;
    app.drain_outbox(Duration::from_secs(10)).await;
    let still_pending: i64 = app
        .with_db(|c| {
            consent_requests::table
                .filter(consent_requests::phone.eq_any([SIGNED_UP_HERE, STOPPED]))
                .filter(consent_requests::status.eq("pending"))
                .count()
                .get_result(c)
                .unwrap()
        })
        .await;
    assert_eq!(still_pending, 2);
    assert_eq!(app.subscription_status(STOPPED).await, None, "JA does not undo STOP");

    // The link is at its limit now (five numbers): every number, known or not, gets the limit
    // page, before anything about the number is looked at.
    let requests = fake.requests().len();
    let mut limited = Vec::new();
    for number in numbers.iter().chain(&["+4520666666"]) {
        let (status, body, _) = app.submit_landing(&here.anna, number, true, &[]).await;
        limited.push((status, body));
    }
    assert_eq!(limited[0].0, 429);
    assert!(limited[0].1.contains("Prøv igen senere"), "{}", limited[0].1);
    assert!(limited.iter().all(|answer| answer == &limited[0]), "{limited:?}");
    app.drain_outbox(Duration::from_secs(10)).await;
    assert_eq!(fake.requests().len(), requests, "no SMS at the limit");
}

both_backends!(every_number_gets_the_same_answer);
