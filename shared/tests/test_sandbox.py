"""Each sandbox limit is exercised: wall time, CPU time, memory, network, writes outside scratch, errors."""

import os
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
    assert result.status == "timeout" and result.error == "CPU-time limit exceeded"
    assert result.seconds < 4


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
