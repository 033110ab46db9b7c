//! The request pipeline: control API, fault injection, forwarding to moto,
//! rewriting of moto's answers, accounting and the kill hook.
//!
//! Order for an AWS request: latency, throttling, server errors, per-resource
//! faults answered locally (IAM propagation, DependencyViolation, describe of
//! a resource in its deleting window, ...), forwarding, kill hook, rewriting,
//! and last, for `lose_answer_op`, dropping the connection instead of answering.
//! Locks are plain `std` mutexes held only for short, await-free sections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};

use crate::addons;
use crate::cluster_sg::{self, ClusterSg};
use crate::config::Config;
use crate::faults::{self, Reply};
use crate::nodegroup_version;
use crate::ops::{self, OpInfo, Protocol};
use crate::state::{self, Phase, StackPhase, World};
use crate::stats::{now_unix_nanos, RequestRecord, Stats};

/// Shared state of the running proxy.
pub struct App {
    /// `http://host:port` of moto, without a trailing slash.
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    config: Mutex<Config>,
    rng: Mutex<fastrand::Rng>,
    pub(crate) world: Mutex<World>,
    stats: Mutex<Stats>,
    /// Held while a cluster security group is made or deleted (option
    /// `eks_cluster_fields`), so that concurrent answers about one new
    /// cluster share one group. Only ever held across moto calls.
    cluster_sg_lock: tokio::sync::Mutex<()>,
    /// Held while an EKS add-on request changes add-on state (see `addons`), across its
    /// moto and Kubernetes calls, so that such requests are decided one at a time.
    pub(crate) addon_lock: tokio::sync::Mutex<()>,
    verbose: bool,
}

/// A poisoned lock only means another handler panicked mid-update; the data
/// is still the best we have, and refusing all later requests would turn one
/// bug into a dead proxy.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn seeded_rng(seed: Option<u64>) -> fastrand::Rng {
    seed.map(fastrand::Rng::with_seed).unwrap_or_default()
}

impl App {
    pub fn new(upstream: String, config: Config, verbose: bool) -> App {
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        App {
            upstream,
            client,
            rng: Mutex::new(seeded_rng(config.throttle_seed)),
            config: Mutex::new(config),
            world: Mutex::new(World::default()),
            stats: Mutex::new(Stats::default()),
            cluster_sg_lock: tokio::sync::Mutex::new(()),
            addon_lock: tokio::sync::Mutex::new(()),
            verbose,
        }
    }
}

/// Headers that describe one hop, not the message: they must not be copied
/// between the client and upstream connections. `expect` is here because the
/// body has already been read in full when the request is forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
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

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    // hyper computes Content-Length from the (possibly rewritten) body. Only a bodiless
    // answer keeps its own: that of a HEAD (S3's HeadObject says the object's size there),
    // which `send` keeps for this, and which hyper sends on for a HEAD without a body.
    let keep_length = reply.body.is_empty();
    let mut resp = Response::new(Full::new(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in reply.headers.iter() {
        if !is_hop_by_hop(name) && (name != CONTENT_LENGTH || keep_length) {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    resp
}

/// What a handler returns to have hyper drop the connection without an answer (the
/// `lose_answer_op` fault). hyper's HTTP/1 server writes nothing for a failed service
/// call and closes the connection; the client, whose request was complete, reads end of
/// stream where the status line should be (hyper's client: `IncompleteMessage`, which the
/// AWS SDK's retry classifier treats as a transient error).
#[derive(Debug)]
pub struct LostAnswer;

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer lost on purpose (lose_answer_op)")
    }
}

impl std::error::Error for LostAnswer {}

/// Fault label of a lost answer in the stats.
const LOST_ANSWER: &str = "lost_answer";

fn error_json(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({ "error": message }))
}

