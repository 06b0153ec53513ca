# shellcheck shell=bash disable=SC2154  # a part run after toolbox.sh (toolbox_job.py), which sets $pod
# The SSO bootstrap Job's part (components/platform/sso.py), after toolbox.sh: creates or updates this stack's
# OAuth applications in its GitLab (one per consumer of the single sign-on) with the Ruby program RUBY_SCRIPT.
# The applications (names, client ids, secrets, redirect URIs) are in APPS_FILE, a mounted Secret. They reach Ruby
# on the exec's stdin as data: a single-quoted heredoc (no interpolation, no escapes) placed before the program.
# Never on a command line, in an environment variable or in the log: the program prints names and states only.
# Idempotent: the program finds each application by name and changes only what differs.
: "${APPS_FILE:?}" "${RUBY_SCRIPT:?}"

readonly END_OF_DATA=ADPLATFORM_OAUTH_APPLICATIONS
# sso.py writes one line of JSON of checked values; a line equal to the terminator would end the data early.
if grep -qx "$END_OF_DATA" "$APPS_FILE"; then
  echo "$APPS_FILE holds the heredoc terminator $END_OF_DATA: refusing to run" >&2
  exit 1
fi

echo "creating or updating the OAuth applications through pod $pod"
output="$({
  printf '%s\n' "apps_json = <<'$END_OF_DATA'"
  cat "$APPS_FILE"
  printf '\n%s\n' "$END_OF_DATA"
  cat "$RUBY_SCRIPT"
} | rails_runner)"
printf '%s\n' "$output" | grep '^OAUTH_APPLICATION ' || {
  echo "$RUBY_SCRIPT reported no OAuth application" >&2
  exit 1
}
