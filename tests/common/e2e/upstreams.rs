//! Real upstreams for the pull-through tests: verdaccio (npm, from miniflare/node_modules)
//! on a free loopback port with fresh storage, and a small fault-injecting HTTP proxy that
//! sits in front of any upstream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// A server process in its own process group, watched: it stops when this test process
/// exits, or on `stop`.
pub struct Service {
    pub url: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pgid: Option<u32>,
}

impl Service {
    /// Runs `command` (a shell command, `$PORT` set) in a fresh directory prepared by
    /// `prepare`, until `ready_path` answers below 500.
    pub fn start(name: &str, command: &str, ready_path: &str, prepare: impl FnOnce(&std::path::Path, u16)) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        prepare(dir.path(), port);
        let log = std::fs::File::create(dir.path().join("service.log")).unwrap();
        let script = format!(
            "export PORT={port}; {command} & W=$!; trap 'kill $W 2>/dev/null' EXIT; \
             while kill -0 {} 2>/dev/null && kill -0 $W 2>/dev/null; do sleep 1; done",
            std::process::id()
        );
        let child = Command::new("setsid")
            .args(["bash", "-c", &script])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = http().get(&format!("{url}{ready_path}")).call() {
                if r.status().as_u16() < 500 {
                    return Service { url, port, dir, pgid: Some(child.id()) };
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{name} did not start:\n{}", std::fs::read_to_string(dir.path().join("service.log")).unwrap_or_default());
    }

    /// Stops it (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = Command::new("kill").args(["--", &format!("-{pgid}")]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A forwarding proxy to a public registry (tests/common/e2e/forward.py, `mode` `pypi` or
/// `cargo`) that logs every request and can be stopped to cut the Worker off.
pub struct Forwarder(pub Service);

impl Forwarder {
    pub fn start(mode: &str, ready_path: &str) -> Forwarder {
        let script = root().join("tests/common/e2e/forward.py");
        let command = format!("exec python3 {} {mode} $PORT requests.log", script.display());
        Forwarder(Service::start(&format!("{mode} forwarder"), &command, ready_path, |_, _| {}))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// The requests it forwarded whose line contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        let log = std::fs::read_to_string(self.0.dir.path().join("requests.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains(needle)).count()
    }

    pub fn stop(&mut self) {
        self.0.stop();
    }
}

/// verdaccio (npm) with no uplinks and fresh storage.
pub struct Verdaccio(pub Service);

impl Verdaccio {
    pub fn start() -> Verdaccio {
        let bin = root().join("miniflare/node_modules/verdaccio/bin/verdaccio");
        assert!(bin.exists(), "verdaccio is not installed: scripts/setup.sh installs it");
        let command = format!("node {} --config ./config.yaml", bin.display());
        Verdaccio(Service::start("verdaccio", &command, "/-/ping", |dir, port| {
            let config = format!(
                "storage: ./storage\nauth:\n  htpasswd:\n    file: ./htpasswd\n    max_users: 100\nuplinks: {{}}\n\
                 packages:\n  '@*/*':\n    access: $all\n    publish: $authenticated\n  '**':\n    access: $all\n    publish: $authenticated\n\
                 server:\n  keepAliveTimeout: 60\nlisten: 127.0.0.1:{port}\nlog: {{ type: stdout, format: pretty, level: warn }}\n"
            );
            std::fs::write(dir.join("config.yaml"), config).unwrap();
        }))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Adds a user the CouchDB way and returns its token.
    pub fn user(&self, name: &str) -> String {
        let body = serde_json::json!({"name": name, "password": format!("{name}-password-123")});
        let r = request(
            "PUT",
            &format!("{}/-/user/org.couchdb.user:{name}", self.0.url),
            None,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        );
        assert_eq!(r.status, 201, "verdaccio user: {}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }
}

/// Debian's docker-registry (CNCF distribution 2.8), optionally behind htpasswd Basic auth
/// (`htpasswd` is the file's line, `user:bcrypt-hash`).
pub fn docker_registry(htpasswd: Option<&str>) -> Service {
    let bin = "/usr/bin/docker-registry";
    assert!(std::path::Path::new(bin).exists(), "docker-registry is not installed: scripts/setup.sh installs it");
    let htpasswd = htpasswd.map(str::to_string);
    Service::start("docker-registry", &format!("{bin} serve ./config.yml"), "/v2/", move |dir, port| {
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some(line) = htpasswd {
            std::fs::write(dir.join("htpasswd"), format!("{line}\n")).unwrap();
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n", dir.join("htpasswd").display()));
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
    })
}

/// What the fault proxy does to the next responses: the faults of the native
/// `FakeUpstream` (tests/common/upstream.rs), over TCP and in real time.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    None,
    /// Flips one byte in the middle of every `.tgz`, wheel, sdist or blob body.
    FlipByte,
    /// Sends the headers with the full length, then only half the body, then closes.
    Truncate,
    /// Answers this status (with `Retry-After` when given) to the next `count` requests.
    Status { status: u16, retry_after: Option<u64>, count: usize },
    /// Waits before answering.
    Delay(Duration),
}

/// A loopback HTTP/1.1 proxy in front of `upstream` that injects faults.
pub struct FaultProxy {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (f, r, up) = (fault.clone(), requests.clone(), upstream.trim_end_matches('/').to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, r, up) = (f.clone(), r.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = serve_one(conn, &up, &f, &r);
                });
            }
        });
        FaultProxy { url, fault, requests }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    pub fn count(&self, needle: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|p| p.contains(needle)).count()
    }
}

