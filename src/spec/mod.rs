//! The spec: the user's TOML file, parsed into typed per-kind configs (unknown keys rejected)
//! and into the plain attribute maps the planner diffs. Parsing never stops at the first bad
//! resource: every resource is deserialised on its own so that all errors come out together.

use crate::base::addr::{valid_resource_name, Kind, ResourceAddr};
use crate::base::diag::{Diagnostic, Diagnostics, Location, SourceMap};
use crate::base::partition::Partition;
use crate::resources::{BuildCtx, BuildError, ResourceConfig};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub mod schema;

/// `[settings]`: the AWS region and how long to wait for each kind.
#[derive(Debug, Clone, Deserialize, Serialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The region of every AWS call, e.g. `us-west-2`; absent: the SDK's (`AWS_REGION`, the
    /// profile's).
    pub region: Option<String>,
    /// How long eksnet waits for each kind's operations, in seconds by kind (`cluster = 3600`).
    #[serde(default)]
    #[schemars(schema_with = "schema::timeouts")]
    pub timeouts: BTreeMap<String, u64>,
}

/// The longest a wait may be set to in `[settings.timeouts]`: a week (a larger number is
/// taken for milliseconds written by mistake). The shortest is 1 second.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The lock leases `[state] lease_seconds` may give, in seconds.
pub const LEASE_SECONDS: std::ops::RangeInclusive<u64> = 5..=3600;

/// `[state]`: where the state is kept; absent: a local file, `state/<spec stem>.db`.
#[derive(Debug, Clone, PartialEq)]
pub enum StateConfig {
    /// A SQLite file; `path` is relative to the spec's directory.
    Local { path: Option<String> },
    /// One object in S3, shared by a team and its CI (docs/state.md).
    S3 {
        bucket: String,
        key: String,
        /// The bucket's region; default: `[settings] region`, then the credential chain's.
        region: Option<String>,
        /// Seconds a lock stays valid without renewal (default 60).
        lease_seconds: Option<u64>,
        /// Path-style requests; default: on when an endpoint URL is set.
        force_path_style: Option<bool>,
    },
}

/// `[state]`: where eksnet keeps its state, a local SQLite file or one object in S3 (absent: the
/// local file `state/<spec stem>.db`).
// As written: one flat table, so that serde's errors keep their line (an internally tagged
// enum would lose it), then checked into a `StateConfig`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StateTable {
    /// Where the state is kept: `local` (a SQLite file) or `s3` (one object in a bucket).
    backend: BackendName,
    /// `local`: the state file, relative to the spec's directory; absent:
    /// `state/<spec stem>.db`.
    path: Option<String>,
    /// `s3`: the bucket holding the state.
    bucket: Option<String>,
    /// `s3`: the state object's key, e.g. `eksnet/prod.json`.
    key: Option<String>,
    /// `s3`: the bucket's region; absent: `[settings] region`, then the SDK's.
    region: Option<String>,
    /// `s3`: seconds a lock stays valid without renewal; absent: 60.
    #[schemars(range(min = *LEASE_SECONDS.start(), max = *LEASE_SECONDS.end()))]
    lease_seconds: Option<u64>,
    /// `s3`: path-style requests; absent: on when an endpoint URL is set.
    force_path_style: Option<bool>,
}

#[derive(Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum BackendName {
    Local,
    S3,
}

