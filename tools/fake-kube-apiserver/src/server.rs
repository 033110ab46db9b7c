//! HTTP layer: routing, Kubernetes REST semantics (CRUD, patch, watch, tables) and errors.

use crate::eviction;
use crate::kill::KillHook;
use crate::managed::{self, ApplyError};
use crate::patch::strategic_merge;
use crate::resources::{self as rs, res, ResId, Resource};
use crate::selector::Selector;
use crate::store::{self, meta_mut, meta_str, Store};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub type Body = BoxBody<Bytes, Infallible>;

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";
const STRATEGIC_PATCH: &str = "application/strategic-merge-patch+json";
/// The real server's request body limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct State {
    store: Mutex<Store>,
    /// Separate from the store so that signalling a client never waits for, or holds up,
    /// other requests' store access.
    kill: Mutex<KillHook>,
}

impl State {
    pub fn new(seed: Vec<Value>) -> Result<Arc<Self>, String> {
        Ok(Arc::new(State {
            store: Mutex::new(Store::new(seed)?),
            kill: Mutex::new(KillHook::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the maps half-written in a way
        // that matters to a test double, so keep serving rather than poisoning every request.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kill_hook(&self) -> MutexGuard<'_, KillHook> {
        // Same reasoning as `lock`: the hook's few fields are always consistent.
        self.kill.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A failed request, rendered as a `Status` object like the real server's.
#[derive(Debug)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

type ApiResult<T> = Result<T, ApiError>;

fn err(
    code: u16,
    reason: &'static str,
    message: impl Into<String>,
    details: Option<Value>,
) -> ApiError {
    ApiError {
        code,
        reason,
        message: message.into(),
        details,
    }
}

fn details(r: &Resource, name: &str, kind: &str) -> Value {
    let mut d = json!({"name": name});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d["kind"] = json!(kind);
    d
}

fn bad_request(message: impl Into<String>) -> ApiError {
    err(400, "BadRequest", message, None)
}

fn not_found(r: &Resource, name: &str) -> ApiError {
    let msg = format!("{} \"{name}\" not found", r.qualified());
    err(404, "NotFound", msg, Some(details(r, name, r.plural)))
}

fn no_route() -> ApiError {
    let msg = "the server could not find the requested resource";
    err(404, "NotFound", msg, Some(json!({})))
}

fn method_not_allowed() -> ApiError {
    let msg = "the server does not allow this method on the requested resource";
    err(405, "MethodNotAllowed", msg, Some(json!({})))
}

fn conflict(r: &Resource, name: &str, why: &str) -> ApiError {
    let msg = format!(
        "Operation cannot be fulfilled on {} \"{name}\": {why}",
        r.qualified()
    );
    err(409, "Conflict", msg, Some(details(r, name, r.plural)))
}

const STALE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// 422 with one cause, e.g. `ENIConfig.crd.k8s.amazonaws.com "x" is invalid: metadata.name: ...`.
fn invalid(
    qkind: &str,
    group: &str,
    kind: &str,
    name: &str,
    field: &str,
    cause: &str,
    msg: &str,
) -> ApiError {
    let mut d = json!({"name": name, "group": group, "kind": kind,
        "causes": [{"reason": cause, "message": msg, "field": field}]});
    if group.is_empty() {
        obj_remove(&mut d, "group");
    }
    let message = format!("{qkind} \"{name}\" is invalid: {field}: {msg}");
    err(422, "Invalid", message, Some(d))
}

fn invalid_obj(r: &Resource, name: &str, field: &str, cause: &str, msg: &str) -> ApiError {
    invalid(
        &r.qualified_kind(),
        r.group,
        r.kind,
        name,
        field,
        cause,
        msg,
    )
}

fn invalid_patch_options(field: &str, cause: &str, msg: &str) -> ApiError {
    invalid(
        "PatchOptions.meta.k8s.io",
        "meta.k8s.io",
        "PatchOptions",
        "",
        field,
        cause,
        msg,
    )
}

fn unsupported_media(accepted: &[&str]) -> ApiError {
    let msg = format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    );
    err(415, "UnsupportedMediaType", msg, Some(json!({})))
}

fn obj_remove(v: &mut Value, key: &str) {
    if let Value::Object(m) = v {
        m.shift_remove(key);
    }
}

impl ApiError {
    fn status(&self) -> Value {
        let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "details": self.details, "code": self.code});
        if self.details.is_none() {
            obj_remove(&mut s, "details");
        }
        // Errors the real server has no reason for (StatusReasonUnknown) leave it out.
        if self.reason.is_empty() {
            obj_remove(&mut s, "reason");
        }
        s
    }
}

fn respond(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    if let Ok(ct) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache, private"),
    );
    resp
}

fn json_resp(code: u16, v: &Value) -> Response<Body> {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

/// Percent-decodes a query component the way Go's `url.ParseQuery` does (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(bytes.len()), 0);
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a request's URL path addresses.
enum Route {
    Doc(Value),
    Resource {
        id: ResId,
        ns: Option<String>,
        name: Option<String>,
        status: bool,
    },
    /// `POST /api/v1/namespaces/NS/pods/NAME/eviction`.
    Eviction {
        ns: String,
        name: String,
    },
}

fn route(path: &str, host: &str) -> ApiResult<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let doc = |v: Option<Value>| v.map(Route::Doc).ok_or_else(no_route);
    match segs.as_slice() {
        ["version"] => doc(Some(rs::version_doc())),
        ["api"] => doc(Some(rs::api_versions(host))),
        ["apis"] => doc(Some(rs::api_group_list())),
        ["api", v] => doc(rs::resource_list("", v)),
        ["apis", g] => doc(rs::api_group(g)),
        ["apis", g, v] => doc(rs::resource_list(g, v)),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Err(no_route()),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> ApiResult<Route> {
    // `/namespaces/NS/PLURAL/...` unless it is the namespace object's own subresource.
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    if let (Some(ns), ["pods", name, "eviction"]) = (&ns, rest.as_slice()) {
        if group.is_empty() && version == "v1" {
            return Ok(Route::Eviction {
                ns: ns.clone(),
                name: name.to_string(),
            });
        }
    }
    let id = rs::find(group, version, rest.first().copied().unwrap_or("")).ok_or_else(no_route)?;
    let r = res(id);
    if ns.is_some() && !r.namespaced {
        return Err(no_route());
    }
    let name = rest.get(1).map(|s| s.to_string());
    let status = match rest.get(2) {
        None => false,
        Some(&"status") if r.status_subresource && rest.len() == 3 => true,
        _ => return Err(no_route()),
    };
    // Named namespaced objects are only reachable through their namespace.
    if name.is_some() && r.namespaced && ns.is_none() {
        return Err(no_route());
    }
    Ok(Route::Resource {
        id,
        ns,
        name,
        status,
    })
}

/// Everything about the request a handler needs besides the route.
struct Ctx {
    method: Method,
    query: HashMap<String, String>,
    content_type: String,
    accept: String,
    user_agent: String,
    body: Bytes,
}

impl Ctx {
    fn q(&self, key: &str) -> &str {
        self.query.get(key).map_or("", String::as_str)
    }

    /// Whether the request asks for a dry run in any form (even an invalid one), so that the
    /// kill hook only counts writes meant to change the store.
    fn wants_dry_run(&self) -> bool {
        if self.query.contains_key("dryRun") {
            return true;
        }
        // kubectl puts dryRun in a DELETE's options body rather than the query, and an
        // Eviction carries it in its deleteOptions.
        let pointer = match self.method {
            Method::DELETE => "/dryRun",
            Method::POST => "/deleteOptions/dryRun",
            _ => return false,
        };
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|o| {
                o.pointer(pointer)
                    .and_then(Value::as_array)
                    .map(|a| !a.is_empty())
            })
            .unwrap_or(false)
    }

    /// The manager of a write that is not an apply: `fieldManager`, else the User-Agent's
    /// product name (up to the first `/`), else `unknown`, as the real server defaults it.
    fn update_manager(&self) -> String {
        let given = self.q("fieldManager");
        if !given.is_empty() {
            return given.to_string();
        }
        let product = self.user_agent.split('/').next().unwrap_or_default();
        let mut prefix = String::new();
        // Printable characters only, up to 128 bytes.
        for c in product.chars().filter(|c| !c.is_control()) {
            if prefix.len() >= 128 {
                break;
            }
            prefix.push(c);
        }
        if prefix.is_empty() {
            "unknown".into()
        } else {
            prefix
        }
    }

    fn dry_run(&self) -> ApiResult<bool> {
        match self.q("dryRun") {
            "" => Ok(false),
            "All" => Ok(true),
            other => Err(invalid_patch_options(
                "dryRun",
                "FieldValueNotSupported",
                &format!("Unsupported value: \"{other}\": supported values: \"All\""),
            )),
        }
    }
}

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            let e = err(
                413,
                "RequestEntityTooLarge",
                "request entity too large",
                None,
            );
            return Ok(json_resp(413, &e.status()));
        }
    };
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_type = header(hyper::header::CONTENT_TYPE);
    if let Some(rest) = path.strip_prefix("/__fake/") {
        return Ok(fake_endpoint(&state, &parts.method, rest, &body));
    }
    let seq = state.lock().log_request(
        parts.method.as_str(),
        &path,
        &raw_query,
        &content_type,
        &header(hyper::header::USER_AGENT),
        &body,
    );
    let ctx = Ctx {
        method: parts.method.clone(),
        query: raw_query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k), decode(v))
            })
            .collect(),
        content_type: content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        body,
    };
    let host = header(hyper::header::HOST);
    let resp = api(&state, &ctx, &path, &host).unwrap_or_else(|e| json_resp(e.code, &e.status()));
    state.lock().log_code(seq, resp.status().as_u16());
    // The write is in the store (or was refused) and the answer not yet sent: a client the
    // hook kills now has caused the change without seeing it, as in a real crash.
    if counts_as_write(&ctx, &path, &host) {
        state.kill_hook().count_write(seq, &path, &ctx.user_agent);
    }
    Ok(resp)
}

