//! The fixed table of API resources the fake serves and the discovery documents built from it.

use serde_json::{json, Value};

/// One served resource type. The flags mirror per-type behaviour of the real registry
/// strategies that clients can observe.
#[derive(Debug)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Has a `/status` subresource, so writes to the main resource keep the stored status.
    pub status_subresource: bool,
    /// Tracks `metadata.generation` (bumped on changes outside metadata/status).
    pub generation: bool,
    /// Served from a CRD: no strategic merge patch, list items keep kind/apiVersion,
    /// PUT requires a resourceVersion, DELETE returns the object.
    pub custom: bool,
    /// Field selectors accepted besides `metadata.name` / `metadata.namespace`.
    pub fields: &'static [&'static str],
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `daemonsets.apps` / `pods`: the resource name the real server puts in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `DaemonSet.apps` / `Pod`: the kind name used in `Invalid` messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

const fn builtin(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> Resource {
    Resource {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status_subresource: true,
        generation: false,
        custom: false,
        fields: &[],
    }
}

pub static RESOURCES: &[Resource] = &[
    Resource {
        fields: &["spec.unschedulable"],
        ..builtin("", "nodes", "node", "Node", false, &["no"])
    },
    Resource {
        fields: &[
            "spec.nodeName",
            "spec.hostNetwork",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ..builtin("", "pods", "pod", "Pod", true, &["po"])
    },
    Resource {
        fields: &["status.phase"],
        ..builtin("", "namespaces", "namespace", "Namespace", false, &["ns"])
    },
    Resource {
        status_subresource: false,
        ..builtin("", "configmaps", "configmap", "ConfigMap", true, &["cm"])
    },
    Resource {
        status_subresource: false,
        ..builtin(
            "",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            &["sa"],
        )
    },
    Resource {
        generation: true,
        ..builtin(
            "apps",
            "daemonsets",
            "daemonset",
            "DaemonSet",
            true,
            &["ds"],
        )
    },
    Resource {
        generation: true,
        ..builtin(
            "apps",
            "deployments",
            "deployment",
            "Deployment",
            true,
            &["deploy"],
        )
    },
    Resource {
        generation: true,
        fields: &["status.replicas"],
        ..builtin(
            "apps",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            true,
            &["rs"],
        )
    },
    Resource {
        generation: true,
        ..builtin(
            "policy",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "PodDisruptionBudget",
            true,
            &["pdb"],
        )
    },
    Resource {
        status_subresource: false,
        // The real server's event field labels, less `source` (a struct here, not a string).
        fields: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "type",
        ],
        ..builtin("", "events", "event", "Event", true, &["ev"])
    },
    Resource {
        version: "v1alpha1",
        status_subresource: false,
        generation: true,
        custom: true,
        ..builtin(
            "crd.k8s.amazonaws.com",
            "eniconfigs",
            "eniconfig",
            "ENIConfig",
            false,
            &[],
        )
    },
    Resource {
        generation: true,
        ..builtin(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        )
    },
    // EKS installs the SecurityGroupPolicy CRD on every cluster with its VPC resource
    // controller (amazon-vpc-resource-controller-k8s
    // `config/crd/bases/vpcresources.k8s.aws_securitygrouppolicies.yaml`: namespaced, short
    // name `sgp`, no subresources).
    Resource {
        version: "v1beta1",
        status_subresource: false,
        generation: true,
        custom: true,
        ..builtin(
            "vpcresources.k8s.aws",
            "securitygrouppolicies",
            "securitygrouppolicy",
            "SecurityGroupPolicy",
            true,
            &["sgp"],
        )
    },
    Resource {
        status_subresource: false,
        ..builtin(
            "",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            &["sa"],
        )
    },
    // The Karpenter Helm chart installs these CRDs (aws/karpenter-provider-aws
    // `pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml` and `karpenter.sh_nodepools.yaml`:
    // cluster-scoped, a status subresource each). The sandbox's cluster has Karpenter
    // installed.
    Resource {
        version: "v1",
        generation: true,
        custom: true,
        ..builtin(
            "karpenter.k8s.aws",
            "ec2nodeclasses",
            "ec2nodeclass",
            "EC2NodeClass",
            false,
            &[],
        )
    },
    // EKS Auto Mode installs its NodeClass CRD beside Karpenter's NodePool CRD (EKS user
    // guide, `automode/create-node-class.adoc`, `create-node-pool.adoc`): cluster-scoped, with
    // a status subresource. The sandbox serves both Karpenter's and Auto Mode's; NodePool is
    // the same CRD for either.
    Resource {
        version: "v1",
        generation: true,
        custom: true,
        ..builtin(
            "eks.amazonaws.com",
            "nodeclasses",
            "nodeclass",
            "NodeClass",
            false,
            &[],
        )
    },
    Resource {
        version: "v1",
        generation: true,
        custom: true,
        ..builtin(
            "karpenter.sh",
            "nodepools",
            "nodepool",
            "NodePool",
            false,
            &[],
        )
    },
];

/// Index into [`RESOURCES`]; indices are stable so they double as compact store keys.
pub type ResId = usize;

pub fn res(id: ResId) -> &'static Resource {
    &RESOURCES[id]
}

pub fn find(group: &str, version: &str, plural: &str) -> Option<ResId> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<ResId> {
    RESOURCES
        .iter()
        .position(|r| r.api_version() == api_version && r.kind == kind)
}

/// Group versions in the order the real server lists them (core first).
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

pub fn version_doc() -> Value {
    json!({
        "major": "1", "minor": "32", "emulationMajor": "1", "emulationMinor": "32",
        "minCompatibilityMajor": "1", "minCompatibilityMinor": "31",
        "gitVersion": "v1.32.3-eks-4096722", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2025-04-04T00:00:00Z",
        "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"
    })
}

pub fn api_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]
    })
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = group_versions()
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    let (g, v) = group_versions().into_iter().find(|(g, _)| *g == group)?;
    let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
    Some(json!({"kind": "APIGroup", "apiVersion": "v1", "name": g,
        "versions": [gv.clone()], "preferredVersion": gv}))
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({"name": r.plural, "singularName": r.singular,
            "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs});
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if matches!(
            r.plural,
            "pods" | "daemonsets" | "deployments" | "replicasets"
        ) {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        if r.plural == "pods" {
            // The one pod subresource served besides status (see `eviction`).
            resources.push(
                json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}),
            );
        }
        if r.status_subresource {
            resources.push(
                json!({"name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
