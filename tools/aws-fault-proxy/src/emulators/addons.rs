//! EKS managed add-ons, answered by the proxy itself: moto answers every add-on call with
//! 404, so these requests never reach it.
//!
//! Served: CreateAddon, DescribeAddon, UpdateAddon, DeleteAddon, ListAddons,
//! DescribeAddonVersions, DescribeAddonConfiguration, DescribeUpdate / ListUpdates with
//! `addonName`, and the Pod Identity associations add-ons own (`podIdentityAssociations`,
//! ListPodIdentityAssociations, DescribePodIdentityAssociation; see `addons/associations.rs`). Answers and errors have EKS's wire shapes. Add-ons go through CREATING,
//! UPDATING and DELETING windows (`addon_*_ms`); their versions and configuration schemas
//! come from the built-in catalogue (`addons/catalogue.json`). Whether the cluster exists,
//! and its Kubernetes version, the proxy asks moto (`GET /clusters/NAME`, not counted in the
//! stats and not faulted).
//!
//! With `kube_url` set, `vpc-cni` also does in the cluster what EKS does: a server-side apply
//! of the `aws-node` DaemonSet (field manager `eks`) at CreateAddon and UpdateAddon, and its
//! deletion at DeleteAddon without `preserve=true`; and when an update changes the add-on's
//! Pod Identity associations, a rolling restart of its workload ("If you update the pod
//! identity associations for an existing add-on, Amazon EKS initiates a rolling restart of the
//! add-on pods", EKS user guide, `workloads/add-ons-iam.adoc`). Its `serviceAccountRoleArn`
//! (IRSA) becomes the `eks.amazonaws.com/role-arn` annotation of the workload's service
//! account (server-side apply, field manager `eks`), which the pods started after it take
//! (`manage-access/aws-access/pod-configuration.adoc`); EKS ignores it while the cluster has
//! the Pod Identity Agent add-on and the add-on has associations (`add-ons-iam.adoc`). The
//! user guide says nothing of a restart for it: none is made. The outcome (a field-manager conflict,
//! an unreachable server) is known at the request and shows when the window ends.
//!
//! Every state change is made while `Addons::one_at_a_time` is held, so concurrent requests about
//! add-ons are decided one after another, as EKS serializes them per resource.

mod associations;
mod catalogue;
mod kube;
mod schema;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::Method;
use serde_json::{json, Map, Value};

use self::associations::Association;
use self::catalogue::{catalogue, effective_cluster_version, AddonEntry, KubeTarget, VersionEntry};
use crate::core::config::Config;
use crate::core::emulator::{self, BoxFuture, Call, Emulator, Host};
use crate::core::faults::{self, Reply};
use crate::core::ops::{OpInfo, Protocol};
use crate::core::upstream::own_request_headers;
use crate::shared::{epoch_now, form_encode, lock};

/// moto's account when the cluster ARN does not say otherwise.
const DEFAULT_ACCOUNT: &str = "123456789012";
/// A Kubernetes API server that does not answer within this is unreachable.
const KUBE_TIMEOUT: Duration = Duration::from_secs(10);
/// PRESERVE re-applies without the conflicting fields; each round can only remove fields,
/// so a few rounds always suffice for the small bodies sent here.
const MAX_APPLY_ROUNDS: usize = 8;

/// (region, cluster, add-on name)
type AddonKey = (String, String, String);

/// A handler's answer: `Err` is an EKS error answer (boxed: a `Reply` is large and errors
/// travel up through `?`).
type Answer = Result<Reply, Box<Reply>>;

/// Everything the proxy remembers about add-ons; `POST /__proxy/reset` forgets it.
#[derive(Debug, Default)]
struct Store {
    addons: HashMap<AddonKey, Addon>,
    /// In creation order (ListUpdates lists them so).
    updates: Vec<UpdateRecord>,
    /// (add-on, operation, clientRequestToken) -> the answer given, replayed to a retry.
    tokens: HashMap<(AddonKey, &'static str, String), Reply>,
    /// Pod Identity associations, in creation order.
    associations: Vec<Association>,
}

impl Store {
    /// DeleteCluster deletes the cluster's add-ons with it, as EKS does.
    fn forget_cluster(&mut self, region: &str, cluster: &str) {
        let of_cluster = |k: &AddonKey| k.0 == region && k.1 == cluster;
        self.addons.retain(|k, _| !of_cluster(k));
        self.tokens.retain(|(k, _, _), _| !of_cluster(k));
        self.updates
            .retain(|u| !(u.region == region && u.cluster == cluster));
        self.associations
            .retain(|a| !(a.region == region && a.cluster == cluster));
    }

    /// Makes the add-on's associations what `wanted` lists (service account → role): one
    /// kept per service account (its role changed if asked), new ones made, the rest deleted.
    /// Returns whether anything changed.
    fn set_associations(
        &mut self,
        key: &AddonKey,
        namespace: &str,
        account: &str,
        wanted: &associations::Wanted,
    ) -> bool {
        let Some(addon) = self.addons.get(key) else {
            return false;
        };
        let owner = addon.arn.clone();
        let now = epoch_now();
        let mut changed = false;
        let owned = |a: &Association| a.owner_arn.as_deref() == Some(owner.as_str());
        self.associations.retain(|a| {
            let keep = !owned(a) || wanted.iter().any(|(sa, _)| *sa == a.service_account);
            changed |= !keep;
            keep
        });
        let mut arns = Vec::new();
        for (sa, role) in wanted {
            match self
                .associations
                .iter_mut()
                .find(|a| owned(a) && a.service_account == *sa)
            {
                Some(a) => {
                    if a.role_arn != *role {
                        a.role_arn = role.clone();
                        a.modified_at = now;
                        changed = true;
                    }
                    arns.push(a.arn.clone());
                }
                None => {
                    let id = associations::new_id();
                    let arn = format!(
                        "arn:aws:eks:{}:{account}:podidentityassociation/{}/{id}",
                        key.0, key.1
                    );
                    self.associations.push(Association {
                        region: key.0.clone(),
                        cluster: key.1.clone(),
                        id,
                        arn: arn.clone(),
                        namespace: namespace.to_string(),
                        service_account: sa.clone(),
                        role_arn: role.clone(),
                        owner_arn: Some(owner.clone()),
                        created_at: now,
                        modified_at: now,
                    });
                    arns.push(arn);
                    changed = true;
                }
            }
        }
        if let Some(addon) = self.addons.get_mut(key) {
            addon.association_arns = arns;
        }
        changed
    }

