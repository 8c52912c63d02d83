#!/bin/sh
# Build the Mosquitto password file for PMS: one user per service plus one per gateway.
#
#   deploy/mosquitto/make-passwords.sh [-e ENV_FILE] [-g GATEWAYS_FILE] [-o OUTPUT]
#
#   -e ENV_FILE       read the service passwords from this file (default: ./.env if it exists)
#   -g GATEWAYS_FILE  lines "gateway_id [password]"; '#' starts a comment. A gateway without
#                     a password gets a random one, printed once on stdout for provisioning.
#   -o OUTPUT         password file to write (default: deploy/mosquitto/passwords, which
#                     mosquitto.conf reads as /mosquitto/config/passwords; docker-compose.yml runs
#                     mosquitto-dynsec.conf instead, whose logins dynsec-init.sh makes)
#
# Service users and the variables holding their passwords (deploy/env.example):
#   ingest          PMS_MQTT_INGEST_PASSWORD
#   alerts          PMS_MQTT_ALERTS_PASSWORD
#   weather         PMS_MQTT_WEATHER_PASSWORD
#   device-manager  PMS_MQTT_DEVICE_MANAGER_PASSWORD
#   api             PMS_MQTT_API_PASSWORD
#   healthcheck     PMS_MQTT_HEALTHCHECK_PASSWORD  (the broker's own container healthcheck)
#   sim             PMS_SIM_MQTT_PASSWORD          (optional: only for the `demo` profile)
#
# Uses mosquitto_passwd from PATH, or else the broker image through docker.
# Re-run it after adding gateways, then send the broker SIGHUP.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
env_file=""
gateways_file=""
output="$here/passwords"
MOSQUITTO_IMAGE=${MOSQUITTO_IMAGE:-eclipse-mosquitto:2.0.20}

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while getopts "e:g:o:h" opt; do
    case "$opt" in
        e) env_file=$OPTARG ;;
        g) gateways_file=$OPTARG ;;
        o) output=$OPTARG ;;
        h) usage 0 ;;
        *) usage 2 ;;
    esac
done

if [ -z "$env_file" ] && [ -f ./.env ]; then
    env_file=./.env
fi
if [ -n "$env_file" ]; then
    [ -f "$env_file" ] || { echo "make-passwords: no such env file: $env_file" >&2; exit 2; }
    case "$env_file" in */*) ;; *) env_file="./$env_file" ;; esac  # '.' would search PATH
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT INT TERM
tmp="$workdir/passwords"
: > "$tmp"

if command -v mosquitto_passwd >/dev/null 2>&1; then
    passwd_cmd() { mosquitto_passwd -b "$tmp" "$1" "$2"; }
elif command -v docker >/dev/null 2>&1; then
    passwd_cmd() {
        docker run --rm -v "$workdir:/work" "$MOSQUITTO_IMAGE" \
            mosquitto_passwd -b /work/passwords "$1" "$2"
    }
else
    echo "make-passwords: need mosquitto_passwd (apt install mosquitto) or docker" >&2
    exit 2
fi

add_user() {  # add_user USER PASSWORD
    case "$1" in
        *[!A-Za-z0-9_.-]*|"") echo "make-passwords: bad user name: '$1'" >&2; exit 2 ;;
    esac
    if [ "${#2}" -lt 12 ]; then
        echo "make-passwords: password for '$1' is shorter than 12 characters" >&2
        exit 2
    fi
    passwd_cmd "$1" "$2"
}

require() {  # require VAR_NAME USER
    eval "value=\${$1:-}"
    if [ -z "$value" ]; then
        echo "make-passwords: $1 is not set (password of MQTT user '$2'); see deploy/env.example" >&2
        exit 2
    fi
    add_user "$2" "$value"
}

random_password() {
    od -An -N18 -tx1 /dev/urandom | tr -d ' \n'
}

require PMS_MQTT_INGEST_PASSWORD ingest
require PMS_MQTT_ALERTS_PASSWORD alerts
require PMS_MQTT_WEATHER_PASSWORD weather
require PMS_MQTT_DEVICE_MANAGER_PASSWORD device-manager
require PMS_MQTT_API_PASSWORD api
require PMS_MQTT_HEALTHCHECK_PASSWORD healthcheck
if [ -n "${PMS_SIM_MQTT_PASSWORD:-}" ]; then
    add_user sim "$PMS_SIM_MQTT_PASSWORD"
fi

if [ -n "$gateways_file" ]; then
    [ -f "$gateways_file" ] || { echo "make-passwords: no such gateways file: $gateways_file" >&2; exit 2; }
    # shellcheck disable=SC2034
    sed -e 's/#.*//' "$gateways_file" | while read -r gateway_id password rest; do
        [ -n "$gateway_id" ] || continue
        case "$gateway_id" in
            ingest|alerts|weather|device-manager|api|sim|healthcheck)
                echo "make-passwords: gateway id '$gateway_id' collides with a service user" >&2
                exit 2 ;;
        esac
        if [ -z "${password:-}" ]; then
            password=$(random_password)
            echo "$gateway_id $password"
        fi
        add_user "$gateway_id" "$password"
    done
fi

# The broker drops root and reads the file as uid 1883 (mosquitto), so it must be readable
# by that user. It holds only salted PBKDF2 hashes; tighten to 0640 + chgrp 1883 if you can.
chmod 0644 "$tmp"
mkdir -p "$(dirname "$output")"
mv "$tmp" "$output"
echo "make-passwords: wrote $output ($(wc -l < "$output") users)" >&2
