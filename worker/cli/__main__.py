"""`python -m worker.cli ARGS`: the same as `zapdispatch ARGS`."""

from worker.cli import main

if __name__ == "__main__":
    main()
