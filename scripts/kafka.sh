#!/usr/bin/env bash
# Apache Kafka 4.x (KRaft, each node broker+controller) on 127.0.0.1 for development and tests.
#   scripts/kafka.sh fetch                          download the broker jars once (Maven Central, mvn)
#   scripts/kafka.sh start DIR [PORT] [CTRL_PORT]   one node in DIR, started in the background; waits until ready
#   scripts/kafka.sh stop DIR                       stop the broker started in DIR
#   scripts/kafka.sh cluster-start DIR PORT1,PORT2,PORT3 CTRL1,CTRL2,CTRL3
#                                                   three nodes in DIR/node-{1,2,3} (replication 3,
#                                                   min.insync.replicas 2, small heaps); waits until all are ready
#   scripts/kafka.sh cluster-stop DIR               stop every node of the cluster in DIR
#   scripts/kafka.sh node-kill DIR N                kill -9 node N (a crash: no clean shutdown)
#   scripts/kafka.sh node-start DIR N               start node N again with its data (after node-kill or node-stop)
#   scripts/kafka.sh node-stop DIR N                stop node N cleanly (SIGTERM), as a rolling restart does
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${NEWSMON_KAFKA_CACHE:-$ROOT/.cache/kafka}
LIB=$CACHE/lib

fetch() {
  if [ -f "$LIB/.complete" ]; then return; fi
  command -v mvn >/dev/null || { echo "kafka.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh: java not found (Java 17+ needed)" >&2; exit 1; }
  echo "kafka.sh: fetching Apache Kafka into $LIB" >&2
  mvn -q -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIB" -DincludeScope=runtime >&2
  touch "$LIB/.complete"
}

wait_ready() {
  local port=$1 pid=$2 deadline=$((SECONDS + 90))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kafka.sh: broker exited; see $3/broker.log" >&2; tail -20 "$3/broker.log" >&2; exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
    sleep 0.5
  done
  echo "kafka.sh: broker not ready on port $port after 90 s" >&2; exit 1
}

# write_props DIR NODE_ID PORT CTRL_PORT VOTERS REPLICATION MIN_ISR
write_props() {
  local dir=$1 node=$2 port=$3 ctrl=$4 voters=$5 rf=$6 isr=$7
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=${KAFKA_NETWORK_THREADS:-2}
num.io.threads=${KAFKA_IO_THREADS:-2}
num.recovery.threads.per.data.dir=1
background.threads=${KAFKA_BACKGROUND_THREADS:-4}
PROPS
}

java_opts() {
  # KAFKA_HEAP_OPTS as Kafka's own scripts read it; three nodes fit in 2 cores with -Xmx384m.
  # shellcheck disable=SC2206
  local heap=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m})
  JAVA_OPTS=("${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
}

# format DIR CLUSTER_ID: once per node; a restart keeps the data
format() {
  local dir=$1 cluster=$2
  [ -f "$dir/data/meta.properties" ] && return
  java_opts
  java "${JAVA_OPTS[@]}" -cp "$LIB/*" kafka.tools.StorageTool format -t "$cluster" \
    -c "$dir/server.properties" > "$dir/format.log" 2>&1
}

cluster_id() {
  java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null
}

# launch DIR PORT: start the node configured in DIR and wait until its port answers
launch() {
  local dir=$1 port=$2
  if [ -f "$dir/broker.pid" ] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
    echo "kafka.sh: already running in $dir (pid $(cat "$dir/broker.pid"))" >&2; return
  fi
  java_opts
  nohup java "${JAVA_OPTS[@]}" -cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
    >> "$dir/broker.log" 2>&1 < /dev/null &
  echo $! > "$dir/broker.pid"
  echo "$port" > "$dir/port"
  wait_ready "$port" "$!" "$dir"
  echo "kafka.sh: broker ready on 127.0.0.1:$port (pid $(cat "$dir/broker.pid"), dir $dir)" >&2
}

start() {
  local dir=$1 port=${2:-9092} ctrl=${3:-9093}
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/broker.pid" ] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
    echo "kafka.sh: already running in $dir (pid $(cat "$dir/broker.pid"))" >&2; return
  fi
  write_props "$dir" 1 "$port" "$ctrl" "1@127.0.0.1:$ctrl" 1 1
  format "$dir" "$(cluster_id)"
  launch "$dir" "$port"
}

