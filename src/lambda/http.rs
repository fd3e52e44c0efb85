//! HTTP for the admin function: an answer (status, body, content type, headers) and how it
//! becomes a Lambda response, the JSON error and HTML answers, and the query parameters of a
//! request. Shared by the operations API ([`crate::lambda::admin`]), its status page and its
//! sign-in; nothing here knows a route.

use std::collections::HashMap;

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

/// An answer: status and JSON body, or a text body for exports.
pub struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Body,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Answer {
    /// The Lambda response.
    pub(crate) fn into_response(self) -> Result<Response<Body>, lambda_http::http::Error> {
        let mut response = Response::builder()
            .status(self.status)
            .header("content-type", self.content_type);
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        response.body(self.body)
    }
}

/// A JSON error answer: `{"error": message}`.
pub(crate) fn error(status: u16, message: &str) -> Answer {
    Answer {
        status,
        body: Body::from(json!({ "error": message }).to_string()),
        content_type: "application/json",
        headers: Vec::new(),
    }
}

/// An HTML answer.
pub(crate) fn html(status: u16, text: String) -> Answer {
    Answer {
        status,
        body: Body::from(text),
        content_type: "text/html; charset=utf-8",
        headers: vec![
            ("cache-control", "no-store".to_owned()),
            (
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'".to_owned(),
            ),
        ],
    }
}

/// A redirect to `to` (303).
pub(crate) fn redirect(to: &str) -> Answer {
    let mut answer = html(303, String::new());
    answer.headers.push(("location", to.to_owned()));
    answer
}

/// The query parameters: those the event carried, and those of the URI.
pub(crate) fn query(request: &Request) -> HashMap<String, String> {
    let mut query: HashMap<String, String> = HashMap::new();
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    for pair in request.uri().query().unwrap_or_default().split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            query.insert(decode(key), decode(value));
        } else if !pair.is_empty() {
            query.insert(decode(pair), String::new());
        }
    }
    if let Some(given) = request.query_string_parameters_ref() {
        for (key, value) in given.iter() {
            query.insert(key.to_owned(), value.to_owned());
        }
    }
    query
}
