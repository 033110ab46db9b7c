//! Resource kinds. Each kind lives in one module with the same set of functions (refresh in
//! batches, create, update, delete, which attributes force replacement, which outputs can be
//! referenced); `dispatch` below is the one registry that maps a `Kind` to its module.

pub mod aws_node;
pub mod cidr_block;
pub mod cluster;
pub mod eni_config;
pub mod iam_role;
pub mod nodegroup;
pub mod subnet;
pub mod vpc;

use crate::addr::{Kind, ResourceAddr};
use crate::aws::AwsClients;
use crate::events::{Event, Reporter};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Tag keys eksnet puts on everything taggable, so that a resource created just before a crash
/// can be found and adopted by the next run instead of being created twice.
pub const TAG_STATE: &str = "eksnet:state";
pub const TAG_ADDRESS: &str = "eksnet:address";

/// Errors of one resource operation.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// AWS answered with an error.
    #[error("{operation} failed: {code}: {message}")]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {waited_secs}s waiting for {what} (last status: {status}); AWS goes on, and the next run picks it up where it is; to wait longer, set `[settings] timeouts = {{ {kind} = SECONDS }}`")]
    Timeout {
        what: String,
        waited_secs: u64,
        status: String,
        /// The kind whose timeout ran out, as `[settings.timeouts]` names it.
        kind: &'static str,
    },
    /// AWS reported a terminal failure state.
    #[error("{what} reached state {status}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    FailedState {
        what: String,
        status: String,
        reason: Option<String>,
    },
    /// The resource's inputs or AWS's answer are not usable.
    #[error("{0}")]
    Invalid(String),
}

impl ResourceError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ResourceError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Converts an SDK error into a `ResourceError` naming the operation and AWS's error code.
pub fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.into_err();
            ResourceError::Aws {
                operation,
                code: e.code().unwrap_or("Unknown").to_string(),
                message: e.message().unwrap_or("").to_string(),
            }
        }
        // No answer from AWS (no network, DNS, TLS, timeout, credentials): the outer errors
        // only say "dispatch failure"; the cause is at the end of the chain.
        other => ResourceError::Aws {
            operation,
            code: "RequestFailed".to_string(),
            message: error_chain(&other),
        },
    }
}

/// An error and its sources, outermost first, each once.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// What one refresh of a resource found.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub cloud_id: String,
    /// Live attributes in the shape of the spec's attributes; only these keys are diffed.
    pub attrs: Value,
    /// Values other resources may reference (`${subnet.a.id}`).
    pub outputs: Value,
    /// Lineage from the `eksnet:state` tag, when the resource carries one.
    pub managed_by: Option<String>,
}

/// One resource to look up: by cloud id when the state has one, otherwise by its natural key
/// (name, CIDR…) taken from the resolved desired attributes.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub addr: ResourceAddr,
    pub cloud_id: Option<String>,
    pub attrs: Value,
    /// The outputs the state recorded last time (`Null` when it has none). A read may use them
    /// to guess what it would otherwise have to ask for first — a stack's VPC id — and send
    /// everything in one round trip, checking the guess afterwards.
    pub last_outputs: Value,
}

/// Everything an operation needs besides its inputs.
#[derive(Clone)]
pub struct Ctx {
    pub aws: AwsClients,
    pub reporter: Arc<dyn Reporter>,
    /// State lineage, written into the `eksnet:state` tag.
    pub lineage: String,
    pub timeouts: BTreeMap<Kind, Duration>,
    /// Longest pause between two polls of a wait.
    pub poll_cap: Duration,
    /// Opt-in: delete ENIs in state `available` that block a subnet deletion.
    pub delete_available_enis: bool,
    /// Kubernetes API access, one client per cluster.
    pub kube: Arc<crate::kube::KubeConnector>,
}

impl Ctx {
    pub fn timeout(&self, kind: Kind) -> Duration {
        self.timeouts
            .get(&kind)
            .copied()
            .unwrap_or_else(|| default_timeout(kind))
    }

