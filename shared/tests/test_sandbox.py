"""Each sandbox limit is exercised: wall time, CPU time, memory, network, writes outside scratch, errors; missing
mechanisms are refused by name; the SandboxFusion adapter answers with the same result type (loopback stub).
The escape attempts live in test_sandbox_redteam.py."""

import os
import signal
import socket
import threading

import pytest
from shared.sandbox import SandboxError, call_function, run_python


def test_normal_code_ok_with_stdout_and_stdin():
    result = run_python("import sys\nprint('sum', sum(range(5)))\nprint(sys.stdin.read().upper())", stdin="abc")
    assert result.status == "ok" and result.returncode == 0
    assert result.stdout.splitlines() == ["sum 10", "ABC"]
    assert result.error is None


def test_infinite_loop_times_out_on_wall_clock():
    result = run_python("while True:\n    pass", timeout_s=1.0)
    assert result.status == "timeout" and result.error == "wall-time limit exceeded"
    assert result.seconds < 3


def test_sleeping_code_is_killed_with_its_process_group():
    result = run_python("import time\nprint('start', flush=True)\ntime.sleep(30)", timeout_s=1.0)
    assert result.status == "timeout" and result.stdout == "start\n"


def test_cpu_time_limit():
    result = run_python("while True:\n    pass", timeout_s=5.0, cpu_s=1)
    # the wall limit (5 s) would read "wall-time limit exceeded": the CPU limit struck first
    assert result.status == "timeout" and result.error == "CPU-time limit exceeded"


def test_memory_bomb_hits_memory_limit():
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))", memory_mb=256)
    assert result.status == "memory"
    assert "memory limit" in result.error


def test_socket_connect_to_loopback_fails():
    # a real listener in this process: the connection would succeed outside the sandbox
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = (
            f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\ns.connect(('127.0.0.1', {port}))\n"
        )
        result = run_python(code)
        assert result.status == "error"
        assert "network access is not allowed" in result.error
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # the same connection works from the parent, so the refusal is the sandbox's doing
    finally:
        server.close()


def test_network_namespace_has_only_loopback_when_available():
    result = run_python("print(open('/proc/net/dev').read())")
    if not result.network_namespace:
        pytest.skip("unprivileged user/network namespaces are not available on this machine")
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:] if ":" in line]
    assert interfaces == ["lo"]


def test_write_outside_scratch_fails_inside_works(tmp_path):
    outside = tmp_path / "escape.txt"
    result = run_python(f"open({str(outside)!r}, 'w').write('x')")
    assert result.status == "error" and "outside the scratch directory" in result.error
    assert not outside.exists()
    for code in (
        f"import os\nos.remove({str(tmp_path)!r})",
        "import os\nos.chdir('..')\nopen('up.txt', 'w')",
        f"import os\nos.open({str(outside)!r}, os.O_WRONLY | os.O_CREAT)",
    ):
        assert run_python(code).status == "error", code
    assert not outside.exists()
    inside = run_python("open('ok.txt', 'w').write('inside')\nprint(open('ok.txt').read())")
    assert inside.status == "ok" and inside.stdout == "inside\n"


def test_scratch_is_fresh_and_deleted_and_files_are_provided():
    result = run_python("import os\nprint(sorted(os.listdir('.')))\nprint(os.getcwd())", files={"in/data.txt": "d"})
    assert result.stdout.splitlines()[0] == "['in']"
    assert not os.path.exists(result.stdout.splitlines()[1])
    with pytest.raises(ValueError, match="inside the scratch dir"):
        run_python("pass", files={"../x.txt": "no"})


def test_processes_cannot_be_started():
    result = run_python("import subprocess\nsubprocess.run(['true'])")
    assert result.status == "error" and "starting processes is not allowed" in result.error


def test_syntax_error_and_exception_are_errors():
    result = run_python("def f(:\n    pass")
    assert result.status == "error" and result.error.startswith("SyntaxError")
    result = run_python("raise ValueError('bad value')")
    assert result.status == "error" and result.error == "ValueError: bad value" and result.returncode == 1


def test_output_is_capped():
    result = run_python("for _ in range(10000):\n    print('x' * 100)", max_output_bytes=1000)
    assert result.status == "ok" and len(result.stdout) == 1000 and result.truncated


