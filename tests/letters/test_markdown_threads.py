"""The shared Markdown parsers, first used by several threads at once (gthread workers)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import pytest
from markdown_it import MarkdownIt

from campaign.letters import content_checks, markdown

SOURCE = (
    "Some *emph*, a [link](https://example.org) and **bold**[^1]\n\n- a\n- b\n\n[^1]: A note.\n"
)


@pytest.mark.parametrize("parser", [markdown._parser, content_checks._parser])
def test_a_new_parser_first_used_by_threads_at_once_renders_each_the_same(
    parser: Callable[[], MarkdownIt],
) -> None:
    expected = parser().render(SOURCE)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch at nearly every chance
    wrong: list[str] = []
    try:
        # A race seen in about one trial in fifteen before the parsers were warmed.
        for _ in range(100):
            parser.cache_clear()  # type: ignore[attr-defined]
            shared = parser()
            start = threading.Barrier(6)

            def render(md: MarkdownIt = shared, start: threading.Barrier = start) -> None:
                start.wait()
                try:
                    html = md.render(SOURCE)
                except RuntimeError as error:  # "none of the block rules matched"
                    html = str(error)
                if html != expected:
                    wrong.append(html)

            threads = [threading.Thread(target=render) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(interval)
        parser.cache_clear()  # type: ignore[attr-defined]
    assert wrong == []
