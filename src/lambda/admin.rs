//! The `admin` function: the operations API over HTTP (a function URL). It authenticates the
//! caller, reads the route, the query and the JSON body, and answers with JSON; [`crate::app::admin`]
//! does the work. Routes are listed in `infra/openapi.json`.
//!
//! Authentication is required for every request, routes and 404s alike:
//! - `SESGUARD_ADMIN_AUTH=iam` (the deployment: a function URL with `AWS_IAM` auth): the
//!   request must carry the IAM caller that the function URL verified; it is the actor.
//! - otherwise (local runs): `Authorization: Bearer TOKEN` equal to `SESGUARD_ADMIN_TOKEN`
//!   (at least 16 characters; without one, nothing is served). The actor is the
//!   `X-Sesguard-Actor` header, or `admin`.
//!
//! The status page (`GET /`, [`crate::lambda::status_page`]) takes the same authentication,
//! or, for a browser, a cookie set by its login form (`GET`/`POST /login`, token auth only),
//! derived from the token and accepted for the page alone: it reads, it never changes anything,
//! so a cookie cannot be used to forge a change. Both are checked in [`crate::lambda::session`].

use std::collections::HashMap;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::admin::{Admin, AdminError, LineFormat};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::suppression::Suppression;
use crate::domain::sending::rate_limit::LimitsPatch;
use crate::domain::sending::template_policy::TemplatePolicy;
use crate::lambda::http::{Answer, error, query, redirect};
use crate::lambda::session::{authenticate, has_session, login};
use crate::lambda::status_page::status_page;
use crate::ports::Page;
use crate::telemetry::error_chain;
use crate::wiring::{AdminFunction, Auth};

fn ok(value: impl Serialize) -> Result<Answer, AdminError> {
    with_status(200, value)
}

fn with_status(status: u16, value: impl Serialize) -> Result<Answer, AdminError> {
    let body = serde_json::to_string(&value).map_err(|e| AdminError::Invalid(e.to_string()))?;
    Ok(Answer {
        status,
        body: Body::from(body),
        content_type: "application/json",
        headers: Vec::new(),
    })
}

/// The Lambda handler.
pub async fn handle(
    state: &AdminFunction,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let page = request.method() == Method::GET && path.is_empty();
    let session = match &state.auth {
        Auth::Token(Some(expected)) if page => has_session(expected, &request),
        _ => false,
    };
    let answer = match authenticate(&state.auth, &request) {
        _ if path == "/login" => login(&state.auth, &request),
        Err(_) if session => status_page(state, &request).await,
        Err(_) if page => redirect("login"),
        Ok(_) if page => status_page(state, &request).await,
        Err(why) => {
            let mut answer = error(401, why);
            answer
                .headers
                .push(("www-authenticate", "Bearer".to_owned()));
            answer
        }
        Ok(actor) => {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            match route(state, &request, &actor).await {
                Ok(answer) => {
                    tracing::info!(%method, path, actor, status = answer.status, "admin request");
                    answer
                }
                Err(failure) => {
                    let status = failure.http_status();
                    if status >= 500 {
                        tracing::error!(%method, path, actor, error = %error_chain(&failure), "admin request failed");
                    } else {
                        tracing::info!(%method, path, actor, status, error = %failure, "admin request refused");
                    }
                    error(status, &error_chain(&failure))
                }
            }
        }
    };
    Ok(answer.into_response()?)
}

/// The methods a route of this shape answers (`None`: no such route).
fn allowed(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["accounts"] | ["accounts", _, "status" | "history"] => "GET",
        ["accounts", _, "pause" | "resume" | "refill"]
        | ["accounts", _, "streams", _, "pause" | "resume"] => "POST",
        ["accounts", _, "limits"] => "GET, PATCH",
        ["suppressions"] | ["suppressions", "export"] => "GET",
        ["suppressions", "import"] | ["suppressions", "ses", "import" | "push"] => "POST",
        ["suppressions", _] => "GET, PUT, DELETE",
        ["policy", "templates"] => "GET, PUT",
        ["audit"] => "GET",
        ["addresses", "check"] => "POST",
        _ => return None,
    })
}

