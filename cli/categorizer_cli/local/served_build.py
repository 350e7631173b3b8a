"""`make up`'s background build: the chosen recipe, built while the quick model serves, then judged by the gate.

Why: `make up` on a fresh machine must answer within a few minutes, and `categorizer model build` (recipe
`auto`) takes five or more on two cores. So the stack publishes the quick model (`artifacts/model`) at once,
and this builds the served folder (`artifacts/served`) in a child process of the supervisor: in its process
group, so `categorizer down` stops it with the stack; at a lower CPU priority, so the API stays responsive;
logging to `.local/served-build.log`. When the build ends, its bundle reaches the API the way a retrained model
does: `registry.promotion.submit_bundle` registers it (origin `rebuild`), the gate compares it with the
champion, the champion pointer moves only if it passes, the decision is recorded, and the API and batch
functions hot-swap. A served folder that already holds a bundle is submitted without building; one that is
the champion already, or was judged before, is left alone.

What happened is written to `.local/served-build.json` (`categorizer status` prints it). A failed build is
said there, with its log; the quick model keeps serving and nothing else stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from categorizer.registry.records import CHAMPION_CHANGES, Origin
from categorizer_cli.paths import PROJECT_ROOT

STATUS_FILE = "served-build.json"
LOG_FILE = "served-build.log"
BUILD_NICENESS = 10  # the build yields the CPU to the API and the event pump
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_LINES = 5


class BuildState(StrEnum):
    RUNNING = "running"  # the build process runs
    JUDGING = "judging"  # built; the gate scores it against the champion
    PROMOTED = "promoted"  # the gate passed it: it is (or was) the champion
    REJECTED = "rejected"  # the gate refused it: the champion keeps serving
    SERVING = "serving"  # the served folder's bundle is the champion already: nothing to build or judge
    FAILED = "failed"  # the build (or its submission) failed: the champion keeps serving
    STOPPED = "stopped"  # the stack stopped before the build ended; the next `make up` builds again


FINAL_STATES = frozenset({BuildState.PROMOTED, BuildState.REJECTED, BuildState.SERVING, BuildState.FAILED,
                          BuildState.STOPPED})


@dataclass(frozen=True)
class BuildStatus:
    state: BuildState
    recipe: str
    served_dir: str
    log: str
    built: bool = True  # False: the served folder held a bundle already (submitted without building)
    started_at: float | None = None  # epoch seconds
    ended_at: float | None = None
    pid: int | None = None
    version: str | None = None
    champion: str | None = None  # the champion after the decision
    reasons: tuple[str, ...] = ()  # the gate's (or why it failed)
    decided_at: str | None = None  # the decision's time (an earlier one when it was judged before)
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"state": self.state.value, "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildStatus:
        return cls(**(data | {"state": BuildState(data["state"]), "reasons": tuple(data.get("reasons", ()))}))

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> BuildStatus | None:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def describe(self, now: float | None = None) -> str:
        """One line for `categorizer status`."""
        now = now or time.time()
        took = f" after {_minutes(self.ended_at - self.started_at)}" if self.started_at and self.ended_at else ""
        what = f"recipe {self.recipe}" + (f", {self.version}" if self.version else "")
        # A promotion lists every check: the hold-out comparison is the one that says why a rebuild won.
        headline = next((r for r in self.reasons if "macro-F1" in r), self.reasons[0]) if self.reasons else None
        why = f": {headline}" if headline else ""
        if self.state is BuildState.RUNNING:
            since = _minutes(now - self.started_at) if self.started_at else "?"
            return f"running for {since} ({what}, pid {self.pid}; log {self.log}); the quick model serves meanwhile"
        if self.state is BuildState.JUDGING:
            return f"built{took}; the gate is comparing it with the champion ({what})"
        if self.state is BuildState.PROMOTED:
            return f"promoted{took} ({what}){why}" + ("" if self.built else " (submitted without building)")
        if self.state is BuildState.REJECTED:
            return f"rejected by the gate{took} ({what}){why}; the champion keeps serving"
        if self.state is BuildState.SERVING:
            return f"done: {self.version} ({self.served_dir}) is the champion"
        if self.state is BuildState.FAILED:
            return f"failed{took} ({what}){why}; the quick model keeps serving; log {self.log}"
        return f"stopped with the stack ({what}); the next `make up` builds again"


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


def served_bundle(served_dir: Path) -> tuple[Path, Path] | None:
    """(bundle folder, tarball) of the served folder's model, or None when there is none (yet)."""
    link = served_dir / "model"
    if not (link / "manifest.json").is_file():
        return None
    bundle = link.resolve()
    tarball = bundle.with_name(f"{bundle.name}.tar.gz")
    return (bundle, tarball) if tarball.is_file() else None


