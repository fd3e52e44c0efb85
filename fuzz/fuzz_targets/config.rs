//! The configuration loader: any text as `sesguard.toml` is either a valid configuration or an
//! error naming the problem.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sesguard::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, "fuzz") {
        let _ = config.ingest_policy();
        for account in &config.accounts {
            let _ = config.thresholds_for(&account.name);
            let _ = config.recovery(&account.name);
            let _ = config.rate_limits(&account.name, 14.0);
        }
    }
});