/// A pause's length as the document gives it: a whole number of seconds, minutes, hours or
/// days (`30m`, `2h`).
fn duration(text: &str) -> Result<std::time::Duration, AdminError> {
    let refused = || {
        AdminError::Invalid(format!(
            "`duration` `{text}` is not a whole number (1 to 999999) of s, m, h or d, such as \"30m\""
        ))
    };
    let Some(unit) = text.chars().last() else {
        return Err(refused());
    };
    let number = &text[..text.len() - unit.len_utf8()];
    let well_formed = (1..=6).contains(&number.len())
        && !number.starts_with('0')
        && number.bytes().all(|b| b.is_ascii_digit());
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(refused()),
    };
    if !well_formed {
        return Err(refused());
    }
    let count: u64 = number.parse().map_err(|_| refused())?;
    Ok(std::time::Duration::from_secs(count * seconds))
}

/// The JSON body as an object (empty when there is no body).
fn json_body(request: &Request) -> Result<serde_json::Map<String, Value>, AdminError> {
    let bytes = request.body().as_ref();
    if std::str::from_utf8(bytes).is_err() {
        return Err(AdminError::Invalid("the body is not UTF-8 text".into()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AdminError::Invalid("the body must be a JSON object".into())),
        Err(e) => Err(AdminError::Invalid(format!("the body is not JSON: {e}"))),
    }
}

/// Takes `reason` (required) out of the body or the query.
fn reason(
    body: &mut serde_json::Map<String, Value>,
    query: &HashMap<String, String>,
) -> Result<String, AdminError> {
    match body.remove("reason") {
        Some(Value::String(reason)) => Ok(reason),
        Some(_) => Err(AdminError::Invalid("`reason` must be a string".into())),
        None => query.get("reason").cloned().ok_or_else(|| {
            AdminError::Invalid("a reason is required: give `reason`, it is recorded".into())
        }),
    }
}

fn rest<T: serde::de::DeserializeOwned>(
    body: serde_json::Map<String, Value>,
) -> Result<T, AdminError> {
    serde_json::from_value(Value::Object(body)).map_err(|e| AdminError::Invalid(e.to_string()))
}

fn no_more(body: serde_json::Map<String, Value>) -> Result<(), AdminError> {
    match body.keys().next() {
        Some(key) => Err(AdminError::Invalid(format!("unknown field `{key}`"))),
        None => Ok(()),
    }
}

fn limit(query: &HashMap<String, String>, default: usize) -> Result<usize, AdminError> {
    match query.get("limit") {
        None => Ok(default),
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| AdminError::Invalid(format!("`limit` must be 1 to 1000, not `{text}`"))),
    }
}

/// What a route works with: the caller's operations, the request, its query and the time.
struct Call<'a> {
    admin: Admin<'a>,
    request: &'a Request,
    query: HashMap<String, String>,
    now: Timestamp,
}

impl Call<'_> {
    /// The JSON body with its `reason` (required) taken out.
    fn body_and_reason(&self) -> Result<(serde_json::Map<String, Value>, String), AdminError> {
        let mut body = json_body(self.request)?;
        let reason = reason(&mut body, &self.query)?;
        Ok((body, reason))
    }

    /// `format` from the query: JSON lines unless it says CSV.
    fn line_format(&self) -> Result<LineFormat, AdminError> {
        self.query
            .get("format")
            .map_or(Ok(LineFormat::Jsonl), |f| f.parse())
    }

    /// One page of the suppression list, as the query's `reason`, `cursor` and `limit` ask.
    async fn suppressions_page(
        &self,
        default_limit: usize,
    ) -> Result<Page<Suppression>, AdminError> {
        self.admin
            .suppressions(
                self.query.get("reason").map(String::as_str),
                self.query.get("cursor").map(String::as_str),
                limit(&self.query, default_limit)?,
            )
            .await
    }
}

/// The path's segments, percent-decoded.
fn segments(path: &str) -> Result<Vec<String>, AdminError> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| AdminError::Invalid(format!("`{s}` is not UTF-8 once decoded")))
        })
        .collect()
}

