"""JSONL in and out, safely.

Reading streams line by line and locates every problem to file and line. Rows are
written through jsonlines (with orjson, for speed). Writing
never leaves a half-written file: whole outputs go to a temporary sibling and are
renamed into place; appends write each batch of complete lines with one ``write``
under an exclusive lock, so concurrent writers never interleave or tear lines.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonlines
import orjson

from hegelion_core.errors import HegelionError, InputError

TORN_TAIL = "incomplete last line (an interrupted write; ignored)"


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON; datetimes and pydantic-dumped values serialise natively."""
    return orjson.dumps(obj)


def read_jsonl(
    path: str | Path,
    *,
    skip_invalid: bool = False,
    on_invalid: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of ``path``.

    A line that is not a JSON object raises `InputError` naming file and line,
    unless ``skip_invalid``; then ``on_invalid(line_number, problem)`` is told. An
    unparsable *unterminated last* line is what a killed appender leaves: it is
    reported to ``on_invalid`` as `TORN_TAIL` and never raises.
    """
    for lineno, _, obj in read_jsonl_lines(path, skip_invalid=skip_invalid, on_invalid=on_invalid):
        yield lineno, obj


def read_jsonl_lines(
    path: str | Path,
    *,
    skip_invalid: bool = False,
    on_invalid: Callable[[int, str], None] | None = None,
) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """`read_jsonl` that also yields each line's bytes, for copying rows through unchanged."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "file not found" if not path.exists() else "not a file")
    with path.open("rb") as fp:
        for lineno, raw in enumerate(fp, 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if not raw.endswith(b"\n") and not fp.read(1):
                    # A killed writer's torn last line: that record was never written.
                    if on_invalid:
                        on_invalid(lineno, TORN_TAIL)
                    return
                problem = f"invalid JSON ({exc})"
            else:
                if isinstance(obj, dict):
                    yield lineno, raw, obj
                    continue
                problem = f"expected a JSON object, got {type(obj).__name__}"
            if not skip_invalid:
                raise InputError(
                    path,
                    lineno,
                    problem,
                    hint="fix or delete the line, or pass --skip-invalid to skip such lines",
                )
            if on_invalid:
                on_invalid(lineno, problem)


@contextlib.contextmanager
def atomic_output(
    dest: str | Path,
    *,
    directory: bool = False,
    beside_others: bool = False,
    earlier: Callable[[Path], set[str] | None] | None = None,
    inputs: Iterable[str | Path] = (),
    expect: Iterable[str] = (),
    hint: str = "",
) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` on success.

    On any exception (Ctrl-C included) the temporary is removed and ``dest`` is left
    exactly as it was. A process killed outright leaves only a ``.tmp-`` sibling, named
    with its pid, which the next `atomic_output` for ``dest`` removes once that process
    is gone (`remove_stale_temporaries`).

    A ``directory`` replaces ``dest`` whole only when ``dest`` is absent, empty, or holds
    only what Hegelion wrote there: the names in its `OUTPUT_MARK` (which every directory
    made here gets), or those ``earlier(dest)`` returns for an output of an earlier version
    that had no mark. Anything else is refused (`NotOurs`), before and again right after
    the work, and never deleted. With ``beside_others`` the new entries are moved into an
    existing ``dest`` one by one instead, replacing only names Hegelion wrote there and
    leaving every other entry alone (``expect``: names known before the work, checked then
    too). ``inputs`` that are ``dest`` or lie inside it are refused either way.
    """
    dest = Path(dest)
    if not directory:
        with temporary_sibling(dest) as tmp:
            yield tmp
            _replace(tmp, dest)
        return
    refuse_inputs_inside(dest, inputs)
    remove_stale_temporaries(dest)  # a swap cut short puts the old directory back first
    check = (
        (lambda: _owned_beside(dest, earlier))
        if beside_others
        else (lambda: _owned_whole(dest, earlier, hint))
    )
    _in_the_way(dest, check(), expect, hint)
    with temporary_sibling(dest, directory=True) as tmp:
        yield tmp
        names = sorted(n for n in os.listdir(tmp) if n != OUTPUT_MARK)
        owned = check()
        if not beside_others or not dest.exists():
            _write_mark(tmp, names)
            _replace(tmp, dest)
            return
        _in_the_way(dest, owned, names, hint)
        kept = (n for n in owned if n != OUTPUT_MARK and _lexists(dest / n))
        _write_mark(tmp, sorted({*names, *kept}))
        merge_into(tmp, dest, [*names, OUTPUT_MARK])


# ----- which directories Hegelion may replace -----------------------------------------

#: the file in every directory `atomic_output` builds: what wrote it, when, and the names
#: it holds that Hegelion wrote (the only ones a later output may replace)
OUTPUT_MARK = ".hegelion-output.json"


class NotOurs(HegelionError):
    """An output directory holds entries Hegelion did not write: they are never replaced."""

    def __init__(
        self, dest: Path, entries: list[str], hint: str = "", *, replaced: bool = True
    ) -> None:
        shown = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        what = "it would be replaced whole" if replaced else "the output has files of those names"
        super().__init__(
            f"{dest}: holds files that Hegelion did not write ({shown}); {what}, and Hegelion "
            "never deletes what it did not write\n"
            f"  hint: {hint or 'give a new or empty directory, or move those files away'}"
        )
        self.dest, self.entries = dest, entries


def owned_names(
    dest: str | Path, earlier: Callable[[Path], set[str] | None] | None = None
) -> set[str] | None:
    """The names inside directory ``dest`` that Hegelion wrote: its `OUTPUT_MARK`'s list
    (and the mark), else what ``earlier(dest)`` recognises; None when neither vouches."""
    dest = Path(dest)
    try:
        mark = orjson.loads((dest / OUTPUT_MARK).read_bytes())
        names = mark["names"]
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return {*names, OUTPUT_MARK}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = earlier(dest) if earlier is not None else None
    return set(found) if found is not None else None


def claim_names(dest: str | Path, names: Iterable[str]) -> None:
    """Add ``names`` (just written into ``dest`` by the caller, e.g. a manifest written
    after the export) to ``dest``'s `OUTPUT_MARK`, so a later output may replace them."""
    dest = Path(dest)
    owned = (owned_names(dest) or set()) - {OUTPUT_MARK}
    with temporary_sibling(dest / OUTPUT_MARK) as tmp:
        _write_mark_file(tmp, sorted({*owned, *names}))
        _replace(tmp, dest / OUTPUT_MARK)


def manifest_stage(directory: Path) -> str | None:
    """The ``stage`` of ``directory/manifest.json`` (a Hegelion manifest), or None."""
    try:
        stage = orjson.loads((Path(directory) / "manifest.json").read_bytes()).get("stage")
    except (OSError, ValueError, AttributeError):
        return None
    return stage if isinstance(stage, str) else None


def refuse_inputs_inside(dest: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an output directory that is, or holds, one of ``inputs`` (by resolved path)."""
    dest = Path(dest)
    target = dest.resolve()
    for given in inputs:
        path = Path(given).resolve()
        if path == target or path.is_relative_to(target):
            where = "is" if path == target else "holds"
            raise HegelionError(
                f"{dest}: the output directory {where} the input {given}; Hegelion never writes "
                "an output onto an input: give another output directory"
            )


def _entries(dest: Path) -> list[str] | None:
    """``dest``'s entries, None when it is absent; refuses what is not a directory."""
    if not _lexists(dest):
        return None
    if dest.is_symlink() or not dest.is_dir():
        kind = "a symbolic link" if dest.is_symlink() else "not a directory"
        raise HegelionError(
            f"{dest}: exists and is {kind}; the output is a directory: give a new or empty "
            "directory path"
        )
    return sorted(os.listdir(dest))


def _owned_whole(
    dest: Path, earlier: Callable[[Path], set[str] | None] | None, hint: str
) -> set[str]:
    entries = _entries(dest)
    if not entries:
        return set()
    owned = owned_names(dest, earlier) or set()
    others = [e for e in entries if e not in owned]
    if others:
        raise NotOurs(dest, others, hint)
    return owned


def _owned_beside(dest: Path, earlier: Callable[[Path], set[str] | None] | None) -> set[str]:
    return set() if not _entries(dest) else owned_names(dest, earlier) or set()


def _in_the_way(dest: Path, owned: set[str], names: Iterable[str], hint: str) -> None:
    """Refuse ``names`` that exist in ``dest`` and are not Hegelion's."""
    if blocking := sorted(n for n in set(names) if _lexists(dest / n) and n not in owned):
        raise NotOurs(dest, blocking, hint, replaced=False)


def listed_in_manifest(*stages: str) -> Callable[[Path], set[str] | None]:
    """``earlier`` for an output of a version without marks that wrote ``manifest.json`` of
    one of ``stages`` into it: that manifest and the names of its ``outputs``."""

    def earlier(directory: Path) -> set[str] | None:
        if manifest_stage(directory) not in stages:
            return None
        outputs = orjson.loads((directory / "manifest.json").read_bytes()).get("outputs") or []
        return {"manifest.json", *(Path(str(o)).name for o in outputs)}

    return earlier


def listed_beside(*stages: str) -> Callable[[Path], set[str] | None]:
    """``earlier`` for a directory that an earlier version wrote as one of the ``outputs``
    of its parent's ``manifest.json`` of one of ``stages`` (a train run's ``adapter``,
    ``merged``): all of it."""

    def earlier(directory: Path) -> set[str] | None:
        if manifest_stage(directory.parent) not in stages:
            return None
        outputs = orjson.loads((directory.parent / "manifest.json").read_bytes()).get("outputs")
        if directory.name not in {Path(str(o)).name for o in outputs or []}:
            return None
        return set(os.listdir(directory))

    return earlier


def _lexists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _write_mark(tmp_dir: Path, names: list[str]) -> None:
    _write_mark_file(tmp_dir / OUTPUT_MARK, names)


def _write_mark_file(path: Path, names: list[str]) -> None:
    import datetime

    path.write_bytes(
        orjson.dumps(
            {
                "written_by": "hegelion",
                "pid": os.getpid(),
                "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "names": names,
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )


@contextlib.contextmanager
def temporary_sibling(dest: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """A temporary file (or directory) beside ``dest``, in `atomic_output`'s naming,
    removed on exit unless the caller moved it away: scratch space on the same file
    system as ``dest``, so a rename into place never copies."""
    dest = Path(dest)
    _make_parent(dest)
    remove_stale_temporaries(dest)
    prefix = f".{dest.name}.tmp-{_HOST}-{os.getpid()}-"
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=prefix, dir=dest.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:  # name the directory, not the temporary's random name
        raise HegelionError(f"cannot write {dest}: {os_error_message(exc, dest.parent)}") from None
    try:
        yield tmp
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def merge_into(tmp: Path, dest: Path, names: list[str], *, remove: tuple[str, ...] = ()) -> None:
    """Move ``tmp/NAME`` over ``dest/NAME`` for each of ``names``, in order (put the one
    that describes the rest last), after deleting ``dest``'s ``remove`` entries; nothing
    else in ``dest`` is touched. Each move is atomic; a missing ``dest`` is ``tmp`` renamed
    whole, so a new directory appears complete or not at all."""
    if not dest.exists():
        for entry in os.listdir(tmp):
            if entry not in names:
                _remove(tmp / entry)
        _replace(tmp, dest)
        return
    for entry in remove:
        _remove(dest / entry)
    for entry in names:
        if (tmp / entry).exists():
            remove_stale_temporaries(dest / entry)
            _replace(tmp / entry, dest / entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _replace(tmp: Path, dest: Path) -> None:
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())  # mkstemp/mkdtemp use 0600/0700
    if tmp.is_dir() and dest.exists():
        # Directories cannot be renamed over each other: swap, then drop the old one.
        old = dest.with_name(f".{dest.name}.old-{_HOST}-{os.getpid()}")
        os.replace(dest, old)
        os.replace(tmp, dest)
        _remove(old)
    else:
        os.replace(tmp, dest)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----- what killed writers leave ------------------------------------------------------

# Temporaries say which process made them, on which machine (a short hash of its name:
# a file system shared between machines must not take one machine's pid for another's).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_LEFTOVER = r"tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[a-z0-9_]{8}|old-(?P<old_host>[0-9a-f]{8})-(?P<old_pid>\d+)"


def remove_stale_temporaries(dest: str | Path) -> list[Path]:
    """Clean up after killed writers of ``dest``; return what was removed or restored.

    Only names of exactly `atomic_output`'s pattern for ``dest``, made on this machine by
    a process that is gone: a temporary is deleted; a directory swapped out of the way
    (``.NAME.old-…``) is deleted when ``dest`` is there, and put back when the writer died
    between the two renames of a swap (``dest`` missing), so no earlier output is lost.
    """
    dest = Path(dest)
    found: list[Path] = []
    try:
        entries = [e for e in os.listdir(dest.parent) if e.startswith(f".{dest.name}.")]
    except OSError:
        return found
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.(?:{_LEFTOVER})")
    for entry in entries:
        if not (match := pattern.fullmatch(entry)):
            continue
        host, pid = (
            (match["host"], match["pid"])
            if match["host"]
            else (match["old_host"], match["old_pid"])
        )
        if host != _HOST or pid_alive(int(pid)):
            continue
        path = dest.parent / entry
        with contextlib.suppress(OSError):  # another run may be cleaning up the same leftover
            if match["old_host"] and not dest.exists() and not dest.is_symlink():
                os.replace(path, dest)
            else:
                _remove(path)
            found.append(path)
    return found


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this machine is running. A zombie is not: a killed
    process whose parent died too stays one where nothing reaps orphans (containers
    without an init); it still answers signal 0, but it holds no claim and no file."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


# ----- errors about paths -------------------------------------------------------------


def _make_parent(dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (dest.parent, *dest.parent.parents) if p.exists()), dest.parent)
        raise HegelionError(
            f"cannot write {dest}: {blocker} is a file, not a directory; choose another output "
            "path, or move that file away"
        ) from None
    except OSError as exc:
        raise HegelionError(f"cannot write {dest}: {os_error_message(exc)}") from None


_HINTS = {
    errno.EACCES: "permission denied: choose a path you may write to (or read, for an input), "
    "or change its permissions",
    errno.EPERM: "operation not permitted: choose another path, or change its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EISDIR: "it is a directory: give a file path",
    errno.EEXIST: "it already exists (a file where a directory is needed?): choose another path",
    errno.ENOSPC: "no space left on the device: free some space, or choose another disk",
    errno.EDQUOT: "disk quota exceeded: free some space, or choose another disk",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def os_error_message(exc: OSError, path: str | Path | None = None) -> str:
    """``PATH: what went wrong[: what to do]`` in one line, for an `OSError` naming a path
    (``path``, when given, instead of the one in ``exc``)."""
    path = path if path is not None else exc.filename
    where = str(path) if path is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    what = _HINTS.get(exc.errno or 0) or exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


class JsonlWriter:
    """Writes rows to one file through jsonlines, compact, one object per line."""

    def __init__(self, path: Path) -> None:
        self._fp = path.open("wb")
        self._writer = jsonlines.Writer(self._fp, dumps=dumps)
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        self._writer.write(row)
        self.count += 1

    def close(self) -> None:
        self._writer.close()
        self._fp.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_jsonl_line(path: str | Path, data: bytes) -> None:
    """Append raw complete lines, cutting a killed writer's torn tail first. The caller
    holds whatever lock orders the writers."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _drop_torn_tail(fd)
        os.write(fd, data)
    finally:
        os.close(fd)


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], *, fsync: bool = True) -> int:
    """Append complete lines; concurrent appenders never interleave or tear lines.

    The batch is encoded first, then written with one ``write`` on an ``O_APPEND``
    descriptor under ``flock``, then fsynced (unless ``fsync=False``: the data still
    survives a killed process, only not a power cut). A writer killed (kill -9) in the middle
    of a large write can leave a partial last line (Linux stops a write between pages
    for a fatal signal); the next appender, holding the lock, cuts it off first, and
    `read_jsonl` never yields it.
    """
    data = b"".join(dumps(r) + b"\n" for r in rows)
    if not data:
        return 0
    append_lines(path, data, fsync=fsync)
    return data.count(b"\n")


def append_lines(path: str | Path, data: bytes, *, fsync: bool = True) -> int:
    """`append_jsonl` for lines already encoded (``data`` ends with a newline); returns
    the offset where ``data`` starts, so a caller can index what it wrote without a stat."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            start = _drop_torn_tail(fd)
            view = memoryview(data)
            while view:  # a short write (rare, e.g. signals) must finish the batch
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return start


def _drop_torn_tail(fd: int) -> int:
    """Truncate an unterminated last line (a killed writer's); caller holds the lock.
    Returns the size of the file afterwards.

    A last line that is a whole JSON object only lacks its newline (a file written by
    hand or by another tool): `read_jsonl` yields it, so it is a record, and it gets the
    newline instead of being cut."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            break
        end = start
    line_start = start + cut + 1 if end > 0 else 0
    if _is_whole_object(os.pread(fd, size - line_start, line_start)):
        os.write(fd, b"\n")  # the descriptor appends
        return size + 1
    os.ftruncate(fd, line_start)
    return line_start


def _is_whole_object(line: bytes) -> bool:
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False
