"""The loop the export checks share: every case of a directory checked, one line each.

A case is named by its `NAME.case.json`; `check(directory, name)` returns `(passed, detail)`. A
case that raises fails with its error, and the others still run. `--only NAME` keeps one case.
"""

from pathlib import Path


def run_cases(argv, check):
    """Checks the cases of `argv[0]` (options after it); returns the exit status: 1 if any case
    fails or there is none, else 0."""
    directory = Path(argv[0])
    options = dict(zip(argv[1::2], argv[2::2]))
    names = sorted(p.name[: -len(".case.json")] for p in directory.glob("*.case.json"))
    if "--only" in options:
        names = [n for n in names if n == options["--only"]]
    if not names:
        print(f"FAIL no cases (*.case.json) in {directory}")
        return 1
    failures = 0
    for name in names:
        try:
            passed, detail = check(directory, name, options)
        except Exception as error:  # a case that cannot be loaded fails; go on with the others
            passed, detail = False, f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        failures += not passed
        print(f"{'ok  ' if passed else 'FAIL'} {name}  {detail}", flush=True)
    return 1 if failures else 0
