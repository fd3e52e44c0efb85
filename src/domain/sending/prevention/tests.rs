//! Prevention's unit tests: one per reason, the DNS answers, the typo table and the rules.

use super::*;

fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("a valid address")
}

fn check(raw: &str, dns: Dns) -> Check {
    Prevention::default().check(&address(raw), dns)
}

#[test]
fn a_dead_domain_is_no_such_domain_or_no_mail_domain_as_dns_says() {
    let nx = check(
        "jane@dead-shop.example",
        Dns::Known(MailDomain::NoSuchDomain),
    );
    assert!(!nx.deliverable);
    assert_eq!(nx.reason, Some(Undeliverable::NoSuchDomain));
    assert_eq!(nx.suggestion, None);
    let null_mx = check("jane@parked.example", Dns::Known(MailDomain::NoMailDomain));
    assert_eq!(null_mx.reason, Some(Undeliverable::NoMailDomain));
    assert!(null_mx.detail.contains("null MX"), "{}", null_mx.detail);
}

#[test]
fn a_live_or_unknown_domain_is_deliverable() {
    let live = check("jane@shop.example", Dns::Known(MailDomain::Receives));
    assert!(live.deliverable);
    assert_eq!(live.reason, None);
    let unknown = check("jane@shop.example", Dns::Unknown);
    assert!(unknown.deliverable, "prevention fails open");
    assert!(unknown.detail.contains("fails open"));
}

#[test]
fn a_dead_domain_near_a_large_providers_is_a_typo_with_its_suggestion() {
    for (typed, meant) in [
        ("gmial.com", "gmail.com"),
        ("gmail.con", "gmail.com"),
        ("hotmial.com", "hotmail.com"),
        ("yahooo.com", "yahoo.com"),
        ("outlok.com", "outlook.com"),
        ("iclould.com", "icloud.com"),
    ] {
        let typo = check(
            &format!("jane.doe@{typed}"),
            Dns::Known(MailDomain::NoSuchDomain),
        );
        assert_eq!(typo.reason, Some(Undeliverable::TypoDomain), "{typed}");
        assert_eq!(typo.suggestion.as_deref(), Some(meant), "{typed}");
    }
}

#[test]
fn a_typo_domain_that_takes_mail_is_sent_to_but_still_suggested() {
    let squatted = check("jane.doe@gmsil.com", Dns::Known(MailDomain::Receives));
    assert!(squatted.deliverable);
    assert_eq!(squatted.suggestion.as_deref(), Some("gmail.com"));
    // A squatted typo on the throw-away list is refused as the typo it is.
    let listed = check("jane.doe@gmial.com", Dns::NotNeeded);
    assert_eq!(listed.reason, Some(Undeliverable::TypoDomain));
    assert_eq!(listed.suggestion.as_deref(), Some("gmail.com"));
}

#[test]
fn typo_suggestions_leave_providers_own_and_distant_domains_alone() {
    assert_eq!(typo_of("gmail.com"), None);
    assert_eq!(typo_of("mail.com"), None, "a provider's own domain");
    assert_eq!(typo_of("example.com"), None);
    assert_eq!(typo_of("gm.com"), None);
    // `me.com` is under 7 characters: `mo.com` is not taken for it.
    assert_eq!(typo_of("mo.com"), None);
    // Two edits only for long domains.
    assert_eq!(typo_of("gmaail.con"), None);
    assert_eq!(typo_of("hotmail.co.ukk"), Some("hotmail.co.uk"));
    assert_eq!(typo_of("hotmaill.co.ukk"), Some("hotmail.co.uk"));
}

#[test]
fn an_impossible_local_part_is_refused_without_dns() {
    let prevention = Prevention::default();
    for raw in [
        "abc@gmail.com",                                  // 3 characters: Gmail takes 6 to 30
        "j.o.h.n.x@gmail.com",                            // 5 once the periods go
        "jane_doe@gmail.com",                             // `_` is not a Gmail character
        "a23456789012345678901234567890x@googlemail.com", // 31
        "1jane@yahoo.com",                                // Yahoo IDs start with a letter
        "abc@yahoo.com",                                  // under 4
        "jane+news@yahoo.com",                            // Yahoo has no `+` addresses
        "_jane@outlook.com",                              // starts with a letter
        "ab@icloud.com",                                  // under 3
    ] {
        let address = address(raw);
        assert_eq!(prevention.domain_to_resolve(&address), None, "{raw}");
        let checked = prevention.check(&address, Dns::NotNeeded);
        assert_eq!(
            checked.reason,
            Some(Undeliverable::ImpossibleLocalPart),
            "{raw}"
        );
    }
}

