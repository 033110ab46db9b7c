//! Resource kinds. Each kind lives in one module that owns everything about it: its spec
//! config, its static facts (one `KindFacts` value) and its I/O (refresh in batches, create,
//! update, delete, settle), behind the `ResourceKind` trait. `for_each_kind!` below is the one
//! registry: a line per kind, from which the `Kind` enum, the typed config enum and the
//! dispatch are generated. Adding a kind is a module and a line there.

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::events::{Event, Reporter};
use crate::cloud::aws::{AwsClients, AwsError};
use crate::cloud::kube::KubeError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The registry of kinds: `Variant => module::Type`, in the order addresses sort (the order
/// of ties in plans and of `state list`). The module's name is the spec's table name and the
/// address prefix; `Type` implements `ResourceKind`. Calls `$then!` with the list.
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_kind {
    ($then:ident) => {
        $crate::$then! {
            Vpc => vpc::VpcKind,
            CidrBlock => cidr_block::CidrBlockKind,
            Subnet => subnet::SubnetKind,
            /// A route table and its subnet associations (or an existing table's associations).
            RouteTable => route_table::RouteTableKind,
            IamRole => iam_role::IamRoleKind,
            Cluster => cluster::ClusterKind,
            /// The IAM OIDC identity provider of a cluster's issuer (IRSA).
            OidcProvider => oidc_provider::OidcProviderKind,
            /// The launch template eksnet makes for a nodegroup's `max_pods` (never written in
            /// a spec: derived from the nodegroup).
            LaunchTemplate => launch_template::LaunchTemplateKind,
            /// An EKS managed add-on of one cluster (`vpc-cni`, `coredns`, …).
            Addon => addon::AddonKind,
            Nodegroup => nodegroup::NodegroupKind,
            /// Self-managed nodes: an Auto Scaling group with its launch template, instance
            /// profile and access entry.
            SelfManagedNodeGroup => self_managed_node_group::SelfManagedNodeGroupKind,
            /// The `aws-node` DaemonSet's settings (VPC CNI env) on one cluster.
            AwsNode => aws_node::AwsNodeKind,
            /// One `ENIConfig` custom resource.
            EniConfig => eni_config::EniConfigKind,
            /// One `SecurityGroupPolicy` custom resource (security groups for pods).
            SecurityGroupPolicy => security_group_policy::SecurityGroupPolicyKind,
            /// A Karpenter `EC2NodeClass` (how Karpenter's nodes are launched).
            KarpenterNodeClass => karpenter_node_class::KarpenterNodeClassKind,
            /// A Karpenter `NodePool` (which nodes Karpenter may launch, from a node class).
            KarpenterNodePool => karpenter_node_pool::KarpenterNodePoolKind,
            /// One EKS Auto Mode `NodeClass`, with the `NodePool` that uses it.
            AutoModeNodeClass => auto_mode_node_class::AutoModeNodeClassKind,
        }
    };
}

/// How `eksnet import` takes the id of a kind's existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportId {
    /// The object's own id (stack name, subnet id, role name, cluster name…).
    Plain,
    /// `CLUSTER/NAME`: the object lives inside a cluster.
    ClusterSlashName,
    /// `CLUSTER/NAMESPACE/NAME`: the object lives in a namespace of a cluster.
    ClusterNamespaceName,
    /// Not importable; the text says why (it follows "`ADDR` ").
    Never(&'static str),
}

/// What eksnet knows about a kind without asking anyone: one value per kind.
#[derive(Debug)]
pub struct KindFacts {
    /// Attributes whose change forces a replacement.
    pub force_new: &'static [&'static str],
    /// The outputs a reference may name (`name.*`: any key below, e.g. `outputs.VpcId`).
    pub outputs: &'static [&'static str],
    /// Outputs that repeat an input of the same name: written as a literal in the spec, a
    /// reference to one is known before apply (a cluster's `name`, a subnet's AZ).
    pub mirrored_outputs: &'static [&'static str],
    /// The attributes that make two resources the same object in AWS or Kubernetes.
    pub identity: &'static [&'static str],
    /// The attributes a lookup by natural key uses: a resource is read as soon as these are
    /// known, without waiting for every dependency.
    pub lookup_key: &'static [&'static str],
    /// Attributes sent on create only: AWS does not report them and cannot change them
    /// later, so they are never compared; a spec that changes one gets a warning.
    pub create_only: &'static [&'static str],
    /// Attributes compared as sets: AWS may return them in another order.
    pub set_valued: &'static [&'static str],
    /// How long a wait for this kind may take by default (`[settings.timeouts]` overrides).
    pub default_timeout: Duration,
    /// Lives in the cluster's Kubernetes API: read after its cluster in a refresh wave.
    pub kubernetes: bool,
    pub import_id: ImportId,
    /// Replaced create-before-destroy: the new object is created (and usable) before the old
    /// one is deleted, so the two exist at once. Given the resolved attributes and the cloud
    /// id of the object to keep clear of, the function returns the attributes to create the
    /// new one with (a name of its own where names are unique) and the cloud id it will
    /// have. `None`: replaced destroy-first.
    pub replacement: Option<Replacement>,
    /// Attributes compared even when the desired attributes leave them out, as if unset: a
    /// nodegroup's `launch_template_id`, whose going away (the spec drops `max_pods`) is a
    /// change, while a nodegroup that never had one shows nothing.
    pub compared_when_unset: &'static [&'static str],
    /// Outputs an update in place changes, each with the attributes whose change moves it (a
    /// launch template's `version` moves with its user data, not with its tags): a resource
    /// that refers to one cannot know its value until the update is made, so the plan shows
    /// it "known after apply" and updates it too.
    pub updated_outputs: &'static [(&'static str, &'static [&'static str])],
    /// Never written in a spec: eksnet derives it from another kind's resource (see
    /// `ResourceKind::derive`); a `[kind.*]` table is an error, and validation skips it.
    pub derived: bool,
    /// The kind's identity must be unique within a spec (two resources would be one object);
    /// `None` for kinds checked otherwise (CIDR overlaps) or derived.
    pub unique: Option<Unique>,
    /// What each output gives, for a field that needs a certain shape (a VPC id, a role ARN)
    /// and takes a reference: (output path, `*` for any one segment; shape). An output not
    /// listed is not checked.
    pub output_shapes: &'static [(&'static str, Shape)],
    /// `Some(service)`: the service's tags take only letters, digits, spaces and
    /// `_ . : / = + - @` (IAM's and EKS's do; EC2's and CloudFormation's take any).
    pub restricted_tags: Option<&'static str>,
    /// The kind its objects live in and go with (a nodegroup's cluster): a replacement of
    /// that one takes this one along, which needs no warning.
    pub parent: Option<Kind>,
    /// Its object exists before eksnet and is only patched (the `aws-node` DaemonSet EKS
    /// installs): never someone else's to take over, and found in place it is adopted with
    /// "the settings are already in place".
    pub patches_existing: bool,
    /// Attributes only checked against what exists, never set: (attribute, what it is, for
    /// the message), e.g. an adopted VPC's `cidr_block`.
    pub checked_only: &'static [(&'static str, &'static str)],
    /// Its read gives the endpoint and CA of a Kubernetes API (a cluster): the kinds that
    /// live in Kubernetes are read after it in a refresh wave.
    pub kubernetes_endpoint: bool,
    /// What eksnet changes on an object of the kind that was made elsewhere and adopted in
    /// place (`is_adopted`), and puts back when it lets go of it: (attribute, the output in
    /// which the state keeps the value it had before eksnet first changed it). An existing
    /// add-on's `configuration_values`. Empty: an adopted object is only read, and only
    /// forgotten (an adopted VPC, an existing cluster).
    pub puts_back: &'static [(&'static str, &'static str)],
}

