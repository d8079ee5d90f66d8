#!/bin/sh
# The `topics` one-shot of compose/docker-compose.secure.yml: `clickfan secure-setup`
# (topics, ACLs, the archiver's HDFS folder), then each app container's share of the
# secure home, into a volume of its own mounted at /handout/<user>: the CA and that
# user's Kafka client file, and for es-indexer and admin their Elasticsearch password.
# So no app container holds the CA's key, the servers' keys or another user's password.
set -eu

clickfan secure-setup --wait "${1:-180}"

secure=${CLICKFAN_HOME:-/var/lib/clickfan-home}/secure
for user in producer es-indexer hdfs-archiver monitor admin; do
  share=/handout/$user
  find "$share" -mindepth 1 -delete  # what an earlier start handed out
  chmod 0700 "$share"
  install -d -m 0700 "$share/clients"
  install -m 0600 "$secure/ca.pem" "$share/ca.pem"
  install -m 0600 "$secure/clients/$user.properties" "$share/clients/$user.properties"
  case $user in
    es-indexer | admin)
      install -d -m 0700 "$share/elasticsearch"
      install -m 0600 "$secure/elasticsearch/$user.password" "$share/elasticsearch/$user.password"
      ;;
  esac
done
echo "handed out: each app container's own user's files"
