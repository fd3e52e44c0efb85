//! Mail transports: SESv2 SendEmail through the local AWS-compatible server (the mail it
//! recorded is checked), SES errors classified through SDK mocks, sends in doubt against
//! servers that hang or fail, and the file outbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::error::{
    MessageRejected, SendingPausedException, TooManyRequestsException,
};
use aws_smithy_mocks::mock;
use serde_json::{Value, json};
use sesguard::adapters::outbox::FileOutbox;
use sesguard::adapters::sesv2::{AccountClient, Sesv2Accounts};
use sesguard::config::Enforcement;
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::sending::request::{MailContent, OutgoingMail, SendRequest};
use sesguard::domain::sending::ses_failure::SendFailure;
use sesguard::ports::MailTransport;

use crate::helpers::dynamodb_endpoint;

fn mail(from: &str) -> OutgoingMail {
    let request = SendRequest::parse(
        r#"{"stream":"transactional","to":["Reader <reader@example.com>","gone@example.com"],
            "subject":"Your receipt","text":"Thank you","html":"<p>Thank you</p>","tags":{"order":"42"}}"#,
    )
    .unwrap();
    let gone = EmailAddress::parse("gone@example.com").unwrap();
    let key = request.send_key("message-1");
    OutgoingMail::new(&request, &key, "primary", from.to_owned(), None, |e| {
        *e != gone
    })
}

fn accounts(client: aws_sdk_sesv2::Client) -> Sesv2Accounts {
    Sesv2Accounts::with_clients(HashMap::from([(
        "primary".to_owned(),
        AccountClient {
            client,
            enforcement: Enforcement::Off,
            configuration_set: None,
        },
    )]))
}

#[test]
fn an_outgoing_mail_carries_the_kept_recipients_and_the_feedback_tags() {
    let m = mail("no-reply@example.com");
    assert_eq!(m.to, [EmailAddress::parse("reader@example.com").unwrap()]);
    assert_eq!(m.recipients(), 1);
    let expected: BTreeMap<String, String> = [
        ("order", "42"),
        ("sesguard-account", "primary"),
        ("sesguard-stream", "transactional"),
        ("sesguard-send", m.key.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(m.tags, expected);
}

#[tokio::test]
async fn send_email_reaches_the_local_server_with_its_recipients_and_content() {
    let client = aws_sdk_sesv2::Client::new(&crate::helpers::local_sdk());
    let from = format!("sender-{}@example.com", std::process::id());
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();

    let id = accounts(client).send(&mail(&from)).await.unwrap();
    assert!(!id.is_empty());

    let body = reqwest::get(format!("{}/moto-api/data.json", dynamodb_endpoint()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let data: Value = serde_json::from_slice(&body).unwrap();
    let sent: Vec<&Value> = data["ses"]["Message"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == json!(id))
        .collect();
    assert_eq!(sent.len(), 1, "{data}");
    assert_eq!(sent[0]["source"], json!(from));
    assert_eq!(sent[0]["subject"], "Your receipt");
    assert_eq!(
        sent[0]["destinations"]["ToAddresses"],
        json!(["reader@example.com"]),
        "the suppressed address is not sent to"
    );
}

#[tokio::test]
async fn ses_failures_come_back_classified() {
    let cases: Vec<(SendEmailError, SendFailure)> = vec![
        (
            SendEmailError::SendingPausedException(
                SendingPausedException::builder()
                    .message("Sending paused for this account")
                    .build(),
            ),
            SendFailure::Paused,
        ),
        (
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Maximum sending rate exceeded")
                    .build(),
            ),
            SendFailure::Rate,
        ),
        (
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Email address is not verified.")
                    .build(),
            ),
            SendFailure::Configuration,
        ),
        (
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Daily message quota exceeded.")
                    .build(),
            ),
            SendFailure::DailyQuota,
        ),
        (
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Message content rejected")
                    .build(),
            ),
            SendFailure::Rejected,
        ),
    ];
    for (error, expected) in cases {
        let error = std::sync::Mutex::new(Some(error));
        let rule = mock!(aws_sdk_sesv2::Client::send_email)
            .then_error(move || error.lock().unwrap().take().expect("called once"));
        let failure = accounts(crate::helpers::mocked_sesv2(&[&rule]))
            .send(&mail("no-reply@example.com"))
            .await
            .unwrap_err();
        assert_eq!(failure.failure, expected, "{failure}");
        assert_eq!(failure.account, "primary");
    }
}

