"""References (API.md section 13) on a real driver connection: the checked writes, `expand` and
nested lists of tests/http/test_references.py, with their query counts, on the MongoDB-wire
server (the fixtures there build the app on `settings`, which this lane points at mongoeco)."""

from __future__ import annotations

from tests.http.test_references import (  # noqa: F401 (fixtures and tests collected here again)
    app,
    counting,
    schema_dir,
    test_a_page_costs_one_query_per_path_and_level,
    test_array_references_keep_their_order,
    test_every_failing_reference_is_named,
    test_expand_on_lists_and_meta,
    test_expand_three_levels_and_a_cycle,
    test_missing_and_unreadable_ids_get_the_same_400,
    test_nested_list_of_a_readable_parent,
    test_one_query_per_reference_property_per_write,
    test_owner_and_array_references_nest_too,
    test_several_references_need_via,
    test_unreadable_or_missing_references_are_left_out,
    test_updates_check_the_ids_they_add,
    world,
)
