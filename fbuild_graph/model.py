"""Frozen records that flow from the command line to the results: boards, sketches, libraries, actions.

Everything here is plain data: it pickles to Dask workers and (un)structures with cattrs in `results.py`.
"""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import Optional

import attrs
from attrs import frozen

class Resource(StrEnum):
    """The Dask resource an action holds while it runs: the two limits (--framework-jobs, --sketch-jobs)."""

    FRAMEWORK = "framework"
    SKETCH = "sketch"


FRAMEWORK, SKETCH = Resource.FRAMEWORK, Resource.SKETCH


class Kind(StrEnum):
    """What an action does. EEP and HEX are the firmware's objcopy recipes; OBJCOPY any other one; HOOK
    runs a platform's `recipe.hooks.*`."""

    PREPROCESS = "preprocess"
    COMPILE = "compile"
    ARCHIVE = "archive"
    LINK = "link"
    EEP = "eep"
    HEX = "hex"
    OBJCOPY = "objcopy"
    SIZE = "size"
    HOOK = "hook"


HOOK = Kind.HOOK


class ActionStatus(StrEnum):
    """What became of an action (ActionRecord.status): OK (it ran and succeeded), UP_TO_DATE (its signature
    matched: it did not run), CACHED (a stage-1 output taken from the cache), FAILED (the tool exited non-zero
    or could not start), SKIPPED (an earlier action or a dependency failed) or CANCELLED (the run was
    superseded: the tool was killed or never started)."""

    OK = "ok"
    UP_TO_DATE = "up-to-date"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


# Statuses of an action that leave its outputs good to use.
OK_STATUSES = frozenset({ActionStatus.OK, ActionStatus.UP_TO_DATE, ActionStatus.CACHED})


class OwnerKind(StrEnum):
    CORE = "core"
    LIBRARY = "lib"
    SKETCH = "sketch"


@frozen
class Owner:
    """What an action's failure is charged to: the core, one library, or one sketch, of one board. Written
    `core`, `lib:NAME` or `sketch:ID` wherever it is stored (Action.owner, the steps' keys), prefixed with
    `BOARD/` in a build for several boards (`board` is then the board's id, unique in the run; it is empty in
    a single-board build, whose owners read as they always have), and read back only through `parse`.
    Neither a board id nor a kind holds `/` or `:`, so the first `:` ends the kind whatever the name holds."""

    kind: OwnerKind
    name: str = ""
    board: str = ""

    def __str__(self) -> str:
        own = str(self.kind) if self.kind == OwnerKind.CORE else f"{self.kind}:{self.name}"
        return f"{self.board}/{own}" if self.board else own

    @classmethod
    def parse(cls, text: str) -> "Owner":
        head, _, name = text.partition(":")
        board, _, kind = head.rpartition("/")
        return cls(OwnerKind(kind), name, board)

    @classmethod
    def core(cls, board: str = "") -> "Owner":
        return cls(OwnerKind.CORE, "", board)

    @classmethod
    def library(cls, name: str, board: str = "") -> "Owner":
        return cls(OwnerKind.LIBRARY, name, board)

    @classmethod
    def sketch(cls, sketch_id: str, board: str = "") -> "Owner":
        return cls(OwnerKind.SKETCH, sketch_id, board)


CORE = str(Owner.core())


class WarningLevel(StrEnum):
    """arduino-cli's --warnings: which `compiler.warning_flags.LEVEL` of the platform the compiles take."""

    NONE = "none"
    DEFAULT = "default"
    MORE = "more"
    ALL = "all"


class SketchStatus(StrEnum):
    """What became of a sketch for a board (SketchResult.status). NOT_BUILT: the cluster could no longer run
    its work (the scheduler was lost, or no worker offers a resource it needs); that says nothing about the
    sketch. SKIPPED: the sketch does not build for that board by its own markers, its libraries'
    `architectures=` or --exclude (see targets.py); nothing of it ran."""

    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    NOT_BUILT = "not built"
    SKIPPED = "skipped"


