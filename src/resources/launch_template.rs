//! `launch_template`: the EC2 launch template eksnet makes for a nodegroup that sets
//! `max_pods`. Never written in a spec: `spec::parse` derives one per such nodegroup (address
//! `launch_template.<nodegroup's name in the spec>`), and the nodegroup refers to its `id` and
//! `version`.
//!
//! Why a launch template: EKS sets max pods itself on the nodes of a managed nodegroup, from
//! the CNI settings at the moment the nodegroup is made. The only way to give the kubelet
//! another value on an EKS-optimized AMI (without taking over the whole bootstrap with a
//! custom AMI) is user data that the AMI's own node agent merges with what EKS provides:
//! a `NodeConfig` document for AL2023's nodeadm, a settings table for Bottlerocket. The
//! template carries no AMI id, so EKS still picks the AMI and adds its own part.
//!
//! The template is versioned in place: a change of `max_pods` (or disk size, or tags) makes
//! a new version and makes it the default; the `version` output changes with it, so the
//! nodegroup that refers to it is updated to that version (EKS rolls the nodes). Its cloud id
//! is its name (launch template names are unique per region, and every call takes a name).

use super::eks::{parse_user_data, user_data, AmiFamily};
use super::BuildCtx;
use super::{
    aws_error, req_str, split_tags, Change, Ctx, ImportId, KindFacts, Lookup, Observed,
    ResourceError, ResourceKind,
};
use crate::base::addr::ResourceAddr;
use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    RequestLaunchTemplateData, ResourceType, TagSpecification, VolumeType,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The derived config (see the module comment); `spec::parse` builds it. Never written in a
/// spec, so `eksnet schema` leaves it out.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchTemplateConfig {
    pub name: String,
    pub max_pods: u32,
    pub ami_family: AmiFamily,
    /// The nodegroup's `disk_size`: EKS refuses `diskSize` beside a launch template, so the
    /// volume size moves into the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

use super::eks::TEMPLATE_NAME_MAX as MAX_NAME;
/// The tag that keeps the spec's name on a template whose name differs from it (a
/// create-before-destroy replacement's, as for nodegroups).
const TAG_NAME: &str = "eksnet:name";
/// `launch_template.NAME`: made by eksnet, see the module comment.
pub struct LaunchTemplateKind;

const FACTS: KindFacts = KindFacts {
    force_new: &["name"],
    outputs: &["id", "name", "version", "latest_version"],
    mirrored_outputs: &[],
    identity: &["name"],
    lookup_key: &["name"],
    create_only: &[],
    set_valued: &[],
    default_timeout: Duration::from_secs(5 * 60),
    kubernetes: false,
    // By its name: a template left by a lost state is taken back with its nodegroup.
    import_id: ImportId::Plain,
    replacement: Some(replacement),
    compared_when_unset: &[],
    updated_outputs: &[("version", DATA), ("latest_version", DATA)],
    derived: true,
    unique: None,
    output_shapes: &[],
    restricted_tags: None,
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[],
};

/// The attributes held in a version of the template: a change of one makes a new version.
const DATA: &[&str] = &["user_data", "max_pods", "ami_family", "disk_size"];

/// Create-before-destroy naming, as for nodegroups: the new template takes the spec's name,
/// or that name + `-cbd` while the old one holds it.
fn replacement(attrs: &Value, old_cloud_id: &str) -> Option<(Value, String)> {
    super::replacement_named(attrs, old_cloud_id, MAX_NAME)
}

fn family_attr(attrs: &Value) -> Result<AmiFamily, ResourceError> {
    serde_json::from_value(attrs.get("ami_family").cloned().unwrap_or(Value::Null))
        .map_err(|_| ResourceError::MissingAttribute("ami_family".into()))
}

