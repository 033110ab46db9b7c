//! Checks that need no API call: references, CIDR arithmetic, names, the IPv6 rule. Every
//! problem found is reported, each at its file, line and key.

pub mod cfn;
pub mod constraints;

use crate::base::addr::{Kind, ResourceAddr};
use crate::base::diag::{Diagnostic, Diagnostics};
use crate::base::value;
use crate::domain::{cni, identity, karpenter, network, pod_security_groups, routing};
use crate::resources;
use crate::spec::Spec;
use serde_json::Value;
use std::collections::HashMap;

pub fn validate(spec: &Spec) -> Diagnostics {
    let mut d = Diagnostics::default();
    check_references(spec, &mut d);
    check_shapes(spec, &mut d);
    network::check_spec(spec, &mut d);
    check_unique_names(spec, &mut d);
    check_replacement_names(spec, &mut d);
    cni::check_ipv6(spec, &mut d);
    cni::check_spec(spec, &mut d);
    pod_security_groups::check_spec(spec, &mut d);
    crate::domain::auto_mode::check_spec(spec, &mut d);
    crate::domain::access::check_spec(spec, &mut d);
    identity::check_spec(spec, &mut d);
    routing::check_spec(spec, &mut d);
    karpenter::check_spec(spec, &mut d);
    check_lifecycles(spec, &mut d);
    crate::validate::constraints::check(spec, &mut d);
    if spec.resources.is_empty() {
        // An emptied file is more often a mistake than a wish to delete everything.
        d.push(Diagnostic {
            location: Some(crate::base::diag::Location {
                file: spec.path.clone(),
                line: 1,
                column: 1,
            }),
            ..Diagnostic::warning(
                "the spec declares no resources: `apply` would destroy everything its state holds",
            )
        });
    }
    for key in spec.settings.timeouts.keys() {
        if key.parse::<Kind>().is_err() {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            d.push(spec.error_at(
                format!("settings.timeouts.{key}"),
                format!(
                    "unknown kind `{key}`; timeouts are set per kind: {}",
                    kinds.join(", ")
                ),
            ));
        }
    }
    d
}

/// `lifecycle.ignore_changes` names attributes of its kind, never the key the resource is
/// found by (ignoring it would make eksnet lose the resource, not leave it alone).
fn check_lifecycles(spec: &Spec, d: &mut Diagnostics) {
    for r in spec.resources.values() {
        let facts = crate::resources::facts(r.addr.kind);
        let mut seen = std::collections::BTreeSet::new();
        for (i, path) in r.lifecycle.ignore_changes.iter().enumerate() {
            let key = format!("{}.lifecycle.ignore_changes", r.addr);
            let at = |msg: String| {
                spec.error_at(key.clone(), format!("ignore_changes[{i}] `{path}`: {msg}"))
            };
            let segments: Vec<&str> = path.split('.').collect();
            if segments.iter().any(|s| s.is_empty()) {
                d.push(at(
                    "write an attribute path such as `scaling.desired_size`".into()
                ));
                continue;
            }
            let top = segments[0];
            let here = r.attrs.get(top);
            let known = here.is_some()
                || facts.force_new.contains(&top)
                || facts.create_only.contains(&top);
            if !known {
                let mut names: Vec<String> = r
                    .attrs
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                names.sort();
                d.push(at(format!(
                    "`{}` has no attribute `{top}`; it has: {}",
                    r.addr.kind,
                    names.join(", ")
                )));
                continue;
            }
            if facts.lookup_key.contains(&top) || facts.identity.contains(&top) {
                d.push(at(format!(
                    "`{top}` is how eksnet finds the {} in AWS; it cannot be ignored",
                    r.addr.kind
                )));
                continue;
            }
            if segments.len() > 1 && here.is_some_and(|v| !v.is_object()) {
                d.push(at(format!(
                    "`{top}` is not a table, so `{path}` names nothing; write `{top}`"
                )));
                continue;
            }
            if !seen.insert(path.as_str()) {
                d.push(at("listed twice".into()));
            }
        }
    }
}

