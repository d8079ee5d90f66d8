"""The few Elasticsearch calls the experiments make (counts, versions, an index of their own)."""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch, NotFoundError, helpers

from clickfan.settings import Settings
from clickfan.sinks import clients


def client(settings: Settings) -> Elasticsearch:
    return clients.elasticsearch_client(clients.elasticsearch_connection(settings, timeout_s=30))


class ElasticIndex:
    """An index (or pattern) named by one run; event id = document id."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.es = client(settings)
        self.name = name

    def put(self, events: list[dict[str, Any]]) -> None:
        actions = ({"_index": self.name, "_id": e["event_id"], "_source": e} for e in events)
        helpers.bulk(self.es, actions, chunk_size=1000)

    def refresh(self) -> None:
        self.es.indices.refresh(index=self.name, ignore_unavailable=True, allow_no_indices=True)

    def count(self) -> int:
        self.refresh()
        try:
            return self.es.count(index=self.name, ignore_unavailable=True)["count"]
        except NotFoundError:
            return 0

    def versions(self) -> dict[str, int]:
        """document id -> _version, for every document."""
        self.refresh()
        out: dict[str, int] = {}
        for hit in helpers.scan(
            self.es,
            index=self.name,
            query={"query": {"match_all": {}}},
            version=True,
            _source=False,
            ignore_unavailable=True,
        ):
            out[hit["_id"]] = hit["_version"]
        return out

    def delete(self) -> None:
        self.es.indices.delete(index=self.name, ignore_unavailable=True, allow_no_indices=True)