cluster_start() {
  local dir=$1 ports controllers voters="" cluster node
  IFS=, read -r -a ports <<< "$2"
  IFS=, read -r -a controllers <<< "$3"
  if (( ${#ports[@]} != 3 || ${#controllers[@]} != 3 )); then
    echo "kafka.sh: cluster-start needs three ports and three controller ports" >&2; exit 2
  fi
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  for node in 1 2 3; do voters+="${voters:+,}$node@127.0.0.1:${controllers[node-1]}"; done
  cluster=$(cat "$dir/cluster.id" 2>/dev/null || cluster_id)
  echo "$cluster" > "$dir/cluster.id"
  for node in 1 2 3; do
    mkdir -p "$dir/node-$node"
    write_props "$dir/node-$node" "$node" "${ports[node-1]}" "${controllers[node-1]}" "$voters" 3 2
    format "$dir/node-$node" "$cluster"
  done
  # The controllers need a quorum before any node's broker port opens: start all, then wait.
  for node in 1 2 3; do
    java_opts
    nohup java "${JAVA_OPTS[@]}" -cp "$LIB/*" kafka.Kafka "$dir/node-$node/server.properties" \
      >> "$dir/node-$node/broker.log" 2>&1 < /dev/null &
    echo $! > "$dir/node-$node/broker.pid"
    echo "${ports[node-1]}" > "$dir/node-$node/port"
  done
  for node in 1 2 3; do
    wait_ready "${ports[node-1]}" "$(cat "$dir/node-$node/broker.pid")" "$dir/node-$node"
  done
  echo "kafka.sh: cluster ready on 127.0.0.1:${ports[0]},${ports[1]},${ports[2]} (dir $dir)" >&2
}

cluster_stop() {
  # All at once: one by one, the last nodes would wait for a quorum that is already leaving.
  local dir=$1 node pids=()
  for node in 1 2 3; do
    [ -f "$dir/node-$node/broker.pid" ] && pids+=("$(cat "$dir/node-$node/broker.pid")")
  done
  ((${#pids[@]})) || { echo "kafka.sh: nothing running in $dir" >&2; return; }
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.5; done
  kill -9 "${pids[@]}" 2>/dev/null || true
  rm -f "$dir"/node-*/broker.pid
  echo "kafka.sh: stopped the cluster in $dir" >&2
}

node_kill() {
  local dir=$1/node-$2
  [ -f "$dir/broker.pid" ] || { echo "kafka.sh: node $2 is not running in $1" >&2; return; }
  kill -9 "$(cat "$dir/broker.pid")" 2>/dev/null || true
  rm -f "$dir/broker.pid"
  echo "kafka.sh: killed node $2 in $1" >&2
}

node_start() {
  local dir=$1/node-$2
  [ -f "$dir/server.properties" ] || { echo "kafka.sh: no node $2 in $1" >&2; exit 2; }
  launch "$dir" "$(cat "$dir/port")"
}

stop() {
  local dir=$1
  [ -f "$dir/broker.pid" ] || { echo "kafka.sh: nothing running in $dir" >&2; return; }
  local pid; pid=$(cat "$dir/broker.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/broker.pid"
  echo "kafka.sh: stopped broker in $dir" >&2
}

usage="usage: kafka.sh fetch | start DIR [PORT] [CTRL_PORT] | stop DIR
       | cluster-start DIR P1,P2,P3 C1,C2,C3 | cluster-stop DIR | node-kill|node-start|node-stop DIR N"
case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "${1:?$usage}" "${@:2}" ;;
  stop) shift; stop "${1:?$usage}" ;;
  cluster-start) shift; cluster_start "${1:?$usage}" "${2:?$usage}" "${3:?$usage}" ;;
  cluster-stop) shift; cluster_stop "${1:?$usage}" ;;
  node-kill) shift; node_kill "${1:?$usage}" "${2:?$usage}" ;;
  node-start) shift; node_start "${1:?$usage}" "${2:?$usage}" ;;
  node-stop) shift; stop "${1:?$usage}/node-${2:?$usage}" ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
