//! What AWS, Kubernetes and the VPC CNI document about single fields, checked without a call:
//! the shapes of ids and ARNs (and of what a reference gives, so that a field needing a VPC
//! id does not take a role ARN), region and availability-zone names, tag rules, nodegroup
//! enumerations and ranges, IAM names, paths and trust policies, Kubernetes label syntax, and
//! the types of the VPC CNI's environment variables. Each finding is at its file, line and key
//! and says what is allowed.

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::Diagnostics;
use crate::base::partition::{self, Partition};
pub use crate::base::regions::is_region;
use crate::base::regions::is_zone;
use crate::base::value::{self, is_ref, Reference};
use crate::resources::{self, FieldRules, Shape};
use crate::spec::Spec;
use crate::validate::cfn::{self, AwsType, ParamType, Parameter, Template};
use serde_json::Value;
use std::collections::BTreeMap;

pub fn check(spec: &Spec, d: &mut Diagnostics) {
    let region = spec.settings.region.as_deref();
    if let Some(r) = region {
        if !is_region(r) {
            d.push(spec.error_at(
                "settings.region",
                format!("`{r}` is not an AWS region name (like `us-west-2` or `eu-central-1`)"),
            ));
        }
    }
    for (key, secs) in &spec.settings.timeouts {
        if *secs == 0 {
            d.push(spec.error_at(
                format!("settings.timeouts.{key}"),
                "a timeout of 0 seconds fails every wait at once; give seconds, e.g. 1800",
            ));
        } else if *secs > crate::spec::MAX_TIMEOUT_SECS {
            d.push(spec.error_at(
                format!("settings.timeouts.{key}"),
                format!(
                    "{secs} seconds is more than a week: timeouts are in seconds, not milliseconds"
                ),
            ));
        }
    }
    state_backend(spec, d);
    let mut templates: BTreeMap<ResourceAddr, Template> = BTreeMap::new();
    for (addr, r) in &spec.resources {
        // Made from another block, which is checked itself (a template's tags are its
        // nodegroup's).
        if resources::facts(addr.kind).derived {
            continue;
        }
        let mut f = Fields::new(spec, addr, &r.attrs, d, &mut templates);
        f.tags(&r.attrs, addr.kind);
        resources::check_fields(&r.config, &mut f);
    }
    check_template_references(spec, &templates, d);
}

/// `${vpc.X.subnets.NAME.…}`, `${vpc.X.resources.NAME}` and `${vpc.X.outputs.NAME}` name
/// something the stack's template makes.
fn check_template_references(
    spec: &Spec,
    templates: &BTreeMap<ResourceAddr, Template>,
    d: &mut Diagnostics,
) {
    for (addr, r) in &spec.resources {
        let mut strings = Vec::new();
        value::keyed_strings(&addr.to_string(), &r.attrs, &mut strings);
        for (key, s) in strings {
            for reference in value::references_in_str(s).into_iter().flatten() {
                let Some(t) = templates.get(&reference.addr) else {
                    continue;
                };
                let p: Vec<&str> = reference.path.iter().map(String::as_str).collect();
                let (what, name, known): (&str, &str, Vec<&String>) = match p.as_slice() {
                    ["subnets", name, ..] => (
                        "subnet (an `AWS::EC2::Subnet` resource)",
                        name,
                        t.resources
                            .iter()
                            .filter(|(_, ty)| ty.as_str() == "AWS::EC2::Subnet")
                            .map(|(id, _)| id)
                            .collect(),
                    ),
                    ["resources", name, ..] => ("resource", name, t.resources.keys().collect()),
                    ["outputs", name, ..] => ("output", name, t.outputs.iter().collect()),
                    _ => continue,
                };
                if known.iter().any(|k| k.as_str() == name) {
                    continue;
                }
                let list: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                d.push(spec.error_at(
                    key.clone(),
                    format!(
                        "`{}`: the template of `{}` has no {what} `{name}` ({})",
                        reference.raw,
                        reference.addr,
                        if list.is_empty() {
                            "it has none".to_string()
                        } else {
                            format!("it has {}", list.join(", "))
                        }
                    ),
                ));
            }
        }
    }
}

/// What a field needs, as words, and whether a literal has the shape.
trait ShapeRules {
    fn describe(self) -> &'static str;
    fn accepts(self, s: &str, region: Option<&str>) -> bool;
}

impl ShapeRules for Shape {
    fn describe(self) -> &'static str {
        match self {
            Shape::VpcId => "a VPC id (`vpc-` and 8 or 17 hex digits)",
            Shape::SubnetId => "a subnet id (`subnet-` and 8 or 17 hex digits)",
            Shape::SecurityGroupId => "a security group id (`sg-` and 8 or 17 hex digits)",
            Shape::RoleArn => "an IAM role ARN (`arn:aws:iam::123456789012:role/NAME`)",
            Shape::OidcProviderArn => "an IAM OIDC provider ARN (`arn:aws:iam::123456789012:oidc-provider/ISSUER`, like `…:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE`)",
            Shape::ClusterName => "an EKS cluster name",
            Shape::Zone => "an availability zone name (the region and a letter, like `us-west-2a`)",
            Shape::Ec2Id { what, .. } => what,
            Shape::Other(what) => what,
        }
    }

    fn accepts(self, s: &str, region: Option<&str>) -> bool {
        match self {
            Shape::VpcId => is_aws_id(s, "vpc-"),
            Shape::SubnetId => is_aws_id(s, "subnet-"),
            Shape::SecurityGroupId => is_aws_id(s, "sg-"),
            Shape::RoleArn => is_role_arn(s),
            Shape::OidcProviderArn => is_oidc_provider_arn(s),
            Shape::ClusterName => is_cluster_name(s),
            Shape::Zone => is_zone(s, region),
            Shape::Ec2Id { prefix, .. } => is_aws_id(s, prefix),
            Shape::Other(_) => true,
        }
    }
}

/// `None` when `s` has the shape; otherwise what to add to saying it does not (for a zone of
/// another region, which).
fn shape_problem(shape: Shape, s: &str, region: Option<&str>) -> Option<String> {
    if shape.accepts(s, region) {
        return None;
    }
    Some(match (shape, region) {
        (Shape::Zone, Some(region)) if is_zone(s, None) => {
            format!("; `{s}` is not in the spec's region {region}")
        }
        _ => String::new(),
    })
}

/// Runs `check` with the field rules for one resource (see `ResourceKind::check_shape`).
pub fn with_field_rules(
    spec: &Spec,
    addr: &ResourceAddr,
    attrs: &Value,
    d: &mut Diagnostics,
    check: impl FnOnce(&mut dyn FieldRules),
) {
    let mut templates = BTreeMap::new();
    check(&mut Fields::new(spec, addr, attrs, d, &mut templates));
}

