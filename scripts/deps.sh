#!/usr/bin/env bash
# deps.sh - installs what warren needs from Debian 12's packages (idempotent).
#   scripts/deps.sh build   compiler, CMake, libuv
#   scripts/deps.sh test    the above plus the test tools and clients
#   scripts/deps.sh bench   build plus RabbitMQ (the reference), pika,
#                           matplotlib (the plot) and valgrind (callgrind)
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libjansson-dev libssl-dev libhttp-parser-dev libraft-dev)
test_pkgs=(clang clang-format openssl testssl.sh python3 python3-pika python3-pytest amqp-specs iproute2
           golang-go golang-github-rabbitmq-amqp091-go-dev golang-github-streadway-amqp-dev
           rabbitmq-server prometheus chromium chromium-driver python3-selenium python3-fusepy)
# rabbitmq-server is there for rabbitmqadmin (in its management plugin),
# which tests/integration/test_rabbitmqadmin.py runs against warren; its
# service is not started by this install (see policy-rc.d below).
# prometheus: promtool and a real server scraping warren (test_prometheus.py).
# chromium, chromium-driver, python3-selenium: the web UI's browser tests.
# iproute2: `ip netns` for the cluster tests' network partitions
# (tests/integration/cluster.py; iptables/nft are not needed).

bench_pkgs=(rabbitmq-server python3 python3-pika python3-matplotlib valgrind)

want=("${build_pkgs[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test_pkgs[@]}") ;;
bench) want+=("${bench_pkgs[@]}") ;;
*)
    echo "usage: $0 [build|test|bench]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
# A freshly installed rabbitmq-server would start a node on 5672, where
# warren listens by default, and prometheus a server on 9090: keep package
# scripts from starting services while we install (the standard
# policy-rc.d hook), unless one is in place.
guard=""
if [[ " ${missing[*]} " =~ " "(rabbitmq-server|prometheus)" " && ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    guard=1
fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
if [ -n "$guard" ]; then
    $sudo rm -f /usr/sbin/policy-rc.d
    # systemd may still have enabled it for the next boot: not ours to run.
    $sudo systemctl disable --now rabbitmq-server prometheus >/dev/null 2>&1 || true
fi
