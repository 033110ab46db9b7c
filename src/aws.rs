//! AWS clients from aws-config's default chain (env, profile, SSO, IMDS). `AWS_ENDPOINT_URL`
//! is honoured by the chain itself, which is how tests point eksnet at moto or the proxy.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

/// AWS answered a request with an error, or the request got no answer at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {code}: {message}")]
pub struct AwsError {
    /// The API operation, e.g. `CreateSubnet`.
    pub operation: &'static str,
    /// AWS's error code (`DependencyViolation`), or `RequestFailed` when no answer came.
    pub code: String,
    pub message: String,
}

/// Converts an SDK error into an `AwsError` naming the operation and AWS's error code.
pub fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.into_err();
            AwsError {
                operation,
                code: e.code().unwrap_or("Unknown").to_string(),
                message: e.message().unwrap_or("").to_string(),
            }
        }
        // No answer from AWS (no network, DNS, TLS, timeout, credentials): the outer errors
        // only say "dispatch failure"; the cause is at the end of the chain.
        other => AwsError {
            operation,
            code: "RequestFailed".to_string(),
            message: crate::diag::error_chain(&other),
        },
    }
}

/// The one HTTPS client of the process: rustls on ring.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The shared config from the default chain; `region` overrides the chain's region.
pub async fn load_config(region: Option<&str>) -> aws_types::SdkConfig {
    // One rustls + ring stack for every client: two crypto providers in one process make
    // rustls refuse to pick one at run time (see docs/architecture.md).
    let http = http_client();
    // The SDK's standard retry mode already backs off with jitter on throttling and 5xx;
    // more attempts than its default 3 because a 50-burst EC2 bucket empties quickly.
    let retry = RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(20));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry);
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    loader.load().await
}

#[derive(Clone, Debug)]
pub struct AwsClients {
    pub ec2: aws_sdk_ec2::Client,
    pub eks: aws_sdk_eks::Client,
    pub iam: aws_sdk_iam::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub region: String,
    /// The loaded config, for what the clients do not cover (the EKS bearer token).
    pub config: aws_types::SdkConfig,
}

impl AwsClients {
    /// Loads the shared config. `region` (from the spec) overrides the chain's region.
    pub async fn load(region: Option<&str>) -> AwsClients {
        AwsClients::from_config(&load_config(region).await)
    }

    /// Like `load`, but refuses to go on without a region (the SDK would only say "dispatch
    /// failure" at the first call).
    pub async fn load_checked(region: Option<&str>) -> Result<AwsClients, String> {
        let clients = AwsClients::load(region).await;
        if clients.config.region().is_none() {
            return Err("no AWS region: set `region` in `[settings]`, AWS_REGION, or a profile with a region".into());
        }
        Ok(clients)
    }

    /// Clients for an explicit config (tests build one pointing at moto).
    pub fn from_config(conf: &aws_types::SdkConfig) -> AwsClients {
        let region = conf
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string());
        AwsClients {
            ec2: aws_sdk_ec2::Client::new(conf),
            eks: aws_sdk_eks::Client::new(conf),
            iam: aws_sdk_iam::Client::new(conf),
            cloudformation: aws_sdk_cloudformation::Client::new(conf),
            region,
            config: conf.clone(),
        }
    }
}
