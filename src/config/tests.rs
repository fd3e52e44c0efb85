//! Tests of [`super`]: config.

use super::*;

fn problem(text: &str) -> String {
    Config::parse(text, "test").unwrap_err().to_string()
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let config = Config::parse("", "test").unwrap();
    assert_eq!(config.ingest_policy(), IngestPolicy::default());
    assert_eq!(config.tables.suppressions, "sesguard-suppressions");
    assert!(config.accounts.is_empty());
}

#[test]
fn durations_are_written_as_text() {
    let config = Config::parse(
        "[window]\nlength = \"1h\"\nbucket = \"5m\"\n[ingest]\nsoft_bounce_window = \"7d\"",
        "t",
    )
    .unwrap();
    assert_eq!(config.window.length, Duration::from_secs(3600));
    assert_eq!(
        config.ingest.soft_bounce_window,
        Duration::from_secs(7 * 86400)
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    assert!(problem("[ingest]\nsoft_bounce_limit = 3").contains("soft_bounce_limit"));
}

#[test]
fn bad_values_name_their_key() {
    let account = |field: &str| {
        let mut fields = vec![
            ("name", "\"primary\""),
            ("region", "\"us-east-1\""),
            ("account_id", "\"111111111111\""),
            ("daily_quota", "50000"),
            ("max_send_rate", "14"),
            ("from", "\"no-reply@example.com\""),
        ];
        for f in &mut fields {
            if f.0 == field {
                f.1 = "\"Bad Value\"";
            }
        }
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("[[accounts]]\n{}", body.join("\n"))
    };
    assert!(problem(&account("region")).contains("`accounts[0].region`"));
    assert!(problem(&account("account_id")).contains("`accounts[0].account_id`"));
    assert!(problem(&account("from")).contains("`accounts[0].from`"));
    assert!(problem("[window]\nlength = \"1h\"\nbucket = \"7m\"").contains("`window.length`"));
    assert!(
        problem("[ingest]\nsoft_bounce_threshold = 0").contains("`ingest.soft_bounce_threshold`")
    );
}

#[test]
fn send_rate_limits_come_from_the_rate_with_the_accounts_limits_over_it() {
    let account =
        "[[accounts]]\nname = \"a\"\nregion = \"us-east-1\"\naccount_id = \"111111111111\"\n";
    let config = Config::parse(
        &format!("{account}[accounts.limits]\ncapacity = 2\nper_minute = 30\n"),
        "test",
    )
    .unwrap();
    let limits = config.rate_limits("a", 14.0);
    assert_eq!(
        (limits.capacity, limits.per_minute, limits.per_hour),
        (2.0, Some(30), None)
    );
    // Held to SES's line: 2 + 0.25 s × refill (what the slack lends) + refill × (1 s + 250 ms
    // + 2 × 10 ms) ≤ 14 + 1.
    assert!(
        (limits.refill_per_second - 13.0 / 1.52).abs() < 1e-9,
        "{limits:?}"
    );
    assert_eq!(config.rate_limits("unknown", 3.0).capacity, 1.0);
    assert!(
        problem(&format!("{account}[accounts.limits]\ncapacity = 0\n"))
            .contains("`accounts[0].limits` `capacity` must be a number of at least 1")
    );
    assert!(problem(&format!("{account}[accounts.limits]\nburst = 1\n")).contains("burst"));
    assert!(problem("[sender]\nbreaker_failures = 0").contains("`sender.breaker_failures`"));
}

#[test]
fn the_webhook_age_limit_stays_under_the_replay_memory_and_probation_rises() {
    assert_eq!(
        Config::parse("", "t").unwrap().webhook.max_age,
        Duration::from_secs(7200)
    );
    assert!(problem("[webhook]\nmax_age = \"1day\"").contains(
        "`webhook.max_age` 1day must be above 0 and under the 1day message ids are remembered"
    ));
    assert!(problem("[guard]\nprobation = [0.5, 0.25]").contains("`guard.probation`"));
    assert!(problem("[guard]\nprobation = [1.0]").contains("`guard.probation`"));
    assert!(Config::parse("[guard]\nprobation = []", "t").is_ok());
}

#[test]
fn account_names_must_be_unique() {
    let one = "[[accounts]]\nname = \"a\"\nregion = \"us-east-1\"\naccount_id = \"111111111111\"\n\
               daily_quota = 1\nmax_send_rate = 1\n";
    assert!(problem(&format!("{one}{one}")).contains("used by another account"));
}

#[test]
fn streams_must_name_configured_accounts_once() {
    let account = "[[accounts]]\nname = \"a\"\nregion = \"us-east-1\"\naccount_id = \"111111111111\"\ndaily_quota = 1\nmax_send_rate = 1\n";
    let stream =
        |accounts: &str| format!("{account}[[streams]]\nname = \"s\"\naccounts = [{accounts}]\n");
    assert!(
        problem(&stream("\"a\", \"b\""))
            .contains("`streams[0].accounts` names unknown account `b`")
    );
    assert!(problem(&stream("\"a\", \"a\"")).contains("names `a` twice"));
    assert!(problem(&stream("")).contains("must name at least one account"));
}

#[test]
fn thresholds_are_checked_and_overridden_per_account() {
    assert!(
        problem("[guard.thresholds]\nbounce_warn = 4")
            .contains("`guard.thresholds` rates must be fractions")
    );
    assert!(
        problem("[guard.thresholds]\nbounce_warn = 0.09").contains("bounce_warn < bounce_pause")
    );
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/sesguard.example.toml"
    ));
    let config = Config::parse(text, "example").unwrap();
    let backup = config.thresholds_for("backup");
    assert_eq!(backup.bounce_pause, 0.07);
    assert_eq!(
        backup.complaint_pause,
        config.default_thresholds().complaint_pause
    );
    assert_eq!(
        config.thresholds_for("primary"),
        config.default_thresholds()
    );
}

