//! Talking to moto (and to any other plain-HTTP server, such as the Kubernetes API server of
//! `kube_url`): forwarding a client's request, and the requests the proxy makes on its own.
//!
//! The proxy's own requests go straight out: they are not counted in the stats, faulted,
//! delayed or seen by the kill hook.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use super::faults::Reply;
use crate::shared::xml_first;

/// moto, and the pooled HTTP client that reaches it.
pub struct Upstream {
    /// `http://host:port` of moto, without a trailing slash.
    url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Headers that describe one hop, not the message: they must not be copied
/// between the client and upstream connections. `expect` is here because the
/// body has already been read in full when the request is forwarded.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    )
}

pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

impl Upstream {
    pub fn new(url: String) -> Upstream {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Upstream { url, client }
    }

    /// Sends a request to moto and buffers the answer.
    pub async fn forward(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Reply, String> {
        let url = format!("{}{}", self.url, path_and_query);
        self.send(method, &url, headers, body).await
    }

    /// Sends a request to any plain-HTTP URL (moto, or the Kubernetes API server of
    /// `kube_url`) and buffers the answer.
    pub async fn send(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Reply, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad uri {url:?}: {e}"))?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        // Host is copied as the client sent it (the SDK signed it); the pooled
        // client only fills in Host when it is missing.
        for (name, value) in headers.iter() {
            if !is_hop_by_hop(name) {
                req.headers_mut().append(name.clone(), value.clone());
            }
        }
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("upstream request failed: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading upstream body: {e}"))?
            .to_bytes();
        // The answer to a HEAD has no body, and its Content-Length is the size of what a GET
        // would give (S3's HeadObject: the object's size): kept for the answer to the client.
        // Any other answer's length is recomputed from the buffered body, which may be
        // rewritten.
        let keep_length = method == Method::HEAD;
        let mut out = HeaderMap::new();
        for (name, value) in parts.headers.iter() {
            if !is_hop_by_hop(name) && (name != CONTENT_LENGTH || keep_length) {
                out.append(name.clone(), value.clone());
            }
        }
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: out,
            body,
        })
    }

    /// An EC2 Query call of the proxy's own (headers from [`ec2_headers`]); the answer text
    /// if moto succeeded.
    pub async fn ec2_call(&self, headers: &HeaderMap, body: String) -> Result<String, String> {
        let reply = self
            .forward(&Method::POST, "/", headers, Bytes::from(body))
            .await?;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if is_success(reply.status) {
            Ok(text)
        } else {
            let code = xml_first(&text, "Code").unwrap_or_default();
            Err(format!("moto answered {} {code}", reply.status))
        }
    }
}

/// The client's headers that a request of the proxy's own to moto carries: moto takes the
/// region and account from the credential scope (it checks no signature). The body's hash
/// is left out, as the body is another.
pub fn own_request_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in client.iter() {
        let n = name.as_str();
        if n == "authorization"
            || n == "host"
            || (n.starts_with("x-amz-") && n != "x-amz-content-sha256")
        {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// Headers for an EC2 Query request the proxy sends to moto on behalf of a
/// request of another service (EKS). moto picks service and region from the credential
/// scope of `Authorization` (it checks no signature), and the account from the access
/// key, so the client's key and date are kept with `REGION/ec2` as scope.
pub fn ec2_headers(client: &HeaderMap, region: &str) -> HeaderMap {
    scoped_headers(client, region, "ec2")
}

/// Headers for a request of the proxy's own to `service` in `region`, carrying the access
/// key and date of the client's `headers` (see [`ec2_headers`]). EKS gets the JSON content
/// type, the Query services (`ec2`, `sts`, ...) the form one.
pub fn scoped_headers(client: &HeaderMap, region: &str, service: &str) -> HeaderMap {
    let amz_date = client
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (key, date) = client
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(key_and_date)
        .unwrap_or_else(|| {
            let date = amz_date
                .as_deref()
                .and_then(|d| d.get(..8))
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .unwrap_or("20240101");
            ("AKIDEXAMPLE".to_string(), date.to_string())
        });
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature={}",
        "0".repeat(64)
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&auth) {
        headers.insert(AUTHORIZATION, v);
    }
    let content_type = if service == "eks" {
        "application/json"
    } else {
        "application/x-www-form-urlencoded; charset=utf-8"
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    for name in ["x-amz-date", "x-amz-security-token"] {
        if let Some(v) = client.get(name) {
            headers.insert(HeaderName::from_static(name), v.clone());
        }
    }
    headers
}

/// Access key and date of a SigV4 `Authorization` credential, if both are
/// plain tokens (anything else would not survive into a new header).
fn key_and_date(auth: &str) -> Option<(String, String)> {
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let key = parts.next()?;
    let date = parts.next()?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (plain(key) && plain(date)).then(|| (key.to_string(), date.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_headers_rescope_the_client_credential() {
        let mut client = HeaderMap::new();
        client.insert(
            AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=ASIAKEY/20260102/eu-west-1/eks/aws4_request, \
                 SignedHeaders=host, Signature=abc",
            ),
        );
        client.insert("x-amz-security-token", HeaderValue::from_static("tok"));
        let h = ec2_headers(&client, "eu-west-1");
        assert_eq!(
            crate::core::ops::credential_scope(&h),
            Some(("eu-west-1".to_string(), "ec2".to_string()))
        );
        let auth = h.get(AUTHORIZATION).unwrap().to_str().unwrap();
        assert!(auth.contains("Credential=ASIAKEY/20260102/eu-west-1/ec2/aws4_request"));
        assert_eq!(h.get("x-amz-security-token").unwrap(), "tok");
        assert!(h.get("host").is_none(), "the client's Host names EKS");

        let h = ec2_headers(&HeaderMap::new(), "us-west-2");
        assert_eq!(
            crate::core::ops::credential_scope(&h),
            Some(("us-west-2".to_string(), "ec2".to_string()))
        );
    }
}