    /// Tags every created resource carries, merged under the user's tags.
    pub fn managed_tags(&self, addr: &ResourceAddr, user: &Value) -> BTreeMap<String, String> {
        let mut tags = tag_map(user);
        tags.insert(TAG_STATE.into(), self.lineage.clone());
        tags.insert(TAG_ADDRESS.into(), addr.to_string());
        tags
    }
}

/// Defaults follow real AWS timings (EKS control plane 10–15 min) with room to spare, like
/// Terraform's: cluster 30 min, nodegroup 60 min.
pub fn default_timeout(kind: Kind) -> Duration {
    Duration::from_secs(match kind {
        Kind::Vpc => 30 * 60,
        Kind::CidrBlock => 5 * 60,
        Kind::Subnet => 5 * 60,
        Kind::IamRole => 2 * 60,
        Kind::Cluster => 30 * 60,
        Kind::Nodegroup => 60 * 60,
        // EKS installs aws-node shortly after the control plane is ACTIVE.
        Kind::AwsNode => 10 * 60,
        Kind::EniConfig => 2 * 60,
    })
}

/// Attributes whose change forces a replacement.
pub fn force_new(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Vpc => vpc::FORCE_NEW,
        Kind::CidrBlock => cidr_block::FORCE_NEW,
        Kind::Subnet => subnet::FORCE_NEW,
        Kind::IamRole => iam_role::FORCE_NEW,
        Kind::Cluster => cluster::FORCE_NEW,
        Kind::Nodegroup => nodegroup::FORCE_NEW,
        Kind::AwsNode => aws_node::FORCE_NEW,
        Kind::EniConfig => eni_config::FORCE_NEW,
    }
}

/// What makes two resources of a kind the same object in AWS or Kubernetes: two addresses
/// with one identity would write one object twice, the second silently taking over the first.
/// `None` while a field is still unknown, or for a VPC eksnet does not create.
pub fn identity(kind: Kind, attrs: &Value) -> Option<String> {
    let fields: &[&str] = match kind {
        Kind::Vpc => &["stack_name"],
        Kind::Subnet | Kind::CidrBlock => &["vpc_id", "cidr_block"],
        Kind::IamRole | Kind::Cluster => &["name"],
        Kind::Nodegroup | Kind::EniConfig => &["cluster_name", "name"],
        Kind::AwsNode => &["cluster_name"],
    };
    let parts: Option<Vec<&str>> = fields
        .iter()
        .map(|f| str_attr(attrs, f).filter(|v| !crate::value::is_unknown(&Value::from(*v))))
        .collect();
    parts.map(|p| p.join("/"))
}

/// Output names a reference may start with (`*` = any key below, e.g. `outputs.VpcId`).
pub fn outputs(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Vpc => vpc::OUTPUTS,
        Kind::CidrBlock => cidr_block::OUTPUTS,
        Kind::Subnet => subnet::OUTPUTS,
        Kind::IamRole => iam_role::OUTPUTS,
        Kind::Cluster => cluster::OUTPUTS,
        Kind::Nodegroup => nodegroup::OUTPUTS,
        Kind::AwsNode => aws_node::OUTPUTS,
        Kind::EniConfig => eni_config::OUTPUTS,
    }
}

/// Checks a reference path against a kind's outputs: exact names, or `name.*` for maps.
pub fn valid_output_path(kind: Kind, path: &[String]) -> bool {
    let joined = path.join(".");
    outputs(kind).iter().any(|o| match o.strip_suffix(".*") {
        Some(prefix) => joined.starts_with(&format!("{prefix}.")),
        None => joined == *o,
    })
}

/// Looks up many resources of one kind; the answer is in the order of `items`.
pub async fn refresh(
    ctx: &Ctx,
    kind: Kind,
    items: &[Lookup],
) -> Result<Vec<Option<Observed>>, ResourceError> {
    match kind {
        Kind::Vpc => vpc::refresh(ctx, items).await,
        Kind::CidrBlock => cidr_block::refresh(ctx, items).await,
        Kind::Subnet => subnet::refresh(ctx, items).await,
        Kind::IamRole => iam_role::refresh(ctx, items).await,
        Kind::Cluster => cluster::refresh(ctx, items).await,
        Kind::Nodegroup => nodegroup::refresh(ctx, items).await,
        Kind::AwsNode => aws_node::refresh(ctx, items).await,
        Kind::EniConfig => eni_config::refresh(ctx, items).await,
    }
}

