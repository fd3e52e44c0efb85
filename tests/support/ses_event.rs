//! One builder for the SES events the tests, the benches and the load harness feed sesguard:
//! a Send, Delivery, Bounce or Complaint about one message, in either of SES's formats — event
//! publishing (`eventType`) or feedback notifications (`notificationType`). Every field a test
//! does not set has a plausible value, so a test names only what it is about.
//!
//! ```ignore
//! let bounce = SesEvent::bounce("m1").to(["a@example.com"]).tagged("primary", "bulk").published();
//! ```

#![allow(dead_code)] // each test binary uses its own part of the kit

use serde_json::{Map, Value, json};

/// What happened to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SES accepted it (event publishing only).
    Send,
    /// The receiver took it.
    Delivery,
    /// The receiver refused it.
    Bounce,
    /// The recipient called it spam.
    Complaint,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Send => "Send",
            Kind::Delivery => "Delivery",
            Kind::Bounce => "Bounce",
            Kind::Complaint => "Complaint",
        }
    }

    /// The key of the kind's own object: `send`, `delivery`, `bounce`, `complaint`.
    fn key(self) -> &'static str {
        match self {
            Kind::Send => "send",
            Kind::Delivery => "delivery",
            Kind::Bounce => "bounce",
            Kind::Complaint => "complaint",
        }
    }
}

/// An SES event about one message, built field by field.
#[derive(Debug, Clone)]
pub struct SesEvent {
    kind: Kind,
    mail: Map<String, Value>,
    body: Map<String, Value>,
    recipients: Vec<String>,
    destination: Option<Vec<String>>,
    status: Option<String>,
    diagnostic: Option<String>,
}

impl SesEvent {
    fn new(kind: Kind, message_id: &str) -> Self {
        let mail = json!({
            "messageId": message_id,
            "timestamp": "2026-11-20T10:00:00.000Z",
            "source": "sender@example.com",
            "sendingAccountId": "111111111111",
        });
        let body = match kind {
            Kind::Send => json!({}),
            Kind::Delivery => {
                json!({"timestamp": "2026-11-20T10:00:10.000Z", "smtpResponse": "250 ok"})
            }
            Kind::Bounce => json!({"bounceType": "Permanent", "bounceSubType": "General",
                                   "feedbackId": format!("fb-{message_id}"),
                                   "timestamp": "2026-11-20T10:00:30.000Z"}),
            Kind::Complaint => json!({"feedbackId": format!("fb-{message_id}"),
                                      "complaintFeedbackType": "abuse",
                                      "timestamp": "2026-11-20T10:05:00.000Z"}),
        };
        Self {
            kind,
            mail: object(mail),
            body: object(body),
            recipients: vec!["someone@example.com".to_owned()],
            destination: None,
            status: None,
            diagnostic: None,
        }
    }

    /// SES accepted `message_id` (event publishing's Send event).
    pub fn send(message_id: &str) -> Self {
        Self::new(Kind::Send, message_id)
    }

    /// `message_id` was delivered.
    pub fn delivery(message_id: &str) -> Self {
        Self::new(Kind::Delivery, message_id)
    }

    /// `message_id` bounced, permanently (`Permanent`/`General`) unless told otherwise.
    pub fn bounce(message_id: &str) -> Self {
        Self::new(Kind::Bounce, message_id)
    }

    /// A recipient of `message_id` complained (`abuse`).
    pub fn complaint(message_id: &str) -> Self {
        Self::new(Kind::Complaint, message_id)
    }

    /// The recipients the event is about: the mail's destination, and the bounced, delivered
    /// or complaining recipients.
    pub fn to<S: Into<String>>(mut self, recipients: impl IntoIterator<Item = S>) -> Self {
        self.recipients = recipients.into_iter().map(Into::into).collect();
        self
    }

    /// The mail's destination when it differs from the recipients the event is about (a
    /// bounce of some recipients of a larger mail).
    pub fn destination<S: Into<String>>(mut self, all: impl IntoIterator<Item = S>) -> Self {
        self.destination = Some(all.into_iter().map(Into::into).collect());
        self
    }

    /// The tags sesguard sets on what it sends: the account and the stream.
    pub fn tagged(self, account: &str, stream: &str) -> Self {
        self.tag("sesguard-account", account)
            .tag("sesguard-stream", stream)
    }

