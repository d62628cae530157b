//! The image's build inputs agree with each other: the Dockerfile builds with the flags it
//! declares (a fixed-address link, the recorded code-layout profile and lld's symbol order),
//! copies both files before the first compile, the profile in `pgo/` is an xz stream of an LLVM
//! indexed profile, which is what `-C profile-use` reads, and the order begins with functions of
//! that profile (both come from one `e2e/pgo-record.sh` run). `e2e/image.sh` reads the same `ARG` line, so a local image and
//! a `docker build` cannot drift apart; `e2e/pgo-record.sh` records the profile again.

use std::path::Path;
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(REPO).join("Dockerfile")).expect("read the Dockerfile")
}

/// The value of `ARG RELEASE_RUSTFLAGS="..."`, the line `e2e/image.sh` and `e2e/pgo-record.sh`
/// parse with the same pattern.
fn release_rustflags(dockerfile: &str) -> Option<&str> {
    dockerfile.lines().find_map(|line| {
        line.strip_prefix("ARG RELEASE_RUSTFLAGS=\"")
            .and_then(|rest| rest.strip_suffix('"'))
    })
}

#[test]
fn the_dockerfile_builds_with_its_release_flags_and_the_profile() {
    let dockerfile = dockerfile();
    let flags = release_rustflags(&dockerfile).expect("an ARG RELEASE_RUSTFLAGS=\"...\" line");
    let words: Vec<&str> = flags.split_whitespace().collect();
    for pair in [
        ["-C", "relocation-model=static"],
        ["-C", "profile-use=/pgo/safedeploy.profdata"],
        ["-C", "link-arg=-fuse-ld=lld"],
        [
            "-C",
            "link-arg=-Wl,--symbol-ordering-file=/pgo/safedeploy.order,--no-warn-symbol-ordering",
        ],
    ] {
        assert!(
            words.windows(2).any(|w| w == pair),
            "RELEASE_RUSTFLAGS lacks `{}`: {flags}",
            pair.join(" ")
        );
    }
    let line_of = |needle: &str| {
        dockerfile
            .lines()
            .position(|line| line.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("the Dockerfile has no line starting with {needle:?}"))
    };
    let installs_lld = line_of("&& apt-get install -y --no-install-recommends musl-tools lld");
    let uses_flags = line_of("ENV RUSTFLAGS=\"${RELEASE_RUSTFLAGS}\"");
    let copies_profile = line_of("COPY pgo/safedeploy.profdata.xz pgo/safedeploy.order.xz /pgo/");
    let decompresses = line_of("RUN xz -d /pgo/safedeploy.profdata.xz /pgo/safedeploy.order.xz");
    let first_compile = dockerfile
        .lines()
        .position(|line| line.contains("cargo build"))
        .expect("a cargo build in the Dockerfile");
    assert!(
        installs_lld < first_compile
            && uses_flags < first_compile
            && copies_profile < decompresses
            && decompresses < first_compile,
        "lld, the flags, the profile and the order must be in place before the first cargo build \
         (lines {installs_lld}, {uses_flags}, {copies_profile}, {decompresses}, {first_compile})"
    );
}

/// The decompressed bytes of `pgo/<name>.xz`.
fn decompressed(name: &str) -> Vec<u8> {
    let output = Command::new("xz")
        .args(["-dc", &format!("pgo/{name}.xz")])
        .current_dir(REPO)
        .output()
        .expect("run xz");
    assert!(
        output.status.success(),
        "xz cannot decompress pgo/{name}.xz: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn the_checked_in_profile_is_an_llvm_indexed_profile() {
    let profile = decompressed("safedeploy.profdata");
    // llvm/ProfileData/InstrProf.h: IndexedInstrProf::Magic, "\xfflprofi\x81" little-endian.
    assert_eq!(
        profile.get(..8),
        Some(&b"\xfflprofi\x81"[..]),
        "not an LLVM indexed profile: `e2e/pgo-record.sh` writes one"
    );
    assert!(
        profile.len() > 1 << 20,
        "a profile of {} bytes cannot cover the operator's functions",
        profile.len()
    );
}

/// Bytes a mangled Rust symbol is made of (legacy `_ZN…E` and v0 `_R…`).
fn is_symbol_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$' | b'.')
}

