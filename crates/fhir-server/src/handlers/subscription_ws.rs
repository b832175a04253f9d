//! The Backport IG's websocket channel over HTTP (channels.md#websockets):
//! `$get-ws-binding-token` (`Subscription/[id]/$get-ws-binding-token`, or the type
//! level with `id` parameters) answers a Parameters with a `token`, its `expiration`,
//! the `subscription`s it binds and the `websocket-url`; at that URL (`/fhir/ws`, no
//! bearer token needed: the binding token is the credential, as browsers cannot send
//! headers on websockets) a client sends `bind-with-token <token>` (repeatable, for
//! more subscriptions on one connection) and gets a `handshake` notification per
//! subscription, then heartbeats and event notifications as text frames. A refused
//! binding is answered with an OperationOutcome frame; the connection stays open.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::Message;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc::{channel, Sender};

use crate::access::scopes::Interaction;
use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};
use crate::subscriptions::backport::Content;
use crate::subscriptions::notification::{bundle, Kind, Status};
use crate::subscriptions::websocket::{issue, verify, TOKEN_SECONDS};

type Result<T> = std::result::Result<T, ApiError>;

/// The largest frame a client may send (a bind message is a few hundred bytes).
const MAX_FRAME: usize = 64 * 1024;

/// `GET|POST Subscription/[id]/$get-ws-binding-token`.
pub async fn token_instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    token_for(&state, &req, vec![path.into_inner().0]).await
}

/// `GET|POST Subscription/$get-ws-binding-token?id=…`.
pub async fn token_type(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let ids: Vec<String> = form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k == "id")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(ApiError::bad_at(
            "name the subscriptions the token is for with id (or call Subscription/[id]/$get-ws-binding-token)",
            "id",
        ));
    }
    token_for(&state, &req, ids).await
}

async fn token_for(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    ids: Vec<String>,
) -> Result<HttpResponse> {
    let out = output(req)?;
    let subs = state.subscriptions.as_ref().ok_or_else(|| {
        ApiError::NotFound("subscriptions are off on this server (--subscriptions off)".into())
    })?;
    let grant = guard::grant(req, Interaction::Read, "Subscription")?;
    for id in &ids {
        check_id(id)?;
        let sid = id.clone();
        let stored = state
            .blocking(move |s| s.read("Subscription", &sid))
            .await?
            .filter(|s| !s.deleted)
            .ok_or_else(|| ApiError::NotFound(format!("Subscription/{id} is not known")))?;
        guard::ensure_stored(state, &grant, Interaction::Read, &stored).await?;
        let (sub, value) = super::subscription_ops::describe(state, &stored)?;
        if value.pointer("/channel/type").and_then(Value::as_str) != Some("websocket") {
            return Err(ApiError::Unprocessable(
                format!("Subscription/{id} does not use the websocket channel"),
                Some("id".into()),
            ));
        }
        // The socket carries what the subscription's notifications carry, as `$events`.
        if sub.topic.as_ref().map_or(Content::IdOnly, |t| t.content) != Content::Empty {
            super::subscription_ops::may_read_focus(req, &sub)?;
        }
    }
    let expires = fhir_store::time::now_millis() / 1000 + TOKEN_SECONDS;
    let token = issue(&subs.ws_secret, &ids, expires);
    let base = state.base(req);
    let ws = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}/ws"),
        None => format!("ws://{}/ws", base.trim_start_matches("http://")),
    };
    let mut params = vec![
        json!({"name": "token", "valueString": token}),
        json!({"name": "expiration", "valueDateTime": fhir_store::time::fhir_instant(expires * 1000)}),
    ];
    params.extend(ids.iter().map(
        |id| json!({"name": "subscription", "valueString": format!("{base}/Subscription/{id}")}),
    ));
    params.push(json!({"name": "websocket-url", "valueUrl": ws}));
    let answer = json!({"resourceType": "Parameters", "parameter": params});
    Ok(respond::json(StatusCode::OK, &answer, out))
}

/// `GET /fhir/ws`: the websocket endpoint.
pub async fn connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> std::result::Result<HttpResponse, actix_web::Error> {
    if state.subscriptions.is_none() {
        return Err(ApiError::NotFound("subscriptions are off on this server".into()).into());
    }
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let base = state.base(&req);
    actix_web::rt::spawn(serve(
        state,
        base,
        session,
        stream.max_frame_size(MAX_FRAME),
    ));
    Ok(response)
}

/// One connection: binds on request, forwards notifications, until either side closes.
async fn serve(
    state: web::Data<AppState>,
    base: String,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
) {
    let Some(subs) = state.subscriptions.as_ref() else {
        return;
    };
    let hub = subs.hub.clone();
    let connection = hub.connection();
    let (tx, mut rx) = channel::<String>(crate::subscriptions::websocket::QUEUE);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let replies = bind(&state, &base, connection, &tx, &text).await;
                    let mut open = true;
                    for r in replies {
                        open &= session.text(r).await.is_ok();
                    }
                    if !open {
                        break;
                    }
                }
                Some(Ok(Message::Ping(b))) => {
                    if session.pong(&b).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(text) => {
                    if session.text(text).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    hub.close(connection);
    let _ = session.close(None).await;
}

fn outcome(message: &str) -> String {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error",
        "code": "invalid", "details": {"text": message}}]})
    .to_string()
}

/// Handles `bind-with-token <token>`: the frames to answer with (a handshake per bound
/// subscription, or an OperationOutcome).
async fn bind(
    state: &web::Data<AppState>,
    base: &str,
    connection: u64,
    tx: &Sender<String>,
    text: &str,
) -> Vec<String> {
    let Some(subs) = state.subscriptions.as_ref() else {
        return Vec::new();
    };
    let Some(token) = text.trim().strip_prefix("bind-with-token ") else {
        return vec![outcome(
            "send 'bind-with-token <token>', with a token from $get-ws-binding-token",
        )];
    };
    let (ids, expires) = match verify(&subs.ws_secret, token.trim()) {
        Ok(bound) => bound,
        Err(e) => return vec![outcome(&e)],
    };
    // A subscription written a moment ago is known.
    let dispatcher = subs.dispatcher.clone();
    if let Ok(Err(e)) = web::block(move || dispatcher.refresh()).await {
        return vec![outcome(&format!(
            "the subscriptions cannot be read now: {e}"
        ))];
    }
    let registry = subs.dispatcher.active();
    let mut replies = Vec::new();
    for id in ids {
        let Some(sub) = registry.get(&id).filter(|s| s.channel == "websocket") else {
            replies.push(outcome(&format!(
                "Subscription/{id} is not an active websocket subscription"
            )));
            continue;
        };
        subs.hub.bind(&id, connection, expires * 1000, tx.clone());
        let sid = id.clone();
        let counted = state
            .blocking(move |s| s.events_since_start(&sid))
            .await
            .unwrap_or(0);
        let status = Status {
            base,
            sub,
            kind: Kind::Handshake,
            status: "active",
            events_since_start: counted,
            error: None,
        };
        replies.push(bundle(&status, &[], None).to_string());
    }
    replies
}
