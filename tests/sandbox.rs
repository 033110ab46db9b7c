//! `scripts/sandbox` through its Rust harness (`tests/common/sandbox.rs`): `up` exports an
//! environment whose every endpoint answers, a second `up` finds the running sandbox, `status`
//! tells running from stopped, and `down` leaves no port answering.

mod common;
use common::sandbox::{Sandbox, SandboxOptions};
use common::*;
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP request with a dummy SigV4 `Authorization` header naming `service` (all moto and
/// the proxy read of it: the service, region and access key). Returns status and body.
fn aws_query(endpoint: &str, service: &str, body: &str) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    );
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20250101/us-west-2/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let mut response = agent
        .post(format!("{endpoint}/"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body)
        .unwrap_or_else(|e| panic!("{service} {body} at {endpoint}: {e}"));
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{service} {body}: reading the answer: {e}"));
    (response.status().as_u16(), text)
}

fn addr(url: &str) -> String {
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"))
        .trim_end_matches('/')
        .to_string()
}

fn answers(url: &str) -> bool {
    TcpStream::connect_timeout(
        &addr(url).parse().expect("HOST:PORT"),
        Duration::from_secs(2),
    )
    .is_ok()
}

#[test]
fn sandbox_up_answers_status_down() {
    let sb = Sandbox::up(SandboxOptions::default());

    let (code, out) = sb.status();
    assert_eq!(code, 0, "status of a running sandbox:\n{out}");
    assert!(out.contains("data plane on"), "status:\n{out}");

    // Every export is set, and the fixed ones have their values.
    for (name, want) in [
        ("AWS_REGION", Some("us-west-2")),
        ("AWS_DEFAULT_REGION", Some("us-west-2")),
        ("AWS_ACCESS_KEY_ID", Some("testing")),
        ("AWS_SECRET_ACCESS_KEY", Some("testing")),
        ("AWS_EC2_METADATA_DISABLED", Some("true")),
        ("EKSNET_POLL_MAX_MS", Some("200")),
        ("AWS_ENDPOINT_URL", None),
        ("EKSNET_KUBECONFIG", None),
        ("EKSNET_KUBE_CONTEXT", None),
        ("KUBECONFIG", None),
        ("EKSNET_SANDBOX_DIR", None),
        ("EKSNET_SANDBOX_MOTO_URL", None),
        ("EKSNET_SANDBOX_PROXY_URL", None),
        ("EKSNET_SANDBOX_KUBE_URL", None),
    ] {
        let value = sb
            .env
            .get(name)
            .unwrap_or_else(|| panic!("{name} not exported: {:?}", sb.env));
        assert!(!value.is_empty(), "{name} is empty");
        if let Some(want) = want {
            assert_eq!(value, want, "{name}");
        }
    }
    assert_eq!(sb.endpoint, sb.proxy_url, "AWS_ENDPOINT_URL is the proxy");
    assert_eq!(sb.env["KUBECONFIG"], sb.env["EKSNET_KUBECONFIG"]);
    let moto_url = sb.env["EKSNET_SANDBOX_MOTO_URL"].clone();

    // AWS through the proxy, to moto.
    let (status, body) = aws_query(
        &sb.endpoint,
        "sts",
        "Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(status, 200, "STS GetCallerIdentity: {body}");
    assert!(body.contains("<Account>"), "GetCallerIdentity: {body}");
    let (status, body) = aws_query(
        &sb.endpoint,
        "ec2",
        "Action=DescribeVpcs&Version=2016-11-15",
    );
    assert_eq!(status, 200, "EC2 DescribeVpcs: {body}");
    assert!(body.contains("vpcSet"), "DescribeVpcs: {body}");
    assert!(answers(&moto_url), "moto at {moto_url}");

    // The proxy's control API: the data plane is on, pointed at the fake.
    let (status, body) = http(&addr(&sb.proxy_url), "GET", "/__proxy/config", "");
    assert_eq!(status, 200, "GET /__proxy/config: {body}");
    let config: serde_json::Value = serde_json::from_str(&body).expect("config JSON");
    assert_eq!(config["data_plane"], true, "{config}");
    assert_eq!(config["kube_url"], sb.kube_url.as_str(), "{config}");

    // The fake Kubernetes API server, and a kubeconfig that names it and the exported context.
    let (status, body) = http(&addr(&sb.kube_url), "GET", "/version", "");
    assert_eq!(status, 200, "GET /version: {body}");
    assert!(body.contains("gitVersion"), "/version: {body}");
    let kubeconfig = std::fs::read_to_string(&sb.kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", sb.kubeconfig.display()));
    assert!(kubeconfig.contains(&sb.kube_url), "{kubeconfig}");
    assert!(
        kubeconfig.contains(&format!(
            "current-context: {}",
            sb.env["EKSNET_KUBE_CONTEXT"]
        )),
        "{kubeconfig}"
    );

    // eksnet with the sandbox's environment.
    let dir = example_dir();
    let r = run_ok(
        sb.cmd(dir.path())
            .args(["plan", "examples/custom-networking.toml"]),
        0,
    );
    assert!(r.stdout.contains("cluster.main"), "plan:\n{}", r.stdout);

    // A second `up` on the same directory starts nothing and prints the same exports.
    let out = sandbox::script()
        .arg("up")
        .arg("--dir")
        .arg(sb.dir())
        .output()
        .expect("run scripts/sandbox up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "second up: {stderr}");
    assert!(stderr.contains("already runs"), "second up: {stderr}");
    assert_eq!(
        sandbox::parse_exports(&String::from_utf8_lossy(&out.stdout)),
        sb.env
    );

    // Down: status says stopped (3) and nothing answers any more.
    sb.down();
    let (code, out) = sb.status();
    assert_eq!(code, 3, "status after down:\n{out}");
    for url in [&sb.endpoint, &sb.kube_url, &moto_url] {
        assert!(!answers(url), "{url} still answers after down");
    }
}
