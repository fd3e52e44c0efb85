//! Prevention against a DNS server of known records (`sesguard dns serve`'s zone server on a
//! free port): each kind of answer, each domain asked once and shared through the store (both
//! stores), TTLs and negative caching, the gate refusing and flagging, what bounces teach, and
//! the DNS questions 1,000 unverified sends to 300 domains cost.

use std::sync::Arc;
use std::time::Duration;

use sesguard::adapters::dns::HickoryResolver;
use sesguard::adapters::dns_zone::{Zone, ZoneServer};
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;
use sesguard::app::prevent::Screen;
use sesguard::app::send::{Decision, Queued, Sender, SenderMemory};
use sesguard::config::{DnsServer, PreventMode};
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::sending::prevention::{Dns, MailDomain, Undeliverable};
use sesguard::domain::sending::request::SendRequest;
use sesguard::ports::{DomainResolver, PreventAction, PreventedKey, Store};

use crate::ses_event::SesEvent;
use crate::world::World;

const ZONE: &str = "
negative_ttl 120
shop.example      MX       mx.shop.example 300
web-only.example  A        192.0.2.10      300
v6-only.example   AAAA     2001:db8::10    300
parked.example    NULLMX
slow.example      TIMEOUT
broken.example    SERVFAIL
";

/// A zone server on a free port with `ZONE` and `extra`, and a resolver asking it.
async fn dns(extra: &str) -> (ZoneServer, Arc<dyn DomainResolver>) {
    let zone = Zone::parse(&format!("{ZONE}\n{extra}")).expect("a valid zone");
    let server = ZoneServer::start(zone, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("a free port");
    let resolver =
        HickoryResolver::new(&DnsServer::At(server.address()), Duration::from_millis(300))
            .expect("a resolver")
            .expect("DNS on");
    (server, Arc::new(resolver))
}

fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).unwrap()
}

#[tokio::test]
async fn the_resolver_reads_each_kind_of_answer_and_its_ttl() {
    let (server, resolver) = dns("").await;
    let resolved = |domain: &'static str| {
        let resolver = resolver.clone();
        async move { resolver.resolve(domain).await }
    };
    let mx = resolved("shop.example").await.unwrap();
    assert_eq!(
        (mx.answer, mx.ttl),
        (MailDomain::Receives, Duration::from_secs(300))
    );
    let a_only = resolved("web-only.example").await.unwrap();
    assert_eq!(
        a_only.answer,
        MailDomain::Receives,
        "RFC 5321: the A record takes the mail"
    );
    assert_eq!(
        resolved("v6-only.example").await.unwrap().answer,
        MailDomain::Receives
    );
    assert_eq!(
        resolved("parked.example").await.unwrap().answer,
        MailDomain::NoMailDomain
    );
    let nx = resolved("gone.example").await.unwrap();
    assert_eq!(
        (nx.answer, nx.ttl),
        (MailDomain::NoSuchDomain, Duration::from_secs(120)),
        "a negative answer holds for the SOA minimum"
    );
    let started = std::time::Instant::now();
    let timeout = resolved("slow.example").await.unwrap_err();
    assert!(timeout.detail.contains("timed out"), "{}", timeout.detail);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        resolved("broken.example").await.is_err(),
        "SERVFAIL is no answer"
    );
    assert!(server.queries() >= 7, "every question reached the zone");
}

/// A context over `store` asking `resolver`, with the verification stream refusing.
fn context(store: Arc<dyn Store>, resolver: Arc<dyn DomainResolver>) -> Context {
    World::builder()
        .store(store)
        .build()
        .deps
        .with_resolver(resolver)
}

async fn answers_are_asked_once_and_shared_through_the_store(store: Arc<dyn Store>) {
    let extra: String = (0..50)
        .map(|i| format!("d{i}.example MX mx.d{i}.example 300\n"))
        .collect();
    let (server, resolver) = dns(&extra).await;
    let first = context(store.clone(), resolver.clone());
    let now = first.clock.now();
    let addresses: Vec<EmailAddress> = (0..100)
        .map(|i| address(&format!("user{i}@d{}.example", i % 50)))
        .chain([address("a@gone.example"), address("b@gone.example")])
        .collect();
    let (checks, lookups) = Screen::of(&first).check(&addresses, now).await;
    assert_eq!(
        (lookups.resolved, lookups.unknown),
        (51, 0),
        "each domain once"
    );
    assert_eq!(server.queries(), 51);
    assert!(checks[..100].iter().all(|c| c.deliverable));
    assert_eq!(checks[100].reason, Some(Undeliverable::NoSuchDomain));

    // The same instance asks nothing again; another instance finds the answers in the store.
    let (_, again) = Screen::of(&first).check(&addresses, now).await;
    assert_eq!(again.cached, 51);
    let second = context(store.clone(), resolver.clone());
    let (_, shared) = Screen::of(&second).check(&addresses, now).await;
    assert_eq!((shared.stored, shared.resolved), (51, 0));
    assert_eq!(server.queries(), 51, "no new question");

    // The negative answer runs out first (120 s), the MX answers at their TTL (300 s).
    let third = context(store, resolver);
    let later = now.plus(Duration::from_secs(150));
    let (_, renewed) = Screen::of(&third).check(&addresses, later).await;
    assert_eq!(
        (renewed.stored, renewed.resolved),
        (50, 1),
        "gone.example asked again"
    );
    let (_, expired) = Screen::of(&third)
        .check(&addresses, now.plus(Duration::from_secs(301)))
        .await;
    assert_eq!(
        expired.resolved, 51,
        "the MX answers ran out, and the renewed negative one"
    );
}

#[tokio::test]
async fn answers_are_asked_once_and_shared_through_the_sqlite_store() {
    let (_dir, store) = crate::helpers::sqlite();
    answers_are_asked_once_and_shared_through_the_store(Arc::new(store)).await;
}

#[tokio::test]
async fn answers_are_asked_once_and_shared_through_the_dynamodb_store() {
    let store = crate::helpers::dynamodb().await;
    answers_are_asked_once_and_shared_through_the_store(Arc::new(store)).await;
}

fn queued(id: &str, stream: &str, to: &[&str], verified: bool) -> Queued {
    let json = serde_json::json!({
        "stream": stream, "to": to, "subject": "Confirm your address", "text": "Hello",
        "recipient_verified": verified, "idempotency_key": id,
    });
    Queued::new(
        id,
        SendRequest::parse(&json.to_string()).map_err(|e| e.to_string()),
    )
}

async fn send(deps: &Context, batch: Vec<Queued>) -> Vec<(Decision, Vec<PreventedKey>)> {
    let memory = SenderMemory::default();
    Sender::of(deps, &memory)
        .send(batch, deps.clock.now())
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.decision, j.prevented))
        .collect()
}

#[tokio::test]
async fn the_gate_refuses_or_flags_as_the_stream_says_and_counts_each_reason() {
    let (_server, resolver) = dns("").await;
    let outbox = tempfile::tempdir().unwrap();
    let world = World::builder()
        .configure(|c| {
            c.sender.outbox = outbox.path().to_owned();
            let bulk = c
                .streams
                .iter_mut()
                .find(|s| s.name.as_str() == "bulk")
                .unwrap();
            bulk.prevent = PreventMode::Flag;
            let transactional = c
                .streams
                .iter_mut()
                .find(|s| s.name.as_str() == "transactional")
                .unwrap();
            transactional.prevent = PreventMode::Off;
        })
        .build();
    let deps = world.deps.with_resolver(resolver);
    let judged = send(
        &deps,
        vec![
            // Every recipient dead: not sent, the typo's suggestion returned.
            queued(
                "v1",
                "verification",
                &["jane@gone.example", "jane.doe@gmail.con"],
                false,
            ),
            // One dead of two: sent to the other.
            queued(
                "v2",
                "verification",
                &["ok@shop.example", "x@parked.example"],
                false,
            ),
            // Verified by the application: not checked.
            queued("v3", "verification", &["jane@gone.example"], true),
            // Flagged: sent, and counted.
            queued("v4", "bulk", &["who@mailinator.com"], false),
            // Off: neither.
            queued("v5", "transactional", &["jane@gone.example"], false),
            // No DNS answer: the mail goes.
            queued("v6", "verification", &["late@slow.example"], false),
        ],
    )
    .await;
    let Decision::Undeliverable { reason, suggestion } = &judged[0].0 else {
        panic!("{:?}", judged[0]);
    };
    assert_eq!(suggestion.as_deref(), Some("gmail.com"));
    assert!(
        reason.contains("jane@gone.example: no_such_domain"),
        "{reason}"
    );
    assert!(reason.contains("typo_domain"), "{reason}");
    let Decision::Sent {
        recipients,
        prevented,
        ..
    } = &judged[1].0
    else {
        panic!("{:?}", judged[1]);
    };
    assert_eq!(
        (*recipients, prevented.as_slice()),
        (1, [address("x@parked.example")].as_slice())
    );
    for (i, expected) in [(2, "sent"), (3, "sent"), (4, "sent"), (5, "sent")] {
        assert_eq!(judged[i].0.name(), expected, "{:?}", judged[i]);
    }
    assert!(judged[2].1.is_empty() && judged[4].1.is_empty() && judged[5].1.is_empty());
    let outbox = std::fs::read_dir(&deps.config.sender.outbox)
        .unwrap()
        .count();
    assert_eq!(outbox, 5, "every sent message, none of the refused");

    let key = |stream: &str, reason, action| PreventedKey {
        stream: stream.into(),
        reason,
        action,
    };
    let counted = deps.store.prevented(&deps.clock.now().day()).await.unwrap();
    assert_eq!(
        counted,
        [
            (
                key(
                    "verification",
                    Undeliverable::NoSuchDomain,
                    PreventAction::Refused
                ),
                1
            ),
            (
                key(
                    "verification",
                    Undeliverable::NoMailDomain,
                    PreventAction::Refused
                ),
                1
            ),
            (
                key(
                    "verification",
                    Undeliverable::TypoDomain,
                    PreventAction::Refused
                ),
                1
            ),
            (
                key("bulk", Undeliverable::Disposable, PreventAction::Flagged),
                1
            ),
        ]
        .into_iter()
        .collect()
    );
}

