//! Per-resource state the proxy layers on top of moto: transition windows,
//! IAM propagation windows and DependencyViolation counters, plus the helpers
//! that rewrite moto's answers to match.
//!
//! Each window stores its own deadline, computed from the configuration in
//! force when the create/delete answer arrived; later config changes affect
//! only later windows, so a test cannot accidentally revive an old one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::cluster_sg::ClusterSg;
use crate::faults::Reply;

/// A resource moto already finished but the client should see in progress.
#[derive(Clone, Debug)]
pub enum Phase {
    Creating {
        until: Instant,
    },
    /// moto has forgotten the resource; `snapshot` is the describe answer to
    /// give meanwhile (its last known body, status set to the deleting one).
    Deleting {
        until: Instant,
        snapshot: Reply,
    },
}

impl Phase {
    pub fn active(&self, now: Instant) -> bool {
        match self {
            Phase::Creating { until } | Phase::Deleting { until, .. } => now < *until,
        }
    }
}

/// Stack windows also remember the stack id of a creation so that an older,
/// deleted stack of the same name (described by its id) is left alone.
#[derive(Clone, Debug)]
pub struct StackPhase {
    pub phase: Phase,
    pub stack_id: Option<String>,
}

/// Everything the proxy remembers about resources, keyed by region first
/// because moto keeps one backend per region.
#[derive(Debug, Default)]
pub struct World {
    /// (region, cluster)
    pub clusters: HashMap<(String, String), Phase>,
    /// (region, cluster, nodegroup)
    pub nodegroups: HashMap<(String, String, String), Phase>,
    /// (region, stack name)
    pub stacks: HashMap<(String, String), StackPhase>,
    /// stack id (ARN) -> stack name, for DescribeStacks by id.
    pub stack_names: HashMap<String, String>,
    /// IAM role name -> end of its propagation window. IAM is global and
    /// role names are unique per account, so the name is the key.
    pub roles: HashMap<String, Instant>,
    /// subnet id -> DependencyViolation answers given so far.
    pub subnet_failures: HashMap<String, u64>,
    /// (region, cluster) -> the security group the proxy made in moto to be
    /// the cluster's `clusterSecurityGroupId` (option `eks_cluster_fields`).
    pub cluster_sgs: HashMap<(String, String), ClusterSg>,
    /// (region, cluster) -> when the proxy deleted that group with the
    /// cluster, and the group. An answer sent to moto before then describes
    /// the deleted cluster: it gets the old group rather than a new one.
    pub cluster_sgs_deleted: HashMap<(String, String), (Instant, ClusterSg)>,
    /// EKS add-ons, which the proxy serves itself (moto has none).
    pub addons: crate::addons::Store,
    /// Nodegroups moved to another launch template version by UpdateNodegroupVersion,
    /// which the proxy answers itself (moto has none).
    pub nodegroup_versions: crate::nodegroup_version::Store,
}

pub fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// Role name from an IAM role ARN (`arn:aws:iam::1:role/some/path/NAME`).
pub fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Stack name from a `StackName` parameter that may be a name or a stack id
/// (`arn:aws:cloudformation:REGION:ACCT:stack/NAME/UUID`).
pub fn stack_name(reference: &str, known: &HashMap<String, String>) -> String {
    if let Some(name) = known.get(reference) {
        return name.clone();
    }
    if reference.starts_with("arn:") {
        if let Some(rest) = reference.split(":stack/").nth(1) {
            return rest.split('/').next().unwrap_or(rest).to_string();
        }
    }
    reference.to_string()
}

/// Sets `body[root].status` in an EKS JSON answer. `None` if the body is not
/// the expected shape, in which case the caller passes it on unchanged.
pub fn set_json_status(body: &[u8], root: &str, status: &str) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.get_mut(root)?.as_object_mut()?;
    obj.insert("status".into(), Value::String(status.into()));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// Sets `body.nodegroup.launchTemplate.version` in an EKS JSON answer; `None` if the
/// nodegroup has no launch template (or the body is not the expected shape).
pub fn set_launch_template_version(body: &[u8], version: &str) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let template = v
        .get_mut("nodegroup")?
        .get_mut("launchTemplate")?
        .as_object_mut()?;
    template.insert("version".into(), Value::String(version.into()));
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// `body[root][field]` as a string.
pub fn json_str(body: &[u8], root: Option<&str>, field: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = match root {
        Some(r) => v.get(r)?,
        None => &v,
    };
    obj.get(field)?.as_str().map(str::to_string)
}

/// Text of the first `<tag>…</tag>` element. moto's Query answers are flat
/// enough for this; a full XML parser would be a heavy dependency for it.
pub fn xml_first(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    Some(body[start..start + len].to_string())
}

/// Replaces the text of the first `<tag>…</tag>` in `body`.
pub fn xml_replace_first(body: &str, tag: &str, text: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&close)?;
    Some(format!(
        "{}{}{}",
        &body[..start],
        text,
        &body[start + len..]
    ))
}

