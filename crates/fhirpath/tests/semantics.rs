//! Parser error positions and the key evaluation semantics.

use fhirpath::{compile, EvalContext, EvalError, Item, Resolver};
use serde_json::{json, Value};

fn eval(expr: &str, input: &Value) -> Result<Value, EvalError> {
    let ctx = EvalContext::new();
    compile(expr)
        .expect("compiles")
        .evaluate(&ctx, input)
        .map(|c| c.to_json())
}

fn obs() -> Value {
    serde_json::from_str(&json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": "@185.50@", "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"},
        "effectiveDateTime": "2016-03-28T10:00:00+02:00",
        "extension": [{"url": "http://example.org/age", "valueAge": {"value": 42, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}}]
    })
    .to_string()
    .replace("\"@185.50@\"", "185.50"))
    .expect("fixture")
}

#[test]
fn parse_errors_have_positions() {
    let e = compile("Patient.name.where(").unwrap_err();
    assert_eq!((e.line, e.column), (1, 20));
    assert!(e.to_string().contains("line 1, column 20"), "{e}");

    let e = compile("Patient.name\n  .given +* 2").unwrap_err();
    assert_eq!((e.line, e.column), (2, 11), "{e}");

    let e = compile("name.foo()").unwrap_err();
    assert_eq!(e.offset, 5);
    assert!(e.message.contains("unknown function 'foo'"));

    let e = compile("name.substring()").unwrap_err();
    assert!(e.message.contains("takes 1 to 2 argument"), "{e}");

    let e = compile("'unterminated").unwrap_err();
    assert_eq!(e.column, 1);
    let e = compile("2 + /* open").unwrap_err();
    assert_eq!(e.column, 5);
    let e = compile("@T14:00Z").unwrap_err();
    assert!(e.message.contains("time zone"));
    assert!(compile("1 2").is_err());
    assert!(compile("").is_err());
    assert!(compile("a.(b)").is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(compile(&deep).unwrap_err().message.contains("too deeply"));
    let chain = format!("a{}", ".b".repeat(10_000));
    assert!(compile(&chain).is_err());
    let sum = format!("1{}", " + 1".repeat(10_000));
    assert!(compile(&sum).is_err());
    let neg = format!("{}1", "-".repeat(10_000));
    assert!(compile(&neg).is_err());
}

#[test]
fn choice_types_and_casts() {
    let o = obs();
    assert_eq!(eval("Observation.value.unit", &o).unwrap(), json!(["lbs"]));
    assert_eq!(
        eval("Observation.value is Quantity", &o).unwrap(),
        json!([true])
    );
    assert_eq!(
        eval("Observation.value.ofType(Quantity).value", &o)
            .unwrap()
            .to_string(),
        "[185.50]"
    );
    assert_eq!(
        eval("(Observation.value as Period).start", &o).unwrap(),
        json!([])
    );
    assert!(matches!(
        eval("Observation.valueQuantity", &o),
        Err(EvalError::Semantic(_))
    ));
    assert!(matches!(
        eval("Observation.foo", &o),
        Err(EvalError::Semantic(_))
    ));
    assert_eq!(
        eval(
            "Observation.extension('http://example.org/age').value is Age",
            &o
        )
        .unwrap(),
        json!([true])
    );
    assert_eq!(
        eval(
            "Observation.extension('http://example.org/age').value is Quantity",
            &o
        )
        .unwrap(),
        json!([true])
    );
    assert_eq!(
        eval("Observation.effective.is(dateTime)", &o).unwrap(),
        json!([true])
    );
    // Lenient mode accepts the JSON name.
    let mut ctx = EvalContext::new();
    ctx.set_lenient(true);
    let r = compile("Observation.valueQuantity.unit")
        .unwrap()
        .evaluate(&ctx, &o)
        .unwrap();
    assert_eq!(r.to_json(), json!(["lbs"]));
}

#[test]
fn decimals_are_exact_and_keep_their_scale() {
    let o = obs();
    assert_eq!(eval("0.1 + 0.2 = 0.3", &o).unwrap(), json!([true]));
    assert_eq!(
        eval("Observation.value.value", &o).unwrap().to_string(),
        "[185.50]"
    );
    assert_eq!(eval("1.50 * 2", &o).unwrap().to_string(), "[3.00]");
    assert_eq!(eval("1.2 / 1.8 ~ 0.67", &o).unwrap(), json!([true]));
    assert_eq!(eval("(10.5).round()", &o).unwrap(), json!([11]));
    assert_eq!(eval("1 / 0", &o).unwrap(), json!([]));
}

#[test]
fn quantities_convert_units() {
    let o = obs();
    for (e, r) in [
        ("1 'wk' = 7 days", true),
        ("1 'kg' = 1000 'g'", true),
        ("500 'mg' < 1 'g'", true),
        ("1 'h' = 60 'min'", true),
        ("1 'd' = 24 'h'", true),
        ("100 'cm' = 1 'm'", true),
        ("Observation.value > 80 'kg'", true),
        ("Observation.value < 85 'kg'", true),
        ("1 'a' = 12 'mo'", true),
        ("(1 'm' + 50 'cm') = 150 'cm'", true),
    ] {
        assert_eq!(eval(e, &o).unwrap(), json!([r]), "{e}");
    }
    assert_eq!(eval("1 'kg' = 1 'm'", &o).unwrap(), json!([]));
    assert_eq!(eval("1 year = 1 'a'", &o).unwrap(), json!([]));
}

#[test]
fn dates_compare_by_precision_and_time_zone() {
    let o = obs();
    assert_eq!(eval("@2016-03 < @2016-04-01", &o).unwrap(), json!([true]));
    assert_eq!(eval("@2016-03 = @2016-03-01", &o).unwrap(), json!([]));
    assert_eq!(
        eval("@2016-03-28T10:00:00+02:00 = @2016-03-28T08:00:00Z", &o).unwrap(),
        json!([true])
    );
    assert_eq!(
        eval("Observation.effective > @2016-03-28T07:59:59Z", &o).unwrap(),
        json!([true])
    );
    assert_eq!(
        eval("@2016-01-31 + 1 month", &o).unwrap(),
        json!(["2016-02-29"])
    );
    assert_eq!(
        eval("@2016-03-28T23:30:00Z + 1 hour", &o).unwrap(),
        json!(["2016-03-29T00:30:00Z"])
    );
    assert!(eval("@2016-03-28 + 1 'mo'", &o).is_err());
    assert_eq!(
        eval("@2016-03-28 + 1 'wk'", &o).unwrap(),
        json!(["2016-04-04"])
    );
}

#[test]
fn empty_propagation_and_three_valued_logic() {
    let o = obs();
    assert_eq!(
        eval("Observation.category.text = 'x'", &o).unwrap(),
        json!([])
    );
    assert_eq!(eval("{} and false", &o).unwrap(), json!([false]));
    assert_eq!(eval("{} or false", &o).unwrap(), json!([]));
    assert_eq!(eval("{} implies false", &o).unwrap(), json!([]));
    assert_eq!(
        eval("Observation.category.exists()", &o).unwrap(),
        json!([false])
    );
    assert!(eval("(1 | 2) + 1", &o).is_err());
    assert!(eval("'a' - 'b'", &o).is_err());
}

#[test]
fn primitive_extensions_and_has_value() {
    let p = json!({
        "resourceType": "Patient",
        "birthDate": "1974-12-25",
        "_birthDate": {"id": "bd", "extension": [{"url": "http://x/t", "valueTime": "14:35:45"}]},
        "name": [{"given": [null, "James"], "_given": [{"extension": [{"url": "http://x/s", "valueString": "five"}]}, null]}]
    });
    assert_eq!(eval("Patient.birthDate.id", &p).unwrap(), json!(["bd"]));
    assert_eq!(
        eval("Patient.birthDate.extension('http://x/t').value", &p).unwrap(),
        json!(["14:35:45"])
    );
    assert_eq!(
        eval("Patient.name.given.select(hasValue())", &p).unwrap(),
        json!([false, true])
    );
    assert_eq!(eval("Patient.name.given.count()", &p).unwrap(), json!([2]));
    assert_eq!(
        eval("Patient.birthDate.getValue() = @1974-12-25", &p).unwrap(),
        json!([true])
    );
}

#[test]
fn resolve_contained_bundle_and_caller() {
    struct Store(Value);
    impl Resolver for Store {
        fn resolve(&self, reference: &str) -> Option<&Value> {
            (reference == "Practitioner/p1").then_some(&self.0)
        }
    }
    let p = json!({
        "resourceType": "Patient",
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Acme"}],
        "managingOrganization": {"reference": "#o1"},
        "generalPractitioner": [{"reference": "Practitioner/p1"}]
    });
    assert_eq!(
        eval("Patient.managingOrganization.resolve().name", &p).unwrap(),
        json!(["Acme"])
    );
    assert_eq!(
        eval("Patient.managingOrganization.resolve() is Organization", &p).unwrap(),
        json!([true])
    );
    let store = Store(json!({"resourceType": "Practitioner", "id": "p1", "active": true}));
    let mut ctx = EvalContext::new();
    ctx.set_resolver(&store);
    let r = compile("Patient.generalPractitioner.resolve().active")
        .unwrap()
        .evaluate(&ctx, &p)
        .unwrap();
    assert_eq!(r.to_json(), json!([true]));

    // Unavailable targets still have the type their reference names.
    assert_eq!(
        eval(
            "Patient.generalPractitioner.where(resolve() is Practitioner).reference",
            &p
        )
        .unwrap(),
        json!(["Practitioner/p1"])
    );
    assert_eq!(
        eval("Patient.generalPractitioner.resolve().active", &p).unwrap(),
        json!([])
    );

    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a", "active": false}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Observation", "status": "final", "subject": {"reference": "urn:uuid:1"}}}
    ]});
    let obs = &bundle["entry"][1]["resource"];
    let mut ctx = EvalContext::new();
    ctx.set_root_resource(&bundle);
    let r = compile("Observation.subject.resolve().active")
        .unwrap()
        .evaluate(&ctx, obs)
        .unwrap();
    assert_eq!(r.to_json(), json!([false]));
}