/// Every run of symbol bytes in `bytes` that starts after a byte of another kind, or with `_ZN`
/// or `_R` (a mangled name in the profile may follow a length or hash byte that is itself
/// alphanumeric), sorted.
fn symbol_runs(bytes: &[u8]) -> Vec<&[u8]> {
    let starts_a_run = |start: usize| {
        is_symbol_byte(bytes[start]) && (start == 0 || !is_symbol_byte(bytes[start - 1]))
    };
    let starts_a_mangled_name = |start: usize| {
        bytes[start] == b'_'
            && matches!(
                bytes.get(start + 1..start + 3),
                Some([b'Z', b'N'] | [b'R', _])
            )
    };
    let mut runs: Vec<&[u8]> = (0..bytes.len())
        .filter(|&start| starts_a_run(start) || starts_a_mangled_name(start))
        .map(|start| {
            let end = bytes[start..]
                .iter()
                .position(|&byte| !is_symbol_byte(byte))
                .map_or(bytes.len(), |length| start + length);
            &bytes[start..end]
        })
        .collect();
    runs.sort_unstable();
    runs
}

/// Whether some run begins with `symbol`: the run starting at a name may go on into the next
/// record's bytes.
fn names(runs: &[&[u8]], symbol: &[u8]) -> bool {
    let first_not_below = runs.partition_point(|run| *run < symbol);
    runs.get(first_not_below)
        .is_some_and(|run| run.starts_with(symbol))
}

#[test]
fn the_symbol_order_leads_with_functions_of_the_checked_in_profile() {
    let order = decompressed("safedeploy.order");
    let order = String::from_utf8(order).expect("the order is text");
    let symbols: Vec<&str> = order.lines().collect();
    let not_symbols: Vec<&&str> = symbols
        .iter()
        .filter(|symbol| symbol.is_empty() || symbol.contains(char::is_whitespace))
        .collect();
    assert!(
        not_symbols.is_empty(),
        "lines that are not symbols: {not_symbols:?}"
    );
    // The functions the recorded run entered come first (e2e/lib/pgo-order.py), then those built
    // without a profile; an order recorded with another profile shares few names with this one.
    let profile = decompressed("safedeploy.profdata");
    let runs = symbol_runs(&profile);
    let from_profile = symbols
        .iter()
        .take_while(|symbol| names(&runs, symbol.as_bytes()))
        .count();
    assert!(
        from_profile > 1_000 && from_profile * 4 >= symbols.len() * 3,
        "only the first {from_profile} of {} ordered functions are functions of \
         pgo/safedeploy.profdata: record both again with e2e/pgo-record.sh",
        symbols.len()
    );
}

#[test]
fn a_symbol_is_found_only_where_a_run_begins_with_it() {
    let bytes = b"\x05E_ZN3foo3barE\x01cgu.0;_ZN3baz17h0123456789abcdefE_ZN1xE\xffmain\xff";
    let runs = symbol_runs(bytes);
    assert!(names(&runs, b"_ZN3foo3barE"));
    assert!(names(&runs, b"_ZN3baz17h0123456789abcdefE"));
    assert!(names(&runs, b"_ZN1xE"));
    assert!(names(&runs, b"main"));
    assert!(!names(&runs, b"ain"));
    assert!(!names(&runs, b"_ZN3fooE"));
    assert!(!names(&runs, b"_ZN3foo3barEx"));
    assert!(!names(&runs, b"_ZN2qq"));
}

#[test]
fn the_flags_parser_reads_only_the_exact_arg_line() {
    assert_eq!(
        release_rustflags("ARG RELEASE_RUSTFLAGS=\"-C a\"\n"),
        Some("-C a")
    );
    assert_eq!(release_rustflags("ARG RELEASE_RUSTFLAGS=-C a\n"), None);
    assert_eq!(
        release_rustflags("# ARG RELEASE_RUSTFLAGS=\"-C a\"\n"),
        None
    );
}