/// The field rules a kind's `check_fields` may apply: what AWS, Kubernetes and the VPC CNI
/// document about single values, checked without a call (`validate::constraints` has them,
/// and reports each finding at the resource's key, so a kind says only which rule fits which
/// of its fields).
pub trait FieldRules {
    /// An error at the resource's `key` (`""`: the resource itself).
    fn error(&mut self, key: &str, message: String);
    fn warning(&mut self, key: &str, message: String);
    /// An IAM name of at most `max` characters (letters, digits and `+=,.@_-`).
    fn is_iam_name(&self, name: &str, max: usize) -> bool;
    /// An EKS cluster name.
    fn is_cluster_name(&self, name: &str) -> bool;
    /// A literal must have the shape; a whole reference must give it (see
    /// `KindFacts::output_shapes`).
    fn shaped(&mut self, key: &str, value: &str, shape: Shape);
    /// One of an API enumeration's values (the SDK's own list).
    fn enumerated(&mut self, key: &str, value: Option<&str>, allowed: &[&str]);
    fn instance_type(&mut self, key: &str, value: &str);
    fn iam_path(&mut self, path: &str);
    fn policy(&mut self, key: &str, policy: &str);
    fn trust_policy(&mut self, text: &str);
    /// The partition of the spec's region, when the region is known.
    fn partition(&self) -> Option<&'static crate::base::partition::Partition>;
    /// A service principal (`eks.amazonaws.com`) of the spec's partition.
    fn service_principal(&mut self, key: &str, principal: &str);
    /// A Kubernetes label (or annotation, without a value) key and value.
    fn label(&mut self, key: &str, name: &str, value: Option<&str>);
    /// A Kubernetes object name: a DNS subdomain, or with `label` a DNS label (a namespace).
    fn kubernetes_name(&mut self, key: &str, name: &str, label: bool);
    /// A VPC CNI env value of the type the CNI parses it as.
    fn cni_env(&mut self, key: &str, name: &str, value: &str);
    /// Combinations of VPC CNI settings the CNI documents as not working.
    fn cni_combinations(&mut self, key: &str, env: &[(String, String)]);
    /// A CloudFormation template file (the resource's template body) and the parameters
    /// given for it: a template it parses, parameters it declares and allows.
    fn stack_template(&mut self, file: &str, parameters: &BTreeMap<String, String>);
}

/// How a duplicate identity is reported (see `KindFacts::unique`).
#[derive(Debug, Clone, Copy)]
pub struct Unique {
    /// The key the error is reported at.
    pub field: &'static str,
    /// `Some(what)`: the identity is one `what` (a cluster) that may have only one resource
    /// of this kind, said so in the message.
    pub one_per: Option<&'static str>,
}

/// What a field needs, and what a reference's output gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    VpcId,
    SubnetId,
    SecurityGroupId,
    RoleArn,
    /// An IAM OIDC identity provider's ARN (`arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`).
    OidcProviderArn,
    ClusterName,
    Zone,
    /// An EC2 id of another kind: its prefix (`nat-`) followed by 8 or 17 hex digits, and
    /// what it is in words, with its form (for the message).
    Ec2Id {
        prefix: &'static str,
        what: &'static str,
    },
    /// Any other output: an ARN of another kind, a name, a CIDR, a status.
    Other(&'static str),
}

/// A resource a kind derives from one of its own (see `ResourceKind::derive`).
pub struct Derived {
    pub addr: ResourceAddr,
    /// Its table, as a spec would write it: built like any other (`build`), so the deriving
    /// kind needs to know the derived kind's fields, not its module.
    pub table: Value,
    /// The deriving resource's key a diagnostic about the derived one points at.
    pub located_at: &'static str,
    /// Attributes of the deriving resource that move into the derived one.
    pub moved: &'static [&'static str],
    /// Attributes the deriving resource gains (references to the derived one's outputs, so
    /// the graph orders it first and apply fills them in).
    pub refers: Vec<(&'static str, Value)>,
}

/// See `KindFacts::replacement`.
pub type Replacement = fn(attrs: &Value, old_cloud_id: &str) -> Option<(Value, String)>;

/// The suffix of the name a replacement takes while its predecessor still holds the spec's
/// name (nodegroups, launch templates).
pub const REPLACEMENT_SUFFIX: &str = "-cbd";

/// The name of a create-before-destroy replacement where names are unique: it alternates
/// between the spec's name and that name + `-cbd` (the name trimmed to fit `max_len`),
/// taking whichever the old object (named `old`) does not have. A name change in the spec
/// needs no suffix at all.
pub fn replacement_name(base: &str, old: &str, max_len: usize) -> String {
    if old != base {
        return base.to_string();
    }
    let keep = base
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|end| *end + REPLACEMENT_SUFFIX.len() <= max_len)
        .last()
        .unwrap_or(0);
    format!("{}{REPLACEMENT_SUFFIX}", &base[..keep])
}

