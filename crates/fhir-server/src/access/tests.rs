//! The access rules as a table: scopes and patient of a token, the question asked,
//! and the answer expected.

use serde_json::json;

use super::*;

const P: &str = "p1";

fn caller(scopes: &str, patient: Option<&str>) -> Access {
    Access {
        client_id: "test".into(),
        scopes: ScopeSet::parse(scopes),
        patient: patient.map(str::to_string),
        tenant: None,
    }
}

fn ctx(access: &Access) -> RequestContext<'_> {
    RequestContext {
        caller: Some(access),
        audit_on: true,
    }
}

fn no_scope(interaction: Interaction, resource_type: &str) -> Denial {
    Denial::NoScope {
        interaction,
        resource_type: resource_type.into(),
    }
}

/// The answer expected of a decision.
type Expected = Result<Grant, Denial>;

/// Scopes, the token's patient, the interaction and type asked about, the answer.
type GrantCase<'a> = (&'a str, Option<&'a str>, Interaction, &'a str, Expected);

/// Scopes, the interaction and type, the content written, the answer.
type ContentCase<'a> = (&'a str, Interaction, &'a str, Value, Expected);

fn observation_of(patient: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": format!("Patient/{patient}")}})
}

#[test]
fn grants_by_scope_table() {
    use Interaction::*;
    let patient = || Ok(Grant::Patient(P.into()));
    let cases: Vec<GrantCase> = vec![
        (
            "system/Observation.rs",
            None,
            Read,
            "Observation",
            Ok(Grant::All),
        ),
        (
            "system/Observation.rs",
            None,
            Search,
            "Observation",
            Ok(Grant::All),
        ),
        (
            "system/Observation.rs",
            None,
            Read,
            "Patient",
            Err(no_scope(Read, "Patient")),
        ),
        (
            "system/Observation.rs",
            None,
            Create,
            "Observation",
            Err(no_scope(Create, "Observation")),
        ),
        ("patient/*.rs", Some(P), Read, "Observation", patient()),
        ("patient/*.rs", Some(P), Search, "Patient", patient()),
        (
            "patient/*.rs",
            Some(P),
            Update,
            "Observation",
            Err(no_scope(Update, "Observation")),
        ),
        // Patient scopes grant nothing without a patient in the token.
        (
            "patient/*.rs",
            None,
            Read,
            "Observation",
            Err(no_scope(Read, "Observation")),
        ),
        // Wildcards never cover the audit trail.
        (
            "system/*.rs",
            None,
            Read,
            "AuditEvent",
            Err(no_scope(Read, "AuditEvent")),
        ),
        (
            "system/AuditEvent.rs",
            None,
            Read,
            "AuditEvent",
            Ok(Grant::All),
        ),
        // An unrestricted scope wins over a confined one.
        (
            "patient/Observation.rs system/Observation.rs",
            Some(P),
            Read,
            "Observation",
            Ok(Grant::All),
        ),
        // SMART v1 syntax.
        (
            "user/Observation.read",
            None,
            Read,
            "Observation",
            Ok(Grant::All),
        ),
    ];
    for (scopes, p, interaction, rt, expected) in cases {
        let a = caller(scopes, p);
        assert_eq!(
            decide(&ctx(&a), interaction, rt),
            expected,
            "{scopes} (patient {p:?}): {interaction:?} {rt}"
        );
    }
    let rules = decide(
        &ctx(&caller(
            "patient/Observation.rs?category=laboratory",
            Some(P),
        )),
        Read,
        "Observation",
    );
    assert!(
        matches!(&rules, Ok(Grant::Rules(r)) if r.len() == 1),
        "{rules:?}"
    );
}

