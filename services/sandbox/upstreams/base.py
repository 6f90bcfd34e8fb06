"""The shape every simulated service module fills in: its routes and its own error bodies."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from services.sandbox.reply import Call, Reply

Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Upstream:
    """One simulated service: path patterns (below `/{name}`) → pure handlers."""

    name: str
    routes: tuple[tuple[re.Pattern[str], Handler], ...]
    too_many_requests: Callable[[int], Reply]  # the 429 the real service sends (retry-after in s)
    no_route: Reply  # what the real host answers for a path it does not serve

    def resolve(self, path: str) -> tuple[Handler, dict[str, str]] | None:
        for pattern, handler in self.routes:
            m = pattern.fullmatch(path)
            if m:
                return handler, m.groupdict()
        return None


def route(pattern: str, handler: Handler) -> tuple[re.Pattern[str], Handler]:
    return re.compile(pattern), handler


def flag(value: str | None) -> bool:
    """Query-string booleans as the real APIs read them ("true", "1")."""
    return (value or "").strip().lower() in {"true", "1", "yes"}
