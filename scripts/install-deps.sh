#!/usr/bin/env bash
# System packages the end-to-end tests use, from Debian's archive:
#   chromium        renders the status page headless (tests/19_status_page.rs)
#   etcd-server     a real etcd for the etcd witness backend's tests (tests/28_witness_mode.rs)
#   haproxy         routes clients to the active node by /active (tests/18_deploy.rs)
#   iproute2        network namespaces and addresses for the virtual-IP example
#   iputils-arping  sends the virtual-IP example's gratuitous ARP
#   protobuf-compiler  protoc, which the etcd-client crate's build needs (the one place a
#                   system protoc is used: our own protos build with protox)
#   libprotobuf-dev the well-known .proto files (descriptor.proto) etcd-client's protos import
#   rsync           the file-replication benchmark's comparison (tandem-bench files)
# and, from PyPI, prometheus-client: its text-format parser reads /metrics (tests/14_http.rs).
# Run as root (or with sudo available). Packages already installed are skipped, so a second run
# does nothing.
set -euo pipefail

want=(chromium etcd-server haproxy iproute2 iputils-arping libprotobuf-dev protobuf-compiler rsync)
missing=()
for package in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ! python3 -c "import prometheus_client" 2>/dev/null; then
    echo "python: installing prometheus-client"
    python3 -m pip install --quiet "prometheus-client==0.26.0"
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages: all present (${want[*]})"
    exit 0
fi
echo "system packages: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q
"${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