impl StateTable {
    fn into_config(self) -> Result<StateConfig, (&'static str, String)> {
        match self.backend {
            BackendName::Local => {
                for (k, given) in [
                    ("bucket", self.bucket.is_some()),
                    ("key", self.key.is_some()),
                    ("region", self.region.is_some()),
                    ("lease_seconds", self.lease_seconds.is_some()),
                    ("force_path_style", self.force_path_style.is_some()),
                ] {
                    if given {
                        return Err((k, format!("`{k}` is a setting of `backend = \"s3\"`; a local state only takes `path`")));
                    }
                }
                Ok(StateConfig::Local { path: self.path })
            }
            BackendName::S3 => {
                if self.path.is_some() {
                    return Err(("path", "`path` is a setting of `backend = \"local\"`; an S3 state is named by `bucket` and `key`".into()));
                }
                let bucket = self
                    .bucket
                    .ok_or(("backend", "`backend = \"s3\"` needs `bucket`".to_string()))?;
                let key = self.key.ok_or(("backend", "`backend = \"s3\"` needs `key`, the state object's name (e.g. `eksnet/prod.json`)".to_string()))?;
                Ok(StateConfig::S3 {
                    bucket,
                    key,
                    region: self.region,
                    lease_seconds: self.lease_seconds,
                    force_path_style: self.force_path_style,
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResourceSpec {
    pub addr: ResourceAddr,
    pub config: ResourceConfig,
    /// Desired attributes as plain JSON (references still in `${...}` form).
    pub attrs: Value,
    /// The block's `lifecycle` table: how eksnet treats the resource, not what AWS holds.
    pub lifecycle: Lifecycle,
}

/// How eksnet treats the resource (never sent to AWS): `[KIND.NAME.lifecycle]` or
/// `lifecycle = { ... }`, in any resource block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// Attribute paths (`scaling.desired_size`, `tags.team`) left as AWS has them once the
    /// resource exists: set on create, then never compared, updated or replaced for.
    #[serde(default)]
    pub ignore_changes: Vec<String>,
    /// Refuse any plan that deletes or replaces the resource (kept in the state too, so that
    /// removing the block does not lift it).
    #[serde(default)]
    pub prevent_destroy: bool,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub path: PathBuf,
    pub source: String,
    pub settings: Settings,
    pub state: Option<StateConfig>,
    pub resources: BTreeMap<ResourceAddr, ResourceSpec>,
    /// The partition of the spec's region (`settings.region`, else `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`): AWS managed policy names are expanded into its ARNs, and ARNs
    /// and service principals are checked against it. `None`: the region is left to the
    /// credential chain's profile; names are expanded for `aws`, and the command that
    /// loads the region refuses another partition (`check_partition`).
    pub partition: Option<&'static Partition>,
    /// Dotted key path → where it is written, for diagnostics found after parsing.
    pub locations: HashMap<String, Location>,
}

impl Spec {
    /// The region the AWS clients were loaded for must be in the partition the spec's ARNs
    /// were written for. Only a spec read without any region can differ: its managed policy
    /// names were expanded for `aws`.
    pub fn check_partition(&self, region: &str) -> Result<(), String> {
        let actual = Partition::of_region(region);
        let assumed = self.partition.unwrap_or(Partition::commercial());
        if actual == assumed {
            return Ok(());
        }
        Err(format!(
            "the AWS region {region} is in the `{}` partition, but the ARNs of `{}` were written for `{}` ({}); set `region = \"{region}\"` in [settings]",
            actual.id,
            self.path.display(),
            assumed.id,
            if self.partition.is_none() {
                "no region in [settings], AWS_REGION or AWS_DEFAULT_REGION"
            } else {
                "the region of [settings], AWS_REGION or AWS_DEFAULT_REGION"
            }
        ))
    }

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
        let Some(r) = crate::base::value::whole_reference(s) else {
            return crate::base::value::references_in_str(s)
                .is_empty()
                .then(|| s.to_string());
        };
        let mirrored = crate::resources::facts(r.addr.kind)
            .mirrored_outputs
            .contains(&r.path_string().as_str());
        let literal = self.get(&r.addr)?.attrs.get(r.path_string())?.as_str()?;
        (mirrored && crate::base::value::references_in_str(literal).is_empty())
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

/// The largest spec eksnet reads: far above any real one (the scaled benchmark spec of 128
/// resources is 20 KiB), so that a wrong path (a log, an image) fails at once.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Reads and parses a spec file. Errors carry file, line and key; all are returned at once.
pub fn load(path: &Path) -> Result<Spec, Diagnostics> {
    let source = crate::base::files::read_bounded(path, MAX_SPEC_BYTES, "spec").map_err(|e| {
        let mut d = Diagnostics::default();
        d.push(Diagnostic::error(e));
        d
    })?;
    parse(path, &source)
}

/// Syntax errors listed before the rest are summed up in one line.
const MAX_SYNTAX_ERRORS: usize = 10;

/// Parses spec text; `path` names the file in messages and anchors relative template paths.
pub fn parse(path: &Path, source: &str) -> Result<Spec, Diagnostics> {
    // Editors on Windows may start a UTF-8 file with a byte-order mark; TOML has no use for it.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
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
    let mut state = None;
    let mut resources = BTreeMap::new();
    // Files a resource names (a stack's template) are relative to the spec.
    let spec_dir = path.parent().unwrap_or(Path::new("."));
    // The region is needed before the resources are built (their ARNs depend on its
    // partition); `[settings]` itself is read, and its errors reported, in the loop below.
    let partition = table
        .get_ref()
        .get("settings")
        .and_then(|v| deserialize::<Settings>(v.clone()).ok())
        .and_then(|s| s.region)
        .or_else(env_region)
        .map(|r| Partition::of_region(&r));
    let build = BuildCtx {
        spec_dir,
        resource_name: "",
        partition: partition.unwrap_or(Partition::commercial()),
    };
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
        if top == "state" {
            match deserialize::<StateTable>(value.clone()) {
                Ok(t) => match t.into_config() {
                    Ok(s) => state = Some(s),
                    Err((key, msg)) => {
                        let full = format!("state.{key}");
                        let at = locations.get(&full).cloned().or(key_loc.clone());
                        diags.push(Diagnostic::error(msg).at(at, full));
                    }
                },
                Err(e) => diags.push(de_error(&map, &locations, "state", e)),
            }
            continue;
        }
        let Ok(kind) = top.parse::<Kind>() else {
            let known: Vec<&str> = ["settings", "state"]
                .into_iter()
                .chain(
                    Kind::ALL
                        .iter()
                        .filter(|k| !derived_kind(**k))
                        .map(|k| k.as_str()),
                )
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
        if derived_kind(kind) {
            diags.push(
                Diagnostic::error(format!(
                    "`{top}` is not written in a spec: eksnet makes and versions the launch template of a nodegroup that sets `max_pods` (see docs/spec.md)"
                ))
                .at(key_loc, top),
            );
            continue;
        }
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
            // `lifecycle` is eksnet's, not the kind's: taken out before the kind reads the
            // block (which refuses keys it does not know).
            let mut body = body.clone();
            let mut lifecycle = Lifecycle::default();
            if let toml::de::DeValue::Table(t) = body.get_mut() {
                if let Some(l) = t.remove("lifecycle") {
                    let at = format!("{dotted}.lifecycle");
                    match deserialize::<Lifecycle>(l) {
                        Ok(l) => lifecycle = l,
                        Err(e) => {
                            diags.push(de_error(&map, &locations, &at, e));
                            continue;
                        }
                    }
                }
            }
            let table = toml::de::ValueDeserializer::from(body);
            let build = BuildCtx {
                resource_name: name,
                ..build
            };
            match crate::resources::build(kind, table, &build) {
                Ok((config, attrs)) => {
                    resources.insert(
                        addr.clone(),
                        ResourceSpec {
                            addr,
                            config,
                            attrs,
                            lifecycle,
                        },
                    );
                }
                Err(BuildError::De(e)) => diags.push(de_error(&map, &locations, &dotted, e)),
                Err(BuildError::Invalid(errors)) => {
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
    let mut spec = Spec {
        path: path.to_path_buf(),
        source: source.to_string(),
        settings,
        state,
        resources,
        partition,
        locations,
    };
    derive_resources(&mut spec);
    Ok(spec)
}

/// The region the AWS CLI and SDKs take from the environment when none is given.
fn env_region() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.trim().is_empty()))
}

/// Kinds eksnet derives from other blocks and that a spec never writes.
pub fn derived_kind(kind: Kind) -> bool {
    crate::resources::facts(kind).derived
}

/// The resources the kinds derive from the spec's (`ResourceKind::derive`: a nodegroup's
/// launch template for `max_pods`), added beside them. The deriving resource loses the
/// attributes that move and gains references to the derived one's outputs (the graph then
/// orders it first); a diagnostic about the derived resource points at the deriving one's
/// key. A derived resource that does not build is left out: the deriving resource's own
/// checks report why.
fn derive_resources(spec: &mut Spec) {
    let mut derived = Vec::new();
    for r in spec.resources.values() {
        let resolve = |name: &str| spec.resolved_name(name);
        for d in crate::resources::derive(&r.config, &r.addr, &resolve) {
            derived.push((r.addr.clone(), r.lifecycle.prevent_destroy, d));
        }
    }
    for (from, prevent_destroy, d) in derived {
        let build = BuildCtx {
            spec_dir: Path::new("."),
            resource_name: &d.addr.name,
            partition: spec.partition.unwrap_or(Partition::commercial()),
        };
        let Ok((config, attrs)) = crate::resources::build(d.addr.kind, d.table, &build) else {
            continue;
        };
        if let Some(at) = spec
            .locations
            .get(&format!("{from}.{}", d.located_at))
            .cloned()
        {
            spec.locations.insert(d.addr.to_string(), at);
        }
        if let Some(Value::Object(m)) = spec.resources.get_mut(&from).map(|r| &mut r.attrs) {
            for key in d.moved {
                m.remove(*key);
            }
            for (key, v) in d.refers {
                m.insert(key.to_string(), v);
            }
        }
        spec.resources.insert(
            d.addr.clone(),
            ResourceSpec {
                addr: d.addr,
                config,
                attrs,
                // A protected resource's derived one is protected with it: deleting a
                // nodegroup's template would leave the nodegroup on one that no longer exists.
                lifecycle: Lifecycle {
                    ignore_changes: Vec::new(),
                    prevent_destroy,
                },
            },
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Spec {
        match parse(Path::new("s.toml"), text) {
            Ok(s) => s,
            Err(d) => panic!("{d:?}"),
        }
    }

    const ROLE: &str = r#"
[iam_role.node]
name = "node"
assume_role_service = "ec2.amazonaws.com.cn"
managed_policies = ["AmazonEKSWorkerNodePolicy", "arn:aws-cn:iam::111122223333:policy/own"]
"#;

    #[test]
    fn managed_policy_names_expand_in_the_regions_partition() {
        let spec = load_text(&format!("[settings]\nregion = \"cn-north-1\"\n{ROLE}"));
        assert_eq!(spec.partition.map(|p| p.id), Some("aws-cn"));
        let r = &spec.resources[&ResourceAddr::new(Kind::IamRole, "node")];
        assert_eq!(
            r.attrs["managed_policy_arns"],
            serde_json::json!([
                "arn:aws-cn:iam::111122223333:policy/own",
                "arn:aws-cn:iam::aws:policy/AmazonEKSWorkerNodePolicy"
            ])
        );
        assert!(spec.check_partition("cn-northwest-1").is_ok());
        let err = spec.check_partition("us-west-2").err().unwrap_or_default();
        assert!(err.contains("is in the `aws` partition"), "{err}");
    }
}
