//! Python clients against a PyPI-style index: test projects built at test time (`python -m
//! build`, poetry-core backend, no network), uploads with twine, `uv publish` and `poetry
//! publish`, installs with pip and `uv pip`, each in a scratch directory with its own HOME and
//! caches and none of the machine's pip settings. Local origins: pypiserver (hosted, fallback
//! off) and a forwarding proxy to the public PyPI that can be stopped. The clients come from
//! scripts/setup-python.sh.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::upstreams::{Forwarder, Service};
use super::*;

/// The virtual environment scripts/setup-python.sh fills.
pub fn tools() -> PathBuf {
    PathBuf::from(std::env::var("PYPI_TOOLS").unwrap_or_else(|_| "/opt/pypi-tools".into()))
}

/// A program of that environment (`python`, `twine`, `uv`, `poetry`, `pypi-server`, …).
pub fn tool(name: &str) -> PathBuf {
    let p = tools().join("bin").join(name);
    assert!(p.exists(), "{} is missing: run scripts/setup-python.sh", p.display());
    p
}

impl Worker {
    /// Its local R2, KV and Durable Objects (miniflare's persistence folder).
    pub fn state_dir(&self) -> &Path {
        self._state.path()
    }
}

/// Where an index takes uploads and serves its simple pages, and who uploads.
#[derive(Clone, Debug)]
pub struct Index {
    /// The legacy upload URL (`…/pypi/legacy/`).
    pub upload: String,
    /// The simple index root (`…/pypi/simple/`).
    pub simple: String,
}

impl Index {
    /// The Worker's PyPI mount.
    pub fn worker(w: &Worker) -> Index {
        Index { upload: format!("{}/pypi/legacy/", w.url), simple: format!("{}/pypi/simple/", w.url) }
    }

    /// A project's simple page (`…/simple/{name}/`).
    pub fn page(&self, project: &str) -> String {
        format!("{}{project}/", self.simple)
    }
}

