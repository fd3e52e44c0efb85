//! The send request parser: any body a caller puts on the send queue, and what the sender
//! derives from an accepted one (its identity as an SES tag, its content key, its routing draw).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesguard::domain::sending::request::SendRequest;
use sesguard::domain::sending::routing;
use sesguard::domain::sending::send_record::SendKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = SendRequest::parse(text) {
        let key = request.send_key("fuzz-message");
        assert_eq!(SendKey::from_tag(key.as_str()), Some(key.clone()));
        let draw = routing::draw(&request.content_key().unwrap_or_else(|| key.to_string()));
        assert!((0.0..1.0).contains(&draw));
        let _ = request.recipients().count();
    }
});
