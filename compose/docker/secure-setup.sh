#!/bin/sh
# The `topics` one-shot of compose/docker-compose.secure.yml: `clickfan secure-setup`
# (the indexer's API key, the archiver's HDFS folder, topics, ACLs), then each app
# container's share of the secure home, into a volume of its own mounted at
# /handout/<user>: the CA and that user's Kafka client file; for es-indexer its
# Elasticsearch API key, for admin (the demo) its Elasticsearch password. So no app
# container holds the CA's key, the servers' keys or another user's secret.
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
    es-indexer) elasticsearch=es-indexer.api-key ;;
    admin) elasticsearch=admin.password ;;
    *) continue ;;
  esac
  install -d -m 0700 "$share/elasticsearch"
  install -m 0600 "$secure/elasticsearch/$elasticsearch" "$share/elasticsearch/$elasticsearch"
done
echo "handed out: each app container's own user's files"
