"""``cnnstat bench``: the model measured on this machine, beside cnnstat's analytical figures.

- :mod:`cnnstat.bench.measure` -- torch: the device (``cpu``, ``cuda:N``), the module (a spec
  built with random weights, or a PyTorch reference), warm-up, the layout probe
  (channels-first or channels-last, the faster), timed runs, peak memory.
- :mod:`cnnstat.bench.report` -- no torch: the timings turned into latency per image and per
  frame, fps against the requested fps, MAC/s and bytes/s against a device's bound, memory
  beside the static estimate. The arithmetic of tiles, traffic and the bound is
  :mod:`cnnstat.throughput`'s and :mod:`cnnstat.hardware`'s, never redone here.
- :mod:`cnnstat.bench.calibrate` -- matmul and copy microbenchmarks, written as a user device
  file (the ``[devices.NAME]`` format ``flops --device`` reads).

Nothing here imports click or rich: progress is reported through a callback
``progress(stage, done, total)``. Importing this package does not import torch.
"""
