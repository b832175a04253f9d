//! Black-box tests of the Bulk Data IG's kick-off and manifest rules (export.html):
//! `Prefer: handling=strict|lenient` for parameters the server does not support, with
//! the manifest's `error` list; repeated parameters; `_typeFilter` without result
//! parameters; `_until`; the `deleted` list of an export with `_since`; `Expires`;
//! gzip-encoded files; an export that reads resources as of its transaction time; and
//! the Provenance of compartment resources in Patient and Group exports.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

use common::{shared, unique, Backend, Resp, Server};
use serde_json::{json, Value};

fn kickoff(s: &Server, path: &str, lenient: bool) -> Resp {
    let prefer = if lenient {
        "respond-async, handling=lenient"
    } else {
        "respond-async"
    };
    s.req("GET", path)
        .header("Prefer", prefer)
        .header("Accept", "application/fhir+json")
        .send()
}

fn local(s: &Server, url: &str) -> String {
    url.strip_prefix(&s.base).expect("under base").to_string()
}

/// Kicks off, waits, and returns the manifest response.
fn export(s: &Server, path: &str, lenient: bool) -> Resp {
    let r = kickoff(s, path, lenient);
    assert_eq!(r.status, 202, "kick-off {path}: {}", r.body);
    let status = local(s, r.header("content-location").expect("Content-Location"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.get(&status);
        if r.status == 200 {
            return r;
        }
        assert_eq!(r.status, 202, "{}", r.body);
        assert!(Instant::now() < deadline, "export did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The resources of every file of one manifest list.
fn lines(s: &Server, manifest: &Value, list: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for f in manifest[list].as_array().cloned().unwrap_or_default() {
        let r = s.get(&local(s, f["url"].as_str().expect("url")));
        assert_eq!(r.status, 200, "{}", r.body);
        out.extend(
            r.body
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("ndjson")),
        );
    }
    out
}

fn ids(resources: &[Value]) -> BTreeSet<String> {
    resources
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

fn family(s: &Server, name: &str) -> String {
    s.create_id(
        "Patient",
        &json!({"resourceType": "Patient", "name": [{"family": name}]}).to_string(),
    )
}

fn last_updated(s: &Server, id: &str) -> String {
    let p = s.get(&format!("/Patient/{id}")).json();
    p["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated")
        .replace('+', "%2B")
}

fn unsupported_parameters_are_refused_unless_lenient(b: Backend) {
    let s = shared(b);
    for (path, expression) in [
        ("/$export?_type=Basic&_bogus=1", "_bogus"),
        (
            "/$export?_type=Basic&includeAssociatedData=LatestProvenanceResources",
            "includeAssociatedData",
        ),
        (
            "/$export?_type=Basic&organizeOutputBy=Patient",
            "organizeOutputBy",
        ),
        (
            "/$export?_type=Basic&_since=2020-01-01T00:00:00Z&_since=2021-01-01T00:00:00Z",
            "_since",
        ),
        (
            "/$export?_type=Basic&_outputFormat=ndjson&_outputFormat=ndjson",
            "_outputFormat",
        ),
        (
            "/$export?_typeFilter=Patient%3Factive%3Dtrue%26_sort%3Dbirthdate",
            "_typeFilter",
        ),
    ] {
        let r = kickoff(s, path, false);
        r.outcome(400);
        assert_eq!(r.issue_expression(), expression, "{path}: {}", r.body);
    }
    // allowPartialManifests: one manifest is always allowed.
    assert_eq!(
        kickoff(s, "/$export?_type=Basic&allowPartialManifests=true", false).status,
        202
    );
    // Lenient: left out, and each reported as an OperationOutcome in `error`.
    let id = family(s, &unique("Lenient"));
    let m = export(
        s,
        "/$export?_type=Patient,Bogus&_bogus=1&includeAssociatedData=x",
        true,
    )
    .json();
    assert!(ids(&lines(s, &m, "output")).contains(&id));
    let errors = lines(s, &m, "error");
    let at: BTreeSet<String> = errors
        .iter()
        .map(|oo| {
            assert_eq!(oo["resourceType"], "OperationOutcome");
            oo["issue"][0]["expression"][0]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        at,
        BTreeSet::from([
            "_type".into(),
            "_bogus".into(),
            "includeAssociatedData".into()
        ]),
        "{errors:?}"
    );
    // Leaving out every type would export everything: refused even when lenient.
    kickoff(s, "/$export?_type=Bogus", true).outcome(400);
}

fn until_and_deleted_since(b: Backend) {
    let s = shared(b);
    let tag = unique("Deleted");
    let first = family(s, &tag);
    std::thread::sleep(Duration::from_millis(20));
    let since = last_updated(s, &first);
    std::thread::sleep(Duration::from_millis(20));
    let kept = family(s, &tag);
    let gone = family(s, &tag);
    assert!(matches!(
        s.req("DELETE", &format!("/Patient/{gone}")).send().status,
        200 | 204
    ));
    // _until: only what had changed by then.
    let until = last_updated(s, &first);
    let m = export(s, &format!("/$export?_type=Patient&_until={until}"), false).json();
    let exported = ids(&lines(s, &m, "output"));
    assert!(
        exported.contains(&first) && !exported.contains(&kept),
        "{exported:?}"
    );
    // _since: what changed after, and the deletions as DELETE entries of Bundles.
    let r = export(s, &format!("/$export?_type=Patient&_since={since}"), false);
    assert!(
        r.header("expires").is_some(),
        "the manifest says when its files go"
    );
    let m = r.json();
    let exported = ids(&lines(s, &m, "output"));
    assert!(exported.contains(&kept) && !exported.contains(&first) && !exported.contains(&gone));
    assert_eq!(m["deleted"][0]["type"], "Bundle", "{m}");
    let deleted: Vec<String> = lines(s, &m, "deleted")
        .iter()
        .flat_map(|b| {
            assert_eq!(b["type"], "transaction");
            b["entry"].as_array().cloned().unwrap_or_default()
        })
        .map(|e| {
            assert_eq!(e["request"]["method"], "DELETE");
            e["request"]["url"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert!(deleted.contains(&format!("Patient/{gone}")), "{deleted:?}");
    assert!(!deleted.contains(&format!("Patient/{kept}")));
    // Without _since there is no deleted list.
    let m = export(s, "/$export?_type=Patient", false).json();
    assert!(m.get("deleted").is_none(), "{m}");
}

fn files_are_gzipped_when_asked(b: Backend) {
    let s = shared(b);
    let id = family(s, &unique("Gzip"));
    let m = export(s, "/$export?_type=Patient", false).json();
    let url = m["output"][0]["url"].as_str().expect("url").to_string();
    let r = ureq::get(&url)
        .set("Accept-Encoding", "gzip")
        .call()
        .expect("download");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut gz = Vec::new();
    r.into_reader().read_to_end(&mut gz).expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gzip");
    let all: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    let files_hold = m["output"].as_array().map_or(0, Vec::len) > 1 || ids(&all).contains(&id);
    assert!(files_hold, "the gzipped file holds the resources");
    // Without Accept-Encoding: plain NDJSON.
    let plain = ureq::get(&url).call().expect("download");
    assert!(plain.header("Content-Encoding").is_none());
}

fn export_reads_resources_as_of_its_transaction_time(b: Backend) {
    let s = Server::start_with(
        b,
        &["--export-batch", "5", "--export-batch-delay-ms", "300"],
    );
    let tag = unique("AsOf");
    let ids_before: Vec<String> = (0..20).map(|_| family(&s, &tag)).collect();
    let r = kickoff(&s, "/$export?_type=Patient", false);
    assert_eq!(r.status, 202, "{}", r.body);
    let status = local(&s, r.header("content-location").expect("location"));
    // While it runs: a later update, a later create.
    let last = ids_before.last().expect("one");
    let changed = json!({"resourceType": "Patient", "id": last, "name": [{"family": "Changed"}]});
    assert_eq!(
        s.req("PUT", &format!("/Patient/{last}"))
            .json(&changed.to_string())
            .status,
        200
    );
    let later = family(&s, &tag);
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let r = s.get(&status);
        if r.status == 200 {
            break r.json();
        }
        assert!(Instant::now() < deadline, "export did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let exported = lines(&s, &m, "output");
    assert!(
        !ids(&exported).contains(&later),
        "created after the transaction time"
    );
    let version = exported
        .iter()
        .find(|p| p["id"] == *last)
        .expect("exported");
    assert_eq!(
        version["name"][0]["family"],
        tag.as_str(),
        "the version of the transaction time"
    );
}

fn group_exports_follow_current_membership(b: Backend) {
    let s = shared(b);
    let tag = unique("Members");
    let [a, inactive, ended, nested] = [0, 1, 2, 3].map(|_| family(s, &tag));
    let member = |id: &str| json!({"entity": {"reference": format!("Patient/{id}")}});
    let inner = s.create_id(
        "Group",
        &json!({"resourceType": "Group", "type": "person", "actual": true, "member": [member(&nested)]}).to_string(),
    );
    let mut off = member(&inactive);
    off["inactive"] = json!(true);
    let mut past = member(&ended);
    past["period"] = json!({"start": "2019-01-01", "end": "2020-01-01"});
    let mut future = member(&a);
    future["period"] = json!({"end": "2999-01-01T00:00:00Z"});
    let outer = s.create_id(
        "Group",
        &json!({"resourceType": "Group", "type": "person", "actual": true,
            "member": [future, off, past, {"entity": {"reference": format!("Group/{inner}")}}]})
        .to_string(),
    );
    let m = export(s, &format!("/Group/{outer}/$export?_type=Patient"), false).json();
    assert_eq!(ids(&lines(s, &m, "output")), BTreeSet::from([a, nested]));
    // Groups whose members cannot be told are refused.
    let definitional = s.create_id(
        "Group",
        r#"{"resourceType":"Group","type":"person","actual":false,"characteristic":[{"code":{"text":"x"},"valueBoolean":true,"exclude":false}]}"#,
    );
    kickoff(s, &format!("/Group/{definitional}/$export"), false).outcome(400);
    let filtered = s.create_id(
        "Group",
        r#"{"resourceType":"Group","type":"person","actual":true,"modifierExtension":[{"url":"http://hl7.org/fhir/uv/bulkdata/StructureDefinition/member-filter","valueExpression":{"language":"application/x-fhir-query","expression":"Patient?gender=female"}}]}"#,
    );
    let r = s
        .req("GET", &format!("/Group/{filtered}/$export"))
        .header("Prefer", "respond-async, handling=lenient")
        .send();
    r.outcome(400);
}

fn patient_exports_include_provenance_of_their_resources(b: Backend) {
    let s = shared(b);
    let mine = family(s, &unique("Prov"));
    let other = family(s, &unique("Prov"));
    let obs = |p: &str| {
        s.create_id(
            "Observation",
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "subject": {"reference": format!("Patient/{p}")}})
            .to_string(),
        )
    };
    let provenance = |target: &str| {
        s.create_id(
            "Provenance",
            &json!({"resourceType": "Provenance", "recorded": "2026-12-01T10:00:00Z",
                "target": [{"reference": target}],
                "agent": [{"who": {"display": "lab system"}}]})
            .to_string(),
        )
    };
    let about_mine = provenance(&format!("Observation/{}", obs(&mine)));
    let about_other = provenance(&format!("Observation/{}", obs(&other)));
    let group = s.create_id(
        "Group",
        &json!({"resourceType": "Group", "type": "person", "actual": true,
            "member": [{"entity": {"reference": format!("Patient/{mine}")}}]})
        .to_string(),
    );
    let m = export(
        s,
        &format!("/Group/{group}/$export?_type=Provenance"),
        false,
    )
    .json();
    let exported = ids(&lines(s, &m, "output"));
    assert!(exported.contains(&about_mine), "{exported:?}");
    assert!(!exported.contains(&about_other), "{exported:?}");
}

both_backends!(
    patient_exports_include_provenance_of_their_resources,
    group_exports_follow_current_membership,
    unsupported_parameters_are_refused_unless_lenient,
    until_and_deleted_since,
    files_are_gzipped_when_asked,
    export_reads_resources_as_of_its_transaction_time,
);