    /// Whether `wanted` differs from what the add-on (by ARN) owns now.
    fn associations_differ(&self, owner: &str, wanted: &associations::Wanted) -> bool {
        let mut have: Vec<(&str, &str)> = self
            .associations
            .iter()
            .filter(|a| a.owner_arn.as_deref() == Some(owner))
            .map(|a| (a.service_account.as_str(), a.role_arn.as_str()))
            .collect();
        let mut want: Vec<(&str, &str)> = wanted
            .iter()
            .map(|(s, r)| (s.as_str(), r.as_str()))
            .collect();
        have.sort_unstable();
        want.sort_unstable();
        have != want
    }

    /// DeleteAddon: the add-on's associations go with it, unless it is deleted with
    /// `preserve` (EKS user guide, `add-ons-iam.adoc`); kept, they have no owner any more.
    fn release_associations(&mut self, owner: &str, preserve: bool) {
        if preserve {
            for a in self
                .associations
                .iter_mut()
                .filter(|a| a.owner_arn.as_deref() == Some(owner))
            {
                a.owner_arn = None;
            }
        } else {
            self.associations
                .retain(|a| a.owner_arn.as_deref() != Some(owner));
        }
    }

    /// Ends the windows that are over; add-ons whose deletion finished are dropped.
    fn settle(&mut self, now: Instant) {
        self.addons.retain(|_, a| a.settle(now));
    }
}

/// A problem EKS reports as an add-on health issue (`AddonIssue`) or, for an update, an
/// update error (`ErrorDetail`).
#[derive(Clone, Debug)]
struct Issue {
    code: &'static str,
    message: String,
}

impl Issue {
    fn new(code: &'static str, message: impl Into<String>) -> Issue {
        Issue {
            code,
            message: message.into(),
        }
    }

    fn health_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "resourceIds": []})
    }

    /// `ErrorDetail.errorCode` has no `InternalFailure`; EKS says `Unknown` there.
    fn error_json(&self) -> Value {
        let code = match self.code {
            "InternalFailure" => "Unknown",
            other => other,
        };
        json!({"errorCode": code, "errorMessage": self.message, "resourceIds": []})
    }
}

/// The end of a window and how it ends.
#[derive(Clone, Debug)]
struct Pending {
    until: Instant,
    until_epoch: f64,
    failure: Option<Issue>,
}

impl Pending {
    fn new(ms: u64, failure: Option<Issue>) -> Pending {
        Pending {
            until: Instant::now() + Duration::from_millis(ms),
            until_epoch: epoch_now() + ms as f64 / 1000.0,
            failure,
        }
    }
}

/// What a successful update changes, applied when its window ends.
#[derive(Clone, Debug)]
struct Change {
    version: String,
    role_arn: Option<String>,
    config: Option<String>,
    owns_workload: bool,
}

#[derive(Clone, Debug)]
enum Phase {
    Creating(Pending),
    Active,
    CreateFailed,
    Updating { pending: Pending, change: Change },
    Deleting(Pending),
    DeleteFailed,
}

#[derive(Clone, Debug)]
struct Addon {
    name: String,
    cluster: String,
    arn: String,
    version: String,
    role_arn: Option<String>,
    tags: Map<String, Value>,
    config: Option<String>,
    created_at: f64,
    modified_at: f64,
    issues: Vec<Issue>,
    /// The add-on created its workload (it was missing), so EKS owns all of it and keeps
    /// applying the whole manifest: a real server-side apply of less would prune the rest.
    owns_workload: bool,
    /// The ARNs of the Pod Identity associations it owns.
    association_arns: Vec<String>,
    /// The IRSA role its workload's service account was last given (see `irsa_role`).
    irsa_applied: Option<String>,
    phase: Phase,
}

impl Addon {
    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Creating(_) => "CREATING",
            Phase::Active => "ACTIVE",
            Phase::CreateFailed => "CREATE_FAILED",
            Phase::Updating { .. } => "UPDATING",
            Phase::Deleting(_) => "DELETING",
            Phase::DeleteFailed => "DELETE_FAILED",
        }
    }

    /// Ends the window if it is over; `false` if the add-on is gone.
    fn settle(&mut self, now: Instant) -> bool {
        let over = match &self.phase {
            Phase::Creating(p) | Phase::Deleting(p) | Phase::Updating { pending: p, .. } => {
                now >= p.until
            }
            _ => false,
        };
        if !over {
            return true;
        }
        match std::mem::replace(&mut self.phase, Phase::Active) {
            Phase::Creating(p) => {
                self.modified_at = p.until_epoch;
                if let Some(issue) = p.failure {
                    self.issues = vec![issue];
                    self.phase = Phase::CreateFailed;
                }
            }
            Phase::Updating { pending, change } => {
                self.modified_at = pending.until_epoch;
                // A failed update changed nothing in the cluster (the apply was refused as a
                // whole): the add-on stays as it was; the failure is on the update.
                if pending.failure.is_none() {
                    self.version = change.version;
                    self.role_arn = change.role_arn;
                    self.config = change.config;
                    self.owns_workload = change.owns_workload;
                    self.issues.clear();
                }
            }
            Phase::Deleting(p) => match p.failure {
                Some(issue) => {
                    self.modified_at = p.until_epoch;
                    self.issues = vec![issue];
                    self.phase = Phase::DeleteFailed;
                }
                None => return false,
            },
            other => self.phase = other,
        }
        true
    }

    /// The `Addon` shape, with `status` as given (answers to Create/Delete always say
    /// CREATING/DELETING, as EKS's do, even with a zero window).
    fn json(&self, status: &str) -> Value {
        let mut addon = json!({
            "addonName": self.name,
            "clusterName": self.cluster,
            "status": status,
            "addonVersion": self.version,
            "health": {"issues": self.issues.iter().map(Issue::health_json).collect::<Vec<_>>()},
            "addonArn": self.arn,
            "createdAt": self.created_at,
            "modifiedAt": self.modified_at,
            "tags": self.tags,
        });
        if let Some(role) = &self.role_arn {
            addon["serviceAccountRoleArn"] = Value::from(role.as_str());
        }
        if let Some(config) = &self.config {
            addon["configurationValues"] = Value::from(config.as_str());
        }
        if !self.association_arns.is_empty() {
            addon["podIdentityAssociations"] = json!(self.association_arns);
        }
        addon
    }
}

#[derive(Clone, Debug)]
struct UpdateRecord {
    id: String,
    region: String,
    cluster: String,
    addon: String,
    created_at: f64,
    params: Vec<(&'static str, String)>,
    until: Instant,
    failure: Option<Issue>,
}

impl UpdateRecord {
    fn status(&self, now: Instant) -> &'static str {
        match (&self.failure, now < self.until) {
            (_, true) => "InProgress",
            (None, false) => "Successful",
            (Some(_), false) => "Failed",
        }
    }

