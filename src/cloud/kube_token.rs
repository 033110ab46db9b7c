//! Bearer tokens for the Kubernetes API of an Amazon EKS cluster.
//!
//! EKS authenticates IAM principals with the same scheme as `aws eks get-token` and
//! aws-iam-authenticator: the client presigns an STS `GetCallerIdentity` request and sends
//! the presigned URL itself as the bearer token. The API server replays that URL against
//! STS and maps the returned ARN to a Kubernetes identity. So the token is:
//!
//! ```text
//! k8s-aws-v1.<base64url, no padding, of
//!   https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15
//!   &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...&X-Amz-Date=...
//!   &X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id
//!   [&X-Amz-Security-Token=...]&X-Amz-Signature=<64 hex>>
//! ```
//!
//! The `x-k8s-aws-id: <cluster name>` header is part of the signature (but not of the
//! URL): the API server adds it back when it replays the request, so a token minted for
//! one cluster cannot be replayed against another.
//!
//! Nothing here shells out: signing is done in-process with `aws-sigv4`, from the same
//! credentials provider and region the rest of the SDK uses.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Prefix that marks an STS-presigned-URL token for the EKS authenticator (version 1).
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";

/// Header that binds the signature to one cluster; the API server re-adds it on replay.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// `X-Amz-Expires` of the presigned URL: 60 s, the value `aws eks get-token` and
/// aws-iam-authenticator send. It is not the token's lifetime: the EKS authenticator
/// judges freshness from `X-Amz-Date` (about 15 minutes), so callers should mint a new
/// token before that; `aws eks get-token` advertises expiry after 14 minutes.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// The only action/version the authenticator accepts in the URL; anything else is rejected.
const STS_QUERY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// Characters kept as-is in query values: RFC 3986 "unreserved". Everything else is
/// percent-encoded, which is the SigV4 canonical form, so the URL we emit is byte-for-byte
/// what the signature covered (notably `/`, `+` and `=` in credential scopes and session
/// tokens must be escaped, or STS would decode them differently).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a token could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The `SdkConfig` has no credentials provider (e.g. it was built with
    /// `no_credentials()`), so there is nothing to sign with.
    #[error("no AWS credentials provider is configured; cannot sign an EKS token")]
    NoCredentialsProvider,

    /// The `SdkConfig` has no region; STS presigning needs one for both the endpoint
    /// and the credential scope.
    #[error("no AWS region is configured; cannot choose the STS endpoint for an EKS token")]
    NoRegion,

    /// The region is not a plain `[a-z0-9-]` name, so it cannot be put in a hostname.
    #[error("invalid AWS region {0:?} for an STS endpoint")]
    InvalidRegion(String),

    /// The credentials provider failed (expired SSO session, process error, IMDS down...).
    #[error("loading AWS credentials for an EKS token failed: {0}")]
    Credentials(#[source] CredentialsError),

    /// SigV4 presigning failed (e.g. a cluster name that is not a valid header value).
    #[error("presigning the STS GetCallerIdentity request failed: {0}")]
    Signing(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Produce an EKS bearer token for `cluster_name` using `conf`'s credentials and region.
///
/// Credentials are fetched anew on each call (the SDK providers cache internally), so a
/// caller that refreshes the token periodically also picks up rotated credentials.
///
/// # Errors
/// [`TokenError::NoCredentialsProvider`] / [`TokenError::NoRegion`] when `conf` lacks them,
/// [`TokenError::Credentials`] when the provider fails, and the errors of [`presign_token`].
pub async fn eks_token(
    conf: &aws_types::SdkConfig,
    cluster_name: &str,
) -> Result<String, TokenError> {
    // Check the region first: it is free, while resolving credentials may hit the network.
    let region = conf.region().ok_or(TokenError::NoRegion)?;
    let provider = conf
        .credentials_provider()
        .ok_or(TokenError::NoCredentialsProvider)?;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(TokenError::Credentials)?;
    presign_token(&creds, region.as_ref(), cluster_name, SystemTime::now())
}

/// Sign a token for `cluster_name` with explicit credentials, region and signing time.
///
/// This is the pure part of [`eks_token`]: the same inputs always give the same token,
/// which is what makes it testable.
///
/// # Errors
/// [`TokenError::InvalidRegion`] for a region that cannot be a hostname label, and
/// [`TokenError::Signing`] when SigV4 presigning fails.
pub fn presign_token(
    creds: &Credentials,
    region: &str,
    cluster_name: &str,
    now: SystemTime,
) -> Result<String, TokenError> {
    let url = presign_url(creds, region, cluster_name, now)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)))
}

