//! Location `near` (search.html#near): the index rows of a Location's position
//! ([`positions`]: `near.latitude` and `near.longitude` number rows) and the query
//! value `[latitude]|[longitude]|[distance]|[units]` ([`near_clause`]). The store finds
//! the positions within the radius (`fhir-store` `search/beyond.rs`).

use crate::error::SearchError;
use crate::index::{complex, json_number, IndexValue, NumberRow};
use crate::query::Clause;
use fhirpath::Item;

/// Location `near`: the position's latitude and longitude, as two number rows
/// (`near.latitude`, `near.longitude`) that a `near` search reads together.
pub(crate) fn positions(item: &Item<'_>, out: &mut Vec<IndexValue>) {
    let Some((obj, _)) = complex(item) else {
        return;
    };
    let (Some(lat), Some(lon)) = (
        json_number(obj.get("latitude")),
        json_number(obj.get("longitude")),
    ) else {
        return;
    };
    for (param, number) in [("near.latitude", lat), ("near.longitude", lon)] {
        out.push(IndexValue::Number(NumberRow {
            param: param.to_string(),
            number,
        }));
    }
}

/// The radius when `near` gives none (the server's discretion, near.html).
const DEFAULT_NEAR_KM: f64 = 10.0;

/// `near=[latitude]|[longitude]|[distance]|[units]`: units `km` (the default), `m`,
/// `mi` or `[mi_i]`.
pub(crate) fn near_clause(name: &str, value: &str) -> Result<Clause, SearchError> {
    if name != "near" {
        return Err(SearchError::modifier(name, "near takes no modifier"));
    }
    let bad = |m: &str| {
        SearchError::value(
            name,
            format!("'{value}': {m} (expected latitude|longitude|distance|units)"),
        )
    };
    let parts: Vec<&str> = value.split('|').collect();
    if !(2..=4).contains(&parts.len()) {
        return Err(bad("not 2 to 4 parts"));
    }
    let num = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let latitude = num(parts[0])
        .filter(|v| v.abs() <= 90.0)
        .ok_or_else(|| bad("the latitude is not a number from -90 to 90"))?;
    let longitude = num(parts[1])
        .filter(|v| v.abs() <= 180.0)
        .ok_or_else(|| bad("the longitude is not a number from -180 to 180"))?;
    let distance = match parts.get(2).filter(|d| !d.is_empty()) {
        Some(d) => num(d)
            .filter(|v| *v >= 0.0)
            .ok_or_else(|| bad("the distance is not a non-negative number"))?,
        None => DEFAULT_NEAR_KM,
    };
    let per_km = match parts.get(3).map(|u| u.trim()).unwrap_or("km") {
        "km" | "" => 1.0,
        "m" => 1000.0,
        "mi" | "[mi_i]" | "[mi_us]" => 0.621_371,
        other => return Err(bad(&format!("units '{other}' are not km, m or mi"))),
    };
    Ok(Clause::Near(crate::query::NearClause {
        name: name.to_string(),
        latitude,
        longitude,
        distance_km: distance / per_km,
    }))
}
