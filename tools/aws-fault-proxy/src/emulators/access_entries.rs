//! EKS access entries, which moto does not implement: CreateAccessEntry, DescribeAccessEntry,
//! DeleteAccessEntry and ListAccessEntries (EKS API reference), served by the proxy.
//!
//! As EKS documents them: an entry is keyed by cluster and principal ARN; a second create for
//! the same principal is `ResourceInUseException` (409); describing or deleting one that does
//! not exist is `ResourceNotFoundException` (404). `type` is `STANDARD` when not given; an
//! `EC2_LINUX` or `EC2_WINDOWS` entry takes no `kubernetesGroups` and gets the username
//! `system:node:{{EC2PrivateDNSName}}` and the group `system:nodes` (EKS user guide,
//! access-entries: "creating access entries ... type EC2_LINUX"). Entries go with their
//! cluster (DeleteCluster).
//!
//! Access policies (AssociateAccessPolicy, DisassociateAccessPolicy,
//! ListAssociatedAccessPolicies) go only on `STANDARD` and `EC2` entries (user guide,
//! `access-policies.adoc`); an association again replaces its scope.
//!
//! The cluster's `accessConfig`, which moto drops: the authentication mode given at create
//! (EKS API reference, CreateAccessConfigRequest: `CONFIG_MAP` when not given through the API)
//! is kept and reported; UpdateClusterConfig moves it forward only (CONFIG_MAP →
//! API_AND_CONFIG_MAP → API, user guide `setting-up-access-entries.adoc`), and under
//! `CONFIG_MAP` CreateAccessEntry is refused (`InvalidRequestException`), as EKS does. A
//! cluster the proxy has not seen made is taken to allow entries. The `accessConfig` part is
//! one of the cluster fields: only with the `eks_cluster_fields` option.
//!
//! Not yet read by the data plane: a self-managed instance joins whatever the entries say
//! (EKS refuses a kubelet whose role has no EC2_LINUX entry nor an aws-auth mapping).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Map, Value};

use crate::core::emulator::{self, Answer, BoxFuture, Call, Emulator};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;

/// moto's account when the ARN does not say otherwise.
const DEFAULT_ACCOUNT: &str = "123456789012";
/// The node types: EKS names their user and group itself. (`EC2`, Auto Mode's, is taken as
/// the others: the user guide does not say its user name.)
const NODE_TYPES: &[&str] = &["EC2_LINUX", "EC2_WINDOWS", "EC2", "HYBRID_LINUX"];
const TYPES: &[&str] = &[
    "STANDARD",
    "FARGATE_LINUX",
    "EC2_LINUX",
    "EC2_WINDOWS",
    "EC2",
    "HYBRID_LINUX",
];
/// The types access policies may be associated with.
const POLICY_TYPES: &[&str] = &["STANDARD", "EC2"];
/// The authentication modes, in the only order EKS moves between them.
const MODES: &[&str] = &["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"];

type EntryKey = (String, String, String);

/// Entries by (region, cluster, principal ARN).
#[derive(Default)]
struct Store {
    entries: BTreeMap<EntryKey, Value>,
    /// Each entry's associated policies, by policy ARN.
    policies: BTreeMap<EntryKey, BTreeMap<String, Value>>,
    /// Each cluster's `accessConfig`, by (region, cluster).
    access: BTreeMap<(String, String), Value>,
}

impl Store {
    fn create(
        &mut self,
        region: &str,
        cluster: &str,
        req: &Map<String, Value>,
    ) -> Result<Value, Box<Reply>> {
        let invalid = |m: &str| Box::new(faults::eks_error(400, "InvalidParameterException", m));
        if self.mode(region, cluster) == Some("CONFIG_MAP") {
            return Err(Box::new(faults::eks_error(
                400,
                "InvalidRequestException",
                "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.",
            )));
        }
        let principal = req
            .get("principalArn")
            .and_then(Value::as_str)
            .filter(|p| p.starts_with("arn:"))
            .ok_or_else(|| invalid("principalArn must be an IAM principal ARN"))?;
        let kind = req
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("STANDARD");
        if !TYPES.contains(&kind) {
            return Err(invalid(&format!("Invalid type: {kind}")));
        }
        let groups = req
            .get("kubernetesGroups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if NODE_TYPES.contains(&kind) && !groups.is_empty() {
            return Err(invalid(
                "kubernetesGroups cannot be specified for access entries of type EC2_LINUX or EC2_WINDOWS",
            ));
        }
        let key = (
            region.to_string(),
            cluster.to_string(),
            principal.to_string(),
        );
        if self.entries.contains_key(&key) {
            return Err(Box::new(faults::eks_error_with(
                409,
                "ResourceInUseException",
                "The specified access entry resource is already in use on this cluster.",
                &[("clusterName", Some(cluster))],
            )));
        }
        let (username, groups) = if NODE_TYPES.contains(&kind) {
            (
                "system:node:{{EC2PrivateDNSName}}".to_string(),
                vec![json!("system:nodes")],
            )
        } else {
            (
                req.get("username")
                    .and_then(Value::as_str)
                    .unwrap_or(principal)
                    .to_string(),
                groups,
            )
        };
        let account = principal.split(':').nth(4).unwrap_or(DEFAULT_ACCOUNT);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let entry = json!({
            "clusterName": cluster,
            "principalArn": principal,
            "kubernetesGroups": groups,
            "accessEntryArn": format!(
                "arn:aws:eks:{region}:{account}:access-entry/{cluster}/{}",
                principal.rsplit(['/', ':']).next().unwrap_or(principal)
            ),
            "createdAt": now,
            "modifiedAt": now,
            "tags": req.get("tags").cloned().unwrap_or(json!({})),
            "username": username,
            "type": kind,
        });
        self.entries.insert(key, entry.clone());
        Ok(entry)
    }

