//! The URL map of the FHIR API (http.html): one place that says which handler serves
//! which interaction.

use actix_web::web::{self, delete, get, head, patch, post, put};

use crate::handlers::{self, bundle, crud, everything, export, history, search, smart, system};

/// Registers every route under `/fhir`, plus the console (`/`), `/health`, `/ready`
/// and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", get().to(crate::console::index))
        .route("/console.js", get().to(crate::console::script))
        .route("/console.css", get().to(crate::console::style))
        .route("/console/config.json", get().to(crate::console::config))
        .route("/console/jobs.json", get().to(crate::console::jobs))
        .route("/health", get().to(system::health))
        .route("/ready", get().to(system::ready))
        .route("/metrics", get().to(crate::metrics::scrape))
        .route("/auth/token", post().to(smart::token))
        .route("/admin/tenants", get().to(crate::tenancy::admin::list))
        .route("/admin/tenants", post().to(crate::tenancy::admin::add))
        .route(
            "/admin/tenants/{name}/{op}",
            post().to(crate::tenancy::admin::switch),
        )
        .route(
            "/.well-known/smart-configuration",
            get().to(smart::smart_configuration),
        )
        .service(
            web::scope("/fhir")
                .route(
                    "/.well-known/smart-configuration",
                    get().to(smart::smart_configuration),
                )
                // The common interactions first, with their ids' syntax in the pattern
                // so that `_history`, `_search` and `$operations` never match them
                // (each dynamic pattern tried costs a regular-expression match).
                .service(instance(r"/{type:[A-Z][A-Za-z]*}/{id:[A-Za-z0-9.\-]+}"))
                .service(type_level(r"/{type:[A-Z][A-Za-z]*}"))
                .configure(operation_routes)
                .service(
                    web::resource("/openapi.json")
                        .wrap(actix_web::middleware::Compress::default())
                        .route(get().to(system::openapi))
                        .route(head().to(system::openapi))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/metadata")
                        .route(get().to(system::metadata))
                        .route(head().to(system::metadata))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/_history")
                        .route(get().to(history::system))
                        .route(head().to(history::system))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource(["", "/"])
                        .route(post().to(bundle::post_bundle))
                        .route(get().to(search::system_search))
                        .route(head().to(search::system_search))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/_history")
                        .route(get().to(history::type_level))
                        .route(head().to(history::type_level))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/_search")
                        .route(post().to(search::system_search_post))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/_search")
                        .route(post().to(search::type_search_post))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/$validate")
                        .route(post().to(handlers::validate::validate))
                        .route(get().to(handlers::validate::validate))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/{id}/$validate")
                        .route(post().to(handlers::validate::validate_instance))
                        .route(get().to(handlers::validate::validate_instance))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/{id}/_history/{vid}")
                        .route(get().to(crud::vread))
                        .route(head().to(crud::vread))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{type}/{id}/_history")
                        .route(get().to(history::instance))
                        .route(head().to(history::instance))
                        .default_service(web::to(system::method_not_allowed)),
                )
                .service(
                    web::resource("/{compartment}/{id}/{type}")
                        .route(get().to(search::compartment_search))
                        .route(head().to(search::compartment_search))
                        .default_service(web::to(system::method_not_allowed)),
                )
                // Anything else shaped like them (bad ids, unknown types): same handlers,
                // which answer 400/404.
                .service(instance("/{type}/{id}"))
                .service(type_level("/{type}"))
                .default_service(web::to(system::unknown_path)),
        )
        .default_service(web::to(system::unknown_path));
}

/// `[type]/[id]`: read, update, patch, delete.
fn instance(pattern: &str) -> actix_web::Resource {
    web::resource(pattern)
        .route(get().to(crud::read))
        .route(head().to(crud::read))
        .route(put().to(crud::update))
        .route(patch().to(handlers::patch::patch))
        .route(delete().to(crud::delete))
        .default_service(web::to(system::method_not_allowed))
}

/// `[type]`: search, create, and the conditional interactions.
fn type_level(pattern: &str) -> actix_web::Resource {
    web::resource(pattern)
        .route(get().to(search::type_search))
        .route(head().to(search::type_search))
        .route(post().to(crud::create))
        .route(put().to(crud::conditional_update))
        .route(patch().to(handlers::patch::conditional_patch))
        .route(delete().to(crud::conditional_delete))
        .default_service(web::to(system::method_not_allowed))
}

/// Operations: Bulk Data export (kick-off, status, files), bulk import, Patient
/// `$everything`, `$meta`, `$expunge` and `$document`,
/// registered before `/{type}/{id}` and the compartment route.
fn operation_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/Patient/$everything")
            .route(get().to(everything::type_level))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        web::resource("/Patient/{id}/$everything")
            .route(get().to(everything::instance))
            .default_service(web::to(system::method_not_allowed)),
    )
    .configure(meta_routes)
    .configure(expunge_routes)
    .configure(subscription_routes)
    .configure(terminology_routes)
    .service(
        web::resource("/Composition/{id}/$document")
            .route(get().to(crate::handlers::document::document))
            .route(post().to(crate::handlers::document::document))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        web::resource("/$export")
            .route(get().to(export::system_get))
            .route(post().to(export::system_post))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        web::resource("/Patient/$export")
            .route(get().to(export::patient_get))
            .route(post().to(export::patient_post))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        web::resource("/Group/{id}/$export")
            .route(get().to(export::group_get))
            .route(post().to(export::group_post))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        web::resource("/$export-status/{job}")
            .route(get().to(export::status))
            .route(delete().to(export::cancel))
            .default_service(web::to(system::method_not_allowed)),
    )
    .configure(import_routes)
    .service(
        web::resource("/$export-file/{job}/{file}")
            // Gzip when the client asks (`Accept-Encoding`), with `Content-Encoding`.
            .wrap(actix_web::middleware::Compress::default())
            .route(get().to(export::file))
            .default_service(web::to(system::method_not_allowed)),
    );
}

