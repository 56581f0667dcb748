//! Every subcommand of the `cmmp` binary against an emulator it serves itself on loopback
//! (`cmmp emulator serve --listen 127.0.0.1:0`): each one's happy path and its clearest
//! failure, and `wire encode` byte for byte against the transport's golden requests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use cmmp_model::MessageExt;

fn cmmp(args: &[&str]) -> Output {
    cmmp_with(args, &[])
}

fn cmmp_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cmmp"));
    command.args(args).env_remove("CMMP_WINDOWS_PASSWORD");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("cmmp runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The arguments of a command line; the paths in these tests hold no white space (checked).
fn split(command: &str) -> Vec<&str> {
    command.split_whitespace().collect()
}

/// Runs `cmmp COMMAND`, expects success, returns stdout and stderr.
fn ok(command: &str) -> String {
    let out = cmmp(&split(command));
    assert!(out.status.success(), "cmmp {command}:\n{}", text(&out));
    text(&out)
}

/// Runs `cmmp COMMAND`, expects exit `code`, returns stdout and stderr.
fn fails(code: i32, command: &str) -> String {
    let out = cmmp(&split(command));
    assert_eq!(out.status.code(), Some(code), "cmmp {command}:\n{}", text(&out));
    text(&out)
}

/// Runs `cmmp --json COMMAND`, expects success, returns stdout as JSON.
fn json(command: &str) -> serde_json::Value {
    let out = cmmp(&split(&format!("--json {command}")));
    assert!(out.status.success(), "cmmp --json {command}:\n{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn doc(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/documents").join(path);
    let p = p.display().to_string();
    assert!(!p.contains(char::is_whitespace), "these tests need a checkout path without spaces");
    p
}

#[path = "../../tests/shared/temp_dir.rs"]
mod temp_dir;

/// A temporary directory (removed on drop) whose paths go on command lines.
struct Temp(temp_dir::TempDir);

impl Temp {
    fn new(name: &str) -> Self {
        Self(temp_dir::TempDir::new(&format!("cmd-{name}")))
    }

    fn path(&self, name: &str) -> String {
        let p = self.0.join(name).display().to_string();
        assert!(!p.contains(char::is_whitespace), "these tests need a temp dir without spaces");
        p
    }
}

/// `cmmp emulator serve` in the background; killed on drop.
struct Emulator {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
}

impl Emulator {
    fn start(dir: &Temp, approval: &str) -> Self {
        Self::with_site(dir, approval, None)
    }

    fn with_site(dir: &Temp, approval: &str, site: Option<&str>) -> Self {
        let site = site.map(|s| vec!["--site", s]).unwrap_or_default();
        Self::with_args(dir, approval, &site).0
    }

    /// Serves with `args` added; also returns the stdout line after the address line.
    fn with_args(dir: &Temp, approval: &str, args: &[&str]) -> (Self, String) {
        Self::spawn(dir, approval, &[], args, Stdio::null())
    }

    /// Serves with `-v`, its stderr going to the file `log`.
    fn logging(dir: &Temp, approval: &str, log: &str) -> Self {
        let file = std::fs::File::create(log).expect("a log file");
        Self::spawn(dir, approval, &["-v"], &[], file.into()).0
    }

    fn spawn(
        dir: &Temp,
        approval: &str,
        global: &[&str],
        args: &[&str],
        stderr: Stdio,
    ) -> (Self, String) {
        let db = dir.path("site.db");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cmmp"))
            .args(global)
            .args(["emulator", "serve", "--listen", "127.0.0.1:0", "--db", &db])
            .args(["--approval", approval])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the emulator starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        let mut next = String::new();
        stdout.read_line(&mut next).unwrap();
        (Self { child, _stdout: stdout, url }, next)
    }

    /// Serves HTTPS too (`--https` and `args`): the `https://` URL and the `--ca` file.
    fn with_https(dir: &Temp, args: &[&str]) -> (Self, String, String) {
        let mut all = vec!["--https", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (emulator, line) = Self::with_args(dir, "auto", &all);
        let word = |prefix: &str| {
            line.split_whitespace()
                .skip_while(|w| *w != prefix)
                .nth(1)
                .unwrap_or_else(|| panic!("no {prefix} in {line:?}"))
                .to_owned()
        };
        let url = line.split_whitespace().next().unwrap_or_default().to_owned();
        assert!(url.starts_with("https://127.0.0.1:"), "{line}");
        (emulator, url, word("--ca"))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cmmp -v emulator serve` says on stderr what it refused, from whom and why.
#[test]
fn a_verbose_emulator_logs_what_it_refuses() {
    let dir = Temp::new("verbose");
    let log = dir.path("serve.log");
    let emu = Emulator::logging(&dir, "auto", &log);
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    let stranger = "GUID:00000000-0000-0000-0000-000000000001";
    fails(3, &format!("policy --mp {} --identity {id} --client-id {stranger}", emu.url));
    drop(emu);
    let t = std::fs::read_to_string(&log).unwrap();
    let line = t.lines().find(|l| l.contains("refused")).unwrap_or_else(|| panic!("{t}"));
    for part in ["MP_PolicyManager", "PolicyAssignments", stranger, "unknown-client"] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
}

/// The ISV proxy workflow through the CLI, one command at a time, with the admin surface.
#[test]
fn isv_proxy_workflow_through_every_command() {
    let dir = Temp::new("workflow");
    let emu = Emulator::start(&dir, "trusted");
    let mp = emu.url.as_str();
    let proxy = dir.path("proxy");
    ok(&format!("identity new --dir {proxy}"));

    // The administrator imports the proxy certificate; the proxy registers itself.
    let t = ok(&format!("emulator import-proxy --admin {mp} {proxy}/signing.pem"));
    assert!(t.contains("ISV proxy certificate imported"), "{t}");
    let t = ok(&format!(
        "register --mp {mp} --site P01 --identity {proxy} --agent-type proxy --name ISVPROXY"
    ));
    assert!(t.contains("registered ISVPROXY as GUID:") && t.contains("(approved)"), "{t}");
    let t = ok(&format!("identity show --dir {proxy}"));
    assert!(t.contains("registered as:          GUID:"), "{t}");

    // Two clients through the proxy; the stock site does not approve them.
    let v = json(&format!(
        "register --mp {mp} --site P01 --proxy {proxy} --name MAC-001 --name MAC-002 \
         --domain corp.example"
    ));
    let clients = v["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0]["approval"], "not approved");
    let c1 = clients[0]["smsid"].as_str().unwrap().to_owned();
    let listed = std::fs::read_to_string(format!("{proxy}/clients.txt")).unwrap();
    assert!(listed.contains(&format!("MAC-001\t{c1}")), "{listed}");
    let as_c1 = format!("--mp {mp} --identity {proxy} --client-id {c1}");

    // Unapproved: no policy, and the error says why and what to do.
    let t = fails(3, &format!("policy {as_c1}"));
    assert!(t.contains("empty body") && t.contains(&format!("cmmp emulator approve {c1}")), "{t}");

    // The admin lists, approves; policy then arrives and downloads.
    let t = ok(&format!("emulator clients --admin {mp}"));
    assert!(t.contains("MAC-001") && t.contains("proxy client  not approved"), "{t}");
    assert!(t.contains("3 client record(s)"), "{t}");
    ok(&format!("emulator approve --admin {mp} {c1}"));
    let out = dir.path("policies");
    let t = ok(&format!("policy {as_c1} --download --out {out}"));
    assert!(t.contains("2 policy assignment(s)") && t.contains("1 rule(s)"), "{t}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);

    // A document for another client is refused before it is sent.
    let t = fails(2, &format!("send ddr {as_c1} --from {}", doc("ddr/full.xml")));
    assert!(t.contains("the document is for client GUID:5D0F1D6E") && t.contains("--stamp"), "{t}");

    // Reports: XML and JSON input, several files with a progress bar, attachments.
    let t = ok(&format!("send ddr {as_c1} --stamp --from {}", doc("ddr/full.xml")));
    assert!(t.contains("DdrReport") && t.contains("tracking ID {"), "{t}");
    let state = cmmp_model::state::Report::from_xml(
        &std::fs::read_to_string(doc("state/app-and-heartbeat.xml")).unwrap(),
    )
    .unwrap();
    let json_file = dir.path("state.json");
    std::fs::write(&json_file, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    ok(&format!("send state {as_c1} --stamp --from {json_file}"));
    let sinv = doc("sinv/full.xml");
    let t = ok(&format!("send sinv {as_c1} --stamp --from {sinv} --from {sinv}"));
    assert_eq!(t.matches("delivered").count(), 2, "{t}");
    let collected = dir.path("hosts.txt");
    std::fs::write(&collected, "127.0.0.1 localhost\n").unwrap();
    ok(&format!(
        "send filecoll {as_c1} --stamp --from {} --attach 1={collected}",
        doc("filecoll/full.xml")
    ));

    // What the site stored, through the admin surface.
    let t = ok(&format!("emulator messages --admin {mp} {c1}"));
    for kind in ["DdrReport", "StateMessages", "SinvReport", "FileCollection", "PolicyAssignments"]
    {
        assert!(t.contains(kind), "{kind} missing from\n{t}");
    }
    // Only the policy request made before approval was refused.
    for line in t.lines().filter(|l| l.contains("refused")) {
        assert!(line.contains("PolicyAssignments"), "{line}");
    }
    let t = ok(&format!("emulator inventory --admin {mp} {c1}"));
    assert!(!t.contains(" 0 inventory instance(s)") && t.contains("inventory instance(s)"), "{t}");
    let t = ok(&format!("emulator clients --admin {mp} {c1}"));
    assert!(t.contains("MAC-001") && t.contains("corp.example"), "{t}");

    // Blocking: the site refuses the client's messages and says so in its log.
    ok(&format!("emulator block --admin {mp} {c1}"));
    ok(&format!("send ddr {as_c1} --stamp --from {}", doc("ddr/full.xml")));
    let t = ok(&format!("emulator messages --admin {mp} {c1} --limit 1"));
    assert!(t.contains("DdrReport") && t.contains("refused"), "{t}");
    ok(&format!("emulator unblock --admin {mp} {c1}"));
    let t = fails(
        3,
        &format!("emulator approve --admin {mp} GUID:00000000-0000-0000-0000-000000000001"),
    );
    assert!(t.contains("HTTP 404") && t.contains("no client"), "{t}");

    // Conflicts (none under the stock site) and faults.
    let t = ok(&format!("emulator resolve --admin {mp}"));
    assert!(t.contains("0 conflicting record(s)"), "{t}");
    let t = ok(&format!(
        "emulator faults --admin {mp} add --endpoint MP_PolicyManager --kind html-500 --remaining 1"
    ));
    assert!(t.contains("html-500 on MP_PolicyManager"), "{t}");
    let t = ok(&format!("emulator faults --admin {mp}"));
    assert!(t.contains("1 more request(s)"), "{t}");
    let t = fails(3, &format!("policy {as_c1}"));
    assert!(t.contains("HTTP 500"), "{t}");
    ok(&format!("emulator faults --admin {mp} clear"));
    ok(&format!("policy {as_c1}"));
}

/// A secret policy (flags 4) from a site file: downloaded with signed token headers,
/// decrypted with the identity's encryption key, and written readable by its owner only.
#[test]
fn a_secret_policy_downloads_decrypted_into_a_private_file() {
    const NAA: &str = r#"<Policy PolicyID="NAA01" PolicyVersion="2.00" PolicyType="Machine" PolicySource="SMS:P01" SchemaVersion="1.00"><PolicyRule PolicyRuleID="{0A1B2C3D-0000-4000-8000-000000000001}"><PolicyAction PolicyActionType="WMI-XML"><instance class="CCM_NetworkAccessAccount"><property name="NetworkAccessUsername" type="8"><value>CORP\svc-naa</value></property></instance></PolicyAction></PolicyRule></Policy>"#;
    let dir = Temp::new("secret");
    let site = dir.path("site.toml");
    let toml = format!(
        "site_code = \"P01\"\n\n[[policies]]\nassignment_id = \"{{5E0A1B2C-0000-4000-8000-00000000000A}}\"\n\
         policy_id = \"NAA01\"\nversion = \"2.00\"\ncategory = \"NAAConfig\"\nflags = 4\nbody = '{NAA}'\n"
    );
    std::fs::write(&site, toml).unwrap();
    let emu = Emulator::with_site(&dir, "auto", Some(&site));
    let mp = emu.url.as_str();
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    ok(&format!("register --mp {mp} --site P01 --identity {id} --name LNX01"));
    let out = dir.path("policies");
    let t = ok(&format!("policy --mp {mp} --identity {id} --name LNX01 --download --out {out}"));
    assert!(t.contains("NAA01 v2.00 NAAConfig flags 4") && t.contains("decrypted"), "{t}");
    let file = Path::new(&out).join("NAA01.2.00.xml");
    let body = std::fs::read_to_string(&file).unwrap();
    assert!(body.contains("CCM_NetworkAccessAccount") && body.contains("svc-naa"), "{body}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Field notes M18: a restart that moves the site from mixed to native mode deletes the
/// records with self-signed certificates, says so, and the client must register again.
#[test]
fn a_switch_to_native_mode_resets_self_signed_clients() {
    let dir = Temp::new("reset");
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    let emu = Emulator::start(&dir, "auto");
    ok(&format!("register --mp {} --site P01 --identity {id} --name LNX01", emu.url));
    drop(emu);
    let site = dir.path("native.toml");
    std::fs::write(&site, "mode = \"native\"\n").unwrap();
    let (emu, line) = Emulator::with_args(&dir, "auto", &["--site", &site]);
    assert!(line.contains("from mixed to native mode: 1 client record(s)"), "{line}");
    let t = ok(&format!("emulator clients --admin {}", emu.url));
    assert!(!t.contains("LNX01"), "{t}");
    let t = ok(&format!("register --mp {} --site P01 --identity {id} --name LNX01", emu.url));
    assert!(t.contains("registered LNX01 as GUID:"), "{t}");
    drop(emu);
    // Native again: nothing to reset.
    let (_emu, line) = Emulator::with_args(&dir, "auto", &["--site", &site]);
    assert!(line.starts_with("site database:"), "{line}");
}

/// `--json emulator serve` names the records a switch to native mode deleted
/// (`certificate_reset`), and an empty list when nothing was reset.
#[test]
fn the_json_serve_line_names_the_reset_records() {
    let dir = Temp::new("reset-json");
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    let emu = Emulator::start(&dir, "auto");
    let t = ok(&format!("register --mp {} --site P01 --identity {id} --name LNX01", emu.url));
    let smsid = t
        .split_whitespace()
        .find(|w| w.starts_with("GUID:"))
        .unwrap_or_else(|| panic!("no SMSID in {t:?}"))
        .to_owned();
    drop(emu);
    let site = dir.path("native.toml");
    std::fs::write(&site, "mode = \"native\"\n").unwrap();
    let serve = |dir: &Temp| {
        let db = dir.path("site.db");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cmmp"))
            .args(["--json", "emulator", "serve", "--listen", "127.0.0.1:0", "--db", &db])
            .args(["--approval", "auto", "--site", &site])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        serde_json::from_str::<serde_json::Value>(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    let first = serve(&dir);
    assert!(first["listening"].as_str().is_some_and(|u| u.starts_with("http://127.0.0.1:")));
    assert_eq!(first["certificate_reset"], serde_json::json!([smsid]), "{first}");
    // Native again: nothing to reset.
    let again = serve(&dir);
    assert_eq!(again["certificate_reset"], serde_json::json!([]), "{again}");
}

/// `--vdir windowsauth --windows-user`: an NTLMv2 logon against the site's Windows accounts
/// makes a trusted registration, approved at once under the stock approval policy.
#[test]
fn windows_authentication_on_the_windowsauth_vdir() {
    let dir = Temp::new("ntlm");
    let site = dir.path("site.toml");
    std::fs::write(
        &site,
        "[[windows_accounts]]\ndomain = \"CORP\"\nuser = \"LNX01$\"\npassword = \"s3cret!\"\n",
    )
    .unwrap();
    let emu = Emulator::with_site(&dir, "trusted", Some(&site));
    let mp = emu.url.as_str();
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    let register = format!(
        "register --mp {mp} --site P01 --identity {id} --name LNX01 --vdir windowsauth \
         --windows-user CORP\\LNX01$"
    );
    let t = text(&cmmp_with(&split(&register), &[("CMMP_WINDOWS_PASSWORD", "wrong")]));
    assert!(t.contains("authentication failed for CORP\\LNX01$"), "{t}");
    let out = cmmp(&split(&register));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("CMMP_WINDOWS_PASSWORD"), "{}", text(&out));
    let out = cmmp_with(&split(&register), &[("CMMP_WINDOWS_PASSWORD", "s3cret!")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("(approved)"), "{}", text(&out));
    // A logon needs the windowsauth vdir; revocation checking needs HTTPS.
    let t = fails(2, &format!("mp info --mp {mp} --windows-user CORP\\x"));
    assert!(t.contains("add --vdir windowsauth"), "{t}");
    let t = fails(2, &format!("mp info --mp {mp} --crl-check"));
    assert!(t.contains("HTTPS") || t.contains("https"), "{t}");
}

/// A self-signed clientAuth certificate and its key (PEM): a native-mode client's TLS
/// certificate, and the root the emulator is told to trust for it.
fn client_tls_pair() -> (Vec<u8>, Vec<u8>) {
    use openssl::x509::extension::ExtendedKeyUsage;
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "LNX01").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&openssl::bn::BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap()).unwrap();
    b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap()).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
    (b.build().to_pem().unwrap(), key.private_key_to_pem_pkcs8().unwrap())
}

/// `emulator serve --https`: a self-signed certificate made once and kept next to the
/// database, which clients trust with `--ca`; with `--client-ca`, the default vdir wants a
/// TLS client certificate (`--client-cert`) and the altauth vdir does not.
#[test]
fn https_listener_with_a_kept_certificate_and_client_certificates() {
    let dir = Temp::new("https");
    let (cert, key) = client_tls_pair();
    let (client_cert, client_key) = (dir.path("client.pem"), dir.path("client.key"));
    std::fs::write(&client_cert, cert).unwrap();
    std::fs::write(&client_key, key).unwrap();
    let (emu, https, ca) = Emulator::with_https(&dir, &["--client-ca", &client_cert]);
    assert_eq!(ca, dir.path("site.tls.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path("site.tls.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    let register = format!("register --mp {https} --ca {ca} --site P01 --identity {id}");

    // Without a client certificate: the MP's 403, and what to do about it.
    let t = fails(3, &format!("{register} --name LNX01"));
    assert!(t.contains("HTTP 403") && t.contains("--client-cert"), "{t}");
    let t = ok(&format!(
        "{register} --name LNX01 --client-cert {client_cert} --client-key {client_key}"
    ));
    assert!(t.contains("registered LNX01 as GUID:"), "{t}");
    let id2 = dir.path("id2");
    ok(&format!("identity new --dir {id2}"));
    let t = ok(&format!(
        "register --mp {https} --ca {ca} --site P01 --identity {id2} --name LNX02 --vdir altauth"
    ));
    assert!(t.contains("registered LNX02 as GUID:"), "{t}");
    let t = ok(&format!("emulator clients --admin {}", emu.url));
    assert!(t.contains("LNX01") && t.contains("LNX02"), "{t}");
    // A client that does not trust the listener sends nothing.
    let t = fails(3, &format!("mp info --mp {https}"));
    assert!(t.contains("TLS") && t.contains("--ca"), "{t}");
    let t = fails(
        2,
        &format!("mp info --mp {} --client-cert {client_cert} --client-key {client_key}", emu.url),
    );
    assert!(t.contains("https://"), "{t}");

    // The certificate is kept: the next start serves the same one.
    let pem = std::fs::read(&ca).unwrap();
    drop(emu);
    let (_emu, https, _) = Emulator::with_https(&dir, &[]);
    assert_eq!(std::fs::read(&ca).unwrap(), pem);
    let t = ok(&format!("mp info --mp {https} --ca {ca}"));
    assert!(t.contains("P01"), "{t}");
    // Half a kept pair is refused rather than replaced.
    drop(_emu);
    std::fs::remove_file(dir.path("site.tls.key")).unwrap();
    let db = dir.path("site.db");
    let t = fails(2, &format!("emulator serve --listen 127.0.0.1:0 --db {db} --https 127.0.0.1:0"));
    assert!(t.contains("go together"), "{t}");
}

/// `identity new --pkcs12`: a `.pfx` with its password from `CMMP_PKCS12_PASSWORD`; a wrong
/// password is bad input and writes nothing.
#[test]
fn identity_new_imports_a_pkcs12_archive() {
    let dir = Temp::new("pkcs12");
    let (cert, key) = client_tls_pair();
    let cert = openssl::x509::X509::from_pem(&cert).unwrap();
    let key = openssl::pkey::PKey::private_key_from_pem(&key).unwrap();
    let archive = openssl::pkcs12::Pkcs12::builder()
        .name("LNX01")
        .pkey(&key)
        .cert(&cert)
        .build2("pfx-secret")
        .unwrap();
    let pfx = dir.path("lnx01.pfx");
    std::fs::write(&pfx, archive.to_der().unwrap()).unwrap();
    let id = dir.path("id");
    let new = ["identity", "new", "--dir", &id, "--pkcs12", &pfx];

    let out = cmmp_with(&new, &[("CMMP_PKCS12_PASSWORD", "wrong")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("CMMP_PKCS12_PASSWORD"), "{}", text(&out));
    assert!(!Path::new(&id).join("signing.key").exists());

    let out = cmmp_with(&new, &[("CMMP_PKCS12_PASSWORD", "pfx-secret")]);
    assert!(out.status.success(), "{}", text(&out));
    let t = ok(&format!("identity show --dir {id}"));
    assert!(t.contains("signing certificate:    LNX01 (KeyType 1"), "{t}");
    let signing = std::fs::read(Path::new(&id).join("signing.pem")).unwrap();
    assert_eq!(
        openssl::x509::X509::from_pem(&signing).unwrap().to_der().unwrap(),
        cert.to_der().unwrap()
    );
    let out =
        cmmp(&split(&format!("identity new --dir {} --pkcs12 {pfx} --pki a b", dir.path("x"))));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // PEM files that do not hold a certificate and key are bad input too.
    let t = fails(2, &format!("identity new --dir {} --pki {pfx} {pfx}", dir.path("y")));
    assert!(t.contains("does not parse"), "{t}");
}

#[test]
fn emulator_serve_names_what_is_wrong_with_a_site_file() {
    let dir = Temp::new("badsite");
    let site = dir.path("site.toml");
    std::fs::write(&site, "site_code = \"P01\"\napproval = \"sometimes\"\n").unwrap();
    let db = dir.path("x.db");
    let t = fails(2, &format!("emulator serve --listen 127.0.0.1:0 --db {db} --site {site}"));
    assert!(t.contains("site.toml:2:12: unknown variant `sometimes`"), "{t}");
    assert!(!Path::new(&db).exists(), "no database is created for a bad site file");
}

#[test]
fn locate_and_mp_info() {
    let dir = Temp::new("locate");
    let emu = Emulator::start(&dir, "auto");
    let mp = emu.url.as_str();
    let at = "--ip 10.1.2.3 --subnet 10.1.2.0";
    let t = ok(&format!("locate content --mp {mp} --site P01 --package P0100012 {at}"));
    assert!(t.contains("LOCAL  http://localhost/SMS_DP_SMSPKG$/P0100012"), "{t}");
    let t = ok(&format!("locate wsus --mp {mp} --site P01 {at}"));
    assert!(t.contains("http://localhost:8530"), "{t}");
    let t = ok(&format!("locate mp --mp {mp} --site P01 --all"));
    assert!(t.contains("site P01") && t.contains("localhost"), "{t}");
    ok(&format!("locate mp --mp {mp} --site P01"));
    let t = ok(&format!("locate site --mp {mp} --site P01"));
    assert!(t.contains("site P01 version"), "{t}");
    let t = ok(&format!("locate site --mp {mp} {at}"));
    assert!(t.contains("assigned site P01"), "{t}");
    let v = json(&format!("locate site --mp {mp} --site XYZ"));
    assert!(v.get("site").is_none_or(serde_json::Value::is_null), "{v}");
    let t = fails(2, &format!("locate content --mp {mp} --site P0001 --package P0100012"));
    assert!(t.contains("not a site code"), "{t}");

    let t = ok(&format!("mp info --mp {mp}"));
    assert!(t.contains("site code: P01"), "{t}");
    assert!(t.contains("signing certificate: cmmp emulator MP"), "{t}");
    let v = json(&format!("mp info --mp {mp}"));
    assert!(v["mplist"]["mp"].as_array().is_some_and(|a| !a.is_empty()), "{v}");
}

#[test]
fn failures_name_the_cause_and_the_fix() {
    let dir = Temp::new("failures");
    let id = dir.path("id");
    ok(&format!("identity new --dir {id}"));
    let ddr = doc("ddr/full.xml");

    // Unreachable MP: a network error and where to look.
    let dead = "http://127.0.0.1:1";
    let t = fails(3, &format!("register --mp {dead} --site P01 --identity {id} --timeout 5"));
    assert!(t.contains("127.0.0.1:1") && t.contains("hint: check --mp"), "{t}");
    let t = fails(3, &format!("mp info --mp {dead}"));
    assert!(t.contains("hint: check --mp"), "{t}");
    let t = fails(3, &format!("emulator clients --admin {dead}"));
    assert!(t.contains("is `cmmp emulator serve` running there?"), "{t}");
    let t = fails(2, &format!("register --mp mp01 --site P01 --identity {id}"));
    assert!(t.contains("expected http://HOST[:PORT]"), "{t}");

    let emu = Emulator::start(&dir, "auto");
    let mp = emu.url.as_str();
    // The wrong site.
    let t = fails(2, &format!("register --mp {mp} --site ABC --identity {id}"));
    assert!(t.contains("serves site P01, not ABC"), "{t}");
    // Sending before registering.
    let t = fails(2, &format!("send ddr --mp {mp} --identity {id} --from {ddr}"));
    assert!(t.contains("has no SMSID yet: register it first"), "{t}");
    // A registered client (auto approval) with malformed and wrong-kind input.
    let t = ok(&format!("register --mp {mp} --site P01 --identity {id} --name LNX01"));
    assert!(t.contains("(approved)"), "{t}");
    let send = format!("--mp {mp} --identity {id} --stamp");
    let bad = dir.path("bad.xml");
    std::fs::write(&bad, "<Report><ReportHeader>").unwrap();
    let t = fails(2, &format!("send ddr {send} --from {bad}"));
    assert!(t.contains("bad.xml: not a DdrReport document"), "{t}");
    let bad_json = dir.path("bad.json");
    std::fs::write(&bad_json, "{\"report_header\": 1}").unwrap();
    let t = fails(2, &format!("send state {send} --from {bad_json}"));
    assert!(t.contains("not a StateMessages as JSON"), "{t}");
    let t = fails(2, &format!("send hinv {send} --from {ddr}"));
    assert!(t.contains("is not a HinvReport") && t.contains("It looks like a DDR (ddr)"), "{t}");
    // A good file then a bad one: nothing is sent.
    let t = fails(2, &format!("send ddr {send} --from {ddr} --from {bad}"));
    assert!(t.contains("bad.xml"), "{t}");
    let t = fails(4, &format!("send ddr {send} --from {}", dir.path("missing.xml")));
    assert!(t.contains("missing.xml"), "{t}");
    // None of the failed sends reached the site; the good one does, and --verbose logs it.
    let t = ok(&format!("--verbose send ddr {send} --from {ddr}"));
    assert!(t.contains("posting") && t.contains("DdrReport"), "{t}");
    let t = ok(&format!("emulator messages --admin {mp}"));
    assert_eq!(t.matches("DdrReport").count(), 1, "{t}");
    assert!(!t.contains("refused"), "{t}");
}

/// `wire encode` of every kind is byte for byte the transport's golden request, and
/// `wire decode` reads it back and verifies its signature.
#[test]
fn wire_encode_matches_the_transport_goldens() {
    let dir = Temp::new("wire");
    let wire = Path::new(env!("CARGO_MANIFEST_DIR")).join("../transport/tests/wire");
    let id = dir.path("id");
    std::fs::create_dir_all(&id).unwrap();
    let key = Path::new(&id).join("signing.key");
    std::fs::copy(wire.join("test-key.pem"), &key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let filecoll = format!(
        "--attach 1={} --attach 2={}",
        file("file1", b"[Settings]\r\nA=1\r\n"),
        file("file2", &[0u8, 1, 2, 255])
    );
    let mif = format!(
        "--attach 1={}",
        file("mif", b"START COMPONENT\r\nNAME = \"WORKSTATION\"\r\nEND COMPONENT\r\n")
    );
    let cases = [
        ("registration", "ClientRegistration", "registration/request.xml", ""),
        ("policy", "PolicyAssignments", "policy/request-machine.xml", ""),
        ("content", "ContentLocation", "location/content-request.xml", ""),
        ("wsus", "WsusLocation", "location/wsus-request-lowercase.xml", ""),
        ("local-mp", "LocalMpLocation", "location/localmp-request.xml", ""),
        ("enumerate-mp", "EnumerateMpLocation", "location/enumerate-mp-request.xml", ""),
        ("site-info", "SiteInformation", "location/siteinfo-request.xml", ""),
        ("assigned-site", "AssignedSite", "location/assignedsite-request.xml", ""),
        ("ddr", "DdrReport", "ddr/full.xml", ""),
        ("hinv", "HinvReport", "hinv/full.xml", ""),
        ("sinv", "SinvReport", "sinv/full.xml", ""),
        ("metering", "SoftwareMetering", "metering/full.xml", ""),
        ("state", "StateMessages", "state/app-and-heartbeat.xml", ""),
        ("status", "StatusMessage", "status/ccmhttp-status.xml", ""),
        ("filecoll", "FileCollection", "filecoll/full.xml", &filecoll),
        ("idmif", "IdmifCollection", "idmif/full.xml", &mif),
    ];
    let post = ["ddr", "hinv", "sinv", "metering", "state", "status", "filecoll", "idmif"];
    for (kind, name, document, attach) in cases {
        let out = dir.path(&format!("{name}.bin"));
        ok(&format!(
            "wire encode {kind} --from {} --identity {id} --mp mp01.corp.example \
             --source-host WS01 --client-id GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10 \
             --message-id {{5DD100CD-DF1D-45F5-BA17-A327F43465F8}} \
             --sent-time 2025-01-31T10:00:00Z --out {out} {attach}",
            doc(document)
        ));
        let golden = std::fs::read(wire.join(format!("{name}.request.bin"))).unwrap();
        assert!(std::fs::read(&out).unwrap() == golden, "{name}: wire encode differs from golden");
        let t = ok(&format!("wire decode {out}"));
        assert!(t.contains(&format!("== body ({name})")), "{t}");
        let verified = t.contains("PayloadSignature verifies with the PublicKey it carries");
        if post.contains(&kind) {
            assert!(verified, "{name} must be signed and verify: {t}");
        } else {
            assert!(verified || t.contains("unsigned; byte ranges check out"), "{name}: {t}");
        }
    }

    // A kind that must be signed, without an identity.
    let x = dir.path("x.bin");
    let t =
        fails(2, &format!("wire encode ddr --from {} --mp mp01 --out {x}", doc("ddr/full.xml")));
    assert!(t.contains("must be signed"), "{t}");
    // A tampered request: refused, and the message says which request it was.
    let mut bytes = std::fs::read(wire.join("StateMessages.request.bin")).unwrap();
    let at = bytes.len() - 300;
    bytes[at] ^= 0x01;
    let tampered = dir.path("tampered.bin");
    std::fs::write(&tampered, &bytes).unwrap();
    let t = fails(2, &format!("wire decode {tampered}"));
    assert!(t.contains("CCM_POST /ccm_system/request request:"), "{t}");
}

/// `wire decode` of captured replies: a Sync reply's header and body, a `NoReply`, and a
/// truncated one named as such.
#[test]
fn wire_decode_reads_captured_replies() {
    use cmmp_transport::reply::{encode_no_reply, encode_sync_reply};
    let dir = Temp::new("replies");
    let capture = |name: &str, body: &[u8], truncate: usize| {
        let mut bytes = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            cmmp_transport::multipart::content_type(),
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes.truncate(bytes.len() - truncate);
        let path = dir.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let reply = std::fs::read_to_string(doc("location/siteinfo-reply.xml")).unwrap();
    let header = cmmp_model::msg::Msg::new("SccmMessaging".to_owned());
    let sync = encode_sync_reply(header, &reply, true, None).unwrap();

    let t = ok(&format!("wire decode {}", capture("sync.bin", &sync, 0)));
    assert!(t.starts_with("HTTP 200") && t.contains("== header (Msg)"), "{t}");
    assert!(t.contains("<SiteInfoReply SchemaVersion=\"1.00\"><Site><SiteCode>P01"), "{t}");
    let t = ok(&format!("wire decode {}", capture("noreply.bin", &encode_no_reply(), 0)));
    assert!(t.contains("NoReply: the MP accepted an asynchronous (Post) message"), "{t}");
    let t = fails(2, &format!("wire decode {}", capture("cut.bin", &sync, 10)));
    assert!(t.contains("Content-Length says") && t.contains("truncated"), "{t}");
}
