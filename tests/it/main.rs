//! End-to-end tests over loopback: `cmmp-transport` as the client, `cmmp-emulator` as the
//! management point, one module per behaviour group (house style §10, HS-80, HS-83). Every
//! test starts its own emulator on 127.0.0.1 port 0 with an in-memory site (one uses a site
//! file), so tests run in parallel and never share state; nothing sleeps.

mod admin;
mod framing;
mod inventory;
mod location;
mod policy;
mod registration;
mod rules;
mod support;
#[path = "../shared/temp_dir.rs"]
mod temp_dir;
