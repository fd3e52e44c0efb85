//! The `webhook` function: SNS HTTPS deliveries through a function URL or API Gateway. The
//! handler only reads the request and writes the answer; [`crate::app::webhook`] does the rest.

use lambda_http::{Body, Request, Response};

use crate::app::webhook::{Answer, Webhook};
use crate::domain::sns::delivery::Rejection;
use crate::telemetry::emf_line;
use crate::wiring::WebhookFunction;

fn json(status: u16, body: &serde_json::Value) -> Result<Response<Body>, lambda_http::Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?)
}

/// The Lambda handler.
pub async fn handle(
    state: &WebhookFunction,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    if request.method() != lambda_http::http::Method::POST {
        return json(
            405,
            &serde_json::json!({"status": "rejected", "reason": "method", "error": "SNS delivers with POST"}),
        );
    }
    let now = state.context.clock.now();
    let answer = Webhook::of(
        &state.context,
        &state.certificates,
        state.confirmer.as_ref(),
    )
    .receive(request.body().as_ref(), now)
    .await;
    if let Answer::Rejected(Rejection::Stale(_)) = &answer {
        // Feedback refused as stale is lost unless replayed: an alarm can watch this.
        println!(
            "{}",
            emf_line(now, &[("function", "webhook")], &[("stale_messages", 1)])
        );
    }
    json(answer.status(), &answer.body())
}
