//! Parsing of search queries: every parameter type, prefixes, modifiers, escapes,
//! chains, `_has`, result parameters, and the error cases.

use fhir_search::*;

fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn ok(rt: &str, q: &[(&str, &str)]) -> SearchQuery {
    parse(SearchRegistry::r4(), Some(rt), &pairs(q), true).unwrap_or_else(|e| panic!("{q:?}: {e}"))
}

fn err(rt: &str, q: &[(&str, &str)]) -> SearchError {
    match parse(SearchRegistry::r4(), Some(rt), &pairs(q), true) {
        Ok(r) => panic!("{q:?} parsed: {r:?}"),
        Err(e) => e,
    }
}

fn param(q: &SearchQuery, i: usize) -> &ParamClause {
    match &q.clauses[i] {
        Clause::Param(p) => p,
        other => panic!("not a param clause: {other:?}"),
    }
}

#[test]
fn date_values_with_prefixes_and_ranges() {
    let q = ok(
        "Patient",
        &[
            ("birthdate", "ge2010-01,lt2011"),
            ("_lastUpdated", "gt2020-05-06T10:00:00.123+02:00"),
        ],
    );
    let c = param(&q, 0);
    assert_eq!(c.param.code, "birthdate");
    assert_eq!(c.param.kind, SearchParamType::Date);
    assert_eq!(c.values.len(), 2);
    let SearchValue::Date {
        prefix,
        range,
        precision,
        text,
    } = &c.values[0]
    else {
        panic!()
    };
    assert_eq!(
        (*prefix, *precision, text.as_str()),
        (Prefix::Ge, DatePrecision::Month, "2010-01")
    );
    assert_eq!(range.start, 1_262_304_000_000); // 2010-01-01T00:00Z
    assert_eq!(range.end, 1_264_982_400_000); // 2010-02-01T00:00Z
    let SearchValue::Date { prefix, range, .. } = &c.values[1] else {
        panic!()
    };
    assert_eq!(*prefix, Prefix::Lt);
    assert_eq!(range.end - range.start, 365 * 86_400_000);
    let c = param(&q, 1);
    let SearchValue::Date {
        range, precision, ..
    } = &c.values[0]
    else {
        panic!()
    };
    assert_eq!(*precision, DatePrecision::Millisecond);
    assert_eq!(range.start, 1_588_752_000_123); // 2020-05-06T08:00:00.123Z
    assert_eq!(range.end, range.start + 1);
    for p in ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"] {
        let q = ok("Patient", &[("birthdate", &format!("{p}2000"))]);
        let SearchValue::Date { prefix, .. } = &param(&q, 0).values[0] else {
            panic!()
        };
        assert_eq!(prefix.as_str(), p);
    }
}

#[test]
fn invalid_dates_and_prefixes_are_errors() {
    let e = err("Patient", &[("birthdate", "notadate")]);
    assert_eq!(e.param(), Some("birthdate"));
    assert!(e.to_string().contains("unknown prefix 'no'"), "{e}");
    let e = err("Patient", &[("birthdate", "2010-13-01")]);
    assert!(matches!(e, SearchError::InvalidValue { .. }));
    assert!(e.to_string().contains("not a valid date"), "{e}");
    let e = err("Patient", &[("birthdate", "xx2010")]);
    assert!(e.to_string().contains("unknown prefix 'xx'"), "{e}");
    let e = err("Patient", &[("birthdate", "2010,20x0")]);
    assert!(e.to_string().contains("20x0"), "{e}");
}

