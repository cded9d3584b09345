"""One writer per run directory: ``run.lock``, held for the life of the process that writes the directory.

``zoo train`` (new, ``--resume`` or ``--overwrite``), ``zoo evaluate`` and the report's evaluation of a run take the
lock of the run directory; ``zoo report`` takes the lock of its output folder. A second process is refused in one
line naming the holder's PID and command. The lock is an advisory ``flock`` on the file (POSIX): the kernel drops it
when the holder dies, however it dies, so the lock of a killed process is stale and the next process simply takes it.
Where ``flock`` is missing the lock file is created exclusively and holds the PID; a PID that is no longer alive on
this host marks it stale.
"""
import json
import os
import socket
import sys
import time

from zoo.errors import RunDirError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

_HELD = {}  # absolute folder -> [RunLock, depth]: the same process may enter a folder's lock again (report -> evaluate)


class RunLockedError(RunDirError):
    """Another live process holds the lock of this folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _describe(info: dict) -> str:
    pid = info.get("pid", "?")
    command = info.get("command")
    return f"process {pid}" + (f" ({command})" if command else "")


class RunLock:
    """``with RunLock(folder, "zoo train"):`` holds ``folder/run.lock`` or raises :class:`RunLockedError`;
    ``create`` makes the folder first (a new run, a report), else a missing folder is a :class:`RunDirError`."""

    def __init__(self, folder: str, command: str = "", create: bool = False):
        self.folder = os.path.abspath(folder)
        self.create = create
        self.path = os.path.join(self.folder, "run.lock")
        self.command = command or " ".join(["zoo"] + sys.argv[1:3])
        self.fd = None

    def _info(self) -> dict:
        try:
            with open(self.path) as f:
                info = json.load(f)
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_info(self):
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        data = json.dumps(info).encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError:  # a full disk: the lock holds without its note (messages then lack the PID)
            pass

    def _refuse(self):
        info = self._info()
        raise RunLockedError(f"{self.folder} is in use by {_describe(info)}"
                             + (f" since {info['since']}" if info.get("since") else "")
                             + "; wait for it to finish, or use another directory")

    def acquire(self):
        held = _HELD.get(self.folder)
        if held is not None:
            held[1] += 1
            return self
        if self.create:
            os.makedirs(self.folder, exist_ok=True)
        elif not os.path.isdir(self.folder):
            raise RunDirError(f"run directory {self.folder} does not exist")
        if fcntl is None:  # pragma: no cover - Windows
            self._acquire_exclusive()
        else:
            self._acquire_flock()
        _HELD[self.folder] = [self, 1]
        return self

    def _acquire_flock(self):
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self._refuse()
            # the holder we waited on may have removed the file between our open and our flock: then this lock is on
            # a file nobody else sees; take the lock of the file that is there now
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                self._write_info()
                return
            os.close(fd)
        raise RunLockedError(f"cannot take the lock {self.path}: other processes keep replacing it")

    def _acquire_exclusive(self):  # pragma: no cover - Windows
        for _ in range(2):
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                self._write_info()
                return
            except FileExistsError:
                info = self._info()
                pid = info.get("pid")
                if info.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
                    os.unlink(self.path)  # stale: its process is gone
                    continue
                self._refuse()
        self._refuse()

    def release(self):
        held = _HELD.get(self.folder)
        if held is None or held[0] is not self and held[1] <= 0:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self.folder]
        owner = held[0]
        if owner.fd is not None:
            try:
                os.unlink(owner.path)  # while still held, so nobody takes a lock on a file about to vanish
            except OSError:
                pass
            os.close(owner.fd)  # drops the flock
            owner.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def holder(folder: str) -> dict:
    """What ``folder/run.lock`` says about its holder (empty when unlocked); for messages and tests."""
    return RunLock(folder)._info()
