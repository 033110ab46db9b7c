//! Command-line entry point: binds, announces the port, serves until SIGINT/SIGTERM.

use fake_kube_apiserver::{default_seed, kubeconfig, parse_seed, serve, State};
use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: fake-kube-apiserver [--listen ADDR:PORT] [--seed FILE.json|yaml] \
[--kubeconfig-out PATH] [--port-file PATH]\n\
  --listen          address to bind (default 127.0.0.1:0, port 0 picks a free port)\n\
  --seed            objects to start with: {\"objects\": [...]} as JSON or YAML\n\
                    (default: a fresh two-node EKS cluster in us-west-2)\n\
  --kubeconfig-out  write a kubeconfig (cluster/context/user `fake`) pointing at the server\n\
  --port-file       write the bound port once listening";

struct Args {
    listen: SocketAddr,
    seed: Option<String>,
    kubeconfig_out: Option<String>,
    port_file: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        seed: None,
        kubeconfig_out: None,
        port_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = inline
            .or_else(|| it.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                args.listen = value
                    .parse()
                    .map_err(|e| format!("bad --listen {value}: {e}"))?
            }
            "--seed" => args.seed = Some(value),
            "--kubeconfig-out" => args.kubeconfig_out = Some(value),
            "--port-file" => args.port_file = Some(value),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(args)
}

async fn shutdown_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        // Without a SIGTERM handler, Ctrl-C still works.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(args: Args) -> Result<(), String> {
    let seed = match &args.seed {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
            parse_seed(&text)?
        }
        None => default_seed(),
    };
    let state = State::new(seed)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    // The kubeconfig is written before the port file so a caller waiting for the port
    // file can use the kubeconfig immediately.
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, kubeconfig(&url)).map_err(|e| format!("writing {path}: {e}"))?;
    }
    if let Some(path) = &args.port_file {
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, format!("{}\n", addr.port()))
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("writing {path}: {e}"))?;
    }
    eprintln!("listening on {url}");
    serve(listener, state, shutdown_signal()).await;
    eprintln!("shutting down");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("fake-kube-apiserver: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-kube-apiserver: {e}");
            ExitCode::FAILURE
        }
    }
}
