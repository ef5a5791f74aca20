//! End-to-end harness: starts the built Worker in workerd (wrangler dev, local R2/KV/Durable
//! Objects) on a free loopback port, speaks real HTTP to it, and runs real clients.
//! `scripts/test.sh` builds the Worker and installs the clients before these tests run.
//! A test file takes it with `mod common; use common::e2e::*;` (the builders come along).

pub mod cargo;
pub mod pypi;
pub mod upstreams;

pub use super::builders::*;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin(name: &str) -> PathBuf {
    root().join("miniflare/node_modules/.bin").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Worker {
    pub url: String,
    pub port: u16,
    /// The launcher (miniflare/worker.sh); node and the workerd processes run below it.
    pub pid: u32,
    _state: tempfile::TempDir,
}

/// Each running Worker's log, by port: a failed request shows the end of it.
static LOGS: std::sync::Mutex<Vec<(u16, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// The end of the launcher's log of the Worker serving `url`, if this process started it.
pub fn worker_log_tail(url: &str) -> String {
    let port = url.split("://").nth(1).and_then(|r| r.split('/').next()).and_then(|h| h.rsplit(':').next()).and_then(|p| p.parse::<u16>().ok());
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    let Some((_, path)) = logs.iter().find(|(p, _)| Some(*p) == port) else {
        return String::new();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("\n--- end of the Worker's log ({}):\n{}", path.display(), lines[lines.len().saturating_sub(30)..].join("\n"))
}

impl Worker {
    /// Starts a Worker with extra `[vars]`; it stops when this test process exits.
    pub fn start(vars: &[(&str, &str)]) -> Worker {
        assert!(
            root().join("build/worker/shim.mjs").exists(),
            "the Worker is not built: run scripts/test.sh (it builds, then runs these tests)"
        );
        let state = tempfile::tempdir().unwrap();
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new("setsid");
            cmd.arg("bash")
                .arg(root().join("miniflare/worker.sh"))
                .arg(port.to_string())
                .arg(state.path())
                .arg(std::process::id().to_string())
                .args(["--var", &format!("ADMIN_TOKEN:{ADMIN_TOKEN}")])
                .args(["--var", "PASSWORD_ITERATIONS:1000"]);
            for (k, v) in vars {
                cmd.args(["--var", &format!("{k}:{v}")]);
            }
            let log = std::fs::File::create(state.path().join("wrangler.log")).unwrap();
            cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
            let pid = cmd.spawn().expect("start miniflare/worker.sh").id();
            let log = state.path().join("wrangler.log");
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                // Tests speak to the Worker's own listener, not to wrangler's dev proxy in front
                // of it (see miniflare/worker.mjs): `worker.mjs: direct http://127.0.0.1:N/`.
                let direct = std::fs::read_to_string(&log).unwrap_or_default().lines().find_map(|l| {
                    let url = l.strip_prefix("worker.mjs: direct ")?.trim_end_matches('/');
                    Some((url.to_string(), url.rsplit(':').next()?.parse::<u16>().ok()?))
                });
                if let Some((url, port)) = direct {
                    if http().get(&format!("{url}/-/health")).call().is_ok_and(|r| r.status() == 200) {
                        LOGS.lock().unwrap_or_else(|e| e.into_inner()).push((port, log));
                        return Worker { url, port, pid, _state: state };
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            eprintln!(
                "worker on port {port} did not start:\n{}",
                std::fs::read_to_string(state.path().join("wrangler.log")).unwrap_or_default()
            );
        }
        panic!("the Worker did not start");
    }

    /// Resident memory of the launcher and everything below it (node, both workerd processes).
    pub fn rss_bytes(&self) -> u64 {
        process_tree(self.pid).iter().map(|p| rss_of(*p)).sum()
    }

    pub fn npm_registry(&self) -> String {
        format!("{}/npm/", self.url)
    }

    /// Creates a user (password = name + "-password") and an npm token for it.
    pub fn user_with_token(&self, name: &str, extra: serde_json::Value) -> String {
        let r = post_json(&format!("{}/-/admin/users", self.url), Some(ADMIN_TOKEN), &user_body(name, &format!("{name}-password")));
        assert!(r.0 == 201 || r.0 == 409, "create user {name}: {} {}", r.0, r.1);
        let body = token_body(name, merged(serde_json::json!({"protocol": "npm"}), extra));
        let r = post_json(&format!("{}/-/admin/tokens", self.url), Some(ADMIN_TOKEN), &body);
        assert_eq!(r.0, 201, "create token: {}", r.1);
        serde_json::from_str::<serde_json::Value>(&r.1).unwrap()["token"].as_str().unwrap().to_string()
    }
}

/// `root` and its descendants (Linux /proc).
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

/// The highest `Worker::rss_bytes` seen, sampled every 100 ms until `finish`.
pub struct PeakRss {
    pub before: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn start(worker: &Worker) -> PeakRss {
        let pid = worker.pid;
        let sample = move || process_tree(pid).iter().map(|p| rss_of(*p)).sum::<u64>();
        let before = sample();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(sample());
                std::thread::sleep(Duration::from_millis(100));
            }
            peak.max(sample())
        });
        PeakRss { before, stop, sampler }
    }

    /// The peak resident memory of the Worker's processes since `start`.
    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().unwrap_or(0)
    }
}

pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

pub fn request(method: &str, url: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let agent = http();
    let resp = match body {
        Some(bytes) => agent.run(b.body(bytes).unwrap()),
        None => agent.run(b.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}{}", worker_log_tail(url)));
    let status = resp.status().as_u16();
    let headers = headers_of(resp.headers().iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap_or_default())));
    let body = resp.into_body().with_config().limit(2 << 30).read_to_vec().unwrap_or_default();
    Resp { status, body, headers }
}

pub fn post_json(url: &str, token: Option<&str>, body: &serde_json::Value) -> (u16, String) {
    let r = request("POST", url, token, &[("content-type", "application/json")], Some(body.to_string().into_bytes()));
    (r.status, r.text())
}

/// A scratch directory for one client run: its own HOME, npm cache and config.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Runs a client with HOME and caches inside the scratch dir; returns (success, output).
    pub fn run(&self, cwd: &str, program: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let cwd = self.path().join(cwd);
        std::fs::create_dir_all(&cwd).unwrap();
        let home = self.path().join("home");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&cwd)
            .env("HOME", &home)
            .env("npm_config_cache", self.path().join("npm-cache"))
            .env("npm_config_userconfig", home.join(".npmrc"))
            .env("npm_config_update_notifier", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_audit", "false")
            .env("COREPACK_ENABLE_STRICT", "0")
            .env("YARN_ENABLE_TELEMETRY", "0")
            .env("YARN_CACHE_FOLDER", self.path().join("yarn-cache"))
            .env_remove("npm_config_registry")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        transcript(program, args, &child.wait_with_output().unwrap())
    }
}

/// A finished client run as (success, the command line and everything it printed).
pub fn transcript(program: &Path, args: &[&str], out: &std::process::Output) -> (bool, String) {
    let text = format!(
        "$ {} {}\n{}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn npm() -> PathBuf {
    PathBuf::from("npm")
}

/// The output of a command that must succeed.
pub fn ok(r: (bool, String)) -> String {
    assert!(r.0, "command failed:\n{}", r.1);
    r.1
}

/// oras or crane, built by scripts/install-oci-tools.sh.
pub fn oci_tool(name: &str) -> PathBuf {
    let p = PathBuf::from("/opt/oci-tools/bin").join(name);
    assert!(p.exists(), "{name} is not installed: scripts/setup.sh installs it");
    p
}

/// crane over plain HTTP, with its config in the scratch dir.
pub fn crane(s: &Scratch, args: &[&str]) -> (bool, String) {
    let mut all = args.to_vec();
    all.push("--insecure");
    s.run(".", &oci_tool("crane"), &all, None)
}

/// A layer tarball `{name}.tar` in the scratch dir with one file, `payload.bin`, of `size`
/// noisy bytes (also kept as `{name}.bin`).
pub fn layer(s: &Scratch, name: &str, size: usize) -> PathBuf {
    let src = s.path().join(format!("{name}.bin"));
    std::fs::write(&src, pseudo_random(size, size as u64)).unwrap();
    let tar_path = s.path().join(format!("{name}.tar"));
    let mut tar = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    tar.append_path_with_name(&src, "payload.bin").unwrap();
    tar.finish().unwrap();
    tar_path
}

/// The R2 objects of a Worker's local bucket (miniflare keeps one blob file per object).
pub fn stored_objects(w: &Worker) -> usize {
    std::fs::read_dir(w.state_dir().join("v3/r2/edgeregistry/blobs")).map(|d| d.count()).unwrap_or(0)
}

/// Waits up to 5 s for the bucket to hold `expected` objects again (a refused streamed upload
/// may be removed just after its answer); the count seen.
pub fn settled_objects(w: &Worker, expected: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = stored_objects(w);
        if n == expected || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `method path` with `headers` and a declared body of `length` bytes: `prefix`, then
/// `x` to the end, written in full from another thread as a client would (with most of a
/// declared body never sent, workerd gave no answer within a minute). For bodies over a limit;
/// the answer is read raw from the socket.
pub fn send_declared(w: &Worker, method: &str, path: &str, headers: &[(&str, &str)], prefix: &[u8], length: usize) -> Resp {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", w.port);
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {length}\r\nConnection: close\r\n\r\n"));
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(prefix).unwrap();
    let rest = length - prefix.len();
    let mut writer = conn.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let piece = vec![b'x'; 1 << 20];
        let mut left = rest;
        while left > 0 {
            let n = left.min(piece.len());
            if writer.write_all(&piece[..n]).is_err() {
                break;
            }
            left -= n;
        }
    });
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let headers = headers_of(head.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())));
    let body = if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) { dechunk(body) } else { body.to_string() };
    Resp { status, body: body.into_bytes(), headers }
}

/// An HTTP/1.1 chunked body's data (RFC 9112, section 7.1).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
