//! Requests broken at the HTTP layer, sent as raw bytes over a socket: what no client library
//! would send, refused (by actix-web's parser or by us), and the server keeps serving.

use super::case::{api, Expect};
use super::helpers::{signed_in_with_cookie, snapshot, still_serving};
use super::judge::{forbidden_in_errors, judge, Answer};
use super::AMOUNT;
use onramp_test_support::{on_both_databases, spawn_app, Backend, TestApp};
use std::time::Duration;

on_both_databases!(requests_broken_at_the_http_layer_are_refused_and_the_server_keeps_serving);

/// A request as raw bytes over a fresh connection; the answer as far as one came back.
async fn raw(app: &TestApp, request: &[u8]) -> Option<Answer> {
    use actix_web::rt::net::TcpStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut rd, mut wr) = stream.split();
    let write = async {
        // The server may refuse and close before it has read everything; that is its right.
        let _ = wr.write_all(request).await;
        let _ = wr.flush().await;
    };
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match actix_web::rt::time::timeout(Duration::from_secs(10), rd.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf
    };
    let ((), buf) = futures_util::join!(write, read);
    parse_answer(&buf)
}

fn parse_answer(buf: &[u8]) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[end + 4..];
    answer.body = match answer
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        Some(n) => rest[..n.min(rest.len())].to_vec(),
        None if answer.header("transfer-encoding") == Some("chunked") => dechunk(rest),
        None => rest.to_vec(),
    };
    Some(answer)
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || rest.len() < eol + 2 + size {
            break;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[(eol + 2 + size + 2).min(rest.len())..];
    }
    body
}

struct RawCase {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn raw_cases(cookie: &str) -> Vec<RawCase> {
    let h = "Host: localhost\r\nConnection: close\r\n";
    let deposit = |extra: &str, body: &[u8]| {
        [
            format!(
                "POST /api/deposit HTTP/1.1\r\n{h}Cookie: {cookie}\r\nContent-Type: application/json\r\n{extra}\r\n"
            )
            .into_bytes(),
            body.to_vec(),
        ]
        .concat()
    };
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    // Four chunks of 16 KiB of spaces, then the last chunk: 64 KiB without a Content-Length.
    let chunk = [b"4000\r\n".as_slice(), &[b' '; 0x4000], b"\r\n"].concat();
    let chunked_64k = [chunk.repeat(4).as_slice(), b"0\r\n\r\n"].concat();
    vec![
        RawCase {
            name: "a path with dot segments left as sent",
            request: format!("GET /static/../../Cargo.toml HTTP/1.1\r\n{h}\r\n").into_bytes(),
            expect: api(404, "not_found"),
        },
        RawCase {
            name: "an absolute URI to another host",
            request: format!("GET http://evil.example/api/user/me HTTP/1.1\r\n{h}\r\n")
                .into_bytes(),
            expect: api(401, "unauthorized"),
        },
        RawCase {
            name: "a chunked 64 KiB deposit body",
            request: deposit("Transfer-Encoding: chunked\r\n", &chunked_64k),
            expect: api(413, "payload_too_large"),
        },
        RawCase {
            name: "a NUL in a header value",
            request: format!("GET /api/user/me HTTP/1.1\r\n{h}X-A: a\0b\r\n\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            // Header values a client library will not even send.
            name: "a DEL in the Idempotency-Key",
            request: deposit(
                "Content-Length: 15\r\nIdempotency-Key: a\x7fb\r\n",
                br#"{"amount": 100}"#,
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a NUL in the Idempotency-Key",
            request: deposit(
                "Content-Length: 15\r\nIdempotency-Key: a\0b\r\n",
                br#"{"amount": 100}"#,
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a NUL in the cookie",
            request: format!("GET /api/user/me HTTP/1.1\r\n{h}Cookie: session_id=\0\r\n\r\n")
                .into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a NUL in the path",
            request: format!("GET /api/\0 HTTP/1.1\r\n{h}\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a space in a header name",
            request: format!("GET /healthz HTTP/1.1\r\n{h}Bad Header: x\r\n\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a header folded over two lines",
            request: format!("GET /healthz HTTP/1.1\r\n{h}X-A: a\r\n b\r\n\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a request line that is not HTTP",
            request: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "two different Content-Lengths",
            request: deposit(
                "Content-Length: 15\r\nContent-Length: 2\r\n",
                br#"{"amount": 100}"#,
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "Content-Length and chunked together",
            request: deposit(
                "Content-Length: 15\r\nTransfer-Encoding: chunked\r\n",
                b"f\r\n{\"amount\": 100}\r\n0\r\n\r\n",
            ),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a negative Content-Length",
            request: deposit("Content-Length: -1\r\n", br#"{"amount": 100}"#),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a Content-Length past u64",
            request: deposit("Content-Length: 99999999999999999999999\r\n", b"{}"),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a broken chunk size",
            request: deposit("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "100 headers",
            request: format!("GET /api/user/me HTTP/1.1\r\n{h}{many_headers}\r\n").into_bytes(),
            expect: Expect::HttpLayer,
        },
        RawCase {
            name: "a 160 KiB header",
            request: format!(
                "GET /api/user/me HTTP/1.1\r\n{h}X-Big: {}\r\n\r\n",
                "b".repeat(160 * 1024)
            )
            .into_bytes(),
            expect: Expect::HttpLayer,
        },
    ]
}

async fn requests_broken_at_the_http_layer_are_refused_and_the_server_keeps_serving(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (person, cookie) = signed_in_with_cookie(&app, "eve@example.com", "Eve").await;
    let deposit = person.deposit(AMOUNT).await;
    let deposit_id = deposit["id"].as_str().unwrap().to_owned();
    let forbidden = forbidden_in_errors(&app, &cookie);
    let before = snapshot(&app).await;

    let cases = raw_cases(&cookie);
    let mut failures = Vec::new();
    for case in &cases {
        let verdict = match raw(&app, &case.request).await {
            Some(answer) => {
                let v = judge(&app, &case.expect, &answer, &forbidden);
                println!(
                    "{:>3} {:<5} {:<45} body {:?} {}",
                    answer.status,
                    if v.is_ok() { "ok" } else { "FAIL" },
                    case.name,
                    answer.text().chars().take(80).collect::<String>(),
                    v.as_ref().err().map(String::as_str).unwrap_or("")
                );
                v
            }
            None => Err("the connection closed without an answer".to_owned()),
        };
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} broken requests were answered wrongly:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        before,
        snapshot(&app).await,
        "broken requests changed the database"
    );
    still_serving(&app, &person, &deposit_id).await;
}