/// A refresh of a kind whose cloud id is its `name` and whose replacements alternate names:
/// each item read by its cloud id, or else by `read_name_or_replacement`.
pub async fn read_each_by_id_or_name<F, Fut>(
    items: &[Lookup],
    max_len: usize,
    read: F,
) -> Result<Vec<Option<Observed>>, ResourceError>
where
    F: Fn(String) -> Fut + Copy,
    Fut: std::future::Future<Output = Result<Option<Observed>, ResourceError>>,
{
    let reads = items.iter().map(|i| async move {
        if let Some(id) = &i.cloud_id {
            return read(id.clone()).await;
        }
        match str_attr(&i.attrs, "name") {
            Some(n) if !crate::base::value::is_unknown(&serde_json::json!(n)) => {
                read_name_or_replacement(n, max_len, read).await
            }
            _ => Ok(None),
        }
    });
    futures::future::try_join_all(reads).await
}

/// `KindFacts::replacement` for a kind whose cloud id is its `name`: the new object named by
/// `replacement_name`, the spec's name kept as `spec_name` (for its `eksnet:name` tag).
pub fn replacement_named(
    attrs: &Value,
    old_cloud_id: &str,
    max_len: usize,
) -> Option<(Value, String)> {
    let base = str_attr(attrs, "name")?;
    let name = replacement_name(base, old_cloud_id, max_len);
    let mut create = attrs.clone();
    let m = create.as_object_mut()?;
    m.insert("name".into(), serde_json::json!(name));
    m.insert("spec_name".into(), serde_json::json!(base));
    Some((create, name))
}

/// A lookup by natural key (the state has no cloud id: a lost row, `state rm`) of a kind
/// whose replacements alternate names: after a replacement the live object is `NAME-cbd`,
/// with the spec's name in its `eksnet:name` tag, so reading only `NAME` would miss it and
/// the next apply would create a second one. Both names are read in the same round (no round
/// trip added); the spec's own name wins, and a `NAME-cbd` counts only if its tag says it
/// stands for `NAME` (the observed `name` is the tag's), so someone else's object that
/// happens to carry that name is not taken for it.
pub async fn read_name_or_replacement<F, Fut>(
    name: &str,
    max_len: usize,
    read: F,
) -> Result<Option<Observed>, ResourceError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Observed>, ResourceError>>,
{
    let other = replacement_name(name, name, max_len);
    let (own, replaced) = tokio::join!(read(name.to_string()), read(other));
    if let Some(found) = own? {
        return Ok(Some(found));
    }
    Ok(replaced?.filter(|o| str_attr(&o.attrs, "name") == Some(name)))
}

/// What building a resource's attributes from its table may need beyond the table: the
/// directory files are relative to, the partition ARNs are written in, and the resource's
/// own name in the spec.
#[derive(Debug, Clone, Copy)]
pub struct BuildCtx<'a> {
    /// The spec's directory (a stack's `template_file` is relative to it).
    pub spec_dir: &'a Path,
    /// The table's key (`web` of `[security_group_policy.web]`), which a kind may take as the
    /// default name of its object.
    pub resource_name: &'a str,
    /// The region's partition (see `Spec::partition`); `aws` when the region is not known.
    pub partition: &'static crate::base::partition::Partition,
}

/// One kind's config and I/O. Dispatch is static (the registry's `match`), so each future
/// keeps its concrete type, `Send` included; no `dyn` is needed.
#[allow(async_fn_in_trait)]
pub trait ResourceKind {
    const FACTS: &'static KindFacts;
    /// The `[kind.NAME]` table (with `#[serde(deny_unknown_fields)]`); its `JsonSchema`, with a
    /// doc comment on every field, is the kind's part of `eksnet schema`.
    type Config: DeserializeOwned + Serialize + Clone + std::fmt::Debug + schemars::JsonSchema;

    /// The attributes the planner diffs, from the config (references still `${...}`); errors
    /// are (key inside the resource, message). An attribute not serialised is never compared.
    fn desired_attrs(
        config: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        Ok(serde_json::to_value(config).unwrap_or(Value::Null))
    }

    /// Looks up many resources; the answer is in the order of `items`. Answers by cloud id
    /// or by natural key, with live attributes in the spec's shape and `eksnet:` tags split
    /// off by `split_tags`.
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError>;

    /// Creates the object and waits until it is usable; `ctx.managed_tags` on everything
    /// taggable.
    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError>;

    async fn update(
        _ctx: &Ctx,
        addr: &ResourceAddr,
        _cloud_id: &str,
        _change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        Err(ResourceError::NotUpdatable { kind: addr.kind })
    }

    /// Deletes and waits until gone; "not found" counts as deleted.
    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        prior_outputs: &Value,
    ) -> Result<(), ResourceError>;

    /// The kind's single-value rules (ids, ARNs, names, enumerations, ranges, labels), through
    /// `FieldRules`; no call is made.
    fn check_fields(_config: &Self::Config, _rules: &mut dyn FieldRules) {}

    /// The config's own consistency (which fields go together, counts, bounds), checked
    /// before the single-value rules of `check_fields`; through the same `FieldRules`.
    fn check_shape(_config: &Self::Config, _rules: &mut dyn FieldRules) {}

    /// Resources eksnet derives from this one (a nodegroup's launch template for
    /// `max_pods`), given the config, its address and the spec's name resolution.
    fn derive(
        _config: &Self::Config,
        _addr: &ResourceAddr,
        _resolved_name: &dyn Fn(&str) -> String,
    ) -> Vec<Derived> {
        Vec::new()
    }

    /// Reads what the live checks of the desired attributes need and `validate` cannot know
    /// (an add-on's versions and configuration schema), alongside the refresh. Nothing is
    /// changed and nothing is judged here: the answer, a plain value of the kind's own shape,
    /// goes into the inventory, and the planner calls `judge` on it. `None`: nothing to check.
    async fn inspect(
        _ctx: &Ctx,
        _addr: &ResourceAddr,
        _attrs: &Value,
        _spec: &SpecFacts,
    ) -> Option<Value> {
        None
    }

    /// The verdicts on what `inspect` read (pure). Each finding is (key inside the resource,
    /// message, whether it is an error or only a warning).
    fn judge(
        _addr: &ResourceAddr,
        _attrs: &Value,
        _spec: &SpecFacts,
        _inspection: &Value,
    ) -> Vec<Finding> {
        Vec::new()
    }

    /// Brings a resource found by refresh (not created in this run) to a usable state before
    /// anything is built on it: one interrupted mid-create is waited for. Returns fresh
    /// observations when it waited.
    async fn settle(
        _ctx: &Ctx,
        _addr: &ResourceAddr,
        _cloud_id: &str,
        _attrs: &Value,
    ) -> Result<Option<Observed>, ResourceError> {
        Ok(None)
    }
}