/// A write for the kill hook: POST, PUT, PATCH or DELETE on a resource path, not a dry run.
/// Refused writes count too, like the AWS proxy's mutating requests: the client sent them, and
/// a crash right after one is a crash point as well.
fn counts_as_write(ctx: &Ctx, path: &str, host: &str) -> bool {
    matches!(
        ctx.method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && !ctx.wants_dry_run()
        && matches!(
            route(path, host),
            Ok(Route::Resource { .. } | Route::Eviction { .. })
        )
}

fn api(state: &Arc<State>, ctx: &Ctx, path: &str, host: &str) -> ApiResult<Response<Body>> {
    if matches!(path, "/healthz" | "/livez" | "/readyz") {
        return Ok(respond(200, "text/plain; charset=utf-8", "ok"));
    }
    let (id, ns, name, status) = match route(path, host)? {
        Route::Doc(v) if ctx.method == Method::GET => return Ok(json_resp(200, &v)),
        Route::Doc(_) => return Err(method_not_allowed()),
        Route::Eviction { ns, name } if ctx.method == Method::POST => {
            let (code, out) = evict(&mut state.lock(), ctx, &ns, &name)?;
            return Ok(json_resp(code, &out));
        }
        Route::Eviction { .. } => return Err(method_not_allowed()),
        Route::Resource {
            id,
            ns,
            name,
            status,
        } => (id, ns, name, status),
    };
    let watching = matches!(ctx.q("watch"), "true" | "1");
    if ctx.method == Method::GET && watching {
        // kube-rs watches a single object through a name field selector; a named watch
        // URL is the legacy equivalent.
        let mut fields = ctx.q("fieldSelector").to_string();
        if let Some(n) = &name {
            fields = format!("metadata.name={n}");
        }
        return watch(state, ctx, id, ns, &fields);
    }
    let mut store = state.lock();
    let ns_str = ns.clone().unwrap_or_default();
    let (code, out) = match (&ctx.method, name) {
        (&Method::GET, None) => (200, list(&store, ctx, id, ns.as_deref())?),
        (&Method::GET, Some(n)) => (200, get(&store, id, &ns_str, &n)?.clone()),
        (&Method::POST, None) if ns.is_some() || !res(id).namespaced => {
            let obj = parse_body(ctx)?;
            let manager = ctx.update_manager();
            create(
                &mut store,
                id,
                ns.as_deref(),
                obj,
                ctx.dry_run()?,
                Some(&manager),
            )?
        }
        (&Method::PUT, Some(n)) => (200, replace(&mut store, ctx, id, &ns_str, &n, status)?),
        (&Method::PATCH, Some(n)) => patch(&mut store, ctx, id, &ns_str, &n, status)?,
        (&Method::DELETE, Some(n)) if !status => (200, delete(&mut store, ctx, id, &ns_str, &n)?),
        (&Method::DELETE, None) => (200, delete_collection(&mut store, ctx, id, ns.as_deref())?),
        _ => return Err(method_not_allowed()),
    };
    let out = if ctx.method == Method::GET && ctx.accept.contains("as=Table") {
        let rv = store.rv();
        table(ctx, &out, rv)
    } else {
        out
    };
    Ok(json_resp(code, &out))
}

fn get<'a>(store: &'a Store, id: ResId, ns: &str, name: &str) -> ApiResult<&'a Value> {
    store
        .get(id, ns, name)
        .ok_or_else(|| not_found(res(id), name))
}

