"""What the tests and the benchmarks share: the services they run on (`services`), the
processes they start (`processes`), Evolution faked in process (`evolution`), an in-process
delivery stack (`stack`) and the counters the benchmarks read (`counting`).

Nothing here is pytest-only, so `python -m bench` imports it as `tests.support`.
"""
