//! The fake Twilio against reqwest, the client the product's Twilio provider sends with: the
//! answers Twilio gives, the faults it injects, and the webhook signer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::fake_twilio::{FakeTwilio, SentSms, TwilioFault, post_signed, twilio_signature};
use crate::helpers::json;

const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
const FROM: &str = "+15005550006";
const MESSAGING_SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";
const ALICE: &str = "+4512345678";
const BOB: &str = "+4798765432";
const WAIT: Duration = Duration::from_secs(5);

fn messages_url(twilio: &FakeTwilio) -> String {
    format!("{}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", twilio.base_url())
}

/// Sends a form as the product does, with the right credentials.
async fn post(
    client: &reqwest::Client,
    twilio: &FakeTwilio,
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    client
        .post(messages_url(twilio))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .form(form)
        .send()
        .await
}

async fn send(twilio: &FakeTwilio, to: &str, body: &str) -> reqwest::Response {
    post(
        &reqwest::Client::new(),
        twilio,
        &[("To", to), ("From", FROM), ("Body", body)],
    )
    .await
    .expect("request")
}

/// Asserts a Twilio error answer: status, code, and the error JSON shape.
async fn assert_error(res: reqwest::Response, status: u16, code: u32) -> Value {
    assert_eq!(res.status(), status);
    let body = json(res).await;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

fn statuses(requests: &[SentSms]) -> Vec<u16> {
    requests.iter().map(|r| r.status).collect()
}

fn is_message_sid(sid: &str) -> bool {
    sid.strip_prefix("SM")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn an_accepted_message_gets_twilios_201_json_and_is_recorded() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let body = "Skobutikken: Din kode er 123456. Svar JA for at bekræfte. Stop: svar STOP";
    let callback = "https://optbridge.example/webhooks/twilio/status";
    let res = post(
        &reqwest::Client::new(),
        &twilio,
        &[
            ("To", ALICE),
            ("From", FROM),
            ("Body", body),
            ("StatusCallback", callback),
        ],
    )
    .await
    .expect("request");

    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["content-type"], "application/json");
    let answer = json(res).await;
    let sid = answer["sid"].as_str().expect("sid").to_owned();
    assert!(is_message_sid(&sid), "{sid}");
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["to"], ALICE);
    assert_eq!(answer["from"], FROM);
    assert_eq!(answer["messaging_service_sid"], Value::Null);
    assert_eq!(answer["body"], body);
    assert_eq!(answer["num_segments"], "1");
    assert_eq!(answer["account_sid"], ACCOUNT_SID);
    assert_eq!(answer["error_code"], Value::Null);
    assert_eq!(answer["direction"], "outbound-api");
    assert_eq!(
        answer["uri"],
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json")
    );
    let created = answer["date_created"].as_str().expect("date_created");
    let created = chrono::DateTime::parse_from_rfc2822(created).expect("RFC 2822 date_created");
    assert!(
        (chrono::Utc::now() - created.to_utc()).num_seconds().abs() < 60,
        "{created}"
    );

    let [recorded] = twilio.requests().try_into().expect("one request");
    assert_eq!(recorded.sid.as_deref(), Some(sid.as_str()));
    assert_eq!(recorded.to, ALICE);
    assert_eq!(recorded.from.as_deref(), Some(FROM));
    assert_eq!(recorded.messaging_service_sid, None);
    assert_eq!(recorded.body, body);
    assert_eq!(recorded.status_callback.as_deref(), Some(callback));
    assert_eq!(recorded.status, 201);
    assert_eq!(statuses(&twilio.delivered()), [201]);

    let second = json(send(&twilio, ALICE, "again").await).await;
    assert_ne!(second["sid"], sid.as_str(), "every message gets its own SID");
}