fn selector(ctx: &Ctx, r: &Resource) -> ApiResult<Selector> {
    Selector::parse(ctx.q("labelSelector"), ctx.q("fieldSelector"), r.fields).map_err(bad_request)
}

fn list(store: &Store, ctx: &Ctx, id: ResId, ns: Option<&str>) -> ApiResult<Value> {
    let r = res(id);
    let sel = selector(ctx, r)?;
    let mut items: Vec<Value> = store
        .list(id, ns)
        .into_iter()
        .filter(|o| sel.matches(o))
        .cloned()
        .collect();
    if !r.custom {
        // Built-in list items are serialized without their type fields.
        for it in &mut items {
            obj_remove(it, "kind");
            obj_remove(it, "apiVersion");
        }
    }
    let mut meta = json!({"resourceVersion": store.rv().to_string()});
    // Paging: the continue token is simply the offset of the next item.
    let start = match ctx.q("continue") {
        "" => 0,
        c => c
            .parse::<usize>()
            .map_err(|_| bad_request(format!("continue key is not valid: {c:?}")))?,
    };
    let limit = ctx.q("limit").parse::<usize>().unwrap_or(0);
    let total = items.len();
    let mut items: Vec<Value> = items.into_iter().skip(start).collect();
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        meta["continue"] = json!((start + limit).to_string());
        meta["remainingItemCount"] = json!(total - start - limit);
    }
    Ok(
        json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
        "metadata": meta, "items": items}),
    )
}

/// `Table` rendering for kubectl's `Accept: ...;as=Table` (Name and Age columns).
fn table(ctx: &Ctx, out: &Value, rv: u64) -> Value {
    let objects: Vec<&Value> = match out.get("items") {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => vec![out],
    };
    let now = store::unix_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| {
            let name = meta_str(o, "name").unwrap_or_default();
            let age = meta_str(o, "creationTimestamp")
                .and_then(store::parse_rfc3339)
                .map_or("<unknown>".to_string(), |t| human_age(now - t));
            let object = match ctx.q("includeObject") {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata")}),
            };
            json!({"cells": [name, age], "object": object})
        })
        .collect();
    let mut meta = out.get("metadata").cloned().unwrap_or(json!({}));
    meta["resourceVersion"] = json!(rv.to_string());
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."},
            {"name": "Age", "type": "string", "format": "", "priority": 0,
             "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}],
        "rows": rows})
}

/// kubectl-style short durations (`45s`, `12m`, `5h`, `3d`).
fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=10_799 => format!("{}m", s / 60),
        10_800..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn parse_body(ctx: &Ctx) -> ApiResult<Value> {
    let v: Value = match ctx.content_type.as_str() {
        "" | "application/json" => serde_json::from_slice(&ctx.body).map_err(|e| {
            bad_request(format!("the body of the request could not be decoded: {e}"))
        })?,
        "application/yaml" => serde_yaml::from_slice(&ctx.body).map_err(|e| {
            bad_request(format!("the body of the request could not be decoded: {e}"))
        })?,
        _ => return Err(unsupported_media(&["application/json", "application/yaml"])),
    };
    if !v.is_object() {
        return Err(bad_request("the body of the request must be a JSON object"));
    }
    Ok(v)
}

