//! Black-box tests of search results (search.html of FHIR R4) on SQLite and
//! PostgreSQL: chains and `_has`, `_include` and `_revinclude`, `_sort`, paging links
//! (also under concurrent writes), `_total`, `_summary` and `_elements`. Resources are
//! tagged per test as in `search_api.rs`.

mod common;

use std::collections::BTreeSet;

use common::search::*;
use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

// ---------------------------------------------------------------------- chaining

fn forward_chaining_one_and_two_levels(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let org_name = unique("Acme Cardiology");
    let acme = create(s, &tag, "Organization", json!({"name": org_name}));
    let other = create(
        s,
        &tag,
        "Organization",
        json!({"name": unique("General Hospital")}),
    );
    let peter = create(
        s,
        &tag,
        "Patient",
        json!({"name": [{"family": "Chalmers", "given": ["Peter"]}],
               "managingOrganization": {"reference": format!("Organization/{acme}")}}),
    );
    let anne = create(
        s,
        &tag,
        "Patient",
        json!({"name": [{"family": "Windsor", "given": ["Anne"]}],
               "managingOrganization": {"reference": format!("Organization/{other}")}}),
    );
    let obs_peter = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let obs_anne = observation(s, &tag, &anne, "8867-4", "Heart rate");
    let q = |v: &str| ids(&search(s, &format!("/Observation?{t}&{v}")));
    assert_eq!(q("subject:Patient.name=chalmers"), vec![obs_peter.clone()]);
    assert_eq!(q("patient.name=chalmers"), vec![obs_peter.clone()]);
    assert_eq!(q("subject:Patient.family=WINDSOR"), vec![obs_anne.clone()]);
    assert_eq!(
        q("subject:Patient.name=chalmers,windsor"),
        set(&[&obs_peter, &obs_anne])
    );
    assert!(q("subject:Patient.name=nobody").is_empty());
    assert_eq!(
        q(&format!(
            "subject:Patient.organization.name={}",
            enc(&org_name)
        )),
        vec![obs_peter.clone()]
    );
    assert_eq!(
        q(&format!("patient.organization={acme}")),
        vec![obs_peter.clone()]
    );
    // A chain on Patient itself.
    assert_eq!(
        ids(&search(
            s,
            &format!("/Patient?{t}&organization.name={}", enc(&org_name))
        )),
        vec![peter]
    );
}

fn reverse_chaining_with_has(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let with_hr = patient(s, &tag, "Cardio", &["Carl"], None);
    let with_sbp = patient(s, &tag, "Pressure", &["Petra"], None);
    let without = patient(s, &tag, "Nobs", &["Nora"], None);
    observation(s, &tag, &with_hr, "8867-4", "Heart rate");
    observation(s, &tag, &with_sbp, "8480-6", "Systolic blood pressure");
    let q = |v: &str| ids(&search(s, &format!("/Patient?{t}&{v}")));
    assert_eq!(
        q("_has:Observation:patient:code=8867-4"),
        vec![with_hr.clone()]
    );
    assert_eq!(
        q("_has:Observation:subject:code=http://loinc.org|8867-4,http://loinc.org|8480-6"),
        set(&[&with_hr, &with_sbp])
    );
    assert!(q("_has:Observation:patient:code=8310-5").is_empty());
    // Combined with an ordinary parameter (AND).
    assert_eq!(
        q("_has:Observation:patient:code=8867-4,8480-6&family=pressure"),
        vec![with_sbp]
    );
    let _ = without;
}

// ------------------------------------------------------------ include/revinclude