/// Renames the root element `from` of an XML document to `to` (its attributes kept);
/// `None` if the root is not `from`.
pub fn xml_rename_root(body: &str, from: &str, to: &str) -> Option<String> {
    // The root is the first element after the declaration.
    let mut rest = body.trim_start();
    let mut prefix_len = body.len() - rest.len();
    if rest.starts_with("<?") {
        let end = rest.find("?>")? + 2;
        let after = rest[end..].trim_start();
        prefix_len += rest.len() - after.len();
        rest = after;
    }
    let name = rest.strip_prefix('<')?.strip_prefix(from)?;
    // `<fromX` is another element; `<from>`, `<from ...>` and `<from/>` are it.
    if !name.starts_with(['>', ' ', '/', '\n', '\t', '\r']) {
        return None;
    }
    let close = format!("</{from}>");
    let mut out = format!("{}<{to}{name}", &body[..prefix_len]);
    if let Some(at) = out.rfind(&close) {
        out.replace_range(at..at + close.len(), &format!("</{to}>"));
    }
    Some(out)
}

/// Rewrites `<StackStatus>` of each stack in a DescribeStacks answer.
///
/// Stacks are delimited by their `<StackId>` elements: moto writes StackId
/// first in each member, followed by StackName and StackStatus, and no nested
/// element (Parameters, Tags, Outputs) contains either tag. `decide` gets
/// (stack id, stack name) and returns the status to show, if it must change.
pub fn rewrite_stack_statuses(
    body: &str,
    mut decide: impl FnMut(&str, &str) -> Option<&'static str>,
) -> Option<String> {
    let starts: Vec<usize> = body.match_indices("<StackId>").map(|(i, _)| i).collect();
    if starts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    out.push_str(&body[..starts[0]]);
    let mut changed = false;
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(body.len());
        let segment = &body[start..end];
        let id = xml_first(segment, "StackId").unwrap_or_default();
        let name = xml_first(segment, "StackName").unwrap_or_default();
        match decide(&id, &name).and_then(|s| xml_replace_first(segment, "StackStatus", s)) {
            Some(rewritten) => {
                changed = true;
                out.push_str(&rewritten);
            }
            None => out.push_str(segment),
        }
    }
    changed.then_some(out)
}

/// Form-encodes a value for a Query request the proxy makes itself.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_STACKS: &str = "<DescribeStacksResponse><DescribeStacksResult><Stacks>\
        <member><StackId>arn:aws:cloudformation:us-east-1:1:stack/a/u1</StackId>\
        <StackName>a</StackName><Parameters><member><ParameterKey>K</ParameterKey></member>\
        </Parameters><StackStatus>CREATE_COMPLETE</StackStatus></member>\
        <member><StackId>arn:aws:cloudformation:us-east-1:1:stack/b/u2</StackId>\
        <StackName>b</StackName><StackStatus>CREATE_COMPLETE</StackStatus>\
        <StackStatusReason>x</StackStatusReason></member>\
        </Stacks></DescribeStacksResult></DescribeStacksResponse>";

    #[test]
    fn xml_root_is_renamed() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<GetBucketVersioningResponse \
                    xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status>\
                    </GetBucketVersioningResponse>";
        assert_eq!(
            xml_rename_root(
                body,
                "GetBucketVersioningResponse",
                "VersioningConfiguration"
            )
            .as_deref(),
            Some(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<VersioningConfiguration \
                 xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status>\
                 </VersioningConfiguration>"
            )
        );
        assert_eq!(xml_rename_root("<A/>", "A", "B").as_deref(), Some("<B/>"));
        assert_eq!(xml_rename_root("<AB></AB>", "A", "B"), None);
        assert_eq!(xml_rename_root("<X><A></A></X>", "A", "B"), None);
    }

    #[test]
    fn rewrites_only_the_chosen_stack() {
        let out = rewrite_stack_statuses(TWO_STACKS, |_, name| {
            (name == "b").then_some("CREATE_IN_PROGRESS")
        })
        .unwrap();
        assert_eq!(
            out.matches("<StackStatus>CREATE_COMPLETE</StackStatus>")
                .count(),
            1
        );
        assert!(
            out.contains("<StackName>b</StackName><StackStatus>CREATE_IN_PROGRESS</StackStatus>")
        );
        assert!(out.ends_with("</DescribeStacksResponse>"));
        assert!(rewrite_stack_statuses(TWO_STACKS, |_, _| None).is_none());
    }

    #[test]
    fn names_from_references() {
        let known = HashMap::new();
        assert_eq!(
            stack_name("arn:aws:cloudformation:us-east-1:1:stack/net/uuid", &known),
            "net"
        );
        assert_eq!(stack_name("net", &known), "net");
        assert_eq!(role_name("arn:aws:iam::1:role/p/q/r1"), "r1");
        assert_eq!(form_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn json_status_rewrite() {
        let body = br#"{"cluster": {"name": "c", "status": "ACTIVE"}}"#;
        let out = set_json_status(body, "cluster", "CREATING").unwrap();
        assert_eq!(
            json_str(&out, Some("cluster"), "status").as_deref(),
            Some("CREATING")
        );
        assert!(set_json_status(b"not json", "cluster", "X").is_none());
        assert!(set_json_status(br#"{"nodegroup":{}}"#, "cluster", "X").is_none());
    }

    #[test]
    fn launch_template_version_rewrite() {
        let body =
            br#"{"nodegroup": {"launchTemplate": {"id": "lt-1", "name": "n", "version": "1"}}}"#;
        let out = set_launch_template_version(body, "2").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["nodegroup"]["launchTemplate"],
            serde_json::json!({"id": "lt-1", "name": "n", "version": "2"})
        );
        assert!(set_launch_template_version(br#"{"nodegroup": {}}"#, "2").is_none());
        assert!(set_launch_template_version(b"<x/>", "2").is_none());
    }
}