#[test]
fn written_content_table() {
    use Interaction::*;
    let defs = fhir_model::Definitions::r4();
    let practitioner = json!({"resourceType": "Practitioner"});
    let cases: Vec<ContentCase> = vec![
        (
            "patient/Observation.cruds",
            Create,
            "Observation",
            observation_of(P),
            Ok(Grant::Patient(P.into())),
        ),
        (
            "patient/Observation.cruds",
            Create,
            "Observation",
            observation_of("p2"),
            Err(Denial::OutsideCompartment { patient: P.into() }),
        ),
        // Types outside every patient compartment are read, not written, under a patient grant.
        (
            "patient/*.cruds",
            Create,
            "Practitioner",
            practitioner.clone(),
            Err(Denial::OutsideCompartment { patient: P.into() }),
        ),
        (
            "patient/Observation.crus?category=laboratory",
            Update,
            "Observation",
            observation_of(P),
            Err(Denial::RulesCannotWrite),
        ),
        (
            "system/AuditEvent.cruds",
            Create,
            "AuditEvent",
            json!({"resourceType": "AuditEvent"}),
            Err(Denial::AuditTrail),
        ),
        (
            "system/Practitioner.c",
            Create,
            "Practitioner",
            practitioner,
            Ok(Grant::All),
        ),
    ];
    for (scopes, interaction, rt, content, expected) in cases {
        let a = caller(scopes, Some(P));
        assert_eq!(
            decide_content(&ctx(&a), defs, interaction, rt, &content),
            expected,
            "{scopes}: {interaction:?} {rt}"
        );
    }
}

#[test]
fn unrestricted_interactions_and_authentication_off() {
    use Interaction::*;
    let all = caller("system/Observation.cruds", None);
    assert_eq!(
        decide_unrestricted(&ctx(&all), Update, "Observation", "a patch"),
        Ok(())
    );
    let confined = caller("patient/Observation.cruds", Some(P));
    assert_eq!(
        decide_unrestricted(&ctx(&confined), Update, "Observation", "a patch"),
        Err(Denial::NeedsUnrestricted {
            what: "a patch".into(),
            resource_type: "Observation".into()
        })
    );
    // With authentication off everything is allowed, but the audit trail stays the
    // server's own.
    let off = RequestContext {
        caller: None,
        audit_on: true,
    };
    let defs = fhir_model::Definitions::r4();
    assert_eq!(decide(&off, Delete, "Patient"), Ok(Grant::All));
    assert_eq!(
        decide_content(&off, defs, Create, "Observation", &observation_of(P)),
        Ok(Grant::All)
    );
    assert_eq!(
        decide_unrestricted(&off, Delete, "AuditEvent", "a delete"),
        Err(Denial::AuditTrail)
    );
    let no_audit = RequestContext {
        caller: None,
        audit_on: false,
    };
    assert_eq!(
        decide_unrestricted(&no_audit, Delete, "AuditEvent", "a delete"),
        Ok(())
    );
}

#[test]
fn search_limits_merge_one_parameter() {
    let rule = |k: &str, v: &str| Rule {
        patient: Some(P.into()),
        constraint: vec![(k.into(), v.into())],
    };
    let merged = search_limits(
        &Grant::Rules(vec![
            rule("category", "laboratory"),
            rule("category", "vital-signs"),
        ]),
        "Observation",
    );
    assert_eq!(
        merged,
        Ok(SearchLimits {
            patient: Some(P.into()),
            extra: vec![("category".into(), "laboratory,vital-signs".into())]
        })
    );
    let apart = search_limits(
        &Grant::Rules(vec![
            rule("category", "laboratory"),
            rule("status", "final"),
        ]),
        "Observation",
    );
    assert_eq!(
        apart,
        Err(Denial::ConstraintsApart {
            resource_type: "Observation".into()
        })
    );
    assert_eq!(
        search_limits(&Grant::Patient(P.into()), "Observation").map(|l| l.patient),
        Ok(Some(P.into()))
    );
}

#[test]
fn denials_say_what_is_refused() {
    let text = no_scope(Interaction::Update, "Observation").message();
    assert_eq!(
        text,
        "the granted scopes do not allow update (u) of Observation resources"
    );
    assert!(Denial::OutsideCompartment { patient: P.into() }
        .message()
        .contains("Patient/p1"));
}

