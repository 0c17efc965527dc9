//! The fake 46elks and inMobile APIs against their docs, with a plain HTTP client: what they
//! accept, what they refuse and how, and the faults they inject. (The product's side is in
//! `sms_gateways.rs`.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_elks::{ElksFault, FakeElks};
use crate::fake_inmobile::{FakeInMobile, InMobileFault};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn elks_send(
    fake: &FakeElks,
    user: &str,
    password: &str,
    form: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let res = client()
        .post(format!("{}/a1/sms", fake.base_url()))
        .basic_auth(user, Some(password))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, res.text().await.unwrap(), retry_after)
}

#[tokio::test]
async fn fake_elks_sends_like_the_docs_and_refuses_like_46elks() {
    let fake = FakeElks::start("u1", "p1").await;
    let good = [
        ("from", "ElkCo"),
        ("to", "+46766861004"),
        ("message", "Bring a sweater, it's cold outside"),
        ("whendelivered", "https://yourapp.example/elks/dlrs?secret=x"),
    ];
    let (status, body, _) = elks_send(&fake, "u1", "p1", &good).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "created");
    assert_eq!(answer["direction"], "outgoing");
    assert_eq!(answer["to"], "+46766861004");
    let id = answer["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with('s'));
    let sent = fake.accepted();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id.as_deref(), Some(id.as_str()));
    assert_eq!(
        sent[0].when_delivered.as_deref(),
        Some("https://yourapp.example/elks/dlrs?secret=x")
    );
    assert!(sent[0].content_type.starts_with("application/x-www-form-urlencoded"));

    assert_eq!(elks_send(&fake, "u1", "wrong", &good).await.0, 401);
    let (status, body, _) = elks_send(
        &fake,
        "u1",
        "p1",
        &[("from", "ElkCo"), ("to", "0766861004"), ("message", "x")],
    )
    .await;
    assert_eq!((status, body.as_str()), (403, "Invalid to number"));
    let (status, body, _) = elks_send(&fake, "u1", "p1", &[("from", "ElkCo"), ("to", "+46766861004")]).await;
    assert_eq!((status, body.as_str()), (403, "Missing key message"));
    let (status, _, _) = elks_send(
        &fake,
        "u1",
        "p1",
        &[("from", "TwelveLetter"), ("to", "+46766861004"), ("message", "x")],
    )
    .await;
    assert_eq!(status, 403, "a text sender has at most 11 characters");

    fake.add_fault(
        Some("+46700000001"),
        ElksFault::TooManyRequests { retry_after_secs: 2 },
        1,
    );
    fake.add_fault(Some("+46700000001"), ElksFault::ServerError { status: 503 }, 1);
    fake.add_fault(
        Some("+46700000002"),
        ElksFault::Refused {
            status: 403,
            reason: "Invalid to number".into(),
        },
        u32::MAX,
    );
    let to_one = [("from", "ElkCo"), ("to", "+46700000001"), ("message", "hej")];
    assert_eq!(
        elks_send(&fake, "u1", "p1", &to_one).await,
        (429, "Too many requests".into(), Some("2".into()))
    );
    assert_eq!(elks_send(&fake, "u1", "p1", &to_one).await.0, 503);
    assert_eq!(elks_send(&fake, "u1", "p1", &to_one).await.0, 200, "faults used up");
    let to_two = [("from", "ElkCo"), ("to", "+46700000002"), ("message", "hej")];
    for _ in 0..2 {
        assert_eq!(elks_send(&fake, "u1", "p1", &to_two).await.0, 403);
    }
    fake.add_fault(
        None,
        ElksFault::Delay {
            duration: Duration::from_millis(300),
        },
        1,
    );
    let started = Instant::now();
    assert_eq!(elks_send(&fake, "u1", "p1", &good).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(fake.wait_for_accepted(3, Duration::from_secs(1)).await.len(), 3);
}

async fn inmobile_send(fake: &FakeInMobile, key: &str, body: &Value) -> (u16, Value, Option<String>) {
    let res = client()
        .post(format!("{}/v4/sms/outgoing", fake.base_url()))
        .basic_auth("_", Some(key))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap(), retry_after)
}

#[tokio::test]
async fn fake_inmobile_sends_like_the_v4_api_and_refuses_like_it() {
    let fake = FakeInMobile::start("key-1").await;
    let message = json!({"to": "4511223344", "text": "Hello world", "from": "FancyShop",
                         "statusCallbackUrl": "https://shop.example/status?secret=s", "respectBlacklist": true});
    let (status, answer, _) = inmobile_send(&fake, "key-1", &json!({"messages": [message.clone()]})).await;
    assert_eq!(status, 200, "{answer}");
    let result = &answer["results"][0];
    assert_eq!(result["numberDetails"]["countryCode"], "45");
    assert_eq!(result["numberDetails"]["phoneNumber"], "11223344");
    assert_eq!(result["numberDetails"]["isValidMsisdn"], true);
    assert_eq!(result["from"], "FancyShop");
    let id = result["messageId"].as_str().unwrap();
    let sent = fake.accepted();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message_id.as_deref(), Some(id));
    assert_eq!(sent[0].json, message);
    assert_eq!(sent[0].user, "_");

    let (status, answer, _) = inmobile_send(&fake, "wrong", &json!({"messages": [message.clone()]})).await;
    assert_eq!((status, answer["errorMessage"].as_str()), (401, Some("Unauthorized")));
    let mut plus = message.clone();
    plus["to"] = json!("+4511223344");
    let (status, answer, _) = inmobile_send(&fake, "key-1", &json!({"messages": [plus]})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["errorMessage"], "Validation failed");
    assert!(
        answer["details"][0].as_str().unwrap().contains("invalid msisdn"),
        "{answer}"
    );
    let (status, _, _) = inmobile_send(&fake, "key-1", &json!({"messages": []})).await;
    assert_eq!(status, 400);

    fake.add_fault(
        Some("4511223344"),
        InMobileFault::TooManyRequests { retry_after_secs: 4 },
        1,
    );
    fake.add_fault(Some("4511223344"), InMobileFault::ServerError { status: 500 }, 1);
    let one = json!({"messages": [message.clone()]});
    let (status, _, retry_after) = inmobile_send(&fake, "key-1", &one).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("4")));
    assert_eq!(inmobile_send(&fake, "key-1", &one).await.0, 500);
    assert_eq!(inmobile_send(&fake, "key-1", &one).await.0, 200);
    fake.add_fault(
        None,
        InMobileFault::Delay {
            duration: Duration::from_millis(300),
        },
        1,
    );
    let started = Instant::now();
    assert_eq!(inmobile_send(&fake, "key-1", &one).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(fake.wait_for_accepted(3, Duration::from_secs(1)).await.len(), 3);
    assert_eq!(
        fake.last_code_for("4511223344"),
        None,
        "no six-digit code in 'Hello world'"
    );
}
