"""Redis Cluster behind Django's cache and the raw client (RECSVC_REDIS_CLUSTER): a django-redis connection
factory that returns redis-py's `RedisCluster` instead of `Redis`.

django-redis has no cluster client of its own (its clients are one server, Sentinel, or client-side
sharding), but its default client only calls commands on the connection the factory gives it, and
`RedisCluster` routes each command to the node that holds the key's slot. What makes that work is that every
multi-key operation of the service names keys of one shop, and those keys carry the shop's hash tag
(`recs:{T}:...`, `{T}` hashed alone), so they share a slot: MGET of a request's answers and generations, the
admission pipeline, rate-limit and usage counters. A command over keys in different slots fails with
CROSSSLOT; docs/deployment.md#redis-cluster lists what does and does not run on a cluster.
"""

from __future__ import annotations

from typing import Any

from django_redis.pool import ConnectionFactory
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

# redis-py's default, 10 retries with backoff and a 0.25 s pause on each CLUSTERDOWN, made each request
# wait about 6 s while a master was lost (every node refuses commands once the others notice). One retry
# without backoff still follows a failover already done (the retry re-reads the slot map) and costs a
# command at most two of those pauses: the cache degrades to misses at once instead.
RETRY_ATTEMPTS = 1


class _ServiceCluster(RedisCluster):
    """MGET over keys of several slots (django-redis's get_many of keys without a common hash tag) is sent
    as one MGET per slot instead of failing with CROSSSLOT; keys of one slot still cost one MGET."""

    def mget(self, keys: Any, *args: Any) -> list[Any]:
        return self.mget_nonatomic(keys, *args)


_clients: dict[str, RedisCluster] = {}


class ClusterConnectionFactory(ConnectionFactory):
    """One `RedisCluster` per URL and process: it holds a pool per node and the slot map, which it refreshes
    itself when the cluster moves slots or loses a node."""

    def connect(self, url: str) -> RedisCluster:
        client = _clients.get(url)
        if client is None:
            params = self.make_connection_params(url)
            params.pop("parser_class", None)  # RedisCluster picks its parser (hiredis when installed)
            params.setdefault("retry", Retry(NoBackoff(), RETRY_ATTEMPTS))
            client = _clients[url] = _ServiceCluster.from_url(params.pop("url"), **params)
        return client

    def disconnect(self, connection: Any) -> None:
        connection.disconnect_connection_pools()

    @staticmethod
    def forget(url: str) -> None:
        """Drop this process's client of `url` (tests start and stop clusters on reused ports)."""
        client = _clients.pop(url, None)
        if client is not None:
            client.close()
