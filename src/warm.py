"""Warm server for one borg program, started by borglua's core (src/warm.c).

The core runs it with the interpreter named on the first line of the borg
program, reading this source from stdin:

    INTERPRETER [FLAG] - SCRIPT

with one end of a Unix socketpair on descriptor 3. The server runs the
script's set-up code (its imports, but not its main block), imports borg,
runs borg's self-test once, and then forks one child per request. Each
child becomes a session leader, installs the request's descriptors,
directory, umask and environment, and runs the script's main block, which
calls borg's entry point as /usr/bin/borg does. The server reports each
child's pid at once and its exit status when it ends, and exits when the
host closes its end of the socket.

Frames in both directions are: u32 length of the body, u32 type, body,
in the machine's byte order. The descriptors of a request travel as
SCM_RIGHTS with its first bytes.
"""

import array
import ast
import ctypes
import gc
import io
import os
import select
import signal
import socket
import struct
import sys
import time

CONTROL_FD = 3

# Frames from the host.
INIT, SPAWN = 1, 2
# Frames to the host.
READY, FAILED, STARTED, REJECTED, MISMATCH, EXITED = 1, 2, 3, 4, 5, 6

# Seconds the children get to end after SIGTERM when the host is gone.
GRACE = 5.0
MAX_FDS = 253
PR_SET_PDEATHSIG = 1

# Variables that the interpreter or the dynamic loader read when a process
# starts, so a child can only run in a server started with the same values.
STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_")
STARTUP_NAMES = ("LANG", "LANGUAGE", "HOME", "TZ", "GLIBC_TUNABLES")


class StartError(Exception):
    """The server cannot serve this program; the host runs it with exec."""


# ---- frames ------------------------------------------------------------

class Reader:
    """Split the control stream into frames and keep received descriptors."""

    def __init__(self, sock):
        self.sock = sock
        self.data = b""
        self.fds = []

    def fill(self):
        """Read what the socket has; return False at end of file."""
        data, ancillary, _, _ = self.sock.recvmsg(
            1 << 16, socket.CMSG_SPACE(MAX_FDS * 4))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % 4])
                self.fds.extend(fds)
        self.data += data
        return bool(data)

    def frame(self):
        """Return the next complete (type, body), or None."""
        if len(self.data) < 8:
            return None
        length, kind = struct.unpack("=II", self.data[:8])
        if len(self.data) < 8 + length:
            return None
        body = self.data[8:8 + length]
        self.data = self.data[8 + length:]
        return kind, body

    def take_fds(self, n):
        taken, self.fds = self.fds[:n], self.fds[n:]
        return taken


def send_frame(sock, kind, body=b""):
    sock.sendall(struct.pack("=II", len(body), kind) + body)