    fn json(&self, status: &str) -> Value {
        let params: Vec<Value> = self
            .params
            .iter()
            .map(|(kind, value)| json!({"type": kind, "value": value}))
            .collect();
        let errors: Vec<Value> = match (&self.failure, status) {
            (Some(issue), "Failed") => vec![issue.error_json()],
            _ => Vec::new(),
        };
        json!({
            "id": self.id,
            "status": status,
            "type": "AddonUpdate",
            "params": params,
            "createdAt": self.created_at,
            "errors": errors,
        })
    }
}

// ---- errors, in EKS's words -------------------------------------------------------------

fn error(status: u16, kind: &str, message: &str, cluster: &str, addon: Option<&str>) -> Box<Reply> {
    Box::new(faults::eks_error_with(
        status,
        kind,
        message,
        &[("clusterName", Some(cluster)), ("addonName", addon)],
    ))
}

fn invalid(message: &str, cluster: Option<&str>, addon: Option<&str>) -> Box<Reply> {
    Box::new(faults::eks_error_with(
        400,
        "InvalidParameterException",
        message,
        &[("clusterName", cluster), ("addonName", addon)],
    ))
}

fn cluster_not_found(cluster: &str) -> Box<Reply> {
    error(
        404,
        "ResourceNotFoundException",
        &format!("No cluster found for name: {cluster}."),
        cluster,
        None,
    )
}

fn addon_not_found(cluster: &str, addon: &str) -> Box<Reply> {
    error(
        404,
        "ResourceNotFoundException",
        &format!("No addon: {addon} found in cluster: {cluster}"),
        cluster,
        Some(addon),
    )
}

fn in_use(message: &str, cluster: &str, addon: &str) -> Box<Reply> {
    error(409, "ResourceInUseException", message, cluster, Some(addon))
}

fn server_error(why: &str) -> Box<Reply> {
    eprintln!("aws-fault-proxy: add-ons: {why}");
    Box::new(faults::eks_error(
        500,
        "ServerException",
        "Internal server error",
    ))
}

const UNSUPPORTED_ADDON: &str = "Addon specified is not supported";
const UNSUPPORTED_VERSION: &str = "Addon version specified is not supported";

// ---- request parsing ----------------------------------------------------------------------

/// The JSON object of a request body (an empty body is `{}`).
fn body_object(body: &[u8], cluster: &str) -> Result<Map<String, Value>, Box<Reply>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(invalid(
            "The request body is not a valid JSON object",
            Some(cluster),
            None,
        )),
    }
}

/// A string member; `Ok(None)` when absent or null.
fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    cluster: &str,
) -> Result<Option<&'a str>, Box<Reply>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(
            &format!("{field} must be a string"),
            Some(cluster),
            None,
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolve {
    None,
    Overwrite,
    Preserve,
}

fn resolve_conflicts(value: Option<&str>, cluster: &str) -> Result<Resolve, Box<Reply>> {
    match value {
        None | Some("NONE") => Ok(Resolve::None),
        Some("OVERWRITE") => Ok(Resolve::Overwrite),
        Some("PRESERVE") => Ok(Resolve::Preserve),
        Some(other) => Err(invalid(
            &format!(
                "1 validation error detected: Value '{other}' at 'resolveConflicts' failed to \
                 satisfy constraint: Member must satisfy enum value set: [OVERWRITE, NONE, \
                 PRESERVE]"
            ),
            Some(cluster),
            None,
        )),
    }
}

fn tags(value: Option<&Value>, cluster: &str) -> Result<Map<String, Value>, Box<Reply>> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(t)) if t.values().all(Value::is_string) => Ok(t.clone()),
        Some(_) => Err(invalid(
            "tags must be a map of strings",
            Some(cluster),
            None,
        )),
    }
}

/// Parses and validates `configurationValues` against the version's schema. Empty text
/// means no configuration.
fn check_config(
    version: &VersionEntry,
    text: Option<&str>,
    cluster: &str,
    addon: &str,
) -> Result<Option<Value>, Box<Reply>> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let prefix = "ConfigurationValue provided in request is not supported";
    let value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(
            &format!("{prefix}: Json parsing failed with error: {e}"),
            Some(cluster),
            Some(addon),
        )
    })?;
    let schema = catalogue().schema(version).map_err(|e| server_error(&e))?;
    let errors = schema::validate(&schema, &value);
    if errors.is_empty() {
        Ok(Some(value))
    } else {
        Err(invalid(
            &format!(
                "{prefix}: Json schema validation failed with error: [{}]",
                errors.join(", ")
            ),
            Some(cluster),
            Some(addon),
        ))
    }
}

/// One page of `items` for `maxResults` (1..=100, default 100) and `nextToken` (the offset
/// the previous page ended at).
fn page<T: Clone>(
    items: &[T],
    max_results: Option<&str>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), String> {
    let max = match max_results {
        None => 100,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n < 1 => {
                return Err(format!(
                    "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy \
                     constraint: Member must have value greater than or equal to 1"
                ))
            }
            Ok(n) if n > 100 => {
                return Err(format!(
                    "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy \
                     constraint: Member must have value less than or equal to 100"
                ))
            }
            Ok(n) => n as usize,
            Err(_) => return Err(format!("maxResults must be a number, got {text:?}")),
        },
    };
    let start = match next_token {
        None | Some("") => 0,
        Some(token) => token
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= items.len())
            .ok_or_else(|| "The nextToken provided is invalid".to_string())?,
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items[start..end].to_vec(), next))
}

// ---- the handlers -------------------------------------------------------------------------

struct Ctx<'a> {
    host: &'a Host,
    store: &'a Mutex<Store>,
    one_at_a_time: &'a tokio::sync::Mutex<()>,
    cfg: &'a Config,
    region: &'a str,
    headers: &'a HeaderMap,
}

impl Ctx<'_> {
    fn key(&self, cluster: &str, addon: &str) -> AddonKey {
        (
            self.region.to_string(),
            cluster.to_string(),
            addon.to_string(),
        )
    }
}

/// The emulator: the add-on API, served; a cluster's add-ons go with it.
#[derive(Default)]
pub struct Addons {
    store: Mutex<Store>,
    /// Held while an add-on request changes add-on state, across its moto and Kubernetes
    /// calls, so that such requests are decided one at a time.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Emulator for Addons {
    /// Add-on requests are answered before `reject_op` is looked at, as they have been
    /// since the add-on API came: `reject_op` refuses the EKS operations that go to moto
    /// (and UpdateNodegroupVersion), and the tests rely on what it does, not on more.
    fn under_reject_op(&self) -> bool {
        false
    }

