//! Throughput of the `cmmp-transport` wire pipeline (issue: signed posts, large reports,
//! large replies), each compared with its ceiling measured in the same run.
//!
//! - `ddr_signed`: one signed DDR prepared with [`wire::build_request`] (encode, header-only
//!   body, UTF-16LE, zlib, `PayloadSignature`, `Msg` header, multipart) against a single
//!   RSA-2048 SHA-256 signature over its compressed payload (the per-core ceiling); a batch of
//!   [`BATCH`] DDRs for as many clients prepared on one core and across every core.
//! - `hinv_2mb`: a ~2 MB hardware inventory report through [`wire::build_request`] against
//!   [`zlib::compress`] of the same payload bytes plus one signature over the compressed bytes.
//! - `reply_1mb`: `reply::decode_sync` of a signed Sync reply whose body is a ~1 MB
//!   `ReplyAssignments` (multipart, `Msg` header, `authenticate` check against a pinned MP
//!   certificate, inflate, strict UTF-16LE, typed decode), and the stages alone.
//!
//! The signing key is `tests/wire/test-key.pem` (RSA-2048). Every [`Signer`] is built outside
//! the timed loops, so its `ClientIDSignature` is computed once, as a long-running sender
//! caches it. Before measuring, each prepared request is decoded back and its signature
//! verified.
//!
//! Run with `cargo bench -p cmmp-transport --bench pipeline`; results are in `BENCHMARKS.md`.
//! Before the criterion groups, a measuring run prints a CPU-time check (per CPU-second, the
//! divisor `openssl speed` uses) of the compared pairs, and compares `prepare_one` with
//! `openssl speed rsa2048` itself, run in a child process between rounds (skipped when there
//! is no `openssl` program); `PIPELINE_NO_CPU_CHECK=1` skips all of them.
//! It then compares the same pairs call by call ([`Interleaved`]: A B B A …, the median and
//! the trimmed mean of each side's calls), which a change of the machine's speed between
//! rounds does not move: `prepare_one` against `openssl speed`'s own timed call
//! (`EVP_PKEY_sign` of 36 bytes on a ready context) run in this process, and the HINV pipeline
//! against zlib plus one signature, each also at `compression_level` 1.
//! `PIPELINE_ONLY=ddr_signed,hinv_2mb` runs only the named groups (for profiling);
//! `PIPELINE_CPU_ROUNDS=10` runs the CPU-time check for 10 rounds instead of 3 (and the
//! call-by-call comparisons for 10 and 20 seconds instead of 3 and 6).
//!
//! `PIPELINE_COUNT=N` is for instruction counts (house style HS-85, rustls' `ci-bench`):
//! instead of measuring, each compared side of the selected groups runs exactly `N` times
//! (after one uncounted warm-up call) inside a function of its own, `count_<side>`, so that
//! valgrind's callgrind gives each side's instructions as that function's inclusive cost:
//!
//! ```sh
//! PIPELINE_COUNT=10 PIPELINE_ONLY=ddr_signed,hinv_2mb valgrind --tool=callgrind \
//!     --callgrind-out-file=/tmp/cg.out target/release/deps/pipeline-<hash> --bench '^none$'
//! callgrind_annotate --inclusive=yes /tmp/cg.out | grep count_
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cmmp_model::hinv::Report as HinvBody;
use cmmp_model::kinds::{DdrReport, HinvReport, Inbound};
use cmmp_model::msg::Msg;
use cmmp_model::policy::ReplyAssignments;
use cmmp_model::value::{BracedGuid, IsoTime, SmsId};
use cmmp_model::{Endpoint, MessageExt};
use cmmp_transport::body;
use cmmp_transport::cert;
use cmmp_transport::msg::HostName;
use cmmp_transport::multipart;
use cmmp_transport::payload::{self, Payload};
use cmmp_transport::reply::{
    self, HttpReply, Received, ReplyLimits, ReplySignature, ReplySigner, ReplyVerifier, SyncContext,
};
use cmmp_transport::sign::{HashAlgorithm, SigningKey, verify_reversed};
use cmmp_transport::wire::{
    self, DecodeLimits, Fresh, Request, Settings, Signer, client_auth_signatures, decode_request,
};
use cmmp_transport::zlib::{self, InflateLimits};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;

#[path = "../../model/benches/support/hinv_report.rs"]
mod hinv_report;
use hinv_report::Rng;

/// DDRs (one per client) in the batch workload.
const BATCH: usize = 256;
/// `PolicyAssignment`s in the large reply (about 1 MB of XML).
const REPLY_ASSIGNMENTS: usize = 2_150;
/// The client ID of the corpus DDR, replaced per client in the batch.
const CORPUS_CLIENT: &str = "GUID:5D0F1D6E-2B8C-4F3A-9C41-7E2A6B9D3F10";

fn manifest(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative).display().to_string()
}

