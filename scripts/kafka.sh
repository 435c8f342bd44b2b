#!/usr/bin/env bash
# A single-node Apache Kafka 4.x (KRaft, broker+controller) on 127.0.0.1 for development and tests.
#   scripts/kafka.sh fetch                          download the broker jars once (Maven Central, mvn)
#   scripts/kafka.sh start DIR [PORT] [CTRL_PORT]   format DIR and start in the background; waits until ready
#   scripts/kafka.sh stop DIR                       stop the broker started in DIR
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

start() {
  local dir=$1 port=${2:-9092} ctrl=${3:-9093}
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/broker.pid" ] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null; then
    echo "kafka.sh: already running in $dir (pid $(cat "$dir/broker.pid"))" >&2; return
  fi
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
  if [ ! -f "$dir/data/meta.properties" ]; then  # format once; a restart keeps the data
    java "${java_opts[@]}" -cp "$LIB/*" kafka.tools.StorageTool format \
      -t "$(java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null)" \
      -c "$dir/server.properties" > "$dir/format.log" 2>&1
  fi
  nohup java "${java_opts[@]}" -cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
    > "$dir/broker.log" 2>&1 < /dev/null &
  echo $! > "$dir/broker.pid"
  wait_ready "$port" "$!" "$dir"
  echo "kafka.sh: broker ready on 127.0.0.1:$port (pid $(cat "$dir/broker.pid"), dir $dir)" >&2
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

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "${1:?usage: kafka.sh start DIR [PORT] [CTRL_PORT]}" "${@:2}" ;;
  stop) shift; stop "${1:?usage: kafka.sh stop DIR}" ;;
  *) echo "usage: kafka.sh fetch | start DIR [PORT] [CTRL_PORT] | stop DIR" >&2; exit 2 ;;
esac
