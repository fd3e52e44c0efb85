//! Mail transports: SESv2 SendEmail through the local AWS-compatible server (the mail it
//! recorded is checked), SES errors classified through SDK mocks, and the file outbox.

use std::collections::{BTreeMap, HashMap};

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
