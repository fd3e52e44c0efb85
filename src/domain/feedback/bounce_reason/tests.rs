//! Tests of [`super`]: the order in which evidence decides, the codes read, and that every
//! rule of the table can decide.

use super::*;

fn verdict(bounce_type: BounceType, sub_type: &str, status: &str, diagnostic: &str) -> Verdict {
    classify(BounceFacts {
        bounce_type,
        sub_type,
        status: (!status.is_empty()).then_some(status),
        diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
    })
}

fn permanent(status: &str, diagnostic: &str) -> Verdict {
    verdict(BounceType::Permanent, "General", status, diagnostic)
}

#[test]
fn the_diagnostic_outranks_the_status_and_the_subtype() {
    let v = verdict(
        BounceType::Permanent,
        "NoEmail",
        "5.1.1",
        "smtp; 554 5.7.1 Client host rejected: blocked using zen.spamhaus.org",
    );
    assert_eq!(v.reason, BounceReason::Blocked);
    assert_eq!(v.class, BounceClass::Sender);
    assert!(matches!(
        v.evidence,
        Evidence::Phrase {
            phrase: "blocked using",
            ..
        }
    ));
}

#[test]
fn the_ses_suppression_lists_win_over_everything() {
    for sub_type in ["Suppressed", "OnAccountSuppressionList"] {
        let v = verdict(BounceType::Permanent, sub_type, "5.7.1", "blocked using x");
        assert_eq!(
            (v.reason, v.evidence),
            (BounceReason::Suppressed, Evidence::SesSubtype)
        );
        assert_eq!(v.class, BounceClass::Address);
    }
}

#[test]
fn a_provider_code_outranks_a_generic_phrase() {
    let v = permanent(
        "5.4.1",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
    );
    assert!(matches!(
        v.evidence,
        Evidence::Phrase {
            phrase: "AS(201806281)",
            ..
        }
    ));
    assert_eq!(v.reason, BounceReason::UserUnknown);
}

#[test]
fn without_a_phrase_the_status_decides_then_the_subtype_then_the_reply_code() {
    assert_eq!(
        permanent("5.2.2", "smtp; 552 nope").reason,
        BounceReason::MailboxFull
    );
    assert_eq!(
        permanent("5.2.2", "smtp; 552 nope").evidence,
        Evidence::Status
    );
    // No status field: the code written in the diagnostic.
    assert_eq!(
        permanent("", "smtp; 550 5.7.26 nope").reason,
        BounceReason::Authentication
    );
    // A status that says nothing falls back to the code in the text.
    assert_eq!(
        permanent("5.0.0", "550-5.1.1 nope").reason,
        BounceReason::UserUnknown
    );
    let v = verdict(BounceType::Permanent, "NoEmail", "5.0.0", "550 nope");
    assert_eq!(
        (v.reason, v.evidence),
        (BounceReason::UserUnknown, Evidence::SesSubtype)
    );
    let v = permanent("", "smtp; 552 nope");
    assert_eq!(
        (v.reason, v.evidence),
        (BounceReason::MailboxFull, Evidence::ReplyCode)
    );
    let v = permanent("", "smtp; 550 nope");
    assert_eq!(
        (v.reason, v.evidence),
        (BounceReason::Undetermined, Evidence::Nothing)
    );
}

#[test]
fn undetermined_follows_the_ses_type_and_every_other_reason_has_one_class() {
    assert_eq!(
        BounceReason::Undetermined.class(BounceType::Permanent),
        BounceClass::Address
    );
    for other in [BounceType::Transient, BounceType::Undetermined] {
        assert_eq!(
            BounceReason::Undetermined.class(other),
            BounceClass::Temporary
        );
    }
    for reason in BounceReason::ALL
        .into_iter()
        .filter(|r| *r != BounceReason::Undetermined)
    {
        assert_eq!(
            reason.class(BounceType::Permanent),
            reason.class(BounceType::Transient),
            "{reason}"
        );
    }
}

#[test]
fn enhanced_status_codes_are_read_strictly() {
    let code = |t| EnhancedStatus::parse(t).map(|s| (s.class, s.subject, s.detail));
    assert_eq!(code("5.1.1"), Some((5, 1, 1)));
    assert_eq!(code(" 4.7.606 "), Some((4, 7, 606)));
    for bad in [
        "", "5.1", "5.1.1.1", "3.1.1", "5..1", "5.1.1x", "5.1234.1", "a.b.c",
    ] {
        assert_eq!(code(bad), None, "{bad:?}");
    }
    let found = |t| EnhancedStatus::find(t).map(|s| (s.class, s.subject, s.detail));
    assert_eq!(found("550-5.7.26 Unauthenticated"), Some((5, 7, 26)));
    assert_eq!(found("421 4.4.2 (timeout)"), Some((4, 4, 2)));
    assert_eq!(found("550 user unknown"), None);
}

#[test]
fn reply_codes_are_read_after_an_optional_smtp_prefix() {
    assert_eq!(reply_code("smtp; 552 full"), Some(552));
    assert_eq!(reply_code("SMTP;551 moved"), Some(551));
    assert_eq!(reply_code("  553 bad"), Some(553));
    assert_eq!(reply_code("smtp;"), None);
    assert_eq!(reply_code("5x0 nope"), None);
    assert_eq!(reply_code("é"), None);
}

#[test]
fn every_rule_can_win_and_names_its_source() {
    for (i, rule) in RULES.iter().enumerate() {
        assert!(!rule.source.is_empty());
        let diagnostic = format!("550 {}", rule.phrase.to_uppercase());
        let winner = matched_rule(&diagnostic).expect("matches");
        // A rule shadowed by an earlier one whose phrase it contains would never decide.
        assert!(
            std::ptr::eq(winner, rule) || winner.reason == rule.reason,
            "rule {i} `{}` is shadowed by `{}` with another reason",
            rule.phrase,
            winner.phrase
        );
    }
}

#[test]
fn reason_names_round_trip() {
    for reason in BounceReason::ALL {
        assert_eq!(reason.as_str().parse::<BounceReason>(), Ok(reason));
    }
    assert!("nope".parse::<BounceReason>().is_err());
}
