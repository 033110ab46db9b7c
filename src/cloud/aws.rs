//! AWS clients from aws-config's default chain (env, profile, SSO, IMDS). `AWS_ENDPOINT_URL`
//! is honoured by the chain itself, which is how tests point eksnet at moto or the proxy.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
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
            message: crate::base::diag::error_chain(&other),
        },
    }
}

/// The one HTTPS client of the process: rustls on ring, each AWS service's requests paced by
/// a token bucket (see [`set_request_rate`]).
pub fn http_client() -> SharedHttpClient {
    let inner = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    SharedHttpClient::new(Paced { inner })
}

/// The default of `--request-rate`: requests per second per AWS service, the refill rate of
/// EC2's bucket for describe calls.
pub const DEFAULT_REQUEST_RATE: u32 = 20;
/// The smallest burst: EC2's describe bucket holds 100 (its mutating one 200), so a refresh
/// of a large spec goes out in one wave.
const MIN_BURST: f64 = 100.0;
static RATE: AtomicU32 = AtomicU32::new(DEFAULT_REQUEST_RATE);

/// Sets the requests per second each AWS service may get from this process, on average
/// (`--request-rate`); call before the first request. AWS throttles each service with a
/// token bucket of its own (EC2, EKS, IAM, CloudFormation, S3), and eksnet paces itself the
/// same way: a burst of 100 requests, or twice the rate if more, goes out at once (a refresh
/// wave is one round trip), beyond it requests queue for their token. What is bounded is the rate
/// of requests, not how many resources are in flight: twenty nodegroups waiting for `ACTIVE`
/// poll side by side within it.
pub fn set_request_rate(per_second: u32) {
    RATE.store(per_second.max(1), Ordering::SeqCst);
}

/// One service's bucket: `tokens` may go below zero, each request taking its token in
/// advance; a request that finds none waits until the bucket has refilled to its turn.
struct Bucket {
    tokens: f64,
    at: tokio::time::Instant,
}

/// How long a request to `service` must wait for its token, taken now.
fn reserve(service: &str, now: tokio::time::Instant) -> Duration {
    static BUCKETS: OnceLock<Mutex<HashMap<String, Bucket>>> = OnceLock::new();
    let rate = f64::from(RATE.load(Ordering::SeqCst));
    let burst = (2.0 * rate).max(MIN_BURST);
    let mut buckets = BUCKETS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let b = buckets.entry(service.to_string()).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    reserve_in(b, rate, burst, now)
}

fn reserve_in(b: &mut Bucket, rate: f64, burst: f64, now: tokio::time::Instant) -> Duration {
    let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate;
    b.tokens = (b.tokens + refill).min(burst) - 1.0;
    b.at = now;
    if b.tokens >= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(-b.tokens / rate)
    }
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
struct Paced {
    inner: SharedHttpClient,
}

impl HttpClient for Paced {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(PacedConnector {
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct PacedConnector {
    inner: SharedHttpConnector,
}

impl HttpConnector for PacedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let wait = reserve(&service_of(&request), tokio::time::Instant::now());
        let inner = self.inner.clone();
        HttpConnectorFuture::new(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
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
    pub autoscaling: aws_sdk_autoscaling::Client,
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
            autoscaling: aws_sdk_autoscaling::Client::new(conf),
            region,
            config: conf.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::body::SdkBody;

    #[test]
    fn the_service_comes_from_the_user_agent() {
        let ua = |s: &str| {
            let mut r = HttpRequest::new(SdkBody::empty());
            r.headers_mut().insert("x-amz-user-agent", s.to_string());
            service_of(&r)
        };
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

    #[test]
    fn a_burst_goes_out_at_once_and_the_rest_is_paced_at_the_rate() {
        let t0 = tokio::time::Instant::now();
        let (rate, burst) = (20.0, 40.0); // a small burst, to see it run out
        let mut b = Bucket {
            tokens: burst,
            at: t0,
        };
        // Forty requests at the same instant: no wait.
        for _ in 0..40 {
            assert_eq!(reserve_in(&mut b, rate, burst, t0), Duration::ZERO);
        }
        // The next ones wait 1/20 s more each.
        assert_eq!(
            reserve_in(&mut b, rate, burst, t0),
            Duration::from_millis(50)
        );
        assert_eq!(
            reserve_in(&mut b, rate, burst, t0),
            Duration::from_millis(100)
        );
        // A second later twenty tokens came back, two of them already promised.
        let later = t0 + Duration::from_secs(1);
        for _ in 0..18 {
            assert_eq!(reserve_in(&mut b, rate, burst, later), Duration::ZERO);
        }
        assert_eq!(
            reserve_in(&mut b, rate, burst, later),
            Duration::from_millis(50)
        );
        // Idle for a minute: the bucket is full again, never fuller.
        let idle = later + Duration::from_secs(60);
        for _ in 0..40 {
            assert_eq!(reserve_in(&mut b, rate, burst, idle), Duration::ZERO);
        }
        assert!(reserve_in(&mut b, rate, burst, idle) > Duration::ZERO);
    }
}