#[test]
fn variables_and_environment() {
    let o = obs();
    let mut ctx = EvalContext::new();
    ctx.set_string_variable("system", "http://loinc.org");
    let e = compile("Observation.code.coding.where(system = %system).code").unwrap();
    assert_eq!(e.evaluate(&ctx, &o).unwrap().to_json(), json!(["29463-7"]));
    assert_eq!(eval("%resource.status", &o).unwrap(), json!(["final"]));
    assert_eq!(
        eval("%`vs-observation-status`", &o).unwrap(),
        json!(["http://hl7.org/fhir/ValueSet/observation-status"])
    );
    assert!(matches!(
        eval("%nope", &o),
        Err(EvalError::UnknownVariable(_))
    ));
}

#[test]
fn member_of_uses_local_expansions() {
    let o = obs();
    assert_eq!(
        eval(
            "Observation.status.memberOf('http://hl7.org/fhir/ValueSet/observation-status')",
            &o
        )
        .unwrap(),
        json!([true])
    );
    assert_eq!(
        eval(
            "'nonsense'.memberOf('http://hl7.org/fhir/ValueSet/observation-status')",
            &o
        )
        .unwrap(),
        json!([false])
    );
}

#[test]
fn results_borrow_the_input() {
    let o = obs();
    let ctx = EvalContext::new();
    let r = compile("Observation.code")
        .unwrap()
        .evaluate(&ctx, &o)
        .unwrap();
    match &r[0] {
        Item::Node(n) => {
            assert!(std::ptr::eq(n.value.unwrap(), &o["code"]));
            assert_eq!(n.type_name, Some("CodeableConcept"));
        }
        other => panic!("expected a node, got {other:?}"),
    }
}

