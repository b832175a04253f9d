//! Definitions load time, and parse + serialize of a ~1 MB Synthea transaction bundle
//! as JSON and as FHIR XML.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhir_model::{definitions::R4_CORE_PACKAGE, json, xml, Definitions};

/// The server's allocator, so that figures are those of the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn synthea_bundle() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea/Darrell_Erdman_c9efcb62.json"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("definitions");
    g.sample_size(10);
    g.bench_function("load r4 core package", |b| {
        b.iter(|| Definitions::from_packages(&[R4_CORE_PACKAGE]).expect("load"))
    });
    g.finish();

    let bytes = synthea_bundle();
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse + serialize synthea bundle (1 MB)", |b| {
        b.iter(|| json::to_string(&json::parse(&bytes).expect("parse")))
    });
    let value = json::parse(&bytes).expect("parse");
    let defs = Definitions::r4();
    g.bench_function("unknown-element check of synthea bundle", |b| {
        b.iter(|| defs.structure_issues(&value))
    });
    g.finish();

    let text = xml::to_xml(defs, &value, false).expect("to xml");
    let mut g = c.benchmark_group("xml");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse + serialize synthea bundle as XML", |b| {
        b.iter(|| {
            let v = xml::from_xml(defs, text.as_bytes()).expect("parse");
            xml::to_xml(defs, &v, false).expect("serialize")
        })
    });
    g.bench_function("JSON -> XML of the bundle", |b| {
        b.iter(|| xml::to_xml(defs, &value, false).expect("serialize"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