    fn serve<'a>(&'a self, call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(self.serve_now(call.host, call))
    }

    /// EKS deletes a cluster's add-ons with it.
    fn after_answer<'a>(&'a self, call: &'a Call<'a>, _reply: &'a Reply) -> BoxFuture<'a, ()> {
        let info = call.info;
        if info.protocol == Protocol::RestJson && info.op == "DeleteCluster" {
            if let Some(name) = info.segment(1) {
                lock(&self.store).forget_cluster(&info.region, name);
            }
        }
        emulator::ready(())
    }

    fn reset(&self) {
        *lock(&self.store) = Store::default();
    }
}

impl Addons {
    /// Answers an add-on request; `None` if the request is not one (it goes to moto).
    async fn serve_now(&self, host: &Host, call: &Call<'_>) -> Option<Reply> {
        let (info, body) = (call.info, call.body);
        if info.protocol != Protocol::RestJson {
            return None;
        }
        let ctx = Ctx {
            host,
            store: &self.store,
            one_at_a_time: &self.one_at_a_time,
            cfg: call.cfg,
            region: &info.region,
            headers: call.headers,
        };
        let cluster = info.segment(1);
        let reply = match info.op.as_str() {
            "CreateAddon" => create(&ctx, cluster?, body).await,
            "DescribeAddon" => describe(&ctx, cluster?, info.segment(3)?).await,
            "UpdateAddon" => update(&ctx, cluster?, info.segment(3)?, body).await,
            "DeleteAddon" => delete(&ctx, cluster?, info.segment(3)?, info.param("preserve")).await,
            "ListAddons" => list(&ctx, cluster?, info).await,
            "DescribeAddonVersions" => versions(info),
            "DescribeAddonConfiguration" => configuration(info),
            // Only the add-on ones: cluster and nodegroup updates are moto's.
            "DescribeUpdate" => {
                let addon = info.param("addonName")?;
                describe_update(&ctx, cluster?, info.segment(3)?, addon).await
            }
            "ListUpdates" => {
                let addon = info.param("addonName")?;
                list_updates(&ctx, cluster?, addon, info).await
            }
            "ListPodIdentityAssociations" => list_associations(&ctx, cluster?, info).await,
            "DescribePodIdentityAssociation" => {
                describe_association(&ctx, cluster?, info.segment(3)?).await
            }
            _ => return None,
        };
        Some(reply.unwrap_or_else(|refused| *refused))
    }
}

/// What the proxy needs of a cluster, from moto.
struct ClusterInfo {
    version: String,
    account: String,
}

/// DescribeCluster sent to moto by the proxy itself with the client's credentials (moto
/// takes the region and account from them): not counted, faulted or delayed.
async fn cluster_info(ctx: &Ctx<'_>, cluster: &str) -> Result<ClusterInfo, Box<Reply>> {
    let headers = own_request_headers(ctx.headers);
    let path = format!("/clusters/{}", form_encode(cluster));
    let reply = ctx
        .host
        .upstream
        .forward(&Method::GET, &path, &headers, Bytes::new())
        .await
        .map_err(|e| server_error(&format!("DescribeCluster {cluster}: {e}")))?;
    match reply.status {
        200..=299 => {}
        404 => return Err(cluster_not_found(cluster)),
        s => {
            return Err(server_error(&format!(
                "DescribeCluster {cluster}: moto answered {s}"
            )))
        }
    }
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let c = &v["cluster"];
    let version = c["version"]
        .as_str()
        .unwrap_or(catalogue::MOTO_DEFAULT_CLUSTER_VERSION)
        .to_string();
    let account = c["arn"]
        .as_str()
        .and_then(|arn| arn.split(':').nth(4))
        .filter(|a| !a.is_empty())
        .unwrap_or(DEFAULT_ACCOUNT)
        .to_string();
    Ok(ClusterInfo { version, account })
}

/// The error for an add-on the proxy does not know: the cluster's if the cluster does not
/// exist either, else the add-on's.
async fn not_found(ctx: &Ctx<'_>, cluster: &str, addon: &str) -> Box<Reply> {
    match cluster_info(ctx, cluster).await {
        Ok(_) => addon_not_found(cluster, addon),
        Err(reply) => reply,
    }
}

fn find_version<'a>(
    entry: &'a AddonEntry,
    requested: Option<&str>,
    cluster_version: &str,
) -> Option<&'a VersionEntry> {
    match requested {
        Some(v) => entry.version(v).filter(|e| e.compatible(cluster_version)),
        None => entry.default_version(cluster_version),
    }
}

async fn create(ctx: &Ctx<'_>, cluster: &str, body: &[u8]) -> Answer {
    let req = body_object(body, cluster)?;
    let name = opt_str(&req, "addonName", cluster)?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("addonName must be specified", Some(cluster), None))?;
    let token = opt_str(&req, "clientRequestToken", cluster)?.map(str::to_string);
    let key = ctx.key(cluster, name);
    let _one_at_a_time = ctx.one_at_a_time.lock().await;
    {
        let mut world = lock(ctx.store);
        let store = &mut *world;
        store.settle(Instant::now());
        if let Some(t) = &token {
            if let Some(reply) = store.tokens.get(&(key.clone(), "CreateAddon", t.clone())) {
                return Ok(reply.clone());
            }
        }
        if store.addons.contains_key(&key) {
            return Err(in_use("Addon already exists.", cluster, name));
        }
    }
    let info = cluster_info(ctx, cluster).await?;
    let entry = catalogue()
        .find(name)
        .ok_or_else(|| invalid(UNSUPPORTED_ADDON, Some(cluster), Some(name)))?;
    let cluster_version = effective_cluster_version(&info.version);
    let requested = opt_str(&req, "addonVersion", cluster)?;
    let version = find_version(entry, requested, cluster_version)
        .ok_or_else(|| invalid(UNSUPPORTED_VERSION, Some(cluster), Some(name)))?;
    let resolve = resolve_conflicts(opt_str(&req, "resolveConflicts", cluster)?, cluster)?;
    let role = opt_str(&req, "serviceAccountRoleArn", cluster)?
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let text = opt_str(&req, "configurationValues", cluster)?;
    let config = check_config(version, text, cluster, name)?;
    let tags = tags(req.get("tags"), cluster)?;
    let wanted = associations::parse(&req).map_err(|e| invalid(&e, Some(cluster), Some(name)))?;

    // The cluster side. On create there is nothing of the add-on's to preserve yet, so EKS
    // treats PRESERVE like NONE: a field another manager owns makes the create fail.
    let mut failure = None;
    let mut owns_workload = false;
    let mut irsa = None;
    if let (Some(target), Some(url)) = (&entry.kube, &ctx.cfg.kube_url) {
        let resolve = match resolve {
            Resolve::Overwrite => Resolve::Overwrite,
            _ => Resolve::None,
        };
        let version = &version.addon_version;
        match apply(ctx, url, target, version, config.as_ref(), resolve, false).await {
            Ok(whole) => owns_workload = whole,
            Err(issue) => failure = Some(issue),
        }
        let associated = wanted.as_ref().is_some_and(|w| !w.is_empty());
        irsa = irsa_role(&lock(ctx.store), &key, role.as_deref(), associated).map(String::from);
        if let (None, Some(_)) = (&failure, &irsa) {
            failure = apply_service_account(ctx, url, target, irsa.as_deref())
                .await
                .err();
        }
    }

    let now = epoch_now();
    let addon = Addon {
        name: name.to_string(),
        cluster: cluster.to_string(),
        arn: format!(
            "arn:aws:eks:{}:{}:addon/{cluster}/{name}/{}",
            ctx.region,
            info.account,
            faults::request_id()
        ),
        version: version.addon_version.clone(),
        role_arn: role,
        tags,
        // Blank text is no configuration.
        config: text.filter(|_| config.is_some()).map(str::to_string),
        created_at: now,
        modified_at: now,
        issues: Vec::new(),
        owns_workload,
        association_arns: Vec::new(),
        irsa_applied: irsa,
        phase: Phase::Creating(Pending::new(ctx.cfg.addon_create_ms, failure)),
    };
    let mut world = lock(ctx.store);
    let store = &mut *world;
    store.addons.insert(key.clone(), addon);
    if let Some(w) = &wanted {
        store.set_associations(&key, &entry.default_namespace, &info.account, w);
    }
    let made = store.addons.get(&key).map(|a| a.json("CREATING"));
    let reply = faults::eks_json(&json!({ "addon": made }));
    if let Some(t) = token {
        store.tokens.insert((key, "CreateAddon", t), reply.clone());
    }
    Ok(reply)
}

