//! Who is asking the admin function: the operations API's caller (IAM through the function
//! URL, or a bearer token locally) and the status page's sign-in — its login form's answer and
//! the session cookie derived from the token — with the constant-time comparison both use.
//! Kept apart from the routes, which only ask [`authenticate`] and [`has_session`].

use lambda_http::http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use sha2::{Digest, Sha256};

use crate::lambda::http::{Answer, html, redirect};
use crate::lambda::status_page::login_form;
use crate::wiring::Auth;

/// The caller, or why the request is refused.
pub(crate) fn authenticate(auth: &Auth, request: &Request) -> Result<String, &'static str> {
    match auth {
        Auth::Iam => {
            let caller = match request.request_context_ref() {
                Some(RequestContext::ApiGatewayV2(context)) => context
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.iam.as_ref())
                    .and_then(|iam| iam.user_arn.clone().or(iam.caller_id.clone())),
                _ => None,
            };
            caller.ok_or("authentication required: sign the request with AWS SigV4 (IAM)")
        }
        Auth::Token(None) => Err("authentication required: no admin token is configured"),
        Auth::Token(Some(expected)) => {
            let given = request
                .headers()
                .get("authorization")
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .ok_or("authentication required: Authorization: Bearer TOKEN")?;
            let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
            if !same(&given, expected) {
                return Err("authentication failed: wrong token");
            }
            Ok(request
                .headers()
                .get("x-sesguard-actor")
                .and_then(|h| h.to_str().ok())
                .filter(|a| !a.is_empty() && a.len() <= 100)
                .unwrap_or("admin")
                .to_owned())
        }
    }
}

/// Whether two digests are equal, compared without an early exit.
pub(crate) fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The status page's cookie.
const SESSION_COOKIE: &str = "sesguard_session";

/// The session cookie's value for a token digest: derived from it, so the cookie never holds
/// the token itself.
fn session_value(token_digest: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"sesguard-status-page-session:");
    hasher.update(token_digest);
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the request carries the status page's session cookie for `expected`.
pub(crate) fn has_session(expected: &[u8; 32], request: &Request) -> bool {
    let wanted = hex(&session_value(expected));
    request
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            name == SESSION_COOKIE
                && value.len() == wanted.len()
                && same(
                    &Sha256::digest(value.as_bytes()).into(),
                    &Sha256::digest(wanted.as_bytes()).into(),
                )
        })
}

/// The login form and its answer (local `token` auth only; with IAM the function URL signs
/// requests, so a browser reaches the page through a SigV4-signing proxy).
pub(crate) fn login(auth: &Auth, request: &Request) -> Answer {
    let Auth::Token(Some(expected)) = auth else {
        return html(
            404,
            login_form(Some(
                "no token sign-in here: this function authenticates with IAM (or has no token)",
            )),
        );
    };
    if request.method() != Method::POST {
        return html(200, login_form(None));
    }
    let token = std::str::from_utf8(request.body().as_ref())
        .ok()
        .and_then(|form| {
            form.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == "token").then(|| {
                    percent_encoding::percent_decode_str(&value.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                })
            })
        })
        .unwrap_or_default();
    if !same(&Sha256::digest(token.trim().as_bytes()).into(), expected) {
        tracing::info!("status page sign-in refused: wrong token");
        return html(401, login_form(Some("wrong token")));
    }
    let mut answer = redirect("./");
    answer.headers.push((
        "set-cookie",
        format!(
            "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200",
            hex(&session_value(expected))
        ),
    ));
    answer
}
