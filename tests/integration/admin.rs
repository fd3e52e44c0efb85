//! The admin function over HTTP: authentication, every route of `infra/openapi.json` answered
//! as documented (statuses and bodies checked against the document's schemas), bad input
//! refused with a message naming the problem, and changes that take effect at once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lambda_http::http::Method;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use sesguard::adapters::sesv2::NoSes;
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;
use sesguard::lambda::admin::handle;
use sesguard::wiring::{AdminFunction, Auth};

use crate::helpers::{RecordedAlerts, deps_with, example_config};
use crate::world::World;

const TOKEN: &str = "a-local-admin-token-of-some-length";

fn doc() -> Value {
    serde_json::from_str(include_str!("../../infra/openapi.json")).expect("openapi.json is JSON")
}

/// Checks `value` against a JSON schema of the OpenAPI document (the subset it uses: `$ref`,
/// `allOf`, `oneOf`, `type`, `enum`, `properties`, `required`, `additionalProperties`,
/// `items`).
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        return check(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(doc, part, value, at)?;
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && !one.iter().any(|s| check(doc, s, value, at).is_ok())
    {
        return Err(format!("{at}: {value} matches none of {one:?}"));
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap();
            if !object.contains_key(key) {
                return Err(format!("{at}: `{key}` is missing"));
            }
        }
        for (key, item) in object {
            let path = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => check(doc, property, item, &path)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{path}: not in the document"));
                    }
                    Some(extra @ Value::Object(_)) => check(doc, extra, item, &path)?,
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The documented path template `path` falls under: the one with the most literal segments.
fn template_of(doc: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p.starts_with('{') || p == s)
        })
        .max_by_key(|template| template.split('/').filter(|p| !p.starts_with('{')).count())
        .cloned()
}

/// SES on SDK mocks: the primary's account-level suppression list holds two addresses and
/// takes any pushed; the backup's SES throttles every call (a 502 for the caller).
fn ses_of_primary() -> sesguard::adapters::sesv2::Sesv2Accounts {
    use aws_sdk_sesv2::operation::list_suppressed_destinations::ListSuppressedDestinationsOutput;
    use aws_sdk_sesv2::operation::put_suppressed_destination::PutSuppressedDestinationOutput;
    use aws_sdk_sesv2::types::{SuppressedDestinationSummary, SuppressionListReason};
    use aws_smithy_mocks::mock;
    let summary = |email: &str, reason| {
        SuppressedDestinationSummary::builder()
            .email_address(email)
            .reason(reason)
            .last_update_time(aws_sdk_sesv2::primitives::DateTime::from_secs(0))
            .build()
            .unwrap()
    };
    let list = mock!(aws_sdk_sesv2::Client::list_suppressed_destinations).then_output(move || {
        ListSuppressedDestinationsOutput::builder()
            .suppressed_destination_summaries(summary(
                "x@example.com",
                SuppressionListReason::Bounce,
            ))
            .suppressed_destination_summaries(summary(
                "y@example.com",
                SuppressionListReason::Complaint,
            ))
            .build()
    });
    let put = mock!(aws_sdk_sesv2::Client::put_suppressed_destination)
        .then_output(|| PutSuppressedDestinationOutput::builder().build());
    let throttled = || {
        aws_sdk_sesv2::types::error::TooManyRequestsException::builder()
            .message("Rate exceeded")
            .build()
    };
    use aws_sdk_sesv2::operation::list_suppressed_destinations::ListSuppressedDestinationsError;
    use aws_sdk_sesv2::operation::put_suppressed_destination::PutSuppressedDestinationError;
    let list_throttled = mock!(aws_sdk_sesv2::Client::list_suppressed_destinations)
        .then_error(move || ListSuppressedDestinationsError::TooManyRequestsException(throttled()));
    let put_throttled = mock!(aws_sdk_sesv2::Client::put_suppressed_destination)
        .then_error(move || PutSuppressedDestinationError::TooManyRequestsException(throttled()));
    let client = |rules: &[&aws_smithy_mocks::Rule]| sesguard::adapters::sesv2::AccountClient {
        client: crate::helpers::mocked_sesv2(rules),
        enforcement: sesguard::config::Enforcement::Off,
        configuration_set: None,
    };
    sesguard::adapters::sesv2::Sesv2Accounts::with_clients(std::collections::HashMap::from([
        ("primary".to_owned(), client(&[&list, &put])),
        (
            "backup".to_owned(),
            client(&[&list_throttled, &put_throttled]),
        ),
    ]))
}

struct Api {
    _dir: tempfile::TempDir,
    state: AdminFunction,
    alerts: RecordedAlerts,
    /// (method, template, status) of every documented call made.
    seen: Mutex<BTreeSet<(String, String, u16)>>,
}

struct Answer {
    status: u16,
    body: Value,
    text: String,
    headers: lambda_http::http::HeaderMap,
}

impl Api {
    fn new() -> Self {
        Self::with_auth(Auth::token(Some(TOKEN)))
    }

