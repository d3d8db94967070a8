from roomcast.backends import Backend, MemoryBackend
from roomcast.testing import BackendConformance


class TestMemoryBackend(BackendConformance):
    def make_backend(self) -> Backend:
        return MemoryBackend()
