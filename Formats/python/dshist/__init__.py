"""dshist — the calibration collector of Formats/calibration.md, for machines where torch runs.

Runs a Hugging Face model (transformers, torch) over a calibration text one `ctx` window per
forward call and observes, through forward hooks, the input of every linear layer dsconvert's
`quantize` quantizes, with the same sites and names as dsconvert's engine
(Sources/Engine/ActivationObserver.swift).

`attach(model, sink, expert_mode)` installs the hooks; `sink.observe(name, window, x)` receives
each site's rows (a [rows, width] float tensor) and `sink.routed(layer, expert, window, n)` the
routed token counts; `observed_inputs(model, expert_mode)` lists the inputs and their consumers.
"""
from .hooks import attach, observed_inputs  # noqa: F401