/// Defaults missing type fields and rejects a body meant for another resource.
fn check_type(r: &Resource, obj: &mut Value) -> ApiResult<()> {
    let av = r.api_version();
    let m = store::obj_map(obj);
    match m.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {}
        Some(got) if got == av => {}
        Some(got) => {
            return Err(bad_request(format!(
                "the API version in the data ({got}) does not match the expected API version ({av})"
            )))
        }
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("") => {}
        Some(got) if got == r.kind => {}
        Some(got) => {
            return Err(bad_request(format!(
                "the kind in the data ({got}) does not match the expected kind ({})",
                r.kind
            )))
        }
    }
    // Keep apiVersion/kind first, as the real server prints them.
    let rest: Map<String, Value> = std::mem::take(m)
        .into_iter()
        .filter(|(k, _)| k != "apiVersion" && k != "kind")
        .collect();
    m.insert("kind".into(), json!(r.kind));
    m.insert("apiVersion".into(), json!(av));
    m.extend(rest);
    Ok(())
}

/// Fills or checks `metadata.namespace` against the URL; cluster-scoped objects drop it.
fn resolve_ns(r: &Resource, url_ns: Option<&str>, obj: &mut Value) -> ApiResult<String> {
    let m = meta_mut(obj);
    if !r.namespaced {
        m.shift_remove("namespace");
        return Ok(String::new());
    }
    let url = url_ns.unwrap_or_default();
    match m.get("namespace").and_then(Value::as_str) {
        Some(b) if !b.is_empty() && b != url => Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            m.insert("namespace".into(), json!(url));
            Ok(url.to_string())
        }
    }
}

fn check_name(obj: &Value, url_name: &str) -> ApiResult<()> {
    let got = meta_str(obj, "name").unwrap_or_default();
    if got != url_name {
        return Err(bad_request(format!(
            "the name of the object ({got}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

fn valid_dns_subdomain(n: &str) -> bool {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    n.len() <= 253 && n.split('.').all(ok_label)
}

/// Where a write stands on field ownership.
fn scope(r: &Resource, status_only: bool) -> managed::Scope {
    managed::Scope {
        schema: crate::structure::Schema { custom: r.custom },
        api_version: r.api_version(),
        kind: r.kind,
        subresource: if status_only { "status" } else { "" },
        status_subresource: r.status_subresource,
        now: store::rfc3339(store::unix_now()),
    }
}

/// Stores a new object. `manager` is the creator for `managedFields`; `None` keeps the
/// managedFields `obj` has (an apply that creates the object computed them).
fn create(
    store: &mut Store,
    id: ResId,
    url_ns: Option<&str>,
    mut obj: Value,
    dry: bool,
    manager: Option<&str>,
) -> ApiResult<(u16, Value)> {
    let r = res(id);
    check_type(r, &mut obj)?;
    let ns = resolve_ns(r, url_ns, &mut obj)?;
    let m = meta_mut(&mut obj);
    let name = match (
        m.get("name").and_then(Value::as_str),
        m.get("generateName").and_then(Value::as_str),
    ) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) if !g.is_empty() => format!("{g}{}", store::random_suffix()),
        _ => {
            let msg = "Required value: name or generateName is required";
            return Err(invalid_obj(
                r,
                "",
                "metadata.name",
                "FieldValueRequired",
                msg,
            ));
        }
    };
    if !valid_dns_subdomain(&name) {
        let msg = format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
        return Err(invalid_obj(
            r,
            &name,
            "metadata.name",
            "FieldValueInvalid",
            &msg,
        ));
    }
    if m.get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| !v.is_empty())
    {
        let msg = "resourceVersion should not be set on objects to be created";
        return Err(err(
            500,
            "InternalError",
            format!("Internal error occurred: {msg}"),
            Some(json!({"causes": [{"message": msg}]})),
        ));
    }
    m.insert("name".into(), json!(name));
    m.insert("uid".into(), json!(store::new_uid()));
    m.insert(
        "creationTimestamp".into(),
        json!(store::rfc3339(store::unix_now())),
    );
    m.shift_remove("deletionTimestamp");
    if r.generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.shift_remove("generation");
    }
    let nsr = rs::find("", "v1", "namespaces").unwrap_or(0);
    if r.namespaced && store.get(nsr, "", &ns).is_none() {
        return Err(not_found(res(nsr), &ns));
    }
    if store.get(id, &ns, &name).is_some() {
        let msg = format!("{} \"{name}\" already exists", r.qualified());
        return Err(err(
            409,
            "AlreadyExists",
            msg,
            Some(details(r, &name, r.plural)),
        ));
    }
    if let Some(manager) = manager {
        // Before the defaults below, which the real server sets after tracking ownership.
        let mf = managed::track_update(&scope(r, false), None, &obj, manager);
        managed::set_managed_fields(&mut obj, mf);
    }
    default_status(r, &mut obj);
    if dry {
        return Ok((201, obj));
    }
    Ok((201, store.write(id, &ns, &name, obj, "ADDED")))
}

/// What the real strategies' PrepareForCreate leave in `status` (no controllers run here).
fn default_status(r: &Resource, obj: &mut Value) {
    let status = match r.kind {
        "DaemonSet" => json!({"currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0}),
        "Deployment" => json!({}),
        "ReplicaSet" => json!({"replicas": 0}),
        "PodDisruptionBudget" => json!({"disruptionsAllowed": 0, "currentHealthy": 0,
            "desiredHealthy": 0, "expectedPods": 0}),
        "Pod" => json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "Namespace" => {
            let spec = store::obj_map(store::obj_map(obj).entry("spec").or_insert(json!({})));
            spec.entry("finalizers").or_insert(json!(["kubernetes"]));
            json!({"phase": "Active"})
        }
        "CustomResourceDefinition" => {
            let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
            let stored: Vec<Value> = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"] == json!(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            json!({"acceptedNames": names, "storedVersions": stored, "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}]})
        }
        _ => return,
    };
    store::obj_map(obj).insert("status".into(), status);
}

