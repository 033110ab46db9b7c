//! Working out which AWS operation a raw HTTP request is.
//!
//! Two wire protocols reach the proxy: the form-encoded Query protocol (EC2,
//! IAM, CloudFormation, STS all `POST /` with `Action=...`) and EKS's
//! REST-JSON protocol, where the operation is implied by method and path.
//! The error shape an injected fault must have depends on the protocol, and
//! EC2's Query dialect differs from the other Query services, hence three
//! protocol kinds.

use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use hyper::Method;

/// The wire protocol of a request, as far as error shapes are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's Query dialect: errors are `<Response><Errors><Error>…`.
    Ec2Query,
    /// IAM, CloudFormation, STS: errors are `<ErrorResponse><Error>…`.
    AwsQuery,
    /// EKS: JSON errors, the type in the `x-amzn-ErrorType` header.
    RestJson,
}

/// What the proxy knows about one request.
#[derive(Clone, Debug)]
pub struct OpInfo {
    pub protocol: Protocol,
    /// Operation name, e.g. `CreateVpc`, or `Eks:PATCH /x` when unknown.
    pub op: String,
    /// Region from the SigV4 credential scope; the proxy keys its per-resource
    /// state by it because moto keeps a separate backend per region.
    pub region: String,
    /// Decoded Query parameters (query string plus form body).
    pub params: Vec<(String, String)>,
    /// Decoded path segments, used for EKS resource names.
    pub segments: Vec<String>,
    pub mutating: bool,
}

impl OpInfo {
    /// First value of a Query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path segment `i` (EKS cluster name is 1, nodegroup name is 3).
    pub fn segment(&self, i: usize) -> Option<&str> {
        self.segments.get(i).map(String::as_str)
    }
}