    fn not_found(cluster: &str, principal: &str) -> Reply {
        faults::eks_error_with(
            404,
            "ResourceNotFoundException",
            &format!("The specified access entry {principal} could not be found."),
            &[("clusterName", Some(cluster))],
        )
    }

    fn forget_cluster(&mut self, region: &str, cluster: &str) {
        self.entries
            .retain(|(r, c, _), _| !(r == region && c == cluster));
        self.policies
            .retain(|(r, c, _), _| !(r == region && c == cluster));
        self.access
            .remove(&(region.to_string(), cluster.to_string()));
    }

    fn mode(&self, region: &str, cluster: &str) -> Option<&str> {
        self.access
            .get(&(region.to_string(), cluster.to_string()))
            .and_then(|a| a.get("authenticationMode"))
            .and_then(Value::as_str)
    }

    /// A cluster made: its `accessConfig` as EKS reports it.
    fn made(&mut self, region: &str, cluster: &str, request: &Value) {
        let given = request.get("accessConfig");
        let mode = given
            .and_then(|a| a.get("authenticationMode"))
            .and_then(Value::as_str)
            .unwrap_or("CONFIG_MAP");
        let admin = given
            .and_then(|a| a.get("bootstrapClusterCreatorAdminPermissions"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        self.access.insert(
            (region.to_string(), cluster.to_string()),
            json!({"authenticationMode": mode, "bootstrapClusterCreatorAdminPermissions": admin}),
        );
    }

    /// An UpdateClusterConfig's `accessConfig`: refused when it goes back (or names no mode
    /// EKS has); `Ok(None)` when it does not change the mode.
    fn mode_change(
        &self,
        region: &str,
        cluster: &str,
        request: &Value,
    ) -> Result<Option<String>, Box<Reply>> {
        let Some(to) = request
            .get("accessConfig")
            .and_then(|a| a.get("authenticationMode"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let at = |m: &str| MODES.iter().position(|x| *x == m);
        let Some(to_at) = at(to) else {
            return Err(Box::new(faults::eks_error(
                400,
                "InvalidParameterException",
                &format!("Invalid authenticationMode: {to}"),
            )));
        };
        match self.mode(region, cluster).and_then(at) {
            Some(from_at) if to_at < from_at => Err(Box::new(faults::eks_error(
                400,
                "InvalidParameterException",
                &format!(
                    "Unsupported authentication mode update from {} to {to}",
                    MODES[from_at]
                ),
            ))),
            _ => Ok(Some(to.to_string())),
        }
    }

    fn entry_key(
        &self,
        region: &str,
        cluster: &str,
        principal: &str,
    ) -> Result<EntryKey, Box<Reply>> {
        let key = (
            region.to_string(),
            cluster.to_string(),
            principal.to_string(),
        );
        if self.entries.contains_key(&key) {
            Ok(key)
        } else {
            Err(Box::new(Self::not_found(cluster, principal)))
        }
    }

    fn associate(
        &mut self,
        region: &str,
        cluster: &str,
        principal: &str,
        req: &Value,
    ) -> Result<Value, Box<Reply>> {
        let key = self.entry_key(region, cluster, principal)?;
        let kind = self.entries[&key]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("STANDARD")
            .to_string();
        if !POLICY_TYPES.contains(&kind.as_str()) {
            return Err(Box::new(faults::eks_error(
                400,
                "InvalidParameterException",
                &format!(
                    "Access policies cannot be associated with an access entry of type {kind}"
                ),
            )));
        }
        let (Some(arn), Some(scope)) = (
            req.get("policyArn").and_then(Value::as_str),
            req.get("accessScope").filter(|s| s.is_object()),
        ) else {
            return Err(Box::new(faults::eks_error(
                400,
                "InvalidParameterException",
                "policyArn and accessScope are required",
            )));
        };
        if !arn.contains(":cluster-access-policy/") {
            return Err(Box::new(faults::eks_error(
                400,
                "InvalidParameterException",
                &format!("{arn} is not an access policy ARN"),
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let associated = json!({
            "policyArn": arn,
            "accessScope": scope,
            "associatedAt": now,
            "modifiedAt": now,
        });
        self.policies
            .entry(key)
            .or_default()
            .insert(arn.to_string(), associated.clone());
        Ok(
            json!({"clusterName": cluster, "principalArn": principal, "associatedAccessPolicy": associated}),
        )
    }
}

/// The proxy's access entries.
#[derive(Default)]
pub struct AccessEntries {
    store: Mutex<Store>,
}

fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AccessEntries {
    fn answer(&self, call: &Call<'_>) -> Option<Reply> {
        let info = call.info;
        if info.protocol != Protocol::RestJson {
            return None;
        }
        let cluster = info.segment(1)?;
        // The principal ARN is one percent-encoded segment; a client that does not encode
        // its `/` splits it, so the rest of the path is joined back.
        let principal = info.segments.get(3..).map(|s| s.join("/"));
        let mut store = lock(&self.store);
        let reply = match info.op.as_str() {
            "CreateAccessEntry" => {
                let req: Map<String, Value> = if call.body.iter().all(u8::is_ascii_whitespace) {
                    Map::new()
                } else {
                    match serde_json::from_slice(call.body) {
                        Ok(Value::Object(o)) => o,
                        _ => {
                            return Some(faults::eks_error(
                                400,
                                "InvalidParameterException",
                                "The request body is not a valid JSON object",
                            ))
                        }
                    }
                };
                match store.create(&info.region, cluster, &req) {
                    Ok(entry) => Reply::json(200, &json!({ "accessEntry": entry })),
                    Err(e) => *e,
                }
            }
            "DescribeAccessEntry" => {
                let p = principal?;
                match store
                    .entries
                    .get(&(info.region.clone(), cluster.to_string(), p.clone()))
                {
                    Some(e) => Reply::json(200, &json!({ "accessEntry": e })),
                    None => Store::not_found(cluster, &p),
                }
            }
            "DeleteAccessEntry" => {
                let p = principal?;
                let key = (info.region.clone(), cluster.to_string(), p.clone());
                store.policies.remove(&key);
                match store.entries.remove(&key) {
                    Some(_) => Reply::json(200, &json!({})),
                    None => Store::not_found(cluster, &p),
                }
            }
            "UpdateAccessEntry" => {
                let p = principal?;
                let req: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
                match store.entry_key(&info.region, cluster, &p) {
                    Ok(key) => {
                        let Some(entry) = store.entries.get_mut(&key) else {
                            return Some(Store::not_found(cluster, &p));
                        };
                        let node = entry
                            .get("type")
                            .and_then(Value::as_str)
                            .is_some_and(|t| NODE_TYPES.contains(&t));
                        let groups = req.get("kubernetesGroups").filter(|g| g.is_array());
                        if node
                            && groups.is_some_and(|g| g.as_array().is_some_and(|a| !a.is_empty()))
                        {
                            faults::eks_error(
                                400,
                                "InvalidParameterException",
                                "kubernetesGroups cannot be specified for access entries of a node type",
                            )
                        } else {
                            if let Some(g) = groups {
                                entry["kubernetesGroups"] = g.clone();
                            }
                            if let Some(u) = req.get("username").filter(|u| u.is_string()) {
                                entry["username"] = u.clone();
                            }
                            Reply::json(200, &json!({ "accessEntry": entry }))
                        }
                    }
                    Err(e) => *e,
                }
            }
            "AssociateAccessPolicy" => {
                // `…/access-entries/PRINCIPAL/access-policies`
                let p = info
                    .segments
                    .get(3..info.segments.len().saturating_sub(1))?
                    .join("/");
                let req: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
                match store.associate(&info.region, cluster, &p, &req) {
                    Ok(v) => Reply::json(200, &v),
                    Err(e) => *e,
                }
            }
            "ListAssociatedAccessPolicies" => {
                let p = info
                    .segments
                    .get(3..info.segments.len().saturating_sub(1))?
                    .join("/");
                match store.entry_key(&info.region, cluster, &p) {
                    Ok(key) => {
                        let list: Vec<Value> = store
                            .policies
                            .get(&key)
                            .map(|m| m.values().cloned().collect())
                            .unwrap_or_default();
                        Reply::json(
                            200,
                            &json!({"clusterName": cluster, "principalArn": p, "associatedAccessPolicies": list}),
                        )
                    }
                    Err(e) => *e,
                }
            }
            "DisassociateAccessPolicy" => {
                // `…/access-entries/PRINCIPAL/access-policies/POLICY`: the policy ARN is one
                // encoded segment (a client that splits it is not one eksnet is).
                let n = info.segments.len();
                let p = info.segments.get(3..n.saturating_sub(2))?.join("/");
                let arn = info.segments.get(n - 1)?.clone();
                match store.entry_key(&info.region, cluster, &p) {
                    Ok(key) => {
                        let gone = store.policies.get_mut(&key).and_then(|m| m.remove(&arn));
                        match gone {
                            Some(_) => Reply::json(200, &json!({})),
                            None => faults::eks_error(
                                404,
                                "ResourceNotFoundException",
                                &format!("The access policy {arn} is not associated with {p}."),
                            ),
                        }
                    }
                    Err(e) => *e,
                }
            }
            "UpdateClusterConfig" => {
                let req: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
                match store.mode_change(&info.region, cluster, &req) {
                    Err(e) => *e,
                    // Forwarded: moto answers with its update; the mode is kept once it has.
                    Ok(_) => return None,
                }
            }
            "ListAccessEntries" => {
                let arns: Vec<&str> = store
                    .entries
                    .iter()
                    .filter(|((r, c, _), _)| *r == info.region && c == cluster)
                    .map(|((_, _, p), _)| p.as_str())
                    .collect();
                Reply::json(200, &json!({ "accessEntries": arns }))
            }
            _ => return None,
        };
        Some(reply)
    }
}

impl Emulator for AccessEntries {
    fn serve<'a>(&'a self, call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        emulator::ready(self.answer(call))
    }

    /// A cluster made keeps its `accessConfig`, reported in every answer about the cluster.
    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        let info = call.info;
        // Part of the cluster fields EKS returns and moto does not: off with that option,
        // moto's answer goes through untouched.
        if call.cfg.eks_cluster_fields
            && info.protocol == Protocol::RestJson
            && crate::core::upstream::is_success(answer.reply.status)
        {
            let doc: Option<Value> = serde_json::from_slice(&answer.reply.body).ok();
            let name = doc
                .as_ref()
                .and_then(|d| d.pointer("/cluster/name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if let (Some(mut doc), Some(name)) = (doc, name) {
                let mut store = lock(&self.store);
                if info.op == "CreateCluster" {
                    let request: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
                    store.made(&info.region, &name, &request);
                }
                let access = store.access.get(&(info.region.clone(), name)).cloned();
                if let (Some(a), Some(c)) = (
                    access,
                    doc.get_mut("cluster").and_then(Value::as_object_mut),
                ) {
                    c.insert("accessConfig".into(), a);
                    if let Ok(body) = serde_json::to_vec(&doc) {
                        answer.reply.body = body.into();
                    }
                }
            }
        }
        emulator::ready(())
    }

    /// EKS deletes a cluster's access entries with it; an accepted UpdateClusterConfig moves
    /// its authentication mode.
    fn after_answer<'a>(&'a self, call: &'a Call<'a>, reply: &'a Reply) -> BoxFuture<'a, ()> {
        let info = call.info;
        if info.protocol == Protocol::RestJson && info.op == "DeleteCluster" {
            if let Some(name) = info.segment(1) {
                lock(&self.store).forget_cluster(&info.region, name);
            }
        }
        if info.protocol == Protocol::RestJson
            && info.op == "UpdateClusterConfig"
            && crate::core::upstream::is_success(reply.status)
        {
            if let Some(name) = info.segment(1) {
                let request: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
                let mut store = lock(&self.store);
                if let Ok(Some(mode)) = store.mode_change(&info.region, name, &request) {
                    let key = (info.region.clone(), name.to_string());
                    let entry = store.access.entry(key).or_insert_with(
                        || json!({"bootstrapClusterCreatorAdminPermissions": true}),
                    );
                    entry["authenticationMode"] = json!(mode);
                }
            }
        }
        emulator::ready(())
    }

    fn reset(&self) {
        *lock(&self.store) = Store::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/node";

    impl Store {
        /// Whether nodes running with `role_arn` are let into `cluster`: an `EC2_LINUX` (or
        /// Windows) entry for the role (EKS user guide, access entries).
        fn may_join(&self, region: &str, cluster: &str, role_arn: &str) -> bool {
            self.entries
                .get(&(region.into(), cluster.into(), role_arn.into()))
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .is_some_and(|t| NODE_TYPES.contains(&t))
        }
    }

    fn req(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_node_entry_lets_its_role_join_and_only_its_cluster() {
        let mut s = Store::default();
        assert!(!s.may_join("us-west-2", "demo", ROLE));
        let e = s
            .create(
                "us-west-2",
                "demo",
                &req(json!({"principalArn": ROLE, "type": "EC2_LINUX"})),
            )
            .ok()
            .unwrap_or_default();
        assert_eq!(e["username"], "system:node:{{EC2PrivateDNSName}}");
        assert_eq!(e["kubernetesGroups"], json!(["system:nodes"]));
        assert!(s.may_join("us-west-2", "demo", ROLE));
        assert!(!s.may_join("us-west-2", "other", ROLE));
        s.forget_cluster("us-west-2", "demo");
        assert!(!s.may_join("us-west-2", "demo", ROLE));
    }

    #[test]
    fn a_standard_entry_does_not_let_nodes_join() {
        let mut s = Store::default();
        assert!(s
            .create("r", "demo", &req(json!({"principalArn": ROLE})))
            .is_ok());
        assert!(!s.may_join("r", "demo", ROLE));
    }

    #[test]
    fn a_second_create_is_in_use_and_node_entries_take_no_groups() {
        let mut s = Store::default();
        let r = req(json!({"principalArn": ROLE, "type": "EC2_LINUX"}));
        assert!(s.create("r", "demo", &r).is_ok());
        let again = s.create("r", "demo", &r).err().map(|e| e.status);
        assert_eq!(again, Some(409));
        let groups = s
            .create(
                "r",
                "other",
                &req(json!({"principalArn": ROLE, "type": "EC2_LINUX", "kubernetesGroups": ["g"]})),
            )
            .err()
            .map(|e| e.status);
        assert_eq!(groups, Some(400));
    }

    /// A cluster made without `accessConfig` is CONFIG_MAP (the API's default): no entries
    /// until the mode includes the API, and the mode never goes back.
    #[test]
    fn config_map_refuses_entries_and_the_mode_moves_forward_only() {
        let mut s = Store::default();
        s.made("r", "demo", &json!({}));
        let entry = req(json!({"principalArn": ROLE, "type": "EC2_LINUX"}));
        let refused = s.create("r", "demo", &entry).err().map(|e| e.status);
        assert_eq!(refused, Some(400));
        let up = json!({"accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP"}});
        assert_eq!(
            s.mode_change("r", "demo", &up).ok().flatten().as_deref(),
            Some("API_AND_CONFIG_MAP")
        );
        s.made(
            "r",
            "demo",
            &json!({"accessConfig": {"authenticationMode": "API"}}),
        );
        assert!(s.create("r", "demo", &entry).is_ok());
        let back = json!({"accessConfig": {"authenticationMode": "CONFIG_MAP"}});
        assert_eq!(
            s.mode_change("r", "demo", &back).err().map(|e| e.status),
            Some(400)
        );
    }

    /// Policies go on STANDARD and EC2 entries only; associating again replaces the scope.
    #[test]
    fn access_policies_only_on_standard_and_ec2_entries() {
        let mut s = Store::default();
        let policy = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";
        assert!(s
            .create(
                "r",
                "demo",
                &req(json!({"principalArn": ROLE, "type": "EC2_LINUX"}))
            )
            .is_ok());
        let assoc = json!({"policyArn": policy, "accessScope": {"type": "cluster"}});
        assert_eq!(
            s.associate("r", "demo", ROLE, &assoc)
                .err()
                .map(|e| e.status),
            Some(400)
        );
        let admin = "arn:aws:iam::111122223333:role/admin";
        assert!(s
            .create("r", "demo", &req(json!({"principalArn": admin})))
            .is_ok());
        assert!(s.associate("r", "demo", admin, &assoc).is_ok());
        let scoped = json!({"policyArn": policy, "accessScope": {"type": "namespace", "namespaces": ["web"]}});
        assert!(s.associate("r", "demo", admin, &scoped).is_ok());
        let key = ("r".to_string(), "demo".to_string(), admin.to_string());
        let kept = s.policies.get(&key).map(|m| m.len());
        assert_eq!(kept, Some(1));
        assert_eq!(
            s.policies[&key][policy]["accessScope"]["namespaces"],
            json!(["web"])
        );
    }
}
