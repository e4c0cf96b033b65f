#!/bin/bash
# crowdnb: turn a fresh Amazon Linux 2023 instance into one run's router (cloud-init runs this once, as root).
#
#   1. fetch the run's bundle (a presigned S3 link) and unpack it: a project folder with crowdnb.db, a
#      crowdnb wheel of the version the notebook runs, and maybe an `environment` file for the router;
#   2. make a venv and install the wheel with its serve and aws extras;
#   3. run `crowdnb serve` under systemd (restarted on failure), and a timer that snapshots the database and
#      uploads to S3 every SNAPSHOT_SECONDS (SQLite's online backup, so the router never stops).
#
# The values between @ signs are filled in by crowdnb.architects.ec2_userdata.render. Every path and command can be
# overridden from the environment, so a test runs this in a throwaway folder without systemd or AWS:
#   CROWDNB_ROOT        where everything goes (default /opt/crowdnb)
#   CROWDNB_PYTHON      an interpreter that has crowdnb installed: no venv, no pip
#   CROWDNB_FOREGROUND  1: serve in the foreground and snapshot from a loop instead of systemd units
#   CROWDNB_HOST, CROWDNB_PORT, CROWDNB_USER, CROWDNB_SYSTEMD_DIR, CROWDNB_SYSTEMCTL, CROWDNB_BASE_PYTHON
#   CROWDNB_RUN_ID, CROWDNB_BUNDLE_URL, CROWDNB_PUBLIC_URL, CROWDNB_SNAPSHOT_URI, CROWDNB_SNAPSHOT_SECONDS
set -euo pipefail

RUN_ID=${CROWDNB_RUN_ID:-@RUN_ID@}
BUNDLE_URL=${CROWDNB_BUNDLE_URL:-@BUNDLE_URL@}
PUBLIC_URL=${CROWDNB_PUBLIC_URL:-@PUBLIC_URL@}
SNAPSHOT_URI=${CROWDNB_SNAPSHOT_URI:-@SNAPSHOT_URI@}
SNAPSHOT_SECONDS=${CROWDNB_SNAPSHOT_SECONDS:-@SNAPSHOT_SECONDS@}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-@REGION@}

ROOT=${CROWDNB_ROOT:-/opt/crowdnb}
HOST=${CROWDNB_HOST:-0.0.0.0}
PORT=${CROWDNB_PORT:-8000}
PYTHON=${CROWDNB_PYTHON:-}
FOREGROUND=${CROWDNB_FOREGROUND:-0}
SYSTEMD_DIR=${CROWDNB_SYSTEMD_DIR:-/etc/systemd/system}
SYSTEMCTL=${CROWDNB_SYSTEMCTL:-systemctl}
BASE_PYTHON=${CROWDNB_BASE_PYTHON:-python3.11}
SERVICE_USER=${CROWDNB_USER:-crowdnb}

say() { echo "crowdnb-userdata: $*" >&2; }

fetch_bundle() {
  # a reboot runs the units again, not this script; a second run of it keeps the database it has
  if [ -d "$ROOT/bundle" ]; then
    say "bundle already unpacked in $ROOT/bundle"
    return
  fi
  mkdir -p "$ROOT/incoming"
  curl --fail --silent --show-error --location --retry 10 --retry-delay 3 --retry-all-errors \
    --output "$ROOT/incoming/bundle.tar.gz" "$BUNDLE_URL"
  tar --extract --gzip --no-same-owner --file "$ROOT/incoming/bundle.tar.gz" --directory "$ROOT/incoming"
  rm "$ROOT/incoming/bundle.tar.gz"
  mv "$ROOT/incoming" "$ROOT/bundle"
}

find_one() {  # find_one NAME: the single file called NAME in the bundle (two levels deep at most)
  local found
  found=$(find "$ROOT/bundle" -maxdepth 2 -name "$1" -print | head -n 1)
  if [ -z "$found" ]; then
    say "the bundle has no $1"
    exit 1
  fi
  echo "$found"
}