/// The template data for these attributes: the user data, and the volume size if any.
fn template_data(attrs: &Value) -> Result<RequestLaunchTemplateData, ResourceError> {
    let family = family_attr(attrs)?;
    let max_pods = attrs
        .get("max_pods")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ResourceError::MissingAttribute("max_pods".into()))?;
    let mut data = RequestLaunchTemplateData::builder()
        .user_data(STANDARD.encode(user_data(family, max_pods)));
    if let Some(size) = attrs.get("disk_size").and_then(Value::as_i64) {
        data = data.block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(family.data_device())
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_size(i32::try_from(size).unwrap_or(i32::MAX))
                        .volume_type(VolumeType::Gp3)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        );
    }
    Ok(data.build())
}

fn not_found(e: &ResourceError) -> bool {
    matches!(
        e.code(),
        Some("InvalidLaunchTemplateName.NotFoundException" | "InvalidLaunchTemplateId.NotFound")
    )
}

/// Reads one template by name: the template (tags, version numbers) and its default version
/// (user data, volumes), both asked at once. `None` when it does not exist.
async fn read(ctx: &Ctx, name: &str) -> Result<Option<Observed>, ResourceError> {
    let ec2 = &ctx.aws.ec2;
    let (template, version) = tokio::join!(
        ec2.describe_launch_templates()
            .launch_template_names(name)
            .send(),
        ec2.describe_launch_template_versions()
            .launch_template_name(name)
            .versions("$Default")
            .send(),
    );
    let template = match template {
        Ok(out) => out.launch_templates().first().cloned(),
        Err(e) => {
            let err = aws_error("DescribeLaunchTemplates", e);
            if not_found(&err) {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let Some(template) = template else {
        return Ok(None);
    };
    let version = match version {
        Ok(out) => out.launch_template_versions().first().cloned(),
        // Deleted between the two answers.
        Err(e) => {
            let err = aws_error("DescribeLaunchTemplateVersions", e);
            if not_found(&err) {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let data = version.as_ref().and_then(|v| v.launch_template_data());
    let text = data
        .and_then(|d| d.user_data())
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let (family, max_pods) = parse_user_data(&text);
    let disk_size = data.and_then(|d| {
        d.block_device_mappings()
            .iter()
            .find(|m| family.is_some_and(|f| m.device_name() == Some(f.data_device())))
            .and_then(|m| m.ebs())
            .and_then(|e| e.volume_size())
    });
    let live_name = template.launch_template_name().unwrap_or(name);
    let spec_name = template
        .tags()
        .iter()
        .find(|t| t.key() == Some(TAG_NAME))
        .and_then(|t| t.value())
        .unwrap_or(live_name);
    let (tags, managed_by) = split_tags(
        template
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
    );
    let mut attrs = json!({
        "name": spec_name, "max_pods": max_pods, "ami_family": family,
        "user_data": text, "tags": tags,
    });
    if let (Some(m), Some(size)) = (attrs.as_object_mut(), disk_size) {
        m.insert("disk_size".into(), json!(size));
    }
    let number = |n: Option<i64>| n.map(|n| n.to_string());
    Ok(Some(Observed {
        cloud_id: live_name.to_string(),
        attrs,
        outputs: json!({
            "id": template.launch_template_id(),
            "name": live_name,
            "version": number(template.default_version_number()),
            "latest_version": number(template.latest_version_number()),
        }),
        managed_by,
    }))
}

async fn read_back(ctx: &Ctx, name: &str) -> Result<Observed, ResourceError> {
    read(ctx, name)
        .await?
        .ok_or_else(|| ResourceError::NotReadBack {
            what: format!("launch template {name}"),
        })
}

impl ResourceKind for LaunchTemplateKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = LaunchTemplateConfig;

    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let mut attrs = json!({
            "name": c.name, "max_pods": c.max_pods, "ami_family": c.ami_family,
            "user_data": user_data(c.ami_family, c.max_pods), "tags": c.tags,
        });
        if let (Some(m), Some(size)) = (attrs.as_object_mut(), c.disk_size) {
            m.insert("disk_size".into(), json!(size));
        }
        Ok(attrs)
    }

    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        super::read_each_by_id_or_name(items, MAX_NAME, |n| async move { read(ctx, &n).await })
            .await
    }

    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        let name = req_str(attrs, "name")?;
        let mut tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        if let Some(spec_name) = super::str_attr(attrs, "spec_name") {
            tags.insert(TAG_NAME.into(), spec_name.to_string());
        }
        let token = super::eks::request_token(ctx, addr, "create");
        ctx.aws
            .ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(template_data(attrs)?)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(super::ec2_tags(tags)))
                    .build(),
            )
            .client_token(token)
            .send()
            .await
            .map_err(|e| aws_error("CreateLaunchTemplate", e))?;
        read_back(ctx, name).await
    }

    /// A new version with the new data, made the default; tags change on the template itself.
    async fn update(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let (before, after) = (change.before, change.after);
        let data_changed = DATA.iter().any(|k| before.get(k) != after.get(k));
        if data_changed {
            let made = ctx
                .aws
                .ec2
                .create_launch_template_version()
                .launch_template_name(cloud_id)
                .launch_template_data(template_data(after)?)
                .send()
                .await
                .map_err(|e| aws_error("CreateLaunchTemplateVersion", e))?;
            let number = made
                .launch_template_version()
                .and_then(|v| v.version_number())
                .ok_or_else(|| ResourceError::NotReadBack {
                    what: format!("the new version of launch template {cloud_id}"),
                })?;
            // A crash here leaves a version that is not the default: the next refresh still
            // reads the old default, and the next apply makes another version.
            ctx.aws
                .ec2
                .modify_launch_template()
                .launch_template_name(cloud_id)
                .default_version(number.to_string())
                .send()
                .await
                .map_err(|e| aws_error("ModifyLaunchTemplate", e))?;
        }
        if before.get("tags") != after.get("tags") {
            let id = read_back(ctx, cloud_id).await?.outputs["id"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| ResourceError::NotReadBack {
                    what: format!("the id of launch template {cloud_id}"),
                })?;
            super::update_ec2_tags(ctx, &id, before, after).await?;
        }
        read_back(ctx, cloud_id).await
    }

    async fn delete(
        ctx: &Ctx,
        _addr: &ResourceAddr,
        cloud_id: &str,
        _attrs: &Value,
        _prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        match ctx
            .aws
            .ec2
            .delete_launch_template()
            .launch_template_name(cloud_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = aws_error("DeleteLaunchTemplate", e);
                if not_found(&err) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::eks::template_name;

    #[test]
    fn user_data_reads_back_as_what_it_was_made_from() {
        for family in [AmiFamily::Al2023, AmiFamily::Bottlerocket] {
            for pods in [1, 58, 110, 737] {
                let text = user_data(family, pods);
                assert_eq!(parse_user_data(&text), (Some(family), Some(pods)), "{text}");
            }
        }
        // Something eksnet did not write reads as unknown: a change to set back.
        assert_eq!(parse_user_data("#!/bin/bash\necho hi\n"), (None, None));
    }

    #[test]
    fn al2023_user_data_is_a_mime_document_with_one_nodeconfig() {
        let text = user_data(AmiFamily::Al2023, 58);
        assert!(
            text.starts_with(
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n--//\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      maxPods: 58\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("\n--//--\n"), "{text}");
    }

    #[test]
    fn ami_types_map_to_the_families_that_can_set_max_pods() {
        assert_eq!(
            AmiFamily::of(Some("AL2023_ARM_64_STANDARD")),
            Ok(AmiFamily::Al2023)
        );
        assert_eq!(
            AmiFamily::of(Some("BOTTLEROCKET_x86_64")),
            Ok(AmiFamily::Bottlerocket)
        );
        for refused in [
            None,
            Some("AL2_x86_64"),
            Some("WINDOWS_CORE_2022_x86_64"),
            Some("CUSTOM"),
        ] {
            assert!(AmiFamily::of(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn long_names_are_shortened_to_the_limit_and_stay_distinct() {
        let a = template_name(&"c".repeat(100), &"n".repeat(63));
        let b = template_name(&"c".repeat(100), &format!("{}m", "n".repeat(62)));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(template_name("demo", "workers"), "eksnet-demo-workers");
    }
}