/// What a reference's output is, where its kind says (`KindFacts::output_shapes`).
fn gives(r: &Reference) -> Option<Shape> {
    resources::facts(r.addr.kind)
        .output_shapes
        .iter()
        .find(|(pattern, _)| {
            let pattern: Vec<&str> = pattern.split('.').collect();
            pattern.len() == r.path.len()
                && pattern
                    .iter()
                    .zip(&r.path)
                    .all(|(p, seg)| *p == "*" || p == seg)
        })
        .map(|(_, shape)| *shape)
}

struct Fields<'a, 'd> {
    spec: &'a Spec,
    addr: String,
    region: Option<&'a str>,
    /// The partition ARNs and principals must be in, when the region is known.
    partition: Option<&'static Partition>,
    d: &'d mut Diagnostics,
    resource: &'a ResourceAddr,
    attrs: &'a Value,
    /// Stacks' templates as read, for `check_template_references`.
    templates: &'d mut BTreeMap<ResourceAddr, Template>,
}

/// The rules a kind's `check_fields` applies to its values, each finding at the resource's key.
impl FieldRules for Fields<'_, '_> {
    fn error(&mut self, key: &str, message: String) {
        let at = if key.is_empty() {
            self.addr.clone()
        } else {
            format!("{}.{key}", self.addr)
        };
        self.d.push(self.spec.error_at(at, message));
    }

    fn is_iam_name(&self, name: &str, max: usize) -> bool {
        is_iam_name(name, max)
    }

    fn is_cluster_name(&self, name: &str) -> bool {
        is_cluster_name(name)
    }

    fn warning(&mut self, key: &str, message: String) {
        self.d.push(
            self.spec
                .warning_at(format!("{}.{key}", self.addr), message),
        );
    }

    /// A literal must have the shape; a whole reference must give it. Text mixing a
    /// reference with other text is left to apply time.
    fn shaped(&mut self, key: &str, s: &str, shape: Shape) {
        if let Some(r) = value::whole_reference(s) {
            // A reference to nothing declared is reported as dangling, not also as mistyped.
            let declared = self.spec.resources.contains_key(&r.addr);
            if let Some(got) = gives(&r).filter(|_| declared) {
                if got != shape {
                    self.error(
                        key,
                        format!(
                            "`{key}` needs {}, but `{}` gives {}",
                            shape.describe(),
                            r.raw,
                            got.describe()
                        ),
                    );
                }
            }
            return;
        }
        if is_ref(s) {
            return;
        }
        if let Some(hint) = shape_problem(shape, s, self.region) {
            self.error(
                key,
                format!("`{key}` needs {}, not `{s}`{hint}", shape.describe()),
            );
        } else if matches!(shape, Shape::RoleArn | Shape::OidcProviderArn) {
            self.arn_partition(key, s);
        }
    }

    fn enumerated(&mut self, key: &str, v: Option<&str>, allowed: &[&str]) {
        let Some(v) = v else { return };
        if !allowed.contains(&v) && !is_ref(v) {
            self.error(
                key,
                format!("`{v}` is not one of EKS's values: {}", allowed.join(", ")),
            );
        }
    }

    fn iam_path(&mut self, p: &str) {
        // IAM: `/`, or `/` + segments + `/`, 1–512 characters from `!` to `~`.
        let ok = p.starts_with('/')
            && p.ends_with('/')
            && p.len() <= 512
            && !p.contains("//")
            && p.chars().all(|c| ('!'..='~').contains(&c));
        if !ok {
            self.error("path", format!("IAM path `{p}` must be `/` or start and end with `/` (like `/eks/`), at most 512 printable ASCII characters, no empty segment"));
        }
    }

    fn policy(&mut self, key: &str, p: &str) {
        if p.trim().is_empty() || is_ref(p) {
            return;
        }
        let ok = if let Some(rest) = p.strip_prefix("arn:") {
            // arn:PARTITION:iam::(aws|ACCOUNT):policy/[PATH/]NAME
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            matches!(parts.as_slice(), [partition, "iam", "", account, resource]
            if is_partition(partition)
                && (*account == "aws" || is_account(account))
                && resource.strip_prefix("policy/").is_some_and(|n| {
                    n.rsplit('/').next().is_some_and(is_iam_name_128)
                }))
        } else {
            // A managed policy's name, with its path if it has one
            // (`service-role/AmazonEBSCSIDriverPolicy`).
            p.rsplit('/').next().is_some_and(is_iam_name_128)
                && p.split('/').all(|seg| !seg.is_empty())
        };
        if !ok {
            self.error(key, format!("`{p}` is neither an AWS managed policy name (like `AmazonEKSClusterPolicy`) nor a policy ARN (`arn:aws:iam::ACCOUNT:policy/NAME`)"));
        } else if p.starts_with("arn:") {
            self.arn_partition(key, p);
        }
    }

