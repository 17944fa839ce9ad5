"""The conformance suite's programs as WASI modules (``wasm``) and Python (``wasm-python``).

Each module is a short sequence of steps written in WAT (write, sleep, grow memory, copy
stdin...), compiled with ``wasmtime.wat2wasm`` and written to a folder once per program;
``execute`` gets its path, as ``neuroflow sandbox run`` would.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import wasmtime

from neuroflow.testing import SuitePrograms

_WASI = "wasi_snapshot_preview1"
_IMPORTS = {
    "fd_write": "(param i32 i32 i32 i32) (result i32)",
    "fd_read": "(param i32 i32 i32 i32) (result i32)",
    "proc_exit": "(param i32)",
    "args_sizes_get": "(param i32 i32) (result i32)",
    "args_get": "(param i32 i32) (result i32)",
    "environ_sizes_get": "(param i32 i32) (result i32)",
    "environ_get": "(param i32 i32) (result i32)",
    "poll_oneoff": "(param i32 i32 i32 i32) (result i32)",
    "path_open": "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
}
#: Memory layout: iovecs and results below 1024, strings from 1024, pointer tables at
#: 8192, string buffers at 16384, the copy buffer at 65536 (two pages in all).
_STRINGS, _POINTERS, _BUFFER, _COPY = 1024, 8192, 16384, 65536
_RIGHT_FD_READ, _RIGHT_FD_WRITE = 1 << 1, 1 << 6
_OFLAG_CREAT_TRUNC = 1 | 8
_PAGE = 65536


def _escape(raw: bytes) -> str:
    return "".join(chr(b) if chr(b).isalnum() or chr(b) in "/._- " else f"\\{b:02x}"
                   for b in raw)


class _Wat:
    """Builds ``_start`` from steps; strings go into data segments."""

    def __init__(self) -> None:
        self.body: list[str] = []
        self.data: list[str] = []
        self.next_string = _STRINGS

    def string(self, text: str) -> tuple[int, int]:
        raw = text.encode()
        at = self.next_string
        self.data.append(f'(data (i32.const {at}) "{_escape(raw)}")')
        self.next_string += len(raw) + 1
        return at, len(raw)

    def write(self, fd: int, text: str) -> _Wat:
        at, size = self.string(text)
        self.body.append(f"""
          (i32.store (i32.const 0) (i32.const {at}))
          (i32.store (i32.const 4) (i32.const {size}))
          (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))""")
        return self

    def repeat_write(self, fd: int, text: str, times: int) -> _Wat:
        at, size = self.string(text)
        self.body.append(f"""
          (local.set $i (i32.const 0))
          (block $done (loop $more
            (br_if $done (i32.ge_u (local.get $i) (i32.const {times})))
            (i32.store (i32.const 0) (i32.const {at}))
            (i32.store (i32.const 4) (i32.const {size}))
            (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 8)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $more)))""")
        return self

    def sleep(self, seconds: float) -> _Wat:
        self.body.append(f"""
          (i64.store (i32.const 64) (i64.const 42))
          (i32.store8 (i32.const 72) (i32.const 0))
          (i32.store (i32.const 80) (i32.const 1))
          (i64.store (i32.const 88) (i64.const {int(seconds * 1e9)}))
          (i64.store (i32.const 96) (i64.const 0))
          (i32.store16 (i32.const 104) (i32.const 0))
          (drop (call $poll_oneoff (i32.const 64) (i32.const 128) (i32.const 1)
                                   (i32.const 192)))""")
        return self

    def exit(self, code: int) -> _Wat:
        self.body.append(f"(call $proc_exit (i32.const {code}))")
        return self

    def open(self, name: str, *, write: bool) -> _Wat:
        """Opens ``name`` in the preopened fd 3 into local ``$fd`` (exit errno on failure)."""
        at, size = self.string(name)
        oflags = _OFLAG_CREAT_TRUNC if write else 0
        rights = _RIGHT_FD_WRITE if write else _RIGHT_FD_READ
        self.body.append(f"""
          (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const {at})
                          (i32.const {size}) (i32.const {oflags}) (i64.const {rights})
                          (i64.const 0) (i32.const 0) (i32.const 48)))
          (if (local.get $err) (then (call $proc_exit (local.get $err))))
          (local.set $fd (i32.load (i32.const 48)))""")
        return self

    def write_fd(self, text: str) -> _Wat:
        at, size = self.string(text)
        self.body.append(f"""
          (i32.store (i32.const 0) (i32.const {at}))
          (i32.store (i32.const 4) (i32.const {size}))
          (local.set $err (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1)
                                          (i32.const 8)))
          (if (local.get $err) (then (call $proc_exit (local.get $err))))""")
        return self

    def print_strings(self, sizes: str, get: str, *, skip_first: bool, sep: int) -> _Wat:
        """Prints the args or environment strings, NULs turned into ``sep``, then a
        newline (the first string -- argv[0] -- left out when ``skip_first``)."""
        start = (f"(i32.load (i32.const {_POINTERS + 4}))" if skip_first
                 else f"(i32.const {_BUFFER})")
        self.body.append(f"""
          (drop (call ${sizes} (i32.const 0) (i32.const 4)))
          (drop (call ${get} (i32.const {_POINTERS}) (i32.const {_BUFFER})))
          (local.set $end (i32.add (i32.const {_BUFFER}) (i32.load (i32.const 4))))
          (local.set $i {start})
          (if (i32.le_u (i32.load (i32.const 0)) (i32.const {1 if skip_first else 0}))
            (then (local.set $i (local.get $end))
                  (i32.store8 (local.get $end) (i32.const 0))
                  (local.set $end (i32.add (local.get $end) (i32.const 1)))))
          (local.set $fd (local.get $i))
          (block $done (loop $more
            (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
            (if (i32.eqz (i32.load8_u (local.get $i)))
              (then (i32.store8 (local.get $i) (i32.const {sep}))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $more)))
          (i32.store8 (i32.sub (local.get $end) (i32.const 1)) (i32.const 10))
          (i32.store (i32.const 0) (local.get $fd))
          (i32.store (i32.const 4) (i32.sub (local.get $end) (local.get $fd)))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))""")
        return self

    def grow(self, pages: int, step: int) -> _Wat:
        """Grows memory by ``pages`` in steps of ``step`` pages; exits 1 if refused."""
        self.body.append(f"""
          (local.set $i (i32.const 0))
          (block $done (loop $more
            (br_if $done (i32.ge_u (local.get $i) (i32.const {pages})))
            (if (i32.eq (memory.grow (i32.const {step})) (i32.const -1))
              (then (call $proc_exit (i32.const 1))))
            (local.set $i (i32.add (local.get $i) (i32.const {step})))
            (br $more)))""")
        return self

    def compile(self) -> bytes:
        imports = "\n".join(f'(import "{_WASI}" "{name}" (func ${name} {sig}))'
                            for name, sig in _IMPORTS.items())
        text = f"""(module
          {imports}
          (memory (export "memory") 2)
          {" ".join(self.data)}
          (func (export "_start")
            (local $i i32) (local $end i32) (local $fd i32) (local $err i32)
            {"".join(self.body)}))"""
        return wasmtime.wat2wasm(text)


class WasmPrograms(SuitePrograms):
    """The suite's programs as WASI modules written to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, wat: _Wat) -> str:
        wasm = wat.compile()
        path = self.folder / f"{hashlib.sha256(wasm).hexdigest()[:16]}.wasm"
        if not path.exists():
            path.write_bytes(wasm)
        return str(path)

    def _run(self, wat: _Wat, args: list[str] | None = None) -> tuple[str, list[str]]:
        return self._path(wat), list(args or [])

    def exit_with(self, code: int) -> tuple[str, list[str]]:
        return self._run(_Wat().exit(code))

    def print_both(self, out: str, err: str) -> tuple[str, list[str]]:
        return self._run(_Wat().write(1, out + "\n").write(2, err + "\n"))

    def echo(self, words: list[str]) -> tuple[str, list[str]]:
        return self._run(_Wat().print_strings("args_sizes_get", "args_get", skip_first=True,
                                              sep=32), words)

    def cat(self) -> tuple[str, list[str]]:
        return self._run(_cat())

    def sleep_then_print(self, seconds: float, text: str) -> tuple[str, list[str]]:
        return self._run(_Wat().sleep(seconds).write(1, text + "\n"))

    def sleep(self, seconds: float) -> tuple[str, list[str]]:
        return self._run(_Wat().sleep(seconds))

    def memory_hog(self) -> tuple[str, list[str]]:
        # 384 MiB in 1 MiB steps, then "survived".
        return self._run(_Wat().grow(384 * 16, 16).write(1, "survived\n"))

    def flood(self, stream: str, lines: int, line: str) -> tuple[str, list[str]]:
        fd = 2 if stream == "stderr" else 1
        return self._run(_Wat().repeat_write(fd, line + "\n", lines).sleep(2)
                         .write(1, "survived\n").write(2, "survived\n"))

    def print_lines(self, lines: int, line: str) -> tuple[str, list[str]]:
        return self._run(_Wat().repeat_write(1, line + "\n", lines))

    def show_environment(self) -> tuple[str, list[str]]:
        return self._run(_Wat().print_strings("environ_sizes_get", "environ_get",
                                              skip_first=False, sep=10))

    def write_file(self, name: str, text: str) -> tuple[str, list[str]]:
        return self._run(_Wat().open(name, write=True).write_fd(text + "\n"))

    def write_and_read(self, made: str, text: str, read: str) -> tuple[str, list[str]]:
        wat = _Wat().open(made, write=True).write_fd(text + "\n").open(read, write=False)
        wat.body.append(_copy_fd_to_stdout())
        return self._run(wat)