#[test]
fn number_and_quantity_values() {
    let q = ok("RiskAssessment", &[("probability", "gt0.8")]);
    let SearchValue::Number { prefix, number } = &param(&q, 0).values[0] else {
        panic!()
    };
    assert_eq!(*prefix, Prefix::Gt);
    assert_eq!(
        (number.low.to_string(), number.high.to_string()),
        ("0.75".into(), "0.85".into())
    );
    assert!(matches!(
        err("RiskAssessment", &[("probability", "0.8.1")]),
        SearchError::InvalidValue { .. }
    ));

    let q = ok(
        "Observation",
        &[(
            "value-quantity",
            "le5.40e-3|http://unitsofmeasure.org|mg,5.4||mg,100",
        )],
    );
    let c = param(&q, 0);
    assert_eq!(c.param.kind, SearchParamType::Quantity);
    let SearchValue::Quantity(a) = &c.values[0] else {
        panic!()
    };
    assert_eq!(a.prefix, Prefix::Le);
    assert_eq!(a.number.value.to_string(), "0.00540");
    assert_eq!(a.system.as_deref(), Some("http://unitsofmeasure.org"));
    assert_eq!(a.code.as_deref(), Some("mg"));
    let SearchValue::Quantity(b) = &c.values[1] else {
        panic!()
    };
    assert_eq!((b.system.as_deref(), b.code.as_deref()), (None, Some("mg")));
    let SearchValue::Quantity(n) = &c.values[2] else {
        panic!()
    };
    assert_eq!((n.system.as_deref(), n.code.as_deref()), (None, None));
    let e = err(
        "Observation",
        &[("value-quantity", "5.4|http://unitsofmeasure.org")],
    );
    assert!(e.to_string().contains("not a quantity"), "{e}");
    assert!(err("Observation", &[("value-quantity", "abc")])
        .to_string()
        .contains("abc"));
}

#[test]
fn string_values_and_modifiers() {
    let q = ok(
        "Patient",
        &[
            ("name", "Zoë,Van\\,Dyke"),
            ("family:exact", "Ñandú"),
            ("given:contains", "eve"),
        ],
    );
    let c = param(&q, 0);
    assert_eq!(c.param.kind, SearchParamType::String);
    let SearchValue::String(s) = &c.values[0] else {
        panic!()
    };
    assert_eq!((s.raw.as_str(), s.normalized.as_str()), ("Zoë", "zoe"));
    let SearchValue::String(s) = &c.values[1] else {
        panic!()
    };
    assert_eq!(s.raw, "Van,Dyke");
    assert_eq!(param(&q, 1).modifier, Some(Modifier::Exact));
    assert_eq!(param(&q, 2).modifier, Some(Modifier::Contains));
    let e = err("Patient", &[("name:below", "x")]);
    assert!(matches!(e, SearchError::InvalidModifier { .. }), "{e}");
    assert!(err("Patient", &[("name:bogus", "x")])
        .to_string()
        .contains("unknown modifier"));
}