    fn partition(&self) -> Option<&'static Partition> {
        self.partition
    }

    fn service_principal(&mut self, key: &str, principal: &str) {
        if is_ref(principal) {
            return;
        }
        if !partition::is_service_principal(principal) {
            let suffix = self.partition.unwrap_or(Partition::commercial()).dns_suffix;
            self.error(
                key,
                format!("`{principal}` is not a service principal: a service's name and `.{suffix}`, like `eks.amazonaws.com` or `ec2.{suffix}`"),
            );
            return;
        }
        let Some(here) = self.partition else { return };
        if let Some(other) = partition::principal_partition(principal).filter(|o| *o != here) {
            self.error(
                key,
                format!(
                    "`{principal}` is a service principal of the `{}` partition, but the spec's region is in `{}`; {}",
                    other.id,
                    here.id,
                    principal_hint(principal, here)
                ),
            );
        } else if principal == "ec2.amazonaws.com" && here.ec2_principal() != principal {
            // eksctl writes the partition's own form and IAM in China once refused the
            // global one ("Invalid principal in policy"); whether it still does is not
            // documented: a warning.
            self.warning(
                key,
                format!(
                    "in the `{}` partition EC2's service principal is `{}`; IAM may refuse `ec2.amazonaws.com` there (\"Invalid principal in policy\")",
                    here.id,
                    here.ec2_principal()
                ),
            );
        }
    }

    /// A trust policy is an IAM policy document: `Version`, `Statement`, and in each
    /// statement `Effect`, `Principal` and an `sts:` action.
    fn trust_policy(&mut self, text: &str) {
        if is_ref(text) {
            return;
        }
        // Invalid JSON is reported where the attributes are built.
        let Ok(doc) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let key = "assume_role_policy";
        let Some(doc) = doc.as_object() else {
            self.error(
                key,
                "a trust policy is a JSON object with `Version` and `Statement`".into(),
            );
            return;
        };
        match doc.get("Version").and_then(Value::as_str) {
            Some("2012-10-17" | "2008-10-17") => {}
            Some(v) => self.error(
                key,
                format!("policy `Version` must be \"2012-10-17\", not `{v}`"),
            ),
            // IAM reads it as the old 2008-10-17 language, without policy variables.
            None => self.warning(
                key,
                "the trust policy has no `Version`: IAM reads it as \"2008-10-17\"; write \"Version\": \"2012-10-17\"".into(),
            ),
        }
        let statements: Vec<&Value> = match doc.get("Statement") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(s @ Value::Object(_)) => vec![s],
            _ => {
                self.error(
                    key,
                    "the trust policy has no `Statement` (an object or a list of them)".into(),
                );
                return;
            }
        };
        if statements.is_empty() {
            self.error(key, "the trust policy's `Statement` is empty".into());
        }
        for (i, s) in statements.iter().enumerate() {
            let n = i + 1;
            match s.get("Effect").and_then(Value::as_str) {
                Some("Allow" | "Deny") => {}
                other => self.error(
                    key,
                    format!(
                        "statement {n}: `Effect` must be \"Allow\" or \"Deny\", not {}",
                        other.map_or("missing".to_string(), |e| format!("`{e}`"))
                    ),
                ),
            }
            match s.get("Principal") {
                None => self.error(key, format!("statement {n}: a trust policy statement needs a `Principal` (who may assume the role, e.g. {{\"Service\": \"eks.amazonaws.com\"}})")),
                Some(Value::Object(p)) => {
                    let strings = |v: &Value| -> Vec<String> {
                        match v {
                            Value::String(s) => vec![s.clone()],
                            Value::Array(a) => {
                                a.iter().filter_map(|s| s.as_str().map(String::from)).collect()
                            }
                            _ => Vec::new(),
                        }
                    };
                    for svc in p.get("Service").map(strings).unwrap_or_default() {
                        self.service_principal(key, &svc);
                    }
                    // Accounts, roles, users and identity providers, by ARN.
                    for who in ["AWS", "Federated"] {
                        for arn in p.get(who).map(strings).unwrap_or_default() {
                            if arn.starts_with("arn:") {
                                self.arn_partition(key, &arn);
                            }
                        }
                    }
                }
                // `"*"`, or another form IAM itself judges.
                Some(_) => {}
            }
            let actions: Vec<&str> = match s.get("Action") {
                Some(Value::String(a)) => vec![a.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if actions.is_empty() {
                self.error(key, format!("statement {n}: no `Action` (a trust policy allows `sts:AssumeRole` or another `sts:` action)"));
            } else if let Some(bad) = actions
                .iter()
                .find(|a| !a.to_ascii_lowercase().starts_with("sts:") && **a != "*")
            {
                self.error(key, format!("statement {n}: `{bad}` is not an action of a trust policy, which only takes `sts:` actions (`sts:AssumeRole`, `sts:TagSession`, …)"));
            }
        }
    }

    /// A Kubernetes label (or annotation) key, and for a label its value.
    fn label(&mut self, key: &str, k: &str, v: Option<&str>) {
        if is_ref(k) {
            return;
        }
        if let Err(why) = label_key(k) {
            self.error(key, format!("`{k}` is not a Kubernetes label key: {why}"));
        }
        if let Some(v) = v.filter(|v| !is_ref(v)) {
            if !(v.is_empty() || (v.len() <= 63 && is_label_name(v))) {
                self.error(key, format!("`{v}` is not a Kubernetes label value: at most 63 characters, letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit (or empty)"));
            }
        }
    }

    fn kubernetes_name(&mut self, key: &str, name: &str, label: bool) {
        use crate::base::kubernetes_names::{is_dns_label, is_dns_subdomain};
        if is_ref(name) {
            return;
        }
        if label && !is_dns_label(name) {
            self.error(key, format!("`{name}` is not a Kubernetes namespace name: at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit"));
        } else if !label && !is_dns_subdomain(name) {
            self.error(key, format!("`{name}` is not a Kubernetes object name: at most 253 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit"));
        }
    }

    /// The types the VPC CNI parses its environment variables as (its README): a value it
    /// cannot parse makes `aws-node` fail on every node, or is silently taken as the default.
    fn cni_env(&mut self, key: &str, name: &str, v: &str) {
        if is_ref(v) {
            return;
        }
        let problem = match cni_type(name) {
            Some(CniType::Bool) if !is_go_bool(v) => {
                Some("a boolean (\"true\" or \"false\")".to_string())
            }
            Some(CniType::Int { min, max })
                if !v.parse::<i64>().is_ok_and(|n| n >= min && n <= max) =>
            {
                Some(if max == i64::MAX {
                    format!("an integer ≥ {min}")
                } else {
                    format!("an integer from {min} to {max}")
                })
            }
            Some(CniType::OneOf(values)) if !values.iter().any(|x| x.eq_ignore_ascii_case(v)) => {
                Some(format!("one of {}", values.join(", ")))
            }
            Some(CniType::VethPrefix)
                if !(1..=4).contains(&v.len())
                    || ["eth", "vlan", "lo"].contains(&v)
                    || !v.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Some("1 to 4 letters or digits, not `eth`, `vlan` or `lo`".to_string())
            }
            _ => None,
        };
        if let Some(want) = problem {
            self.error(
                key,
                format!("`{name}` must be {want} for the VPC CNI, not `{v}`"),
            );
        }
    }

    /// Combinations the VPC CNI documents as having no effect or not working.
    fn cni_combinations(&mut self, key: &str, env: &[(String, String)]) {
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let on = |n: &str| {
            get(n).is_some_and(|v| matches!(v, "true" | "1" | "t" | "T" | "TRUE" | "True"))
        };
        if on("ENABLE_PREFIX_DELEGATION")
            && get("WARM_PREFIX_TARGET").is_some()
            && (get("WARM_IP_TARGET").is_some() || get("MINIMUM_IP_TARGET").is_some())
        {
            self.warning(key, "with prefix delegation, WARM_IP_TARGET or MINIMUM_IP_TARGET take precedence and WARM_PREFIX_TARGET is ignored (VPC CNI README): set one or the other".into());
        }
        if !on("ENABLE_PREFIX_DELEGATION") && get("WARM_PREFIX_TARGET").is_some() {
            self.warning(key, "WARM_PREFIX_TARGET only applies with ENABLE_PREFIX_DELEGATION=true; without it the CNI ignores it".into());
        }
        if get("WARM_ENI_TARGET") == Some("0")
            && get("WARM_IP_TARGET").is_none()
            && get("MINIMUM_IP_TARGET").is_none()
            && !on("ENABLE_PREFIX_DELEGATION")
        {
            // Valid (some Multus set-ups use it) but slow: a warning, not an error.
            self.warning(key, "WARM_ENI_TARGET=0 with neither WARM_IP_TARGET nor MINIMUM_IP_TARGET leaves the CNI no warm pool at all; pods wait for each ENI attachment (VPC CNI README); set WARM_IP_TARGET or MINIMUM_IP_TARGET".into());
        }
        if on("ENABLE_IPv6") && on("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG") {
            self.error(key, "custom networking does not work with IPv6 (ENABLE_IPv6=true): the VPC CNI supports custom networking on IPv4 clusters only".into());
        }
    }

    fn instance_type(&mut self, key: &str, t: &str) {
        if !is_instance_type(t) && !is_ref(t) {
            self.error(key, format!("`{t}` is not an EC2 instance type name (family.size, like `t3.medium` or `m7i-flex.large`)"));
        }
    }

    fn stack_template(&mut self, file: &str, parameters: &BTreeMap<String, String>) {
        let Some(body) = self.attrs.get(value::TEMPLATE_BODY).and_then(Value::as_str) else {
            return;
        };
        match cfn::parse(body) {
            Err(e) => self.error(
                "template_file",
                format!("`{file}` is not a CloudFormation template: {e}"),
            ),
            Ok(t) => {
                for (name, what) in &t.problems {
                    self.error(
                        "template_file",
                        format!("`{file}`'s parameter `{name}` {what}"),
                    );
                }
                for (name, what) in &t.notes {
                    self.warning(
                        "template_file",
                        format!("`{file}`'s parameter `{name}` {what}"),
                    );
                }
                self.stack_parameters(file, parameters, &t);
                self.templates.insert(self.resource.clone(), t);
            }
        }
    }
}

