#!/bin/sh
# Make the files of the dynamic-security broker (mosquitto-dynsec.conf): the plugin's
# dynamic-security.json with the admin, the service logins and their roles, and the password file
# with the shared provisioning login. Gateways are not listed here: device-manager gives each
# claimed gateway its own login at run time (docs/provisioning.md).
#
#   deploy/mosquitto/dynsec-init.sh [-e ENV_FILE] [-o DIR] [-k]
#
#   -e ENV_FILE  read the passwords from this file (default: ./.env if it exists; else the environment)
#   -o DIR       write DIR/dynamic-security.json and DIR/passwords (default: deploy/mosquitto/dynsec);
#                the broker reads both from its data volume (mosquitto-dynsec.conf)
#   -k           keep DIR/dynamic-security.json if it exists: the plugin has saved the gateways' logins
#                in it. Only the password file is written again. docker-compose.yml's one-shot
#                `mosquitto-init` runs `-k -o /mosquitto/data` before every start of the broker.
#
# Logins and the variables holding their passwords (deploy/env.example):
#   admin           PMS_MQTT_ADMIN_PASSWORD         (dynsec admin: device-manager's broker admin)
#   provision       PMS_MQTT_PROVISION_PASSWORD     (shared first-boot login of gateways)
#   ingest, alerts, weather, device-manager, api, healthcheck: PMS_MQTT_<NAME>_PASSWORD
#   sim             PMS_SIM_MQTT_PASSWORD           (optional: only for the `demo` profile)
#
# The roles are those of pms_common.dynsec.SERVICE_ROLES (tests/deploy checks they agree), i.e. the
# rights deploy/mosquitto/acl gives the services on the password-file broker. Needs mosquitto,
# mosquitto_ctrl and mosquitto_passwd (Debian's mosquitto + mosquitto-clients, or the eclipse-mosquitto
# image with MOSQUITTO_DYNSEC_PLUGIN=/usr/lib/mosquitto_dynamic_security.so); it starts a throwaway
# broker on 127.0.0.1 to apply the roles through the plugin itself.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
env_file=""
keep=""
output="$here/dynsec"
plugin=${MOSQUITTO_DYNSEC_PLUGIN:-/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so}

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while getopts "e:o:kh" opt; do
    case "$opt" in
        e) env_file=$OPTARG ;;
        o) output=$OPTARG ;;
        k) keep=1 ;;
        h) usage 0 ;;
        *) usage 2 ;;
    esac
done

if [ -z "$env_file" ] && [ -f ./.env ]; then
    env_file=./.env