/// What the spec and the state say of other resources that a kind's `inspect` and `judge`
/// may need.
#[derive(Debug, Clone, Default)]
pub struct SpecFacts {
    /// Cluster name → the Kubernetes version the spec gives it, when it gives one.
    pub cluster_versions: BTreeMap<String, String>,
    /// Address → the version the state recorded as installed (add-ons).
    pub installed_versions: BTreeMap<ResourceAddr, String>,
    /// Cluster name → its live Kubernetes version, asked once however many checks need it
    /// (the first asks, the others wait for its answer).
    pub live_cluster_versions: BTreeMap<String, tokio::sync::OnceCell<Option<String>>>,
}

impl SpecFacts {
    /// From the spec's resources (address, desired attributes), the state's rows (address,
    /// recorded outputs) and the spec's name resolution (`${cluster.X.name}` → the name).
    pub fn gather<'a>(
        spec: impl Iterator<Item = (&'a ResourceAddr, &'a Value)> + Clone,
        state: impl Iterator<Item = (&'a ResourceAddr, &'a Value)>,
        resolved_name: impl Fn(&str) -> String,
    ) -> SpecFacts {
        SpecFacts {
            live_cluster_versions: spec
                .clone()
                .filter(|(a, _)| a.kind == Kind::Addon)
                .filter_map(|(_, attrs)| str_attr(attrs, "cluster_name"))
                .map(|c| (resolved_name(c), Default::default()))
                .collect(),
            installed_versions: state
                .filter(|(a, _)| a.kind == Kind::Addon)
                .filter_map(|(a, outputs)| {
                    Some((a.clone(), str_attr(outputs, "version")?.to_string()))
                })
                .collect(),
            cluster_versions: spec
                .filter(|(a, _)| a.kind == Kind::Cluster)
                .filter_map(|(_, attrs)| {
                    let name = str_attr(attrs, "name")?;
                    let version = str_attr(attrs, "version")?;
                    Some((name.to_string(), version.to_string()))
                })
                .collect(),
        }
    }
}

/// One finding of `ResourceKind::judge`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Dotted key inside the resource (`version`, `configuration_values.env.X`).
    pub key: String,
    pub message: String,
    pub error: bool,
}

/// An update's inputs: the attributes before and after, and the outputs the state recorded.
#[derive(Clone, Copy)]
pub struct Change<'a> {
    pub before: &'a Value,
    pub after: &'a Value,
    pub prior_outputs: &'a Value,
}

