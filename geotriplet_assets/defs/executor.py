"""How a deployed run executes its steps: Dagster's multiprocess executor, with every step
forked from a server process that has imported the code location once.

With the default `spawn`, each step process imports torch, Lightning, timm and the rest again
(seconds per step, more than many steps take); `forkserver` pays that import once per run.
`geotriplet materialize` runs in-process and does not use this.
"""

import dagster as dg

RUN_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {}}}, name="multiprocess_forkserver"
)
