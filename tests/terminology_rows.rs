//! Black-box tests of large stored code systems (1,000 concepts or more), which the
//! store keeps as rows beside the resource, on SQLite and PostgreSQL: `$expand` pages
//! from the rows exactly as the same value set expands in memory (every `filter`,
//! `activeOnly`, `offset` and `count` tried against a value set the store cannot page,
//! which is expanded whole), `$lookup`, `$validate-code` and `$subsumes` answer from
//! the concepts they name and their neighbours, and the rows follow updates and
//! deletions of the code system.

mod common;

use common::{parameter as get, Backend, Server};
use std::sync::OnceLock;

use serde_json::{json, Value};

/// One server per backend that reads code systems of 1,000 concepts or more from
/// their rows (the default is 20,000).
fn server(b: Backend) -> &'static Server {
    static SQLITE: OnceLock<Server> = OnceLock::new();
    static POSTGRES: OnceLock<Server> = OnceLock::new();
    let start = || Server::start_with(b, &["--terminology-rows-from", "1000"]);
    match b {
        Backend::Sqlite => SQLITE.get_or_init(start),
        Backend::Postgres => POSTGRES.get_or_init(start),
    }
}

/// Groups of children under each root.
const GROUPS: usize = 10;
const CHILDREN: usize = 150;

/// A code system of 10 roots `r0`…`r9` ("Root group N"), each with 150 nested children
/// `rN-M` ("Finding M of group N"; every fiftieth retired); `r0-0` is "Heart attack"
/// with a German designation and a definition, and `r1-0` is also under `r0-0` (a
/// `parent` property).
fn code_system(url: &str, first_display: &str) -> Value {
    let roots: Vec<Value> = (0..GROUPS)
        .map(|g| {
            let kids: Vec<Value> = (0..CHILDREN)
                .map(|k| {
                    let mut c = json!({"code": format!("r{g}-{k}"),
                        "display": format!("Finding {k} of group {g}")});
                    if k % 50 == 49 {
                        c["property"] = json!([{"code": "status", "valueCode": "retired"}]);
                    }
                    c
                })
                .collect();
            json!({"code": format!("r{g}"), "display": format!("Root group {g}"), "concept": kids})
        })
        .collect();
    let mut cs = json!({"resourceType": "CodeSystem", "url": url, "version": "3",
        "name": "Large", "status": "active", "content": "complete", "caseSensitive": true,
        "property": [{"code": "status", "type": "code"}, {"code": "parent", "type": "code"}],
        "concept": roots});
    cs["concept"][0]["concept"][0] = json!({"code": "r0-0", "display": first_display,
        "definition": "Death of heart muscle",
        "designation": [{"language": "de", "value": "Herzinfarkt"}]});
    cs["concept"][1]["concept"][0]["property"] = json!([{"code": "parent", "valueCode": "r0-0"}]);
    cs
}

struct Fixture {
    cs: String,
    /// A value set of the whole system (paged by the store).
    rows_vs: String,
    rows_vs_id: String,
    /// The same codes with an exclusion of a code the system does not have (expanded
    /// in memory).
    memory_vs: String,
}

fn fixture(s: &Server) -> Fixture {
    let u = common::unique("rows");
    let cs = format!("http://example.org/cs/{u}");
    s.create_id("CodeSystem", &code_system(&cs, "Heart attack").to_string());
    let value_set = |url: &str, compose: Value| {
        json!({"resourceType": "ValueSet", "url": url, "status": "active", "compose": compose})
            .to_string()
    };
    let rows_vs = format!("http://example.org/vs/{u}-rows");
    let rows_vs_id = s.create_id(
        "ValueSet",
        &value_set(&rows_vs, json!({"include": [{"system": cs}]})),
    );
    let memory_vs = format!("http://example.org/vs/{u}-memory");
    s.create_id(
        "ValueSet",
        &value_set(&memory_vs, in_memory(&cs, json!([{"system": cs}]))),
    );
    Fixture {
        cs,
        rows_vs,
        rows_vs_id,
        memory_vs,
    }
}

/// A compose of `include` that the store cannot page, so its value set is expanded in
/// memory: it excludes (by a filter) a code the system does not have.
fn in_memory(cs: &str, include: Value) -> Value {
    json!({"include": include, "exclude": [{"system": cs,
        "filter": [{"property": "concept", "op": "=", "value": "not-there"}]}]})
}

