"""The ``lro-grpc`` command line, one job per module (the public entry point is :mod:`lro_grpc.cli`).

``console`` (output streams, exit codes, the usage error), ``parser`` (the
argument parser), ``clients`` (API inference and client options), ``commands``
(get, list, cancel, delete, journal, demo), ``wait`` (the wait command) and
``run`` (``main``: errors to exit codes).
"""
