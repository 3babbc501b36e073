"""Messages of notebook 01's checks (course_lib.checks.feast_setup): the interaction feature view, the taste
feature service."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "feast_setup.not_a_view": Message(
        en="interaction_view returned {type}; it must return a feast.FeatureView",
        ko="interaction_view의 반환값이 {type} 타입입니다. feast.FeatureView를 돌려주어야 합니다"),
    "feast_setup.view_name": Message(
        en="your view is named {got!r}; name it {want!r}: feature references such as '{want}:watch_count' use that "
           "name",
        ko="작성한 피처 뷰의 이름이 {got!r}입니다. 이름을 {want!r}(으)로 바꾸십시오. '{want}:watch_count' 같은 "
           "피처 참조가 이 이름을 씁니다"),
    "feast_setup.entities": Message(
        en="your view's entities are {got}; an interaction belongs to a (user, movie) pair, so it needs both: {want}",
        ko="작성한 피처 뷰의 엔티티는 {got}입니다. 상호작용은 (사용자, 영화) 쌍에 딸린 것이므로 두 엔티티가 모두 "
           "필요합니다: {want}"),
    "feast_setup.field_missing": Message(
        en="{name} ({dtype}) is missing",
        ko="{name}({dtype}) 필드가 없습니다"),
    "feast_setup.field_type": Message(
        en="{name} is declared {got}, the offline column is {want}",
        ko="{name} 필드는 {got} 타입으로 선언되었지만 오프라인 열은 {want} 타입입니다"),
    "feast_setup.field_extra": Message(
        en="{name} is not a column of the interaction table",
        ko="{name} 필드는 상호작용 테이블에 없는 열입니다"),
    "feast_setup.schema": Message(
        en="your schema does not match the interaction table: {problems}",
        ko="작성한 스키마가 상호작용 테이블과 맞지 않습니다: {problems}"),
    "feast_setup.source": Message(
        en="your view does not read the `source` argument; pass `source=source` to FeatureView",
        ko="작성한 피처 뷰가 `source` 인자를 읽지 않습니다. FeatureView에 `source=source`를 넘기십시오"),
    "feast_setup.ttl_age": Message(
        en=", {hours} h after the row at {row_at}",
        ko="({row_at}의 행보다 {hours}시간 뒤)"),
    "feast_setup.ttl_drops": Message(
        en="at {at}{age}, the registered view (TTL {ttl}) drops that row; your view's ttl is {mine} — is it "
           "timedelta(days=1)?",
        ko="등록된 피처 뷰(TTL {ttl})는 {at} 시점{age}에서 그 행을 버립니다. 작성한 피처 뷰의 ttl은 {mine}입니다. "
           "timedelta(days=1)로 설정했습니까?"),
    "feast_setup.ttl_keeps": Message(
        en="at {at}{age}, the registered view (TTL {ttl}) keeps that row; your view's ttl is {mine} — is it "
           "timedelta(days=1)?",
        ko="등록된 피처 뷰(TTL {ttl})는 {at} 시점{age}에서 그 행을 유지합니다. 작성한 피처 뷰의 ttl은 "
           "{mine}입니다. timedelta(days=1)로 설정했습니까?"),
    "feast_setup.view_failed": Message(
        en="Feast could not apply or query your view: {error}: {detail}",
        ko="Feast가 작성한 피처 뷰를 등록하거나 조회하지 못했습니다: {error}: {detail}"),
    "feast_setup.view_value": Message(
        en="for user {user}, movie {movie} your view returned {name}={got}, the registered view returns {want}: "
           "{hint}",
        ko="사용자 {user}, 영화 {movie}에 대해 작성한 피처 뷰는 {name}={got} 값을 돌려주었고, 등록된 피처 뷰는 "
           "{want} 값을 돌려줍니다. {hint}"),
    "feast_setup.view_passed": Message(
        en="same entities, schema and point-in-time results as the registered view on {probes} probes (TTL {ttl})",
        ko="엔티티, 스키마, 그리고 시점 정확 조인 결과가 프로브 {probes}개 모두에서 등록된 피처 뷰와 같습니다"
           "(TTL {ttl})"),
    "feast_setup.not_a_service": Message(
        en="taste_service returned {type}; it must return a feast.FeatureService",
        ko="taste_service의 반환값이 {type} 타입입니다. feast.FeatureService를 돌려주어야 합니다"),
    "feast_setup.service_name": Message(
        en="your service is named {got!r}; clients ask for it by name, so call it {want!r}",
        ko="작성한 피처 서비스의 이름이 {got!r}입니다. 클라이언트는 이름으로 피처 서비스를 요청하므로 이름을 "
           "{want!r}(으)로 지으십시오"),
    "feast_setup.service_failed": Message(
        en="Feast could not apply or serve your service: {error}: {detail}",
        ko="Feast가 작성한 피처 서비스를 등록하거나 서빙하지 못했습니다: {error}: {detail}"),
    "feast_setup.features_missing": Message(
        en="your service serves {got}; expected {wanted}. Missing: {missing}. ",
        ko="작성한 피처 서비스가 제공하는 피처는 {got}이고, 기대한 피처는 {wanted}입니다. 빠진 피처: {missing}."),
    "feast_setup.features_extra": Message(
        en="your service serves {got}; expected {wanted}. Not asked for: {extra} — select features with "
           "view[['a', 'b']].",
        ko="작성한 피처 서비스가 제공하는 피처는 {got}이고, 기대한 피처는 {wanted}입니다. 요청하지 않은 피처: "
           "{extra}. view[['a', 'b']]로 피처를 고르십시오."),
    "feast_setup.features_both": Message(
        en="your service serves {got}; expected {wanted}. Missing: {missing}. Not asked for: {extra} — select "
           "features with view[['a', 'b']].",
        ko="작성한 피처 서비스가 제공하는 피처는 {got}이고, 기대한 피처는 {wanted}입니다. 빠진 피처: {missing}. "
           "요청하지 않은 피처: {extra}. view[['a', 'b']]로 피처를 고르십시오."),
    "feast_setup.service_passed": Message(
        en="Feast serves exactly the {count} taste features through {service!r}",
        ko="Feast가 {service!r} 피처 서비스로 취향 피처 {count}개를 정확히 제공합니다"),
}
