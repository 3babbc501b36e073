"""Messages of the `course` command line itself (course_lib.cli, course_lib.diagnose): its one-line
errors, the service failures it recognises in psycopg, SQLAlchemy, redis-py, duckdb and Feast, and the
profile and environment settings it resolves first (course_lib.config, course_lib.settings)."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "diagnose.line_with_fix": Message(
        en="{problem}. Fix: {fix}",
        ko="{problem}. 해결 방법: {fix}"),
    "diagnose.configuration_error": Message(
        en="configuration error: {error}",
        ko="설정 오류: {error}"),
    "diagnose.interrupted": Message(
        en="interrupted",
        ko="중단되었습니다"),
    "diagnose.unexpected": Message(
        en="unexpected error: {reason}",
        ko="예상하지 못한 오류: {reason}"),
    "diagnose.unexpected_fix": Message(
        en="run again with --debug (or {variable}=1) to see the traceback, and report it if it looks like a bug in "
           "the course",
        ko="--debug(또는 {variable}=1)를 붙여 다시 실행하면 트레이스백을 볼 수 있습니다. 코스의 버그로 보이면 알려 "
           "주십시오"),
    "diagnose.configured_address": Message(
        en="the configured host and port",
        ko="설정된 호스트와 포트"),
    "diagnose.database_missing": Message(
        en="PostgreSQL database {database} does not exist on {where}",
        ko="{where}에 PostgreSQL 데이터베이스 {database}이(가) 없습니다"),
    "diagnose.database_fix": Message(
        en="`make services` creates the course databases (or {create})",
        ko="`make services` 명령으로 코스 데이터베이스를 만드십시오(또는 {create})"),
    "diagnose.table_missing": Message(
        en="the offline table {table} does not exist",
        ko="오프라인 테이블 {table}이(가) 없습니다"),
    "diagnose.data_fix": Message(
        en="`course data --profile {profile}` writes it",
        ko="`course data --profile {profile}` 명령으로 만드십시오"),
    "diagnose.pg_login_refused": Message(
        en="PostgreSQL at {where} refused the login: {detail}",
        ko="{where}의 PostgreSQL이 로그인을 거부했습니다: {detail}"),
    "diagnose.pg_login_fix": Message(
        en="set FEAST_PG_USER and FEAST_PG_PASSWORD to an account of that server",
        ko="FEAST_PG_USER와 FEAST_PG_PASSWORD를 그 서버의 계정으로 설정하십시오"),
    "diagnose.pg_unreachable": Message(
        en="PostgreSQL at {where} is unreachable ({detail})",
        ko="{where}의 PostgreSQL에 연결할 수 없습니다({detail})"),
    "diagnose.pg_unreachable_fix": Message(
        en="`make services` starts it, or point FEAST_PG_HOST/FEAST_PG_PORT at your server; `course doctor --profile "
           "{profile}` checks the connection",
        ko="`make services` 명령으로 시작하거나 FEAST_PG_HOST/FEAST_PG_PORT가 사용할 서버를 가리키게 하십시오. "
           "`course doctor --profile {profile}` 명령이 연결을 점검합니다"),
    "diagnose.cluster_down": Message(
        en="the Redis Cluster at {nodes} does not answer ({detail})",
        ko="{nodes}의 Redis Cluster가 응답하지 않습니다({detail})"),
    "diagnose.cluster_down_fix": Message(
        en="`make services-cluster` starts it, or point FEAST_REDIS_CLUSTER_NODES at your cluster",
        ko="`make services-cluster` 명령으로 시작하거나 FEAST_REDIS_CLUSTER_NODES가 사용할 클러스터를 가리키게 "
           "하십시오"),
    "diagnose.redis_at": Message(
        en="Redis at {address}",
        ko="{address}의 Redis"),
    "diagnose.redis_password_refused": Message(
        en="{where} refused the password ({detail})",
        ko="{where}이(가) 비밀번호를 거부했습니다({detail})"),
    "diagnose.redis_password_fix": Message(
        en="set FEAST_REDIS_PASSWORD",
        ko="FEAST_REDIS_PASSWORD를 설정하십시오"),
    "diagnose.redis_unreachable": Message(
        en="{where} is unreachable ({detail})",
        ko="{where}에 연결할 수 없습니다({detail})"),
    "diagnose.redis_unreachable_fix": Message(
        en="`make services` starts it, or point FEAST_REDIS_HOST/FEAST_REDIS_PORT at your server",
        ko="`make services` 명령으로 시작하거나 FEAST_REDIS_HOST/FEAST_REDIS_PORT가 사용할 서버를 가리키게 하십시오"),
    "diagnose.project_named": Message(
        en="project {project}",
        ko="프로젝트 {project}"),
    "diagnose.the_project": Message(
        en="the project",
        ko="프로젝트"),
    "diagnose.not_registered": Message(
        en="{detail}: the course definitions are not registered in {project}",
        ko="{detail}: 코스 정의가 {project}에 등록되어 있지 않습니다"),
    "diagnose.apply_fix": Message(
        en="`course apply --profile {profile}` registers them",
        ko="`course apply --profile {profile}` 명령으로 등록하십시오"),
    "diagnose.no_offline_data": Message(
        en="no offline data at {path}",
        ko="{path}에 오프라인 데이터가 없습니다"),
    "cli.skew_none": Message(
        en="no training/serving skew: {features} features of {rows:,} logged rows equal their point-in-time values",
        ko="학습/서빙 스큐 없음: 로그된 {rows:,}개 행의 피처 {features}개가 모두 시점 정합 값과 같습니다"),
    "cli.skew_found": Message(
        en="training/serving skew in {features}: serving computes them differently from training; the example "
           "column shows a row, and the runbook (docs/runbook.md, CourseFeatureDrift) says what to check",
        ko="{features}에서 학습/서빙 스큐: 서빙이 학습과 다르게 계산합니다. example 열에 한 행이 있고, 런북"
           "(docs/runbook.ko.md, CourseFeatureDrift)에 확인할 점이 있습니다"),
    "cli.movielens_needs_path": Message(
        en="--source movielens needs --path DIR (an unzipped ml-latest-small folder)",
        ko="--source movielens에는 --path DIR(압축을 푼 ml-latest-small 폴더)이 필요합니다"),
    "cli.attempts": Message(
        en="--attempts must be at least 1, got {attempts}",
        ko="--attempts는 1 이상이어야 합니다. 받은 값: {attempts}"),
    "cli.end_with_every": Message(
        en="--end cannot be combined with --every: each scheduled run ends at its start time",
        ko="--end는 --every와 함께 쓸 수 없습니다. 예약된 실행은 각각 시작 시각에 끝납니다"),
    "config.unknown_profile": Message(
        en="unknown profile {name!r}: choose one of {profiles} (--profile flag or COURSE_PROFILE environment "
           "variable)",
        ko="알 수 없는 프로필 {name!r}: {profiles} 중 하나를 고르십시오(--profile 플래그 또는 COURSE_PROFILE 환경 "
           "변수)"),
    "settings.identifier_rule": Message(
        en="must start with a lower-case letter and hold only lower-case letters, digits and _ (at most 63 "
           "characters, PostgreSQL's limit), e.g. 'alice_01'",
        ko="소문자로 시작하고 소문자, 숫자, _만 포함해야 합니다(PostgreSQL의 한도인 63자 이하). 예: 'alice_01'"),
    "settings.password_comma": Message(
        en="must not contain ',' (Feast's Redis connection string separates options with it); choose a password "
           "without a comma",
        ko="','를 포함할 수 없습니다(Feast의 Redis 연결 문자열이 쉼표로 옵션을 구분합니다). 쉼표가 없는 비밀번호를 "
           "고르십시오"),
    "settings.not_host_port": Message(
        en="entry {entry!r} is not host:port; expected e.g. '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003'",
        ko="항목 {entry!r}이(가) host:port 형식이 아닙니다. 예: '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003'"),
    "settings.invalid": Message(
        en="{variable}={shown} is invalid: {message}; fix the environment variable (default: {default!r})",
        ko="{variable}={shown} 값이 잘못되었습니다: {message}. 환경 변수를 고치십시오(기본값: {default!r})"),
}
