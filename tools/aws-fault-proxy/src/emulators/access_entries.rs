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
//! Not yet read by the data plane: a self-managed instance joins whatever the entries say
//! (EKS refuses a kubelet whose role has no EC2_LINUX entry nor an aws-auth mapping).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Map, Value};

use crate::core::emulator::{self, BoxFuture, Call, Emulator};
use crate::core::faults::{self, Reply};
use crate::core::ops::Protocol;

/// moto's account when the ARN does not say otherwise.
const DEFAULT_ACCOUNT: &str = "123456789012";
const NODE_TYPES: &[&str] = &["EC2_LINUX", "EC2_WINDOWS"];
const TYPES: &[&str] = &["STANDARD", "FARGATE_LINUX", "EC2_LINUX", "EC2_WINDOWS"];

/// Entries by (region, cluster, principal ARN).
#[derive(Default)]
struct Store {
    entries: BTreeMap<(String, String, String), Value>,
}

impl Store {
    fn create(
        &mut self,
        region: &str,
        cluster: &str,
        req: &Map<String, Value>,
    ) -> Result<Value, Box<Reply>> {
        let invalid = |m: &str| Box::new(faults::eks_error(400, "InvalidParameterException", m));
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
                match store
                    .entries
                    .remove(&(info.region.clone(), cluster.to_string(), p.clone()))
                {
                    Some(_) => Reply::json(200, &json!({})),
                    None => Store::not_found(cluster, &p),
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

    /// EKS deletes a cluster's access entries with it.
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
}
