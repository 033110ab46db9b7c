//! EKS UpdateNodegroupVersion, answered by the proxy itself: moto 5.2 has no route for it
//! (it answers 404 with an HTML page), nor for DescribeUpdate.
//!
//! What takes effect is the `launchTemplate` version: the proxy keeps an overlay per
//! (region, cluster, nodegroup) with the version the nodegroup was moved to, and
//! its `rewrite` hook puts it into moto's DescribeNodegroup (and DeleteNodegroup)
//! answers. moto itself keeps the version the nodegroup was created with. An update opens an
//! UPDATING window of `nodegroup_update_ms`. `version` and `releaseVersion` are accepted and
//! listed in the update's params, but change nothing (moto's values stay).
//!
//! Whether the nodegroup exists, and which launch template it is on, the proxy asks moto
//! (`GET /clusters/C/node-groups/N`, not counted in the stats and not faulted). The overlay
//! goes with DeleteNodegroup, with a new nodegroup of the same name and with
//! `POST /__proxy/reset`. The CREATING/DELETING windows of nodegroups are the core's (see
//! `eks_states`): an update is refused during them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;
use serde_json::{json, Map, Value};

use crate::core::emulator::{self, BoxFuture, Call, Emulator, Host};
use crate::core::faults::{self, Reply};
use crate::core::ops::{OpInfo, Protocol};
use crate::core::upstream::{ec2_headers, own_request_headers};
use crate::core::windows::{Phase, ResourceKey};
use crate::shared::{deadline, epoch_now, form_encode, json_str, lock, set_json_status, xml_first};

/// (region, cluster, nodegroup)
type NodegroupKey = (String, String, String);

/// A handler's answer: `Err` is an EKS error answer (boxed: a `Reply` is large and errors
/// travel up through `?`).
type Answer = Result<Reply, Box<Reply>>;

/// The overlays of all nodegroups that had an update.
#[derive(Debug, Default)]
struct Store {
    overlays: HashMap<NodegroupKey, Overlay>,
}

#[derive(Debug)]
struct Overlay {
    /// The launch template version of the last update that named one; `None`: moto's.
    launch_template_version: Option<String>,
    /// End of the UPDATING window of the last update.
    updating_until: Instant,
    /// In creation order, for DescribeUpdate.
    updates: Vec<UpdateRecord>,
    /// clientRequestToken -> the answer given. The SDK fills in a token and keeps it across
    /// its retries; a retry of an accepted update (its answer lost) must get that answer,
    /// not a 409 for the update it started itself.
    tokens: HashMap<String, Reply>,
}

#[derive(Clone, Debug)]
struct UpdateRecord {
    id: String,
    created_at: f64,
    params: Vec<(&'static str, String)>,
    until: Instant,
}

impl UpdateRecord {
    fn status(&self, now: Instant) -> &'static str {
        if now < self.until {
            "InProgress"
        } else {
            "Successful"
        }
    }

    fn json(&self, status: &str) -> Value {
        let params: Vec<Value> = self
            .params
            .iter()
            .map(|(kind, value)| json!({"type": kind, "value": value}))
            .collect();
        json!({
            "id": self.id,
            "status": status,
            "type": "VersionUpdate",
            "params": params,
            "createdAt": self.created_at,
            "errors": [],
        })
    }
}

impl Store {
    /// Drops the nodegroup's overlay (deleted, or made anew); returns the launch template
    /// version it had, for the answer that describes the nodegroup one last time.
    fn forget(&mut self, key: &NodegroupKey) -> Option<String> {
        self.overlays
            .remove(key)
            .and_then(|o| o.launch_template_version)
    }

    fn launch_template_version(&self, key: &NodegroupKey) -> Option<&str> {
        self.overlays
            .get(key)
            .and_then(|o| o.launch_template_version.as_deref())
    }

    /// Whether the nodegroup is in the UPDATING window of its last update at `now`.
    fn updating(&self, key: &NodegroupKey, now: Instant) -> bool {
        self.overlays
            .get(key)
            .is_some_and(|o| now < o.updating_until)
    }