#[test]
fn token_forms_and_modifiers() {
    let q = ok(
        "Observation",
        &[
            (
                "code",
                "http://loinc.org|8480-6,|abc,1234,http://loinc.org|,a\\|b",
            ),
            ("code:not", "x"),
            ("code:text", "Blood Préssure"),
            ("code:in", "http://hl7.org/fhir/ValueSet/observation-status"),
            ("status:not-in", "http://example.org/vs"),
            ("code:below", "http://snomed.info/sct|404684003"),
            ("code:above", "http://snomed.info/sct|404684003"),
        ],
    );
    let c = param(&q, 0);
    let tok = |i: usize| match &c.values[i] {
        SearchValue::Token(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        tok(0),
        TokenValue {
            system: TokenSystem::Is("http://loinc.org".into()),
            code: Some("8480-6".into())
        }
    );
    assert_eq!(
        tok(1),
        TokenValue {
            system: TokenSystem::None,
            code: Some("abc".into())
        }
    );
    assert_eq!(
        tok(2),
        TokenValue {
            system: TokenSystem::Any,
            code: Some("1234".into())
        }
    );
    assert_eq!(
        tok(3),
        TokenValue {
            system: TokenSystem::Is("http://loinc.org".into()),
            code: None
        }
    );
    assert_eq!(
        tok(4),
        TokenValue {
            system: TokenSystem::Any,
            code: Some("a|b".into())
        }
    );
    assert_eq!(param(&q, 1).modifier, Some(Modifier::Not));
    let SearchValue::String(s) = &param(&q, 2).values[0] else {
        panic!()
    };
    assert_eq!(s.normalized, "blood pressure");
    let SearchValue::ValueSet { url, expansion } = &param(&q, 3).values[0] else {
        panic!()
    };
    assert_eq!(url, "http://hl7.org/fhir/ValueSet/observation-status");
    assert!(expansion
        .as_ref()
        .is_some_and(|e| e.iter().any(|(_, c)| c == "final")));
    let SearchValue::ValueSet { expansion, .. } = &param(&q, 4).values[0] else {
        panic!()
    };
    assert!(expansion.is_none());
    assert_eq!(param(&q, 5).modifier, Some(Modifier::Below));
    assert_eq!(param(&q, 6).modifier, Some(Modifier::Above));

    let q = ok(
        "Patient",
        &[(
            "identifier:of-type",
            "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053",
        )],
    );
    assert_eq!(
        param(&q, 0).values[0],
        SearchValue::OfType {
            type_system: "http://terminology.hl7.org/CodeSystem/v2-0203".into(),
            type_code: "MR".into(),
            value: "446053".into()
        }
    );
    assert!(err("Patient", &[("identifier:of-type", "MR|446053")])
        .to_string()
        .contains("of-type"));
    assert!(err("Observation", &[("code", "|")])
        .to_string()
        .contains("'|'"));
    assert!(matches!(
        err("Observation", &[("code:exact", "x")]),
        SearchError::InvalidModifier { .. }
    ));
}

#[test]
fn reference_forms() {
    let q = ok(
        "Observation",
        &[
            (
                "subject",
                "Patient/123,Patient/123/_history/2,http://example.org/fhir/Patient/9",
            ),
            ("subject:Patient", "123"),
            ("subject:identifier", "http://acme.org/mrn|12345"),
            ("patient", "77"),
            ("subject:missing", "true"),
            ("subject", "urn:uuid:85c63cf3-278e-454c-b5ba-df5889815eb7"),
        ],
    );
    let c = param(&q, 0);
    assert_eq!(c.param.kind, SearchParamType::Reference);
    assert_eq!(
        c.values[0],
        SearchValue::Reference(ReferenceValue::Local {
            resource_type: Some("Patient".into()),
            id: "123".into(),
            version: None
        })
    );
    assert_eq!(
        c.values[1],
        SearchValue::Reference(ReferenceValue::Local {
            resource_type: Some("Patient".into()),
            id: "123".into(),
            version: Some("2".into())
        })
    );
    assert_eq!(
        c.values[2],
        SearchValue::Reference(ReferenceValue::Url {
            url: "http://example.org/fhir/Patient/9".into(),
            resource_type: Some("Patient".into()),
            id: Some("9".into()),
            version: None
        })
    );
    let c = param(&q, 1);
    assert_eq!(c.modifier, Some(Modifier::Type("Patient".into())));
    assert_eq!(
        c.values[0],
        SearchValue::Reference(ReferenceValue::Local {
            resource_type: Some("Patient".into()),
            id: "123".into(),
            version: None
        })
    );
    assert_eq!(
        param(&q, 2).values[0],
        SearchValue::Reference(ReferenceValue::Identifier(TokenValue {
            system: TokenSystem::Is("http://acme.org/mrn".into()),
            code: Some("12345".into())
        }))
    );
    // `patient` may be Patient or Group: a bare id has no type.
    assert_eq!(
        param(&q, 3).values[0],
        SearchValue::Reference(ReferenceValue::Local {
            resource_type: None,
            id: "77".into(),
            version: None
        })
    );
    assert_eq!(param(&q, 4).values[0], SearchValue::Missing(true));
    assert!(matches!(
        &param(&q, 5).values[0],
        SearchValue::Reference(ReferenceValue::Url {
            resource_type: None,
            ..
        })
    ));
    // Patient `organization` has one target: a bare id gets the type.
    let q = ok("Patient", &[("organization", "o1")]);
    assert_eq!(
        param(&q, 0).values[0],
        SearchValue::Reference(ReferenceValue::Local {
            resource_type: Some("Organization".into()),
            id: "o1".into(),
            version: None
        })
    );

    assert!(err("Observation", &[("subject", "Medication/1")])
        .to_string()
        .contains("not a target"));
    assert!(err("Observation", &[("subject", "Foo/1")])
        .to_string()
        .contains("not a resource type"));
    assert!(err("Observation", &[("subject:Medication", "1")])
        .to_string()
        .contains("not a target type"));
    assert!(err("Observation", &[("subject", "a/b/c")])
        .to_string()
        .contains("not a reference"));
    assert!(err("Observation", &[("subject:missing", "maybe")])
        .to_string()
        .contains("true or false"));
    assert!(matches!(
        err("Patient", &[("birthdate:Patient", "2000")]),
        SearchError::InvalidModifier { .. }
    ));
}

#[test]
fn uri_composite_and_missing() {
    let q = ok("ValueSet", &[("url:below", "http://acme.org/fhir/")]);
    assert_eq!(
        param(&q, 0).values[0],
        SearchValue::Uri("http://acme.org/fhir/".into())
    );
    assert_eq!(param(&q, 0).modifier, Some(Modifier::Below));

    let q = ok(
        "Observation",
        &[(
            "component-code-value-quantity",
            "http://loinc.org|8480-6$gt100,8462-4$lt60||mm[Hg]",
        )],
    );
    let c = param(&q, 0);
    assert_eq!(c.param.kind, SearchParamType::Composite);
    let SearchValue::Composite(parts) = &c.values[0] else {
        panic!()
    };
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].kind, SearchParamType::Token);
    let SearchValue::Quantity(qv) = &parts[1].value else {
        panic!()
    };
    assert_eq!(qv.prefix, Prefix::Gt);
    let SearchValue::Composite(parts) = &c.values[1] else {
        panic!()
    };
    let SearchValue::Quantity(qv) = &parts[1].value else {
        panic!()
    };
    assert_eq!(
        (qv.prefix, qv.code.as_deref()),
        (Prefix::Lt, Some("mm[Hg]"))
    );
    assert!(err(
        "Observation",
        &[("component-code-value-quantity", "8480-6")]
    )
    .to_string()
    .contains("2 components"));

    let q = ok("Patient", &[("birthdate:missing", "false")]);
    assert_eq!(param(&q, 0).modifier, Some(Modifier::Missing));
    assert_eq!(param(&q, 0).values[0], SearchValue::Missing(false));
}

