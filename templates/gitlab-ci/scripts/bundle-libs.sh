#!/usr/bin/env bash
# Copies the shared libraries a binary links, except the C library's own, into a directory next to it.
#
#   bundle-libs.sh BINARY LIBDIR
#
# The Rust and C++ templates compile in a toolchain image and ship the binary on a slim runtime image of the
# same Debian release. glibc (and the loader) come from the runtime image; everything else the binary links
# (Boost, c-ares, GnuTLS, hwloc, ... for Seastar; OpenSSL or none for most Rust services) is copied here and
# found through LD_LIBRARY_PATH in the image. This is how Seastar applications are usually shipped (ScyllaDB's
# relocatable package does the same), and it needs no package list kept in step with the build image.
set -euo pipefail

fail() {
    printf 'bundle-libs: %s\n' "$*" >&2
    exit 2
}

[[ $# -eq 2 ]] || fail "usage: bundle-libs.sh BINARY LIBDIR"
binary=$1
libdir=$2
[[ -f $binary && -x $binary ]] || fail "$binary is not an executable file"
mkdir -p "$libdir"

if ! listing=$(ldd "$binary" 2>&1); then
    if [[ $listing == *"not a dynamic executable"* ]]; then
        printf 'bundle-libs: %s is static, nothing to copy\n' "$binary"
        exit 0
    fi
    fail "ldd $binary failed: $listing"
fi
if grep -q "not found" <<<"$listing"; then
    fail "$binary links libraries the build image does not have: $(grep "not found" <<<"$listing" | tr -s ' \t' ' ')"
fi

copied=0
while read -r name arrow path _; do
    [[ $arrow == "=>" && $path == /* ]] || continue
    case $name in
        # The C library, its loader and the libraries glibc itself ships: the runtime image provides these.
        ld-linux* | libc.so.* | libm.so.* | libmvec.so.* | libdl.so.* | libpthread.so.* | librt.so.* | \
            libresolv.so.* | libutil.so.* | libanl.so.* | libBrokenLocale.so.*)
            continue
            ;;
    esac
    cp --dereference "$path" "$libdir/$name"
    copied=$((copied + 1))
done <<<"$listing"
printf 'bundle-libs: %s shared libraries of %s copied into %s\n' "$copied" "$binary" "$libdir"
