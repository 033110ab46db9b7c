//! Access to each cluster's Kubernetes API. By default the endpoint and CA come from
//! DescribeCluster and the bearer token is made from the same AWS credentials (see
//! `kube_token`), so no aws CLI, kubectl or authenticator is needed. Alternatively a kubeconfig
//! (`--kubeconfig`, `--kube-context`) is used as is — that is also how tests reach the fake API
//! server. A cluster that does not exist yet gets no connection attempt at all: its
//! Kubernetes objects are simply absent, so they plan as creations.

use crate::cloud::aws::{aws_error, AwsClients, AwsError};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

/// How to reach the Kubernetes API of a cluster.
#[derive(Debug, Clone, Default)]
pub enum KubeAccess {
    /// Endpoint and CA from DescribeCluster, token from AWS credentials.
    #[default]
    Eks,
    /// A kubeconfig file (default `$KUBECONFIG` or `~/.kube/config`) and optional context.
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
}

/// Connects once per cluster and remembers the client (or that the cluster is absent).
pub struct KubeConnector {
    access: KubeAccess,
    /// One slot per cluster. Building a client may describe the cluster; the slot's lock makes
    /// the kube resources of one cluster wait for that one request instead of each sending
    /// its own, while clients for other clusters are built at the same time.
    clients: std::sync::Mutex<HashMap<String, ClientSlot>>,
    /// Endpoint and CA of clusters this run has already described (refresh, the wait for
    /// ACTIVE), so building a client does not describe the cluster a second time: on apply
    /// that request would sit between the cluster becoming ACTIVE and the first Kubernetes
    /// write, on the critical path.
    endpoints: std::sync::Mutex<HashMap<String, ClusterEndpoint>>,
}

type ClientSlot = Arc<Mutex<Option<(std::time::Instant, kube::Client)>>>;

/// What a client needs from DescribeCluster.
#[derive(Debug, Clone)]
struct ClusterEndpoint {
    endpoint: Option<String>,
    ca: Option<String>,
    arn: Option<String>,
}

impl ClusterEndpoint {
    fn of(c: &aws_sdk_eks::types::Cluster) -> Self {
        ClusterEndpoint {
            endpoint: c.endpoint().map(String::from),
            ca: c
                .certificate_authority()
                .and_then(|a| a.data())
                .map(String::from),
            arn: c.arn().map(String::from),
        }
    }
}

/// The kubeconfig context for an EKS cluster when none was named: the one named after the
/// cluster's ARN (what `aws eks update-kubeconfig` writes) or its name, else the one whose
/// server is the cluster's endpoint. Never simply the current context: it may well point at
/// another cluster, and eksnet would then write ENIConfigs and aws-node settings there.
fn context_for(
    kc: &Kubeconfig,
    cluster: &str,
    described: &ClusterEndpoint,
) -> Result<String, String> {
    let server_of = |ctx: &kube::config::NamedContext| -> Option<String> {
        let cluster_name = &ctx.context.as_ref()?.cluster;
        kc.clusters
            .iter()
            .find(|c| &c.name == cluster_name)?
            .cluster
            .as_ref()?
            .server
            .clone()
    };
    let same_server = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let by_name = |n: &str| kc.contexts.iter().find(|c| c.name == n);
    let found = described
        .arn
        .as_deref()
        .and_then(by_name)
        .or_else(|| by_name(cluster))
        .or_else(|| {
            let endpoint = described.endpoint.as_deref()?;
            kc.contexts
                .iter()
                .find(|c| server_of(c).is_some_and(|s| same_server(&s, endpoint)))
        });
    if let Some(c) = found {
        return Ok(c.name.clone());
    }
    let current = kc
        .current_context
        .as_deref()
        .and_then(by_name)
        .map(|c| {
            format!(
                "; its current context `{}` points at {}",
                c.name,
                server_of(c).unwrap_or_else(|| "no server".into())
            )
        })
        .unwrap_or_default();
    Err(format!(
        "the kubeconfig has no context for this EKS cluster (none named `{}` or `{cluster}`, none whose server is {}){current}; add one with `aws eks update-kubeconfig --name {cluster}`, or pass --kube-context to use a context anyway",
        described.arn.as_deref().unwrap_or("its ARN"),
        described.endpoint.as_deref().unwrap_or("its endpoint"),
    ))
}

