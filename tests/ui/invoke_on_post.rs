//! A Post kind (a DDR) cannot be sent with invoke: it has no typed reply.
use cmmp_model::kinds::DdrReport;
use cmmp_model::{Invoke, Post};

// A stand-in sender with the bounds of the transport client.
fn invoke<K: Invoke>(_kind: &K) -> Option<K::Reply> {
    None
}
fn post<K: Post>(_kind: &K) {}

fn send(ddr: &DdrReport) {
    post(ddr);
    let _ = invoke(ddr);
}

fn main() {}
