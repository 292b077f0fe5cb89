"""Reading input envmatrix does not control: files, streams, child-process output and YAML.

Every file and stream envmatrix reads (policies, workflows, saved plans, `rotate --from-file`,
stdin, a command rotator's stdout) comes through here, so none of them can hang a run or
exhaust its memory:

- `read_regular_file` opens without blocking and refuses anything but a regular file (a FIFO
  would block forever, `/dev/zero` never ends, a folder is not a file), then reads at most
  `limit` bytes;
- `read_stream` and `run_bounded` stop reading a stream (stdin, a child's stdout) past `limit`;
- `load_yaml` parses with ruamel and refuses a document whose tree, with every alias expanded,
  has more than `max_nodes` nodes (an alias bomb is a few hundred bytes that expand to 10^9
  nodes), or that is nested too deeply to parse.

Each refusal is an `UnsafeInput` whose message is one line naming the problem (never the
content); callers add the file or stream it came from and pick the error class (a policy is
exit 3, a workflow is skipped, ...).
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from dataclasses import dataclass
from typing import IO, Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

from envmatrix.errors import UnsafeInput as UnsafeInput  # re-exported: the readers raise it

_CHUNK = 64 * 1024


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most `limit` bytes of the regular file at `path` (symlinks followed).

    Raises UnsafeInput for a FIFO, socket, device or folder, or a file over `limit` bytes;
    OSError (FileNotFoundError, PermissionError, ...) when it cannot be opened at all.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO without a writer must not wait
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeInput(f"not a regular file ({_file_type(info.st_mode)})")
        if info.st_size > limit:
            raise UnsafeInput(f"larger than {limit} bytes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return read_stream(handle, limit)
    finally:
        os.close(fd)


def read_stream(stream: IO[bytes], limit: int) -> bytes:
    """Everything a binary stream holds, refusing (UnsafeInput) once it passes `limit` bytes."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UnsafeInput(f"larger than {limit} bytes")
    return bytes(data)


def _file_type(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


@dataclass(frozen=True)
class BoundedRun:
    """A finished child process: its exit code and its stdout (at most the limit's bytes)."""

    returncode: int
    stdout: bytes


def run_bounded(
    argv: list[str],
    *,
    input: bytes,
    limit: int,
    timeout: float,
    cwd: str | os.PathLike[str],
    env: dict[str, str],
) -> BoundedRun:
    """Run `argv` with `input` on stdin; stderr is discarded and stdout kept up to `limit` bytes.

    The child is killed when it prints more (UnsafeInput) or outlives `timeout` seconds
    (subprocess.TimeoutExpired); OSError when it cannot start.
    """
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )
    assert process.stdin is not None and process.stdout is not None
    writer = threading.Thread(target=_feed, args=(process.stdin, input), daemon=True)
    writer.start()
    output: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(process, limit, output), daemon=True)
    reader.start()
    try:
        process.wait(timeout)
        reader.join(timeout)
    finally:
        if process.poll() is None or reader.is_alive():
            process.kill()
            process.wait()
        reader.join()
        process.stdout.close()
    data = b"".join(output)
    if len(data) > limit:
        raise UnsafeInput(f"printed more than {limit} bytes")
    return BoundedRun(process.returncode, data)


def _feed(stdin: IO[bytes], data: bytes) -> None:
    try:
        stdin.write(data)
    except OSError:  # the child exited without reading all of it: its exit code tells
        pass
    finally:
        try:
            stdin.close()
        except OSError:
            pass


def _drain(process: subprocess.Popen[bytes], limit: int, output: list[bytes]) -> None:
    """Collect the child's stdout; past `limit` bytes, kill it (it would block on a full pipe)."""
    assert process.stdout is not None
    total = 0
    while total <= limit:
        chunk = process.stdout.read1(_CHUNK)  # type: ignore[attr-defined]  # a BufferedReader
        if not chunk:
            return
        output.append(chunk)
        total += len(chunk)
    process.kill()


def load_yaml(
    text: str, *, max_nodes: int, typ: str = "safe", allow_duplicate_keys: bool = True
) -> Any:
    """One YAML document, refused (UnsafeInput) when it expands to more than `max_nodes` nodes.

    Aliases are counted as often as a reader of the loaded data would visit them (an alias
    bomb's shared nodes are counted per reference), so whatever walks the result is bounded too.
    ruamel's YAMLError passes through; a document nested beyond Python's recursion limit is an
    UnsafeInput.
    """
    yaml = YAML(typ=typ)
    yaml.allow_duplicate_keys = allow_duplicate_keys
    try:
        # two passes through ruamel's public API: the node graph (aliases shared, so cheap)
        # is measured before anything is built from it
        node = yaml.compose(text)
        if node is None:
            return None
        _check_expanded_size(node, max_nodes)
        return yaml.load(text)
    except RecursionError:
        raise UnsafeInput("nested too deeply") from None


def _check_expanded_size(root: Node, max_nodes: int) -> None:
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise UnsafeInput("an alias refers to a node that contains it (recursive alias)")
        open_nodes.add(key)
        total = 1
        for child in _children(node):
            total += size(child)
            if total > max_nodes:
                break
        open_nodes.discard(key)
        if total > max_nodes:
            raise UnsafeInput(
                f"more than {max_nodes} YAML nodes once its aliases are expanded (an alias bomb?)"
            )
        sizes[key] = total
        return total

    size(root)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []
