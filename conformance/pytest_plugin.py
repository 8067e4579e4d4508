"""The pytest plugin: spec files become test items named ``<property id>[<backend target>]``.

Registered through the ``pytest11`` entry point, so ``pytest spec/ --backend torch`` works once
nnspec is installed, and ``pytest --nnspec`` (or ``pytest --pyargs nnspec.spec``) collects the
shipped catalogue from wherever nnspec is installed. Every node id it prints can be given back
to pytest to select that one item. Loading the plugin imports neither torch nor jax.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nnspec.errors import NnspecError

HEADER = "nnspec:"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nnspec", "nnspec conformance checks")
    group.addoption("--backend", action="append", dest="nnspec_backends", metavar="NAME",
                    help="backend to check spec files against (repeatable; default numpy)")
    group.addoption("--nnspec-profile", default="default", help="nnspec profile: quick, default, thorough, ci")
    group.addoption("--nnspec-seed", type=int, default=0, help="nnspec run seed (default 0)")
    group.addoption("--nnspec-json", metavar="PATH", help="write the nnspec results document here")
    group.addoption("--nnspec-memory-limit", type=int, metavar="MB",
                    help="resident memory the worker may use before its pair is an error (as nnspec run's "
                         "--memory-limit)")
    group.addoption("--nnspec", action="store_true", dest="nnspec_catalogue",
                    help="collect the shipped nnspec catalogue (alone, or besides the paths given)")
    group.addoption("--nnspec-divergences", action="append", default=[], metavar="FILE",
                    help="a known-divergence file applied on top of each backend's own (repeatable)")
    group.addoption("--nnspec-dtype", action="append", default=[], metavar="DTYPE",
                    help="check only this dtype (repeatable; default: every dtype of each property's domain)")


_SNIFF_BYTES = 65536


def _is_spec(path: Path) -> bool:
    """Whether ``path`` declares itself an nnspec spec; never raises, whatever the file holds.

    A spec is a ``.yaml``/``.yml`` file whose first content line (after blank lines, comments and
    a ``---`` marker, within its first 64 KiB) starts with the version key ``nnspec:``. Any other
    YAML file, readable or not, UTF-8 or not, is left to whoever else collects it.
    """
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF_BYTES)
    except OSError:
        return False
    for line in head.removeprefix(b"\xef\xbb\xbf").splitlines():
        text = line.strip()
        if not text or text.startswith(b"#") or text == b"---":
            continue
        return line.startswith(HEADER.encode())
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not _is_spec(file_path):
        return None
    try:
        file_path.relative_to(parent.config.rootpath)
    except ValueError:
        # Outside the rootdir (``--nnspec``, ``--pyargs nnspec.spec``): pytest would name the file by
        # its bare name, which cannot be given back; the absolute path can.
        return SpecFile.from_parent(parent, path=file_path, nodeid=str(file_path))
    return SpecFile.from_parent(parent, path=file_path)


#: What an item's name may hold so that its node id can be given back to pytest (a ``::`` would
#: split it, brackets or spaces would not match): anything else in a target's name becomes ``_``.
_UNSAFE = re.compile(r"[^\w.:/+@=-]|:(?=:)")


def item_name(property_id: str, target: str) -> str:
    """An item's name, ``<property id>[<target>]``, with the target made safe to paste back."""
    return f"{property_id}[{_UNSAFE.sub('_', target)}]"


class _Catalogues:
    """Each folder's spec files checked together once, as ``nnspec lint`` checks a folder, so
    cross-file ids and ``depends_on`` are validated even when pytest collects files one by one;
    plus the ids seen across folders in this session."""

    def __init__(self) -> None:
        self.folders: dict[Path, tuple[Any, list[Any]]] = {}
        self.ids: dict[str, str] = {}

    def of(self, path: Path) -> tuple[Any, list[Any]]:
        from nnspec.spec_loader import check_catalogue

        folder = path.parent
        if folder not in self.folders:
            files = [entry for entry in sorted(folder.iterdir()) if entry.is_file() and _is_spec(entry)]
            catalogue, errors, _ = check_catalogue(files or [path], partial=True)
            self.folders[folder] = (catalogue, errors)
        return self.folders[folder]


_CATALOGUES_KEY = pytest.StashKey[_Catalogues]()


class _Session:
    """Per-session state: the backend targets, the supervised worker, the records, the options.

    The pairs run as in ``nnspec run``: on a supervised worker process (a crash, exit or hang
    of one pair is that pair's error), through the same stages. A backend named with
    ``--backend`` that cannot run is a usage error, as in the CLI.
    """

    def __init__(self, config: pytest.Config) -> None:
        from nnspec.divergences import load_all
        from nnspec.runner import BackendPool, RunOptions, check_dtypes, select_targets
        from nnspec.supervisor import Supervisor

        selectors = config.getoption("nnspec_backends") or ["numpy"]
        divergence_files = tuple(config.getoption("nnspec_divergences"))
        dtypes = tuple(dict.fromkeys(config.getoption("nnspec_dtype")))
        try:
            load_all(divergence_files)
            self.targets, self.unavailable = select_targets(selectors)
            self.pool = BackendPool(divergence_files)
            for _, target in self.targets:
                self.pool.get(target)
            check_dtypes(dtypes, self.pool.instances)
        except NnspecError as error:
            raise pytest.UsageError(f"nnspec: {error}") from None
        except Exception as error:
            raise pytest.UsageError(f"nnspec: a backend's constructor raised {type(error).__name__}: {error}") from None
        memory_limit = config.getoption("nnspec_memory_limit")
        if memory_limit is not None and memory_limit <= 0:
            raise pytest.UsageError(f"nnspec: --nnspec-memory-limit must be greater than 0. Received: {memory_limit}")
        self.options = RunOptions(profile=config.getoption("nnspec_profile"), seed=config.getoption("nnspec_seed"),
                                  memory_limit_mb=memory_limit,
                                  divergence_files=divergence_files, dtypes=dtypes)
        self.supervisor = Supervisor(1, self.options)
        self.records: list[Any] = []
        self.properties: dict[str, Any] = {}


