//! The spec: the user's TOML file, parsed into typed per-kind configs (unknown keys rejected)
//! and into the plain attribute maps the planner diffs. Parsing never stops at the first bad
//! resource: every resource is deserialised on its own so that all errors come out together.

use crate::addr::{Kind, ResourceAddr};
use crate::diag::{Diagnostic, Diagnostics, Location, SourceMap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A VPC: adopted by id (never deleted) or created by a CloudFormation stack.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VpcConfig {
    /// Adopt an existing VPC by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_name: Option<String>,
    /// Template path, relative to the spec file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_file: Option<String>,
    /// Template URL (CloudFormation fetches it; must be an S3 URL on real AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_url: Option<String>,
    /// Only the parameters listed are compared with the stack; the template's defaults cover
    /// the rest, so dropping one from the spec is not a change.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The VPC's primary block, when known; used to validate secondary blocks before any call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CidrBlockConfig {
    pub vpc_id: String,
    pub cidr_block: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IamRoleConfig {
    pub name: String,
    /// Service principal(s) allowed to assume the role, e.g. `eks.amazonaws.com`.
    pub assume_role_service: Option<OneOrMany>,
    /// A full trust policy document (JSON text), instead of `assume_role_service`.
    pub assume_role_policy: Option<String>,
    /// Managed policy names (`AmazonEKSClusterPolicy`) or ARNs.
    #[serde(default)]
    pub managed_policies: Vec<String>,
    pub path: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    pub role_arn: String,
    pub subnet_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default = "default_ip_family")]
    pub ip_family: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_ip_family() -> String {
    "ipv4".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    pub min_size: i64,
    pub max_size: i64,
    pub desired_size: i64,
}

impl Default for Scaling {
    // EKS's own defaults for create-nodegroup without --scaling-config.
    fn default() -> Self {
        Scaling {
            min_size: 1,
            max_size: 2,
            desired_size: 2,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodegroupConfig {
    pub cluster_name: String,
    pub name: String,
    pub node_role_arn: String,
    pub subnet_ids: Vec<String>,
    #[serde(default = "default_instance_types")]
    pub instance_types: Vec<String>,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ami_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_instance_types() -> Vec<String> {
    vec!["t3.medium".into()]
}

/// `[aws_node.NAME]`: the VPC CNI settings of one cluster (env of the `aws-node` DaemonSet).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsNodeConfig {
    pub cluster_name: String,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`.
    #[serde(default = "yes")]
    pub custom_network: bool,
    /// `label` (nodes pick the ENIConfig named by a node label, `ENI_CONFIG_LABEL_DEF`) or
    /// `annotation` (nodes are annotated `k8s.amazonaws.com/eniConfig=NAME`).
    #[serde(default = "default_selection")]
    pub eni_config_selection: String,
    /// The node label naming the ENIConfig in `label` mode.
    #[serde(default = "default_label")]
    pub eni_config_label: String,
    /// Any other env entries of the `aws-node` container.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}
fn default_selection() -> String {
    "label".into()
}
fn default_label() -> String {
    "topology.kubernetes.io/zone".into()
}

/// `[eni_config.NAME]`: one ENIConfig (cluster-scoped custom resource).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EniConfigConfig {
    pub cluster_name: String,
    /// The pod subnet, usually `${subnet.X.id}`.
    pub subnet_id: String,
    /// Object name; defaults to the subnet's AZ (what label mode expects).
    pub name: Option<String>,
    /// Pod security groups; default: the cluster security group.
    pub security_group_ids: Option<Vec<String>>,
    /// Annotation mode: nodes with these labels get `k8s.amazonaws.com/eniConfig=<name>`.
    #[serde(default)]
    pub annotate_nodes: BTreeMap<String, String>,
}

/// `[settings]`: region and wait timeouts.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Overrides the region of the AWS credential chain.
    pub region: Option<String>,
    /// Per-kind wait timeouts in seconds (`vpc`, `cidr_block`, `cluster`, `nodegroup`).
    #[serde(default)]
    pub timeouts: BTreeMap<String, u64>,
}

/// Typed config of one resource.
#[derive(Debug, Clone)]
pub enum ResourceConfig {
    Vpc(VpcConfig),
    CidrBlock(CidrBlockConfig),
    Subnet(SubnetConfig),
    IamRole(IamRoleConfig),
    Cluster(ClusterConfig),
    Nodegroup(NodegroupConfig),
    AwsNode(AwsNodeConfig),
    EniConfig(EniConfigConfig),
}

#[derive(Debug, Clone)]
pub struct ResourceSpec {
    pub addr: ResourceAddr,
    pub config: ResourceConfig,
    /// Desired attributes as plain JSON (references still in `${...}` form).
    pub attrs: Value,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub path: PathBuf,
    pub source: String,
    pub settings: Settings,
    pub resources: BTreeMap<ResourceAddr, ResourceSpec>,
    /// Dotted key path → where it is written, for diagnostics found after parsing.
    pub locations: HashMap<String, Location>,
}

impl Spec {
    /// Location of a dotted key path, falling back to the nearest written parent.
    pub fn location(&self, key: &str) -> Option<Location> {
        let mut k = key;
        loop {
            if let Some(l) = self.locations.get(k) {
                return Some(l.clone());
            }
            k = &k[..k.rfind('.')?];
        }
    }

    /// A diagnostic anchored at a key.
    pub fn error_at(&self, key: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        let key = key.into();
        Diagnostic::error(message).at(self.location(&key), key)
    }

    pub fn warning_at(&self, key: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        let key = key.into();
        Diagnostic::warning(message).at(self.location(&key), key)
    }

    /// One identity for a name however it is written: `"demo"` and `"${cluster.main.name}"`
    /// are the same cluster when `cluster.main` has `name = "demo"`, and an ENIConfig named
    /// `${subnet.a.availability_zone}` is `us-west-2a` when the subnet says so.
    pub fn resolved_name(&self, name: &str) -> String {
        self.static_value(name).unwrap_or_else(|| name.to_string())
    }

    /// What a string is from the spec alone: itself when it refers to nothing, or the literal
    /// behind it when it is exactly one reference to an output that repeats an input of its
    /// resource written as a literal (a cluster's or role's `name`, a subnet's
    /// `availability_zone`). `None` when only AWS can tell.
    pub fn static_value(&self, s: &str) -> Option<String> {
        let Some(r) = crate::value::whole_reference(s) else {
            return crate::value::references_in_str(s)
                .is_empty()
                .then(|| s.to_string());
        };
        let mirrored = matches!(
            (r.addr.kind, r.path_string().as_str()),
            (Kind::Cluster | Kind::IamRole, "name") | (Kind::Subnet, "availability_zone")
        );
        let literal = self.get(&r.addr)?.attrs.get(r.path_string())?.as_str()?;
        (mirrored && crate::value::references_in_str(literal).is_empty())
            .then(|| literal.to_string())
    }

    pub fn get(&self, addr: &ResourceAddr) -> Option<&ResourceSpec> {
        self.resources.get(addr)
    }

    /// Seconds to wait for a kind, from `[settings.timeouts]` or the default.
    pub fn timeout_secs(&self, kind: Kind, default: u64) -> u64 {
        self.settings
            .timeouts
            .get(kind.as_str())
            .copied()
            .unwrap_or(default)
    }
}

/// Reads and parses a spec file. Errors carry file, line and key; all are returned at once.
pub fn load(path: &Path) -> Result<Spec, Diagnostics> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::error(format!(
            "cannot read spec `{}`: {e}",
            path.display()
        )));
        d
    })?;
    parse(path, &source)
}

/// Syntax errors listed before the rest are summed up in one line.
const MAX_SYNTAX_ERRORS: usize = 10;

/// Parses spec text; `path` names the file in messages and anchors relative template paths.
pub fn parse(path: &Path, source: &str) -> Result<Spec, Diagnostics> {
    let map = SourceMap::new(path, source);
    let mut diags = Diagnostics::default();
    // A saved plan handed to a command that wants a spec would otherwise get one TOML error
    // per line of JSON.
    if source.trim_start().starts_with('{')
        && serde_json::from_str::<serde_json::Value>(source).is_ok()
    {
        diags.push(Diagnostic {
            location: Some(map.location(0)),
            ..Diagnostic::error(format!(
                "this is JSON, not a TOML spec; if it is a plan saved with `plan --out`, apply it with `eksnet apply {}`",
                path.display()
            ))
        });
        return Err(diags);
    }
    let (table, errors) = toml::de::DeTable::parse_recoverable(source);
    if !errors.is_empty() {
        let total = errors.len();
        let first_hidden = errors
            .get(MAX_SYNTAX_ERRORS)
            .and_then(|e| e.span())
            .map(|s| map.location(s.start));
        for e in errors.into_iter().take(MAX_SYNTAX_ERRORS) {
            let span = e.span();
            let mut message = format!("TOML syntax: {}", e.message().trim());
            // The parser does not say which key; the span is on it. On a table header, the
            // header names it better than its last part.
            if message.ends_with("duplicate key") {
                if let Some(start) = span.clone().map(|s| s.start) {
                    let before = source.get(..start).unwrap_or_default();
                    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                    let line = source[line_start..]
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim();
                    let key = span.clone().and_then(|s| source.get(s)).unwrap_or_default();
                    if line.starts_with('[') {
                        message = format!("TOML syntax: duplicate table `{line}`");
                    } else if !key.is_empty() && !key.contains('\n') {
                        message.push_str(&format!(" `{key}`"));
                    }
                }
            }
            diags.push(Diagnostic {
                location: span.map(|s| map.location(s.start)),
                ..Diagnostic::error(message)
            });
        }
        if total > MAX_SYNTAX_ERRORS {
            diags.push(Diagnostic {
                location: first_hidden,
                ..Diagnostic::error(format!(
                    "{} more TOML syntax errors from here on, not shown; the first ones often cause the rest",
                    total - MAX_SYNTAX_ERRORS
                ))
            });
        }
        return Err(diags);
    }
    let mut locations = HashMap::new();
    record_locations(&map, "", table.get_ref(), &mut locations);

    let mut settings = Settings::default();
    let mut resources = BTreeMap::new();
    for (key, value) in table.get_ref().iter() {
        let top = key.get_ref().as_ref();
        let key_loc = Some(map.location(key.span().start));
        if top == "settings" {
            match deserialize::<Settings>(value.clone()) {
                Ok(s) => settings = s,
                Err(e) => diags.push(de_error(&map, &locations, "settings", e)),
            }
            continue;
        }
        let Ok(kind) = top.parse::<Kind>() else {
            let known: Vec<&str> = std::iter::once("settings")
                .chain(Kind::ALL.iter().map(|k| k.as_str()))
                .collect();
            diags.push(
                Diagnostic::error(format!(
                    "unknown section `{top}`; expected one of: {}",
                    known.join(", ")
                ))
                .at(key_loc, top),
            );
            continue;
        };
        let Some(entries) = value.get_ref().as_table() else {
            diags.push(
                Diagnostic::error(format!(
                    "`{top}` must be a table of named resources, e.g. `[{top}.main]`"
                ))
                .at(key_loc, top),
            );
            continue;
        };
        for (name_key, body) in entries.iter() {
            let name = name_key.get_ref().as_ref();
            let dotted = format!("{top}.{name}");
            let loc = Some(map.location(name_key.span().start));
            if !valid_resource_name(name) {
                diags.push(
                    Diagnostic::error(format!(
                        "resource name `{name}` may only contain letters, digits, `_` and `-`"
                    ))
                    .at(loc, dotted.clone()),
                );
                continue;
            }
            if !body.get_ref().is_table() {
                diags.push(
                    Diagnostic::error(format!("`{dotted}` must be a table (write `[{dotted}]`)"))
                        .at(loc, dotted.clone()),
                );
                continue;
            }
            let addr = ResourceAddr::new(kind, name);
            match build_resource(kind, body.clone(), path) {
                Ok((config, attrs)) => {
                    resources.insert(
                        addr.clone(),
                        ResourceSpec {
                            addr,
                            config,
                            attrs,
                        },
                    );
                }
                Err(BuildError::De(e)) => diags.push(de_error(&map, &locations, &dotted, e)),
                Err(BuildError::Other(key, msg)) => {
                    let full = format!("{dotted}.{key}");
                    let loc = locations.get(&full).cloned().or(loc);
                    diags.push(Diagnostic::error(msg).at(loc, full));
                }
                Err(BuildError::Several(errors)) => {
                    for (key, msg) in errors {
                        let full = format!("{dotted}.{key}");
                        let at = locations.get(&full).cloned().or(loc.clone());
                        diags.push(Diagnostic::error(msg).at(at, full));
                    }
                }
            }
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Spec {
        path: path.to_path_buf(),
        source: source.to_string(),
        settings,
        resources,
        locations,
    })
}

pub fn valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

enum BuildError {
    De(toml::de::Error),
    Other(&'static str, String),
    /// Every problem of one resource, each with its key.
    Several(Vec<(&'static str, String)>),
}

fn deserialize<T: DeserializeOwned>(
    value: toml::Spanned<toml::de::DeValue<'_>>,
) -> Result<T, toml::de::Error> {
    T::deserialize(toml::de::ValueDeserializer::from(value))
}

/// A serde error inside one resource, keyed as precisely as possible: the key written on the
/// error's line (unknown field, wrong type), or `resource.field` for a missing field.
fn de_error(
    map: &SourceMap<'_>,
    locations: &HashMap<String, Location>,
    dotted: &str,
    e: toml::de::Error,
) -> Diagnostic {
    let loc = e.span().map(|s| map.location(s.start));
    let message = plain_types(e.message().trim());
    let prefix = format!("{dotted}.");
    let on_line = loc.as_ref().and_then(|l| {
        locations
            .iter()
            .filter(|(k, kl)| k.starts_with(&prefix) && kl.line == l.line && kl.column <= l.column)
            .max_by_key(|(k, kl)| (kl.column, k.len()))
            .map(|(k, _)| k.clone())
    });
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(|field| format!("{dotted}.{field}"));
    let key = missing.or(on_line).unwrap_or_else(|| dotted.to_string());
    Diagnostic::error(message).at(loc, key)
}

/// serde names Rust types ("expected u64"); a spec's author thinks in TOML values.
fn plain_types(message: &str) -> String {
    [
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

fn to_attrs<T: Serialize>(config: &T) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

fn build_resource(
    kind: Kind,
    body: toml::Spanned<toml::de::DeValue<'_>>,
    spec_path: &Path,
) -> Result<(ResourceConfig, Value), BuildError> {
    Ok(match kind {
        Kind::Vpc => {
            let c: VpcConfig = deserialize(body).map_err(BuildError::De)?;
            let mut attrs = to_attrs(&c);
            if let (Some(_), Value::Object(m)) = (&c.id, &mut attrs) {
                // An adopted VPC has no stack settings to show or compare.
                m.remove("parameters");
                m.remove("tags");
            }
            if let (Some(file), Value::Object(m)) = (&c.template_file, &mut attrs) {
                let base = spec_path.parent().unwrap_or(Path::new("."));
                let full = base.join(file);
                let text = std::fs::read_to_string(&full).map_err(|e| {
                    BuildError::Other(
                        "template_file",
                        format!("cannot read template `{}`: {e}", full.display()),
                    )
                })?;
                // The body itself is what is applied (a saved plan must not pick up later edits
                // to the file); the digest makes a changed template visible in a plan.
                m.insert("template_body".into(), Value::String(text));
            }
            (ResourceConfig::Vpc(c), attrs)
        }
        Kind::CidrBlock => {
            let c: CidrBlockConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs = to_attrs(&c);
            (ResourceConfig::CidrBlock(c), attrs)
        }
        Kind::Subnet => {
            let c: SubnetConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs = to_attrs(&c);
            (ResourceConfig::Subnet(c), attrs)
        }
        Kind::IamRole => {
            let c: IamRoleConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs = crate::resources::iam_role::desired_attrs(&c)
                .map_err(|(k, m)| BuildError::Other(k, m))?;
            (ResourceConfig::IamRole(c), attrs)
        }
        Kind::Cluster => {
            let c: ClusterConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs = to_attrs(&c);
            (ResourceConfig::Cluster(c), attrs)
        }
        Kind::Nodegroup => {
            let c: NodegroupConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs = to_attrs(&c);
            (ResourceConfig::Nodegroup(c), attrs)
        }
        Kind::AwsNode => {
            let c: AwsNodeConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs = crate::resources::aws_node::desired_attrs(&c);
            (ResourceConfig::AwsNode(c), attrs)
        }
        Kind::EniConfig => {
            let c: EniConfigConfig = deserialize(body).map_err(BuildError::De)?;
            let attrs =
                crate::resources::eni_config::desired_attrs(&c).map_err(BuildError::Several)?;
            (ResourceConfig::EniConfig(c), attrs)
        }
    })
}

/// Short digest for display and change detection of large text values.
pub fn digest(text: &str) -> String {
    let d = sha2::Sha256::digest(text.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn record_locations(
    map: &SourceMap<'_>,
    prefix: &str,
    table: &toml::de::DeTable<'_>,
    out: &mut HashMap<String, Location>,
) {
    for (k, v) in table.iter() {
        let key = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        out.insert(key.clone(), map.location(k.span().start));
        record_value(map, &key, v, out);
    }
}

fn record_value(
    map: &SourceMap<'_>,
    key: &str,
    v: &toml::Spanned<toml::de::DeValue<'_>>,
    out: &mut HashMap<String, Location>,
) {
    match v.get_ref() {
        toml::de::DeValue::Table(t) => record_locations(map, key, t, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let k = format!("{key}.{i}");
                out.insert(k.clone(), map.location(item.span().start));
                record_value(map, &k, item, out);
            }
        }
        _ => {}
    }
}
