//! The SES notification parser in every wrapper the ingest path accepts (raw SES JSON, an SNS
//! envelope, an SNS or SQS Lambda event) and the assessment of what it means for the store.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesguard::app::ingest::Inbound;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::feedback::attribution::AccountDirectory;
use sesguard::domain::feedback::notification::Notification;
use sesguard::domain::feedback::plan::{self, SimulatorFeedback};
use sesguard::domain::sns::unwrap::Content;
use sesguard::lambda::ingest::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Timestamp::from_millis(1_795_179_600_000);
    let directory = AccountDirectory::new(Vec::new());
    let assess = |notification: &Notification| {
        for simulator in [SimulatorFeedback::Ignore, SimulatorFeedback::Count] {
            let _ = plan::assess(notification, &directory, simulator, now);
        }
    };
    if let Ok(notification) = Notification::parse(text) {
        let _ = notification.event_time();
        assess(&notification);
    }
    if let Ok(value) = serde_json::from_str(text) {
        let (_, records): (_, Vec<Inbound>) = decode(value, "fuzz");
        for record in records {
            if let Ok(Content::Notification(notification)) = record.content {
                assess(&notification);
            }
        }
    }
});