#[tokio::test]
async fn a_messaging_service_sends_without_from_and_not_with_both() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let client = reqwest::Client::new();

    let res = post(
        &client,
        &twilio,
        &[
            ("To", ALICE),
            ("MessagingServiceSid", MESSAGING_SERVICE_SID),
            ("Body", "Hej"),
        ],
    )
    .await
    .expect("request");
    assert_eq!(res.status(), 201);
    let answer = json(res).await;
    assert_eq!(answer["from"], Value::Null);
    assert_eq!(answer["messaging_service_sid"], MESSAGING_SERVICE_SID);
    // Twilio's status for a Messaging Service request whose sender is not chosen yet.
    assert_eq!(answer["status"], "accepted");

    let both = [
        ("To", ALICE),
        ("From", FROM),
        ("MessagingServiceSid", MESSAGING_SERVICE_SID),
        ("Body", "Hej"),
    ];
    assert_error(post(&client, &twilio, &both).await.expect("request"), 400, 21603).await;

    let delivered = twilio.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].from, None);
    assert_eq!(
        delivered[0].messaging_service_sid.as_deref(),
        Some(MESSAGING_SERVICE_SID)
    );
}

#[tokio::test]
async fn wrong_credentials_get_401_authenticate() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let client = reqwest::Client::new();
    let form = [("To", ALICE), ("From", FROM), ("Body", "Hej")];
    let other_account = "AC00000000000000000000000000000000";
    let other_url = format!(
        "{}/2010-04-01/Accounts/{other_account}/Messages.json",
        twilio.base_url()
    );

    let attempts = [
        client
            .post(messages_url(&twilio))
            .basic_auth(ACCOUNT_SID, Some("wrong-token")),
        client
            .post(messages_url(&twilio))
            .basic_auth(other_account, Some(AUTH_TOKEN)),
        client.post(&other_url).basic_auth(other_account, Some(AUTH_TOKEN)),
        client.post(&other_url).basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)),
        client.post(messages_url(&twilio)).bearer_auth(AUTH_TOKEN),
        client.post(messages_url(&twilio)),
    ];
    let count = attempts.len();
    for attempt in attempts {
        let res = attempt.form(&form).send().await.expect("request");
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"Twilio API\"");
        assert_eq!(
            json(res).await,
            json!({"code": 20003, "message": "Authenticate",
                   "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401})
        );
    }

    let requests = twilio.requests();
    assert_eq!(statuses(&requests), vec![401; count]);
    assert!(requests.iter().all(|r| r.sid.is_none() && r.to == ALICE));
    assert!(twilio.delivered().is_empty());
}

#[tokio::test]
async fn missing_or_invalid_fields_get_twilios_400_codes() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let client = reqwest::Client::new();
    let long_body = "x".repeat(1601);
    let cases: [(&[(&str, &str)], u32); 8] = [
        (&[("From", FROM), ("Body", "Hej")], 21604),
        (&[("To", ""), ("From", FROM), ("Body", "Hej")], 21604),
        (&[("To", ALICE), ("Body", "Hej")], 21603),
        (&[("To", ALICE), ("From", FROM)], 21602),
        (&[("To", ALICE), ("From", FROM), ("Body", "")], 21602),
        (&[("To", ALICE), ("From", "not a sender!"), ("Body", "Hej")], 21212),
        (&[("To", ALICE), ("From", FROM), ("Body", &long_body)], 21617),
        (
            &[
                ("To", ALICE),
                ("From", FROM),
                ("Body", "Hej"),
                ("StatusCallback", "/relative"),
            ],
            21609,
        ),
    ];
    for (form, code) in cases {
        let res = post(&client, &twilio, form).await.expect("request");
        assert_error(res, 400, code).await;
    }
    let body = assert_error(send(&twilio, ALICE, "").await, 400, 21602).await;
    assert_eq!(body["message"], "Message body is required.");

    // A JSON body carries no form fields, so Twilio finds no To.
    let res = client
        .post(messages_url(&twilio))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .json(&json!({"To": ALICE, "From": FROM, "Body": "Hej"}))
        .send()
        .await
        .expect("request");
    let body = assert_error(res, 400, 21604).await;
    assert_eq!(body["message"], "A 'To' phone number is required.");

    let requests = twilio.requests();
    assert_eq!(requests.len(), 10);
    assert!(requests.iter().all(|r| r.status == 400 && r.sid.is_none()));
    assert!(twilio.delivered().is_empty());
}