/// Decodes `application/x-www-form-urlencoded` text. Malformed escapes are
/// kept literally rather than rejected: the proxy only reads, moto judges.
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Percent-decodes; `plus_is_space` is true for form data, false for paths.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `(region, service)` from `Authorization: AWS4-HMAC-SHA256
/// Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
pub fn credential_scope(headers: &HeaderMap) -> Option<(String, String)> {
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let _key = parts.next()?;
    let _date = parts.next()?;
    let region = parts.next()?;
    let service = parts.next()?;
    Some((region.to_string(), service.to_string()))
}

/// Service from the Query `Version`, for requests without a credential scope.
fn service_from_version(version: Option<&str>) -> &'static str {
    match version {
        Some("2016-11-15") => "ec2",
        Some("2010-05-08") => "iam",
        Some("2010-05-15") => "cloudformation",
        Some("2011-06-15") => "sts",
        _ => "unknown",
    }
}

/// Read-only operations by AWS naming convention; anything else may change
/// state and counts as mutating.
pub fn is_mutating(op: &str) -> bool {
    !(op.starts_with("Describe") || op.starts_with("List") || op.starts_with("Get"))
}

/// Classifies a request. `path` is the raw (still percent-encoded) path.
pub fn identify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> OpInfo {
    let scope = credential_scope(headers);
    let region = scope
        .as_ref()
        .map(|(r, _)| r.clone())
        .unwrap_or_else(|| "us-east-1".to_string());

    let mut params = query.map(form_decode).unwrap_or_default();
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.contains("x-www-form-urlencoded"))
        .unwrap_or(false);
    // Query-protocol services always POST to "/"; some clients omit the
    // content type, so a form-looking body on "/" is accepted too.
    if is_form || (path == "/" && body.starts_with(b"Action=")) {
        params.extend(form_decode(&String::from_utf8_lossy(body)));
    }
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();

    let action = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone());
    if let Some(op) = action {
        let service = scope.as_ref().map(|(_, s)| s.as_str()).unwrap_or_else(|| {
            service_from_version(
                params
                    .iter()
                    .find(|(k, _)| k == "Version")
                    .map(|(_, v)| v.as_str()),
            )
        });
        let protocol = if service == "ec2" {
            Protocol::Ec2Query
        } else {
            Protocol::AwsQuery
        };
        let mutating = is_mutating(&op);
        return OpInfo {
            protocol,
            op,
            region,
            params,
            segments,
            mutating,
        };
    }

    let (op, mutating) = match eks_operation(method, &segments) {
        Some(op) => {
            let m = is_mutating(op);
            (op.to_string(), m)
        }
        // Unknown REST calls are named after method and path; a GET or HEAD
        // cannot change state in REST-JSON, everything else is assumed to.
        None => (
            format!("Eks:{} {}", method, path),
            !(method == Method::GET || method == Method::HEAD),
        ),
    };
    OpInfo {
        protocol: Protocol::RestJson,
        op,
        region,
        params,
        segments,
        mutating,
    }
}

/// EKS REST routes (the subset of the API eksnet and its tests touch).
fn eks_operation(method: &Method, seg: &[String]) -> Option<&'static str> {
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let m = method.as_str();
    let op = match (m, s.as_slice()) {
        ("POST", ["clusters"]) => "CreateCluster",
        ("GET", ["clusters"]) => "ListClusters",
        ("GET", ["clusters", _]) => "DescribeCluster",
        ("DELETE", ["clusters", _]) => "DeleteCluster",
        ("POST", ["clusters", _, "update-config"]) => "UpdateClusterConfig",
        ("POST", ["clusters", _, "updates"]) => "UpdateClusterVersion",
        ("GET", ["clusters", _, "updates"]) => "ListUpdates",
        ("GET", ["clusters", _, "updates", _]) => "DescribeUpdate",
        ("POST", ["clusters", _, "node-groups"]) => "CreateNodegroup",
        ("GET", ["clusters", _, "node-groups"]) => "ListNodegroups",
        ("GET", ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
        ("DELETE", ["clusters", _, "node-groups", _]) => "DeleteNodegroup",
        ("POST", ["clusters", _, "node-groups", _, "update-config"]) => "UpdateNodegroupConfig",
        ("POST", ["clusters", _, "node-groups", _, "update-version"]) => "UpdateNodegroupVersion",
        ("POST", ["clusters", _, "addons"]) => "CreateAddon",
        ("GET", ["clusters", _, "addons"]) => "ListAddons",
        ("GET", ["clusters", _, "addons", _]) => "DescribeAddon",
        ("DELETE", ["clusters", _, "addons", _]) => "DeleteAddon",
        ("POST", ["clusters", _, "addons", _, "update"]) => "UpdateAddon",
        ("GET", ["addons", "supported-versions"]) => "DescribeAddonVersions",
        ("GET", ["addons", "configuration-schemas"]) => "DescribeAddonConfiguration",
        // The ARN is one percent-encoded segment on the wire, but a client
        // that does not encode "/" would split it, so accept any length.
        ("POST", ["tags", _, ..]) => "TagResource",
        ("DELETE", ["tags", _, ..]) => "UntagResource",
        ("GET", ["tags", _, ..]) => "ListTagsForResource",
        _ => return None,
    };
    Some(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(service: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=x"
        );
        if let Ok(v) = HeaderValue::from_str(&auth) {
            h.insert(AUTHORIZATION, v);
        }
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        h
    }

    #[test]
    fn query_protocol_from_body() {
        let i = identify(
            &Method::POST,
            "/",
            None,
            &headers("ec2"),
            b"Action=DeleteSubnet&SubnetId=subnet-1&Version=2016-11-15",
        );
        assert_eq!(i.op, "DeleteSubnet");
        assert_eq!(i.protocol, Protocol::Ec2Query);
        assert_eq!(i.region, "eu-west-1");
        assert_eq!(i.param("SubnetId"), Some("subnet-1"));
        assert!(i.mutating);

        let i = identify(
            &Method::POST,
            "/",
            None,
            &headers("iam"),
            b"Action=GetRole&RoleName=a%2Bb+c",
        );
        assert_eq!(i.protocol, Protocol::AwsQuery);
        assert_eq!(i.param("RoleName"), Some("a+b c"));
        assert!(!i.mutating);
    }

    #[test]
    fn query_protocol_from_query_string_and_version() {
        let i = identify(
            &Method::GET,
            "/",
            Some("Action=DescribeVpcs&Version=2016-11-15"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(i.op, "DescribeVpcs");
        assert_eq!(i.protocol, Protocol::Ec2Query);
        assert_eq!(i.region, "us-east-1");
    }

    #[test]
    fn eks_routes() {
        let h = headers("eks");
        let cases = [
            (Method::POST, "/clusters", "CreateCluster", true),
            (Method::GET, "/clusters", "ListClusters", false),
            (Method::GET, "/clusters/c1", "DescribeCluster", false),
            (Method::DELETE, "/clusters/c1", "DeleteCluster", true),
            (
                Method::POST,
                "/clusters/c1/update-config",
                "UpdateClusterConfig",
                true,
            ),
            (
                Method::POST,
                "/clusters/c1/updates",
                "UpdateClusterVersion",
                true,
            ),
            (
                Method::POST,
                "/clusters/c1/node-groups",
                "CreateNodegroup",
                true,
            ),
            (
                Method::GET,
                "/clusters/c1/node-groups",
                "ListNodegroups",
                false,
            ),
            (
                Method::GET,
                "/clusters/c1/node-groups/n",
                "DescribeNodegroup",
                false,
            ),
            (
                Method::DELETE,
                "/clusters/c1/node-groups/n",
                "DeleteNodegroup",
                true,
            ),
            (
                Method::POST,
                "/clusters/c1/node-groups/n/update-config",
                "UpdateNodegroupConfig",
                true,
            ),
            (
                Method::POST,
                "/tags/arn%3Aaws%3Aeks%3Aus-east-1%3A1%3Acluster%2Fc1",
                "TagResource",
                true,
            ),
            (Method::DELETE, "/tags/arn", "UntagResource", true),
            (Method::POST, "/clusters/c1/addons", "CreateAddon", true),
            (Method::GET, "/clusters/c1/addons", "ListAddons", false),
            (
                Method::GET,
                "/clusters/c1/addons/vpc-cni",
                "DescribeAddon",
                false,
            ),
            (
                Method::DELETE,
                "/clusters/c1/addons/vpc-cni",
                "DeleteAddon",
                true,
            ),
            (
                Method::POST,
                "/clusters/c1/addons/vpc-cni/update",
                "UpdateAddon",
                true,
            ),
            (
                Method::GET,
                "/addons/supported-versions",
                "DescribeAddonVersions",
                false,
            ),
            (
                Method::GET,
                "/addons/configuration-schemas",
                "DescribeAddonConfiguration",
                false,
            ),
            (
                Method::GET,
                "/clusters/c1/updates/u1",
                "DescribeUpdate",
                false,
            ),
            (Method::GET, "/tags/arn", "ListTagsForResource", false),
        ];
        for (m, p, op, mutating) in cases {
            let i = identify(&m, p, None, &h, b"{}");
            assert_eq!(i.op, op, "{m} {p}");
            assert_eq!(i.mutating, mutating, "{m} {p}");
            assert_eq!(i.protocol, Protocol::RestJson);
        }
        let i = identify(&Method::PUT, "/weird/x", None, &h, b"");
        assert_eq!(i.op, "Eks:PUT /weird/x");
        assert!(i.mutating);
        let i = identify(&Method::GET, "/weird", None, &h, b"");
        assert!(!i.mutating);
        let i = identify(&Method::GET, "/clusters/a%2Db", None, &h, b"");
        assert_eq!(i.segment(1), Some("a-b"));
    }

    #[test]
    fn percent_decode_edge_cases() {
        assert_eq!(percent_decode("%", true), "%");
        assert_eq!(percent_decode("%4", true), "%4");
        assert_eq!(percent_decode("%41", true), "A");
        assert_eq!(percent_decode("%zz+", false), "%zz+");
        assert_eq!(form_decode("a&b=1&=2").len(), 3);
    }
}
