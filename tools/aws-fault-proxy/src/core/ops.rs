//! Working out which AWS operation a raw HTTP request is.
//!
//! Three wire protocols reach the proxy: the form-encoded Query protocol (EC2,
//! IAM, CloudFormation, STS all `POST /` with `Action=...`), EKS's REST-JSON
//! protocol and S3's REST-XML protocol (path-style: `/{bucket}/{key}`), where
//! the operation is implied by method, path and query. The error shape an
//! injected fault must have depends on the protocol, and EC2's Query dialect
//! differs from the other Query services, hence four protocol kinds.

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
    /// S3 (REST-XML, path-style): errors are `<Error><Code>…`.
    S3,
}

/// What the proxy knows about one request.
#[derive(Clone, Debug)]
pub struct OpInfo {
    pub protocol: Protocol,
    /// Operation name, e.g. `CreateVpc`, or `Eks:PATCH /x` / `S3:POST /b` when unknown.
    pub op: String,
    /// Region from the SigV4 credential scope; the proxy keys its per-resource
    /// state by it because moto keeps a separate backend per region.
    pub region: String,
    /// Decoded Query parameters (query string plus form body).
    pub params: Vec<(String, String)>,
    /// Decoded path segments, used for EKS resource names. For S3 at most two: the bucket
    /// and, if the path names one, the whole object key (which may itself hold `/`).
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