    fn replay(&self, key: &NodegroupKey, token: Option<&str>) -> Option<Reply> {
        self.overlays.get(key)?.tokens.get(token?).cloned()
    }

    fn record(
        &mut self,
        key: NodegroupKey,
        version: Option<String>,
        update: UpdateRecord,
        token: Option<String>,
        reply: &Reply,
    ) {
        let overlay = self.overlays.entry(key).or_insert_with(|| Overlay {
            launch_template_version: None,
            updating_until: update.until,
            updates: Vec::new(),
            tokens: HashMap::new(),
        });
        // An update without a launch template keeps the version of an earlier one.
        if version.is_some() {
            overlay.launch_template_version = version;
        }
        overlay.updating_until = update.until;
        overlay.updates.push(update);
        if let Some(t) = token {
            overlay.tokens.insert(t, reply.clone());
        }
    }
}

// ---- errors, in EKS's words -------------------------------------------------------------

fn error(status: u16, kind: &str, message: &str, cluster: &str, ng: &str) -> Box<Reply> {
    Box::new(faults::eks_error_with(
        status,
        kind,
        message,
        &[("clusterName", Some(cluster)), ("nodegroupName", Some(ng))],
    ))
}

fn invalid(message: &str, cluster: &str, ng: &str) -> Box<Reply> {
    error(400, "InvalidParameterException", message, cluster, ng)
}

fn in_use(state: &str, cluster: &str, ng: &str) -> Box<Reply> {
    let message = format!("Nodegroup {ng} cannot be updated as it is currently in {state} state");
    error(409, "ResourceInUseException", &message, cluster, ng)
}

fn server_error(why: &str) -> Box<Reply> {
    eprintln!("aws-fault-proxy: UpdateNodegroupVersion: {why}");
    Box::new(faults::eks_error(
        500,
        "ServerException",
        "Internal server error",
    ))
}

// ---- request parsing ----------------------------------------------------------------------

/// The JSON object of a request body (an empty body is `{}`).
fn body_object(body: &[u8], cluster: &str, ng: &str) -> Result<Map<String, Value>, Box<Reply>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(invalid(
            "The request body is not a valid JSON object",
            cluster,
            ng,
        )),
    }
}

/// A string member; `Ok(None)` when absent or null.
fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    cluster: &str,
    ng: &str,
) -> Result<Option<&'a str>, Box<Reply>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(&format!("{field} must be a string"), cluster, ng)),
    }
}

/// A `LaunchTemplateSpecification` (request) or a nodegroup's `launchTemplate` (moto).
#[derive(Debug, Default)]
struct TemplateRef {
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
}

impl TemplateRef {
    fn from_json(obj: &Map<String, Value>, cluster: &str, ng: &str) -> Result<Self, Box<Reply>> {
        let field = |f: &str| -> Result<Option<String>, Box<Reply>> {
            let value = opt_str(obj, f, cluster, ng).map_err(|_| {
                invalid(&format!("launchTemplate.{f} must be a string"), cluster, ng)
            })?;
            Ok(value.filter(|v| !v.is_empty()).map(str::to_string))
        };
        Ok(TemplateRef {
            id: field("id")?,
            name: field("name")?,
            version: field("version")?,
        })
    }

    fn describe(&self) -> String {
        match (&self.id, &self.name) {
            (Some(id), _) => id.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => "(unnamed)".into(),
        }
    }
}

// ---- the handlers -------------------------------------------------------------------------

/// The emulator: UpdateNodegroupVersion and DescribeUpdate served, the overlay laid on
/// moto's nodegroup answers.
#[derive(Default)]
pub struct NodegroupVersion {
    store: Mutex<Store>,
}