/// Scopes, a Group export or not, the types asked for, the types exported.
type ExportCase<'a> = (&'a str, bool, Vec<String>, Result<Vec<String>, Denial>);

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn bulk_export_table() {
    let known = strings(&["Group", "Observation", "Patient"]);
    let cases: Vec<ExportCase> = vec![
        ("system/*.rs", false, vec![], Ok(known.clone())),
        (
            "system/Observation.rs",
            false,
            vec![],
            Ok(strings(&["Observation"])),
        ),
        (
            "system/Observation.rs",
            false,
            strings(&["Patient"]),
            Err(Denial::ExportNeedsAll {
                resource_type: "Patient".into(),
            }),
        ),
        (
            "system/Observation.rs",
            true,
            vec![],
            Err(Denial::GroupExport),
        ),
        ("patient/*.rs", false, vec![], Err(Denial::NoSystemRead)),
        (
            "system/Group.rs system/Patient.rs",
            true,
            strings(&["Patient"]),
            Ok(strings(&["Patient"])),
        ),
    ];
    for (scopes, group, asked, expected) in cases {
        let a = caller(scopes, Some(P));
        assert_eq!(
            decide_export(&ctx(&a), group, &asked, &known),
            expected,
            "{scopes} group {group} {asked:?}"
        );
    }
    let off = RequestContext {
        caller: None,
        audit_on: true,
    };
    assert_eq!(decide_export(&off, true, &[], &known), Ok(vec![]));
}

#[test]
fn expunge_and_everything_tables() {
    let known = strings(&["AuditEvent", "Observation", "Patient"]);
    let all = caller("system/Observation.cruds system/Patient.cruds", None);
    assert_eq!(
        decide_expunge(&ctx(&all), Some("Observation"), &known),
        Ok(())
    );
    // Every type but the audit trail.
    assert_eq!(decide_expunge(&ctx(&all), None, &known), Ok(()));
    let some = caller("system/Observation.cruds", None);
    assert_eq!(
        decide_expunge(&ctx(&some), None, &known),
        Err(Denial::ExpungeNeedsAll {
            resource_type: "Patient".into()
        })
    );
    let mine = caller("patient/*.rs", Some(P));
    assert_eq!(
        decide_everything(&ctx(&mine), None, &[], &known),
        Ok((Some(P.into()), strings(&["Observation", "Patient"])))
    );
    assert_eq!(
        decide_everything(&ctx(&mine), Some("p2".into()), &[], &known),
        Err(Denial::Outside {
            resource_type: "Patient".into(),
            id: "p2".into()
        })
    );
    assert_eq!(
        decide_everything(
            &ctx(&mine),
            Some(P.into()),
            &strings(&["AuditEvent"]),
            &known
        ),
        Err(Denial::NoTypeAllowed)
    );
    let observations = caller("system/Observation.rs", None);
    assert_eq!(
        decide_everything(&ctx(&observations), None, &[], &known),
        Err(Denial::EverythingNeedsPatient)
    );
}

#[test]
fn history_table() {
    let known = strings(&["Observation", "Patient"]);
    let all = caller("system/*.rs", None);
    assert_eq!(
        decide_history(&ctx(&all), HistoryOf::System, &known),
        Ok(Grant::All)
    );
    let mine = caller("patient/*.rs", Some(P));
    assert_eq!(
        decide_history(&ctx(&mine), HistoryOf::Instance("Observation"), &known),
        Ok(Grant::Patient(P.into()))
    );
    let needs_all = |t: &str| {
        Err(Denial::HistoryNeedsAll {
            resource_type: t.into(),
        })
    };
    assert_eq!(
        decide_history(&ctx(&mine), HistoryOf::Type("Observation"), &known),
        needs_all("Observation")
    );
    assert_eq!(
        decide_history(&ctx(&mine), HistoryOf::System, &known),
        needs_all("Observation")
    );
    let observations = caller("system/Observation.rs", None);
    // No scope for Patients at all: refused as such.
    assert_eq!(
        decide_history(&ctx(&observations), HistoryOf::System, &known),
        Err(no_scope(Interaction::Search, "Patient"))
    );
    assert_eq!(
        decide_history(&ctx(&observations), HistoryOf::Type("Patient"), &known),
        Err(no_scope(Interaction::Search, "Patient"))
    );
    let off = RequestContext {
        caller: None,
        audit_on: false,
    };
    assert_eq!(
        decide_history(&off, HistoryOf::System, &known),
        Ok(Grant::All)
    );
}