async fn describe(ctx: &Ctx<'_>, cluster: &str, name: &str) -> Answer {
    let found = {
        let mut world = lock(ctx.store);
        let store = &mut *world;
        store.settle(Instant::now());
        store
            .addons
            .get(&ctx.key(cluster, name))
            .map(|a| a.json(a.status()))
    };
    match found {
        Some(addon) => Ok(faults::eks_json(&json!({ "addon": addon }))),
        None => Err(not_found(ctx, cluster, name).await),
    }
}

async fn update(ctx: &Ctx<'_>, cluster: &str, name: &str, body: &[u8]) -> Answer {
    let req = body_object(body, cluster)?;
    let token = opt_str(&req, "clientRequestToken", cluster)?.map(str::to_string);
    let key = ctx.key(cluster, name);
    let _one_at_a_time = ctx.one_at_a_time.lock().await;
    let current = {
        let mut world = lock(ctx.store);
        let store = &mut *world;
        store.settle(Instant::now());
        if let Some(t) = &token {
            if let Some(reply) = store.tokens.get(&(key.clone(), "UpdateAddon", t.clone())) {
                return Ok(reply.clone());
            }
        }
        store.addons.get(&key).cloned()
    };
    let Some(current) = current else {
        return Err(not_found(ctx, cluster, name).await);
    };
    if !matches!(current.phase, Phase::Active) {
        let message = format!(
            "Addon {name} cannot be updated as it is currently in {} state",
            current.status()
        );
        return Err(in_use(&message, cluster, name));
    }
    let info = cluster_info(ctx, cluster).await?;
    let entry = catalogue()
        .find(name)
        .ok_or_else(|| invalid(UNSUPPORTED_ADDON, Some(cluster), Some(name)))?;
    let cluster_version = effective_cluster_version(&info.version);

    // The update's params list what the request gave, in the model's order.
    let mut params: Vec<(&'static str, String)> = Vec::new();
    let version = match opt_str(&req, "addonVersion", cluster)? {
        Some(v) => {
            params.push(("AddonVersion", v.to_string()));
            entry.version(v).filter(|e| e.compatible(cluster_version))
        }
        // Unchanged: the add-on keeps its version even if it is no longer offered.
        None => entry.version(&current.version),
    }
    .ok_or_else(|| invalid(UNSUPPORTED_VERSION, Some(cluster), Some(name)))?;
    let role = match opt_str(&req, "serviceAccountRoleArn", cluster)? {
        Some(r) => {
            params.push(("ServiceAccountRoleArn", r.to_string()));
            Some(r).filter(|r| !r.is_empty()).map(str::to_string)
        }
        None => current.role_arn.clone(),
    };
    let resolve_text = opt_str(&req, "resolveConflicts", cluster)?;
    let resolve = resolve_conflicts(resolve_text, cluster)?;
    if let Some(r) = resolve_text {
        params.push(("ResolveConflicts", r.to_string()));
    }
    // Absent keeps the add-on's configuration; given (even blank) replaces it. A kept one
    // must suit the new version's schema too.
    let text = match opt_str(&req, "configurationValues", cluster)? {
        Some(t) => {
            params.push(("ConfigurationValues", t.to_string()));
            Some(t.to_string()).filter(|t| !t.trim().is_empty())
        }
        None => current.config.clone(),
    };
    let config = check_config(version, text.as_deref(), cluster, name)?;
    let wanted = associations::parse(&req).map_err(|e| invalid(&e, Some(cluster), Some(name)))?;
    if let Some(w) = &wanted {
        let listed: Vec<Value> = w
            .iter()
            .map(|(sa, role)| json!({"serviceAccount": sa, "roleArn": role}))
            .collect();
        params.push(("PodIdentityAssociations", Value::Array(listed).to_string()));
    }
    let restart = wanted
        .as_ref()
        .is_some_and(|w| lock(ctx.store).associations_differ(&current.arn, w));

    let mut failure = None;
    let mut owns_workload = current.owns_workload;
    if let (Some(target), Some(url)) = (&entry.kube, &ctx.cfg.kube_url) {
        let (v, owns) = (&version.addon_version, current.owns_workload);
        match apply(ctx, url, target, v, config.as_ref(), resolve, owns).await {
            Ok(whole) => owns_workload |= whole,
            Err(issue) => failure = Some(issue),
        }
    }
    // The associations change with the request, before the pods restart for them: the new
    // pods must find them.
    if let (Some(w), None) = (&wanted, &failure) {
        lock(ctx.store).set_associations(&key, &entry.default_namespace, &info.account, w);
    }
    if let (Some(target), Some(url), None) = (&entry.kube, &ctx.cfg.kube_url, &failure) {
        let irsa = {
            let store = lock(ctx.store);
            let associated = store
                .addons
                .get(&key)
                .is_some_and(|a| !a.association_arns.is_empty());
            irsa_role(&store, &key, role.as_deref(), associated).map(String::from)
        };
        if irsa != current.irsa_applied {
            failure = apply_service_account(ctx, url, target, irsa.as_deref())
                .await
                .err();
            if failure.is_none() {
                if let Some(a) = lock(ctx.store).addons.get_mut(&key) {
                    a.irsa_applied = irsa;
                }
            }
        }
    }
    if let (Some(target), Some(url), true, None) =
        (&entry.kube, &ctx.cfg.kube_url, restart, &failure)
    {
        failure = restart_workload(ctx, url, target).await.err();
    }

    let pending = Pending::new(ctx.cfg.addon_update_ms, failure.clone());
    let record = UpdateRecord {
        id: faults::request_id(),
        region: ctx.region.to_string(),
        cluster: cluster.to_string(),
        addon: name.to_string(),
        created_at: epoch_now(),
        params,
        until: pending.until,
        failure,
    };
    let reply = faults::eks_json(&json!({ "update": record.json("InProgress") }));
    let mut world = lock(ctx.store);
    let store = &mut *world;
    // Gone only if its cluster was deleted meanwhile; the update then goes with it.
    if let Some(addon) = store.addons.get_mut(&key) {
        addon.phase = Phase::Updating {
            pending,
            change: Change {
                version: version.addon_version.clone(),
                role_arn: role,
                config: text,
                owns_workload,
            },
        };
        store.updates.push(record);
        if let Some(t) = token {
            store.tokens.insert((key, "UpdateAddon", t), reply.clone());
        }
    }
    Ok(reply)
}

async fn delete(ctx: &Ctx<'_>, cluster: &str, name: &str, preserve: Option<&str>) -> Answer {
    let key = ctx.key(cluster, name);
    let _one_at_a_time = ctx.one_at_a_time.lock().await;
    let current = {
        let mut world = lock(ctx.store);
        let store = &mut *world;
        store.settle(Instant::now());
        store.addons.get(&key).cloned()
    };
    let Some(current) = current else {
        return Err(not_found(ctx, cluster, name).await);
    };
    // Deleting again answers with the deletion under way; its window is not restarted.
    if matches!(current.phase, Phase::Deleting(_)) {
        return Ok(faults::eks_json(
            &json!({ "addon": current.json("DELETING") }),
        ));
    }
    let mut failure = None;
    let target = catalogue().find(name).and_then(|e| e.kube.as_ref());
    if let (false, Some(target), Some(url)) = (preserve == Some("true"), target, &ctx.cfg.kube_url)
    {
        if let Err(issue) = delete_workload(ctx, url, target).await {
            failure = Some(issue);
        }
    }
    let mut world = lock(ctx.store);
    if failure.is_none() {
        world.release_associations(&current.arn, preserve == Some("true"));
    }
    let addon = world
        .addons
        .get_mut(&key)
        .ok_or_else(|| addon_not_found(cluster, name))?;
    addon.phase = Phase::Deleting(Pending::new(ctx.cfg.addon_delete_ms, failure));
    Ok(faults::eks_json(
        &json!({ "addon": addon.json("DELETING") }),
    ))
}

async fn list(ctx: &Ctx<'_>, cluster: &str, info: &OpInfo) -> Answer {
    cluster_info(ctx, cluster).await?;
    let mut names: Vec<String> = {
        let mut world = lock(ctx.store);
        let store = &mut *world;
        store.settle(Instant::now());
        store
            .addons
            .keys()
            .filter(|(r, c, _)| r == ctx.region && c == cluster)
            .map(|(_, _, n)| n.clone())
            .collect()
    };
    names.sort();
    let (names, next) = page(&names, info.param("maxResults"), info.param("nextToken"))
        .map_err(|e| invalid(&e, Some(cluster), None))?;
    Ok(faults::eks_json(
        &json!({ "addons": names, "nextToken": next }),
    ))
}

/// The values of a repeated query parameter (`types=a&types=b`).
fn multi<'a>(info: &'a OpInfo, name: &str) -> Vec<&'a str> {
    info.params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn versions(info: &OpInfo) -> Answer {
    let name = info.param("addonName").filter(|n| !n.is_empty());
    let cluster_version = info
        .param("kubernetesVersion")
        .filter(|v| !v.is_empty())
        .map(effective_cluster_version);
    let (types, publishers, owners) = (
        multi(info, "types"),
        multi(info, "publishers"),
        multi(info, "owners"),
    );
    let wanted = |list: &[&str], value: &str| list.is_empty() || list.contains(&value);
    let infos: Vec<Value> = catalogue()
        .addons
        .iter()
        .filter(|a| name.is_none_or(|n| n == a.addon_name))
        .filter(|a| wanted(&types, &a.kind))
        .filter(|a| wanted(&publishers, &a.publisher))
        .filter(|a| wanted(&owners, &a.owner))
        .filter_map(|a| a.info_json(cluster_version))
        .collect();
    let (addons, next) = page(&infos, info.param("maxResults"), info.param("nextToken"))
        .map_err(|e| invalid(&e, None, None))?;
    Ok(faults::eks_json(
        &json!({ "addons": addons, "nextToken": next }),
    ))
}

