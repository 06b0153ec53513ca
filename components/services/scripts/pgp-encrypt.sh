#!/usr/bin/env bash
# Encrypts stdin (the secret store's unseal key) to every armored OpenPGP public key in PGP_KEY_0..PGP_KEY_<n-1>
# (PGP_KEY_COUNT of them): one armored message any recipient decrypts with `gpg --decrypt`. Runs on the machine
# running `pulumi up` (gpg needed there); nothing secret is written to disk outside a private temporary home,
# removed on exit, and the plaintext arrives on stdin, never on a command line.
set -euo pipefail

home=$(mktemp -d)
trap 'rm -rf "${home}"' EXIT
chmod 700 "${home}"
recipients=()
for ((i = 0; i < PGP_KEY_COUNT; i++)); do
  var="PGP_KEY_${i}"
  printf '%s\n' "${!var}" > "${home}/recipient-${i}.asc"
  recipients+=(--recipient-file "${home}/recipient-${i}.asc")
done
gpg --homedir "${home}" --batch --quiet --no-tty --armor --encrypt "${recipients[@]}"
