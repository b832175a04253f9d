//! Shared by the tests over the specification's examples.

use std::io::Read;
use std::path::PathBuf;

/// A file of the shared test data (`../shared`, beside the checkout).
pub fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(rel)
}

/// Every example of the R4 examples package: file name and bytes. Fails, saying where
/// it looked, when the package is missing.
pub fn spec_examples() -> Vec<(String, Vec<u8>)> {
    let path = shared("fhir/hl7.fhir.r4.examples-4.0.1.tgz");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut out = Vec::new();
    for entry in archive.entries().expect("archive") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let index = name.ends_with("package.json") || name.ends_with(".index.json");
        if !name.ends_with(".json") || index {
            continue;
        }
        let mut text = Vec::new();
        entry.read_to_end(&mut text).expect("read");
        out.push((name, text));
    }
    out
}
