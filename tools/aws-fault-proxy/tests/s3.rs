//! S3 through the proxy with aws-sdk-s3 (path-style, as eksnet's state backend uses it)
//! against a real moto: operation names, conditional writes and the headers they need,
//! S3-shaped faults, and lost answers (a write carried out whose answer never arrives).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use aws_smithy_http_client::tls;
use common::*;
use serde_json::{json, Value};

/// An S3 client for `port` (the proxy, or moto itself to look behind the proxy) with the
/// standard retry strategy, `max_attempts` attempts and a short backoff.
fn client(port: u16, max_attempts: u32) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .force_path_style(true)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(20)),
        )
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// HTTP status of an SDK error's answer, if one arrived.
fn status<E, R: HttpStatus>(err: &SdkError<E, R>) -> Option<u16> {
    err.raw_response().map(HttpStatus::status_code)
}

trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// `(op, status, fault)` of every request the proxy recorded, in order.
fn records(proxy: &Proxy) -> Vec<(String, u64, Value)> {
    proxy.stats()["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["op"].as_str().unwrap_or_default().to_string(),
                r["status"].as_u64().unwrap_or_default(),
                r["fault"].clone(),
            )
        })
        .collect()
}

fn rec(op: &str, status: u64, fault: Option<&str>) -> (String, u64, Value) {
    (
        op.to_string(),
        status,
        fault.map_or(Value::Null, Value::from),
    )
}

/// The object's body as moto holds it, read from moto directly.
async fn moto_body(moto: &Moto, bucket: &str, key: &str) -> Vec<u8> {
    let out = client(moto.port, 1)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("GetObject from moto");
    out.body
        .collect()
        .await
        .expect("object body")
        .into_bytes()
        .to_vec()
}

#[test]
fn conditional_create_is_refused_the_second_time_and_ops_are_named() {
    let (moto, proxy) = moto_and_proxy(&["s3"], &[]);
    let s3 = client(proxy.port, 1);
    runtime().block_on(async {
        s3.create_bucket()
            .bucket("eksnet-state")
            .send()
            .await
            .expect("CreateBucket");
        let out = s3
            .put_object()
            .bucket("eksnet-state")
            .key("envs/dev/lock")
            .body(ByteStream::from_static(b"first"))
            .if_none_match("*")
            .send()
            .await
            .expect("first PutObject with If-None-Match: *");
        // moto's ETag (the MD5 of the body), quotes and all.
        assert_eq!(out.e_tag(), Some("\"8b04d5e3775d298e78455efc5ca404d5\""));
        let err = s3
            .put_object()
            .bucket("eksnet-state")
            .key("envs/dev/lock")
            .body(ByteStream::from_static(b"second"))
            .if_none_match("*")
            .send()
            .await
            .expect_err("the object exists");
        assert_eq!(status(&err), Some(412), "{err:?}");
        assert_eq!(err.code(), Some("PreconditionFailed"), "{err:?}");
        assert_eq!(
            moto_body(&moto, "eksnet-state", "envs/dev/lock").await,
            b"first"
        );
    });
    assert_eq!(
        records(&proxy),
        [
            rec("CreateBucket", 200, None),
            rec("PutObject", 200, None),
            rec("PutObject", 412, None),
        ]
    );
    let stats = proxy.stats();
    assert_eq!(
        stats["by_operation"],
        json!({"CreateBucket": 1, "PutObject": 2})
    );
    assert_eq!(stats["mutating"], 3);
}

