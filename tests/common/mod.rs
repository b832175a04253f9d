//! Test harness: starts real `fhir-server` processes on SQLite or PostgreSQL and talks
//! to them over HTTP.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod private_pg;
pub mod receiver;
pub mod search;
pub mod smart;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// PostgreSQL server for tests (trust auth); each server gets its own database.
pub fn postgres_admin_url() -> String {
    std::env::var("FHIR_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn pg_exec(sql: &str) -> Result<(), String> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::PgConnection::establish(&format!("{}/postgres", postgres_admin_url()))
        .map_err(|e| {
        format!(
            "PostgreSQL is required for these tests ({}): {e}",
            postgres_admin_url()
        )
    })?;
    conn.batch_execute(sql).map_err(|e| e.to_string())
}

/// Drops databases left by earlier runs (their servers are gone, so nobody uses them).
fn drop_stale_databases() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use diesel::{Connection, QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            datname: String,
        }
        let Ok(mut conn) =
            diesel::PgConnection::establish(&format!("{}/postgres", postgres_admin_url()))
        else {
            return;
        };
        let names: Vec<Name> =
            diesel::sql_query("SELECT datname FROM pg_database WHERE datname LIKE 'fhir_bb_%'")
                .load(&mut conn)
                .unwrap_or_default();
        for n in names
            .into_iter()
            .filter(|n| !owner_alive(n.datname.trim_start_matches("fhir_bb_")))
        {
            let _ = pg_exec(&format!("DROP DATABASE IF EXISTS \"{}\"", n.datname));
        }
    });
}

/// Whether the test process that made `PID_rest` / `PID-rest` still runs (another
/// test binary, possibly of another checkout, may be running beside this one).
fn owner_alive(pid_and_rest: &str) -> bool {
    let pid = pid_and_rest
        .split(['_', '-'])
        .next()
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(p) => p == std::process::id() || std::path::Path::new(&format!("/proc/{p}")).exists(),
        None => false,
    }
}

/// Removes temporary folders of earlier runs (shared servers live until the process ends).
fn remove_stale_dirs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for e in std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("fhir-bb-") && !owner_alive(name.trim_start_matches("fhir-bb-")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running server, stopped (and its database dropped) on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// The database URL the server runs on.
    pub db_url: String,
    pub backend: Backend,
    pg_database: Option<String>,
    pub dir: std::path::PathBuf,
    /// The HTTP client (HTTPS servers: one that trusts the test CA).
    pub agent: ureq::Agent,
    /// The `serve` arguments, for [`Server::restart`].
    args: Vec<String>,
    /// Environment variables of the server process.
    envs: Vec<(String, String)>,
}