fn configuration(info: &OpInfo) -> Answer {
    let (Some(name), Some(version)) = (info.param("addonName"), info.param("addonVersion")) else {
        return Err(invalid(
            "addonName and addonVersion must be specified",
            None,
            None,
        ));
    };
    let entry = catalogue()
        .find(name)
        .ok_or_else(|| invalid(UNSUPPORTED_ADDON, None, Some(name)))?;
    let v = entry
        .version(version)
        .ok_or_else(|| invalid(UNSUPPORTED_VERSION, None, Some(name)))?;
    let schema = catalogue().schema(v).map_err(|e| server_error(&e))?;
    Ok(faults::eks_json(&json!({
        "addonName": name,
        "addonVersion": version,
        // A string holding the schema, as EKS sends it.
        "configurationSchema": schema.to_string(),
        "podIdentityConfiguration": entry.pod_identity_configuration,
    })))
}

async fn describe_update(ctx: &Ctx<'_>, cluster: &str, id: &str, addon: &str) -> Answer {
    let found = {
        let world = lock(ctx.store);
        let now = Instant::now();
        world
            .updates
            .iter()
            .find(|u| {
                u.region == ctx.region && u.cluster == cluster && u.id == id && u.addon == addon
            })
            .map(|u| u.json(u.status(now)))
    };
    if let Some(update) = found {
        return Ok(faults::eks_json(&json!({ "update": update })));
    }
    cluster_info(ctx, cluster).await?;
    let message = format!("No update found for ID: {id}");
    Err(error(
        404,
        "ResourceNotFoundException",
        &message,
        cluster,
        Some(addon),
    ))
}

