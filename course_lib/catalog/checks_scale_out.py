"""Messages of notebook 06's checks (course_lib.checks.scale_out): a key's hash slot, Redis masters for a load.
Literal braces of hash tags are written `{{` and `}}`."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "scale_out.key_feast": Message(
        en="Feast's key of {row}",
        ko="{row}의 Feast 키"),
    "scale_out.key_accidental": Message(
        en="Feast's key of {row}; an id byte 0x7b is '{{', 0x7d is '}}'",
        ko="{row}의 Feast 키. id 바이트 0x7b는 '{{', 0x7d는 '}}'입니다"),
    "scale_out.key_tag": Message(
        en="a hash tag",
        ko="해시 태그가 있는 키"),
    "scale_out.key_same_tag": Message(
        en="the same hash tag, so the same slot",
        ko="같은 해시 태그이므로 같은 슬롯"),
    "scale_out.key_two_tags": Message(
        en="two tags: only the first counts",
        ko="태그가 두 개: 첫 번째 태그만 유효"),
    "scale_out.key_empty_tag": Message(
        en="an empty tag: the whole key is hashed",
        ko="빈 태그: 키 전체를 해시"),
    "scale_out.key_brace_in_tag": Message(
        en="a tag that contains '{{'",
        ko="'{{'가 들어 있는 태그"),
    "scale_out.key_no_close": Message(
        en="no '}}' after its '{{'",
        ko="'{{' 뒤에 '}}'가 없는 키"),
    "scale_out.key_empty": Message(
        en="no bytes at all",
        ko="바이트가 하나도 없는 키"),
    "scale_out.hint_modulo": Message(
        en="take the CRC modulo 16384: slots run from 0 to 16383",
        ko="CRC를 16384로 나눈 나머지를 구하십시오. 슬롯은 0부터 16383까지입니다"),
    "scale_out.hint_16383": Message(
        en="take the CRC modulo 16384, not 16383",
        ko="CRC를 16383이 아니라 16384로 나눈 나머지를 구하십시오"),
    "scale_out.hint_crc32": Message(
        en="Redis Cluster uses CRC16 in the XMODEM variant (binascii.crc_hqx(key, 0)), not CRC32",
        ko="Redis Cluster는 CRC32가 아니라 XMODEM 방식의 CRC16(binascii.crc_hqx(key, 0))을 씁니다"),
    "scale_out.hint_tag": Message(
        en="this key has the hash tag {tag!r}: hash only the bytes between the first '{{' and the first '}}' after it",
        ko="이 키의 해시 태그는 {tag!r}입니다. 첫 '{{'와 그 뒤의 첫 '}}' 사이의 바이트만 해시하십시오"),
    "scale_out.hint_braces": Message(
        en="hash the bytes between the braces, without the braces",
        ko="중괄호는 빼고 중괄호 사이의 바이트만 해시하십시오"),
    "scale_out.hint_last_brace": Message(
        en="the tag ends at the first '}}' after the first '{{', not at the last '}}'",
        ko="태그는 마지막 '}}'가 아니라 첫 '{{' 뒤의 첫 '}}'에서 끝납니다"),
    "scale_out.hint_empty_tag": Message(
        en="an empty tag '{{}}' does not count: then the whole key is hashed",
        ko="빈 태그 '{{}}'는 태그로 치지 않습니다. 이때는 키 전체를 해시합니다"),
    "scale_out.hint_slot": Message(
        en="the slot is CRC16/XMODEM (binascii.crc_hqx(data, 0)) modulo 16384 of the hash tag — the bytes between "
           "the first '{{' and the first '}}' after it, if at least one lies between them — or else of the whole key",
        ko="슬롯은 해시 태그의 CRC16/XMODEM 값(binascii.crc_hqx(data, 0))을 16384로 나눈 나머지입니다. 해시 "
           "태그는 첫 '{{'와 그 뒤의 첫 '}}' 사이의 바이트이고(그 사이에 바이트가 하나 이상 있을 때만), 해시 태그가 "
           "없으면 키 전체를 씁니다"),
    "scale_out.slot_type": Message(
        en="key_slot returned {got!r:.60} ({type}); return the slot as an int from 0 to 16383",
        ko="key_slot의 반환값이 {got!r:.60}({type})입니다. 슬롯을 0부터 16383 사이의 int로 돌려주십시오"),
    "scale_out.slot_wrong": Message(
        en="for the key {key!r} ({what}), your slot is {got}; Redis Cluster puts it in slot {want} "
           "(redis.crc.key_slot) — {hint}",
        ko="키 {key!r}({what})에 대해 계산한 슬롯은 {got}이지만, Redis Cluster는 이 키를 슬롯 {want}에 둡니다"
           "(redis.crc.key_slot). {hint}"),
    "scale_out.slot_passed": Message(
        en="equals redis-py's key_slot on all {count} keys: Feast keys of project {project!r} and keys with hash "
           "tags, accidental ones in Feast keys included",
        ko="키 {count}개 모두에서 redis-py의 key_slot과 같습니다. 프로젝트 {project!r}의 Feast 키, 그리고 Feast 키에 "
           "우연히 생긴 것을 포함해 해시 태그가 있는 키를 확인했습니다"),
    "scale_out.hint_utilization": Message(
        en="plan the reads at the target utilization: a master serves key_reads_per_s × target_utilization hash "
           "reads/s",
        ko="읽기는 목표 사용률로 계획하십시오. 마스터 하나는 초당 key_reads_per_s × target_utilization번의 해시 "
           "읽기를 처리합니다"),
    "scale_out.hint_fill": Message(
        en="only memory_fill of a master's memory may hold data: shard_memory_gib × 2**30 × memory_fill bytes",
        ko="마스터 메모리 중 memory_fill 비율만 데이터에 쓸 수 있습니다: shard_memory_gib × 2**30 × memory_fill "
           "바이트"),
    "scale_out.hint_gib": Message(
        en="a GiB is 2**30 bytes, not 10**9",
        ko="1 GiB는 10**9바이트가 아니라 2**30바이트입니다"),
    "scale_out.hint_per_request": Message(
        en="each request reads keys_per_request entity hashes, not one",
        ko="요청 하나는 엔티티 해시를 하나가 아니라 keys_per_request개 읽습니다"),
    "scale_out.hint_minimum": Message(
        en="Redis Cluster needs at least 3 masters, whatever the load: they vote on failovers",
        ko="Redis Cluster에는 부하와 관계없이 마스터가 3개 이상 있어야 합니다. 마스터들이 장애 조치(failover)를 "
           "투표로 정합니다"),
    "scale_out.hint_memory": Message(
        en="the data must fit too: add the masters that entities × bytes_per_key needs",
        ko="데이터도 들어가야 합니다. entities × bytes_per_key에 필요한 마스터를 더하십시오"),
    "scale_out.hint_reads": Message(
        en="the reads must be served too: add the masters that qps × keys_per_request hash reads/s need",
        ko="읽기도 처리해야 합니다. 초당 qps × keys_per_request번의 해시 읽기에 필요한 마스터를 더하십시오"),
    "scale_out.hint_sum": Message(
        en="every master serves reads and holds data at once: take the larger of the two needs, not their sum",
        ko="모든 마스터는 읽기를 처리하면서 동시에 데이터를 보관합니다. 두 필요량의 합이 아니라 더 큰 쪽을 고르십시오"),
    "scale_out.hint_replicas": Message(
        en="count masters only: the failover replicas come on top of them",
        ko="마스터만 세십시오. 장애 조치용 레플리카는 그와 별도로 추가됩니다"),
    "scale_out.masters_rule": Message(
        en="masters = max(⌈qps × keys_per_request / (key_reads_per_s × target_utilization)⌉, "
           "⌈entities × bytes_per_key / (shard_memory_gib × 2**30 × memory_fill)⌉, 3)",
        ko="마스터 수는 다음과 같습니다: masters = max(⌈qps × keys_per_request / (key_reads_per_s × "
           "target_utilization)⌉, ⌈entities × bytes_per_key / (shard_memory_gib × 2**30 × memory_fill)⌉, 3)"),
    "scale_out.masters_type": Message(
        en="redis_masters returned {got!r:.60} ({type}); return a whole number of masters",
        ko="redis_masters의 반환값이 {got!r:.60}({type})입니다. 마스터 수를 정수로 돌려주십시오"),
    "scale_out.masters_fraction": Message(
        en="redis_masters returned {got} for {qps:,} requests/s over {entities:,} entity hashes; a master cannot be "
           "split: round each need up (math.ceil)",
        ko="초당 요청 {qps:,}건, 엔티티 해시 {entities:,}개에 대한 redis_masters의 반환값이 {got}입니다. "
           "마스터는 나눌 수 없으므로 각 필요량을 올림하십시오(math.ceil)"),
    "scale_out.figures": Message(
        en="{keys} hashes per request, {reads:,.0f} hash reads/s per master, {size:g} B per hash",
        ko="요청당 해시 {keys}개, 마스터당 초당 해시 읽기 {reads:,.0f}번, 해시당 {size:g} B"),
    "scale_out.masters_wrong": Message(
        en="for {qps:,} requests/s over {entities:,} entity hashes ({figures}; target utilization {utilization:g}, "
           "{gib:g} GiB masters, {fill:.0%} of it for data) your count is {got}; the course's capacity plan needs "
           "{want} masters: {reads} for the reads, {memory} for the memory, at least 3 — {hint}",
        ko="초당 요청 {qps:,}건, 엔티티 해시 {entities:,}개({figures}; 목표 사용률 {utilization:g}, 마스터 메모리 "
           "{gib:g} GiB 중 {fill:.0%}를 데이터에 사용)일 때 계산한 마스터 수는 {got}입니다. 코스의 용량 계획에 "
           "따르면 마스터가 {want}개 필요합니다. 읽기에 {reads}개, 메모리에 {memory}개, 최소 3개입니다. {hint}"),
    "scale_out.masters_passed": Message(
        en="equals the course's capacity plan in all {cases} cases ({loads} loads × {figures} sets of figures × "
           "{assumptions} of assumptions)",
        ko="사례 {cases}개(부하 {loads}가지 × 측정값 {figures}세트 × 가정 {assumptions}세트) 모두에서 코스의 용량 "
           "계획과 같습니다"),
}
