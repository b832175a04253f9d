//! Compartments (CompartmentDefinition): which parameters link a resource to a
//! compartment owner (`Patient`, `Encounter`, `RelatedPerson`, `Practitioner`, `Device`).

use crate::registry::SearchRegistry;

/// The search parameters by which a `resource_type` resource belongs to the
/// compartment `compartment_code` (e.g. `("Patient", "Observation")` →
/// `["subject", "performer"]`); empty when the type is not in the compartment or the
/// compartment is unknown. `Patient/1/Observation?…` searches Observations where any
/// of these reference parameters points to `Patient/1`.
pub fn compartment_params<'r>(
    registry: &'r SearchRegistry,
    compartment_code: &str,
    resource_type: &str,
) -> &'r [String] {
    registry
        .definitions()
        .compartment(compartment_code)
        .map(|c| c.params_for(resource_type))
        .unwrap_or(&[])
}

/// The resource types that are members of the compartment `compartment_code`
/// (those with at least one linking parameter).
pub fn compartment_types<'r>(registry: &'r SearchRegistry, compartment_code: &str) -> Vec<&'r str> {
    registry
        .definitions()
        .compartment(compartment_code)
        .map(|c| {
            c.resource
                .iter()
                .filter(|r| !r.param.is_empty())
                .map(|r| r.code.as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_compartment() {
        let reg = SearchRegistry::r4();
        let p = compartment_params(reg, "Patient", "Observation");
        assert!(p.iter().any(|x| x == "subject"), "{p:?}");
        assert!(compartment_params(reg, "Patient", "Patient")
            .iter()
            .any(|x| x == "link"));
        assert!(compartment_params(reg, "Patient", "CodeSystem").is_empty());
        assert!(compartment_params(reg, "Nope", "Observation").is_empty());
        for c in [
            "Patient",
            "Encounter",
            "RelatedPerson",
            "Practitioner",
            "Device",
        ] {
            assert!(!compartment_types(reg, c).is_empty(), "{c}");
        }
    }
}