@frozen
class Board:
    """A board resolved from an FQBN or a short name, with every build property layered and known."""

    fqbn: str
    name: str
    platform_path: str
    properties: dict[str, str] = attrs.field(eq=False, repr=False)

    @property
    def board_id(self) -> str:
        return self.fqbn.split(":")[2]

    @property
    def architecture(self) -> str:
        """The platform's folder name as the FQBN spells it (`avr`): what library.properties'
        `architectures=` name (`build.arch` is its upper-case form, for `-DARDUINO_ARCH_AVR`)."""
        return self.fqbn.split(":")[1]

    @property
    def flash_max(self) -> Optional[int]:
        return _int_or_none(self.properties.get("upload.maximum_size"))

    @property
    def ram_max(self) -> Optional[int]:
        return _int_or_none(self.properties.get("upload.maximum_data_size"))


@frozen
class Sketch:
    """An Arduino sketch: folder `X/` holding `X.ino`.

    `inos` lists the main file first, then the other `.ino` files in C-locale order (as the IDE merges them);
    `files` are the other files, relative to `path`, that the IDE copies beside the merged source
    (headers included); `sources` is the subset that compiles, in arduino-builder's order.
    `id` names the sketch's output folder and is unique within a batch.
    """

    id: str
    name: str
    path: str
    inos: tuple[str, ...]
    files: tuple[str, ...]
    sources: tuple[str, ...]


class LibraryLocation(StrEnum):
    """Where a library was found, which weighs in choosing among libraries that provide the same header
    (libraries.priority), as arduino-cli's locations do: UNMANAGED, a `--library-dir` naming one library's
    root (arduino-cli's `--library`); USER, a library in a `--library-dir` folder of libraries (its
    `--libraries`, the sketchbook's `libraries/`); PLATFORM, the board platform's `libraries/`;
    REFERENCED_PLATFORM, those of the platform whose core the board uses (`build.core=VENDOR:CORE`)."""

    REFERENCED_PLATFORM = "referenced platform"
    PLATFORM = "platform"
    USER = "user"
    UNMANAGED = "unmanaged"


@frozen
class Library:
    """An Arduino library: `recursive` (1.5 layout, `src/` compiled recursively) or `flat` (legacy layout,
    root plus `utility/`). `headers` are paths relative to an include directory, as `#include` names them.

    From `library.properties` (arduino-cli's defaults when absent): `architectures` (`*`: any);
    `dot_a_linkage` (its objects are archived into one `.a`, linked instead of them; 1.5 layout only);
    `precompiled`: `""` (no), `true` (the archives in `src/{build.mcu}/` are linked and the sources compiled
    too) or `full` (the sources are compiled only when there is no such folder for the board); `ldflags`,
    linker flags added with a precompiled archive."""

    name: str
    root: str
    layout: str
    include_dirs: tuple[str, ...]
    sources: tuple[str, ...]
    headers: tuple[str, ...]
    location: LibraryLocation = LibraryLocation.USER
    architectures: tuple[str, ...] = ("*",)
    dot_a_linkage: bool = False
    precompiled: str = ""
    ldflags: str = ""

    @property
    def source_dir(self) -> str:
        """`src/`, or the root of a flat library."""
        return self.include_dirs[0]


@frozen
class Preprocessing:
    """What a `preprocess` action does, in-process on a worker: merge the sketch whose main file is `main`
    into `dest`, with copies of its files (see preprocess.py)."""

    main: str
    dest: str


@frozen
class Action:
    """One real action of the build: argv in; outputs on disk, output text and exit code out.

    `owner` is what a failure is charged to: `core`, `lib:NAME` or `sketch:ID`. `step` is the Dask task
    the action runs in; actions of one step run in order in a single task (see `plan.py` for why).
    `stdout_path` is set when the tool writes its result to stdout (avr-size). `launcher` (ccache) runs the
    command without changing what it produces, so it is not part of the command's signature. `cwd` is the
    tools' working directory: fixed, so that relative paths (ccache's base_dir) are the same every run.
    `toolchain` is a digest of the toolchain's identity (resolved path, version, binary) and of the tool this
    action runs (see tools.py): a compiler upgraded in place or an objcopy swapped changes it, and with it
    the signatures and cache keys of the actions that run it. `preprocessing` is set on `preprocess` actions
    only: their argv is the equivalent command, for logs and build.ninja.
    """

    key: str
    kind: str
    owner: str
    resource: str
    step: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    stdout_path: Optional[str] = None
    launcher: tuple[str, ...] = ()
    cwd: Optional[str] = None
    toolchain: str = ""
    preprocessing: Optional[Preprocessing] = None

    @property
    def command_line(self) -> str:
        """The command as a shell would run it: every argv word quoted on its own, stdout to its file."""
        line = shlex.join(self.argv)
        return f"{line} > {shlex.quote(self.stdout_path)}" if self.stdout_path else line