#[test]
fn expressions_are_send_sync_and_reusable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<fhirpath::Expression>();
    let e = compile("Observation.status").unwrap();
    let o = obs();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let ctx = EvalContext::new();
                for _ in 0..100 {
                    assert_eq!(e.evaluate(&ctx, &o).unwrap().to_json(), json!(["final"]));
                }
            });
        }
    });
}

#[test]
fn deepest_compilable_expressions_evaluate_without_overflow() {
    let p = json!({"resourceType": "Patient", "active": true});
    let shapes: [(&str, &str, &str); 5] = [
        ("(", "1", ")"),
        ("(1 + ", "1", ")"),
        ("iif(true, ", "1", ", 0)"),
        ("-", "1", ""),
        ("Patient.active.where(", "$this", ")"),
    ];
    for (open, mid, close) in shapes {
        let mut n = 1;
        let mut last = None;
        while n < 2000 {
            let e = format!("{}{mid}{}", open.repeat(n), close.repeat(n));
            match compile(&e) {
                Ok(c) => last = Some(c),
                Err(_) => break,
            }
            n += 1;
        }
        let c = last.expect("some depth compiles");
        let _ = c.evaluate(&EvalContext::new(), &p);
    }
    let chain = (1..2000)
        .map(|n| format!("Patient{}", ".active".repeat(n)))
        .take_while(|e| compile(e).is_ok())
        .last()
        .expect("a chain compiles");
    let _ = compile(&chain).unwrap().evaluate(&EvalContext::new(), &p);
    let odd = [
        "'2015-01-01T+1\u{e9}00'.toDateTime()",
        "@2015-01-01 + 9223372036854775807 days",
        "1.0000000000000000000000000001.lowBoundary()",
        "@T10:00 + 9223372036854775807 hours",
        "@2015 - 9223372036854775807 months",
    ];
    for e in odd {
        let _ = compile(e).unwrap().evaluate(&EvalContext::new(), &p);
    }
}

#[test]
fn empty_tests_are_false_in_the_java_validators_mode() {
    let reference = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"identifier": {"value": "1"}}});
    let expr = compile("subject.reference.startsWith('#').not() and (value is Quantity).not()")
        .expect("compiles");
    let plain = EvalContext::new();
    let got = expr
        .evaluate(&plain, &reference)
        .expect("evaluates")
        .to_json();
    assert_eq!(got, json!([]), "the specification: empty in, empty out");
    let mut java = EvalContext::new();
    java.set_empty_tests_false(true);
    let got = expr
        .evaluate(&java, &reference)
        .expect("evaluates")
        .to_json();
    assert_eq!(got, json!([true]));
}