#[test]
fn chains_carry_types_per_link() {
    let q = ok("Observation", &[("subject:Patient.name", "peter")]);
    let c = param(&q, 0);
    assert_eq!(c.chain.len(), 1);
    assert_eq!(c.chain[0].code, "subject");
    assert_eq!(c.chain[0].source_types, vec!["Observation".to_string()]);
    assert_eq!(c.chain[0].target_types, vec!["Patient".to_string()]);
    assert_eq!(c.param.code, "name");
    assert_eq!(c.param.resource_types, vec!["Patient".to_string()]);

    // Without a type: the targets that define the next parameter.
    let q = ok("Observation", &[("subject.name", "peter")]);
    let targets = &param(&q, 0).chain[0].target_types;
    assert!(targets.contains(&"Patient".to_string()));
    assert!(!targets.contains(&"Device".to_string()));

    // Three links deep, with a modifier at the end.
    let q = ok(
        "Encounter",
        &[("subject:Patient.organization.partof.name:exact", "Acme")],
    );
    let c = param(&q, 0);
    assert_eq!(
        c.chain.iter().map(|l| l.code.as_str()).collect::<Vec<_>>(),
        ["subject", "organization", "partof"]
    );
    assert_eq!(c.chain[2].target_types, vec!["Organization".to_string()]);
    assert_eq!(c.modifier, Some(Modifier::Exact));
    assert_eq!(c.name, "subject:Patient.organization.partof.name:exact");

    let e = err("Observation", &[("code.name", "x")]);
    assert!(matches!(e, SearchError::InvalidChain { .. }));
    assert!(
        e.to_string()
            .contains("only reference parameters can be chained"),
        "{e}"
    );
    assert_eq!(e.param(), Some("code.name"));
    let e = err("Observation", &[("subject:Patient.bogus", "x")]);
    assert!(e.to_string().contains("no target type"), "{e}");
    let e = err("Observation", &[("subject:Medication.code", "x")]);
    assert!(e.to_string().contains("not a target type"), "{e}");
}

