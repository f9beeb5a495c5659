"""Progress of a running statement as a tqdm bar (tqdm.auto: a widget in
notebooks, text on terminals), fed by the native side every 100 ms with the
rows the plan's file scans have read against their total. Nothing shows for
statements quicker than a second, as in the CLI."""

from __future__ import annotations

import sys

SHOW_AFTER = 1.0


def _interactive() -> bool:
    if "ipykernel" in sys.modules:
        return True
    return sys.stderr is not None and sys.stderr.isatty()


class Progress:
    """A context manager whose `update(rows, total, seconds)` drives a bar.

    `enabled`: True always shows one, False never, None in notebooks and
    on terminals only."""

    def __init__(self, enabled: bool | None):
        self.enabled = _interactive() if enabled is None else bool(enabled)
        self._bar = None

    def update(self, rows: int, total: int | None, seconds: float) -> None:
        if self._bar is None:
            if seconds < SHOW_AFTER:
                return
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit=" rows", unit_scale=True, desc="lakecap")
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(rows - self._bar.n)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
