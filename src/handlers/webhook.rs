//! The `webhook` function: SNS HTTPS deliveries through a function URL or API Gateway. The
//! handler only reads the request and writes the answer; [`crate::webhook`] does the rest.

use std::sync::Arc;

use anyhow::Context as _;
use lambda_http::{Body, Request, Response};

use crate::deps::Deps;
use crate::ports::{CertificateSource, SubscriptionConfirmer};
use crate::sns_http::{GivenCertificate, SnsHttp};
use crate::webhook::{Certificates, Webhook};

/// What the webhook needs, built once.
pub struct WebhookDeps {
    /// The shared dependencies.
    pub deps: Deps,
    /// Signing certificates, cached per instance.
    pub certificates: Certificates,
    /// Confirms subscriptions.
    pub confirmer: Arc<dyn SubscriptionConfirmer>,
}

impl WebhookDeps {
    /// From the environment. `SESGUARD_WEBHOOK_TRUSTED_CERT=PATH` (local testing only) trusts
    /// that certificate as if fetched from any valid signing-certificate URL; every other
    /// check still applies.
    pub async fn from_env() -> anyhow::Result<Self> {
        let deps = Deps::from_env().await?;
        let http = Arc::new(
            SnsHttp::new(deps.config.webhook.fetch_timeout).context("building the HTTPS client")?,
        );
        let source: Arc<dyn CertificateSource> = match std::env::var_os(
            "SESGUARD_WEBHOOK_TRUSTED_CERT",
        ) {
            Some(path) => {
                let pem = std::fs::read(&path)
                    .with_context(|| format!("reading {}", path.to_string_lossy()))?;
                tracing::warn!(
                    "SESGUARD_WEBHOOK_TRUSTED_CERT is set: signing certificates are not fetched (local testing only)"
                );
                Arc::new(GivenCertificate(pem))
            }
            None => http.clone(),
        };
        Ok(Self {
            deps,
            certificates: Certificates::new(source),
            confirmer: http,
        })
    }
}

fn json(status: u16, body: &serde_json::Value) -> Result<Response<Body>, lambda_http::Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?)
}

/// The Lambda handler.
pub async fn handle(
    state: &WebhookDeps,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    if request.method() != lambda_http::http::Method::POST {
        return json(
            405,
            &serde_json::json!({"status": "rejected", "reason": "method", "error": "SNS delivers with POST"}),
        );
    }
    let now = state.deps.clock.now();
    let answer = Webhook::new(
        &state.deps,
        &state.certificates,
        state.confirmer.as_ref(),
        &[],
    )
    .receive(request.body().as_ref(), now)
    .await;
    json(answer.status(), &answer.body())
}
