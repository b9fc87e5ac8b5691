"""What a route declares (its cheap validator, tags, Cache-Control, scope, policies), framework-free:
the Flask decorators build one per view, and so can any other face's route decorator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._config import callable_or_none, optional_flag
from .cache._keys import TagSpec
from .core.etag import version_etag
from .core.reply import Validator
from .core.steps import Settings

__all__ = ["CheckedValidator", "RouteOptions"]


@dataclass(frozen=True, slots=True)
class CheckedValidator:
    """The cheap validator a request's preconditions were evaluated against (RFC 9110 §13.2.2).

    ``version`` is what the route's ``etag=`` callable returned (e.g. a row version) and
    ``validator`` the ETag / Last-Modified made from it. A write passes ``version`` to its
    ``UPDATE ... WHERE id = ? AND version = ?``: a write that landed between the If-Match check and
    this one then makes the update match no row (answer 412) instead of being overwritten.
    """

    validator: Validator
    version: Any = None


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """One route's declarations (None: the app's defaults decide); mistakes raise at construction."""

    etag: Callable[..., Any] | None = None
    last_modified: Callable[..., datetime | None] | None = None
    tags: TagSpec = ()
    cache_control: str | None = None
    scope: Callable[[], str | None] | None = None
    require_precondition: bool | None = None
    auto_invalidate: bool | None = None
    stored: bool | None = None
    cache_ttl: float | None = None
    # the exchange settings of this route per app defaults (several apps may share one route)
    _settings: dict[int, tuple[Settings, Settings]] = dataclasses.field(
        init=False, default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for name in ("etag", "last_modified", "scope"):
            callable_or_none(name, getattr(self, name))
        for name in ("require_precondition", "auto_invalidate", "stored"):
            optional_flag(name, getattr(self, name))

    def settings(self, defaults: Settings) -> Settings:
        """This route's exchange settings over an app's ``defaults`` (built once per app)."""
        held = self._settings.get(id(defaults))
        if held is not None and held[0] is defaults:
            return held[1]
        settings = dataclasses.replace(
            defaults,
            require_precondition=_given(self.require_precondition, defaults.require_precondition),
            stored=self.stored if self.stored is not None else defaults.stored,
            cache_control=self.cache_control,
            invalidate_tags=_given(self.auto_invalidate, defaults.invalidate_tags),
            cache_ttl=self.cache_ttl,
        )
        self._settings[id(defaults)] = (defaults, settings)
        return settings

    def checked(self, arguments: dict[str, Any]) -> CheckedValidator | None:
        """The cheap current validator from the route's callables, or None when it has none."""
        if self.etag is None and self.last_modified is None:
            return None
        version = self.etag(**arguments) if self.etag is not None else None
        tag = version_etag(version) if self.etag is not None else None
        modified = self.last_modified(**arguments) if self.last_modified is not None else None
        exists = tag is not None if self.etag is not None else modified is not None
        return CheckedValidator(Validator(tag, modified, exists), version)


def _given(value: bool | None, default: bool) -> bool:
    return default if value is None else value