fn strip_meta_status(v: &Value) -> Value {
    let mut v = v.clone();
    obj_remove(&mut v, "metadata");
    obj_remove(&mut v, "status");
    v
}

/// Shared tail of PUT and PATCH: keeps server-owned fields, records field ownership (an
/// apply has done that already), skips no-op writes (the real server does not bump
/// resourceVersion for them) and maintains `generation`.
fn commit_update(
    store: &mut Store,
    ctx: &Ctx,
    id: ResId,
    key: (&str, &str),
    old: Value,
    mut new: Value,
    status_only: bool,
) -> ApiResult<Value> {
    let r = res(id);
    let applied = ctx.content_type == APPLY_PATCH;
    let (ns, name) = key;
    {
        let nm = meta_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "resourceVersion",
        ] {
            match old.get("metadata").and_then(|m| m.get(k)) {
                Some(v) => nm.insert(k.into(), v.clone()),
                None => nm.shift_remove(k),
            };
        }
    }
    if status_only {
        let status = new.get("status").cloned();
        let applied_fields = new.pointer("/metadata/managedFields").cloned();
        new = old.clone();
        match status {
            Some(s) => {
                store::obj_map(&mut new).insert("status".into(), s);
            }
            None => obj_remove(&mut new, "status"),
        }
        if applied {
            managed::set_managed_fields(&mut new, applied_fields);
        }
    } else if r.status_subresource {
        match old.get("status") {
            Some(s) => {
                store::obj_map(&mut new).insert("status".into(), s.clone());
            }
            None => obj_remove(&mut new, "status"),
        }
    }
    if !applied {
        let manager = ctx.update_manager();
        let mf = managed::track_update(&scope(r, status_only), Some(&old), &new, &manager);
        managed::set_managed_fields(&mut new, mf);
    }
    if new == old {
        return Ok(old);
    }
    if r.generation && strip_meta_status(&new) != strip_meta_status(&old) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(&mut new).insert("generation".into(), json!(g + 1));
    }
    if ctx.dry_run()? {
        return Ok(new);
    }
    Ok(store.write(id, ns, name, new, "MODIFIED"))
}

fn current_rv(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion").unwrap_or_default()
}

fn replace(
    store: &mut Store,
    ctx: &Ctx,
    id: ResId,
    ns: &str,
    name: &str,
    status_only: bool,
) -> ApiResult<Value> {
    let r = res(id);
    let mut obj = parse_body(ctx)?;
    check_type(r, &mut obj)?;
    resolve_ns(r, Some(ns), &mut obj)?;
    check_name(&obj, name)?;
    let old = get(store, id, ns, name)?.clone();
    match meta_str(&obj, "resourceVersion").unwrap_or_default() {
        // Built-in kinds allow unconditional updates; CRD-backed ones do not.
        "" if r.custom => {
            let msg = "Invalid value: 0x0: must be specified for an update";
            return Err(invalid_obj(
                r,
                name,
                "metadata.resourceVersion",
                "FieldValueInvalid",
                msg,
            ));
        }
        "" => {}
        rv if rv != current_rv(&old) => return Err(conflict(r, name, STALE)),
        _ => {}
    }
    commit_update(store, ctx, id, (ns, name), old, obj, status_only)
}

