"""Tiny WASI (preview 1) modules written in WAT, compiled with ``wasmtime.wat2wasm``."""

from __future__ import annotations

import wasmtime

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
    "path_symlink": "(param i32 i32 i32 i32 i32) (result i32)",
    "sock_accept": "(param i32 i32 i32) (result i32)",
}

RIGHT_FD_READ = 1 << 1
RIGHT_FD_WRITE = 1 << 6
OFLAG_CREAT = 1


def _module(body: str, *, memory_pages: int = 1, data: str = "") -> bytes:
    imports = "\n".join(
        f'(import "{_WASI}" "{name}" (func ${name} {sig}))' for name, sig in _IMPORTS.items())
    text = f"""(module
      {imports}
      (memory (export "memory") {memory_pages})
      {data}
      {body})"""
    return wasmtime.wat2wasm(text)


def _escape(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "/._- " else f"\\{ord(ch):02x}"
                   for ch in text)


def write_text(text: str, fd: int = 1) -> bytes:
    """Writes ``text`` to ``fd`` once and returns from ``_start``."""
    raw = text.encode()
    return _module(f"""
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const {len(raw)}))
        (drop (call $fd_write (i32.const {fd}) (i32.const 0) (i32.const 1) (i32.const 16))))""",
        data=f'(data (i32.const 1024) "{_escape(text)}")')


HELLO = write_text("hello from wasm\n")


def exit_with(code: int) -> bytes:
    """Calls ``proc_exit(code)``."""
    return _module(f'(func (export "_start") (call $proc_exit (i32.const {code})))')


def echo_stdin() -> bytes:
    """Copies stdin to stdout until end-of-file."""
    return _module("""
      (func (export "_start")
        (loop $more
          (i32.store (i32.const 16) (i32.const 4096))
          (i32.store (i32.const 20) (i32.const 4096))
          (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
          (if (i32.eqz (i32.load (i32.const 24))) (then (return)))
          (i32.store (i32.const 32) (i32.const 4096))
          (i32.store (i32.const 36) (i32.load (i32.const 24)))
          (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))
          (br $more)))""")


def _print_strings(sizes: str, get: str) -> bytes:
    return _module(f"""
      (func (export "_start")
        (drop (call ${sizes} (i32.const 0) (i32.const 4)))
        (drop (call ${get} (i32.const 1024) (i32.const 8192)))
        (i32.store (i32.const 16) (i32.const 8192))
        (i32.store (i32.const 20) (i32.load (i32.const 4)))
        (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))""")


PRINT_ARGS = _print_strings("args_sizes_get", "args_get")
PRINT_ENV = _print_strings("environ_sizes_get", "environ_get")

SPIN = _module('(func (export "_start") (loop $forever (br $forever)))')
UNREACHABLE = _module('(func (export "_start") unreachable)')
RECURSE = _module("""
  (func $down (param i64) (result i64)
    (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
  (func (export "_start") (drop (call $down (i64.const 0))))""")
GROW_UNTIL_REFUSED = _module("""
  (func (export "_start")
    (loop $more
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (br $more)))""")


def big_initial_memory(pages: int) -> bytes:
    """A module whose memory starts at ``pages`` pages of 64 KiB."""
    return _module('(func (export "_start"))', memory_pages=pages)


def flood(*, stop_on_error: bool) -> bytes:
    """Writes 4 KiB blocks to stdout forever (or until a write fails, then exits 5)."""
    on_error = ("(if (i32.load (i32.const 40)) (then (call $proc_exit (i32.const 5))))"
                if stop_on_error else "")
    return _module(f"""
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 4096))
        (i32.store (i32.const 4) (i32.const 4096))
        (memory.fill (i32.const 4096) (i32.const 65) (i32.const 4096))
        (loop $more
          (i32.store (i32.const 40)
            (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
          {on_error}
          (br $more)))""")


def sleep_then_exit(seconds: float, code: int = 7) -> bytes:
    """Sleeps through ``poll_oneoff`` on a relative monotonic clock, then exits ``code``."""
    nanos = int(seconds * 1e9)
    return _module(f"""
      (func (export "_start")
        (i64.store (i32.const 0) (i64.const 42))
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const {nanos}))
        (i64.store (i32.const 32) (i64.const 0))
        (i32.store16 (i32.const 40) (i32.const 0))
        (if (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))
          (then (call $proc_exit (i32.const 99))))
        (if (i64.ne (i64.load (i32.const 64)) (i64.const 42))
          (then (call $proc_exit (i32.const 98))))
        (call $proc_exit (i32.const {code})))""")


def open_file(path: str, *, write: bool = False, fd: int = 3) -> bytes:
    """Opens ``path`` relative to preopened ``fd``; prints its content, or writes
    ``written`` into it (creating it).  Exits with the WASI errno of a failed call."""
    raw = path.encode()
    if write:
        oflags, rights = OFLAG_CREAT, RIGHT_FD_WRITE
        use = """
          (i32.store (i32.const 16) (i32.const 2048))
          (i32.store (i32.const 20) (i32.const 7))
          (local.set $err (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1)
                                          (i32.const 24)))
          (if (local.get $err) (then (call $proc_exit (local.get $err))))"""
    else:
        oflags, rights = 0, RIGHT_FD_READ
        use = """
          (i32.store (i32.const 16) (i32.const 4096))
          (i32.store (i32.const 20) (i32.const 4096))
          (local.set $err (call $fd_read (local.get $fd) (i32.const 16) (i32.const 1)
                                         (i32.const 24)))
          (if (local.get $err) (then (call $proc_exit (local.get $err))))
          (i32.store (i32.const 32) (i32.const 4096))
          (i32.store (i32.const 36) (i32.load (i32.const 24)))
          (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))"""
    return _module(f"""
      (func (export "_start") (local $err i32) (local $fd i32)
        (local.set $err (call $path_open (i32.const {fd}) (i32.const 0) (i32.const 1024)
                        (i32.const {len(raw)}) (i32.const {oflags}) (i64.const {rights})
                        (i64.const 0) (i32.const 0) (i32.const 8)))
        (if (local.get $err) (then (call $proc_exit (local.get $err))))
        (local.set $fd (i32.load (i32.const 8)))
        {use}
        (call $proc_exit (i32.const 0)))""",
        data=f'(data (i32.const 1024) "{_escape(path)}") (data (i32.const 2048) "written")')


def make_symlink(target: str, name: str, fd: int = 3) -> bytes:
    """Creates symbolic link ``name`` -> ``target`` in preopened ``fd``; exits with errno."""
    t, n = target.encode(), name.encode()
    return _module(f"""
      (func (export "_start")
        (call $proc_exit (call $path_symlink (i32.const 1024) (i32.const {len(t)})
                                             (i32.const {fd}) (i32.const 2048)
                                             (i32.const {len(n)}))))""",
        data=f'(data (i32.const 1024) "{_escape(target)}") '
             f'(data (i32.const 2048) "{_escape(name)}")')


def accept_socket(fd: int = 3) -> bytes:
    """Tries ``sock_accept`` on ``fd``; exits with the errno."""
    return _module(f"""
      (func (export "_start")
        (call $proc_exit (call $sock_accept (i32.const {fd}) (i32.const 0) (i32.const 8))))""")


def importing(module: str, name: str) -> bytes:
    """A module that imports a function nobody provides."""
    return wasmtime.wat2wasm(f"""(module (import "{module}" "{name}" (func))
      (memory (export "memory") 1) (func (export "_start") (call 0)))""")


WASI_ERRNO = {"badf": 8, "notcapable": 76, "perm": 63, "rofs": 69, "acces": 2, "noent": 44}