/// Holds a reference (its value is checked once known), or a broken one (reported on its
/// own): either way, format checks of the literal text would only add noise.
fn check_references(spec: &Spec, d: &mut Diagnostics) {
    for (addr, r) in &spec.resources {
        let mut strings = Vec::new();
        value::keyed_strings(&addr.to_string(), &r.attrs, &mut strings);
        for (key, s) in strings {
            if let Some(open) = value::unterminated_reference(s) {
                d.push(spec.error_at(
                    &key,
                    format!("`{open}` looks like a reference but has no closing `}}`"),
                ));
            }
            for reference in value::references_in_str(s) {
                let reference = match reference {
                    Ok(r) => r,
                    Err(msg) => {
                        d.push(spec.error_at(&key, msg));
                        continue;
                    }
                };
                if &reference.addr == addr {
                    d.push(spec.error_at(
                        &key,
                        format!("`{}` refers to the resource itself", reference.raw),
                    ));
                    continue;
                }
                if !spec.resources.contains_key(&reference.addr) {
                    let same_kind: Vec<String> = spec
                        .resources
                        .keys()
                        .filter(|a| a.kind == reference.addr.kind)
                        .map(|a| a.to_string())
                        .collect();
                    let hint = if same_kind.is_empty() {
                        format!("no `{}` is declared", reference.addr.kind)
                    } else {
                        format!("declared: {}", same_kind.join(", "))
                    };
                    d.push(spec.error_at(
                        &key,
                        format!(
                            "dangling reference `{}`: `{}` is not declared ({hint})",
                            reference.raw, reference.addr
                        ),
                    ));
                    continue;
                }
                if !resources::valid_output_path(reference.addr.kind, &reference.path) {
                    d.push(spec.error_at(
                        &key,
                        format!(
                            "`{}`: a {} has no output `{}`; available: {}",
                            reference.raw,
                            reference.addr.kind,
                            reference.path_string(),
                            resources::facts(reference.addr.kind).outputs.join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

fn check_shapes(spec: &Spec, d: &mut Diagnostics) {
    for (addr, r) in &spec.resources {
        let at = |k: &str| format!("{addr}.{k}");
        if let Some(tags) = r.attrs.get("tags").and_then(Value::as_object) {
            for k in tags.keys().filter(|k| k.starts_with("eksnet:")) {
                d.push(spec.error_at(
                    at("tags"),
                    format!(
                        "tag key `{k}`: the `eksnet:` prefix is reserved for eksnet's own tags"
                    ),
                ));
            }
        }
        crate::validate::constraints::with_field_rules(spec, addr, &r.attrs, d, |rules| {
            resources::check_shape(&r.config, rules)
        });
    }
}

/// A resource's identity (`KindFacts::identity`) as one text, names resolved (a literal
/// name and `${cluster.X.name}` are one cluster); `None` when part of it is not written.
fn identity(spec: &Spec, facts: &resources::KindFacts, attrs: &Value) -> Option<String> {
    let parts = facts
        .identity
        .iter()
        .map(|k| resources::str_attr(attrs, k).map(|v| spec.resolved_name(v)))
        .collect::<Option<Vec<String>>>()?;
    Some(parts.join("/"))
}

fn check_unique_names(spec: &Spec, d: &mut Diagnostics) {
    let mut seen: HashMap<(Kind, String), String> = HashMap::new();
    for (addr, r) in &spec.resources {
        let facts = resources::facts(addr.kind);
        let Some(unique) = facts.unique else {
            continue;
        };
        // The identity, names resolved (`${cluster.X.name}` and a literal name are one
        // cluster); a defaulted ENIConfig name is the subnet's AZ, known here when the subnet
        // spells it out. An identity not written (an adopted VPC has no stack) is not checked.
        let Some(name) = identity(spec, facts, &r.attrs) else {
            continue;
        };
        if let Some(first) = seen.insert((addr.kind, name.clone()), addr.to_string()) {
            let message = match unique.one_per {
                Some(what) => format!(
                    "{what} `{name}` is already configured by `{first}`; declare one {} per {what}",
                    addr.kind
                ),
                None => format!("`{name}` is also the name of `{first}`; names must be unique"),
            };
            d.push(spec.error_at(format!("{addr}.{}", unique.field), message));
        }
    }
}

/// A kind replaced create-before-destroy under a name of its own (`KindFacts::replacement`)
/// takes `NAME-cbd` while the old object holds `NAME` (see `resources::replacement_name`):
/// another resource of the kind with the same identity must not already be called that, or
/// the replacement's create would fail, or find the wrong one.
fn check_replacement_names(spec: &Spec, d: &mut Diagnostics) {
    let named: Vec<(&ResourceAddr, &'static str, String, String)> = spec
        .resources
        .iter()
        .filter_map(|(addr, r)| {
            let facts = resources::facts(addr.kind);
            let unique = facts.unique.filter(|_| facts.replacement.is_some())?;
            let name = resources::str_attr(&r.attrs, unique.field)?.to_string();
            Some((addr, unique.field, identity(spec, facts, &r.attrs)?, name))
        })
        .collect();
    for (addr, field, id, name) in &named {
        let (Some(base), Some(base_id)) = (
            name.strip_suffix(resources::REPLACEMENT_SUFFIX),
            id.strip_suffix(resources::REPLACEMENT_SUFFIX),
        ) else {
            continue;
        };
        if let Some((other, ..)) = named
            .iter()
            .find(|(o, _, i, _)| o != addr && o.kind == addr.kind && i == base_id)
        {
            d.push(spec.error_at(
                format!("{addr}.{field}"),
                format!(
                    "`{name}` is the name `{other}` takes while it is replaced (create before destroy alternates between `{base}` and `{name}`); rename one of them"
                ),
            ));
        }
    }
}
