//! diesel table definitions, for the queries written with diesel's DSL: those are
//! prepared once per connection and cached, which matters on the read hot path
//! (PostgreSQL would otherwise plan every read afresh).

diesel::table! {
    resource_versions (seq) {
        seq -> BigInt,
        res_type -> Text,
        res_id -> Text,
        version -> BigInt,
        last_updated -> BigInt,
        deleted -> Bool,
        method -> Text,
        content -> Text,
    }
}

diesel::table! {
    resources (rid) {
        rid -> BigInt,
        res_type -> Text,
        res_id -> Text,
        version -> BigInt,
        seq -> BigInt,
        last_updated -> BigInt,
        deleted -> Bool,
    }
}

diesel::joinable!(resources -> resource_versions (seq));
diesel::allow_tables_to_appear_in_same_query!(resources, resource_versions);
