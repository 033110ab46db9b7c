//! `route_table`: a VPC route table and its subnet associations. Either one eksnet creates
//! (its routes and associations all managed: created, changed in place, deleted), or one made
//! elsewhere and adopted by id (`existing = true`), of which eksnet manages only the
//! associations it declares: never its routes, never the table itself. The point is the pod
//! subnets: a new subnet is implicitly associated with the VPC's main route table (EKS custom
//! networking guide), so without a table of its own it routes as the main table does.
//!
//! A created table carries the `eksnet:` tags, so a table created just before a crash is
//! found again by them (the VPC and the address, under this state's lineage). An adopted
//! table keeps, in the output `previous_subnet_ids`, the declared subnets it had before
//! eksnet first associated any: destroy disassociates only the others.

use super::{
    aws_error, ec2_tags, req_str, split_tags, str_attr, str_list, wait_until, BuildCtx, Change,
    Ctx, FieldRules, ImportId, KindFacts, Lookup, Observed, Poll, ResourceError, ResourceKind,
    Shape, TAG_ADDRESS, TAG_STATE,
};
use crate::base::addr::{Kind, ResourceAddr};
use crate::base::value::is_ref;
use aws_sdk_ec2::types::{Filter, ResourceType, RouteOrigin, RouteTable, TagSpecification};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A route table of a VPC and the subnets associated with it: one eksnet creates, or an
/// existing one (`existing = true` and `id`) of which eksnet manages only the associations.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// An existing table needs its `id`, a created one its `vpc_id`.
#[schemars(extend(
    "if" = { "properties": { "existing": { "const": true, "description": "An existing table: only its associations are managed." } }, "required": ["existing"] },
    "then" = { "required": ["id", "subnet_ids"] },
    "else" = { "required": ["vpc_id"] }
))]
pub struct RouteTableConfig {
    /// `true`: a route table made elsewhere, adopted by `id`: eksnet never creates, deletes
    /// or changes its routes; it only associates the `subnet_ids` declared here, and destroy
    /// removes only those associations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existing: bool,
    /// The existing table's id (`rtb-…`), or a reference to one (only with `existing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The table's VPC, usually `${vpc.NAME.id}` (required unless `existing`; with
    /// `existing`, only checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The routes besides the `local` one, each a destination and exactly one target (not
    /// with `existing`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The subnets to associate with the table, usually `${subnet.NAME.id}`; a subnet has one
    /// route table at a time.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    /// The table's tags (not with `existing`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One route: a destination and exactly one target.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The destination, an IPv4 CIDR outside the VPC's blocks (`0.0.0.0/0`, `10.10.0.0/16`).
    pub destination: String,
    /// A NAT gateway (`nat-…`), public or private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<String>,
    /// A transit gateway (`tgw-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_gateway_id: Option<String>,
    /// A VPC peering connection (`pcx-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_peering_connection_id: Option<String>,
    /// An internet gateway (`igw-…`), for public pod subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<String>,
}

/// The targets a route may name: (field, what it needs).
pub const TARGETS: &[(&str, Shape)] = &[
    (
        "nat_gateway_id",
        Shape::Ec2Id {
            prefix: "nat-",
            what: "a NAT gateway id (`nat-` and 8 or 17 hex digits)",
        },
    ),
    (
        "transit_gateway_id",
        Shape::Ec2Id {
            prefix: "tgw-",
            what: "a transit gateway id (`tgw-` and 8 or 17 hex digits)",
        },
    ),
    (
        "vpc_peering_connection_id",
        Shape::Ec2Id {
            prefix: "pcx-",
            what: "a VPC peering connection id (`pcx-` and 8 or 17 hex digits)",
        },
    ),
    (
        "gateway_id",
        Shape::Ec2Id {
            prefix: "igw-",
            what: "an internet gateway id (`igw-` and 8 or 17 hex digits)",
        },
    ),
];

const TABLE_ID: Shape = Shape::Ec2Id {
    prefix: "rtb-",
    what: "a route table id (`rtb-` and 8 or 17 hex digits)",
};

impl RouteConfig {
    /// The targets set, as (field, id).
    pub fn targets(&self) -> Vec<(&'static str, &str)> {
        [
            ("nat_gateway_id", &self.nat_gateway_id),
            ("transit_gateway_id", &self.transit_gateway_id),
            ("vpc_peering_connection_id", &self.vpc_peering_connection_id),
            ("gateway_id", &self.gateway_id),
        ]
        .into_iter()
        .filter_map(|(f, v)| Some((f, v.as_deref()?)))
        .collect()
    }
}