def test_call_function_returns_json_result():
    code = "def add(a, b):\n    print('noise')\n    return {'sum': a + b, 'items': [a, b]}"
    assert call_function(code, "add", {"a": 2, "b": 3}) == {"sum": 5, "items": [2, 3]}


def test_call_function_failures_raise_sandbox_error():
    with pytest.raises(SandboxError, match="no function named 'missing'"):
        call_function("def f():\n    return 1", "missing", {})
    with pytest.raises(SandboxError, match="not JSON-serialisable"):
        call_function("def f():\n    return object()", "f", {})
    with pytest.raises(SandboxError, match="timeout") as info:
        call_function("def f():\n    while True:\n        pass", "f", {}, timeout_s=1.0)
    assert info.value.result.status == "timeout"
    with pytest.raises(ValueError, match="kwargs are not JSON-serialisable"):
        call_function("def f(x):\n    return x", "f", {"x": {1, 2}})


def test_usable_from_worker_threads():
    results = []
    workers = [
        threading.Thread(
            target=lambda i=i: results.append(call_function("def sq(x):\n    return x * x", "sq", {"x": i}))
        )
        for i in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == [0, 1, 4]


def test_signal_death_is_an_error_naming_the_signal():
    result = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert result.status == "error" and result.error == "killed by signal SIGTERM"


def test_cannot_signal_the_caller():
    code = f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)"
    result = run_python(code)
    assert result.status == "error" and "signalling other processes is not allowed" in result.error


# ---------------------------------------------------------------------------------------------------------
# Missing mechanisms: the sandbox names them and refuses unless the caller opts into weaker isolation
# ---------------------------------------------------------------------------------------------------------

# Runs in a fresh interpreter that first hides one kernel feature from itself and its children with a tiny
# seccomp filter (syscall `nr` answers `errno`), the way an older kernel or a stricter container would.
_HIDE_AND_RUN = """
import ctypes, json, sys
from shared.sandbox import kernel, run_python, SandboxUnavailable
nr, err, allow = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
prog = [(0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, 0x00050000 | err), (0x06, 0, 0, 0x7FFF0000)]
filters = (kernel._SockFilter * len(prog))(*[kernel._SockFilter(*ins) for ins in prog])
fprog = kernel._SockFprog(len(prog), ctypes.cast(filters, ctypes.POINTER(kernel._SockFilter)))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0
try:
    result = run_python("open('/etc/hostname-sandbox-test', 'w')", allow_missing=allow)
    print(json.dumps({"status": result.status, "error": result.error, "mechanisms": result.mechanisms}))
except SandboxUnavailable as exc:
    print(json.dumps({"refused": str(exc)}))
"""


