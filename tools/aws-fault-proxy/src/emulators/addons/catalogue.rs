//! The built-in catalogue of EKS add-ons: which add-ons and versions exist, which cluster
//! versions they run on, the default version per cluster version, each version's
//! configuration schema, and (for `vpc-cni`) what the add-on puts into the cluster.
//!
//! The data is `catalogue.json` and `schemas/*.json` beside this file, built into the binary;
//! this module only reads it. The unit tests below check its invariants (exactly one default
//! per add-on and cluster version, every schema loads, every pattern compiles).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};

const CATALOGUE_JSON: &str = include_str!("catalogue.json");

/// moto gives a cluster created without `version` the version 1.19, which EKS no longer
/// runs; real EKS would have created it with its current default version. Add-ons of such a
/// cluster are judged as if it had [`DEFAULT_CLUSTER_VERSION`].
pub const MOTO_DEFAULT_CLUSTER_VERSION: &str = "1.19";
pub const DEFAULT_CLUSTER_VERSION: &str = "1.33";

/// The text of a schema file, by the name a schema profile uses.
fn schema_file(name: &str) -> Option<&'static str> {
    Some(match name {
        "vpc-cni" => include_str!("schemas/vpc-cni.json"),
        "coredns" => include_str!("schemas/coredns.json"),
        "kube-proxy" => include_str!("schemas/kube-proxy.json"),
        "eks-pod-identity-agent" => include_str!("schemas/eks-pod-identity-agent.json"),
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalogue {
    pub addons: Vec<AddonEntry>,
    schema_profiles: BTreeMap<String, SchemaProfile>,
}

/// A schema file minus some of its parts (JSON pointers), so that older versions can offer
/// fewer settings without a copy of the whole schema each.
#[derive(Debug, Deserialize)]
struct SchemaProfile {
    file: String,
    #[serde(default)]
    drop: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonEntry {
    pub addon_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub publisher: String,
    pub owner: String,
    pub default_namespace: String,
    pub architecture: Vec<String>,
    pub compute_types: Vec<String>,
    pub requires_configuration: bool,
    pub requires_iam_permissions: bool,
    pub pod_identity_configuration: Vec<Value>,
    /// Newest first, as EKS lists them.
    pub versions: Vec<VersionEntry>,
    /// What the add-on applies to the cluster; only `vpc-cni` has it.
    pub kube: Option<KubeTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionEntry {
    pub addon_version: String,
    pub cluster_versions: Vec<String>,
    /// The cluster versions for which this is the default version.
    pub default_for: Vec<String>,
    schema_profile: String,
}

/// The workload of an add-on in the cluster: a manifest (applied whole when the workload is
/// missing), the container whose image and env the add-on sets, and the images by container.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeTarget {
    /// `602401143452.dkr.ecr.{region}.amazonaws.com`: `{region}` is the cluster's region.
    pub image_registry: String,
    pub container: String,
    /// Container name -> image repository; the tag is the add-on version.
    pub images: BTreeMap<String, String>,
    /// The env EKS gives the main container, before `configurationValues.env`.
    pub env: Vec<Value>,
    pub manifest: Value,
}

impl KubeTarget {
    fn meta(&self, field: &str) -> &str {
        self.manifest
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.meta("name")
    }

    pub fn namespace(&self) -> &str {
        self.meta("namespace")
    }

    pub fn kind(&self) -> &str {
        self.manifest["kind"].as_str().unwrap_or_default()
    }

    pub fn api_version(&self) -> &str {
        self.manifest["apiVersion"].as_str().unwrap_or_default()
    }

    /// `DaemonSet` -> `daemonsets`: the manifests here are built-in kinds whose plural is
    /// the lowercase kind plus `s`.
    pub fn resource(&self) -> String {
        format!("{}s", self.kind().to_ascii_lowercase())
    }

    /// `DaemonSet.apps`, the way EKS names the resource in a conflict message.
    pub fn kind_and_group(&self) -> String {
        match self.api_version().split_once('/') {
            Some((group, _)) => format!("{}.{group}", self.kind()),
            None => self.kind().to_string(),
        }
    }

    /// The object's path under the API server, e.g.
    /// `/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node`.
    pub fn path(&self) -> String {
        let prefix = if self.api_version().contains('/') {
            "apis"
        } else {
            "api"
        };
        format!(
            "/{prefix}/{}/namespaces/{}/{}/{}",
            self.api_version(),
            self.namespace(),
            self.resource(),
            self.name()
        )
    }

    pub fn image(&self, container: &str, region: &str, version: &str) -> Option<String> {
        let repo = self.images.get(container)?;
        let registry = self.image_registry.replace("{region}", region);
        Some(format!("{registry}/{repo}:{version}"))
    }
}

/// The catalogue, parsed once. The text is built in and checked by the unit tests, so a
/// parse failure is a bug of this crate, not of a request.
pub fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        serde_json::from_str(CATALOGUE_JSON)
            .unwrap_or_else(|e| panic!("built-in add-on catalogue is not valid: {e}"))
    })
}