def _session(config: pytest.Config) -> _Session:
    state = config.stash.get(_SESSION_KEY, None)
    if state is None:
        state = _Session(config)
        config.stash[_SESSION_KEY] = state
    return state


_SESSION_KEY = pytest.StashKey[_Session]()


class SpecFile(pytest.File):
    def collect(self) -> Any:
        catalogues = self.config.stash.setdefault(_CATALOGUES_KEY, _Catalogues())
        try:
            catalogue, errors = catalogues.of(self.path)
            state = _session(self.config)
        except NnspecError as error:
            raise self.CollectError(str(error)) from None
        shown = str(self.path)
        mine = [str(error) for error in errors if error.path == shown]
        properties = sorted((p for p in catalogue.properties if p.path == shown), key=lambda p: p.id)
        for prop in properties:
            first = catalogues.ids.setdefault(prop.id, shown)
            if first != shown:
                mine.append(f"{shown}:{prop.line}, property {prop.id!r}, field 'id': duplicate property id, "
                            f"first defined in {first}. Received: {prop.id!r}")
        if mine:
            raise self.CollectError("\n".join(mine))
        for prop in properties:
            state.properties[prop.id] = prop.metadata()
            for selector, target in sorted(state.targets, key=lambda t: t[1].target):
                yield PropertyItem.from_parent(self, name=item_name(prop.id, target.target), prop=prop,
                                               selector=selector, target=target,
                                               not_run=catalogue.not_run.get(prop.id))

    class CollectError(Exception):
        pass

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if excinfo.errisinstance(self.CollectError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class PropertyFailed(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class PropertyItem(pytest.Item):
    def __init__(self, *, prop: Any, selector: str, target: Any, not_run: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prop, self.selector, self.target = prop, selector, target
        #: Why this property cannot run (a dependency in no spec file loaded), if so.
        self.not_run = not_run
        self.add_marker(pytest.mark.nnspec)

    def runtest(self) -> None:
        from nnspec.runner import describe_failure, error_record

        state = _session(self.config)
        if self.not_run is not None:
            record = error_record(self.prop, self.target, state.options, self.not_run)
        else:
            record = state.supervisor.run_one((self.prop, self.selector, self.target))
        state.records.append(record)
        if record.status in ("fail", "error"):
            if record.level != "MUST":
                # As in `nnspec run`: a MAY or SHOULD failure is reported, and never fails the run.
                pytest.xfail(f"{record.level} property {record.status}ed (does not fail the run): {record.message}")
            raise PropertyFailed(describe_failure(record, self.prop.statement))
        if record.status == "skip":
            pytest.skip(record.message)
        if record.status == "xfail":
            pytest.xfail(record.message)
        if record.status == "xpass":
            self.add_report_section("call", "nnspec", record.message)

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        if excinfo.errisinstance(PropertyFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Not the bare name: pytest -v turns the dots of a domain that ends the node id into "::",
        # which would print an id that cannot be given back.
        return self.path, (self.prop.line or 1) - 1, f"{self.name} ({self.prop.level})"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nnspec: an nnspec property checked on one backend target")
    if config.getoption("nnspec_catalogue", False):
        from nnspec.spec_loader import default_spec_dir

        shipped = str(default_spec_dir())
        if config.args_source == pytest.Config.ArgsSource.ARGS:
            config.args.append(shipped)
        else:  # no paths given: the catalogue alone, not the testpaths or the current folder
            config.args[:] = [shipped]


def _shards(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.shard.json"))


def pytest_sessionstart(session: pytest.Session) -> None:
    path = session.config.getoption("nnspec_json", None)
    if path and not hasattr(session.config, "workerinput"):  # the controller (or a plain run)
        for stale in _shards(Path(path)):
            stale.unlink(missing_ok=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the results document. Under pytest-xdist each worker writes a shard next to it and
    the controller merges every shard into the document, so no worker's records are lost."""
    path = session.config.getoption("nnspec_json", None)
    state = session.config.stash.get(_SESSION_KEY, None)
    if state is not None:
        state.supervisor.close()
    if not path:
        return
    from nnspec.reports.results import RunDocument, load, merge
    from nnspec.runner import environment

    final = Path(path)
    document = RunDocument()
    if state is not None:
        document = RunDocument(environment=environment(state.options, list(state.pool.instances.values())),
                               properties=state.properties, results=state.records)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        document.status = "interrupted"
    worker = getattr(session.config, "workerinput", None)
    if worker is not None:
        document.write(final.parent / f".{final.name}.{worker['workerid']}.shard.json")
        return
    shards = _shards(final)
    if shards:
        parts = [load(shard) for shard in shards]
        document = merge(parts + ([document] if document.results else []))
        for shard in shards:
            shard.unlink(missing_ok=True)
    if state is None and not shards:
        return
    document.write(final)