#[test]
fn possible_local_parts_at_the_providers_pass() {
    for raw in [
        "jane.doe@gmail.com",
        "j.a.n.e.d.o@gmail.com",
        "janedoe+news@gmail.com", // the tag is not the username
        "jane_doe-shop@yahoo.com",
        "jane.doe+orders@outlook.com",
        "jane@icloud.com",
        "a@me.com", // older Apple addresses predate the iCloud rule
        "x@example.com",
    ] {
        let checked = check(raw, Dns::NotNeeded);
        assert!(checked.deliverable, "{raw}: {}", checked.detail);
    }
}

#[test]
fn a_throw_away_domain_and_its_subdomains_are_disposable() {
    assert!(disposable_domains() > 10_000, "the list is loaded");
    let prevention = Prevention::default();
    for raw in [
        "who@mailinator.com",
        "who@sub.mailinator.com",
        "who@guerrillamail.com",
    ] {
        let address = address(raw);
        assert_eq!(prevention.domain_to_resolve(&address), None, "{raw}");
        assert_eq!(
            prevention.check(&address, Dns::NotNeeded).reason,
            Some(Undeliverable::Disposable),
            "{raw}"
        );
    }
}

#[test]
fn an_allowed_domain_is_never_judged() {
    let prevention = Prevention::new(["mailinator.com".to_owned()]);
    let address = address("qa@mailinator.com");
    assert_eq!(prevention.domain_to_resolve(&address), None);
    assert!(prevention.check(&address, Dns::NotNeeded).deliverable);
    let sub = EmailAddress::parse("qa@team.mailinator.com").expect("valid");
    assert!(prevention.check(&sub, Dns::NotNeeded).deliverable);
}

#[test]
fn only_domains_left_undecided_need_dns() {
    let prevention = Prevention::default();
    let shop = address("jane@shop.example");
    assert_eq!(prevention.domain_to_resolve(&shop), Some("shop.example"));
    assert_eq!(
        prevention.domain_to_resolve(&address("jane.doe@gmail.com")),
        None
    );
    assert_eq!(
        prevention.domain_to_resolve(&address("jane.doe@gmsil.com")),
        Some("gmsil.com")
    );
}

#[test]
fn reasons_and_answers_round_trip_their_names() {
    for reason in Undeliverable::ALL {
        assert_eq!(Undeliverable::parse(reason.name()), Some(reason));
        assert_eq!(serde_json::to_value(reason).expect("json"), reason.name());
    }
    for answer in [
        MailDomain::Receives,
        MailDomain::NoSuchDomain,
        MailDomain::NoMailDomain,
    ] {
        assert_eq!(MailDomain::parse(answer.name()), Some(answer));
    }
}

#[test]
fn every_rule_names_its_source_and_a_sane_length() {
    for rule in local_parts::LOCAL_PART_RULES {
        assert!(rule.source.len() > 40, "{}", rule.provider);
        assert!(
            rule.min >= 1 && rule.min <= rule.max && rule.max <= 64,
            "{}",
            rule.provider
        );
        for domain in rule.domains {
            assert!(
                consumer(domain),
                "{domain} is a provider domain in the table"
            );
        }
    }
}

proptest::proptest! {
    /// The bag distance never exceeds the edit distance: a domain it skips is truly far.
    #[test]
    fn the_bag_distance_is_a_lower_bound(a in "[ab.c]{0,9}", b in "[ab.c]{0,9}") {
        proptest::prop_assert!(bag_distance(a.as_bytes(), b.as_bytes()) <= strsim::osa_distance(&a, &b));
    }

    /// `one_edit` agrees with the optimal string alignment distance being exactly 1.
    #[test]
    fn one_edit_is_an_edit_distance_of_one(a in "[ab.]{0,7}", b in "[ab.]{0,7}") {
        proptest::prop_assert_eq!(
            one_edit(a.as_bytes(), b.as_bytes()),
            strsim::osa_distance(&a, &b) == 1,
            "{} / {}", a, b
        );
    }
}