/// EKS accepts a token for about 15 minutes; a long destroy (nodegroups first) must not reach
/// the ENIConfigs with an expired one, so clients made from a token are rebuilt well before.
const TOKEN_CLIENT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Errors of the Kubernetes API and of reaching it. Kept apart from AWS's errors: a
/// Kubernetes status has a number and a reason, not an AWS error code.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server answered with an error status (404, 409 conflict, 422 invalid…).
    #[error("{operation} failed: Kubernetes {code} {reason}: {message}")]
    Api {
        operation: &'static str,
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer from the API server (connection refused, TLS, timeout).
    #[error("{operation} failed: KubernetesRequestFailed: {}", crate::base::diag::error_chain(.source))]
    Request {
        operation: &'static str,
        #[source]
        source: kube::Error,
    },
    /// No client could be made for the cluster (kubeconfig, context, TLS settings).
    #[error("Kubernetes API of cluster `{cluster}`: {message}")]
    Client { cluster: String, message: String },
    /// Describing the cluster for its endpoint failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

fn kube_err(cluster: &str, what: impl std::fmt::Display) -> KubeError {
    KubeError::Client {
        cluster: cluster.to_string(),
        message: what.to_string(),
    }
}

impl KubeConnector {
    pub fn new(access: KubeAccess) -> Self {
        KubeConnector {
            access,
            clients: std::sync::Mutex::new(HashMap::new()),
            endpoints: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Records what a DescribeCluster returned. Only a serving cluster (ACTIVE or UPDATING)
    /// with both an endpoint and a CA is remembered: one being created or deleted must be
    /// asked again.
    pub fn remember(&self, c: &aws_sdk_eks::types::Cluster) {
        use aws_sdk_eks::types::ClusterStatus;
        let serving = matches!(
            c.status(),
            Some(ClusterStatus::Active | ClusterStatus::Updating)
        );
        let (true, Some(name), seen) = (serving, c.name(), ClusterEndpoint::of(c)) else {
            return;
        };
        if let (Some(_), Some(_), Ok(mut known)) = (&seen.endpoint, &seen.ca, self.endpoints.lock())
        {
            known.insert(name.to_string(), seen);
        }
    }

    /// Forgets a cluster that was found absent or deleted, together with its client.
    pub async fn forget(&self, cluster: &str) {
        if let Ok(mut known) = self.endpoints.lock() {
            known.remove(cluster);
        }
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(cluster);
    }

    fn remembered(&self, cluster: &str) -> Option<ClusterEndpoint> {
        self.endpoints.lock().ok()?.get(cluster).cloned()
    }

    /// A client for `cluster`, or `None` when the EKS cluster does not exist (yet).
    pub async fn client(
        &self,
        aws: &AwsClients,
        cluster: &str,
    ) -> Result<Option<kube::Client>, KubeError> {
        let slot = {
            let mut slots = self
                .clients
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slots.entry(cluster.to_string()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some((made, c)) = slot.as_ref() {
            let expires = matches!(self.access, KubeAccess::Eks);
            if !expires || made.elapsed() < TOKEN_CLIENT_MAX_AGE {
                return Ok(Some(c.clone()));
            }
        }
        let described = match self.remembered(cluster) {
            Some(known) => known,
            None => match aws.eks.describe_cluster().name(cluster).send().await {
                Ok(out) => match out.cluster {
                    Some(c) => {
                        self.remember(&c);
                        ClusterEndpoint::of(&c)
                    }
                    // Not cached: the cluster may be created later in this run.
                    None => return Ok(None),
                },
                Err(e) => {
                    let err = aws_error("DescribeCluster", e);
                    if err.code == "ResourceNotFoundException" {
                        return Ok(None);
                    }
                    return Err(err.into());
                }
            },
        };
        let mut config = match &self.access {
            KubeAccess::Kubeconfig { path, context } => {
                let kc = match path {
                    Some(p) => {
                        let text = std::fs::read_to_string(p).map_err(|e| {
                            kube_err(
                                cluster,
                                format!("cannot read kubeconfig `{}`: {e}", p.display()),
                            )
                        })?;
                        Kubeconfig::from_yaml(&text).map_err(|e| {
                            kube_err(
                                cluster,
                                format!("kubeconfig `{}` does not parse: {e}", p.display()),
                            )
                        })?
                    }
                    None => Kubeconfig::read()
                        .map_err(|e| kube_err(cluster, format!("cannot read kubeconfig: {e}")))?,
                };
                // A context named on the command line is used as it is (a tunnel or a proxy
                // may well have another server); otherwise it must be this cluster's.
                let context = match context {
                    Some(c) if kc.contexts.iter().any(|n| &n.name == c) => c.clone(),
                    Some(c) => {
                        let names: Vec<&str> =
                            kc.contexts.iter().map(|n| n.name.as_str()).collect();
                        return Err(kube_err(
                            cluster,
                            format!(
                                "the kubeconfig has no context `{c}` (it has: {})",
                                if names.is_empty() {
                                    "none".to_string()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        ));
                    }
                    None => {
                        context_for(&kc, cluster, &described).map_err(|e| kube_err(cluster, e))?
                    }
                };
                let options = KubeConfigOptions {
                    context: Some(context),
                    ..Default::default()
                };
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| kube_err(cluster, format!("kubeconfig: {e}")))?
            }
            KubeAccess::Eks => {
                let endpoint = described.endpoint.as_deref().ok_or_else(|| {
                    kube_err(
                        cluster,
                        "DescribeCluster returned no endpoint (is the cluster ACTIVE?)",
                    )
                })?;
                let ca = described.ca.as_deref().ok_or_else(|| {
                    kube_err(cluster, "DescribeCluster returned no certificate authority")
                })?;
                let token = crate::cloud::kube_token::eks_token(&aws.config, cluster)
                    .await
                    .map_err(|e| kube_err(cluster, format!("cannot make a token: {e}")))?;
                // An in-memory kubeconfig lets kube-rs parse the CA and token as it always does.
                let yaml = serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
                    "users": [{"name": "eksnet", "user": {"token": token}}],
                    "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": "eksnet"}}],
                    "current-context": cluster,
                })
                .to_string();
                let kc = Kubeconfig::from_yaml(&yaml).map_err(|e| kube_err(cluster, e))?;
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| kube_err(cluster, e))?
            }
        };
        // Who is writing, as kubectl and client-go say it: API server audit logs, and
        // managedFields of writes that name no field manager, show it.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("eksnet/", env!("CARGO_PKG_VERSION"))),
        ));
        let client = kube::Client::try_from(config).map_err(|e| kube_err(cluster, e))?;
        *slot = Some((std::time::Instant::now(), client.clone()));
        Ok(Some(client))
    }
}