fn patch(
    store: &mut Store,
    ctx: &Ctx,
    id: ResId,
    ns: &str,
    name: &str,
    status_only: bool,
) -> ApiResult<(u16, Value)> {
    let r = res(id);
    let ct = ctx.content_type.as_str();
    let apply = ct == APPLY_PATCH;
    if apply && ctx.q("fieldManager").is_empty() {
        let msg = "Required value: is required for apply patch";
        return Err(invalid_patch_options(
            "fieldManager",
            "FieldValueRequired",
            msg,
        ));
    }
    if !apply && ctx.query.contains_key("force") {
        let msg = "Forbidden: may not be specified for non-apply patch";
        return Err(invalid_patch_options("force", "FieldValueForbidden", msg));
    }
    let accepted: &[&str] = if r.custom {
        &[JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    } else {
        &[JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_PATCH]
    };
    if !accepted.contains(&ct) {
        return Err(unsupported_media(accepted));
    }
    let decode_err = |e: &dyn std::fmt::Display| bad_request(format!("error decoding patch: {e}"));
    let applied = if apply {
        let v: Value = serde_yaml::from_slice(&ctx.body).map_err(|e| decode_err(&e))?;
        if !v.is_object() {
            return Err(bad_request("apply patch must be an object"));
        }
        let (av, kind) = (v.get("apiVersion").cloned(), v.get("kind").cloned());
        if av != Some(json!(r.api_version())) || kind != Some(json!(r.kind)) {
            return Err(bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({}) and kind ({})",
                av.as_ref().and_then(Value::as_str).unwrap_or(""), r.api_version(), r.kind)));
        }
        check_name(&v, name)?;
        // managedFields are the server's to write; an applier cannot send any.
        if v.pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(bad_request("metadata.managedFields must be nil"));
        }
        Some(v)
    } else {
        None
    };
    // Like the real server's query decoding: only absent, `0` and `false` are false.
    let force = ctx
        .query
        .get("force")
        .is_some_and(|f| f != "0" && !f.eq_ignore_ascii_case("false"));
    let apply_scope = scope(r, status_only);
    let manager = ctx.q("fieldManager");
    let Some(old) = store.get(id, ns, name).cloned() else {
        return match applied {
            Some(config) if !status_only => {
                let obj = managed::track_apply(&apply_scope, None, &config, manager, force)
                    .map_err(|e| apply_error(r, ns, name, e))?;
                let ns = Some(ns).filter(|_| r.namespaced);
                create(store, id, ns, obj, ctx.dry_run()?, None)
            }
            _ => Err(not_found(r, name)),
        };
    };
    let mut new = old.clone();
    match (ct, applied) {
        (_, Some(config)) => {
            new = managed::track_apply(&apply_scope, Some(&old), &config, manager, force)
                .map_err(|e| apply_error(r, ns, name, e))?;
        }
        (JSON_PATCH, None) => {
            let p: json_patch::Patch =
                serde_json::from_slice(&ctx.body).map_err(|e| decode_err(&e))?;
            json_patch::patch(&mut new, &p)
                .map_err(|e| err(422, "Invalid", e.to_string(), None))?;
        }
        (MERGE_PATCH, None) => {
            let p: Value = serde_json::from_slice(&ctx.body).map_err(|e| decode_err(&e))?;
            json_patch::merge(&mut new, &p);
        }
        _ => {
            let p: Value = serde_json::from_slice(&ctx.body).map_err(|e| decode_err(&e))?;
            strategic_merge(&mut new, &p).map_err(bad_request)?;
        }
    }
    if !new.is_object() {
        return Err(bad_request("patch must produce an object"));
    }
    check_type(r, &mut new)?;
    check_name(&new, name)?;
    if r.namespaced && meta_str(&new, "namespace") != Some(ns) {
        return Err(bad_request(
            "the namespace of the object does not match the namespace on the request",
        ));
    }
    // A resourceVersion left in the patched object is a precondition, as on the real server.
    if let Some(rv) = meta_str(&new, "resourceVersion") {
        if rv != current_rv(&old) {
            return Err(conflict(r, name, STALE));
        }
    }
    Ok((
        200,
        commit_update(store, ctx, id, (ns, name), old, new, status_only)?,
    ))
}

/// A refused apply: the conflicts as a 409, or a configuration that does not fit the
/// object's structure as the 500 the real server answers with.
fn apply_error(r: &Resource, ns: &str, name: &str, e: ApplyError) -> ApiError {
    match e {
        ApplyError::Conflicts(conflicts) => {
            let (message, causes) = managed::conflict_status(&conflicts);
            err(409, "Conflict", message, Some(json!({"causes": causes})))
        }
        ApplyError::Invalid(why) => {
            let gvk = format!("{}/{}, Kind={}", r.group, r.version, r.kind);
            let msg = format!("failed to create typed patch object ({ns}/{name}; {gvk}): {why}");
            err(500, "", msg, None)
        }
    }
}

fn delete(store: &mut Store, ctx: &Ctx, id: ResId, ns: &str, name: &str) -> ApiResult<Value> {
    let r = res(id);
    let cur = get(store, id, ns, name)?.clone();
    let opts: Value = if ctx.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&ctx.body)
            .map_err(|e| bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    check_preconditions(r, name, &cur, &opts)?;
    // kubectl puts dryRun in the DeleteOptions body rather than the query.
    let dry = ctx.dry_run()?
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("All")));
    let gone = if dry {
        cur
    } else {
        if r.kind == "Namespace" {
            // Namespace deletion removes its contents (immediately; there is no controller).
            for (rid, other) in rs::RESOURCES.iter().enumerate() {
                if other.namespaced {
                    let names: Vec<String> = store
                        .list(rid, Some(name))
                        .iter()
                        .filter_map(|o| meta_str(o, "name").map(str::to_string))
                        .collect();
                    for n in names {
                        store.delete(rid, name, &n);
                    }
                }
            }
        }
        store.delete(id, ns, name).unwrap_or(cur)
    };
    // Custom resources, pods and namespaces answer with the object; the rest with a Status.
    if r.custom || matches!(r.kind, "Pod" | "Namespace" | "CustomResourceDefinition") {
        return Ok(gone);
    }
    let mut d = details(r, name, r.plural);
    d["uid"] = json!(meta_str(&gone, "uid"));
    Ok(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d}),
    )
}

/// A DeleteOptions' `preconditions` (uid, resourceVersion) against the stored object.
fn check_preconditions(r: &Resource, name: &str, cur: &Value, opts: &Value) -> ApiResult<()> {
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        let want = opts
            .pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str);
        let have = meta_str(cur, field).unwrap_or_default();
        if let Some(want) = want.filter(|w| *w != have) {
            let why = format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}");
            return Err(conflict(r, name, &why));
        }
    }
    Ok(())
}

