#!/usr/bin/env bash
# Brings up what igflow needs on this machine: Postgres, Redis and moto server (the SQS and
# Secrets Manager APIs). Uses services already running, installs what is missing (Debian),
# and is safe to run any number of times. Writes .local/env for the other scripts to source.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/.local
mkdir -p "$state"

pg_port=${IGFLOW_PG_PORT:-5432}
redis_port=${IGFLOW_REDIS_PORT:-6379}
moto_port=${IGFLOW_MOTO_PORT:-5055}
# A three-node Redis Cluster on this port and the next two, for the cluster tests.
cluster_port=${IGFLOW_REDIS_CLUSTER_PORT:-7000}
moto_version=5.2.5

log() { printf '[services] %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  log "nothing answers on 127.0.0.1:$1 after 10 s ($2)"; return 1
}

apt_install() {
  log "installing $*"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

start_postgres() {
  port_open "$pg_port" && { log "postgres already up on $pg_port"; return; }
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting postgres $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port "$pg_port" postgres
  # A fresh Debian cluster wants a password over TCP; trust-auth machines ignore it.
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -c "psql -q -c \"alter user postgres password 'postgres'\"" >/dev/null 2>&1 || true
  fi
}

start_redis() {
  port_open "$redis_port" && { log "redis already up on $redis_port"; return; }
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --logfile "$state/redis.log"
  wait_port "$redis_port" redis
}

# moto answers its own API; anything else on the port (or a broken moto) does not.
moto_healthy() {
  python3 - "$moto_port" <<'PY' 2>/dev/null
import sys, urllib.request
page = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=5).read()
sys.exit(0 if b"moto" in page.lower() else 1)
PY
}

start_moto() {
  if [ -x "$root/.venv/bin/python" ] && [ "$("$root/.venv/bin/python" scripts/patch_moto.py)" = patched ]; then
    log "moto patched (atomic SQS deletes, SQS character set); restarting it"
    pkill -f "moto_server -H 127.0.0.1 -p $moto_port" || true
    sleep 1
  fi
  if moto_healthy; then log "moto already up on $moto_port"; return; fi
  if port_open "$moto_port"; then
    log "port $moto_port is taken by something that is not a working moto server; set IGFLOW_MOTO_PORT"
    exit 1
  fi
  if [ ! -x "$root/.venv/bin/moto_server" ]; then
    python3 -m venv "$root/.venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$root/.venv"; }
    log "installing moto $moto_version into .venv"
    "$root/.venv/bin/pip" install -q "moto[server]==$moto_version"
    "$root/.venv/bin/python" scripts/patch_moto.py >/dev/null
  fi
  log "starting moto on $moto_port"
  nohup "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
  wait_port "$moto_port" moto
}

cluster_ok() { redis-cli -p "$cluster_port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

# Redis Cluster, as ElastiCache in cluster mode (and Valkey Serverless) runs it: the
# rate-limit scripts are tested against it. Three masters, no replicas, in .local/.
start_redis_cluster() {
  if cluster_ok; then log "redis cluster already up on $cluster_port-$((cluster_port + 2))"; return; fi
  local ports=("$cluster_port" "$((cluster_port + 1))" "$((cluster_port + 2))") p dir
  for p in "${ports[@]}"; do
    if port_open "$p"; then
      redis-cli -p "$p" info cluster 2>/dev/null | grep -q '^cluster_enabled:1' || {
        log "port $p is taken by something that is not a Redis Cluster node; set IGFLOW_REDIS_CLUSTER_PORT"
        exit 1
      }
      continue
    fi
    dir=$state/redis-cluster/$p
    mkdir -p "$dir"
    rm -f "$dir/nodes.conf"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" --dir "$dir" --save '' --appendonly no \
      --logfile "$dir/redis.log"
    wait_port "$p" "redis cluster node"
  done
  # Nodes left from a half-made cluster forget it first; their data is test data.
  for p in "${ports[@]}"; do
    redis-cli -p "$p" flushall >/dev/null
    redis-cli -p "$p" cluster reset hard >/dev/null
  done
  log "creating redis cluster on ${ports[*]}"
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 1 100); do cluster_ok && return 0; sleep 0.1; done
  log "redis cluster on $cluster_port did not become ready"; return 1
}

start_postgres
start_redis
start_redis_cluster
start_moto

cat >"$state/env" <<ENV
# Written by scripts/services.sh: local services for igflow.
export DATABASE_URL=\${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:$pg_port/postgres}
# Locally one superuser owns everything: \`igflow-worker migrate\` and \`apply\` use it.
export IGFLOW_ADMIN_DATABASE_URL=\${IGFLOW_ADMIN_DATABASE_URL:-\$DATABASE_URL}
export REDIS_URL=\${REDIS_URL:-redis://127.0.0.1:$redis_port}
export IGFLOW_REDIS_CLUSTER_URL=\${IGFLOW_REDIS_CLUSTER_URL:-redis-cluster://127.0.0.1:$cluster_port?node=127.0.0.1:$((cluster_port + 1))\&node=127.0.0.1:$((cluster_port + 2))}
export AWS_ENDPOINT_URL=\${AWS_ENDPOINT_URL:-http://127.0.0.1:$moto_port}
export AWS_REGION=\${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-test}
export CARGO_TARGET_DIR=\${CARGO_TARGET_DIR:-\$HOME/.cache/igflow-target}
ENV
log "ready: postgres :$pg_port, redis :$redis_port, redis cluster :$cluster_port-$((cluster_port + 2)), moto :$moto_port (env in .local/env)"