impl<'a, 'd> Fields<'a, 'd> {
    /// An ARN's partition is the spec's region's (`arn:aws-cn:` in China), when that is known.
    fn arn_partition(&mut self, key: &str, arn: &str) {
        let (Some(here), Some(given)) = (self.partition, partition::arn_partition(arn)) else {
            return;
        };
        if given != here.id {
            let fixed = format!(
                "arn:{}:{}",
                here.id,
                arn.splitn(3, ':').nth(2).unwrap_or_default()
            );
            self.error(
                key,
                format!(
                    "`{arn}` is an ARN of the `{given}` partition, but the spec's region is in `{}`: {}",
                    here.id,
                    if Partition::by_id(given).is_some() {
                        format!("did you mean `{fixed}`?")
                    } else {
                        format!("`{given}` is not a partition")
                    }
                ),
            );
        }
    }

    /// The rules for one resource; findings go to `d`, stacks' templates to `templates`.
    fn new(
        spec: &'a Spec,
        resource: &'a ResourceAddr,
        attrs: &'a Value,
        d: &'d mut Diagnostics,
        templates: &'d mut BTreeMap<ResourceAddr, Template>,
    ) -> Self {
        Fields {
            spec,
            addr: resource.to_string(),
            region: spec.settings.region.as_deref().filter(|r| is_region(r)),
            partition: spec.partition,
            d,
            resource,
            attrs,
            templates,
        }
    }

    /// Every parameter the spec passes is declared by the template, of its type's shape and
    /// within its constraints; every parameter without a default is passed; a default that
    /// is used meets its own parameter's constraints.
    fn stack_parameters(&mut self, file: &str, given: &BTreeMap<String, String>, t: &Template) {
        for (name, v) in given {
            match t.parameters.get(name) {
                None => {
                    let declared: Vec<&str> = t.parameters.keys().map(String::as_str).collect();
                    self.error(
                        &format!("parameters.{name}"),
                        format!(
                            "`{file}` declares no parameter `{name}` (it declares {})",
                            if declared.is_empty() {
                                "none".to_string()
                            } else {
                                declared.join(", ")
                            }
                        ),
                    );
                }
                Some(p) => {
                    for m in parameter_value(file, name, p, v, self.region) {
                        self.error(&format!("parameters.{name}"), m);
                    }
                }
            }
        }
        for (name, p) in &t.parameters {
            if !p.has_default && !given.contains_key(name) {
                self.error(
                    "parameters",
                    format!(
                        "`{file}`'s parameter `{name}` has no default: give it in `parameters`"
                    ),
                );
            }
            // CloudFormation: "If you define constraints for the parameter, you must specify
            // a value that adheres to those constraints." An error where the default is the
            // value the stack gets; a warning where `parameters` replaces it.
            let Some(default) = &p.default else { continue };
            for m in parameter_value(file, name, p, default, self.region) {
                let m = format!("the `Default` of `{name}` does not meet the parameter's own constraints, which CloudFormation requires of a default: {m}");
                if given.contains_key(name) {
                    self.warning(
                        "template_file",
                        format!("{m} (not used here: `parameters` gives `{name}`)"),
                    );
                } else {
                    self.error("template_file", m);
                }
            }
        }
    }

    /// AWS's tag rules: the `aws:` prefix is AWS's own; keys 1–128 and values 0–256
    /// characters; at most 50 tags a resource, of which eksnet adds 2 (`eksnet:state`,
    /// `eksnet:address`); for IAM and EKS only letters, digits, spaces and `_.:/=+-@`.
    fn tags(&mut self, attrs: &Value, kind: Kind) {
        let Some(tags) = attrs.get("tags").and_then(Value::as_object) else {
            return;
        };
        const OWN: usize = 2;
        if tags.len() > 50 - OWN {
            self.error(
                "tags",
                format!(
                    "{} tags: AWS allows 50 a resource and eksnet adds {OWN} of its own (eksnet:state, eksnet:address), so at most {}",
                    tags.len(),
                    50 - OWN
                ),
            );
        }
        let restricted = resources::facts(kind).restricted_tags;
        let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
        for (k, v) in tags {
            let v = v.as_str().unwrap_or_default();
            if k.to_ascii_lowercase().starts_with("aws:") {
                self.error(
                    "tags",
                    format!("tag key `{k}`: the `aws:` prefix is reserved for AWS"),
                );
            }
            if k.is_empty() || k.chars().count() > 128 {
                self.error(
                    "tags",
                    format!("tag key `{k}`: a tag key is 1 to 128 characters"),
                );
            }
            if v.chars().count() > 256 {
                self.error(
                    "tags",
                    format!("tag `{k}`: a tag value is at most 256 characters"),
                );
            }
            if let Some(service) = restricted {
                let bad: Vec<char> = k
                    .chars()
                    .chain(v.chars())
                    .filter(|c| !allowed(*c))
                    .collect();
                if !bad.is_empty() && !is_ref(v) {
                    self.error(
                        "tags",
                        format!(
                            "tag `{k}`: {} tags take only letters, digits, spaces and `_ . : / = + - @`, not {}",
                            service,
                            bad.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" ")
                        ),
                    );
                }
            }
        }
    }
}

/// What to write instead of a principal of another partition.
fn principal_hint(principal: &str, here: &Partition) -> String {
    let service = partition::PARTITIONS
        .iter()
        .find_map(|p| principal.strip_suffix(&format!(".{}", p.dns_suffix)))
        .unwrap_or(principal);
    if service == "ec2" {
        format!("write `{}`", here.ec2_principal())
    } else {
        format!(
            "write `{service}.amazonaws.com` (or the service's own name in `{}`)",
            here.id
        )
    }
}