    fn with_auth(auth: Auth) -> Self {
        let world = World::builder().build();
        let deps = world.deps.with_ses(Arc::new(ses_of_primary()));
        let alerts = world.alerts;
        Self {
            _dir: world.dir.expect("a SQLite world"),
            state: AdminFunction {
                context: deps,
                auth,
            },
            alerts,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    fn deps(&self) -> &Context {
        &self.state.context
    }

    async fn raw(&self, request: Request) -> Answer {
        let response = handle(&self.state, request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = String::from_utf8(response.body().to_vec()).unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            headers,
        }
    }

    /// Calls with the token and checks the answer against the document.
    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> Answer {
        let request = lambda_http::http::Request::builder()
            .method(method.clone())
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("x-sesguard-actor", "ana")
            .body(body.map_or(Body::Empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let answer = self.raw(request).await;
        let doc = doc();
        let path = uri.split('?').next().unwrap();
        let verb = method.as_str().to_lowercase();
        match template_of(&doc, path).filter(|t| doc["paths"][t].get(&verb).is_some()) {
            None if template_of(&doc, path).is_some() => assert_eq!(
                answer.status, 405,
                "{method} {uri}: a documented path, not this method"
            ),
            None => assert_eq!(answer.status, 404, "{method} {uri} is not documented"),
            Some(template) => {
                let operation = &doc["paths"][&template][&verb];
                let documented = &operation["responses"][answer.status.to_string()];
                assert!(
                    documented.is_object(),
                    "{method} {uri}: status {} is not documented: {}",
                    answer.status,
                    answer.text
                );
                if let Some(content) = documented.get("content") {
                    if let Some(json) = content.get("application/json") {
                        check(&doc, &json["schema"], &answer.body, "body").unwrap_or_else(|e| {
                            panic!("{method} {uri} ({}): {e}\n{}", answer.status, answer.text)
                        });
                    } else {
                        let content_type = answer.headers["content-type"].to_str().unwrap();
                        assert!(content.get(content_type).is_some(), "{content_type}");
                    }
                }
                self.seen
                    .lock()
                    .unwrap()
                    .insert((verb, template, answer.status));
            }
        }
        answer
    }
}

#[tokio::test]
async fn no_request_is_served_without_authentication() {
    let api = Api::new();
    let request = |auth: Option<&str>, path: &str| {
        let mut builder = lambda_http::http::Request::builder().uri(path);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        builder.body(Body::Empty).unwrap()
    };
    for path in ["/accounts", "/suppressions/a@example.com", "/no/such/route"] {
        for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(TOKEN)] {
            let answer = api.raw(request(auth, path)).await;
            assert_eq!(answer.status, 401, "{path} with {auth:?}");
            assert!(
                answer.body["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("authentication")
            );
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
        }
    }
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        api.raw(request(Some(&bearer), "/accounts")).await.status,
        200
    );
    assert_eq!(
        api.raw(request(Some(&bearer), "/no/such/route"))
            .await
            .status,
        404
    );

    // No token configured (or one too short to be a secret): nothing is served.
    for auth in [Auth::token(None), Auth::token(Some("short"))] {
        let api = Api::with_auth(auth);
        let answer = api.raw(request(Some("Bearer short"), "/accounts")).await;
        assert_eq!(answer.status, 401);
    }
}

#[tokio::test]
async fn under_iam_auth_the_verified_caller_is_required_and_recorded() {
    use lambda_http::request::RequestContext;
    let api = Api::with_auth(Auth::Iam);
    let unsigned = lambda_http::http::Request::builder()
        .method(Method::POST)
        .uri("/accounts/primary/pause")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(r#"{"reason":"x"}"#))
        .unwrap();
    assert_eq!(
        api.raw(unsigned).await.status,
        401,
        "a token is no IAM caller"
    );

    let context: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext =
        serde_json::from_value(json!({
            "routeKey": "$default", "accountId": "111111111111", "stage": "$default",
            "requestId": "r", "apiId": "x", "domainName": "x", "domainPrefix": "x",
            "time": "21/Nov/2026:12:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/accounts/primary/pause", "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "test"},
            "authorizer": {"iam": {"accessKey": "AKIA", "accountId": "111111111111",
                "callerId": "AIDA", "userArn": "arn:aws:iam::111111111111:user/ana", "userId": "AIDA"}}
        }))
        .unwrap();
    let mut signed = lambda_http::http::Request::builder()
        .method(Method::POST)
        .uri("/accounts/primary/pause")
        .body(Body::from(r#"{"reason":"bounce spike"}"#))
        .unwrap();
    signed
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    let answer = api.raw(signed).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.body["actor"],
        "operator:arn:aws:iam::111111111111:user/ana"
    );
}

/// One call of the route table and what its answer holds: its status, values at JSON pointers
/// of its body (given as JSON text; numbers compare as numbers), and a phrase of its text.
struct Case {
    method: Method,
    uri: &'static str,
    body: Option<&'static str>,
    status: u16,
    holds: &'static [(&'static str, &'static str)],
    says: &'static str,
}

/// A call answered with `status`, its body left unchecked beyond the document's schema.
const fn answered(
    method: Method,
    uri: &'static str,
    body: Option<&'static str>,
    status: u16,
) -> Case {
    Case {
        method,
        uri,
        body,
        status,
        holds: &[],
        says: "",
    }
}

/// A call answered with `status` whose body holds `holds`.
const fn holding(
    method: Method,
    uri: &'static str,
    body: Option<&'static str>,
    status: u16,
    holds: &'static [(&'static str, &'static str)],
) -> Case {
    Case {
        method,
        uri,
        body,
        status,
        holds,
        says: "",
    }
}

/// A call refused with `status`, its message saying `says`.
const fn refused(
    method: Method,
    uri: &'static str,
    body: Option<&'static str>,
    status: u16,
    says: &'static str,
) -> Case {
    Case {
        method,
        uri,
        body,
        status,
        holds: &[],
        says,
    }
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

/// The accounts' routes up to the first pause, in order: each case sees what the ones before
/// it changed.
const PAUSE: &[Case] = &[
    holding(
        GET,
        "/accounts",
        None,
        200,
        &[("/accounts/0/name", r#""primary""#)],
    ),
    holding(
        GET,
        "/accounts/primary/status",
        None,
        200,
        &[
            ("/can_send", "true"),
            ("/daily_quota/limit", "5000000"),
            ("/periods/second/limit", "50"),
            ("/hard_bounces", "2"),
        ],
    ),
    answered(GET, "/accounts/nope/status", None, 404),
    holding(
        POST,
        "/accounts/primary/pause",
        Some(r#"{"reason":"incident 42","duration":"30m"}"#),
        200,
        &[("/to", r#""paused""#), ("/actor", r#""operator:ana""#)],
    ),
];

/// The accounts' routes after it.
const ACCOUNTS: &[Case] = &[
    answered(
        POST,
        "/accounts/primary/pause",
        Some(r#"{"reason":"x"}"#),
        409,
    ),
    holding(
        GET,
        "/accounts/primary/status",
        None,
        200,
        &[
            ("/is_paused", "true"),
            ("/can_send", "false"),
            ("/blocked_by", r#"["paused"]"#),
            ("/pause_remaining_seconds", "1800"),
            ("/wait_seconds", "1800"),
        ],
    ),
    refused(
        POST,
        "/accounts/primary/pause",
        Some(r#"{"duration":"5m"}"#),
        400,
        "reason",
    ),
    answered(POST, "/accounts/nope/pause", Some(r#"{"reason":"x"}"#), 404),
    holding(
        POST,
        "/accounts/primary/resume",
        Some(r#"{"reason":"fixed","probation":false}"#),
        200,
        &[
            ("/to", r#""active""#),
            ("/note", r#""fixed (without probation)""#),
        ],
    ),
    refused(
        POST,
        "/accounts/primary/resume",
        Some(r#"{"reason":"again"}"#),
        409,
        "not paused",
    ),
    refused(POST, "/accounts/primary/resume", Some("{}"), 400, "reason"),
    answered(
        POST,
        "/accounts/nope/resume",
        Some(r#"{"reason":"x"}"#),
        404,
    ),
    holding(
        POST,
        "/accounts/primary/streams/bulk/pause",
        Some(r#"{"reason":"list import gone wrong"}"#),
        200,
        &[("/stream", r#""bulk""#)],
    ),
    answered(
        POST,
        "/accounts/primary/streams/bulk/pause",
        Some(r#"{"reason":"x"}"#),
        409,
    ),
    refused(
        POST,
        "/accounts/primary/streams/bulk/pause",
        Some(r#"{"reason":"x","duration":"5m"}"#),
        400,
        "duration",
    ),
    answered(
        POST,
        "/accounts/backup/streams/bulk/pause",
        Some(r#"{"reason":"x"}"#),
        404,
    ),
    holding(
        POST,
        "/accounts/primary/streams/bulk/resume",
        Some(r#"{"reason":"cleaned"}"#),
        200,
        &[("/to", r#""probation""#), ("/share", "0.1")],
    ),
    // Resuming a stream on probation ends its probation.
    holding(
        POST,
        "/accounts/primary/streams/bulk/resume",
        Some(r#"{"reason":"x"}"#),
        200,
        &[("/from", r#""probation""#), ("/to", r#""active""#)],
    ),
    answered(
        POST,
        "/accounts/primary/streams/bulk/resume",
        Some(r#"{"reason":"again"}"#),
        409,
    ),
    refused(
        POST,
        "/accounts/primary/streams/bulk/resume",
        Some("{}"),
        400,
        "reason",
    ),
    answered(
        POST,
        "/accounts/primary/streams/nope/resume",
        Some(r#"{"reason":"x"}"#),
        404,
    ),
    // Pause, resume, quarantine, lift onto probation, probation ended: newest first, with the
    // reason.
    holding(
        GET,
        "/accounts/primary/history?limit=10",
        None,
        200,
        &[
            ("/entries/1/note", r#""cleaned""#),
            ("/entries/1/to", r#""probation""#),
            ("/entries/4/to", r#""paused""#),
            ("/entries/5", "null"),
        ],
    ),
    refused(GET, "/accounts/primary/history?limit=0", None, 400, "limit"),
    answered(GET, "/accounts/nope/history", None, 404),
];

/// The limits' routes, in order.
const LIMITS: &[Case] = &[
    holding(
        GET,
        "/accounts/backup/limits",
        None,
        200,
        &[("/effective/capacity", "1.4")],
    ),
    answered(GET, "/accounts/nope/limits", None, 404),
    holding(
        PATCH,
        "/accounts/backup/limits",
        Some(r#"{"reason":"warming up","per_minute":100,"capacity":7}"#),
        200,
        &[
            // Held to SES's line: at 14 sends a second, a burst of at most 5.
            ("/effective/capacity", "5"),
            ("/effective/per_minute", "100"),
            ("/configured/capacity", "1.4"),
        ],
    ),
    // A window limit given as null is lifted; earlier changes stay.
    holding(
        PATCH,
        "/accounts/backup/limits",
        Some(r#"{"reason":"done","per_minute":null}"#),
        200,
        &[
            ("/effective/per_minute", "null"),
            ("/effective/capacity", "5"),
        ],
    ),
    refused(
        PATCH,
        "/accounts/backup/limits",
        Some(r#"{"reason":"x","capacity":0}"#),
        400,
        "capacity",
    ),
    refused(
        PATCH,
        "/accounts/backup/limits",
        Some(r#"{"reason":"x","burst":3}"#),
        400,
        "burst",
    ),
    answered(
        PATCH,
        "/accounts/nope/limits",
        Some(r#"{"reason":"x","capacity":3}"#),
        404,
    ),
    holding(
        POST,
        "/accounts/backup/refill",
        Some(r#"{"reason":"test run"}"#),
        200,
        &[("/periods/second/available", "5")],
    ),
    refused(POST, "/accounts/backup/refill", None, 400, "reason"),
    answered(
        POST,
        "/accounts/nope/refill",
        Some(r#"{"reason":"x"}"#),
        404,
    ),
];

/// The suppressions' routes, in order (their pages and exports are followed in code).
const SUPPRESSIONS: &[Case] = &[
    holding(
        GET,
        "/suppressions/nobody%40example.org",
        None,
        200,
        &[("/reason", r#""bounce""#)],
    ),
    answered(GET, "/suppressions/fine@example.com", None, 404),
    answered(GET, "/suppressions/not-an-address", None, 400),
    holding(
        PUT,
        "/suppressions/Ops@Example.com",
        Some(r#"{"reason":"asked to be left alone"}"#),
        201,
        &[("/email", r#""ops@example.com""#)],
    ),
    // Already suppressed: the first reason stays.
    holding(
        PUT,
        "/suppressions/nobody@example.org",
        Some(r#"{"reason":"x"}"#),
        200,
        &[("/reason", r#""bounce""#)],
    ),
    refused(
        PUT,
        "/suppressions/ops@example.com",
        Some("{}"),
        400,
        "reason",
    ),
];

/// Listing by reason, and importing a CSV list.
const IMPORTS: &[Case] = &[
    holding(
        GET,
        "/suppressions?reason=manual",
        None,
        200,
        &[("/items/0/email", r#""ops@example.com""#)],
    ),
    answered(GET, "/suppressions?reason=angry", None, 400),
    holding(
        POST,
        "/suppressions/import?format=csv&reason=migration",
        Some(
            "email,reason\na@example.com\nb@example.com,complaint\nnot an address\nops@example.com\n",
        ),
        200,
        &[
            ("/added", "2"),
            ("/already", "1"),
            ("/invalid_count", "1"),
            ("/invalid/0/line", "4"),
        ],
    ),
    refused(
        POST,
        "/suppressions/import?format=csv",
        Some("a@example.com"),
        400,
        "reason",
    ),
];

/// Exports in a format there is not, and removals.
const REMOVALS: &[Case] = &[
    answered(GET, "/suppressions/export?format=xml", None, 400),
    holding(
        DELETE,
        "/suppressions/nobody@example.org?reason=confirmed%20fixed",
        None,
        200,
        &[("/removed/reason", r#""bounce""#)],
    ),
    answered(
        DELETE,
        "/suppressions/nobody@example.org",
        Some(r#"{"reason":"again"}"#),
        404,
    ),
    refused(DELETE, "/suppressions/ops@example.com", None, 400, "reason"),
];

/// SES's account-level suppression list: the primary's SES answers, the backup's is throttled
/// (502).
const SES_LISTS: &[Case] = &[
    holding(
        POST,
        "/suppressions/ses/import",
        Some(r#"{"reason":"sync","account":"primary"}"#),
        200,
        &[("/read", "2"), ("/added", "2")],
    ),
    // SES's reason is kept.
    holding(
        GET,
        "/suppressions/y@example.com",
        None,
        200,
        &[("/reason", r#""complaint""#)],
    ),
    answered(
        POST,
        "/suppressions/ses/import",
        Some(r#"{"reason":"sync","account":"backup"}"#),
        502,
    ),
    answered(
        POST,
        "/suppressions/ses/import",
        Some(r#"{"reason":"sync","account":"nope"}"#),
        404,
    ),
    refused(
        POST,
        "/suppressions/ses/import",
        Some(r#"{"account":"primary"}"#),
        400,
        "reason",
    ),
    // b@ and y@ are complaints.
    holding(
        POST,
        "/suppressions/ses/push",
        Some(r#"{"reason":"sync","account":"primary","only":"complaint"}"#),
        200,
        &[("/pushed", "2")],
    ),
    answered(
        POST,
        "/suppressions/ses/push",
        Some(r#"{"reason":"sync","account":"backup"}"#),
        502,
    ),
    answered(
        POST,
        "/suppressions/ses/push",
        Some(r#"{"reason":"sync","account":"nope"}"#),
        404,
    ),
    refused(
        POST,
        "/suppressions/ses/push",
        Some(r#"{"reason":"sync"}"#),
        400,
        "account",
    ),
];

/// The template policy and the audit log.
const POLICY: &[Case] = &[
    answered(GET, "/policy/templates", None, 200),
    holding(
        PUT,
        "/policy/templates",
        Some(r#"{"reason":"incident 42","blocked":["newsletter"]}"#),
        200,
        &[("", r#"{"blocked": ["newsletter"], "verified_only": []}"#)],
    ),
    refused(
        PUT,
        "/policy/templates",
        Some(r#"{"blocked":["x"]}"#),
        400,
        "reason",
    ),
    holding(
        GET,
        "/audit?limit=100",
        None,
        200,
        &[
            ("/entries/3/reason", r#""confirmed fixed""#),
            ("/entries/3/actor", r#""operator:ana""#),
            // The removed record.
            ("/entries/3/detail/reason", r#""bounce""#),
        ],
    ),
    refused(GET, "/audit?limit=x", None, 400, "limit"),
];

/// Prevention's checks through the API, DNS off: what needs no DNS is decided, the rest is
/// deliverable (fails open).
const ADDRESSES: &[Case] = &[
    holding(
        POST,
        "/addresses/check",
        Some(r#"{"addresses":["abc@gmail.com","who@mailinator.com","Jane@Shop.Example"]}"#),
        200,
        &[
            ("/results/0/reason", r#""impossible_local_part""#),
            ("/results/1/reason", r#""disposable""#),
            ("/results/2/address", r#""jane@shop.example""#),
            ("/results/2/deliverable", "true"),
            ("/results/2/dns", r#""unknown""#),
            ("/lookups/unknown", "1"),
        ],
    ),
    holding(
        POST,
        "/addresses/check",
        Some(r#"{"address":"jane.doe@gmial.com"}"#),
        200,
        &[
            ("/results/0/reason", r#""typo_domain""#),
            ("/results/0/suggestion", r#""gmail.com""#),
        ],
    ),
    refused(
        POST,
        "/addresses/check",
        Some(r#"{"addresses":[]}"#),
        400,
        "1 to 1000",
    ),
    refused(
        POST,
        "/addresses/check",
        Some(r#"{"address":"not an address"}"#),
        400,
        "address",
    ),
    refused(
        POST,
        "/addresses/check",
        Some(r#"{"emails":["a@b.example"]}"#),
        400,
        "unknown field",
    ),
    refused(
        POST,
        "/addresses/check",
        Some(r#"{"address":"a@shop.example","addresses":["b@shop.example"]}"#),
        400,
        "not both",
    ),
];

/// Whether `value` is what `expected` (JSON text) says: numbers compare as numbers.
fn same(value: Option<&Value>, expected: &str) -> bool {
    let expected: Value = serde_json::from_str(expected).expect("an expectation is JSON");
    match (value.unwrap_or(&Value::Null), &expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (value, expected) => value == expected,
    }
}

impl Api {
    /// Calls every case in order and checks each answer.
    async fn play(&self, cases: &[Case]) {
        for case in cases {
            let answer = self.call(case.method.clone(), case.uri, case.body).await;
            let call = format!("{} {}", case.method, case.uri);
            assert_eq!(answer.status, case.status, "{call}: {}", answer.text);
            for (pointer, expected) in case.holds {
                assert!(
                    same(answer.body.pointer(pointer), expected),
                    "{call}: {pointer} is {:?}, not {expected}",
                    answer.body.pointer(pointer)
                );
            }
            assert!(answer.text.contains(case.says), "{call}: {}", answer.text);
        }
    }
}

#[tokio::test]
async fn every_documented_route_answers_as_documented() {
    let api = Api::new();
    let deps = api.deps();
    Ingestor::of(deps)
        .ingest(
            crate::helpers::sample_inbound("ses/bounce-permanent.json"),
            deps.clock.now(),
        )
        .await;

    api.play(PAUSE).await;
    assert_eq!(api.alerts.all().len(), 1, "a pause is alerted");
    api.play(ACCOUNTS).await;
    api.play(LIMITS).await;
    api.play(SUPPRESSIONS).await;
    pages(&api).await;
    api.play(IMPORTS).await;
    exports(&api).await;
    api.play(REMOVALS).await;
    api.play(SES_LISTS).await;
    api.play(POLICY).await;
    api.play(ADDRESSES).await;
    let audit = api.call(GET, "/audit?limit=100", None).await;
    let actions: Vec<&str> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "policy.templates",
            "suppression.push",
            "suppression.import",
            "suppression.remove",
            "suppression.import",
            "suppression.add",
            "suppression.add",
            "account.refill",
            "account.limits",
            "account.limits"
        ]
    );

    // A local run's SES cannot be asked at all: 409, not a 502 (the routes' 409s are seen here).
    let mut local = Api::new();
    local.state.context = local.state.context.clone().with_ses(Arc::new(NoSes));
    local
        .play(&[
            answered(
                PUT,
                "/suppressions/a@example.com",
                Some(r#"{"reason":"x"}"#),
                201,
            ),
            refused(
                POST,
                "/suppressions/ses/import",
                Some(r#"{"reason":"sync","account":"backup"}"#),
                409,
                "SES",
            ),
            refused(
                POST,
                "/suppressions/ses/push",
                Some(r#"{"reason":"sync","account":"backup"}"#),
                409,
                "SES",
            ),
        ])
        .await;
    api.seen
        .lock()
        .unwrap()
        .extend(local.seen.into_inner().unwrap());
    every_documented_answer_was_seen(&api);
}

/// The suppression list's pages, each following the cursor the last one gave.
async fn pages(api: &Api) {
    let page = api.call(GET, "/suppressions?limit=2", None).await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let next = page.body["next"].as_str().unwrap().to_owned();
    let rest = api
        .call(GET, &format!("/suppressions?limit=2&cursor={next}"), None)
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1, "3 in all");
}

/// The suppression list's exports, the second following the cursor the first gave.
async fn exports(api: &Api) {
    let exported = api
        .call(GET, "/suppressions/export?format=csv&limit=3", None)
        .await;
    assert_eq!(
        exported.text.lines().next(),
        Some("email,reason,count,first_seen,last_seen")
    );
    assert_eq!(exported.text.lines().count(), 1 + 3);
    let cursor = exported.headers["x-next-cursor"]
        .to_str()
        .unwrap()
        .to_owned();
    let last = api
        .call(GET, &format!("/suppressions/export?cursor={cursor}"), None)
        .await;
    assert_eq!(
        last.text.lines().count(),
        2,
        "jsonl, no header: the last 2 of 5"
    );
    assert!(last.headers.get("x-next-cursor").is_none());
}

/// Every documented operation was called, and every documented status seen (401 and 503 are
/// the authentication test's and the store failure test's).
fn every_documented_answer_was_seen(api: &Api) {
    let doc = doc();
    let seen = api.seen.lock().unwrap().clone();
    let mut missing = Vec::new();
    for (template, operations) in doc["paths"].as_object().unwrap() {
        for (verb, operation) in operations.as_object().unwrap() {
            for status in operation["responses"].as_object().unwrap().keys() {
                let status: u16 = status.parse().unwrap();
                if status == 401 || status == 503 {
                    continue;
                }
                if !seen.contains(&(verb.clone(), template.clone(), status)) {
                    missing.push(format!("{verb} {template} {status}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never answered: {missing:?}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_naming_the_problem() {
    let api = Api::new();
    use Method as M;
    let cases: [(M, &str, Option<&str>, u16, &str); 11] = [
        (
            M::POST,
            "/accounts/primary/pause",
            Some("not json"),
            400,
            "not JSON",
        ),
        (
            M::POST,
            "/accounts/primary/pause",
            Some("[1]"),
            400,
            "JSON object",
        ),
        (
            M::POST,
            "/accounts/primary/pause",
            Some(r#"{"reason":"x","why":"y"}"#),
            400,
            "unknown field `why`",
        ),
        (
            M::POST,
            "/accounts/primary/pause",
            Some(r#"{"reason":"x","duration":"soon"}"#),
            400,
            "`duration` `soon`",
        ),
        (
            M::POST,
            "/accounts/primary/pause",
            Some(r#"{"reason":"  "}"#),
            400,
            "a reason is required",
        ),
        (
            M::PUT,
            "/suppressions/bob",
            Some(r#"{"reason":"x"}"#),
            400,
            "bob",
        ),
        (
            M::GET,
            "/accounts/nope/status",
            None,
            404,
            "unknown account `nope`",
        ),
        (
            M::GET,
            "/suppressions?limit=5000",
            None,
            400,
            "`limit` must be 1 to 1000",
        ),
        (
            M::DELETE,
            "/accounts",
            None,
            405,
            "DELETE is not a method of /accounts: it answers GET",
        ),
        (
            M::GET,
            "/no/such/route",
            None,
            404,
            "no route GET /no/such/route",
        ),
        (
            M::PATCH,
            "/accounts/primary/limits",
            Some(r#"{"reason":"x"}"#),
            400,
            "nothing to change",
        ),
    ];
    for (method, uri, body, status, message) in cases {
        let answer = api.call(method.clone(), uri, body).await;
        assert_eq!(answer.status, status, "{method} {uri}: {}", answer.text);
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{method} {uri}: `{error}` lacks `{message}`"
        );
    }
}

#[tokio::test]
async fn an_unreachable_store_answers_503() {
    let (deps, _) = deps_with(example_config(), Arc::new(crate::ingest_paths::Unreachable));
    let api = Api {
        _dir: tempfile::tempdir().unwrap(),
        state: AdminFunction {
            context: deps,
            auth: Auth::token(Some(TOKEN)),
        },
        alerts: RecordedAlerts::default(),
        seen: Mutex::new(BTreeSet::new()),
    };
    let answer = api
        .call(Method::GET, "/suppressions/a@example.com", None)
        .await;
    assert_eq!(answer.status, 503);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("store unavailable")
    );
}

#[tokio::test]
async fn limits_changed_through_the_api_bind_the_next_send_batch() {
    use sesguard::app::send::{Queued, Sender, SenderMemory};
    use sesguard::domain::sending::request::SendRequest;
    let api = Api::new();
    let patched = api
        .call(
            Method::PATCH,
            "/accounts/primary/limits",
            Some(r#"{"reason":"throttle","per_minute":1}"#),
        )
        .await;
    assert_eq!(patched.status, 200);
    let deps = api.deps();
    let memory = SenderMemory::default();
    let batch: Vec<Queued> = (0..2)
        .map(|i| {
            Queued::new(
                i.to_string(),
                SendRequest::parse(&format!(
                    r#"{{"stream":"bulk","to":["u{i}@example.com"],"subject":"s","text":"t"}}"#
                ))
                .map_err(|e| e.to_string()),
            )
        })
        .collect();
    let outbox = sesguard::adapters::outbox::FileOutbox::new(api._dir.path().join("outbox"));
    let judged = Sender::of(deps, &memory)
        .with_transport(&outbox)
        .send(batch, deps.clock.now())
        .await
        .unwrap();
    let names: Vec<&str> = judged.iter().map(|j| j.decision.name()).collect();
    assert_eq!(
        names,
        ["sent", "deferred"],
        "one a minute on the bulk stream's only account"
    );
    let status = api
        .call(Method::GET, "/accounts/primary/status", None)
        .await;
    assert_eq!(status.body["periods"]["minute"]["status"], "exhausted");
    assert_eq!(status.body["blocked_by"], json!(["send_rate"]));
}

#[tokio::test]
async fn the_status_page_has_its_own_sign_in_and_its_cookie_opens_nothing_else() {
    let api = Api::new();
    // Something to show: the primary paused by an operator whose reason needs escaping.
    let paused = api
        .call(
            Method::POST,
            "/accounts/primary/pause",
            Some(r#"{"reason":"<script>alert(1)</script> list check"}"#),
        )
        .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let request = |method: Method, path: &str, cookie: Option<&str>, body: Option<&str>| {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        builder
            .body(body.map_or(Body::Empty, |b| Body::from(b.to_owned())))
            .unwrap()
    };

    let page = api.raw(request(Method::GET, "/", None, None)).await;
    assert_eq!(
        (page.status, page.headers["location"].to_str().unwrap()),
        (303, "login")
    );
    let form = api.raw(request(Method::GET, "/login", None, None)).await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains(r#"name="token""#), "{}", form.text);
    let wrong = api
        .raw(request(
            Method::POST,
            "/login",
            None,
            Some("token=not-the-token"),
        ))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("wrong token"));
    assert!(wrong.headers.get("set-cookie").is_none());

    let signed_in = api
        .raw(request(
            Method::POST,
            "/login",
            None,
            Some(&format!("token={}", TOKEN.replace(' ', "+"))),
        ))
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie does not hold the token"
    );
    let session = cookie.split(';').next().unwrap();

    let page = api
        .raw(request(Method::GET, "/", Some(session), None))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.headers["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    for expected in [
        r#"data-account="primary" data-state="paused""#,
        r#"data-account="backup" data-state="active""#,
        r#"class="chart""#,
        "&lt;script&gt;alert(1)&lt;/script&gt; list check",
    ] {
        assert!(page.text.contains(expected), "{expected} in {}", page.text);
    }
    assert!(!page.text.contains("<script>"), "nothing unescaped");
    let lookup = api
        .raw(request(
            Method::GET,
            "/?email=nobody%40example.org",
            Some(session),
            None,
        ))
        .await;
    assert!(
        lookup
            .text
            .contains("nobody@example.org</b>: nobody@example.org is not suppressed"),
        "{}",
        lookup.text
    );

    // The cookie opens the page alone: the API, and any change, still need the token.
    for (method, path) in [
        (Method::GET, "/accounts"),
        (Method::POST, "/accounts/primary/resume"),
    ] {
        let refused = api
            .raw(request(
                method,
                path,
                Some(session),
                Some(r#"{"reason":"x"}"#),
            ))
            .await;
        assert_eq!(refused.status, 401, "{path}");
    }
    let forged = api
        .raw(request(Method::GET, "/", Some("sesguard_session=00"), None))
        .await;
    assert_eq!(forged.status, 303, "a forged cookie is sent to sign in");
}

#[tokio::test]
async fn bodies_that_are_not_utf8_json_or_an_object_are_refused_by_name() {
    let api = Api::new();
    let send = |method: Method, path: &str, body: Vec<u8>| {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let cases: [(&[u8], &str); 4] = [
        (b"\xff\x1f8\t$", "the body is not UTF-8 text"),
        (b"1E", "the body is not JSON"),
        (b"[1]", "the body must be a JSON object"),
        (br#"{"reason":" \t\n"}"#, "a reason is required"),
    ];
    for (body, expected) in cases {
        let answer = api
            .raw(send(Method::POST, "/accounts/primary/pause", body.to_vec()))
            .await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert!(
            answer.body["error"].as_str().unwrap().contains(expected),
            "{}",
            answer.text
        );
    }
    let empty = api
        .raw(send(
            Method::POST,
            "/suppressions/import?reason=x",
            Vec::new(),
        ))
        .await;
    assert_eq!(empty.status, 400);
    assert!(empty.text.contains("the body is empty"), "{}", empty.text);
}

#[tokio::test]
async fn a_method_a_route_does_not_answer_is_405_with_the_methods_it_does() {
    let api = Api::new();
    for (method, path, allow) in [
        (Method::TRACE, "/accounts", "GET"),
        (Method::DELETE, "/accounts/primary/limits", "GET, PATCH"),
        (Method::GET, "/suppressions/import", "POST"),
        (
            Method::POST,
            "/suppressions/someone%40example.com",
            "GET, PUT, DELETE",
        ),
    ] {
        let request = lambda_http::http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::Empty)
            .unwrap();
        let answer = api.raw(request).await;
        assert_eq!(answer.status, 405, "{method} {path}: {}", answer.text);
        assert_eq!(answer.headers["allow"].to_str().unwrap(), allow);
    }
}

#[tokio::test]
async fn a_pause_length_and_the_limits_are_read_as_the_document_says() {
    let api = Api::new();
    let pause = |duration: &str| format!(r#"{{"reason":"x","duration":"{duration}"}}"#);
    for refused in [
        "1h 30m",
        "0m",
        "30",
        "m",
        "30M",
        "1234567s",
        "\\u00ae\\u0086",
    ] {
        let answer = api
            .call(
                Method::POST,
                "/accounts/primary/pause",
                Some(&pause(refused)),
            )
            .await;
        assert_eq!(answer.status, 400, "{refused}: {}", answer.text);
    }
    let paused = api
        .call(Method::POST, "/accounts/primary/pause", Some(&pause("30m")))
        .await;
    assert_eq!(paused.status, 200, "{}", paused.text);

    // A whole number written with a fraction is the same count; a fraction is not a count,
    // and a null capacity says nothing.
    let path = "/accounts/primary/limits";
    let whole = api
        .call(
            Method::PATCH,
            path,
            Some(r#"{"reason":"x","per_hour":284.0}"#),
        )
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.body["patch"]["per_hour"], 284);
    for refused in [
        r#"{"reason":"x","per_hour":284.5}"#,
        r#"{"reason":"x","per_hour":-1}"#,
        r#"{"reason":"x","capacity":null}"#,
        r#"{"reason":"x","enabled":null}"#,
    ] {
        let answer = api.call(Method::PATCH, path, Some(refused)).await;
        assert_eq!(answer.status, 400, "{refused}: {}", answer.text);
    }
}

#[tokio::test]
async fn a_push_of_many_goes_step_by_step_and_each_call_resumes_where_the_last_stopped() {
    use Method as M;
    use sesguard::domain::common::address::EmailAddress;
    use sesguard::domain::feedback::suppression::Reason;
    use sesguard::ports::ManualSuppression;
    let api = Api::new();
    let store = api.deps().store.clone();
    let complaints: Vec<ManualSuppression> = (0..450)
        .map(|i| ManualSuppression {
            email: EmailAddress::parse(&format!("p{i:03}@example.com")).unwrap(),
            reason: Reason::Complaint,
        })
        .collect();
    store
        .suppress(&complaints, api.deps().clock.now())
        .await
        .unwrap();
    let step = || async {
        let answer = api
            .call(
                M::POST,
                "/suppressions/ses/push",
                Some(r#"{"reason":"sync","account":"primary","only":"complaint"}"#),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let b = answer.body;
        (
            b["pushed"].clone(),
            b["total"].clone(),
            b["steps"].clone(),
            b["finished"].clone(),
        )
    };
    assert_eq!(
        step().await,
        (json!(200), json!(200), json!(1), json!(false))
    );
    let saved = store.job("push:primary:complaint").await.unwrap().unwrap();
    assert!(saved.cursor.is_some() && !saved.finished);
    assert!(
        !store
            .save_job(&sesguard::ports::JobProgress {
                version: saved.version - 1,
                ..saved.clone()
            })
            .await
            .unwrap(),
        "a step saved over an older version is refused"
    );
    assert_eq!(
        step().await,
        (json!(200), json!(400), json!(2), json!(false))
    );
    assert_eq!(step().await, (json!(50), json!(450), json!(3), json!(true)));
    assert_eq!(
        step().await,
        (json!(200), json!(200), json!(1), json!(false)),
        "after the end, a new run from the top"
    );
    let audit = api.deps().store.audit(10).await.unwrap();
    let pushes: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "suppression.push")
        .collect();
    assert_eq!(pushes.len(), 1, "one audit entry per finished run");
    assert_eq!(pushes[0].detail["pushed"], 450);
}
