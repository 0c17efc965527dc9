//! Load generator for bench/webhooks.sh: CONNECTIONS keep-alive connections post Twilio
//! inbound-SMS webhooks for DURATION, each with a new `MessageSid` and a valid
//! `X-Twilio-Signature` (optbridge's own signer, keyed by `TWILIO_AUTH_TOKEN`, over exactly
//! URL), so every request is real ingest and none is an idempotent replay. Prints one JSON line:
//! requests, seconds, req/s, p50/p99/max latency in ms, 2xx / non-2xx / failed counts.
//! wrk cannot do this: the signature covers the body, which changes with every request.
//!
//!   TWILIO_AUTH_TOKEN=… cargo run --release --example bench-webhooks -- URL [connections] [duration]
//!   (URL e.g. http://127.0.0.1:8094/webhooks/twilio/inbound; defaults 64 connections, 10s)

use std::process::ExitCode;
use std::time::{Duration, Instant};

use optbridge::sms::twilio_signature;

/// What people text back to an invitation SMS. From numbers without a sign-up (as here) every
/// one is stored and queued, then processed to "ignored" or "no reply"; STOP also suppresses.
const BODIES: [&str; 10] = [
    "JA",
    "Ja tak",
    "STOP",
    "stop",
    "hej",
    "Hvad er det her?",
    "HJÆLP",
    "START",
    "Nej tak",
    "👍",
];
/// Distinct sender numbers (Danish mobile numbers +45 20 00 00 00 …).
const NUMBERS: u64 = 1000;

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ok: u64,
    non_2xx: u64,
    failed: u64,
}

struct Target {
    url: String,
    auth_token: String,
    account_sid: String,
    to: String,
}

fn parse_duration(raw: &str) -> Option<Duration> {
    let (digits, unit) = match raw.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (raw.strip_suffix('s').unwrap_or(raw), 1),
    };
    digits.parse::<u64>().ok().map(|n| Duration::from_secs(n * unit))
}

/// The form Twilio posts for an incoming SMS (all its fields, so the signature and the parser
/// do the work they do in production).
fn inbound_form(target: &Target, sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "DK"),
        ("ToState", ""),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", body),
        ("FromCountry", "DK"),
        ("To", &target.to),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", &target.account_sid),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// One connection: requests back to back until the deadline.
async fn connection(target: &Target, index: u64, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    // One client per task, so each task is one keep-alive connection, as in wrk.
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("HTTP client: {e}");
            tally.failed += 1;
            return tally;
        }
    };
    let mut n = 0u64;
    while Instant::now() < deadline {
        // uuid v7's 32 hex digits: the shape of a Twilio SID, unique across runs.
        let sid = format!("SM{}", uuid::Uuid::now_v7().simple());
        let from = format!("+452{:07}", (index * 7919 + n * 104_729) % NUMBERS);
        let body = BODIES[((index + n) % BODIES.len() as u64) as usize];
        n += 1;
        let form = inbound_form(target, &sid, &from, body);
        let signature = twilio_signature::expected_signature(&target.auth_token, &target.url, &form);
        let started = Instant::now();
        let outcome: Result<reqwest::StatusCode, reqwest::Error> = async {
            let response = client
                .post(&target.url)
                .header("X-Twilio-Signature", signature)
                .form(&form)
                .send()
                .await?;
            let status = response.status();
            // Acknowledged when the whole answer is in.
            response.bytes().await?;
            Ok(status)
        }
        .await;
        match outcome {
            Ok(status) => {
                tally.latencies_us.push(started.elapsed().as_micros() as u64);
                if status.is_success() {
                    tally.ok += 1;
                } else {
                    if tally.non_2xx == 0 {
                        eprintln!("connection {index}: {status}");
                    }
                    tally.non_2xx += 1;
                }
            }
            Err(e) => {
                if tally.failed == 0 {
                    eprintln!("connection {index}: {e}");
                }
                tally.failed += 1;
            }
        }
    }
    tally
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: TWILIO_AUTH_TOKEN=… bench-webhooks URL [connections] [duration, e.g. 10s]");
        return ExitCode::from(2);
    };
    let connections: u64 = args.next().and_then(|c| c.parse().ok()).unwrap_or(64);
    let Some(duration) = parse_duration(&args.next().unwrap_or_else(|| "10s".into())) else {
        eprintln!("duration: a number of seconds, e.g. 10s");
        return ExitCode::from(2);
    };
    let Ok(auth_token) = std::env::var("TWILIO_AUTH_TOKEN") else {
        eprintln!("TWILIO_AUTH_TOKEN must be set (the server's token)");
        return ExitCode::from(2);
    };
    let target = std::sync::Arc::new(Target {
        url,
        auth_token,
        account_sid: std::env::var("TWILIO_ACCOUNT_SID").unwrap_or_else(|_| format!("AC{}", "0".repeat(32))),
        to: std::env::var("TWILIO_FROM").unwrap_or_else(|_| "+4570000000".into()),
    });

    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|index| {
            let target = target.clone();
            tokio::spawn(async move { connection(&target, index, deadline).await })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => {
                all.latencies_us.extend(tally.latencies_us);
                all.ok += tally.ok;
                all.non_2xx += tally.non_2xx;
                all.failed += tally.failed;
            }
            Err(e) => {
                eprintln!("connection task: {e}");
                all.failed += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let requests = all.ok + all.non_2xx;
    let report = serde_json::json!({
        "connections": connections,
        "requests": requests,
        "seconds": seconds,
        "rps": requests as f64 / seconds,
        "p50_ms": percentile_ms(&all.latencies_us, 50.0),
        "p99_ms": percentile_ms(&all.latencies_us, 99.0),
        "max_ms": percentile_ms(&all.latencies_us, 100.0),
        "ok_2xx": all.ok,
        "non_2xx": all.non_2xx,
        "failed": all.failed,
    });
    println!("{report}");
    ExitCode::SUCCESS
}
