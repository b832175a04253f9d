//! Browser tests of the web console: headless Chromium, driven over the Chrome
//! DevTools Protocol (a small client over tungstenite, below), goes through what an
//! integration engineer does — search, open a resource, edit it and see a validation
//! error next to the text, fix and save it, compare two versions, run an export and
//! watch it finish, sign in with a token. `CONSOLE_SCREENSHOTS=DIR` also saves
//! screenshots of the main pages there (docs/console.md shows them).
//!
//! Chromium must be installed (`apt-get install chromium`; `.ci/run` does it): without
//! it these tests fail and say so.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Server};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    dir: std::path::PathBuf,
}

fn chromium() -> String {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return p;
    }
    for p in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("the console's browser tests need Chromium: apt-get install chromium (.ci/run installs it), or set CHROMIUM=/path/to/chrome");
}

impl Browser {
    fn launch() -> Browser {
        let dir = std::env::temp_dir().join(format!("fhir-chromium-{}", common::unique("b")));
        std::fs::create_dir_all(&dir).expect("profile dir");
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--ignore-certificate-errors",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", dir.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Chromium");
        let port_file = dir.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_string))
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its debugging port"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let pages: Value = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .expect("page list")
            .into_json()
            .expect("JSON");
        let ws_url = pages
            .as_array()
            .and_then(|a| a.iter().find(|p| p["type"] == "page"))
            .and_then(|p| p["webSocketDebuggerUrl"].as_str())
            .expect("a page")
            .to_string();
        let (ws, _) = tungstenite::connect(ws_url).expect("DevTools websocket");
        let mut b = Browser {
            child,
            ws,
            next: 0,
            dir,
        };
        b.call("Page.enable", json!({}));
        b
    }

    /// Sends a DevTools command and waits for its answer (events are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).expect("send");
        loop {
            let m = self.ws.read().expect("read");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns its value.
    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait("document.readyState === 'complete'", "the page to load");
    }

    /// Waits until `condition` (JavaScript) is true.
    fn wait(&mut self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The page may be between two documents (a navigation): false until it is not.
            let probe = format!(
                "(() => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }})()"
            );
            if self.eval(&probe) == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let text = self.eval("document.getElementById('main') ? document.getElementById('main').innerText : document.body.innerText");
                panic!("waited in vain for {what} ({condition}); the page shows: {text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&mut self, selector: &str) {
        self.wait(&format!("document.querySelector({selector:?})"), selector);
        self.eval(&format!("document.querySelector({selector:?}).click()"));
    }

    /// Sets a form control's value as typing would.
    fn fill(&mut self, selector: &str, value: &str) {
        self.wait(&format!("document.querySelector({selector:?})"), selector);
        let v = serde_json::to_string(value).expect("string");
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?}); e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}})); e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"
        ));
    }

    fn text(&mut self, selector: &str) -> String {
        self.eval(&format!(
            "(document.querySelector({selector:?}) || {{innerText: ''}}).innerText"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Saves a screenshot as `name.png` when `CONSOLE_SCREENSHOTS` names a folder.
    fn screenshot(&mut self, name: &str) {
        let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") else {
            return;
        };
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("data"))
            .expect("base64");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), data)
            .expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn root(s: &Server) -> String {
    s.base.trim_end_matches("/fhir").to_string()
}

