//! The data plane's requests to the Kubernetes API server of `kube_url` (plain HTTP, JSON).
//! Nodes are written as their kubelet would write them: with the user agent `kubelet/…`,
//! so the API server records the field manager `kubelet`.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use hyper::Method;
use serde_json::{json, Value};

use crate::core::emulator::Host;
use crate::shared::form_encode;

/// How long one request may take before the API server counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(10);

const NODES: &str = "/api/v1/nodes";
const AWS_NODE: &str = "/apis/apps/v1/namespaces/kube-system/daemonsets/aws-node";

/// The API server of `kube_url`.
pub struct Kube<'a> {
    pub host: &'a Host,
    /// Without a trailing slash.
    pub url: &'a str,
}

impl Kube<'_> {
    /// (status, body as JSON, or null).
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&'static str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static("kubelet/v1 (aws-fault-proxy data plane)"),
        );
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let url = format!("{}{path}", self.url);
        let reply = tokio::time::timeout(
            TIMEOUT,
            self.host.upstream.send(&method, &url, &headers, body),
        )
        .await
        .map_err(|_| format!("{method} {path}: no answer within {TIMEOUT:?}"))?
        .map_err(|e| format!("{method} {path}: {e}"))?;
        let value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok((reply.status, value))
    }

    fn failed(method: &str, path: &str, status: u16, body: &Value) -> String {
        let message = body["message"].as_str().unwrap_or_default();
        format!("{method} {path}: {status} {message}")
    }

    /// Every Node.
    pub async fn nodes(&self) -> Result<Vec<Value>, String> {
        let (status, v) = self.call(Method::GET, NODES, None, None).await?;
        if status != 200 {
            return Err(Self::failed("GET", NODES, status, &v));
        }
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Creates a Node; one of the name already there is left as it is (a kubelet that
    /// finds its Node registered goes on with it).
    pub async fn create_node(&self, node: &Value) -> Result<(), String> {
        let (status, v) = self
            .call(Method::POST, NODES, Some("application/json"), Some(node))
            .await?;
        match status {
            200..=299 | 409 => Ok(()),
            s => Err(Self::failed("POST", NODES, s, &v)),
        }
    }

    /// Deletes a Node; one already gone is fine.
    pub async fn delete_node(&self, name: &str) -> Result<(), String> {
        let path = format!("{NODES}/{}", form_encode(name));
        let (status, v) = self.call(Method::DELETE, &path, None, None).await?;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(Self::failed("DELETE", &path, s, &v)),
        }
    }

    /// Cordons a Node (`spec.unschedulable`), as a drain begins; with `exclude` it is also
    /// labelled out of external load balancers, as EKS does before replacing it
    /// (`nodes/managed-node-update-behavior.adoc`). A Node already gone is fine.
    pub async fn cordon(&self, name: &str, exclude: bool) -> Result<(), String> {
        let path = format!("{NODES}/{}", form_encode(name));
        let mut patch = json!({"spec": {"unschedulable": true}});
        if exclude {
            patch["metadata"] = json!({"labels": {
                "node.kubernetes.io/exclude-from-external-load-balancers": "true"}});
        }
        let (status, v) = self
            .call(
                Method::PATCH,
                &path,
                Some("application/merge-patch+json"),
                Some(&patch),
            )
            .await?;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(Self::failed("PATCH", &path, s, &v)),
        }
    }

    /// The `aws-node` DaemonSet, `None` if there is none.
    pub async fn aws_node(&self) -> Result<Option<Value>, String> {
        let (status, v) = self.call(Method::GET, AWS_NODE, None, None).await?;
        match status {
            200 => Ok(Some(v)),
            404 => Ok(None),
            s => Err(Self::failed("GET", AWS_NODE, s, &v)),
        }
    }

    /// GET of one object; `None` if there is none (404).
    pub async fn get(&self, path: &str) -> Result<Option<Value>, String> {
        let (status, v) = self.call(Method::GET, path, None, None).await?;
        match status {
            200 => Ok(Some(v)),
            404 => Ok(None),
            s => Err(Self::failed("GET", path, s, &v)),
        }
    }

    /// The items of a list; a resource the server does not serve (404) has none.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, String> {
        let (status, v) = self.call(Method::GET, path, None, None).await?;
        match status {
            200 => Ok(v["items"].as_array().cloned().unwrap_or_default()),
            404 => Ok(Vec::new()),
            s => Err(Self::failed("GET", path, s, &v)),
        }
    }

    /// POST; the status code (409 and the like are for the caller to judge).
    pub async fn post(&self, path: &str, body: &Value) -> Result<u16, String> {
        let (status, v) = self
            .call(Method::POST, path, Some("application/json"), Some(body))
            .await?;
        match status {
            200..=299 | 404 | 409 | 429 => Ok(status),
            s => Err(Self::failed("POST", path, s, &v)),
        }
    }

    /// A merge patch; an object already gone is fine.
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<(), String> {
        self.patch(path, "application/merge-patch+json", patch)
            .await
    }

    /// A strategic merge patch (lists merged by their keys, a container by its name); an
    /// object already gone is fine.
    pub async fn strategic_patch(&self, path: &str, patch: &Value) -> Result<(), String> {
        self.patch(path, "application/strategic-merge-patch+json", patch)
            .await
    }

    async fn patch(
        &self,
        path: &str,
        content_type: &'static str,
        patch: &Value,
    ) -> Result<(), String> {
        let (status, v) = self
            .call(Method::PATCH, path, Some(content_type), Some(patch))
            .await?;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(Self::failed("PATCH", path, s, &v)),
        }
    }

    /// DELETE; an object already gone is fine.
    pub async fn delete(&self, path: &str) -> Result<(), String> {
        let (status, v) = self.call(Method::DELETE, path, None, None).await?;
        match status {
            200..=299 | 404 => Ok(()),
            s => Err(Self::failed("DELETE", path, s, &v)),
        }
    }
}
