//! What the largest mailbox providers accept before the `@`: each provider's published rules
//! for the addresses it hands out, kept as data with their source. An address that breaks
//! them cannot be a mailbox there — nobody could have signed up for it. Only rules a provider
//! states for every address it issues are here; where older accounts may predate a rule (Apple's
//! `me.com` and `mac.com`), the domain is left out. Pure.

/// One provider's rules for the local part (the text before `@`, lower-cased).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPartRule {
    /// The provider's domains the rule applies to.
    pub domains: &'static [&'static str],
    /// The provider, as counters name it.
    pub provider: &'static str,
    /// Fewest characters, counted as `counted` says.
    pub min: usize,
    /// Most characters.
    pub max: usize,
    /// Characters allowed beside `a-z` and `0-9`.
    pub punctuation: &'static str,
    /// The sub-address separator the provider delivers through (`+` at Gmail): what follows it
    /// is a tag the mailbox ignores, and the rules apply to what comes before.
    pub tag: Option<char>,
    /// Whether periods are left out of the length (Gmail ignores them).
    pub dots_free: bool,
    /// Whether the first character must be a letter.
    pub starts_with_letter: bool,
    /// Where the rule is published.
    pub source: &'static str,
}

/// The rules, one per provider.
pub const LOCAL_PART_RULES: &[LocalPartRule] = &[
    LocalPartRule {
        domains: &["gmail.com", "googlemail.com"],
        provider: "google",
        min: 6,
        max: 30,
        punctuation: ".",
        tag: Some('+'),
        dots_free: true,
        starts_with_letter: false,
        source: "Google Account Help, \"Create a Gmail address\": usernames are 6-30 characters of \
                 letters, numbers and periods; periods do not count (support.google.com/mail/answer/9211434)",
    },
    LocalPartRule {
        domains: &[
            "yahoo.com",
            "yahoo.co.uk",
            "yahoo.fr",
            "yahoo.de",
            "yahoo.it",
            "yahoo.es",
            "yahoo.ca",
            "ymail.com",
            "rocketmail.com",
        ],
        provider: "yahoo",
        min: 4,
        max: 32,
        // `-` joins a disposable address's base name and keyword (Yahoo Mail's own aliases).
        punctuation: "._-",
        tag: None,
        dots_free: false,
        starts_with_letter: true,
        source: "Yahoo Help, \"Yahoo ID requirements\": 4-32 characters, starting with a letter; letters, \
                 numbers, underscores and one period; `-` in Yahoo's disposable addresses",
    },
    LocalPartRule {
        domains: &[
            "outlook.com",
            "hotmail.com",
            "hotmail.co.uk",
            "hotmail.fr",
            "hotmail.de",
            "hotmail.it",
            "hotmail.es",
            "live.com",
            "live.co.uk",
            "live.fr",
            "outlook.fr",
            "outlook.de",
        ],
        provider: "microsoft",
        min: 1,
        max: 64,
        punctuation: "._-",
        tag: Some('+'),
        dots_free: false,
        starts_with_letter: true,
        source: "Microsoft Support, \"Create a new Outlook.com email address\": letters, numbers, periods, \
                 underscores and hyphens, starting with a letter; `+` aliases are delivered",
    },
    LocalPartRule {
        domains: &["icloud.com"],
        provider: "apple",
        min: 3,
        max: 20,
        punctuation: "._",
        tag: Some('+'),
        dots_free: false,
        starts_with_letter: true,
        source: "Apple Support, \"Create a primary email address for iCloud Mail\": 3-20 characters, \
                 starting with a letter; letters, numbers, periods and underscores; `+` sub-addresses are delivered",
    },
];

impl LocalPartRule {
    /// The rule `domain` (lower-cased) is under, if any.
    pub fn of(domain: &str) -> Option<&'static LocalPartRule> {
        LOCAL_PART_RULES
            .iter()
            .find(|r| r.domains.contains(&domain))
    }

    /// What is wrong with `local` (lower-cased) under this rule; `None` when it could be a
    /// mailbox.
    pub fn breach(&self, local: &str) -> Option<String> {
        let name = match self.tag {
            Some(tag) => local.split(tag).next().unwrap_or(local),
            None => local,
        };
        if let Some(bad) = name.chars().find(|c| {
            !c.is_ascii_lowercase() && !c.is_ascii_digit() && !self.punctuation.contains(*c)
        }) {
            return Some(format!(
                "`{bad}` is not allowed before the @ at {}",
                self.provider
            ));
        }
        if self.starts_with_letter && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Some(format!(
                "an address at {} starts with a letter",
                self.provider
            ));
        }
        let length = if self.dots_free {
            name.chars().filter(|c| *c != '.').count()
        } else {
            name.chars().count()
        };
        if !(self.min..=self.max).contains(&length) {
            return Some(format!(
                "{length} characters before the @; {} takes {} to {}{}",
                self.provider,
                self.min,
                self.max,
                if self.dots_free {
                    ", periods not counted"
                } else {
                    ""
                }
            ));
        }
        None
    }
}