/// The Eviction API, as kube-apiserver's eviction REST: a pod that is not running (or is
/// being deleted) goes at once; otherwise the one PodDisruptionBudget that selects it (none:
/// the pod goes; several: 500) must allow a disruption. The budget is computed on the spot
/// from the namespace's pods (see [`eviction::budget`]); an allowed eviction writes it into
/// the PDB's status with the disruption taken, then marks the pod `DisruptionTarget` and
/// deletes it. The answer is the Status the real subresource returns.
fn evict(store: &mut Store, ctx: &Ctx, ns: &str, name: &str) -> ApiResult<(u16, Value)> {
    let body = parse_body(ctx)?;
    let expected = "policy/v1";
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("" | "policy/v1" | "policy/v1beta1") => {}
        Some(got) => {
            return Err(bad_request(format!(
                "the API version in the data ({got}) does not match the expected API version ({expected})"
            )))
        }
    }
    match body.get("kind").and_then(Value::as_str) {
        None | Some("" | "Eviction") => {}
        Some(got) => {
            return Err(bad_request(format!(
                "the kind in the data ({got}) does not match the expected kind (Eviction)"
            )))
        }
    }
    if meta_str(&body, "namespace").is_some_and(|n| !n.is_empty() && n != ns) {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if meta_str(&body, "name").unwrap_or_default() != name {
        return Err(bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = body.get("deleteOptions").cloned().unwrap_or(json!({}));
    let dry = ctx.dry_run()?
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("All")));
    let pod_id = rs::find("", "v1", "pods").unwrap_or(0);
    let pod_res = res(pod_id);
    let pod = get(store, pod_id, ns, name)?.clone();
    check_preconditions(pod_res, name, &pod, &opts)?;
    let success = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Success", "code": 201});
    if !eviction::can_ignore_pdb(&pod) {
        let pdb_id = rs::find("policy", "v1", "poddisruptionbudgets").unwrap_or(0);
        let pdbs: Vec<Value> = store
            .list(pdb_id, Some(ns))
            .into_iter()
            .filter(|p| eviction::selects(p, &pod))
            .cloned()
            .collect();
        if pdbs.len() > 1 {
            let msg = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";
            return Err(err(500, "", msg, None));
        }
        if let Some(pdb) = pdbs.first() {
            let pods = store.list(pod_id, Some(ns));
            let lookup = |kind: &str, name: &str| {
                let id = rs::by_kind("apps/v1", kind)?;
                store.get(id, ns, name).cloned()
            };
            let b = eviction::budget(pdb, &pods, &lookup);
            let unhealthy_may_go = !eviction::pod_ready(&pod)
                && (pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"))
                    || (b.current_healthy >= b.desired_healthy && b.desired_healthy > 0));
            if !unhealthy_may_go {
                let pdb_name = meta_str(pdb, "name").unwrap_or_default().to_string();
                if b.disruptions_allowed <= 0 {
                    let cause = format!(
                        "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                        b.desired_healthy, b.current_healthy
                    );
                    let msg = "Cannot evict pod as it would violate the pod's disruption budget.";
                    return Err(err(
                        429,
                        "TooManyRequests",
                        msg,
                        Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})),
                    ));
                }
                if !dry {
                    take_disruption(store, pdb_id, ns, pdb, b, name);
                }
            }
        }
    }
    if !dry {
        mark_disruption_target(store, pod_id, ns, name, pod);
        store.delete(pod_id, ns, name);
    }
    Ok((201, success))
}