/// Why a resource's table did not build (see `build`).
pub enum BuildError<E> {
    /// The table does not deserialise (unknown key, wrong type, missing field).
    De(E),
    /// The config is well-formed but unusable: (key inside the resource, message) each.
    Invalid(Vec<(&'static str, String)>),
}

#[doc(hidden)]
#[macro_export]
macro_rules! define_registry {
    ($($(#[$doc:meta])* $variant:ident => $module:ident :: $ty:ident,)*) => {
        $(pub mod $module;)*

        /// Typed config of one resource.
        #[derive(Debug, Clone)]
        pub enum ResourceConfig {
            $($variant(<$module::$ty as ResourceKind>::Config),)*
        }

        /// The static facts of a kind.
        pub fn facts(kind: Kind) -> &'static KindFacts {
            match kind {
                $(Kind::$variant => <$module::$ty as ResourceKind>::FACTS,)*
            }
        }

        /// Deserialises one `[kind.NAME]` table into its typed config and desired attributes.
        pub fn build<'de, D: serde::Deserializer<'de>>(
            kind: Kind,
            table: D,
            build: &BuildCtx,
        ) -> Result<(ResourceConfig, Value), BuildError<D::Error>> {
            match kind {
                $(Kind::$variant => {
                    let c = <<$module::$ty as ResourceKind>::Config as serde::Deserialize>::deserialize(table)
                        .map_err(BuildError::De)?;
                    let attrs = <$module::$ty as ResourceKind>::desired_attrs(&c, build)
                        .map_err(BuildError::Invalid)?;
                    Ok((ResourceConfig::$variant(c), attrs))
                })*
            }
        }

        /// The JSON Schema of a kind's `[kind.NAME]` table, inline (its nested types go into
        /// the generator's definitions).
        pub fn config_schema(kind: Kind, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
            match kind {
                $(Kind::$variant => {
                    <<$module::$ty as ResourceKind>::Config as schemars::JsonSchema>::json_schema(generator)
                })*
            }
        }

        /// See `ResourceKind::check_fields`.
        pub fn check_fields(config: &ResourceConfig, rules: &mut dyn FieldRules) {
            match config {
                $(ResourceConfig::$variant(c) => <$module::$ty as ResourceKind>::check_fields(c, rules),)*
            }
        }

        /// See `ResourceKind::check_shape`.
        pub fn check_shape(config: &ResourceConfig, rules: &mut dyn FieldRules) {
            match config {
                $(ResourceConfig::$variant(c) => <$module::$ty as ResourceKind>::check_shape(c, rules),)*
            }
        }

        /// See `ResourceKind::derive`.
        pub fn derive(
            config: &ResourceConfig,
            addr: &ResourceAddr,
            resolved_name: &dyn Fn(&str) -> String,
        ) -> Vec<Derived> {
            match config {
                $(ResourceConfig::$variant(c) => <$module::$ty as ResourceKind>::derive(c, addr, resolved_name),)*
            }
        }

        // Each kind's future is boxed: unboxed, every caller's future is as large as the
        // largest kind's, and with enough kinds a debug build overflows a worker thread's stack.
        /// Looks up many resources of one kind; the answer is in the order of `items`.
        pub async fn refresh(
            ctx: &Ctx,
            kind: Kind,
            items: &[Lookup],
        ) -> Result<Vec<Option<Observed>>, ResourceError> {
            match kind {
                $(Kind::$variant => Box::pin(<$module::$ty as ResourceKind>::refresh(ctx, items)).await,)*
            }
        }

        pub async fn create(
            ctx: &Ctx,
            addr: &ResourceAddr,
            attrs: &Value,
        ) -> Result<Observed, ResourceError> {
            match addr.kind {
                $(Kind::$variant => Box::pin(<$module::$ty as ResourceKind>::create(ctx, addr, attrs)).await,)*
            }
        }

        pub async fn update(
            ctx: &Ctx,
            addr: &ResourceAddr,
            cloud_id: &str,
            change: Change<'_>,
        ) -> Result<Observed, ResourceError> {
            match addr.kind {
                $(Kind::$variant => {
                    Box::pin(<$module::$ty as ResourceKind>::update(ctx, addr, cloud_id, change)).await
                })*
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
                $(Kind::$variant => {
                    Box::pin(<$module::$ty as ResourceKind>::delete(ctx, addr, cloud_id, attrs, prior_outputs))
                        .await
                })*
            }
        }

        /// See `ResourceKind::settle`.
        pub async fn settle(
            ctx: &Ctx,
            addr: &ResourceAddr,
            cloud_id: &str,
            attrs: &Value,
        ) -> Result<Option<Observed>, ResourceError> {
            match addr.kind {
                $(Kind::$variant => {
                    Box::pin(<$module::$ty as ResourceKind>::settle(ctx, addr, cloud_id, attrs)).await
                })*
            }
        }

        /// See `ResourceKind::inspect`.
        pub async fn inspect(ctx: &Ctx, addr: &ResourceAddr, attrs: &Value, spec: &SpecFacts) -> Option<Value> {
            match addr.kind {
                $(Kind::$variant => Box::pin(<$module::$ty as ResourceKind>::inspect(ctx, addr, attrs, spec)).await,)*
            }
        }

        /// See `ResourceKind::judge`.
        pub fn judge(addr: &ResourceAddr, attrs: &Value, spec: &SpecFacts, inspection: &Value) -> Vec<Finding> {
            match addr.kind {
                $(Kind::$variant => <$module::$ty as ResourceKind>::judge(addr, attrs, spec, inspection),)*
            }
        }
    };
}

crate::for_each_kind!(define_registry);

pub mod eks;

/// Tag keys eksnet puts on everything taggable, so that a resource created just before a crash
/// can be found and adopted by the next run instead of being created twice.
pub const TAG_STATE: &str = "eksnet:state";
pub const TAG_ADDRESS: &str = "eksnet:address";

/// Errors of one resource operation.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// AWS answered with an error, or did not answer.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The cluster's Kubernetes API answered with an error, or could not be reached.
    #[error(transparent)]
    Kube(#[from] KubeError),
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
    /// The resolved attributes lack one the operation needs (validation and the planner
    /// should have caught it earlier).
    #[error("missing attribute `{0}`")]
    MissingAttribute(String),
    /// A create or update went through but the object could not be read afterwards.
    #[error("{what} could not be read back")]
    NotReadBack { what: String },
    /// The object went away between two requests of one operation.
    #[error("{what} disappeared")]
    Disappeared { what: String },
    /// AWS's answer to a successful request lacks what it always carries.
    #[error("{operation} returned no {lacks}")]
    IncompleteAnswer {
        operation: &'static str,
        lacks: &'static str,
    },
    /// A cloud id recorded or given for the kind is not in its shape.
    #[error("{kind} id `{id}` is not `{expected}`")]
    BadCloudId {
        kind: Kind,
        id: String,
        expected: &'static str,
    },
    /// A subnet AWS still refuses to delete after the kind's timeout: what is left in it.
    #[error("subnet {subnet} still has dependencies after {waited_secs}s: {}{}",
        if blockers.is_empty() {
            "no network interface found (check load balancers and endpoints)".to_string()
        } else {
            format!("network interfaces {}", blockers.join(", "))
        },
        if *hint_delete_enis {
            "; hint: `eksnet destroy --delete-available-enis` removes ENIs in state `available` that the VPC CNI left"
        } else {
            ""
        })]
    SubnetInUse {
        subnet: String,
        waited_secs: u64,
        /// `eni-… (status, description)` for each ENI still in the subnet.
        blockers: Vec<String>,
        /// Detached ENIs remain and the option that deletes them is off.
        hint_delete_enis: bool,
    },
    /// An adopted VPC (`id = …`) does not exist; eksnet never creates one.
    #[error("{addr}: VPC {vpc_id} does not exist (an adopted VPC is never created)")]
    AdoptedVpcMissing { addr: ResourceAddr, vpc_id: String },
    /// An existing cluster (`existing = true`) does not exist; eksnet never creates one.
    #[error("{addr}: {what} does not exist (an existing resource is only read, never created)")]
    AdoptedMissing { addr: ResourceAddr, what: String },
    /// The cluster whose Kubernetes API holds the object does not exist.
    #[error("cluster `{cluster}` does not exist")]
    NoCluster { cluster: String },
    /// The kind has no attribute that changes in place (the planner replaces instead).
    #[error("a {kind} has no updatable attributes")]
    NotUpdatable { kind: Kind },
    /// AWS's answer or the inputs are unusable in a way none of the above says.
    #[error("{0}")]
    Invalid(String),
}

impl ResourceError {
    /// AWS's error code, for AWS errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ResourceError::Aws(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// Converts an SDK error into a `ResourceError` naming the operation and AWS's error code.
pub fn aws_error<E, R>(
    operation: &'static str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> ResourceError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: std::fmt::Debug,
{
    ResourceError::Aws(crate::cloud::aws::aws_error(operation, err))
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

/// What refresh saw: `None` = looked up and absent. A missing key = not looked up (absent).
pub type ObservedState = BTreeMap<ResourceAddr, Option<Observed>>;

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
    pub kube: Arc<crate::cloud::kube::KubeConnector>,
}

impl Ctx {
    pub fn timeout(&self, kind: Kind) -> Duration {
        self.timeouts
            .get(&kind)
            .copied()
            .unwrap_or(facts(kind).default_timeout)
    }

    /// Tags every created resource carries, merged under the user's tags.
    pub fn managed_tags(&self, addr: &ResourceAddr, user: &Value) -> BTreeMap<String, String> {
        let mut tags = tag_map(user);
        tags.insert(TAG_STATE.into(), self.lineage.clone());
        tags.insert(TAG_ADDRESS.into(), addr.to_string());
        tags
    }
}

/// What makes two resources of a kind the same object in AWS or Kubernetes: two addresses
/// with one identity would write one object twice, the second silently taking over the first.
/// `None` while a field is still unknown, or for a VPC eksnet does not create.
pub fn identity(kind: Kind, attrs: &Value) -> Option<String> {
    let parts: Option<Vec<&str>> = facts(kind)
        .identity
        .iter()
        .map(|f| str_attr(attrs, f).filter(|v| !crate::base::value::is_unknown(&Value::from(*v))))
        .collect();
    parts.map(|p| p.join("/"))
}

/// Checks a reference path against a kind's outputs: exact names, or `name.*` for maps.
pub fn valid_output_path(kind: Kind, path: &[String]) -> bool {
    let joined = path.join(".");
    facts(kind)
        .outputs
        .iter()
        .any(|o| match o.strip_suffix(".*") {
            Some(prefix) => joined.starts_with(&format!("{prefix}.")),
            None => joined == *o,
        })
}

/// The error for a reference whose producer exists but lacks that output (AWS did not return
/// it — moto, for one, returns no cluster security group).
pub fn missing_output(r: &crate::base::value::Reference) -> String {
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

/// True for resources made elsewhere that eksnet adopts in place: it never creates or deletes
/// them, a plan that does not find one is an error, one found without a state row is taken
/// as it is (no `eksnet import`, no refusal as someone else's), and `--replace` does not
/// apply. An adopted VPC (`id`) and an existing cluster (`existing = true`) are only read, so
/// removing one only forgets it. An existing add-on or route table (`existing = true`) is
/// also changed in part (the add-on's configuration values, the table's associations): what
/// its kind's `KindFacts::puts_back` lists may be updated, and removing it puts that back as
/// it was before eksnet first changed it, then forgets it (the plan's `put_back`, which the
/// kind's `delete` carries out), so it is no plain forget.
///
/// One question, "was it made elsewhere?", with the difference in what eksnet does to it
/// kept in the kind's facts, rather than a second predicate: every place that asks it
/// (ownership, missing objects, replacements, import) must treat them all alike. The
/// `aws-node` DaemonSet is different again: an `aws_node` is created on a DaemonSet EKS
/// installs, may come before it exists, and puts its entries back in its own `delete`
/// (`KindFacts::patches_existing`).
pub fn is_adopted(addr: &ResourceAddr, attrs: &Value) -> bool {
    let existing = || attrs.get("existing").and_then(Value::as_bool) == Some(true);
    match addr.kind {
        Kind::Vpc => attrs.get("id").is_some_and(|v| !v.is_null()),
        Kind::Cluster | Kind::Addon | Kind::RouteTable => existing(),
        _ => false,
    }
}

/// What removing an adopted resource puts back before it is forgotten (see
/// `KindFacts::puts_back`); empty for every other resource.
pub fn puts_back(addr: &ResourceAddr, attrs: &Value) -> &'static [(&'static str, &'static str)] {
    if is_adopted(addr, attrs) {
        facts(addr.kind).puts_back
    } else {
        &[]
    }
}

// ---- helpers shared by the kinds ----

/// The annotations a kind that lives in Kubernetes puts on its objects, as the `eksnet:` tags
/// on AWS resources: the state's lineage (the ownership test reads it back) and the address.
pub const KUBE_STATE_ANNOTATION: &str = "eksnet.io/state";
pub const KUBE_ADDRESS_ANNOTATION: &str = "eksnet.io/address";

/// Those annotations for one resource's object.
pub fn kube_annotations(ctx: &Ctx, addr: &ResourceAddr) -> BTreeMap<&'static str, String> {
    [
        (KUBE_STATE_ANNOTATION, ctx.lineage.clone()),
        (KUBE_ADDRESS_ANNOTATION, addr.to_string()),
    ]
    .into_iter()
    .collect()
}

/// The objects of a custom resource in each cluster the items name (`cluster_name`), over all
/// namespaces: one LIST per cluster however many items there are, the clusters at once. A
/// cluster that does not exist has none.
pub async fn list_per_cluster(
    ctx: &Ctx,
    items: &[Lookup],
    resource: &kube::discovery::ApiResource,
    operation: &'static str,
) -> Result<std::collections::HashMap<String, Vec<kube::api::DynamicObject>>, ResourceError> {
    let mut clusters: Vec<String> = items
        .iter()
        .filter_map(|i| str_attr(&i.attrs, "cluster_name").map(String::from))
        .collect();
    clusters.sort();
    clusters.dedup();
    let lists = clusters.into_iter().map(|cluster| async move {
        let Some(client) = ctx.kube.client(&ctx.aws, &cluster).await? else {
            return Ok::<_, ResourceError>((cluster, Vec::new()));
        };
        let list = kube::api::Api::<kube::api::DynamicObject>::all_with(client, resource)
            .list(&kube::api::ListParams::default())
            .await
            .map_err(|e| crate::cloud::kube::error(operation, e))?;
        Ok((cluster, list.items))
    });
    Ok(futures::future::try_join_all(lists)
        .await?
        .into_iter()
        .collect())
}

/// A cluster-scoped custom object of a cluster, written with server-side apply (field
/// manager `eksnet`, forced: the spec owns the fields it gives) with eksnet's annotations.
pub async fn apply_cluster_object(
    ctx: &Ctx,
    addr: &ResourceAddr,
    cluster: &str,
    resource: &kube::discovery::ApiResource,
    name: &str,
    spec: Value,
    operation: &'static str,
) -> Result<kube::api::DynamicObject, ResourceError> {
    let client = kube_client(ctx, cluster).await?;
    let object = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": name, "annotations": kube_annotations(ctx, addr)},
        "spec": spec,
    });
    kube::api::Api::<kube::api::DynamicObject>::all_with(client, resource)
        .patch(
            name,
            &kube::api::PatchParams::apply("eksnet").force(),
            &kube::api::Patch::Apply(&object),
        )
        .await
        .map_err(|e| ResourceError::from(crate::cloud::kube::error(operation, e)))
}

