//! A fake Kubernetes API server for eksnet's tests: an in-memory object store behind the
//! REST paths that eksnet and kubectl use, plus `/__fake/` test-support endpoints.

pub mod eviction;
pub mod fieldpath;
pub mod kill;
pub mod managed;
pub mod object;
pub mod patch;
pub mod resources;
pub mod selector;
pub mod server;
pub mod store;
pub mod structure;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use server::State;
pub use store::{default_seed, parse_seed};

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Transient accept errors (e.g. out of file descriptors) must not stop the server.
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| server::handle(state.clone(), req));
            // Connection errors (client hung up mid-request) only affect that client.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A kubeconfig whose only cluster, user and context are named `fake`.
pub fn kubeconfig(server_url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {server_url}\n\
         users:\n- name: fake\n  user:\n    token: fake-token\n\
         contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         current-context: fake\npreferences: {{}}\n"
    )
}
