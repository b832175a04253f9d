//! The partner endpoint `scripts/bench/subscriptions.sh` sends notifications to: it
//! answers every request `200` and writes, per notification that carries a resource,
//! the milliseconds from its `meta.lastUpdated` (the commit) to its arrival, one per
//! line. A thread per connection, std only: on a two-core machine the receiver shares
//! the cores with the server it measures, and this one takes a few microseconds of CPU
//! per notification where the Python receivers took 50–150.
//!
//! Usage: `hook_receiver PORT OUT_FILE KEEPALIVE` (`1`: HTTP/1.1, connections kept
//! open; `0`: HTTP/1.0, each closed after its answer).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, LineWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

type Out = Arc<Mutex<LineWriter<std::fs::File>>>;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, out, keep] = args.as_slice() else {
        eprintln!("usage: hook_receiver PORT OUT_FILE KEEPALIVE(0|1)");
        std::process::exit(2);
    };
    let file = OpenOptions::new().create(true).append(true).open(out)?;
    let out: Out = Arc::new(Mutex::new(LineWriter::new(file)));
    let keep = keep == "1";
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("hook_receiver: {port:?} is not a port number");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming().flatten() {
        let out = out.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, &out, keep);
        });
    }
    Ok(())
}

/// Answers the requests of one connection until it closes (or after one, without
/// keep-alive).
fn serve(stream: TcpStream, out: &Out, keep: bool) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut length = 0usize;
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Some(ms) = latency(&body) {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            writeln!(out, "{ms:.1}")?;
        }
        if keep {
            writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
        } else {
            writer
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
    }
}

/// Milliseconds from the first `"lastUpdated"` in `body` to now.
fn latency(body: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(body).ok()?;
    let after = &text[text.find("\"lastUpdated\"")? + 13..];
    let start = after.find('"')? + 1;
    let end = start + after[start..].find('"')?;
    let at = OffsetDateTime::parse(&after[start..end], &Rfc3339).ok()?;
    let ms = (OffsetDateTime::now_utc() - at).as_seconds_f64() * 1000.0;
    Some(ms)
}
