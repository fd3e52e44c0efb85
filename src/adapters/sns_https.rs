//! HTTPS to SNS: fetching signing certificates and confirming subscriptions, with a timeout,
//! https only (but for a local emulator on loopback), and no redirects followed. URLs are
//! checked by the domain before they get here.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{CertificateSource, FetchError, SubscriptionConfirmer};

/// Certificates are small; anything bigger is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// An HTTPS client for SNS, built once at init.
#[derive(Debug, Clone)]
pub struct SnsHttp {
    client: reqwest::Client,
}

impl SnsHttp {
    /// A client with this timeout per request, following no redirect, https only when
    /// `https_only` (always, but against a local emulator: [`SnsOrigin::https_only`]).
    ///
    /// [`SnsOrigin::https_only`]: crate::domain::sns::delivery::SnsOrigin::https_only
    pub fn new(timeout: Duration, https_only: bool) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(https_only)
            .build()?;
        Ok(Self { client })
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, FetchError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| FetchError {
            url: url.to_owned(),
            source,
        };
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| failed(Box::new(e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("answered {}", response.status()).into()));
        }
        Ok(response)
    }
}

#[async_trait]
impl CertificateSource for SnsHttp {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let body = self.get(url).await?.bytes().await.map_err(|e| FetchError {
            url: url.to_owned(),
            source: Box::new(e),
        })?;
        if body.len() > MAX_CERTIFICATE_BYTES {
            return Err(FetchError {
                url: url.to_owned(),
                source: "answer too large for a certificate".into(),
            });
        }
        Ok(body.to_vec())
    }
}

#[async_trait]
impl SubscriptionConfirmer for SnsHttp {
    async fn confirm(&self, url: &str) -> Result<(), FetchError> {
        self.get(url).await.map(|_| ())
    }
}

/// A certificate given by the operator, trusted as if fetched from any (valid) signing
/// certificate URL: `sns verify --cert`, and local tests. Every other check still applies.
#[derive(Debug, Clone)]
pub struct GivenCertificate(pub Vec<u8>);

#[async_trait]
impl CertificateSource for GivenCertificate {
    async fn fetch(&self, _url: &str) -> Result<Vec<u8>, FetchError> {
        Ok(self.0.clone())
    }
}
