//! What the simulation's bad addresses are: the kinds of address that bounce, each drawn with
//! its share, and a sample address of each kind that the real prevention checks judge (the
//! DNS answers are the simulation's: its dead domains do not exist, its live one takes mail).
//! Four kinds can be known dead before sending; a mailbox that does not exist at a live
//! domain cannot.

use crate::domain::common::address::EmailAddress;
use crate::domain::sending::prevention::{Dns, MailDomain};

/// A kind of bad address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BadKind {
    /// The domain does not exist (a shop that closed, a made-up domain).
    DeadDomain,
    /// A large provider's domain mistyped (`gmial.com`).
    Typo,
    /// A local part the provider never issues (`jo@gmail.com`).
    ImpossibleLocalPart,
    /// A throw-away service.
    Disposable,
    /// No such mailbox at a live domain: only the receiving server knows.
    NoMailbox,
}

impl BadKind {
    /// Every kind, in the order `--bad-mix` lists them.
    pub const ALL: [BadKind; 5] = [
        BadKind::DeadDomain,
        BadKind::Typo,
        BadKind::ImpossibleLocalPart,
        BadKind::Disposable,
        BadKind::NoMailbox,
    ];

    /// Its name in `--bad-mix` and the reports.
    pub fn name(self) -> &'static str {
        match self {
            BadKind::DeadDomain => "dead",
            BadKind::Typo => "typo",
            BadKind::ImpossibleLocalPart => "local",
            BadKind::Disposable => "disposable",
            BadKind::NoMailbox => "mailbox",
        }
    }

    /// The `n`th sample address of this kind, and what DNS says of its domain.
    pub fn sample(self, n: u64) -> (EmailAddress, Dns) {
        const TYPOS: [&str; 5] = [
            "gmial.com",
            "gmail.con",
            "hotmial.com",
            "yahooo.com",
            "outlok.com",
        ];
        const THROWAWAY: [&str; 3] = ["mailinator.com", "guerrillamail.com", "yopmail.com"];
        let pick = |list: &[&'static str]| list[(n % list.len() as u64) as usize];
        let dead = Dns::Known(MailDomain::NoSuchDomain);
        let (text, dns) = match self {
            BadKind::DeadDomain => (format!("user{n}@shop-{}.dead.example", n % 997), dead),
            BadKind::Typo => (format!("jane.doe{n}@{}", pick(&TYPOS)), dead),
            BadKind::ImpossibleLocalPart => (format!("j{}@gmail.com", n % 100), Dns::NotNeeded),
            BadKind::Disposable => (format!("x{n}@{}", pick(&THROWAWAY)), Dns::NotNeeded),
            BadKind::NoMailbox => (
                format!("left{n}@shop.example"),
                Dns::Known(MailDomain::Receives),
            ),
        };
        (
            EmailAddress::parse(&text).expect("sample addresses are valid"),
            dns,
        )
    }
}

/// The share of each kind among bad addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct BadMix(Vec<(BadKind, f64)>);

impl Default for BadMix {
    /// An assumed mix, not a measured one: no public source gives the kinds of bad addresses
    /// behind a sign-up form's bounces. Dead domains 20 %, typos 15 %, impossible local parts
    /// 5 %, throw-away services 20 %, missing mailboxes at live domains 40 %.
    fn default() -> Self {
        Self(vec![
            (BadKind::DeadDomain, 0.20),
            (BadKind::Typo, 0.15),
            (BadKind::ImpossibleLocalPart, 0.05),
            (BadKind::Disposable, 0.20),
            (BadKind::NoMailbox, 0.40),
        ])
    }
}

impl BadMix {
    /// `dead=20,typo=15,local=5,disposable=20,mailbox=40` (percent; the kinds left out are 0,
    /// the rest must add up to 100).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut shares = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected KIND=PERCENT"))?;
            let kind = BadKind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = BadKind::ALL.iter().map(|k| k.name()).collect();
                    format!("no kind `{name}`: one of {}", names.join(", "))
                })?;
            let share: f64 = share
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| (0.0..=100.0).contains(s))
                .ok_or_else(|| format!("`{part}`: the share is a percentage, 0 to 100"))?;
            shares.push((kind, share / 100.0));
        }
        let total: f64 = shares.iter().map(|(_, s)| s).sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(format!(
                "the shares add up to {:.1} %, not 100 %",
                total * 100.0
            ));
        }
        Ok(Self(shares))
    }

    /// The kind a uniform draw in `0..1` lands on.
    pub fn kind(&self, draw: f64) -> BadKind {
        let mut left = draw;
        for (kind, share) in &self.0 {
            if left < *share {
                return *kind;
            }
            left -= share;
        }
        self.0.last().map_or(BadKind::NoMailbox, |(k, _)| *k)
    }

    /// The share prevention can catch: every kind but missing mailboxes.
    pub fn catchable(&self) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| *k != BadKind::NoMailbox)
            .map(|(_, s)| s)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sending::prevention::Prevention;

    #[test]
    fn every_kind_but_a_missing_mailbox_is_caught_by_the_real_checks() {
        let prevention = Prevention::default();
        for kind in BadKind::ALL {
            for n in 0..20 {
                let (address, dns) = kind.sample(n);
                let caught = !prevention.check(&address, dns).deliverable;
                assert_eq!(caught, kind != BadKind::NoMailbox, "{kind:?} {address}");
            }
        }
    }

    #[test]
    fn a_mix_reads_its_shares_and_draws_each_kind_in_proportion() {
        let mix = BadMix::parse("dead=50,mailbox=50").unwrap();
        assert_eq!(mix.kind(0.2), BadKind::DeadDomain);
        assert_eq!(mix.kind(0.7), BadKind::NoMailbox);
        assert!((mix.catchable() - 0.5).abs() < 1e-9);
        assert!((BadMix::default().catchable() - 0.6).abs() < 1e-9);
        for (spec, says) in [
            ("dead=50", "add up to 50.0 %"),
            ("ghost=100", "no kind `ghost`"),
            ("dead=x,mailbox=100", "percentage"),
            ("dead", "KIND=PERCENT"),
        ] {
            let error = BadMix::parse(spec).unwrap_err();
            assert!(error.contains(says), "{spec}: {error}");
        }
    }
}
