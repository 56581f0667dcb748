//! The admin surface as JSON over HTTP, under `/cmmp-admin/` on the emulator's listener. The
//! same operations are library calls on [`crate::Site`]; the CLI builds its commands on this.
//!
//! | Request | Operation |
//! |---|---|
//! | `GET /cmmp-admin/clients` | every client record |
//! | `GET /cmmp-admin/clients/{smsid}` | one client, its inventory versions and discovery |
//! | `POST /cmmp-admin/clients/{smsid}/approve` (`unapprove`, `block`, `unblock`) | change it |
//! | `GET /cmmp-admin/clients/{smsid}/inventory` | its inventory instances |
//! | `GET /cmmp-admin/clients/{smsid}/messages?limit=N` | the messages it sent |
//! | `GET /cmmp-admin/clients/{smsid}/state-messages` (`status-messages`, `files`) | its state messages, status messages, collected files |
//! | `GET /cmmp-admin/messages?limit=N` | the latest messages of the site |
//! | `GET /cmmp-admin/conflicts` | conflicting records |
//! | `POST /cmmp-admin/conflicts/{id}/resolve?action=merge\|new\|block` | resolve one |
//! | `POST /cmmp-admin/proxies` (body: the ISV proxy certificate, DER or hex) | import it; returns its SMSID |
//! | `GET /cmmp-admin/faults`, `POST /cmmp-admin/faults` (JSON fault), `DELETE /cmmp-admin/faults` | faults |
//! | `GET /cmmp-admin/summary` | counts per table and message outcome |
//!
//! Errors answer `{"error": "…"}` with 400 (bad input), 404 (unknown client or path), 405
//! with `Allow` (a path of the table asked with another method) or 500 (the site failed).

use chrono::Utc;
use cmmp_model::value::{HexBytes, SmsId};
use serde_json::{Value, json};

use crate::behaviour::Resolution;
use crate::error::Error;
use crate::server::{HttpRequest, Response, Shared};
use crate::site::FaultSpec;
use crate::store::ConflictId;

fn ok(value: Value) -> Response {
    Response::json(200, &value)
}

fn fail(status: u16, message: impl std::fmt::Display) -> Response {
    Response::json(status, &json!({ "error": message.to_string() }))
}

fn from_error(e: &Error) -> Response {
    match e {
        Error::NotFound { .. } => fail(404, e),
        Error::Invalid(_) | Error::Refused(_) => fail(400, e),
        _ => fail(500, e),
    }
}

fn to_json<T: serde::Serialize>(result: Result<T, Error>) -> Response {
    match result {
        Ok(v) => match serde_json::to_value(v) {
            Ok(v) => ok(v),
            Err(e) => fail(500, e),
        },
        Err(e) => from_error(&e),
    }
}