pub async fn create(
    ctx: &Ctx,
    addr: &ResourceAddr,
    attrs: &Value,
) -> Result<Observed, ResourceError> {
    match addr.kind {
        Kind::Vpc => vpc::create(ctx, addr, attrs).await,
        Kind::CidrBlock => cidr_block::create(ctx, addr, attrs).await,
        Kind::Subnet => subnet::create(ctx, addr, attrs).await,
        Kind::IamRole => iam_role::create(ctx, addr, attrs).await,
        Kind::Cluster => cluster::create(ctx, addr, attrs).await,
        Kind::Nodegroup => nodegroup::create(ctx, addr, attrs).await,
        Kind::AwsNode => aws_node::create(ctx, addr, attrs).await,
        Kind::EniConfig => eni_config::create(ctx, addr, attrs).await,
    }
}

pub async fn update(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cloud_id: &str,
    before: &Value,
    after: &Value,
    prior_outputs: &Value,
) -> Result<Observed, ResourceError> {
    match addr.kind {
        Kind::Vpc => vpc::update(ctx, addr, cloud_id, before, after).await,
        Kind::CidrBlock => Err(ResourceError::Invalid(
            "a CIDR association has no updatable attributes".into(),
        )),
        Kind::Subnet => subnet::update(ctx, addr, cloud_id, before, after).await,
        Kind::IamRole => iam_role::update(ctx, addr, cloud_id, before, after).await,
        Kind::Cluster => cluster::update(ctx, addr, cloud_id, before, after).await,
        Kind::Nodegroup => nodegroup::update(ctx, addr, cloud_id, before, after).await,
        Kind::AwsNode => aws_node::update(ctx, addr, cloud_id, before, after, prior_outputs).await,
        Kind::EniConfig => eni_config::update(ctx, addr, cloud_id, before, after).await,
    }
}

pub async fn delete(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cloud_id: &str,
    attrs: &Value,
    prior_outputs: &Value,
) -> Result<(), ResourceError> {
    match addr.kind {
        Kind::Vpc => vpc::delete(ctx, addr, cloud_id, attrs).await,
        Kind::CidrBlock => cidr_block::delete(ctx, addr, cloud_id, attrs).await,
        Kind::Subnet => subnet::delete(ctx, addr, cloud_id, attrs).await,
        Kind::IamRole => iam_role::delete(ctx, addr, cloud_id, attrs).await,
        Kind::Cluster => cluster::delete(ctx, addr, cloud_id, attrs).await,
        Kind::Nodegroup => nodegroup::delete(ctx, addr, cloud_id, attrs).await,
        Kind::AwsNode => aws_node::delete(ctx, addr, cloud_id, attrs, prior_outputs).await,
        Kind::EniConfig => eni_config::delete(ctx, addr, cloud_id, attrs).await,
    }
}

/// The error for a reference whose producer exists but lacks that output (AWS did not return
/// it — moto, for one, returns no cluster security group).
pub fn missing_output(r: &crate::value::Reference) -> String {
    if r.addr.kind == Kind::Cluster && r.path_string() == "cluster_security_group_id" {
        format!(
            "`{}`: AWS returned no cluster security group (clusterSecurityGroupId) for `{}`; set `security_group_ids` explicitly",
            r.raw, r.addr
        )
    } else {
        format!(
            "`{}`: `{}` exists but has no output `{}`",
            r.raw,
            r.addr,
            r.path_string()
        )
    }
}

/// Brings a resource found by refresh (not created in this run) to a usable state before
/// anything is built on it: a cluster, nodegroup or stack interrupted mid-create is waited for.
/// Returns fresh observations when it waited.
pub async fn settle(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cloud_id: &str,
    attrs: &Value,
) -> Result<Option<Observed>, ResourceError> {
    match addr.kind {
        Kind::Cluster => cluster::wait_active(ctx, addr, cloud_id).await.map(Some),
        Kind::Nodegroup => nodegroup::settle(ctx, addr, cloud_id).await,
        Kind::Vpc => vpc::settle(ctx, addr, cloud_id, attrs).await,
        _ => Ok(None),
    }
}