/// The STS host for `region`. The China partition lives under a different DNS suffix;
/// every other commercial region uses the regional `amazonaws.com` endpoint, as
/// `aws eks get-token` does (the global endpoint would sign for us-east-1 only).
fn sts_host(region: &str) -> Result<String, TokenError> {
    let valid = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(TokenError::InvalidRegion(region.to_owned()));
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Ok(format!("sts.{region}.{suffix}"))
}

/// Build the presigned `GetCallerIdentity` URL (the token before encoding).
fn presign_url(
    creds: &Credentials,
    region: &str,
    cluster_name: &str,
    now: SystemTime,
) -> Result<String, TokenError> {
    let base = format!("https://{}/?{STS_QUERY}", sts_host(region)?);

    let mut settings = SigningSettings::default();
    // Presign: signature and credential scope go in the query string, not in headers,
    // because the token is only a URL and carries no headers of its own.
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    // Defaults are kept on purpose: the session token is included in the canonical query
    // (SessionTokenMode::Include), as botocore and the Go SDK do for presigned STS URLs,
    // and the payload hash is SHA-256 of the empty body, not UNSIGNED-PAYLOAD.

    let identity = Identity::from(creds.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| TokenError::Signing(Box::new(e)))?
        .into();

    // `host` is added by the signer from the URI; the cluster header is the one we add,
    // so the signed headers come out as `host;x-k8s-aws-id`.
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        std::iter::once((CLUSTER_ID_HEADER, cluster_name)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| TokenError::Signing(Box::new(e)))?;

    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| TokenError::Signing(Box::new(e)))?
        .into_parts();
    let (_headers, query) = instructions.into_parts();

    // Emit the parameters in the signer's order but with the signature last. STS does not
    // care about order, but this is exactly the URL botocore (`aws eks get-token`) emits,
    // byte for byte, which lets the tests compare whole tokens against it.
    let mut url = base;
    let mut signature = None;
    for (name, value) in query {
        if name == "X-Amz-Signature" {
            signature = Some(value);
        } else {
            append_param(&mut url, name, &value);
        }
    }
    // Never expected with query signing, but an unsigned URL would only fail later, at the
    // API server, with a far less helpful 401.
    let signature = signature
        .ok_or_else(|| TokenError::Signing("signer produced no X-Amz-Signature".into()))?;
    append_param(&mut url, "X-Amz-Signature", &signature);
    Ok(url)
}

