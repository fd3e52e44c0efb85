//! The `sesguard` binary as an operator uses it, on a temporary SQLite store.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::root;
use crate::ses_event::SesEvent;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sesguard"));
        command
            .current_dir(root())
            .env_remove("SESGUARD_CONFIG_TOML")
            .env(
                "SESGUARD_STORE",
                format!("sqlite:{}", self.dir.path().join("cli.db").display()),
            )
            .env("SESGUARD_CONFIG", "infra/sesguard.example.toml")
            // Never the internet's DNS: a test that wants DNS names its own zone server.
            .env("SESGUARD_DNS", "off")
            .env("RUST_LOG", "error")
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&output.stdout))
        })
    }
}

#[test]
fn ingest_prints_counts_and_suppressions_can_be_read_back_normalised() {
    let cli = Cli::new();
    let summary = cli.json(&[
        "ingest",
        "events/sqs-sns-bounce.json",
        "events/ses/complaint.json",
        "events/ses/event-open.json",
        "--json",
    ]);
    assert_eq!(
        summary,
        serde_json::json!({"processed": 2, "duplicates": 0, "suppressed": 3, "ignored": 1, "failed": 0})
    );

    let record = cli.json(&[
        "suppressions",
        "get",
        "\"Someone\" <NOBODY@Example.ORG>",
        "--json",
    ]);
    assert_eq!(record["email"], "nobody@example.org");
    assert_eq!(record["reason"], "bounce");
    assert_eq!(record["bounce_type"], "Permanent");
    assert_eq!(record["bounce_subtype"], "General");
    assert_eq!(record["count"], 1);
    assert_eq!(record["first_seen"], "2026-11-20T10:00:05.000Z");
    assert_eq!(
        cli.json(&["suppressions", "get", "never@example.com", "--json"]),
        Value::Null
    );

    let complaints = cli.json(&["suppressions", "list", "--reason", "complaint", "--json"]);
    assert_eq!(complaints.as_array().unwrap().len(), 1);
    assert_eq!(complaints[0]["email"], "angry@example.com");
    assert_eq!(
        cli.json(&["suppressions", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn ingest_reads_stdin_and_processes_every_record_before_failing_on_a_bad_one() {
    let cli = Cli::new();
    let mut child = cli
        .command(&[
            "ingest",
            "-",
            "events/sqs-batch-with-malformed.json",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"this is not json")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (summary["processed"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        cli.json(&["suppressions", "get", "typo@exmaple.com", "--json"])["reason"],
        "bounce"
    );
}

#[test]
fn accounts_status_gives_window_totals_and_rates_per_account() {
    let cli = Cli::new();
    // The samples are from 2026-11-20; a window ending then includes them.
    let config =
        std::fs::read_to_string(root().join("infra/sesguard.example.toml")).unwrap() + "\n";
    let config_path = cli.dir.path().join("wide.toml");
    std::fs::write(
        &config_path,
        config.replace("length = \"24h\"", "length = \"87600h\""),
    )
    .unwrap();
    let config_arg = config_path.to_str().unwrap();
    cli.json(&[
        "--config",
        config_arg,
        "ingest",
        "events/ses/event-send.json",
        "events/ses/event-bounce.json",
        "--json",
    ]);

    let all = cli.json(&["--config", config_arg, "accounts", "status", "--json"]);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["primary", "backup"]);
    let primary = &cli.json(&[
        "--config", config_arg, "accounts", "status", "primary", "--json",
    ])[0];
    assert_eq!(
        (primary["sends"].as_u64(), primary["hard_bounces"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(primary["bounce_rate"], 0.5);
    assert_eq!(primary["complaint_rate"], 0.0);
    assert_eq!(primary["state"], "active");
    assert_eq!(primary["streams"]["verification"]["hard_bounces"], 1);
    for key in ["deliveries", "soft_bounces", "complaints"] {
        assert_eq!(primary[key], 0, "{key}");
    }
}

#[test]
fn bad_input_gets_a_clear_error_naming_the_problem() {
    let cli = Cli::new();
    let bad_address = cli.run(&["suppressions", "get", "not-an-address", "--json"]);
    assert!(!bad_address.status.success());
    assert!(String::from_utf8_lossy(&bad_address.stderr).contains("has no `@`"));

    let unknown = cli.run(&["accounts", "status", "nosuch", "--json"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown account `nosuch`"));

    let bad_store = cli.run(&["--store", "postgres://x", "accounts", "status"]);
    assert!(
        String::from_utf8_lossy(&bad_store.stderr).contains("is not `sqlite:PATH` or `dynamodb`")
    );

    let bad_reason = cli.run(&["suppressions", "list", "--reason", "spam"]);
    assert!(
        String::from_utf8_lossy(&bad_reason.stderr).contains("unknown suppression reason `spam`")
    );
}

#[test]
fn several_processes_sharing_one_sqlite_file_record_a_batch_exactly_once() {
    let cli = Cli::new();
    let children: Vec<_> = (0..6)
        .map(|_| {
            cli.command(&[
                "ingest",
                "events/sqs-raw-send.json",
                "events/sqs-sns-soft-bounce.json",
                "events/ses/event-bounce.json",
                "--json",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut processed = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        processed += summary["processed"].as_u64().unwrap();
    }
    assert_eq!(
        processed, 4,
        "send, delivery, soft bounce and bounce, each once across all processes"
    );
    assert_eq!(
        cli.json(&["suppressions", "get", "typo@exmaple.com", "--json"])["count"],
        1
    );
}

#[test]
fn check_decides_without_sending() {
    let cli = Cli::new();
    cli.json(&["ingest", "events/ses/bounce-permanent.json", "--json"]);

    let send = cli.json(&[
        "check",
        "--stream",
        "verification",
        "--to",
        "new@example.com",
        "--json",
    ]);
    assert_eq!(
        (send["decision"].as_str(), send["account"].as_str()),
        (Some("send"), Some("primary"))
    );
    assert_eq!(send["priority"], "normal");
    assert_eq!(send["retry_after_seconds"], Value::Null);

    let suppressed = cli.json(&[
        "check",
        "--stream",
        "transactional",
        "--to",
        "Nobody@Example.org",
        "--json",
    ]);
    assert_eq!(suppressed["decision"], "suppressed");
    assert_eq!(
        suppressed["reason"],
        "nobody@example.org is suppressed (bounce)"
    );
    assert_eq!(suppressed["priority"], "critical");

    let partly = cli.json(&[
        "check",
        "--stream",
        "bulk",
        "--to",
        "gone@example.net",
        "--to",
        "fine@example.com",
        "--json",
    ]);
    assert_eq!(partly["decision"], "send");
    assert_eq!(
        partly["recipients"],
        serde_json::json!(["fine@example.com"])
    );
    assert_eq!(partly["suppressed"][0]["email"], "gone@example.net");

    let unknown = cli.run(&["check", "--stream", "nope", "--to", "a@example.com"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown stream `nope`"));
    let bad_priority = cli.run(&[
        "check",
        "--stream",
        "bulk",
        "--to",
        "a@example.com",
        "--priority",
        "urgent",
    ]);
    assert!(String::from_utf8_lossy(&bad_priority.stderr).contains("unknown priority `urgent`"));
}

#[test]
fn operators_pause_resume_and_read_history_with_their_reason() {
    let cli = Cli::new();
    let alerts = cli.dir.path().join("alerts.jsonl");
    let config = std::fs::read_to_string(root().join("infra/sesguard.example.toml"))
        .unwrap()
        .replace(".sesguard/alerts.jsonl", alerts.to_str().unwrap());
    let config_path = cli.dir.path().join("ops.toml");
    std::fs::write(&config_path, config).unwrap();
    let config_arg = config_path.to_str().unwrap();
    let run = |args: &[&str]| cli.run(&[&["--config", config_arg], args].concat());
    let json = |args: &[&str]| cli.json(&[&["--config", config_arg], args].concat());

    let refused = run(&["accounts", "resume", "primary", "--reason", "nothing to do"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("the account is not paused (it is active)")
    );

    let paused = json(&[
        "accounts",
        "pause",
        "primary",
        "--reason",
        "incident 42",
        "--actor",
        "ana",
        "--json",
    ]);
    assert_eq!(
        (paused["from"].as_str(), paused["to"].as_str()),
        (Some("active"), Some("paused"))
    );
    let routed = json(&[
        "check",
        "--stream",
        "transactional",
        "--to",
        "a@example.com",
        "--json",
    ]);
    assert_eq!(
        routed["account"], "backup",
        "the backup takes over while the primary is paused"
    );
    let bulk = json(&[
        "check",
        "--stream",
        "bulk",
        "--to",
        "a@example.com",
        "--json",
    ]);
    assert_eq!(bulk["decision"], "deferred", "bulk has no other account");

    json(&[
        "accounts",
        "pause",
        "backup",
        "--stream",
        "verification",
        "--reason",
        "bad sign-ups",
        "--json",
    ]);
    let resumed = json(&[
        "accounts", "resume", "primary", "--reason", "fixed", "--actor", "ana", "--json",
    ]);
    assert_eq!(
        (resumed["to"].as_str(), resumed["share"].as_f64()),
        (Some("probation"), Some(0.1)),
        "a resume starts on the probation ramp"
    );
    let reviewed = run(&["accounts", "review"]);
    assert!(reviewed.status.success());
    assert!(
        String::from_utf8_lossy(&reviewed.stdout).contains("reviewed 2 account(s)"),
        "{reviewed:?}"
    );
    json(&[
        "accounts",
        "resume",
        "primary",
        "--reason",
        "list verified",
        "--no-probation",
        "--actor",
        "ana",
        "--json",
    ]);
    let status = json(&["accounts", "status", "backup", "--json"]);
    assert_eq!(
        status[0]["quarantined"],
        serde_json::json!(["verification"])
    );

    let history = json(&["accounts", "history", "primary", "--json"]);
    let lines: Vec<(&str, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["to"].as_str().unwrap(),
                e["note"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                "active",
                "list verified (without probation)",
                "operator:ana"
            ),
            ("probation", "fixed", "operator:ana"),
            ("paused", "incident 42", "operator:ana")
        ]
    );

    let alert_lines = std::fs::read_to_string(&alerts).unwrap();
    let sent: Vec<Value> = alert_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 4);
    assert_eq!(
        sent[2]["traffic"],
        "primary takes 10 % of verification, transactional, bulk (probation); the rest goes where it went during the incident"
    );
    assert_eq!(
        sent[0]["traffic"],
        "verification fails over to backup; transactional fails over to backup; bulk has no account after primary: deferred"
    );
    assert_eq!(sent[1]["stream"], "verification");

    let no_reason = run(&["accounts", "pause", "primary", "--reason", " "]);
    assert!(String::from_utf8_lossy(&no_reason.stderr).contains("a reason is required"));
    let unknown = run(&["accounts", "history", "nosuch"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown account `nosuch`"));
}

#[test]
fn template_policy_changes_at_run_time_and_check_blocks_by_it() {
    let cli = Cli::new();
    let policy = cli.json(&[
        "policy",
        "templates",
        "--block",
        "newsletter",
        "--verified-only",
        "receipt",
        "--reason",
        "incident 42",
        "--json",
    ]);
    assert_eq!(
        policy,
        serde_json::json!({"blocked": ["newsletter"], "verified_only": ["receipt"]})
    );

    let blocked = cli.json(&[
        "check",
        "--stream",
        "bulk",
        "--to",
        "a@example.com",
        "--template",
        "newsletter",
        "--verified",
        "--json",
    ]);
    assert_eq!(
        (blocked["decision"].as_str(), blocked["reason"].as_str()),
        (Some("blocked"), Some("template `newsletter` is blocked"))
    );
    let unverified = cli.json(&[
        "check",
        "--stream",
        "transactional",
        "--to",
        "a@example.com",
        "--template",
        "receipt",
        "--json",
    ]);
    assert_eq!(unverified["decision"], "blocked");
    assert_eq!(
        unverified["reason"],
        "template `receipt` may only go to verified recipients"
    );
    let verified = cli.json(&[
        "check",
        "--stream",
        "transactional",
        "--to",
        "a@example.com",
        "--template",
        "receipt",
        "--verified",
        "--json",
    ]);
    assert_eq!(verified["decision"], "send");

    let lifted = cli.json(&[
        "policy",
        "templates",
        "--unblock",
        "newsletter",
        "--any-recipient",
        "receipt",
        "--reason",
        "incident over",
        "--json",
    ]);
    assert_eq!(
        lifted,
        serde_json::json!({"blocked": [], "verified_only": []})
    );
    let sent = cli.json(&[
        "check",
        "--stream",
        "bulk",
        "--to",
        "a@example.com",
        "--template",
        "newsletter",
        "--json",
    ]);
    assert_eq!(sent["decision"], "send");
    let both = cli.run(&[
        "check",
        "--stream",
        "bulk",
        "--to",
        "a@example.com",
        "--verified",
        "--unverified",
    ]);
    assert!(!both.status.success());
}

#[test]
fn a_closed_output_pipe_ends_the_program_quietly() {
    let cli = Cli::new();
    cli.json(&["ingest", "events/sqs-sns-bounce.json", "--json"]);
    let store = format!("sqlite:{}", cli.dir.path().join("cli.db").display());
    // `true` exits without reading, so the pipe is closed before sesguard writes.
    let output = Command::new("bash")
        .current_dir(root())
        .env("SESGUARD_STORE", store)
        .env("RUST_LOG", "error")
        .args([
            "-c",
            &format!(
                "{} suppressions list | true; echo status=${{PIPESTATUS[0]}}",
                env!("CARGO_BIN_EXE_sesguard")
            ),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "status=0");
}

#[test]
fn policy_changes_need_a_reason_and_are_audited() {
    let cli = Cli::new();
    let refused = cli.run(&["policy", "templates", "--block", "promo"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("a reason is required"));
    cli.json(&[
        "policy",
        "templates",
        "--block",
        "promo",
        "--reason",
        "spam wave",
        "--actor",
        "ana",
        "--json",
    ]);
    let audit = cli.json(&["audit", "--json"]);
    assert_eq!(audit[0]["action"], "policy.templates");
    assert_eq!(audit[0]["actor"], "operator:ana");
    assert_eq!(
        audit[0]["detail"]["after"]["blocked"],
        serde_json::json!(["promo"])
    );
}

#[test]
fn suppressions_are_added_removed_imported_and_exported_by_hand() {
    let cli = Cli::new();
    let added = cli.json(&[
        "suppressions",
        "add",
        "Ops@Example.com",
        "--reason",
        "asked",
        "--json",
    ]);
    assert_eq!(
        (&added["email"], &added["reason"]),
        (
            &serde_json::json!("ops@example.com"),
            &serde_json::json!("manual")
        )
    );
    let table = cli.run(&[
        "suppressions",
        "add",
        "ops@example.com",
        "--reason",
        "again",
    ]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("was suppressed already"));

    let file = cli.dir.path().join("list.csv");
    std::fs::write(
        &file,
        "email,reason\nA@example.com\nb@example.com,complaint\nnot an address\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let output = cli.run(&[
        "suppressions",
        "import",
        file,
        "--format",
        "csv",
        "--reason",
        "migration",
        "--json",
    ]);
    assert!(
        !output.status.success(),
        "an invalid line makes the exit status non-zero"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (&report["added"], &report["invalid_count"]),
        (&serde_json::json!(2), &serde_json::json!(1))
    );
    assert_eq!(report["invalid"][0]["line"], 4);

    let exported = cli.dir.path().join("out.jsonl");
    let export = cli.run(&[
        "suppressions",
        "export",
        "--output",
        exported.to_str().unwrap(),
    ]);
    assert!(export.status.success());
    assert!(String::from_utf8_lossy(&export.stderr).contains("3 addresses exported"));
    let lines = std::fs::read_to_string(&exported).unwrap();
    assert_eq!(lines.lines().count(), 3);
    let csv = cli.run(&[
        "suppressions",
        "export",
        "--format",
        "csv",
        "--only",
        "complaint",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout)
            .lines()
            .map(|l| l.split(',').next().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["email", "b@example.com"]
    );

    // An export imports again, into another store.
    let other = Cli::new();
    let again = other.json(&[
        "suppressions",
        "import",
        exported.to_str().unwrap(),
        "--reason",
        "restore",
        "--json",
    ]);
    assert_eq!(again["added"], 3);
    assert_eq!(
        other.json(&["suppressions", "get", "b@example.com", "--json"])["reason"],
        "complaint"
    );

    let removed = cli.json(&[
        "suppressions",
        "remove",
        "b@example.com",
        "--reason",
        "wrong list",
        "--json",
    ]);
    assert_eq!(removed["reason"], "complaint");
    let missing = cli.run(&[
        "suppressions",
        "remove",
        "b@example.com",
        "--reason",
        "again",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("b@example.com is not suppressed"));
    let actions: Vec<String> = cli
        .json(&["audit", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "suppression.remove",
            "suppression.import",
            "suppression.add",
            "suppression.add"
        ]
    );
}

#[test]
fn limits_show_their_use_and_change_at_run_time() {
    let cli = Cli::new();
    let limits = cli.json(&["accounts", "limits", "backup", "--json"]);
    // SES's line at 14 sends a second: a burst of a tenth of a second's sends.
    assert_eq!(limits["effective"]["capacity"], 1.4);
    assert_eq!(limits["periods"]["minute"]["status"], "unlimited");
    let refused = cli.run(&["accounts", "limits", "backup", "--per-minute", "100"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("a reason is required"));
    let changed = cli.json(&[
        "accounts",
        "limits",
        "backup",
        "--per-minute",
        "100",
        "--capacity",
        "7",
        "--reason",
        "warm-up",
        "--json",
    ]);
    assert_eq!(
        (
            &changed["effective"]["per_minute"],
            &changed["effective"]["capacity"]
        ),
        // 7 asked, held to the line: a burst of at most 5 at 14 a second.
        (&serde_json::json!(100), &serde_json::json!(5.0))
    );
    let table = cli.run(&[
        "accounts",
        "limits",
        "backup",
        "--per-minute",
        "none",
        "--reason",
        "done",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("per minute unlimited"), "{text}");
    assert!(text.contains("PERIOD"), "{text}");
    let bad = cli.run(&["accounts", "limits", "backup", "--per-minute", "lots"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`lots` is not a number of sends or `none`")
    );
}

#[test]
fn config_check_and_the_deploy_parameter_need_no_store_and_name_the_problem() {
    let cli = Cli::new();
    let check = cli.json(&["config", "check", "--json"]);
    assert_eq!(check["valid"], true);
    assert_eq!(check["streams"][0]["name"], "verification");
    assert_eq!(check["accounts"][1]["name"], "backup");
    let bytes = check["deployed_bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes <= check["deployed_limit"].as_u64().unwrap());
    assert!(
        !cli.dir.path().join("cli.db").exists(),
        "config check opened the store"
    );

    let output = cli.run(&["config", "deploy-parameter"]);
    assert!(output.status.success());
    let parameter = String::from_utf8(output.stdout).unwrap();
    let quoted = parameter
        .trim_end()
        .strip_prefix("SesguardConfig=\"")
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not SesguardConfig=\"...\": {parameter}"));
    // Inside the quotes every `"` is escaped, and nothing else is.
    assert!(
        !quoted.replace("\\\"", "").contains(['"', '\\']),
        "{quoted}"
    );
    let text = quoted.replace("\\\"", "\"");
    assert_eq!(text.len() as u64, bytes);
    assert!(text.contains("name = \"backup\"") && !text.contains('#'));
    let cloudformation = cli.json(&["config", "deploy-parameter", "--json"]);
    assert_eq!(cloudformation["ParameterKey"], "SesguardConfig");
    assert_eq!(cloudformation["ParameterValue"], text.as_str());

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let failure = |args: &[&str]| {
        let output = cli.run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8(output.stderr).unwrap()
    };
    let typo = write("typo.toml", "[ingest]\nsoft_bounce_limit = 3\n");
    assert!(failure(&["--config", &typo, "config", "check"]).contains("soft_bounce_limit"));
    let backslash = write("backslash.toml", "[alerts]\nfile = 'C:\\alerts.jsonl'\n");
    assert!(
        failure(&["--config", &backslash, "config", "deploy-parameter"])
            .contains("cannot hold a backslash")
    );
    let missing = dir.path().join("missing.toml").display().to_string();
    assert!(
        failure(&["--config", &missing, "config", "check"]).contains("cannot read configuration")
    );
}

#[test]
fn an_operators_resume_holds_against_the_next_notification_about_the_incident() {
    use sesguard::domain::common::timestamp::Timestamp;
    let cli = Cli::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sent = Timestamp::from_millis(now - 10 * 60_000).to_rfc3339();
    let write = |name: &str, body: Value| {
        let path = cli.dir.path().join(name);
        std::fs::write(&path, body.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let to: Vec<String> = (0..400).map(|i| format!("r{i}@example.com")).collect();
    let about = |event: SesEvent| {
        event
            .destination(to.clone())
            .sent_at(&sent)
            .tagged("primary", "bulk")
    };
    let sends = write(
        "send.json",
        about(SesEvent::send("m1").to(to.clone())).published(),
    );
    let bounces = write(
        "bounce.json",
        about(SesEvent::bounce("m1").to(to[..36].to_vec()))
            .feedback_id("fb1")
            .at(&sent)
            .published(),
    );
    let delivery = write(
        "delivery.json",
        about(SesEvent::delivery("m1").to([to[399].clone()]))
            .at(&sent)
            .published(),
    );
    let state = || cli.json(&["accounts", "status", "primary", "--json"])[0]["state"].clone();

    cli.json(&["ingest", &sends, &bounces, "--json"]);
    assert_eq!(state(), "paused", "400 sends and 36 hard bounces: 9 %");
    let resumed = cli.json(&[
        "accounts",
        "resume",
        "primary",
        "--reason",
        "list cleaned",
        "--json",
    ]);
    assert_eq!(resumed["to"], "probation");
    cli.json(&["ingest", &delivery, "--json"]);
    assert_eq!(
        state(),
        "probation",
        "a notification about the incident's mail does not undo the resume"
    );
}

#[test]
fn the_cli_is_quiet_and_human_by_default_and_logs_json_when_asked() {
    let cli = Cli::new();
    let quiet = cli
        .command(&["ingest", "events/sqs-sns-bounce.json"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "",
        "no per-record line, no info line"
    );
    let verbose = cli
        .command(&[
            "ingest",
            "events/ses/complaint.json",
            "--log-records",
            "-v",
            "--log-format",
            "json",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&verbose.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "notification recorded"),
        "{lines:?}"
    );
}

#[test]
fn simulate_prints_both_timelines_and_draws_the_bounce_rate_with_and_without_the_guard() {
    let cli = Cli::new();
    let svg = cli.dir.path().join("incident.svg");
    let output = cli.run(&[
        "simulate",
        "--days",
        "1",
        "--daily-volume",
        "14400",
        "--stream",
        "verification=10..30@2",
        "--stream",
        "transactional=0.5..0.5@0,critical",
        "--resume-day",
        "0",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (with, without) = text.split_once("== without sesguard").unwrap();
    assert!(
        with.contains("primary stream verification: active -> quarantined"),
        "{with}"
    );
    let peak = |part: &str| -> f64 {
        let line = part
            .lines()
            .find(|l| l.trim_start().starts_with("peak primary:"))
            .unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert!(peak(with) < 10.0, "{with}");
    assert!(peak(without) >= 10.0, "{without}");
    assert!(!without.contains("quarantined"));
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(picture.matches(r#"class="series""#).count(), 3);
    for label in [
        "SES pause 10.0 %",
        "primary, no sesguard",
        "verification quarantined",
    ] {
        assert!(picture.contains(label), "{label}");
    }
}

#[test]
fn simulate_names_a_bad_parameter() {
    let cli = Cli::new();
    let output = cli.run(&["simulate", "--stream", "verification=3-20"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("NAME=FROM..TO@HOURS"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = cli.run(&["simulate", "--days", "2", "--resume-day", "5"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the operator resumes on a day from 2"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_blocked_bounce_is_explained_and_leaves_its_recipients_sendable() {
    let cli = Cli::new();
    let explained = cli.json(&[
        "bounces",
        "explain",
        "events/ses/bounce-blocked.json",
        "events/ses/bounce-permanent.json",
        "--json",
    ]);
    let row = |r: &str| {
        explained
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["recipient"] == r)
            .unwrap_or_else(|| panic!("{r} not explained: {explained}"))
            .clone()
    };
    let valued = row("valued@example.org");
    assert_eq!(
        (&valued["reason"], &valued["class"], &valued["effect"]),
        (&"blocked".into(), &"sender".into(), &"record".into())
    );
    assert!(
        valued["decided_by"]
            .as_str()
            .unwrap()
            .contains("blocked using")
    );
    assert_eq!(row("customer@example.net")["reason"], "authentication");
    assert_eq!(row("nobody@example.org")["effect"], "suppress");

    let summary = cli.json(&[
        "ingest",
        "events/ses/bounce-blocked.json",
        "events/ses/bounce-permanent.json",
        "--json",
    ]);
    assert_eq!(summary["suppressed"], 2, "{summary}");
    let valued = cli.run(&["suppressions", "get", "valued@example.org"]);
    assert!(String::from_utf8_lossy(&valued.stdout).contains("is not suppressed"));
    let gone = cli.json(&["suppressions", "get", "gone@example.net", "--json"]);
    assert_eq!(gone["bounce_reason"], "user_unknown");
    let text =
        String::from_utf8(cli.run(&["suppressions", "get", "gone@example.net"]).stdout).unwrap();
    assert!(text.contains("user_unknown (address class)"), "{text}");

    let human = cli.run(&["bounces", "explain", "events/ses/bounce-blocked.json"]);
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(
        human.contains("record only: the address stays sendable"),
        "{human}"
    );
    let broken = cli.run(&["bounces", "explain", "Makefile"]);
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("Makefile is not JSON"));
}

#[test]
fn addresses_check_answers_each_address_and_exits_by_the_worst() {
    use sesguard::adapters::dns_zone::{Zone, ZoneServer};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let zone = Zone::parse("shop.example MX mx.shop.example 300\nparked.example NULLMX").unwrap();
    let server = runtime
        .block_on(ZoneServer::start(zone, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let cli = Cli::new();
    let dns = server.address().to_string();
    let list = cli.dir.path().join("signups.txt");
    std::fs::write(
        &list,
        "# from the form\nok@shop.example\n\nx@parked.example\n",
    )
    .unwrap();
    let output = cli
        .command(&[
            "addresses",
            "check",
            "jo@gmail.com",
            "--file",
            list.to_str().unwrap(),
            "--json",
        ])
        .env("SESGUARD_DNS", &dns)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "one cannot receive mail");
    let answers: Value = serde_json::from_slice(&output.stdout).unwrap();
    let reasons: Vec<&Value> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["reason"])
        .collect();
    assert_eq!(
        reasons,
        [
            &Value::from("impossible_local_part"),
            &Value::Null,
            &Value::from("no_mail_domain")
        ]
    );
    assert!(
        server.queries() >= 2,
        "shop.example and parked.example asked of the zone"
    );

    let human = cli
        .command(&["addresses", "check", "jane.doe@gmial.com"])
        .output()
        .unwrap();
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains("did you mean jane.doe@gmail.com?"), "{text}");

    let bad = cli.run(&["addresses", "check", "not-an-address", "ok@shop.example"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("`not-an-address` has no `@`"), "{stderr}");
}