    /// Path segment `i` (EKS cluster name is 1, nodegroup name is 3; S3 bucket is 0,
    /// object key 1).
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

/// The same from a presigned URL's `X-Amz-Credential` query parameter (already decoded).
fn query_credential_scope(params: &[(String, String)]) -> Option<(String, String)> {
    let cred = params
        .iter()
        .find(|(k, _)| k == "X-Amz-Credential")
        .map(|(_, v)| v.as_str())?;
    let mut parts = cred.split('/');
    let (_key, _date) = (parts.next()?, parts.next()?);
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
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
    let mut params = query.map(form_decode).unwrap_or_default();
    let scope = credential_scope(headers).or_else(|| query_credential_scope(&params));
    let region = scope
        .as_ref()
        .map(|(r, _)| r.clone())
        .unwrap_or_else(|| "us-east-1".to_string());
    // S3 before anything else: its bodies are object data, never form parameters (an
    // object uploaded as `x-www-form-urlencoded` must not be read as `Action=...`).
    if scope.as_ref().is_some_and(|(_, s)| s == "s3") {
        return identify_s3(method, path, params, headers, region);
    }
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

/// S3 REST-XML, path-style (`/{bucket}/{key}`, as aws-sdk-s3 sends with
/// `force_path_style(true)`): the operation follows from method, whether there is a key,
/// and the query's sub-resources. aws-sdk-s3 adds `x-id=OpName` to many requests; it names
/// requests the rules below do not know, but is never needed, so other clients (and
/// presigned URLs, which lack it) are named the same.
fn identify_s3(
    method: &Method,
    path: &str,
    params: Vec<(String, String)>,
    headers: &HeaderMap,
    region: String,
) -> OpInfo {
    // The key is the raw rest of the path, decoded as a whole: splitting on `/` and
    // joining again would lose the empty segments of keys like `a//b` or `dir/`.
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) => (b, Some(k).filter(|k| !k.is_empty())),
        None => (rest, None),
    };
    let mut segments = Vec::new();
    if !bucket.is_empty() {
        segments.push(percent_decode(bucket, false));
        if let Some(key) = key {
            segments.push(percent_decode(key, false));
        }
    }
    let op = s3_operation(method, &segments, &params, headers)
        .map(str::to_string)
        .or_else(|| {
            params
                .iter()
                .find(|(k, _)| k == "x-id")
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
        .unwrap_or_else(|| format!("S3:{method} {path}"));
    OpInfo {
        protocol: Protocol::S3,
        op,
        region,
        params,
        segments,
        // S3 names do not follow the Describe/List/Get convention everywhere (HeadObject,
        // and an unknown request has no name to judge by); the method does.
        mutating: !(method == Method::GET || method == Method::HEAD),
    }
}

/// The S3 operations eksnet uses. `None` for anything else, including a known route with a
/// sub-resource in its query (`?tagging`, `?uploadId=`, ...), which is another operation.
fn s3_operation(
    method: &Method,
    segments: &[String],
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Option<&'static str> {
    // Query keys that do not change which operation it is: `x-id` is aws-sdk-s3's
    // operation hint, the `X-Amz-*` ones are a presigned URL's signature.
    let keys: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != "x-id" && !k.starts_with("X-Amz-"))
        .collect();
    let has = |name: &str| keys.contains(&name);
    let only = |allowed: &dyn Fn(&str) -> bool| keys.iter().all(|k| allowed(k));
    // GetObject and HeadObject take these; everything else in their query is a
    // sub-resource (`acl`, `attributes`, `tagging`, `uploadId`, ...).
    let read_params =
        |k: &str| matches!(k, "versionId" | "partNumber") || k.starts_with("response-");
    match (method.as_str(), segments) {
        ("PUT", [_, _]) => {
            // A copy source makes it CopyObject (or UploadPartCopy).
            (keys.is_empty() && !headers.contains_key("x-amz-copy-source")).then_some("PutObject")
        }
        ("GET", [_, _]) => only(&read_params).then_some("GetObject"),
        ("HEAD", [_, _]) => only(&read_params).then_some("HeadObject"),
        ("DELETE", [_, _]) => only(&|k| k == "versionId").then_some("DeleteObject"),
        ("GET", [_]) if has("versions") => Some("ListObjectVersions"),
        ("GET", [_]) if has("versioning") => Some("GetBucketVersioning"),
        ("GET", [_]) if params.iter().any(|(k, v)| k == "list-type" && v == "2") => {
            Some("ListObjectsV2")
        }
        ("PUT", [_]) if keys.is_empty() => Some("CreateBucket"),
        ("PUT", [_]) if keys == ["versioning"] => Some("PutBucketVersioning"),
        ("HEAD", [_]) if keys.is_empty() => Some("HeadBucket"),
        _ => None,
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
        ("GET", ["clusters", _, "pod-identity-associations"]) => "ListPodIdentityAssociations",
        ("POST", ["clusters", _, "access-entries"]) => "CreateAccessEntry",
        ("GET", ["clusters", _, "access-entries"]) => "ListAccessEntries",
        // The principal ARN, as for tags: one encoded segment, or split by a client; its
        // access policies below it.
        ("POST", ["clusters", _, "access-entries", _, .., "access-policies"]) => {
            "AssociateAccessPolicy"
        }
        ("GET", ["clusters", _, "access-entries", _, .., "access-policies"]) => {
            "ListAssociatedAccessPolicies"
        }
        ("DELETE", ["clusters", _, "access-entries", _, .., "access-policies", _]) => {
            "DisassociateAccessPolicy"
        }
        ("POST", ["clusters", _, "access-entries", _, ..]) => "UpdateAccessEntry",
        ("GET", ["clusters", _, "access-entries", _, ..]) => "DescribeAccessEntry",
        ("DELETE", ["clusters", _, "access-entries", _, ..]) => "DeleteAccessEntry",
        ("GET", ["clusters", _, "pod-identity-associations", _]) => {
            "DescribePodIdentityAssociation"
        }
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
    fn s3_operations_path_style() {
        let h = headers("s3");
        let cases = [
            (
                Method::PUT,
                "/bkt/state/a.json",
                Some("x-id=PutObject"),
                "PutObject",
                true,
            ),
            (Method::PUT, "/bkt/state/a.json", None, "PutObject", true),
            (
                Method::GET,
                "/bkt/k",
                Some("x-id=GetObject"),
                "GetObject",
                false,
            ),
            (
                Method::GET,
                "/bkt/k",
                Some("versionId=v1&x-id=GetObject"),
                "GetObject",
                false,
            ),
            (Method::HEAD, "/bkt/k", None, "HeadObject", false),
            (
                Method::HEAD,
                "/bkt/k",
                Some("versionId=v1"),
                "HeadObject",
                false,
            ),
            (
                Method::DELETE,
                "/bkt/k",
                Some("x-id=DeleteObject"),
                "DeleteObject",
                true,
            ),
            (
                Method::DELETE,
                "/bkt/k",
                Some("versionId=v1"),
                "DeleteObject",
                true,
            ),
            (
                Method::GET,
                "/bkt",
                Some("versions&prefix=state%2F"),
                "ListObjectVersions",
                false,
            ),
            (
                Method::GET,
                "/bkt",
                Some("list-type=2&prefix=x"),
                "ListObjectsV2",
                false,
            ),
            (Method::PUT, "/bkt", None, "CreateBucket", true),
            (
                Method::PUT,
                "/bkt",
                Some("versioning"),
                "PutBucketVersioning",
                true,
            ),
            (
                Method::GET,
                "/bkt",
                Some("versioning"),
                "GetBucketVersioning",
                false,
            ),
            (Method::HEAD, "/bkt", None, "HeadBucket", false),
            // Not one of the known ones: x-id names it when present...
            (
                Method::PUT,
                "/bkt/k",
                Some("tagging&x-id=PutObjectTagging"),
                "PutObjectTagging",
                true,
            ),
            (Method::GET, "/bkt/k", Some("acl"), "S3:GET /bkt/k", false),
            (Method::POST, "/bkt", Some("delete"), "S3:POST /bkt", true),
            (
                Method::DELETE,
                "/bkt/k",
                Some("uploadId=u"),
                "S3:DELETE /bkt/k",
                true,
            ),
            (
                Method::GET,
                "/",
                Some("x-id=ListBuckets"),
                "ListBuckets",
                false,
            ),
            (Method::GET, "/", None, "S3:GET /", false),
        ];
        for (m, p, q, op, mutating) in cases {
            let i = identify(&m, p, q, &h, b"");
            assert_eq!(i.op, op, "{m} {p}?{q:?}");
            assert_eq!(i.mutating, mutating, "{m} {p}?{q:?}");
            assert_eq!(i.protocol, Protocol::S3);
            assert_eq!(i.region, "eu-west-1");
        }
        // A copy source makes a PUT with a key something else than PutObject.
        let mut copy = h.clone();
        copy.insert("x-amz-copy-source", HeaderValue::from_static("/bkt/other"));
        let i = identify(&Method::PUT, "/bkt/k", Some("x-id=CopyObject"), &copy, b"");
        assert_eq!(i.op, "CopyObject");
        // An x-id that is not a plain name is not taken as one.
        let i = identify(&Method::POST, "/bkt/k", Some("x-id=a%20b"), &h, b"");
        assert_eq!(i.op, "S3:POST /bkt/k");
    }

    #[test]
    fn s3_bucket_and_key_segments() {
        let h = headers("s3");
        let i = identify(&Method::PUT, "/bkt/dir/sub%20x/a%2Bb.json", None, &h, b"");
        assert_eq!(i.segments, ["bkt", "dir/sub x/a+b.json"]);
        assert_eq!(
            (i.segment(0), i.segment(1)),
            (Some("bkt"), Some("dir/sub x/a+b.json"))
        );
        // Empty parts of a key are kept; a trailing slash alone names no key.
        let i = identify(&Method::PUT, "/bkt/a//b/", None, &h, b"");
        assert_eq!(i.segment(1), Some("a//b/"));
        let i = identify(&Method::PUT, "/bkt/", None, &h, b"");
        assert_eq!(i.segments, ["bkt"]);
        assert_eq!(i.op, "CreateBucket");
        let i = identify(&Method::GET, "/", None, &h, b"");
        assert!(i.segments.is_empty());
        // An object body is never read as Query parameters, whatever its content type.
        let i = identify(
            &Method::PUT,
            "/bkt/k",
            None,
            &h,
            b"Action=DeleteVpc&VpcId=vpc-1",
        );
        assert_eq!(i.op, "PutObject");
        assert_eq!(i.protocol, Protocol::S3);
        assert!(i.param("Action").is_none());
    }

    #[test]
    fn presigned_url_scope() {
        let i = identify(
            &Method::GET,
            "/bkt/k",
            Some(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Signature=x",
            ),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!((i.protocol, i.op.as_str()), (Protocol::S3, "GetObject"));
        assert_eq!(i.region, "us-west-2");
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