#[test]
fn if_match_guards_put_and_delete_and_object_headers_pass_through() {
    let (_moto, proxy) = moto_and_proxy(&["s3"], &[]);
    let s3 = client(proxy.port, 1);
    runtime().block_on(async {
        s3.create_bucket()
            .bucket("bkt")
            .send()
            .await
            .expect("CreateBucket");
        let v1 = s3
            .put_object()
            .bucket("bkt")
            .key("state.json")
            .body(ByteStream::from_static(b"v1"))
            .send()
            .await
            .expect("PutObject v1");
        let etag1 = v1.e_tag().expect("ETag of v1").to_string();

        let err = s3
            .put_object()
            .bucket("bkt")
            .key("state.json")
            .body(ByteStream::from_static(b"v2"))
            .if_match("\"0123456789abcdef0123456789abcdef\"")
            .send()
            .await
            .expect_err("wrong ETag");
        assert_eq!(status(&err), Some(412), "{err:?}");
        assert_eq!(err.code(), Some("PreconditionFailed"));

        let v2 = s3
            .put_object()
            .bucket("bkt")
            .key("state.json")
            .body(ByteStream::from_static(b"v2!"))
            .if_match(&etag1)
            .send()
            .await
            .expect("PutObject with the right ETag");
        let etag2 = v2.e_tag().expect("ETag of v2").to_string();
        assert_ne!(etag1, etag2);

        // HeadObject: the answer has no body, so its Content-Length (the object's size)
        // must be moto's, not the length of the empty body the proxy sends on.
        let head = s3
            .head_object()
            .bucket("bkt")
            .key("state.json")
            .send()
            .await
            .expect("HeadObject");
        assert_eq!(head.e_tag(), Some(etag2.as_str()));
        assert_eq!(head.content_length(), Some(3));
        assert!(head.last_modified().is_some());

        let err = s3
            .delete_object()
            .bucket("bkt")
            .key("state.json")
            .if_match(&etag1)
            .send()
            .await
            .expect_err("stale ETag");
        assert_eq!(status(&err), Some(412), "{err:?}");
        s3.delete_object()
            .bucket("bkt")
            .key("state.json")
            .if_match(&etag2)
            .send()
            .await
            .expect("DeleteObject with the current ETag");
        let err = s3
            .head_object()
            .bucket("bkt")
            .key("state.json")
            .send()
            .await
            .expect_err("deleted");
        assert_eq!(status(&err), Some(404), "{err:?}");
    });
    let ops: Vec<(String, u64)> = records(&proxy)
        .into_iter()
        .map(|(op, status, _)| (op, status))
        .collect();
    let expected = [
        ("CreateBucket", 200),
        ("PutObject", 200),
        ("PutObject", 412),
        ("PutObject", 200),
        ("HeadObject", 200),
        ("DeleteObject", 412),
        ("DeleteObject", 204),
        ("HeadObject", 404),
    ];
    let expected: Vec<(String, u64)> = expected
        .iter()
        .map(|(op, s)| (op.to_string(), *s))
        .collect();
    assert_eq!(ops, expected);
}

#[test]
fn versioning_listing_and_streamed_uploads() {
    let (moto, proxy) = moto_and_proxy(&["s3"], &[]);
    let s3 = client(proxy.port, 1);
    // Larger than aws-sdk-s3's 64 KiB chunks, not text, so that a body mangled on the way
    // (chunk framing, a lossy conversion, a cut) cannot go unnoticed.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = std::env::temp_dir().join(format!("aws-fault-proxy-s3-{}", std::process::id()));
    std::fs::write(&file, &big).expect("write temp file");
    runtime().block_on(async {
        s3.create_bucket()
            .bucket("vbkt")
            .send()
            .await
            .expect("CreateBucket");
        s3.head_bucket()
            .bucket("vbkt")
            .send()
            .await
            .expect("HeadBucket");
        s3.put_bucket_versioning()
            .bucket("vbkt")
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("PutBucketVersioning");
        let v = s3
            .get_bucket_versioning()
            .bucket("vbkt")
            .send()
            .await
            .expect("GetBucketVersioning");
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));

        let first = s3
            .put_object()
            .bucket("vbkt")
            .key("dir/state")
            .body(ByteStream::from_static(b"one"))
            .send()
            .await
            .expect("PutObject one");
        let first_version = first.version_id().expect("x-amz-version-id").to_string();
        // A streamed body: over plain HTTP aws-sdk-s3 sends it aws-chunked, each chunk
        // signed, with the CRC32 checksum in a signed trailer.
        let second = s3
            .put_object()
            .bucket("vbkt")
            .key("dir/state")
            .body(ByteStream::from_path(&file).await.expect("file body"))
            .send()
            .await
            .expect("PutObject streamed");
        assert!(second.version_id().is_some_and(|v| v != first_version));

        let old = s3
            .get_object()
            .bucket("vbkt")
            .key("dir/state")
            .version_id(&first_version)
            .send()
            .await
            .expect("GetObject of the first version");
        assert_eq!(old.version_id(), Some(first_version.as_str()));
        let old = old.body.collect().await.expect("body").into_bytes();
        assert_eq!(&old[..], b"one");
        let new = s3
            .get_object()
            .bucket("vbkt")
            .key("dir/state")
            .send()
            .await
            .expect("GetObject");
        assert_eq!(new.content_length(), Some(big.len() as i64));
        let new = new.body.collect().await.expect("body").into_bytes();
        assert!(new[..] == big[..], "the streamed body arrived changed");
        assert!(moto_body(&moto, "vbkt", "dir/state").await == big);

        let versions = s3
            .list_object_versions()
            .bucket("vbkt")
            .prefix("dir/")
            .send()
            .await
            .expect("ListObjectVersions");
        assert_eq!(versions.versions().len(), 2);
        let listed = s3
            .list_objects_v2()
            .bucket("vbkt")
            .prefix("dir/")
            .send()
            .await
            .expect("ListObjectsV2");
        let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, ["dir/state"]);
    });
    let _ = std::fs::remove_file(&file);
    let ops: Vec<String> = records(&proxy).into_iter().map(|(op, _, _)| op).collect();
    assert_eq!(
        ops,
        [
            "CreateBucket",
            "HeadBucket",
            "PutBucketVersioning",
            "GetBucketVersioning",
            "PutObject",
            "PutObject",
            "GetObject",
            "GetObject",
            "ListObjectVersions",
            "ListObjectsV2",
        ]
    );
}