def build_command(recipe: str) -> list[str]:
    return [sys.executable, "-m", "categorizer_cli.main", "model", "build", "--recipe", recipe]


Submit = Callable[[Path, Path, dict[str, Any]], Any]  # (bundle, tarball, source) -> registry.promotion.Submission


class ServedBuild:
    """Owns the background build process and the status file; `start` decides what there is to do."""

    def __init__(self, *, served_dir: Path, recipe: str, directory: Path, submit: Submit,
                 lock: threading.Lock | None = None, log: Callable[[str], None] = print,
                 command: list[str] | None = None) -> None:
        self.served_dir = served_dir.resolve()
        self.recipe = recipe
        self.status_file = directory / STATUS_FILE
        self.log_file = directory / LOG_FILE
        self.submit = submit
        self.lock = lock or threading.Lock()  # the event pump's: one champion change at a time
        self.log = log
        self.command = command or build_command(recipe)
        self.process: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.status = BuildStatus(state=BuildState.RUNNING, recipe=recipe, served_dir=str(self.served_dir),
                                  log=str(self.log_file))

    # ------------------------------------------------------------------ start
    def start(self, *, champion: str | None, earlier_decision: Callable[[str], Any]) -> BuildStatus:
        """Build, submit, or leave alone. `earlier_decision(version)`: the registry's decision about it, or None."""
        existing = served_bundle(self.served_dir)
        if existing is not None:
            bundle, tarball = existing
            version = json.loads((bundle / "manifest.json").read_text())["version"]
            if version == champion:
                return self._set(state=BuildState.SERVING, built=False, version=version, champion=champion)
            earlier = earlier_decision(version)
            if earlier is not None:
                return self._set(**self._decided(earlier, built=False))
            self._set(state=BuildState.JUDGING, built=False, version=version, started_at=time.time())
            self.thread = threading.Thread(target=self._judge, args=(bundle, tarball), name="served-judge",
                                           daemon=True)
        else:
            self._drop_stale_staging()
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            env = os.environ | {"CATEGORIZER_ARTIFACTS": str(self.served_dir)}
            with self.log_file.open("ab") as log:
                log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command)} "
                          f"(CATEGORIZER_ARTIFACTS={self.served_dir})\n".encode())
                log.flush()
                # Same process group as the supervisor (`categorizer down` signals the group); lower priority.
                self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    cwd=PROJECT_ROOT)
            _lower_priority(self.process.pid)  # after the fork: no preexec_fn in a threaded process
            self._set(state=BuildState.RUNNING, built=True, started_at=time.time(), pid=self.process.pid)
            self.log(f"served build: {' '.join(self.command[-3:])} running (pid {self.process.pid}, log "
                     f"{self.log_file})")
            self.thread = threading.Thread(target=self._watch, name="served-build", daemon=True)
        self.thread.start()
        return self.status

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        self.stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.thread is not None:
            self.thread.join(timeout=STOP_GRACE_SECONDS)

    def wait(self, timeout: float | None = None) -> BuildStatus:
        if self.thread is not None:
            self.thread.join(timeout)
        return self.status

    # ------------------------------------------------------------------ work
    def _watch(self) -> None:
        assert self.process is not None  # started by `start`
        code = self.process.wait()
        if code < 0 or self.stopping.is_set():
            self._set(state=BuildState.STOPPED, ended_at=time.time(), pid=None,
                      reasons=(f"the build process ended by signal {-code}" if code < 0 else "the stack stopped",))
            return
        existing = served_bundle(self.served_dir)
        if code != 0 or existing is None:
            why = f"the build exited with code {code}" if code != 0 else \
                f"the build exited 0 but left no bundle at {self.served_dir / 'model'}"
            self._set(state=BuildState.FAILED, ended_at=time.time(), pid=None, reasons=(why, *self._log_tail()))
            self.log(f"served build: failed ({why}); the quick model keeps serving; log {self.log_file}")
            return
        self._set(state=BuildState.JUDGING, pid=None)
        self._judge(*existing)

    def _judge(self, bundle: Path, tarball: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_text())
        source = {"kind": Origin.REBUILD.value, "by": "make up", "recipe": self.recipe, "folder": str(self.served_dir),
                  "recipe_chosen": (manifest.get("recipe_choice") or {}).get("chosen") or self.recipe,
                  "build_seconds": round(time.time() - self.status.started_at, 1) if self.status.built
                  and self.status.started_at else None}
        self._set(version=manifest.get("version"))
        try:
            with self.lock:
                submission = self.submit(bundle, tarball, source)
        except Exception as exc:  # a submission that fails is reported, never a dead supervisor
            self._set(state=BuildState.FAILED, ended_at=time.time(),
                      reasons=(f"the built bundle could not be submitted: {type(exc).__name__}: {exc}",))
            self.log(f"served build: submission failed: {exc}")
            return
        self._set(ended_at=time.time(), **self._decided(submission.decision, built=self.status.built))
        self.log(f"served build: {self.status.state.value} {self.status.version}: "
                 f"{'; '.join(self.status.reasons[:2])}")

    @staticmethod
    def _decided(decision: Any, *, built: bool) -> dict[str, Any]:
        promoted = decision.action in CHAMPION_CHANGES  # promoted, forced or published: it served
        return {"state": BuildState.PROMOTED if promoted else BuildState.REJECTED, "built": built,
                "version": decision.version, "champion": decision.champion_after,
                "reasons": tuple(decision.reasons), "decided_at": decision.at}

    def _drop_stale_staging(self) -> None:
        """A build stopped with the stack (or failed) leaves its half-written `.staging-*` folder: drop the ones
        last written while that build ran, never another build's (`make served-model` may be running)."""
        previous = BuildStatus.read(self.status_file)
        if previous is None or previous.state not in (BuildState.STOPPED, BuildState.FAILED) or \
                not previous.started_at or not previous.ended_at:
            return
        for stale in (self.served_dir / "models").glob(".staging-*"):
            with contextlib.suppress(OSError):
                if previous.started_at <= stale.stat().st_mtime <= previous.ended_at + 5:
                    shutil.rmtree(stale, ignore_errors=True)

    def _log_tail(self) -> tuple[str, ...]:
        try:
            lines = [line.strip() for line in self.log_file.read_text(errors="replace").splitlines() if line.strip()]
        except FileNotFoundError:
            return ()
        return tuple(f"log: {line[:300]}" for line in lines[-LOG_TAIL_LINES:])

    def _set(self, **changes: Any) -> BuildStatus:
        self.status = replace(self.status, updated_at=time.time(), **changes)
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        self.status.write(self.status_file)
        return self.status


def _lower_priority(pid: int) -> None:
    """Right after the fork, before torch starts its threads (they inherit the main thread's niceness)."""
    with contextlib.suppress(OSError):  # it has ended already, or the platform refuses: the build still runs
        os.setpriority(os.PRIO_PROCESS, pid, BUILD_NICENESS)