/// `[route_table.NAME]`: see docs/spec.md.
pub struct RouteTableKind;

/// The output keeping, for an adopted table, the declared subnets it had before eksnet first
/// associated any (see `KindFacts::puts_back`).
const PREVIOUS: &str = "previous_subnet_ids";

const FACTS: KindFacts = KindFacts {
    force_new: &["vpc_id", "id"],
    outputs: &["id", "vpc_id", "associations.*"],
    mirrored_outputs: &["id"],
    identity: &["id"],
    lookup_key: &["vpc_id", "id"],
    create_only: &[],
    set_valued: &["routes", "subnet_ids"],
    default_timeout: Duration::from_secs(5 * 60),
    kubernetes: false,
    import_id: ImportId::Plain,
    replacement: None,
    compared_when_unset: &[],
    updated_outputs: &[],
    derived: false,
    unique: None,
    output_shapes: &[
        ("id", TABLE_ID),
        ("vpc_id", Shape::VpcId),
        (
            "associations.*",
            Shape::Other("a route table association id"),
        ),
    ],
    restricted_tags: None,
    parent: None,
    patches_existing: false,
    checked_only: &[],
    kubernetes_endpoint: false,
    puts_back: &[("subnet_ids", PREVIOUS)],
};

/// `existing = true` in these attributes.
fn is_existing(attrs: &Value) -> bool {
    attrs.get("existing").and_then(Value::as_bool) == Some(true)
}

/// A route as an attribute: its destination and its one target, under the target's field.
/// A route whose target eksnet does not write (a network interface, a VPN gateway added by
/// hand) keeps its own field, so a created table shows it as a change to remove.
fn route_attr(r: &aws_sdk_ec2::types::Route) -> Option<Value> {
    let dest = r.destination_cidr_block()?;
    // The `local` route is the table's own; propagated routes belong to the VPN gateway.
    if r.gateway_id() == Some("local")
        || matches!(
            r.origin(),
            Some(RouteOrigin::CreateRouteTable | RouteOrigin::EnableVgwRoutePropagation)
        )
    {
        return None;
    }
    let target = [
        ("nat_gateway_id", r.nat_gateway_id()),
        ("transit_gateway_id", r.transit_gateway_id()),
        ("vpc_peering_connection_id", r.vpc_peering_connection_id()),
        ("gateway_id", r.gateway_id()),
        ("network_interface_id", r.network_interface_id()),
        ("instance_id", r.instance_id()),
        (
            "egress_only_internet_gateway_id",
            r.egress_only_internet_gateway_id(),
        ),
        ("local_gateway_id", r.local_gateway_id()),
        ("carrier_gateway_id", r.carrier_gateway_id()),
        ("core_network_arn", r.core_network_arn()),
    ]
    .into_iter()
    .find_map(|(f, v)| Some((f, v?)));
    let mut m = Map::new();
    m.insert("destination".into(), json!(dest));
    if let Some((field, id)) = target {
        m.insert(field.into(), json!(id));
    }
    Some(Value::Object(m))
}

/// The subnets associated with the table explicitly, with their association ids.
fn associations(t: &RouteTable) -> BTreeMap<String, String> {
    t.associations()
        .iter()
        .filter(|a| {
            // An association on its way out is gone for what eksnet plans.
            !matches!(
                a.association_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str()),
                Some("disassociating" | "disassociated" | "failed")
            )
        })
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