@frozen
class Artifact:
    """A file produced on a worker, named by path and identified by content."""

    path: str
    sha256: str


@frozen
class ActionRecord:
    """What happened to one action; `status` is an ActionStatus."""

    key: str
    kind: str
    owner: str
    resource: str
    status: str
    worker: str = ""
    start: float = 0.0
    stop: float = 0.0
    returncode: Optional[int] = None
    command: str = ""
    output: str = ""


@frozen
class Step:
    """One Dask task's worth of actions, run in order (planning/plan.py makes them). Here, not with the
    planner, because every worker and the scheduler unpickle steps: importing them must not import the
    planner's networkx (a remote cluster's processes each paid ~0.2 s for it in the middle of a build)."""

    key: str
    owner: str
    resource: str
    actions: tuple[Action, ...]
    deps: tuple[str, ...]
    priority: int


@frozen
class StepResult:
    """The outcome of one Dask task. `blocked_by` names the owner whose failure skipped this step. When the
    worker shares no disk with the client (see transfer.py), `artifacts` names each output by client path
    and digest and `files` holds its bytes; both are empty otherwise."""

    step: str
    owner: str
    ok: bool
    records: tuple[ActionRecord, ...]
    artifacts: tuple[Artifact, ...] = ()
    blocked_by: Optional[str] = None
    files: dict[str, bytes] = attrs.field(factory=dict, eq=False, repr=False)


@frozen
class SketchResult:
    """One line of the result map: a target, one sketch built for one board. `status`: a SketchStatus
    (cancelled: superseded). Sizes are bytes; `None` when the build stopped before the size step. `board` is
    the board's FQBN with its menus, `board_id` its id in this run (the folder its targets are in when a
    build has several boards); `id` is unique among one board's targets. `warnings`: the compiler's
    warnings in its own compiles and link and in those of the libraries it links (the core's are the
    platform's, not the sketch's)."""

    sketch: str
    id: str
    path: str
    status: str
    seconds: float
    out_dir: str
    log: str
    flash: Optional[int] = None
    flash_max: Optional[int] = None
    ram: Optional[int] = None
    ram_max: Optional[int] = None
    error: Optional[str] = None
    artifacts: tuple[str, ...] = ()
    board: str = ""
    board_id: str = ""
    warnings: int = 0


@frozen
class Phase:
    """A span of the run, in seconds since the build started; `board` names the board id of a phase done
    once per board (discover, libraries, plan), empty for the run's own phases."""

    name: str
    start: float
    stop: float
    cache_key: str = ""
    cache: str = ""
    board: str = ""

    @property
    def seconds(self) -> float:
        return self.stop - self.start


@frozen
class BuildReport:
    """`results.json`: the whole run, for machines. `stage1_cache`: hit, miss, partial or off. `slots`: how
    many actions of each resource class could run at once (the workers' resources; empty when nothing ran
    on a cluster), which is what a timeline's idle share is measured against. `library_detection`: how many
    preprocessor runs library detection made (`preprocessor_runs`) and how many answers it took from the
    output folder's includes.cache instead (`answers_reused`). `board` is the FQBN of a single-board build
    (empty for several); `boards` lists every FQBN the run built for. `cpu_seconds`: CPU (user + sys) up to
    the end of the build, of this process itself (`orchestrator`: planning, scheduling, collecting; the
    in-process cluster's threads included) and of the programs it ran and waited for (`tools`: compilers,
    archiver, linker, objcopy, size, and library detection's preprocessor runs and the toolchain probes).
    With `--scheduler` the build's tools run in the workers' processes, elsewhere: `tools` then holds only
    what ran here (detection and probes); empty in a results.json written before it was recorded."""

    board: str
    exit_code: int
    stage1_cache_key: str
    stage1_cache: str
    peak_rss_mb: float
    phases: tuple[Phase, ...]
    sketches: tuple[SketchResult, ...]
    slots: dict[str, int] = attrs.field(factory=dict)
    library_detection: dict[str, int] = attrs.field(factory=dict)
    boards: tuple[str, ...] = ()
    cpu_seconds: dict[str, float] = attrs.field(factory=dict)


def _int_or_none(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