fn include_adds_referenced_resources_in_include_mode(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let peter = patient(s, &tag, "Chalmers", &["Peter"], None);
    let anne = patient(s, &tag, "Windsor", &["Anne"], None);
    let group = create(
        s,
        &tag,
        "Group",
        json!({"type": "person", "actual": true, "name": "Ward 3"}),
    );
    let o1 = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let o2 = observation(s, &tag, &peter, "8480-6", "Systolic blood pressure");
    let o3 = create(
        s,
        &tag,
        "Observation",
        json!({"status": "final", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
               "subject": {"reference": format!("Group/{group}")}}),
    );
    let bundle = search(s, &format!("/Observation?{t}&_include=Observation:subject"));
    assert_eq!(bundle["total"], 3, "included resources are not counted");
    assert_eq!(ids(&bundle), set(&[&o1, &o2, &o3]));
    // Peter is referenced twice but included once.
    assert_eq!(
        included(&bundle),
        tset(&[("Group", &group), ("Patient", &peter)])
    );
    for e in entries_with_mode(&bundle, "include") {
        let rt = e["resource"]["resourceType"].as_str().unwrap();
        let id = e["resource"]["id"].as_str().unwrap();
        assert_eq!(e["fullUrl"], s.url(&format!("/{rt}/{id}")));
    }
    // Restricted to a target type.
    let bundle = search(
        s,
        &format!("/Observation?{t}&_include=Observation:subject:Patient"),
    );
    assert_eq!(ids(&bundle), set(&[&o1, &o2, &o3]));
    assert_eq!(included(&bundle), tset(&[("Patient", &peter)]));
    // Only matches' references are followed.
    let bundle = search(
        s,
        &format!("/Observation?{t}&code=8480-6&_include=Observation:patient"),
    );
    assert_eq!(ids(&bundle), vec![o2.clone()]);
    assert_eq!(included(&bundle), tset(&[("Patient", &peter)]));
    assert_eq!(bundle["total"], 1);
    // Includes are per page: each page carries the resources its matches refer to.
    let anne_obs = observation(s, &tag, &anne, "8310-5", "Body temperature");
    let mut page = search(
        s,
        &format!("/Observation?{t}&_sort=_lastUpdated&_count=2&_include=Observation:subject"),
    );
    assert_eq!(page["total"], 4);
    let mut pages = Vec::new();
    loop {
        pages.push((ordered_ids(&page), included(&page)));
        match link(&page, "next") {
            Some(url) => page = follow(s, &url),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            (vec![o1.clone(), o2.clone()], tset(&[("Patient", &peter)])),
            (
                vec![o3.clone(), anne_obs.clone()],
                tset(&[("Group", &group), ("Patient", &anne)])
            ),
        ]
    );
}

fn revinclude_and_include_iterate(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let org = create(s, &tag, "Organization", json!({"name": unique("Clinic")}));
    let peter = create(
        s,
        &tag,
        "Patient",
        json!({"name": [{"family": "Chalmers"}],
               "managingOrganization": {"reference": format!("Organization/{org}")}}),
    );
    let anne = patient(s, &tag, "Windsor", &["Anne"], None);
    let o1 = observation(s, &tag, &peter, "8867-4", "Heart rate");
    let o2 = observation(s, &tag, &peter, "8480-6", "Systolic blood pressure");
    let o3 = observation(s, &tag, &anne, "8867-4", "Heart rate");
    // Referrers of another type through a parameter of the same name are left out.
    let visit = create(
        s,
        &tag,
        "Encounter",
        json!({"status": "finished", "class": {"code": "AMB"},
               "subject": {"reference": format!("Patient/{peter}")}}),
    );
    let bundle = search(
        s,
        &format!("/Patient?_id={peter}&_revinclude=Observation:subject"),
    );
    assert_eq!(bundle["total"], 1);
    assert_eq!(ids(&bundle), vec![peter.clone()]);
    assert_eq!(
        included(&bundle),
        tset(&[("Observation", &o1), ("Observation", &o2)])
    );
    let bundle = search(
        s,
        &format!("/Patient?_id={peter}&_revinclude=Encounter:subject"),
    );
    assert_eq!(included(&bundle), tset(&[("Encounter", &visit)]));
    let bundle = search(s, &format!("/Patient?{t}&_revinclude=Observation:patient"));
    assert_eq!(ids(&bundle), set(&[&peter, &anne]));
    assert_eq!(bundle["total"], 2);
    assert_eq!(
        included(&bundle),
        tset(&[
            ("Observation", &o1),
            ("Observation", &o2),
            ("Observation", &o3)
        ])
    );
    // :iterate follows references of included resources too.
    let bundle = search(
        s,
        &format!(
            "/Observation?{t}&code=http://loinc.org|8480-6&_include=Observation:subject&_include:iterate=Patient:organization"
        ),
    );
    assert_eq!(ids(&bundle), vec![o2.clone()]);
    assert_eq!(
        included(&bundle),
        tset(&[("Organization", &org), ("Patient", &peter)])
    );
    // Without :iterate the organization is not reached.
    let bundle = search(
        s,
        &format!(
            "/Observation?{t}&code=http://loinc.org|8480-6&_include=Observation:subject&_include=Patient:organization"
        ),
    );
    assert_eq!(included(&bundle), tset(&[("Patient", &peter)]));
}

// -------------------------------------------------------------------------- sort