/// What a read found, as attributes in the spec's shape. For an adopted table only the
/// associations eksnet manages count (`managed`: the subnets the spec or the state names);
/// the table's other associations are someone else's. `recorded` is what the state kept.
fn observe(
    t: &RouteTable,
    adopted: bool,
    managed: &BTreeSet<String>,
    recorded: &Value,
) -> Option<Observed> {
    let id = t.route_table_id()?.to_string();
    let vpc = t.vpc_id().unwrap_or_default();
    let (tags, managed_by) = split_tags(
        t.tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
    );
    let mut assoc = associations(t);
    let main = t.associations().iter().any(|a| a.main() == Some(true));
    let mut routes: Vec<Value> = t.routes().iter().filter_map(route_attr).collect();
    routes.sort_by_key(|r| r.to_string());
    if adopted {
        assoc.retain(|s, _| managed.contains(s));
        let subnets: Vec<&String> = assoc.keys().collect();
        // The first time eksnet sees it, the declared subnets it has already are not eksnet's.
        let previous = recorded
            .get(PREVIOUS)
            .cloned()
            .unwrap_or_else(|| json!(subnets));
        return Some(Observed {
            cloud_id: id.clone(),
            attrs: json!({"existing": true, "id": id, "vpc_id": vpc, "subnet_ids": subnets}),
            outputs: json!({
                "id": id, "vpc_id": vpc, "associations": assoc, "main": main,
                // What the plan says of the pod subnets' routes: the table's own, as read.
                "routes": routes, PREVIOUS: previous,
            }),
            managed_by,
        });
    }
    let subnets: Vec<&String> = assoc.keys().collect();
    Some(Observed {
        cloud_id: id.clone(),
        attrs: json!({"vpc_id": vpc, "routes": routes, "subnet_ids": subnets, "tags": tags}),
        outputs: json!({"id": id, "vpc_id": vpc, "associations": assoc, "main": main}),
        managed_by,
    })
}

use super::ec2_filter as filter;

async fn describe(ctx: &Ctx, filters: Vec<Filter>) -> Result<Vec<RouteTable>, ResourceError> {
    let mut out = Vec::new();
    let mut pages = ctx
        .aws
        .ec2
        .describe_route_tables()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| aws_error("DescribeRouteTables", e))?;
        out.extend(page.route_tables().iter().cloned());
    }
    Ok(out)
}

/// One table by id (a filter, so a deleted one is `None` rather than an error).
async fn describe_one(ctx: &Ctx, id: &str) -> Result<Option<RouteTable>, ResourceError> {
    Ok(
        describe(ctx, vec![filter("route-table-id", vec![id.to_string()])])
            .await?
            .into_iter()
            .next(),
    )
}

/// The id an item is read by: the state's, else an adopted table's `id`.
fn lookup_id(i: &Lookup) -> Option<String> {
    i.cloud_id.clone().or_else(|| {
        is_existing(&i.attrs)
            .then(|| str_attr(&i.attrs, "id").map(String::from))
            .flatten()
            .filter(|id| !is_ref(id))
    })
}

/// The subnets whose associations eksnet manages on an adopted table: those the attributes
/// name, and those the state recorded associations for.
fn managed_subnets(attrs: &Value, recorded: &Value) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = str_list(attrs, "subnet_ids").into_iter().collect();
    if let Some(m) = recorded.get("associations").and_then(Value::as_object) {
        out.extend(m.keys().cloned());
    }
    out
}

fn observe_item(t: &RouteTable, i: &Lookup) -> Option<Observed> {
    let adopted = super::is_adopted(&i.addr, &i.attrs);
    observe(
        t,
        adopted,
        &managed_subnets(&i.attrs, &i.last_outputs),
        &i.last_outputs,
    )
}

/// Sets a route's target on a CreateRoute or ReplaceRoute request.
macro_rules! with_target {
    ($req:expr, $route:expr) => {{
        let route: &Value = $route;
        let mut req = $req;
        if let Some(v) = str_attr(route, "nat_gateway_id") {
            req = req.nat_gateway_id(v);
        }
        if let Some(v) = str_attr(route, "transit_gateway_id") {
            req = req.transit_gateway_id(v);
        }
        if let Some(v) = str_attr(route, "vpc_peering_connection_id") {
            req = req.vpc_peering_connection_id(v);
        }
        if let Some(v) = str_attr(route, "gateway_id") {
            req = req.gateway_id(v);
        }
        req
    }};
}

async fn create_route(ctx: &Ctx, table: &str, route: &Value) -> Result<(), ResourceError> {
    let req = ctx
        .aws
        .ec2
        .create_route()
        .route_table_id(table)
        .destination_cidr_block(req_str(route, "destination")?);
    with_target!(req, route)
        .send()
        .await
        .map_err(|e| aws_error("CreateRoute", e))?;
    Ok(())
}