/// True for resources eksnet only reads and records, never creates or deletes (adopted VPC).
pub fn is_adopted(addr: &ResourceAddr, attrs: &Value) -> bool {
    addr.kind == Kind::Vpc && attrs.get("id").is_some_and(|v| !v.is_null())
}

// ---- helpers shared by the kinds ----

pub fn str_attr<'a>(attrs: &'a Value, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Value::as_str)
}

pub fn req_str<'a>(attrs: &'a Value, key: &str) -> Result<&'a str, ResourceError> {
    str_attr(attrs, key).ok_or_else(|| ResourceError::Invalid(format!("missing attribute `{key}`")))
}

pub fn str_list(attrs: &Value, key: &str) -> Vec<String> {
    attrs
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A `tags` attribute as a map (non-string values are ignored; the spec only allows strings).
pub fn tag_map(tags: &Value) -> BTreeMap<String, String> {
    tags.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Live tags without eksnet's own, as an attribute value; also returns the lineage tag.
pub fn split_tags<I: IntoIterator<Item = (String, String)>>(tags: I) -> (Value, Option<String>) {
    let mut user = serde_json::Map::new();
    let mut lineage = None;
    for (k, v) in tags {
        if k == TAG_STATE {
            lineage = Some(v);
        } else if !k.starts_with("eksnet:") {
            user.insert(k, Value::String(v));
        }
    }
    (Value::Object(user), lineage)
}

/// Tag keys to remove and tags to set to go from `before` to `after`.
pub fn tag_changes(before: &Value, after: &Value) -> (Vec<String>, BTreeMap<String, String>) {
    let b = tag_map(before.get("tags").unwrap_or(&Value::Null));
    let a = tag_map(after.get("tags").unwrap_or(&Value::Null));
    let removed = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    let set = a.into_iter().filter(|(k, v)| b.get(k) != Some(v)).collect();
    (removed, set)
}

/// Result of one poll of a wait; `Done` carries what the final poll found.
pub enum Poll<T = ()> {
    Done(T),
    Pending(String),
    /// Terminal failure with the status and AWS's reason.
    Failed(String, Option<String>),
}

/// Polls until done, with capped exponential backoff (first check at once), reporting each
/// status to the reporter, and failing after `timeout`. Returns the value of the final poll.
pub async fn wait_until<T, F, Fut>(
    ctx: &Ctx,
    addr: &ResourceAddr,
    what: &str,
    timeout: Duration,
    mut poll: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ResourceError>>,
{
    use crate::retry::{Step, Stop};
    // The schedule (first poll at once, then anchored to when each poll is sent, one last
    // poll at the timeout) is `Backoff::wait`; `crate::retry` tests it on the paused clock.
    let schedule = crate::retry::Backoff::wait(ctx.poll_cap, timeout);
    let result = crate::retry::run(
        &schedule,
        |_| {
            let polled = poll();
            async move {
                match polled.await {
                    Err(e) => Step::Fail(e),
                    Ok(Poll::Done(value)) => Step::Done(value),
                    Ok(Poll::Failed(status, reason)) => Step::Fail(ResourceError::FailedState {
                        what: what.to_string(),
                        status,
                        reason,
                    }),
                    Ok(Poll::Pending(status)) => Step::Retry(status),
                }
            }
        },
        // Every status is reported, the one the wait gives up on too.
        |status: &String, progress| {
            ctx.reporter.event(Event::Waiting {
                addr: addr.clone(),
                status: status.clone(),
                elapsed: progress.elapsed,
            })
        },
    )
    .await;
    match result {
        Ok(value) => Ok(value),
        Err(Stop::Failed(e)) => Err(e),
        Err(Stop::Exhausted { last, elapsed, .. }) => Err(ResourceError::Timeout {
            what: what.to_string(),
            waited_secs: elapsed.as_secs(),
            status: last,
            kind: addr.kind.as_str(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::{KubeAccess, KubeConnector};
    use std::sync::Mutex;

    fn ctx(poll_cap: Duration) -> Ctx {
        let conf = aws_types::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-west-2"))
            .build();
        Ctx {
            aws: AwsClients::from_config(&conf),
            reporter: Arc::new(crate::events::NullReporter),
            lineage: "test".into(),
            timeouts: BTreeMap::new(),
            poll_cap,
            delete_available_enis: false,
            kube: Arc::new(KubeConnector::new(KubeAccess::Eks)),
        }
    }

    /// Polls start on a schedule of their own: a poll that takes 80 ms of a 100 ms period
    /// does not push the next one to 180 ms. Paused clock: the times are exact.
    #[tokio::test(start_paused = true)]
    async fn poll_period_does_not_include_the_polls_own_time() {
        let ctx = ctx(Duration::from_millis(100));
        let addr = ResourceAddr::new(Kind::Cluster, "main");
        let t0 = tokio::time::Instant::now();
        let starts = Mutex::new(Vec::new());
        let got = wait_until(&ctx, &addr, "test", Duration::from_secs(60), || async {
            let n = {
                let mut s = starts.lock().unwrap();
                s.push(t0.elapsed().as_millis());
                s.len()
            };
            tokio::time::sleep(Duration::from_millis(80)).await;
            Ok(if n < 5 {
                Poll::Pending("CREATING".into())
            } else {
                Poll::Done(n)
            })
        })
        .await
        .unwrap();
        assert_eq!(got, 5);
        assert_eq!(*starts.lock().unwrap(), vec![0, 100, 200, 300, 400]);
    }

    /// A poll slower than the period is followed at once by the next (never two at a time),
    /// and the pause doubles from 250 ms up to the cap.
    #[tokio::test(start_paused = true)]
    async fn slow_polls_follow_each_other_and_the_pause_grows_to_the_cap() {
        let ctx = ctx(Duration::from_secs(1));
        let addr = ResourceAddr::new(Kind::Cluster, "main");
        let t0 = tokio::time::Instant::now();
        let starts = Mutex::new(Vec::new());
        let took = Mutex::new(vec![300u64, 10, 10, 10, 10, 10]);
        wait_until(&ctx, &addr, "test", Duration::from_secs(60), || async {
            let (n, ms) = {
                let mut s = starts.lock().unwrap();
                s.push(t0.elapsed().as_millis());
                (s.len(), took.lock().unwrap().remove(0))
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(if n < 6 {
                Poll::Pending("CREATING".into())
            } else {
                Poll::Done(())
            })
        })
        .await
        .unwrap();
        // 0: took 300 > 250, next at once (300); then pauses 500, 1000, 1000 (cap), 1000.
        assert_eq!(*starts.lock().unwrap(), vec![0, 300, 800, 1800, 2800, 3800]);
    }

    #[test]
    fn a_request_failure_names_its_cause_at_the_end_of_the_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: Connection refused",
        ));
        assert_eq!(
            error_chain(&e),
            "dispatch failure: tcp connect error: Connection refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_gives_up_at_its_timeout_with_the_last_status() {
        let ctx = ctx(Duration::from_secs(15));
        let addr = ResourceAddr::new(Kind::Nodegroup, "ng");
        let err = wait_until::<(), _, _>(
            &ctx,
            &addr,
            "nodegroup ng",
            Duration::from_secs(30),
            || async { Ok(Poll::Pending("CREATING".into())) },
        )
        .await
        .unwrap_err();
        // The message says which setting waits longer.
        assert!(
            err.to_string()
                .ends_with("set `[settings] timeouts = { nodegroup = SECONDS }`"),
            "{err}"
        );
        match err {
            ResourceError::Timeout {
                status,
                waited_secs,
                ..
            } => {
                assert_eq!(status, "CREATING");
                assert!((30..=31).contains(&waited_secs), "{waited_secs}");
            }
            other => panic!("{other:?}"),
        }
    }
}
