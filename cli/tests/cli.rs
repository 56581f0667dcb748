//! The `cmmp` binary, run as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn cmmp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cmmp")).args(args).output().expect("cmmp runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[path = "../../tests/shared/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

#[test]
fn demo_with_five_clients_passes_its_checks() {
    let dir = TempDir::new("cli-demo");
    let db = dir.join("site.db");
    let out = cmmp(&["demo", "--clients", "5", "--db", db.to_str().unwrap(), "--keep"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("all checks passed"), "{t}");
    assert!(t.contains("clients registered                      6          6  ok"), "{t}");
    assert!(t.contains(&format!("site database kept at {}", db.display())), "{t}");
    assert!(db.exists());
}

#[test]
fn identity_new_then_show_and_never_overwrite() {
    let temp = TempDir::new("cli-identity");
    let dir = temp.join("id");
    let out = cmmp(&["identity", "new", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cmmp(&["identity", "show", "--dir", dir.to_str().unwrap()]);
    assert!(
        text(&out).contains("signing certificate:    ConfigMgr Client (KeyType 1"),
        "{}",
        text(&out)
    );
    let again = cmmp(&["identity", "new", "--dir", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(4), "{}", text(&again));
    assert!(text(&again).contains("an identity already exists here"));
}

#[test]
fn wire_decode_reads_a_golden_request_and_names_a_broken_one() {
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../transport/tests/wire/DdrReport.request.bin");
    let out = cmmp(&["wire", "decode", golden.to_str().unwrap()]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("CCM_POST /ccm_system/request"), "{t}");
    assert!(t.contains("== body (DdrReport)"), "{t}");
    assert!(t.contains("attachment {00000000-0000-0000-0000-000000000003}"), "{t}");

    let dir = TempDir::new("cli-wire");
    let broken = dir.join("broken.bin");
    let mut bytes = std::fs::read(&golden).unwrap();
    bytes.truncate(bytes.len() - 40);
    std::fs::write(&broken, bytes).unwrap();
    let out = cmmp(&["wire", "decode", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("error:") && t.contains("CCM_POST /ccm_system/request request:"), "{t}");
    assert!(t.contains("multipart body ends before its close delimiter"), "{t}");
}

#[test]
fn bad_arguments_exit_two_with_help() {
    let out = cmmp(&["demo", "--clients", "many"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("invalid value 'many'"), "{}", text(&out));
}
