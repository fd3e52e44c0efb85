//! The SNS envelope parser and verifier: any bytes as a webhook body, and as a body inside the
//! ingest path's unwrapping. Nothing may panic; nothing unsigned may verify.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::sns::delivery::{self, Envelope};
use sesguard::domain::sns::signature::SigningCertificate;
use sesguard::domain::sns::unwrap;

/// A real certificate, so signatures are checked end to end (never valid for fuzzed input).
fn certificate() -> &'static SigningCertificate {
    static CERTIFICATE: OnceLock<SigningCertificate> = OnceLock::new();
    CERTIFICATE.get_or_init(|| {
        SigningCertificate::from_pem(include_bytes!("../certificate.pem")).expect("certificate")
    })
}

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::from_millis(1_795_179_600_000);
    if let Ok(envelope) = Envelope::parse(data) {
        let _ = envelope.string_to_sign();
        let _ = delivery::check_certificate_url(&envelope.signing_cert_url, &envelope.topic_arn, &delivery::SnsOrigin::Aws);
        let _ = delivery::check_age(&envelope.timestamp, now, std::time::Duration::from_secs(3600));
        if let Some(url) = &envelope.subscribe_url {
            let _ = delivery::check_subscribe_url(url, &envelope.topic_arn, &delivery::SnsOrigin::Aws);
        }
        assert!(
            certificate().verify(&envelope).is_err(),
            "a fuzzed envelope verified"
        );
    }
    let _ = SigningCertificate::from_pem(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = unwrap::open(text);
    }
});
