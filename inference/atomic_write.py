"""The one way the zoo writes a file: to a temporary file in the same folder, flushed to disk, then renamed over the
target. A crash (a kill, a full disk, an exception in the writer) leaves either the old complete file or the new
complete one, never a partial file; a failed write removes its temporary file and says in one line what happened.

Every file of a run directory and of a report goes through :func:`write_atomic`: checkpoints, ``config.json``,
``metrics.jsonl``, ``eval.json``/``eval_points.pt``, figures, ``index.html``/``report.md`` and ``importance.nc``.
Temporary files are named ``.tmp-<name>-<random><ext>`` (the extension kept, so writers that pick a format from the
name still work); :func:`remove_leftovers` deletes the ones a killed process left behind.
"""
import errno
import glob
import json
import os
import shutil
import tempfile
from typing import Callable

from zoo.errors import RunDirError

TMP_PREFIX = ".tmp-"
_FULL_DISK_BYTES = 1 << 20  # a write that fails with less than this free is a full disk, whatever the writer says


def _file_mode() -> int:
    """The mode open() would give a new file (0o666 less the umask); mkstemp's own is 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()


class WriteError(RunDirError):
    """A file could not be written (full disk, permissions, read-only folder); the previous version is kept."""


def _commit(tmp: str, path: str):
    """Rename the complete temporary file over ``path`` (atomic on POSIX and Windows). Tests replace it to inject
    crashes at every write."""
    os.replace(tmp, path)


def _fsync_file(path: str):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: str):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_storage_failure(error: BaseException, folder: str) -> bool:
    """An error of the disk rather than of the writer's code: any OSError, torch's zip writer's RuntimeError
    ("[enforce fail at inline_container.cc] unexpected pos", "file write failed"), or anything raised with the disk
    full."""
    if isinstance(error, OSError):
        return True
    text = str(error)
    if isinstance(error, RuntimeError) and ("inline_container" in text or "write failed" in text
                                            or "PytorchStreamWriter" in text):
        return True
    try:
        return shutil.disk_usage(folder).free < _FULL_DISK_BYTES
    except OSError:
        return False


def _reason(error: BaseException, folder: str) -> str:
    no_space = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if not no_space:
        try:
            no_space = shutil.disk_usage(folder).free < _FULL_DISK_BYTES
        except OSError:
            pass
    if no_space:
        return "no space left on the device"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def write_atomic(path: str, write: Callable[[str], None]):
    """Write ``path`` by calling ``write(tmp_path)`` on a temporary path in the same folder, then renaming it over
    ``path``. A failure of the disk becomes a :class:`WriteError` naming the file (the previous version is kept);
    any other exception propagates unchanged. The temporary file never outlives the call."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    ext = os.path.splitext(name)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{name}-", suffix=ext, dir=folder)
        os.close(fd)
        os.chmod(tmp, _MODE)
    except OSError as e:
        raise WriteError(_message(path, e, folder)) from None
    try:
        write(tmp)
        _fsync_file(tmp)
        _commit(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, Exception) and not isinstance(e, WriteError) and _is_storage_failure(e, folder):
            raise WriteError(_message(path, e, folder)) from None
        raise
    _fsync_folder(folder)
    return path


def _message(path: str, error: BaseException, folder: str) -> str:
    kept = (f"the previous {os.path.basename(path)} is kept" if os.path.exists(path)
            else "nothing was written there")
    return f"cannot write {path}: {_reason(error, folder)}; {kept}"


def write_bytes(path: str, data: bytes):
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return write_atomic(path, write)


def write_text(path: str, text: str):
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj):
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def remove_leftovers(folder: str) -> list:
    """Delete the temporary files of writes that were killed before their rename (``.tmp-*`` and the older
    ``*.json.tmp``/``*.nc.tmp`` names); call it only while holding the folder's lock (:mod:`inference.run_lock`)."""
    removed = []
    for pattern in (f"{TMP_PREFIX}*", "*.json.tmp", "*.jsonl.tmp", "*.nc.tmp"):
        for p in glob.glob(os.path.join(glob.escape(folder), pattern)):
            try:
                os.unlink(p)
                removed.append(p)
            except OSError:
                pass
    return removed
