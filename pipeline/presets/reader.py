"""The validating reader of one TOML table: typed values out, every problem collected.

A preset file is read top to bottom once; each ``Reader`` method takes a key, checks its
type and range, and on a problem records ``path.key: what is wrong`` and returns the default,
so one run lists every mistake in the file (imgproxy joins its config errors the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, TypeVar

C = TypeVar("C", bound=str)


def pick(value: object, choices: tuple[C, ...]) -> C | None:
    """The member of ``choices`` equal to ``value``, or None.

    Returning the member itself, not ``value``, is what gives the result its Literal type
    (``choices`` is typed ``tuple[FitPolicy, ...]`` and so on) without a cast.
    """
    for option in choices:
        if option == value:
            return option
    return None


def parse_ratio(value: object) -> Fraction | None:
    """Parse ``"9:16"``, ``"1.91:1"`` or a number into width/height."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            result = Fraction(value).limit_denominator(10000)
        elif isinstance(value, str) and ":" in value:
            w, h = value.split(":", 1)
            result = Fraction(w.strip()) / Fraction(h.strip())
        else:
            return None
    except (ValueError, ZeroDivisionError):
        return None
    return result if result > 0 else None


class Reader:
    """Reads one table, collecting problems instead of stopping at the first.

    ``path`` is the table's dotted place in the file (``variants.video.audio``); ``problems``
    is shared by every reader of one file. Keys read are remembered, so :meth:`finish` can
    report the ones nobody asked for as unknown.
    """

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        """The dotted name of ``key`` in the file, as problems cite it."""
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, text: str) -> None:
        """Record ``<path.key>: <text>``."""
        self.problems.append(f"{self.where(key)}: {text}")

    def raw(self, key: str, required: bool = False) -> Any:
        """The value as TOML gave it (None when absent; a problem too if ``required``)."""
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.problem(key, "missing")
            return None
        return self.data[key]

    def int_(self, key: str, default: int | None = None, *, lo: int = 0, required: bool = False,
             hi: int | None = None) -> int | None:
        value = self.raw(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected an integer, got {value!r}")
            return default
        if value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            self.problem(key, f"must be {rng}, got {value}")
            return default
        return value

    def float_(self, key: str, default: float | None = None, *, lo: float = 0.0) -> float | None:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, got {value!r}")
            return default
        if value < lo:
            self.problem(key, f"must be >= {lo}, got {value}")
            return default
        return float(value)

    def bool_(self, key: str, default: bool = False) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {value!r}")
            return default
        return value

    def str_(self, key: str, default: str | None = None, *, choices: tuple[str, ...] | None = None,
             required: bool = False) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {value!r}")
            return default
        if choices is not None and value not in choices:
            self.problem(key, f"unknown value {value!r} (one of {', '.join(choices)})")
            return default
        return value

    def choice(self, key: str, default: C, choices: tuple[C, ...], *,
               required: bool = False) -> C:
        """A string from a closed set, typed as that set's Literal (``default`` if bad or absent).

        Problems are the ones :meth:`str_` reports for ``choices``.
        """
        found = pick(self.str_(key, None, choices=choices, required=required), choices)
        return default if found is None else found

    def strs(self, key: str, default: tuple[str, ...] = (), *,
             choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, "expected a list of strings")
            return default
        if choices is not None:
            for v in value:
                if v not in choices:
                    self.problem(key, f"unknown value {v!r}")
        return tuple(value)

    def ints(self, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            self.problem(key, "expected a list of integers")
            return default
        return tuple(value)

    def ratio(self, key: str) -> Fraction | None:
        value = self.raw(key)
        if value is None:
            return None
        parsed = parse_ratio(value)
        if parsed is None:
            self.problem(key, f"expected a ratio like \"9:16\", got {value!r}")
        return parsed

    def ratios(self, key: str) -> tuple[Fraction, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(key, "expected a list of ratios")
            return ()
        out = []
        for item in value:
            parsed = parse_ratio(item)
            if parsed is None:
                self.problem(key, f"bad ratio {item!r}")
            else:
                out.append(parsed)
        return tuple(out)

    def table(self, key: str, required: bool = False) -> Reader | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(key, "expected a table")
            return None
        return Reader(value, self.where(key), self.problems)

    def check_order(self, lo_key: str, lo: Any, hi_key: str, hi: Any) -> None:
        """A problem if the bound ``lo`` is above the bound ``hi`` (either one unset: fine)."""
        if lo is not None and hi is not None and lo > hi:
            self.problems.append(f"{self.path}: {lo_key} ({lo}) is greater than {hi_key} ({hi})")

    def finish(self) -> None:
        """Report every key of the table that no read asked for."""
        for key in self.data:
            if key not in self.seen:
                self.problem(key, "unknown key")