/// Runs a Python client in `s/cwd` with HOME, caches and config inside the scratch dir and the
/// machine's pip, uv, twine and poetry settings removed; `env` adds variables.
pub fn py_run(s: &Scratch, cwd: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = s.path().join(cwd);
    std::fs::create_dir_all(&dir).unwrap();
    let home = s.path().join("home");
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if ["PIP_", "UV_", "TWINE_", "POETRY_", "PYTHON", "VIRTUAL_ENV"].iter().any(|p| k.starts_with(p)) {
            cmd.env_remove(&k);
        }
    }
    cmd.args(args)
        .current_dir(&dir)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_CACHE_DIR", s.path().join("pip-cache"))
        .env("UV_CACHE_DIR", s.path().join("uv-cache"))
        .env("UV_NO_CONFIG", "1")
        .env("UV_NO_PROGRESS", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("POETRY_CONFIG_DIR", s.path().join("poetry-config"))
        .env("POETRY_CACHE_DIR", s.path().join("poetry-cache"))
        // No keyring lookups: credentials come from the command line or the environment.
        .env("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    transcript(program, args, &cmd.output().unwrap_or_else(|e| panic!("spawn {}: {e}", program.display())))
}

/// The wheel and sdist of a test project.
#[derive(Clone, Debug)]
pub struct Dists {
    pub dir: PathBuf,
    pub wheel: PathBuf,
    pub sdist: PathBuf,
}

impl Dists {
    pub fn files(&self) -> Vec<&str> {
        vec![self.wheel.to_str().unwrap(), self.sdist.to_str().unwrap()]
    }
}

/// The module name of a project (`e2e-demo` → `e2e_demo`).
pub fn module_of(name: &str) -> String {
    name.replace(['-', '.'], "_").to_lowercase()
}

/// Writes a tiny project (one module whose `VERSION` is `version`; `deps` as PEP 508
/// requirements) to `s/dir`: a pyproject that `python -m build` and `poetry` both read.
pub fn write_project(s: &Scratch, dir: &str, name: &str, version: &str, deps: &[&str]) {
    let deps: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
    s.write(
        &format!("{dir}/pyproject.toml"),
        &format!(
            "[build-system]\nrequires = [\"poetry-core>=2\"]\nbuild-backend = \"poetry.core.masonry.api\"\n\n\
             [project]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"edgeregistry e2e fixture\"\n\
             readme = \"README.md\"\nrequires-python = \">=3.8\"\ndependencies = [{}]\n",
            deps.join(", ")
        ),
    );
    s.write(&format!("{dir}/README.md"), &format!("# {name}\n\nVersion {version}, built by the end-to-end tests.\n"));
    s.write(&format!("{dir}/{}/__init__.py", module_of(name)), &format!("VERSION = {version:?}\n"));
}

/// Builds the wheel and sdist of a project (see [`write_project`]) into `s/dir/dist`, without
/// build isolation (so without a network).
pub fn build_project(s: &Scratch, dir: &str, name: &str, version: &str, deps: &[&str]) -> Dists {
    write_project(s, dir, name, version, deps);
    ok(py_run(s, dir, &tool("python"), &["-m", "build", "--no-isolation", "--outdir", "dist", "."], &[]));
    let dist = s.path().join(dir).join("dist");
    let stem = format!("{}-{version}", module_of(name));
    let wheel = dist.join(format!("{stem}-py3-none-any.whl"));
    let sdist = dist.join(format!("{stem}.tar.gz"));
    assert!(wheel.exists() && sdist.exists(), "build made {:?}", std::fs::read_dir(&dist).unwrap().collect::<Vec<_>>());
    Dists { dir: dist, wheel, sdist }
}

/// `twine upload` with user and password (`__token__` and a token for token auth).
pub fn twine_upload(s: &Scratch, index: &Index, user: &str, password: &str, files: &[&str]) -> (bool, String) {
    let mut args = vec!["upload", "--non-interactive", "--disable-progress-bar", "--repository-url", &index.upload, "-u", user, "-p", password];
    args.extend_from_slice(files);
    py_run(s, ".", &tool("twine"), &args, &[])
}

/// `uv publish` to the legacy upload URL.
pub fn uv_publish(s: &Scratch, index: &Index, user: &str, password: &str, files: &[&str]) -> (bool, String) {
    let mut args = vec!["publish", "--publish-url", &index.upload, "--username", user, "--password", password];
    args.extend_from_slice(files);
    py_run(s, ".", &tool("uv"), &args, &[])
}

/// `poetry publish --build` of the project in `s/dir`, to a repository named `edge` set
/// through poetry's environment variables.
pub fn poetry_publish(s: &Scratch, dir: &str, index: &Index, user: &str, password: &str) -> (bool, String) {
    let env = [
        ("POETRY_REPOSITORIES_EDGE_URL", index.upload.as_str()),
        ("POETRY_HTTP_BASIC_EDGE_USERNAME", user),
        ("POETRY_HTTP_BASIC_EDGE_PASSWORD", password),
    ];
    py_run(s, dir, &tool("poetry"), &["publish", "--build", "--repository", "edge", "--no-interaction"], &env)
}

/// `pip install --target s/dir` from the simple index `simple` (no cache unless `extra`
/// names one).
pub fn pip_install(s: &Scratch, dir: &str, simple: &str, requirements: &[&str], extra: &[&str]) -> (bool, String) {
    let target = s.path().join(dir);
    let mut args = vec!["-m", "pip", "install", "--no-cache-dir", "--index-url", simple, "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(requirements);
    py_run(s, ".", &tool("python"), &args, &[])
}

/// `uv pip install --target s/dir` from the simple index `simple`, with uv's cache in the
/// scratch dir (`--no-cache` in `extra` to bypass it).
pub fn uv_install(s: &Scratch, dir: &str, simple: &str, requirements: &[&str], extra: &[&str]) -> (bool, String) {
    let target = s.path().join(dir);
    let python = tool("python");
    let mut args = vec!["pip", "install", "--python", python.to_str().unwrap(), "--index-url", simple, "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(requirements);
    py_run(s, ".", &tool("uv"), &args, &[])
}

/// The distributions installed into `s/dir` by [`pip_install`] or [`uv_install`]: normalised
/// name → version, from the `*.dist-info` folders.
pub fn installed(s: &Scratch, dir: &str) -> std::collections::BTreeMap<String, String> {
    let mut found = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(s.path().join(dir)).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        if let Some(stem) = file.strip_suffix(".dist-info") {
            if let Some((name, version)) = stem.rsplit_once('-') {
                found.insert(normalise(name), version.to_string());
            }
        }
    }
    found
}

/// PEP 503 normalisation: runs of `-`, `_` and `.` become one `-`, lower case.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A project page as PEP 691 JSON.
pub fn page_json(index: &Index, project: &str) -> Resp {
    request("GET", &index.page(project), None, &[("accept", "application/vnd.pypi.simple.v1+json")], None)
}

/// A file entry's absolute URL: PEP 691 allows URLs relative to the page.
pub fn file_url(page_url: &str, href: &str) -> String {
    url::Url::parse(page_url).unwrap().join(href).unwrap().to_string()
}

/// The `files` entry of a PEP 691 page whose filename is `filename`.
pub fn file_entry(page: &serde_json::Value, filename: &str) -> serde_json::Value {
    page["files"]
        .as_array()
        .unwrap_or_else(|| panic!("not a PEP 691 page: {page}"))
        .iter()
        .find(|f| f["filename"] == filename)
        .unwrap_or_else(|| panic!("{filename} is not on the page: {page}"))
        .clone()
}

/// pypiserver with fallback to pypi.org off, serving the files of its `packages/` folder;
/// uploads with user `origin` and password `origin-password` (htpasswd, by passlib).
pub struct PypiServer(pub Service);

impl PypiServer {
    pub fn start() -> PypiServer {
        let bin = tool("pypi-server");
        let python = tool("python");
        let command = format!(
            "{} run --host 127.0.0.1 --port $PORT --authenticate update --passwords htpasswd --disable-fallback \
             --hash-algo sha256 packages",
            bin.display()
        );
        PypiServer(Service::start("pypiserver", &command, "/simple/", |dir, _| {
            std::fs::create_dir_all(dir.join("packages")).unwrap();
            let script = "from passlib.apache import HtpasswdFile as H; h = H('htpasswd', new=True); \
                          h.set_password('origin', 'origin-password'); h.save()";
            let done = Command::new(&python).arg("-c").arg(script).current_dir(dir).status().unwrap();
            assert!(done.success(), "htpasswd for pypiserver");
        }))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Its upload URL and simple index.
    pub fn index(&self) -> Index {
        Index { upload: format!("{}/", self.0.url), simple: format!("{}/simple/", self.0.url) }
    }

    /// Puts files into its folder (pypiserver lists what is there; no upload needed).
    pub fn add(&self, files: &[&str]) {
        for f in files {
            let name = Path::new(f).file_name().unwrap();
            std::fs::copy(f, self.0.dir.path().join("packages").join(name)).unwrap();
        }
    }

    pub fn stop(&mut self) {
        self.0.stop();
    }
}

/// A forwarding proxy to the public PyPI (tests/common/e2e/forward.py): its simple index is
/// `{url}/simple/`, files come through it too, and it logs every request.
pub struct PublicPypi;

impl PublicPypi {
    pub fn start() -> Forwarder {
        Forwarder::start("pypi", "/simple/pip/")
    }
}

/// `PYPI_UPSTREAMS` naming one upstream whose simple index is `simple_url`, with short TTLs so
/// a test sees pages go stale.
pub fn pypi_upstreams(simple_url: &str, ttl_seconds: u64) -> String {
    serde_json::json!({
        "upstreams": [{"id": "origin", "url": simple_url.trim_end_matches('/'),
                        "resilience": {"timeoutMs": 3000, "maxRetries": 1, "retryDelayMs": 100, "retryMaxDelayMs": 1000}}],
        "cache": {"defaultTtlSeconds": ttl_seconds, "staleMaxAgeSeconds": ttl_seconds, "negativeCacheTtlSeconds": ttl_seconds}
    })
    .to_string()
}