/// Entry point for every request the proxy receives.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, LostAnswer> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(into_response(error_json(
                400,
                &format!("reading request body: {e}"),
            )))
        }
    };
    let path = parts.uri.path().to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());

    if path == "/__proxy" || path.starts_with("/__proxy/") {
        return Ok(into_response(
            control(&app, &parts.method, &path, &body).await,
        ));
    }
    // moto's own control API is test plumbing, not AWS traffic.
    if path.starts_with("/moto-api") {
        let reply = forward(&app, &parts.method, &path_and_query, &parts.headers, body)
            .await
            .unwrap_or_else(|e| error_json(502, &e));
        return Ok(into_response(reply));
    }

    let info = ops::identify(
        &parts.method,
        &path,
        parts.uri.query(),
        &parts.headers,
        &body,
    );
    let mut tracker = Tracker::begin(app.clone(), &info);
    let client_gone = ClientGone::default();
    let gone = client_gone.flag.clone();
    // The request is carried out in a task of its own, to moto's answer, even if the client
    // hangs up (hyper then drops this handler future, not the task): AWS too finishes a
    // request it has received whether or not the caller waits. So a request stays
    // `in_flight` until moto has answered it, and a test that killed a client can wait for
    // the proxy to be idle before it looks at moto (moto carries out a CreateStack in the
    // request; a describe sent meanwhile sees a half-built stack and can even make moto
    // create the same subnet twice).
    let work = tokio::spawn(async move {
        let cfg = lock(&app.config).clone();
        if cfg.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
        }
        let (reply, fault) = process(
            &app,
            &cfg,
            &info,
            tracker.seq,
            &parts.method,
            &path_and_query,
            &parts.headers,
            body,
        )
        .await;
        if gone.load(Ordering::SeqCst) {
            tracker.finish(499, Some("client_gone"));
        } else {
            // A lost answer is recorded with moto's status: what the client would have got.
            tracker.finish(reply.status, fault);
        }
        (reply, fault == Some(LOST_ANSWER))
    });
    let (reply, lost) = match work.await {
        Ok(done) => done,
        // Only a panic in the task gets here; the tracker's `Drop` closed its record.
        Err(e) => (error_json(502, &format!("proxy task failed: {e}")), false),
    };
    client_gone.answered();
    if lost {
        return Err(LostAnswer);
    }
    Ok(into_response(reply))
}

/// Set when the handler future is dropped before the answer was ready, that is when the
/// client went away: the request's record then says `client_gone`.
#[derive(Default)]
struct ClientGone {
    flag: Arc<AtomicBool>,
    answered: bool,
}

