//! Generates the message types from `../schemas` into `OUT_DIR` (house style HS-10).

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let config = cmmp_codegen::Config::new("../schemas", out_dir);
    if let Err(e) = cmmp_codegen::compile(&config) {
        println!("cargo::error={e}");
    }
}
