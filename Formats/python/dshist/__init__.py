"""dshist — the calibration collector of Formats/calibration.md, for machines where torch runs.

Runs a Hugging Face model (transformers, torch) over a calibration text one `ctx` window per
forward call and observes, through forward hooks, the input of every linear layer dsconvert's
`quantize` quantizes, with the same sites and names as dsconvert's engine
(Sources/Engine/ActivationObserver.swift).

`attach(model, sink, expert_mode)` installs the hooks; `sink.observe(name, window, x)` receives
each site's rows (a [rows, width] float tensor) and `sink.routed(layer, expert, window, n)` the
routed token counts; `observed_inputs(model, expert_mode)` lists the inputs and their consumers.
`python3 -m dshist MODEL --text calib.txt [--samples N --ctx L --batch B --routed-only] -o FILE`
collects the histograms (histogram.py) and writes the histogram file (histfile.py) that
`dsconvert calibrate --from-histograms FILE` reads.
"""
from .hooks import attach, observed_inputs  # noqa: F401
from .histogram import AbsHistogram  # noqa: F401
from .histfile import read, write  # noqa: F401
from .collect import collect, windows_of  # noqa: F401
