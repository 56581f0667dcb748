//! A bare `Report` is not a kind: it could go to six endpoints.
use cmmp_model::ddr::Report;
use cmmp_model::{Invoke, Post};

// A stand-in sender with the bounds of the transport client.
fn invoke<K: Invoke>(_kind: &K) -> Option<K::Reply> {
    None
}
fn post<K: Post>(_kind: &K) {}

fn send(report: &Report) {
    post(report);
}

fn main() {
    let _ = invoke::<cmmp_model::kinds::ContentLocation>;
}
