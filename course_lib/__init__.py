"""Feast feature store for movie recommendation: the course package.

One module per concern; docs/architecture.md maps each guide section to the modules a learner
opens for it. In short:

- 2.7.1 setup: `settings` (every environment variable, typed and validated), `config` (profiles,
  `feature_store.yaml`, `load_store`), `feature_repo.definitions` (the Feast objects),
  `registry_view` (printable tables), `doctor` (environment checks).
- 2.7.2 data sources: `datasets` (synthetic and MovieLens logs), `adapter` (point-in-time
  feature tables, written offline), `offline` (reading the offline store).
- 2.7.3 real-time serving: `serving` (the plain Feast path), `ranker`, `api`, `api_models`,
  `recommender` (the recommendation request path).
- 2.7.4 monitoring: `monitoring` (Prometheus metrics), `freshness`, `health`.
- 2.7.5 optimization: `caches`, `redis_reader`, `redis_format`, `candidate_matrix` (model input
  without pandas), `scoring` (compiled trees), `materialize`, `pit`, `timing`, `bench`.
- scale-out: `cluster`, `placement`, `capacity`, `scaleout`, `spark_daemon`.
- Around the notebooks: `reset`, `background`, `notebooks`, `exercises`, `checks`, `cli`,
  `errors` (`CourseError`), and `compat` (every Feast and redis-py internal the course relies on).
"""