#[test]
fn lost_answer_is_retried_by_the_sdk_after_the_write_was_made() {
    let (moto, proxy) = moto_and_proxy(&["s3"], &[]);
    // Standard retries, as eksnet uses them.
    let s3 = client(proxy.port, 3);
    runtime().block_on(async {
        s3.create_bucket()
            .bucket("bkt")
            .send()
            .await
            .expect("CreateBucket");
    });
    let cfg = proxy.config(json!({"lose_answer_op": "PutObject", "lose_answer_count": 1}));
    assert_eq!(cfg["lose_answer_count"], 1);
    runtime().block_on(async {
        let err = s3
            .put_object()
            .bucket("bkt")
            .key("lock")
            .body(ByteStream::from_static(b"first attempt"))
            .if_none_match("*")
            .send()
            .await
            .expect_err("the retry finds the object the first attempt made");
        assert_eq!(status(&err), Some(412), "{err:?}");
        assert_eq!(err.code(), Some("PreconditionFailed"));
        assert_eq!(moto_body(&moto, "bkt", "lock").await, b"first attempt");
    });
    assert_eq!(
        records(&proxy),
        [
            rec("CreateBucket", 200, None),
            // moto made the object; the client got no answer.
            rec("PutObject", 200, Some("lost_answer")),
            rec("PutObject", 412, None),
        ]
    );
    // Used up: the next PutObject is answered.
    assert_eq!(proxy.config(json!({}))["lose_answer_count"], 0);
    runtime().block_on(async {
        s3.put_object()
            .bucket("bkt")
            .key("other")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("PutObject answered");
    });
    assert_eq!(records(&proxy).len(), 4);
}

