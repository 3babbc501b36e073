"""Spark's Python worker daemon for the scaleout profile in local mode: pyspark's own daemon, with
Feast imported once up front and its notices silenced.

Spark forks its Python workers from this process (`spark.python.daemon.module`, set in
`course_lib.config.Profile.spark_conf`), so every worker starts with Feast already imported
and with these warning filters. The workers' stderr ends up in the driver's (in a notebook: its
output), where Feast's "Spark is experimental" and redis-py's deprecation notices would repeat
once per worker with machine-local paths. Feast installs its own `once` filters on import, so
ours are added after importing it.
"""
import warnings

import feast.infra.compute_engines.spark.utils
import feast.infra.offline_stores.contrib.spark_offline_store.spark
from pyspark.daemon import manager

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", "The spark", RuntimeWarning)

if __name__ == "__main__":
    manager()
