//! The send request parser: any body a caller puts on the send queue, and what the sender
//! derives from an accepted one (its duplicate key, routing draw and outgoing mail).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesguard::domain::sending::request::SendRequest;
use sesguard::domain::sending::routing;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = SendRequest::parse(text) {
        let key = request.duplicate_key();
        let draw = routing::draw(&key);
        assert!((0.0..1.0).contains(&draw));
        let _ = request.recipients().count();
    }
});