class Body:
    """Read the fields of a frame body in order."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def u32(self):
        value, = struct.unpack_from("=I", self.data, self.pos)
        self.pos += 4
        return value

    def strings(self):
        count = self.u32()
        items = []
        for _ in range(count):
            length = self.u32()
            items.append(self.data[self.pos:self.pos + length])
            self.pos += length
        return items


def environment(entries):
    """Return {name: value} as bytes from "NAME=value" entries; the first
    entry of a name wins, as when Python builds os.environ at start-up."""
    env = {}
    for entry in entries:
        name, sep, value = entry.partition(b"=")
        if sep and name:
            env.setdefault(name, value)
    return env


# ---- start-up ----------------------------------------------------------

def is_main_guard(node):
    """Return True for `if __name__ == '__main__':`."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def is_setup_statement(node):
    """Return True for the statements an entry script runs before its main
    block: imports, definitions, constant assignments, try blocks of
    imports, and the calls sys.path.insert(...) and globals().setdefault(...).
    Anything else could do real work, which must not run in the server."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
        return True
    if isinstance(node, ast.Assign):
        return isinstance(node.value, ast.Constant)
    if isinstance(node, ast.Try):
        blocks = node.body + node.orelse + node.finalbody
        for handler in node.handlers:
            blocks = blocks + handler.body
        return all(is_setup_statement(n) for n in blocks)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        text = ast.unparse(node.value.func)
        return text in ("sys.path.insert", "globals().setdefault")
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    return False


def entry_call(guard):
    """Return the expression of the entry point that the main block calls
    as sys.exit(ENTRY()), or raise StartError."""
    last = guard.body[-1]
    call = getattr(last, "value", None)
    if (isinstance(last, ast.Expr) and isinstance(call, ast.Call)
            and ast.unparse(call.func) == "sys.exit" and len(call.args) == 1
            and isinstance(call.args[0], ast.Call)
            and not call.args[0].args):
        return call.args[0].func
    raise StartError("the main block does not end with sys.exit(ENTRY())")


def split_script(path):
    """Return the compiled set-up code, main block and entry expression of
    the entry script at path."""
    try:
        with open(path, "rb") as handle:
            source = handle.read()
        tree = ast.parse(source, path)
    except (OSError, SyntaxError, ValueError) as error:
        raise StartError("cannot read %s: %s" % (path, error))
    setup = [n for n in tree.body if not is_main_guard(n)]
    guards = [n for n in tree.body if is_main_guard(n)]
    if len(guards) != 1 or not all(is_setup_statement(n) for n in setup):
        raise StartError("%s is not an entry script (imports and one main"
                         " block)" % path)
    module = ast.Module(body=setup, type_ignores=[])
    main = ast.Module(body=guards[0].body, type_ignores=[])
    entry = ast.Expression(body=entry_call(guards[0]))
    return (compile(module, path, "exec"), compile(main, path, "exec"),
            compile(entry, path, "eval"))


class EnvironRecorder:
    """Record the names of the variables read through os.environ and
    os.environb while it is active."""

    def __init__(self):
        self.names = set()
        self.cls = type(os.environ)
        self.getitem = self.cls.__getitem__
        self.iterate = self.cls.__iter__

    def __enter__(self):
        recorder = self

        def getitem(mapping, key):
            recorder.names.add(os.fsencode(key))
            return recorder.getitem(mapping, key)

        def iterate(mapping):
            recorder.names.add(b"*")
            return recorder.iterate(mapping)

        self.cls.__getitem__ = getitem
        self.cls.__iter__ = iterate
        return self

    def __exit__(self, *exc):
        self.cls.__getitem__ = self.getitem
        self.cls.__iter__ = self.iterate


class LogRecorder:
    """Stand in for a logger during the self-test and keep its calls, so
    each child can log them again as its own self-test would."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, level):
        return lambda *args, **kwargs: self.calls.append((level, args, kwargs))


def set_environ(env):
    os.environb.clear()
    os.environb.update(env)


class Program:
    """The borg program that this server runs: its globals after the
    set-up code, its main block, and what its start-up depends on."""

    def __init__(self, script, env):
        self.script = script
        self.env = env
        setup, self.main, entry = split_script(script)
        self.globals = {"__name__": "__borglua_warm__", "__file__": script,
                        "__builtins__": __builtins__}
        captured = io.StringIO()
        saved_env, saved_stderr = dict(os.environb), sys.stderr
        set_environ(env)
        sys.stderr = captured
        try:
            with EnvironRecorder() as recorder:
                exec(setup, self.globals)
                function = eval(entry, self.globals)
                self.selftest_log = self.run_selftest(function)
        except StartError:
            raise
        except BaseException as error:
            raise StartError("cannot load borg from %s: %s: %s" % (
                script, type(error).__name__, error))
        finally:
            sys.stderr = saved_stderr
            set_environ(saved_env)
        # Text written during the imports, such as warnings, that each
        # child writes again as a freshly started borg would.
        self.import_output = captured.getvalue()
        recorder.names.discard(b"BORG_SELFTEST")
        self.read_names = recorder.names

    def run_selftest(self, function):
        """Run the self-test of the entry point's module once, and replace
        it with one that logs the same records without testing again."""
        module = sys.modules.get(getattr(function, "__module__", None) or "")
        if module is None or not module.__name__.startswith("borg"):
            raise StartError("the entry point of %s is not borg's" %
                             self.script)
        original = getattr(module, "selftest", None)
        if original is None:
            return []
        os.environb.pop(b"BORG_SELFTEST", None)
        recorder = LogRecorder()
        try:
            original(recorder)
        except SystemExit:
            raise StartError("borg's self-test failed: %r" % recorder.calls)

        def selftest(logger):
            if os.environ.get("BORG_SELFTEST") == "disabled":
                return original(logger)
            for level, args, kwargs in recorder.calls:
                getattr(logger, level)(*args, **kwargs)
            return None

        module.selftest = selftest
        return recorder.calls

    def matches(self, env):
        """Return True when a child with environment env behaves as if it
        had started on its own: the variables read at start-up and during
        the imports have the same values as in this server."""
        if b"*" in self.read_names:
            return env == self.env
        names = set(self.read_names)
        for name in set(env) | set(self.env):
            text = name.decode("latin-1")
            if text.startswith(STARTUP_PREFIXES) or text in STARTUP_NAMES:
                names.add(name)
        return all(env.get(n) == self.env.get(n) for n in names)