#[test]
fn reverse_chains_nest() {
    let q = ok("Patient", &[("_has:Observation:patient:code", "1234-5")]);
    let Clause::Has(h) = &q.clauses[0] else {
        panic!()
    };
    assert_eq!(
        (h.source_type.as_str(), h.reference_param.as_str()),
        ("Observation", "patient")
    );
    let Clause::Param(inner) = &*h.inner else {
        panic!()
    };
    assert_eq!(inner.param.code, "code");
    assert_eq!(inner.param.resource_types, vec!["Observation".to_string()]);

    let q = ok(
        "Patient",
        &[(
            "_has:Observation:patient:_has:AuditEvent:entity:agent",
            "MyUserId",
        )],
    );
    let Clause::Has(h) = &q.clauses[0] else {
        panic!()
    };
    let Clause::Has(h2) = &*h.inner else { panic!() };
    assert_eq!(h2.source_type, "AuditEvent");
    assert_eq!(
        h2.inner.name(),
        "_has:Observation:patient:_has:AuditEvent:entity:agent"
    );

    let q = ok(
        "Patient",
        &[("_has:Observation:subject:code:text", "blood")],
    );
    let Clause::Has(h) = &q.clauses[0] else {
        panic!()
    };
    let Clause::Param(inner) = &*h.inner else {
        panic!()
    };
    assert_eq!(inner.modifier, Some(Modifier::Text));

    assert!(err("Patient", &[("_has:Observation:code:code", "x")])
        .to_string()
        .contains("not a reference"));
    assert!(err("Patient", &[("_has:Nope:patient:code", "x")])
        .to_string()
        .contains("not a resource type"));
    assert!(err("Patient", &[("_has:Observation:patient", "x")])
        .to_string()
        .contains("_has:Type"));
    assert!(err("Patient", &[("_has:Observation:patient:bogus", "x")])
        .to_string()
        .contains("unknown parameter"));
    assert!(
        err("Practitioner", &[("_has:Observation:patient:code", "x")])
            .to_string()
            .contains("cannot refer")
    );
}