/// Append `&name=value` with the value percent-encoded as in the canonical query string.
fn append_param(url: &mut String, name: &str, value: &str) {
    url.push('&');
    url.push_str(name);
    url.push('=');
    url.extend(utf8_percent_encode(value, QUERY_VALUE));
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::percent_decode_str;
    use std::collections::BTreeMap;

    // The documented SigV4 example key pair, so nothing here looks like a real secret.
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn creds(session_token: Option<&str>) -> Credentials {
        Credentials::new(AKID, SECRET, session_token.map(str::to_owned), None, "test")
    }

    /// 2024-01-02T03:04:05Z.
    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645)
    }

    /// Decode a token back to (host, path, decoded query params).
    fn decode(token: &str) -> (String, String, BTreeMap<String, String>) {
        let b64 = token.strip_prefix(TOKEN_PREFIX).expect("token prefix");
        assert!(!b64.contains('='), "token must not be padded");
        let url =
            String::from_utf8(URL_SAFE_NO_PAD.decode(b64).expect("base64url")).expect("utf-8 url");
        let rest = url.strip_prefix("https://").expect("https url");
        let (authority_path, query) = rest.split_once('?').expect("query string");
        let (host, path) = authority_path.split_once('/').expect("path");
        let mut params = BTreeMap::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').expect("key=value");
            let v = percent_decode_str(v).decode_utf8().expect("utf-8 value");
            assert!(
                params.insert(k.to_owned(), v.into_owned()).is_none(),
                "duplicate query param {k}"
            );
        }
        (host.to_owned(), format!("/{path}"), params)
    }

    #[test]
    fn token_shape() {
        let token = presign_token(&creds(None), "us-west-2", "my-cluster", at()).unwrap();
        assert!(token.starts_with("k8s-aws-v1."));
        let (host, path, q) = decode(&token);
        assert_eq!(host, "sts.us-west-2.amazonaws.com");
        assert_eq!(path, "/");
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-Date"], "20240102T030405Z");
        let signed: Vec<&str> = q["X-Amz-SignedHeaders"].split(';').collect();
        assert!(signed.contains(&"host"), "{signed:?}");
        assert!(signed.contains(&"x-k8s-aws-id"), "{signed:?}");
        let cred = &q["X-Amz-Credential"];
        assert!(cred.starts_with("AKIDEXAMPLE/"), "{cred}");
        assert!(cred.contains("/us-west-2/sts/aws4_request"), "{cred}");
        assert_eq!(cred, "AKIDEXAMPLE/20240102/us-west-2/sts/aws4_request");
        let sig = &q["X-Amz-Signature"];
        assert_eq!(sig.len(), 64, "{sig}");
        assert!(sig
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(!q.contains_key("X-Amz-Security-Token"));
        // The cluster name is signed but must not leak into the URL.
        assert!(!q.values().any(|v| v == "my-cluster"));
    }

    #[test]
    fn session_token_is_in_url_and_escaped() {
        let st = "FwoGZXIvYXdzE+a/b=c==";
        let token = presign_token(&creds(Some(st)), "us-west-2", "c", at()).unwrap();
        let (_, _, q) = decode(&token);
        assert_eq!(q["X-Amz-Security-Token"], st);
        // Raw URL: reserved characters of the session token must be percent-encoded.
        let url = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(token.strip_prefix(TOKEN_PREFIX).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(url.contains("X-Amz-Security-Token=FwoGZXIvYXdzE%2Ba%2Fb%3Dc%3D%3D"));
        assert!(url
            .contains("X-Amz-Credential=AKIDEXAMPLE%2F20240102%2Fus-west-2%2Fsts%2Faws4_request"));
        // With vs. without a session token the signature differs (token is signed).
        let plain = presign_token(&creds(None), "us-west-2", "c", at()).unwrap();
        assert_ne!(decode(&plain).2["X-Amz-Signature"], q["X-Amz-Signature"]);
    }

    #[test]
    fn deterministic_for_same_inputs() {
        let a = presign_token(&creds(Some("tok")), "us-west-2", "prod", at()).unwrap();
        let b = presign_token(&creds(Some("tok")), "us-west-2", "prod", at()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn cluster_name_and_time_change_signature() {
        let sig = |cluster: &str, t: SystemTime| {
            let token = presign_token(&creds(None), "us-west-2", cluster, t).unwrap();
            decode(&token).2["X-Amz-Signature"].clone()
        };
        assert_ne!(sig("prod", at()), sig("staging", at()));
        assert_ne!(
            sig("prod", at()),
            sig("prod", at() + Duration::from_secs(1))
        );
    }

    #[test]
    fn china_partition_endpoint() {
        let token = presign_token(&creds(None), "cn-north-1", "c", at()).unwrap();
        let (host, _, q) = decode(&token);
        assert_eq!(host, "sts.cn-north-1.amazonaws.com.cn");
        assert!(q["X-Amz-Credential"].contains("/cn-north-1/sts/aws4_request"));
    }

    #[test]
    fn invalid_region_rejected() {
        for bad in ["", "us-west-2.evil.com/", "US-WEST-2", "us west"] {
            let err = presign_token(&creds(None), bad, "c", at()).unwrap_err();
            assert!(
                matches!(err, TokenError::InvalidRegion(_)),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn invalid_cluster_name_is_a_signing_error() {
        let err = presign_token(&creds(None), "us-west-2", "bad\nname", at()).unwrap_err();
        assert!(matches!(err, TokenError::Signing(_)), "{err}");
    }

    #[tokio::test]
    async fn eks_token_from_sdk_config() {
        let conf = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new("us-west-2"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds(None)),
            )
            .build();
        let token = eks_token(&conf, "my-cluster").await.unwrap();
        let (host, _, q) = decode(&token);
        assert_eq!(host, "sts.us-west-2.amazonaws.com");
        assert!(q["X-Amz-Credential"].starts_with("AKIDEXAMPLE/"));
    }

    #[tokio::test]
    async fn eks_token_missing_region_or_provider() {
        let no_region = aws_types::SdkConfig::builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds(None)),
            )
            .build();
        assert!(matches!(
            eks_token(&no_region, "c").await,
            Err(TokenError::NoRegion)
        ));
        let no_provider = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new("us-west-2"))
            .build();
        assert!(matches!(
            eks_token(&no_provider, "c").await,
            Err(TokenError::NoCredentialsProvider)
        ));
    }

    /// Known-answer vectors. No published EKS-token vector with a known secret key exists
    /// that we could find (tokens quoted online are signed with undisclosed keys), so these
    /// were produced by the reference implementation itself: `aws eks get-token
    /// --cluster-name my-cluster --region us-west-2` from aws-cli 1.46.3 (botocore 1.43.62),
    /// run with the AKIDEXAMPLE key pair above and botocore's signing clock pinned to
    /// 2024-01-02T03:04:05Z. Matching them byte for byte shows the canonical request,
    /// signed headers, payload hash, session-token handling and URL encoding agree with
    /// the CLI, not just with this module's own idea of SigV4.
    #[test]
    fn known_answer_matches_aws_cli() {
        const CLI_TOKEN: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjQwMTAyJTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNDAxMDJUMDMwNDA1WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9OTZkZGRhMDllOTUyM2Y2MzYzODkyZjUyZTU4MjhkZDYyNjViMjJlYzg3ZDhjOTFlMjgyMDBhMGJhNmI3N2EzMA";
        let token = presign_token(&creds(None), "us-west-2", "my-cluster", at()).unwrap();
        assert_eq!(token, CLI_TOKEN);
        assert_eq!(
            decode(&token).2["X-Amz-Signature"],
            "96ddda09e9523f6363892f52e5828dd6265b22ec87d8c91e28200a0ba6b77a30"
        );
    }

    /// Same as above with `AWS_SESSION_TOKEN=FwoGZXIvYXdzE+a/b=c==`.
    #[test]
    fn known_answer_with_session_token_matches_aws_cli() {
        const CLI_TOKEN: &str = "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BS0lERVhBTVBMRSUyRjIwMjQwMTAyJTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNDAxMDJUMDMwNDA1WiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TZWN1cml0eS1Ub2tlbj1Gd29HWlhJdllYZHpFJTJCYSUyRmIlM0RjJTNEJTNEJlgtQW16LVNpZ25hdHVyZT1iODcwMWMzMjhiZDY0ZWRhNDRjY2FhZDNiZTk1YjllMjk4YjdhN2IyNzdlMWMzYzcwMjZhYzEwNmQ4YzU0ZjJj";
        let token = presign_token(
            &creds(Some("FwoGZXIvYXdzE+a/b=c==")),
            "us-west-2",
            "my-cluster",
            at(),
        )
        .unwrap();
        assert_eq!(token, CLI_TOKEN);
    }

    /// A provider that always fails, like an expired SSO session.
    #[derive(Debug)]
    struct FailingProvider;

    impl ProvideCredentials for FailingProvider {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                CredentialsError::not_loaded("test: no credentials"),
            ))
        }
    }

    #[tokio::test]
    async fn eks_token_credentials_failure() {
        let conf = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new("us-west-2"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(FailingProvider),
            )
            .build();
        let err = eks_token(&conf, "c").await.unwrap_err();
        assert!(matches!(err, TokenError::Credentials(_)), "{err}");
    }
}