async fn list_updates(ctx: &Ctx<'_>, cluster: &str, addon: &str, info: &OpInfo) -> Answer {
    let ids: Option<Vec<String>> = {
        let mut world = lock(ctx.store);
        let store = &mut *world;
        store.settle(Instant::now());
        store
            .addons
            .contains_key(&ctx.key(cluster, addon))
            .then(|| {
                store
                    .updates
                    .iter()
                    .filter(|u| u.region == ctx.region && u.cluster == cluster && u.addon == addon)
                    .map(|u| u.id.clone())
                    .collect()
            })
    };
    let Some(ids) = ids else {
        return Err(not_found(ctx, cluster, addon).await);
    };
    let (ids, next) = page(&ids, info.param("maxResults"), info.param("nextToken"))
        .map_err(|e| invalid(&e, Some(cluster), Some(addon)))?;
    Ok(faults::eks_json(
        &json!({ "updateIds": ids, "nextToken": next }),
    ))
}

/// ListPodIdentityAssociations: the cluster's, filtered by `namespace` and `serviceAccount`,
/// paged like the other lists.
async fn list_associations(ctx: &Ctx<'_>, cluster: &str, info: &OpInfo) -> Answer {
    cluster_info(ctx, cluster).await?;
    let namespace = info.param("namespace").filter(|n| !n.is_empty());
    let account = info.param("serviceAccount").filter(|n| !n.is_empty());
    let found: Vec<Value> = lock(ctx.store)
        .associations
        .iter()
        .filter(|a| a.region == ctx.region && a.cluster == cluster)
        .filter(|a| namespace.is_none_or(|n| n == a.namespace))
        .filter(|a| account.is_none_or(|s| s == a.service_account))
        .map(Association::summary_json)
        .collect();
    let (found, next) = page(&found, info.param("maxResults"), info.param("nextToken"))
        .map_err(|e| invalid(&e, Some(cluster), None))?;
    Ok(faults::eks_json(
        &json!({ "associations": found, "nextToken": next }),
    ))
}

/// DescribePodIdentityAssociation by id.
async fn describe_association(ctx: &Ctx<'_>, cluster: &str, id: &str) -> Answer {
    let found = lock(ctx.store)
        .associations
        .iter()
        .find(|a| a.region == ctx.region && a.cluster == cluster && a.id == id)
        .map(Association::json);
    if let Some(a) = found {
        return Ok(faults::eks_json(&json!({ "association": a })));
    }
    cluster_info(ctx, cluster).await?;
    Err(error(
        404,
        "ResourceNotFoundException",
        &format!("No Pod Identity Association found with id {id}"),
        cluster,
        None,
    ))
}

// ---- the cluster side ---------------------------------------------------------------------

/// A rolling restart of the add-on's workload: EKS documents that it restarts the pods when
/// the associations change (`add-ons-iam.adoc`), not how; the proxy does as
/// `kubectl rollout restart` does, a new pod template annotation (field manager `eks`, as an
/// update, so the add-on's next apply does not take it back). A workload that is not there has
/// nothing to restart.
async fn restart_workload(ctx: &Ctx<'_>, kube_url: &str, target: &KubeTarget) -> Result<(), Issue> {
    let url = format!(
        "{kube_url}{}?fieldManager={}",
        target.path(),
        kube::FIELD_MANAGER
    );
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": format!("{:.3}", epoch_now()),
    }}}}});
    let (status, body, raw) = kube_call(
        ctx.host,
        Method::PATCH,
        &url,
        Some("application/strategic-merge-patch+json"),
        Bytes::from(patch.to_string()),
    )
    .await?;
    match status {
        200..=299 | 404 => Ok(()),
        s => Err(kube_issue(target, s, &body, &raw)),
    }
}

/// A request to the Kubernetes API server: (status, body as JSON or null, body text).
async fn kube_call(
    host: &Host,
    method: Method,
    url: &str,
    content_type: Option<&'static str>,
    body: Bytes,
) -> Result<(u16, Value, String), Issue> {
    let unreachable = |why: String| {
        Issue::new(
            "ClusterUnreachable",
            format!("Unable to reach the Kubernetes API server of the cluster: {why}"),
        )
    };
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(ct) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let reply = tokio::time::timeout(
        KUBE_TIMEOUT,
        host.upstream.send(&method, url, &headers, body),
    )
    .await
    .map_err(|_| unreachable(format!("no answer within {KUBE_TIMEOUT:?}")))?
    .map_err(unreachable)?;
    let raw = String::from_utf8_lossy(&reply.body).into_owned();
    let value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Ok((reply.status, value, raw))
}

/// An error answer of the API server as a health issue.
fn kube_issue(target: &KubeTarget, status: u16, body: &Value, raw: &str) -> Issue {
    let code = match status {
        401 | 403 => "AccessDenied",
        404 => "K8sResourceNotFound",
        _ => "InternalFailure",
    };
    Issue::new(
        code,
        format!(
            "{} {}: {}",
            target.kind_and_group(),
            target.name(),
            kube::status_message(status, body, raw)
        ),
    )
}

/// Server-side apply of the add-on's workload. `Ok(true)` if the whole manifest was applied
/// (the workload was missing, or the add-on already owned all of it).
async fn apply(
    ctx: &Ctx<'_>,
    kube_url: &str,
    target: &KubeTarget,
    version: &str,
    config: Option<&Value>,
    resolve: Resolve,
    owns_workload: bool,
) -> Result<bool, Issue> {
    let url = format!("{kube_url}{}", target.path());
    let whole = owns_workload || {
        let (status, body, raw) =
            kube_call(ctx.host, Method::GET, &url, None, Bytes::new()).await?;
        match status {
            200..=299 => false,
            404 => true,
            s => return Err(kube_issue(target, s, &body, &raw)),
        }
    };
    let mut body = kube::apply_body(target, ctx.region, version, config, whole);
    let force = if resolve == Resolve::Overwrite {
        "&force=true"
    } else {
        ""
    };
    let patch_url = format!("{url}?fieldManager={}{force}", kube::FIELD_MANAGER);
    for _ in 0..MAX_APPLY_ROUNDS {
        let (status, answer, raw) = kube_call(
            ctx.host,
            Method::PATCH,
            &patch_url,
            Some(kube::APPLY_PATCH),
            Bytes::from(body.to_string()),
        )
        .await?;
        if (200..300).contains(&status) {
            return Ok(whole);
        }
        let fields = kube::conflict_fields(&answer);
        if status != 409 || fields.is_empty() {
            return Err(kube_issue(target, status, &answer, &raw));
        }
        // PRESERVE: what another manager owns stays theirs; apply the rest.
        if resolve == Resolve::Preserve {
            let mut removed = false;
            for field in &fields {
                removed |= kube::remove_field(&mut body, field);
            }
            if removed {
                continue;
            }
        }
        return Err(Issue::new(
            "ConfigurationConflict",
            kube::conflict_message(target, &fields),
        ));
    }
    Err(Issue::new(
        "ConfigurationConflict",
        format!("Conflicts remained after {MAX_APPLY_ROUNDS} attempts to apply"),
    ))
}