/// What CloudFormation would refuse in `value` for the parameter `name` of `file`, one
/// sentence each: the shape its `Type` gives where the shape is certain (a number, a VPC,
/// subnet, security group, AMI, instance or volume id, an availability zone; not whether it
/// exists, which only AWS can tell), then `AllowedValues`, `AllowedPattern` and
/// `MinLength`/`MaxLength` (strings), `MinValue`/`MaxValue` (numbers). A list is checked
/// element by element. A value with a reference is left for apply time; a Parameter Store
/// key (`AWS::SSM::Parameter::Value<…>`) is resolved by CloudFormation, which checks what
/// it holds.
fn parameter_value(
    file: &str,
    name: &str,
    p: &Parameter,
    value: &str,
    region: Option<&str>,
) -> Vec<String> {
    let Some(ty) = p.ty else { return Vec::new() };
    if is_ref(value) || ty == ParamType::SsmValue {
        return Vec::new();
    }
    let mut out = Vec::new();
    let said = p
        .constraint_description
        .as_deref()
        .map(|c| format!("; `{file}` says: {c}"))
        .unwrap_or_default();
    // The whole value, or each element of a list (none in an empty list), with how a
    // message names it.
    let items: Vec<(&str, String)> = if !ty.is_list() {
        vec![(value, format!("`{value}`"))]
    } else if value.trim().is_empty() {
        Vec::new()
    } else {
        cfn::elements(value)
            .into_iter()
            .map(|e| (e, format!("`{e}` (in `{value}`)")))
            .collect()
    };
    // A value not of its type's shape is not also compared with the allowed values.
    let mut misshapen = false;
    for (item, subject) in &items {
        match ty {
            ParamType::Number | ParamType::NumberList => {
                let Some(n) = cfn::number(item) else {
                    out.push(format!(
                        "{subject} is not a number, and `{file}` declares `{name}` as `{}`",
                        p.type_name
                    ));
                    misshapen = true;
                    continue;
                };
                if let Some(min) = p.min_value.filter(|min| n < *min) {
                    out.push(format!("{subject} is less than the `MinValue` {min} that `{file}` sets for `{name}`{said}"));
                }
                if let Some(max) = p.max_value.filter(|max| n > *max) {
                    out.push(format!("{subject} is more than the `MaxValue` {max} that `{file}` sets for `{name}`{said}"));
                }
            }
            ParamType::Aws { kind, .. } => {
                if let Some(needs) = aws_parameter_shape(kind, item, region) {
                    out.push(format!(
                        "{subject} is not {needs}, and `{file}` declares `{name}` as `{}`",
                        p.type_name
                    ));
                    misshapen = true;
                    continue;
                }
            }
            _ => {}
        }
        if matches!(ty, ParamType::String | ParamType::StringList) {
            if let Some(pattern) = &p.allowed_pattern {
                if pattern.matches(item) == Some(false) {
                    out.push(format!(
                        "{subject} does not match the `AllowedPattern` `{}` that `{file}` sets for `{name}` (the whole value must match){said}",
                        pattern.source
                    ));
                }
            }
        }
        if ty == ParamType::String {
            // Counted as Java counts (UTF-16 units) or as characters, whichever is kinder:
            // the two differ only beyond the Basic Multilingual Plane.
            let (units, chars) = (item.encode_utf16().count(), item.chars().count());
            if let Some(min) = p.min_length.filter(|min| (units as u64) < *min) {
                out.push(format!("{subject} is {units} characters long, shorter than the `MinLength` {min} that `{file}` sets for `{name}`{said}"));
            }
            if let Some(max) = p.max_length.filter(|max| (chars as u64) > *max) {
                out.push(format!("{subject} is {chars} characters long, longer than the `MaxLength` {max} that `{file}` sets for `{name}`{said}"));
            }
        }
    }
    if let Some(allowed) = p.allowed_values.as_ref().filter(|_| !misshapen) {
        let numeric = matches!(ty, ParamType::Number | ParamType::NumberList);
        let ok = |s: &str| {
            allowed.iter().any(|a| {
                a == s || (numeric && cfn::number(a).is_some_and(|a| Some(a) == cfn::number(s)))
            })
        };
        // A list's elements each (CloudFormation documents this for `CommaDelimitedList`);
        // a list written as one of the allowed values is let through.
        let refused: Vec<&String> = if ok(value) {
            Vec::new()
        } else if ty.is_list() {
            items
                .iter()
                .filter(|(item, _)| !ok(item))
                .map(|(_, subject)| subject)
                .collect()
        } else {
            items.iter().map(|(_, subject)| subject).collect()
        };
        for subject in refused {
            out.push(format!(
                "{subject} is not one of the values `{file}` allows for `{name}`: {}{said}",
                allowed.join(", ")
            ));
        }
    }
    out
}