#[test]
fn the_no_review_profile_keeps_every_level_under_the_ses_review_lines() {
    let text = "[guard]\nprofile = \"no_review\"\n[guard.thresholds]\nmin_volume = 500\n";
    let config = Config::parse(text, "profile").unwrap();
    let t = config.default_thresholds();
    assert!(
        t.bounce_critical < 0.05 && t.complaint_critical < 0.001,
        "{t:?}"
    );
    assert_eq!(
        t.min_volume, 500,
        "[guard.thresholds] still applies over the profile"
    );
    assert_eq!(
        Config::parse("", "standard").unwrap().default_thresholds(),
        Thresholds::default()
    );
    assert!(problem("[guard]\nprofile = \"lax\"").contains("profile"));
    assert!(problem("[guard.thresholds]\nconfidence = 1.0").contains("confidence"));
}

#[test]
fn the_deployed_text_is_the_same_configuration_without_comments() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/sesguard.example.toml"
    ));
    let (config, deployed) = Config::for_deployment(text, "example").unwrap();
    assert!(deployed.len() < text.len(), "{deployed}");
    assert!(!deployed.contains('#'), "comments left in: {deployed}");
    assert_eq!(
        format!("{:?}", Config::parse(&deployed, "deployed").unwrap()),
        format!("{config:?}")
    );
    assert_eq!(
        Config::for_deployment(&deployed, "again").unwrap().1,
        deployed
    );
}

#[test]
fn a_deployed_text_is_refused_when_invalid_or_too_long() {
    assert!(
        Config::for_deployment("[ingest]\nsoft_bounce_limit = 3", "t")
            .unwrap_err()
            .to_string()
            .contains("soft_bounce_limit")
    );
    let topics: Vec<String> = (0..80)
        .map(|i| format!("\"arn:aws:sns:us-east-1:111111111111:feedback-{i}\""))
        .collect();
    let long = format!("[webhook]\ntopics = [{}]\n", topics.join(", "));
    let error = Config::for_deployment(&long, "long.toml").unwrap_err();
    assert!(matches!(error, ConfigError::TooLarge { bytes, limit: 3072, .. } if bytes > 3072));
    assert!(
        error
            .to_string()
            .starts_with("configuration long.toml takes ")
    );
}

#[test]
fn the_example_configuration_is_valid() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/infra/sesguard.example.toml"
    ));
    let config = Config::parse(text, "example").unwrap();
    assert!(config.accounts.len() >= 2);
    assert_eq!(
        config.stream("transactional").unwrap().priority,
        Priority::Critical
    );
    assert!(
        config.accounts.iter().all(|a| !a.vdm),
        "VDM is off unless asked for"
    );
    let with_vdm = text.replace("# vdm = true", "vdm = true");
    let config = Config::parse(&with_vdm, "example").unwrap();
    assert!(config.account("primary").is_some_and(|a| a.vdm));
}