# ---- children ----------------------------------------------------------

def install_fds(targets, fds):
    """Give each received descriptor its target number and close all
    others, as exec with the same stdio plan would leave them."""
    import fcntl
    top = max(targets + [2]) + 1
    # Copies above every target first, so that no dup2 below overwrites a
    # received descriptor that is still to be moved.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top) for fd in fds]
    for target, fd in zip(targets, moved):
        os.dup2(fd, target, inheritable=True)
    keep = set(targets)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep and fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


def reopen_stdio():
    """Make new sys.stdin, stdout and stderr for descriptors 0-2, as the
    interpreter makes them at start-up. The server's own streams were made
    for its /dev/null and remember that it is seekable and no terminal."""
    for name, fd, mode in (("stdin", 0, "rb"), ("stdout", 1, "wb"),
                           ("stderr", 2, "wb")):
        old = getattr(sys, "__%s__" % name)
        if old is None:
            continue
        buffered = mode == "rb" or not isinstance(old.buffer, io.FileIO)
        binary = io.open(fd, mode, buffering=-1 if buffered else 0,
                         closefd=False)
        raw = binary.raw if buffered else binary
        raw.name = "<%s>" % name
        stream = io.TextIOWrapper(
            binary, encoding=old.encoding, errors=old.errors, newline="\n",
            line_buffering=buffered and (name == "stderr" or os.isatty(fd)),
            write_through=not buffered)
        stream.mode = mode[0]
        setattr(sys, name, stream)
        setattr(sys, "__%s__" % name, stream)


def reset_signals():
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def exit_status(error):
    """Return the status Python exits with for SystemExit error."""
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def finish(status):
    """End the child as the interpreter ends a script: wait for threads,
    run the atexit functions and flush sys.stdout and sys.stderr unless
    they are closed. A failed flush makes the status 120, as in Python."""
    import atexit
    import threading
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception:
            status = 120
    # The original streams share their buffers with any replacement; the
    # interpreter flushes them when it destroys them, ignoring errors.
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception:
            pass
    os._exit(status & 0xFF)


def run_main(program):
    """Run the script's main block in this child; never returns."""
    try:
        exec(program.main, program.globals)
        status = 0
    except SystemExit as error:
        status = exit_status(error)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        status = 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    finish(status)


def child(program, server_pid, libc, request):
    """Set up the forked child for request and run borg; never returns."""
    try:
        reset_signals()
        os.setsid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != server_pid:
            os._exit(127)
        os.fchdir(request["fds"][0])
        install_fds(request["targets"], request["fds"][1:])
        reopen_stdio()
        os.umask(request["umask"])
        set_environ(request["env"])
        time.tzset()
        try:
            with open("/proc/self/comm", "w") as comm:
                comm.write(os.path.basename(program.script)[:15])
        except OSError:
            pass
        sys.argv = [program.script] + [os.fsdecode(a)
                                       for a in request["argv"][1:]]
        if program.import_output:
            sys.stderr.write(program.import_output)
    except BaseException as error:
        try:
            os.write(2, ("borglua warm server: cannot set up the child: %s\n"
                         % error).encode())
        finally:
            os._exit(127)
    run_main(program)


