# Sourced by e2e/cluster.sh and e2e/lib/real-node.sh: the one polling helper both use.
# The caller defines die().

wait_until() { # wait_until <seconds> <description> <command...>
  local timeout="$1" what="$2" start=$SECONDS
  shift 2
  until "$@"; do
    if ((SECONDS - start >= timeout)); then die "timed out after ${timeout}s waiting for $what"; fi
    sleep 0.5
  done
}
