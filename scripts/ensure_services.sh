#!/usr/bin/env bash
# Start PostgreSQL, Redis and Mosquitto on loopback when they are installed but down.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432 && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/redis-shelly.log || true
fi
if ! up 1883 && command -v mosquitto >/dev/null; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || mosquitto -d || true
fi
for port in 5432 6379; do
  for _ in $(seq 1 20); do up $port && break; sleep 0.5; done
  up $port || { echo "service on 127.0.0.1:$port is not reachable: start it (see README, Development)" >&2; exit 1; }
done