/// Bulk `$import`: kick-off, status and cancelling, error files.
fn import_routes(cfg: &mut web::ServiceConfig) {
    use crate::handlers::import;
    let resource = |path: &str| {
        web::resource(path.to_string()).default_service(web::to(system::method_not_allowed))
    };
    cfg.service(resource("/$import").route(post().to(import::kickoff)))
        .service(
            resource("/$import-status/{job}")
                .route(get().to(import::status))
                .route(delete().to(import::cancel)),
        )
        .service(
            resource("/$import-errors/{job}/{input}")
                .wrap(actix_web::middleware::Compress::default())
                .route(get().to(import::errors)),
        );
}

/// The terminology operations (terminology-service.html), type and instance level.
fn terminology_routes(cfg: &mut web::ServiceConfig) {
    use crate::handlers::terminology as tx;
    use web::resource;
    macro_rules! both {
        ($path:expr, $handler:expr) => {
            resource($path)
                .route(get().to($handler))
                .route(post().to($handler))
                .default_service(web::to(system::method_not_allowed))
        };
    }
    cfg.service(both!("/CodeSystem/$lookup", tx::lookup))
        .service(both!(
            "/CodeSystem/$validate-code",
            tx::validate_code_system
        ))
        .service(both!(
            "/CodeSystem/{id}/$validate-code",
            tx::validate_code_system_instance
        ))
        .service(both!("/CodeSystem/$subsumes", tx::subsumes))
        .service(both!("/CodeSystem/{id}/$subsumes", tx::subsumes_instance))
        .service(both!("/ValueSet/$validate-code", tx::validate_value_set))
        .service(both!(
            "/ValueSet/{id}/$validate-code",
            tx::validate_value_set_instance
        ))
        .service(both!("/ValueSet/$expand", tx::expand))
        .service(both!("/ValueSet/{id}/$expand", tx::expand_instance))
        .service(both!("/ConceptMap/$translate", tx::translate))
        .service(both!("/ConceptMap/{id}/$translate", tx::translate_instance));
}

/// The Subscriptions Backport IG's `$status` (instance and type), `$events`,
/// `$get-ws-binding-token` and the websocket endpoint.
fn subscription_routes(cfg: &mut web::ServiceConfig) {
    use crate::handlers::subscription_ops as ops;
    use crate::handlers::subscription_ws as ws;
    use web::resource;
    cfg.service(
        resource("/Subscription/$get-ws-binding-token")
            .route(get().to(ws::token_type))
            .route(post().to(ws::token_type))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        resource("/Subscription/{id}/$get-ws-binding-token")
            .route(get().to(ws::token_instance))
            .route(post().to(ws::token_instance))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        resource("/ws")
            .route(get().to(ws::connect))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        resource("/Subscription/$status")
            .route(get().to(ops::status_type))
            .route(post().to(ops::status_type))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        resource("/Subscription/{id}/$status")
            .route(get().to(ops::status_instance))
            .route(post().to(ops::status_instance))
            .default_service(web::to(system::method_not_allowed)),
    )
    .service(
        resource("/Subscription/{id}/$events")
            .route(get().to(ops::events))
            .route(post().to(ops::events))
            .default_service(web::to(system::method_not_allowed)),
    );
}

/// `$meta` at every level, `$meta-add` and `$meta-delete` (resource-operations.html).
fn meta_routes(cfg: &mut web::ServiceConfig) {
    use crate::handlers::meta;
    let resource = |path: &str| {
        web::resource(path.to_string()).default_service(web::to(system::method_not_allowed))
    };
    cfg.service(
        resource("/$meta")
            .route(get().to(meta::system))
            .route(post().to(meta::system)),
    )
    .service(
        resource("/{type}/$meta")
            .route(get().to(meta::type_level))
            .route(post().to(meta::type_level)),
    )
    .service(
        resource("/{type}/{id}/$meta")
            .route(get().to(meta::instance))
            .route(post().to(meta::instance)),
    )
    .service(
        resource("/{type}/{id}/_history/{vid}/$meta")
            .route(get().to(meta::version))
            .route(post().to(meta::version)),
    )
    .service(resource("/{type}/{id}/$meta-add").route(post().to(meta::add)))
    .service(resource("/{type}/{id}/$meta-delete").route(post().to(meta::delete)));
}

/// `$expunge` at the system, type and instance levels.
fn expunge_routes(cfg: &mut web::ServiceConfig) {
    use crate::handlers::expunge;
    let resource = |path: &str| {
        web::resource(path.to_string()).default_service(web::to(system::method_not_allowed))
    };
    cfg.service(resource("/$expunge").route(post().to(expunge::system)))
        .service(resource("/{type}/$expunge").route(post().to(expunge::type_level)))
        .service(resource("/{type}/{id}/$expunge").route(post().to(expunge::instance)));
}