#[tokio::test]
async fn numbers_that_are_not_e164_get_21211() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let invalid = [
        "12345678",
        "+45 12 34 56 78",
        "+4512",
        "+1234567",
        "+0451234567",
        "+1234567890123456",
        "+45abcdefgh",
    ];
    for to in invalid {
        let body = assert_error(send(&twilio, to, "Hej").await, 400, 21211).await;
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .starts_with("Invalid 'To' Phone Number"),
            "{body}"
        );
    }
    // The shortest and longest E.164 numbers are fine.
    for to in ["+12345678", "+123456789012345"] {
        assert_eq!(send(&twilio, to, "Hej").await.status(), 201, "{to}");
    }

    let requests = twilio.requests();
    let recorded: Vec<_> = requests.iter().map(|r| (r.to.as_str(), r.status)).collect();
    let mut expected: Vec<_> = invalid.iter().map(|to| (*to, 400)).collect();
    expected.extend([("+12345678", 201), ("+123456789012345", 201)]);
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_then_succeeds() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    twilio.add_fault(None, TwilioFault::TooManyRequests { retry_after_secs: 7 }, 2);

    for _ in 0..2 {
        let res = send(&twilio, ALICE, "Hej").await;
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.to_str().ok()),
            Some(Some("7"))
        );
        assert_error(res, 429, 20429).await;
    }
    let res = send(&twilio, ALICE, "Hej").await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("retry-after").is_none());

    assert_eq!(statuses(&twilio.requests()), [429, 429, 201]);
    assert_eq!(twilio.delivered().len(), 1);
}

#[tokio::test]
async fn server_errors_come_in_order_then_success() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    twilio.add_fault(None, TwilioFault::ServerError { status: 500 }, 1);
    twilio.add_fault(None, TwilioFault::ServerError { status: 503 }, 1);

    assert_error(send(&twilio, ALICE, "Hej").await, 500, 20500).await;
    assert_error(send(&twilio, ALICE, "Hej").await, 503, 20503).await;
    assert_eq!(send(&twilio, ALICE, "Hej").await.status(), 201);

    assert_eq!(statuses(&twilio.requests()), [500, 503, 201]);
}

#[tokio::test]
async fn a_delay_past_the_client_timeout_times_out_and_the_next_request_succeeds() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    twilio.add_fault(
        None,
        TwilioFault::Delay {
            duration: Duration::from_secs(2),
        },
        1,
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let form = [("To", ALICE), ("From", FROM), ("Body", "Hej")];

    let started = Instant::now();
    let err = post(&client, &twilio, &form).await.expect_err("the client gives up");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    let res = post(&client, &twilio, &form)
        .await
        .expect("the next request is answered in time");
    assert_eq!(res.status(), 201);
    // Twilio took the first one too, though the client never heard: a retry sends it twice.
    let delivered = twilio.delivered();
    assert_eq!(statuses(&delivered), [201, 201]);
    // Recorded when it arrived, not when the delayed answer went out.
    assert!(delivered[0].at >= started && delivered[0].at < started + Duration::from_millis(200));
    assert!(delivered[0].at <= delivered[1].at);
}