/// What a value of an AWS-specific parameter type must look like, where the shape is
/// certain; `None` when it has it, or when only AWS can tell (a key pair or security group
/// name, a hosted zone id).
fn aws_parameter_shape(kind: AwsType, s: &str, region: Option<&str>) -> Option<String> {
    let shaped = |shape: Shape| {
        shape_problem(shape, s, region).map(|hint| format!("{}{hint}", shape.describe()))
    };
    let id = |prefix: &str, what: &str| {
        (!is_aws_id(s, prefix)).then(|| format!("{what} (`{prefix}` and 8 or 17 hex digits)"))
    };
    match kind {
        AwsType::VpcId => shaped(Shape::VpcId),
        AwsType::SubnetId => shaped(Shape::SubnetId),
        AwsType::SecurityGroupId => shaped(Shape::SecurityGroupId),
        AwsType::AvailabilityZoneName => shaped(Shape::Zone),
        AwsType::ImageId => id("ami-", "an AMI id"),
        AwsType::InstanceId => id("i-", "an instance id"),
        AwsType::VolumeId => id("vol-", "an EBS volume id"),
        AwsType::KeyPairName | AwsType::SecurityGroupName | AwsType::HostedZoneId => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum CniType {
    Bool,
    Int { min: i64, max: i64 },
    OneOf(&'static [&'static str]),
    VethPrefix,
}

fn cni_type(name: &str) -> Option<CniType> {
    use CniType::*;
    const ANY: i64 = i64::MAX;
    Some(match name {
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"
        | "AWS_VPC_K8S_CNI_EXTERNALSNAT"
        | "AWS_VPC_CNI_NODE_PORT_SUPPORT"
        | "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER"
        | "AWS_MANAGE_ENIS_NON_SCHEDULABLE"
        | "ENABLE_PREFIX_DELEGATION"
        | "ENABLE_POD_ENI"
        | "ENABLE_IPv4"
        | "ENABLE_IPv6"
        | "ENABLE_BANDWIDTH_PLUGIN"
        | "ENABLE_SUBNET_DISCOVERY"
        | "ENABLE_NFTABLES"
        | "ENABLE_V4_EGRESS"
        | "ENABLE_V6_EGRESS"
        | "ANNOTATE_POD_IP"
        | "DISABLE_INTROSPECTION"
        | "DISABLE_METRICS"
        | "DISABLE_NETWORK_RESOURCE_PROVISIONING"
        | "DISABLE_LEAKED_ENI_CLEANUP"
        | "DISABLE_TCP_EARLY_DEMUX"
        | "DISABLE_POD_V6"
        | "AWS_VPC_K8S_CNI_DISABLE_NETWORK_POLICY" => Bool,
        "WARM_ENI_TARGET" | "WARM_IP_TARGET" | "MINIMUM_IP_TARGET" | "WARM_PREFIX_TARGET" => {
            Int { min: 0, max: ANY }
        }
        "MAX_ENI" => Int { min: -1, max: ANY },
        "IP_COOLDOWN_PERIOD" => Int { min: 0, max: ANY },
        "AWS_VPC_ENI_MTU" => Int {
            min: 576,
            max: 9001,
        },
        "AWS_VPC_K8S_CNI_LOGLEVEL" | "AWS_VPC_K8S_PLUGIN_LOG_LEVEL" => {
            OneOf(&["DEBUG", "INFO", "WARN", "ERROR", "FATAL"])
        }
        "AWS_VPC_K8S_CNI_RANDOMIZESNAT" => OneOf(&["none", "hashrandom", "prng"]),
        "POD_SECURITY_GROUP_ENFORCING_MODE" => OneOf(&["strict", "standard"]),
        "NETWORK_POLICY_ENFORCING_MODE" => OneOf(&["standard", "strict"]),
        "AWS_VPC_K8S_CNI_VETHPREFIX" => VethPrefix,
        _ => return None,
    })
}

/// What Go's `strconv.ParseBool` accepts (the CNI parses its booleans with it).
fn is_go_bool(v: &str) -> bool {
    matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

fn is_partition(p: &str) -> bool {
    matches!(
        p,
        "aws"
            | "aws-cn"
            | "aws-us-gov"
            | "aws-iso"
            | "aws-iso-b"
            | "aws-iso-e"
            | "aws-iso-f"
            | "aws-eusc"
    )
}

fn is_account(a: &str) -> bool {
    a.len() == 12 && a.chars().all(|c| c.is_ascii_digit())
}

pub(crate) fn is_iam_name(n: &str, max: usize) -> bool {
    !n.is_empty()
        && n.len() <= max
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn is_iam_name_128(n: &str) -> bool {
    is_iam_name(n, 128)
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
fn is_role_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:") else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, "iam", "", account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(path_name) = resource.strip_prefix("role/") else {
        return false;
    };
    let name = path_name.rsplit('/').next().unwrap_or_default();
    is_partition(partition) && is_account(account) && is_iam_name(name, 64)
}

/// `arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST[/PATH]`: IAM names a provider by its URL
/// without `https://` (IAM API, CreateOpenIDConnectProvider).
fn is_oidc_provider_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:") else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, "iam", "", account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(issuer) = resource.strip_prefix("oidc-provider/") else {
        return false;
    };
    let host = issuer.split('/').next().unwrap_or_default();
    is_partition(partition)
        && is_account(account)
        && !host.is_empty()
        && !issuer.contains("//")
        && !issuer.ends_with('/')
        && issuer.chars().all(|c| c.is_ascii_graphic())
}

pub(crate) fn is_cluster_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 100
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `[state]`: the bucket and key as S3 accepts them, a region name, a workable lease.
fn state_backend(spec: &Spec, d: &mut Diagnostics) {
    let Some(crate::spec::StateConfig::S3 {
        bucket,
        key,
        region,
        lease_seconds,
        ..
    }) = &spec.state
    else {
        return;
    };
    if let Some(e) = s3_bucket_name(bucket) {
        d.push(spec.error_at("state.bucket", e));
    }
    if let Some(e) = s3_state_key(key) {
        d.push(spec.error_at("state.key", e));
    }
    if let Some(r) = region.as_deref().filter(|r| !is_region(r)) {
        d.push(spec.error_at(
            "state.region",
            format!("`{r}` is not an AWS region name (like `us-west-2` or `eu-central-1`)"),
        ));
    }
    let allowed = crate::spec::LEASE_SECONDS;
    if let Some(l) = lease_seconds.filter(|l| !allowed.contains(l)) {
        d.push(spec.error_at(
            "state.lease_seconds",
            format!(
                "a lock lease of {l} s: give {} to {} seconds (default 60); the holder renews it every quarter of it",
                allowed.start(),
                allowed.end()
            ),
        ));
    }
}

/// S3's rules for a general purpose bucket name; `None` when it is one.
pub fn s3_bucket_name(b: &str) -> Option<String> {
    let ok_chars = b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends_ok = b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    let ip_like = b.split('.').count() == 4 && b.split('.').all(|p| p.parse::<u8>().is_ok());
    if !(3..=63).contains(&b.len()) || !ok_chars || !ends_ok || b.contains("..") || ip_like {
        return Some(format!(
            "`{b}` is not an S3 bucket name: 3-63 characters, lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, not shaped like an IP address"
        ));
    }
    // S3 user guide, "General purpose bucket naming rules": prefixes and suffixes S3 keeps
    // for its own names (`sthree-` covers `sthree-configurator`).
    const PREFIXES: &[(&str, &str)] = &[
        ("xn--", "internationalized (punycode) names"),
        ("sthree-", "S3 itself"),
        ("amzn-s3-demo-", "AWS's documentation examples"),
    ];
    const SUFFIXES: &[(&str, &str)] = &[
        ("-s3alias", "access point aliases"),
        ("--ol-s3", "Object Lambda access point aliases"),
        (".mrap", "Multi-Region Access Points"),
        ("--x-s3", "directory buckets"),
        ("--table-s3", "S3 table buckets"),
    ];
    if let Some((p, what)) = PREFIXES.iter().find(|(p, _)| b.starts_with(p)) {
        return Some(format!(
            "`{b}` is not an S3 bucket name S3 accepts: the prefix `{p}` is reserved (for {what}); choose another name"
        ));
    }
    if let Some((x, what)) = SUFFIXES.iter().find(|(x, _)| b.ends_with(x)) {
        return Some(format!(
            "`{b}` is not an S3 bucket name S3 accepts: the suffix `{x}` is reserved (for {what}); choose another name"
        ));
    }
    if let Some(rest) = b.strip_suffix("-an") {
        // Only an account regional namespace bucket ends in `-an`:
        // `PREFIX-ACCOUNT-REGION-an`, e.g. `state-111122223333-us-west-2-an`.
        let account_regional = (1..rest.len()).any(|i| {
            rest.is_char_boundary(i)
                && rest[..i].ends_with('-')
                && rest[..i - 1]
                    .rsplit_once('-')
                    .is_some_and(|(prefix, account)| !prefix.is_empty() && is_account(account))
                && is_region(&rest[i..])
        });
        if !account_regional {
            return Some(format!("`{b}` is not an S3 bucket name S3 accepts: only a bucket in an account regional namespace ends in `-an` (`PREFIX-ACCOUNT-REGION-an`, like `state-111122223333-us-west-2-an`); choose another name"));
        }
    }
    None
}