fn read_document(relative: &str) -> String {
    let path = manifest(&format!("../model/tests/documents/{relative}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim_end_matches(['\r', '\n']).to_owned()
}

fn key() -> SigningKey {
    let path = manifest("tests/wire/test-key.pem");
    SigningKey::from_pem(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("the test key loads")
}

fn settings() -> Settings {
    Settings::new(
        HostName::new("mp01.corp.example").expect("a host name"),
        HostName::new("WS01").expect("a host name"),
    )
}

fn fresh() -> Fresh {
    Fresh {
        id: "{5DD100CD-DF1D-45F5-BA17-A327F43465F8}".parse::<BracedGuid>().expect("a GUID"),
        sent_time: "2025-01-31T10:00:00Z".parse::<IsoTime>().expect("a time"),
    }
}

/// What the reply and batch workloads draw besides the shared report generator's numbers.
trait Draw {
    /// An upper-case GUID without braces.
    fn guid(&mut self) -> String;
    /// `bytes` random bytes as upper-case hex.
    fn hex(&mut self, bytes: usize) -> String;
}

impl Draw for Rng {
    fn guid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08X}-{:04X}-4{:03X}-{:04X}-{:012X}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0x0FFF,
            0x8000 | ((b >> 48) & 0x3FFF),
            b & 0xFFFF_FFFF_FFFF
        )
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes).map(|_| format!("{:02X}", self.below(256))).collect()
    }
}

/// The DDR of the corpus for `client` (its `ClientID`s replaced).
fn ddr_for(corpus: &str, client: &SmsId) -> DdrReport {
    let text = corpus.replace(CORPUS_CLIENT, &client.to_string());
    DdrReport::from_body(<DdrReport as Endpoint>::Body::from_xml(&text).expect("the DDR decodes"))
}

/// Decodes `request` as an MP does, checks the kind and verifies `PayloadSignature`.
fn check_request<K: Endpoint>(request: &Request, key: &SigningKey, expect: &K) -> Vec<u8> {
    let decoded =
        decode_request(Some(&multipart::content_type()), &request.body, DecodeLimits::default())
            .expect("the request decodes");
    assert_eq!(decoded.header.target_endpoint, K::ENDPOINT);
    let same = match &decoded.message {
        Inbound::DdrReport(m) => m.0.to_xml().ok() == expect.body().to_xml().ok(),
        Inbound::HinvReport(m) => m.0.to_xml().ok() == expect.body().to_xml().ok(),
        _ => false,
    };
    assert!(same, "{} decodes to a different message", K::NAME);
    let (payload_sig, _) = client_auth_signatures(&decoded.header).expect("the request is signed");
    let sig = payload_sig.parse::<cmmp_model::value::HexBytes>().expect("hex").0;
    let public = key.public_key().expect("a public key");
    verify_reversed(&public, HashAlgorithm::Sha256, &decoded.payload_as_sent, &sig)
        .expect("PayloadSignature verifies");
    decoded.payload_as_sent
}

/// The uncompressed payload `build_request` builds for `kind` (no attachments).
fn payload_of<K: Endpoint>(kind: &K) -> Payload {
    let document = kind.body().to_xml().expect("the body encodes");
    let (body_xml, attachments) =
        payload::layout_parts(K::LAYOUT, document, Vec::new()).expect("a report");
    payload::build(&body_xml, &attachments).expect("a payload")
}

/// This thread's CPU time (user + system) from `/proc/thread-self/stat`, counted in clock
/// ticks of 10 ms (`USER_HZ` is 100 on Linux); `None` where that file does not exist.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// Operations, CPU time and wall time of some runs.
#[derive(Default)]
struct Tally {
    ops: u64,
    cpu: Duration,
    wall: Duration,
}

impl Tally {
    /// Runs `op` (which does `ops_per_call` operations and returns the CPU time it used on
    /// other threads) until about `window` has passed.
    fn run(&mut self, window: Duration, ops_per_call: u64, mut op: impl FnMut() -> Duration) {
        let (Some(cpu_start), start) = (thread_cpu(), Instant::now()) else { return };
        let mut others = Duration::ZERO;
        while start.elapsed() < window {
            others += op();
            self.ops += ops_per_call;
        }
        self.wall += start.elapsed();
        self.cpu += thread_cpu().unwrap_or(cpu_start).saturating_sub(cpu_start) + others;
    }

    fn per_cpu_second(&self) -> f64 {
        self.ops as f64 / self.cpu.as_secs_f64()
    }

    fn per_wall_second(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }

    fn print(&self, label: &str) {
        if self.cpu.is_zero() {
            return;
        }
        println!(
            "cpu-time check {label}: {:.0} ops per CPU-second, {:.0} ops per wall-second, \
             CPU/wall {:.2}",
            self.per_cpu_second(),
            self.per_wall_second(),
            self.cpu.as_secs_f64() / self.wall.as_secs_f64()
        );
    }
}

