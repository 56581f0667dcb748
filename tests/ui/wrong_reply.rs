//! The reply type is fixed by the kind: a content location request answers with a
//! `ContentLocationReply`, not a `WsusLocationReply`.
use cmmp_model::kinds::ContentLocation;
use cmmp_model::location::WsusLocationReply;
use cmmp_model::{Invoke, Post};

// A stand-in sender with the bounds of the transport client.
fn invoke<K: Invoke>(_kind: &K) -> Option<K::Reply> {
    None
}
fn post<K: Post>(_kind: &K) {}

fn send(request: &ContentLocation) {
    let reply: Option<WsusLocationReply> = invoke(request);
    let _ = reply;
    let _ = post::<cmmp_model::kinds::DdrReport>;
}

fn main() {}