impl ClientGone {
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for ClientGone {
    fn drop(&mut self) {
        if !self.answered {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

/// Records a request in the stats from arrival to moto's answer (or the local fault's).
/// If the task that carries the request out panics, `Drop` still closes the record so that
/// `in_flight` and the request list stay consistent.
struct Tracker {
    app: Arc<App>,
    seq: u64,
    op: String,
    mutating: bool,
    start: u64,
    started: Instant,
    done: bool,
}

impl Tracker {
    fn begin(app: Arc<App>, info: &OpInfo) -> Tracker {
        let seq = lock(&app.stats).begin();
        Tracker {
            app,
            seq,
            op: info.op.clone(),
            mutating: info.mutating,
            start: now_unix_nanos(),
            started: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, status: u16, fault: Option<&'static str>) {
        self.done = true;
        if self.app.verbose {
            eprintln!(
                "#{} {} -> {} {} ({} ms)",
                self.seq,
                self.op,
                status,
                fault.unwrap_or("-"),
                self.started.elapsed().as_millis()
            );
        }
        let record = RequestRecord {
            seq: self.seq,
            op: std::mem::take(&mut self.op),
            mutating: self.mutating,
            start_unix_nanos: self.start,
            end_unix_nanos: now_unix_nanos(),
            status,
            fault,
        };
        lock(&self.app.stats).end(record);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            self.finish(499, Some("client_gone"));
        }
    }
}

/// Sends a request to moto and buffers the answer.
pub(crate) async fn forward(
    app: &App,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply, String> {
    let url = format!("{}{}", app.upstream, path_and_query);
    send(app, method, &url, headers, body).await
}

/// Sends a request to any plain-HTTP URL (moto, or the Kubernetes API server of
/// `kube_url`) and buffers the answer.
pub(crate) async fn send(
    app: &App,
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
    let resp = app
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
    // would give (S3's HeadObject: the object's size): kept for `into_response`. Any other
    // answer's length is recomputed there from the buffered body, which may be rewritten.
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

/// The client's headers that a request of the proxy's own to moto carries: moto takes the
/// region and account from the credential scope (it checks no signature). The body's hash
/// is left out, as the body is another.
pub(crate) fn own_request_headers(client: &HeaderMap) -> HeaderMap {
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

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Decides the answer to one AWS request; returns it with the fault label
/// recorded in the stats.
#[allow(clippy::too_many_arguments)]
async fn process(
    app: &App,
    cfg: &Config,
    info: &OpInfo,
    seq: u64,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> (Reply, Option<&'static str>) {
    // Draw only for enabled faults, so that a seeded throttling sequence is
    // the same whether or not server errors are also configured.
    let (throttled, server_error, unavailable) = {
        let mut rng = lock(&app.rng);
        let t = cfg.throttle_fraction > 0.0 && rng.f64() < cfg.throttle_fraction;
        let s = !t && cfg.server_error_fraction > 0.0 && rng.f64() < cfg.server_error_fraction;
        let u = s && rng.bool();
        (t, s, u)
    };
    if throttled {
        return (faults::throttle(info.protocol), Some("throttle"));
    }
    if server_error {
        return (
            faults::server_error(info.protocol, unavailable),
            Some("server_error"),
        );
    }
    // moto has no add-on API: the proxy answers those requests itself. The kill hook sees
    // a mutating one once its state change is made, before the answer goes out, as it sees
    // a forwarded one once moto has answered.
    if let Some(reply) = addons::handle(app, cfg, info, headers, &body).await {
        if info.mutating {
            kill_hook(app, seq, &info.op);
        }
        // Its change is made, as a forwarded request's is once moto has answered.
        let fault = take_lost_answer(app, &info.op).then_some(LOST_ANSWER);
        return (reply, fault);
    }
    if info.protocol == Protocol::RestJson && cfg.reject_op.as_deref() == Some(info.op.as_str()) {
        return (
            faults::eks_error(
                400,
                "InvalidParameterException",
                &format!("{} refused by the fault proxy (reject_op)", info.op),
            ),
            Some("rejected"),
        );
    }
    // moto has no UpdateNodegroupVersion (nor DescribeUpdate): answered here, after
    // `reject_op`, which applies to it as to the forwarded EKS operations. Counted by the
    // kill hook and subject to lost answers as the add-on requests are.
    if let Some(reply) = nodegroup_version::handle(app, cfg, info, headers, &body).await {
        if info.mutating {
            kill_hook(app, seq, &info.op);
        }
        let fault = take_lost_answer(app, &info.op).then_some(LOST_ANSWER);
        return (reply, fault);
    }
    if let Some(answer) = answer_locally(app, cfg, info, &body) {
        return answer;
    }

    // AWS keeps answering DescribeStacks for a stack being deleted, but moto
    // deletes at once; fetch the last state first so it can be replayed.
    let stack_snapshot = if info.protocol == Protocol::AwsQuery
        && info.op == "DeleteStack"
        && cfg.stack_delete_ms > 0
    {
        match info.param("StackName") {
            Some(name) => snapshot_stack(app, name, headers).await,
            None => None,
        }
    } else {
        None
    };

    // A describe reports the state as of when it was sent to moto, not when
    // moto (sometimes slow on its first calls) got round to answering.
    let sent = Instant::now();
    let upstream = match forward(app, method, path_and_query, headers, body).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aws-fault-proxy: {}: {e}", info.op);
            return (error_json(502, &e), Some("upstream_error"));
        }
    };
    if info.mutating {
        kill_hook(app, seq, &info.op);
    }
    // Decided when moto's answer arrives, after the kill hook, so that the hook's counting
    // is the same with or without lost answers. The answer is still rewritten and recorded
    // below: the change was made, only the client does not learn of it.
    let lose = take_lost_answer(app, &info.op);
    // Before the rewriting, so that a DeleteCluster snapshot replayed during
    // its deleting window has the fields too.
    let upstream = if cfg.eks_cluster_fields
        && info.protocol == Protocol::RestJson
        && is_success(upstream.status)
    {
        add_cluster_fields(app, info, headers, upstream, sent).await
    } else {
        upstream
    };
    let cluster_deleted = info.protocol == Protocol::RestJson
        && info.op == "DeleteCluster"
        && is_success(upstream.status);
    let answer = rewrite_answer(app, cfg, info, upstream, stack_snapshot, sent);
    if cluster_deleted {
        // EKS deletes a cluster's add-ons with it.
        if let Some(name) = info.segment(1) {
            lock(&app.world).addons.forget_cluster(&info.region, name);
        }
        delete_cluster_sg(app, cfg, info, headers).await;
    }
    if lose {
        return (answer.0, Some(LOST_ANSWER));
    }
    answer
}

/// Option `lose_answer_op`: whether the answer of this request (which moto, or the add-on
/// API, has carried out) is to be lost; takes one from `lose_answer_count` if so.
fn take_lost_answer(app: &App, op: &str) -> bool {
    lock(&app.config).take_lost_answer(op)
}

/// Option `eks_cluster_fields`: adds `clusterSecurityGroupId` and `vpcId` to
/// an EKS answer with a `cluster` object that lacks them, making the group
/// in moto the first time. On any failure the answer stays as moto gave it.
///
/// The EC2 calls go straight to moto: they are not counted in the stats,
/// faulted, delayed or seen by the kill hook.
async fn add_cluster_fields(
    app: &App,
    info: &OpInfo,
    client_headers: &HeaderMap,
    reply: Reply,
    sent: Instant,
) -> Reply {
    let Some(missing) = cluster_sg::missing(&reply.body) else {
        return reply;
    };
    let headers = cluster_sg::ec2_headers(client_headers, &info.region);
    let sg = match missing.group_id.clone() {
        // Already EKS-shaped as far as the group goes; only vpcId lacks.
        Some(group_id) => cluster_vpc(app, &headers, &missing)
            .await
            .map(|vpc_id| ClusterSg { group_id, vpc_id }),
        None => ensure_cluster_sg(app, info, &headers, &missing, sent).await,
    };
    let Some(sg) = sg else {
        return reply;
    };
    match cluster_sg::inject(&reply.body, &sg.group_id, &sg.vpc_id) {
        Some(body) => Reply { body, ..reply },
        None => reply,
    }
}

/// The cluster's security group: the cached one, or a new one in the VPC of
/// its first subnet, tagged and described as EKS does.
async fn ensure_cluster_sg(
    app: &App,
    info: &OpInfo,
    headers: &HeaderMap,
    missing: &cluster_sg::Missing,
    sent: Instant,
) -> Option<ClusterSg> {
    let key = (info.region.clone(), missing.cluster.clone());
    if let Some(sg) = lock(&app.world).cluster_sgs.get(&key) {
        return Some(sg.clone());
    }
    let _making = app.cluster_sg_lock.lock().await;
    {
        // Another answer may have made it while this one waited.
        let world = lock(&app.world);
        if let Some(sg) = world.cluster_sgs.get(&key) {
            return Some(sg.clone());
        }
        if let Some((deleted_at, sg)) = world.cluster_sgs_deleted.get(&key) {
            if *deleted_at > sent {
                return Some(sg.clone());
            }
        }
    }
    let vpc_id = cluster_vpc(app, headers, missing).await?;
    let name = cluster_sg::group_name(&missing.cluster);
    let body = cluster_sg::create_group_body(&name, &vpc_id, &missing.cluster);
    let text = ec2_call(app, headers, body)
        .await
        .map_err(|e| cluster_sg_warning(&missing.cluster, &format!("CreateSecurityGroup: {e}")))
        .ok()?;
    let Some(group_id) = state::xml_first(&text, "groupId") else {
        cluster_sg_warning(&missing.cluster, "no groupId in CreateSecurityGroup answer");
        return None;
    };
    let sg = ClusterSg { group_id, vpc_id };
    lock(&app.world).cluster_sgs.insert(key, sg.clone());
    Some(sg)
}

/// VPC of the cluster: as given, or that of its first subnet.
async fn cluster_vpc(
    app: &App,
    headers: &HeaderMap,
    missing: &cluster_sg::Missing,
) -> Option<String> {
    if let Some(vpc_id) = &missing.vpc_id {
        return Some(vpc_id.clone());
    }
    let Some(subnet) = &missing.first_subnet else {
        cluster_sg_warning(&missing.cluster, "no subnet in resourcesVpcConfig");
        return None;
    };
    let text = ec2_call(app, headers, cluster_sg::describe_subnet_body(subnet))
        .await
        .map_err(|e| {
            cluster_sg_warning(&missing.cluster, &format!("DescribeSubnets {subnet}: {e}"))
        })
        .ok()?;
    let vpc_id = state::xml_first(&text, "vpcId");
    if vpc_id.is_none() {
        cluster_sg_warning(&missing.cluster, &format!("no vpcId for subnet {subnet}"));
    }
    vpc_id
}

/// After a successful DeleteCluster: deletes the group made for the cluster,
/// as EKS does. moto's errors are ignored (the group may be in use).
async fn delete_cluster_sg(app: &App, cfg: &Config, info: &OpInfo, client_headers: &HeaderMap) {
    let Some(name) = info.segment(1) else {
        return;
    };
    let key = (info.region.clone(), name.to_string());
    // A group exists only if the option was on; with it off, and no group,
    // there is nothing to wait for.
    if !cfg.eks_cluster_fields && !lock(&app.world).cluster_sgs.contains_key(&key) {
        return;
    }
    let _deleting = app.cluster_sg_lock.lock().await;
    let sg = {
        let mut world = lock(&app.world);
        let sg = world.cluster_sgs.remove(&key);
        if let Some(sg) = &sg {
            world
                .cluster_sgs_deleted
                .insert(key, (Instant::now(), sg.clone()));
        }
        sg
    };
    let Some(sg) = sg else {
        return;
    };
    let headers = cluster_sg::ec2_headers(client_headers, &info.region);
    let result = ec2_call(app, &headers, cluster_sg::delete_group_body(&sg.group_id)).await;
    if let (Err(e), true) = (result, app.verbose) {
        eprintln!(
            "aws-fault-proxy: eks_cluster_fields: {name}: DeleteSecurityGroup {}: {e}",
            sg.group_id
        );
    }
}

/// An EC2 Query call of the proxy's own; the answer text if moto succeeded.
pub(crate) async fn ec2_call(
    app: &App,
    headers: &HeaderMap,
    body: String,
) -> Result<String, String> {
    let reply = forward(app, &Method::POST, "/", headers, Bytes::from(body)).await?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    if is_success(reply.status) {
        Ok(text)
    } else {
        let code = state::xml_first(&text, "Code").unwrap_or_default();
        Err(format!("moto answered {} {code}", reply.status))
    }
}

/// The answer goes out without the fields; say why, once per answer.
fn cluster_sg_warning(cluster: &str, why: &str) {
    eprintln!("aws-fault-proxy: eks_cluster_fields: cluster {cluster}: {why}; answer left as is");
}

/// Faults decided before moto is asked; `None` means forward the request.
fn answer_locally(
    app: &App,
    cfg: &Config,
    info: &OpInfo,
    body: &[u8],
) -> Option<(Reply, Option<&'static str>)> {
    let now = Instant::now();
    let region = info.region.clone();
    let mut world = lock(&app.world);
    match (info.protocol, info.op.as_str()) {
        (Protocol::RestJson, "CreateCluster" | "CreateNodegroup") => {
            // EKS keeps the name of a cluster or nodegroup that is still DELETING: creating
            // it again is refused until it is gone. moto has dropped it already.
            let deleting = |phase: Option<&Phase>| {
                phase.is_some_and(|p| matches!(p, Phase::Deleting { .. }) && p.active(now))
            };
            let in_use = if info.op == "CreateCluster" {
                let name = state::json_str(body, None, "name");
                name.filter(|n| deleting(world.clusters.get(&(region.clone(), n.clone()))))
            } else {
                let cluster = info.segment(1).map(str::to_string);
                let name = state::json_str(body, None, "nodegroupName");
                match (cluster, name) {
                    (Some(c), Some(n))
                        if deleting(world.nodegroups.get(&(
                            region.clone(),
                            c.clone(),
                            n.clone(),
                        ))) =>
                    {
                        Some(n)
                    }
                    _ => None,
                }
            };
            if let Some(name) = in_use {
                return Some((faults::name_in_use(&info.op, &name), Some("in_use")));
            }
            let field = if info.op == "CreateCluster" {
                "roleArn"
            } else {
                "nodeRole"
            };
            let arn = state::json_str(body, None, field)?;
            let until = *world.roles.get(state::role_name(&arn))?;
            (now < until).then(|| (faults::role_not_assumable(&arn), Some("iam_propagation")))
        }
        (Protocol::RestJson, "DescribeCluster") => {
            let key = (region, info.segment(1)?.to_string());
            replay_deleting(&mut world.clusters, key, now)
        }
        (Protocol::RestJson, "DescribeNodegroup") => {
            let key = (
                region,
                info.segment(1)?.to_string(),
                info.segment(3)?.to_string(),
            );
            replay_deleting(&mut world.nodegroups, key, now)
        }
        (Protocol::RestJson, "DeleteCluster") => {
            // EKS refuses to delete a cluster while any nodegroup exists, and
            // one that is still DELETING exists; moto has already dropped it.
            let cluster = info.segment(1)?;
            let busy = world.nodegroups.iter().any(|((r, c, _), phase)| {
                *r == region
                    && c == cluster
                    && matches!(phase, Phase::Deleting { .. })
                    && phase.active(now)
            });
            busy.then(|| {
                (
                    faults::cluster_has_nodegroups(),
                    Some("nodegroups_deleting"),
                )
            })
        }
        (Protocol::Ec2Query, "DeleteSubnet") => {
            if cfg.dependency_violation_count == 0 {
                return None;
            }
            let subnet = info.param("SubnetId")?.to_string();
            let seen = world.subnet_failures.entry(subnet.clone()).or_insert(0);
            if *seen < cfg.dependency_violation_count {
                *seen += 1;
                Some((
                    faults::subnet_dependency_violation(&subnet),
                    Some("dependency_violation"),
                ))
            } else {
                None
            }
        }
        (Protocol::AwsQuery, "DescribeStacks") => {
            let name = state::stack_name(info.param("StackName")?, &world.stack_names);
            let key = (region, name);
            let entry = world.stacks.get(&key)?;
            match &entry.phase {
                Phase::Deleting { snapshot, .. } if entry.phase.active(now) => {
                    Some((snapshot.clone(), Some("transition")))
                }
                Phase::Deleting { .. } => {
                    // Window over: from now on moto's own answer is right.
                    world.stacks.remove(&key);
                    None
                }
                Phase::Creating { .. } => None,
            }
        }
        _ => None,
    }
}

/// Replays the snapshot of a resource in its deleting window, and forgets
/// the window once it is over.
fn replay_deleting<K: std::hash::Hash + Eq>(
    map: &mut std::collections::HashMap<K, Phase>,
    key: K,
    now: Instant,
) -> Option<(Reply, Option<&'static str>)> {
    let phase = map.get(&key)?;
    match phase {
        Phase::Deleting { snapshot, .. } if phase.active(now) => {
            Some((snapshot.clone(), Some("transition")))
        }
        Phase::Deleting { .. } => {
            map.remove(&key);
            None
        }
        Phase::Creating { .. } => None,
    }
}

/// DescribeStacks for one stack, made by the proxy with the client's
/// credentials (moto picks the region from them), status set to
/// DELETE_IN_PROGRESS.
async fn snapshot_stack(app: &App, stack: &str, client_headers: &HeaderMap) -> Option<Reply> {
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
        state::form_encode(stack)
    );
    let reply = forward(app, &Method::POST, "/", &headers, Bytes::from(body))
        .await
        .ok()?;
    if !is_success(reply.status) {
        return None;
    }
    let text = String::from_utf8_lossy(&reply.body);
    let rewritten = state::xml_replace_first(&text, "StackStatus", "DELETE_IN_PROGRESS")?;
    Some(Reply {
        body: Bytes::from(rewritten),
        ..reply
    })
}

/// Adjusts moto's answer to the transition windows and records new windows.
fn rewrite_answer(
    app: &App,
    cfg: &Config,
    info: &OpInfo,
    mut reply: Reply,
    stack_snapshot: Option<Reply>,
    now: Instant,
) -> (Reply, Option<&'static str>) {
    if !is_success(reply.status) {
        return (reply, None);
    }
    let region = info.region.clone();
    let mut world = lock(&app.world);
    let mut rewrote = false;
    let mut set_status = |reply: &mut Reply, root: &str, status: &str| {
        if let Some(b) = state::set_json_status(&reply.body, root, status) {
            reply.body = b;
            rewrote = true;
        }
    };
    match (info.protocol, info.op.as_str()) {
        (Protocol::RestJson, "CreateCluster") if cfg.cluster_create_ms > 0 => {
            if let Some(name) = state::json_str(&reply.body, Some("cluster"), "name") {
                let until = state::deadline(cfg.cluster_create_ms);
                world
                    .clusters
                    .insert((region, name), Phase::Creating { until });
                set_status(&mut reply, "cluster", "CREATING");
            }
        }
        (Protocol::RestJson, "DescribeCluster") => {
            if let Some(name) = info.segment(1) {
                let key = (region, name.to_string());
                if let Some(phase @ Phase::Creating { .. }) = world.clusters.get(&key) {
                    if phase.active(now) {
                        set_status(&mut reply, "cluster", "CREATING");
                    } else {
                        world.clusters.remove(&key);
                    }
                }
            }
        }
        (Protocol::RestJson, "DeleteCluster") => {
            if let Some(name) = info.segment(1) {
                let key = (region, name.to_string());
                world.clusters.remove(&key);
                if cfg.cluster_delete_ms > 0 {
                    set_status(&mut reply, "cluster", "DELETING");
                    let until = state::deadline(cfg.cluster_delete_ms);
                    let snapshot = reply.clone();
                    world
                        .clusters
                        .insert(key, Phase::Deleting { until, snapshot });
                }
            }
        }
        (Protocol::RestJson, "CreateNodegroup") => {
            let ng = state::json_str(&reply.body, Some("nodegroup"), "nodegroupName");
            if let (Some(cluster), Some(ng)) = (info.segment(1), ng) {
                let key = (region, cluster.to_string(), ng);
                // A new nodegroup is on the version it was created with, whatever an
                // earlier one of the name was moved to (deleted behind the proxy's back,
                // or with a moto reset of its own).
                world.nodegroup_versions.forget(&key);
                if cfg.nodegroup_create_ms > 0 {
                    let until = state::deadline(cfg.nodegroup_create_ms);
                    world.nodegroups.insert(key, Phase::Creating { until });
                    set_status(&mut reply, "nodegroup", "CREATING");
                }
            }
        }
        (Protocol::RestJson, "DescribeNodegroup") => {
            if let (Some(cluster), Some(ng)) = (info.segment(1), info.segment(3)) {
                let key = (region, cluster.to_string(), ng.to_string());
                let mut creating = false;
                if let Some(phase @ Phase::Creating { .. }) = world.nodegroups.get(&key) {
                    if phase.active(now) {
                        creating = true;
                        set_status(&mut reply, "nodegroup", "CREATING");
                    } else {
                        world.nodegroups.remove(&key);
                    }
                }
                // UpdateNodegroupVersion (answered by the proxy): moto still has the
                // version the nodegroup was created with. Not a fault: no label.
                let versions = &world.nodegroup_versions;
                if let Some(version) = versions.launch_template_version(&key) {
                    if let Some(body) = state::set_launch_template_version(&reply.body, version) {
                        reply.body = body;
                    }
                }
                if !creating && versions.updating(&key, now) {
                    set_status(&mut reply, "nodegroup", "UPDATING");
                }
            }
        }
        (Protocol::RestJson, "DeleteNodegroup") => {
            if let (Some(cluster), Some(ng)) = (info.segment(1), info.segment(3)) {
                let key = (region, cluster.to_string(), ng.to_string());
                world.nodegroups.remove(&key);
                // The answer (and the snapshot replayed while DELETING) describes the
                // nodegroup as it was: on the version of its last update.
                if let Some(version) = world.nodegroup_versions.forget(&key) {
                    if let Some(body) = state::set_launch_template_version(&reply.body, &version) {
                        reply.body = body;
                    }
                }
                if cfg.nodegroup_delete_ms > 0 {
                    set_status(&mut reply, "nodegroup", "DELETING");
                    let until = state::deadline(cfg.nodegroup_delete_ms);
                    let snapshot = reply.clone();
                    world
                        .nodegroups
                        .insert(key, Phase::Deleting { until, snapshot });
                }
            }
        }
        (Protocol::AwsQuery, "CreateStack") => {
            let text = String::from_utf8_lossy(&reply.body);
            let id = state::xml_first(&text, "StackId");
            if let (Some(name), Some(id)) = (info.param("StackName"), id) {
                world.stack_names.insert(id.clone(), name.to_string());
                if cfg.stack_create_ms > 0 {
                    let phase = Phase::Creating {
                        until: state::deadline(cfg.stack_create_ms),
                    };
                    world.stacks.insert(
                        (region, name.to_string()),
                        StackPhase {
                            phase,
                            stack_id: Some(id),
                        },
                    );
                }
            }
        }
        (Protocol::AwsQuery, "DescribeStacks") => {
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            let stacks = &world.stacks;
            let out = state::rewrite_stack_statuses(&text, |id, name| {
                let entry = stacks.get(&(region.clone(), name.to_string()))?;
                let same_stack = entry.stack_id.as_deref().is_none_or(|s| s == id);
                (matches!(entry.phase, Phase::Creating { .. })
                    && entry.phase.active(now)
                    && same_stack)
                    .then_some("CREATE_IN_PROGRESS")
            });
            if let Some(out) = out {
                reply.body = Bytes::from(out);
                rewrote = true;
            }
        }
        (Protocol::AwsQuery, "DeleteStack") => {
            if let Some(reference) = info.param("StackName") {
                let name = state::stack_name(reference, &world.stack_names);
                let key = (region, name);
                world.stacks.remove(&key);
                if let Some(snapshot) = stack_snapshot {
                    let until = state::deadline(cfg.stack_delete_ms);
                    world.stacks.insert(
                        key,
                        StackPhase {
                            phase: Phase::Deleting { until, snapshot },
                            stack_id: None,
                        },
                    );
                }
            }
        }
        (Protocol::S3, "GetBucketVersioning") => {
            // moto 5.2 serializes this answer with the root `GetBucketVersioningResponse`
            // (boto3 ignores the root's name); S3's is `VersioningConfiguration`, and
            // aws-sdk-s3 refuses any other. A repair of moto's answer, not a fault: no label.
            let text = String::from_utf8_lossy(&reply.body);
            if let Some(fixed) = state::xml_rename_root(
                &text,
                "GetBucketVersioningResponse",
                "VersioningConfiguration",
            ) {
                reply.body = Bytes::from(fixed);
            }
        }
        (Protocol::AwsQuery, "CreateRole") if cfg.iam_propagation_ms > 0 => {
            let text = String::from_utf8_lossy(&reply.body);
            let name = state::xml_first(&text, "RoleName")
                .or_else(|| info.param("RoleName").map(str::to_string));
            if let Some(name) = name {
                world
                    .roles
                    .insert(name, state::deadline(cfg.iam_propagation_ms));
            }
        }
        _ => {}
    }
    let fault = rewrote.then_some("transition");
    (reply, fault)
}

/// Counts mutating requests answered by moto (or by the proxy's add-on API) and, on the
/// k-th, signals the configured process. Runs before the answer is sent, so the client dies
/// having caused the change without having seen it.
fn kill_hook(app: &App, seq: u64, op: &str) {
    let cfg = lock(&app.config).clone();
    if cfg.kill_op.as_deref().is_some_and(|o| o != op) {
        return;
    }
    let fire = {
        let mut stats = lock(&app.stats);
        stats.mutating_answers += 1;
        match cfg.kill_after_mutating {
            Some(k) => stats.mutating_answers == k && !stats.kill.killed,
            None => false,
        }
    };
    if !fire {
        return;
    }
    let pid = match (cfg.kill_pid, cfg.kill_pid_file.as_deref()) {
        (Some(pid), _) => Ok(pid),
        (None, Some(path)) => read_pid(path),
        (None, None) => Err("kill_after_mutating set but no kill_pid or kill_pid_file".into()),
    };
    let result = pid.and_then(|pid| {
        // SAFETY: kill(2) takes plain integers and has no memory effects;
        // pid was validated to be > 0 so it targets exactly one process.
        let rc = unsafe { libc::kill(pid, cfg.kill_signal) };
        if rc == 0 {
            Ok(pid)
        } else {
            Err(format!(
                "kill({pid}, {}) failed: {}",
                cfg.kill_signal,
                std::io::Error::last_os_error()
            ))
        }
    });
    let mut stats = lock(&app.stats);
    stats.kill.after_seq = Some(seq);
    stats.kill.op = Some(op.to_string());
    stats.kill.signal = Some(cfg.kill_signal);
    match result {
        Ok(pid) => {
            stats.kill.killed = true;
            stats.kill.pid = Some(pid);
            stats.kill.error = None;
        }
        Err(e) => {
            eprintln!("aws-fault-proxy: kill hook: {e}");
            stats.kill.error = Some(e);
        }
    }
}

fn read_pid(path: &str) -> Result<i32, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{path} does not hold a positive pid: {:?}", text.trim()))
}

/// `/__proxy/...`: configuration, statistics and reset.
async fn control(app: &App, method: &Method, path: &str, body: &[u8]) -> Reply {
    match (method.as_str(), path) {
        ("GET", "/__proxy/config") => config_json(app),
        ("POST", "/__proxy/config") => {
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return error_json(400, &format!("config must be JSON: {e}")),
            };
            let mut cfg = lock(&app.config);
            match cfg.merge(&patch) {
                Ok(effects) => {
                    if effects.reseed {
                        *lock(&app.rng) = seeded_rng(cfg.throttle_seed);
                    }
                    if effects.rearm_kill {
                        let mut stats = lock(&app.stats);
                        stats.mutating_answers = 0;
                        stats.kill = Default::default();
                    }
                    drop(cfg);
                    config_json(app)
                }
                Err(e) => error_json(400, &e),
            }
        }
        ("GET", "/__proxy/stats") => Reply::json(200, &lock(&app.stats).to_json()),
        ("POST", "/__proxy/reset-stats") => {
            lock(&app.stats).reset();
            Reply::json(200, &json!({ "ok": true }))
        }
        ("POST", "/__proxy/reset") => {
            *lock(&app.world) = World::default();
            lock(&app.stats).reset();
            lock(&app.config).clear_kill();
            match forward(
                app,
                &Method::POST,
                "/moto-api/reset",
                &HeaderMap::new(),
                Bytes::new(),
            )
            .await
            {
                Ok(r) => Reply::json(
                    if is_success(r.status) { 200 } else { 502 },
                    &json!({ "ok": is_success(r.status), "upstream_status": r.status }),
                ),
                Err(e) => error_json(502, &e),
            }
        }
        ("GET", "/__proxy/health") => Reply::json(200, &json!({ "ok": true })),
        _ => error_json(404, &format!("no control endpoint {method} {path}")),
    }
}

fn config_json(app: &App) -> Reply {
    let cfg = lock(&app.config).clone();
    match serde_json::to_value(&cfg) {
        Ok(v) => Reply::json(200, &v),
        Err(e) => error_json(500, &e.to_string()),
    }
}
