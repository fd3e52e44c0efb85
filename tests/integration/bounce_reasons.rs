//! The classifier against a collection of real-shaped diagnostics (`tests/data/
//! bounce-diagnostics.tsv`): every line's reason and class as a person reading it would say.

use sesguard::domain::feedback::bounce_reason::{BounceFacts, classify};
use sesguard::domain::feedback::notification::BounceType;

const CORPUS: &str = include_str!("../data/bounce-diagnostics.tsv");

fn bounce_type(name: &str) -> BounceType {
    match name {
        "Permanent" => BounceType::Permanent,
        "Transient" => BounceType::Transient,
        _ => BounceType::Undetermined,
    }
}

fn present(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

#[test]
fn every_collected_diagnostic_gets_its_expected_reason_and_class() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (number, line) in CORPUS.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(6, '\t').collect();
        let [kind, sub_type, status, reason, class, diagnostic] = fields[..] else {
            panic!("line {}: six tab-separated fields expected", number + 1);
        };
        let verdict = classify(BounceFacts {
            bounce_type: bounce_type(kind),
            sub_type,
            status: present(status),
            diagnostic: present(diagnostic),
        });
        checked += 1;
        if (verdict.reason.as_str(), verdict.class.as_str()) != (reason, class) {
            wrong.push(format!(
                "line {}: {reason}/{class} expected, got {}/{} ({:?}): {diagnostic}",
                number + 1,
                verdict.reason,
                verdict.class,
                verdict.evidence
            ));
        }
    }
    assert!(checked >= 100, "only {checked} diagnostics collected");
    assert!(
        wrong.is_empty(),
        "{} of {checked} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