fi
if [ -n "$env_file" ]; then
    [ -f "$env_file" ] || { echo "dynsec-init: no such env file: $env_file" >&2; exit 2; }
    case "$env_file" in */*) ;; *) env_file="./$env_file" ;; esac  # '.' would search PATH
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
fi

for tool in mosquitto mosquitto_ctrl mosquitto_passwd; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
        echo "dynsec-init: need $tool (apt install mosquitto mosquitto-clients)" >&2; exit 2; }
done
[ -f "$plugin" ] || { echo "dynsec-init: no dynamic-security plugin at $plugin (set MOSQUITTO_DYNSEC_PLUGIN)" >&2; exit 2; }
PATH="$PATH:/usr/sbin"

password_of() {  # password_of VAR_NAME USER
    eval "value=\${$1:-}"
    if [ -z "$value" ]; then
        echo "dynsec-init: $1 is not set (password of MQTT user '$2'); see deploy/env.example" >&2
        exit 2
    fi
    if [ "${#value}" -lt 12 ]; then
        echo "dynsec-init: password for '$2' is shorter than 12 characters" >&2
        exit 2
    fi
    printf '%s' "$value"
}

admin_password=$(password_of PMS_MQTT_ADMIN_PASSWORD admin)
provision_password=$(password_of PMS_MQTT_PROVISION_PASSWORD provision)
ingest_password=$(password_of PMS_MQTT_INGEST_PASSWORD ingest)
alerts_password=$(password_of PMS_MQTT_ALERTS_PASSWORD alerts)
weather_password=$(password_of PMS_MQTT_WEATHER_PASSWORD weather)
device_manager_password=$(password_of PMS_MQTT_DEVICE_MANAGER_PASSWORD device-manager)
api_password=$(password_of PMS_MQTT_API_PASSWORD api)
healthcheck_password=$(password_of PMS_MQTT_HEALTHCHECK_PASSWORD healthcheck)
sim_password=""
if [ -n "${PMS_SIM_MQTT_PASSWORD:-}" ]; then
    sim_password=$(password_of PMS_SIM_MQTT_PASSWORD sim)
fi

owned_by_broker() {  # run as root (the compose one-shot), hand the files to the broker's user
    if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
        chown mosquitto "$@"
    fi
}

if [ -n "$keep" ] && [ -f "$output/dynamic-security.json" ]; then
    # A new or changed service password in .env does not reach the plugin's file this way: see
    # docs/provisioning.md ("Changing a password") for mosquitto_ctrl's setClientPassword.
    passwords=$(mktemp)
    mosquitto_passwd -b "$passwords" provision "$provision_password"
    chmod 0644 "$passwords"
    mv "$passwords" "$output/passwords"
    owned_by_broker "$output/passwords"
    echo "dynsec-init: kept $output/dynamic-security.json (gateways' logins); wrote $output/passwords" >&2
    exit 0
fi

workdir=$(mktemp -d)
broker_pid=""
cleanup() {
    [ -z "$broker_pid" ] || kill "$broker_pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM
chmod 0755 "$workdir"

mosquitto_ctrl dynsec init "$workdir/dynamic-security.json" admin "$admin_password" >/dev/null
: > "$workdir/passwords"
mosquitto_passwd -b "$workdir/passwords" provision "$provision_password"

# A throwaway broker with the plugin, on a port of its own, to apply the roles through it.
port=$((20000 + $$ % 20000))
cat > "$workdir/init.conf" <<EOF
per_listener_settings false
allow_anonymous false
persistence false
listener $port 127.0.0.1
plugin $plugin
plugin_opt_config_file $workdir/dynamic-security.json
log_dest stderr
log_type error
EOF
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown -R mosquitto "$workdir"  # the broker drops root and saves the plugin's file as `mosquitto`
fi
mosquitto -c "$workdir/init.conf" &
broker_pid=$!
tries=0
until mosquitto_ctrl -h 127.0.0.1 -p "$port" -u admin -P "$admin_password" dynsec listRoles >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { echo "dynsec-init: the throwaway broker on port $port did not answer" >&2; exit 1; }
    sleep 0.2
done

ctrl() {  # one dynsec command; its answer is kept only when it is an error
    if ! answer=$(mosquitto_ctrl -h 127.0.0.1 -p "$port" -u admin -P "$admin_password" dynsec "$@" 2>&1) \
            || printf '%s' "$answer" | grep -q "^Error"; then
        echo "dynsec-init: dynsec $1 $2 failed: $(printf '%s' "$answer" | grep -v -e '^Warning' -e '^This means' -e '^$')" >&2
        exit 1
    fi
}

service() {  # service USER PASSWORD "PUBLISH TOPICS" "RECEIVE FILTERS"
    role="service-$1"
    ctrl createRole "$role"
    for topic in $3; do
        ctrl addRoleACL "$role" publishClientSend "$topic" allow 10
    done
    for topic in $4; do
        ctrl addRoleACL "$role" subscribePattern "$topic" allow 10
        ctrl addRoleACL "$role" publishClientReceive "$topic" allow 10
    done
    # Explicit denies keep the decision in the plugin (else acl-provisioning's %c pattern would apply).
    for acltype in publishClientSend subscribePattern publishClientReceive; do
        ctrl addRoleACL "$role" "$acltype" "#" deny 0
    done
    ctrl createClient "$1" -p "$2"
    ctrl addClientRole "$1" "$role"
}

service ingest "$ingest_password" \
    "pms/v1/gw/+/ack pms/v1/deadletter/ingest" \
    "pms/v1/gw/+/readings pms/v1/plants/+/weather pms/v1/plants/+/expected"
service alerts "$alerts_password" \
    "pms/v1/events/+ pms/v1/deadletter/alerts" \
    "pms/v1/gw/+/status pms/v1/gw/+/heartbeat"
service weather "$weather_password" \
    "pms/v1/plants/+/weather pms/v1/plants/+/expected" ""
service device-manager "$device_manager_password" \
    "pms/v1/gw/+/config/desired pms/v1/gw/+/cmd/req pms/v1/gw/+/status pms/v1/gw/+/update/job pms/v1/deadletter/device-manager pms/v1/provision/+/answer" \
    "pms/v1/gw/+/status pms/v1/gw/+/heartbeat pms/v1/gw/+/config/# pms/v1/gw/+/cmd/# pms/v1/gw/+/update/state pms/v1/provision/+/claim"
service api "$api_password" \
    "pms/v1/gw/+/cmd/req pms/v1/gw/+/config/desired" \
    "pms/v1/#"
service healthcheck "$healthcheck_password" \
    "" '$SYS/broker/uptime'
if [ -n "$sim_password" ]; then
    service sim "$sim_password" "pms/v1/gw/#" "pms/v1/gw/#"
fi

kill "$broker_pid"
wait "$broker_pid" 2>/dev/null || true
broker_pid=""

mkdir -p "$output"
cp "$workdir/dynamic-security.json" "$output/dynamic-security.json"
cp "$workdir/passwords" "$output/passwords"
# The broker reads both as uid 1883 (mosquitto) and saves the plugin's file: salted hashes only.
chmod 0644 "$output/passwords" "$output/dynamic-security.json"
owned_by_broker "$output/passwords" "$output/dynamic-security.json"
echo "dynsec-init: wrote $output/dynamic-security.json and $output/passwords" >&2