fn query_param<'q>(target: &'q str, name: &str) -> Option<&'q str> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// Handles one admin request.
pub(crate) fn handle(request: &HttpRequest, shared: &Shared) -> Response {
    let path = request.target.split('?').next().unwrap_or_default();
    let parts: Vec<&str> =
        path.trim_start_matches("/cmmp-admin/").split('/').filter(|p| !p.is_empty()).collect();
    let limit =
        query_param(&request.target, "limit").and_then(|l| l.parse().ok()).unwrap_or(100u32);
    let now = Utc::now();
    let mut site = shared.site();
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["clients"]) => to_json(site.clients()),
        ("GET", ["messages"]) => to_json(site.messages(None, limit)),
        ("GET", ["conflicts"]) => to_json(site.conflicts(false)),
        ("GET", ["faults"]) => to_json(site.faults()),
        ("GET", ["summary"]) => to_json(site.summary()),
        ("DELETE", ["faults"]) => to_json(site.clear_faults().map(|()| json!({ "cleared": true }))),
        ("POST", ["faults"]) => match serde_json::from_slice::<FaultSpec>(&request.body) {
            Ok(f) => to_json(site.add_fault(&f, now).map(|id| json!({ "id": id.0 }))),
            Err(e) => fail(
                400,
                format!(
                    "a fault is {{\"endpoint\", \"kind\", \"delay_ms\"?, \"remaining\"?}}: {e}"
                ),
            ),
        },
        ("POST", ["proxies"]) => {
            let der = match std::str::from_utf8(&request.body)
                .ok()
                .and_then(|t| t.trim().parse::<HexBytes>().ok())
            {
                Some(hex) => hex.0,
                None => request.body.clone(),
            };
            to_json(site.import_isv_proxy(&der, now).map(|id| json!({ "smsid": id })))
        }
        ("POST", ["conflicts", id, "resolve"]) => {
            let Ok(id) = id.parse::<i64>() else { return fail(400, "a conflict id is a number") };
            let resolution = match query_param(&request.target, "action") {
                Some("merge") => Resolution::Merge,
                Some("new") => Resolution::New,
                Some("block") => Resolution::Block,
                _ => return fail(400, "action is merge, new or block"),
            };
            to_json(
                site.resolve_conflict(ConflictId(id), resolution, now)
                    .map(|()| json!({ "resolved": id })),
            )
        }
        (method, ["clients", smsid, rest @ ..]) => {
            let Ok(smsid) = smsid.parse::<SmsId>() else {
                return fail(400, "not an SMSID (GUID:…)");
            };
            match (method, rest) {
                ("GET", []) => match site.client(&smsid) {
                    Ok(Some(c)) => to_json(Ok::<_, Error>(json!({
                        "client": c,
                        "inventory_versions": site.inventory_versions(&smsid).unwrap_or_default(),
                        "discovery": site.discovery(&smsid).ok().flatten(),
                    }))),
                    Ok(None) => fail(404, format!("no client {smsid}")),
                    Err(e) => from_error(&e),
                },
                ("GET", ["inventory"]) => to_json(site.inventory(&smsid)),
                ("GET", ["messages"]) => to_json(site.messages(Some(&smsid), limit)),
                ("GET", ["state-messages"]) => to_json(site.state_messages(&smsid)),
                ("GET", ["status-messages"]) => to_json(site.status_messages(&smsid)),
                ("GET", ["files"]) => to_json(site.collected_files(&smsid)),
                ("POST", ["approve"]) => {
                    to_json(site.approve(&smsid).map(|()| json!({ "approved": smsid })))
                }
                ("POST", ["unapprove"]) => {
                    to_json(site.unapprove(&smsid).map(|()| json!({ "unapproved": smsid })))
                }
                ("POST", ["block"]) => {
                    to_json(site.block(&smsid).map(|()| json!({ "blocked": smsid })))
                }
                ("POST", ["unblock"]) => {
                    to_json(site.unblock(&smsid).map(|()| json!({ "unblocked": smsid })))
                }
                _ => not_handled(&parts),
            }
        }
        _ => not_handled(&parts),
    }
}

/// The methods the admin surface takes on the path `parts`, if it knows the path.
fn allowed(parts: &[&str]) -> Option<&'static str> {
    Some(match parts {
        ["clients" | "messages" | "conflicts" | "summary"] => "GET",
        ["faults"] => "GET, POST, DELETE",
        ["proxies"] | ["conflicts", _, "resolve"] => "POST",
        ["clients", _]
        | ["clients", _, "inventory" | "messages" | "state-messages"]
        | ["clients", _, "status-messages" | "files"] => "GET",
        ["clients", _, "approve" | "unapprove" | "block" | "unblock"] => "POST",
        _ => return None,
    })
}

/// The answer to a request no route took: 405 with `Allow` for a known path asked with
/// another method, else 404.
fn not_handled(parts: &[&str]) -> Response {
    match allowed(parts) {
        Some(methods) => {
            let mut r = fail(405, format!("this admin path takes {methods}"));
            r.headers.push(("Allow", methods.to_owned()));
            r
        }
        None => fail(404, "unknown admin request; see the emulator's admin module docs"),
    }
}

/// `POST /SMS_FSP/.sms_fsp`: the fallback status point takes state messages from clients that
/// cannot reach their MP (source document "client deployment"). They are unauthenticated;
/// the body is a state-message `Report` (UTF-8, or UTF-16 with a BOM).
pub(crate) fn fallback_status(request: &HttpRequest, shared: &Shared) -> Response {
    let text = if request.body.starts_with(&[0xFF, 0xFE]) {
        match cmmp_transport::body::decode_header(
            &request.body,
            cmmp_transport::body::BomPolicy::Required,
        ) {
            Ok(t) => t,
            Err(e) => return fail(400, e),
        }
    } else {
        match String::from_utf8(request.body.clone()) {
            Ok(t) => t,
            Err(e) => return fail(400, e),
        }
    };
    match shared.site().fallback_state_messages(&text, Utc::now()) {
        Ok(outcome) => ok(json!({ "outcome": format!("{outcome:?}") })),
        Err(e) => from_error(&e),
    }
}