#[tokio::test]
async fn a_domain_dns_did_not_answer_is_asked_again_after_a_minute_not_every_batch() {
    let (server, resolver) = dns("").await;
    let world = World::builder().build();
    let deps = world.deps.with_resolver(resolver);
    let late = [address("late@slow.example")];
    let now = deps.clock.now();
    let (checks, first) = Screen::of(&deps).check(&late, now).await;
    assert_eq!((checks[0].dns, first.unknown), (Dns::Unknown, 1));
    assert!(checks[0].deliverable, "fails open");
    let asked = server.queries();
    let (_, again) = Screen::of(&deps)
        .check(&late, now.plus(Duration::from_secs(30)))
        .await;
    assert_eq!(
        (again.cached, again.unknown, server.queries()),
        (1, 0, asked)
    );
    let (_, later) = Screen::of(&deps)
        .check(&late, now.plus(Duration::from_secs(61)))
        .await;
    assert_eq!(later.unknown, 1, "asked again once the minute is over");
    // Nothing unknown was kept in the store for other instances.
    assert!(
        deps.store
            .domains(&["slow.example".into()], now)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_host_unknown_bounce_marks_its_domain_dead_without_asking_dns() {
    let world = World::builder().build();
    let deps = &world.deps;
    let bounce = SesEvent::bounce("m-1")
        .tagged("primary", "verification")
        .to(["first@old-company.example"])
        .bounce_type("Permanent", "General")
        .status("5.1.2")
        .diagnostic("smtp; 550 5.1.2 Host or domain name not found. Name service error for name=old-company.example");
    let inbound = sesguard::lambda::ingest::decode(bounce.notification(), "test").1;
    Ingestor::of(deps).ingest(inbound, deps.clock.now()).await;
    // DNS is off in this world: only the bounce can have taught it.
    let (checks, lookups) = Screen::of(deps)
        .check(&[address("second@old-company.example")], deps.clock.now())
        .await;
    assert_eq!(checks[0].dns, Dns::Known(MailDomain::NoMailDomain));
    assert_eq!(checks[0].reason, Some(Undeliverable::NoMailDomain));
    assert_eq!(lookups.cached + lookups.stored, 1);
    let judged = send(
        deps,
        vec![queued(
            "s",
            "verification",
            &["second@old-company.example"],
            false,
        )],
    )
    .await;
    assert_eq!(judged[0].0.name(), "undeliverable");
}

#[tokio::test]
async fn a_thousand_unverified_sends_to_300_domains_ask_dns_300_times() {
    let extra: String = (0..300)
        .map(|i| format!("d{i}.example MX mx.d{i}.example 300\n"))
        .collect();
    let (server, resolver) = dns(&extra).await;
    let outbox = tempfile::tempdir().unwrap();
    let world = World::builder()
        .configure(|c| c.sender.outbox = outbox.path().to_owned())
        .build();
    let deps = world.deps.with_resolver(resolver);
    let mut sent = 0;
    for batch in 0..100 {
        // A second a batch: the send rate is not what is measured.
        world
            .clock
            .set(&deps.clock.now().plus(Duration::from_secs(1)).to_rfc3339());
        let requests = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                let to = format!("user{n}@d{}.example", (n * 7) % 300);
                queued(&format!("k{n}"), "verification", &[to.as_str()], false)
            })
            .collect();
        sent += send(&deps, requests)
            .await
            .iter()
            .filter(|(d, _)| d.name() == "sent")
            .count();
    }
    assert_eq!(sent, 1000);
    println!(
        "DNS questions for 1,000 unverified sends to 300 domains: {}",
        server.queries()
    );
    assert_eq!(
        server.queries(),
        300,
        "one question per domain (each has an MX)"
    );
}