/// A VPC CNI version from an image tag such as `v1.18.3-eksbuild.1`: (major, minor, patch,
/// eksbuild). Tags without an eksbuild suffix count as eksbuild 0.
pub fn cni_version(tag: &str) -> Option<(u64, u64, u64, u64)> {
    let tag = tag.trim_start_matches('v');
    let (core, build) = match tag.split_once('-') {
        Some((c, rest)) => (
            c,
            rest.strip_prefix("eksbuild.")
                .and_then(|b| b.parse().ok())
                .unwrap_or(0),
        ),
        None => (tag, 0),
    };
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??, build))
}

/// The oldest VPC CNI that supports custom networking with ENIConfigs (from the EKS guide).
pub const MIN_CNI: (u64, u64, u64, u64) = (1, 6, 3, 2);

/// Converts a kube error into one naming the operation. A request failure keeps its causes
/// as the source: "client error (Connect)" alone does not say that the connection was
/// refused, timed out or failed TLS.
pub fn error(operation: &'static str, e: kube::Error) -> KubeError {
    match e {
        kube::Error::Api(s) => KubeError::Api {
            operation,
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        other => KubeError::Request {
            operation,
            source: other,
        },
    }
}

/// True for a Kubernetes 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(current: &str, contexts: &[(&str, &str)]) -> Kubeconfig {
        // (context name, server); each context has a cluster entry of its own.
        let doc = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": current,
            "clusters": contexts.iter().map(|(n, server)| serde_json::json!(
                {"name": format!("c-{n}"), "cluster": {"server": server}})).collect::<Vec<_>>(),
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": contexts.iter().map(|(n, _)| serde_json::json!(
                {"name": n, "context": {"cluster": format!("c-{n}"), "user": "u"}})).collect::<Vec<_>>(),
        });
        Kubeconfig::from_yaml(&doc.to_string()).unwrap()
    }

    fn demo() -> ClusterEndpoint {
        ClusterEndpoint {
            endpoint: Some("https://ABC.gr7.us-west-2.eks.amazonaws.com".into()),
            ca: Some("Q0E=".into()),
            arn: Some("arn:aws:eks:us-west-2:123456789012:cluster/demo".into()),
        }
    }

    #[test]
    fn the_context_is_the_clusters_own_by_arn_name_or_server() {
        let arn = "arn:aws:eks:us-west-2:123456789012:cluster/demo";
        let kc = kubeconfig(
            "prod",
            &[
                ("prod", "https://PROD.eks.amazonaws.com"),
                (arn, "https://x"),
                ("demo", "https://y"),
            ],
        );
        assert_eq!(context_for(&kc, "demo", &demo()).unwrap(), arn);
        let kc = kubeconfig("prod", &[("prod", "https://PROD"), ("demo", "https://y")]);
        assert_eq!(context_for(&kc, "demo", &demo()).unwrap(), "demo");
        // By server, a trailing slash aside: a context under any name.
        let kc = kubeconfig(
            "prod",
            &[
                ("prod", "https://PROD"),
                ("mine", "https://ABC.gr7.us-west-2.eks.amazonaws.com/"),
            ],
        );
        assert_eq!(context_for(&kc, "demo", &demo()).unwrap(), "mine");
        // The current context is taken when it is this cluster's, not because it is current.
        let kc = kubeconfig(
            "here",
            &[("here", "https://ABC.gr7.us-west-2.eks.amazonaws.com")],
        );
        assert_eq!(context_for(&kc, "demo", &demo()).unwrap(), "here");
    }

    #[test]
    fn no_context_for_the_cluster_is_an_error_naming_the_current_one() {
        let kc = kubeconfig("prod", &[("prod", "https://PROD.eks.amazonaws.com")]);
        let e = context_for(&kc, "demo", &demo()).unwrap_err();
        assert!(e.contains("no context for this EKS cluster"), "{e}");
        assert!(
            e.contains("arn:aws:eks:us-west-2:123456789012:cluster/demo"),
            "{e}"
        );
        assert!(
            e.contains("current context `prod` points at https://PROD.eks.amazonaws.com"),
            "{e}"
        );
        assert!(e.contains("aws eks update-kubeconfig --name demo"), "{e}");
    }

    #[test]
    fn cni_versions_compare_with_eksbuild() {
        assert_eq!(cni_version("v1.18.3-eksbuild.1"), Some((1, 18, 3, 1)));
        assert_eq!(cni_version("v1.6.3"), Some((1, 6, 3, 0)));
        assert!(cni_version("v1.6.3-eksbuild.1").unwrap() < MIN_CNI);
        assert!(cni_version("v1.6.3-eksbuild.2").unwrap() >= MIN_CNI);
        assert!(cni_version("v1.10.0").unwrap() > MIN_CNI);
        assert_eq!(cni_version("latest"), None);
    }
}