/// Reads one HTTP/1.1 request: method, target, headers (names lowercased) and its body
/// (by Content-Length).
fn read_request(conn: &TcpStream) -> std::io::Result<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("GET").to_string(), parts.next().unwrap_or("/").to_string());
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((method, target, headers, body))
}

/// One request per connection (`Connection: close`).
fn serve_one(mut conn: TcpStream, upstream: &str, fault: &Mutex<Fault>, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let (method, path, mut headers, body) = read_request(&conn)?;
    // What is forwarded: not the hop-by-hop headers, nor what the proxy sets itself.
    headers.retain(|(k, _)| !matches!(k.as_str(), "host" | "connection" | "content-length" | "accept-encoding" | "transfer-encoding"));
    log.lock().unwrap().push(format!("{method} {path}"));
    let current = {
        let mut f = fault.lock().unwrap();
        let now = f.clone();
        if let Fault::Status { count, .. } = &mut *f {
            *count -= 1;
            if *count == 0 {
                *f = Fault::None;
            }
        }
        now
    };
    if let Fault::Delay(d) = &current {
        std::thread::sleep(*d);
    }
    if let Fault::Status { status, retry_after, .. } = &current {
        let extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
        let msg = b"{\"error\":\"injected\"}";
        write!(conn, "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n", msg.len())?;
        return conn.write_all(msg);
    }
    let mut b = ureq::http::Request::builder().method(method.as_str()).uri(format!("{upstream}{path}"));
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let resp = if body.is_empty() { http().run(b.body(()).unwrap()) } else { http().run(b.body(body).unwrap()) };
    let resp = match resp {
        Ok(r) => r,
        Err(_) => {
            return write!(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    };
    let status = resp.status().as_u16();
    let keep: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "content-type" | "etag" | "last-modified" | "docker-content-digest" | "www-authenticate" | "location" | "docker-distribution-api-version"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let mut data = resp.into_body().with_config().limit(4 << 30).read_to_vec().unwrap_or_default();
    // npm tarballs, OCI blobs, Python wheels and sdists (not their PEP 658 `.metadata`), crates.
    let file = path.split(['?', '#']).next().unwrap_or_default();
    let artifact = [".tgz", ".whl", ".tar.gz", ".zip", ".crate"].iter().any(|e| file.ends_with(e)) || path.contains("/blobs/");
    // Links the upstream writes into its documents lead back through this proxy.
    if !artifact {
        if let (Ok(text), Some(me)) = (std::str::from_utf8(&data), conn.local_addr().ok()) {
            data = text.replace(upstream, &format!("http://{me}")).into_bytes();
        }
    }
    if current == Fault::FlipByte && artifact && !data.is_empty() {
        let mid = data.len() / 2;
        data[mid] ^= 0x20;
    }
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", data.len());
    for (k, v) in keep {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    if current == Fault::Truncate && artifact {
        conn.write_all(&data[..data.len() / 2])?;
        return conn.shutdown(std::net::Shutdown::Both);
    }
    conn.write_all(&data)
}

/// One request a [`Scripted`] server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What a [`Scripted`] server answers: status, extra headers, body.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// A tiny loopback HTTP/1.1 server (one request per connection) whose answers come from a
/// closure and which remembers every request with its headers: an upstream, a CDN or a
/// token realm that a test scripts and then questions.
pub struct Scripted {
    pub url: String,
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Scripted {
    pub fn start(answer: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (log, answer) = (received.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let _ = scripted_one(conn, &log, &*answer);
                });
            }
        });
        Scripted { url: format!("http://127.0.0.1:{port}"), port, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn scripted_one(mut conn: TcpStream, log: &Mutex<Vec<Received>>, answer: &dyn Fn(&Received) -> Answer) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (method, target, headers, _body) = read_request(&conn)?;
    let received = Received { method: method.clone(), target, headers };
    log.lock().unwrap().push(received.clone());
    let (status, extra, data) = answer(&received);
    let mut head = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n", data.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if method != "HEAD" {
        conn.write_all(&data)?;
    }
    conn.flush()
}
