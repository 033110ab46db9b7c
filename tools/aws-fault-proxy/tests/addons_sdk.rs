//! The add-on answers parsed by aws-sdk-eks, the SDK eksnet uses: every field the proxy
//! sends must land in the SDK's types (a misspelt field name would silently be `None`), and
//! errors must come out as the modelled exceptions with their fields.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_eks::client::Waiters;
use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::operation::create_addon::CreateAddonError;
use aws_sdk_eks::operation::describe_addon::DescribeAddonError;
use aws_sdk_eks::types::{
    AddonStatus, ResolveConflicts, UpdateParamType, UpdateStatus, UpdateType,
};
use aws_smithy_http_client::tls;
use common::*;
use serde_json::json;

fn client(port: u16) -> aws_sdk_eks::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_eks::Config::builder()
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
        .http_client(http)
        .build();
    aws_sdk_eks::Client::from_conf(config)
}

fn near_now(t: Option<&aws_sdk_eks::primitives::DateTime>) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    t.is_some_and(|t| (t.secs() - now).abs() < 60)
}

#[test]
fn aws_sdk_eks_parses_every_addon_answer() {
    let (_moto, proxy) = moto_and_proxy(&["eks"], &["--addon-create-ms", "200"]);
    let p = proxy.port;
    let r = eks(
        p,
        "POST",
        "/clusters",
        Some(json!({
            "name": "sdk1",
            "version": "1.31",
            "roleArn": "arn:aws:iam::123456789012:role/eks",
            "resourcesVpcConfig": {"subnetIds": ["subnet-1"]}
        })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let eks = client(p);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = r#"{"env":{"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG":"true"}}"#;
        let out = eks
            .create_addon()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .addon_version("v1.19.2-eksbuild.1")
            .service_account_role_arn("arn:aws:iam::123456789012:role/cni")
            .resolve_conflicts(ResolveConflicts::Overwrite)
            .configuration_values(config)
            .tags("team", "net")
            .send()
            .await
            .expect("CreateAddon");
        let a = out.addon().expect("addon");
        assert_eq!(a.addon_name(), Some("vpc-cni"));
        assert_eq!(a.cluster_name(), Some("sdk1"));
        assert_eq!(a.status(), Some(&AddonStatus::Creating));
        assert_eq!(a.addon_version(), Some("v1.19.2-eksbuild.1"));
        assert!(a.health().is_some_and(|h| h.issues().is_empty()));
        assert!(a.addon_arn().is_some_and(
            |arn| arn.starts_with("arn:aws:eks:us-east-1:123456789012:addon/sdk1/vpc-cni/")
        ));
        assert!(near_now(a.created_at()) && near_now(a.modified_at()));
        assert_eq!(
            a.service_account_role_arn(),
            Some("arn:aws:iam::123456789012:role/cni")
        );
        assert_eq!(a.configuration_values(), Some(config));
        assert_eq!(
            a.tags().and_then(|t| t.get("team")).map(String::as_str),
            Some("net")
        );

        // The SDK's waiter for ACTIVE (after the window, so that its first poll, made at
        // once, succeeds rather than waiting the waiter's 10 s delay).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        eks.wait_until_addon_active()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .wait(std::time::Duration::from_secs(60))
            .await
            .expect("AddonActive waiter");
        let out = eks
            .describe_addon()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .send()
            .await
            .expect("DescribeAddon");
        assert_eq!(
            out.addon().and_then(|a| a.status()),
            Some(&AddonStatus::Active)
        );

        let out = eks
            .list_addons()
            .cluster_name("sdk1")
            .send()
            .await
            .expect("ListAddons");
        assert_eq!(out.addons(), ["vpc-cni".to_string()]);
        assert_eq!(out.next_token(), None);

        let out = eks
            .describe_addon_versions()
            .addon_name("vpc-cni")
            .kubernetes_version("1.31")
            .send()
            .await
            .expect("DescribeAddonVersions");
        let info = &out.addons()[0];
        assert_eq!(info.addon_name(), Some("vpc-cni"));
        assert_eq!(info.r#type(), Some("networking"));
        assert_eq!((info.publisher(), info.owner()), (Some("eks"), Some("aws")));
        let defaults: Vec<&str> = info
            .addon_versions()
            .iter()
            .filter(|v| v.compatibilities().iter().any(|c| c.default_version()))
            .filter_map(|v| v.addon_version())
            .collect();
        assert_eq!(defaults, ["v1.19.6-eksbuild.1"]);
        let first = &info.addon_versions()[0];
        assert_eq!(first.architecture(), ["amd64", "arm64"]);
        assert!(first.requires_iam_permissions());
        assert_eq!(first.compatibilities()[0].cluster_version(), Some("1.31"));
        assert_eq!(first.compatibilities()[0].platform_versions(), ["*"]);

        let out = eks
            .describe_addon_configuration()
            .addon_name("vpc-cni")
            .addon_version("v1.20.0-eksbuild.1")
            .send()
            .await
            .expect("DescribeAddonConfiguration");
        let schema: serde_json::Value =
            serde_json::from_str(out.configuration_schema().expect("schema")).expect("JSON");
        assert!(schema["properties"]["eniConfig"].is_object());
        assert_eq!(
            out.pod_identity_configuration()[0].service_account(),
            Some("aws-node")
        );

        let out = eks
            .update_addon()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .addon_version("v1.20.0-eksbuild.1")
            .resolve_conflicts(ResolveConflicts::Preserve)
            .send()
            .await
            .expect("UpdateAddon");
        let u = out.update().expect("update");
        assert_eq!(u.status(), Some(&UpdateStatus::InProgress));
        assert_eq!(u.r#type(), Some(&UpdateType::AddonUpdate));
        assert!(near_now(u.created_at()));
        let kinds: Vec<&UpdateParamType> = u.params().iter().filter_map(|p| p.r#type()).collect();
        assert_eq!(
            kinds,
            [
                &UpdateParamType::AddonVersion,
                &UpdateParamType::ResolveConflicts
            ]
        );
        assert_eq!(u.params()[0].value(), Some("v1.20.0-eksbuild.1"));
        let id = u.id().expect("id").to_string();
        let out = eks
            .describe_update()
            .name("sdk1")
            .update_id(&id)
            .addon_name("vpc-cni")
            .send()
            .await
            .expect("DescribeUpdate");
        let u = out.update().expect("update");
        assert_eq!(u.status(), Some(&UpdateStatus::Successful));
        assert!(u.errors().is_empty());
        let out = eks
            .list_updates()
            .name("sdk1")
            .addon_name("vpc-cni")
            .send()
            .await
            .expect("ListUpdates");
        assert_eq!(out.update_ids(), [id]);

        let err = eks
            .create_addon()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .send()
            .await
            .expect_err("duplicate")
            .into_service_error();
        match &err {
            CreateAddonError::ResourceInUseException(e) => {
                assert_eq!(e.cluster_name(), Some("sdk1"));
                assert_eq!(e.addon_name(), Some("vpc-cni"));
                assert_eq!(e.message(), Some("Addon already exists."));
            }
            other => panic!("expected ResourceInUseException, got {other:?}"),
        }
        let err = eks
            .create_addon()
            .cluster_name("sdk1")
            .addon_name("coredns")
            .configuration_values(r#"{"replicas": 3}"#)
            .send()
            .await
            .expect_err("schema")
            .into_service_error();
        assert!(
            matches!(err, CreateAddonError::InvalidParameterException(_)),
            "{err:?}"
        );
        assert!(err
            .message()
            .is_some_and(|m| m.contains("$.replicas: is not defined in the schema")));
        let err = eks
            .create_addon()
            .cluster_name("nope")
            .addon_name("coredns")
            .send()
            .await
            .expect_err("no cluster")
            .into_service_error();
        match &err {
            CreateAddonError::ResourceNotFoundException(e) => {
                assert_eq!(e.cluster_name(), Some("nope"));
                assert_eq!(e.message(), Some("No cluster found for name: nope."));
            }
            other => panic!("expected ResourceNotFoundException, got {other:?}"),
        }

        let out = eks
            .delete_addon()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .preserve(false)
            .send()
            .await
            .expect("DeleteAddon");
        assert_eq!(
            out.addon().and_then(|a| a.status()),
            Some(&AddonStatus::Deleting)
        );
        eks.wait_until_addon_deleted()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .wait(std::time::Duration::from_secs(60))
            .await
            .expect("AddonDeleted waiter");
        let err = eks
            .describe_addon()
            .cluster_name("sdk1")
            .addon_name("vpc-cni")
            .send()
            .await
            .expect_err("deleted")
            .into_service_error();
        match &err {
            DescribeAddonError::ResourceNotFoundException(e) => {
                assert_eq!(e.addon_name(), Some("vpc-cni"));
                assert_eq!(e.cluster_name(), Some("sdk1"));
            }
            other => panic!("expected ResourceNotFoundException, got {other:?}"),
        }
    });
}
