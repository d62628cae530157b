# shellcheck shell=bash
# The image's binary built outside Docker: static (musl), with the Dockerfile's RELEASE_RUSTFLAGS
# (a fixed-address link, the code-layout profile and the lld symbol order recorded in pgo/,
# decompressed under the target directory instead of at /pgo). Shared by e2e/image.sh and the
# benchmarks (BENCH_BIN=image), so that what is measured is what the image carries.

# The Dockerfile's RELEASE_RUSTFLAGS, as written (the profile at /pgo), on stdout.
release_rustflags() { # repo
  local flags
  flags="$(sed -n 's/^ARG RELEASE_RUSTFLAGS="\(.*\)"$/\1/p' "$1/Dockerfile")"
  [ -n "$flags" ] || { echo "no ARG RELEASE_RUSTFLAGS=\"...\" in the Dockerfile" >&2; return 1; }
  echo "$flags"
}

# Builds it with cargo profile $2 (default release) for this machine's architecture and prints
# its path; cargo's output and errors go to stderr. Returns non-zero with a reason on failure.
# Arguments after the profile go to rustc for the binary alone (e2e/pgo-record.sh asks for a
# linker map), so the dependencies built with the image's flags are reused.
release_binary() { # repo [profile [rustc args...]]
  local repo="$1" profile="${2:-release}"
  shift $(($# < 2 ? $# : 2))
  local target flags target_dir profile_dir file
  target="$(uname -m)-unknown-linux-musl"
  target_dir="${CARGO_TARGET_DIR:-$repo/target}"
  rustup target list --installed 2>/dev/null | grep -x "$target" >/dev/null ||
    { echo "the Rust target $target is missing: rustup target add $target" >&2; return 1; }
  command -v musl-gcc >/dev/null ||
    { echo "musl-gcc is missing (ring's C parts): apt-get install musl-tools" >&2; return 1; }
  command -v ld.lld >/dev/null ||
    { echo "ld.lld is missing (the image links with lld): apt-get install lld" >&2; return 1; }
  flags="$(release_rustflags "$repo")" || return 1
  profile_dir="$target_dir/pgo"
  mkdir -p "$profile_dir"
  for file in safedeploy.profdata safedeploy.order; do
    if [ ! -s "$profile_dir/$file" ] || [ "$repo/pgo/$file.xz" -nt "$profile_dir/$file" ]; then
      xz -dc "$repo/pgo/$file.xz" >"$profile_dir/$file.tmp" ||
        { echo "cannot decompress pgo/$file.xz" >&2; return 1; }
      mv "$profile_dir/$file.tmp" "$profile_dir/$file"
    fi
  done
  flags="${flags//\/pgo\//$profile_dir/}"
  echo "building safedeploy for $target ($profile; $flags)" >&2
  (cd "$repo" && RUSTFLAGS="$flags" cargo rustc --quiet --locked --profile "$profile" --target "$target" --bin safedeploy -- "$@") >&2 ||
    { echo "cargo build failed" >&2; return 1; }
  local out_dir="$profile"
  [ "$profile" != dev ] || out_dir=debug
  echo "$target_dir/$target/$out_dir/safedeploy"
}
