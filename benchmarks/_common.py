"""The scripts' shared helpers live in the package now (repertory.bench.common); re-exported here."""

from repertory.bench.common import (  # noqa: F401
    FILLER,
    ON_OFF_COLUMNS,
    Figure,
    console,
    content,
    emit_json,
    figure,
    fmt_num,
    fmt_ratio,
    fmt_us,
    load_info,
    local_redis_url,
    messages20,
    on_off_row,
    pct,
    ratio,
    summary,
    table,
    verdict,
)