/// Value sets of `include` read from rows and expanded in memory (their URLs).
fn pair(s: &Server, cs: &str, include: Value) -> (String, String) {
    let u = common::unique("pair");
    let (rows, memory) = (
        format!("http://example.org/vs/{u}-rows"),
        format!("http://example.org/vs/{u}-memory"),
    );
    for (url, compose) in [
        (&rows, json!({"include": include})),
        (&memory, in_memory(cs, include.clone())),
    ] {
        let vs = json!({"resourceType": "ValueSet", "url": url, "status": "active",
            "compose": compose});
        s.create_id("ValueSet", &vs.to_string());
    }
    (rows, memory)
}

/// The expansion's total and codes (with their flags and displays), and its
/// parameters less `used-codesystem`'s value set-specific ones.
fn expansion(s: &Server, vs: &str, query: &str) -> (Value, Value, Vec<Value>) {
    let r = s.get(&format!("/ValueSet/$expand?url={vs}&{query}"));
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    let v = r.json();
    let e = &v["expansion"];
    let params = e["parameter"].as_array().cloned().unwrap_or_default();
    (e["total"].clone(), e["contains"].clone(), params)
}

fn expansions_page_from_rows_as_in_memory(b: Backend) {
    let s = server(b);
    let f = fixture(s);
    let queries = [
        "",
        "count=20",
        "offset=1490&count=30",
        "offset=5000&count=10",
        "filter=heart",
        "filter=HEART%20att",
        "filter=group%203&count=7&offset=3",
        "filter=r2-1",
        "filter=finding%2049",
        "filter=-",
        "filter=zzz",
        "activeOnly=true&count=100&offset=140",
        "activeOnly=true&filter=finding%2049",
        "count=3&includeDesignations=true&includeDefinition=true&displayLanguage=de",
        "count=0",
        "offset=150&count=5&property=parent&property=child",
        "filter=finding&offset=9223372036854775808&count=10",
    ];
    let branch = |op: &str, code: &str| json!([{"system": f.cs, "filter": [{"property": "concept", "op": op, "value": code}]}]);
    let listed = json!([{"system": f.cs, "concept": [{"code": "r5-5"}, {"code": "r0-0"},
        {"code": "nope", "display": "Not in the system"}, {"code": "r1-49"}]},
        {"system": "http://hl7.org/fhir/administrative-gender", "concept": [{"code": "male"}]}]);
    let (branch_vs, _) = pair(s, &f.cs, branch("is-a", "r3"));
    let listed_and_imported = json!([{"system": f.cs, "concept": [{"code": "r0-0"}]},
        {"valueSet": [branch_vs]}]);
    let pairs = [
        (f.rows_vs.clone(), f.memory_vs.clone()),
        pair(s, &f.cs, branch("is-a", "r3")),
        pair(s, &f.cs, branch("descendent-of", "r3")),
        pair(s, &f.cs, branch("is-a", "r0-0")),
        pair(s, &f.cs, branch("is-a", "nope")),
        pair(s, &f.cs, listed),
        pair(s, &f.cs, listed_and_imported),
    ];
    for (rows_vs, memory_vs) in &pairs {
        for q in queries {
            let rows = expansion(s, rows_vs, q);
            let memory = expansion(s, memory_vs, q);
            assert_eq!(rows, memory, "{rows_vs}: {q}");
        }
    }
    // What the branches and the list hold.
    assert_eq!(expansion(s, &pairs[1].0, "").0, json!(CHILDREN + 1));
    assert_eq!(expansion(s, &pairs[2].0, "").0, json!(CHILDREN));
    let (total, contains, _) = expansion(s, &pairs[3].0, "");
    assert_eq!(total, json!(2), "r0-0 and r1-0 under it: {contains}");
    assert_eq!(expansion(s, &pairs[4].0, "").0, json!(0));
    let (total, contains, _) = expansion(s, &pairs[5].0, "");
    assert_eq!(total, json!(5));
    assert_eq!(contains[0]["display"], "Finding 5 of group 5");
    assert_eq!(contains[3]["inactive"], true);
    assert_eq!(expansion(s, &pairs[6].0, "").0, json!(1 + CHILDREN + 1));
    let (total, contains, _) = expansion(s, &f.rows_vs, "");
    assert_eq!(total, json!(GROUPS * (CHILDREN + 1)));
    assert_eq!(contains[0]["code"], "r0");
    assert_eq!(contains[1]["code"], "r0-0");
    assert_eq!(contains[50]["inactive"], true);
    let (total, contains, _) = expansion(s, &f.rows_vs, "filter=heart&displayLanguage=de");
    assert_eq!(total, json!(1));
    assert_eq!(contains[0]["display"], "Herzinfarkt");
    let (total, contains, _) = expansion(s, &f.rows_vs, "activeOnly=true&count=1&offset=49");
    assert_eq!(total, json!(GROUPS * (CHILDREN + 1 - 3)));
    assert_eq!(contains[0]["code"], "r0-48");
    // Instance level, and a page past the end.
    let r = s.get(&format!(
        "/ValueSet/{}/$expand?offset=1500&count=20",
        f.rows_vs_id
    ));
    let v = r.json();
    let codes: Vec<&str> = v["expansion"]["contains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "r9-140", "r9-141", "r9-142", "r9-143", "r9-144", "r9-145", "r9-146", "r9-147",
            "r9-148", "r9-149"
        ]
    );
    // Bad paging is refused as in memory.
    for bad in ["offset=-1", "offset=99999999999999999999&filter=a"] {
        let r = s.get(&format!("/ValueSet/$expand?url={}&{bad}", f.rows_vs));
        assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "offset");
    }
    // Every word of a filter is a condition: a filter of a hundred words is refused.
    let many = vec!["w"; 100].join("%20");
    let r = s.get(&format!(
        "/ValueSet/$expand?url={}&filter={many}",
        f.rows_vs
    ));
    assert_eq!(r.outcome(400)["issue"][0]["expression"][0], "filter");
}

