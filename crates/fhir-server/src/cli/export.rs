//! `fhir-server export --url BASE --out DIR`: a Bulk Data client. It kicks off a
//! system-level `$export` over HTTP (ureq), polls the status URL as `Retry-After` says,
//! then streams every output file to `DIR` (with the manifest as `manifest.json`) under
//! an indicatif progress bar counting resources.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::config::ExportClientArgs;

/// Why an export run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("the server answered {status} to {url}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{0}: {1}")]
    File(String, String),
    #[error("the export did not finish within {0} s")]
    Timeout(u64),
    #[error("unexpected answer from {url}: {message}")]
    Protocol { url: String, message: String },
}

/// What was downloaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Downloaded {
    pub files: usize,
    pub resources: u64,
    pub bytes: u64,
}

/// The text of an error answer: the OperationOutcome's first issue, or the body.
fn message_of(resp: ureq::Response) -> String {
    let body = resp.into_string().unwrap_or_default();
    serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/issue/0/details/text")
                .or_else(|| v.pointer("/issue/0/diagnostics"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or(body)
}

fn call(req: ureq::Request) -> Result<ureq::Response, ClientError> {
    let url = req.url().to_string();
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(status, resp)) => Err(ClientError::Refused {
            url,
            status,
            message: message_of(resp),
        }),
        Err(e) => Err(ClientError::Http {
            url,
            message: e.to_string(),
        }),
    }
}

/// Runs the export and downloads its files.
pub fn run(args: &ExportClientArgs) -> Result<Downloaded, ClientError> {
    let base = args.url.trim_end_matches('/');
    let status_url = kickoff(base, args)?;
    let manifest = poll(&status_url, args.timeout)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| ClientError::File(args.out.display().to_string(), e.to_string()))?;
    write_file(
        &args.out.join("manifest.json"),
        &fhir_model::json::to_string_pretty(&manifest),
    )?;
    download_all(&manifest, &args.out)
}

fn kickoff(base: &str, args: &ExportClientArgs) -> Result<String, ClientError> {
    let mut req = ureq::get(&format!("{base}/$export"))
        .set("Prefer", "respond-async")
        .set("Accept", "application/fhir+json");
    if !args.types.is_empty() {
        req = req.query("_type", &args.types.join(","));
    }
    if let Some(since) = &args.since {
        req = req.query("_since", since);
    }
    let url = req.url().to_string();
    let resp = call(req)?;
    match (resp.status(), resp.header("Content-Location")) {
        (202, Some(loc)) => Ok(loc.to_string()),
        (status, _) => Err(ClientError::Protocol {
            url,
            message: format!("status {status} without a Content-Location"),
        }),
    }
}

/// Polls until the manifest arrives, showing the server's `X-Progress`.
fn poll(status_url: &str, timeout: u64) -> Result<Value, ClientError> {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let resp = call(ureq::get(status_url))?;
        if resp.status() == 200 {
            spinner.finish_and_clear();
            return resp.into_json().map_err(|e| ClientError::Protocol {
                url: status_url.into(),
                message: format!("the manifest is not JSON: {e}"),
            });
        }
        spinner.set_message(resp.header("X-Progress").unwrap_or("waiting").to_string());
        let wait = resp
            .header("Retry-After")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(1.0)
            .clamp(0.2, 10.0);
        if Instant::now() >= deadline {
            return Err(ClientError::Timeout(timeout));
        }
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), ClientError> {
    std::fs::write(path, text)
        .map_err(|e| ClientError::File(path.display().to_string(), e.to_string()))
}

fn download_all(manifest: &Value, out: &Path) -> Result<Downloaded, ClientError> {
    let outputs = manifest
        .get("output")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total: u64 = outputs
        .iter()
        .filter_map(|o| o.get("count").and_then(Value::as_u64))
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} resources, {per_sec} {msg} [{elapsed_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut done = Downloaded::default();
    for o in &outputs {
        let url = o.get("url").and_then(Value::as_str).unwrap_or_default();
        let name = url
            .rsplit('/')
            .next()
            .filter(|n| safe_name(n))
            .ok_or_else(|| ClientError::Protocol {
                url: url.into(),
                message: "the file URL has no usable file name".into(),
            })?;
        bar.set_message(name.to_string());
        let (lines, bytes) = download(url, &out.join(name), &bar)?;
        done.files += 1;
        done.resources += lines;
        done.bytes += bytes;
    }
    bar.finish_and_clear();
    Ok(done)
}

/// A file name without path separators or parent references.
fn safe_name(name: &str) -> bool {
    !name.is_empty() && name != ".." && !name.contains(['/', '\\']) && name != "manifest.json"
}

/// Streams one file to disk; returns its lines and bytes.
fn download(url: &str, path: &Path, bar: &ProgressBar) -> Result<(u64, u64), ClientError> {
    let resp = call(ureq::get(url).set("Accept", "application/fhir+ndjson"))?;
    let file_err = |e: std::io::Error| ClientError::File(path.display().to_string(), e.to_string());
    let http_err = |e: std::io::Error| ClientError::Http {
        url: url.into(),
        message: e.to_string(),
    };
    let mut reader = BufReader::with_capacity(256 * 1024, resp.into_reader());
    let mut writer = BufWriter::new(std::fs::File::create(path).map_err(file_err)?);
    let (mut lines, mut bytes) = (0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(http_err)?;
        if n == 0 {
            break;
        }
        writer.write_all(&line).map_err(file_err)?;
        bytes += n as u64;
        lines += 1;
        bar.inc(1);
    }
    writer.flush().map_err(file_err)?;
    Ok((lines, bytes))
}