impl Catalogue {
    pub fn find(&self, name: &str) -> Option<&AddonEntry> {
        self.addons.iter().find(|a| a.addon_name == name)
    }

    /// The configuration schema of a version: its profile's file minus the dropped parts.
    pub fn schema(&self, version: &VersionEntry) -> Result<Value, String> {
        let profile = self
            .schema_profiles
            .get(&version.schema_profile)
            .ok_or_else(|| format!("no schema profile {:?}", version.schema_profile))?;
        let text = schema_file(&profile.file)
            .ok_or_else(|| format!("no schema file {:?}", profile.file))?;
        let mut schema: Value =
            serde_json::from_str(text).map_err(|e| format!("schema {}: {e}", profile.file))?;
        for pointer in &profile.drop {
            let (parent, key) = pointer
                .rsplit_once('/')
                .ok_or_else(|| format!("bad pointer {pointer:?}"))?;
            let removed = schema
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .and_then(|o| o.remove(key));
            if removed.is_none() {
                return Err(format!("{pointer} is not in schema {}", profile.file));
            }
        }
        Ok(schema)
    }
}

impl AddonEntry {
    pub fn version(&self, version: &str) -> Option<&VersionEntry> {
        self.versions.iter().find(|v| v.addon_version == version)
    }

    pub fn default_version(&self, cluster_version: &str) -> Option<&VersionEntry> {
        self.versions
            .iter()
            .find(|v| v.default_for.iter().any(|c| c == cluster_version))
    }

    /// The `AddonInfo` of DescribeAddonVersions, limited to the versions that run on
    /// `cluster_version` (and to that version's compatibility entry) when one is given;
    /// `None` when no version is left.
    pub fn info_json(&self, cluster_version: Option<&str>) -> Option<Value> {
        let versions: Vec<Value> = self
            .versions
            .iter()
            .filter(|v| cluster_version.is_none_or(|c| v.compatible(c)))
            .map(|v| v.info_json(self, cluster_version))
            .collect();
        if versions.is_empty() {
            return None;
        }
        Some(json!({
            "addonName": self.addon_name,
            "type": self.kind,
            "addonVersions": versions,
            "publisher": self.publisher,
            "owner": self.owner,
            "defaultNamespace": self.default_namespace,
        }))
    }
}

impl VersionEntry {
    pub fn compatible(&self, cluster_version: &str) -> bool {
        self.cluster_versions.iter().any(|c| c == cluster_version)
    }

    fn info_json(&self, addon: &AddonEntry, cluster_version: Option<&str>) -> Value {
        let compatibilities: Vec<Value> = self
            .cluster_versions
            .iter()
            .filter(|c| cluster_version.is_none_or(|want| want == c.as_str()))
            .map(|c| {
                json!({
                    "clusterVersion": c,
                    "platformVersions": ["*"],
                    "defaultVersion": self.default_for.contains(c),
                })
            })
            .collect();
        json!({
            "addonVersion": self.addon_version,
            "architecture": addon.architecture,
            "computeTypes": addon.compute_types,
            "compatibilities": compatibilities,
            "requiresConfiguration": addon.requires_configuration,
            "requiresIamPermissions": addon.requires_iam_permissions,
        })
    }
}