#[tokio::test]
async fn faults_for_one_number_leave_other_numbers_alone() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let unsubscribed = "Attempt to send to unsubscribed recipient";
    let landline = "'To' number is not a valid mobile number";
    twilio.add_fault(
        Some(ALICE),
        TwilioFault::TwilioError {
            status: 400,
            code: 21610,
            message: unsubscribed.into(),
        },
        1,
    );
    twilio.add_fault(
        Some(ALICE),
        TwilioFault::TwilioError {
            status: 400,
            code: 21614,
            message: landline.into(),
        },
        1,
    );

    assert_eq!(send(&twilio, BOB, "Hej").await.status(), 201);
    let body = assert_error(send(&twilio, ALICE, "Hej").await, 400, 21610).await;
    assert_eq!(body["message"], unsubscribed);
    assert_eq!(send(&twilio, BOB, "Hej").await.status(), 201);
    let body = assert_error(send(&twilio, ALICE, "Hej").await, 400, 21614).await;
    assert_eq!(body["message"], landline);
    assert_eq!(send(&twilio, ALICE, "Hej").await.status(), 201);

    // A fault for any number hits whoever comes next.
    twilio.add_fault(None, TwilioFault::ServerError { status: 500 }, 1);
    assert_error(send(&twilio, BOB, "Hej").await, 500, 20500).await;
    assert_eq!(send(&twilio, ALICE, "Hej").await.status(), 201);

    // `u32::MAX` times: always.
    twilio.add_fault(
        Some(BOB),
        TwilioFault::TwilioError {
            status: 400,
            code: 21610,
            message: unsubscribed.into(),
        },
        u32::MAX,
    );
    for _ in 0..3 {
        assert_error(send(&twilio, BOB, "Hej").await, 400, 21610).await;
    }

    let requests = twilio.requests();
    let recorded: Vec<_> = requests.iter().map(|r| (r.to.as_str(), r.status)).collect();
    assert_eq!(
        recorded,
        [
            (BOB, 201),
            (ALICE, 400),
            (BOB, 201),
            (ALICE, 400),
            (ALICE, 201),
            (BOB, 500),
            (ALICE, 201),
            (BOB, 400),
            (BOB, 400),
            (BOB, 400),
        ]
    );
}

#[tokio::test]
async fn last_code_for_reads_the_code_of_the_latest_accepted_message() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    send(
        &twilio,
        ALICE,
        "Skobutikken: kode 123456. Svar JA. Ring 70202020 for hjælp.",
    )
    .await;
    send(
        &twilio,
        ALICE,
        "Ring +4570202020. Skobutikken: ny kode 654321, svar JA.",
    )
    .await;
    twilio.add_fault(Some(ALICE), TwilioFault::ServerError { status: 500 }, 1);
    assert_eq!(send(&twilio, ALICE, "Skobutikken: kode 999999").await.status(), 500);
    send(&twilio, BOB, "Tak, du er nu tilmeldt. Stop: svar STOP").await;

    assert_eq!(twilio.last_code_for(ALICE).as_deref(), Some("654321"));
    assert_eq!(twilio.last_code_for(BOB), None);
    assert_eq!(twilio.last_code_for("+4611111111"), None);
}

#[tokio::test]
async fn wait_for_delivered_returns_when_messages_arrive() {
    let twilio = Arc::new(FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await);
    let sender = Arc::clone(&twilio);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&sender, ALICE, "en").await;
        send(&sender, BOB, "to").await;
    });

    let delivered = twilio.wait_for_delivered(2, WAIT).await;
    let bodies: Vec<_> = delivered.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["en", "to"]);
}

#[tokio::test]
async fn wait_for_delivered_panics_with_what_arrived() {
    let twilio = Arc::new(FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await);
    send(&twilio, ALICE, "Din kode er 123456").await;
    twilio.add_fault(None, TwilioFault::ServerError { status: 503 }, 1);
    send(&twilio, BOB, "Din kode er 654321").await;

    let waiter = Arc::clone(&twilio);
    let started = Instant::now();
    let panic = tokio::spawn(async move { waiter.wait_for_delivered(2, Duration::from_millis(200)).await })
        .await
        .expect_err("waiting for a message that never comes panics")
        .into_panic();
    assert!(started.elapsed() >= Duration::from_millis(200));
    let message = panic.downcast_ref::<String>().expect("a formatted panic message");
    for expected in [
        "expected 2 accepted message(s) within 200ms, got 1 of 2 request(s):",
        "\n  201 to +4512345678: \"Din kode er 123456\"",
        "\n  503 to +4798765432: \"Din kode er 654321\"",
    ] {
        assert!(message.contains(expected), "{expected:?} not in: {message}");
    }
}