/// Search, open, edit with a validation error shown, fix and save, compare versions,
/// export.
fn console_walk_through(b: Backend) {
    let s = Server::start(b);
    let patient = json!({"resourceType": "Patient", "name": [{"family": "Chalmers", "given": ["Peter"]}], "birthDate": "1974-12-25"});
    let id = s.create_id("Patient", &patient.to_string());
    s.create_id(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"family":"Other"}]}"#,
    );
    let mut br = Browser::launch();
    let base = root(&s);

    br.goto(&format!("{base}/"));
    br.wait(
        "document.querySelector('a[href=\"#/type/Patient\"]')",
        "the list of types",
    );
    br.wait(
        "document.getElementById('count-Patient').innerText === '(2)'",
        "the count of Patients",
    );
    br.screenshot("types");

    br.click("a[href=\"#/type/Patient\"]");
    br.fill("#param-0", "family");
    br.fill("#value-0", "Chalmers");
    br.click("#search");
    br.wait(
        "document.querySelectorAll('#results tbody tr').length === 1",
        "one match",
    );
    assert!(br.text("#results").contains("Peter Chalmers"));
    br.screenshot("search");

    br.click(&format!("#results a[href=\"#/type/Patient/{id}\"]"));
    br.wait("document.getElementById('json') && document.getElementById('json').innerText.includes('Chalmers')", "the resource");
    br.screenshot("resource");

    br.click("#edit");
    br.wait("document.getElementById('editor') && document.getElementById('editor').value.includes('Chalmers')", "the editor");
    let mut edited = patient.clone();
    edited["id"] = json!(id);
    edited["gender"] = json!("neither");
    br.fill(
        "#editor",
        &serde_json::to_string_pretty(&edited).expect("json"),
    );
    br.click("#validate");
    br.wait("document.getElementById('issues') && document.getElementById('issues').innerText.includes('gender')", "the validation issue on gender");
    br.screenshot("edit");
    br.click("#save");
    br.wait(
        "document.getElementById('validation').innerText.includes('Not saved (422)')",
        "the refusal",
    );
    assert_eq!(
        s.get(&format!("/Patient/{id}")).json()["meta"]["versionId"],
        "1",
        "nothing saved"
    );

    edited["gender"] = json!("female");
    br.fill(
        "#editor",
        &serde_json::to_string_pretty(&edited).expect("json"),
    );
    br.click("#save");
    br.wait(&format!("location.hash === '#/type/Patient/{id}' && document.getElementById('json') && document.getElementById('json').innerText.includes('female')"), "the saved version");
    assert_eq!(s.get(&format!("/Patient/{id}")).json()["gender"], "female");

    br.eval(
        "[...document.querySelectorAll('[role=tab]')].find(b => b.innerText === 'History').click()",
    );
    br.click("#compare");
    br.wait(
        "[...document.querySelectorAll('#diff .add')].some(e => e.innerText.includes('female'))",
        "the added line in the diff",
    );
    assert!(
        br.text("#diff").contains("-     \"versionId\": \"1\""),
        "{}",
        br.text("#diff")
    );
    assert!(br.text("#diff").contains("\"versionId\": \"2\""));
    br.screenshot("diff");

    br.goto(&format!("{base}/#/jobs"));
    br.fill("#export-types", "Patient");
    br.click("#start-export");
    br.wait("document.querySelector('.job-state') && document.querySelector('.job-state').innerText.startsWith('finished')", "the export to finish");
    assert!(
        br.text("#jobs").contains("Patient 2"),
        "{}",
        br.text("#jobs")
    );
    br.wait(
        "document.querySelector('#server-jobs') && document.querySelector('#server-jobs').innerText.includes('completed')",
        "the job in the server's list",
    );
    assert!(
        br.text("#server-jobs").contains("_type=Patient"),
        "{}",
        br.text("#server-jobs")
    );
    br.screenshot("jobs");
}

/// Past the server's total threshold a type's estimate may carry no total (SQLite): the
/// list then shows an exact count, never a blank or a guess.
fn console_counts_past_the_threshold(b: Backend) {
    let s = Server::start_with(b, &["--total-threshold", "1"]);
    for family in ["One", "Two", "Three"] {
        s.create_id(
            "Patient",
            &json!({"resourceType": "Patient", "name": [{"family": family}]}).to_string(),
        );
    }
    let mut br = Browser::launch();
    br.goto(&format!("{}/", root(&s)));
    br.wait(
        "document.getElementById('count-Patient') && /^\\([0-9,]+\\)$/.test(document.getElementById('count-Patient').innerText)",
        "a number of Patients",
    );
    let shown = br.text("#count-Patient");
    if b == Backend::Sqlite {
        assert_eq!(shown, "(3)", "SQLite has no estimate: the exact count");
    }
    br.wait(
        "document.getElementById('count-Account').innerText === '(0)'",
        "the count of an empty type",
    );
}