impl Emulator for NodegroupVersion {
    /// Answers UpdateNodegroupVersion, and DescribeUpdate with `nodegroupName`; `None` for any
    /// other request (it goes on through the pipeline).
    fn serve<'a>(&'a self, call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(self.serve_now(call.host, call))
    }

    /// Puts the overlay's version into moto's nodegroup answers. Runs before `eks_states`
    /// (its place in the list), so that a DeleteNodegroup snapshot replayed while DELETING
    /// has the version too.
    fn rewrite<'a>(
        &'a self,
        call: &'a Call<'a>,
        answer: &'a mut emulator::Answer,
    ) -> BoxFuture<'a, ()> {
        let host = call.host;
        self.overlay(host, call.info, answer);
        emulator::ready(())
    }

    fn reset(&self) {
        *lock(&self.store) = Store::default();
    }
}

impl NodegroupVersion {
    async fn serve_now(&self, host: &Host, call: &Call<'_>) -> Option<Reply> {
        let info = call.info;
        if info.protocol != Protocol::RestJson {
            return None;
        }
        let cluster = info.segment(1)?;
        let reply = match info.op.as_str() {
            "UpdateNodegroupVersion" => {
                let ng = info.segment(3)?;
                self.update(host, call, cluster, ng).await
            }
            // Without `nodegroupName` it is a cluster's update: moto's (the add-on ones are
            // answered before this).
            "DescribeUpdate" => {
                let ng = info.param("nodegroupName")?;
                self.describe_update(info, cluster, ng, info.segment(3)?)
            }
            _ => return None,
        };
        Some(reply.unwrap_or_else(|refused| *refused))
    }

