#!/usr/bin/env bash
# Starts what the test suite talks to, where this machine allows it:
# - Mosquitto on 127.0.0.1:1883 (installed with apt when run as root on Debian, then started);
# - Debian's influxdb and prometheus packages (influxd is started per test run by the tests
#   themselves on a free port; promtool validates deploy/prometheus);
# - Debian's nats-server (the tests start their own cluster on free ports);
# - Debian's chromium and chromium-driver for the console's browser tests, and fonts-noto-cjk so
#   their screenshots show Japanese;
# - PostgreSQL is used where it already listens on 127.0.0.1:5432.
set -euo pipefail

need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need_pkgs+=(influxdb)
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
# The NATS scale path's tests start their own 3-node cluster (MQTT + JetStream) on free ports.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_pkgs+=(nats-server)
# The console's browser tests drive Debian's Chromium through its ChromeDriver.
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || need_pkgs+=(chromium-driver)
# Japanese glyphs in the browser tests' screenshots (the console's font stack names Noto Sans CJK).
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -q CJK || need_pkgs+=(fonts-noto-cjk)
# The LAN-mode tests build a throwaway network namespace (ip, unshare) for IPv6 multicast.
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v unshare >/dev/null 2>&1 || need_pkgs+=(util-linux)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-services: installing ${need_pkgs[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # The packages' own services are not needed: the tests start what they use.
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "test-services: missing ${need_pkgs[*]}; install them (as root: apt-get install ${need_pkgs[*]})" >&2
  fi
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 1883; then
  echo "test-services: starting Mosquitto on 127.0.0.1:1883"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || /usr/sbin/mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    /usr/sbin/mosquitto -d -p 1883
  fi
  for _ in $(seq 1 50); do port_open 1883 && break; sleep 0.1; done
fi
port_open 1883 || { echo "test-services: Mosquitto is not listening on 127.0.0.1:1883" >&2; exit 1; }
echo "test-services: Mosquitto on 127.0.0.1:1883 ok"
if port_open 5432; then echo "test-services: PostgreSQL on 127.0.0.1:5432 ok"; fi
