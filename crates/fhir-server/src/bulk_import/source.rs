//! Where import inputs may come from, and reading them. A kick-off may only name
//! `file://` URLs inside the configured folder (`--import-dir`) and `http(s)://` URLs
//! under a configured prefix (`--import-allowed-urls`): the server fetches what a client
//! names, so anything else (another folder, `..`, a host of the internal network) is
//! refused before the job starts, and HTTP redirects are not followed. A file or URL
//! ending in `.gz`, or served with `Content-Encoding: gzip`, is decompressed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ImportError;

/// How long an input host may take to accept a connection, and to send more bytes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// The inputs this server may read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `file://` inputs must be inside this folder; `None`: no file inputs.
    pub dir: Option<PathBuf>,
    /// `http(s)://` inputs must start with one of these URL prefixes.
    pub allowed: Vec<String>,
}

/// A checked input location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Http(String),
}

impl Sources {
    /// Where `url` points, if this server may read it.
    pub fn check(&self, url: &str) -> Result<Location, ImportError> {
        let refuse = |why: &str| ImportError::Source {
            url: url.to_string(),
            why: why.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| refuse(&format!("not a URL ({e})")))?;
        match parsed.scheme() {
            "file" => self
                .file(&parsed)
                .map(Location::File)
                .map_err(|w| refuse(&w)),
            "http" | "https" => {
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(refuse("input URLs may not carry credentials"));
                }
                // The parsed form: `..` resolved, host lower-cased, so a prefix check
                // cannot be walked around.
                let normal = parsed.as_str();
                if self.allowed.iter().any(|p| under_prefix(normal, p)) {
                    Ok(Location::Http(normal.to_string()))
                } else {
                    Err(refuse(
                        "this server does not read from there (the administrator lists the allowed URL prefixes with --import-allowed-urls)",
                    ))
                }
            }
            other => Err(refuse(&format!(
                "the scheme '{other}' is not supported (file or https)"
            ))),
        }
    }

    fn file(&self, url: &url::Url) -> Result<PathBuf, String> {
        let Some(dir) = &self.dir else {
            return Err(
                "file inputs are not enabled (the administrator sets the folder with --import-dir)"
                    .into(),
            );
        };
        if url
            .host_str()
            .is_some_and(|h| !h.is_empty() && h != "localhost")
        {
            return Err("file URLs must name a local path (file:///…)".into());
        }
        let path = url
            .to_file_path()
            .map_err(|_| "not a local file path".to_string())?;
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("the import folder is unreadable: {e}"))?;
        let real = path
            .canonicalize()
            .map_err(|e| format!("cannot read the file: {e}"))?;
        if !real.starts_with(&dir) || !real.is_file() {
            return Err("file inputs must be files inside the import folder".into());
        }
        Ok(real)
    }

    /// Opens a checked input for reading, line by line.
    pub fn open(&self, url: &str) -> Result<Box<dyn BufRead + Send>, ImportError> {
        let fail = |why: String| ImportError::Source {
            url: url.to_string(),
            why,
        };
        let gz = Path::new(url.split(['?', '#']).next().unwrap_or(url))
            .extension()
            .is_some_and(|e| e == "gz");
        let (reader, gz): (Box<dyn Read + Send>, bool) = match self.check(url)? {
            Location::File(path) => {
                let file = std::fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
                (Box::new(file), gz)
            }
            Location::Http(u) => {
                let agent = ureq::AgentBuilder::new()
                    .redirects(0)
                    .timeout_connect(CONNECT_TIMEOUT)
                    .timeout_read(READ_TIMEOUT)
                    .build();
                let response = agent
                    .get(&u)
                    .set("Accept", "application/fhir+ndjson")
                    .call()
                    .map_err(|e| fail(fetch_error(e)))?;
                if response.status() != 200 {
                    // Without redirects, a 3xx arrives as a response, not an error.
                    return Err(fail(fetch_error(ureq::Error::Status(
                        response.status(),
                        response,
                    ))));
                }
                let encoded = response
                    .header("Content-Encoding")
                    .is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
                (Box::new(response.into_reader()), gz || encoded)
            }
        };
        let reader: Box<dyn Read + Send> = if gz {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            reader
        };
        Ok(Box::new(BufReader::with_capacity(256 * 1024, reader)))
    }
}

/// `url` starts with `prefix` at a boundary: `https://a.example/x/` covers
/// `https://a.example/x/y.ndjson`; `https://a.example/x` covers `…/x/y` and `…/x?…` but
/// not `…/xy`, and `https://a.example` not `https://a.example.evil.org`.
fn under_prefix(url: &str, prefix: &str) -> bool {
    let prefix = match url::Url::parse(prefix) {
        Ok(p) => p.to_string(),
        Err(_) => return false,
    };
    let Some(rest) = url.strip_prefix(&prefix) else {
        // `https://a.example` parses as `https://a.example/`.
        return false;
    };
    prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
}

fn fetch_error(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) if (300..400).contains(&code) => format!(
            "HTTP {code} (redirects are not followed; name the final URL{})",
            r.header("Location")
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        ),
        ureq::Error::Status(code, _) => format!("HTTP {code}"),
        ureq::Error::Transport(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path) -> Sources {
        Sources {
            dir: Some(dir.to_path_buf()),
            allowed: vec![
                "https://partner.example/exports/".into(),
                "http://127.0.0.1:9000/x".into(),
            ],
        }
    }

    #[test]
    fn urls_under_a_prefix() {
        let s = sources(Path::new("/nonexistent"));
        for ok in [
            "https://partner.example/exports/Patient.ndjson",
            "https://PARTNER.example/exports/a/b.ndjson?sig=1",
            "http://127.0.0.1:9000/x/y.ndjson",
            "http://127.0.0.1:9000/x?f=1",
        ] {
            assert!(s.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://partner.example/exports/../secrets/a.ndjson",
            "https://partner.example/other.ndjson",
            "https://partner.example.evil.org/exports/a.ndjson",
            "https://user:pw@partner.example/exports/a.ndjson",
            "http://127.0.0.1:9000/xy.ndjson",
            "http://127.0.0.1:9001/x/y.ndjson",
            "ftp://partner.example/exports/a.ndjson",
            "not a url",
        ] {
            assert!(s.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_inside_the_folder_only() {
        let root = std::env::temp_dir().join(format!("import-src-{}", std::process::id()));
        let inside = root.join("in");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("a.ndjson"), "{}\n").unwrap();
        std::fs::write(root.join("outside.ndjson"), "{}\n").unwrap();
        let s = sources(&inside);
        let url = |p: &Path| url::Url::from_file_path(p).unwrap().to_string();
        assert!(s.check(&url(&inside.join("a.ndjson"))).is_ok());
        assert!(s.check(&url(&root.join("outside.ndjson"))).is_err());
        let dotted = format!("{}/../outside.ndjson", url(&inside));
        assert!(s.check(&dotted).is_err());
        assert!(s.check(&url(&inside)).is_err(), "a folder is not an input");
        assert!(Sources::default()
            .check(&url(&inside.join("a.ndjson")))
            .is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