    fn overlay(&self, host: &Host, info: &OpInfo, answer: &mut emulator::Answer) {
        if info.protocol != Protocol::RestJson {
            return;
        }
        let region = info.region.as_str();
        match info.op.as_str() {
            "CreateNodegroup" => {
                // A new nodegroup is on the version it was created with, whatever an
                // earlier one of the name was moved to (deleted behind the proxy's back,
                // or with a moto reset of its own).
                let ng = json_str(&answer.reply.body, Some("nodegroup"), "nodegroupName");
                if let (Some(cluster), Some(ng)) = (info.segment(1), ng) {
                    let key = (region.to_string(), cluster.to_string(), ng);
                    lock(&self.store).forget(&key);
                }
            }
            "DescribeNodegroup" => {
                let (Some(cluster), Some(ng)) = (info.segment(1), info.segment(3)) else {
                    return;
                };
                let now = answer.sent;
                // A CREATING window (`eks_states` shows it) wins over UPDATING.
                let creating = lock(&host.windows)
                    .get(&ResourceKey::nodegroup(region, cluster, ng))
                    .is_some_and(|p| p.creating(now));
                let key = (region.to_string(), cluster.to_string(), ng.to_string());
                let store = lock(&self.store);
                // moto still has the version the nodegroup was created with. Not a fault:
                // no label.
                if let Some(version) = store.launch_template_version(&key) {
                    if let Some(body) = set_launch_template_version(&answer.reply.body, version) {
                        answer.reply.body = body;
                    }
                }
                if !creating && store.updating(&key, now) {
                    if let Some(body) = set_json_status(&answer.reply.body, "nodegroup", "UPDATING")
                    {
                        answer.reply.body = body;
                        answer.label("transition");
                    }
                }
            }
            "DeleteNodegroup" => {
                // The answer (and the snapshot replayed while DELETING) describes the
                // nodegroup as it was: on the version of its last update.
                if let (Some(cluster), Some(ng)) = (info.segment(1), info.segment(3)) {
                    let key = (region.to_string(), cluster.to_string(), ng.to_string());
                    let version = lock(&self.store).forget(&key);
                    if let Some(version) = version {
                        if let Some(body) =
                            set_launch_template_version(&answer.reply.body, &version)
                        {
                            answer.reply.body = body;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    async fn update(&self, host: &Host, call: &Call<'_>, cluster: &str, ng: &str) -> Answer {
        let (info, cfg, headers) = (call.info, call.cfg, call.headers);
        let req = body_object(call.body, cluster, ng)?;
        let wanted = match req.get("launchTemplate") {
            None | Some(Value::Null) => None,
            Some(Value::Object(obj)) => Some(TemplateRef::from_json(obj, cluster, ng)?),
            Some(_) => return Err(invalid("launchTemplate must be an object", cluster, ng)),
        };
        let version = opt_str(&req, "version", cluster, ng)?;
        let release = opt_str(&req, "releaseVersion", cluster, ng)?;
        let token = opt_str(&req, "clientRequestToken", cluster, ng)?;
        if !matches!(req.get("force"), None | Some(Value::Null | Value::Bool(_))) {
            return Err(invalid("force must be a boolean", cluster, ng));
        }
        if wanted.is_none() && version.is_none() && release.is_none() {
            return Err(invalid(
                "One of launchTemplate, version or releaseVersion must be specified",
                cluster,
                ng,
            ));
        }
        let key = (info.region.clone(), cluster.to_string(), ng.to_string());
        let window = ResourceKey::nodegroup(&info.region, cluster, ng);
        if let Some(reply) = lock(&self.store).replay(&key, token) {
            return Ok(reply);
        }
        // moto has forgotten a nodegroup in its DELETING window; EKS still has it, busy.
        if busy_state(lock(&host.windows).get(&window), Instant::now()) == Some("DELETING") {
            return Err(in_use("DELETING", cluster, ng));
        }
        let current = nodegroup_in_moto(host, headers, cluster, ng).await?;

        // The update's params list what the request gave.
        let mut params: Vec<(&'static str, String)> = Vec::new();
        let mut new_version = None;
        if let Some(wanted) = wanted {
            let have = match current.get("launchTemplate") {
                Some(Value::Object(obj)) => TemplateRef::from_json(obj, cluster, ng)?,
                _ => {
                    return Err(invalid(
                        &format!(
                            "Nodegroup {ng} was not created with a launch template; a launch \
                         template cannot be specified in an update"
                        ),
                        cluster,
                        ng,
                    ))
                }
            };
            if wanted.id.is_none() && wanted.name.is_none() {
                return Err(invalid(
                    "Either launchTemplate.id or launchTemplate.name must be specified",
                    cluster,
                    ng,
                ));
            }
            // EKS updates a nodegroup to another version of its template only, never to another
            // template. A side the nodegroup does not know (moto resolves the other one only if
            // the template exists in its EC2) cannot be shown to be the same: refused too.
            let differs = |asked: &Option<String>, has: &Option<String>| {
                asked.as_ref().is_some_and(|a| has.as_ref() != Some(a))
            };
            if differs(&wanted.id, &have.id) || differs(&wanted.name, &have.name) {
                return Err(invalid(
                    &format!(
                        "Nodegroup {ng} uses launch template {}; an update cannot switch it to \
                     launch template {}",
                        have.describe(),
                        wanted.describe()
                    ),
                    cluster,
                    ng,
                ));
            }
            let v = match wanted.version.as_deref() {
                Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => v.to_string(),
                // No version is the template's default one, as in EKS; the two aliases are
                // resolved to the number EKS would show.
                None => template_version(host, headers, info, &have, false, cluster, ng).await?,
                Some("$Default") => {
                    template_version(host, headers, info, &have, false, cluster, ng).await?
                }
                Some("$Latest") => {
                    template_version(host, headers, info, &have, true, cluster, ng).await?
                }
                Some(other) => {
                    return Err(invalid(
                        &format!("Launch template version {other:?} is not valid"),
                        cluster,
                        ng,
                    ))
                }
            };
            params.push(("LaunchTemplateVersion", v.clone()));
            if let Some(name) = &have.name {
                params.push(("LaunchTemplateName", name.clone()));
            }
            new_version = Some(v);
        }
        if let Some(v) = version {
            params.push(("Version", v.to_string()));
        }
        if let Some(r) = release {
            params.push(("ReleaseVersion", r.to_string()));
        }
        let record = UpdateRecord {
            id: faults::request_id(),
            created_at: epoch_now(),
            params,
            until: deadline(cfg.nodegroup_update_ms),
        };
        let reply = faults::eks_json(&json!({ "update": record.json("InProgress") }));

        // Decided and recorded under the locks, with no await in between, so that of two
        // concurrent updates one wins and the other gets the 409. (Lock order: windows, then
        // the store; nothing takes them the other way round.)
        let mut windows = lock(&host.windows);
        let mut store = lock(&self.store);
        let now = Instant::now();
        if let Some(reply) = store.replay(&key, token) {
            return Ok(reply);
        }
        if let Some(state) = busy_state(windows.get(&window), now) {
            return Err(in_use(state, cluster, ng));
        }
        if store.updating(&key, now) {
            return Err(in_use("UPDATING", cluster, ng));
        }
        store.record(key, new_version, record, token.map(str::to_string), &reply);
        if cfg.data_plane && cfg.kube_url.is_some() {
            // UPDATING until the new nodes joined and the old ones were drained and ended
            // (EKS user guide, `nodes/managed-node-update-behavior.adoc`); the data plane
            // clears the mark.
            windows.set_joining(window.clone(), "UPDATING");
        }
        Ok(reply)
    }

    fn describe_update(&self, info: &OpInfo, cluster: &str, ng: &str, id: &str) -> Answer {
        let key = (info.region.clone(), cluster.to_string(), ng.to_string());
        let store = lock(&self.store);
        let found = store
            .overlays
            .get(&key)
            .and_then(|o| o.updates.iter().find(|u| u.id == id));
        match found {
            Some(u) => Ok(faults::eks_json(
                &json!({ "update": u.json(u.status(Instant::now())) }),
            )),
            // moto keeps no updates at all: any other id is unknown.
            None => Err(error(
                404,
                "ResourceNotFoundException",
                &format!("No update found for ID: {id}"),
                cluster,
                ng,
            )),
        }
    }
}

/// CREATING or DELETING if the nodegroup is in such a window of the proxy's.
fn busy_state(phase: Option<&Phase>, now: Instant) -> Option<&'static str> {
    match phase? {
        p @ Phase::Creating { .. } if p.active(now) => Some("CREATING"),
        p @ Phase::Deleting { .. } if p.active(now) => Some("DELETING"),
        _ => None,
    }
}

/// DescribeNodegroup sent to moto by the proxy itself with the client's credentials (moto
/// takes region and account from them): not counted, faulted or delayed. The `nodegroup`
/// object, or the EKS error to answer.
async fn nodegroup_in_moto(
    host: &Host,
    client_headers: &HeaderMap,
    cluster: &str,
    ng: &str,
) -> Result<Map<String, Value>, Box<Reply>> {
    let headers = own_request_headers(client_headers);
    let path = format!(
        "/clusters/{}/node-groups/{}",
        form_encode(cluster),
        form_encode(ng)
    );
    let reply = host
        .upstream
        .forward(&Method::GET, &path, &headers, Bytes::new())
        .await
        .map_err(|e| server_error(&format!("DescribeNodegroup {cluster}/{ng}: {e}")))?;
    let answer: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    match reply.status {
        200..=299 => match answer.get("nodegroup") {
            Some(Value::Object(obj)) => Ok(obj.clone()),
            _ => Err(server_error(&format!(
                "DescribeNodegroup {cluster}/{ng}: moto's answer has no nodegroup"
            ))),
        },
        // moto's message says which is missing, the cluster or the nodegroup, in EKS's words.
        404 => {
            let message = answer
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("No node group found for name: {ng}."));
            Err(error(
                404,
                "ResourceNotFoundException",
                &message,
                cluster,
                ng,
            ))
        }
        s => Err(server_error(&format!(
            "DescribeNodegroup {cluster}/{ng}: moto answered {s}"
        ))),
    }
}

/// The template's default (or, with `latest`, latest) version number, from moto's EC2
/// (`DescribeLaunchTemplates`, the proxy's own call, as above).
async fn template_version(
    host: &Host,
    client_headers: &HeaderMap,
    info: &OpInfo,
    template: &TemplateRef,
    latest: bool,
    cluster: &str,
    ng: &str,
) -> Result<String, Box<Reply>> {
    let selector = match (&template.id, &template.name) {
        (Some(id), _) => format!("LaunchTemplateId.1={}", form_encode(id)),
        (None, Some(name)) => format!("LaunchTemplateName.1={}", form_encode(name)),
        (None, None) => {
            return Err(invalid(
                "The nodegroup's launch template has neither id nor name",
                cluster,
                ng,
            ))
        }
    };
    let body = format!("Action=DescribeLaunchTemplates&Version=2016-11-15&{selector}");
    let headers = ec2_headers(client_headers, &info.region);
    let not_found = |why: &str| {
        invalid(
            &format!(
                "Launch template {} could not be described ({why}); give a version number",
                template.describe()
            ),
            cluster,
            ng,
        )
    };
    let text = host
        .upstream
        .ec2_call(&headers, body)
        .await
        .map_err(|e| not_found(&e))?;
    let tag = if latest {
        "latestVersionNumber"
    } else {
        "defaultVersionNumber"
    };
    xml_first(&text, tag).ok_or_else(|| not_found(&format!("no {tag} in the answer")))
}

/// Sets `body.nodegroup.launchTemplate.version` in an EKS JSON answer; `None` if the
/// nodegroup has no launch template (or the body is not the expected shape).
fn set_launch_template_version(body: &[u8], version: &str) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let template = v
        .get_mut("nodegroup")?
        .get_mut("launchTemplate")?
        .as_object_mut()?;
    template.insert("version".into(), Value::String(version.into()));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(ms: u64) -> UpdateRecord {
        UpdateRecord {
            id: "u1".into(),
            created_at: 2.5,
            params: vec![("LaunchTemplateVersion", "2".into())],
            until: deadline(ms),
        }
    }

    #[test]
    fn overlay_keeps_the_last_template_version_and_window() {
        let mut store = Store::default();
        let key = ("r".to_string(), "c".to_string(), "n".to_string());
        let reply = faults::eks_json(&json!({}));
        store.record(
            key.clone(),
            Some("2".into()),
            record(60_000),
            Some("t".into()),
            &reply,
        );
        assert_eq!(store.launch_template_version(&key), Some("2"));
        assert!(store.updating(&key, Instant::now()));
        assert!(!store.updating(&key, Instant::now() + Duration::from_secs(3600)));
        assert!(store.replay(&key, Some("t")).is_some());
        assert!(store.replay(&key, Some("other")).is_none());
        assert!(store.replay(&key, None).is_none());
        // An update of `version` only keeps the template version.
        store.record(key.clone(), None, record(0), None, &reply);
        assert_eq!(store.launch_template_version(&key), Some("2"));
        assert!(!store.updating(&key, Instant::now()));
        assert_eq!(store.forget(&key).as_deref(), Some("2"));
        assert_eq!(store.launch_template_version(&key), None);
        assert_eq!(store.forget(&key), None);
    }

    #[test]
    fn update_shape() {
        let u = record(60_000);
        assert_eq!(u.status(Instant::now()), "InProgress");
        assert_eq!(
            u.status(Instant::now() + Duration::from_secs(3600)),
            "Successful"
        );
        assert_eq!(
            u.json("InProgress"),
            json!({
                "id": "u1", "status": "InProgress", "type": "VersionUpdate",
                "params": [{"type": "LaunchTemplateVersion", "value": "2"}],
                "createdAt": 2.5, "errors": []
            })
        );
    }

    #[test]
    fn launch_template_version_rewrite() {
        let body =
            br#"{"nodegroup": {"launchTemplate": {"id": "lt-1", "name": "n", "version": "1"}}}"#;
        let out = set_launch_template_version(body, "2").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["nodegroup"]["launchTemplate"],
            serde_json::json!({"id": "lt-1", "name": "n", "version": "2"})
        );
        assert!(set_launch_template_version(br#"{"nodegroup": {}}"#, "2").is_none());
        assert!(set_launch_template_version(b"<x/>", "2").is_none());
    }
}