/// `PIPELINE_CPU_ROUNDS`, or `default` when it is unset or not a positive count.
fn cpu_rounds(default: usize) -> usize {
    std::env::var("PIPELINE_CPU_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r: &usize| r > 0)
        .unwrap_or(default)
}

/// The RSA-2048 sign rate `openssl speed -seconds 1 rsa2048` prints (its `sign/s` column),
/// which is the issue's yardstick for goal 1; `None` when the `openssl` program is missing
/// or prints no such line. It counts user CPU time by default (`-elapsed` would count wall
/// time), so it is a rate per CPU-second, like [`Tally::per_cpu_second`] (which also counts
/// system time, so the comparison does not favour the pipeline).
fn openssl_speed_sign_rate() -> Option<f64> {
    let output = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "1", "rsa2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.starts_with(&["rsa", "2048", "bits"]) {
            fields.get(5)?.parse().ok()
        } else {
            None
        }
    })
}

/// Goal 1 against its own yardstick: rounds of `prepare` (one `window` each) alternated with
/// runs of `openssl speed rsa2048` in a child process, and the ratio of each round.
fn against_openssl_speed(label: &str, window: Duration, prepare: &mut dyn FnMut()) {
    let rounds = cpu_rounds(3);
    let mut total = Tally::default();
    let (mut ratios, mut speeds) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds {
        let mut round = Tally::default();
        round.run(window, 1, || {
            prepare();
            Duration::ZERO
        });
        let Some(speed) = openssl_speed_sign_rate() else {
            println!("cpu-time check against `openssl speed`: no `openssl` program, skipped");
            return;
        };
        if round.cpu.is_zero() {
            return;
        }
        ratios.push(round.per_cpu_second() / speed);
        speeds.push(speed);
        total.ops += round.ops;
        total.cpu += round.cpu;
        total.wall += round.wall;
    }
    ratios.sort_by(f64::total_cmp);
    speeds.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "cpu-time check {label} / `openssl speed rsa2048` sign/s: {label} {:.0} per CPU-second, openssl speed median {:.0} sign/s ({:.0}–{:.0}); per round: \
         median {:.3}, {:.3}–{:.3}, mean {:.3} over {} rounds",
        total.per_cpu_second(),
        median(&speeds),
        speeds.first().copied().unwrap_or(f64::NAN),
        speeds.last().copied().unwrap_or(f64::NAN),
        median(&ratios),
        ratios.first().copied().unwrap_or(f64::NAN),
        ratios.last().copied().unwrap_or(f64::NAN),
        ratios.iter().sum::<f64>() / ratios.len() as f64,
        ratios.len(),
    );
}

/// Per-call times of two operations run in alternation (A B, then B A, and so on) for about
/// `window`, so that a change of the machine's speed falls on both sides alike.
struct Interleaved {
    a: Vec<Duration>,
    b: Vec<Duration>,
}

impl Interleaved {
    fn run(window: Duration, a: &mut dyn FnMut(), b: &mut dyn FnMut()) -> Self {
        let timed = |op: &mut dyn FnMut()| {
            let start = Instant::now();
            op();
            start.elapsed()
        };
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        let start = Instant::now();
        while start.elapsed() < window {
            ta.push(timed(&mut *a));
            tb.push(timed(&mut *b));
            tb.push(timed(&mut *b));
            ta.push(timed(&mut *a));
        }
        Interleaved { a: ta, b: tb }
    }