# ---- the server loop ---------------------------------------------------

class Server:
    def __init__(self, sock, program):
        self.sock = sock
        self.program = program
        self.pid = os.getpid()
        self.running = set()  # children not yet reaped
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def spawn(self, body, fds):
        data = Body(body)
        request = {"id": data.u32(), "umask": data.u32()}
        request["targets"] = [data.u32() for _ in range(data.u32())]
        request["argv"] = data.strings()
        request["env"] = environment(data.strings())
        request["fds"] = fds
        try:
            if len(fds) != len(request["targets"]) + 1:
                send_frame(self.sock, REJECTED, struct.pack(
                    "=II", request["id"], 0) + b"descriptors missing")
                return
            if not self.program.matches(request["env"]):
                send_frame(self.sock, MISMATCH, struct.pack("=I",
                                                            request["id"]))
                return
            try:
                pid = os.fork()
            except OSError as error:
                send_frame(self.sock, REJECTED, struct.pack(
                    "=II", request["id"], error.errno) + str(error).encode())
                return
            if pid == 0:
                child(self.program, self.pid, self.libc, request)
            self.running.add(pid)
            send_frame(self.sock, STARTED, struct.pack("=II", request["id"],
                                                       pid))
        finally:
            for fd in fds:
                os.close(fd)

    def collect(self):
        """Reap the children that exited and report them. They are reaped
        at once, as libuv reaps a child of its own, so that nobody sees a
        zombie after the call returned.
        NOTE: the host may signal a pid in the moment between this reap and
        the report; libuv's own reaping has a like moment."""
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.running.discard(pid)
            if os.WIFSIGNALED(status):
                code, signum = 0, os.WTERMSIG(status)
            else:
                code, signum = os.WEXITSTATUS(status), 0
            send_frame(self.sock, EXITED, struct.pack("=IiI", pid, code,
                                                      signum))

    def handle(self, kind, body, reader):
        if kind == SPAWN:
            count = struct.unpack_from("=I", body, 8)[0] + 1
            self.spawn(body, reader.take_fds(count))

    def serve(self, reader):
        while True:
            try:
                ready, _, _ = select.select([self.sock, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 4096)
                except BlockingIOError:
                    pass
                self.collect()
            if self.sock in ready:
                if not reader.fill():
                    return
                frame = reader.frame()
                while frame is not None:
                    self.handle(frame[0], frame[1], reader)
                    frame = reader.frame()

    def stop_children(self):
        """End the children of a host that is gone as the host would have:
        SIGTERM to each process group, and SIGKILL after the grace time."""
        for pid in self.running:
            signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while self.running and time.monotonic() < deadline:
            for pid in list(self.running):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    self.running.discard(pid)
            time.sleep(0.05)
        for pid in self.running:
            signal_group(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except OSError:
        pass


def close_inherited():
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > CONTROL_FD:
            try:
                os.close(fd)
            except OSError:
                pass


def start(script):
    """Read the host's INIT frame and load the program; return the
    socket, the reader and the program."""
    close_inherited()
    if sys.path and sys.path[0] == "":
        sys.path[0] = os.path.dirname(os.path.realpath(script))
    sock = socket.socket(fileno=CONTROL_FD)
    os.set_inheritable(CONTROL_FD, False)
    reader = Reader(sock)
    frame = reader.frame()
    while frame is None:
        if not reader.fill():
            sys.exit(0)
        frame = reader.frame()
    if frame[0] != INIT:
        sys.exit(2)
    env = environment(Body(frame[1]).strings())
    try:
        program = Program(script, env)
    except StartError as error:
        send_frame(sock, FAILED, str(error).encode("utf-8", "replace"))
        sys.exit(1)
    return sock, reader, program


def main():
    script = sys.argv[1]
    sock, reader, program = start(script)
    server = Server(sock, program)
    # Keep the collector of each child off the objects loaded so far, so
    # that it does not write to, and copy, the pages shared with the server.
    gc.collect()
    gc.freeze()
    send_frame(sock, READY)
    try:
        server.serve(reader)
    except (ConnectionError, OSError):
        pass
    server.stop_children()


main()
