"""``cuagent simulate``: how many GPUs a scheduler that reads the feed needs, and what it costs
jobs, measured on real cluster traces (Alibaba 2023 pods, Alibaba 2026 GenAI duty cycles,
AcmeTrace utilisation CDFs, Gavel's co-location throughputs).

One file per job: :mod:`.traces` reads the public files, :mod:`.demand` gives each pod its SM
and memory demand over time, :mod:`.cluster` is the H100 cluster and MIG's rules,
:mod:`.policies` the placement policies, :mod:`.feed` the simulated feed the cuagent scorer
reads, :mod:`.slowdown` the two slowdown models, :mod:`.engine` the discrete-event loop,
:mod:`.metrics` the figures and the fewest-GPU search, :mod:`.study` the whole measurement,
:mod:`.report` and :mod:`.plots` its table and figures, :mod:`.cli` the command.
"""