install_python() {
  if [ -n "$PYTHON" ]; then
    say "using $PYTHON"
    return
  fi
  if ! command -v "$BASE_PYTHON" >/dev/null; then
    dnf install --assumeyes --quiet python3.11 python3.11-pip
  fi
  local wheel
  wheel=$(find_one 'crowdnb-*.whl')
  if [ ! -x "$ROOT/venv/bin/python" ]; then
    "$BASE_PYTHON" -m venv "$ROOT/venv"
  fi
  "$ROOT/venv/bin/python" -m pip install --quiet --upgrade pip
  "$ROOT/venv/bin/python" -m pip install --quiet "${wheel}[serve,aws]"
  PYTHON=$ROOT/venv/bin/python
}

snapshot() {
  "$PYTHON" -m crowdnb.architects.ec2_snapshot "$PROJECT" "$SNAPSHOT_URI"
}

serve_foreground() {
  if [ -f "$ROOT/bundle/environment" ]; then
    set -a
    # shellcheck source=/dev/null
    . "$ROOT/bundle/environment"
    set +a
  fi
  "$PYTHON" -m crowdnb serve "$PROJECT" --run "$RUN_ID" --host "$HOST" --port "$PORT" --public-url "$PUBLIC_URL" &
  server=$!
  # SIGTERM stops the run cleanly; the snapshot after it holds the run as stopped
  trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; snapshot || true; exit 0' TERM INT
  while kill -0 "$server" 2>/dev/null; do
    sleep "$SNAPSHOT_SECONDS" &
    wait $! || true
    snapshot || say "snapshot failed; trying again in $SNAPSHOT_SECONDS s"
  done
  wait "$server"
}

write_units() {
  # the router needs no root: a system user of its own owns the project
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir "$ROOT" --shell /sbin/nologin "$SERVICE_USER"
  fi
  chown -R "$SERVICE_USER:" "$PROJECT"
  local environment=""
  if [ -f "$ROOT/bundle/environment" ]; then
    environment="EnvironmentFile=$ROOT/bundle/environment"
  fi
  cat >"$SYSTEMD_DIR/crowdnb.service" <<EOF
[Unit]
Description=crowdnb router of run $RUN_ID
Wants=network-online.target
After=network-online.target

[Service]
User=$SERVICE_USER
WorkingDirectory=$PROJECT
Environment=AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION
$environment
ExecStart=$PYTHON -m crowdnb serve $PROJECT --run $RUN_ID --host $HOST --port $PORT --public-url $PUBLIC_URL
ExecStopPost=$PYTHON -m crowdnb.architects.ec2_snapshot $PROJECT $SNAPSHOT_URI
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
  cat >"$SYSTEMD_DIR/crowdnb-snapshot.service" <<EOF
[Unit]
Description=crowdnb: snapshot run $RUN_ID to $SNAPSHOT_URI

[Service]
Type=oneshot
User=$SERVICE_USER
Environment=AWS_DEFAULT_REGION=$AWS_DEFAULT_REGION
ExecStart=$PYTHON -m crowdnb.architects.ec2_snapshot $PROJECT $SNAPSHOT_URI
EOF
  cat >"$SYSTEMD_DIR/crowdnb-snapshot.timer" <<EOF
[Unit]
Description=crowdnb: snapshot run $RUN_ID every $SNAPSHOT_SECONDS s

[Timer]
OnActiveSec=${SNAPSHOT_SECONDS}s
OnUnitActiveSec=${SNAPSHOT_SECONDS}s

[Install]
WantedBy=timers.target
EOF
  "$SYSTEMCTL" daemon-reload
  "$SYSTEMCTL" enable --now crowdnb.service crowdnb-snapshot.timer
}

main() {
  mkdir -p "$ROOT"
  fetch_bundle
  PROJECT=$(dirname "$(find_one crowdnb.db)")
  install_python
  "$PYTHON" -m crowdnb --version >&2
  if [ "$FOREGROUND" = 1 ]; then
    serve_foreground
  else
    write_units
    say "run $RUN_ID is served by crowdnb.service at $PUBLIC_URL"
  fi
}

main "$@"