fn sort_by_one_and_several_keys(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let adams80 = patient(s, &tag, "Adams", &["A"], Some("1980-05-01"));
    let baker70 = patient(s, &tag, "Baker", &["B"], Some("1970-05-01"));
    let baker90 = patient(s, &tag, "Baker", &["C"], Some("1990-05-01"));
    let clark60 = patient(s, &tag, "Clark", &["D"], Some("1960-05-01"));
    let q = |v: &str| ordered_ids(&search(s, &format!("/Patient?{t}&_sort={v}")));
    assert_eq!(
        q("birthdate"),
        vec![
            clark60.clone(),
            baker70.clone(),
            adams80.clone(),
            baker90.clone()
        ]
    );
    assert_eq!(
        q("-birthdate"),
        vec![
            baker90.clone(),
            adams80.clone(),
            baker70.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("family,-birthdate"),
        vec![
            adams80.clone(),
            baker90.clone(),
            baker70.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("family,birthdate"),
        vec![
            adams80.clone(),
            baker70.clone(),
            baker90.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("_lastUpdated"),
        vec![
            adams80.clone(),
            baker70.clone(),
            baker90.clone(),
            clark60.clone()
        ]
    );
    assert_eq!(
        q("-_lastUpdated"),
        vec![
            clark60.clone(),
            baker90.clone(),
            baker70.clone(),
            adams80.clone()
        ]
    );
    // Sorting holds across pages.
    let page1 = search(s, &format!("/Patient?{t}&_sort=-birthdate&_count=2"));
    assert_eq!(ordered_ids(&page1), vec![baker90, adams80]);
    let page2 = follow(s, &link(&page1, "next").expect("next link"));
    assert_eq!(ordered_ids(&page2), vec![baker70, clark60]);
}

// ------------------------------------------------------------------------ paging

fn paging_returns_every_match_once_even_with_concurrent_creates(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let originals: Vec<String> = (0..7)
        .map(|i| patient(s, &tag, &format!("Page{i}"), &["P"], None))
        .collect();
    let first = search(s, &format!("/Patient?{t}&_count=3"));
    assert_eq!(first["total"], 7);
    assert_eq!(ordered_ids(&first).len(), 3);
    assert!(link(&first, "previous").is_none());
    assert!(link(&first, "first").is_none());
    // Creation order without _sort.
    assert_eq!(ordered_ids(&first), originals[..3].to_vec());
    let mut seen = ordered_ids(&first);
    let mut next = link(&first, "next");
    let mut pages = 1;
    let mut created = Vec::new();
    while let Some(url) = next {
        // New matches arrive between page fetches.
        created.push(patient(s, &tag, "Late", &["L"], None));
        let page = follow(s, &url);
        pages += 1;
        assert!(pages < 20, "too many pages");
        assert!(
            link(&page, "previous").is_some(),
            "page {pages} has no previous link"
        );
        // `first` leads back to the first page of the same search.
        let back = follow(s, &link(&page, "first").expect("first link"));
        assert_eq!(ordered_ids(&back)[0], originals[0]);
        assert!(ordered_ids(&page).len() <= 3);
        seen.extend(ordered_ids(&page));
        next = link(&page, "next");
    }
    let mut unique_seen = seen.clone();
    unique_seen.sort();
    unique_seen.dedup();
    assert_eq!(unique_seen.len(), seen.len(), "an id came twice: {seen:?}");
    for id in &originals {
        assert!(seen.contains(id), "{id} was never returned: {seen:?}");
    }
    for id in &seen {
        assert!(
            originals.contains(id) || created.contains(id),
            "{id} is not a match"
        );
    }
    assert!(pages >= 3);
    // _count=0: the total only.
    let count_only = search(s, &format!("/Patient?{t}&_count=0"));
    assert_eq!(
        count_only["total"].as_u64().unwrap() as usize,
        7 + created.len()
    );
    assert!(count_only["entry"].as_array().is_none_or(|e| e.is_empty()));
}

fn paging_links_keep_the_criteria_and_go_both_ways(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let linked: Vec<String> = (0..5)
        .map(|i| patient(s, &tag, "Linked", &[&format!("L{i}")], None))
        .collect();
    let _others: Vec<String> = (0..3)
        .map(|_| patient(s, &tag, "Other", &["O"], None))
        .collect();
    // A POST search pages through GET links that keep the criteria.
    let body = format!("{t}&family=linked&_count=2");
    let r = s
        .req("POST", "/Patient/_search")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json(&body);
    let page1 = check_searchset(&r, &body);
    assert_eq!(page1["total"], 5);
    assert_eq!(ordered_ids(&page1), linked[..2].to_vec());
    let page2 = follow(s, &link(&page1, "next").expect("next link"));
    assert_eq!(ordered_ids(&page2), linked[2..4].to_vec());
    assert_eq!(page2["total"], 5);
    let page3 = follow(s, &link(&page2, "next").expect("next link"));
    assert_eq!(ordered_ids(&page3), linked[4..].to_vec());
    assert!(link(&page3, "next").is_none());
    // previous goes back.
    let back = follow(s, &link(&page3, "previous").expect("previous link"));
    assert_eq!(ordered_ids(&back), linked[2..4].to_vec());
    let back = follow(s, &link(&back, "previous").expect("previous link"));
    assert_eq!(ordered_ids(&back), linked[..2].to_vec());
    // The self link of a page reproduces it.
    let again = follow(s, &link(&page2, "self").expect("self link"));
    assert_eq!(ordered_ids(&again), linked[2..4].to_vec());
}

fn paging_is_not_disturbed_by_updates_between_pages(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let all: Vec<String> = (0..6)
        .map(|i| patient(s, &tag, "Stable", &[&format!("S{i}")], None))
        .collect();
    let page1 = search(s, &format!("/Patient?{t}&_count=2"));
    assert_eq!(ordered_ids(&page1), all[..2].to_vec());
    // Updating a resource of page 1 does not move it: the default order is creation order.
    for id in &all[..2] {
        let mut p = s.get(&format!("/Patient/{id}")).json();
        p["active"] = json!(true);
        let r = s.req("PUT", &format!("/Patient/{id}")).json(&p.to_string());
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = ordered_ids(&page1);
    let mut next = link(&page1, "next");
    while let Some(url) = next {
        let page = follow(s, &url);
        seen.extend(ordered_ids(&page));
        next = link(&page, "next");
    }
    assert_eq!(seen, all);
}

fn default_page_size_is_at_least_twenty(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let all: BTreeSet<String> = (0..22)
        .map(|i| {
            create(
                s,
                &tag,
                "Basic",
                json!({"code": {"text": format!("item {i}")}}),
            )
        })
        .collect();
    let first = search(s, &format!("/Basic?{t}"));
    assert_eq!(first["total"], 22);
    let n = ordered_ids(&first).len();
    assert!(n >= 20, "default page size {n} < 20");
    let mut seen: Vec<String> = ordered_ids(&first);
    if n < 22 {
        let second = follow(s, &link(&first, "next").expect("next link"));
        seen.extend(ordered_ids(&second));
    }
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);
    assert_eq!(seen.len(), 22);
}

// ------------------------------------------------- _total / _summary / _elements

fn total_and_summary_count(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    for i in 0..3 {
        patient(s, &tag, &format!("Count{i}"), &["C"], None);
    }
    let counted = search(s, &format!("/Patient?{t}&_summary=count"));
    assert_eq!(counted["total"], 3);
    assert!(counted["entry"].as_array().is_none_or(|e| e.is_empty()));
    let no_total = search(s, &format!("/Patient?{t}&_total=none"));
    assert!(no_total.get("total").is_none(), "{no_total}");
    assert_eq!(ids(&no_total).len(), 3);
    let accurate = search(s, &format!("/Patient?{t}&_total=accurate&_count=1"));
    assert_eq!(accurate["total"], 3);
    assert_eq!(ids(&accurate).len(), 1);
}

/// Without `_total=accurate`, matches are counted exactly up to `--total-threshold`;
/// above it the total is PostgreSQL's estimate (never below what was counted) or, on
/// SQLite, left out. `_total=accurate` and `_summary=count` always count, and paging
/// does not depend on the total. Alike for a search that walks its token's entries
/// (`_tag`) and for one the generic query answers (names), whose first page reads its
/// matches as far as the threshold in the same statement.
fn totals_are_exact_up_to_the_threshold(b: Backend) {
    let s = Server::start_with(b, &["--total-threshold", "5"]);
    let tag = new_tag();
    let t = tag_param(&tag);
    let family = unique("Few").replace('-', "");
    let searches = [
        format!("/Patient?{t}"),
        format!("/Patient?family={family}&given=F"),
    ];
    let add = |range: std::ops::Range<usize>| {
        for i in range {
            patient(&s, &tag, &format!("{family}{i}"), &["F"], None);
        }
    };
    add(0..4);
    // Another Patient of the family that the names leave out.
    patient(&s, &new_tag(), &format!("{family}X"), &["G"], None);
    // Below the threshold, and at it.
    for n in [4, 5] {
        if n == 5 {
            add(4..5);
        }
        for query in &searches {
            for mode in ["", "&_total=estimate"] {
                let few = search(&s, &format!("{query}&_count=2{mode}"));
                assert_eq!(few["total"], n, "{query}{mode}: {few}");
            }
        }
    }
    add(5..9);
    for query in &searches {
        for mode in ["", "&_total=estimate"] {
            let many = search(&s, &format!("{query}&_count=2{mode}"));
            match b {
                Backend::Sqlite => assert!(many.get("total").is_none(), "{query}: {many}"),
                Backend::Postgres => {
                    let n = many["total"].as_i64().unwrap_or_default();
                    assert!(n >= 6, "an estimate above the threshold: {query}: {many}");
                }
            }
        }
        let accurate = search(&s, &format!("{query}&_count=2&_total=accurate"));
        assert_eq!(accurate["total"], 9, "{query}");
        let counted = search(&s, &format!("{query}&_summary=count"));
        assert_eq!(counted["total"], 9, "{query}");
        let mut page = search(&s, &format!("{query}&_count=2"));
        let mut seen = ids(&page);
        while let Some(next) = link(&page, "next") {
            page = follow(&s, &next);
            seen.extend(ids(&page));
        }
        let distinct: std::collections::HashSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), 9, "{query}: every match once: {seen:?}");
        assert_eq!(distinct.len(), 9, "{query}: every match once: {seen:?}");
    }
}

/// Follows `relation` links from `bundle` to the end; the pages' ids in link order.
fn pages_along(s: &Server, bundle: Value, relation: &str) -> Vec<Vec<String>> {
    let mut pages = vec![ordered_ids(&bundle)];
    let mut page = bundle;
    while let Some(url) = link(&page, relation) {
        page = follow(s, &url);
        pages.push(ordered_ids(&page));
        assert!(pages.len() < 50, "paging does not end");
    }
    pages
}

/// A page that walks one token value's index entries in `rid` order (fhir-store
/// `search/walk.rs`) gives the pages a search always gave: creation order, each
/// resource once even with the value twice, deleted ones left out, updated ones in
/// their place, the other criteria applied, and the same pages read backwards.
fn walked_token_pages_in_order_forwards_and_backwards(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let code = unique("walk");
    let coding = json!({"system": "http://example.org/codes", "code": code});
    let body = |i: usize| {
        let codings = if i == 2 {
            json!([coding, coding])
        } else {
            json!([coding])
        };
        let status = if i.is_multiple_of(3) {
            "preliminary"
        } else {
            "final"
        };
        json!({"status": status, "code": {"coding": codings}})
    };
    let ids: Vec<String> = (0..9)
        .map(|i| create(s, &tag, "Observation", body(i)))
        .collect();
    let gone = s.req("DELETE", &format!("/Observation/{}", ids[4])).send();
    assert!(gone.status == 200 || gone.status == 204, "{}", gone.body);
    let mut changed = body(5);
    changed["resourceType"] = json!("Observation");
    changed["id"] = json!(ids[5]);
    changed["meta"] = json!({"tag": [{"system": TAG_SYSTEM, "code": tag}]});
    changed["issued"] = json!("2021-01-01T00:00:00Z");
    let r = s
        .req("PUT", &format!("/Observation/{}", ids[5]))
        .json(&changed.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let live: Vec<usize> = (0..9).filter(|i| *i != 4).collect();
    for (filter, finals_only) in [("", false), ("&status=final", true)] {
        let expected: Vec<String> = live
            .iter()
            .filter(|i| !finals_only || **i % 3 != 0)
            .map(|i| ids[*i].clone())
            .collect();
        let q = format!("/Observation?code=http://example.org/codes|{code}{filter}&{t}&_count=2&_total=accurate");
        let first = search(s, &q);
        assert_eq!(first["total"], expected.len(), "{q}");
        let forwards = pages_along(s, first, "next");
        assert_eq!(forwards.concat(), expected, "{q}");
        let mut last = search(s, &q);
        while let Some(url) = link(&last, "next") {
            last = follow(s, &url);
        }
        let mut backwards = pages_along(s, last, "previous");
        backwards.reverse();
        assert_eq!(backwards, forwards, "{q}");
    }
    // Counted from the index alone (the code is the only criterion): the deleted one is
    // not counted, the one with the code twice once.
    for total in ["_total=accurate", "_summary=count", "_count=1"] {
        let q = format!("/Observation?code=http://example.org/codes|{code}&{total}");
        assert_eq!(search(s, &q)["total"], 8, "{q}");
    }
}

fn summary_true_and_elements(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let id = create(
        s,
        &tag,
        "Patient",
        json!({"text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter Chalmers</div>"},
               "name": [{"family": "Chalmers", "given": ["Peter"]}],
               "gender": "male", "birthDate": "1974-12-25",
               "contact": [{"name": {"family": "Chalmers", "given": ["Ellen"]}}]}),
    );
    let summary = search(s, &format!("/Patient?{t}&_summary=true"));
    assert_eq!(ids(&summary), vec![id.clone()]);
    let r = &summary["entry"][0]["resource"];
    assert_eq!(r["name"][0]["family"], "Chalmers");
    assert_eq!(r["birthDate"], "1974-12-25");
    assert!(r.get("contact").is_none(), "{r}");
    assert!(r.get("text").is_none(), "{r}");
    let tags = r["meta"]["tag"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{r}");
    let elements = search(s, &format!("/Patient?{t}&_elements=name"));
    assert_eq!(ids(&elements), vec![id.clone()]);
    let r = &elements["entry"][0]["resource"];
    assert_eq!(r["resourceType"], "Patient");
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["name"][0]["given"][0], "Peter");
    for absent in ["birthDate", "gender", "contact", "text"] {
        assert!(r.get(absent).is_none(), "{absent} in {r}");
    }
    let tags = r["meta"]["tag"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{r}");
}

/// A searchset carries each resource as stored, as a read serves it (member order and
/// decimals as written: 1.50 stays 1.50), in match and include entries alike; `_pretty`
/// and `_elements` answer the same resources, reformatted and reduced.
fn entries_carry_resources_as_stored(b: Backend) {
    let s = shared(b);
    let tag = new_tag();
    let t = tag_param(&tag);
    let patient = create(
        s,
        &tag,
        "Patient",
        json!({"gender": "other", "active": true}),
    );
    // Written as text: `json!` would make 1.50 a float.
    let body = format!(
        r#"{{"resourceType":"Observation","meta":{{"tag":[{{"system":"{TAG_SYSTEM}","code":"{tag}"}}]}},
            "status":"final","code":{{"text":"weight"}},"valueQuantity":{{"value":1.50,"unit":"kg"}},
            "subject":{{"reference":"Patient/{patient}"}}}}"#
    );
    let obs = s.create_id("Observation", &body);
    let read = |path: String| {
        let r = s.get(&path);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    let (obs_text, patient_text) = (
        read(format!("/Observation/{obs}")),
        read(format!("/Patient/{patient}")),
    );
    assert!(obs_text.contains("1.50"), "{obs_text}");
    let path = format!("/Observation?{t}&_include=Observation:subject");
    let r = s.get(&path);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(&obs_text), "{}", r.body);
    assert!(r.body.contains(&patient_text), "{}", r.body);
    let bundle = search(s, &path);
    assert_eq!(ids(&bundle), std::slice::from_ref(&obs));
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    let modes: Vec<&str> = entries
        .iter()
        .map(|e| e["search"]["mode"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(modes, ["match", "include"]);
    assert!(entries[0]["fullUrl"]
        .as_str()
        .is_some_and(|u| u.ends_with(&format!("/Observation/{obs}"))));
    let pretty = search(s, &format!("{path}&_pretty=true"));
    assert_eq!(pretty["entry"], bundle["entry"]);
    let reduced = search(s, &format!("/Observation?{t}&_elements=status"));
    assert_eq!(reduced["entry"][0]["resource"]["status"], "final");
    assert!(reduced["entry"][0]["resource"]
        .get("valueQuantity")
        .is_none());
}

both_backends!(
    entries_carry_resources_as_stored,
    totals_are_exact_up_to_the_threshold,
    walked_token_pages_in_order_forwards_and_backwards,
    forward_chaining_one_and_two_levels,
    reverse_chaining_with_has,
    include_adds_referenced_resources_in_include_mode,
    revinclude_and_include_iterate,
    sort_by_one_and_several_keys,
    paging_returns_every_match_once_even_with_concurrent_creates,
    paging_links_keep_the_criteria_and_go_both_ways,
    paging_is_not_disturbed_by_updates_between_pages,
    default_page_size_is_at_least_twenty,
    total_and_summary_count,
    summary_true_and_elements,
);