/// The PDB status the disruption controller would hold, with the eviction's decrement
/// (`checkAndDecrement`): one disruption fewer and the pod in `disruptedPods`.
fn take_disruption(
    store: &mut Store,
    pdb_id: ResId,
    ns: &str,
    pdb: &Value,
    b: eviction::Budget,
    pod: &str,
) {
    let now = store::rfc3339(store::unix_now());
    let mut new = pdb.clone();
    let generation = pdb.pointer("/metadata/generation").cloned();
    let allowed = b.disruptions_allowed - 1;
    let (cond_status, reason) = if allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let old_cond = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"));
    let since = match old_cond {
        Some(c) if c["status"] == cond_status => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let mut disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    disrupted.insert(pod.to_string(), json!(now));
    let status = json!({
        "observedGeneration": generation,
        "disruptedPods": disrupted,
        "disruptionsAllowed": allowed,
        "currentHealthy": b.current_healthy,
        "desiredHealthy": b.desired_healthy,
        "expectedPods": b.expected,
        "conditions": [{"type": "DisruptionAllowed", "status": cond_status,
            "observedGeneration": generation, "lastTransitionTime": since,
            "reason": reason, "message": ""}],
    });
    store::obj_map(&mut new).insert("status".into(), status);
    // The eviction REST writes through a loopback client: manager `kube-apiserver`.
    let r = res(pdb_id);
    let mf = managed::track_update(&scope(r, true), Some(pdb), &new, "kube-apiserver");
    managed::set_managed_fields(&mut new, mf);
    let name = meta_str(pdb, "name").unwrap_or_default().to_string();
    if &new != pdb {
        store.write(pdb_id, ns, &name, new, "MODIFIED");
    }
}

/// `addConditionAndDeletePod`'s status update: the `DisruptionTarget` condition, so watchers
/// see why the pod went.
fn mark_disruption_target(store: &mut Store, pod_id: ResId, ns: &str, name: &str, pod: Value) {
    let mut new = pod.clone();
    let cond = json!({"type": "DisruptionTarget", "status": "True",
        "lastTransitionTime": store::rfc3339(store::unix_now()),
        "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"});
    let status = store::obj_map(
        store::obj_map(&mut new)
            .entry("status")
            .or_insert(json!({})),
    );
    let conds = status.entry("conditions").or_insert(json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Value::Array(list) = conds {
        match list.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
            Some(c) if c["status"] == "True" => return,
            Some(c) => *c = cond,
            None => list.push(cond),
        }
    }
    store.write(pod_id, ns, name, new, "MODIFIED");
}

fn delete_collection(
    store: &mut Store,
    ctx: &Ctx,
    id: ResId,
    ns: Option<&str>,
) -> ApiResult<Value> {
    let r = res(id);
    let sel = selector(ctx, r)?;
    let doomed: Vec<(String, String)> = store
        .list(id, ns)
        .into_iter()
        .filter(|o| sel.matches(o))
        .map(|o| {
            let s = |f| meta_str(o, f).unwrap_or_default().to_string();
            (s("namespace"), s("name"))
        })
        .collect();
    let dry = ctx.dry_run()?;
    let mut items = Vec::new();
    for (ons, n) in doomed {
        let gone = if dry {
            store.get(id, &ons, &n).cloned()
        } else {
            store.delete(id, &ons, &n)
        };
        items.extend(gone);
    }
    Ok(
        json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": store.rv().to_string()}, "items": items}),
    )
}

/// Streams watch events (one JSON object per line) until `timeoutSeconds` or disconnect.
fn watch(
    state: &Arc<State>,
    ctx: &Ctx,
    id: ResId,
    ns: Option<String>,
    fields: &str,
) -> ApiResult<Response<Body>> {
    let r = res(id);
    let sel = Selector::parse(ctx.q("labelSelector"), fields, r.fields).map_err(bad_request)?;
    let timeout = ctx.q("timeoutSeconds").parse::<u64>().unwrap_or(1800);
    let wanted = move |ev_res: ResId, o: &Value| {
        ev_res == id
            && ns
                .as_deref()
                .is_none_or(|n| meta_str(o, "namespace") == Some(n))
            && sel.matches(o)
    };
    let line = |kind: &str, o: &Value| {
        let mut v = serde_json::to_vec(&json!({"type": kind, "object": o})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    };
    let (backlog, mut rx) = {
        let store = state.lock();
        let rx = store.events.subscribe();
        let streaming = ctx.q("sendInitialEvents") == "true";
        let mut backlog: Vec<Bytes> = match ctx.q("resourceVersion") {
            // No resourceVersion (or "0"), or a streaming list, starts with the current
            // state as ADDED events.
            _ if streaming => store
                .list(id, None)
                .into_iter()
                .filter(|o| wanted(id, o))
                .map(|o| line("ADDED", o))
                .collect(),
            "" | "0" => store
                .list(id, None)
                .into_iter()
                .filter(|o| wanted(id, o))
                .map(|o| line("ADDED", o))
                .collect(),
            v => {
                let from = v
                    .parse::<u64>()
                    .map_err(|_| bad_request(format!("invalid resource version: {v}")))?;
                match store.events_since(from) {
                    Some(evs) => evs
                        .iter()
                        .filter(|e| wanted(e.res, &e.object))
                        .map(|e| line(e.kind, &e.object))
                        .collect(),
                    None => {
                        let msg = format!("too old resource version: {from} ({})", store.rv());
                        vec![line("ERROR", &err(410, "Expired", msg, None).status())]
                    }
                }
            }
        };
        if streaming {
            // Streaming-list clients (kube-rs `streaming_lists`) wait for this bookmark.
            let meta = json!({"resourceVersion": store.rv().to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}});
            let mark = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta});
            backlog.push(line("BOOKMARK", &mark));
        }
        (backlog, rx)
    };
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(64);
    tokio::spawn(async move {
        for b in backlog {
            if tx.send_data(b).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ev = rx.recv() => match ev {
                    Ok(ev) if wanted(ev.res, &ev.object) => {
                        if tx.send_data(line(ev.kind, &ev.object)).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // Lagging or shutdown: end the stream; clients re-list and re-watch.
                    Err(_) => break,
                },
            }
        }
    });
    let mut resp = Response::new(body.boxed());
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn fake_endpoint(state: &State, method: &Method, rest: &str, body: &[u8]) -> Response<Body> {
    match (method, rest) {
        (&Method::GET, "kill") => return json_resp(200, &state.kill_hook().to_json()),
        (&Method::POST, "kill") => {
            let mut hook = state.kill_hook();
            return match hook.configure(body) {
                Ok(()) => json_resp(200, &hook.to_json()),
                Err(e) => json_resp(400, &bad_request(e).status()),
            };
        }
        _ => {}
    }
    let mut store = state.lock();
    match (method, rest) {
        (&Method::GET, "requests") => json_resp(200, &Value::Array(store.log().to_vec())),
        (&Method::POST, "reset") => {
            store.reset();
            state.kill_hook().clear();
            json_resp(
                200,
                &json!({"reset": true, "resourceVersion": store.rv().to_string()}),
            )
        }
        (&Method::POST, "seed") => {
            let parsed = std::str::from_utf8(body)
                .map_err(|e| e.to_string())
                .and_then(store::parse_seed);
            match parsed.and_then(|objs| store.seed_objects(&objs)) {
                Ok(n) => json_resp(
                    200,
                    &json!({"seeded": n, "resourceVersion": store.rv().to_string()}),
                ),
                Err(e) => json_resp(400, &bad_request(e).status()),
            }
        }
        _ => json_resp(404, &no_route().status()),
    }
}
