"""Media made offline for tests and benchmarks: speech from known text (``speech``)
and the quality bench's cases (``corpus``). Nothing here ships with the runtime."""
