# shellcheck shell=sh
# Shared by build-release and check-release (sourced, never run). POSIX sh.

# The shared libraries BINARY needs, one per line.
needed_libs() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | LC_ALL=C sort; }

# highest_version BINARY PREFIX: the highest PREFIXx.y[.z] symbol version BINARY needs (GLIBC_ ->
# 2.34), empty if none.
highest_version() {
    readelf -V --wide "$1" | grep -o "Name: $2[0-9.]*" | sed "s/Name: $2//" \
        | LC_ALL=C sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1
}

# The Debian/Ubuntu package (with alternatives) that provides a shared library; empty if unknown.
# Ubuntu 24.04 renamed some for the 64-bit time_t transition (the t64 names).
lib_package() {
    case $1 in
        libc.so.* | libm.so.* | ld-linux*) echo libc6 ;;
        libstdc++.so.6) echo libstdc++6 ;;
        libgcc_s.so.1) echo libgcc-s1 ;;
        libcurl.so.4) echo "libcurl4 | libcurl4t64" ;;
        libcrypto.so.3 | libssl.so.3) echo "libssl3 | libssl3t64" ;;
        libcrypto.so.1.1 | libssl.so.1.1) echo libssl1.1 ;;
        libz.so.1) echo zlib1g ;;
        *) echo "" ;;
    esac
}
