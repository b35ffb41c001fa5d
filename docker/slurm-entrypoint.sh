#!/usr/bin/env bash
# Entry point of the SLURM image (docker/slurm.Dockerfile). Roles:
#   controller  create the cluster's MUNGE key on the shared key volume if it has none, start
#              munged (its socket is shared with the Dagster code server, which submits),
#              MariaDB and slurmdbd (accounting, for sacct), then slurmctld in the foreground
#   node        wait for the key, start munged, then slurmd in the foreground
#   health      the role's own check: `scontrol ping` on the controller, slurmd alive on a node
# Runs as root, as SLURM's daemons must; jobs run as the user who submitted them (geotriplet).
set -euo pipefail

role="${1:-node}"
key=/etc/munge/munge.key

start_munged() {
    install -d -o munge -g munge -m 0755 /run/munge
    for _ in $(seq 60); do [[ -s "$key" ]] && break; sleep 1; done
    [[ -s "$key" ]] || { echo "no MUNGE key at $key after 60 s" >&2; exit 1; }
    runuser -u munge -- munged --force
}

case "$role" in
    controller)
        echo controller > /tmp/geotriplet-slurm-role
        if [[ ! -s "$key" ]]; then
            install -d -o munge -g munge -m 0700 /etc/munge
            dd if=/dev/urandom of="$key.new" bs=1024 count=1 status=none
            chown munge:munge "$key.new" && chmod 0400 "$key.new" && mv "$key.new" "$key"
        fi
        start_munged
        install -d -o mysql -g mysql /run/mysqld
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            chown mysql:mysql /var/lib/mysql
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
                --auth-root-authentication-method=socket >/dev/null
        fi
        runuser -u mysql -- mariadbd --datadir=/var/lib/mysql --skip-networking \
            --socket=/run/mysqld/mysqld.sock >/var/log/mariadb.log 2>&1 &
        for _ in $(seq 60); do mariadb -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
        # slurmdbd runs as the slurm user and signs in over the socket as that user
        mariadb <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
        install -o slurm -g slurm -m 0600 /dev/null /etc/slurm/slurmdbd.conf
        cat > /etc/slurm/slurmdbd.conf <<'CONF'
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurmdbd/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
CONF
        install -d -o slurm -g slurm /run/slurmdbd /var/spool/slurmctld
        runuser -u slurm -- slurmdbd -D >/var/log/slurmdbd.log 2>&1 &
        for _ in $(seq 60); do
            sacctmgr -n list cluster >/dev/null 2>&1 && break
            sleep 1
        done
        # the cluster must be known to the accounting before slurmctld registers with it
        sacctmgr -i add cluster geotriplet >/dev/null 2>&1 || true
        exec slurmctld -D
        ;;
    node)
        echo node > /tmp/geotriplet-slurm-role
        start_munged
        install -d /var/spool/slurmd
        exec slurmd -D -N "$(hostname)"
        ;;
    health)
        case "$(cat /tmp/geotriplet-slurm-role 2>/dev/null || echo none)" in
            controller) exec scontrol ping ;;
            node) exec pgrep -x slurmd >/dev/null ;;
            *) exit 1 ;;
        esac
        ;;
    *)
        exec "$@"
        ;;
esac