/// The refresh of a kind of cluster-scoped custom objects: one LIST per cluster, each item's
/// object (`find_cluster_object`) read back with the kind's `observe`.
pub async fn refresh_cluster_objects(
    ctx: &Ctx,
    items: &[Lookup],
    resource: &kube::discovery::ApiResource,
    operation: &'static str,
    observe: fn(&str, &kube::api::DynamicObject) -> Option<Observed>,
) -> Result<Vec<Option<Observed>>, ResourceError> {
    let by_cluster = list_per_cluster(ctx, items, resource, operation).await?;
    Ok(items
        .iter()
        .map(|i| find_cluster_object(i, &by_cluster).and_then(|(c, o)| observe(&c, o)))
        .collect())
}

/// Deletes the cluster-scoped object `CLUSTER/NAME`; gone already (or its cluster gone) is
/// done.
pub async fn delete_cluster_object(
    ctx: &Ctx,
    kind: Kind,
    cloud_id: &str,
    resource: &kube::discovery::ApiResource,
    operation: &'static str,
) -> Result<(), ResourceError> {
    let Some((cluster, name)) = cloud_id.split_once('/') else {
        return Err(ResourceError::BadCloudId {
            kind,
            id: cloud_id.to_string(),
            expected: "cluster/name",
        });
    };
    let Some(client) = ctx.kube.client(&ctx.aws, cluster).await? else {
        return Ok(());
    };
    let api = kube::api::Api::<kube::api::DynamicObject>::all_with(client, resource);
    delete_object(&api, name, operation).await
}