/// A client of the SES API at `endpoint`, with test credentials.
fn client_at(endpoint: &str) -> aws_sdk_sesv2::Client {
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

/// What the server on the other end of the wire does with a request.
#[derive(Debug, Clone, Copy)]
enum Wire {
    /// Nothing listens: the connection is refused.
    Refuses,
    /// Accepts the connection and closes it before reading anything.
    ClosesBeforeReading,
    /// Reads the whole request and closes the connection.
    ReadsAndCloses,
    /// Reads the whole request and resets the connection.
    ReadsAndResets,
    /// Reads the whole request and never answers.
    ReadsAndHangs,
    /// Reads the whole request and answers these bytes.
    Answers(&'static str),
}

/// Reads one HTTP request from `socket`: its head, then as many body bytes as it says.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    let mut buffer = [0u8; 16384];
    loop {
        let n = socket.read(&mut buffer).await.unwrap_or(0);
        if n == 0 {
            return false;
        }
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .filter_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(str::to_owned)
                })
                .find_map(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return true;
            }
        }
    }
}

/// A server on 127.0.0.1 that treats each request as `wire` says, counting the requests it
/// read whole.
async fn server(wire: Wire) -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    if let Wire::Refuses = wire {
        drop(listener);
        return (format!("http://{address}"), requests);
    }
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                if let Wire::ClosesBeforeReading = wire {
                    return;
                }
                if read_request(&mut socket).await {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                match wire {
                    Wire::ReadsAndResets => {
                        let _ = socket.set_zero_linger();
                    }
                    Wire::ReadsAndHangs => tokio::time::sleep(Duration::from_secs(60)).await,
                    Wire::Answers(bytes) => {
                        let _ = socket.write_all(bytes.as_bytes()).await;
                    }
                    _ => {}
                }
            });
        }
    });
    (format!("http://{address}"), requests)
}

/// SES's answer to a request it refused for the send rate.
const THROTTLED: &str = "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-amzn-ErrorType: TooManyRequestsException\r\ncontent-length: 2\r\n\r\n{}";
/// SES failing inside.
const INTERNAL: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\nx-amzn-ErrorType: InternalFailure\r\ncontent-length: 2\r\n\r\n{}";

#[tokio::test]
async fn a_send_is_in_doubt_unless_its_error_says_it_never_left() {
    // Each wire, whether SES may have the message (in doubt), and how many requests reached
    // the server: one at most, since the SDK does not retry a send.
    let cases = [
        (Wire::Refuses, false, 0),
        (Wire::ClosesBeforeReading, true, 0),
        (Wire::ReadsAndCloses, true, 1),
        (Wire::ReadsAndResets, true, 1),
        (Wire::ReadsAndHangs, true, 1),
        (Wire::Answers(INTERNAL), true, 1),
        (Wire::Answers("garbage\r\n\r\n"), true, 1),
        (Wire::Answers(THROTTLED), false, 1),
    ];
    for (wire, in_doubt, read) in cases {
        let (endpoint, requests) = server(wire).await;
        let failure = accounts(client_at(&endpoint))
            .with_send_timeout(Duration::from_millis(500))
            .send(&mail("no-reply@example.com"))
            .await
            .unwrap_err();
        assert_eq!(failure.ambiguous, in_doubt, "{wire:?}: {failure}");
        assert_eq!(requests.load(Ordering::SeqCst), read, "{wire:?}: {failure}");
        let expected = match wire {
            Wire::Answers(THROTTLED) => SendFailure::Rate,
            _ => SendFailure::Transient,
        };
        assert_eq!(failure.failure, expected, "{wire:?}: {failure}");
    }
}

#[tokio::test]
async fn the_outbox_writes_one_file_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = FileOutbox::new(dir.path().join("outbox"));
    let first = outbox.send(&mail("no-reply@example.com")).await.unwrap();
    let second = outbox.send(&mail("no-reply@example.com")).await.unwrap();
    assert_ne!(first, second);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 2);
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("outbox").join(format!("{first}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(written["to"], json!(["reader@example.com"]));
    assert_eq!(written["tags"]["sesguard-account"], "primary");
    assert_eq!(written["content"]["subject"], "Your receipt");
    assert_eq!(written["message_id"], json!(first));
    assert!(matches!(
        mail("x@example.com").content,
        MailContent::Inline { .. }
    ));
}

#[tokio::test]
async fn an_access_denied_answer_is_the_accounts_fault_not_the_messages() {
    use aws_sdk_sesv2::config::http::HttpResponse;
    // The answer SES gives a role without `ses:SendEmail`: 403, an unmodelled error code.
    let rule = mock!(aws_sdk_sesv2::Client::send_email).then_http_response(|| {
        let mut response = HttpResponse::new(
            403u16.try_into().expect("status"),
            r#"{"message":"User: arn:aws:sts::222222222222:assumed-role/sesguard-sender/sesguard is not authorized to perform: ses:SendEmail"}"#.into(),
        );
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", "AccessDeniedException");
        response
    });
    let failure = accounts(crate::helpers::mocked_sesv2(&[&rule]))
        .send(&mail("no-reply@example.com"))
        .await
        .unwrap_err();
    assert_eq!(failure.failure, SendFailure::AccessDenied, "{failure}");
    assert!(
        failure.detail.contains("AccessDeniedException"),
        "{failure}"
    );
}
