#!/usr/bin/env bash
# Shared helpers, inlined into every rendered script by components/shell (never sourced remotely).
set -euo pipefail
shopt -s inherit_errexit

log() { printf '[adplatform] %s\n' "$*" >&2; }

# Wait until first boot is over: cloud-init finished and no package manager holds the dpkg lock,
# so an unattended upgrade cannot restart services under us half way through.
wait_for_boot() {
  if command -v cloud-init >/dev/null 2>&1; then
    timeout 900 cloud-init status --wait >/dev/null 2>&1 || log "cloud-init reported errors or timed out; continuing"
  fi
  # Not `pgrep unattended-upgr`: unattended-upgrades.service keeps a shutdown helper of that name
  # running forever. The daily apt units are what run upgrades.
  local waited=0
  while pgrep -x 'apt|apt-get|dpkg' >/dev/null 2>&1 ||
    systemctl is-active --quiet apt-daily.service apt-daily-upgrade.service 2>/dev/null; do
    if [ "$waited" -ge 600 ]; then
      log "a package manager still runs after 600s"
      return 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
}

# write_file PATH MODE CONTENT: replace PATH only when CONTENT differs; prints "changed" if it did.
write_file() {
  local path=$1 mode=$2 content=$3 tmp
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "${path}.XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 0
  fi
  mv -f "$tmp" "$path"
  echo changed
}

# write_pending MARKER PATH MODE CONTENT: write_file for a file whose change takes a restart (or reload) to apply.
# MARKER is created before PATH changes and removed by the caller once the restart succeeded, so a run that dies in
# between (an SSH drop, a later step failing) leaves it, and the retry, which finds PATH unchanged, restarts anyway.
# Prints "changed" if PATH changed or MARKER was left by an earlier run.
write_pending() {
  local marker=$1 pending=
  shift
  if [ -e "$marker" ]; then
    pending=changed
  fi
  install -d -m 0700 "$(dirname "$marker")"
  touch "$marker"
  pending+=$(write_file "$@")
  if [ -z "$pending" ]; then
    rm -f "$marker"  # nothing to apply: no restart pending
  else
    echo changed
  fi
}

# remove_file PATH: delete PATH if present; prints "changed" if it did.
remove_file() {
  if [ -e "$1" ]; then
    rm -f "$1"
    echo changed
  fi
}
