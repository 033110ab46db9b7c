//! CloudFormation stacks in progress: real CloudFormation shows a stack
//! `CREATE_IN_PROGRESS` after CreateStack and `DELETE_IN_PROGRESS` after DeleteStack
//! (options `stack_create_ms`, `stack_delete_ms`); moto finishes both inside the request.
//!
//! A creation window rewrites the stack's status in DescribeStacks answers; a deletion
//! window answers DescribeStacks with the stack as it was just before the delete (read from
//! moto first), status `DELETE_IN_PROGRESS`, since moto has forgotten it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::Method;

use crate::core::emulator::{ready, Answer, BoxFuture, Call, Emulator, Host};
use crate::core::faults::Reply;
use crate::core::ops::Protocol;
use crate::core::upstream::is_success;
use crate::core::windows::Phase;
use crate::shared::{deadline, form_encode, lock, xml_first, xml_replace_first};

/// Stack windows also remember the stack id of a creation so that an older,
/// deleted stack of the same name (described by its id) is left alone.
#[derive(Clone, Debug)]
struct StackPhase {
    phase: Phase,
    stack_id: Option<String>,
}

#[derive(Debug, Default)]
struct Stacks {
    /// (region, stack name)
    windows: HashMap<(String, String), StackPhase>,
    /// stack id (ARN) -> stack name, for DescribeStacks by id.
    names: HashMap<String, String>,
}

#[derive(Default)]
pub struct StackStates {
    stacks: Mutex<Stacks>,
}

impl Emulator for StackStates {
    /// DescribeStacks of a stack in its deletion window: the snapshot.
    fn intercept(&self, call: &Call<'_>) -> Option<(Reply, &'static str)> {
        let info = call.info;
        if info.protocol != Protocol::AwsQuery || info.op != "DescribeStacks" {
            return None;
        }
        let now = Instant::now();
        let mut stacks = lock(&self.stacks);
        let name = stack_name(info.param("StackName")?, &stacks.names);
        let key = (info.region.clone(), name);
        let entry = stacks.windows.get(&key)?;
        match &entry.phase {
            Phase::Deleting { snapshot, .. } if entry.phase.active(now) => {
                Some((snapshot.clone(), "transition"))
            }
            Phase::Deleting { .. } => {
                // Window over: from now on moto's own answer is right.
                stacks.windows.remove(&key);
                None
            }
            Phase::Creating { .. } => None,
        }
    }

    /// AWS keeps answering DescribeStacks for a stack being deleted, but moto
    /// deletes at once; fetch the last state first so it can be replayed.
    fn before_forward<'a>(&'a self, call: &'a Call<'a>) -> BoxFuture<'a, Option<Reply>> {
        let host = call.host;
        let info = call.info;
        if info.protocol != Protocol::AwsQuery
            || info.op != "DeleteStack"
            || call.cfg.stack_delete_ms == 0
        {
            return ready(None);
        }
        match info.param("StackName") {
            Some(name) => Box::pin(snapshot_stack(host, name, call.headers)),
            None => ready(None),
        }
    }

    fn rewrite<'a>(&'a self, call: &'a Call<'a>, answer: &'a mut Answer) -> BoxFuture<'a, ()> {
        let before = answer.before.take();
        let (info, cfg) = (call.info, call.cfg);
        if info.protocol != Protocol::AwsQuery {
            return ready(());
        }
        let region = info.region.clone();
        let mut stacks = lock(&self.stacks);
        match info.op.as_str() {
            "CreateStack" => {
                let text = String::from_utf8_lossy(&answer.reply.body);
                let id = xml_first(&text, "StackId");
                if let (Some(name), Some(id)) = (info.param("StackName"), id) {
                    stacks.names.insert(id.clone(), name.to_string());
                    if cfg.stack_create_ms > 0 {
                        let phase = Phase::Creating {
                            until: deadline(cfg.stack_create_ms),
                        };
                        stacks.windows.insert(
                            (region, name.to_string()),
                            StackPhase {
                                phase,
                                stack_id: Some(id),
                            },
                        );
                    }
                }
            }
            "DescribeStacks" => {
                let text = String::from_utf8_lossy(&answer.reply.body).into_owned();
                let now = answer.sent;
                let windows = &stacks.windows;
                let out = rewrite_stack_statuses(&text, |id, name| {
                    let entry = windows.get(&(region.clone(), name.to_string()))?;
                    let same_stack = entry.stack_id.as_deref().is_none_or(|s| s == id);
                    (entry.phase.creating(now) && same_stack).then_some("CREATE_IN_PROGRESS")
                });
                if let Some(out) = out {
                    answer.reply.body = Bytes::from(out);
                    answer.label("transition");
                }
            }
            "DeleteStack" => {
                if let Some(reference) = info.param("StackName") {
                    let name = stack_name(reference, &stacks.names);
                    let key = (region, name);
                    stacks.windows.remove(&key);
                    if let Some(snapshot) = before {
                        let until = deadline(cfg.stack_delete_ms);
                        stacks.windows.insert(
                            key,
                            StackPhase {
                                phase: Phase::Deleting { until, snapshot },
                                stack_id: None,
                            },
                        );
                    }
                }
            }
            _ => {}
        }
        ready(())
    }

    fn reset(&self) {
        *lock(&self.stacks) = Stacks::default();
    }
}

/// DescribeStacks for one stack, made by the proxy with the client's credentials (moto
/// picks the region from them), status set to DELETE_IN_PROGRESS.
async fn snapshot_stack(host: &Host, stack: &str, client_headers: &HeaderMap) -> Option<Reply> {
    let mut headers = HeaderMap::new();
    for (name, value) in client_headers.iter() {
        let n = name.as_str();
        if n == "authorization" || n == "host" || n.starts_with("x-amz-") {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let body = format!(
        "Action=DescribeStacks&Version=2010-05-15&StackName={}",
        form_encode(stack)
    );
    let reply = host
        .upstream
        .forward(&Method::POST, "/", &headers, Bytes::from(body))
        .await
        .ok()?;
    if !is_success(reply.status) {
        return None;
    }
    let text = String::from_utf8_lossy(&reply.body);
    let rewritten = xml_replace_first(&text, "StackStatus", "DELETE_IN_PROGRESS")?;
    Some(Reply {
        body: Bytes::from(rewritten),
        ..reply
    })
}

/// Stack name from a `StackName` parameter that may be a name or a stack id
/// (`arn:aws:cloudformation:REGION:ACCT:stack/NAME/UUID`).
fn stack_name(reference: &str, known: &HashMap<String, String>) -> String {
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

/// Rewrites `<StackStatus>` of each stack in a DescribeStacks answer.
///
/// Stacks are delimited by their `<StackId>` elements: moto writes StackId
/// first in each member, followed by StackName and StackStatus, and no nested
/// element (Parameters, Tags, Outputs) contains either tag. `decide` gets
/// (stack id, stack name) and returns the status to show, if it must change.
fn rewrite_stack_statuses(
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
    }
}
