//! An Invoke kind (content location) cannot be posted: its reply would be lost.
use cmmp_model::kinds::ContentLocation;
use cmmp_model::{Invoke, Post};

// A stand-in sender with the bounds of the transport client.
fn invoke<K: Invoke>(_kind: &K) -> Option<K::Reply> {
    None
}
fn post<K: Post>(_kind: &K) {}

fn send(request: &ContentLocation) {
    let _ = invoke(request);
    post(request);
}

fn main() {}