/// The IRSA role the workload's service account is to carry: the add-on's
/// `serviceAccountRoleArn`, unless EKS ignores it (the agent add-on runs in the cluster and
/// the add-on has associations).
fn irsa_role<'r>(
    store: &Store,
    key: &AddonKey,
    role: Option<&'r str>,
    associated: bool,
) -> Option<&'r str> {
    let agent = store.addons.iter().any(|((r, c, n), a)| {
        r == &key.0
            && c == &key.1
            && n == "eks-pod-identity-agent"
            && !matches!(a.phase, Phase::Deleting(_))
    });
    role.filter(|_| !(agent && associated))
}

/// Server-side applies the workload's service account with the IRSA annotation (or without
/// it, which removes the one `eks` set). A workload without a service account has none.
async fn apply_service_account(
    ctx: &Ctx<'_>,
    kube_url: &str,
    target: &KubeTarget,
    role: Option<&str>,
) -> Result<(), Issue> {
    let Some(account) = target
        .manifest
        .pointer("/spec/template/spec/serviceAccountName")
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let mut body = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": target.namespace()}});
    if let Some(r) = role {
        body["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": r});
    }
    let url = format!(
        "{kube_url}/api/v1/namespaces/{}/serviceaccounts/{}?fieldManager={}&force=true",
        form_encode(target.namespace()),
        form_encode(account),
        kube::FIELD_MANAGER
    );
    let (status, answer, raw) = kube_call(
        ctx.host,
        Method::PATCH,
        &url,
        Some(kube::APPLY_PATCH),
        Bytes::from(body.to_string()),
    )
    .await?;
    match status {
        200..=299 => Ok(()),
        s => Err(Issue::new(
            "InternalFailure",
            format!(
                "ServiceAccount {account}: {}",
                kube::status_message(s, &answer, &raw)
            ),
        )),
    }
}

/// Deletes the add-on's workload (DeleteAddon without `preserve=true`); already gone is fine.
async fn delete_workload(ctx: &Ctx<'_>, kube_url: &str, target: &KubeTarget) -> Result<(), Issue> {
    let url = format!("{kube_url}{}", target.path());
    let (status, body, raw) = kube_call(ctx.host, Method::DELETE, &url, None, Bytes::new()).await?;
    match status {
        200..=299 | 404 => Ok(()),
        s => Err(kube_issue(target, s, &body, &raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_tokens() {
        let items: Vec<u32> = (0..5).collect();
        assert_eq!(page(&items, None, None).unwrap(), (items.clone(), None));
        let (first, next) = page(&items, Some("2"), None).unwrap();
        assert_eq!(first, vec![0, 1]);
        let (second, next) = page(&items, Some("2"), next.as_deref()).unwrap();
        assert_eq!(second, vec![2, 3]);
        let (third, next) = page(&items, Some("2"), next.as_deref()).unwrap();
        assert_eq!((third, next), (vec![4], None));
        assert!(page(&items, Some("0"), None)
            .unwrap_err()
            .contains("greater than or equal to 1"));
        assert!(page(&items, Some("101"), None)
            .unwrap_err()
            .contains("less than or equal to 100"));
        assert!(page(&items, None, Some("9")).is_err());
        assert!(page(&items, None, Some("x")).is_err());
    }

    fn addon(phase: Phase) -> Addon {
        Addon {
            name: "vpc-cni".into(),
            cluster: "c1".into(),
            arn: "arn".into(),
            version: "v1".into(),
            role_arn: None,
            tags: Map::new(),
            config: None,
            created_at: 1.0,
            modified_at: 1.0,
            issues: Vec::new(),
            owns_workload: false,
            association_arns: Vec::new(),
            irsa_applied: None,
            phase,
        }
    }

    #[test]
    fn windows_settle_into_their_outcome() {
        let now = Instant::now();
        let later = now + Duration::from_secs(3600);
        let conflict = Issue::new("ConfigurationConflict", "Conflicts found");

        let mut a = addon(Phase::Creating(Pending::new(0, None)));
        assert!(a.settle(later));
        assert_eq!(a.status(), "ACTIVE");

        let mut a = addon(Phase::Creating(Pending::new(0, Some(conflict.clone()))));
        assert!(a.settle(later));
        assert_eq!(a.status(), "CREATE_FAILED");
        assert_eq!(
            a.json("x")["health"]["issues"][0]["code"],
            "ConfigurationConflict"
        );

        let mut a = addon(Phase::Creating(Pending::new(60_000, None)));
        assert!(a.settle(now));
        assert_eq!(a.status(), "CREATING");

        let change = Change {
            version: "v2".into(),
            role_arn: Some("arn:role".into()),
            config: Some("{}".into()),
            owns_workload: true,
        };
        let mut a = addon(Phase::Updating {
            pending: Pending::new(0, None),
            change: change.clone(),
        });
        assert!(a.settle(later));
        assert_eq!((a.status(), a.version.as_str()), ("ACTIVE", "v2"));
        assert_eq!(a.json("ACTIVE")["serviceAccountRoleArn"], "arn:role");
        let mut a = addon(Phase::Updating {
            pending: Pending::new(0, Some(conflict.clone())),
            change,
        });
        assert!(a.settle(later));
        assert_eq!((a.status(), a.version.as_str()), ("ACTIVE", "v1"));

        let mut a = addon(Phase::Deleting(Pending::new(0, None)));
        assert!(!a.settle(later), "gone");
        let mut a = addon(Phase::Deleting(Pending::new(0, Some(conflict))));
        assert!(a.settle(later));
        assert_eq!(a.status(), "DELETE_FAILED");
    }

    #[test]
    fn update_errors_show_once_failed() {
        let now = Instant::now();
        let u = UpdateRecord {
            id: "u1".into(),
            region: "us-east-1".into(),
            cluster: "c1".into(),
            addon: "vpc-cni".into(),
            created_at: 2.5,
            params: vec![("AddonVersion", "v2".into())],
            until: now,
            failure: Some(Issue::new("InternalFailure", "boom")),
        };
        assert_eq!(u.status(now), "Failed");
        let j = u.json("Failed");
        assert_eq!(j["errors"][0]["errorCode"], "Unknown");
        assert_eq!(
            j["params"],
            json!([{"type": "AddonVersion", "value": "v2"}])
        );
        assert_eq!(u.json("InProgress")["errors"], json!([]));
    }
}