#[test]
fn metrics_table() {
    let cases: [(&str, Option<&str>, Result<(), Denial>); 6] = [
        ("system/AuditEvent.rs", None, Ok(())),
        // A wildcard does not cover the audit trail: AuditEvents are named.
        ("system/*.cruds", None, Err(Denial::MetricsNeedAudit)),
        ("system/*.cruds system/AuditEvent.rs", None, Ok(())),
        ("system/Patient.rs", None, Err(Denial::MetricsNeedAudit)),
        ("patient/*.rs", Some(P), Err(Denial::MetricsNeedAudit)),
        (
            "system/AuditEvent.rs?agent=x",
            None,
            Err(Denial::MetricsNeedAudit),
        ),
    ];
    for (scopes, patient, want) in cases {
        let c = caller(scopes, patient);
        assert_eq!(decide_metrics(&ctx(&c)), want, "{scopes}");
    }
    let open = RequestContext {
        caller: None,
        audit_on: false,
    };
    assert_eq!(decide_metrics(&open), Ok(()));
}

#[test]
fn job_list_table() {
    let operator = caller("system/AuditEvent.rs", None);
    assert_eq!(decide_job_list(&ctx(&operator)), Ok(()));
    let clinician = caller("user/*.cruds", None);
    assert_eq!(
        decide_job_list(&ctx(&clinician)),
        Err(Denial::JobsNeedAudit)
    );
}

#[test]
fn tenant_table() {
    let of = |tenant: Option<&str>| Access {
        tenant: tenant.map(str::to_string),
        ..caller("system/*.cruds system/AuditEvent.rs", None)
    };
    let other = |token: &str, requested: &str| {
        Err(Denial::OtherTenant {
            token: token.into(),
            requested: requested.into(),
        })
    };
    let (acme, plain) = (of(Some("acme")), of(None));
    type TenantCase<'a> = (Option<&'a Access>, Option<&'a str>, Result<(), Denial>);
    let cases: [TenantCase; 7] = [
        // Tenancy off: tenant claims mean nothing.
        (Some(&acme), None, Ok(())),
        (Some(&acme), Some("acme"), Ok(())),
        (Some(&acme), Some("beta"), other("acme", "beta")),
        (Some(&acme), Some("default"), other("acme", "default")),
        // No claim: the default tenant only.
        (Some(&plain), Some("default"), Ok(())),
        (Some(&plain), Some("acme"), other("default", "acme")),
        // Authentication off: nothing to check.
        (None, Some("acme"), Ok(())),
    ];
    for (i, (caller, tenant, expected)) in cases.into_iter().enumerate() {
        assert_eq!(decide_tenant(caller, tenant), expected, "case {i}");
    }
    // Administration: the default tenant's operators only.
    assert_eq!(decide_tenant_admin(&ctx(&plain)), Ok(()));
    assert_eq!(
        decide_tenant_admin(&ctx(&acme)),
        Err(Denial::TenantsNeedOperator)
    );
    let clinician = caller("system/Patient.rs", None);
    assert_eq!(
        decide_tenant_admin(&ctx(&clinician)),
        Err(Denial::TenantsNeedOperator)
    );
}