def _copy_fd_to_stdout() -> str:
    """Copies local ``$fd`` to stdout until end-of-file."""
    return f"""
      (block $eof (loop $more
        (i32.store (i32.const 16) (i32.const {_COPY}))
        (i32.store (i32.const 20) (i32.const 4096))
        (if (call $fd_read (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 24))
          (then (call $proc_exit (i32.const 2))))
        (br_if $eof (i32.eqz (i32.load (i32.const 24))))
        (i32.store (i32.const 32) (i32.const {_COPY}))
        (i32.store (i32.const 36) (i32.load (i32.const 24)))
        (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))
        (br $more)))"""


def _cat() -> _Wat:
    wat = _Wat()
    wat.body.append("(local.set $fd (i32.const 0))")
    wat.body.append(_copy_fd_to_stdout())
    return wat


def _py(code: str, args: list[str] | None = None) -> tuple[str, list[str]]:
    return "python", ["-c", code, *(args or [])]


class PythonPrograms(SuitePrograms):
    """The suite's programs as ``python -c`` code; ``work_dir`` is granted at
    ``work_guest`` (the interpreter's working directory is ``/``)."""

    def __init__(self, work_guest: str) -> None:
        self.work = work_guest

    def exit_with(self, code: int) -> tuple[str, list[str]]:
        return _py(f"raise SystemExit({code})")

    def print_both(self, out: str, err: str) -> tuple[str, list[str]]:
        return _py(f"import sys; print({out!r}); print({err!r}, file=sys.stderr)")

    def echo(self, words: list[str]) -> tuple[str, list[str]]:
        return _py("import sys; print(' '.join(sys.argv[1:]))", words)

    def cat(self) -> tuple[str, list[str]]:
        return _py("import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())")

    def sleep_then_print(self, seconds: float, text: str) -> tuple[str, list[str]]:
        return _py(f"import time; time.sleep({seconds}); print({text!r})")

    def sleep(self, seconds: float) -> tuple[str, list[str]]:
        return _py(f"import time; time.sleep({seconds})")

    def memory_hog(self) -> tuple[str, list[str]]:
        return _py("blocks = [bytearray(2**20) for _ in range(384)]; print('survived')")

    def flood(self, stream: str, lines: int, line: str) -> tuple[str, list[str]]:
        return _py(f"import sys, time\nfor _ in range({lines}): print({line!r}, "
                   f"file=sys.{stream}, flush=True)\ntime.sleep(2)\nprint('survived')\n"
                   "print('survived', file=sys.stderr)")

    def print_lines(self, lines: int, line: str) -> tuple[str, list[str]]:
        return _py(f"for _ in range({lines}): print({line!r})")

    def show_environment(self) -> tuple[str, list[str]]:
        return _py("import os\nfor k, v in os.environ.items(): print(f'{k}={v}')")

    def write_file(self, name: str, text: str) -> tuple[str, list[str]]:
        return _py(f"open({self.work + '/' + name!r}, 'w').write({text + chr(10)!r})")
