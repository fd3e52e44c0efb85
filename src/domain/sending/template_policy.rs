//! Template policy: templates that must not be sent at all (the quick way to shed load in an
//! incident), and templates that may only go to recipients the application has verified.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The template lists, changed at run time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatePolicy {
    /// Never sent.
    pub blocked: BTreeSet<String>,
    /// Sent only when the request says `recipient_verified`.
    pub verified_only: BTreeSet<String>,
}

impl TemplatePolicy {
    /// Why a message with `template` may not go, or `None` when it may.
    pub fn refusal(&self, template: Option<&str>, recipient_verified: bool) -> Option<String> {
        let template = template?;
        if self.blocked.contains(template) {
            return Some(format!("template `{template}` is blocked"));
        }
        if self.verified_only.contains(template) && !recipient_verified {
            return Some(format!(
                "template `{template}` may only go to verified recipients"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_templates_never_go_and_verified_only_ones_need_a_verified_recipient() {
        let policy = TemplatePolicy {
            blocked: ["newsletter".to_owned()].into(),
            verified_only: ["receipt".to_owned()].into(),
        };
        assert_eq!(
            policy.refusal(Some("newsletter"), true).as_deref(),
            Some("template `newsletter` is blocked")
        );
        assert_eq!(
            policy.refusal(Some("receipt"), false).as_deref(),
            Some("template `receipt` may only go to verified recipients")
        );
        assert_eq!(policy.refusal(Some("receipt"), true), None);
        assert_eq!(policy.refusal(Some("welcome"), false), None);
        assert_eq!(
            policy.refusal(None, false),
            None,
            "inline content has no template"
        );
    }
}
