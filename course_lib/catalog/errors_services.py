"""Messages of the services the course starts or reads: the API's start-up (course_lib.api), background
servers and the local Redis Cluster (course_lib.background, course_lib.cluster, course_lib.capacity), outage
forwarders and soaks (course_lib.outage, course_lib.soak, course_lib.verify), classroom accounts
(course_lib.classroom), the raw online readers (course_lib.redis_format, course_lib.redis_reader,
course_lib.sqlite_reader), the Feast version pin (course_lib.compat), scratch registries
(course_lib.registry_view) and the fix hints the health checks share with the command line (course_lib.health:
`course doctor` and the API's bodies render these in English)."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "api_services.registry_unreadable": Message(
        en="API start-up failed: cannot read the feature registry ({location}): {reason}. Fix: {fix}",
        ko="API 시작 실패: 피처 레지스트리({location})를 읽을 수 없습니다: {reason}. 해결 방법: {fix}"),
    "api_services.views_missing": Message(
        en="API start-up failed: project {project!r} has no feature views {missing}. Fix: `course apply --profile "
           "{profile}`, then `course materialize --profile {profile}`",
        ko="API 시작 실패: 프로젝트 {project!r}에 피처 뷰 {missing}이(가) 없습니다. 해결 방법: `course apply "
           "--profile {profile}`, 이어서 `course materialize --profile {profile}` 명령을 실행하십시오"),
    "api_services.startup_failed": Message(
        en="API start-up failed: {error}",
        ko="API 시작 실패: {error}"),
    "api.workers": Message(
        en="--workers must be at least 1, got {workers}",
        ko="--workers는 1 이상이어야 합니다. 받은 값: {workers}"),
    "health.services_fix": Message(
        en="`make services` or `docker compose -f docker-compose.feast.yml up -d`",
        ko="`make services` 또는 `docker compose -f docker-compose.feast.yml up -d`"),
    "health.redis_fix": Message(
        en="install Redis: `sudo apt-get install redis-server redis-tools`, `brew install redis` or `conda install -c "
           "conda-forge redis-server`",
        ko="Redis를 설치하십시오: `sudo apt-get install redis-server redis-tools`, `brew install redis` 또는 `conda "
           "install -c conda-forge redis-server`"),
    "health.registry_hint_local": Message(
        en="run `course apply --profile local` (the registry file is {location})",
        ko="`course apply --profile local` 명령을 실행하십시오(레지스트리 파일: {location})"),
    "health.registry_hint_postgres": Message(
        en="start PostgreSQL ({services}) or point FEAST_PG_HOST/FEAST_PG_PORT/FEAST_PG_USER/FEAST_PG_PASSWORD at it; "
           "`course doctor --profile {profile}` checks the connection",
        ko="PostgreSQL을 시작하거나({services}) FEAST_PG_HOST/FEAST_PG_PORT/FEAST_PG_USER/FEAST_PG_PASSWORD가 그 "
           "서버를 가리키게 하십시오. `course doctor --profile {profile}` 명령이 연결을 점검합니다"),
    "background.never_healthy": Message(
        en="server at {url} never answered 200 on {path} (exit code {code}); its output:\n{output}",
        ko="{url}의 서버가 {path}에 200으로 응답하지 않았습니다(종료 코드 {code}). 서버 출력:\n{output}"),
    "background.no_health_round": Message(
        en="{url} ran no health round in {timeout_s} s; its output:\n{output}",
        ko="{url}이(가) {timeout_s}초 안에 건강성 검사를 한 번도 마치지 않았습니다. 서버 출력:\n{output}"),
    "background.redis_missing": Message(
        en="redis-server is not installed: `sudo apt-get install redis-server`, `brew install redis` or `conda "
           "install -c conda-forge redis-server`",
        ko="redis-server가 설치되어 있지 않습니다. `sudo apt-get install redis-server`, `brew install redis` 또는 "
           "`conda install -c conda-forge redis-server`로 설치하십시오"),
    "background.redis_no_start": Message(
        en="redis-server on port {port} did not start",
        ko="포트 {port}의 redis-server가 시작되지 않았습니다"),
    "cluster.no_free_ports": Message(
        en="no free port pair (port, port + 10000) found in {low}..{high}",
        ko="{low}..{high}에서 비어 있는 포트 쌍(port, port + 10000)을 찾지 못했습니다"),
    "cluster.off_machine": Message(
        en="FEAST_REDIS_CLUSTER_NODES lists {nodes}, which are not on this machine: start that cluster where it runs, "
           "or list 127.0.0.1 ports here",
        ko="FEAST_REDIS_CLUSTER_NODES에 이 머신에 없는 노드 {nodes}이(가) 있습니다. 그 클러스터는 실행되는 곳에서 "
           "시작하거나, 여기에는 127.0.0.1 포트를 나열하십시오"),
    "cluster.ports_too_high": Message(
        en="FEAST_REDIS_CLUSTER_NODES lists {nodes}: cluster nodes need ports up to 55535, because each also listens "
           "on its port + 10000 (the cluster bus)",
        ko="FEAST_REDIS_CLUSTER_NODES에 {nodes}이(가) 있습니다. 클러스터 노드는 포트 + 10000(클러스터 버스)에서도 "
           "수신하므로 포트가 55535 이하여야 합니다"),
    "cluster.too_few_masters": Message(
        en="a Redis Cluster needs at least 3 masters; FEAST_REDIS_CLUSTER_NODES lists {count}",
        ko="Redis Cluster에는 마스터가 3개 이상 필요하지만 FEAST_REDIS_CLUSTER_NODES에는 {count}개가 있습니다"),
    "cluster.redis_missing": Message(
        en="redis-server is not installed: {fix}",
        ko="redis-server가 설치되어 있지 않습니다. {fix}"),
    "cluster.node_no_start": Message(
        en="redis-server {node} did not start (exit code {code}); see {log}; is the port taken by another program?",
        ko="redis-server {node}이(가) 시작되지 않았습니다(종료 코드 {code}). {log}을(를) 보고, 다른 프로그램이 그 "
           "포트를 쓰고 있는지 확인하십시오"),
    "cluster.node_no_stop": Message(
        en="redis-server {node} (pid {pid}) did not stop within {seconds} s",
        ko="redis-server {node}(pid {pid})이(가) {seconds}초 안에 멈추지 않았습니다"),
    "cluster.create_failed": Message(
        en="redis-cli --cluster create failed: {stdout}{stderr}",
        ko="redis-cli --cluster create 실패: {stdout}{stderr}"),
    "cluster.not_ok": Message(
        en="the cluster did not reach cluster_state:ok within {timeout_s} s: {summary}. Fix: `make "
           "services-cluster-down`, remove the node folders under {root}, then `make services-cluster`",
        ko="클러스터가 {timeout_s}초 안에 cluster_state:ok에 이르지 못했습니다: {summary}. 해결 방법: `make "
           "services-cluster-down`을 실행하고 {root} 아래의 노드 폴더를 지운 다음 `make services-cluster`를 "
           "실행하십시오"),
    "cluster.not_cluster_enabled": Message(
        en="{nodes} answer PING but not CLUSTER INFO: another Redis without --cluster-enabled uses those ports; stop "
           "it or set FEAST_REDIS_CLUSTER_NODES",
        ko="{nodes}이(가) PING에는 응답하지만 CLUSTER INFO에는 응답하지 않습니다. --cluster-enabled 없이 실행된 다른 "
           "Redis가 그 포트를 쓰고 있습니다. 그 Redis를 멈추거나 FEAST_REDIS_CLUSTER_NODES를 설정하십시오"),
    "capacity.no_sampled_key": Message(
        en="none of the sampled keys is in the cluster: materialize first",
        ko="샘플링한 키가 하나도 클러스터에 없습니다. 먼저 실체화하십시오"),
    "outage.stopped": Message(
        en="the forwarder was stopped; call start() first",
        ko="포워더가 멈춰 있습니다. 먼저 start()를 호출하십시오"),
    "outage.port_taken": Message(
        en="cannot listen on 127.0.0.1:{port} again ({error}); another process took the port: start a new Forwarder",
        ko="127.0.0.1:{port}에서 다시 수신할 수 없습니다({error}). 다른 프로세스가 그 포트를 가져갔으니 새 "
           "Forwarder를 시작하십시오"),
    "soak.drill_failed": Message(
        en="{drill} drill failed: {error}: {detail}",
        ko="{drill} 장애 훈련이 실패했습니다: {error}: {detail}"),
    "verify.profile": Message(
        en="course verify checks the local and enterprise profiles, not {profile!r}",
        ko="course verify는 local과 enterprise 프로필을 점검합니다. {profile!r}은(는) 점검 대상이 아닙니다"),
    "verify.soak_seconds": Message(
        en="--soak-seconds must be at least 20 (two outages and their recovery), got {soak_seconds:g}",
        ko="--soak-seconds는 20 이상이어야 합니다(장애 두 번과 그 복구). 받은 값: {soak_seconds:g}"),
    "classroom.names_clash": Message(
        en="learner names must be unique and none may end with another ({clashes}): Feast's Redis keys end with the "
           "project name. Use names such as learner_01, learner_02 ({rule})",
        ko="학습자 이름은 서로 달라야 하고, 어떤 이름도 다른 이름으로 끝나면 안 됩니다({clashes}). Feast의 Redis "
           "키가 프로젝트 이름으로 끝나기 때문입니다. learner_01, learner_02 같은 이름을 쓰십시오({rule})"),
    "classroom.no_learners": Message(
        en="give --count N (N >= 1) or --learners name1,name2",
        ko="--count N(N >= 1) 또는 --learners name1,name2를 지정하십시오"),
    "compat.versions": Message(
        en="course_lib.compat was written for other versions: {wrong}; reinstall the locked environment with `make "
           "venv` (requirements.lock)",
        ko="course_lib.compat은 다른 버전에 맞춰 작성되었습니다: {wrong}. `make venv` 명령으로 고정된 "
           "환경(requirements.lock)을 다시 설치하십시오"),
    "redis_format.key_version": Message(
        en="{reads} need entity_key_serialization_version 3 keys of unversioned feature views; set "
           "entity_key_serialization_version: 3 in feature_store.yaml",
        ko="{reads}에는 버전 없는 피처 뷰의 entity_key_serialization_version 3 키가 필요합니다. feature_store.yaml에 "
           "entity_key_serialization_version: 3을 설정하십시오"),
    "redis_format.int64_only": Message(
        en="{reads} encode INT64 join keys only; entities {entities} are not INT64",
        ko="{reads}은(는) INT64 조인 키만 인코딩합니다. 엔티티 {entities}은(는) INT64가 아닙니다"),
    "redis_reader.raw_reads": Message(
        en="raw Redis reads",
        ko="Redis 직접 읽기"),
    "redis_reader.not_redis": Message(
        en="raw Redis reads need a single-server Redis online store (enterprise profile), not {store!r}; use "
           "sdk_fetch(store) instead",
        ko="Redis 직접 읽기에는 단일 서버 Redis 온라인 스토어(enterprise 프로필)가 필요합니다. {store!r}에서는 쓸 수 "
           "없으니 대신 sdk_fetch(store)를 쓰십시오"),
    "redis_reader.other_redis": Message(
        en="the store's Redis ({connection}) is not profile {profile!r}'s; open the store with load_store(profile)",
        ko="스토어의 Redis({connection})가 프로필 {profile!r}의 Redis가 아닙니다. load_store(profile)로 스토어를 "
           "여십시오"),
    "sqlite_reader.raw_reads": Message(
        en="raw SQLite reads",
        ko="SQLite 직접 읽기"),
    "sqlite_reader.not_sqlite": Message(
        en="raw SQLite reads need the SQLite online store (local profile), not {store!r}; use sdk_fetch(store) "
           "instead",
        ko="SQLite 직접 읽기에는 SQLite 온라인 스토어(local 프로필)가 필요합니다. {store!r}에서는 쓸 수 없으니 대신 "
           "sdk_fetch(store)를 쓰십시오"),
    "registry_view.scratch_is_course": Message(
        en="scratch project {project!r} is the course project; pick another name so the scratch store cannot delete "
           "your registry",
        ko="임시 프로젝트 {project!r}이(가) 코스 프로젝트와 같습니다. 임시 스토어가 여러분의 레지스트리를 지우지 "
           "않도록 다른 이름을 고르십시오"),
}