/// The security groups of a Kubernetes object that defaults them to the cluster security
/// group (an ENIConfig, a NodeClass): the given ones, else `${cluster.X.cluster_security_group_id}`
/// when `cluster_name` is a reference to a cluster of the spec; else an error for `errors`.
pub fn groups_or_cluster_group(
    given: Option<&Vec<String>>,
    cluster_name: &str,
    errors: &mut Vec<(&'static str, String)>,
) -> Vec<String> {
    if let Some(g) = given {
        return g.clone();
    }
    match crate::base::value::whole_reference(cluster_name) {
        Some(r) if r.addr.kind == Kind::Cluster => {
            vec![format!("${{{}.cluster_security_group_id}}", r.addr)]
        }
        _ => {
            errors.push(("security_group_ids", "set `security_group_ids`: they can only default to the cluster security group when `cluster_name` is a reference like \"${cluster.main.name}\"".to_string()));
            Vec::new()
        }
    }
}

/// Deletes a custom resource's object by name; already gone counts as success.
pub async fn delete_object(
    api: &kube::api::Api<kube::api::DynamicObject>,
    name: &str,
    operation: &'static str,
) -> Result<(), ResourceError> {
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if crate::cloud::kube::is_not_found(&e) => Ok(()),
        Err(e) => Err(crate::cloud::kube::error(operation, e).into()),
    }
}

/// The cluster-scoped object an item names (by its cloud id `CLUSTER/NAME`, else by its
/// `cluster_name` and `name`) in the per-cluster lists, with its cluster.
pub fn find_cluster_object<'a>(
    item: &Lookup,
    by_cluster: &'a std::collections::HashMap<String, Vec<kube::api::DynamicObject>>,
) -> Option<(String, &'a kube::api::DynamicObject)> {
    let (cluster, name) = match &item.cloud_id {
        Some(id) => id
            .split_once('/')
            .map(|(c, n)| (c.to_string(), n.to_string()))?,
        None => (
            str_attr(&item.attrs, "cluster_name")?.to_string(),
            str_attr(&item.attrs, "name")?.to_string(),
        ),
    };
    let found = by_cluster
        .get(&cluster)?
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(name.as_str()))?;
    Some((cluster, found))
}

/// A Kubernetes object's name: the spec's `name`, else the table's key when that is a
/// Kubernetes object name itself (`what` names the object in the message).
pub fn object_name(
    name: Option<&String>,
    build: &BuildCtx,
    what: &str,
) -> Result<String, Vec<(&'static str, String)>> {
    match name {
        Some(n) => Ok(n.clone()),
        None if crate::base::kubernetes_names::is_dns_subdomain(build.resource_name) => {
            Ok(build.resource_name.to_string())
        }
        None => Err(vec![(
            "name",
            format!("set `name`: the {what}'s name defaults to the table's key, and `{}` is not a Kubernetes object name (lowercase letters, digits, `-` and `.`)", build.resource_name),
        )]),
    }
}

/// The Kubernetes client of a cluster that must exist (the objects of a kind that lives in
/// it are written there).
pub async fn kube_client(ctx: &Ctx, cluster: &str) -> Result<kube::Client, ResourceError> {
    ctx.kube
        .client(&ctx.aws, cluster)
        .await?
        .ok_or_else(|| ResourceError::NoCluster {
            cluster: cluster.to_string(),
        })
}

pub fn str_attr<'a>(attrs: &'a Value, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Value::as_str)
}

pub fn req_str<'a>(attrs: &'a Value, key: &str) -> Result<&'a str, ResourceError> {
    str_attr(attrs, key).ok_or_else(|| ResourceError::MissingAttribute(key.to_string()))
}

/// The kinds whose resources start nodes: each is ordered like the others (after the pod
/// subnets, its role and cluster, its cluster's CNI settings, ENIConfigs and CNI add-on: see
/// `domain::ordering`), and the add-ons that need nodes come after each. A Karpenter node
/// class and pool start no node themselves, but Karpenter launches one as soon as both exist
/// and a pod waits.
pub const NODE_SOURCES: &[Kind] = &[
    Kind::Nodegroup,
    Kind::SelfManagedNodeGroup,
    Kind::KarpenterNodeClass,
    Kind::KarpenterNodePool,
];

/// The node sources that are groups of a known size with their own max pods (managed and
/// self-managed): sized one by one, and replaced with `--replace` to pick up new settings.
pub const NODE_GROUPS: &[Kind] = &[Kind::Nodegroup, Kind::SelfManagedNodeGroup];

