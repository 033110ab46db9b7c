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

/// The one HTTPS client of the process: rustls on ring, with at most
/// [`requests_in_flight`] requests in flight per AWS service.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    SharedHttpClient::new(Limited { inner })
}

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The default of `--parallelism`.
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 10;
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(DEFAULT_REQUESTS_IN_FLIGHT);

/// Sets how many requests each AWS service may have in flight (`--parallelism`); call before
/// the first request. What is bounded is requests, not resources: a resource that is only
/// waiting for AWS (a nodegroup's minutes to `ACTIVE`) holds a permit only for each poll's
/// round trip, so twenty nodegroups wait at once while EKS sees at most N requests at a time.
/// AWS throttles per service (EC2, EKS and IAM have separate buckets), hence one bound each.
pub fn set_requests_in_flight(n: usize) {
    IN_FLIGHT.store(n.max(1), Ordering::SeqCst);
}

pub fn requests_in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

fn service_gate(service: &str) -> Arc<tokio::sync::Semaphore> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>> = OnceLock::new();
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    gates
        .entry(service.to_string())
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(requests_in_flight())))
        .clone()
}

/// The service a request is for, from the SDK's user agent (`api/ec2#1.2.3` or
/// `api/ec2/1.2.3`): the endpoint cannot tell, since `AWS_ENDPOINT_URL` may send every
/// service to one host (moto).
fn service_of(req: &HttpRequest) -> String {
    let ua = req
        .headers()
        .get("x-amz-user-agent")
        .or_else(|| req.headers().get("user-agent"))
        .unwrap_or_default();
    ua.split_whitespace()
        .find_map(|part| part.strip_prefix("api/"))
        .and_then(|rest| rest.split(['/', '#']).next())
        .unwrap_or("other")
        .to_ascii_lowercase()
}

#[derive(Debug)]
struct Limited {
    inner: SharedHttpClient,
}

impl HttpClient for Limited {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LimitedConnector {
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct LimitedConnector {
    inner: SharedHttpConnector,
}

impl HttpConnector for LimitedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let gate = service_gate(&service_of(&request));
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            // Never closed, so acquiring cannot fail; if it did, the request goes unbounded.
            let _permit = gate.acquire_owned().await.ok();
            inner.call(request).await
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;
    use std::sync::atomic::AtomicUsize;

    fn request(ua: &str) -> HttpRequest {
        let mut r = HttpRequest::new(SdkBody::empty());
        r.headers_mut().insert("x-amz-user-agent", ua.to_string());
        r
    }

    #[test]
    fn the_service_comes_from_the_user_agent() {
        let ua = |s: &str| service_of(&request(s));
        assert_eq!(
            ua("aws-sdk-rust/1.3.9 api/ec2/1.160.0 os/linux lang/rust/1.90"),
            "ec2"
        );
        assert_eq!(
            ua("aws-sdk-rust/1.3.9 ua/2.1 api/eks#1.100.0 os/linux"),
            "eks"
        );
        assert_eq!(ua("curl/8"), "other");
    }

    /// Counts the requests inside it at once, each taking a few milliseconds.
    #[derive(Debug, Default)]
    struct Slow {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl HttpConnector for Slow {
        fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
            let (now, most) = (self.now.clone(), self.most.clone());
            HttpConnectorFuture::new(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                let status =
                    aws_smithy_runtime_api::http::StatusCode::try_from(200u16).map_err(|e| {
                        aws_smithy_runtime_api::client::result::ConnectorError::other(
                            e.into(),
                            None,
                        )
                    })?;
                Ok(aws_smithy_runtime_api::http::Response::new(
                    status,
                    SdkBody::empty(),
                ))
            })
        }
    }

    #[tokio::test]
    async fn requests_in_flight_are_bounded_per_service_not_overall() {
        let slow = Slow::default();
        let (most, now) = (slow.most.clone(), slow.now.clone());
        let c = LimitedConnector {
            inner: SharedHttpConnector::new(slow),
        };
        // Two services of their own (the gates are process-wide), 25 requests each at once.
        let calls = (0..50).map(|i| {
            let svc = if i % 2 == 0 {
                "boundtesta"
            } else {
                "boundtestb"
            };
            c.call(request(&format!("aws-sdk-rust/1 api/{svc}/1")))
        });
        for r in futures::future::join_all(calls).await {
            assert!(r.is_ok());
        }
        assert_eq!(now.load(Ordering::SeqCst), 0);
        // Each service up to its bound, both at once: more than one bound, never more than two.
        let most = most.load(Ordering::SeqCst);
        assert!(
            most > requests_in_flight() && most <= 2 * requests_in_flight(),
            "{most} in flight at most"
        );
    }
}
