//! Two kinds share the `Report` root (DDR and hardware inventory are Post kinds) and two
//! share `MP_LocationManager` (content and WSUS location are Invoke kinds with their own
//! replies).
use cmmp_model::kinds::{ContentLocation, DdrReport, HinvReport, WsusLocation};
use cmmp_model::location::{ContentLocationReply, WsusLocationReply};
use cmmp_model::{Endpoint, Invoke, Post};

// A stand-in sender with the bounds of the transport client.
fn invoke<K: Invoke>(_kind: &K) -> Option<K::Reply> {
    None
}
fn post<K: Post>(_kind: &K) {}

fn send(ddr: &DdrReport, hinv: &HinvReport, content: &ContentLocation, wsus: &WsusLocation) {
    post(ddr);
    post(hinv);
    let _: Option<ContentLocationReply> = invoke(content);
    let _: Option<WsusLocationReply> = invoke(wsus);
    assert_eq!(ContentLocation::ENDPOINT, WsusLocation::ENDPOINT);
    assert_ne!(DdrReport::ENDPOINT, HinvReport::ENDPOINT);
}

fn main() {
    let _ = send;
}
