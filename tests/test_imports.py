import subprocess
import sys


def test_the_core_imports_neither_socketio_nor_redis() -> None:
    code = (
        "import sys, roomcast, roomcast.testing, roomcast.backends;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'socketio', 'engineio', 'redis'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_adapter_does_import_socketio() -> None:
    # The check above can fail: importing the adapter does pull socketio in.
    code = "import sys, roomcast.adapters.socketio; print('socketio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "True"