    /// One mail tag.
    pub fn tag(mut self, name: &str, value: &str) -> Self {
        let tags = self
            .mail
            .entry("tags")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("tags are an object");
        tags.insert(name.to_owned(), json!([value]));
        self
    }

    /// Every tag of `tags` (what an outgoing mail carries).
    pub fn tags<K: AsRef<str>, V: AsRef<str>>(
        self,
        tags: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        tags.into_iter().fold(self, |event, (name, value)| {
            event.tag(name.as_ref(), value.as_ref())
        })
    }

    /// When the mail was sent (RFC 3339).
    pub fn sent_at(mut self, at: &str) -> Self {
        self.mail.insert("timestamp".into(), json!(at));
        self
    }

    /// When the delivery, bounce or complaint happened (RFC 3339).
    pub fn at(mut self, at: &str) -> Self {
        self.body.insert("timestamp".into(), json!(at));
        self
    }

    /// The sender's address.
    pub fn source(mut self, from: &str) -> Self {
        self.mail.insert("source".into(), json!(from));
        self
    }

    /// The bounce's or complaint's feedback id.
    pub fn feedback_id(mut self, id: &str) -> Self {
        self.body.insert("feedbackId".into(), json!(id));
        self
    }

    /// A bounce of this type and subtype (`Transient`, `MailboxFull`).
    pub fn bounce_type(mut self, kind: &str, subtype: &str) -> Self {
        self.body.insert("bounceType".into(), json!(kind));
        self.body.insert("bounceSubType".into(), json!(subtype));
        self
    }

    /// The DSN status of each bounced recipient (`5.1.1`).
    pub fn status(mut self, status: &str) -> Self {
        self.status = Some(status.to_owned());
        self
    }

    /// The receiving server's diagnostic of each bounced recipient.
    pub fn diagnostic(mut self, text: &str) -> Self {
        self.diagnostic = Some(text.to_owned());
        self
    }

    /// The receiving server's reply to a delivery (`250 2.0.0 OK ... - gsmtp`).
    pub fn smtp_response(mut self, text: &str) -> Self {
        self.body.insert("smtpResponse".into(), json!(text));
        self
    }

    /// The complaint's feedback type (`abuse`, `not-spam`).
    pub fn feedback_type(mut self, kind: &str) -> Self {
        self.body
            .insert("complaintFeedbackType".into(), json!(kind));
        self
    }

    fn assembled(&self) -> (Map<String, Value>, Map<String, Value>) {
        let mut mail = self.mail.clone();
        let destination = self.destination.as_ref().unwrap_or(&self.recipients);
        mail.insert("destination".into(), json!(destination));
        let mut body = self.body.clone();
        let recipients = &self.recipients;
        match self.kind {
            Kind::Send => {}
            Kind::Delivery => {
                body.insert("recipients".into(), json!(recipients));
            }
            Kind::Bounce => {
                let bounced: Vec<Value> = recipients
                    .iter()
                    .map(|address| {
                        let mut recipient = json!({"emailAddress": address});
                        if let Some(status) = &self.status {
                            recipient["status"] = json!(status);
                        }
                        if let Some(diagnostic) = &self.diagnostic {
                            recipient["diagnosticCode"] = json!(diagnostic);
                        }
                        recipient
                    })
                    .collect();
                body.insert("bouncedRecipients".into(), json!(bounced));
            }
            Kind::Complaint => {
                let complained: Vec<Value> = recipients
                    .iter()
                    .map(|address| json!({"emailAddress": address}))
                    .collect();
                body.insert("complainedRecipients".into(), json!(complained));
            }
        }
        (mail, body)
    }

    /// The event as event publishing writes it (`eventType`), what a configuration set's
    /// event destination sends.
    pub fn published(&self) -> Value {
        let (mail, body) = self.assembled();
        json!({"eventType": self.kind.name(), "mail": mail, self.kind.key(): body})
    }

    /// The event as a feedback notification (`notificationType`), what an identity's
    /// notification topic sends. There is no Send notification: a Send is published only.
    pub fn notification(&self) -> Value {
        assert_ne!(self.kind, Kind::Send, "SES sends no Send notification");
        let (mail, body) = self.assembled();
        json!({"notificationType": self.kind.name(), "mail": mail, self.kind.key(): body})
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built from an object literal"),
    }
}
