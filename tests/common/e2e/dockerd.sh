#!/usr/bin/env bash
# Test harness: a private Docker engine (Debian's docker.io) for one test process.
#   dockerd.sh DIR WATCH_PID
# Listens on unix://DIR/docker.sock with its data and exec roots under DIR (keep DIR short:
# containerd's socket lands in DIR/exec/containerd/ and unix socket paths end at 108 bytes);
# no iptables, no bridge: the tests only build FROM scratch, push and pull. Stops as soon as
# WATCH_PID exits, then removes DIR, so a crashed test run leaves nothing behind.
# Start it in its own process group (setsid), as miniflare/worker.sh.
set -u
DIR=$1 WATCH=$2
dockerd -H "unix://$DIR/docker.sock" --data-root "$DIR/root" --exec-root "$DIR/exec" \
  --pidfile "$DIR/docker.pid" --iptables=false --ip-masq=false --bridge=none --ip6tables=false \
  >"$DIR/dockerd.log" 2>&1 &
D=$!
while kill -0 "$WATCH" 2>/dev/null && kill -0 "$D" 2>/dev/null; do sleep 1; done
# dockerd stops its containerd (which runs in a session of its own) and unmounts its root.
kill -TERM "$D" 2>/dev/null
for _ in $(seq 1 60); do kill -0 "$D" 2>/dev/null || break; sleep 0.25; done
kill -KILL "$D" 2>/dev/null
c=$(cat "$DIR/exec/containerd/containerd.pid" 2>/dev/null) && [ -n "$c" ] && kill -TERM "$c" 2>/dev/null
umount -R "$DIR/root" 2>/dev/null
# A failed start keeps its log for the test to show; a normal stop leaves nothing.
kill -0 "$WATCH" 2>/dev/null || rm -rf "$DIR"