/// Answers an authenticated request: refuses a method its route does not answer, then hands it
/// to the routes of its resource.
async fn route(
    state: &AdminFunction,
    request: &Request,
    actor: &str,
) -> Result<Answer, AdminError> {
    let deps = &state.context;
    let admin = Admin::of(deps, actor);
    let now = deps.clock.now();
    let query = query(request);
    let call = Call {
        admin,
        request,
        query,
        now,
    };
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments = segments(&path)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method();
    if let Some(methods) = allowed(&segments)
        && !methods.split(", ").any(|m| m == method.as_str())
    {
        let mut answer = error(
            405,
            &format!("{method} is not a method of {path}: it answers {methods}"),
        );
        answer.headers.push(("allow", methods.to_owned()));
        return Ok(answer);
    }
    let answer = match segments.as_slice() {
        ["accounts", tail @ ..] => accounts_route(&call, method, tail).await?,
        ["suppressions", tail @ ..] => suppressions_route(&call, method, tail).await?,
        ["policy", "templates"] => policy_route(&call, method).await?,
        ["addresses", "check"] => Some(check_addresses(&call).await?),
        ["audit"] if method == Method::GET => {
            let entries = call.admin.audit_log(limit(&call.query, 50)?).await?;
            Some(ok(json!({ "entries": entries }))?)
        }
        _ => None,
    };
    answer.ok_or_else(|| {
        AdminError::NotFound(format!("no route {method} {path}: see infra/openapi.json"))
    })
}

/// `/accounts/...`: status, history, pause and resume, limits (`None`: no such route).
async fn accounts_route(
    call: &Call<'_>,
    method: &Method,
    tail: &[&str],
) -> Result<Option<Answer>, AdminError> {
    let (admin, now) = (&call.admin, call.now);
    let answer = match (method, tail) {
        (&Method::GET, []) => ok(json!({
            "accounts": admin.accounts(now).await?,
            "prevention": admin.prevention(now).await?,
        })),
        (&Method::GET, [name, "status"]) => ok(admin.account(name, now).await?),
        (&Method::GET, [name, "history"]) => {
            ok(json!({ "entries": admin.history(name, limit(&call.query, 50)?).await? }))
        }
        (&Method::POST, [name, action @ ("pause" | "resume")]) => {
            transition(call, name, None, action).await
        }
        (&Method::POST, [name, "streams", stream, action @ ("pause" | "resume")]) => {
            transition(call, name, Some((*stream).to_owned()), action).await
        }
        (&Method::GET, [name, "limits"]) => ok(admin.limits(name, now).await?),
        (&Method::PATCH, [name, "limits"]) => {
            let (body, reason) = call.body_and_reason()?;
            let patch: LimitsPatch = rest(body)?;
            ok(admin.set_limits(name, &patch, &reason, now).await?)
        }
        (&Method::POST, [name, "refill"]) => {
            let (body, reason) = call.body_and_reason()?;
            no_more(body)?;
            ok(admin.refill(name, &reason, now).await?)
        }
        _ => return Ok(None),
    };
    answer.map(Some)
}

/// `POST /accounts/NAME[/streams/STREAM]/pause|resume`: a pause (for a while, if `duration`
/// says) or a resume (on probation unless `probation` is false), with its reason.
async fn transition(
    call: &Call<'_>,
    name: &str,
    stream: Option<String>,
    action: &str,
) -> Result<Answer, AdminError> {
    let (mut body, reason) = call.body_and_reason()?;
    let duration = match body.remove("duration") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if action == "pause" => Some(duration(&text)?),
        Some(_) => {
            return Err(AdminError::Invalid(
                "`duration` is a pause's length such as \"30m\"".into(),
            ));
        }
    };
    let probation = match body.remove("probation") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(probation)) if action == "resume" => probation,
        Some(_) => {
            return Err(AdminError::Invalid(
                "`probation` is a resume's true or false".into(),
            ));
        }
    };
    no_more(body)?;
    let (admin, now) = (&call.admin, call.now);
    let entry = if action == "pause" {
        admin.pause(name, stream, duration, &reason, now).await?
    } else {
        admin.resume(name, stream, probation, &reason, now).await?
    };
    ok(entry)
}

/// `/suppressions/...`: the list, its export and import, SES's lists and one address
/// (`None`: no such route).
async fn suppressions_route(
    call: &Call<'_>,
    method: &Method,
    tail: &[&str],
) -> Result<Option<Answer>, AdminError> {
    let (admin, now) = (&call.admin, call.now);
    let answer = match (method, tail) {
        (&Method::GET, []) => {
            let page = call.suppressions_page(100).await?;
            ok(json!({ "items": page.items, "next": page.next }))
        }
        (&Method::GET, ["export"]) => export(call).await,
        (&Method::POST, ["import"]) => import(call).await,
        (&Method::POST, ["ses", direction @ ("import" | "push")]) => {
            ses_step(call, direction).await
        }
        (&Method::GET, [email]) => ok(admin.suppression(email).await?),
        (&Method::PUT, [email]) => {
            let (body, reason) = call.body_and_reason()?;
            no_more(body)?;
            let added = admin.suppress(email, &reason, now).await?;
            let suppression = admin.suppression(email).await?;
            with_status(if added { 201 } else { 200 }, suppression)
        }
        (&Method::DELETE, [email]) => {
            let (body, reason) = call.body_and_reason()?;
            no_more(body)?;
            ok(json!({ "removed": admin.unsuppress(email, &reason, now).await? }))
        }
        _ => return Ok(None),
    };
    answer.map(Some)
}

