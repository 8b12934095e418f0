"""Test doubles for the storage backend, kept out of the product (as kopia's blobtesting).

`memory.MemoryBackend` is a dict-backed store that can also run out of room; `faulty.FaultyBackend`
wraps any backend and injects scripted faults. Import them as `tests.doubles.memory` and
`tests.doubles.faulty` (pytest puts the repository root on sys.path).
"""
