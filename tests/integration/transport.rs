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

/// A server on 127.0.0.1 that reads each request and answers it with `answer` (or never, when
/// `None`), counting the requests it read.
async fn server(answer: Option<&'static str>) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                if socket.read(&mut buffer).await.unwrap_or(0) > 0 {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                match answer {
                    Some(answer) => {
                        let _ = socket.write_all(answer.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (format!("http://{address}"), requests)
}

#[tokio::test]
async fn a_send_that_may_have_reached_ses_is_in_doubt_and_is_never_retried_inside() {
    let send = |endpoint: String| async move {
        accounts(client_at(&endpoint))
            .with_send_timeout(Duration::from_millis(500))
            .send(&mail("no-reply@example.com"))
            .await
            .unwrap_err()
    };

    // One request reaches the server, whatever it answers: no SDK retry.
    let answered = |answer| async move {
        let (endpoint, requests) = server(answer).await;
        let failure = send(endpoint).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1, "one attempt: {failure}");
        failure
    };
    // The request went out and no answer came: SES may have accepted it.
    let failure = answered(None).await;
    assert!(failure.ambiguous, "{failure}");
    assert_eq!(failure.failure, SendFailure::Transient);
    // A 5xx: SES may have accepted it before failing.
    let failure = answered(Some(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\nx-amzn-ErrorType: InternalFailure\r\ncontent-length: 2\r\n\r\n{}",
    ))
    .await;
    assert!(failure.ambiguous, "{failure}");
    // A throttling answer and a refused connection surely did not send.
    let failure = answered(Some(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-amzn-ErrorType: TooManyRequestsException\r\ncontent-length: 2\r\n\r\n{}",
    ))
    .await;
    assert!(!failure.ambiguous, "{failure}");
    assert_eq!(failure.failure, SendFailure::Rate);
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failure = send(closed).await;
    assert!(!failure.ambiguous, "never connected: {failure}");
    assert_eq!(failure.failure, SendFailure::Transient);
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
