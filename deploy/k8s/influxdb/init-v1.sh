#!/bin/sh
# Make InfluxDB 2.x serve PMS through the v1-compatible HTTP API (docs/decisions.md, "Real components"):
#   1. a DBRP mapping: database "pms" / retention policy "autogen" -> bucket "pms", so
#      `POST /write?db=pms` and `GET /query?db=pms` (InfluxQL) reach the bucket. InfluxDB >= 2.4
#      also has a *virtual* mapping for every bucket; the explicit one survives bucket renames
#      and is what Grafana's InfluxQL datasource and `influx v1 dbrp list` show.
#   2. a v1 authorization (username/password) with read+write on that bucket: the user:pass
#      in PMS_TSDB_URL=influxdb://user:pass@influxdb:8086/pms. The password is reset to the
#      value in .env on every run, so rotating it is: edit .env, `docker compose up -d`.
# Idempotent. Runs in the influxdb image (its `influx` CLI reads INFLUX_HOST/INFLUX_ORG/INFLUX_TOKEN).
set -eu

: "${INFLUX_HOST:?}" "${INFLUX_ORG:?}" "${INFLUX_TOKEN:?}"
: "${INFLUXDB_V1_USER:?}" "${INFLUXDB_V1_PASSWORD:?}"
bucket=${PMS_INFLUXDB_BUCKET:-pms}
database=${PMS_INFLUXDB_DATABASE:-pms}
rp=${PMS_INFLUXDB_RP:-autogen}

log() { echo "influxdb-init: $*"; }

bucket_id=$(influx bucket list --name "$bucket" --hide-headers | awk 'NR == 1 { print $1 }')
if [ -z "$bucket_id" ]; then
    log "bucket '$bucket' not found in org '$INFLUX_ORG' (DOCKER_INFLUXDB_INIT_BUCKET creates it)"
    exit 1
fi
log "bucket $bucket = $bucket_id"

# Create it; on a re-run the create is refused because the mapping exists, which the list confirms.
if influx v1 dbrp create --db "$database" --rp "$rp" --bucket-id "$bucket_id" --default > /dev/null 2>&1; then
    log "DBRP $database/$rp -> $bucket created"
elif influx v1 dbrp list --db "$database" --hide-headers | grep -q "$bucket_id"; then
    log "DBRP $database/$rp -> $bucket already present"
else
    log "could not create the DBRP mapping $database/$rp -> $bucket"
    exit 1
fi

if influx v1 auth list --hide-headers | awk '{ for (i = 1; i <= NF; i++) if ($i == u) f = 1 } END { exit !f }' u="$INFLUXDB_V1_USER"; then
    influx v1 auth set-password --username "$INFLUXDB_V1_USER" --password "$INFLUXDB_V1_PASSWORD" > /dev/null
    log "v1 user $INFLUXDB_V1_USER present; password synchronised"
else
    influx v1 auth create \
        --username "$INFLUXDB_V1_USER" --password "$INFLUXDB_V1_PASSWORD" \
        --read-bucket "$bucket_id" --write-bucket "$bucket_id" \
        --description "PMS services (v1 API)" > /dev/null
    log "v1 user $INFLUXDB_V1_USER created (read/write on $bucket)"
fi

# Smoke test through the v1 API with exactly what the services will use.
if command -v curl > /dev/null 2>&1; then
    curl -fsS -G "$INFLUX_HOST/query" -u "$INFLUXDB_V1_USER:$INFLUXDB_V1_PASSWORD" \
        --data-urlencode "db=$database" --data-urlencode "q=SHOW MEASUREMENTS" > /dev/null
    log "v1 /query as $INFLUXDB_V1_USER on db=$database: ok"
fi