fn lookups_and_checks_read_the_codes_named(b: Backend) {
    let s = server(b);
    let f = fixture(s);
    let lookup = |code: &str| {
        let r = s.get(&format!("/CodeSystem/$lookup?system={}&code={code}", f.cs));
        assert_eq!(r.status, 200, "{code}: {}", r.body);
        r.json()
    };
    let properties = |v: &Value, name: &str| -> Vec<String> {
        v["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "property")
            .filter(|p| p["part"][0]["valueCode"] == name)
            .map(|p| p["part"][1]["valueCode"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let heart = lookup("r0-0");
    assert_eq!(get(&heart, "display")["valueString"], "Heart attack");
    assert_eq!(get(&heart, "version")["valueString"], "3");
    let definition = heart["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["part"][0]["valueCode"] == "definition")
        .map(|p| p["part"][1]["valueString"].clone());
    assert_eq!(definition, Some(json!("Death of heart muscle")), "{heart}");
    assert_eq!(get(&heart, "designation")["part"][0]["valueCode"], "de");
    assert_eq!(properties(&heart, "parent"), ["r0"]);
    assert_eq!(properties(&heart, "child"), ["r1-0"]);
    let mut parents = properties(&lookup("r1-0"), "parent");
    parents.sort();
    assert_eq!(parents, ["r0-0", "r1"]);
    assert_eq!(properties(&lookup("r4"), "child").len(), CHILDREN);
    let r = s.get(&format!("/CodeSystem/$lookup?system={}&code=nope", f.cs));
    r.outcome(404);

    let check = |query: &str| {
        s.get(&format!("/CodeSystem/$validate-code?url={}&{query}", f.cs))
            .json()
    };
    assert_eq!(get(&check("code=r3-7"), "result")["valueBoolean"], true);
    assert_eq!(get(&check("code=R3-7"), "result")["valueBoolean"], false);
    let wrong = check("code=r3-7&display=Heart");
    assert_eq!(get(&wrong, "result")["valueBoolean"], false);
    let message = get(&wrong, "message")["valueString"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(message.contains("Finding 7 of group 3"), "{message}");
    let unknown = check("code=nope");
    assert_eq!(get(&unknown, "result")["valueBoolean"], false);
    assert!(get(&unknown, "message")["valueString"]
        .as_str()
        .unwrap_or("")
        .contains("Unknown code 'nope'"));

    // A value set of one group (`is-a`) checks codes through their ancestors.
    let group = format!("{}-group2", f.rows_vs);
    let vs = json!({"resourceType": "ValueSet", "url": group, "status": "active",
        "compose": {"include": [{"system": f.cs,
            "filter": [{"property": "concept", "op": "is-a", "value": "r2"}]}]}});
    s.create_id("ValueSet", &vs.to_string());
    let in_group = |code: &str| {
        let r = s.get(&format!(
            "/ValueSet/$validate-code?url={group}&system={}&code={code}",
            f.cs
        ));
        get(&r.json(), "result")["valueBoolean"].clone()
    };
    assert_eq!(in_group("r2-7"), true);
    assert_eq!(in_group("r2"), true);
    assert_eq!(in_group("r3-7"), false);
    let whole = |code: &str| {
        let r = s.get(&format!(
            "/ValueSet/$validate-code?url={}&system={}&code={code}",
            f.rows_vs, f.cs
        ));
        get(&r.json(), "result")["valueBoolean"].clone()
    };
    assert_eq!(whole("r9-149"), true);
    assert_eq!(whole("r10"), false);
    let coding = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": f.rows_vs},
        {"name": "codeableConcept", "valueCodeableConcept": {"coding": [
            {"system": "http://example.org/other", "code": "x"},
            {"system": f.cs, "code": "r5-5", "display": "Finding 5 of group 5"}]}}]});
    let r = s
        .req("POST", "/ValueSet/$validate-code")
        .json(&coding.to_string());
    assert_eq!(get(&r.json(), "result")["valueBoolean"], true, "{}", r.body);

    let subsumes = |a: &str, b: &str| {
        let r = s.get(&format!(
            "/CodeSystem/$subsumes?system={}&codeA={a}&codeB={b}",
            f.cs
        ));
        get(&r.json(), "outcome")["valueCode"].clone()
    };
    assert_eq!(subsumes("r0", "r0-3"), "subsumes");
    assert_eq!(subsumes("r1-0", "r0"), "subsumed-by");
    assert_eq!(subsumes("r0-0", "r1-0"), "subsumes");
    assert_eq!(subsumes("r1", "r0-0"), "not-subsumed");
    assert_eq!(subsumes("r4-4", "r4-4"), "equivalent");
}

fn rows_follow_updates_and_deletes(b: Backend) {
    let s = server(b);
    let u = common::unique("rows-change");
    let cs = format!("http://example.org/cs/{u}");
    let id = s.create_id("CodeSystem", &code_system(&cs, "Heart attack").to_string());
    let vs = format!("http://example.org/vs/{u}");
    let value_set = json!({"resourceType": "ValueSet", "url": vs, "status": "active",
        "compose": {"include": [{"system": cs}]}});
    s.create_id("ValueSet", &value_set.to_string());
    let display = |code: &str| {
        let r = s.get(&format!("/CodeSystem/$lookup?system={cs}&code={code}"));
        match r.status {
            200 => (200, get(&r.json(), "display")["valueString"].clone()),
            status => (status, Value::Null),
        }
    };
    let filtered = |text: &str| expansion(s, &vs, &format!("filter={text}")).0;
    assert_eq!(display("r0-0"), (200, json!("Heart attack")));
    let mut updated = code_system(&cs, "Myocardial infarction");
    updated["id"] = json!(id);
    let r = s
        .req("PUT", &format!("/CodeSystem/{id}"))
        .json(&updated.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(display("r0-0"), (200, json!("Myocardial infarction")));
    assert_eq!(filtered("myocard"), json!(1));
    assert_eq!(filtered("heart"), json!(0));
    // Smaller than the rows are kept for: read whole again.
    let mut small = updated.clone();
    small["concept"] = json!([{"code": "only", "display": "The only one"}]);
    let r = s
        .req("PUT", &format!("/CodeSystem/{id}"))
        .json(&small.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(display("only"), (200, json!("The only one")));
    assert_eq!(display("r0-0").0, 404);
    assert_eq!(expansion(s, &vs, "").0, json!(1));
    // Large again, then deleted: the code system is gone.
    let r = s
        .req("PUT", &format!("/CodeSystem/{id}"))
        .json(&updated.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(filtered("myocard"), json!(1));
    let r = s.req("DELETE", &format!("/CodeSystem/{id}")).send();
    assert!(r.status < 300, "{}", r.body);
    assert_eq!(display("r0-0").0, 404);
}

/// Validation reads the codes it checks from the rows: an unknown code is an error, a
/// wrong display a warning, by `$validate` and on writes.
fn validation_reads_the_codes_checked(b: Backend) {
    let s = server(b);
    let f = fixture(s);
    let observation = |code: &str, display: &str| {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": f.cs, "code": code, "display": display}]}})
        .to_string()
    };
    let issues = |body: String| {
        let r = s.req("POST", "/Observation/$validate").json(&body);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["issue"].to_string()
    };
    let unknown = issues(observation("r3-777", "Zed"));
    assert!(
        unknown.contains(&format!(
            "Unknown code 'r3-777' in the CodeSystem '{}'",
            f.cs
        )),
        "{unknown}"
    );
    let wrong = issues(observation("r3-7", "Heart"));
    assert!(
        wrong.contains("Valid display is 'Finding 7 of group 3'"),
        "{wrong}"
    );
    assert!(!wrong.contains("\"error\""), "{wrong}");
    let right = issues(observation("r9-149", "Finding 149 of group 9"));
    assert!(!right.contains("r9-149"), "{right}");
    let r = s.create("Observation", &observation("r3-777", "Zed"));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s.create("Observation", &observation("r0-0", "Heart attack"));
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Search's `:below`, `:above`, `:in` and `:not-in` over a code system kept as rows
/// find what they find over one read whole.
fn search_follows_the_rows(b: Backend) {
    let s = server(b);
    let f = fixture(s);
    let mut ids = std::collections::HashMap::new();
    for code in ["r0-0", "r1-0", "r3-7", "r4-4"] {
        let o = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": f.cs, "code": code}]}});
        ids.insert(code, s.create_id("Observation", &o.to_string()));
    }
    let found = |query: &str| {
        let r = s.get(&format!("/Observation?{query}&_count=50"));
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let v = r.json();
        let mut got: Vec<String> = v["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        got
    };
    let want = |codes: &[&str]| {
        let mut v: Vec<String> = codes.iter().map(|c| ids[c].clone()).collect();
        v.sort();
        v
    };
    let cs = &f.cs;
    assert_eq!(
        found(&format!("code:below={cs}|r0-0")),
        want(&["r0-0", "r1-0"])
    );
    assert_eq!(
        found(&format!("code:below={cs}|r0")),
        want(&["r0-0", "r1-0"])
    );
    assert_eq!(found(&format!("code:below={cs}|r3")), want(&["r3-7"]));
    assert_eq!(
        found(&format!("code:above={cs}|r1-0")),
        want(&["r0-0", "r1-0"])
    );
    assert_eq!(found(&format!("code:above={cs}|r4-4")), want(&["r4-4"]));
    let r = s.get(&format!("/Observation?code:below={cs}|nope"));
    assert_eq!(r.status / 100, 4, "{}", r.body);
    let branch =
        json!([{"system": cs, "filter": [{"property": "concept", "op": "is-a", "value": "r3"}]}]);
    let (rows_vs, memory_vs) = pair(s, cs, branch);
    assert_eq!(found(&format!("code:in={rows_vs}")), want(&["r3-7"]));
    assert_eq!(found(&format!("code:in={memory_vs}")), want(&["r3-7"]));
    let listed = json!([{"system": cs, "concept": [{"code": "r4-4"}, {"code": "r0-0"}]}]);
    let (rows_vs, _) = pair(s, cs, listed);
    assert_eq!(
        found(&format!("code:in={rows_vs}")),
        want(&["r0-0", "r4-4"])
    );
    assert_eq!(found(&format!("code:in={}", f.rows_vs)).len(), 4);
}

/// Of several versions of one URL, the one written last is used without a version,
/// whether or not it is kept as rows; a version asked for is used.
fn the_version_written_last_is_read(b: Backend) {
    let s = server(b);
    let cs = format!("http://example.org/cs/{}", common::unique("rows-versions"));
    let mut large = code_system(&cs, "Heart attack");
    large["version"] = json!("1");
    s.create_id("CodeSystem", &large.to_string());
    let small = json!({"resourceType": "CodeSystem", "url": cs, "version": "2",
        "status": "active", "content": "complete",
        "concept": [{"code": "only", "display": "The only one"}]});
    s.create_id("CodeSystem", &small.to_string());
    let lookup = |query: &str| {
        let r = s.get(&format!("/CodeSystem/$lookup?system={cs}&{query}"));
        match r.status {
            200 => (200, get(&r.json(), "display")["valueString"].clone()),
            status => (status, Value::Null),
        }
    };
    assert_eq!(lookup("code=only"), (200, json!("The only one")));
    assert_eq!(lookup("code=r0-0").0, 404);
    assert_eq!(lookup("code=r0-0&version=1"), (200, json!("Heart attack")));
    assert_eq!(lookup("code=only&version=1").0, 404);
    // Written again, the large version is the latest.
    large["id"] = json!(s.create_id("CodeSystem", &large.to_string()));
    assert_eq!(lookup("code=r0-0"), (200, json!("Heart attack")));
}

both_backends!(
    the_version_written_last_is_read,
    search_follows_the_rows,
    validation_reads_the_codes_checked,
    expansions_page_from_rows_as_in_memory,
    lookups_and_checks_read_the_codes_named,
    rows_follow_updates_and_deletes,
);
