"""Write-then-rename, so a failed step never leaves a half-written result behind."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """Yield an empty sibling directory that replaces ``dest`` only on success."""
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    tmp.chmod(0o755)
    tmp.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
