//! The image's build inputs agree with each other: the Dockerfile builds with the flags it
//! declares (a fixed-address link and the recorded code-layout profile), copies the profile before
//! the first compile, and the profile in `pgo/` is an xz stream of an LLVM indexed profile, which
//! is what `-C profile-use` reads. `e2e/image.sh` reads the same `ARG` line, so a local image and
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
    let uses_flags = line_of("ENV RUSTFLAGS=\"${RELEASE_RUSTFLAGS}\"");
    let copies_profile = line_of("COPY pgo/safedeploy.profdata.xz /pgo/");
    let decompresses = line_of("RUN xz -d /pgo/safedeploy.profdata.xz");
    let first_compile = dockerfile
        .lines()
        .position(|line| line.contains("cargo build"))
        .expect("a cargo build in the Dockerfile");
    assert!(
        uses_flags < first_compile && copies_profile < decompresses && decompresses < first_compile,
        "the flags and the profile must be in place before the first cargo build (lines {uses_flags}, \
         {copies_profile}, {decompresses}, {first_compile})"
    );
}

#[test]
fn the_checked_in_profile_is_an_llvm_indexed_profile() {
    let output = Command::new("xz")
        .args(["-dc", "pgo/safedeploy.profdata.xz"])
        .current_dir(REPO)
        .output()
        .expect("run xz");
    assert!(
        output.status.success(),
        "xz cannot decompress pgo/safedeploy.profdata.xz: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // llvm/ProfileData/InstrProf.h: IndexedInstrProf::Magic, "\xfflprofi\x81" little-endian.
    assert_eq!(
        output.stdout.get(..8),
        Some(&b"\xfflprofi\x81"[..]),
        "not an LLVM indexed profile: `e2e/pgo-record.sh` writes one"
    );
    assert!(
        output.stdout.len() > 1 << 20,
        "a profile of {} bytes cannot cover the operator's functions",
        output.stdout.len()
    );
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
