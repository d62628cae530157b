#!/bin/sh
# An OCI runtime in front of runc, for machines whose capability bounding set lacks
# CAP_SYS_RESOURCE (kind's node containers are privileged, and privileged specs ask for every
# capability). Before runc reads the bundle's config.json (or exec's --process file), this
# removes CAP_SYS_RESOURCE from every capability set, raises a negative oomScoreAdj to this
# process's own value (lowering it needs the capability), and clamps each rlimit to this
# process's hard limit (raising a hard limit needs it too). The rest goes to runc unchanged.
# Used twice: registered with dockerd (e2e/lib/kind-docker.sh), and as /usr/local/sbin/runc in
# the kind base image (containerd's runc shim inside the node finds it first on PATH).
# REAL_RUNC overrides the runc it execs (default /usr/sbin/runc). Needs jq.
REAL_RUNC="${REAL_RUNC:-/usr/sbin/runc}"
bundle=""
process=""
previous=""
for arg in "$@"; do
  case "$previous" in --bundle | -b) bundle="$arg" ;; --process | -p) process="$arg" ;; esac
  case "$arg" in --bundle=*) bundle="${arg#--bundle=}" ;; --process=*) process="${arg#--process=}" ;; esac
  previous="$arg"
done
# `create`/`run` read the process from the bundle's config.json; `exec` (docker exec, kubectl
# exec, exec probes) from a separate process.json given with --process.
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  file="$bundle/config.json" path=".process"
elif [ -n "$process" ] && [ -f "$process" ]; then
  file="$process" path="."
else
  file=""
fi
if [ -n "$file" ]; then
  own_oom="$(cat /proc/self/oom_score_adj 2>/dev/null || echo 0)"
  # The hard limits of this process, by the names runc uses (RLIMIT_*), as a JSON object.
  limits="$(awk 'NR > 1 {
      name = ""; line = $0
      if (line ~ /^Max cpu time/) name = "RLIMIT_CPU"
      else if (line ~ /^Max file size/) name = "RLIMIT_FSIZE"
      else if (line ~ /^Max data size/) name = "RLIMIT_DATA"
      else if (line ~ /^Max stack size/) name = "RLIMIT_STACK"
      else if (line ~ /^Max core file size/) name = "RLIMIT_CORE"
      else if (line ~ /^Max resident set/) name = "RLIMIT_RSS"
      else if (line ~ /^Max processes/) name = "RLIMIT_NPROC"
      else if (line ~ /^Max open files/) name = "RLIMIT_NOFILE"
      else if (line ~ /^Max locked memory/) name = "RLIMIT_MEMLOCK"
      else if (line ~ /^Max address space/) name = "RLIMIT_AS"
      else if (line ~ /^Max file locks/) name = "RLIMIT_LOCKS"
      else if (line ~ /^Max pending signals/) name = "RLIMIT_SIGPENDING"
      else if (line ~ /^Max msgqueue size/) name = "RLIMIT_MSGQUEUE"
      else if (line ~ /^Max nice priority/) name = "RLIMIT_NICE"
      else if (line ~ /^Max realtime priority/) name = "RLIMIT_RTPRIO"
      else if (line ~ /^Max realtime timeout/) name = "RLIMIT_RTTIME"
      if (name == "") next
      n = split(line, f, /  +/)
      hard = f[3]; if (hard == "unlimited") hard = "18446744073709551615"
      printf "%s\"%s\":%s", (out ? "," : ""), name, hard; out = 1
    } END { }' /proc/self/limits)"
  tmp="$file.clamp.$$"
  if jq --argjson own_oom "$own_oom" --argjson hard "{$limits}" '
      def clamp:
        (if .capabilities then
           .capabilities |= with_entries(.value |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end))
         else . end)
        | (if (.oomScoreAdj // null) != null and .oomScoreAdj < $own_oom then .oomScoreAdj = $own_oom else . end)
        | (if .rlimits then
             .rlimits |= map(if $hard[.type] != null then
               .hard = ([.hard, $hard[.type]] | min) | .soft = ([.soft, .hard] | min) else . end)
           else . end);
      '"$path"' |= (if . == null then . else clamp end)' "$file" >"$tmp"; then
    mv "$tmp" "$file"
  else
    rm -f "$tmp"
  fi
fi
exec "$REAL_RUNC" "$@"