/// The instance types a node source's attributes name: a managed nodegroup's
/// `instance_types`, a self-managed group's one `instance_type`.
pub fn node_instance_types(attrs: &Value) -> Vec<String> {
    match str_attr(attrs, "instance_type") {
        Some(t) => vec![t.to_string()],
        None => str_list(attrs, "instance_types"),
    }
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

/// Tags in IAM's shape (roles, OIDC providers).
pub fn iam_tags(tags: impl IntoIterator<Item = (String, String)>) -> Vec<aws_sdk_iam::types::Tag> {
    tags.into_iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

/// An EC2 Describe filter: a filter by id answers "absent" for an id that is gone, where the
/// ids parameter would fail the whole request.
pub fn ec2_filter(name: &str, values: Vec<String>) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(name)
        .set_values(Some(values))
        .build()
}

/// Tags in EC2's shape.
pub fn ec2_tags(tags: impl IntoIterator<Item = (String, String)>) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.into_iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// Brings an EC2 object's tags (`resource_id`: `subnet-…`, `lt-…`) from `before`'s to
/// `after`'s: one DeleteTags for those removed, one CreateTags for those set, none if equal.
pub async fn update_ec2_tags(
    ctx: &Ctx,
    resource_id: &str,
    before: &Value,
    after: &Value,
) -> Result<(), ResourceError> {
    let (removed, set) = tag_changes(before, after);
    if !removed.is_empty() {
        ctx.aws
            .ec2
            .delete_tags()
            .resources(resource_id)
            .set_tags(Some(
                removed
                    .into_iter()
                    .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| aws_error("DeleteTags", e))?;
    }
    if !set.is_empty() {
        ctx.aws
            .ec2
            .create_tags()
            .resources(resource_id)
            .set_tags(Some(ec2_tags(set)))
            .send()
            .await
            .map_err(|e| aws_error("CreateTags", e))?;
    }
    Ok(())
}

/// A request whose refusal `gone` means the object is gone already (a delete, a
/// disassociation): that refusal counts as done.
pub fn done_if_gone<T>(result: Result<T, ResourceError>, gone: &str) -> Result<(), ResourceError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(gone) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs a delete AWS refuses with `DependencyViolation` while what depends on the object is
/// still going (ENIs the VPC CNI leaves behind, an association being removed): that refusal
/// is retried with backoff until the kind's timeout, each retry reported; the refusal `gone`
/// (the object is gone already) counts as done; any other error stops at once.
pub async fn delete_retrying_dependencies<T, F, Fut>(
    ctx: &Ctx,
    addr: &ResourceAddr,
    gone: &str,
    mut attempt: F,
) -> Result<(), crate::base::retry::Stop<ResourceError, ResourceError>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ResourceError>>,
{
    use crate::base::retry::Step;
    let schedule =
        crate::base::retry::Backoff::dependency_violation(ctx.poll_cap, ctx.timeout(addr.kind));
    crate::base::retry::run(
        &schedule,
        |_| {
            let sent = attempt();
            async move {
                match sent.await {
                    Ok(_) => Step::Done(()),
                    Err(e) if e.code() == Some(gone) => Step::Done(()),
                    Err(e) if e.code() == Some("DependencyViolation") => Step::Retry(e),
                    Err(e) => Step::Fail(e),
                }
            }
        },
        // Only refusals that are retried are reported; the caller words the last one.
        |err: &ResourceError, progress| {
            if progress.retrying {
                ctx.reporter.event(Event::Retrying {
                    addr: addr.clone(),
                    reason: err.to_string(),
                    attempt: progress.attempt,
                });
            }
        },
    )
    .await
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
    use crate::base::retry::{Step, Stop};
    // The schedule (first poll at once, then anchored to when each poll is sent, one last
    // poll at the timeout) is `Backoff::wait`; `crate::base::retry` tests it on the paused clock.
    let schedule = crate::base::retry::Backoff::wait(ctx.poll_cap, timeout);
    let result = crate::base::retry::run(
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

    /// The lookup under both names: the spec's name wins; a `-cbd` object is taken only when
    /// its `eksnet:name` (the observed `name`) is the spec's; an error on the name that
    /// decides is not swallowed.
    #[tokio::test]
    async fn a_replacement_name_is_taken_only_when_its_tag_names_the_spec() {
        let live = |objects: Vec<(&'static str, &'static str)>| {
            move |n: String| {
                let found = objects
                    .iter()
                    .find(|(live, _)| *live == n)
                    .map(|(live, tag)| Observed {
                        cloud_id: live.to_string(),
                        attrs: serde_json::json!({ "name": tag }),
                        outputs: Value::Null,
                        managed_by: None,
                    });
                async move { Ok(found) }
            }
        };
        let id = |r: Result<Option<Observed>, ResourceError>| {
            r.map(|o| o.map(|o| o.cloud_id)).map_err(|e| e.to_string())
        };
        let both = live(vec![("ng", "ng"), ("ng-cbd", "ng")]);
        assert_eq!(
            id(read_name_or_replacement("ng", 63, both).await),
            Ok(Some("ng".into()))
        );
        let replaced = live(vec![("ng-cbd", "ng")]);
        assert_eq!(
            id(read_name_or_replacement("ng", 63, replaced).await),
            Ok(Some("ng-cbd".into()))
        );
        // Someone's own `ng-cbd`, untagged (its observed name is its EKS name).
        let other = live(vec![("ng-cbd", "ng-cbd")]);
        assert_eq!(
            id(read_name_or_replacement("ng", 63, other).await),
            Ok(None)
        );
        let failing = |n: String| async move {
            if n == "ng-cbd" {
                Err(ResourceError::MissingAttribute("read failed".into()))
            } else {
                Ok(None)
            }
        };
        assert!(id(read_name_or_replacement("ng", 63, failing).await).is_err());
    }
    use crate::base::diag::error_chain;
    use crate::cloud::kube::{KubeAccess, KubeConnector};
    use std::sync::Mutex;

    fn ctx(poll_cap: Duration) -> Ctx {
        let conf = aws_types::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-west-2"))
            .build();
        Ctx {
            aws: AwsClients::from_config(&conf),
            reporter: Arc::new(crate::base::events::NullReporter),
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
