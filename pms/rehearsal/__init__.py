"""The production shape rehearsed on one machine, without Docker (development only: `scripts/rehearse`).

Every part is the real one the deployment uses, started from the repository's production configs:
Mosquitto with the dynamic-security plugin, its ACL and a TLS listener (a throwaway CA made here),
Debian's InfluxDB, a scratch database on the local PostgreSQL, each service as its own process with
the environment docker-compose.yml gives it, the API under gunicorn with the container's flags,
Prometheus with deploy/prometheus and Alertmanager with deploy/alertmanager, and gateways running
`pms collector` on a simulated meter that claim their own logins and publish over mqtts.

    configs     renders the repository's files for local ports and a scratch folder
    tls         the throwaway CA and the broker's certificate
    processes   starts, lists and stops the processes (everything it started, also on failure)
    topology    the order of starting, readiness checks, the operator's first steps (plants, bindings)
    __main__    the command line: prints what runs where, stops everything on Ctrl-C

Not imported by `pms` or any service: the production image never runs it.
"""