/// `GET /suppressions/export`: one page of the list as CSV or JSON lines (the CSV header on
/// the first), the next page's cursor in `x-next-cursor`.
async fn export(call: &Call<'_>) -> Result<Answer, AdminError> {
    let format = call.line_format()?;
    let page = call.suppressions_page(1000).await?;
    let mut text = String::new();
    if !call.query.contains_key("cursor")
        && let Some(header) = format.header()
    {
        text.push_str(header);
        text.push('\n');
    }
    for suppression in &page.items {
        text.push_str(&format.line(suppression));
        text.push('\n');
    }
    Ok(Answer {
        status: 200,
        body: Body::from(text),
        content_type: match format {
            LineFormat::Csv => "text/csv",
            LineFormat::Jsonl => "application/x-ndjson",
        },
        headers: page
            .next
            .map(|n| ("x-next-cursor", n))
            .into_iter()
            .collect(),
    })
}

/// `POST /suppressions/import`: suppresses the addresses of the body, CSV or JSON lines.
async fn import(call: &Call<'_>) -> Result<Answer, AdminError> {
    let format = call.line_format()?;
    let reason = call.query.get("reason").cloned().unwrap_or_default();
    let text = std::str::from_utf8(call.request.body().as_ref())
        .map_err(|_| AdminError::Invalid("the body is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(AdminError::Invalid(
            "the body is empty: send the addresses as CSV or JSON lines".into(),
        ));
    }
    let mut importer = call.admin.importer(format, &reason, call.now)?;
    for line in text.lines() {
        importer.line(line).await?;
    }
    let report = importer.finish("api", &reason).await?;
    ok(report)
}

/// `POST /suppressions/ses/import|push`: one bounded step of a resumable job moving an
/// account's SES list in or ours out; call again until `finished`.
async fn ses_step(call: &Call<'_>, direction: &str) -> Result<Answer, AdminError> {
    let (mut body, reason) = call.body_and_reason()?;
    let account = match body.remove("account") {
        Some(Value::String(account)) => account,
        _ => {
            return Err(AdminError::Invalid(
                "`account` (a string) is required".into(),
            ));
        }
    };
    let only = match body.remove("only") {
        None | Some(Value::Null) => None,
        Some(Value::String(only)) => Some(only),
        Some(_) => {
            return Err(AdminError::Invalid("`only` is a suppression reason".into()));
        }
    };
    no_more(body)?;
    let (admin, now) = (&call.admin, call.now);
    if direction == "import" {
        ok(admin.import_from_ses(&account, &reason, now).await?)
    } else {
        ok(admin
            .push_to_ses(&account, only.as_deref(), &reason, now)
            .await?)
    }
}

/// `POST /addresses/check`: `{"addresses": [...]}` or `{"address": "..."}`, each answered with
/// whether it can receive mail, why not, and a suggestion for a typo.
async fn check_addresses(call: &Call<'_>) -> Result<Answer, AdminError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        address: Option<String>,
        #[serde(default)]
        addresses: Vec<String>,
    }
    let body: Body = rest(json_body(call.request)?)?;
    if body.address.is_some() && !body.addresses.is_empty() {
        return Err(AdminError::Invalid(
            "give `address` or `addresses`, not both".into(),
        ));
    }
    let addresses: Vec<String> = body.address.into_iter().chain(body.addresses).collect();
    ok(call.admin.check_addresses(&addresses, call.now).await?)
}

/// `/policy/templates`: the template policy, read or replaced (`None`: no such route).
async fn policy_route(call: &Call<'_>, method: &Method) -> Result<Option<Answer>, AdminError> {
    let answer = match *method {
        Method::GET => ok(call.admin.policy().await?),
        Method::PUT => {
            let (body, reason) = call.body_and_reason()?;
            let policy: TemplatePolicy = rest(body)?;
            ok(call.admin.set_policy(&policy, &reason, call.now).await?)
        }
        _ => return Ok(None),
    };
    answer.map(Some)
}