async fn replace_route(ctx: &Ctx, table: &str, route: &Value) -> Result<(), ResourceError> {
    let req = ctx
        .aws
        .ec2
        .replace_route()
        .route_table_id(table)
        .destination_cidr_block(req_str(route, "destination")?);
    with_target!(req, route)
        .send()
        .await
        .map_err(|e| aws_error("ReplaceRoute", e))?;
    Ok(())
}

async fn delete_route(ctx: &Ctx, table: &str, destination: &str) -> Result<(), ResourceError> {
    let sent = ctx
        .aws
        .ec2
        .delete_route()
        .route_table_id(table)
        .destination_cidr_block(destination)
        .send()
        .await
        .map_err(|e| aws_error("DeleteRoute", e));
    super::done_if_gone(sent, "InvalidRoute.NotFound")
}

/// Associates `subnet` with `table`, unless it is already. A subnet associated with another
/// table is refused with the table named: AWS allows one table per subnet, and eksnet does
/// not take a subnet from a table it does not manage it in.
async fn associate(ctx: &Ctx, table: &str, subnet: &str) -> Result<(), ResourceError> {
    let current = describe(
        ctx,
        vec![filter("association.subnet-id", vec![subnet.to_string()])],
    )
    .await?;
    for t in &current {
        if let Some(assoc) = associations(t).get(subnet) {
            if t.route_table_id() == Some(table) {
                return Ok(());
            }
            return Err(ResourceError::Invalid(format!(
                "subnet {subnet} is associated with route table {} ({assoc}); a subnet has one route table at a time, and eksnet does not take it from a table it does not manage it in: disassociate it there first (`aws ec2 disassociate-route-table --association-id {assoc}`), or associate it with that table in the spec instead",
                t.route_table_id().unwrap_or("?")
            )));
        }
    }
    ctx.aws
        .ec2
        .associate_route_table()
        .route_table_id(table)
        .subnet_id(subnet)
        .send()
        .await
        .map_err(|e| aws_error("AssociateRouteTable", e))?;
    Ok(())
}

/// Removes the association of each of `subnets` with `table` (those it has).
async fn disassociate(
    ctx: &Ctx,
    table: &str,
    subnets: &BTreeSet<String>,
) -> Result<(), ResourceError> {
    let Some(t) = describe_one(ctx, table).await? else {
        return Ok(());
    };
    for (subnet, assoc) in associations(&t) {
        if !subnets.contains(&subnet) {
            continue;
        }
        let sent = ctx
            .aws
            .ec2
            .disassociate_route_table()
            .association_id(&assoc)
            .send()
            .await
            .map_err(|e| aws_error("DisassociateRouteTable", e));
        super::done_if_gone(sent, "InvalidAssociationID.NotFound")?;
    }
    Ok(())
}

/// A table's routes by destination.
fn routes_by_destination(attrs: &Value) -> BTreeMap<String, Value> {
    attrs
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| Some((str_attr(r, "destination")?.to_string(), r.clone())))
        .collect()
}

fn subnet_set(attrs: &Value) -> BTreeSet<String> {
    str_list(attrs, "subnet_ids").into_iter().collect()
}

/// Reads the table back after a change, waiting until AWS lists it (a new id may not be
/// visible at once).
async fn read_back(
    ctx: &Ctx,
    addr: &ResourceAddr,
    id: &str,
    attrs: &Value,
    recorded: &Value,
) -> Result<Observed, ResourceError> {
    let adopted = super::is_adopted(addr, attrs);
    let managed = managed_subnets(attrs, recorded);
    wait_until(
        ctx,
        addr,
        &format!("route table {id}"),
        ctx.timeout(Kind::RouteTable),
        || async {
            Ok(match describe_one(ctx, id).await? {
                Some(t) => Poll::Done(observe(&t, adopted, &managed, recorded)),
                None => Poll::Pending("not yet visible".into()),
            })
        },
    )
    .await?
    .ok_or_else(|| ResourceError::NotReadBack {
        what: format!("route table {id}"),
    })
}

impl ResourceKind for RouteTableKind {
    const FACTS: &'static KindFacts = &FACTS;
    type Config = RouteTableConfig;