/// An object key for the state: not empty, at most 1,024 bytes (S3's limit, less the
/// `.lock` suffix of the lock beside it), not a "folder".
pub fn s3_state_key(k: &str) -> Option<String> {
    if k.is_empty() || k.ends_with('/') {
        return Some(format!(
            "`{k}` is not a state object key: name the object, e.g. `eksnet/prod.json`"
        ));
    }
    if k.len() > 1024 - ".lock".len() {
        return Some(format!(
            "the key is {} bytes; S3 keys are at most 1,024 (with `.lock` added for the lock)",
            k.len()
        ));
    }
    None
}

fn is_instance_type(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else {
        return false;
    };
    !family.is_empty()
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !size.is_empty()
        && size.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && size
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A label name: at most 63 characters, alphanumerics, `-`, `_`, `.`, alphanumeric at both
/// ends.
fn is_label_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `[PREFIX/]NAME`, the prefix a DNS subdomain of at most 253 characters.
fn label_key(k: &str) -> Result<(), &'static str> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let dns = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        if !dns {
            return Err("the prefix before `/` must be a DNS subdomain (lowercase letters, digits, `-` and `.`, at most 253 characters)");
        }
    }
    if !is_label_name(name) {
        return Err("the name must be 1–63 characters, letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_accept_what_aws_makes_and_refuse_the_rest() {
        assert!(is_aws_id("vpc-0123abcd", "vpc-"));
        assert!(is_aws_id("subnet-0123456789abcdef0", "subnet-"));
        assert!(!is_aws_id("vpc-0123ABCD", "vpc-"));
        assert!(!is_aws_id("vpc-123", "vpc-"));
        assert!(!is_aws_id("subnet-0123456789abcdef0", "vpc-"));
        assert!(is_role_arn("arn:aws:iam::123456789012:role/eks/MyRole"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/r"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:policy/r"));
        assert!(!is_role_arn("arn:aws:iam::12345:role/r"));
        assert!(!is_role_arn("MyRole"));
        for r in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-5",
            "cn-north-1",
            "eusc-de-east-1",
        ] {
            assert!(is_region(r), "{r}");
        }
        for r in ["us-west", "uswest2", "US-WEST-2", "us-west-0", "us-west-2a"] {
            assert!(!is_region(r), "{r}");
        }
        assert!(is_zone("us-west-2a", Some("us-west-2")));
        assert!(is_zone("us-west-2-lax-1a", Some("us-west-2")));
        assert!(is_zone("us-east-1-wl1-bos-wlz-1", Some("us-east-1")));
        assert!(!is_zone("us-east-1-wl1-bos-wlz-1", Some("us-west-2")));
        assert!(!is_zone("us-east-1a", Some("us-west-2")));
        assert!(is_zone("us-east-1a", None));
        assert!(!is_zone("us-west-2", None));
        assert!(!is_zone("usw2-az1", None));
        for t in [
            "t3.medium",
            "m7i-flex.large",
            "u-6tb1.metal",
            "c6gn.16xlarge",
            "m7i.metal-24xl",
        ] {
            assert!(is_instance_type(t), "{t}");
        }
        for t in ["t3", "T3.medium", "t3.", ".large", "t3 medium"] {
            assert!(!is_instance_type(t), "{t}");
        }
    }

    #[test]
    fn s3_reserved_prefixes_and_suffixes() {
        for bad in [
            "xn--state",
            "sthree-state",
            "sthree-configurator-x",
            "amzn-s3-demo-bucket",
            "state-s3alias",
            "state--ol-s3",
            "state.mrap",
            "state--x-s3",
            "state--table-s3",
            "state-an",
            "state-12345-us-west-2-an",
        ] {
            assert!(s3_bucket_name(bad).is_some(), "{bad}");
        }
        for good in [
            "eksnet-state",
            "xn-state",
            "my.state.bucket",
            "state-111122223333-us-west-2-an",
            "team-state-111122223333-eu-central-1-an",
            "anan",
        ] {
            assert_eq!(s3_bucket_name(good), None, "{good}");
        }
    }

    #[test]
    fn kubernetes_label_syntax() {
        assert!(label_key("topology.kubernetes.io/zone").is_ok());
        assert!(label_key("k8s-app").is_ok());
        assert!(label_key("Team_A.b").is_ok());
        assert!(label_key("-bad").is_err());
        assert!(label_key("Upper.Case/x").is_err());
        assert!(label_key("a/").is_err());
        assert!(label_key(&"x".repeat(64)).is_err());
        assert!(is_label_name("us-west-2a"));
        assert!(!is_label_name("a b"));
    }

    /// The findings for `value` given to parameter `P` declared as `decl` (YAML flow map).
    fn param(decl: &str, value: &str) -> Vec<String> {
        let t =
            cfn::parse(&format!("Parameters:\n  P: {decl}\nResources: {{}}\n")).expect("template");
        parameter_value("t.yaml", "P", &t.parameters["P"], value, Some("us-west-2"))
    }

    #[test]
    fn parameter_types_give_shapes_where_they_are_certain() {
        let ok = |decl: &str, v: &str| {
            let f = param(decl, v);
            assert!(f.is_empty(), "{decl} {v}: {f:?}");
        };
        let bad = |decl: &str, v: &str, msg: &str| {
            let f = param(decl, v);
            assert!(f.iter().any(|m| m.contains(msg)), "{decl} {v}: {f:?}");
        };
        for v in ["8888", "-1.5", "1e3", " 2 "] {
            ok("{Type: Number}", v);
        }
        bad(
            "{Type: Number}",
            "eighty",
            "`eighty` is not a number, and `t.yaml` declares `P` as `Number`",
        );
        bad("{Type: Number}", "", "`` is not a number");
        ok("{Type: List<Number>}", "80,20.5, -3");
        bad(
            "{Type: List<Number>}",
            "80,x",
            "`x` (in `80,x`) is not a number, and `t.yaml` declares `P` as `List<Number>`",
        );
        ok("{Type: AWS::EC2::VPC::Id}", "vpc-0123abcd");
        bad(
            "{Type: AWS::EC2::VPC::Id}",
            "vpc-123",
            "`vpc-123` is not a VPC id (`vpc-` and 8 or 17 hex digits), and `t.yaml` declares `P` as `AWS::EC2::VPC::Id`",
        );
        bad(
            "{Type: AWS::EC2::VPC::Id}",
            "subnet-0123abcd",
            "is not a VPC id",
        );
        ok(
            "{Type: AWS::EC2::SecurityGroup::Id}",
            "sg-0123456789abcdef0",
        );
        bad(
            "{Type: AWS::EC2::SecurityGroup::Id}",
            "default",
            "is not a security group id",
        );
        ok(
            "{Type: List<AWS::EC2::Subnet::Id>}",
            "subnet-0123abcd, subnet-0123456789abcdef0",
        );
        bad(
            "{Type: List<AWS::EC2::Subnet::Id>}",
            "subnet-0123abcd,subnet-xyz",
            "`subnet-xyz` (in `subnet-0123abcd,subnet-xyz`) is not a subnet id",
        );
        ok("{Type: AWS::EC2::AvailabilityZone::Name}", "us-west-2a");
        bad(
            "{Type: AWS::EC2::AvailabilityZone::Name}",
            "us-east-1a",
            "`us-east-1a` is not in the spec's region us-west-2",
        );
        bad(
            "{Type: List<AWS::EC2::AvailabilityZone::Name>}",
            "us-west-2a, us-west-2",
            "`us-west-2` (in `us-west-2a, us-west-2`) is not an availability zone name",
        );
        ok("{Type: AWS::EC2::Image::Id}", "ami-0ff8a91507f77f867");
        bad(
            "{Type: AWS::EC2::Image::Id}",
            "al2023",
            "is not an AMI id (`ami-`",
        );
        ok("{Type: AWS::EC2::Instance::Id}", "i-1e731a32");
        bad(
            "{Type: List<AWS::EC2::Instance::Id>}",
            "i-1, i-2",
            "is not an instance id",
        );
        ok("{Type: AWS::EC2::Volume::Id}", "vol-3cdd3f56");
        bad(
            "{Type: AWS::EC2::Volume::Id}",
            "3cdd3f56",
            "is not an EBS volume id",
        );
        // Only AWS can tell whether these exist; any text may be one.
        ok("{Type: AWS::EC2::KeyPair::KeyName}", "my key");
        ok("{Type: AWS::EC2::SecurityGroup::GroupName}", "my-sg-abc");
        ok("{Type: AWS::Route53::HostedZone::Id}", "Z23YXV4OVPL04A");
        ok("{Type: AWS::SSM::Parameter::Name}", "/my/param");
        // A Parameter Store key: CloudFormation checks the value it holds.
        ok(
            "{Type: 'AWS::SSM::Parameter::Value<AWS::EC2::VPC::Id>', AllowedPattern: 'vpc-.*'}",
            "/net/vpc-id",
        );
        // An empty list has no element to refuse.
        ok("{Type: List<AWS::EC2::Subnet::Id>}", "");
        // An unknown type is the template's problem, not the value's.
        ok("{Type: Strng, AllowedValues: [a]}", "b");
    }

    #[test]
    fn parameter_constraints_as_cloudformation_applies_them() {
        let ok = |decl: &str, v: &str| {
            let f = param(decl, v);
            assert!(f.is_empty(), "{decl} {v}: {f:?}");
        };
        let bad = |decl: &str, v: &str, msg: &str| {
            let f = param(decl, v);
            assert_eq!(f.len(), 1, "{decl} {v}: {f:?}");
            assert!(f[0].contains(msg), "{decl} {v}: {f:?}");
        };
        let range = "{Type: Number, MinValue: 1150, MaxValue: 65535}";
        ok(range, "1150");
        ok(range, "65535.0");
        bad(
            range,
            "80",
            "`80` is less than the `MinValue` 1150 that `t.yaml` sets for `P`",
        );
        bad(range, "70000", "`70000` is more than the `MaxValue` 65535");
        bad(
            "{Type: List<Number>, MinValue: 0.5}",
            "1, 0.25",
            "`0.25` (in `1, 0.25`) is less than the `MinValue` 0.5",
        );
        let pattern = "{Type: String, AllowedPattern: '[a-z][a-z0-9-]*', ConstraintDescription: 'must start with a letter'}";
        ok(pattern, "prod-1");
        bad(
            pattern,
            "1prod",
            "`1prod` does not match the `AllowedPattern` `[a-z][a-z0-9-]*` that `t.yaml` sets for `P` (the whole value must match); `t.yaml` says: must start with a letter",
        );
        bad(pattern, "prod 1", "does not match");
        let list = "{Type: CommaDelimitedList, AllowedPattern: '\\d+'}";
        ok(list, "1, 22 ,333");
        bad(list, "1,a", "`a` (in `1,a`) does not match");
        // A pattern the engine does not take checks nothing.
        ok("{Type: String, AllowedPattern: '[a-z'}", "ANY");
        let length = "{Type: String, MinLength: 3, MaxLength: 5}";
        ok(length, "abc");
        ok(length, "ééééé");
        bad(
            length,
            "ab",
            "`ab` is 2 characters long, shorter than the `MinLength` 3 that `t.yaml` sets for `P`",
        );
        bad(
            length,
            "abcdef",
            "is 6 characters long, longer than the `MaxLength` 5",
        );
        // Lengths are for strings: not applied to a list's elements.
        ok("{Type: CommaDelimitedList, MaxLength: 1}", "ab,cd");
        let values =
            "{Type: String, AllowedValues: [small, large], ConstraintDescription: pick a size}";
        ok(values, "small");
        bad(
            values,
            "huge",
            "`huge` is not one of the values `t.yaml` allows for `P`: small, large; `t.yaml` says: pick a size",
        );
        let listed = "{Type: CommaDelimitedList, AllowedValues: [a, b, c]}";
        ok(listed, "a, c");
        bad(listed, "a,d", "`d` (in `a,d`) is not one of the values");
        ok("{Type: Number, AllowedValues: [1, 2]}", "2.0");
        bad(
            "{Type: Number, AllowedValues: [1, 2]}",
            "two",
            "`two` is not a number",
        );
        ok(
            "{Type: List<AWS::EC2::AvailabilityZone::Name>, AllowedValues: [us-west-2a, us-west-2b]}",
            "us-west-2b,us-west-2a",
        );
        // A reference is resolved at apply time.
        ok(range, "${cluster.main.name}");
    }

    #[test]
    fn cni_types() {
        assert!(matches!(
            cni_type("WARM_IP_TARGET"),
            Some(CniType::Int { .. })
        ));
        assert!(matches!(
            cni_type("ENABLE_PREFIX_DELEGATION"),
            Some(CniType::Bool)
        ));
        assert!(cni_type("SOMETHING_ELSE").is_none());
        assert!(is_go_bool("True") && is_go_bool("0") && !is_go_bool("yes"));
    }
}
