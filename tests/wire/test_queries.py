"""Section 14 over a real driver connection (mongoeco): keyset paging and aggregation run the same
queries there as on the embedded database."""

from __future__ import annotations

from tests.http.test_aggregate import (  # noqa: F401
    test_date_buckets_in_utc,
    test_filters_of_lists_apply,
    test_group_count_and_accumulators,
    test_only_readable_entities_count,
    test_too_many_groups_is_a_400,
)
from tests.http.test_keyset import (  # noqa: F401  (collected here again, on the wire lane)
    test_bad_tokens_are_refused,
    test_concurrent_writes_neither_repeat_nor_skip,
    test_token_pages_give_the_whole_list_in_every_sort,
)
from tests.http.test_lists import rows  # noqa: F401  (a fixture)