    /// The median call of a side.
    fn median(times: &[Duration]) -> Duration {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    /// The mean of a side without its slowest tenth (calls a preemption or a steal lengthened).
    fn trimmed_mean(times: &[Duration]) -> Duration {
        let mut sorted = times.to_vec();
        sorted.sort_unstable();
        let kept = &sorted[..sorted.len() - sorted.len() / 10];
        kept.iter().sum::<Duration>() / u32::try_from(kept.len().max(1)).unwrap_or(u32::MAX)
    }

    /// The rate of A as a fraction of the rate of B, by `statistic`, for the whole run and
    /// for each of `blocks` consecutive slices of it (min and max).
    fn print(&self, label_a: &str, label_b: &str, blocks: usize) {
        let ratio = |a: &[Duration], b: &[Duration], stat: fn(&[Duration]) -> Duration| {
            stat(b).as_secs_f64() / stat(a).as_secs_f64()
        };
        let spread = |stat: fn(&[Duration]) -> Duration| {
            let per = (self.a.len() / blocks).max(2);
            let r: Vec<f64> = self
                .a
                .chunks(per)
                .zip(self.b.chunks(per))
                .map(|(a, b)| ratio(a, b, stat))
                .collect();
            (
                r.iter().copied().fold(f64::INFINITY, f64::min),
                r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let (median_lo, median_hi) = spread(Self::median);
        let (trim_lo, trim_hi) = spread(Self::trimmed_mean);
        println!(
            "interleaved {label_a} / {label_b}, {} calls each: median call {:.1} µs / {:.1} µs, \
             rate ratio {:.3} ({median_lo:.3}–{median_hi:.3} over {blocks} slices); trimmed \
             mean {:.1} µs / {:.1} µs, rate ratio {:.3} ({trim_lo:.3}–{trim_hi:.3})",
            self.a.len(),
            Self::median(&self.a).as_secs_f64() * 1e6,
            Self::median(&self.b).as_secs_f64() * 1e6,
            ratio(&self.a, &self.b, Self::median),
            Self::trimmed_mean(&self.a).as_secs_f64() * 1e6,
            Self::trimmed_mean(&self.b).as_secs_f64() * 1e6,
            ratio(&self.a, &self.b, Self::trimmed_mean),
        );
    }
}

/// Runs the candidates alternately, `rounds` times `window` each, and prints their tallies.
///
/// `openssl speed` divides by CPU user time, so per-CPU-second figures compare with it even
/// when other processes share the cores; wall-clock figures are criterion's. For two
/// candidates it also prints the median and range of the ratios of each round, which a load
/// change between rounds moves less than the ratio of the totals. `PIPELINE_CPU_ROUNDS`
/// sets the number of rounds (default `rounds`).
fn cpu_time_check(rounds: usize, window: Duration, candidates: &mut [(&str, &mut dyn FnMut())]) {
    let rounds = cpu_rounds(rounds);
    let mut tallies: Vec<Tally> = candidates.iter().map(|_| Tally::default()).collect();
    let mut round_ratios = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut this_round: Vec<Tally> = candidates.iter().map(|_| Tally::default()).collect();
        for ((_, op), tally) in candidates.iter_mut().zip(&mut this_round) {
            tally.run(window, 1, || {
                op();
                Duration::ZERO
            });
        }
        if let [a, b] = this_round.as_slice()
            && !a.cpu.is_zero()
            && !b.cpu.is_zero()
        {
            round_ratios.push(a.per_cpu_second() / b.per_cpu_second());
        }
        for (total, round) in tallies.iter_mut().zip(this_round) {
            total.ops += round.ops;
            total.cpu += round.cpu;
            total.wall += round.wall;
        }
    }
    for ((label, _), tally) in candidates.iter().zip(&tallies) {
        tally.print(label);
    }
    if let [a, b] = tallies.as_slice()
        && !a.cpu.is_zero()
        && !b.cpu.is_zero()
    {
        round_ratios.sort_by(f64::total_cmp);
        let median = round_ratios.get(round_ratios.len() / 2).copied().unwrap_or(f64::NAN);
        println!(
            "cpu-time check {} / {}: {:.3} (per CPU-second); per round: median {median:.3}, \
             {:.3}–{:.3} over {} rounds",
            candidates[0].0,
            candidates[1].0,
            a.per_cpu_second() / b.per_cpu_second(),
            round_ratios.first().copied().unwrap_or(f64::NAN),
            round_ratios.last().copied().unwrap_or(f64::NAN),
            round_ratios.len(),
        );
    }
}

fn configure<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    group
}

/// Prepares one signed DDR per signer, in order; returns the bytes prepared.
fn prepare_all(settings: &Settings, work: &[(DdrReport, Signer<'_>)]) -> usize {
    let mut bytes = 0;
    for (ddr, signer) in work {
        let request = wire::build_request(settings, ddr, Vec::new(), Some(signer), fresh())
            .expect("the DDR is prepared");
        bytes += black_box(request).body.len();
    }
    bytes
}

/// Prepares the batch across `per_thread`-sized chunks, one scoped thread each; returns the
/// CPU time the threads used.
fn prepare_parallel(
    settings: &Settings,
    work: &[(DdrReport, Signer<'_>)],
    per_thread: usize,
) -> Duration {
    std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(|| {
                    let start = thread_cpu();
                    prepare_all(settings, black_box(chunk));
                    match (start, thread_cpu()) {
                        (Some(start), Some(end)) => end.saturating_sub(start),
                        _ => Duration::ZERO,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a worker")).sum()
    })
}

fn ddr_signed(c: &mut Criterion) {
    let key = key();
    let settings = settings();
    let corpus = read_document("ddr/full.xml");
    let client: SmsId = CORPUS_CLIENT.parse().expect("an SMS ID");
    let ddr = ddr_for(&corpus, &client);
    let signer = Signer::new(&key, client, HashAlgorithm::Sha256).expect("a signer");

    let request = wire::build_request(&settings, &ddr, Vec::new(), Some(&signer), fresh())
        .expect("the DDR is prepared");
    let sent = check_request(&request, &key, &ddr);
    let payload = payload_of(&ddr);
    let xml_len = ddr.body().to_xml().expect("the body encodes").len();
    println!(
        "ddr_signed: document {xml_len} bytes, payload {} bytes, compressed {} bytes, request \
         body {} bytes",
        payload.bytes.len(),
        sent.len(),
        request.body.len()
    );

    // One client per signer, as an ISV proxy holds them: the proxy key, each client's ID.
    let mut rng = Rng(0x0DDB_1A5E_5EED_0001);
    let work: Vec<(DdrReport, Signer<'_>)> = (0..BATCH)
        .map(|_| {
            let id: SmsId = format!("GUID:{}", rng.guid()).parse().expect("an SMS ID");
            let signer = Signer::new(&key, id, HashAlgorithm::Sha256).expect("a signer");
            (ddr_for(&corpus, &id), signer)
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per_thread = BATCH.div_ceil(threads);
    println!("ddr_signed: batch of {BATCH} clients on {threads} threads ({per_thread} each)");
    // Every client's request is valid, too.
    for (ddr, signer) in work.iter().step_by(37) {
        let request = wire::build_request(&settings, ddr, Vec::new(), Some(signer), fresh())
            .expect("the DDR is prepared");
        check_request(&request, &key, ddr);
    }

    // The compared sides, shared by the instruction count and the CPU-time checks.
    let prepare = |settings: &Settings| {
        black_box(
            wire::build_request(settings, &ddr, Vec::new(), Some(&signer), fresh())
                .expect("the DDR is prepared"),
        );
    };
    let sign_only = || {
        black_box(key.sign(HashAlgorithm::Sha256, black_box(&sent)).expect("signs"));
    };
    // What `openssl speed rsa2048` times: the RSA private operation alone (PKCS#1 v1.5
    // padding of 36 bytes, blinding on), with no digest and no per-call setup. The issue's
    // goal 1 compares with that rate.
    let rsa = key.pkey().rsa().expect("an RSA key");
    let mut raw = vec![0; usize::try_from(rsa.size()).expect("a size")];
    let mut private_op = || {
        let n =
            rsa.private_encrypt(black_box(&[0x5A; 36]), &mut raw, Padding::PKCS1).expect("signs");
        black_box(&raw[..n]);
    };

    // `openssl speed rsa2048`'s own timed call, in this process: `EVP_PKEY_sign` of 36 bytes
    // on a context made once (apps/speed.c, `RSA_sign_loop`), with the same key as above.
    let mut speed_ctx = PkeyCtx::new(key.pkey()).expect("a context");
    speed_ctx.sign_init().expect("sign_init");
    speed_ctx.set_rsa_padding(Padding::PKCS1).expect("PKCS#1 padding");
    let mut speed_out = vec![0; usize::try_from(rsa.size()).expect("a size")];
    let mut speed_op = || {
        let n = speed_ctx.sign(black_box(&[0x5A; 36]), Some(&mut speed_out)).expect("signs");
        black_box(&speed_out[..n]);
    };

    if let Some(n) = count() {
        prepare(&settings);
        count_prepare_one(n, &mut || prepare(&settings));
        sign_only();
        count_rsa_sign_only(n, &mut || sign_only());
        private_op();
        count_rsa_private_op(n, &mut private_op);
        println!(
            "ddr_signed: counted {n} calls each of prepare_one, rsa_sign_only, rsa_private_op"
        );
        return;
    }

    if cpu_checks_enabled() {
        let window = Duration::from_secs(1);
        cpu_time_check(
            3,
            window,
            &mut [
                ("ddr_signed/prepare_one", &mut || prepare(&settings)),
                ("ddr_signed/rsa_sign_only", &mut || sign_only()),
            ],
        );
        cpu_time_check(
            3,
            window,
            &mut [
                ("ddr_signed/prepare_one", &mut || prepare(&settings)),
                ("ddr_signed/rsa_private_op", &mut private_op),
            ],
        );
        // The issue's yardstick itself: `openssl speed rsa2048`, run in the same minutes.
        against_openssl_speed("ddr_signed/prepare_one", window, &mut || prepare(&settings));
        // The same comparison call by call, against `openssl speed`'s timed call run here,
        // and that call against the process it stands for.
        let long_window = window * u32::try_from(cpu_rounds(3)).unwrap_or(3);
        Interleaved::run(long_window, &mut || prepare(&settings), &mut speed_op).print(
            "ddr_signed/prepare_one",
            "EVP_PKEY_sign (openssl speed's call)",
            8,
        );
        Interleaved::run(long_window, &mut || sign_only(), &mut speed_op).print(
            "ddr_signed/rsa_sign_only",
            "EVP_PKEY_sign (openssl speed's call)",
            8,
        );
        against_openssl_speed(
            "EVP_PKEY_sign (openssl speed's call)",
            Duration::from_secs(1),
            &mut speed_op,
        );
        // The same with `compression_level` 1 (header `78 01`; [UNCONFIRMED] for real MPs).
        let mut fast = settings.clone();
        fast.compression_level = 1;
        cpu_time_check(
            3,
            window,
            &mut [
                ("ddr_signed/prepare_one_level1", &mut || prepare(&fast)),
                ("ddr_signed/rsa_sign_only", &mut || sign_only()),
            ],
        );
        Interleaved::run(long_window, &mut || prepare(&fast), &mut speed_op).print(
            "ddr_signed/prepare_one_level1",
            "EVP_PKEY_sign (openssl speed's call)",
            8,
        );
        let batch = u64::try_from(BATCH).expect("a count");
        let (mut one, mut all) = (Tally::default(), Tally::default());
        for _ in 0..3 {
            one.run(window, batch, || {
                prepare_all(&settings, black_box(&work));
                Duration::ZERO
            });
            all.run(window, batch, || prepare_parallel(&settings, &work, per_thread));
        }
        one.print("ddr_signed/batch_one_core");
        all.print("ddr_signed/batch_parallel (CPU summed over the workers)");
    }

    let mut group = configure(c, "ddr_signed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("prepare_one", |b| {
        b.iter(|| {
            wire::build_request(&settings, black_box(&ddr), Vec::new(), Some(&signer), fresh())
                .expect("the DDR is prepared")
        });
    });
    group.bench_function("rsa_sign_only", |b| {
        b.iter(|| key.sign(HashAlgorithm::Sha256, black_box(&sent)).expect("signs"));
    });
    // Diagnostics: the other stages of `prepare_one` alone.
    group.bench_function("stage/encode_xml", |b| {
        b.iter(|| black_box(&ddr).body().to_xml().expect("the body encodes"));
    });
    group.bench_function("stage/zlib_only", |b| {
        b.iter(|| zlib::compress(black_box(&payload.bytes)));
    });
    group.throughput(Throughput::Elements(u64::try_from(BATCH).expect("a count")));
    group.bench_function("batch_one_core", |b| {
        b.iter(|| prepare_all(&settings, black_box(&work)));
    });
    group.bench_function("batch_parallel", |b| {
        b.iter(|| prepare_parallel(&settings, &work, per_thread));
    });
    group.finish();
}

/// The ~2 MB hardware inventory report of `model/benches/codec.rs` (the shared generator).
fn hinv_report() -> HinvReport {
    let header = HinvBody::from_xml(&read_document("hinv/full.xml"))
        .expect("the corpus report decodes")
        .report_header;
    HinvReport::new(hinv_report::report(header))
}

fn hinv_2mb(c: &mut Criterion) {
    let key = key();
    let settings = settings();
    let client: SmsId = CORPUS_CLIENT.parse().expect("an SMS ID");
    let signer = Signer::new(&key, client, HashAlgorithm::Sha256).expect("a signer");
    let hinv = hinv_report();
    let xml_len = hinv.body().to_xml().expect("the report encodes").len();
    let payload = payload_of(&hinv);
    let request = wire::build_request(&settings, &hinv, Vec::new(), Some(&signer), fresh())
        .expect("the report is prepared");
    let sent = check_request(&request, &key, &hinv);
    assert_eq!(
        zlib::inflate(&sent, InflateLimits::default()).expect("inflates"),
        payload.bytes,
        "the baseline compresses the bytes the pipeline compresses"
    );
    println!(
        "hinv_2mb: document {xml_len} bytes, payload {} bytes (header-only body + full report \
         attachment, UTF-16LE), compressed {} bytes, request body {} bytes",
        payload.bytes.len(),
        sent.len(),
        request.body.len()
    );

    if let Some(n) = count() {
        let mut pipeline = || {
            black_box(
                wire::build_request(&settings, &hinv, Vec::new(), Some(&signer), fresh())
                    .expect("the report is prepared"),
            );
        };
        pipeline();
        count_hinv_pipeline(n, &mut pipeline);
        let mut baseline = || {
            let compressed = zlib::compress(black_box(&payload.bytes));
            black_box(key.sign(HashAlgorithm::Sha256, &compressed).expect("signs"));
        };
        baseline();
        count_zlib_plus_sign(n, &mut baseline);
        println!("hinv_2mb: counted {n} calls each of pipeline, zlib_plus_sign");
        return;
    }

    if cpu_checks_enabled() {
        // Goal 2 call by call: the pipeline and its baseline alternate, so that a change of
        // the machine's speed falls on both. Then the same at `compression_level` 1 on both
        // sides (the trade-off with goal 1).
        for (level, labels) in [
            (settings.compression_level, ["hinv_2mb/pipeline", "hinv_2mb/zlib_plus_sign"]),
            (1, ["hinv_2mb/pipeline_level1", "hinv_2mb/zlib_level1_plus_sign"]),
        ] {
            let mut at_level = settings.clone();
            at_level.compression_level = level;
            Interleaved::run(
                Duration::from_secs(u64::try_from(cpu_rounds(3)).unwrap_or(3) * 2),
                &mut || {
                    black_box(
                        wire::build_request(&at_level, &hinv, Vec::new(), Some(&signer), fresh())
                            .expect("the report is prepared"),
                    );
                },
                &mut || {
                    let compressed = zlib::compress_at(black_box(&payload.bytes), level);
                    black_box(key.sign(HashAlgorithm::Sha256, &compressed).expect("signs"));
                },
            )
            .print(labels[0], labels[1], 8);
        }
        cpu_time_check(
            3,
            Duration::from_secs(1),
            &mut [
                ("hinv_2mb/pipeline", &mut || {
                    black_box(
                        wire::build_request(&settings, &hinv, Vec::new(), Some(&signer), fresh())
                            .expect("the report is prepared"),
                    );
                }),
                ("hinv_2mb/zlib_plus_sign", &mut || {
                    let compressed = zlib::compress(black_box(&payload.bytes));
                    black_box(key.sign(HashAlgorithm::Sha256, &compressed).expect("signs"));
                }),
            ],
        );
    }

    let mut group = configure(c, "hinv_2mb");
    group.throughput(Throughput::Bytes(u64::try_from(xml_len).expect("a size")));
    group.bench_function("pipeline", |b| {
        b.iter(|| {
            wire::build_request(&settings, black_box(&hinv), Vec::new(), Some(&signer), fresh())
                .expect("the report is prepared")
        });
    });
    group.bench_function("zlib_plus_sign", |b| {
        b.iter(|| {
            let compressed = zlib::compress(black_box(&payload.bytes));
            let signature = key.sign(HashAlgorithm::Sha256, &compressed).expect("signs");
            (compressed, signature)
        });
    });
    // Diagnostics: the stages before zlib alone.
    group.bench_function("stage/encode_xml", |b| {
        b.iter(|| black_box(&hinv).body().to_xml().expect("the report encodes"));
    });
    group.bench_function("stage/payload", |b| {
        b.iter(|| payload_of(black_box(&hinv)));
    });
    group.finish();
}

/// A ~1 MB `ReplyAssignments`: the corpus reply's head, then [`REPLY_ASSIGNMENTS`]
/// assignments with distinct IDs and hashes.
fn reply_document() -> String {
    let corpus = read_document("policy/reply-two-assignments.canonical.xml");
    let head = &corpus[..corpus.find("<PolicyAssignment ").expect("an assignment")];
    let mut rng = Rng(0x5EED_2E91_1A55_0001);
    let categories = ["SoftwareDistribution", "NAAConfig", "SettingsAgent", "CIAssignment"];
    let mut text = head.to_owned();
    for i in 0..REPLY_ASSIGNMENTS {
        let assignment = rng.guid();
        let policy = if i % 3 == 0 {
            format!("{{{}}}", rng.guid().to_lowercase())
        } else {
            format!("P01{:05}-P01{:05}-{}", rng.below(100_000), rng.below(100_000), rng.hex(4))
        };
        let version = format!("{}.00", 1 + rng.below(40));
        let hash = rng.hex(32);
        let hash_ex =
            if i % 2 == 0 { format!(" PolicyHashEx=\"SHA256:{hash}\"") } else { String::new() };
        let flags = if i % 5 == 0 { " PolicyFlags=\"4\"" } else { "" };
        text.push_str(&format!(
            "<PolicyAssignment PolicyAssignmentID=\"{{{assignment}}}\"><Policy PolicyID=\"{policy}\" \
             PolicyVersion=\"{version}\" PolicyType=\"Machine\" PolicyCategory=\"{}\"{flags}>\
             <PolicyLocation PolicyHash=\"SHA256:{hash}\"{hash_ex}>http://&lt;mp&gt;/SMS_MP/\
             .sms_pol?{policy}.{}</PolicyLocation></Policy></PolicyAssignment>",
            rng.pick(&categories),
            version.replace('.', "_"),
        ));
    }
    text.push_str("</ReplyAssignments>");
    text
}

/// The typed decode of a Sync reply with `reply::decode_sync`: multipart, `Msg` header,
/// `authenticate` check (when `verifier` is set), inflate, strict UTF-16LE, typed decode.
fn decode_reply(
    http: &HttpReply,
    host: &HostName,
    verifier: Option<&ReplyVerifier>,
) -> Received<ReplyAssignments> {
    let ctx = SyncContext {
        host_asked: host,
        reply_compression: true,
        verifier,
        limits: ReplyLimits::default(),
    };
    reply::decode_sync::<ReplyAssignments>(http, &ctx).expect("the reply decodes")
}

fn reply_1mb(c: &mut Criterion) {
    let text = reply_document();
    let expected = ReplyAssignments::from_xml(&text).expect("the generated reply decodes");
    assert_eq!(expected.policy_assignment.len(), REPLY_ASSIGNMENTS);
    assert_eq!(expected.to_xml().expect("encodes"), text, "the generated reply is canonical");
    let mut utf16 = Vec::with_capacity(text.len() * 2 + 2);
    body::encode_body(&text, &mut utf16);
    let compressed = zlib::compress(&utf16);

    // The MP signs its reply (`authenticate` hook); the client has pinned its certificate.
    let mp = cert::generate_mixed_mode_single("MP01", SystemTime::now()).expect("an MP identity");
    let signer = ReplySigner {
        key: mp.signing_key(),
        hash: HashAlgorithm::Sha256,
        sender_machines: "MP01;mp01.corp.example",
        site_code: "P01",
    };
    let verifier = ReplyVerifier::from_certificate(mp.signing_cert())
        .expect("a verifier")
        .with_hash(HashAlgorithm::Sha256)
        .with_site_code("P01")
        .require_signature(true);
    let header = Msg::from_xml(&read_document("msg/reply-authenticate.xml")).expect("a header");
    let http = HttpReply {
        status: 200,
        headers: vec![("Content-Type".to_owned(), multipart::content_type())],
        body: reply::encode_sync_reply(header, &text, true, Some(&signer)).expect("a reply"),
    };
    let host = HostName::new("mp01.corp.example").expect("a host name");
    let received = decode_reply(&http, &host, Some(&verifier));
    assert_eq!(received.signature, ReplySignature::Verified);
    assert!(received.reply == expected, "the framed reply decodes to the generated one");
    println!(
        "reply_1mb: document {} bytes, {REPLY_ASSIGNMENTS} assignments, UTF-16LE body {} bytes, \
         compressed {} bytes (ratio {:.1}:1), HTTP body {} bytes",
        text.len(),
        utf16.len(),
        compressed.len(),
        utf16.len() as f64 / compressed.len() as f64,
        http.body.len()
    );

    let mut group = configure(c, "reply_1mb");
    group.throughput(Throughput::Bytes(u64::try_from(text.len()).expect("a size")));
    group.bench_function("decode", |b| {
        b.iter(|| decode_reply(black_box(&http), &host, Some(&verifier)));
    });
    group.bench_function("decode_unverified", |b| {
        b.iter(|| decode_reply(black_box(&http), &host, None));
    });
    // Diagnostics: each stage alone.
    group.bench_function("stage/inflate", |b| {
        b.iter(|| zlib::inflate(black_box(&compressed), InflateLimits::default()).expect("ok"));
    });
    group.bench_function("stage/utf16_decode", |b| {
        b.iter(|| body::decode_body(black_box(&utf16)).expect("ok"));
    });
    group.bench_function("stage/typed_decode", |b| {
        b.iter(|| ReplyAssignments::from_xml(black_box(&text)).expect("ok"));
    });
    group.finish();
}

/// Whether to run the CPU-time checks: in a measuring run (`--bench`) without `--test`,
/// `--list` or `--profile-time`, so profiling and test runs stay quick.
fn cpu_checks_enabled() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args.iter().any(|a| a == "--test" || a == "--list" || a == "--profile-time")
        && std::env::var_os("PIPELINE_NO_CPU_CHECK").is_none_or(|v| v.is_empty())
}

/// `PIPELINE_COUNT`: the calls per side in instruction-count mode (module docs), if set.
fn count() -> Option<usize> {
    std::env::var("PIPELINE_COUNT").ok().and_then(|v| v.trim().parse().ok())
}

/// Defines `count_<side>(n, f)`: `n` calls of `f`, in a function callgrind can name. Each
/// passes its own tag through `black_box`, so that the compiler cannot merge the identical
/// bodies into one symbol.
macro_rules! counters {
    ($($name:ident = $tag:literal),* $(,)?) => {$(
        #[inline(never)]
        fn $name(n: usize, f: &mut dyn FnMut()) {
            black_box($tag);
            for _ in 0..n {
                f();
            }
        }
    )*};
}

counters! {
    count_prepare_one = 1_u8,
    count_rsa_sign_only = 2_u8,
    count_rsa_private_op = 3_u8,
    count_hinv_pipeline = 4_u8,
    count_zlib_plus_sign = 5_u8,
}

/// Whether group `name` runs: every group unless `PIPELINE_ONLY` (group names separated by
/// commas) leaves it out, so that a profile of one benchmark skips the other groups' setup.
fn selected(name: &str) -> bool {
    std::env::var("PIPELINE_ONLY").map_or(true, |only| only.split(',').any(|g| g.trim() == name))
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    if selected("ddr_signed") {
        ddr_signed(&mut c);
    }
    if selected("hinv_2mb") {
        hinv_2mb(&mut c);
    }
    if selected("reply_1mb") {
        reply_1mb(&mut c);
    }
    c.final_summary();
}
