"""Sequences an API request reads one page of, without building what the page skips."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class Window(Sequence[T]):
    """`_rows(skip, count)` is all a window must give: indexes and slices, which the API's
    paging applies to any sequence, are turned into it, so a page never materialises
    what precedes it."""

    __slots__ = ()

    def _rows(self, skip: int, count: int) -> Iterator[T]:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            wanted = range(len(self))[index]
            if wanted.step != 1:
                return [self[i] for i in wanted]
            return list(self._rows(wanted.start, len(wanted)))
        return next(self._rows(range(len(self))[index], 1))

    def __iter__(self) -> Iterator[T]:
        return self._rows(0, len(self))
