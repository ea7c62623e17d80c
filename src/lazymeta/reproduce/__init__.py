"""``lazymeta reproduce NAME``: one entry per table and figure of the paper. Each entry is the grid of runs
it needs (resumable: finished runs are reused, killed ones resumed), then ``report.md``, ``report.json``
and a plot, with one verdict line per claim of the paper computed from the numbers."""