#[test]
fn result_parameters() {
    let q = ok(
        "Observation",
        &[
            ("_count", "50"),
            ("_sort", "-date,code,_lastUpdated"),
            ("_include", "Observation:subject:Patient"),
            ("_include:iterate", "Patient:general-practitioner"),
            ("_include", "*"),
            ("_revinclude", "Provenance:target"),
            ("_total", "accurate"),
            ("_summary", "count"),
            ("_elements", "status,code"),
            ("_contained", "false"),
            ("_containedType", "contained"),
            ("_format", "json"),
            ("_pretty", "true"),
        ],
    );
    assert!(q.clauses.is_empty());
    assert!(q.ignored.is_empty());
    let r = &q.result;
    assert_eq!(r.count, Some(50));
    assert_eq!(
        r.sort,
        vec![
            SortKey {
                code: "date".into(),
                kind: SearchParamType::Date,
                descending: true
            },
            SortKey {
                code: "code".into(),
                kind: SearchParamType::Token,
                descending: false
            },
            SortKey {
                code: "_lastUpdated".into(),
                kind: SearchParamType::Date,
                descending: false
            },
        ]
    );
    assert_eq!(
        r.include[0],
        Include {
            source_type: "Observation".into(),
            param: Some("subject".into()),
            target_type: Some("Patient".into()),
            iterate: false
        }
    );
    assert!(r.include[1].iterate);
    assert_eq!(r.include[2].source_type, "*");
    assert_eq!(r.revinclude[0].param.as_deref(), Some("target"));
    assert_eq!(r.total, Some(TotalMode::Accurate));
    assert_eq!(r.summary, Some(SummaryMode::Count));
    assert_eq!(r.elements, vec!["status".to_string(), "code".to_string()]);
    assert_eq!(r.contained, Some(ContainedMode::False));
    assert_eq!(r.contained_type, Some(ContainedType::Contained));
    // Searching inside contained resources is not supported: said, not ignored silently.
    let q = fhir_search::parse(
        SearchRegistry::r4(),
        Some("Observation"),
        &[("_contained".to_string(), "both".to_string())],
        false,
    )
    .expect("lenient");
    assert_eq!(q.ignored[0].param, "_contained");
    assert!(fhir_search::parse(
        SearchRegistry::r4(),
        Some("Observation"),
        &[("_contained".to_string(), "true".to_string())],
        true,
    )
    .is_err());

    for (name, value, needle) in [
        ("_count", "-1", "non-negative"),
        ("_count", "ten", "non-negative"),
        ("_sort", "bogus", "unknown sort parameter"),
        ("_sort", "", "empty sort key"),
        ("_include", "Observation:code", "not a reference"),
        (
            "_include",
            "Observation:subject:Medication",
            "not a target type",
        ),
        ("_include", "Observation", "Type:parameter"),
        ("_include:deep", "Observation:subject", "iterate"),
        ("_total", "some", "none, estimate or accurate"),
        ("_summary", "maybe", "true, text, data, count or false"),
        ("_elements", "a b", "not an element name"),
        ("_contained", "yes", "true, false or both"),
    ] {
        let e = err("Observation", &[(name, value)]);
        assert_eq!(e.param(), Some(name), "{e}");
        assert!(e.to_string().contains(needle), "{name}={value}: {e}");
    }
    let e = err("Observation", &[("_count", "1"), ("_count", "2")]);
    assert!(e.to_string().contains("only once"));
}