#[test]
fn ses_metrics_have_defaults_and_refuse_useless_times_by_key() {
    let defaults = Config::parse("", "t").unwrap().ses_metrics;
    assert_eq!(
        (defaults.file, defaults.lookback, defaults.cache),
        (None, Duration::from_secs(86_400), Duration::from_secs(300))
    );
    let given = Config::parse(
        "[ses_metrics]\nfile = \"figures.json\"\nlookback = \"6h\"\ncache = \"0s\"",
        "t",
    )
    .unwrap()
    .ses_metrics;
    assert_eq!(given.file, Some(PathBuf::from("figures.json")));
    assert_eq!(given.cache, Duration::ZERO, "0s: ask every time");
    assert!(
        problem("[ses_metrics]\nlookback = \"1m\"")
            .contains("`ses_metrics.lookback` 1m must be from 5m")
    );
    assert!(problem("[ses_metrics]\ncache = \"2h\"").contains("`ses_metrics.cache` 2h must be"));
    assert!(problem("[ses_metrics]\nfile = \"\"").contains("`ses_metrics.file` is empty"));
    assert!(problem("[ses_metrics]\nperiod = \"1h\"").contains("period"));
}

#[test]
fn the_send_queue_comes_from_the_deployment_and_a_sent_record_outlives_its_redeliveries() {
    let env = |visibility: &'static str, receives: &'static str| {
        move |key: &str| match key {
            "SESGUARD_SEND_VISIBILITY_TIMEOUT" => Some(visibility.to_owned()),
            "SESGUARD_SEND_MAX_RECEIVES" => Some(receives.to_owned()),
            _ => None,
        }
    };
    let config = Config::load_with(None, env("180", "10")).unwrap();
    assert_eq!(
        config.sender.queue_visibility_timeout,
        Duration::from_secs(180)
    );
    // Ten receives, three minutes apart, then a requeue's fifteen minutes.
    assert_eq!(
        config.sender.redelivery(),
        Duration::from_secs(10 * 180 + 900)
    );
    let shorter = Config::load_with(None, env("30", "6")).unwrap();
    assert_eq!(
        shorter.sender.redelivery(),
        Duration::from_secs(6 * 30 + 900)
    );

    let refused = Config::load_with(None, env("180", "4"))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(
            "`sender.requeue_after_receives` 4 is not below the send queue's maxReceiveCount (4)"
        ),
        "{refused}"
    );
    let unreadable = Config::load_with(None, env("3m", "10"))
        .unwrap_err()
        .to_string();
    assert!(
        unreadable.contains("SESGUARD_SEND_VISIBILITY_TIMEOUT") && unreadable.contains("`3m`"),
        "{unreadable}"
    );
    assert!(problem("[sender]\nqueue_max_receives = 0").contains("maxReceiveCount"));
}

#[test]
fn a_bad_name_is_refused_where_it_is_written() {
    // Names are parsed as they are read (`AccountName`, `StreamName`): the parser's message
    // shows the line, the key and the rule.
    let refused = problem("[[accounts]]\nname = \"Bad Value\"\nregion = \"us-east-1\"");
    assert!(refused.contains("line 2"), "{refused}");
    assert!(refused.contains("name = \"Bad Value\""), "{refused}");
    assert!(
        refused.contains("account name `Bad Value` must be lower-case letters, digits, `-` or `_`"),
        "{refused}"
    );
    let stream = problem("[[streams]]\nname = \"sign up\"\naccounts = [\"primary\"]");
    assert!(
        stream.contains("stream name `sign up` must be non-empty, without spaces or `:`"),
        "{stream}"
    );
    let listed = problem("[[streams]]\nname = \"s\"\naccounts = [\"Primary\"]");
    assert!(listed.contains("account name `Primary`"), "{listed}");
}

#[test]
fn the_environment_adds_the_feedback_queues_topics_and_a_loopback_endpoint_is_an_emulator() {
    use crate::domain::sns::delivery::SnsOrigin;
    let topic = "arn:aws:sns:us-east-1:222222222222:ses-feedback";
    let vars = |endpoint: &'static str| {
        move |key: &str| match key {
            "SESGUARD_FEEDBACK_TOPICS" => Some(format!("{topic},")),
            "SESGUARD_WEBHOOK_TOPICS" => Some(topic.to_owned()),
            "AWS_ENDPOINT_URL" if !endpoint.is_empty() => Some(endpoint.to_owned()),
            _ => None,
        }
    };
    let local = Config::load_with(None, vars("http://127.0.0.1:4566")).unwrap();
    assert_eq!(
        local.webhook.topics,
        [topic],
        "named twice, kept once; the empty entry dropped"
    );
    assert_eq!(local.webhook.origin, SnsOrigin::Emulator);
    let deployed = Config::load_with(None, vars("")).unwrap();
    assert_eq!(deployed.webhook.origin, SnsOrigin::Aws);
}
