//! Option `eks_cluster_fields`, EKS Auto Mode's part: the cluster settings moto 5.2 drops.
//!
//! EKS takes `computeConfig`, `storageConfig` and `kubernetesNetworkConfig.elasticLoadBalancing`
//! on CreateCluster and UpdateClusterConfig, and reports them on every `cluster` object it
//! answers with (EKS API reference, `Cluster`; UG `automode/api-reference.adoc`: the three are
//! enabled or disabled together). moto 5.2 ignores the first two, and its UpdateClusterConfig
//! replaces the whole `kubernetesNetworkConfig` with the request's, losing `ipFamily` and
//! `serviceIpv4Cidr`, where EKS changes only the fields the request names. The proxy keeps
//! what each cluster was given, merged per field as EKS does, and puts it into the answers.
//! DeleteCluster forgets it; a cluster made again under the name starts afresh.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::core::emulator::{Answer, BoxFuture, Call, Emulator};
use crate::core::ops::Protocol;
use crate::shared::lock;

/// What one cluster was set to: `computeConfig`, `storageConfig` and the
/// `kubernetesNetworkConfig` as EKS holds it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Settings {
    compute: Option<Value>,
    storage: Option<Value>,
    network: Map<String, Value>,
}

#[derive(Default)]
pub struct ClusterCompute {
    /// (region, cluster name) → its settings.
    clusters: Mutex<HashMap<(String, String), Settings>>,
}

/// The request's fields merged into what the cluster had: a field the request leaves out keeps
/// its value (EKS API reference, UpdateClusterConfig: "only the specified fields are updated").
fn merge(into: &mut Settings, request: &Value) {
    if let Some(c) = request.get("computeConfig").filter(|v| v.is_object()) {
        into.compute = Some(response_compute(c));
    }
    if let Some(s) = request.get("storageConfig").filter(|v| v.is_object()) {
        into.storage = Some(s.clone());
    }
    if let Some(Value::Object(k)) = request.get("kubernetesNetworkConfig") {
        for (key, v) in k {
            into.network.insert(key.clone(), v.clone());
        }
    }
}

/// A `ComputeConfigResponse` from a request: turned off, EKS reports no pools or role.
fn response_compute(request: &Value) -> Value {
    let on = request.get("enabled").and_then(Value::as_bool) == Some(true);
    if on {
        request.clone()
    } else {
        serde_json::json!({"enabled": false})
    }
}

/// The answer's `cluster` object with the cluster's settings in place; `None` when it has no
/// `cluster` object or nothing changes.
fn inject(body: &[u8], settings: &Settings) -> Option<Bytes> {
    let mut doc: Value = serde_json::from_slice(body).ok()?;
    let cluster = doc.get_mut("cluster")?.as_object_mut()?;
    if let Some(c) = &settings.compute {
        cluster.insert("computeConfig".into(), c.clone());
    }
    if let Some(s) = &settings.storage {
        cluster.insert("storageConfig".into(), s.clone());
    }
    if !settings.network.is_empty() {
        cluster.insert(
            "kubernetesNetworkConfig".into(),
            Value::Object(settings.network.clone()),
        );
    }
    serde_json::to_vec(&doc).ok().map(Bytes::from)
}

/// The `cluster.name` and `cluster.kubernetesNetworkConfig` of an answer.
fn answered(body: &[u8]) -> Option<(String, Map<String, Value>)> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let c = doc.get("cluster")?;
    let name = c.get("name")?.as_str()?.to_string();
    let network = c
        .get("kubernetesNetworkConfig")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Some((name, network))
}

impl Emulator for ClusterCompute {
    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !call.cfg.eks_cluster_fields || call.info.protocol != Protocol::RestJson {
                return;
            }
            let request: Value = serde_json::from_slice(call.body).unwrap_or(Value::Null);
            if call.info.op == "UpdateClusterConfig" {
                // EKS answers with an `update`, moto with whatever it has: the cluster is the
                // path's (`/clusters/NAME/update-config`).
                if let Some(name) = call.info.segments.get(1) {
                    let key = (call.info.region.clone(), name.clone());
                    if let Some(s) = lock(&self.clusters).get_mut(&key) {
                        merge(s, &request);
                    }
                }
                return;
            }
            let Some((name, moto_network)) = answered(&answer.reply.body) else {
                return;
            };
            let key = (call.info.region.clone(), name);
            let settings = {
                let mut clusters = lock(&self.clusters);
                if call.info.op == "CreateCluster" {
                    // What moto made (its defaults included), then the request's settings.
                    let mut s = Settings {
                        network: moto_network,
                        ..Settings::default()
                    };
                    merge(&mut s, &request);
                    clusters.insert(key.clone(), s);
                }
                clusters.get(&key).cloned()
            };
            if let Some(body) = settings
                .as_ref()
                .and_then(|s| inject(&answer.reply.body, s))
            {
                answer.reply.body = body;
            }
        })
    }

    fn after_answer<'a>(
        &'a self,
        call: &'a Call<'a>,
        _reply: &'a crate::core::faults::Reply,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if call.info.protocol == Protocol::RestJson && call.info.op == "DeleteCluster" {
                if let Some(name) = call.info.segments.get(1) {
                    lock(&self.clusters).remove(&(call.info.region.clone(), name.clone()));
                }
            }
        })
    }

    fn reset(&self) {
        lock(&self.clusters).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Turned on at create, the three settings come back; an update turning it off keeps the
    /// IP family moto would have lost.
    #[test]
    fn settings_are_kept_and_merged_per_field() {
        let mut s = Settings {
            network: json!({"ipFamily": "ipv4", "serviceIpv4Cidr": "172.20.0.0/16"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Settings::default()
        };
        merge(
            &mut s,
            &json!({"computeConfig": {"enabled": true, "nodePools": ["system"], "nodeRoleArn": "arn:aws:iam::123456789012:role/n"},
                    "storageConfig": {"blockStorage": {"enabled": true}},
                    "kubernetesNetworkConfig": {"ipFamily": "ipv4", "elasticLoadBalancing": {"enabled": true}}}),
        );
        let body = inject(
            br#"{"cluster": {"name": "c", "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}}}"#,
            &s,
        )
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or_default();
        assert_eq!(
            body["cluster"]["computeConfig"]["nodePools"],
            json!(["system"])
        );
        assert_eq!(
            body["cluster"]["storageConfig"]["blockStorage"]["enabled"],
            json!(true)
        );
        assert_eq!(
            body["cluster"]["kubernetesNetworkConfig"]["elasticLoadBalancing"]["enabled"],
            json!(true)
        );
        merge(
            &mut s,
            &json!({"computeConfig": {"enabled": false},
                    "kubernetesNetworkConfig": {"elasticLoadBalancing": {"enabled": false}}}),
        );
        assert_eq!(s.compute, Some(json!({"enabled": false})));
        assert_eq!(s.network["ipFamily"], json!("ipv4"));
        assert_eq!(s.network["elasticLoadBalancing"], json!({"enabled": false}));
        // Unchanged by an update that does not name it.
        assert_eq!(s.storage, Some(json!({"blockStorage": {"enabled": true}})));
    }

    #[test]
    fn answers_without_a_cluster_are_left_alone() {
        assert_eq!(answered(br#"{"nodegroup": {"nodegroupName": "n"}}"#), None);
        assert_eq!(inject(br#"{"update": {}}"#, &Settings::default()), None);
    }
}