#[tokio::test]
async fn segments_are_counted_as_twilio_counts_them() {
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let cases = [
        // Danish and Swedish letters are in the GSM-7 alphabet.
        ("æøåÆØÅäöÄÖ".repeat(16), "1"),
        ("a".repeat(160), "1"),
        ("a".repeat(161), "2"),
        ("a".repeat(306), "2"),
        ("a".repeat(307), "3"),
        // € is an escape plus a septet: 80 of them fill one SMS, and parts never split them.
        ("€".repeat(80), "1"),
        ("€".repeat(81), "2"),
        ("€".repeat(153), "3"),
        // Any character outside GSM-7 makes it UCS-2.
        ("–".repeat(70), "1"),
        (format!("{}–", "a".repeat(70)), "2"),
        // An emoji is two UTF-16 units.
        ("😀".repeat(35), "1"),
        ("😀".repeat(36), "2"),
    ];
    for (body, segments) in cases {
        let answer = json(send(&twilio, ALICE, &body).await).await;
        assert_eq!(answer["num_segments"], segments, "{body}");
    }
}

#[test]
fn the_signature_matches_twilios_published_example() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ];
    assert_eq!(twilio_signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");

    let mut shuffled = params;
    shuffled.reverse();
    assert_eq!(
        twilio_signature("12345", url, &shuffled),
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    );
    assert_ne!(twilio_signature("54321", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert_ne!(
        twilio_signature("12345", "https://mycompany.com/myapp.php", &params),
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    );
}

/// Reads one HTTP/1.1 request from `listener`, answers 204, and returns its head and body.
async fn capture_one_request(listener: tokio::net::TcpListener) -> (String, Vec<u8>) {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before the request ended");
        received.extend_from_slice(&chunk[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8(received[..head_end].to_vec()).expect("ASCII head");
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .expect("Content-Length")
        .parse()
        .expect("length");
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before the body ended");
        received.extend_from_slice(&chunk[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        .await
        .expect("write");
    (head, received[head_end..].to_vec())
}

#[tokio::test]
async fn post_signed_sends_the_form_it_signed_for_the_public_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = format!(
        "http://{}/webhooks/twilio/inbound",
        listener.local_addr().expect("addr")
    );
    let capture = tokio::spawn(capture_one_request(listener));
    let public_url = "https://optbridge.example/webhooks/twilio/inbound";
    let params = [
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("From", ALICE),
        ("To", FROM),
        ("Body", "Ja tak & bekræft = 100%"),
    ];

    let res = post_signed(&reqwest::Client::new(), &target, public_url, AUTH_TOKEN, &params).await;
    assert_eq!(res.status(), 204);

    let (head, body) = capture.await.expect("capture");
    assert!(head.starts_with("POST /webhooks/twilio/inbound HTTP/1.1\r\n"), "{head}");
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} header in: {head}"))
    };
    assert_eq!(header("Content-Type"), "application/x-www-form-urlencoded");
    let signature = header("X-Twilio-Signature");

    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let decoded: Vec<(&str, &str)> = decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(decoded, params);
    assert_eq!(signature, twilio_signature(AUTH_TOKEN, public_url, &decoded));
    assert_ne!(
        twilio_signature(AUTH_TOKEN, &target, &decoded),
        twilio_signature(AUTH_TOKEN, public_url, &decoded),
        "signed for the public URL, not for where it was sent"
    );
}