def _run_hidden(syscall: str, errno_value: int, allow: list[str]) -> dict:
    import json
    import subprocess
    import sys

    from shared.sandbox import kernel

    if kernel.arch() is None:
        pytest.skip("no seccomp syscall table for this machine")
    nr = kernel._nr(syscall)
    out = subprocess.run([sys.executable, "-c", _HIDE_AND_RUN, str(nr), str(errno_value), json.dumps(allow)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_missing_landlock_is_named_and_refused_unless_allowed():
    import errno

    refused = _run_hidden("landlock_create_ruleset", errno.ENOSYS, [])
    assert "landlock is off: not available on this kernel" in refused["refused"]
    assert "allow_missing" in refused["refused"]
    weaker = _run_hidden("landlock_create_ruleset", errno.ENOSYS, ["landlock"])
    assert weaker["mechanisms"]["landlock"].startswith("off") and weaker["mechanisms"]["seccomp"] == "on"
    # the second layer still refuses the write the kernel layer would have stopped
    assert weaker["status"] == "error" and "writing outside the scratch directory" in weaker["error"]


def test_missing_namespaces_refuse_for_the_scratch_quota():
    import errno

    refused = _run_hidden("unshare", errno.EPERM, [])
    assert "scratch_quota is off: needs a mount namespace" in refused["refused"]
    weaker = _run_hidden("unshare", errno.EPERM, ["scratch_quota"])
    assert weaker["mechanisms"]["user_namespace"] == "off: Operation not permitted"
    assert weaker["mechanisms"]["network_namespace"].startswith("off")
    assert weaker["mechanisms"]["pid_namespace"].startswith("off")
    assert weaker["status"] == "error"  # Landlock and seccomp still on: the write is refused


def test_allow_missing_names_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="unknown mechanism"):
        run_python("pass", allow_missing=["landlok"])
    monkeypatch.setenv("SHARED_SANDBOX_ALLOW_MISSING", "nope")
    with pytest.raises(ValueError, match="unknown mechanism"):
        run_python("pass")


def test_scratch_files_and_sys_exit_codes():
    result = run_python("import sys\nprint(open('in/a.txt').read())\nsys.exit(3)", files={"in/a.txt": "hello"})
    assert result.status == "error" and result.returncode == 3 and result.stdout == "hello\n"
    assert run_python("import sys\nsys.exit(0)").status == "ok"
    message = run_python("import sys\nsys.exit('bad input')")
    assert message.returncode == 1 and message.error == "bad input"
    # the sandbox's own exit codes, used by the code, are the code's: no refusal is raised
    mimic = run_python("import sys\nsys.exit(88)")
    assert mimic.status == "error" and mimic.returncode == 88


def test_cpu_limit_signal_is_relayed_through_the_reaper():
    result = run_python("while True:\n    pass", timeout_s=6.0, cpu_s=1)
    assert result.returncode == -signal.SIGXCPU and result.status == "timeout"


# ---------------------------------------------------------------------------------------------------------
# SandboxFusion-style remote backend, against a loopback stub speaking its /run_code API
# ---------------------------------------------------------------------------------------------------------


class _FusionStub:
    """Loopback stand-in for SandboxFusion: runs the code with the local sandbox and answers in its format."""

    def __init__(self, fail_with: str | None = None) -> None:
        import base64
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub = self
        self.requests: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if fail_with:
                    reply = {"status": "SandboxError", "message": fail_with, "run_result": None}
                else:
                    files = {k: base64.b64decode(v) for k, v in body["files"].items()}
                    res = run_python(body["code"], timeout_s=body["run_timeout"], memory_mb=body["memory_limit_MB"],
                                     files=files, stdin=body["stdin"])
                    status = "TimeLimitExceeded" if res.status == "timeout" else (
                        "Finished" if res.returncode is not None and res.returncode >= 0 else "Error")
                    reply = {"status": "Success" if res.ok else "Failed", "message": "", "compile_result": None,
                             "run_result": {"status": status, "execution_time": res.seconds,
                                            "return_code": res.returncode, "stdout": res.stdout,
                                            "stderr": res.stderr}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_remote_backend_maps_results_and_calls_functions():
    from shared.sandbox import SandboxFusionClient, SandboxResult

    stub = _FusionStub()
    try:
        client = SandboxFusionClient(stub.url)
        ok = client.run_python("print(open('d.txt').read() + input())", files={"d.txt": "data-"}, stdin="in\n")
        assert isinstance(ok, SandboxResult) and ok.status == "ok" and ok.stdout == "data-in\n"
        assert stub.requests[0]["language"] == "python" and stub.requests[0]["files"] == {"d.txt": "ZGF0YS0="}
        assert client.run_python("while True:\n    pass", timeout_s=1).status == "timeout"
        err = client.run_python("raise ValueError('bad value')")
        assert err.status == "error" and err.error == "ValueError: bad value"
        mem = client.run_python("x = bytearray(2**31)", memory_mb=128)
        assert mem.status == "memory"
        assert client.call_function("def add(a, b):\n    print('noise')\n    return [a + b]", "add", {"a": 2, "b": 3}) == [5]
        with pytest.raises(SandboxError, match="not JSON-serialisable"):
            client.call_function("def f():\n    return object()", "f", {})
        with pytest.raises(SandboxError, match="no function named 'g'"):
            client.call_function("def f():\n    return 1", "g", {})
    finally:
        stub.close()


def test_remote_backend_errors_name_the_url():
    from shared.sandbox.remote import SandboxFusionClient, SandboxServiceError

    stub = _FusionStub(fail_with="executor pod lost")
    try:
        with pytest.raises(SandboxServiceError, match="executor pod lost"):
            SandboxFusionClient(stub.url).run_python("print(1)")
    finally:
        stub.close()
    probe_socket = socket.socket()
    probe_socket.bind(("127.0.0.1", 0))
    port = probe_socket.getsockname()[1]
    probe_socket.close()
    with pytest.raises(SandboxServiceError, match=rf"127\.0\.0\.1:{port}/run_code unavailable after 2 attempts"):
        SandboxFusionClient(f"http://127.0.0.1:{port}", retries=1, backoff_s=0.01).run_python("print(1)")