#[test]
fn unknown_and_unsupported_parameters() {
    let reg = SearchRegistry::r4();
    let q = parse(
        reg,
        Some("Patient"),
        &pairs(&[
            ("bogus", "1"),
            ("_query", "x"),
            ("_query", "y"),
            ("name", ""),
            ("name", "x"),
        ]),
        false,
    )
    .unwrap();
    assert_eq!(q.clauses.len(), 1);
    let ignored: Vec<&str> = q.ignored.iter().map(|i| i.param.as_str()).collect();
    assert_eq!(ignored, ["bogus", "_query", "_query", "name"]);
    let e = parse(reg, Some("Patient"), &pairs(&[("bogus", "1")]), true).unwrap_err();
    assert!(matches!(e, SearchError::UnknownParameter { .. }));
    assert_eq!(e.to_string(), "bogus: unknown search parameter for Patient");
    let e = parse(reg, Some("Patient"), &pairs(&[("_query", "x")]), true).unwrap_err();
    assert!(matches!(e, SearchError::Unsupported { .. }));
    // _text and _content are full-text criteria.
    let q = parse(
        reg,
        Some("Patient"),
        &pairs(&[("_text", "x"), ("_content", "y z")]),
        true,
    )
    .unwrap();
    let texts: Vec<&str> = q
        .clauses
        .iter()
        .filter_map(|c| match c {
            fhir_search::Clause::Text(t) => Some(t.query.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["x", "y z"]);
    // Location near is a criterion of its own; bad values are errors.
    let q = parse(reg, Some("Location"), &pairs(&[("near", "1|2|3|mi")]), true).unwrap();
    let fhir_search::Clause::Near(n) = &q.clauses[0] else {
        panic!("{q:?}")
    };
    assert!((n.distance_km - 4.828).abs() < 0.01, "{n:?}");
    assert!(parse(reg, Some("Location"), &pairs(&[("near", "95|2")]), false).is_err());
    assert!(parse(
        reg,
        Some("Location"),
        &pairs(&[("near", "1|2|3|furlong")]),
        false
    )
    .is_err());
    // Invalid values stay errors in lenient mode.
    assert!(parse(reg, Some("Patient"), &pairs(&[("birthdate", "x")]), false).is_err());
    assert_eq!(
        parse(reg, Some("Nope"), &[], false).unwrap_err(),
        SearchError::UnknownResourceType("Nope".into())
    );
}

#[test]
fn system_level_search_with_type() {
    let reg = SearchRegistry::r4();
    let q = parse(
        reg,
        None,
        &pairs(&[
            ("_type", "Patient,Observation"),
            ("_id", "a1"),
            ("_lastUpdated", "ge2020"),
        ]),
        true,
    )
    .unwrap();
    assert_eq!(
        q.resource_types,
        vec!["Patient".to_string(), "Observation".to_string()]
    );
    assert_eq!(param(&q, 0).param.resource_types, q.resource_types);
    assert_eq!(param(&q, 1).param.kind, SearchParamType::Date);
    // A parameter only one of the types has.
    assert!(parse(
        reg,
        None,
        &pairs(&[("_type", "Patient,Observation"), ("birthdate", "2000")]),
        true
    )
    .is_err());
    // No _type: common parameters only.
    let q = parse(reg, None, &pairs(&[("_tag", "http://s|c")]), true).unwrap();
    assert!(q.resource_types.is_empty());
    assert!(parse(reg, None, &pairs(&[("_type", "Nope")]), true)
        .unwrap_err()
        .to_string()
        .contains("Nope"));
}

#[test]
fn query_strings_are_decoded() {
    let q = parse_query_string(
        SearchRegistry::r4(),
        Some("Observation"),
        "?code=http%3A%2F%2Floinc.org%7C8480-6&date=ge2020-01-01T00%3A00%3A00%2B01%3A00&_count=10",
        true,
    )
    .unwrap();
    assert_eq!(
        param(&q, 0).values[0],
        SearchValue::Token(TokenValue {
            system: TokenSystem::Is("http://loinc.org".into()),
            code: Some("8480-6".into())
        })
    );
    assert_eq!(q.result.count, Some(10));
}

/// Random and hostile inputs never panic.
#[test]
fn no_panics_on_garbage() {
    let reg = SearchRegistry::r4();
    let names = [
        "name",
        "birthdate",
        "code",
        "subject",
        "value-quantity",
        "_has",
        "_has:",
        "_has:Observation",
        "_has::::",
        "subject.",
        ".name",
        "subject:.name",
        "a.b.c.d",
        "_sort",
        "_include",
        "combo-code-value-quantity",
        "component-code-value-quantity:missing",
        "_count",
        "identifier:of-type",
        "url:above",
        "ü",
        "subject:Patient.subject.name",
    ];
    let values = [
        "",
        ",",
        "|",
        "||",
        "$",
        "$$",
        "\\",
        "\\\\,",
        "ge",
        "gexx",
        "2020-02-30",
        "9999-12-31T23:59:59.999+14:00",
        "0001",
        "1e999999999",
        "-",
        "é|ü|$",
        "Patient/",
        "/1",
        "http://",
        "urn:",
        "#x",
        "*",
        "-,-",
        "ap1e-30",
        "x:y:z",
        "Observation:*",
        "Observation:subject:Patient:extra",
    ];
    for rt in ["Observation", "Patient"] {
        for n in names {
            for v in values {
                let _ = parse(reg, Some(rt), &pairs(&[(n, v)]), true);
                let _ = parse(reg, Some(rt), &pairs(&[(n, v)]), false);
                let _ = parse(reg, None, &pairs(&[(n, v)]), false);
            }
        }
    }
}
