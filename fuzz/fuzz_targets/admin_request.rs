//! The admin API's request decoding and routing: a method, a path with its query, and a body,
//! through the real handler (bearer token, embedded store). Any answer but a panic or a 500
//! is fine; the store must stay usable.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use sesguard::config::Config;
use sesguard::lambda::admin::handle;
use sesguard::ports::SystemClock;
use sesguard::wiring::{AdminFunction, Auth};

const TOKEN: &str = "a-long-fuzzing-token";

struct World {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    state: AdminFunction,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::parse(
            include_str!("../../infra/sesguard.example.toml"),
            "example",
        )
        .expect("config");
        config.alerts.file = None;
        let store = Arc::new(
            sesguard::adapters::sqlite::SqliteStore::open(&dir.path().join("fuzz.db"))
                .expect("store"),
        );
        let context = sesguard::wiring::local(config, store, Arc::new(SystemClock));
        World {
            _dir: dir,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            state: AdminFunction {
                context,
                auth: Auth::token(Some(TOKEN)),
            },
        }
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The path (with its query) up to the first newline, the body after it.
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (target, body) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let path = format!("/{}", target.trim_start_matches('/'));
    let Ok(request) = lambda_http::http::Request::builder()
        .method(METHODS[usize::from(selector) % METHODS.len()])
        .uri(path.as_str())
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(lambda_http::Body::from(body.to_vec()))
    else {
        return;
    };
    let world = world();
    let response = world
        .runtime
        .block_on(handle(&world.state, request))
        .expect("an answer");
    assert!(
        response.status().as_u16() < 500,
        "{} {path}: {}",
        response.status(),
        String::from_utf8_lossy(response.body().as_ref())
    );
});