    /// An adopted table has only what eksnet manages on it: its id, its VPC (to check) and
    /// the associations; a created one its VPC, routes, associations and tags, each always
    /// present, so that emptying a list is a change.
    fn desired_attrs(
        c: &Self::Config,
        _build: &BuildCtx,
    ) -> Result<Value, Vec<(&'static str, String)>> {
        let mut m = Map::new();
        if c.existing {
            m.insert("existing".into(), json!(true));
            m.insert("id".into(), json!(c.id));
        }
        if let Some(v) = &c.vpc_id {
            m.insert("vpc_id".into(), json!(v));
        }
        if !c.existing {
            m.insert(
                "routes".into(),
                serde_json::to_value(&c.routes).unwrap_or_else(|_| json!([])),
            );
            m.insert("tags".into(), json!(c.tags));
        }
        m.insert("subnet_ids".into(), json!(c.subnet_ids));
        Ok(Value::Object(m))
    }

    /// Which form (created or adopted) takes which fields; each route a CIDR destination with
    /// exactly one target, each destination once; each subnet once.
    fn check_shape(c: &Self::Config, rules: &mut dyn FieldRules) {
        if c.existing {
            if c.id.is_none() {
                rules.error(
                    "existing",
                    "an existing route table needs `id` (`rtb-…`, or a reference to one)".into(),
                );
            }
            if !c.routes.is_empty() {
                rules.error("routes", "eksnet never changes the routes of an existing route table (`existing = true`); change them where the table is managed, or let eksnet create a table of its own".into());
            }
            if !c.tags.is_empty() {
                rules.error("tags", "eksnet never changes an existing route table (`existing = true`), so it cannot take `tags`; tag it where it is managed".into());
            }
            if c.subnet_ids.is_empty() {
                rules.error("subnet_ids", "an existing route table is declared only to associate subnets with it, and this one lists none".into());
            }
        } else {
            if c.id.is_some() {
                rules.error("id", "`id` names an existing route table: add `existing = true` to adopt it, or leave `id` out for eksnet to create one".into());
            }
            if c.vpc_id.is_none() {
                rules.error(
                    "",
                    "a route table needs `vpc_id` (or `existing = true` and `id` to adopt one)"
                        .into(),
                );
            }
        }
        let mut destinations: BTreeMap<String, usize> = BTreeMap::new();
        for (i, r) in c.routes.iter().enumerate() {
            let at = |k: &str| format!("routes.{i}.{k}");
            match r.destination.parse::<ipnet::Ipv4Net>() {
                Ok(net) if net.trunc() != net => rules.error(
                    &at("destination"),
                    format!(
                        "`{}` has host bits set; did you mean `{}`?",
                        r.destination,
                        net.trunc()
                    ),
                ),
                Ok(net) => {
                    if let Some(first) = destinations.insert(net.to_string(), i) {
                        rules.error(
                            &at("destination"),
                            format!("{net} is routed twice (also by routes.{first}); a table has one route per destination"),
                        );
                    }
                }
                Err(_) => rules.error(
                    &at("destination"),
                    format!(
                        "`{}` is not an IPv4 CIDR block (like 0.0.0.0/0 or 10.10.0.0/16)",
                        r.destination
                    ),
                ),
            }
            let fields: Vec<&str> = TARGETS.iter().map(|(f, _)| *f).collect();
            match r.targets().as_slice() {
                [_] => {}
                [] => rules.error(
                    &format!("routes.{i}"),
                    format!(
                        "the route to `{}` has no target: give exactly one of {}",
                        r.destination,
                        fields.join(", ")
                    ),
                ),
                several => rules.error(
                    &format!("routes.{i}"),
                    format!(
                        "the route to `{}` has {} targets ({}): a route has exactly one",
                        r.destination,
                        several.len(),
                        several
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        let mut seen = BTreeSet::new();
        for (i, s) in c.subnet_ids.iter().enumerate() {
            if !seen.insert(s.as_str()) {
                rules.error(&format!("subnet_ids.{i}"), format!("`{s}` is listed twice"));
            }
        }
    }

    /// Ids: the table's, its VPC's, its subnets', each target's.
    fn check_fields(c: &Self::Config, rules: &mut dyn FieldRules) {
        if let Some(id) = &c.id {
            rules.shaped("id", id, TABLE_ID);
        }
        if let Some(v) = &c.vpc_id {
            rules.shaped("vpc_id", v, Shape::VpcId);
        }
        for (i, s) in c.subnet_ids.iter().enumerate() {
            rules.shaped(&format!("subnet_ids.{i}"), s, Shape::SubnetId);
        }
        for (i, r) in c.routes.iter().enumerate() {
            for (field, value) in r.targets() {
                if let Some((_, shape)) = TARGETS.iter().find(|(f, _)| *f == field) {
                    rules.shaped(&format!("routes.{i}.{field}"), value, *shape);
                }
            }
        }
    }

    /// One DescribeRouteTables for the tables known by id (the state's, or an adopted one's
    /// `id`), one more for created tables looked up by their tags (this state's lineage and
    /// their address, in their VPC: found again after a crash).
    async fn refresh(ctx: &Ctx, items: &[Lookup]) -> Result<Vec<Option<Observed>>, ResourceError> {
        let ids: Vec<String> = items.iter().filter_map(lookup_id).collect();
        let keyed: Vec<&Lookup> = items.iter().filter(|i| lookup_id(i).is_none()).collect();
        let vpcs: BTreeSet<String> = keyed
            .iter()
            .filter_map(|i| str_attr(&i.attrs, "vpc_id"))
            .filter(|v| !is_ref(v))
            .map(String::from)
            .collect();
        let addrs: Vec<String> = keyed.iter().map(|i| i.addr.to_string()).collect();
        let by_id = async {
            if ids.is_empty() {
                Ok(Vec::new())
            } else {
                describe(ctx, vec![filter("route-table-id", ids.clone())]).await
            }
        };
        let by_tag = async {
            if vpcs.is_empty() {
                Ok(Vec::new())
            } else {
                describe(
                    ctx,
                    vec![
                        filter("vpc-id", vpcs.iter().cloned().collect()),
                        filter(&format!("tag:{TAG_ADDRESS}"), addrs.clone()),
                        filter(&format!("tag:{TAG_STATE}"), vec![ctx.lineage.clone()]),
                    ],
                )
                .await
            }
        };
        let (by_id, by_tag) = tokio::try_join!(by_id, by_tag)?;
        Ok(items
            .iter()
            .map(|item| match lookup_id(item) {
                Some(id) => by_id
                    .iter()
                    .find(|t| t.route_table_id() == Some(id.as_str()))
                    .and_then(|t| observe_item(t, item)),
                None => by_tag
                    .iter()
                    .find(|t| {
                        t.vpc_id() == str_attr(&item.attrs, "vpc_id")
                            && t.tags().iter().any(|tag| {
                                tag.key() == Some(TAG_ADDRESS)
                                    && tag.value() == Some(item.addr.to_string().as_str())
                            })
                    })
                    .and_then(|t| observe_item(t, item)),
            })
            .collect())
    }

    /// CreateRouteTable with its tags, a CreateRoute per route, then the associations: the
    /// routes are in place before any subnet uses the table.
    async fn create(
        ctx: &Ctx,
        addr: &ResourceAddr,
        attrs: &Value,
    ) -> Result<Observed, ResourceError> {
        if super::is_adopted(addr, attrs) {
            // The planner refuses a missing existing table before apply; never make one.
            return Err(ResourceError::AdoptedMissing {
                addr: addr.clone(),
                what: format!("route table {}", str_attr(attrs, "id").unwrap_or("?")),
            });
        }
        let tags = ctx.managed_tags(addr, attrs.get("tags").unwrap_or(&Value::Null));
        let out = ctx
            .aws
            .ec2
            .create_route_table()
            .vpc_id(req_str(attrs, "vpc_id")?)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::RouteTable)
                    .set_tags(Some(ec2_tags(tags)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("CreateRouteTable", e))?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or(ResourceError::IncompleteAnswer {
                operation: "CreateRouteTable",
                lacks: "route table id",
            })?
            .to_string();
        for route in routes_by_destination(attrs).values() {
            create_route(ctx, &id, route).await?;
        }
        for subnet in subnet_set(attrs) {
            associate(ctx, &id, &subnet).await?;
        }
        read_back(ctx, addr, &id, attrs, &Value::Null).await
    }

    /// Routes added, retargeted (ReplaceRoute) or removed, and associations made or removed,
    /// in that order: a subnet joins a table whose routes are already right. An adopted
    /// table only has its associations changed.
    async fn update(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        change: Change<'_>,
    ) -> Result<Observed, ResourceError> {
        let (before, after) = (change.before, change.after);
        let adopted = super::is_adopted(addr, after);
        let mut recorded = change.prior_outputs.clone();
        let (had, want) = (subnet_set(before), subnet_set(after));
        if !adopted {
            let (old, new) = (routes_by_destination(before), routes_by_destination(after));
            for (dest, route) in &new {
                match old.get(dest) {
                    None => create_route(ctx, cloud_id, route).await?,
                    Some(o) if o != route => replace_route(ctx, cloud_id, route).await?,
                    Some(_) => {}
                }
            }
            for dest in old.keys().filter(|d| !new.contains_key(*d)) {
                delete_route(ctx, cloud_id, dest).await?;
            }
            super::update_ec2_tags(ctx, cloud_id, before, after).await?;
        } else if let Some(t) = describe_one(ctx, cloud_id).await? {
            // A subnet newly declared that the table has already was not associated by
            // eksnet: putting back leaves it.
            let live = associations(&t);
            let mut previous: BTreeSet<String> =
                str_list(&recorded, PREVIOUS).into_iter().collect();
            previous.extend(
                want.difference(&had)
                    .filter(|s| live.contains_key(*s))
                    .cloned(),
            );
            if let Value::Object(m) = &mut recorded {
                m.insert(PREVIOUS.into(), json!(previous));
            } else {
                recorded = json!({ PREVIOUS: previous });
            }
        }
        for subnet in want.difference(&had) {
            associate(ctx, cloud_id, subnet).await?;
        }
        let gone: BTreeSet<String> = had.difference(&want).cloned().collect();
        if !gone.is_empty() {
            disassociate(ctx, cloud_id, &gone).await?;
        }
        read_back(ctx, addr, cloud_id, after, &recorded).await
    }

    /// A created table: its associations removed, then the table deleted (AWS refuses to
    /// delete a table a subnet still uses). An adopted one (put back): only the associations
    /// eksnet made; the table stays.
    async fn delete(
        ctx: &Ctx,
        addr: &ResourceAddr,
        cloud_id: &str,
        attrs: &Value,
        prior_outputs: &Value,
    ) -> Result<(), ResourceError> {
        if super::is_adopted(addr, attrs) {
            let previous: BTreeSet<String> =
                str_list(prior_outputs, PREVIOUS).into_iter().collect();
            let made: BTreeSet<String> = subnet_set(attrs).difference(&previous).cloned().collect();
            return disassociate(ctx, cloud_id, &made).await;
        }
        let Some(t) = describe_one(ctx, cloud_id).await? else {
            return Ok(());
        };
        disassociate(ctx, cloud_id, &associations(&t).into_keys().collect()).await?;
        use crate::base::retry::Stop;
        // DependencyViolation: an association still being removed (AWS is eventually
        // consistent).
        let result = super::delete_retrying_dependencies(
            ctx,
            addr,
            "InvalidRouteTableID.NotFound",
            || async move {
                ctx.aws
                    .ec2
                    .delete_route_table()
                    .route_table_id(cloud_id)
                    .send()
                    .await
                    .map_err(|e| aws_error("DeleteRouteTable", e))
            },
        )
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(Stop::Failed(err)) => Err(err),
            Err(Stop::Exhausted { last, .. }) => Err(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{Route, RouteTableAssociation, Tag};

    fn config(text: &str) -> RouteTableConfig {
        toml::from_str(text).expect("config")
    }

    fn attrs(text: &str) -> Value {
        let build = BuildCtx {
            spec_dir: std::path::Path::new("."),
            partition: crate::base::partition::Partition::commercial(),
            resource_name: "pods",
        };
        RouteTableKind::desired_attrs(&config(text), &build).expect("attrs")
    }

    /// A created table's attributes hold every list, so that emptying one is a change; an
    /// adopted one's only what eksnet manages on it.
    #[test]
    fn the_two_forms_have_the_attributes_they_manage() {
        let created = attrs(
            r#"vpc_id = "vpc-0123abcd"
routes = [{ destination = "0.0.0.0/0", nat_gateway_id = "nat-0123abcd" }]"#,
        );
        assert_eq!(
            created,
            json!({"vpc_id": "vpc-0123abcd", "routes": [{"destination": "0.0.0.0/0", "nat_gateway_id": "nat-0123abcd"}], "tags": {}, "subnet_ids": []})
        );
        let adopted = attrs(
            r#"existing = true
id = "rtb-0123abcd"
subnet_ids = ["subnet-0123abcd"]"#,
        );
        assert_eq!(
            adopted,
            json!({"existing": true, "id": "rtb-0123abcd", "subnet_ids": ["subnet-0123abcd"]})
        );
    }

    fn table(
        id: &str,
        routes: Vec<Route>,
        assoc: &[(&str, &str)],
        tags: &[(&str, &str)],
    ) -> RouteTable {
        let mut b = RouteTable::builder()
            .route_table_id(id)
            .vpc_id("vpc-0123abcd")
            .set_routes(Some(routes))
            .associations(
                RouteTableAssociation::builder()
                    .main(false)
                    .route_table_association_id("rtbassoc-igw")
                    .gateway_id("igw-0123abcd")
                    .build(),
            );
        for (subnet, a) in assoc {
            b = b.associations(
                RouteTableAssociation::builder()
                    .main(false)
                    .subnet_id(*subnet)
                    .route_table_association_id(*a)
                    .build(),
            );
        }
        for (k, v) in tags {
            b = b.tags(Tag::builder().key(*k).value(*v).build());
        }
        b.build()
    }

    fn local() -> Route {
        Route::builder()
            .destination_cidr_block("192.168.0.0/16")
            .gateway_id("local")
            .origin(RouteOrigin::CreateRouteTable)
            .build()
    }

    /// The local route and propagated ones are not the spec's; others keep their field.
    #[test]
    fn a_created_table_is_read_in_the_specs_shape() {
        let t = table(
            "rtb-0123abcd",
            vec![
                local(),
                Route::builder()
                    .destination_cidr_block("0.0.0.0/0")
                    .nat_gateway_id("nat-0123abcd")
                    .origin(RouteOrigin::CreateRoute)
                    .build(),
                Route::builder()
                    .destination_cidr_block("10.9.0.0/16")
                    .gateway_id("vgw-0123abcd")
                    .origin(RouteOrigin::EnableVgwRoutePropagation)
                    .build(),
                Route::builder()
                    .destination_cidr_block("10.8.0.0/16")
                    .network_interface_id("eni-0123abcd")
                    .origin(RouteOrigin::CreateRoute)
                    .build(),
            ],
            &[("subnet-b", "rtbassoc-b"), ("subnet-a", "rtbassoc-a")],
            &[
                ("Name", "pods"),
                (TAG_STATE, "L1"),
                (TAG_ADDRESS, "route_table.pods"),
            ],
        );
        let o = observe(&t, false, &BTreeSet::new(), &Value::Null).unwrap();
        assert_eq!(
            o.attrs,
            json!({
                "vpc_id": "vpc-0123abcd",
                "routes": [
                    {"destination": "0.0.0.0/0", "nat_gateway_id": "nat-0123abcd"},
                    {"destination": "10.8.0.0/16", "network_interface_id": "eni-0123abcd"},
                ],
                "subnet_ids": ["subnet-a", "subnet-b"],
                "tags": {"Name": "pods"},
            })
        );
        assert_eq!(
            o.outputs["associations"],
            json!({"subnet-a": "rtbassoc-a", "subnet-b": "rtbassoc-b"})
        );
        assert_eq!(o.managed_by.as_deref(), Some("L1"));
    }

    /// Someone else's associations of an adopted table are not eksnet's: only the subnets
    /// the spec or the state names show, and the first reading records which of them the
    /// table had before eksnet.
    #[test]
    fn an_adopted_table_shows_only_the_associations_eksnet_manages() {
        let t = table(
            "rtb-0123abcd",
            vec![local()],
            &[("subnet-node", "rtbassoc-n"), ("subnet-pod", "rtbassoc-p")],
            &[],
        );
        let managed: BTreeSet<String> = ["subnet-pod".to_string(), "subnet-new".to_string()].into();
        let first = observe(&t, true, &managed, &Value::Null).unwrap();
        assert_eq!(first.attrs["subnet_ids"], json!(["subnet-pod"]));
        assert_eq!(
            first.outputs["associations"],
            json!({"subnet-pod": "rtbassoc-p"})
        );
        assert_eq!(first.outputs[PREVIOUS], json!(["subnet-pod"]));
        assert_eq!(first.outputs["routes"], json!([]));
        let later = observe(&t, true, &managed, &json!({ PREVIOUS: [] })).unwrap();
        assert_eq!(later.outputs[PREVIOUS], json!([]), "kept as first recorded");
    }
}
