#!/usr/bin/env bash
# Start the orders-service dependencies natively on loopback, without Docker:
#   PostgreSQL 15 (private cluster)  127.0.0.1:5432   ($ORDERS_PG_PORT)
#   Apache Kafka 4.x (KRaft, 1 node)  127.0.0.1:9092   ($ORDERS_KAFKA_PORT, controller 9093: $ORDERS_KAFKA_CONTROLLER_PORT)
#   FerretDB v1 (MongoDB wire protocol) 127.0.0.1:27017 ($ORDERS_MONGO_PORT), on its own
#     PostgreSQL 15 cluster             127.0.0.1:5433   ($ORDERS_FERRETDB_PG_PORT): the read model's
#     cluster and the event store's stop independently. Its PostgreSQL backend, not SQLite:
#     at 100,000 commits a lookup of a recent _id took 45 ms there against 800 ms on SQLite.
# Idempotent: a service already up and answering is left alone.
# Downloads/builds are cached in $ORDERS_NATIVE_CACHE (default ~/.cache/orders-native),
# data, pid files and logs live in $ORDERS_NATIVE_STATE (default deploy/native/.state).
# Another state dir with other ports gives a second, independent stack (the fault
# suite's); PostgreSQL keeps the port it was first initialised with in its state dir.
# Stop with deploy/native/down.sh [--purge].
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ORDERS_NATIVE_CACHE:-$HOME/.cache/orders-native}
STATE=${ORDERS_NATIVE_STATE:-$SCRIPT_DIR/.state}
KAFKA_VERSION=${ORDERS_KAFKA_VERSION:-4.4.0}
KAFKA_AUTO_CREATE_TOPICS=${ORDERS_KAFKA_AUTO_CREATE_TOPICS:-false}
FERRETDB_VERSION=${ORDERS_FERRETDB_VERSION:-v1.24.2}
PG_BIN=${ORDERS_PG_BIN:-/usr/lib/postgresql/15/bin}
WAIT_SECS=${ORDERS_NATIVE_WAIT_SECS:-60}
PG_PORT=${ORDERS_PG_PORT:-5432}
KAFKA_PORT=${ORDERS_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${ORDERS_KAFKA_CONTROLLER_PORT:-9093}
MONGO_PORT=${ORDERS_MONGO_PORT:-27017}
FERRETDB_PG_PORT=${ORDERS_FERRETDB_PG_PORT:-5433}

log() { printf '[up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

# true if something accepts TCP connections on 127.0.0.1:$1
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# pid from a pid file if that process is alive and its command line contains $2
live_pid() {
  local f=$1 pat=$2 pid
  [[ -s $f ]] || return 1
  pid=$(head -n1 "$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pat" || return 1
  echo "$pid"
}
tail_log() { [[ -f $1 ]] && { echo "---- last lines of $1 ----" >&2; tail -n 20 "$1" >&2; } || true; }

mkdir -p "$CACHE" "$STATE"/{run,logs}
STATE=$(cd "$STATE" && pwd)
CACHE=$(cd "$CACHE" && pwd)
T0=$SECONDS

# Unprivileged user for postgres (initdb/postgres refuse to run as root).
if [[ $(id -u) -eq 0 ]]; then
  PG_USER=${ORDERS_PG_OS_USER:-postgres}
  id "$PG_USER" >/dev/null 2>&1 || die "running as root but OS user '$PG_USER' does not exist (install postgresql-15 or set ORDERS_PG_OS_USER)"
  as_pg() { runuser -u "$PG_USER" -- "$@"; }
else
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi

# ---------------------------------------------------------------- PostgreSQL
# start_cluster NAME PORT: a private PostgreSQL cluster in $STATE/NAME on 127.0.0.1:PORT
# (trust auth, superuser postgres); sets CLUSTER_LOG.
start_cluster() {
  local name=$1 port=$2
  [[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 not found in $PG_BIN: apt-get install postgresql-15 (or set ORDERS_PG_BIN)"
  need psql "apt-get install postgresql-client-15"
  local base="$STATE/$name"
  # The postgres OS user must be able to reach the state dir; if it cannot
  # (e.g. a clone under /root), keep the cluster in /var/tmp and link it.
  if [[ ! -e $base ]] && ! as_pg test -x "$STATE"; then
    local alt="/var/tmp/orders-native-$name-$(printf %s "$STATE" | cksum | cut -d' ' -f1)"
    log "$name: $PG_USER cannot traverse $STATE, keeping the cluster in $alt"
    mkdir -p "$alt"; ln -sfn "$alt" "$base"
  fi
  mkdir -p "$base"; chown "$PG_USER" "$base"; chmod 700 "$base"
  base=$(cd "$base" && pwd -P)
  PGDATA="$base/data" CLUSTER_LOG="$base/postgres.log"
  ln -sfn "$CLUSTER_LOG" "$STATE/logs/$name.log"

  local pid=""
  [[ -s $PGDATA/postmaster.pid ]] && pid=$(head -n1 "$PGDATA/postmaster.pid") && kill -0 "$pid" 2>/dev/null || pid=""
  if [[ -n $pid ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p $port; then
    log "$name: already running (pid $pid)"
  else
    if port_open $port; then
      die "port 127.0.0.1:$port is already in use by another process (not the cluster in $PGDATA). Stop it (e.g. 'pg_ctlcluster 15 main stop' or 'ss -ltnp sport = :$port')."
    fi
    if [[ ! -s $PGDATA/PG_VERSION ]]; then
      log "$name: initdb $PGDATA"
      as_pg "$PG_BIN/initdb" -D "$PGDATA" --auth=trust -U postgres -E UTF8 --locale=C >"$base/initdb.log" 2>&1 \
        || { tail_log "$base/initdb.log"; die "initdb failed, see $base/initdb.log"; }
      cat >>"$PGDATA/postgresql.conf" <<EOF

# --- orders native dev stack ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
    log "$name: starting"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$CLUSTER_LOG" -w -t "$WAIT_SECS" start >/dev/null \
      || { tail_log "$CLUSTER_LOG"; die "$name did not start within ${WAIT_SECS}s, see $CLUSTER_LOG"; }
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p $port || { tail_log "$CLUSTER_LOG"; die "$name not answering on 127.0.0.1:$port, see $CLUSTER_LOG"; }
  fi
}

start_postgres() {
  local t=$SECONDS
  start_cluster postgres $PG_PORT
  # role + database (idempotent)
  local psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $PG_PORT -U postgres -d postgres)
  "${psql[@]}" -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orders') THEN
        CREATE ROLE orders LOGIN PASSWORD 'orders';
      END IF; END \$\$;" || die "could not create role orders (see $CLUSTER_LOG)"
  if [[ -z $("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='orders'") ]]; then
    "${psql[@]}" -c "CREATE DATABASE orders OWNER orders" || die "could not create database orders (see $CLUSTER_LOG)"
  fi
  log "postgres: ready on 127.0.0.1:$PG_PORT ($((SECONDS - t))s, log $CLUSTER_LOG)"
}

start_ferretdb_pg() {
  local t=$SECONDS
  start_cluster ferretdb-pg $FERRETDB_PG_PORT
  local psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $FERRETDB_PG_PORT -U postgres -d postgres)
  if [[ -z $("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='ferretdb'") ]]; then
    "${psql[@]}" -c "CREATE DATABASE ferretdb" || die "could not create database ferretdb (see $CLUSTER_LOG)"
  fi
  log "ferretdb-pg: ready on 127.0.0.1:$FERRETDB_PG_PORT ($((SECONDS - t))s, log $CLUSTER_LOG)"
}

# --------------------------------------------------------------------- Kafka
kafka_fetch() {
  KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
  local lib="$KAFKA_HOME/lib"
  [[ -f $KAFKA_HOME/.complete ]] && return 0
  need java "install openjdk-17-jre-headless"
  need mvn "install maven (apt-get install maven)"
  log "kafka: resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with Maven into $lib"
  rm -rf "$lib"; mkdir -p "$KAFKA_HOME"
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.orders</groupId><artifactId>kafka-native</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- logging backend (the Maven artifact ships none): Kafka's slf4j-api is 1.7.x, so bind with log4j-slf4j-impl -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
EOF
  if ! mvn -B -q -f "$KAFKA_HOME/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" >"$KAFKA_HOME/mvn.log" 2>&1; then
    tail_log "$KAFKA_HOME/mvn.log"
    die "mvn failed to resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see $KAFKA_HOME/mvn.log)"
  fi
  # keep a single SLF4J binding
  rm -f "$lib"/slf4j-reload4j-*.jar "$lib"/slf4j-log4j12-*.jar "$lib"/slf4j-simple-*.jar "$lib"/logback-classic-*.jar
  touch "$KAFKA_HOME/.complete"
}

kafka_java() {
  java -Xmx256m -Dlog4j2.configurationFile="$KDIR/log4j2-tools.properties" -cp "$KAFKA_HOME/lib/*" "$@"
}

start_kafka() {
  local t=$SECONDS pidf="$STATE/run/kafka.pid" pid
  KDIR="$STATE/kafka"; local klog="$STATE/logs/kafka.log"
  if pid=$(live_pid "$pidf" kafka.Kafka) && port_open $KAFKA_PORT; then
    log "kafka: already running (pid $pid)"; return 0
  fi
  for p in $KAFKA_PORT $KAFKA_CONTROLLER_PORT; do
    port_open $p && die "port 127.0.0.1:$p is already in use by another process (not our Kafka, pid file $pidf); stop it first ('ss -ltnp sport = :$p')"
  done
  need java "install openjdk-17-jre-headless"
  kafka_fetch
  mkdir -p "$KDIR/data"
  cat >"$KDIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KDIR/data
num.partitions=3
auto.create.topics.enable=$KAFKA_AUTO_CREATE_TOPICS
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KDIR/log4j2.properties" <<EOF
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $klog
appender.file.filePattern = $klog.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
  cat >"$KDIR/log4j2-tools.properties" <<EOF
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
  if [[ ! -f $KDIR/data/meta.properties ]]; then
    local cid
    cid=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$STATE/logs/kafka-format.log" | tail -n1) \
      || { tail_log "$STATE/logs/kafka-format.log"; die "kafka: StorageTool random-uuid failed, see $STATE/logs/kafka-format.log"; }
    log "kafka: formatting $KDIR/data (cluster id $cid)"
    kafka_java kafka.tools.StorageTool format --ignore-formatted -t "$cid" -c "$KDIR/server.properties" \
      >>"$STATE/logs/kafka-format.log" 2>&1 \
      || { tail_log "$STATE/logs/kafka-format.log"; die "kafka: storage format failed, see $STATE/logs/kafka-format.log"; }
  fi
  log "kafka: starting $KAFKA_VERSION"
  (cd "$KDIR" && exec setsid nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KDIR/log4j2.properties" -Dkafka.logs.dir="$STATE/logs" \
      -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$KDIR/server.properties" \
      >"$STATE/logs/kafka.out" 2>&1 </dev/null) &
  echo $! >"$pidf"
  pid=$(cat "$pidf")
  local deadline=$((SECONDS + WAIT_SECS))
  until port_open $KAFKA_PORT; do
    kill -0 "$pid" 2>/dev/null || { tail_log "$klog"; tail_log "$STATE/logs/kafka.out"; die "kafka exited during startup, see $klog and $STATE/logs/kafka.out"; }
    ((SECONDS < deadline)) || { tail_log "$klog"; die "kafka not listening on 127.0.0.1:$KAFKA_PORT after ${WAIT_SECS}s, see $klog"; }
    sleep 0.5
  done
  until grep -q 'Kafka Server started' "$klog" 2>/dev/null; do
    ((SECONDS < deadline)) || { tail_log "$klog"; die "kafka did not log 'Kafka Server started' within ${WAIT_SECS}s, see $klog"; }
    sleep 0.5
  done
  # metadata round-trip through the PLAINTEXT listener
  timeout "$WAIT_SECS" java -Xmx256m -Dlog4j2.configurationFile="$KDIR/log4j2-tools.properties" -cp "$KAFKA_HOME/lib/*" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:$KAFKA_PORT --list >/dev/null 2>"$STATE/logs/kafka-check.log" \
    || { tail_log "$STATE/logs/kafka-check.log"; die "kafka metadata check (TopicCommand --list) failed, see $klog"; }
  log "kafka: ready on 127.0.0.1:$KAFKA_PORT ($((SECONDS - t))s, log $klog)"
}

# ------------------------------------------------------------------ FerretDB
build_ferretdb() {
  local fdir="$CACHE/ferretdb-$FERRETDB_VERSION"; local bin="$fdir/bin/ferretdb"
  if [[ ! -x $bin ]]; then
    need go "go not found: install Go >= 1.24 (https://go.dev/doc/install) and put it on PATH"
    log "ferretdb: building $FERRETDB_VERSION from the Go module (first run only, ~2 min)"
    mkdir -p "$fdir"
    # A plain 'go install ...@version' builds a binary that panics at start: the module
    # zip lacks build/version/version.txt (generated by FerretDB's release tooling).
    # So download the module, add that file, and build from the copy.
    if ! (
      export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-modcacherw -buildvcs=false" \
             GOTOOLCHAIN=local CGO_ENABLED=0
      set -x
      src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
      [[ -d $src ]]
      rm -rf "$fdir/src"; cp -r "$src" "$fdir/src"; chmod -R u+w "$fdir/src"
      echo "$FERRETDB_VERSION" >"$fdir/src/build/version/version.txt"
      echo "source" >"$fdir/src/build/version/package.txt"
      cd "$fdir/src" && go build -trimpath -o "$fdir/bin/ferretdb.tmp" ./cmd/ferretdb
      mv "$fdir/bin/ferretdb.tmp" "$bin"
    ) >"$fdir/build.log" 2>&1; then
      tail_log "$fdir/build.log"
      die "building github.com/FerretDB/FerretDB/cmd/ferretdb@$FERRETDB_VERSION failed, see $fdir/build.log"
    fi
    rm -rf "$fdir/src" "$CACHE/go"   # Go module + build caches (~1 GB) are not needed once built
  fi
}

start_ferretdb() {
  local t=$SECONDS pidf="$STATE/run/ferretdb.pid" pid flog="$STATE/logs/ferretdb.log"
  if pid=$(live_pid "$pidf" ferretdb) && port_open $MONGO_PORT; then
    log "ferretdb: already running (pid $pid)"; return 0
  fi
  port_open $MONGO_PORT && die "port 127.0.0.1:$MONGO_PORT is already in use by another process (a mongod?); stop it first ('ss -ltnp sport = :$MONGO_PORT')"
  local bin="$CACHE/ferretdb-$FERRETDB_VERSION/bin/ferretdb"
  if [[ -n ${FERRETDB_BUILD_PID:-} ]]; then
    log "ferretdb: waiting for the build started in the background"
    wait "$FERRETDB_BUILD_PID" || die "ferretdb build failed (see above)"
  fi
  build_ferretdb
  mkdir -p "$STATE/ferretdb/state"
  log "ferretdb: starting"
  (exec setsid nohup "$bin" --listen-addr=127.0.0.1:$MONGO_PORT --handler=postgresql \
      --postgresql-url="postgres://postgres@127.0.0.1:$FERRETDB_PG_PORT/ferretdb" --state-dir="$STATE/ferretdb/state" \
      --telemetry=disable --debug-addr=- --log-level=info \
      >"$flog" 2>&1 </dev/null) &
  echo $! >"$pidf"
  pid=$(cat "$pidf")
  local deadline=$((SECONDS + WAIT_SECS))
  until port_open $MONGO_PORT; do
    kill -0 "$pid" 2>/dev/null || { tail_log "$flog"; die "ferretdb exited during startup, see $flog"; }
    ((SECONDS < deadline)) || { tail_log "$flog"; die "ferretdb not listening on 127.0.0.1:$MONGO_PORT after ${WAIT_SECS}s, see $flog"; }
    sleep 0.2
  done
  log "ferretdb: ready on 127.0.0.1:$MONGO_PORT ($((SECONDS - t))s, log $flog)"
}

# On a cold cache, build FerretDB (CPU-bound) while Maven downloads Kafka and the
# other services start.
if [[ ! -x $CACHE/ferretdb-$FERRETDB_VERSION/bin/ferretdb ]] && ! { [[ -s $STATE/run/ferretdb.pid ]] && port_open $MONGO_PORT; }; then
  need go "go not found: install Go >= 1.24 (https://go.dev/doc/install) and put it on PATH"
  build_ferretdb & FERRETDB_BUILD_PID=$!
fi
start_postgres
start_ferretdb_pg
start_kafka
start_ferretdb
log "all services up in $((SECONDS - T0))s (state $STATE, cache $CACHE)"
cat <<EOF
MONGODB_URI=mongodb://127.0.0.1:$MONGO_PORT/orders
DATABASE_URL=postgres://orders:orders@127.0.0.1:$PG_PORT/orders
KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
EOF