/// The cluster version add-ons are judged by (see [`MOTO_DEFAULT_CLUSTER_VERSION`]).
pub fn effective_cluster_version(version: &str) -> &str {
    if version == MOTO_DEFAULT_CLUSTER_VERSION {
        DEFAULT_CLUSTER_VERSION
    } else {
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const CLUSTER_VERSIONS: [&str; 5] = ["1.29", "1.30", "1.31", "1.32", "1.33"];

    #[test]
    fn exactly_one_compatible_default_per_addon_and_cluster_version() {
        let c = catalogue();
        let names: BTreeSet<&str> = c.addons.iter().map(|a| a.addon_name.as_str()).collect();
        assert_eq!(
            names,
            BTreeSet::from(["coredns", "eks-pod-identity-agent", "kube-proxy", "vpc-cni"])
        );
        for addon in &c.addons {
            for cv in CLUSTER_VERSIONS {
                let defaults: Vec<&str> = addon
                    .versions
                    .iter()
                    .filter(|v| v.default_for.iter().any(|d| d == cv))
                    .map(|v| v.addon_version.as_str())
                    .collect();
                assert_eq!(
                    defaults.len(),
                    1,
                    "{} on {cv}: {defaults:?}",
                    addon.addon_name
                );
                let default = addon.default_version(cv).unwrap();
                assert!(default.compatible(cv), "{} {cv}", addon.addon_name);
            }
            assert!(addon.versions.len() >= 3, "{}", addon.addon_name);
            let unique: BTreeSet<&str> = addon
                .versions
                .iter()
                .map(|v| v.addon_version.as_str())
                .collect();
            assert_eq!(unique.len(), addon.versions.len(), "{}", addon.addon_name);
        }
        assert_eq!(
            effective_cluster_version(MOTO_DEFAULT_CLUSTER_VERSION),
            DEFAULT_CLUSTER_VERSION
        );
    }

    #[test]
    fn every_schema_loads_and_only_new_vpc_cni_offers_eni_config() {
        let c = catalogue();
        for addon in &c.addons {
            for v in &addon.versions {
                let schema = c
                    .schema(v)
                    .unwrap_or_else(|e| panic!("{} {}: {e}", addon.addon_name, v.addon_version));
                assert_eq!(schema["type"], "object");
                assert_eq!(schema["additionalProperties"], false);
                assert!(
                    super::super::schema::patterns_compile(&schema),
                    "{} {}",
                    addon.addon_name,
                    v.addon_version
                );
            }
        }
        let vpc = c.find("vpc-cni").unwrap();
        let has_eni_config = |v: &str| {
            c.schema(vpc.version(v).unwrap()).unwrap()["properties"]
                .get("eniConfig")
                .is_some()
        };
        assert!(has_eni_config("v1.20.0-eksbuild.1"));
        assert!(has_eni_config("v1.19.2-eksbuild.1"));
        assert!(!has_eni_config("v1.18.6-eksbuild.1"));
        assert!(!has_eni_config("v1.6.3-eksbuild.2"));
        assert!(vpc.version("v1.6.3-eksbuild.1").is_some());
    }

    #[test]
    fn vpc_cni_kube_target() {
        let t = catalogue().find("vpc-cni").unwrap().kube.as_ref().unwrap();
        assert_eq!(
            t.path(),
            "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node"
        );
        assert_eq!(t.kind_and_group(), "DaemonSet.apps");
        assert_eq!(
            t.image("aws-node", "eu-west-1", "v1.19.2-eksbuild.1")
                .as_deref(),
            Some("602401143452.dkr.ecr.eu-west-1.amazonaws.com/amazon-k8s-cni:v1.19.2-eksbuild.1")
        );
        assert!(t.env.iter().all(|e| e["name"] != "ENI_CONFIG_LABEL_DEF"));
    }

    #[test]
    fn versions_filtered_by_cluster_version() {
        let kp = catalogue().find("kube-proxy").unwrap();
        let info = kp.info_json(Some("1.31")).unwrap();
        let versions = info["addonVersions"].as_array().unwrap();
        assert_eq!(versions.len(), 2);
        for v in versions {
            assert_eq!(v["compatibilities"].as_array().unwrap().len(), 1);
            assert_eq!(v["compatibilities"][0]["clusterVersion"], "1.31");
        }
        assert!(kp.info_json(Some("1.19")).is_none());
        let all = kp.info_json(None).unwrap();
        assert_eq!(all["addonVersions"].as_array().unwrap().len(), 10);
    }
}
