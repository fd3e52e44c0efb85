//! SNS message signatures: the signing certificate (PEM, RSA) parsed once, its validity checked
//! at the time given, and the signature over [`Envelope::string_to_sign`] verified with
//! SHA1withRSA (version 1) or SHA256withRSA (version 2) by aws-lc-rs.

use aws_lc_rs::signature::{
    ParsedPublicKey, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256,
};
use base64::Engine as _;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::public_key::PublicKey;

use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::{Envelope, Rejection};

/// The shortest RSA key accepted (what SNS uses, and what the verifier can check).
pub const MIN_KEY_BITS: usize = 2048;

/// A parsed signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningCertificate {
    /// The RSA public key (PKCS#1 `RSAPublicKey`, DER).
    public_key: Vec<u8>,
    /// The key parsed once for each signature version: parsing it per message was a fifth of
    /// a bulk verification's time.
    keys: Keys,
    /// Validity, in seconds since the epoch.
    not_before: i64,
    not_after: i64,
}

impl SigningCertificate {
    /// Parses a PEM certificate with an RSA key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Rejection> {
        let refuse = |why: String| Rejection::Certificate(why);
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(pem).map_err(|e| refuse(format!("not PEM: {e}")))?;
        let certificate = pem
            .parse_x509()
            .map_err(|e| refuse(format!("not an X.509 certificate: {e}")))?;
        let key = certificate.public_key();
        if key.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
            return Err(refuse("its key is not RSA".into()));
        }
        // Refused by name: a short key is no signature at all, not a bad one.
        if let Ok(PublicKey::RSA(rsa)) = key.parsed()
            && rsa.key_size() < MIN_KEY_BITS
        {
            return Err(refuse(format!(
                "its RSA key has {} bits; at least {MIN_KEY_BITS} are required",
                rsa.key_size()
            )));
        }
        let public_key = key.subject_public_key.data.to_vec();
        let parse = |algorithm| {
            ParsedPublicKey::new(algorithm, &public_key)
                .map_err(|e| refuse(format!("its RSA key cannot be used: {e}")))
        };
        let keys = Keys {
            sha1: parse(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY)?,
            sha256: parse(&RSA_PKCS1_2048_8192_SHA256)?,
        };
        Ok(Self {
            keys,
            public_key,
            not_before: certificate.validity().not_before.timestamp(),
            not_after: certificate.validity().not_after.timestamp(),
        })
    }

    /// The end of its validity.
    pub fn not_after(&self) -> Timestamp {
        Timestamp::from_millis(self.not_after.saturating_mul(1000))
    }

    /// Refuses a certificate not valid at `now`.
    pub fn check_valid(&self, now: Timestamp) -> Result<(), Rejection> {
        let now = now.as_epoch_seconds();
        if now < self.not_before {
            return Err(Rejection::Certificate("it is not valid yet".into()));
        }
        if now > self.not_after {
            return Err(Rejection::Certificate("it has expired".into()));
        }
        Ok(())
    }

    /// Verifies the envelope's signature with this certificate's key.
    pub fn verify(&self, envelope: &Envelope) -> Result<(), Rejection> {
        let key = match envelope.signature_version.as_str() {
            "1" => &self.keys.sha1,
            "2" => &self.keys.sha256,
            other => return Err(Rejection::SignatureVersion(other.to_owned())),
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(envelope.signature.trim())
            .map_err(|_| Rejection::Signature)?;
        key.verify_sig(envelope.string_to_sign().as_bytes(), &signature)
            .map_err(|_| Rejection::Signature)
    }
}

/// The certificate's key, parsed for SHA1withRSA and SHA256withRSA. Compared and printed
/// through the DER it came from ([`SigningCertificate::public_key`]).
#[derive(Clone)]
struct Keys {
    sha1: ParsedPublicKey,
    sha256: ParsedPublicKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(parsed)")
    }
}

impl PartialEq for Keys {
    /// Both are parsed from the certificate's key, which the certificate compares.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Keys {}
