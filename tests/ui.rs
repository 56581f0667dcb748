//! Compile-fail cases for the type-level rules of message kinds (house style HS-81).
//! Re-bless the `.stderr` files with `TRYBUILD=overwrite cargo test -p cmmp-tests --test ui`
//! when rustc's wording changes.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/invoke_on_post.rs");
    t.compile_fail("ui/post_on_invoke.rs");
    t.compile_fail("ui/bare_document.rs");
    t.compile_fail("ui/wrong_reply.rs");
    t.compile_fail("ui/missing_required_field.rs");
    t.compile_fail("ui/contradictory_kind.rs");
    t.compile_fail("ui/foreign_delivery.rs");
    t.pass("ui/pass.rs");
}