/// With authentication on, the console asks for a token, then works with it.
fn console_signs_in_with_a_token(b: Backend) {
    let s = common::smart::secure(b);
    let mut br = Browser::launch();
    br.goto(&format!("{}/", root(s)));
    br.wait(
        "document.getElementById('main').innerText.includes('needs an access token')",
        "the request for a token",
    );
    let token = common::smart::admin(s);
    br.fill("#token", &token);
    br.click("#signin button");
    br.wait(
        "document.querySelector('a[href=\"#/type/Patient\"]')",
        "the list of types",
    );
    br.goto(&format!("{}/#/audit", root(s)));
    br.wait("document.getElementById('audit')", "the audit trail");
    assert!(
        br.text("#audit").contains("read") || br.text("#audit").contains("search"),
        "{}",
        br.text("#audit")
    );
}

/// A fake OpenID Connect provider: discovery, an authorization endpoint that signs the
/// user in at once (redirecting back with a code), and a token endpoint that checks the
/// PKCE verifier against the challenge and answers a token signed with the test key.
fn provider() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let me = issuer.clone();
    let challenge = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    std::thread::spawn(move || {
        // A thread per connection: the browser may open connections it leaves idle.
        for stream in listener.incoming().flatten() {
            let (me, challenge) = (me.clone(), challenge.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let query = |text: &str, name: &str| {
                    url::form_urlencoded::parse(text.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default()
                };
                let (status, extra, reply) = if target
                    .starts_with("/.well-known/openid-configuration")
                {
                    let d = json!({"issuer": me, "authorization_endpoint": format!("{me}/authorize"), "token_endpoint": format!("{me}/token")});
                    ("200 OK", String::new(), d.to_string())
                } else if let Some(q) = target.strip_prefix("/authorize?") {
                    *challenge.lock().expect("lock") = query(q, "code_challenge");
                    let back = format!(
                        "{}?code=the-code&state={}",
                        query(q, "redirect_uri"),
                        query(q, "state")
                    );
                    ("302 Found", format!("Location: {back}\r\n"), String::new())
                } else {
                    let form = String::from_utf8_lossy(&body).to_string();
                    use base64::Engine;
                    let digest = <sha2::Sha256 as sha2::Digest>::digest(
                        query(&form, "code_verifier").as_bytes(),
                    );
                    let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
                    if query(&form, "code") == "the-code"
                        && hashed == *challenge.lock().expect("lock")
                    {
                        let claims = json!({"iss": me, "sub": "nurse-1", "aud": common::smart::AUDIENCE,
                        "exp": common::smart::now() + 300, "iat": common::smart::now(), "scope": "user/*.cruds"});
                        let token = common::smart::sign(
                            jsonwebtoken::Algorithm::RS256,
                            "oidc-1",
                            "oidc.key",
                            &claims,
                        );
                        (
                            "200 OK",
                            String::new(),
                            json!({"access_token": token, "token_type": "Bearer"}).to_string(),
                        )
                    } else {
                        (
                            "400 Bad Request",
                            String::new(),
                            json!({"error": "invalid_grant"}).to_string(),
                        )
                    }
                };
                let mut stream = stream;
                let _ = write!(stream, "HTTP/1.1 {status}\r\n{extra}Access-Control-Allow-Origin: *\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len());
            });
        }
    });
    issuer
}

/// With `--console-client-id`, the console signs the user in at the OpenID Connect
/// provider the API trusts (authorization code with PKCE) and works with that token.
fn console_signs_in_at_the_provider(b: Backend) {
    let issuer = provider();
    let jwks = common::smart::fixture("oidc.jwks.json");
    let s = Server::start_with(
        b,
        &[
            "--oidc-issuer",
            &issuer,
            "--oidc-audience",
            common::smart::AUDIENCE,
            "--oidc-jwks",
            &jwks,
            "--console-client-id",
            "console",
        ],
    );
    let mut br = Browser::launch();
    br.goto(&format!("{}/", root(&s)));
    br.wait(
        "document.getElementById('auth-note')",
        "the request for a token",
    );
    br.click("#signin-oidc");
    br.wait(
        "document.getElementById('who').innerText === 'signed in'",
        "the sign-in",
    );
    br.wait("document.getElementById('count-Patient') && document.getElementById('count-Patient').innerText === '(0)'", "a count read with the token");
    assert_eq!(
        br.eval("location.search"),
        json!(""),
        "the code is gone from the address"
    );
}

both_backends!(
    console_walk_through,
    console_counts_past_the_threshold,
    console_signs_in_with_a_token,
    console_signs_in_at_the_provider,
);
