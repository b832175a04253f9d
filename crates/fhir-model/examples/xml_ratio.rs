//! The ratio of XML to JSON parse + serialize time on the 1 MB Synthea Bundle, with the
//! two measured in turn (so that the machine's drift hits both alike): medians of 200
//! rounds. `cargo run --release -p fhir-model --example xml_ratio`.

use std::time::{Duration, Instant};

use fhir_model::{json, xml, Definitions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea/Darrell_Erdman_c9efcb62.json"
    );
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let defs = Definitions::r4();
    let value = json::parse(&bytes).expect("parse");
    let text = xml::to_xml(defs, &value, false).expect("to xml");
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let json_round = || drop(json::to_string(&json::parse(&bytes).expect("parse")));
    let xml_read = || drop(xml::from_xml(defs, text.as_bytes()).expect("parse"));
    let xml_round = || {
        let v = xml::from_xml(defs, text.as_bytes()).expect("parse");
        drop(xml::to_xml(defs, &v, false).expect("serialize"));
    };
    let (mut j, mut r, mut x) = (vec![], vec![], vec![]);
    for _ in 0..200 {
        j.push(time(&json_round));
        r.push(time(&xml_read));
        x.push(time(&xml_round));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (j, r, x) = (median(&mut j), median(&mut r), median(&mut x));
    println!("JSON parse + serialize: {j:?}");
    println!("XML parse: {r:?}");
    println!(
        "XML parse + serialize: {x:?} ({:.2}x JSON)",
        x.as_secs_f64() / j.as_secs_f64()
    );
}
