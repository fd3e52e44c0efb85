//! The send gate's cost per message on the embedded store: a batch of ten requests through
//! the duplicate claim, template policy, suppression, prevention (their domain's DNS answer
//! cached, as it is after an instance's first batch to it), routing, the send-rate token
//! bucket (one store write per account per batch; a rate that never binds) and a transport
//! that accepts everything (so the figure is sesguard's own cost, not SES's or an outbox's
//! disk). And prevention's check of one address from the instance's cache, what
//! `POST /addresses/check` costs a sign-up form.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sesguard::adapters::dns_zone::{Zone, ZoneServer};
use sesguard::adapters::sqlite::SqliteStore;
use sesguard::app::prevent::Screen;
use sesguard::app::send::{Queued, Sender, SenderMemory};
use sesguard::config::{Config, DnsServer};
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::sending::prevention::{Dns, Prevention};
use sesguard::domain::sending::request::{OutgoingMail, SendRequest};
use sesguard::ports::{MailTransport, SystemClock, TransportError};

struct Accept;

#[async_trait]
impl MailTransport for Accept {
    async fn send(&self, _: &OutgoingMail) -> Result<String, TransportError> {
        Ok("bench".into())
    }
}

fn gate(criterion: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A local zone: the recipients' domain takes mail (never the internet).
    let zone =
        Zone::parse("example.com MX mx.example.com 3600\nshop.example MX mx.shop.example 3600")
            .expect("zone");
    let server = runtime
        .block_on(ZoneServer::start(
            zone,
            "127.0.0.1:0".parse().expect("address"),
        ))
        .expect("zone server");
    let mut config =
        Config::parse(include_str!("../infra/sesguard.example.toml"), "example").expect("config");
    config.prevention.dns = DnsServer::At(server.address());
    // The gate's own cost: a send rate that never binds (the limiter's write still happens).
    for account in &mut config.accounts {
        account.max_send_rate = Some(1e9);
    }
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("store"));
    let deps = sesguard::wiring::local(config, store, Arc::new(SystemClock));
    let next = AtomicU64::new(0);
    // One instance's memory across batches, as in a warm Lambda.
    let memory = SenderMemory::default();

    let mut group = criterion.benchmark_group("send_gate_embedded_store");
    group.throughput(Throughput::Elements(10));
    group.bench_function("batch_of_10", |bench| {
        bench.iter(|| {
            let batch = (0..10)
                .map(|_| {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let json = format!(
                        r#"{{"stream":"transactional","to":["user{n}@example.com"],"template":{{"name":"receipt","data":{{"n":{n}}}}}}}"#
                    );
                    Queued::new(n.to_string(), SendRequest::parse(&json).map_err(|e| e.to_string()))
                })
                .collect();
            let judged = runtime.block_on(Sender::of(&deps, &memory).with_transport(&Accept).send(batch, deps.clock.now())).expect("batch");
            assert!(judged.iter().all(|j| j.decision.name() == "sent"), "{:?}", judged.iter().find(|j| j.decision.name() != "sent"));
        });
    });
    group.finish();

    let mut group = criterion.benchmark_group("prevention");
    group.throughput(Throughput::Elements(1));
    let shop = [EmailAddress::parse("jane@shop.example").expect("address")];
    let screen = Screen::of(&deps);
    runtime.block_on(screen.check(&shop, deps.clock.now()));
    // Awaited inside the runtime, as the admin function does: no block_on per check.
    group.bench_function("check_cached", |bench| {
        bench.to_async(&runtime).iter(|| async {
            let (checks, lookups) = screen.check(&shop, deps.clock.now()).await;
            assert!(checks[0].deliverable && lookups.cached == 1);
        });
    });
    let prevention = Prevention::default();
    let typo = EmailAddress::parse("jane.doe@gmial.com").expect("address");
    group.bench_function("rules_only", |bench| {
        bench.iter(|| assert!(!prevention.check(&typo, Dns::NotNeeded).deliverable));
    });
    group.finish();
}

criterion_group!(benches, gate);
criterion_main!(benches);
