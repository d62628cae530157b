# shellcheck shell=bash
# The image's binary built outside Docker: static (musl), with the Dockerfile's RELEASE_RUSTFLAGS
# (a fixed-address link and the code-layout profile recorded in pgo/, decompressed under the
# target directory instead of at /pgo). Shared by e2e/image.sh and the benchmarks
# (BENCH_BIN=image), so that what is measured is what the image carries.

# The Dockerfile's RELEASE_RUSTFLAGS, as written (the profile at /pgo), on stdout.
release_rustflags() { # repo
  local flags
  flags="$(sed -n 's/^ARG RELEASE_RUSTFLAGS="\(.*\)"$/\1/p' "$1/Dockerfile")"
  [ -n "$flags" ] || { echo "no ARG RELEASE_RUSTFLAGS=\"...\" in the Dockerfile" >&2; return 1; }
  echo "$flags"
}

# Builds it with cargo profile $2 (default release) for this machine's architecture and prints
# its path; cargo's output and errors go to stderr. Returns non-zero with a reason on failure.
release_binary() { # repo [profile]
  local repo="$1" profile="${2:-release}"
  local target flags profile_data target_dir profile_dir
  target="$(uname -m)-unknown-linux-musl"
  target_dir="${CARGO_TARGET_DIR:-$repo/target}"
  rustup target list --installed 2>/dev/null | grep -x "$target" >/dev/null ||
    { echo "the Rust target $target is missing: rustup target add $target" >&2; return 1; }
  command -v musl-gcc >/dev/null ||
    { echo "musl-gcc is missing (ring's C parts): apt-get install musl-tools" >&2; return 1; }
  flags="$(release_rustflags "$repo")" || return 1
  profile_data="$target_dir/pgo/safedeploy.profdata"
  if [ ! -s "$profile_data" ] || [ "$repo/pgo/safedeploy.profdata.xz" -nt "$profile_data" ]; then
    mkdir -p "$(dirname "$profile_data")"
    xz -dc "$repo/pgo/safedeploy.profdata.xz" >"$profile_data.tmp" ||
      { echo "cannot decompress pgo/safedeploy.profdata.xz" >&2; return 1; }
    mv "$profile_data.tmp" "$profile_data"
  fi
  flags="${flags//\/pgo\/safedeploy.profdata/$profile_data}"
  echo "building safedeploy for $target ($profile; $flags)" >&2
  (cd "$repo" && RUSTFLAGS="$flags" cargo build --quiet --locked --profile "$profile" --target "$target" --bin safedeploy) >&2 ||
    { echo "cargo build failed" >&2; return 1; }
  profile_dir="$profile"
  [ "$profile" != dev ] || profile_dir=debug
  echo "$target_dir/$target/$profile_dir/safedeploy"
}