fn spawn(dir: &std::path::Path, args: &[String], envs: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_fhir-server"))
        .args(args)
        .envs(envs.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fhir-server")
}

/// The `serve` arguments of a test server: loopback `port` (0: one the system chooses,
/// written to `dir/port`), database `url`, exports in `dir/exports`, then `extra`.
fn serve_args(port: u16, url: &str, dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        url,
        "--log-level",
        "warn",
        "--exit-on-stdin-close",
        "--port-file",
        &dir.join("port").display().to_string(),
        "--export-dir",
        &dir.join("exports").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    pub fn start(backend: Backend) -> Server {
        Server::start_with(backend, &[])
    }

    pub fn start_with(backend: Backend, extra: &[&str]) -> Server {
        Server::start_full(backend, extra, None)
    }

    /// Starts a server on the SQLite database file `db` (which the test owns).
    pub fn start_sqlite_at(db: &std::path::Path, extra: &[&str]) -> Server {
        let url = format!("sqlite://{}", db.display());
        Server::start_inner(Backend::Sqlite, Some(url), extra, None, &[])
    }

    /// Starts a server on the database at `url` (which the test owns).
    pub fn start_on(backend: Backend, url: &str, extra: &[&str]) -> Server {
        Server::start_inner(backend, Some(url.to_string()), extra, None, &[])
    }

    /// Starts a server; with `agent`, over HTTPS (the arguments must configure TLS).
    pub fn start_full(backend: Backend, extra: &[&str], agent: Option<ureq::Agent>) -> Server {
        Server::start_inner(backend, None, extra, agent, &[])
    }

    /// Starts a server with environment variables `envs` besides `extra` arguments.
    pub fn start_env(backend: Backend, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Server::start_inner(backend, None, extra, None, &envs)
    }

    fn start_inner(
        backend: Backend,
        db_url: Option<String>,
        extra: &[&str],
        agent: Option<ureq::Agent>,
        envs: &[(String, String)],
    ) -> Server {
        remove_stale_dirs();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("fhir-bb-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (url, pg_database) = match (backend, db_url) {
            (_, Some(url)) => (url, None),
            (Backend::Sqlite, None) => (format!("sqlite://{}/fhir.db", dir.display()), None),
            (Backend::Postgres, None) => {
                drop_stale_databases();
                let name = format!("fhir_bb_{}_{n}", std::process::id());
                pg_exec(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                    .unwrap_or_else(|e| panic!("{e}"));
                pg_exec(&format!("CREATE DATABASE \"{name}\"")).unwrap_or_else(|e| panic!("{e}"));
                (format!("{}/{name}", postgres_admin_url()), Some(name))
            }
        };
        let port = 0;
        let args = serve_args(port, &url, &dir, extra);
        let _ = std::fs::remove_file(dir.join("port"));
        let child = spawn(&dir, &args, envs);
        let (scheme, host) = match agent {
            Some(_) => ("https", "localhost"),
            None => ("http", "127.0.0.1"),
        };
        let mut server = Server {
            child,
            base: format!("{scheme}://{host}:{port}/fhir"),
            db_url: url.clone(),
            backend,
            pg_database,
            dir,
            agent: agent.unwrap_or_else(ureq::Agent::new),
            args,
            envs: envs.to_vec(),
        };
        server.wait_ready();
        server
    }

    /// Starts another server process on this server's database (a second node), with
    /// its own address, log folder and `extra` arguments, sharing this server's export
    /// folder (as nodes behind one load balancer must); the database stays this
    /// server's (dropped with it).
    pub fn start_beside(&self, extra: &[&str]) -> Server {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("fhir-bb-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = 0;
        let args = serve_args(port, &self.db_url, &dir, extra);
        let _ = std::fs::remove_file(dir.join("port"));
        let child = spawn(&dir, &args, &[]);
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}/fhir"),
            db_url: self.db_url.clone(),
            backend: self.backend,
            pg_database: None,
            dir,
            agent: ureq::Agent::new(),
            args,
            envs: Vec::new(),
        };
        server.wait_ready();
        server
    }

    /// The PostgreSQL database of this server, if it has one of its own.
    pub fn pg_database(&self) -> Option<&str> {
        self.pg_database.as_deref()
    }

    /// The folder holding the server's log (and SQLite database).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Kills the server process (no clean shutdown) and starts it again on the same
    /// database, address and arguments.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port();
        self.listen_on(port);
        let _ = std::fs::remove_file(self.dir.join("port"));
        self.child = spawn(&self.dir, &self.args, &self.envs);
        self.wait_ready();
    }

    /// The port this server listens on.
    fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Sets the `--listen` port of the next start.
    fn listen_on(&mut self, port: u16) {
        if let Some(i) = self.args.iter().position(|a| a == "--listen") {
            self.args[i + 1] = format!("127.0.0.1:{port}");
        }
    }

    /// Kills the server process at once (a node dying).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id.
    /// Runs SQL on the server's database directly (waiting for a lock the server holds).
    pub fn execute(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        match self.backend {
            Backend::Sqlite => {
                let path = self.db_url.trim_start_matches("sqlite://");
                let mut c = diesel::SqliteConnection::establish(path).expect("sqlite");
                c.batch_execute("PRAGMA busy_timeout = 10000")
                    .expect("busy timeout");
                c.batch_execute(sql).expect(sql);
            }
            Backend::Postgres => {
                let mut c = diesel::PgConnection::establish(&self.db_url).expect("pg");
                c.batch_execute(sql).expect(sql);
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the server process (`STOP`: freezes it, as a stalled node;
    /// `CONT`: lets it go on).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} failed");
    }

    /// Waits until this server has written its port (`dir/port`) and answers `/ready`.
    /// A restart whose old port was taken meanwhile starts on a port the system chooses.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                if log.contains("in use") && self.port() != 0 {
                    self.listen_on(0);
                    let _ = std::fs::remove_file(self.dir.join("port"));
                    self.child = spawn(&self.dir, &self.args, &self.envs);
                    continue;
                }
                panic!("server exited before it was ready: {log}");
            }
            let port = std::fs::read_to_string(self.dir.join("port")).ok();
            if let Some(port) = port.and_then(|p| p.trim().parse::<u16>().ok()) {
                let (scheme, rest) = self.base.split_once("://").unwrap_or(("http", ""));
                let host = rest.split(':').next().unwrap_or("127.0.0.1");
                self.base = format!("{scheme}://{host}:{port}/fhir");
                let ready = self.base.replace("/fhir", "/ready");
                let answered = self
                    .agent
                    .get(&ready)
                    .timeout(Duration::from_secs(2))
                    .call();
                if answered.is_ok_and(|r| r.status() == 200) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        panic!("server did not become ready: {log}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path).send()
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        Req {
            method: method.to_string(),
            url: self.url(path),
            headers: Vec::new(),
            agent: self.agent.clone(),
        }
    }

    /// A request to a path outside the FHIR base (`/metrics`, `/health`).
    pub fn root(&self, method: &str, path: &str) -> Req {
        Req {
            url: format!("{}{path}", self.base.trim_end_matches("/fhir")),
            ..self.req(method, "")
        }
    }

    /// POSTs a resource (JSON text) and returns the response.
    pub fn create(&self, resource_type: &str, body: &str) -> Resp {
        self.req("POST", &format!("/{resource_type}")).json(body)
    }

    /// Creates a resource and returns its id.
    pub fn create_id(&self, resource_type: &str, body: &str) -> String {
        let r = self.create(resource_type, body);
        assert_eq!(r.status, 201, "create failed: {}", r.body);
        r.json()["id"].as_str().expect("id").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(db) = &self.pg_database {
            let _ = pg_exec(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request being built.
pub struct Req {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn build(&self) -> ureq::Request {
        let mut r = self
            .agent
            .request(&self.method, &self.url)
            .timeout(Duration::from_secs(60));
        for (k, v) in &self.headers {
            r = r.set(k, v);
        }
        r
    }

    pub fn send(self) -> Resp {
        Resp::from(self.build().call())
    }

    /// Sends a body with `Content-Type: application/fhir+json` unless one was set.
    pub fn json(self, body: &str) -> Resp {
        let has_ct = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        let mut r = self.build();
        if !has_ct {
            r = r.set("Content-Type", "application/fhir+json");
        }
        Resp::from(r.send_string(body))
    }

    pub fn bytes(self, body: &[u8]) -> Resp {
        Resp::from(self.build().send_bytes(body))
    }
}

/// A response: status, headers (lower-case names) and body text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl From<Result<ureq::Response, ureq::Error>> for Resp {
    fn from(r: Result<ureq::Response, ureq::Error>) -> Self {
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| {
                resp.header(&n)
                    .map(|v| (n.to_ascii_lowercase(), v.to_string()))
            })
            .collect();
        let mut body = String::new();
        let _ = resp
            .into_reader()
            .take(256 * 1024 * 1024)
            .read_to_string(&mut body);
        Resp {
            status,
            headers,
            body,
        }
    }
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Asserts an OperationOutcome with an error issue, and returns it.
    pub fn outcome(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/fhir+json")),
            "content-type {:?}",
            self.header("content-type")
        );
        let v = self.json();
        assert_eq!(v["resourceType"], "OperationOutcome", "{}", self.body);
        assert!(v["issue"][0]["severity"].is_string());
        v
    }

    /// The expression of the first issue.
    pub fn issue_expression(&self) -> String {
        self.json()["issue"][0]["expression"][0]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Runs each listed test function once per backend, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Postgres) } )*
        }
    };
}

/// One shared server per backend for tests that only touch their own resources.
pub fn shared(backend: Backend) -> &'static Server {
    static SQLITE: OnceLock<Server> = OnceLock::new();
    static POSTGRES: OnceLock<Server> = OnceLock::new();
    match backend {
        Backend::Sqlite => SQLITE.get_or_init(|| Server::start(Backend::Sqlite)),
        Backend::Postgres => POSTGRES.get_or_init(|| Server::start(Backend::Postgres)),
    }
}

/// The value of the parameter `name` of a Parameters resource (`Null` when absent).
pub fn parameter(v: &Value, name: &str) -> Value {
    v["parameter"]
        .as_array()
        .unwrap_or_else(|| panic!("not Parameters: {v}"))
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// A value unique in this test run, for identifiers.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}