#[test]
fn lost_answer_is_a_closed_connection_seen_as_a_transient_dispatch_failure() {
    let (_moto, proxy) = moto_and_proxy(&["s3"], &[]);
    let s3 = client(proxy.port, 1);
    runtime().block_on(async {
        s3.create_bucket()
            .bucket("bkt")
            .send()
            .await
            .expect("CreateBucket");
    });
    proxy.config(json!({"lose_answer_op": "PutObject", "lose_answer_count": 2}));

    // On the socket: the request is read in full, then the connection is closed with not a
    // byte of an answer.
    let body = b"raw body";
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, \
                SignedHeaders=host, Signature=0000";
    let head = format!(
        "PUT /bkt/raw HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\n\
         X-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\nContent-Length: {}\r\n\r\n",
        proxy.port,
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body).expect("write body");
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => assert!(
            answer.is_empty(),
            "an answer arrived: {:?}",
            String::from_utf8_lossy(&answer)
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // The write was made all the same.
    let r = common::s3(proxy.port, "GET", "/bkt/raw", &[], b"");
    assert_eq!((r.status, r.body.as_str()), (200, "raw body"));

    // What the SDK makes of it with a single attempt: a dispatch failure (no answer), of a
    // kind its retry classifier retries.
    runtime().block_on(async {
        let err = s3
            .put_object()
            .bucket("bkt")
            .key("sdk")
            .body(ByteStream::from_static(b"sdk"))
            .send()
            .await
            .expect_err("answer lost");
        let SdkError::DispatchFailure(failure) = &err else {
            panic!("not a dispatch failure: {err:?}");
        };
        let connector = failure.as_connector_error().expect("a connector error");
        // `ErrorKind` (aws-smithy-types) is not re-exported by aws-sdk-s3; its Debug is
        // enough to tell the kind.
        let kind = format!("{:?}", connector.as_other());
        assert!(
            connector.is_io() || kind == "Some(TransientError)",
            "{connector:?}"
        );
        eprintln!(
            "lost answer as the SDK sees it: {}",
            aws_sdk_s3::error::DisplayErrorContext(&err)
        );
    });
    let lost: Vec<_> = records(&proxy)
        .into_iter()
        .filter(|(_, _, fault)| fault == "lost_answer")
        .collect();
    assert_eq!(
        lost,
        [
            rec("PutObject", 200, Some("lost_answer")),
            rec("PutObject", 200, Some("lost_answer"))
        ]
    );
    // Re-armed by setting the count again.
    proxy.config(json!({"lose_answer_count": 1}));
    runtime().block_on(async {
        let err = s3
            .put_object()
            .bucket("bkt")
            .key("sdk")
            .body(ByteStream::from_static(b"again"))
            .send()
            .await
            .expect_err("answer lost again");
        assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    });
}

#[test]
fn lost_answer_comes_after_the_kill_hook_has_counted_the_write() {
    let (_moto, proxy) = moto_and_proxy(&["s3"], &[]);
    let mut sleeper = common::Proc(
        std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = sleeper.0.id();
    let r = common::s3(proxy.port, "PUT", "/bkt", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    proxy.config(json!({
        "lose_answer_op": "PutObject", "lose_answer_count": 1,
        "kill_after_mutating": 1, "kill_op": "PutObject", "kill_pid": pid
    }));
    let s3 = client(proxy.port, 1);
    runtime().block_on(async {
        let err = s3
            .put_object()
            .bucket("bkt")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("answer lost");
        assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    });
    let stats = proxy.stats();
    assert_eq!(stats["kill"]["killed"], true, "{stats}");
    assert_eq!(stats["kill"]["op"], "PutObject");
    assert_eq!(stats["kill"]["after_seq"], 2);
    let status = sleeper.0.wait().expect("wait for sleep");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn throttling_and_server_errors_have_s3_shapes() {
    let (_moto, proxy) = moto_and_proxy(&["s3"], &[]);
    runtime().block_on(async {
        client(proxy.port, 1)
            .create_bucket()
            .bucket("bkt")
            .send()
            .await
            .expect("CreateBucket");
    });
    proxy.config(json!({"throttle_fraction": 1.0}));
    runtime().block_on(async {
        let err = client(proxy.port, 1)
            .put_object()
            .bucket("bkt")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("throttled");
        assert_eq!(status(&err), Some(503), "{err:?}");
        assert_eq!(err.code(), Some("SlowDown"), "{err:?}");
        assert_eq!(err.message(), Some("Please reduce your request rate."));
        let service = err.as_service_error().expect("a service error");
        let id = aws_sdk_s3::operation::RequestId::request_id(service).unwrap_or_default();
        assert_eq!(id.len(), 16, "x-amz-request-id {id:?}");
        // With retries the SDK tries again (SlowDown is throttling to aws-runtime's retry
        // classifier, and 503 transient), and gives up after its attempts.
        let err = client(proxy.port, 3)
            .put_object()
            .bucket("bkt")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("throttled three times");
        assert_eq!(err.code(), Some("SlowDown"));
    });
    let throttled = records(&proxy)
        .iter()
        .filter(|r| *r == &rec("PutObject", 503, Some("throttle")))
        .count();
    assert_eq!(throttled, 4);

    proxy.config(json!({"throttle_fraction": 0.0, "server_error_fraction": 1.0}));
    runtime().block_on(async {
        let err = client(proxy.port, 1)
            .get_object()
            .bucket("bkt")
            .key("k")
            .send()
            .await
            .expect_err("server error");
        let expected = match status(&err) {
            Some(500) => "InternalError",
            Some(503) => "ServiceUnavailable",
            other => panic!("status {other:?}: {err:?}"),
        };
        assert_eq!(err.code(), Some(expected), "{err:?}");
    });
    let last = records(&proxy).pop().expect("a record");
    assert_eq!(
        (last.0.as_str(), &last.2),
        ("GetObject", &json!("server_error"))
    );
}
